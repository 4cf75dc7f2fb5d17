/*
 * test_engine.c - Check suite for engine/: behaviour tests of the matching
 * engine against the rules written in engine/engine.h ("THE RULES" 0-11).
 *
 * Every test drives a fresh engine through engine_apply(), records every
 * event the sink receives, and asserts exact events (type, order, reason,
 * quantities, prices) and the resulting state. After every command the
 * apply helper asserts engine_verify() == NULL.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"


#define USD(x) ((px_t)(x) * PX_SCALE)
#define USD_HALF(x) ((px_t)(x) * PX_SCALE + PX_SCALE / 2)
#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

#define XBT 0
#define ETH 1

/* ---- per-test context ---------------------------------------------------- */

#define FILLS_MAX 64

struct ctx {
    struct engine *e;
    struct engine_config cfg;
    struct engine_hooks hooks;
    struct event *ev;
    size_t n, cap;
    size_t mark; /* index of the first event of the last batch */
    uint64_t seq;
    ms_t ts;
    /* hook state */
    enum reject admit_result;
    int admit_calls;
    int fill_calls;
    struct event fill_maker[FILLS_MAX], fill_taker[FILLS_MAX];
    size_t fill_at[FILLS_MAX]; /* events recorded when on_fill was called */
    px_t bound;
    struct order_view admitted; /* the last view the admit hook saw */
    int bound_calls;
    uint32_t bound_account;
    uint16_t bound_inst;
    uint8_t bound_side;
};

static struct ctx T;

static void sink(void *p, const struct event *ev)
{
    struct ctx *c = p;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->ev = realloc(c->ev, c->cap * sizeof(*c->ev));
        ck_assert_ptr_nonnull(c->ev);
    }
    memcpy(&c->ev[c->n++], ev, sizeof(*ev));
}

static enum reject hook_admit(void *p, const struct order_view *o)
{
    struct ctx *c = p;
    c->admit_calls++;
    c->admitted = *o;
    return c->admit_result;
}

static void hook_on_fill(void *p, const struct event *maker, const struct event *taker)
{
    struct ctx *c = p;
    if (c->fill_calls < FILLS_MAX) {
        c->fill_maker[c->fill_calls] = *maker;
        c->fill_taker[c->fill_calls] = *taker;
        c->fill_at[c->fill_calls] = c->n;
    }
    c->fill_calls++;
}

static px_t hook_bound(void *p, uint32_t account, uint16_t inst, uint8_t side)
{
    struct ctx *c = p;
    c->bound_calls++;
    c->bound_account = account;
    c->bound_inst = inst;
    c->bound_side = side;
    return c->bound;
}

static void default_config(struct engine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->orders_max = 1000;
    cfg->accounts_max = 16;
    cfg->stops_max = 64;
    cfg->open_orders_max = 200;
    cfg->stop_orders_max = 10;
    cfg->stp = STP_ALLOW;
    cfg->instruments_count = 2;
    strcpy(cfg->instruments[0].symbol, "XBTUSD");
    cfg->instruments[0].tick_px = PX_SCALE / 2;
    cfg->instruments[0].max_px = USD(1000000);
    cfg->instruments[0].lot_qty = 1;
    cfg->instruments[0].max_order_qty = 10000000;
    strcpy(cfg->instruments[1].symbol, "ETHUSD");
    cfg->instruments[1].tick_px = PX_SCALE / 20;
    cfg->instruments[1].max_px = USD(100000);
    cfg->instruments[1].lot_qty = 1;
    cfg->instruments[1].max_order_qty = 10000000;
}

static void start(const struct engine_config *cfg)
{
    if (T.e)
        engine_destroy(T.e);
    free(T.ev);
    memset(&T, 0, sizeof(T));
    T.cfg = *cfg;
    T.hooks.ctx = &T;
    T.hooks.admit = hook_admit;
    T.hooks.on_fill = hook_on_fill;
    T.hooks.market_bound = hook_bound;
    T.ts = T0;
    const char *err = NULL;
    T.e = engine_create(&T.cfg, sink, &T, &T.hooks, &err);
    ck_assert_msg(T.e != NULL, "engine_create: %s", err ? err : "?");
    /* Rule 0 runs before validation: the first command sets the engine's
     * day boundary (hashed state). Start every test past that, so that a
     * rejected command leaves the hash unchanged. */
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CLOCK;
    c.seq = ++T.seq;
    c.ts = T.ts;
    ck_assert_int_eq(engine_apply(T.e, &c), REJ_NONE);
    ck_assert_uint_eq(T.n, 0);
}

static void start_stp(enum stp_mode m)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.stp = m;
    start(&cfg);
}

static void setup(void)
{
    struct engine_config cfg;
    default_config(&cfg);
    start(&cfg);
}

static void teardown(void)
{
    if (T.e)
        engine_destroy(T.e);
    free(T.ev);
    memset(&T, 0, sizeof(T));
}

/* ---- commands -------------------------------------------------------------- */

/* Applies c as given (seq/ts untouched); checks the invariants. */
static enum reject apply_raw(const struct cmd *c)
{
    T.mark = T.n;
    enum reject r = engine_apply(T.e, c);
    const char *v = engine_verify(T.e);
    ck_assert_msg(v == NULL, "engine_verify after seq %" PRIu64 ": %s", c->seq, v);
    return r;
}

/* Stamps the next seq and the current ts, then applies. */
static enum reject apply(struct cmd *c)
{
    c->seq = ++T.seq;
    c->ts = T.ts;
    return apply_raw(c);
}

static void advance(ms_t ms) { T.ts += ms; }

static struct cmd new_order(uint32_t acct, uint16_t inst, uint8_t side, qty_t qty)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_NEW_ORDER;
    c.account = acct;
    c.inst = inst;
    c.u.new_order.side = side;
    c.u.new_order.qty = qty;
    c.u.new_order.has = HAS_QTY;
    return c;
}

static struct cmd limit(uint32_t acct, uint8_t side, qty_t qty, px_t px)
{
    struct cmd c = new_order(acct, XBT, side, qty);
    c.u.new_order.ord_type = ORD_LIMIT;
    c.u.new_order.has |= HAS_PRICE;
    c.u.new_order.price = px;
    return c;
}

static struct cmd market(uint32_t acct, uint8_t side, qty_t qty)
{
    struct cmd c = new_order(acct, XBT, side, qty);
    c.u.new_order.ord_type = ORD_MARKET;
    return c;
}

/* Stop, MarketIfTouched (stop_px only) or StopLimit, LimitIfTouched (px too). */
static struct cmd stop(uint32_t acct, uint8_t type, uint8_t side, qty_t qty, px_t stop_px, px_t px)
{
    struct cmd c = new_order(acct, XBT, side, qty);
    c.u.new_order.ord_type = type;
    c.u.new_order.has |= HAS_STOP_PX;
    c.u.new_order.stop_px = stop_px;
    if (px) {
        c.u.new_order.has |= HAS_PRICE;
        c.u.new_order.price = px;
    }
    return c;
}

static struct cmd with_exec(struct cmd c, uint16_t exec_inst)
{
    c.u.new_order.exec_inst = exec_inst;
    return c;
}

static struct cmd with_tif(struct cmd c, uint8_t tif)
{
    c.u.new_order.tif = tif;
    return c;
}

static struct cmd with_clordid(struct cmd c, const char *id)
{
    strcpy(c.u.new_order.clordid, id);
    return c;
}

static struct cmd amend_id(uint32_t acct, uint64_t id)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_AMEND;
    c.account = acct;
    c.u.amend.ref.order_id = id;
    return c;
}

static struct cmd cancel_id(uint32_t acct, uint64_t id)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CANCEL;
    c.account = acct;
    c.u.cancel.order_id = id;
    return c;
}

static struct cmd cancel_clordid(uint32_t acct, const char *clordid)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CANCEL;
    c.account = acct;
    strcpy(c.u.cancel.clordid, clordid);
    return c;
}

static struct cmd cancel_all(uint32_t acct, uint16_t inst, uint8_t side)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CANCEL_ALL;
    c.account = acct;
    c.u.cancel_all.inst = inst;
    c.u.cancel_all.side = side;
    return c;
}

static struct cmd cancel_after(uint32_t acct, int64_t ms)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CANCEL_ALL_AFTER;
    c.account = acct;
    c.u.cancel_after_ms = ms;
    return c;
}

static struct cmd set_price(uint16_t inst, uint8_t src, px_t px)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_SET_PRICE;
    c.inst = inst;
    c.u.set_price.source = src;
    c.u.set_price.price = px;
    return c;
}

static struct cmd clock_cmd(void)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CLOCK;
    return c;
}

/* ---- reading the last batch ------------------------------------------------ */

static size_t nb(void) { return T.n - T.mark; }

static const struct event *bev(size_t i)
{
    ck_assert_msg(i < nb(), "batch has %zu events, wanted #%zu", nb(), i);
    return &T.ev[T.mark + i];
}

/* The n-th (0-based) event of a type in the last batch, or NULL. */
static const struct event *nth(uint8_t type, int n)
{
    for (size_t i = T.mark; i < T.n; i++)
        if (T.ev[i].type == type && n-- == 0)
            return &T.ev[i];
    return NULL;
}

static const struct event *must(uint8_t type, int n)
{
    const struct event *e = nth(type, n);
    ck_assert_msg(e != NULL, "no event #%d of type %d in the batch (%zu events)", n, type, nb());
    return e;
}

static int count(uint8_t type)
{
    int k = 0;
    for (size_t i = T.mark; i < T.n; i++)
        k += T.ev[i].type == type;
    return k;
}

/* Asserts the batch's event types are exactly the list (terminated by 0). */
static void expect_types(const uint8_t *types)
{
    size_t k = 0;
    while (types[k])
        k++;
    char got[512] = "";
    for (size_t i = T.mark; i < T.n; i++) {
        char b[8];
        snprintf(b, sizeof(b), "%d ", T.ev[i].type);
        strncat(got, b, sizeof(got) - strlen(got) - 1);
    }
    ck_assert_msg(nb() == k, "batch has %zu events, expected %zu (got types: %s)", nb(), k, got);
    for (size_t i = 0; i < k; i++)
        ck_assert_msg(T.ev[T.mark + i].type == types[i], "event #%zu type %d, expected %d (got types: %s)",
                      i, T.ev[T.mark + i].type, types[i], got);
}
#define EXPECT(...) expect_types((const uint8_t[]){__VA_ARGS__, 0})

/* Applies an order that must be accepted; returns its id (from EV_NEW). */
static uint64_t place(struct cmd c)
{
    enum reject r = apply(&c);
    ck_assert_msg(r == REJ_NONE, "order rejected: %s", engine_reject_name(r));
    return must(EV_NEW, 0)->order.id;
}

static uint64_t place_limit(uint32_t acct, uint8_t side, qty_t qty, px_t px)
{
    return place(limit(acct, side, qty, px));
}

/* A rejected command: exactly one EV_REJECTED with the reason, state unchanged. */
static void expect_reject(struct cmd c, enum reject why)
{
    uint64_t h = engine_hash(T.e);
    uint32_t live = engine_orders_live(T.e);
    enum reject r = apply(&c);
    ck_assert_msg(r == why, "got %s, expected %s", engine_reject_name(r), engine_reject_name(why));
    ck_assert_uint_eq(nb(), 1);
    ck_assert_int_eq(bev(0)->type, EV_REJECTED);
    ck_assert_int_eq(bev(0)->reason, why);
    ck_assert_uint_eq(engine_hash(T.e), h);
    ck_assert_uint_eq(engine_orders_live(T.e), live);
}

static struct order_view order_of(uint64_t id)
{
    struct order_view o;
    memset(&o, 0, sizeof(o));
    ck_assert_msg(engine_order(T.e, id, &o), "order %" PRIu64 " not found", id);
    return o;
}

static int order_live(uint64_t id)
{
    struct order_view o;
    return engine_order(T.e, id, &o) && (o.status == ST_NEW || o.status == ST_PARTIALLY_FILLED);
}

/* Visible size at a price on one side (0 when absent). */
static qty_t level_size(uint16_t inst, uint8_t side, px_t px)
{
    px_t p[64];
    qty_t s[64];
    uint32_t n = engine_levels(T.e, inst, side, 64, p, s);
    for (uint32_t i = 0; i < n; i++)
        if (p[i] == px)
            return s[i];
    return 0;
}

static void expect_fill(const struct event *ev, uint64_t id, qty_t qty, px_t px, int maker)
{
    ck_assert_int_eq(ev->type, EV_FILL);
    ck_assert_uint_eq(ev->order.id, id);
    ck_assert_int_eq(ev->u.fill.last_qty, qty);
    ck_assert_int_eq(ev->u.fill.last_px, px);
    ck_assert_int_eq(ev->u.fill.maker, maker);
}

static void expect_level(const struct event *ev, uint8_t side, px_t px, qty_t before, qty_t after)
{
    ck_assert_int_eq(ev->type, EV_LEVEL);
    ck_assert_int_eq(ev->u.level.side, side);
    ck_assert_int_eq(ev->u.level.px, px);
    ck_assert_int_eq(ev->u.level.size_before, before);
    ck_assert_int_eq(ev->u.level.size, after);
}

static void expect_canceled(const struct event *ev, uint64_t id, enum cancel_reason why)
{
    ck_assert_int_eq(ev->type, EV_CANCELED);
    ck_assert_uint_eq(ev->order.id, id);
    ck_assert_msg(ev->reason == why, "cancel reason %s, expected %s",
                  engine_cancel_name((enum cancel_reason)ev->reason), engine_cancel_name(why));
    ck_assert_int_eq(ev->order.status, ST_CANCELED);
    ck_assert_int_eq(ev->order.leaves, 0);
}

/* ==== price-time priority ================================================== */

START_TEST(resting_limit_emits_new_and_level)
{
    struct cmd c = limit(1, SIDE_BUY, 100, USD(50000));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_LEVEL);
    const struct event *n = bev(0);
    ck_assert_uint_eq(n->order.id, 1);
    ck_assert_int_eq(n->order.side, SIDE_BUY);
    ck_assert_int_eq(n->order.ord_type, ORD_LIMIT);
    ck_assert_int_eq(n->order.tif, TIF_GTC);
    ck_assert_int_eq(n->order.status, ST_NEW);
    ck_assert_int_eq(n->order.leaves, 100);
    ck_assert_int_eq(n->order.working, 1);
    expect_level(bev(1), SIDE_BUY, USD(50000), 0, 100);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), USD(50000));
    ck_assert_int_eq(level_size(XBT, SIDE_BUY, USD(50000)), 100);
}
END_TEST

START_TEST(fifo_within_a_level)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(3, SIDE_BUY, 15, USD(50000));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(1), a, 10, USD(50000), 1);
    expect_fill(bev(2), 3, 10, USD(50000), 0);
    expect_level(bev(4), SIDE_SELL, USD(50000), 20, 10);
    expect_fill(bev(5), b, 5, USD(50000), 1);
    expect_fill(bev(6), 3, 5, USD(50000), 0);
    expect_level(bev(8), SIDE_SELL, USD(50000), 10, 5);
    ck_assert_int_eq(bev(1)->order.status, ST_FILLED);
    ck_assert_int_eq(bev(1)->order.leaves, 0);
    ck_assert_int_eq(bev(1)->order.cum, 10);
    ck_assert(!order_live(a)); /* a filled order leaves the engine */
    ck_assert_int_eq(order_of(b).leaves, 5);
    ck_assert_int_eq(order_of(b).status, ST_PARTIALLY_FILLED);
    ck_assert_int_eq(engine_position(T.e, 3, XBT), 15);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), -10);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), -5);
}
END_TEST

START_TEST(better_price_fills_first)
{
    uint64_t worse = place_limit(1, SIDE_SELL, 10, USD(50001));
    uint64_t better = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(3, SIDE_BUY, 10, USD(50001));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(1), better, 10, USD(50000), 1);
    expect_level(bev(4), SIDE_SELL, USD(50000), 10, 0);
    ck_assert_int_eq(order_of(worse).leaves, 10);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), USD(50001));
}
END_TEST

START_TEST(trade_id_shared_by_both_fills_and_trade)
{
    uint64_t m = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 4, USD(50000));
    apply(&c);
    const struct event *fm = must(EV_FILL, 0), *ft = must(EV_FILL, 1), *tr = must(EV_TRADE, 0);
    ck_assert_uint_ne(fm->u.fill.trade_id, 0);
    ck_assert_uint_eq(fm->u.fill.trade_id, ft->u.fill.trade_id);
    ck_assert_uint_eq(fm->u.fill.trade_id, tr->u.trade.trade_id);
    ck_assert_uint_eq(tr->u.trade.maker_order_id, m);
    ck_assert_uint_eq(tr->u.trade.taker_order_id, 2);
    ck_assert_uint_eq(tr->u.trade.maker_account, 1);
    ck_assert_uint_eq(tr->u.trade.taker_account, 2);
    ck_assert_int_eq(tr->u.trade.qty, 4);
    ck_assert_int_eq(tr->u.trade.px, USD(50000));
    ck_assert_int_eq(tr->u.trade.taker_side, SIDE_BUY);
    ck_assert_int_eq(fm->u.fill.maker, 1);
    ck_assert_int_eq(ft->u.fill.maker, 0);
    ck_assert_int_eq(fm->u.fill.pays_taker, 0); /* a visible maker pays maker */
    ck_assert_int_eq(ft->u.fill.pays_taker, 1);
    ck_assert_uint_eq(fm->account, 1);
    ck_assert_uint_eq(ft->account, 2);
    uint64_t first = tr->u.trade.trade_id;
    c = limit(3, SIDE_BUY, 1, USD(50000));
    apply(&c);
    ck_assert_uint_ne(must(EV_TRADE, 0)->u.trade.trade_id, first);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), USD(50000));
}
END_TEST

START_TEST(bad_sequence_is_rejected)
{
    struct cmd c = limit(1, SIDE_BUY, 1, USD(100));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    uint64_t h = engine_hash(T.e);
    c = limit(1, SIDE_BUY, 1, USD(100));
    c.seq = T.seq; /* same seq again */
    c.ts = T.ts;
    ck_assert_int_eq(apply_raw(&c), REJ_BAD_SEQUENCE);
    ck_assert_uint_eq(nb(), 1);
    ck_assert_int_eq(bev(0)->reason, REJ_BAD_SEQUENCE);
    ck_assert_uint_eq(engine_hash(T.e), h);
    c.seq = T.seq + 1;
    c.ts = T.ts - 1; /* ts going back */
    ck_assert_int_eq(apply_raw(&c), REJ_BAD_SEQUENCE);
    ck_assert_uint_eq(nb(), 1);
    ck_assert_int_eq(bev(0)->type, EV_REJECTED);
    ck_assert_uint_eq(engine_hash(T.e), h);
    ck_assert_uint_eq(engine_orders_live(T.e), 1);
}
END_TEST

START_TEST(partial_fill_keeps_time_priority)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(3, SIDE_BUY, 4, USD(50000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), a, 4, USD(50000), 1);
    ck_assert_int_eq(order_of(a).leaves, 6);
    /* a was partly filled; it is still first in the queue */
    c = limit(4, SIDE_BUY, 7, USD(50000));
    apply(&c);
    ck_assert_int_eq(count(EV_TRADE), 2);
    expect_fill(must(EV_FILL, 0), a, 6, USD(50000), 1);
    expect_fill(must(EV_FILL, 2), b, 1, USD(50000), 1);
    ck_assert_int_eq(order_of(b).leaves, 9);
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 9);
}
END_TEST

START_TEST(multi_level_sweep_rests_remainder)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(1, SIDE_SELL, 20, USD_HALF(50000));
    uint64_t c3 = place_limit(2, SIDE_SELL, 30, USD(50002));
    struct cmd c = limit(3, SIDE_BUY, 40, USD(50001));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_LEVEL);
    expect_fill(bev(1), a, 10, USD(50000), 1);
    expect_level(bev(4), SIDE_SELL, USD(50000), 10, 0);
    expect_fill(bev(5), b, 20, USD_HALF(50000), 1);
    expect_fill(bev(6), 4, 20, USD_HALF(50000), 0);
    ck_assert_int_eq(bev(6)->order.leaves, 10);
    ck_assert_int_eq(bev(6)->order.cum, 30);
    ck_assert_int_eq(bev(6)->order.status, ST_PARTIALLY_FILLED);
    expect_level(bev(8), SIDE_SELL, USD_HALF(50000), 20, 0);
    expect_level(bev(9), SIDE_BUY, USD(50001), 0, 10);
    ck_assert_int_eq(order_of(c3).leaves, 30);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), USD(50001));
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), USD(50002));
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), USD_HALF(50000));
    ck_assert_int_eq(engine_position(T.e, 3, XBT), 30);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), -30);
}
END_TEST

/* The id index places an order by id & mask (idmap.c); an order still live
 * when the id mask + 1 later comes up sends that id to the overflow table.
 * With orders_max 8 the index has 16 places: ids 17, 33, 49 find place 1
 * taken by order 1, ids 18, 34, 50 place 2 taken by order 2. Orders in
 * either table must be found, amended and canceled by id, and the ids of
 * finished ones must answer "terminal" (engine_verify, after every command
 * here, also checks the overflow count against the live orders). */
START_TEST(orders_outliving_their_id_place_are_still_found)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.orders_max = 8;
    cfg.open_orders_max = 8;
    start(&cfg);
    uint64_t old = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t old2 = place_limit(2, SIDE_SELL, 10, USD(50001));
    ck_assert_uint_eq(old, 1);
    ck_assert_uint_eq(old2, 2);
    uint64_t kept[3];
    int k = 0;
    for (int i = 0; i < 48; i++) {
        uint64_t id = place_limit(3, SIDE_BUY, 1, USD(40000) + i * PX_SCALE);
        if (id == 17 || id == 34 || id == 49) {
            kept[k++] = id;
            continue;
        }
        struct cmd c = cancel_id(3, id);
        ck_assert_int_eq(apply(&c), REJ_NONE);
        expect_reject(cancel_id(3, id), REJ_ORDER_TERMINAL);
    }
    ck_assert_int_eq(k, 3);
    ck_assert_uint_eq(engine_orders_live(T.e), 5);
    ck_assert_int_eq(order_of(old).leaves, 10);
    ck_assert_int_eq(order_of(old2).leaves, 10);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(order_of(kept[i]).leaves, 1);
    /* amend one in the overflow table, then cancel the direct one first */
    struct cmd c = amend_id(3, kept[1]);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 2;
    ck_assert_int_eq(apply(&c), REJ_NONE);
    ck_assert_int_eq(order_of(kept[1]).leaves, 2);
    c = cancel_id(1, old);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    ck_assert(!order_live(old));
    ck_assert_int_eq(order_of(kept[0]).leaves, 1);
    ck_assert_int_eq(order_of(kept[2]).leaves, 1);
    /* another account cannot reach it through either table */
    expect_reject(cancel_id(1, kept[0]), REJ_NOT_FOUND);
    for (int i = 0; i < 3; i++) {
        c = cancel_id(3, kept[i]);
        ck_assert_int_eq(apply(&c), REJ_NONE);
        expect_reject(cancel_id(3, kept[i]), REJ_ORDER_TERMINAL);
    }
    /* place 1 is free again: id 65 takes it directly */
    for (uint64_t id = 51; id <= 65; id++) {
        ck_assert_uint_eq(place_limit(3, SIDE_BUY, 1, USD(30000)), id);
        if (id < 65) {
            c = cancel_id(3, id);
            ck_assert_int_eq(apply(&c), REJ_NONE);
        }
    }
    ck_assert_int_eq(order_of(65).leaves, 1);
    ck_assert_int_eq(order_of(old2).leaves, 10);
    ck_assert_uint_eq(engine_orders_live(T.e), 2);
    expect_reject(cancel_id(3, 66), REJ_NOT_FOUND);
}
END_TEST

/* engine_prefetch is a hint: with any command, valid or not, at either
 * stage, it changes nothing and reads only inside the engine's tables
 * (the ASan build checks the reads), and stage 1 names the order's slot. */
START_TEST(prefetch_hints_change_nothing)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t h = engine_hash(T.e);
    struct cmd cs[8];
    cs[0] = cancel_id(1, a);
    cs[1] = cancel_id(1, UINT64_MAX);
    cs[2] = limit(1, SIDE_BUY, 5, USD(50000));
    cs[3] = limit(1, SIDE_BUY, 5, INT64_MAX);
    cs[4] = limit(1, SIDE_BUY, 5, -1);
    cs[5] = amend_id(UINT32_MAX, a);
    cs[6] = limit(2, SIDE_BUY, 5, USD(1));
    cs[6].inst = UINT16_MAX;
    cs[7] = market(3, SIDE_SELL, 1);
    for (int k = 0; k < 8; k++) {
        engine_prefetch(T.e, &cs[k], 0);
        uint32_t slot = engine_prefetch(T.e, &cs[k], 1);
        if (k == 0)
            ck_assert_uint_eq(slot, order_of(a).slot);
        else if (k != 5)
            ck_assert_uint_eq(slot, ENGINE_NIL);
    }
    ck_assert_uint_eq(engine_hash(T.e), h);
    ck_assert_ptr_null(engine_verify(T.e));
}
END_TEST

START_TEST(level_event_reports_size_before_and_after)
{
    struct cmd c = limit(1, SIDE_BUY, 5, USD(49000));
    apply(&c);
    expect_level(must(EV_LEVEL, 0), SIDE_BUY, USD(49000), 0, 5);
    c = limit(2, SIDE_BUY, 7, USD(49000));
    apply(&c);
    expect_level(must(EV_LEVEL, 0), SIDE_BUY, USD(49000), 5, 12);
    c = cancel_id(1, 1);
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), 1, CXL_USER);
    expect_level(bev(1), SIDE_BUY, USD(49000), 12, 7);
    c = cancel_id(2, 2);
    apply(&c);
    expect_level(must(EV_LEVEL, 0), SIDE_BUY, USD(49000), 7, 0);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
}
END_TEST

START_TEST(market_walks_book_and_remainder_is_canceled)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 5, USD(50100));
    struct cmd c = market(3, SIDE_BUY, 20);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    ck_assert_int_eq(bev(0)->order.ord_type, ORD_MARKET);
    ck_assert_int_eq(bev(0)->order.tif, TIF_IOC);
    ck_assert_int_eq(bev(0)->order.price, 0);
    expect_fill(bev(1), a, 10, USD(50000), 1);
    expect_fill(bev(5), b, 5, USD(50100), 1);
    expect_canceled(bev(9), 3, CXL_MARKET);
    ck_assert_int_eq(bev(9)->order.cum, 15);
    ck_assert_int_eq(engine_position(T.e, 3, XBT), 15);
    ck_assert_int_eq(engine_orders_live(T.e), 0);
}
END_TEST

START_TEST(market_on_empty_book_is_canceled_market)
{
    struct cmd c = market(3, SIDE_SELL, 20);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 1, CXL_MARKET);
    ck_assert_int_eq(bev(1)->order.cum, 0);
}
END_TEST

START_TEST(ioc_remainder_is_canceled)
{
    place_limit(1, SIDE_BUY, 10, USD(50000));
    struct cmd c = limit(2, SIDE_SELL, 25, USD(50000));
    c.u.new_order.tif = TIF_IOC;
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    ck_assert_int_eq(bev(0)->order.tif, TIF_IOC);
    expect_fill(bev(2), 2, 10, USD(50000), 0);
    expect_canceled(bev(5), 2, CXL_IOC);
    ck_assert_int_eq(bev(5)->order.cum, 10);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), 0);
    ck_assert_int_eq(engine_orders_live(T.e), 0);
}
END_TEST

START_TEST(fok_short_of_liquidity_fills_nothing)
{
    uint64_t a = place_limit(1, SIDE_BUY, 10, USD(50000));
    place_limit(1, SIDE_BUY, 10, USD(49000));
    struct cmd c = limit(2, SIDE_SELL, 21, USD(49000));
    c.u.new_order.tif = TIF_FOK;
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 3, CXL_FOK);
    ck_assert_int_eq(order_of(a).leaves, 10);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
    /* exactly enough fills whole */
    c = limit(2, SIDE_SELL, 20, USD(49000));
    c.u.new_order.tif = TIF_FOK;
    apply(&c);
    ck_assert_int_eq(count(EV_TRADE), 2);
    ck_assert_int_eq(count(EV_CANCELED), 0);
    ck_assert_int_eq(must(EV_FILL, 3)->order.status, ST_FILLED);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), -20);
}
END_TEST

START_TEST(gtc_rests_after_partial_fill)
{
    place_limit(1, SIDE_BUY, 10, USD(50000));
    struct cmd c = limit(2, SIDE_SELL, 25, USD(50000));
    c.u.new_order.tif = TIF_GTC;
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_LEVEL);
    expect_level(bev(4), SIDE_BUY, USD(50000), 10, 0);
    expect_level(bev(5), SIDE_SELL, USD(50000), 0, 15);
    struct order_view o = order_of(2);
    ck_assert_int_eq(o.leaves, 15);
    ck_assert_int_eq(o.cum, 10);
    ck_assert_int_eq(o.status, ST_PARTIALLY_FILLED);
}
END_TEST

/* ==== stops and triggers ==================================================== */

START_TEST(untriggered_stop_waits_outside_the_book)
{
    struct cmd c = stop(2, ORD_STOP, SIDE_SELL, 5, USD(49500), 0);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW);
    ck_assert_int_eq(bev(0)->order.ord_type, ORD_STOP);
    ck_assert_int_eq(bev(0)->order.tif, TIF_IOC);
    ck_assert_int_eq(bev(0)->order.working, 0);
    ck_assert_int_eq(bev(0)->order.triggered, 0);
    ck_assert_int_eq(bev(0)->order.stop_px, USD(49500));
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), 0);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
    struct order_view o = order_of(1);
    ck_assert_int_eq(o.working, 0);
    ck_assert_int_eq(o.status, ST_NEW);
}
END_TEST

START_TEST(stop_market_triggers_on_mark_and_trades)
{
    uint64_t bid = place_limit(1, SIDE_BUY, 10, USD(49000));
    uint64_t s = place(stop(2, ORD_STOP, SIDE_SELL, 5, USD(49500), 0));
    struct cmd c = set_price(XBT, SRC_MARK, USD(49600));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_PRICE);
    ck_assert_int_eq(bev(0)->u.price.source, SRC_MARK);
    ck_assert_int_eq(bev(0)->u.price.price, USD(49600));
    ck_assert_int_eq(order_of(s).triggered, 0);
    c = set_price(XBT, SRC_MARK, USD(49500)); /* ref <= stopPx: fires down */
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, s);
    ck_assert_int_eq(bev(1)->order.triggered, 1);
    ck_assert_int_eq(bev(1)->order.working, 1);
    expect_fill(bev(2), bid, 5, USD(49000), 1);
    expect_fill(bev(3), s, 5, USD(49000), 0);
    ck_assert_int_eq(bev(3)->order.status, ST_FILLED);
    expect_level(bev(5), SIDE_BUY, USD(49000), 10, 5);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), -5);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_MARK), USD(49500));
}
END_TEST

START_TEST(stop_limit_triggers_then_rests_remainder)
{
    uint64_t ask = place_limit(1, SIDE_SELL, 4, USD(50500));
    uint64_t s = place(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 10, USD(51000), USD(51000)));
    ck_assert_int_eq(order_of(s).tif, TIF_GTC);
    ck_assert_int_eq(order_of(s).working, 0);
    struct cmd c = set_price(XBT, SRC_MARK, USD_HALF(50999));
    apply(&c);
    EXPECT(EV_PRICE);
    c = set_price(XBT, SRC_MARK, USD(51200)); /* ref >= stopPx: fires up */
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_LEVEL);
    expect_fill(bev(2), ask, 4, USD(50500), 1);
    expect_fill(bev(3), s, 4, USD(50500), 0);
    expect_level(bev(5), SIDE_SELL, USD(50500), 4, 0);
    expect_level(bev(6), SIDE_BUY, USD(51000), 0, 6);
    struct order_view o = order_of(s);
    ck_assert_int_eq(o.ord_type, ORD_STOP_LIMIT);
    ck_assert_int_eq(o.leaves, 6);
    ck_assert_int_eq(o.working, 1);
    ck_assert_int_eq(o.triggered, 1);
}
END_TEST

START_TEST(market_if_touched_buy_fires_when_price_falls)
{
    uint64_t ask = place_limit(1, SIDE_SELL, 10, USD(48000));
    uint64_t m = place(stop(2, ORD_MARKET_IF_TOUCHED, SIDE_BUY, 3, USD(48500), 0));
    ck_assert_int_eq(order_of(m).tif, TIF_IOC);
    struct cmd c = set_price(XBT, SRC_MARK, USD(49000));
    apply(&c);
    EXPECT(EV_PRICE);
    c = set_price(XBT, SRC_MARK, USD(48500));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(2), ask, 3, USD(48000), 1);
    expect_fill(bev(3), m, 3, USD(48000), 0);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 3);
}
END_TEST

START_TEST(limit_if_touched_sell_fires_when_price_rises)
{
    uint64_t l = place(stop(2, ORD_LIMIT_IF_TOUCHED, SIDE_SELL, 8, USD(52000), USD(52500)));
    ck_assert_int_eq(order_of(l).tif, TIF_GTC);
    struct cmd c = set_price(XBT, SRC_MARK, USD_HALF(51999));
    apply(&c);
    EXPECT(EV_PRICE);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), 0);
    c = set_price(XBT, SRC_MARK, USD(52000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_LEVEL);
    expect_level(bev(2), SIDE_SELL, USD(52500), 0, 8);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), USD(52500));
    ck_assert_int_eq(order_of(l).working, 1);
}
END_TEST

START_TEST(index_price_stop_ignores_mark)
{
    uint64_t s = place(with_exec(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(50000), USD(50000)), EXEC_INDEX_PRICE));
    struct cmd c = set_price(XBT, SRC_MARK, USD(60000));
    apply(&c);
    EXPECT(EV_PRICE);
    ck_assert_int_eq(order_of(s).triggered, 0);
    c = set_price(XBT, SRC_INDEX, USD(50000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_LEVEL);
    ck_assert_int_eq(bev(0)->u.price.source, SRC_INDEX);
    ck_assert_uint_eq(bev(1)->order.id, s);
    expect_level(bev(2), SIDE_BUY, USD(50000), 0, 1);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_INDEX), USD(50000));
}
END_TEST

START_TEST(last_price_stop_fires_on_a_trade_in_the_same_command)
{
    uint64_t b1 = place_limit(1, SIDE_BUY, 10, USD(49500));
    place_limit(3, SIDE_BUY, 10, USD(49000));
    uint64_t s = place(with_exec(stop(2, ORD_STOP, SIDE_SELL, 5, USD(49500), 0), EXEC_LAST_PRICE));
    struct cmd c = set_price(XBT, SRC_MARK, USD(40000)); /* mark does not matter */
    apply(&c);
    EXPECT(EV_PRICE);
    c = market(4, SIDE_SELL, 1);
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_level(bev(4), SIDE_BUY, USD(49500), 10, 9);
    ck_assert_uint_eq(bev(5)->order.id, s);
    expect_fill(bev(6), b1, 5, USD(49500), 1);
    expect_fill(bev(7), s, 5, USD(49500), 0);
    expect_level(bev(9), SIDE_BUY, USD(49500), 9, 4);
}
END_TEST

START_TEST(last_within_mark_needs_last_near_mark)
{
    /* sell StopLimit on last price at 49000, only when last >= 95% of mark */
    place_limit(1, SIDE_BUY, 10, USD(46000));
    place_limit(1, SIDE_BUY, 10, USD(45000));
    uint64_t s = place(with_exec(stop(2, ORD_STOP_LIMIT, SIDE_SELL, 1, USD(49000), USD(49000)), EXEC_LAST_PRICE | EXEC_LAST_WITHIN_MARK));
    struct cmd c = set_price(XBT, SRC_MARK, USD(50000));
    apply(&c);
    /* last 46000: 4,600,000 < 4,750,000 = 95% of mark: does not fire */
    c = market(3, SIDE_SELL, 1);
    apply(&c);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), USD(46000));
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    ck_assert_int_eq(order_of(s).triggered, 0);
    /* mark falls to 48000: last 46000 is 95.8% of it; fires */
    c = set_price(XBT, SRC_MARK, USD(48000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, s);
    expect_level(bev(2), SIDE_SELL, USD(49000), 0, 1);
}
END_TEST

START_TEST(stop_cascade_one_trade_triggers_another)
{
    place_limit(1, SIDE_BUY, 10, USD(49000));
    uint64_t b48 = place_limit(1, SIDE_BUY, 10, USD(48000));
    /* B (lower id) follows the last price, which does not exist yet */
    uint64_t b = place(with_exec(stop(2, ORD_STOP, SIDE_SELL, 5, USD(49000), 0), EXEC_LAST_PRICE));
    uint64_t a = place(stop(3, ORD_STOP, SIDE_SELL, 10, USD(49500), 0));
    ck_assert_uint_lt(b, a);
    struct cmd c = set_price(XBT, SRC_MARK, USD(49400));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_TRIGGERED, EV_FILL, EV_FILL,
           EV_TRADE, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, a);
    expect_fill(bev(3), a, 10, USD(49000), 0);
    expect_level(bev(5), SIDE_BUY, USD(49000), 10, 0);
    ck_assert_uint_eq(bev(6)->order.id, b);
    expect_fill(bev(7), b48, 5, USD(48000), 1);
    expect_fill(bev(8), b, 5, USD(48000), 0);
    expect_level(bev(10), SIDE_BUY, USD(48000), 10, 5);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), USD(48000));
}
END_TEST

START_TEST(stops_fired_together_activate_in_order_id)
{
    uint64_t s1 = place(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(50200), USD(49001)));
    uint64_t s2 = place(stop(3, ORD_STOP_LIMIT, SIDE_BUY, 2, USD(50100), USD(49002)));
    uint64_t s3 = place(stop(4, ORD_STOP_LIMIT, SIDE_BUY, 3, USD(50300), USD(49003)));
    uint64_t s4 = place(stop(5, ORD_STOP_LIMIT, SIDE_BUY, 4, USD(50400), USD(49004))); /* stays */
    struct cmd c = set_price(XBT, SRC_MARK, USD(50300));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_LEVEL, EV_TRIGGERED, EV_LEVEL, EV_TRIGGERED, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, s1);
    expect_level(bev(2), SIDE_BUY, USD(49001), 0, 1);
    ck_assert_uint_eq(bev(3)->order.id, s2);
    expect_level(bev(4), SIDE_BUY, USD(49002), 0, 2);
    ck_assert_uint_eq(bev(5)->order.id, s3);
    expect_level(bev(6), SIDE_BUY, USD(49003), 0, 3);
    ck_assert_int_eq(order_of(s4).triggered, 0);
    ck_assert_int_eq(order_of(s4).working, 0);
}
END_TEST

START_TEST(trailing_stop_follows_reference_one_way_and_fires_on_reversal)
{
    uint64_t bid = place_limit(1, SIDE_BUY, 10, USD(50000));
    struct cmd c = set_price(XBT, SRC_MARK, USD(50000) + PX_SCALE * 3 / 10); /* 50000.30 */
    apply(&c);
    c = new_order(2, XBT, SIDE_SELL, 4);
    c.u.new_order.ord_type = ORD_STOP;
    c.u.new_order.peg_type = PEG_TRAILING_STOP;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = -USD(100);
    uint64_t s = place(c);
    /* 49900.30 rounded to the tick away from the reference: 49900.0 */
    ck_assert_int_eq(order_of(s).stop_px, USD(49900));
    ck_assert_int_eq(order_of(s).peg_type, PEG_TRAILING_STOP);
    c = set_price(XBT, SRC_MARK, USD(50500));
    apply(&c);
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    ck_assert_int_eq(order_of(s).stop_px, USD(50400));
    c = set_price(XBT, SRC_MARK, USD(50450)); /* falls: stopPx stays */
    apply(&c);
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    ck_assert_int_eq(order_of(s).stop_px, USD(50400));
    c = set_price(XBT, SRC_MARK, USD(50400));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, s);
    expect_fill(bev(2), bid, 4, USD(50000), 1);
    expect_fill(bev(3), s, 4, USD(50000), 0);
}
END_TEST

START_TEST(trailing_stop_without_reference_is_rejected)
{
    struct cmd c = new_order(2, XBT, SIDE_SELL, 4);
    c.u.new_order.ord_type = ORD_STOP;
    c.u.new_order.peg_type = PEG_TRAILING_STOP;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = -USD(100);
    expect_reject(c, REJ_PEG_NO_REFERENCE);
    struct cmd p = set_price(XBT, SRC_MARK, USD(50000));
    apply(&p);
    c.u.new_order.peg_offset_px = USD(100); /* a sell stop trails below */
    expect_reject(c, REJ_INVALID_PEG_OFFSET);
}
END_TEST

START_TEST(primary_peg_fixed_prices_off_same_side_best)
{
    place_limit(1, SIDE_BUY, 10, USD(49000));
    place_limit(1, SIDE_SELL, 10, USD(51000));
    struct cmd c = new_order(2, XBT, SIDE_BUY, 5);
    c.u.new_order.peg_type = PEG_PRIMARY;
    c.u.new_order.exec_inst = EXEC_FIXED;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = -USD(1);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.ord_type, ORD_PEGGED);
    ck_assert_int_eq(bev(0)->order.tif, TIF_GTC);
    ck_assert_int_eq(bev(0)->order.price, USD(48999));
    expect_level(bev(1), SIDE_BUY, USD(48999), 0, 5);
    /* fixed: a better bid arriving later does not move it */
    place_limit(3, SIDE_BUY, 1, USD(49500));
    ck_assert_int_eq(order_of(3).price, USD(48999));
}
END_TEST

START_TEST(market_peg_fixed_prices_off_opposite_best_and_can_trade)
{
    uint64_t ask = place_limit(1, SIDE_SELL, 10, USD(51000));
    place_limit(1, SIDE_BUY, 10, USD(49000));
    struct cmd c = new_order(2, XBT, SIDE_BUY, 4);
    c.u.new_order.ord_type = ORD_PEGGED;
    c.u.new_order.peg_type = PEG_MARKET;
    c.u.new_order.exec_inst = EXEC_FIXED;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = 0;
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.price, USD(51000));
    expect_fill(bev(1), ask, 4, USD(51000), 1);
    /* a sell MarketPeg prices off the best bid */
    c = new_order(3, XBT, SIDE_SELL, 2);
    c.u.new_order.peg_type = PEG_MARKET;
    c.u.new_order.exec_inst = EXEC_FIXED;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = USD(5);
    apply(&c);
    EXPECT(EV_NEW, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.price, USD(49005));
    expect_level(bev(1), SIDE_SELL, USD(49005), 0, 2);
}
END_TEST

START_TEST(pegged_without_fixed_is_rejected_invalid_peg)
{
    place_limit(1, SIDE_BUY, 10, USD(49000));
    struct cmd c = new_order(2, XBT, SIDE_BUY, 5);
    c.u.new_order.peg_type = PEG_PRIMARY;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = -USD(1);
    expect_reject(c, REJ_INVALID_PEG);
}
END_TEST

START_TEST(pegged_with_no_reference_is_rejected)
{
    place_limit(1, SIDE_SELL, 10, USD(51000)); /* asks only: no best bid */
    struct cmd c = new_order(2, XBT, SIDE_BUY, 5);
    c.u.new_order.peg_type = PEG_PRIMARY;
    c.u.new_order.exec_inst = EXEC_FIXED;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = -USD(1);
    expect_reject(c, REJ_PEG_NO_REFERENCE);
    c.u.new_order.side = SIDE_SELL;
    c.u.new_order.peg_type = PEG_MARKET; /* sell MarketPeg needs a bid too */
    expect_reject(c, REJ_PEG_NO_REFERENCE);
}
END_TEST

/* ==== rule 2: defaults ======================================================== */

START_TEST(defaults_derive_type_and_tif_from_fields)
{
    struct cmd c = new_order(1, XBT, SIDE_BUY, 1);
    c.u.new_order.has |= HAS_PRICE;
    c.u.new_order.price = USD(40000);
    apply(&c);
    ck_assert_int_eq(must(EV_NEW, 0)->order.ord_type, ORD_LIMIT);
    ck_assert_int_eq(must(EV_NEW, 0)->order.tif, TIF_GTC);

    c = new_order(1, XBT, SIDE_BUY, 1);
    c.u.new_order.has |= HAS_STOP_PX;
    c.u.new_order.stop_px = USD(60000);
    apply(&c);
    ck_assert_int_eq(must(EV_NEW, 0)->order.ord_type, ORD_STOP);
    ck_assert_int_eq(must(EV_NEW, 0)->order.tif, TIF_IOC);
    ck_assert_int_eq(must(EV_NEW, 0)->order.working, 0);

    c = new_order(1, XBT, SIDE_BUY, 1);
    c.u.new_order.has |= HAS_STOP_PX | HAS_PRICE;
    c.u.new_order.stop_px = USD(60000);
    c.u.new_order.price = USD(60001);
    apply(&c);
    ck_assert_int_eq(must(EV_NEW, 0)->order.ord_type, ORD_STOP_LIMIT);
    ck_assert_int_eq(must(EV_NEW, 0)->order.tif, TIF_GTC);

    c = new_order(1, XBT, SIDE_BUY, 1); /* neither: Market */
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED);
    ck_assert_int_eq(bev(0)->order.ord_type, ORD_MARKET);
    ck_assert_int_eq(bev(0)->order.tif, TIF_IOC);
    ck_assert_int_eq(bev(1)->reason, CXL_MARKET);
}
END_TEST

START_TEST(side_defaults_from_sign_of_qty)
{
    struct cmd c = new_order(1, XBT, SIDE_NONE, -7);
    c.u.new_order.has |= HAS_PRICE;
    c.u.new_order.price = USD(60000);
    apply(&c);
    EXPECT(EV_NEW, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.side, SIDE_SELL);
    ck_assert_int_eq(bev(0)->order.qty, 7);
    ck_assert_int_eq(bev(0)->order.leaves, 7);
    expect_level(bev(1), SIDE_SELL, USD(60000), 0, 7);
    c = new_order(1, XBT, SIDE_NONE, 3);
    c.u.new_order.has |= HAS_PRICE;
    c.u.new_order.price = USD(40000);
    apply(&c);
    ck_assert_int_eq(must(EV_NEW, 0)->order.side, SIDE_BUY);
    ck_assert_int_eq(must(EV_NEW, 0)->order.qty, 3);
}
END_TEST

START_TEST(market_only_accepts_ioc)
{
    struct cmd c = with_tif(market(1, SIDE_BUY, 1), TIF_GTC);
    expect_reject(c, REJ_UNSUPPORTED_TIF);
    c = with_tif(stop(1, ORD_STOP, SIDE_BUY, 1, USD(60000), 0), TIF_DAY);
    expect_reject(c, REJ_UNSUPPORTED_TIF);
}
END_TEST

/* ==== TIF Day ============================================================ */

START_TEST(day_orders_expire_at_midnight_utc)
{
    advance(3600000); /* 01:00 */
    uint64_t d1 = place(with_tif(limit(1, SIDE_BUY, 5, USD(49000)), TIF_DAY));
    uint64_t g = place_limit(1, SIDE_BUY, 7, USD(49000));
    uint64_t d2 = place(with_tif(limit(2, SIDE_SELL, 3, USD(51000)), TIF_DAY));
    ck_assert_int_eq(order_of(d1).tif, TIF_DAY);
    T.ts = T0 + MS_PER_DAY - 1;
    struct cmd c = clock_cmd();
    ck_assert_int_eq(apply(&c), REJ_NONE);
    ck_assert_uint_eq(nb(), 0);
    T.ts = T0 + MS_PER_DAY;
    c = clock_cmd();
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), d1, CXL_DAY_EXPIRY);
    expect_level(bev(1), SIDE_BUY, USD(49000), 12, 7);
    expect_canceled(bev(2), d2, CXL_DAY_EXPIRY);
    expect_level(bev(3), SIDE_SELL, USD(51000), 3, 0);
    ck_assert(order_live(g));
    ck_assert_int_eq(engine_orders_live(T.e), 1);
}
END_TEST

START_TEST(day_expiry_runs_before_the_command_that_crosses_midnight)
{
    uint64_t d = place(with_tif(limit(1, SIDE_SELL, 5, USD(50000)), TIF_DAY));
    T.ts = T0 + 3 * MS_PER_DAY + 5; /* several days later */
    struct cmd c = limit(2, SIDE_BUY, 5, USD(50000));
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_NEW, EV_LEVEL);
    expect_canceled(bev(0), d, CXL_DAY_EXPIRY);
    ck_assert_int_eq(count(EV_FILL), 0);
    expect_level(bev(3), SIDE_BUY, USD(50000), 0, 5);
    /* a Day order placed today lives until the next midnight only */
    uint64_t d2 = place(with_tif(limit(1, SIDE_SELL, 1, USD(60000)), TIF_DAY));
    T.ts = T0 + 4 * MS_PER_DAY - 1;
    c = clock_cmd();
    apply(&c);
    ck_assert(order_live(d2));
    T.ts = T0 + 4 * MS_PER_DAY;
    c = clock_cmd();
    apply(&c);
    expect_canceled(must(EV_CANCELED, 0), d2, CXL_DAY_EXPIRY);
}
END_TEST

/* ==== execInst ============================================================= */

START_TEST(post_only_that_would_cross_is_canceled_not_rejected)
{
    uint64_t ask = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = with_exec(limit(2, SIDE_BUY, 5, USD(50000)), EXEC_POST_ONLY);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 2, CXL_POST_ONLY);
    ck_assert_int_eq(bev(1)->order.cum, 0);
    ck_assert_int_eq(order_of(ask).leaves, 10);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), 0);
    /* below the ask it rests */
    c = with_exec(limit(2, SIDE_BUY, 5, USD_HALF(49999)), EXEC_POST_ONLY);
    apply(&c);
    EXPECT(EV_NEW, EV_LEVEL);
    expect_level(bev(1), SIDE_BUY, USD_HALF(49999), 0, 5);
}
END_TEST

START_TEST(post_only_is_canceled_against_a_hidden_order_too)
{
    struct cmd h = limit(1, SIDE_SELL, 10, USD(50000));
    h.u.new_order.has |= HAS_DISPLAY_QTY;
    h.u.new_order.display_qty = 0;
    apply(&h);
    EXPECT(EV_NEW);
    struct cmd c = with_exec(limit(1, SIDE_BUY, 5, USD(50000)), EXEC_POST_ONLY); /* own order too */
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED);
    ck_assert_int_eq(bev(1)->reason, CXL_POST_ONLY);
}
END_TEST

/* account 2 buys 10 from account 1: long 10 */
static void make_long_10(void)
{
    place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 10, USD(50000));
    apply(&c);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 10);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), -10);
}

START_TEST(reduce_only_is_cut_to_the_position)
{
    make_long_10();
    struct cmd c = with_exec(limit(2, SIDE_SELL, 15, USD(51000)), EXEC_REDUCE_ONLY);
    apply(&c);
    EXPECT(EV_NEW, EV_RESTATED, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, 3);
    ck_assert_int_eq(bev(1)->order.leaves, 10);
    expect_level(bev(2), SIDE_SELL, USD(51000), 0, 10);
    ck_assert_int_eq(order_of(3).leaves, 10);
}
END_TEST

START_TEST(reduce_only_with_no_position_is_canceled)
{
    struct cmd c = with_exec(limit(5, SIDE_SELL, 5, USD(51000)), EXEC_REDUCE_ONLY);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 1, CXL_REDUCE_ONLY);
    /* and on the side that would increase the position */
    make_long_10();
    c = with_exec(limit(2, SIDE_BUY, 5, USD(49000)), EXEC_REDUCE_ONLY);
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED);
    ck_assert_int_eq(bev(1)->reason, CXL_REDUCE_ONLY);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
}
END_TEST

START_TEST(resting_reduce_only_shrinks_least_aggressive_first)
{
    make_long_10(); /* ids 1, 2 */
    uint64_t a = place(with_exec(limit(2, SIDE_SELL, 4, USD(51000)), EXEC_REDUCE_ONLY));
    uint64_t b = place(with_exec(limit(2, SIDE_SELL, 4, USD(52000)), EXEC_REDUCE_ONLY));
    uint64_t cc = place(with_exec(limit(2, SIDE_SELL, 2, USD(51500)), EXEC_REDUCE_ONLY));
    place_limit(3, SIDE_BUY, 5, USD(49000));
    struct cmd c = market(2, SIDE_SELL, 5); /* position 10 -> 5 */
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL, EV_RESTATED, EV_LEVEL);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 5);
    expect_canceled(bev(5), b, CXL_REDUCE_ONLY);
    expect_level(bev(6), SIDE_SELL, USD(52000), 4, 0);
    ck_assert_uint_eq(bev(7)->order.id, cc);
    ck_assert_int_eq(bev(7)->order.leaves, 1);
    expect_level(bev(8), SIDE_SELL, USD(51500), 2, 1);
    ck_assert_int_eq(order_of(a).leaves, 4);
    ck_assert_int_eq(order_of(cc).leaves, 1);
}
END_TEST

START_TEST(reduce_only_enforcement_ties_cut_highest_id_first)
{
    make_long_10();
    uint64_t a = place(with_exec(limit(2, SIDE_SELL, 5, USD(51000)), EXEC_REDUCE_ONLY));
    uint64_t b = place(with_exec(limit(2, SIDE_SELL, 5, USD(51000)), EXEC_REDUCE_ONLY));
    place_limit(3, SIDE_BUY, 3, USD(49000));
    struct cmd c = market(2, SIDE_SELL, 3); /* room 7 < 10 */
    apply(&c);
    const struct event *r = must(EV_RESTATED, 0);
    ck_assert_uint_eq(r->order.id, b);
    ck_assert_int_eq(r->order.leaves, 2);
    ck_assert_int_eq(order_of(a).leaves, 5);
    ck_assert_int_eq(count(EV_CANCELED), 0);
}
END_TEST

START_TEST(close_without_qty_closes_the_whole_position)
{
    make_long_10();
    uint64_t bid = place_limit(3, SIDE_BUY, 20, USD(49000));
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_NEW_ORDER;
    c.account = 2;
    c.inst = XBT;
    c.u.new_order.exec_inst = EXEC_CLOSE; /* no qty, no side, no price: Market */
    ck_assert_int_eq(apply(&c), REJ_NONE);
    /* EV_NEW carries no quantity yet; the position sets it (EV_RESTATED) */
    EXPECT(EV_NEW, EV_RESTATED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.side, SIDE_SELL);
    ck_assert_int_eq(bev(0)->order.ord_type, ORD_MARKET);
    ck_assert_int_eq(bev(1)->order.leaves, 10);
    ck_assert_int_eq(bev(1)->order.qty, 10);
    expect_fill(bev(2), bid, 10, USD(49000), 1);
    expect_fill(bev(3), 4, 10, USD(49000), 0);
    ck_assert_int_eq(bev(3)->order.status, ST_FILLED);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
    ck_assert_int_eq(order_of(bid).leaves, 10);
}
END_TEST

START_TEST(all_or_none_is_rejected)
{
    expect_reject(with_exec(limit(1, SIDE_BUY, 5, USD(50000)), EXEC_ALL_OR_NONE), REJ_ALL_OR_NONE);
    ck_assert_int_eq(engine_orders_live(T.e), 0);
}
END_TEST

/* ==== displayQty ============================================================ */

static struct cmd with_display(struct cmd c, qty_t d)
{
    c.u.new_order.has |= HAS_DISPLAY_QTY;
    c.u.new_order.display_qty = d;
    return c;
}

START_TEST(hidden_order_shows_no_level_but_trades)
{
    struct cmd c = with_display(limit(1, SIDE_SELL, 10, USD(50000)), 0);
    apply(&c);
    EXPECT(EV_NEW);
    ck_assert_int_eq(bev(0)->order.display_qty, 0);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), USD(50000));
    px_t px[4];
    qty_t sz[4];
    ck_assert_uint_eq(engine_levels(T.e, XBT, SIDE_SELL, 4, px, sz), 0);
    c = limit(2, SIDE_BUY, 4, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE);
    expect_fill(bev(1), 1, 4, USD(50000), 1);
    ck_assert_int_eq(bev(1)->u.fill.pays_taker, 1);
    ck_assert_int_eq(bev(2)->u.fill.pays_taker, 1); /* the taker always does */
    ck_assert_int_eq(order_of(1).leaves, 6);
    /* cancel of a hidden order: no level event either */
    c = cancel_id(1, 1);
    apply(&c);
    EXPECT(EV_CANCELED);
}
END_TEST

START_TEST(iceberg_shows_only_its_slice)
{
    struct cmd c = with_display(limit(1, SIDE_SELL, 100, USD(50000)), 10);
    apply(&c);
    EXPECT(EV_NEW, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.display_qty, 10);
    expect_level(bev(1), SIDE_SELL, USD(50000), 0, 10);
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 10);
    /* a taker bigger than the slice takes only the slice per match */
    c = limit(2, SIDE_BUY, 4, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_int_eq(bev(1)->u.fill.pays_taker, 1);
    expect_level(bev(4), SIDE_SELL, USD(50000), 10, 6);
    ck_assert_int_eq(order_of(1).leaves, 96);
}
END_TEST

START_TEST(iceberg_refill_goes_to_back_of_level)
{
    uint64_t ice = place(with_display(limit(1, SIDE_SELL, 15, USD(50000)), 10));
    uint64_t later = place_limit(2, SIDE_SELL, 5, USD(50000));
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 15);
    struct cmd c = limit(3, SIDE_BUY, 10, USD(50000));
    apply(&c);
    /* slice used up, 5 left: one EV_LEVEL for fill + refill (15 -> 10) */
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(1), ice, 10, USD(50000), 1);
    expect_level(bev(4), SIDE_SELL, USD(50000), 15, 10);
    /* the later order now comes before the refilled slice */
    c = limit(4, SIDE_BUY, 7, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(1), later, 5, USD(50000), 1);
    expect_fill(bev(5), ice, 2, USD(50000), 1);
    expect_level(bev(8), SIDE_SELL, USD(50000), 5, 3);
    ck_assert_int_eq(order_of(ice).leaves, 3);
}
END_TEST

START_TEST(iceberg_taker_sweeps_several_slices_of_one_iceberg)
{
    uint64_t ice = place(with_display(limit(1, SIDE_SELL, 25, USD(50000)), 10));
    struct cmd c = limit(3, SIDE_BUY, 25, USD(50000));
    apply(&c);
    /* three matches: 10, 10, 5 */
    ck_assert_int_eq(count(EV_TRADE), 3);
    ck_assert_int_eq(must(EV_FILL, 0)->u.fill.last_qty, 10);
    ck_assert_int_eq(must(EV_FILL, 2)->u.fill.last_qty, 10);
    ck_assert_int_eq(must(EV_FILL, 4)->u.fill.last_qty, 5);
    ck_assert_int_eq(must(EV_FILL, 4)->order.status, ST_FILLED);
    ck_assert_uint_eq(must(EV_FILL, 4)->order.id, ice);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), 0);
    const struct event *last = bev(nb() - 1);
    expect_level(last, SIDE_SELL, USD(50000), 5, 0);
}
END_TEST

/* ==== amend ================================================================ */

START_TEST(amend_reducing_qty_keeps_priority)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 6;
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_AMENDED, EV_LEVEL);
    ck_assert_uint_eq(bev(0)->order.id, a);
    ck_assert_int_eq(bev(0)->order.qty, 6);
    ck_assert_int_eq(bev(0)->order.leaves, 6);
    expect_level(bev(1), SIDE_SELL, USD(50000), 20, 16);
    c = limit(3, SIDE_BUY, 6, USD(50000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), a, 6, USD(50000), 1);
    ck_assert_int_eq(order_of(b).leaves, 10);
}
END_TEST

START_TEST(amend_raising_qty_loses_priority)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 12;
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.leaves, 12);
    expect_level(bev(1), SIDE_SELL, USD(50000), 20, 10);
    expect_level(bev(2), SIDE_SELL, USD(50000), 10, 22);
    c = limit(3, SIDE_BUY, 11, USD(50000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), b, 10, USD(50000), 1);
    expect_fill(must(EV_FILL, 2), a, 1, USD(50000), 1);
}
END_TEST

START_TEST(amend_price_loses_priority_and_can_cross)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50500));
    uint64_t bid = place_limit(3, SIDE_BUY, 4, USD(50000));
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_PRICE;
    c.u.amend.price = USD(50000);
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.price, USD(50000));
    expect_level(bev(1), SIDE_SELL, USD(50500), 10, 0);
    expect_fill(bev(2), bid, 4, USD(50000), 1);
    expect_fill(bev(3), a, 4, USD(50000), 0);
    expect_level(bev(5), SIDE_BUY, USD(50000), 4, 0);
    expect_level(bev(6), SIDE_SELL, USD(50000), 0, 6);
    /* moving back behind a newer order at the same price */
    uint64_t b = place_limit(2, SIDE_SELL, 1, USD(49000));
    c = amend_id(1, a);
    c.u.amend.has = AMD_PRICE;
    c.u.amend.price = USD(49000);
    apply(&c);
    c = limit(4, SIDE_BUY, 1, USD(49000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), b, 1, USD(49000), 1);
}
END_TEST

START_TEST(amend_leaves_qty_sets_qty_from_cum)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 4, USD(50000));
    apply(&c);
    c = amend_id(1, a);
    c.u.amend.has = AMD_LEAVES;
    c.u.amend.leaves = 2;
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.leaves, 2);
    ck_assert_int_eq(bev(0)->order.cum, 4);
    ck_assert_int_eq(bev(0)->order.qty, 6);
    expect_level(bev(1), SIDE_SELL, USD(50000), 6, 2);
}
END_TEST

START_TEST(amend_rejects_both_qty_unchanged_and_foreign)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_QTY | AMD_LEAVES;
    c.u.amend.qty = 5;
    c.u.amend.leaves = 5;
    expect_reject(c, REJ_AMEND_BOTH_QTY);
    c = amend_id(1, a);
    c.u.amend.has = AMD_PRICE;
    c.u.amend.price = USD(50000);
    expect_reject(c, REJ_AMEND_UNCHANGED);
    c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 10;
    expect_reject(c, REJ_AMEND_UNCHANGED);
    c = amend_id(2, a); /* another account's order */
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 5;
    expect_reject(c, REJ_NOT_FOUND);
    c = cancel_id(2, a);
    expect_reject(c, REJ_NOT_FOUND);
    ck_assert_int_eq(order_of(a).leaves, 10);
}
END_TEST

START_TEST(amend_of_filled_order_is_terminal)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 10, USD(50000));
    apply(&c);
    c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 5;
    expect_reject(c, REJ_ORDER_TERMINAL);
    c = cancel_id(1, a);
    expect_reject(c, REJ_ORDER_TERMINAL);
    c = cancel_id(1, 99); /* never existed */
    expect_reject(c, REJ_NOT_FOUND);
}
END_TEST

START_TEST(amend_renames_clordid_then_cancel_by_new_name)
{
    uint64_t a = place(with_clordid(limit(1, SIDE_BUY, 3, USD(49000)), "first"));
    ck_assert_int_eq(order_of(a).leaves, 3);
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_AMEND;
    c.account = 1;
    strcpy(c.u.amend.ref.clordid, "first");
    c.u.amend.has = AMD_NEW_CLORDID;
    strcpy(c.u.amend.new_clordid, "second");
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_AMENDED);
    ck_assert_uint_eq(bev(0)->order.id, a);
    ck_assert_str_eq(bev(0)->u.ids.clordid, "second");
    expect_reject(cancel_clordid(1, "first"), REJ_NOT_FOUND);
    c = cancel_clordid(1, "second");
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), a, CXL_USER);
    /* the old name is free again for a new order */
    place(with_clordid(limit(1, SIDE_BUY, 3, USD(49000)), "first"));
}
END_TEST

/* ==== cancel ================================================================= */

START_TEST(cancel_by_order_id_and_by_clordid)
{
    uint64_t a = place(with_clordid(limit(1, SIDE_BUY, 3, USD(49000)), "mine-1"));
    uint64_t b = place_limit(1, SIDE_BUY, 4, USD(49000));
    struct cmd c = cancel_id(1, b);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), b, CXL_USER);
    expect_level(bev(1), SIDE_BUY, USD(49000), 7, 3);
    expect_reject(cancel_clordid(2, "mine-1"), REJ_NOT_FOUND); /* other account */
    c = cancel_clordid(1, "mine-1");
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), a, CXL_USER);
    expect_level(bev(1), SIDE_BUY, USD(49000), 3, 0);
    ck_assert_uint_eq(engine_orders_live(T.e), 0);
}
END_TEST

START_TEST(cancel_all_by_instrument_and_side)
{
    uint64_t xb = place_limit(1, SIDE_BUY, 1, USD(49000));
    uint64_t xs = place_limit(1, SIDE_SELL, 2, USD(51000));
    struct cmd e = new_order(1, ETH, SIDE_BUY, 3);
    e.u.new_order.has |= HAS_PRICE;
    e.u.new_order.price = USD(3000) + PX_SCALE / 20;
    uint64_t eb = place(e);
    uint64_t st = place(stop(1, ORD_STOP, SIDE_SELL, 4, USD(40000), 0));
    uint64_t other = place_limit(2, SIDE_SELL, 5, USD(51000));

    struct cmd c = cancel_all(1, XBT, SIDE_SELL);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_CANCELED);
    expect_canceled(bev(0), xs, CXL_CANCEL_ALL);
    expect_level(bev(1), SIDE_SELL, USD(51000), 7, 5);
    expect_canceled(bev(2), st, CXL_CANCEL_ALL);

    c = cancel_all(1, ETH, SIDE_NONE);
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), eb, CXL_CANCEL_ALL);
    ck_assert_int_eq(bev(0)->inst, ETH);
    expect_level(bev(1), SIDE_BUY, USD(3000) + PX_SCALE / 20, 3, 0);
    ck_assert_int_eq(bev(1)->inst, ETH);
    ck_assert(order_live(xb));

    c = cancel_all(1, INST_ALL, SIDE_NONE);
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), xb, CXL_CANCEL_ALL);
    ck_assert(order_live(other));
    ck_assert_uint_eq(engine_orders_live(T.e), 1);
}
END_TEST

START_TEST(cancel_all_cancels_every_order_in_ascending_id)
{
    uint64_t ids[4];
    ids[0] = place_limit(1, SIDE_BUY, 1, USD(49000));
    ids[1] = place_limit(1, SIDE_SELL, 1, USD(52000));
    ids[2] = place_limit(1, SIDE_BUY, 1, USD(48000));
    ids[3] = place_limit(1, SIDE_SELL, 1, USD(51000));
    struct cmd c = cancel_all(1, INST_ALL, SIDE_NONE);
    apply(&c);
    ck_assert_int_eq(count(EV_CANCELED), 4);
    for (int i = 0; i < 4; i++)
        expect_canceled(must(EV_CANCELED, i), ids[i], CXL_CANCEL_ALL);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_SELL), 0);
}
END_TEST

START_TEST(cancel_all_after_fires_at_the_deadline)
{
    uint64_t a = place_limit(1, SIDE_BUY, 2, USD(49000));
    uint64_t b = place(stop(1, ORD_STOP, SIDE_BUY, 1, USD(60000), 0));
    uint64_t keep = place_limit(2, SIDE_BUY, 3, USD(49000));
    struct cmd c = cancel_after(1, 60000);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_CANCEL_AFTER);
    ck_assert_int_eq(bev(0)->u.cancel_after.deadline, T0 + 60000);
    ck_assert_uint_eq(bev(0)->account, 1);
    advance(59999);
    c = clock_cmd();
    apply(&c);
    ck_assert_uint_eq(nb(), 0);
    advance(1);
    /* fires on any later command's ts, before the command itself */
    c = limit(3, SIDE_SELL, 1, USD(60000));
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_CANCELED, EV_NEW, EV_LEVEL);
    expect_canceled(bev(0), a, CXL_DEAD_MAN);
    expect_level(bev(1), SIDE_BUY, USD(49000), 5, 3);
    expect_canceled(bev(2), b, CXL_DEAD_MAN);
    ck_assert(order_live(keep));
    /* disarmed after firing */
    uint64_t n = place_limit(1, SIDE_BUY, 2, USD(49000));
    advance(120000);
    c = clock_cmd();
    apply(&c);
    ck_assert_uint_eq(nb(), 0);
    ck_assert(order_live(n));
}
END_TEST

START_TEST(cancel_all_after_rearming_postpones_and_zero_disarms)
{
    uint64_t a = place_limit(1, SIDE_BUY, 2, USD(49000));
    struct cmd c = cancel_after(1, 60000);
    apply(&c);
    advance(30000);
    c = cancel_after(1, 60000);
    apply(&c);
    EXPECT(EV_CANCEL_AFTER);
    ck_assert_int_eq(bev(0)->u.cancel_after.deadline, T0 + 90000);
    advance(30000); /* the first deadline: nothing */
    c = clock_cmd();
    apply(&c);
    ck_assert_uint_eq(nb(), 0);
    ck_assert(order_live(a));
    advance(30000); /* T0 + 90000 */
    c = clock_cmd();
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), a, CXL_DEAD_MAN);

    uint64_t b = place_limit(1, SIDE_BUY, 2, USD(49000));
    c = cancel_after(1, 1000);
    apply(&c);
    c = cancel_after(1, 0);
    apply(&c);
    EXPECT(EV_CANCEL_AFTER);
    ck_assert_int_eq(bev(0)->u.cancel_after.deadline, 0);
    advance(5000);
    c = clock_cmd();
    apply(&c);
    ck_assert_uint_eq(nb(), 0);
    ck_assert(order_live(b));
}
END_TEST

START_TEST(dead_man_switches_fire_in_deadline_order)
{
    uint64_t a3 = place_limit(3, SIDE_BUY, 1, USD(49000));
    uint64_t a2 = place_limit(2, SIDE_BUY, 1, USD(48000));
    struct cmd c = cancel_after(3, 50000);
    apply(&c);
    advance(1000);
    c = cancel_after(2, 40000); /* deadline T0 + 41000, earlier */
    apply(&c);
    advance(100000);
    c = clock_cmd();
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), a2, CXL_DEAD_MAN);
    expect_canceled(bev(2), a3, CXL_DEAD_MAN);
}
END_TEST

/* ==== OCO ===================================================================== */

static struct cmd with_oco(struct cmd c, const char *link)
{
    c.u.new_order.contingency = CONT_OCO;
    strcpy(c.u.new_order.clordlinkid, link);
    return c;
}

START_TEST(oco_fill_of_one_member_cancels_the_other)
{
    uint64_t tp = place(with_oco(limit(1, SIDE_SELL, 5, USD(51000)), "L1"));
    uint64_t sl = place(with_oco(stop(1, ORD_STOP, SIDE_SELL, 5, USD(49000), 0), "L1"));
    uint64_t other = place(with_oco(limit(3, SIDE_SELL, 5, USD(52000)), "L1")); /* other account */
    ck_assert_int_eq(order_of(tp).contingency, CONT_OCO);
    struct cmd c = limit(2, SIDE_BUY, 2, USD(51000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_fill(bev(1), tp, 2, USD(51000), 1);
    expect_level(bev(4), SIDE_SELL, USD(51000), 5, 3);
    expect_canceled(bev(5), sl, CXL_OCO);
    ck_assert(order_live(tp));
    ck_assert(order_live(other));
}
END_TEST

/* BitMEX: at most 10 live contingent orders per account and contract
 * ("Too many contingent orders"); stops count, other contracts and other
 * accounts do not, plain orders are not limited by it, and one gone frees a
 * place. */
START_TEST(too_many_contingent_orders)
{
    uint64_t first = 0;
    for (int k = 0; k < ENGINE_CONTINGENT_MAX; k++) {
        char link[8];
        snprintf(link, sizeof(link), "G%d", k);
        uint64_t id = k % 2 ? place(with_oco(stop(1, ORD_STOP, SIDE_SELL, 5, USD(49000 - k), 0), link))
                            : place(with_oco(limit(1, SIDE_SELL, 5, USD(51000 + k)), link));
        if (!first)
            first = id;
    }
    struct cmd c = with_oco(limit(1, SIDE_SELL, 5, USD(52000)), "G10");
    ck_assert_int_eq(apply(&c), REJ_TOO_MANY_CONTINGENT);
    c = with_oco(limit(1, SIDE_SELL, 5, USD(52000)), "G0");
    ck_assert_int_eq(apply(&c), REJ_TOO_MANY_CONTINGENT);
    place_limit(1, SIDE_SELL, 5, USD(52000));                     /* no contingency */
    place(with_oco(limit(2, SIDE_SELL, 5, USD(52000)), "G10"));   /* another account */
    struct cmd e = with_oco(limit(1, SIDE_SELL, 5, USD(3000)), "E");
    e.inst = ETH;
    place(e);                                                      /* another contract */
    c = cancel_id(1, first);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    place(with_oco(limit(1, SIDE_SELL, 5, USD(52000)), "G10"));
    c = with_oco(limit(1, SIDE_SELL, 5, USD(52500)), "G11");
    ck_assert_int_eq(apply(&c), REJ_TOO_MANY_CONTINGENT);
    ck_assert_str_eq(engine_reject_name(REJ_TOO_MANY_CONTINGENT), "too_many_contingent");
}
END_TEST

START_TEST(oco_taker_fill_cancels_resting_sibling)
{
    place_limit(2, SIDE_BUY, 10, USD(50000));
    uint64_t sib = place(with_oco(limit(1, SIDE_SELL, 5, USD(52000)), "G"));
    struct cmd c = with_oco(limit(1, SIDE_SELL, 5, USD(50000)), "G");
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(5), sib, CXL_OCO);
    expect_level(bev(6), SIDE_SELL, USD(52000), 5, 0);
}
END_TEST

START_TEST(contingency_needs_link_and_oto_is_rejected)
{
    struct cmd c = limit(1, SIDE_SELL, 5, USD(51000));
    c.u.new_order.contingency = CONT_OCO;
    expect_reject(c, REJ_INVALID_CONTINGENCY);
    c = with_oco(limit(1, SIDE_SELL, 5, USD(51000)), "X");
    c.u.new_order.contingency = CONT_OTO;
    expect_reject(c, REJ_INVALID_CONTINGENCY);
}
END_TEST

/* ==== limits ================================================================== */

START_TEST(open_and_stop_order_limits_per_account_and_instrument)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.open_orders_max = 2;
    cfg.stop_orders_max = 1;
    start(&cfg);
    place_limit(1, SIDE_BUY, 1, USD(49000));
    place_limit(1, SIDE_BUY, 1, USD(48000));
    expect_reject(limit(1, SIDE_SELL, 1, USD(52000)), REJ_TOO_MANY_OPEN_ORDERS);
    place_limit(2, SIDE_SELL, 1, USD(52000)); /* another account */
    struct cmd e = new_order(1, ETH, SIDE_BUY, 1); /* another instrument */
    e.u.new_order.has |= HAS_PRICE;
    e.u.new_order.price = USD(3000);
    place(e);
    place(stop(1, ORD_STOP, SIDE_SELL, 1, USD(40000), 0));
    expect_reject(stop(1, ORD_STOP, SIDE_SELL, 1, USD(39000), 0), REJ_TOO_MANY_STOP_ORDERS);
    /* canceling frees a place */
    struct cmd c = cancel_id(1, 1);
    apply(&c);
    place_limit(1, SIDE_SELL, 1, USD(52000));
}
END_TEST

START_TEST(full_order_pool_rejects)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.orders_max = 3;
    start(&cfg);
    place_limit(1, SIDE_BUY, 1, USD(49000));
    place_limit(2, SIDE_BUY, 1, USD(48000));
    place(stop(3, ORD_STOP, SIDE_SELL, 1, USD(40000), 0));
    expect_reject(limit(4, SIDE_SELL, 1, USD(52000)), REJ_POOL_FULL);
    /* a market order needs a slot too, even though it never rests */
    expect_reject(market(4, SIDE_SELL, 1), REJ_POOL_FULL);
    struct cmd c = cancel_id(1, 1);
    apply(&c);
    place_limit(4, SIDE_SELL, 1, USD(52000));
}
END_TEST

/* ==== self-trade ================================================================ */

START_TEST(stp_allow_trades_with_itself)
{
    uint64_t a = place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(1, SIDE_BUY, 5, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(1), a, 5, USD(50000), 1);
    ck_assert_uint_eq(bev(3)->u.trade.maker_account, 1);
    ck_assert_uint_eq(bev(3)->u.trade.taker_account, 1);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), 0);
}
END_TEST

START_TEST(stp_cancel_maker_cancels_resting_own_order)
{
    start_stp(STP_CANCEL_MAKER);
    uint64_t own = place_limit(1, SIDE_SELL, 5, USD(50000));
    uint64_t theirs = place_limit(2, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(1, SIDE_BUY, 8, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_LEVEL);
    expect_canceled(bev(1), own, CXL_SELF_TRADE);
    expect_level(bev(2), SIDE_SELL, USD(50000), 10, 5);
    expect_fill(bev(3), theirs, 5, USD(50000), 1);
    expect_level(bev(6), SIDE_SELL, USD(50000), 5, 0);
    expect_level(bev(7), SIDE_BUY, USD(50000), 0, 3);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), 5);
}
END_TEST

START_TEST(stp_cancel_taker_cancels_incoming_remainder)
{
    start_stp(STP_CANCEL_TAKER);
    uint64_t theirs = place_limit(2, SIDE_SELL, 5, USD(50000));
    uint64_t own = place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(1, SIDE_BUY, 8, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_fill(bev(1), theirs, 5, USD(50000), 1);
    expect_level(bev(4), SIDE_SELL, USD(50000), 10, 5);
    expect_canceled(bev(5), 3, CXL_SELF_TRADE);
    ck_assert_int_eq(bev(5)->order.cum, 5);
    ck_assert_int_eq(order_of(own).leaves, 5);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
}
END_TEST

START_TEST(fok_counts_only_what_self_trade_prevention_lets_it_take)
{
    start_stp(STP_CANCEL_MAKER);
    uint64_t own = place_limit(1, SIDE_SELL, 5, USD(50000));
    place_limit(2, SIDE_SELL, 5, USD(50000));
    struct cmd c = with_tif(limit(1, SIDE_BUY, 8, USD(50000)), TIF_FOK);
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 3, CXL_FOK);
    ck_assert(order_live(own));
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 10);
}
END_TEST

/* ==== bad input ================================================================ */

START_TEST(price_off_the_tick_is_rejected)
{
    place_limit(1, SIDE_BUY, 1, USD(49000));
    expect_reject(limit(1, SIDE_BUY, 1, USD(50000) + PX_SCALE / 4), REJ_PRICE_TICK);
    struct cmd e = new_order(1, ETH, SIDE_BUY, 1); /* ETH tick 0.05: 0.5 is fine, 0.01 is not */
    e.u.new_order.has |= HAS_PRICE;
    e.u.new_order.price = USD(3000) + PX_SCALE / 100;
    expect_reject(e, REJ_PRICE_TICK);
    expect_reject(stop(1, ORD_STOP, SIDE_BUY, 1, USD(60000) + 1, 0), REJ_STOP_PX_TICK);
}
END_TEST

START_TEST(bad_quantities_are_rejected)
{
    expect_reject(limit(1, SIDE_BUY, 0, USD(50000)), REJ_INVALID_QTY);
    expect_reject(limit(1, SIDE_BUY, -5, USD(50000)), REJ_INVALID_QTY);
    expect_reject(limit(1, SIDE_SELL, -5, USD(50000)), REJ_INVALID_QTY);
    expect_reject(limit(1, SIDE_BUY, 10000001, USD(50000)), REJ_QTY_TOO_LARGE);
    place_limit(1, SIDE_BUY, 10000000, USD(50000)); /* the max itself is fine */
    /* qty is validated before price (engine.h rule 11) */
    expect_reject(limit(1, SIDE_BUY, 0, USD(50000) + 1), REJ_INVALID_QTY);
}
END_TEST

START_TEST(qty_not_a_lot_multiple_is_rejected)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.instruments[0].lot_qty = 100;
    start(&cfg);
    expect_reject(limit(1, SIDE_BUY, 150, USD(50000)), REJ_INVALID_QTY);
    place_limit(1, SIDE_BUY, 200, USD(50000));
    struct cmd c = with_display(limit(1, SIDE_BUY, 200, USD(50000)), 50);
    expect_reject(c, REJ_INVALID_DISPLAY_QTY);
}
END_TEST

START_TEST(bad_prices_are_rejected)
{
    expect_reject(limit(1, SIDE_BUY, 1, USD(1000000) + PX_SCALE / 2), REJ_INVALID_PRICE);
    expect_reject(limit(1, SIDE_BUY, 1, 0), REJ_INVALID_PRICE);
    expect_reject(limit(1, SIDE_BUY, 1, -USD(1)), REJ_INVALID_PRICE);
    place_limit(1, SIDE_SELL, 1, USD(1000000)); /* maxPrice itself is fine */
    struct cmd m = market(1, SIDE_BUY, 1); /* a price on a Market order */
    m.u.new_order.has |= HAS_PRICE;
    m.u.new_order.price = USD(50000);
    expect_reject(m, REJ_INVALID_PRICE);
}
END_TEST

START_TEST(unknown_instrument_and_account_are_rejected)
{
    struct cmd c = limit(1, SIDE_BUY, 1, USD(50000));
    c.inst = 2;
    expect_reject(c, REJ_UNKNOWN_SYMBOL);
    c.inst = INST_ALL;
    expect_reject(c, REJ_UNKNOWN_SYMBOL);
    c = limit(16, SIDE_BUY, 1, USD(50000));
    expect_reject(c, REJ_UNKNOWN_ACCOUNT);
    /* instrument is checked before account */
    c.inst = 7;
    expect_reject(c, REJ_UNKNOWN_SYMBOL);
}
END_TEST

START_TEST(duplicate_clordid_is_rejected_per_account)
{
    place(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "abc"));
    expect_reject(with_clordid(limit(1, SIDE_SELL, 1, USD(52000)), "abc"), REJ_DUPLICATE_CLORDID);
    place(with_clordid(limit(2, SIDE_SELL, 1, USD(52000)), "abc")); /* another account */
    struct cmd c = with_clordid(limit(1, SIDE_SELL, 1, USD(52000)), "a\x01");
    expect_reject(c, REJ_INVALID_CLORDID);
}
END_TEST

START_TEST(other_bad_commands_are_rejected)
{
    uint64_t a = place_limit(1, SIDE_BUY, 5, USD(49000));
    expect_reject(with_exec(market(1, SIDE_BUY, 1), EXEC_POST_ONLY), REJ_INVALID_EXEC_INST);
    expect_reject(with_exec(limit(1, SIDE_BUY, 1, USD(49000)), EXEC_LAST_PRICE | EXEC_INDEX_PRICE),
                  REJ_INVALID_EXEC_INST);
    expect_reject(cancel_after(1, -1), REJ_INVALID_TIMEOUT);
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_PRICE;
    c.u.amend.price = USD(49000) + 7;
    expect_reject(c, REJ_PRICE_TICK);
    c = amend_id(1, a);
    c.u.amend.has = AMD_LEAVES;
    c.u.amend.leaves = 0;
    expect_reject(c, REJ_INVALID_QTY);
    c = amend_id(1, a);
    c.u.amend.has = AMD_STOP_PX; /* a Limit has no stopPx */
    c.u.amend.stop_px = USD(48000);
    expect_reject(c, REJ_AMEND_NOT_ALLOWED);
    memset(&c, 0, sizeof(c));
    c.type = 99;
    expect_reject(c, REJ_UNKNOWN_COMMAND);
    ck_assert_int_eq(order_of(a).leaves, 5);
}
END_TEST

/* ==== margin hooks ============================================================== */

START_TEST(admit_hook_rejection_leaves_state_unchanged)
{
    place_limit(1, SIDE_SELL, 10, USD(50000));
    T.admit_result = REJ_INSUFFICIENT_BALANCE;
    int calls = T.admit_calls;
    expect_reject(limit(2, SIDE_BUY, 5, USD(50000)), REJ_INSUFFICIENT_BALANCE);
    ck_assert_int_eq(T.admit_calls, calls + 1);
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 10);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
    /* the next accepted order gets id 2: rejected ones take no id */
    T.admit_result = REJ_NONE;
    ck_assert_uint_eq(place_limit(2, SIDE_BUY, 1, USD(40000)), 2);
}
END_TEST

START_TEST(admit_hook_guards_amend_up_but_not_down)
{
    uint64_t a = place_limit(1, SIDE_BUY, 10, USD(49000));
    T.admit_result = REJ_INSUFFICIENT_BALANCE;
    int calls = T.admit_calls;
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 20;
    expect_reject(c, REJ_INSUFFICIENT_BALANCE);
    ck_assert_int_eq(T.admit_calls, calls + 1);
    c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 5;
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_AMENDED, EV_LEVEL);
    ck_assert_int_eq(T.admit_calls, calls + 1);
}
END_TEST

START_TEST(triggered_stop_failing_admit_is_canceled)
{
    place_limit(1, SIDE_BUY, 10, USD(49000));
    uint64_t s = place(stop(2, ORD_STOP, SIDE_SELL, 5, USD(49500), 0));
    T.admit_result = REJ_INSUFFICIENT_BALANCE;
    struct cmd c = set_price(XBT, SRC_MARK, USD(49000));
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_CANCELED);
    ck_assert_uint_eq(bev(1)->order.id, s);
    expect_canceled(bev(2), s, CXL_TRIGGER_REJECTED);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
    ck_assert_int_eq(level_size(XBT, SIDE_BUY, USD(49000)), 10);
}
END_TEST

START_TEST(on_fill_is_called_once_per_match_maker_then_taker)
{
    uint64_t a = place_limit(1, SIDE_SELL, 3, USD(50000));
    uint64_t b = place_limit(2, SIDE_SELL, 4, USD(50001));
    ck_assert_int_eq(T.fill_calls, 0);
    struct cmd c = limit(3, SIDE_BUY, 7, USD(50001));
    apply(&c);
    ck_assert_int_eq(T.fill_calls, 2);
    const struct event *f[4] = {must(EV_FILL, 0), must(EV_FILL, 1), must(EV_FILL, 2), must(EV_FILL, 3)};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(memcmp(&T.fill_maker[i], f[2 * i], sizeof(struct event)), 0);
        ck_assert_int_eq(memcmp(&T.fill_taker[i], f[2 * i + 1], sizeof(struct event)), 0);
        ck_assert_int_eq(T.fill_maker[i].u.fill.maker, 1);
        ck_assert_int_eq(T.fill_taker[i].u.fill.maker, 0);
        /* called after the pair was emitted */
        ck_assert_uint_ge(T.fill_at[i], (size_t)(f[2 * i + 1] - T.ev) + 1);
    }
    ck_assert_uint_eq(T.fill_maker[0].order.id, a);
    ck_assert_uint_eq(T.fill_maker[1].order.id, b);
    ck_assert_uint_eq(T.fill_taker[1].order.id, 3);
    ck_assert_int_eq(T.fill_taker[1].order.cum, 7);
    /* the second call came after the first trade's events */
    ck_assert_uint_gt(T.fill_at[1], (size_t)(must(EV_TRADE, 0) - T.ev));
}
END_TEST

START_TEST(market_bound_stops_a_market_order)
{
    uint64_t a = place_limit(1, SIDE_SELL, 5, USD(50000));
    uint64_t b = place_limit(1, SIDE_SELL, 5, USD(50100));
    uint64_t far = place_limit(1, SIDE_SELL, 5, USD(50200));
    T.bound = USD(50100);
    struct cmd c = market(2, SIDE_BUY, 20);
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_fill(bev(1), a, 5, USD(50000), 1);
    expect_fill(bev(5), b, 5, USD(50100), 1);
    expect_canceled(bev(9), 4, CXL_MARKET);
    ck_assert_int_eq(bev(9)->order.cum, 10);
    ck_assert_int_eq(order_of(far).leaves, 5);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 10);
}
END_TEST

/* ==== determinism =================================================================== */

struct rec {
    struct event *ev;
    size_t n, cap;
};

static void rec_sink(void *p, const struct event *ev)
{
    struct rec *r = p;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
        ck_assert_ptr_nonnull(r->ev);
    }
    memcpy(&r->ev[r->n++], ev, sizeof(*ev));
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return *s >> 33;
}

/* A mixed command list: limits, markets, stops, icebergs, amends, cancels,
 * prices, clock jumps across midnight. */
static size_t make_commands(struct cmd *out, size_t max)
{
    uint64_t s = 42;
    ms_t ts = T0;
    size_t n = 0;
    for (uint64_t seq = 1; n < max; seq++) {
        struct cmd c;
        uint32_t acct = (uint32_t)(lcg(&s) % 6);
        uint8_t side = lcg(&s) % 2 ? SIDE_BUY : SIDE_SELL;
        px_t px = USD(49900) + (px_t)(lcg(&s) % 400) * (PX_SCALE / 2);
        qty_t q = 1 + (qty_t)(lcg(&s) % 50);
        switch (lcg(&s) % 10) {
        case 0:
            c = market(acct, side, q);
            break;
        case 1:
            c = stop(acct, lcg(&s) % 2 ? ORD_STOP : ORD_LIMIT_IF_TOUCHED, side, q, px, lcg(&s) % 2 ? px : 0);
            break;
        case 2:
            c = amend_id(acct, 1 + lcg(&s) % (seq + 1));
            c.u.amend.has = AMD_PRICE;
            c.u.amend.price = px;
            break;
        case 3:
            c = cancel_id(acct, 1 + lcg(&s) % (seq + 1));
            break;
        case 4:
            c = set_price(XBT, SRC_MARK, px + (px_t)(lcg(&s) % 1000));
            break;
        case 5:
            c = with_display(limit(acct, side, q, px), (qty_t)(lcg(&s) % 5));
            break;
        case 6:
            c = with_tif(limit(acct, side, q, px), TIF_DAY);
            break;
        default:
            c = limit(acct, side, q, px);
            break;
        }
        ts += (ms_t)(lcg(&s) % 3600000);
        c.seq = seq;
        c.ts = ts;
        out[n++] = c;
    }
    return n;
}

START_TEST(same_commands_give_identical_event_bytes_and_hash)
{
    enum { N = 600 };
    static struct cmd cmds[N];
    size_t n = make_commands(cmds, N);
    struct engine_config cfg;
    default_config(&cfg);
    struct rec r1 = {0}, r2 = {0};
    const char *err = NULL;
    struct engine *e1 = engine_create(&cfg, rec_sink, &r1, NULL, &err);
    struct engine *e2 = engine_create(&cfg, rec_sink, &r2, NULL, &err);
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(e2);
    size_t trades = 0;
    for (size_t i = 0; i < n; i++) {
        engine_apply(e1, &cmds[i]);
        const char *v = engine_verify(e1);
        ck_assert_msg(v == NULL, "verify after command %zu: %s", i, v);
    }
    for (size_t i = 0; i < n; i++) {
        engine_apply(e2, &cmds[i]);
        const char *v = engine_verify(e2);
        ck_assert_msg(v == NULL, "verify after command %zu: %s", i, v);
    }
    for (size_t i = 0; i < r1.n; i++)
        trades += r1.ev[i].type == EV_TRADE;
    ck_assert_uint_gt(trades, 20); /* the list does exercise matching */
    ck_assert_uint_eq(r1.n, r2.n);
    ck_assert_int_eq(memcmp(r1.ev, r2.ev, r1.n * sizeof(struct event)), 0);
    ck_assert_uint_eq(engine_hash(e1), engine_hash(e2));
    /* one more command on one engine only: the hashes part */
    struct cmd c = limit(1, SIDE_BUY, 1, USD(10000));
    c.seq = cmds[n - 1].seq + 1;
    c.ts = cmds[n - 1].ts;
    ck_assert_int_eq(engine_apply(e1, &c), REJ_NONE);
    ck_assert_uint_ne(engine_hash(e1), engine_hash(e2));
    engine_destroy(e1);
    engine_destroy(e2);
    free(r1.ev);
    free(r2.ev);
}
END_TEST

/* ==== more edges ==================================================================== */

START_TEST(hidden_order_keeps_its_time_priority_in_the_level)
{
    uint64_t h = place(with_display(limit(1, SIDE_SELL, 5, USD(50000)), 0));
    uint64_t v = place_limit(2, SIDE_SELL, 5, USD(50000));
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 5);
    struct cmd c = limit(3, SIDE_BUY, 5, USD(50000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE); /* visible size unchanged: no EV_LEVEL */
    expect_fill(bev(1), h, 5, USD(50000), 1);
    ck_assert_int_eq(order_of(v).leaves, 5);
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 5);
}
END_TEST

START_TEST(reduce_only_maker_without_room_is_canceled_mid_match)
{
    /* account 2 long 5 */
    place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 5, USD(50000));
    apply(&c);
    uint64_t plain = place_limit(2, SIDE_SELL, 5, USD(51000));
    uint64_t ro = place(with_exec(limit(2, SIDE_SELL, 5, USD(51000)), EXEC_REDUCE_ONLY));
    c = limit(3, SIDE_BUY, 10, USD(51000));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL, EV_LEVEL);
    expect_fill(bev(1), plain, 5, USD(51000), 1);
    expect_level(bev(4), SIDE_SELL, USD(51000), 10, 5);
    expect_canceled(bev(5), ro, CXL_REDUCE_ONLY);
    expect_level(bev(6), SIDE_SELL, USD(51000), 5, 0);
    expect_level(bev(7), SIDE_BUY, USD(51000), 0, 5);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
}
END_TEST

START_TEST(fok_cut_short_by_a_reduce_only_maker_is_canceled_fok)
{
    place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 5, USD(50000));
    apply(&c);
    uint64_t plain = place_limit(2, SIDE_SELL, 5, USD(51000));
    uint64_t ro = place(with_exec(limit(2, SIDE_SELL, 5, USD(51000)), EXEC_REDUCE_ONLY));
    c = with_tif(limit(3, SIDE_BUY, 10, USD(51000)), TIF_FOK);
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL, EV_CANCELED);
    expect_fill(bev(1), plain, 5, USD(51000), 1);
    expect_canceled(bev(5), ro, CXL_REDUCE_ONLY);
    expect_canceled(bev(7), 5, CXL_FOK);
    ck_assert_int_eq(bev(7)->order.cum, 5);
    ck_assert_int_eq(engine_position(T.e, 3, XBT), 5);
}
END_TEST

START_TEST(oco_sibling_hit_earlier_in_the_same_sweep_is_canceled_before_it_trades)
{
    uint64_t m1 = place(with_oco(limit(1, SIDE_SELL, 5, USD(50000)), "G"));
    uint64_t m2 = place(with_oco(limit(1, SIDE_SELL, 5, USD(50001)), "G"));
    uint64_t x = place_limit(3, SIDE_SELL, 5, USD(50002));
    struct cmd c = limit(2, SIDE_BUY, 12, USD(50002));
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE,
           EV_LEVEL, EV_LEVEL);
    expect_fill(bev(1), m1, 5, USD(50000), 1);
    expect_canceled(bev(5), m2, CXL_OCO);
    expect_level(bev(6), SIDE_SELL, USD(50001), 5, 0);
    expect_fill(bev(7), x, 5, USD(50002), 1);
    expect_level(bev(11), SIDE_BUY, USD(50002), 0, 2);
}
END_TEST

START_TEST(amend_stop_px_moves_an_untriggered_stop)
{
    uint64_t s = place(stop(2, ORD_STOP_LIMIT, SIDE_SELL, 5, USD(49000), USD(48000)));
    struct cmd c = set_price(XBT, SRC_MARK, USD(49400));
    apply(&c);
    EXPECT(EV_PRICE);
    c = amend_id(2, s);
    c.u.amend.has = AMD_STOP_PX;
    c.u.amend.stop_px = USD(49500);
    apply(&c);
    /* the amend's own trigger pass fires it: mark 49400 <= 49500 */
    EXPECT(EV_AMENDED, EV_TRIGGERED, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.stop_px, USD(49500));
    ck_assert_int_eq(bev(0)->order.working, 0);
    expect_level(bev(2), SIDE_SELL, USD(48000), 0, 5);
}
END_TEST

START_TEST(amend_qty_of_untriggered_stop_emits_no_level)
{
    uint64_t s = place(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 5, USD(52000), USD(52000)));
    struct cmd c = amend_id(2, s);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 9;
    apply(&c);
    EXPECT(EV_AMENDED);
    ck_assert_int_eq(bev(0)->order.leaves, 9);
    ck_assert_int_eq(bev(0)->order.working, 0);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
}
END_TEST

START_TEST(amend_post_only_into_the_spread_cross_is_canceled)
{
    place_limit(1, SIDE_SELL, 10, USD(50000));
    uint64_t p = place(with_exec(limit(2, SIDE_BUY, 5, USD_HALF(49999)), EXEC_POST_ONLY));
    struct cmd c = amend_id(2, p);
    c.u.amend.has = AMD_PRICE;
    c.u.amend.price = USD(50000);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_AMENDED, EV_LEVEL, EV_CANCELED);
    expect_level(bev(1), SIDE_BUY, USD_HALF(49999), 5, 0);
    expect_canceled(bev(2), p, CXL_POST_ONLY);
    ck_assert_int_eq(count(EV_FILL), 0);
}
END_TEST

START_TEST(amend_qty_of_partly_filled_order)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 4, USD(50000));
    apply(&c);
    c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 7; /* leaves 6 -> 3 */
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.qty, 7);
    ck_assert_int_eq(bev(0)->order.leaves, 3);
    ck_assert_int_eq(bev(0)->order.cum, 4);
    c = amend_id(1, a);
    c.u.amend.has = AMD_QTY;
    c.u.amend.qty = 4; /* leaves would be 0 */
    expect_reject(c, REJ_INVALID_QTY);
}
END_TEST

START_TEST(position_set_runs_reduce_only_enforcement)
{
    make_long_10();
    uint64_t ro = place(with_exec(limit(2, SIDE_SELL, 8, USD(51000)), EXEC_REDUCE_ONLY));
    size_t before = T.n;
    T.mark = T.n;
    engine_position_set(T.e, 2, XBT, 3);
    ck_assert_ptr_null(engine_verify(T.e));
    ck_assert_uint_gt(T.n, before);
    EXPECT(EV_RESTATED, EV_LEVEL);
    ck_assert_uint_eq(bev(0)->order.id, ro);
    ck_assert_int_eq(bev(0)->order.leaves, 3);
    expect_level(bev(1), SIDE_SELL, USD(51000), 8, 3);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 3);
    T.mark = T.n;
    engine_position_set(T.e, 2, XBT, -1); /* now short: the sell no longer reduces */
    EXPECT(EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), ro, CXL_REDUCE_ONLY);
}
END_TEST

START_TEST(trailing_buy_stop_trails_down_and_rounds_up)
{
    place_limit(1, SIDE_SELL, 10, USD(49200));
    struct cmd c = set_price(XBT, SRC_MARK, USD(50000) + PX_SCALE * 3 / 10);
    apply(&c);
    c = new_order(2, XBT, SIDE_BUY, 2);
    c.u.new_order.ord_type = ORD_STOP;
    c.u.new_order.peg_type = PEG_TRAILING_STOP;
    c.u.new_order.has |= HAS_PEG_OFFSET;
    c.u.new_order.peg_offset_px = USD(100);
    uint64_t s = place(c);
    ck_assert_int_eq(order_of(s).stop_px, USD_HALF(50100));
    c = set_price(XBT, SRC_MARK, USD(49000));
    apply(&c);
    ck_assert_int_eq(order_of(s).stop_px, USD(49100));
    c = set_price(XBT, SRC_MARK, USD(49050));
    apply(&c);
    ck_assert_int_eq(order_of(s).stop_px, USD(49100));
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    c = set_price(XBT, SRC_MARK, USD(49100));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    expect_fill(bev(3), s, 2, USD(49200), 0);
}
END_TEST

START_TEST(close_stop_without_qty_takes_the_position_at_trigger_time)
{
    make_long_10();
    struct cmd c = stop(2, ORD_STOP, SIDE_SELL, 0, USD(49000), 0);
    c.u.new_order.has &= ~(uint32_t)HAS_QTY;
    c.u.new_order.exec_inst = EXEC_CLOSE;
    uint64_t s = place(c);
    /* the position grows to 15 before the trigger */
    place_limit(3, SIDE_SELL, 5, USD(50000));
    c = limit(2, SIDE_BUY, 5, USD(50000));
    apply(&c);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 15);
    uint64_t bid = place_limit(4, SIDE_BUY, 20, USD(48000));
    c = set_price(XBT, SRC_MARK, USD(49000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_RESTATED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_uint_eq(bev(2)->order.id, s);
    ck_assert_int_eq(bev(2)->order.leaves, 15);
    expect_fill(bev(3), bid, 15, USD(48000), 1);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
}
END_TEST

START_TEST(time_work_runs_even_for_a_rejected_command)
{
    uint64_t a = place_limit(1, SIDE_BUY, 2, USD(49000));
    struct cmd c = cancel_after(1, 1000);
    apply(&c);
    /* out of sequence: ignored entirely, the switch does not fire */
    advance(5000);
    c = clock_cmd();
    c.seq = T.seq; /* not increasing */
    c.ts = T.ts;
    ck_assert_int_eq(apply_raw(&c), REJ_BAD_SEQUENCE);
    EXPECT(EV_REJECTED);
    ck_assert(order_live(a));
    /* in sequence but invalid: rule 0 runs before the command (reading taken) */
    c = limit(1, SIDE_BUY, 0, USD(49000));
    ck_assert_int_eq(apply(&c), REJ_INVALID_QTY);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_REJECTED);
    expect_canceled(bev(0), a, CXL_DEAD_MAN);
}
END_TEST

START_TEST(sequence_may_skip_numbers_and_ts_may_repeat)
{
    struct cmd c = limit(1, SIDE_BUY, 1, USD(49000));
    c.seq = T.seq + 100;
    c.ts = T.ts;
    ck_assert_int_eq(apply_raw(&c), REJ_NONE);
    T.seq += 100;
    c = limit(1, SIDE_BUY, 1, USD(49000));
    ck_assert_int_eq(apply(&c), REJ_NONE); /* same ts */
    ck_assert_uint_eq(bev(0)->seq, T.seq);
    ck_assert_int_eq(bev(0)->ts, T.ts);
}
END_TEST

START_TEST(stop_pool_per_instrument_is_bounded)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.stops_max = 2;
    start(&cfg);
    place(stop(1, ORD_STOP, SIDE_SELL, 1, USD(40000), 0));
    place(stop(2, ORD_STOP, SIDE_SELL, 1, USD(40000), 0));
    expect_reject(stop(3, ORD_STOP, SIDE_SELL, 1, USD(40000), 0), REJ_POOL_FULL);
    struct cmd e = stop(3, ORD_STOP, SIDE_SELL, 1, USD(2000), 0);
    e.inst = ETH;
    place(e); /* another instrument's pool */
}
END_TEST

START_TEST(last_within_mark_fires_up_only_when_last_not_too_high)
{
    place_limit(1, SIDE_SELL, 10, USD(53000));
    place_limit(1, SIDE_SELL, 10, USD(54000));
    uint64_t s = place(with_exec(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(52000), USD(52000)),
                                 EXEC_LAST_PRICE | EXEC_LAST_WITHIN_MARK));
    struct cmd c = set_price(XBT, SRC_MARK, USD(50000));
    apply(&c);
    /* last 53000: 5,300,000 > 5,250,000 = 105% of mark: no */
    c = market(3, SIDE_BUY, 1);
    apply(&c);
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    /* mark 50500: 105% = 53025 >= 53000: fires */
    c = set_price(XBT, SRC_MARK, USD(50500));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_LEVEL);
    ck_assert_uint_eq(bev(1)->order.id, s);
    expect_level(bev(2), SIDE_BUY, USD(52000), 0, 1);
}
END_TEST

START_TEST(oco_cancels_maker_group_before_taker_group)
{
    uint64_t m = place(with_oco(limit(1, SIDE_SELL, 5, USD(50000)), "M"));
    uint64_t msib = place(with_oco(limit(1, SIDE_SELL, 5, USD(53000)), "M"));
    uint64_t tsib = place(with_oco(limit(2, SIDE_BUY, 5, USD(45000)), "T"));
    struct cmd c = with_oco(limit(2, SIDE_BUY, 5, USD(50000)), "T");
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_fill(bev(1), m, 5, USD(50000), 1);
    expect_canceled(bev(5), msib, CXL_OCO);
    expect_level(bev(6), SIDE_SELL, USD(53000), 5, 0);
    expect_canceled(bev(7), tsib, CXL_OCO);
    expect_level(bev(8), SIDE_BUY, USD(45000), 5, 0);
}
END_TEST

START_TEST(reduce_only_enforcement_runs_in_account_order)
{
    /* account 3 long 10, account 1 short 10 */
    place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = limit(3, SIDE_BUY, 10, USD(50000));
    apply(&c);
    uint64_t ro3 = place(with_exec(limit(3, SIDE_SELL, 10, USD(52000)), EXEC_REDUCE_ONLY));
    uint64_t ro1 = place(with_exec(limit(1, SIDE_BUY, 10, USD(48000)), EXEC_REDUCE_ONLY));
    place_limit(3, SIDE_SELL, 4, USD(50000)); /* maker: account 3 */
    c = limit(1, SIDE_BUY, 4, USD(50000));    /* taker: account 1 */
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_RESTATED, EV_LEVEL, EV_RESTATED, EV_LEVEL);
    ck_assert_uint_eq(bev(5)->order.id, ro1);
    ck_assert_int_eq(bev(5)->order.leaves, 6);
    expect_level(bev(6), SIDE_BUY, USD(48000), 10, 6);
    ck_assert_uint_eq(bev(7)->order.id, ro3);
    ck_assert_int_eq(bev(7)->order.leaves, 6);
    expect_level(bev(8), SIDE_SELL, USD(52000), 10, 6);
}
END_TEST

START_TEST(untriggered_reduce_only_stop_survives_until_trigger_then_is_canceled)
{
    make_long_10();
    uint64_t s = place(with_exec(stop(2, ORD_STOP, SIDE_SELL, 10, USD(49000), 0), EXEC_REDUCE_ONLY));
    /* account 2 sells its position away */
    place_limit(3, SIDE_BUY, 10, USD(49500));
    struct cmd c = market(2, SIDE_SELL, 10);
    apply(&c);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
    ck_assert_int_eq(count(EV_CANCELED), 0);
    ck_assert_int_eq(order_of(s).leaves, 10);
    c = set_price(XBT, SRC_MARK, USD(49000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_CANCELED);
    expect_canceled(bev(2), s, CXL_REDUCE_ONLY);
}
END_TEST

START_TEST(dead_man_runs_before_day_expiry)
{
    T.ts = T0 + MS_PER_DAY - 10000;
    struct cmd c = clock_cmd();
    apply(&c);
    uint64_t d = place(with_tif(limit(1, SIDE_BUY, 1, USD(49000)), TIF_DAY));
    uint64_t d2 = place(with_tif(limit(2, SIDE_BUY, 1, USD(49000)), TIF_DAY));
    c = cancel_after(1, 10000); /* deadline exactly at midnight */
    apply(&c);
    T.ts = T0 + MS_PER_DAY;
    c = clock_cmd();
    apply(&c);
    EXPECT(EV_CANCELED, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_canceled(bev(0), d, CXL_DEAD_MAN);
    expect_canceled(bev(2), d2, CXL_DAY_EXPIRY);
}
END_TEST

START_TEST(amend_reducing_qty_and_moving_price_loses_priority)
{
    uint64_t a = place_limit(1, SIDE_SELL, 10, USD(50001));
    uint64_t b = place_limit(2, SIDE_SELL, 10, USD(50000));
    struct cmd c = amend_id(1, a);
    c.u.amend.has = AMD_QTY | AMD_PRICE;
    c.u.amend.qty = 5;
    c.u.amend.price = USD(50000);
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL, EV_LEVEL);
    expect_level(bev(1), SIDE_SELL, USD(50001), 10, 0);
    expect_level(bev(2), SIDE_SELL, USD(50000), 10, 15);
    c = limit(3, SIDE_BUY, 10, USD(50000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), b, 10, USD(50000), 1);
    ck_assert_int_eq(order_of(a).leaves, 5);
}
END_TEST

START_TEST(amend_reducing_iceberg_below_its_slice_shrinks_the_level)
{
    uint64_t ice = place(with_display(limit(1, SIDE_SELL, 100, USD(50000)), 10));
    uint64_t later = place_limit(2, SIDE_SELL, 1, USD(50000));
    struct cmd c = amend_id(1, ice);
    c.u.amend.has = AMD_LEAVES;
    c.u.amend.leaves = 4;
    apply(&c);
    EXPECT(EV_AMENDED, EV_LEVEL);
    expect_level(bev(1), SIDE_SELL, USD(50000), 11, 5);
    c = limit(3, SIDE_BUY, 1, USD(50000));
    apply(&c);
    expect_fill(must(EV_FILL, 0), ice, 1, USD(50000), 1); /* kept its place */
    ck_assert(order_live(later));
}
END_TEST

START_TEST(day_stop_limit_untriggered_also_expires)
{
    uint64_t s = place(with_tif(stop(1, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(60000), USD(60000)), TIF_DAY));
    T.ts = T0 + MS_PER_DAY;
    struct cmd c = clock_cmd();
    apply(&c);
    EXPECT(EV_CANCELED);
    expect_canceled(bev(0), s, CXL_DAY_EXPIRY);
}
END_TEST

START_TEST(prices_are_per_instrument)
{
    uint64_t s = place(stop(1, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(3000), USD(3000)));
    uint64_t l = place(with_exec(stop(1, ORD_STOP_LIMIT, SIDE_BUY, 1, USD(3000), USD(3000)), EXEC_LAST_PRICE));
    struct cmd c = set_price(ETH, SRC_MARK, USD(3500));
    apply(&c);
    EXPECT(EV_PRICE);
    ck_assert_int_eq(bev(0)->inst, ETH);
    /* an ETH trade at 3500 sets ETH's last price only */
    struct cmd e = new_order(2, ETH, SIDE_SELL, 1);
    e.u.new_order.has |= HAS_PRICE;
    e.u.new_order.price = USD(3500);
    place(e);
    e = new_order(3, ETH, SIDE_BUY, 1);
    apply(&e);
    ck_assert_int_eq(count(EV_TRADE), 1);
    ck_assert_int_eq(count(EV_TRIGGERED), 0);
    ck_assert_int_eq(engine_price(T.e, ETH, SRC_LAST), USD(3500));
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_LAST), 0);
    ck_assert_int_eq(engine_price(T.e, XBT, SRC_MARK), 0);
    ck_assert_int_eq(order_of(s).triggered, 0);
    ck_assert_int_eq(order_of(l).triggered, 0);
}
END_TEST

START_TEST(fok_counts_an_icebergs_hidden_part)
{
    uint64_t ice = place(with_display(limit(1, SIDE_SELL, 100, USD(50000)), 10));
    struct cmd c = with_tif(limit(2, SIDE_BUY, 50, USD(50000)), TIF_FOK);
    apply(&c);
    ck_assert_int_eq(count(EV_CANCELED), 0);
    ck_assert_int_eq(count(EV_TRADE), 5);
    ck_assert_int_eq(order_of(ice).leaves, 50);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 50);
}
END_TEST

START_TEST(fok_under_cancel_taker_counts_only_liquidity_before_own_order)
{
    start_stp(STP_CANCEL_TAKER);
    place_limit(2, SIDE_SELL, 5, USD(50000));
    uint64_t own = place_limit(1, SIDE_SELL, 5, USD(50000));
    place_limit(3, SIDE_SELL, 5, USD(50001));
    struct cmd c = with_tif(limit(1, SIDE_BUY, 10, USD(50001)), TIF_FOK);
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED);
    expect_canceled(bev(1), 4, CXL_FOK);
    ck_assert(order_live(own));
    ck_assert_int_eq(engine_position(T.e, 1, XBT), 0);
}
END_TEST

START_TEST(fok_under_allow_counts_own_orders)
{
    place_limit(2, SIDE_SELL, 5, USD(50000));
    place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = with_tif(limit(1, SIDE_BUY, 10, USD(50000)), TIF_FOK);
    apply(&c);
    ck_assert_int_eq(count(EV_TRADE), 2);
    ck_assert_int_eq(count(EV_CANCELED), 0);
    ck_assert_int_eq(engine_position(T.e, 1, XBT), 5);
}
END_TEST

START_TEST(stp_cancel_maker_with_market_order_goes_on)
{
    start_stp(STP_CANCEL_MAKER);
    uint64_t own1 = place_limit(1, SIDE_BUY, 5, USD(50000));
    uint64_t other = place_limit(2, SIDE_BUY, 5, USD(49999));
    uint64_t own2 = place_limit(1, SIDE_BUY, 5, USD(49998));
    struct cmd c = market(1, SIDE_SELL, 10);
    apply(&c);
    EXPECT(EV_NEW, EV_CANCELED, EV_LEVEL, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL,
           EV_CANCELED);
    expect_canceled(bev(1), own1, CXL_SELF_TRADE);
    expect_fill(bev(3), other, 5, USD(49999), 1);
    expect_canceled(bev(7), own2, CXL_SELF_TRADE);
    expect_canceled(bev(9), 4, CXL_MARKET);
    ck_assert_int_eq(bev(9)->order.cum, 5);
}
END_TEST

START_TEST(amending_stop_px_of_a_close_stop_keeps_closing_the_whole_position)
{
    make_long_10();
    struct cmd c = stop(2, ORD_STOP, SIDE_SELL, 0, USD(49000), 0);
    c.u.new_order.has &= ~(uint32_t)HAS_QTY;
    c.u.new_order.exec_inst = EXEC_CLOSE;
    uint64_t s = place(c);
    c = amend_id(2, s);
    c.u.amend.has = AMD_STOP_PX;
    c.u.amend.stop_px = USD(49500);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    EXPECT(EV_AMENDED);
    ck_assert_int_eq(bev(0)->order.stop_px, USD(49500));
    uint64_t bid = place_limit(4, SIDE_BUY, 20, USD(48000));
    c = set_price(XBT, SRC_MARK, USD(49500));
    apply(&c);
    /* rule 6: Close without orderQty means the whole position at trigger time */
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_RESTATED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_int_eq(bev(2)->order.leaves, 10);
    expect_fill(bev(3), bid, 10, USD(48000), 1);
    ck_assert_int_eq(engine_position(T.e, 2, XBT), 0);
}
END_TEST

START_TEST(stop_whose_condition_already_holds_fires_in_the_same_command)
{
    uint64_t ask = place_limit(1, SIDE_SELL, 10, USD(50000));
    struct cmd c = set_price(XBT, SRC_MARK, USD(51000));
    apply(&c);
    c = stop(2, ORD_STOP, SIDE_BUY, 3, USD(50500), 0); /* mark 51000 >= 50500 */
    apply(&c);
    EXPECT(EV_NEW, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_int_eq(bev(0)->order.working, 0);
    expect_fill(bev(2), ask, 3, USD(50000), 1);
}
END_TEST

START_TEST(validation_order_first_failure_wins)
{
    place_limit(1, SIDE_BUY, 1, USD(49000));
    struct cmd c;
    /* instrument before AllOrNone */
    c = with_exec(limit(1, SIDE_BUY, 1, USD(50000)), EXEC_ALL_OR_NONE);
    c.inst = 9;
    expect_reject(c, REJ_UNKNOWN_SYMBOL);
    /* account before AllOrNone */
    c = with_exec(limit(99, SIDE_BUY, 1, USD(50000)), EXEC_ALL_OR_NONE);
    expect_reject(c, REJ_UNKNOWN_ACCOUNT);
    /* AllOrNone before qty */
    expect_reject(with_exec(limit(1, SIDE_BUY, 0, USD(50000)), EXEC_ALL_OR_NONE), REJ_ALL_OR_NONE);
    /* trigger execInst duplicate before side */
    c = with_exec(limit(1, 7, 1, USD(50000)), EXEC_MARK_PRICE | EXEC_INDEX_PRICE);
    expect_reject(c, REJ_INVALID_EXEC_INST);
    /* side before qty */
    expect_reject(limit(1, 7, 0, USD(50000)), REJ_INVALID_SIDE);
    /* price before displayQty */
    expect_reject(with_display(limit(1, SIDE_BUY, 5, USD(50000) + 1), 9), REJ_PRICE_TICK);
    /* stopPx before timeInForce */
    expect_reject(with_tif(stop(1, ORD_STOP, SIDE_BUY, 1, USD(60000) + 1, 0), TIF_GTC), REJ_STOP_PX_TICK);
    /* displayQty before clOrdID text */
    expect_reject(with_clordid(with_display(limit(1, SIDE_BUY, 5, USD(50000)), 9), "\x02"),
                  REJ_INVALID_DISPLAY_QTY);
    /* contingency type before clOrdID text ... */
    c = with_clordid(limit(1, SIDE_BUY, 5, USD(50000)), "\x02");
    c.u.new_order.contingency = CONT_OTO;
    expect_reject(c, REJ_INVALID_CONTINGENCY);
    /* ... but OCO's need of a clOrdLinkID after it (reading taken, as the
     * reference book in tests/engine/ref_engine.c) */
    c.u.new_order.contingency = CONT_OCO; /* without clOrdLinkID */
    expect_reject(c, REJ_INVALID_CLORDID);
}
END_TEST

START_TEST(validation_order_limits_pools_peg_admit)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.open_orders_max = 1;
    cfg.orders_max = 2;
    start(&cfg);
    place(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "x"));
    /* duplicate clOrdID before per-account limits */
    expect_reject(with_clordid(limit(1, SIDE_BUY, 1, USD(48000)), "x"), REJ_DUPLICATE_CLORDID);
    place_limit(2, SIDE_BUY, 1, USD(48000));
    /* per-account limit before pool */
    expect_reject(limit(1, SIDE_BUY, 1, USD(47000)), REJ_TOO_MANY_OPEN_ORDERS);
    expect_reject(limit(3, SIDE_BUY, 1, USD(47000)), REJ_POOL_FULL);
    struct cmd c = cancel_id(2, 2);
    apply(&c);
    /* Pegged reference before margin admit (the hook is not even asked) */
    T.admit_result = REJ_INSUFFICIENT_BALANCE;
    int calls = T.admit_calls;
    c = new_order(3, XBT, SIDE_SELL, 1);
    c.u.new_order.peg_type = PEG_PRIMARY; /* best ask: none */
    c.u.new_order.exec_inst = EXEC_FIXED;
    expect_reject(c, REJ_PEG_NO_REFERENCE);
    ck_assert_int_eq(T.admit_calls, calls);
    expect_reject(limit(3, SIDE_SELL, 1, USD(52000)), REJ_INSUFFICIENT_BALANCE);
}
END_TEST

START_TEST(events_carry_client_ids_seq_and_ts)
{
    advance(1234);
    struct cmd c = with_oco(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "cl-1"), "link-1");
    apply(&c);
    EXPECT(EV_NEW, EV_LEVEL);
    ck_assert_str_eq(bev(0)->u.ids.clordid, "cl-1");
    ck_assert_str_eq(bev(0)->u.ids.clordlinkid, "link-1");
    ck_assert_uint_eq(bev(0)->seq, T.seq);
    ck_assert_int_eq(bev(0)->ts, T0 + 1234);
    ck_assert_uint_eq(bev(1)->seq, T.seq);
    ck_assert_int_eq(bev(1)->ts, T0 + 1234);
    c = with_clordid(limit(1, SIDE_BUY, 0, USD(49000)), "cl-2");
    apply(&c);
    EXPECT(EV_REJECTED);
    ck_assert_str_eq(bev(0)->u.ids.clordid, "cl-2");
    ck_assert_int_eq(bev(0)->order.status, ST_REJECTED);
    ck_assert_uint_eq(bev(0)->account, 1);
    ck_assert_uint_eq(bev(0)->seq, T.seq);
}
END_TEST

START_TEST(oco_taker_sharing_the_makers_group_is_canceled_after_its_fill)
{
    uint64_t m = place(with_oco(limit(1, SIDE_SELL, 5, USD(50000)), "G"));
    place_limit(2, SIDE_SELL, 5, USD(50000));
    struct cmd c = with_oco(limit(1, SIDE_BUY, 10, USD(50000)), "G");
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_fill(bev(1), m, 5, USD(50000), 1);
    expect_canceled(bev(5), 3, CXL_OCO);
    ck_assert_int_eq(bev(5)->order.cum, 5);
    ck_assert_int_eq(level_size(XBT, SIDE_SELL, USD(50000)), 5);
    ck_assert_int_eq(engine_best(T.e, XBT, SIDE_BUY), 0);
}
END_TEST

START_TEST(collected_stops_all_activate_even_if_price_moved_back)
{
    place_limit(5, SIDE_SELL, 10, USD(49500));
    uint64_t bid = place_limit(6, SIDE_BUY, 10, USD(49000));
    uint64_t a = place(with_exec(stop(2, ORD_MARKET_IF_TOUCHED, SIDE_BUY, 1, USD(49000), 0), EXEC_LAST_PRICE));
    uint64_t b = place(with_exec(stop(3, ORD_STOP, SIDE_SELL, 1, USD(49000), 0), EXEC_LAST_PRICE));
    struct cmd c = market(7, SIDE_SELL, 1); /* last 49000: both fire */
    apply(&c);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL,
           EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL);
    ck_assert_uint_eq(bev(5)->order.id, a);
    ck_assert_int_eq(bev(8)->u.trade.px, USD(49500)); /* last is 49500 now */
    ck_assert_uint_eq(bev(10)->order.id, b);
    expect_fill(bev(11), bid, 1, USD(49000), 1);
}
END_TEST

START_TEST(string_pool_full_rejects_orders_with_ids)
{
    struct engine_config cfg;
    default_config(&cfg);
    cfg.strings_max = 1;
    start(&cfg);
    uint64_t a = place(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "one"));
    expect_reject(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "two"), REJ_POOL_FULL);
    place_limit(1, SIDE_BUY, 1, USD(49000)); /* no id: fine */
    struct cmd c = cancel_id(1, a);
    apply(&c);
    place(with_clordid(limit(1, SIDE_BUY, 1, USD(49000)), "two")); /* freed */
}
END_TEST

START_TEST(canceled_and_filled_orders_report_terminal_views)
{
    uint64_t a = place_limit(1, SIDE_SELL, 5, USD(50000));
    struct cmd c = limit(2, SIDE_BUY, 5, USD(50000));
    apply(&c);
    const struct event *f = must(EV_FILL, 0);
    ck_assert_uint_eq(f->order.id, a);
    ck_assert_int_eq(f->order.status, ST_FILLED);
    ck_assert_int_eq(f->order.working, 0);
    ck_assert_int_eq(f->order.cum, 5);
    uint64_t b = place_limit(1, SIDE_SELL, 5, USD(50000));
    c = cancel_id(1, b);
    apply(&c);
    ck_assert_int_eq(bev(0)->order.working, 0);
    ck_assert_int_eq(bev(0)->order.leaves, 0);
    ck_assert_int_eq(bev(0)->order.qty, 5);
    ck_assert(!order_live(b));
    ck_assert_uint_eq(engine_orders_live(T.e), 0);
}
END_TEST

START_TEST(market_stop_and_mit_reject_fill_or_kill)
{
    /* rule 2: IOC is the only TIF Market, Stop and MarketIfTouched accept */
    place_limit(1, SIDE_SELL, 10, USD(50000));
    expect_reject(with_tif(market(2, SIDE_BUY, 1), TIF_FOK), REJ_UNSUPPORTED_TIF);
    expect_reject(with_tif(stop(2, ORD_STOP, SIDE_BUY, 1, USD(60000), 0), TIF_FOK), REJ_UNSUPPORTED_TIF);
    expect_reject(with_tif(stop(2, ORD_MARKET_IF_TOUCHED, SIDE_BUY, 1, USD(40000), 0), TIF_FOK),
                  REJ_UNSUPPORTED_TIF);
    /* IOC given explicitly is fine */
    struct cmd c = with_tif(market(2, SIDE_BUY, 1), TIF_IOC);
    ck_assert_int_eq(apply(&c), REJ_NONE);
    ck_assert_int_eq(count(EV_TRADE), 1);
}
END_TEST

START_TEST(admit_hook_sees_the_order_as_it_would_rest)
{
    place_limit(1, SIDE_SELL, 10, USD(51000));
    struct cmd c = limit(2, SIDE_BUY, 7, USD(50000));
    c.u.new_order.tif = TIF_NONE;
    apply(&c);
    ck_assert_int_eq(T.admitted.side, SIDE_BUY);
    ck_assert_int_eq(T.admitted.ord_type, ORD_LIMIT);
    ck_assert_int_eq(T.admitted.tif, TIF_GTC);
    ck_assert_int_eq(T.admitted.qty, 7);
    ck_assert_int_eq(T.admitted.leaves, 7);
    ck_assert_int_eq(T.admitted.price, USD(50000));
    ck_assert_uint_eq(T.admitted.account, 2);
    /* an amend that moves the price asks with the new values */
    int calls = T.admit_calls;
    c = amend_id(2, 2);
    c.u.amend.has = AMD_PRICE | AMD_QTY;
    c.u.amend.price = USD(50500);
    c.u.amend.qty = 5;
    apply(&c);
    ck_assert_int_eq(T.admit_calls, calls + 1);
    ck_assert_int_eq(T.admitted.price, USD(50500));
    ck_assert_int_eq(T.admitted.leaves, 5);
    ck_assert_uint_eq(T.admitted.id, 2);
}
END_TEST

START_TEST(untriggered_stop_is_not_admitted_until_it_fires)
{
    int calls = T.admit_calls;
    uint64_t s = place(stop(2, ORD_STOP_LIMIT, SIDE_BUY, 3, USD(52000), USD(52000)));
    ck_assert_int_eq(T.admit_calls, calls); /* holds no margin while waiting */
    struct cmd c = set_price(XBT, SRC_MARK, USD(52000));
    apply(&c);
    ck_assert_int_eq(T.admit_calls, calls + 1);
    ck_assert_uint_eq(T.admitted.id, s);
    ck_assert_int_eq(T.admitted.triggered, 1);
    ck_assert_int_eq(T.admitted.working, 1);
}
END_TEST

START_TEST(market_bound_is_asked_for_the_takers_account_and_side)
{
    place_limit(1, SIDE_BUY, 5, USD(50000));
    uint64_t low = place_limit(1, SIDE_BUY, 5, USD(49000));
    T.bound = USD(49500);
    struct cmd c = market(3, SIDE_SELL, 8);
    apply(&c);
    ck_assert_int_ge(T.bound_calls, 1);
    ck_assert_uint_eq(T.bound_account, 3);
    ck_assert_int_eq(T.bound_inst, XBT);
    ck_assert_int_eq(T.bound_side, SIDE_SELL);
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_canceled(bev(5), 3, CXL_MARKET);
    ck_assert_int_eq(order_of(low).leaves, 5);
    /* a limit order is not bounded by it */
    T.bound_calls = 0;
    c = limit(3, SIDE_SELL, 5, USD(49000));
    apply(&c);
    ck_assert_int_eq(count(EV_TRADE), 1);
}
END_TEST

START_TEST(market_bound_applies_to_a_triggered_stop)
{
    place_limit(1, SIDE_SELL, 5, USD(50000));
    uint64_t far = place_limit(1, SIDE_SELL, 5, USD(51000));
    uint64_t s = place(stop(2, ORD_STOP, SIDE_BUY, 8, USD(50000), 0));
    T.bound = USD(50500);
    struct cmd c = set_price(XBT, SRC_MARK, USD(50000));
    apply(&c);
    EXPECT(EV_PRICE, EV_TRIGGERED, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED);
    expect_canceled(bev(6), s, CXL_MARKET);
    ck_assert_int_eq(bev(6)->order.cum, 5);
    ck_assert_int_eq(order_of(far).leaves, 5);
}
END_TEST

START_TEST(engine_create_refuses_bad_configs)
{
    struct engine_config cfg;
    const char *err = NULL;
    default_config(&cfg);
    cfg.orders_max = 0;
    ck_assert_ptr_null(engine_create(&cfg, sink, &T, NULL, &err));
    ck_assert_ptr_nonnull(err);
    default_config(&cfg);
    cfg.instruments[1].tick_px = 0;
    err = NULL;
    ck_assert_ptr_null(engine_create(&cfg, sink, &T, NULL, &err));
    ck_assert_ptr_nonnull(err);
    default_config(&cfg);
    cfg.instruments[0].max_px = USD(1000000) + PX_SCALE / 4; /* not on the tick */
    err = NULL;
    ck_assert_ptr_null(engine_create(&cfg, sink, &T, NULL, &err));
    ck_assert_ptr_nonnull(err);
    default_config(&cfg);
    cfg.instruments_count = 0;
    err = NULL;
    ck_assert_ptr_null(engine_create(&cfg, sink, &T, NULL, &err));
    ck_assert_ptr_nonnull(err);
    /* the default config is fine, and hooks may be NULL */
    default_config(&cfg);
    struct engine *e = engine_create(&cfg, sink, &T, NULL, &err);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(engine_config(e)->instruments[1].tick_px, PX_SCALE / 20);
    ck_assert_ptr_null(engine_verify(e));
    engine_destroy(e);
}
END_TEST

START_TEST(reject_and_cancel_names_exist)
{
    for (int r = 0; r < REJ_COUNT; r++)
        ck_assert_ptr_nonnull(engine_reject_name((enum reject)r));
    for (int r = 0; r < CXL_COUNT; r++)
        ck_assert_ptr_nonnull(engine_cancel_name((enum cancel_reason)r));
    ck_assert_str_ne(engine_reject_name(REJ_PRICE_TICK), engine_reject_name(REJ_INVALID_QTY));
}
END_TEST

START_TEST(oco_taker_filled_whole_by_its_own_group_is_not_canceled)
{
    uint64_t m = place(with_oco(limit(1, SIDE_SELL, 5, USD(50000)), "G"));
    uint64_t sib = place(with_oco(limit(1, SIDE_SELL, 5, USD(53000)), "G"));
    struct cmd c = with_oco(limit(1, SIDE_BUY, 5, USD(50000)), "G");
    apply(&c);
    /* the taker filled: it is terminal, only the other live member goes */
    EXPECT(EV_NEW, EV_FILL, EV_FILL, EV_TRADE, EV_LEVEL, EV_CANCELED, EV_LEVEL);
    expect_fill(bev(1), m, 5, USD(50000), 1);
    ck_assert_int_eq(bev(2)->order.status, ST_FILLED);
    expect_canceled(bev(5), sib, CXL_OCO);
    ck_assert_int_eq(count(EV_CANCELED), 1);
    ck_assert_uint_eq(engine_orders_live(T.e), 0);
}
END_TEST

/* ==== suite ================================================================== */

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, resting_limit_emits_new_and_level);
    tcase_add_test(tc, fifo_within_a_level);
    tcase_add_test(tc, orders_outliving_their_id_place_are_still_found);
    tcase_add_test(tc, prefetch_hints_change_nothing);
    tcase_add_test(tc, better_price_fills_first);
    tcase_add_test(tc, trade_id_shared_by_both_fills_and_trade);
    tcase_add_test(tc, bad_sequence_is_rejected);
    tcase_add_test(tc, partial_fill_keeps_time_priority);
    tcase_add_test(tc, multi_level_sweep_rests_remainder);
    tcase_add_test(tc, level_event_reports_size_before_and_after);
    tcase_add_test(tc, market_walks_book_and_remainder_is_canceled);
    tcase_add_test(tc, market_on_empty_book_is_canceled_market);
    tcase_add_test(tc, ioc_remainder_is_canceled);
    tcase_add_test(tc, fok_short_of_liquidity_fills_nothing);
    tcase_add_test(tc, gtc_rests_after_partial_fill);
    tcase_add_test(tc, untriggered_stop_waits_outside_the_book);
    tcase_add_test(tc, stop_market_triggers_on_mark_and_trades);
    tcase_add_test(tc, stop_limit_triggers_then_rests_remainder);
    tcase_add_test(tc, market_if_touched_buy_fires_when_price_falls);
    tcase_add_test(tc, limit_if_touched_sell_fires_when_price_rises);
    tcase_add_test(tc, index_price_stop_ignores_mark);
    tcase_add_test(tc, last_price_stop_fires_on_a_trade_in_the_same_command);
    tcase_add_test(tc, last_within_mark_needs_last_near_mark);
    tcase_add_test(tc, stop_cascade_one_trade_triggers_another);
    tcase_add_test(tc, stops_fired_together_activate_in_order_id);
    tcase_add_test(tc, trailing_stop_follows_reference_one_way_and_fires_on_reversal);
    tcase_add_test(tc, trailing_stop_without_reference_is_rejected);
    tcase_add_test(tc, primary_peg_fixed_prices_off_same_side_best);
    tcase_add_test(tc, market_peg_fixed_prices_off_opposite_best_and_can_trade);
    tcase_add_test(tc, pegged_without_fixed_is_rejected_invalid_peg);
    tcase_add_test(tc, pegged_with_no_reference_is_rejected);
    tcase_add_test(tc, defaults_derive_type_and_tif_from_fields);
    tcase_add_test(tc, side_defaults_from_sign_of_qty);
    tcase_add_test(tc, market_only_accepts_ioc);
    tcase_add_test(tc, day_orders_expire_at_midnight_utc);
    tcase_add_test(tc, day_expiry_runs_before_the_command_that_crosses_midnight);
    tcase_add_test(tc, post_only_that_would_cross_is_canceled_not_rejected);
    tcase_add_test(tc, post_only_is_canceled_against_a_hidden_order_too);
    tcase_add_test(tc, reduce_only_is_cut_to_the_position);
    tcase_add_test(tc, reduce_only_with_no_position_is_canceled);
    tcase_add_test(tc, resting_reduce_only_shrinks_least_aggressive_first);
    tcase_add_test(tc, reduce_only_enforcement_ties_cut_highest_id_first);
    tcase_add_test(tc, close_without_qty_closes_the_whole_position);
    tcase_add_test(tc, all_or_none_is_rejected);
    tcase_add_test(tc, hidden_order_shows_no_level_but_trades);
    tcase_add_test(tc, iceberg_shows_only_its_slice);
    tcase_add_test(tc, iceberg_refill_goes_to_back_of_level);
    tcase_add_test(tc, iceberg_taker_sweeps_several_slices_of_one_iceberg);
    tcase_add_test(tc, amend_reducing_qty_keeps_priority);
    tcase_add_test(tc, amend_raising_qty_loses_priority);
    tcase_add_test(tc, amend_price_loses_priority_and_can_cross);
    tcase_add_test(tc, amend_leaves_qty_sets_qty_from_cum);
    tcase_add_test(tc, amend_rejects_both_qty_unchanged_and_foreign);
    tcase_add_test(tc, amend_of_filled_order_is_terminal);
    tcase_add_test(tc, amend_renames_clordid_then_cancel_by_new_name);
    tcase_add_test(tc, cancel_by_order_id_and_by_clordid);
    tcase_add_test(tc, cancel_all_by_instrument_and_side);
    tcase_add_test(tc, cancel_all_cancels_every_order_in_ascending_id);
    tcase_add_test(tc, cancel_all_after_fires_at_the_deadline);
    tcase_add_test(tc, cancel_all_after_rearming_postpones_and_zero_disarms);
    tcase_add_test(tc, dead_man_switches_fire_in_deadline_order);
    tcase_add_test(tc, oco_fill_of_one_member_cancels_the_other);
    tcase_add_test(tc, oco_taker_fill_cancels_resting_sibling);
    tcase_add_test(tc, contingency_needs_link_and_oto_is_rejected);
    tcase_add_test(tc, open_and_stop_order_limits_per_account_and_instrument);
    tcase_add_test(tc, full_order_pool_rejects);
    tcase_add_test(tc, stp_allow_trades_with_itself);
    tcase_add_test(tc, stp_cancel_maker_cancels_resting_own_order);
    tcase_add_test(tc, stp_cancel_taker_cancels_incoming_remainder);
    tcase_add_test(tc, fok_counts_only_what_self_trade_prevention_lets_it_take);
    tcase_add_test(tc, price_off_the_tick_is_rejected);
    tcase_add_test(tc, bad_quantities_are_rejected);
    tcase_add_test(tc, qty_not_a_lot_multiple_is_rejected);
    tcase_add_test(tc, bad_prices_are_rejected);
    tcase_add_test(tc, unknown_instrument_and_account_are_rejected);
    tcase_add_test(tc, duplicate_clordid_is_rejected_per_account);
    tcase_add_test(tc, other_bad_commands_are_rejected);
    tcase_add_test(tc, admit_hook_rejection_leaves_state_unchanged);
    tcase_add_test(tc, admit_hook_guards_amend_up_but_not_down);
    tcase_add_test(tc, triggered_stop_failing_admit_is_canceled);
    tcase_add_test(tc, on_fill_is_called_once_per_match_maker_then_taker);
    tcase_add_test(tc, market_bound_stops_a_market_order);
    tcase_add_test(tc, same_commands_give_identical_event_bytes_and_hash);
    tcase_add_test(tc, hidden_order_keeps_its_time_priority_in_the_level);
    tcase_add_test(tc, reduce_only_maker_without_room_is_canceled_mid_match);
    tcase_add_test(tc, fok_cut_short_by_a_reduce_only_maker_is_canceled_fok);
    tcase_add_test(tc, oco_sibling_hit_earlier_in_the_same_sweep_is_canceled_before_it_trades);
    tcase_add_test(tc, amend_stop_px_moves_an_untriggered_stop);
    tcase_add_test(tc, amend_qty_of_untriggered_stop_emits_no_level);
    tcase_add_test(tc, amend_post_only_into_the_spread_cross_is_canceled);
    tcase_add_test(tc, amend_qty_of_partly_filled_order);
    tcase_add_test(tc, position_set_runs_reduce_only_enforcement);
    tcase_add_test(tc, trailing_buy_stop_trails_down_and_rounds_up);
    tcase_add_test(tc, close_stop_without_qty_takes_the_position_at_trigger_time);
    tcase_add_test(tc, time_work_runs_even_for_a_rejected_command);
    tcase_add_test(tc, sequence_may_skip_numbers_and_ts_may_repeat);
    tcase_add_test(tc, stop_pool_per_instrument_is_bounded);
    tcase_add_test(tc, last_within_mark_fires_up_only_when_last_not_too_high);
    tcase_add_test(tc, oco_cancels_maker_group_before_taker_group);
    tcase_add_test(tc, reduce_only_enforcement_runs_in_account_order);
    tcase_add_test(tc, untriggered_reduce_only_stop_survives_until_trigger_then_is_canceled);
    tcase_add_test(tc, dead_man_runs_before_day_expiry);
    tcase_add_test(tc, amend_reducing_qty_and_moving_price_loses_priority);
    tcase_add_test(tc, amend_reducing_iceberg_below_its_slice_shrinks_the_level);
    tcase_add_test(tc, day_stop_limit_untriggered_also_expires);
    tcase_add_test(tc, prices_are_per_instrument);
    tcase_add_test(tc, fok_counts_an_icebergs_hidden_part);
    tcase_add_test(tc, fok_under_cancel_taker_counts_only_liquidity_before_own_order);
    tcase_add_test(tc, fok_under_allow_counts_own_orders);
    tcase_add_test(tc, stp_cancel_maker_with_market_order_goes_on);
    tcase_add_test(tc, amending_stop_px_of_a_close_stop_keeps_closing_the_whole_position);
    tcase_add_test(tc, stop_whose_condition_already_holds_fires_in_the_same_command);
    tcase_add_test(tc, validation_order_first_failure_wins);
    tcase_add_test(tc, validation_order_limits_pools_peg_admit);
    tcase_add_test(tc, events_carry_client_ids_seq_and_ts);
    tcase_add_test(tc, oco_taker_sharing_the_makers_group_is_canceled_after_its_fill);
    tcase_add_test(tc, collected_stops_all_activate_even_if_price_moved_back);
    tcase_add_test(tc, string_pool_full_rejects_orders_with_ids);
    tcase_add_test(tc, canceled_and_filled_orders_report_terminal_views);
    tcase_add_test(tc, market_stop_and_mit_reject_fill_or_kill);
    tcase_add_test(tc, admit_hook_sees_the_order_as_it_would_rest);
    tcase_add_test(tc, untriggered_stop_is_not_admitted_until_it_fires);
    tcase_add_test(tc, market_bound_is_asked_for_the_takers_account_and_side);
    tcase_add_test(tc, market_bound_applies_to_a_triggered_stop);
    tcase_add_test(tc, engine_create_refuses_bad_configs);
    tcase_add_test(tc, reject_and_cancel_names_exist);
    tcase_add_test(tc, oco_taker_filled_whole_by_its_own_group_is_not_canceled);
    tcase_add_test(tc, too_many_contingent_orders);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(engine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
