/*
 * record.c - the canonical encoding of change-stream records (record.h).
 */
#include "core/record.h"

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
    default: /* CMD_CLOCK, CMD_SET_CROSS: no arguments */
        break;
    }
}

static void config(struct rbuf *b, const struct exch_config *c)
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

void core_record_encode(const struct core_record *r, struct rbuf *out)
{
    size_t at = out->len;
    U32(out, 0); /* the length, filled in below */
    I64(out, r->seq);
    I64(out, r->ts);
    I64(out, r->result);
    const struct core_cmd *c = r->cmd;
    U8(out, c->type);
    switch (c->type) {
    case CC_CONFIG:
        config(out, c->config);
        break;
    case CC_EXCH:
        cmd(out, &c->x);
        str(out, c->text);
        break;
    case CC_ACCOUNT:
        U32(out, c->account);
        break;
    case CC_KEY:
        key(out, &c->key);
        break;
    default:
        break;
    }
    U32(out, r->nev);
    for (uint32_t i = 0; i < r->nev; i++)
        event(out, &r->ev[i]);
    if (out->bad)
        return;
    uint32_t n = (uint32_t)(out->len - at - 4);
    for (int i = 0; i < 4; i++)
        out->p[at + (size_t)i] = (unsigned char)(n >> (8 * i));
}
