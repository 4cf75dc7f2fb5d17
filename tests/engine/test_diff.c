/*
 * test_diff.c - seeded randomized differential test: fast engine vs the
 * naive reference (ref_engine.c).
 *
 * Model: a seeded generator (splitmix64, own code) makes a stream of
 * commands over a small, busy market: 2 instruments, 6 accounts, prices in a
 * band of about 40 ticks around a slowly random-walking mid, a book kept
 * near 100-150 live orders (pool 176, 20 open orders per account and
 * instrument), time that jumps across 00:00 UTC, and a share of invalid
 * commands. Each command goes to engine_apply() and to ref_apply(); the two
 * event batches must be equal event by event and field by field, the return
 * values equal, engine_verify() NULL, and the reads (positions, prices, best
 * prices, live count; every 64 commands the L2 levels and every live order)
 * equal. The budget is split over the three self-trade modes. The first
 * 100,000 commands of the first mode are then replayed into a fresh engine:
 * the event stream hash and engine_hash() must be the same (determinism).
 *
 * Environment:
 *   PERPSIM_SEED            seed (default 20240601); a failure prints
 *                           "seed=<n> failed at command <i>" to replay it
 *   PERPSIM_DIFF_COMMANDS   commands in all (default 1,000,000)
 *   PERPSIM_DIFF_TRAILING   0 leaves trailing stops out (default 1; engine.h
 *                           says nothing of an event for a trailing move:
 *                           both implementations move stopPx silently)
 *   PERPSIM_DIFF_STATS      1 prints event/reject counts per mode
 *   PERPSIM_DIFF_AVOID      bit mask of known, reported disagreements not to
 *                           generate (AVOID_* below; default 0: none)
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "ref_engine.h"

#define ACCOUNTS 6
#define INSTS 2
#define BAND 20          /* ticks either side of the mid */
#define DETERMINISM_CMDS 100000u

/* PERPSIM_DIFF_AVOID bits: stop generating a case where the engine and the
 * reference are known to disagree (reported, not yet settled), so that a
 * run can look further. The default (0) generates everything. */
#define AVOID_OCO_SELF_TRADE 1u  /* an account's OCO group on both sides trading with itself */
#define AVOID_MARKET_FOK 2u      /* Market/Stop/MarketIfTouched with FillOrKill */
#define AVOID_CLOSE_STOP_AMEND 4u /* amending a Close stop without orderQty, no qty given */

/* ---- PRNG -------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

struct gen {
    uint64_t s;
    uint64_t seq;
    ms_t ts;
    int64_t mid[INSTS]; /* in ticks */
    uint64_t clid;
    int trailing;
    unsigned avoid; /* PERPSIM_DIFF_AVOID */
    const struct engine_config *cfg;
};

static uint64_t rnd(struct gen *g, uint64_t n) { return n ? splitmix64(&g->s) % n : 0; }
static int64_t rrange(struct gen *g, int64_t lo, int64_t hi) { return lo + (int64_t)rnd(g, (uint64_t)(hi - lo + 1)); }
static int pct(struct gen *g, unsigned p) { return rnd(g, 100) < p; }

/* ---- event buffers ----------------------------------------------------- */

struct evbuf {
    struct event *ev;
    size_t n, cap;
};

static void sink(void *ctx, const struct event *ev)
{
    struct evbuf *b = ctx;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->ev = realloc(b->ev, b->cap * sizeof *b->ev);
        if (!b->ev)
            abort();
    }
    b->ev[b->n++] = *ev;
}

/* Copies up to the NUL (at most 36 characters); the rest stays zero. */
static void copy_text(char dst[CLORDID_LEN_MAX + 1], const char *src)
{
    size_t len = 0;
    while (len < CLORDID_LEN_MAX && src[len])
        len++;
    memcpy(dst, src, len);
}

/* The meaningful bytes of an event: every field, the union by type; padding
 * and unused union bytes zero. Compared with memcmp and hashed. */
static struct event canon(const struct event *e)
{
    struct event z;
    memset(&z, 0, sizeof z);
    z.type = e->type;
    z.reason = e->reason;
    z.inst = e->inst;
    z.account = e->account;
    z.seq = e->seq;
    z.ts = e->ts;
    const struct order_view *a = &e->order;
    struct order_view *v = &z.order;
    v->id = a->id;
    v->account = a->account;
    v->inst = a->inst;
    v->side = a->side;
    v->ord_type = a->ord_type;
    v->tif = a->tif;
    v->peg_type = a->peg_type;
    v->contingency = a->contingency;
    v->status = a->status;
    v->exec_inst = a->exec_inst;
    v->triggered = a->triggered;
    v->working = a->working;
    v->qty = a->qty;
    v->leaves = a->leaves;
    v->cum = a->cum;
    v->display_qty = a->display_qty;
    v->price = a->price;
    v->stop_px = a->stop_px;
    v->peg_offset_px = a->peg_offset_px;
    switch (e->type) {
    case EV_NEW:
    case EV_AMENDED:
    case EV_REJECTED:
        copy_text(z.u.ids.clordid, e->u.ids.clordid);
        copy_text(z.u.ids.clordlinkid, e->u.ids.clordlinkid);
        break;
    case EV_FILL:
        z.u.fill.trade_id = e->u.fill.trade_id;
        z.u.fill.last_qty = e->u.fill.last_qty;
        z.u.fill.last_px = e->u.fill.last_px;
        z.u.fill.maker = e->u.fill.maker;
        z.u.fill.pays_taker = e->u.fill.pays_taker;
        break;
    case EV_TRADE:
        z.u.trade.trade_id = e->u.trade.trade_id;
        z.u.trade.maker_order_id = e->u.trade.maker_order_id;
        z.u.trade.taker_order_id = e->u.trade.taker_order_id;
        z.u.trade.maker_account = e->u.trade.maker_account;
        z.u.trade.taker_account = e->u.trade.taker_account;
        z.u.trade.qty = e->u.trade.qty;
        z.u.trade.px = e->u.trade.px;
        z.u.trade.taker_side = e->u.trade.taker_side;
        break;
    case EV_LEVEL:
        z.u.level.side = e->u.level.side;
        z.u.level.px = e->u.level.px;
        z.u.level.size_before = e->u.level.size_before;
        z.u.level.size = e->u.level.size;
        break;
    case EV_PRICE:
        z.u.price.source = e->u.price.source;
        z.u.price.price = e->u.price.price;
        break;
    case EV_CANCEL_AFTER:
        z.u.cancel_after.deadline = e->u.cancel_after.deadline;
        break;
    default:
        break;
    }
    return z;
}

static int event_equal(const struct event *a, const struct event *b)
{
    struct event x = canon(a), y = canon(b);
    return memcmp(&x, &y, sizeof x) == 0;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t hash_events(uint64_t h, const struct evbuf *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct event z = canon(&b->ev[i]);
        h = hash_bytes(h, &z, sizeof z);
    }
    return h;
}

/* ---- printing ---------------------------------------------------------- */

static const char *ev_name(unsigned t)
{
    static const char *n[] = {"?",        "NEW",   "REJECTED", "AMENDED", "RESTATED",    "CANCELED",
                              "TRIGGERED", "FILL", "TRADE",    "LEVEL",   "PRICE", "CANCEL_AFTER"};
    return t < sizeof n / sizeof *n ? n[t] : "?";
}

static const char *cmd_name(unsigned t)
{
    static const char *n[] = {"?", "NEW_ORDER", "AMEND", "CANCEL", "CANCEL_ALL", "CANCEL_ALL_AFTER",
                              "SET_PRICE", "CLOCK"};
    return t < sizeof n / sizeof *n ? n[t] : "UNKNOWN";
}

static const char *reject_name(unsigned r) { return r < REJ_COUNT ? engine_reject_name((enum reject)r) : "?"; }

static void print_view(FILE *f, const struct order_view *v)
{
    fprintf(f,
            "    order{id=%" PRIu64 " acct=%" PRIu32 " inst=%u side=%u type=%u tif=%u peg=%u cont=%u status=%u "
            "exec=0x%x trig=%u work=%u qty=%" PRId64 " leaves=%" PRId64 " cum=%" PRId64 " disp=%" PRId64
            " px=%" PRId64 " stop=%" PRId64 " pegoff=%" PRId64 "}\n",
            v->id, v->account, v->inst, v->side, v->ord_type, v->tif, v->peg_type, v->contingency, v->status,
            v->exec_inst, v->triggered, v->working, v->qty, v->leaves, v->cum, v->display_qty, v->price,
            v->stop_px, v->peg_offset_px);
}

static void print_event(FILE *f, const char *tag, const struct event *e)
{
    fprintf(f, "  %s %s reason=%u", tag, ev_name(e->type), e->reason);
    if (e->type == EV_REJECTED)
        fprintf(f, "(%s)", reject_name(e->reason));
    else if (e->type == EV_CANCELED)
        fprintf(f, "(%s)", e->reason < CXL_COUNT ? engine_cancel_name((enum cancel_reason)e->reason) : "?");
    fprintf(f, " inst=%u acct=%" PRIu32 " seq=%" PRIu64 " ts=%" PRId64, e->inst, e->account, e->seq, e->ts);
    switch (e->type) {
    case EV_NEW:
    case EV_AMENDED:
    case EV_REJECTED:
        fprintf(f, " clordid=\"%.36s\" link=\"%.36s\"", e->u.ids.clordid, e->u.ids.clordlinkid);
        break;
    case EV_FILL:
        fprintf(f, " trade=%" PRIu64 " qty=%" PRId64 " px=%" PRId64 " maker=%u pays_taker=%u", e->u.fill.trade_id,
                e->u.fill.last_qty, e->u.fill.last_px, e->u.fill.maker, e->u.fill.pays_taker);
        break;
    case EV_TRADE:
        fprintf(f,
                " trade=%" PRIu64 " maker=%" PRIu64 "/%" PRIu32 " taker=%" PRIu64 "/%" PRIu32 " qty=%" PRId64
                " px=%" PRId64 " taker_side=%u",
                e->u.trade.trade_id, e->u.trade.maker_order_id, e->u.trade.maker_account,
                e->u.trade.taker_order_id, e->u.trade.taker_account, e->u.trade.qty, e->u.trade.px,
                e->u.trade.taker_side);
        break;
    case EV_LEVEL:
        fprintf(f, " side=%u px=%" PRId64 " size %" PRId64 " -> %" PRId64, e->u.level.side, e->u.level.px,
                e->u.level.size_before, e->u.level.size);
        break;
    case EV_PRICE:
        fprintf(f, " source=%u price=%" PRId64, e->u.price.source, e->u.price.price);
        break;
    case EV_CANCEL_AFTER:
        fprintf(f, " deadline=%" PRId64, e->u.cancel_after.deadline);
        break;
    default:
        break;
    }
    fprintf(f, "\n");
    print_view(f, &e->order);
}

static void print_ref(FILE *f, const char *what, const struct order_ref *r)
{
    fprintf(f, " %s{id=%" PRIu64 " clordid=\"%.36s\"}", what, r->order_id, r->clordid);
}

static void print_cmd(FILE *f, const struct cmd *c)
{
    fprintf(f, "  cmd %s(%u) seq=%" PRIu64 " ts=%" PRId64 " acct=%" PRIu32 " inst=%u", cmd_name(c->type), c->type,
            c->seq, c->ts, c->account, c->inst);
    switch (c->type) {
    case CMD_NEW_ORDER: {
        const struct cmd_new_order *n = &c->u.new_order;
        fprintf(f,
                " has=0x%x side=%u type=%u tif=%u peg=%u cont=%u exec=0x%x qty=%" PRId64 " disp=%" PRId64
                " px=%" PRId64 " stop=%" PRId64 " pegoff=%" PRId64 " clordid=\"%.36s\" link=\"%.36s\"",
                n->has, n->side, n->ord_type, n->tif, n->peg_type, n->contingency, n->exec_inst, n->qty,
                n->display_qty, n->price, n->stop_px, n->peg_offset_px, n->clordid, n->clordlinkid);
        break;
    }
    case CMD_AMEND: {
        const struct cmd_amend *a = &c->u.amend;
        print_ref(f, "ref", &a->ref);
        fprintf(f,
                " has=0x%x qty=%" PRId64 " leaves=%" PRId64 " px=%" PRId64 " stop=%" PRId64 " pegoff=%" PRId64
                " new_clordid=\"%.36s\"",
                a->has, a->qty, a->leaves, a->price, a->stop_px, a->peg_offset_px, a->new_clordid);
        break;
    }
    case CMD_CANCEL:
        print_ref(f, "ref", &c->u.cancel);
        break;
    case CMD_CANCEL_ALL:
        fprintf(f, " cancel_all{inst=%u side=%u}", c->u.cancel_all.inst, c->u.cancel_all.side);
        break;
    case CMD_CANCEL_ALL_AFTER:
        fprintf(f, " timeout_ms=%" PRId64, c->u.cancel_after_ms);
        break;
    case CMD_SET_PRICE:
        fprintf(f, " source=%u price=%" PRId64, c->u.set_price.source, c->u.set_price.price);
        break;
    default:
        break;
    }
    fprintf(f, "\n");
}

/* ---- configuration ----------------------------------------------------- */

static void make_config(struct engine_config *cfg, enum stp_mode stp)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->orders_max = 176;
    cfg->strings_max = 2 * 176; /* never binds: the reference has no string pool */
    cfg->accounts_max = ACCOUNTS;
    cfg->stops_max = 24;
    cfg->open_orders_max = 20;
    cfg->stop_orders_max = 4;
    cfg->stp = stp;
    cfg->instruments_count = INSTS;
    struct engine_instrument *a = &cfg->instruments[0];
    strcpy(a->symbol, "XBTUSD");
    a->tick_px = 50000000;              /* 0.5 USD */
    a->max_px = INT64_C(100000000000000); /* 1,000,000 USD */
    a->lot_qty = 1;
    a->max_order_qty = 10000000;
    struct engine_instrument *b = &cfg->instruments[1];
    strcpy(b->symbol, "ETHUSD");
    b->tick_px = 5000000; /* 0.05 */
    b->max_px = INT64_C(1000000000000);
    b->lot_qty = 100;
    b->max_order_qty = 100000;
}

/* ---- the generator ----------------------------------------------------- */

static px_t tick_of(const struct gen *g, uint16_t inst) { return g->cfg->instruments[inst].tick_px; }
static qty_t lot_of(const struct gen *g, uint16_t inst) { return g->cfg->instruments[inst].lot_qty; }

/* A price around the mid: buys mostly below, sells mostly above, crossing
 * often enough. */
static px_t gen_px(struct gen *g, uint16_t inst, uint8_t side)
{
    int64_t t = side == SIDE_BUY ? rrange(g, -BAND, 4) : rrange(g, -4, BAND);
    return (g->mid[inst] + t) * tick_of(g, inst);
}

static qty_t gen_lots(struct gen *g)
{
    uint64_t u = rnd(g, 100);
    if (u < 60)
        return 1 + (qty_t)rnd(g, 5);
    if (u < 90)
        return 1 + (qty_t)rnd(g, 30);
    return 1 + (qty_t)rnd(g, 200);
}

static void set_text(char dst[CLORDID_LEN_MAX + 1], const char *src)
{
    memset(dst, 0, CLORDID_LEN_MAX + 1);
    copy_text(dst, src);
}

/* A random live order, optionally of one account (UINT32_MAX: any). */
static int pick_live(struct gen *g, const struct ref_engine *r, uint32_t account, struct order_view *v,
                     const char **clordid)
{
    uint32_t n = ref_orders_live(r);
    if (n == 0)
        return 0;
    for (int tries = 0; tries < 8; tries++) {
        if (!ref_live_at(r, (uint32_t)rnd(g, n), v, clordid, NULL))
            return 0;
        if (account == UINT32_MAX || v->account == account)
            return 1;
    }
    return 0;
}

/* An id that was given out and is no longer live (0 if none found). */
static uint64_t pick_terminal(struct gen *g, const struct ref_engine *r)
{
    uint64_t next = ref_next_order_id(r);
    struct order_view v;
    for (int tries = 0; tries < 8 && next > 1; tries++) {
        uint64_t id = 1 + rnd(g, next - 1);
        if (!ref_order(r, id, &v))
            return id;
    }
    return 0;
}

static void gen_new_order(struct gen *g, const struct ref_engine *r, struct cmd *c)
{
    struct cmd_new_order *n = &c->u.new_order;
    uint16_t inst = (uint16_t)rnd(g, INSTS);
    uint32_t acct = (uint32_t)rnd(g, ACCOUNTS);
    c->inst = inst;
    c->account = acct;
    px_t tick = tick_of(g, inst);
    qty_t lot = lot_of(g, inst);
    qty_t pos = ref_position(r, acct, inst);
    uint8_t side = rnd(g, 2) ? SIDE_BUY : SIDE_SELL;
    qty_t lots = gen_lots(g);
    qty_t qty = lots * lot;

    uint64_t kind = rnd(g, 100);
    int explicit_type = pct(g, 30);
    if (kind < 72) { /* Limit */
        n->has = HAS_QTY | HAS_PRICE;
        n->price = gen_px(g, inst, side);
        if (explicit_type)
            n->ord_type = ORD_LIMIT;
        uint64_t t = rnd(g, 100);
        n->tif = t < 55 ? TIF_NONE : t < 67 ? TIF_GTC : t < 78 ? TIF_IOC : t < 86 ? TIF_FOK : TIF_DAY;
        if (pct(g, 9) && n->tif != TIF_IOC && n->tif != TIF_FOK)
            n->exec_inst |= EXEC_POST_ONLY;
        uint64_t d = rnd(g, 100);
        if (d < 8) {
            n->has |= HAS_DISPLAY_QTY;
            n->display_qty = 0;
        } else if (d < 18 && lots > 1) {
            n->has |= HAS_DISPLAY_QTY;
            n->display_qty = (1 + (qty_t)rnd(g, (uint64_t)lots - 1)) * lot;
        }
    } else if (kind < 82) { /* Market */
        n->has = HAS_QTY;
        if (explicit_type)
            n->ord_type = ORD_MARKET;
        if (pct(g, 20))
            n->tif = TIF_IOC;
    } else if (kind < 93) { /* stops */
        uint64_t st = rnd(g, 4);
        uint8_t type = st == 0 ? ORD_STOP : st == 1 ? ORD_STOP_LIMIT : st == 2 ? ORD_MARKET_IF_TOUCHED : ORD_LIMIT_IF_TOUCHED;
        int up = (type == ORD_STOP || type == ORD_STOP_LIMIT) ? side == SIDE_BUY : side == SIDE_SELL;
        uint64_t src = rnd(g, 10);
        if (src < 3)
            n->exec_inst |= EXEC_LAST_PRICE;
        else if (src < 4)
            n->exec_inst |= EXEC_INDEX_PRICE;
        else if (src < 6)
            n->exec_inst |= EXEC_MARK_PRICE;
        if (pct(g, 5))
            n->exec_inst |= EXEC_LAST_WITHIN_MARK;
        n->has = HAS_QTY;
        if (type == ORD_STOP_LIMIT || type == ORD_LIMIT_IF_TOUCHED) {
            n->has |= HAS_PRICE;
            n->price = gen_px(g, inst, side);
            if (pct(g, 20))
                n->tif = pct(g, 50) ? TIF_DAY : TIF_IOC;
            if (pct(g, 5) && n->tif != TIF_IOC)
                n->exec_inst |= EXEC_POST_ONLY;
        }
        if (g->trailing && pct(g, 25)) {
            n->ord_type = type;
            n->peg_type = PEG_TRAILING_STOP;
            n->has |= HAS_PEG_OFFSET;
            n->peg_offset_px = (up ? 1 : -1) * (1 + (int64_t)rnd(g, 8)) * tick;
        } else {
            if (explicit_type || type == ORD_MARKET_IF_TOUCHED || type == ORD_LIMIT_IF_TOUCHED)
                n->ord_type = type;
            n->has |= HAS_STOP_PX;
            /* mostly on the far side of the mid, sometimes already crossed */
            int64_t off = rrange(g, -3, 10);
            n->stop_px = (g->mid[inst] + (up ? off : -off)) * tick;
        }
    } else { /* Pegged + Fixed */
        n->has = HAS_QTY;
        n->peg_type = pct(g, 50) ? PEG_PRIMARY : PEG_MARKET;
        n->exec_inst |= EXEC_FIXED;
        if (pct(g, 60)) {
            n->has |= HAS_PEG_OFFSET;
            n->peg_offset_px = rrange(g, -3, 3) * tick;
        }
        if (explicit_type)
            n->ord_type = ORD_PEGGED;
        if (pct(g, 15))
            n->exec_inst |= EXEC_POST_ONLY;
        if (pct(g, 10))
            n->tif = TIF_DAY;
    }

    /* ReduceOnly / Close, mostly on the reducing side */
    if (pct(g, 9)) {
        n->exec_inst |= pct(g, 70) ? EXEC_REDUCE_ONLY : EXEC_CLOSE;
        if (pos != 0 && pct(g, 75))
            side = pos > 0 ? SIDE_SELL : SIDE_BUY;
        if ((n->exec_inst & EXEC_CLOSE) && pct(g, 25) && !(n->has & HAS_DISPLAY_QTY) &&
            n->peg_type != PEG_TRAILING_STOP) {
            /* Close without orderQty: the whole position (for a stop, at
             * trigger time); flat: refused without a side, else canceled */
            n->has &= ~(uint32_t)HAS_QTY;
            if (pct(g, 50))
                side = SIDE_NONE;
            n->side = side;
            qty = 0;
        }
    }
    if (n->has & HAS_QTY) {
        if (pct(g, 20)) {
            n->side = SIDE_NONE;
            n->qty = side == SIDE_SELL ? -qty : qty;
        } else {
            n->side = side;
            n->qty = qty;
        }
    }
    if (pct(g, 7)) {
        n->contingency = CONT_OCO;
        char link[16];
        if (g->avoid & AVOID_OCO_SELF_TRADE) /* groups never span both sides */
            snprintf(link, sizeof link, "L%u%c", (unsigned)rnd(g, 3), side == SIDE_BUY ? 'b' : 's');
        else
            snprintf(link, sizeof link, "L%u", (unsigned)rnd(g, 3));
        set_text(n->clordlinkid, link);
    }
    uint64_t idk = rnd(g, 100);
    if (idk < 55) {
        char id[40];
        snprintf(id, sizeof id, "c%" PRIu64, ++g->clid);
        set_text(n->clordid, id);
    } else if (idk < 58) {
        /* reuse a recent one: sometimes still live (duplicate) */
        char id[40];
        snprintf(id, sizeof id, "c%" PRIu64, g->clid - rnd(g, 40 < g->clid ? 40 : g->clid));
        set_text(n->clordid, id);
    }
}

/* One error per command, each known to both implementations. */
static void gen_bad_new_order(struct gen *g, const struct ref_engine *r, struct cmd *c)
{
    struct cmd_new_order *n = &c->u.new_order;
    uint16_t inst = (uint16_t)rnd(g, INSTS);
    c->inst = inst;
    c->account = (uint32_t)rnd(g, ACCOUNTS);
    px_t tick = tick_of(g, inst);
    qty_t lot = lot_of(g, inst);
    n->has = HAS_QTY | HAS_PRICE;
    n->side = rnd(g, 2) ? SIDE_BUY : SIDE_SELL;
    n->qty = (1 + (qty_t)rnd(g, 10)) * lot;
    n->price = gen_px(g, inst, n->side);
    switch (rnd(g, 25)) {
    case 0: n->price += 1 + (px_t)rnd(g, (uint64_t)tick - 1); break;    /* off tick */
    case 1: n->qty = 0; break;
    case 2: n->qty = -n->qty; break;                                     /* negative with a side */
    case 3: c->inst = (uint16_t)(INSTS + rnd(g, 5)); break;               /* unknown symbol */
    case 4: n->qty = g->cfg->instruments[inst].max_order_qty + lot; break; /* too large */
    case 5:
        c->inst = 1;
        n->qty = 150;
        n->price = gen_px(g, 1, n->side);
        break;                                                           /* not a lot multiple */
    case 6: c->account = ACCOUNTS + (uint32_t)rnd(g, 3); break;
    case 7: n->side = 3; break;
    case 8: n->price = -n->price; break;
    case 9: n->price = g->cfg->instruments[inst].max_px + tick; break;
    case 10: n->ord_type = ORD_MARKET; break;                             /* market with a price */
    case 11: n->ord_type = ORD_LIMIT; n->has &= ~(uint32_t)HAS_PRICE; break;
    case 12: n->has &= ~(uint32_t)HAS_PRICE; n->tif = TIF_GTC; break;      /* market GTC */
    case 13: n->tif = 5 + (uint8_t)rnd(g, 3); break;
    case 14: n->ord_type = 9 + (uint8_t)rnd(g, 5); break;
    case 15:
        n->has |= HAS_DISPLAY_QTY;
        n->display_qty = rnd(g, 2) ? -lot : n->qty + lot;
        break;
    case 16: n->has &= ~(uint32_t)HAS_PRICE; n->exec_inst = EXEC_POST_ONLY; break;
    case 17: n->exec_inst = EXEC_ALL_OR_NONE; break;
    case 18:
        n->contingency = rnd(g, 2) ? CONT_OTO : CONT_OCO;
        if (n->contingency == CONT_OTO)
            set_text(n->clordlinkid, "L9");
        break;
    case 19: set_text(n->clordid, "bad\x01id"); break;
    case 20: {
        struct order_view v;
        const char *id = NULL;
        if (pick_live(g, r, c->account, &v, &id) && id[0])
            set_text(n->clordid, id); /* duplicate */
        else
            set_text(n->clordid, "x\ty");
        break;
    }
    case 21: n->ord_type = ORD_LIMIT; n->has |= HAS_STOP_PX; n->stop_px = n->price; break;
    case 22: n->ord_type = ORD_LIMIT; n->peg_type = PEG_PRIMARY; break;
    case 23: /* Market or Stop with FillOrKill: rule 2 says IOC only */
        if (g->avoid & AVOID_MARKET_FOK) {
            n->tif = 7;
            break;
        }
        n->tif = TIF_FOK;
        n->has &= ~(uint32_t)HAS_PRICE;
        if (rnd(g, 2)) {
            n->has |= HAS_STOP_PX;
            n->stop_px = gen_px(g, inst, n->side == SIDE_BUY ? SIDE_SELL : SIDE_BUY);
        }
        break;
    default: /* Pegged without Fixed */
        n->has &= ~(uint32_t)HAS_PRICE;
        n->peg_type = PEG_MARKET;
        break;
    }
}

static void gen_amend(struct gen *g, const struct ref_engine *r, struct cmd *c)
{
    struct cmd_amend *a = &c->u.amend;
    struct order_view v;
    const char *clordid = NULL;
    if (!pick_live(g, r, UINT32_MAX, &v, &clordid)) {
        c->account = (uint32_t)rnd(g, ACCOUNTS);
        a->ref.order_id = 1 + rnd(g, ref_next_order_id(r) + 3);
        a->has = AMD_LEAVES;
        a->leaves = 1;
        return;
    }
    c->account = v.account;
    c->inst = v.inst;
    px_t tick = tick_of(g, v.inst);
    qty_t lot = lot_of(g, v.inst);
    if (clordid[0] && pct(g, 25))
        set_text(a->ref.clordid, clordid);
    else
        a->ref.order_id = v.id;
    int stop = (v.ord_type == ORD_STOP || v.ord_type == ORD_STOP_LIMIT || v.ord_type == ORD_MARKET_IF_TOUCHED ||
                v.ord_type == ORD_LIMIT_IF_TOUCHED) && !v.triggered;
    int priced = v.price != 0;

    if (pct(g, 12)) { /* invalid */
        switch (rnd(g, 12)) {
        case 0: { uint64_t t = pick_terminal(g, r); a->ref.order_id = t ? t : ref_next_order_id(r) + 7; memset(a->ref.clordid, 0, sizeof a->ref.clordid); break; }
        case 1: a->ref.order_id = ref_next_order_id(r) + rnd(g, 5); memset(a->ref.clordid, 0, sizeof a->ref.clordid); break;
        case 2: c->account = (v.account + 1 + (uint32_t)rnd(g, ACCOUNTS - 1)) % ACCOUNTS; a->ref.order_id = v.id; break;
        case 3: a->has = AMD_QTY | AMD_LEAVES; a->qty = v.qty + lot; a->leaves = v.leaves + lot; return;
        case 4: a->has = AMD_PRICE; a->price = (priced ? v.price : 100 * tick) + 1; return;
        case 5: a->has = AMD_LEAVES; a->leaves = 0; return;
        case 6: a->has = AMD_QTY; a->qty = v.cum > 0 ? v.cum : -lot; return;
        case 7: a->has = AMD_STOP_PX; a->stop_px = 100 * tick; if (stop) a->stop_px += 1; return;
        case 8: a->has = AMD_QTY; a->qty = v.qty; return; /* unchanged (unless restated) */
        case 9: {
            struct order_view w;
            const char *other = NULL;
            a->has = AMD_NEW_CLORDID;
            if (pick_live(g, r, v.account, &w, &other) && other[0] && w.id != v.id)
                set_text(a->new_clordid, other);
            else
                set_text(a->new_clordid, "\x02");
            return;
        }
        case 10: /* pegOffsetValue on anything but an untriggered trailing stop */
            if (stop && v.peg_type == PEG_TRAILING_STOP)
                break;
            a->has = AMD_PEG_OFFSET;
            a->peg_offset_px = tick;
            return;
        default: a->has = 0; return;
        }
        a->has = AMD_LEAVES;
        a->leaves = v.leaves > lot ? v.leaves - lot : v.leaves + lot;
        return;
    }
    uint64_t what = rnd(g, 100);
    if (what < 30) { /* leaves down */
        qty_t nl = v.leaves > lot ? lot * (1 + (qty_t)rnd(g, (uint64_t)(v.leaves / lot - 1))) : v.leaves + lot;
        if (pct(g, 50)) {
            a->has |= AMD_LEAVES;
            a->leaves = nl;
        } else {
            a->has |= AMD_QTY;
            a->qty = v.cum + nl;
        }
    } else if (what < 45) { /* leaves up */
        qty_t nl = v.leaves + lot * (1 + (qty_t)rnd(g, 10));
        if (pct(g, 50)) {
            a->has |= AMD_LEAVES;
            a->leaves = nl;
        } else {
            a->has |= AMD_QTY;
            a->qty = v.cum + nl;
        }
    }
    if (priced && (what >= 30 ? pct(g, 80) : pct(g, 20))) {
        a->has |= AMD_PRICE;
        a->price = gen_px(g, v.inst, v.side);
        if (a->price == v.price && pct(g, 50))
            a->price += v.side == SIDE_BUY ? tick : -tick;
    }
    if (stop && v.peg_type == PEG_TRAILING_STOP && pct(g, 40)) {
        /* a new trailing offset; now and then of the wrong sign */
        int up = (v.ord_type == ORD_STOP || v.ord_type == ORD_STOP_LIMIT) ? v.side == SIDE_BUY : v.side == SIDE_SELL;
        a->has |= AMD_PEG_OFFSET;
        a->peg_offset_px = (up ? 1 : -1) * (1 + (int64_t)rnd(g, 8)) * tick;
        if (pct(g, 5))
            a->peg_offset_px = -a->peg_offset_px;
    }
    if (stop && v.peg_type != PEG_TRAILING_STOP && pct(g, 40)) {
        a->has |= AMD_STOP_PX;
        int up = (v.ord_type == ORD_STOP || v.ord_type == ORD_STOP_LIMIT) ? v.side == SIDE_BUY : v.side == SIDE_SELL;
        int64_t off = rrange(g, -3, 10);
        a->stop_px = (g->mid[v.inst] + (up ? off : -off)) * tick;
    }
    if (stop && v.qty == 0 && (g->avoid & AVOID_CLOSE_STOP_AMEND)) {
        a->has |= AMD_LEAVES; /* a Close stop without orderQty: give one */
        a->leaves = lot * (1 + (qty_t)rnd(g, 5));
    }
    if (pct(g, 12) || a->has == 0) {
        char id[40];
        snprintf(id, sizeof id, "c%" PRIu64, ++g->clid);
        a->has |= AMD_NEW_CLORDID;
        set_text(a->new_clordid, id);
    }
}

static void gen_cancel(struct gen *g, const struct ref_engine *r, struct cmd *c)
{
    struct order_ref *ref = &c->u.cancel;
    struct order_view v;
    const char *clordid = NULL;
    c->account = (uint32_t)rnd(g, ACCOUNTS);
    if (pct(g, 88) && pick_live(g, r, UINT32_MAX, &v, &clordid)) {
        c->account = v.account;
        c->inst = v.inst;
        if (clordid[0] && pct(g, 30))
            set_text(ref->clordid, clordid);
        else
            ref->order_id = v.id;
        if (pct(g, 4))
            c->account = (v.account + 1) % ACCOUNTS; /* not ours */
        return;
    }
    switch (rnd(g, 4)) {
    case 0: ref->order_id = pick_terminal(g, r); break;
    case 1: ref->order_id = ref_next_order_id(r) + rnd(g, 3); break;
    case 2: set_text(ref->clordid, "nope"); break;
    default: break; /* neither id nor clOrdID */
    }
    if (ref->order_id == 0 && !ref->clordid[0] && pct(g, 50))
        ref->order_id = 999999;
}

/* The next midnight (00:00 UTC) strictly after t. */
static ms_t next_midnight(ms_t t) { return (t / MS_PER_DAY + 1) * MS_PER_DAY; }

static void gen_cmd(struct gen *g, const struct ref_engine *r, struct cmd *c)
{
    memset(c, 0, sizeof *c);
    c->seq = ++g->seq;
    uint64_t u = rnd(g, 1000);
    if (u < 700)
        g->ts += (ms_t)rnd(g, 20);
    else if (u < 996)
        g->ts += (ms_t)rnd(g, 2000);
    else
        g->ts += (ms_t)rnd(g, 3600000);
    c->ts = g->ts;
    for (int i = 0; i < INSTS; i++)
        if (rnd(g, 60) == 0) {
            g->mid[i] += rnd(g, 2) ? 1 : -1;
            if (g->mid[i] < 3 * BAND)
                g->mid[i] = 3 * BAND;
        }

    uint32_t live = ref_orders_live(r);
    unsigned w_new = 520, w_amend = 120, w_cancel = 50, w_call = 5, w_after = 4, w_price = 45, w_clock = 8,
             w_bad = 40, w_misc = 12;
    if (live > 165)
        w_cancel += 150;
    if (live > 190) {
        w_cancel += 300;
        w_call += 10;
    }
    unsigned total = w_new + w_amend + w_cancel + w_call + w_after + w_price + w_clock + w_bad + w_misc;
    unsigned x = (unsigned)rnd(g, total);

    if (x < w_new) {
        c->type = CMD_NEW_ORDER;
        gen_new_order(g, r, c);
        return;
    }
    x -= w_new;
    if (x < w_amend) {
        c->type = CMD_AMEND;
        gen_amend(g, r, c);
        return;
    }
    x -= w_amend;
    if (x < w_cancel) {
        c->type = CMD_CANCEL;
        gen_cancel(g, r, c);
        return;
    }
    x -= w_cancel;
    if (x < w_call) {
        c->type = CMD_CANCEL_ALL;
        c->account = (uint32_t)rnd(g, ACCOUNTS);
        c->u.cancel_all.inst = pct(g, 50) ? INST_ALL : (uint16_t)rnd(g, INSTS);
        c->u.cancel_all.side = pct(g, 50) ? SIDE_NONE : (uint8_t)(1 + rnd(g, 2));
        if (pct(g, 4))
            c->u.cancel_all.inst = 9;
        else if (pct(g, 4))
            c->u.cancel_all.side = 3;
        return;
    }
    x -= w_call;
    if (x < w_after) {
        c->type = CMD_CANCEL_ALL_AFTER;
        c->account = (uint32_t)rnd(g, ACCOUNTS);
        uint64_t k = rnd(g, 100);
        c->u.cancel_after_ms = k < 45 ? 0 : k < 49 ? -(int64_t)(1 + rnd(g, 1000)) : (int64_t)(100 + rnd(g, 600000));
        if (pct(g, 2))
            c->account = ACCOUNTS;
        return;
    }
    x -= w_after;
    if (x < w_price) {
        c->type = CMD_SET_PRICE;
        uint16_t inst = (uint16_t)rnd(g, INSTS);
        c->inst = inst;
        px_t tick = tick_of(g, inst);
        c->u.set_price.source = pct(g, 75) ? SRC_MARK : SRC_INDEX;
        px_t p = (g->mid[inst] + rrange(g, -6, 6)) * tick;
        if (pct(g, 30))
            p += (px_t)rnd(g, (uint64_t)tick); /* off the tick */
        c->u.set_price.price = p;
        if (pct(g, 3))
            c->u.set_price.price = -(px_t)rnd(g, 3);
        else if (pct(g, 2))
            c->inst = INSTS + 3;
        return;
    }
    x -= w_price;
    if (x < w_clock) {
        c->type = CMD_CLOCK;
        if (pct(g, 50)) /* just past midnight */
            g->ts = next_midnight(g->ts) + (ms_t)rnd(g, 3);
        else if (pct(g, 50)) /* exactly on it */
            g->ts = next_midnight(g->ts);
        else
            g->ts += (ms_t)rnd(g, 600000);
        c->ts = g->ts;
        return;
    }
    x -= w_clock;
    if (x < w_bad) {
        c->type = CMD_NEW_ORDER;
        gen_bad_new_order(g, r, c);
        return;
    }
    /* misc invalid: sequence, unknown command */
    switch (rnd(g, 3)) {
    case 0:
        c->type = CMD_CLOCK;
        if (g->seq > 2)
            c->seq = --g->seq; /* the previous command's seq again */
        break;
    case 1:
        c->type = CMD_CANCEL_ALL;
        c->account = (uint32_t)rnd(g, ACCOUNTS);
        c->u.cancel_all.inst = INST_ALL;
        if (g->seq > 2)
            c->ts = g->ts - 1 - (ms_t)rnd(g, 1000); /* time going back */
        break;
    default:
        c->type = rnd(g, 2) ? 0 : (uint8_t)(CMD_CLOCK + 1 + rnd(g, 20));
        c->account = (uint32_t)rnd(g, ACCOUNTS);
        break;
    }
}

/* ---- the run ----------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 0);
    return (end && *end == '\0') ? (uint64_t)v : dflt;
}

static const char *stp_name(enum stp_mode m)
{
    return m == STP_ALLOW ? "allow" : m == STP_CANCEL_MAKER ? "cancel_maker" : "cancel_taker";
}

struct run {
    uint64_t seed;
    enum stp_mode stp;
    uint64_t index;
    const struct cmd *cmd;
};

static void fail_header(const struct run *ru, const char *what)
{
    fprintf(stderr, "\nseed=%" PRIu64 " failed at command %" PRIu64 " (stp=%s): %s\n", ru->seed, ru->index,
            stp_name(ru->stp), what);
    fprintf(stderr, "replay: PERPSIM_SEED=%" PRIu64 "\n", ru->seed);
    print_cmd(stderr, ru->cmd);
}

static void dump_batches(const struct evbuf *fast, const struct evbuf *ref, size_t first_diff)
{
    size_t n = fast->n > ref->n ? fast->n : ref->n;
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, " event %zu%s\n", i, i == first_diff ? "   <== first difference" : "");
        if (i < fast->n)
            print_event(stderr, "engine", &fast->ev[i]);
        else
            fprintf(stderr, "  engine (none)\n");
        if (i < ref->n)
            print_event(stderr, "ref   ", &ref->ev[i]);
        else
            fprintf(stderr, "  ref    (none)\n");
    }
}

static int view_equal(const struct order_view *a, const struct order_view *b)
{
    struct event x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    x.order = *a;
    y.order = *b;
    return event_equal(&x, &y);
}

/* Compares the reads; returns NULL or what differs (into buf). */
static const char *compare_reads(const struct engine *e, const struct ref_engine *r, int deep, char *buf, size_t len)
{
    if (engine_orders_live(e) != ref_orders_live(r)) {
        snprintf(buf, len, "orders_live engine=%" PRIu32 " ref=%" PRIu32, engine_orders_live(e), ref_orders_live(r));
        return buf;
    }
    for (uint16_t i = 0; i < INSTS; i++) {
        for (uint32_t a = 0; a < ACCOUNTS; a++)
            if (engine_position(e, a, i) != ref_position(r, a, i)) {
                snprintf(buf, len, "position acct=%" PRIu32 " inst=%u engine=%" PRId64 " ref=%" PRId64, a, i,
                         engine_position(e, a, i), ref_position(r, a, i));
                return buf;
            }
        for (int s = SRC_MARK; s < SRC_COUNT; s++)
            if (engine_price(e, i, (enum price_source)s) != ref_price(r, i, (enum price_source)s)) {
                snprintf(buf, len, "price inst=%u source=%d engine=%" PRId64 " ref=%" PRId64, i, s,
                         engine_price(e, i, (enum price_source)s), ref_price(r, i, (enum price_source)s));
                return buf;
            }
        for (int s = SIDE_BUY; s <= SIDE_SELL; s++)
            if (engine_best(e, i, (enum side)s) != ref_best(r, i, (enum side)s)) {
                snprintf(buf, len, "best inst=%u side=%d engine=%" PRId64 " ref=%" PRId64, i, s,
                         engine_best(e, i, (enum side)s), ref_best(r, i, (enum side)s));
                return buf;
            }
    }
    if (!deep)
        return NULL;
    enum { LV = 128 };
    px_t epx[LV], rpx[LV];
    qty_t esz[LV], rsz[LV];
    for (uint16_t i = 0; i < INSTS; i++)
        for (int s = SIDE_BUY; s <= SIDE_SELL; s++) {
            uint32_t en = engine_levels(e, i, (enum side)s, LV, epx, esz);
            uint32_t rn = ref_levels(r, i, (enum side)s, LV, rpx, rsz);
            if (en != rn) {
                snprintf(buf, len, "levels inst=%u side=%d count engine=%" PRIu32 " ref=%" PRIu32, i, s, en, rn);
                return buf;
            }
            for (uint32_t k = 0; k < en; k++)
                if (epx[k] != rpx[k] || esz[k] != rsz[k]) {
                    snprintf(buf, len,
                             "level %" PRIu32 " inst=%u side=%d engine=(%" PRId64 ", %" PRId64 ") ref=(%" PRId64
                             ", %" PRId64 ")",
                             k, i, s, epx[k], esz[k], rpx[k], rsz[k]);
                    return buf;
                }
        }
    uint32_t n = ref_orders_live(r);
    for (uint32_t k = 0; k < n; k++) {
        struct order_view rv, ev;
        ref_live_at(r, k, &rv, NULL, NULL);
        if (!engine_order(e, rv.id, &ev)) {
            snprintf(buf, len, "live order %" PRIu64 " unknown to engine_order()", rv.id);
            return buf;
        }
        if (!view_equal(&rv, &ev)) {
            fprintf(stderr, "engine_order(%" PRIu64 "):\n", rv.id);
            print_view(stderr, &ev);
            fprintf(stderr, "ref:\n");
            print_view(stderr, &rv);
            snprintf(buf, len, "order %" PRIu64 " view differs", rv.id);
            return buf;
        }
    }
    return NULL;
}

struct stats {
    uint64_t ev[16];
    uint64_t rej[REJ_COUNT + 1];
    uint64_t cxl[CXL_COUNT + 1];
    uint32_t max_live;
    uint64_t sum_live;
};

static void count(struct stats *st, const struct evbuf *b, enum reject ret, uint32_t live)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct event *e = &b->ev[i];
        st->ev[e->type < 16 ? e->type : 0]++;
        if (e->type == EV_CANCELED)
            st->cxl[e->reason < CXL_COUNT ? e->reason : CXL_COUNT]++;
    }
    st->rej[ret < REJ_COUNT ? ret : REJ_COUNT]++;
    if (live > st->max_live)
        st->max_live = live;
    st->sum_live += live;
}

static void print_stats(const struct stats *st, enum stp_mode stp, uint64_t n)
{
    fprintf(stderr, "stp=%s commands=%" PRIu64 " max_live=%" PRIu32 " mean_live=%" PRIu64 "\n events:", stp_name(stp), n,
            st->max_live, n ? st->sum_live / n : 0);
    for (unsigned t = 1; t < 12; t++)
        fprintf(stderr, " %s=%" PRIu64, ev_name(t), st->ev[t]);
    fprintf(stderr, "\n returns:");
    for (unsigned r = 0; r < REJ_COUNT; r++)
        if (st->rej[r])
            fprintf(stderr, " %s=%" PRIu64, engine_reject_name((enum reject)r), st->rej[r]);
    fprintf(stderr, "\n cancels:");
    for (unsigned r = 0; r < CXL_COUNT; r++)
        if (st->cxl[r])
            fprintf(stderr, " %s=%" PRIu64, engine_cancel_name((enum cancel_reason)r), st->cxl[r]);
    fprintf(stderr, "\n");
}

/* Runs n commands through both; records the first `record` commands into
 * *rec (when rec != NULL) with the event-stream hash and engine_hash() after
 * them. Returns 0 on success (a failure has been printed). */
static int run_diff(uint64_t seed, enum stp_mode stp, uint64_t n, struct cmd *rec, uint64_t record,
                    uint64_t *rec_evhash, uint64_t *rec_hash)
{
    struct engine_config cfg;
    make_config(&cfg, stp);
    struct evbuf fb = {0}, rb = {0};
    const char *err = NULL;
    struct engine *e = engine_create(&cfg, sink, &fb, NULL, &err);
    struct ref_engine *r = ref_create(&cfg, sink, &rb, NULL);
    if (!e || !r) {
        fprintf(stderr, "seed=%" PRIu64 " failed at command 0: create (%s)\n", seed, err ? err : "ref");
        return 1;
    }
    struct gen g;
    memset(&g, 0, sizeof g);
    g.s = seed ^ (UINT64_C(0x5bd1e9955bd1e995) * (uint64_t)(stp + 1));
    g.cfg = &cfg;
    g.trailing = env_u64("PERPSIM_DIFF_TRAILING", 1) != 0;
    g.avoid = (unsigned)env_u64("PERPSIM_DIFF_AVOID", 0);
    g.ts = INT64_C(1717282800000) + (ms_t)rnd(&g, 3600000); /* 2024-06-01 23:00 UTC */
    g.mid[0] = 60000 + (int64_t)rnd(&g, 1000);             /* ~30,000 USD */
    g.mid[1] = 60000 + (int64_t)rnd(&g, 1000);             /* ~3,000 */
    int stats_on = env_u64("PERPSIM_DIFF_STATS", 0) != 0;
    struct stats st;
    memset(&st, 0, sizeof st);

    uint64_t evhash = UINT64_C(0xcbf29ce484222325);
    int failed = 0;
    char buf[256];
    struct cmd c;
    struct run ru = {seed, stp, 0, &c};
    for (uint64_t i = 0; i < n && !failed; i++) {
        gen_cmd(&g, r, &c);
        ru.index = i;
        fb.n = rb.n = 0;
        enum reject fr = engine_apply(e, &c);
        enum reject rr = ref_apply(r, &c);
        size_t m = fb.n < rb.n ? fb.n : rb.n, k = 0;
        while (k < m && event_equal(&fb.ev[k], &rb.ev[k]))
            k++;
        if (k < m || fb.n != rb.n) {
            fail_header(&ru, fb.n != rb.n && k == m ? "event count differs" : "event differs");
            fprintf(stderr, " engine returned %s, ref %s; events engine=%zu ref=%zu\n", reject_name(fr),
                    reject_name(rr), fb.n, rb.n);
            dump_batches(&fb, &rb, k);
            failed = 1;
            break;
        }
        if (fr != rr) {
            snprintf(buf, sizeof buf, "return engine=%s ref=%s", reject_name(fr), reject_name(rr));
            fail_header(&ru, buf);
            dump_batches(&fb, &rb, (size_t)-1);
            failed = 1;
            break;
        }
        const char *bad = engine_verify(e);
        if (bad) {
            snprintf(buf, sizeof buf, "engine_verify: %s", bad);
            fail_header(&ru, buf);
            dump_batches(&fb, &rb, (size_t)-1);
            failed = 1;
            break;
        }
        bad = compare_reads(e, r, (i & 63) == 63, buf, sizeof buf);
        if (bad) {
            fail_header(&ru, bad);
            dump_batches(&fb, &rb, (size_t)-1);
            failed = 1;
            break;
        }
        if (stats_on)
            count(&st, &fb, fr, ref_orders_live(r));
        if (rec && i < record) {
            rec[i] = c;
            evhash = hash_events(evhash, &fb);
            if (i + 1 == record) {
                *rec_evhash = evhash;
                *rec_hash = engine_hash(e);
            }
        }
    }
    if (stats_on && !failed)
        print_stats(&st, stp, n);
    engine_destroy(e);
    ref_destroy(r);
    free(fb.ev);
    free(rb.ev);
    return failed;
}

/* Replays recorded commands into a fresh engine: same events, same hash. */
static int replay(uint64_t seed, const struct cmd *rec, uint64_t n, uint64_t want_evhash, uint64_t want_hash)
{
    struct engine_config cfg;
    make_config(&cfg, STP_ALLOW);
    struct evbuf fb = {0};
    const char *err = NULL;
    struct engine *e = engine_create(&cfg, sink, &fb, NULL, &err);
    if (!e) {
        fprintf(stderr, "seed=%" PRIu64 " failed at command 0: create (%s)\n", seed, err ? err : "?");
        return 1;
    }
    uint64_t evhash = UINT64_C(0xcbf29ce484222325);
    for (uint64_t i = 0; i < n; i++) {
        fb.n = 0;
        engine_apply(e, &rec[i]);
        evhash = hash_events(evhash, &fb);
    }
    uint64_t h = engine_hash(e);
    int failed = 0;
    if (evhash != want_evhash || h != want_hash) {
        fprintf(stderr,
                "\nseed=%" PRIu64 " failed at command %" PRIu64 " (stp=allow): determinism: event hash %016" PRIx64
                " vs %016" PRIx64 ", engine_hash %016" PRIx64 " vs %016" PRIx64 "\n",
                seed, n - 1, want_evhash, evhash, want_hash, h);
        failed = 1;
    }
    engine_destroy(e);
    free(fb.ev);
    return failed;
}

static uint64_t g_seed, g_commands;

static void run_mode(enum stp_mode stp)
{
    uint64_t n = g_commands / 3 + (stp == STP_ALLOW ? g_commands % 3 : 0);
    if (stp != STP_ALLOW) {
        ck_assert_msg(run_diff(g_seed, stp, n, NULL, 0, NULL, NULL) == 0, "seed=%" PRIu64 " stp=%s: see stderr",
                      g_seed, stp_name(stp));
        return;
    }
    uint64_t record = n < DETERMINISM_CMDS ? n : DETERMINISM_CMDS;
    struct cmd *rec = calloc(record ? record : 1, sizeof *rec);
    ck_assert_ptr_nonnull(rec);
    uint64_t evhash = 0, hash = 0;
    int failed = run_diff(g_seed, stp, n, rec, record, &evhash, &hash);
    if (!failed && record)
        failed = replay(g_seed, rec, record, evhash, hash);
    free(rec);
    ck_assert_msg(failed == 0, "seed=%" PRIu64 " stp=%s: see stderr", g_seed, stp_name(stp));
}

START_TEST(diff_stp_allow) { run_mode(STP_ALLOW); }
END_TEST

START_TEST(diff_stp_cancel_maker) { run_mode(STP_CANCEL_MAKER); }
END_TEST

START_TEST(diff_stp_cancel_taker) { run_mode(STP_CANCEL_TAKER); }
END_TEST

int main(void)
{
    g_seed = env_u64("PERPSIM_SEED", 20240601);
    g_commands = env_u64("PERPSIM_DIFF_COMMANDS", 1000000);

    Suite *s = suite_create("engine_diff");
    TCase *tc = tcase_create("diff");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, diff_stp_allow);
    tcase_add_test(tc, diff_stp_cancel_maker);
    tcase_add_test(tc, diff_stp_cancel_taker);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
