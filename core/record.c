/*
 * record.c - the canonical encoding of change-stream records (record.h).
 */
#include "core/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rbuf_free(struct rbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static bool room(struct rbuf *b, size_t n)
{
    if (b->bad)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->len + n)
        nc *= 2;
    unsigned char *p = realloc(b->p, nc);
    if (!p) {
        b->bad = true;
        return false;
    }
    b->p = p;
    b->cap = nc;
    return true;
}

void rbuf_put(struct rbuf *b, const void *p, size_t n)
{
    if (n && room(b, n)) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

static void put(struct rbuf *b, uint64_t v, int bytes)
{
    if (!room(b, (size_t)bytes))
        return;
    for (int i = 0; i < bytes; i++)
        b->p[b->len++] = (unsigned char)(v >> (8 * i));
}

#define U8(b, v) put(b, (uint64_t)(v), 1)
#define U16(b, v) put(b, (uint64_t)(v), 2)
#define U32(b, v) put(b, (uint64_t)(v), 4)
#define I64(b, v) put(b, (uint64_t)(int64_t)(v), 8)

/* A string: u16 length, then the bytes (no terminator); longer than the
 * length can say, it is cut (api/ keeps texts to TEXT_LEN_MAX). */
static void str(struct rbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > UINT16_MAX)
        n = UINT16_MAX;
    U16(b, n);
    if (n && room(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void order_ref(struct rbuf *b, const struct order_ref *r)
{
    I64(b, r->order_id);
    str(b, r->clordid);
}

static void cmd(struct rbuf *b, const struct cmd *c)
{
    U8(b, c->type);
    I64(b, c->seq);
    I64(b, c->ts);
    U32(b, c->account);
    U16(b, c->inst);
    switch (c->type) {
    case CMD_NEW_ORDER: {
        const struct cmd_new_order *n = &c->u.new_order;
        U32(b, n->has);
        U8(b, n->side);
        U8(b, n->ord_type);
        U8(b, n->tif);
        U8(b, n->peg_type);
        U8(b, n->contingency);
        U16(b, n->exec_inst);
        I64(b, n->qty);
        I64(b, n->display_qty);
        I64(b, n->price);
        I64(b, n->stop_px);
        I64(b, n->peg_offset_px);
        str(b, n->clordid);
        str(b, n->clordlinkid);
        break;
    }
    case CMD_AMEND: {
        const struct cmd_amend *a = &c->u.amend;
        order_ref(b, &a->ref);
        U32(b, a->has);
        I64(b, a->qty);
        I64(b, a->leaves);
        I64(b, a->price);
        I64(b, a->stop_px);
        I64(b, a->peg_offset_px);
        str(b, a->new_clordid);
        break;
    }
    case CMD_CANCEL:
        order_ref(b, &c->u.cancel);
        break;
    case CMD_CANCEL_ALL:
        U16(b, c->u.cancel_all.inst);
        U8(b, c->u.cancel_all.side);
        U8(b, c->u.cancel_all.reason);
        break;
    case CMD_CANCEL_ALL_AFTER:
        I64(b, c->u.cancel_after_ms);
        break;
    case CMD_SET_PRICE:
        U8(b, c->u.set_price.source);
        I64(b, c->u.set_price.price);
        break;
    case CMD_DEPOSIT:
    case CMD_WITHDRAW:
        U8(b, c->u.money.currency);
        I64(b, c->u.money.amount);
        break;
    case CMD_SET_LEVERAGE:
        I64(b, c->u.leverage_e8);
        break;
    case CMD_SET_RISK_LIMIT:
        I64(b, c->u.risk_limit);
        break;
    case CMD_TRANSFER_MARGIN:
        I64(b, c->u.transfer);
        break;
    case CMD_SET_INDEX:
        U16(b, c->u.set_index.index);
        I64(b, c->u.set_index.price);
        break;
    case CMD_SET_FUNDING:
        I64(b, c->u.set_funding.rate_e8);
        I64(b, c->u.set_funding.indicative_e8);
        I64(b, c->u.set_funding.for_ms);
        U8(b, c->u.set_funding.has_indicative);
        break;
    case CMD_SET_SPAM:
        U8(b, c->u.spam);
        break;
    default: /* CMD_CLOCK, CMD_SET_CROSS: no arguments */
        break;
    }
}

/* The config record's later parts (a flags byte). */
#define CFG_SPAM_RULE 1
#define CFG_KEEP_REJECTED 2

static void config(struct rbuf *b, const struct exch_config *c, const struct store_limits *l)
{
    const struct engine_config *e = &c->engine;
    U32(b, e->orders_max);
    U32(b, e->strings_max);
    U32(b, e->accounts_max);
    U32(b, e->stops_max);
    U32(b, e->open_orders_max);
    U32(b, e->stop_orders_max);
    U8(b, e->stp);
    U16(b, e->instruments_count);
    for (uint16_t i = 0; i < e->instruments_count; i++) {
        const struct engine_instrument *ei = &e->instruments[i];
        const struct exch_instrument *in = &c->inst[i];
        str(b, ei->symbol);
        I64(b, ei->tick_px);
        I64(b, ei->max_px);
        I64(b, ei->lot_qty);
        I64(b, ei->max_order_qty);
        U8(b, in->contract.kind);
        I64(b, in->contract.multiplier);
        I64(b, in->contract.tick_px);
        I64(b, in->contract.lot_qty);
        U8(b, in->currency);
        U16(b, in->index);
        U8(b, in->perpetual);
        I64(b, in->expiry_ms);
        I64(b, in->im_e8);
        I64(b, in->mm_e8);
        I64(b, in->risk_limit);
        I64(b, in->risk_step);
        I64(b, in->maker_fee_e8);
        I64(b, in->taker_fee_e8);
        I64(b, in->settle_fee_e8);
        I64(b, in->funding_interval_ms);
        I64(b, in->funding_interest_e8);
        I64(b, in->impact_notional);
    }
    U8(b, c->currencies_count);
    for (uint8_t k = 0; k < c->currencies_count; k++) {
        str(b, c->currency[k]);
        I64(b, c->insurance_initial[k]);
    }
    U16(b, c->indices_count);
    for (uint16_t k = 0; k < c->indices_count; k++)
        str(b, c->index[k]);
    U32(b, l ? l->orders : 0);
    U32(b, l ? l->execs : 0);
    U32(b, l ? l->trades : 0);
    /* What came later, absent when off: journals from before it read the
     * same (off, as they ran). A byte of flags, then their fields. */
    uint8_t later = (c->spam_orders ? CFG_SPAM_RULE : 0) | (l && l->keep_rejected ? CFG_KEEP_REJECTED : 0);
    if (later) {
        U8(b, later);
        if (later & CFG_SPAM_RULE) {
            U32(b, c->spam_orders);
            for (uint8_t k = 0; k < c->currencies_count; k++)
                I64(b, c->spam_value[k]);
        }
    }
}

static void key(struct rbuf *b, const struct key_rec *k)
{
    str(b, k->id);
    str(b, k->secret);
    U32(b, k->account);
    U32(b, k->perms);
    U8(b, k->enabled);
    uint8_t ncidr = k->ncidr <= KEY_CIDRS_MAX ? k->ncidr : 0; /* more is refused when applied */
    U8(b, ncidr);
    for (uint8_t i = 0; i < ncidr; i++) {
        U32(b, k->cidr_addr[i]);
        U8(b, k->cidr_bits[i]);
    }
    I64(b, k->created_ms);
}

static void order_view(struct rbuf *b, const struct order_view *v)
{
    I64(b, v->id);
    U32(b, v->slot);
    U32(b, v->account);
    U16(b, v->inst);
    U8(b, v->side);
    U8(b, v->ord_type);
    U8(b, v->tif);
    U8(b, v->peg_type);
    U8(b, v->contingency);
    U8(b, v->status);
    U16(b, v->exec_inst);
    U8(b, v->triggered);
    U8(b, v->working);
    I64(b, v->qty);
    I64(b, v->leaves);
    I64(b, v->cum);
    I64(b, v->display_qty);
    I64(b, v->price);
    I64(b, v->stop_px);
    I64(b, v->peg_offset_px);
}

static void position(struct rbuf *b, const struct exch_position *p)
{
    const int64_t f[] = {p->qty, p->current_cost, p->unrealised_cost, p->realised_cost,
                         p->realised_gross_pnl, p->comm, p->mark_value, p->unrealised_pnl,
                         p->pos_margin, p->pos_init, p->pos_comm, p->maint, p->order_margin,
                         p->open_buy_qty, p->open_sell_qty, p->leverage_e8, p->im_e8, p->mm_e8,
                         p->risk_limit, p->avg_entry_px, p->liq_px, p->bankrupt_px, p->mark_px};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        I64(b, f[i]);
}

static void instrument(struct rbuf *b, const struct exch_instrument_state *s)
{
    const int64_t f[] = {s->mark_px,        s->index_px,           s->fair_basis_px,
                         s->funding_rate_e8, s->indicative_rate_e8, s->fair_basis_rate_e8,
                         s->next_funding_ms, s->settled,            s->settled_px,
                         s->open_interest};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        I64(b, f[i]);
}

static bool is_order_event(uint8_t t)
{
    return t == EV_NEW || t == EV_REJECTED || t == EV_AMENDED || t == EV_RESTATED ||
           t == EV_CANCELED || t == EV_TRIGGERED || t == EV_FILL;
}

static void event(struct rbuf *b, const struct rec_event *re)
{
    const struct event *e = &re->ev;
    U8(b, e->type);
    U8(b, e->reason);
    U16(b, e->inst);
    U32(b, e->account);
    I64(b, e->seq);
    I64(b, e->ts);
    if (is_order_event(e->type))
        order_view(b, &e->order);
    switch (e->type) {
    case EV_NEW:
    case EV_AMENDED:
    case EV_REJECTED:
        str(b, e->u.ids.clordid);
        str(b, e->u.ids.clordlinkid);
        break;
    case EV_FILL:
        I64(b, e->u.fill.trade_id);
        I64(b, e->u.fill.last_qty);
        I64(b, e->u.fill.last_px);
        U8(b, e->u.fill.maker);
        U8(b, e->u.fill.pays_taker);
        I64(b, re->x.fill.rate_e8);
        I64(b, re->x.fill.cost);
        I64(b, re->x.fill.comm);
        break;
    case EV_TRADE: {
        const struct ev_trade *t = &e->u.trade;
        I64(b, t->trade_id);
        I64(b, t->maker_order_id);
        I64(b, t->taker_order_id);
        U32(b, t->maker_account);
        U32(b, t->taker_account);
        I64(b, t->qty);
        I64(b, t->px);
        U8(b, t->taker_side);
        break;
    }
    case EV_LEVEL:
        U8(b, e->u.level.side);
        I64(b, e->u.level.px);
        I64(b, e->u.level.size_before);
        I64(b, e->u.level.size);
        break;
    case EV_PRICE:
        U8(b, e->u.price.source);
        I64(b, e->u.price.price);
        break;
    case EV_CANCEL_AFTER:
        I64(b, e->u.cancel_after.deadline);
        break;
    case EV_MONEY: {
        const struct ev_money *m = &e->u.money;
        U8(b, m->kind);
        U8(b, m->currency);
        I64(b, m->amount);
        I64(b, m->balance);
        I64(b, m->qty);
        I64(b, m->px);
        I64(b, m->rate_e8);
        I64(b, re->x.cost);
        break;
    }
    case EV_FUNDING: {
        const struct ev_funding *f = &e->u.funding;
        I64(b, f->mark_px);
        I64(b, f->rate_e8);
        I64(b, f->next_rate_e8);
        I64(b, f->paid);
        I64(b, f->received);
        break;
    }
    case EV_LIQUIDATING: {
        const struct ev_liq *l = &e->u.liq;
        U8(b, l->cross);
        U8(b, l->currency);
        U8(b, l->end);
        I64(b, l->equity);
        I64(b, l->maint);
        I64(b, l->qty);
        I64(b, l->mark_px);
        I64(b, l->risk_limit);
        break;
    }
    case EV_POSITION:
        position(b, &re->x.pos);
        break;
    case EV_INSTRUMENT:
        instrument(b, &re->x.inst);
        break;
    case EV_MARGIN: {
        const struct exch_margin *m = &re->x.margin;
        const int64_t f[] = {m->wallet,         m->deposited,      m->withdrawn,
                             m->unrealised_pnl, m->margin_balance, m->order_margin,
                             m->position_margin, m->maint_margin,  m->available,
                             m->withdrawable};
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
            I64(b, f[i]);
        break;
    }
    default:
        break;
    }
}

/* A command's arguments, after its type. */
static void cmd_body(struct rbuf *b, const struct core_cmd *c)
{
    switch (c->type) {
    case CC_CONFIG:
        config(b, c->config, c->limits);
        break;
    case CC_EXCH: {
        /* An order's text is kept to TEXT_LEN_MAX bytes (api/ refuses
         * longer, the read model keeps that many): the encoding says no
         * more, so that every command encoded decodes. */
        cmd(b, &c->x);
        char t[TEXT_LEN_MAX + 1];
        snprintf(t, sizeof(t), "%s", c->text ? c->text : "");
        str(b, t);
        break;
    }
    case CC_ACCOUNT:
        U32(b, c->account);
        if (c->account_flags) /* absent when none: journals from before flags read the same */
            U8(b, c->account_flags);
        break;
    case CC_KEY:
        key(b, &c->key);
        break;
    case CC_CHECKPOINT:
    case CC_RESTORE: {
        char t[CHECKPOINT_NAME_MAX + 1];
        snprintf(t, sizeof(t), "%s", c->text ? c->text : "");
        str(b, t);
        if (c->type == CC_RESTORE) {
            I64(b, (int64_t)c->target_seq);
            I64(b, (int64_t)c->target_hash);
        }
        break;
    }
    default:
        break;
    }
}

void core_record_encode(const struct core_record *r, struct rbuf *out)
{
    size_t at = out->len;
    U32(out, 0); /* the length, filled in below */
    I64(out, r->seq);
    I64(out, r->ts);
    I64(out, r->result);
    const struct core_cmd *c = r->cmd;
    U8(out, c->type);
    cmd_body(out, c);
    U32(out, r->nev);
    for (uint32_t i = 0; i < r->nev; i++)
        event(out, &r->ev[i]);
    if (out->bad)
        return;
    uint32_t n = (uint32_t)(out->len - at - 4);
    for (int i = 0; i < 4; i++)
        out->p[at + (size_t)i] = (unsigned char)(n >> (8 * i));
}

void core_cmd_encode(const struct core_cmd *c, struct rbuf *out)
{
    I64(out, c->seq);
    I64(out, c->ts);
    U8(out, c->type);
    cmd_body(out, c);
}

/* ---- decoding: every read bounds-checked; a short or malformed input
 * sets bad and reads zeros from then on. ---------------------------------- */

struct rd {
    const unsigned char *p;
    size_t n, at;
    bool bad;
};

static uint64_t get(struct rd *r, int bytes)
{
    if (r->bad || r->n - r->at < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->at++] << (8 * i);
    return v;
}

#define G8(r) ((uint8_t)get(r, 1))
#define G16(r) ((uint16_t)get(r, 2))
#define G32(r) ((uint32_t)get(r, 4))
#define G64(r) ((int64_t)get(r, 8))

/* A string into dst (cap bytes with the terminator); longer is malformed. */
static void gstr(struct rd *r, char *dst, size_t cap)
{
    size_t n = G16(r);
    /* The encoder writes strlen bytes: a NUL inside is damage. */
    if (r->bad || n >= cap || r->n - r->at < n || memchr(r->p + r->at, 0, n)) {
        r->bad = true;
        dst[0] = '\0';
        return;
    }
    memcpy(dst, r->p + r->at, n);
    dst[n] = '\0';
    r->at += n;
}

static void gorder_ref(struct rd *r, struct order_ref *o)
{
    o->order_id = (uint64_t)G64(r);
    gstr(r, o->clordid, sizeof(o->clordid));
}

static void gcmd(struct rd *r, struct cmd *c)
{
    c->type = G8(r);
    c->seq = (uint64_t)G64(r);
    c->ts = G64(r);
    c->account = G32(r);
    c->inst = G16(r);
    switch (c->type) {
    case CMD_NEW_ORDER: {
        struct cmd_new_order *n = &c->u.new_order;
        n->has = G32(r);
        n->side = G8(r);
        n->ord_type = G8(r);
        n->tif = G8(r);
        n->peg_type = G8(r);
        n->contingency = G8(r);
        n->exec_inst = G16(r);
        n->qty = G64(r);
        n->display_qty = G64(r);
        n->price = G64(r);
        n->stop_px = G64(r);
        n->peg_offset_px = G64(r);
        gstr(r, n->clordid, sizeof(n->clordid));
        gstr(r, n->clordlinkid, sizeof(n->clordlinkid));
        break;
    }
    case CMD_AMEND: {
        struct cmd_amend *a = &c->u.amend;
        gorder_ref(r, &a->ref);
        a->has = G32(r);
        a->qty = G64(r);
        a->leaves = G64(r);
        a->price = G64(r);
        a->stop_px = G64(r);
        a->peg_offset_px = G64(r);
        gstr(r, a->new_clordid, sizeof(a->new_clordid));
        break;
    }
    case CMD_CANCEL:
        gorder_ref(r, &c->u.cancel);
        break;
    case CMD_CANCEL_ALL:
        c->u.cancel_all.inst = G16(r);
        c->u.cancel_all.side = G8(r);
        c->u.cancel_all.reason = G8(r);
        break;
    case CMD_CANCEL_ALL_AFTER:
        c->u.cancel_after_ms = G64(r);
        break;
    case CMD_SET_PRICE:
        c->u.set_price.source = G8(r);
        c->u.set_price.price = G64(r);
        break;
    case CMD_DEPOSIT:
    case CMD_WITHDRAW:
        c->u.money.currency = G8(r);
        c->u.money.amount = G64(r);
        break;
    case CMD_SET_LEVERAGE:
        c->u.leverage_e8 = G64(r);
        break;
    case CMD_SET_RISK_LIMIT:
        c->u.risk_limit = G64(r);
        break;
    case CMD_TRANSFER_MARGIN:
        c->u.transfer = G64(r);
        break;
    case CMD_SET_INDEX:
        c->u.set_index.index = G16(r);
        c->u.set_index.price = G64(r);
        break;
    case CMD_SET_FUNDING:
        c->u.set_funding.rate_e8 = G64(r);
        c->u.set_funding.indicative_e8 = G64(r);
        c->u.set_funding.for_ms = G64(r);
        c->u.set_funding.has_indicative = G8(r);
        break;
    case CMD_SET_SPAM:
        c->u.spam = G8(r);
        break;
    case CMD_CLOCK:
    case CMD_SET_CROSS:
        break;
    default:
        r->bad = true; /* the encoder writes no other type */
        break;
    }
}

static void gconfig(struct rd *r, struct exch_config *c, struct store_limits *l)
{
    struct engine_config *e = &c->engine;
    e->orders_max = G32(r);
    e->strings_max = G32(r);
    e->accounts_max = G32(r);
    e->stops_max = G32(r);
    e->open_orders_max = G32(r);
    e->stop_orders_max = G32(r);
    e->stp = (enum stp_mode)G8(r);
    e->instruments_count = G16(r);
    if (e->instruments_count > INSTRUMENTS_MAX) {
        r->bad = true;
        return;
    }
    for (uint16_t i = 0; i < e->instruments_count && !r->bad; i++) {
        struct engine_instrument *ei = &e->instruments[i];
        struct exch_instrument *in = &c->inst[i];
        gstr(r, ei->symbol, sizeof(ei->symbol));
        ei->tick_px = G64(r);
        ei->max_px = G64(r);
        ei->lot_qty = G64(r);
        ei->max_order_qty = G64(r);
        in->contract.kind = (enum mf_kind)G8(r);
        in->contract.multiplier = G64(r);
        in->contract.tick_px = G64(r);
        in->contract.lot_qty = G64(r);
        in->currency = G8(r);
        in->index = G16(r);
        in->perpetual = G8(r);
        in->expiry_ms = G64(r);
        in->im_e8 = G64(r);
        in->mm_e8 = G64(r);
        in->risk_limit = G64(r);
        in->risk_step = G64(r);
        in->maker_fee_e8 = G64(r);
        in->taker_fee_e8 = G64(r);
        in->settle_fee_e8 = G64(r);
        in->funding_interval_ms = G64(r);
        in->funding_interest_e8 = G64(r);
        in->impact_notional = G64(r);
    }
    c->currencies_count = G8(r);
    if (c->currencies_count > CURRENCIES_MAX) {
        r->bad = true;
        return;
    }
    for (uint8_t k = 0; k < c->currencies_count && !r->bad; k++) {
        gstr(r, c->currency[k], sizeof(c->currency[k]));
        c->insurance_initial[k] = G64(r);
    }
    c->indices_count = G16(r);
    if (c->indices_count > INDICES_MAX) {
        r->bad = true;
        return;
    }
    for (uint16_t k = 0; k < c->indices_count && !r->bad; k++)
        gstr(r, c->index[k], sizeof(c->index[k]));
    l->orders = G32(r);
    l->execs = G32(r);
    l->trades = G32(r);
    if (r->at < r->n) {
        uint8_t later = G8(r);
        if (later == 0 || (later & ~(CFG_SPAM_RULE | CFG_KEEP_REJECTED)))
            r->bad = true; /* the encoder writes no zero and no unknown flag */
        l->keep_rejected = (later & CFG_KEEP_REJECTED) != 0;
        if (later & CFG_SPAM_RULE) {
            c->spam_orders = G32(r);
            if (c->spam_orders == 0)
                r->bad = true;
            for (uint8_t k = 0; k < c->currencies_count && !r->bad; k++)
                c->spam_value[k] = G64(r);
        }
    }
}

static void gkey(struct rd *r, struct key_rec *k)
{
    gstr(r, k->id, sizeof(k->id));
    gstr(r, k->secret, sizeof(k->secret));
    k->account = G32(r);
    k->perms = G32(r);
    uint8_t en = G8(r);
    if (en > 1)
        r->bad = true; /* the encoder writes 0 or 1: anything else is damage */
    k->enabled = en == 1;
    k->ncidr = G8(r);
    if (k->ncidr > KEY_CIDRS_MAX) {
        r->bad = true;
        return;
    }
    for (uint8_t i = 0; i < k->ncidr; i++) {
        k->cidr_addr[i] = G32(r);
        k->cidr_bits[i] = G8(r);
    }
    k->created_ms = G64(r);
}

int core_cmd_decode(const void *p, size_t n, struct core_cmd_buf *out)
{
    memset(out, 0, sizeof(*out));
    struct rd r = {p, n, 0, false};
    struct core_cmd *c = &out->cmd;
    c->seq = (uint64_t)G64(&r);
    c->ts = G64(&r);
    c->type = G8(&r);
    switch (c->type) {
    case CC_CONFIG:
        gconfig(&r, &out->config, &out->limits);
        c->config = &out->config;
        c->limits = &out->limits;
        break;
    case CC_EXCH:
        gcmd(&r, &c->x);
        gstr(&r, out->text, sizeof(out->text));
        c->text = out->text[0] ? out->text : NULL;
        break;
    case CC_ACCOUNT:
        c->account = G32(&r);
        if (r.at < r.n) {
            c->account_flags = G8(&r);
            if (c->account_flags == 0 || (c->account_flags & ~CORE_ACCOUNT_FLAGS))
                r.bad = true; /* the encoder writes no zero and no unknown flag */
        }
        break;
    case CC_KEY:
        gkey(&r, &c->key);
        break;
    case CC_CHECKPOINT:
    case CC_RESTORE:
        gstr(&r, out->text, CHECKPOINT_NAME_MAX + 1);
        c->text = out->text;
        if (!out->text[0])
            r.bad = true; /* the encoder writes no checkpoint without a name */
        if (c->type == CC_RESTORE) {
            c->target_seq = (uint64_t)G64(&r);
            c->target_hash = (uint64_t)G64(&r);
        }
        break;
    default:
        r.bad = true;
        break;
    }
    return r.bad || r.at != r.n ? -1 : 0;
}
