/*
 * store.c - the read model kept from the change stream (store.h).
 */
#include "core/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define TEXTS_MAX (1u << 16)

struct texts {
    char **s;         /* s[0] = ""; TEXTS_MAX pointers that never move, so
                       * another thread may read a text whose id it got
                       * from the engine thread without the state lock */
    uint32_t n, cap;
    uint32_t *hash;   /* open addressing: index into s, 0 = empty */
    uint32_t hcap;
};

struct cmap {         /* (account, clOrdID) -> latest order id */
    uint64_t *slot;   /* order id, 0 = empty */
    uint64_t n, cap;
};

#define VEC(T) struct { T *v; uint32_t n, cap; }

struct acct {
    struct idx_vec orders, execs, wallet;
    uint64_t insts;
};

struct store {
    const struct exch_config *cfg;
    uint32_t naccts;
    struct acct *acct;
    VEC(struct ord_rec) ord;   /* by id; ord.v[0] unused */
    VEC(struct exe_rec) exe;
    VEC(struct trade_rec) trades[INSTRUMENTS_MAX];
    VEC(struct bin_rec) bins[INSTRUMENTS_MAX][BIN_COUNT];
    VEC(struct funding_rec) funding;
    VEC(struct insurance_rec) insurance;
    VEC(struct settle_rec) settle;
    VEC(struct wallet_rec) wallet;
    struct idx_vec liq;
    uint8_t settled[INSTRUMENTS_MAX];
    struct texts texts;
    struct cmap cmap;
    /* the record being applied: its command's account and text */
    uint32_t cmd_account;
    const char *cmd_text;
    bool text_given;
    ms_t now;
};

static const ms_t bin_ms[BIN_COUNT] = {60000, 300000, 3600000, 86400000};

/* Grows a vector to hold one more element; aborts when memory is gone:
 * the read model cannot drop a row silently. */
static void *grow(void *v, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return v;
    uint32_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(v, (size_t)nc * elem);
    if (!p)
        abort();
    *cap = nc;
    return p;
}
#define VPUSH(vec, val) do { \
        (vec).v = grow((vec).v, &(vec).cap, (vec).n, sizeof(*(vec).v)); \
        (vec).v[(vec).n++] = (val); \
    } while (0)

static void idx_push(struct idx_vec *iv, uint32_t x)
{
    VPUSH(*iv, x);
}

/* ---- texts ----------------------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * UINT64_C(1099511628211);
    return h;
}

static uint32_t intern(struct store *s, const char *text)
{
    struct texts *t = &s->texts;
    if (!text || !*text)
        return 0;
    size_t len = strnlen(text, TEXT_LEN_MAX);
    uint64_t h = fnv(text, len, UINT64_C(1469598103934665603));
    uint32_t i = (uint32_t)h & (t->hcap - 1);
    for (; t->hash[i]; i = (i + 1) & (t->hcap - 1)) {
        const char *c = t->s[t->hash[i]];
        if (strlen(c) == len && memcmp(c, text, len) == 0)
            return t->hash[i];
    }
    if (t->n >= TEXTS_MAX)
        return 0; /* too many distinct texts: new ones are not kept */
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, text, len);
    copy[len] = 0;
    t->s[t->n] = copy;
    t->hash[i] = t->n;
    return t->n++;
}

/* ---- clOrdID map ------------------------------------------------------------ */

static uint64_t ckey(uint32_t account, const char *clordid)
{
    return fnv(clordid, strlen(clordid), UINT64_C(1469598103934665603) ^ account);
}

static void cmap_put(struct store *s, uint64_t id);

static void cmap_grow(struct store *s)
{
    struct cmap old = s->cmap;
    s->cmap.cap = old.cap ? old.cap * 2 : 1024;
    s->cmap.slot = calloc(s->cmap.cap, sizeof(uint64_t));
    if (!s->cmap.slot)
        abort();
    s->cmap.n = 0;
    for (uint64_t i = 0; i < old.cap; i++)
        if (old.slot[i])
            cmap_put(s, old.slot[i]);
    free(old.slot);
}

/* Inserts or replaces the entry for the order's (account, clOrdID). */
static void cmap_put(struct store *s, uint64_t id)
{
    if ((s->cmap.n + 1) * 2 > s->cmap.cap)
        cmap_grow(s);
    const struct ord_rec *r = &s->ord.v[id];
    uint64_t m = s->cmap.cap - 1, i = ckey(r->v.account, r->clordid) & m;
    for (; s->cmap.slot[i]; i = (i + 1) & m) {
        const struct ord_rec *o = &s->ord.v[s->cmap.slot[i]];
        if (o->v.account == r->v.account && strcmp(o->clordid, r->clordid) == 0) {
            s->cmap.slot[i] = id;
            return;
        }
    }
    s->cmap.slot[i] = id;
    s->cmap.n++;
}

uint64_t store_find_clordid(const struct store *s, uint32_t account, const char *clordid)
{
    if (!s->cmap.cap || !clordid || !*clordid)
        return 0;
    uint64_t m = s->cmap.cap - 1, i = ckey(account, clordid) & m;
    for (; s->cmap.slot[i]; i = (i + 1) & m) {
        const struct ord_rec *o = &s->ord.v[s->cmap.slot[i]];
        if (o->v.account == account && strcmp(o->clordid, clordid) == 0)
            return s->cmap.slot[i];
    }
    return 0;
}

/* ---- lifetime --------------------------------------------------------------- */

struct store *store_create(const struct exch_config *cfg, uint32_t accounts_max)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->naccts = accounts_max;
    s->acct = calloc(accounts_max, sizeof(*s->acct));
    s->texts.hcap = TEXTS_MAX * 2;
    s->texts.hash = calloc(s->texts.hcap, sizeof(uint32_t));
    s->texts.s = calloc(TEXTS_MAX, sizeof(char *));
    if (!s->acct || !s->texts.hash || !s->texts.s) {
        store_destroy(s);
        return NULL;
    }
    s->texts.cap = TEXTS_MAX;
    s->texts.s[0] = calloc(1, 1);
    s->texts.n = 1;
    struct ord_rec zero;
    memset(&zero, 0, sizeof(zero));
    VPUSH(s->ord, zero); /* ids start at 1 */
    return s;
}

void store_destroy(struct store *s)
{
    if (!s)
        return;
    if (s->acct)
        for (uint32_t a = 0; a < s->naccts; a++) {
            free(s->acct[a].orders.v);
            free(s->acct[a].execs.v);
            free(s->acct[a].wallet.v);
        }
    free(s->acct);
    free(s->ord.v);
    free(s->exe.v);
    for (int i = 0; i < INSTRUMENTS_MAX; i++) {
        free(s->trades[i].v);
        for (int b = 0; b < BIN_COUNT; b++)
            free(s->bins[i][b].v);
    }
    free(s->funding.v);
    free(s->insurance.v);
    free(s->settle.v);
    free(s->wallet.v);
    free(s->liq.v);
    for (uint32_t i = 0; i < s->texts.n; i++)
        free(s->texts.s[i]);
    free(s->texts.s);
    free(s->texts.hash);
    free(s->cmap.slot);
    free(s);
}

/* ---- event handling ------------------------------------------------------------- */

static struct ord_rec *ord_at(struct store *s, uint64_t id)
{
    while (s->ord.n <= id) {
        struct ord_rec zero;
        memset(&zero, 0, sizeof(zero));
        VPUSH(s->ord, zero);
    }
    return &s->ord.v[id];
}

static struct exe_rec *exec_push(struct store *s, const struct event *ev, uint8_t type,
                                 uint32_t account)
{
    struct exe_rec e;
    memset(&e, 0, sizeof(e));
    e.exec_id = (uint64_t)s->exe.n + 1;
    e.type = type;
    e.ts = ev->ts;
    e.v = ev->order;
    e.v.account = account;
    e.v.inst = ev->inst;
    e.currency = s->cfg->inst[ev->inst].currency;
    e.reason = ev->reason;
    VPUSH(s->exe, e);
    if (account < s->naccts)
        idx_push(&s->acct[account].execs, s->exe.n - 1);
    return &s->exe.v[s->exe.n - 1];
}

static px_t avg_px(const struct ord_rec *r)
{
    if (r->v.cum <= 0)
        return 0;
    return (px_t)(r->fill_px_qty / r->v.cum);
}

static void order_update(struct store *s, const struct event *ev, uint8_t type)
{
    uint64_t id = ev->order.id;
    if (!id)
        return;
    struct ord_rec *r = ord_at(s, id);
    r->v = ev->order;
    r->updated_ms = ev->ts;
    if (type == EX_CANCELED)
        r->cancel_reason = ev->reason;
    if (type == EX_REPLACED && ev->u.ids.clordid[0] && strcmp(ev->u.ids.clordid, r->clordid) != 0) {
        memcpy(r->clordid, ev->u.ids.clordid, sizeof(r->clordid));
        cmap_put(s, id);
    }
    struct exe_rec *e = exec_push(s, ev, type, ev->order.account);
    e->order_id = id;
    e->avg_px = avg_px(r);
}

static void on_new(struct store *s, const struct event *ev)
{
    uint64_t id = ev->order.id;
    struct ord_rec *r = ord_at(s, id);
    memset(r, 0, sizeof(*r));
    r->text = "";
    r->v = ev->order;
    memcpy(r->clordid, ev->u.ids.clordid, sizeof(r->clordid));
    memcpy(r->clordlinkid, ev->u.ids.clordlinkid, sizeof(r->clordlinkid));
    r->created_ms = r->updated_ms = ev->ts;
    uint32_t a = ev->order.account;
    if (a == s->cmd_account && !s->text_given && s->cmd_text) {
        /* The command's text goes to its account's first new order. */
        s->text_given = true;
        r->text = s->texts.s[intern(s, s->cmd_text)];
    }
    if (a < s->naccts) {
        idx_push(&s->acct[a].orders, (uint32_t)id);
        s->acct[a].insts |= UINT64_C(1) << ev->order.inst;
    }
    if (a == EXCH_LIQUIDATOR)
        idx_push(&s->liq, (uint32_t)id);
    if (r->clordid[0])
        cmap_put(s, id);
    struct exe_rec *e = exec_push(s, ev, EX_NEW, a);
    e->order_id = id;
}

static void on_fill(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    uint64_t id = ev->order.id;
    struct ord_rec *r = ord_at(s, id);
    r->v = ev->order;
    r->updated_ms = ev->ts;
    r->fill_px_qty += (i128)ev->u.fill.last_px * ev->u.fill.last_qty;
    struct exe_rec *e = exec_push(s, ev, EX_TRADE, ev->order.account);
    e->order_id = id;
    e->trd_match_id = ev->u.fill.trade_id;
    e->last_qty = ev->u.fill.last_qty;
    e->last_px = ev->u.fill.last_px;
    e->liq = ev->u.fill.maker ? 1 : 2;
    e->commission_e8 = re->x.fill.rate_e8;
    e->avg_px = avg_px(r);
    e->exec_cost = re->x.fill.cost;
    e->exec_comm = re->x.fill.comm;
}

static void on_trade(struct store *s, const struct event *ev)
{
    uint16_t i = ev->inst;
    const struct ev_trade *t = &ev->u.trade;
    struct trade_rec tr;
    memset(&tr, 0, sizeof(tr));
    tr.trade_id = t->trade_id;
    tr.ts = ev->ts;
    tr.size = t->qty;
    tr.px = t->px;
    tr.side = t->taker_side;
    sats_t v = 0;
    if (mf_value(&s->cfg->inst[i].contract, t->qty, t->px, &v) == MF_OK)
        tr.gross = v < 0 ? -v : v;
    if (s->trades[i].n) {
        const struct trade_rec *p = &s->trades[i].v[s->trades[i].n - 1];
        if (t->px > p->px)
            tr.tick_dir = 0;
        else if (t->px < p->px)
            tr.tick_dir = 2;
        else
            tr.tick_dir = (p->tick_dir == 0 || p->tick_dir == 1) ? 1 : 3;
    }
    VPUSH(s->trades[i], tr);
    for (int b = 0; b < BIN_COUNT; b++) {
        ms_t start = ev->ts - ev->ts % bin_ms[b];
        struct bin_rec *last = s->bins[i][b].n ? &s->bins[i][b].v[s->bins[i][b].n - 1] : NULL;
        if (!last || last->start_ms != start) {
            struct bin_rec nb;
            memset(&nb, 0, sizeof(nb));
            nb.start_ms = start;
            /* BitMEX: open is the previous bucket's close. */
            nb.open = last ? last->close : t->px;
            nb.high = nb.low = nb.open;
            VPUSH(s->bins[i][b], nb);
            last = &s->bins[i][b].v[s->bins[i][b].n - 1];
        }
        if (t->px > last->high)
            last->high = t->px;
        if (t->px < last->low)
            last->low = t->px;
        last->close = t->px;
        last->trades++;
        last->volume += t->qty;
        last->turnover += tr.gross;
        last->px_qty += (i128)t->px * t->qty;
        last->last_size = t->qty;
    }
}

static const uint8_t money_exec[] = {
    [MK_FUNDING] = EX_FUNDING,
    [MK_SETTLEMENT] = EX_SETTLEMENT,
    [MK_LIQUIDATION] = EX_LIQUIDATION,
    [MK_DELEVERAGE] = EX_BANKRUPTCY,
};

static void on_money(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    const struct ev_money *m = &ev->u.money;
    uint32_t a = ev->account;
    struct wallet_rec w;
    memset(&w, 0, sizeof(w));
    w.id = (uint64_t)s->wallet.n + 1;
    w.ts = ev->ts;
    w.account = a;
    w.currency = m->currency;
    w.kind = m->kind;
    w.inst = ev->inst;
    w.amount = m->amount;
    w.balance = m->balance;
    VPUSH(s->wallet, w);
    if (a < s->naccts)
        idx_push(&s->acct[a].wallet, s->wallet.n - 1);
    if (a == EXCH_LIQUIDATOR) {
        struct insurance_rec ir = {ev->ts, m->currency, m->balance};
        VPUSH(s->insurance, ir);
    }
    if (m->kind < sizeof(money_exec) && money_exec[m->kind]) {
        /* The account's change of position: margin/ gives the position
         * closed for a liquidation or settlement (a long's is > 0, closed
         * by a sell), the change itself for a deleverage; funding rows
         * carry the position and take its side. */
        qty_t change = m->kind == MK_DELEVERAGE || m->kind == MK_FUNDING ? m->qty : -m->qty;
        struct event e2 = *ev;
        memset(&e2.order, 0, sizeof(e2.order));
        e2.order.account = a;
        e2.order.inst = ev->inst;
        e2.order.side = change < 0 ? SIDE_SELL : SIDE_BUY;
        e2.order.status = ST_FILLED;
        e2.order.ord_type = m->kind == MK_FUNDING ? ORD_NONE : ORD_LIMIT;
        e2.order.display_qty = -1;
        struct exe_rec *e = exec_push(s, &e2, money_exec[m->kind], a);
        e->last_qty = change < 0 ? -change : change;
        e->last_px = m->px;
        e->commission_e8 = m->rate_e8;
        e->currency = m->currency;
        /* Funding: execComm is what the account paid (a receipt is < 0);
         * the others carry their execCost. */
        e->exec_comm = m->kind == MK_FUNDING ? -m->amount : 0;
        e->exec_cost = m->kind == MK_FUNDING ? 0 : re->x.cost;
        if (a < s->naccts)
            s->acct[a].insts |= UINT64_C(1) << ev->inst;
    }
}

static void apply_event(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    if (ev->ts > s->now)
        s->now = ev->ts;
    switch (ev->type) {
    case EV_NEW:
        on_new(s, ev);
        break;
    case EV_AMENDED:
        order_update(s, ev, EX_REPLACED);
        break;
    case EV_RESTATED:
        order_update(s, ev, EX_RESTATED);
        break;
    case EV_TRIGGERED:
        order_update(s, ev, EX_TRIGGERED);
        break;
    case EV_CANCELED:
        order_update(s, ev, EX_CANCELED);
        break;
    case EV_FILL:
        on_fill(s, re);
        break;
    case EV_TRADE:
        on_trade(s, ev);
        break;
    case EV_MONEY:
        on_money(s, re);
        break;
    case EV_FUNDING: {
        struct funding_rec f = {ev->ts, ev->inst, ev->u.funding.rate_e8, ev->u.funding.mark_px,
                                ev->u.funding.paid};
        VPUSH(s->funding, f);
        break;
    }
    case EV_POSITION:
        if (ev->account < s->naccts)
            s->acct[ev->account].insts |= UINT64_C(1) << ev->inst;
        break;
    case EV_INSTRUMENT: {
        const struct exch_instrument_state *st = &re->x.inst;
        if (st->settled && !s->settled[ev->inst]) {
            s->settled[ev->inst] = 1;
            struct settle_rec r = {ev->ts, ev->inst, st->settled_px};
            VPUSH(s->settle, r);
        }
        break;
    }
    default:
        break;
    }
}

void store_apply(struct store *s, const struct core_record *r)
{
    const struct core_cmd *c = r->cmd;
    if (r->ts > s->now)
        s->now = r->ts;
    if (c->type == CC_CONFIG) {
        /* The insurance funds' opening balances: the first rows. */
        for (uint8_t k = 0; k < c->config->currencies_count; k++) {
            struct insurance_rec ir = {r->ts, k, c->config->insurance_initial[k]};
            VPUSH(s->insurance, ir);
        }
        return;
    }
    s->cmd_account = c->type == CC_EXCH ? c->x.account : UINT32_MAX;
    s->cmd_text = c->type == CC_EXCH && c->text && *c->text ? c->text : NULL;
    s->text_given = false;
    for (uint32_t i = 0; i < r->nev; i++)
        apply_event(s, &r->ev[i]);
    s->cmd_text = NULL;
}

uint64_t store_hash(const struct store *s, uint64_t h)
{
    h = hash_u64(h, s->ord.n);
    h = hash_u64(h, s->exe.n);
    for (int i = 0; i < INSTRUMENTS_MAX; i++) {
        h = hash_u64(h, s->trades[i].n);
        for (int b = 0; b < BIN_COUNT; b++)
            h = hash_u64(h, s->bins[i][b].n);
    }
    h = hash_u64(h, s->funding.n);
    h = hash_u64(h, s->insurance.n);
    h = hash_u64(h, s->settle.n);
    h = hash_u64(h, s->wallet.n);
    h = hash_u64(h, s->liq.n);
    h = hash_u64(h, s->texts.n);
    return hash_u64(h, (uint64_t)s->now);
}

/* ---- reads --------------------------------------------------------------------- */

const struct ord_rec *store_order(const struct store *s, uint64_t id)
{
    return id && id < s->ord.n && s->ord.v[id].v.id == id ? &s->ord.v[id] : NULL;
}

uint64_t store_orders_count(const struct store *s)
{
    return s->ord.n - 1;
}

static const struct idx_vec empty_vec;

const struct idx_vec *store_account_orders(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].orders : &empty_vec;
}

const struct exe_rec *store_exec(const struct store *s, uint32_t idx)
{
    return &s->exe.v[idx];
}

const struct idx_vec *store_account_execs(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].execs : &empty_vec;
}

const struct trade_rec *store_trades(const struct store *s, uint16_t inst, uint32_t *n)
{
    *n = s->trades[inst].n;
    return s->trades[inst].v;
}

const struct bin_rec *store_bins(const struct store *s, uint16_t inst, enum bin_size b, uint32_t *n)
{
    *n = s->bins[inst][b].n;
    return s->bins[inst][b].v;
}

ms_t store_bin_ms(enum bin_size b)
{
    return bin_ms[b];
}

const struct funding_rec *store_funding(const struct store *s, uint32_t *n)
{
    *n = s->funding.n;
    return s->funding.v;
}

const struct insurance_rec *store_insurance(const struct store *s, uint32_t *n)
{
    *n = s->insurance.n;
    return s->insurance.v;
}

const struct settle_rec *store_settlements(const struct store *s, uint32_t *n)
{
    *n = s->settle.n;
    return s->settle.v;
}

const struct wallet_rec *store_wallet(const struct store *s, uint32_t idx)
{
    return &s->wallet.v[idx];
}

const struct idx_vec *store_account_wallet(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].wallet : &empty_vec;
}

const struct idx_vec *store_liquidations(const struct store *s)
{
    return &s->liq;
}

uint64_t store_account_insts(const struct store *s, uint32_t a)
{
    return a < s->naccts ? s->acct[a].insts : 0;
}

px_t store_last_px(const struct store *s, uint16_t inst, uint8_t *tick_dir)
{
    uint32_t n = s->trades[inst].n;
    if (!n) {
        if (tick_dir)
            *tick_dir = 0;
        return 0;
    }
    if (tick_dir)
        *tick_dir = s->trades[inst].v[n - 1].tick_dir;
    return s->trades[inst].v[n - 1].px;
}

ms_t store_now(const struct store *s)
{
    return s->now;
}
