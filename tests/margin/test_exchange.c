/*
 * test_exchange.c - the margin core driven the way a trader and the market
 * drive it: deposits, orders that trade, index moves, the clock. Every
 * expected number is either one of BitMEX's worked figures or is
 * derived here from formula.h and the state before the action, never read
 * back from the code under test. The checked build (-Dchecks=true) also runs
 * exch_verify() and the money audit after every command.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "margin/exchange.h"

#define USD(x) ((px_t)((x) * (double)PX_SCALE))
#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define EXPIRY INT64_C(1806062400000) /* 2027-03-26T12:00:00Z */
#define XBT 0
#define XBTUSD 0
#define ETHUSD 1
#define XBTUSDT 2
#define FUT 3

static struct exch *X;
static uint64_t SEQ;
static ms_t NOW;
static int n_ev[32];
static int n_money[16];
static sats_t money_sum[16][16]; /* [kind][account] */
static struct ev_funding last_funding;
static int n_xbtusd_funding;
static struct order_view last_new; /* the last EV_NEW's order */
static uint32_t g_spam_orders;     /* the spam rule's count, when set */

static void sink(void *ctx, const struct event *ev)
{
    (void)ctx;
    n_ev[ev->type]++;
    if (ev->type == EV_MONEY) {
        n_money[ev->u.money.kind]++;
        if (ev->account < 16)
            money_sum[ev->u.money.kind][ev->account] += ev->u.money.amount;
    }
    if (ev->type == EV_NEW)
        last_new = ev->order;
    if (ev->type == EV_FUNDING && ev->inst == XBTUSD) {
        n_xbtusd_funding++;
        last_funding = ev->u.funding;
    }
}

static sats_t g_risk_limit, g_risk_step; /* XBTUSD's, when set */

static void setup_with(sats_t insurance)
{
    struct exch_config cfg;
    exch_config_default(&cfg, EXPIRY);
    if (g_risk_limit) {
        cfg.inst[XBTUSD].risk_limit = g_risk_limit;
        cfg.inst[XBTUSD].risk_step = g_risk_step;
    }
    cfg.engine.accounts_max = 16;
    cfg.engine.orders_max = 4096;
    cfg.engine.stops_max = 256;
    cfg.insurance_initial[0] = insurance;
    if (g_spam_orders)
        cfg.spam_orders = g_spam_orders;
    const char *err = NULL;
    memset(n_ev, 0, sizeof(n_ev));
    memset(n_money, 0, sizeof(n_money));
    memset(money_sum, 0, sizeof(money_sum));
    n_xbtusd_funding = 0;
    X = exch_create(&cfg, sink, NULL, &err);
    ck_assert_msg(X != NULL, "%s", err ? err : "");
    SEQ = 0;
    NOW = T0;
}

static void setup(void) { setup_with(INT64_C(1000000000)); }

static void teardown(void)
{
    exch_destroy(X);
    X = NULL;
    g_risk_limit = g_risk_step = 0;
    g_spam_orders = 0;
}

static enum reject run(struct cmd *c)
{
    c->seq = ++SEQ;
    c->ts = NOW;
    return exch_apply(X, c);
}

static enum reject deposit(uint32_t a, uint8_t cur, sats_t amt)
{
    struct cmd c = {.type = CMD_DEPOSIT, .account = a};
    c.u.money.currency = cur;
    c.u.money.amount = amt;
    return run(&c);
}

static enum reject withdraw(uint32_t a, uint8_t cur, sats_t amt)
{
    struct cmd c = {.type = CMD_WITHDRAW, .account = a};
    c.u.money.currency = cur;
    c.u.money.amount = amt;
    return run(&c);
}

static enum reject order(uint32_t a, uint16_t inst, enum side side, qty_t qty, px_t px)
{
    struct cmd c = {.type = CMD_NEW_ORDER, .account = a, .inst = inst};
    c.u.new_order.has = HAS_QTY | (px ? HAS_PRICE : 0);
    c.u.new_order.side = side;
    c.u.new_order.qty = qty;
    c.u.new_order.price = px;
    return run(&c);
}

static enum reject set_index(uint16_t idx, px_t px)
{
    struct cmd c = {.type = CMD_SET_INDEX};
    c.u.set_index.index = idx;
    c.u.set_index.price = px;
    return run(&c);
}

static enum reject leverage(uint32_t a, uint16_t inst, rate_t lev)
{
    struct cmd c = {.type = CMD_SET_LEVERAGE, .account = a, .inst = inst};
    c.u.leverage_e8 = lev;
    return run(&c);
}

static enum reject transfer(uint32_t a, uint16_t inst, sats_t amt)
{
    struct cmd c = {.type = CMD_TRANSFER_MARGIN, .account = a, .inst = inst};
    c.u.transfer = amt;
    return run(&c);
}

static enum reject clock_to(ms_t t)
{
    NOW = t;
    struct cmd c = {.type = CMD_CLOCK};
    return run(&c);
}

static struct exch_position pos(uint32_t a, uint16_t i)
{
    struct exch_position p;
    ck_assert_int_eq(exch_position(X, a, i, &p), 0);
    return p;
}

static struct exch_margin mar(uint32_t a, uint8_t cur)
{
    struct exch_margin m;
    ck_assert_int_eq(exch_margin(X, a, cur, &m), 0);
    return m;
}

static sats_t val(uint16_t i, qty_t q, px_t px)
{
    sats_t v;
    ck_assert_int_eq(mf_value(&exch_config(X)->inst[i].contract, q, px, &v), MF_OK);
    return v;
}

static sats_t fee(sats_t v, rate_t r)
{
    sats_t f;
    ck_assert_int_eq(mf_fee(v, r, &f), MF_OK);
    return f;
}

static void audit_ok(void)
{
    struct exch_audit a;
    ck_assert_msg(exch_audit(X, &a), "%s", a.report);
    ck_assert_ptr_null(exch_verify(X));
}

/* ---- trading and bookkeeping ------------------------------------------------ */

START_TEST(fill_books_cost_fees_and_entry)
{
    const struct exch_config *cfg = exch_config(X);
    ck_assert_int_eq(deposit(1, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 100, USD(46976)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(46976)), REJ_NONE);
    struct exch_position a = pos(1, XBTUSD), b = pos(2, XBTUSD);
    /* BitMEX's figure: 100 XBTUSD @ 46976 is -212875 XBt. */
    ck_assert_int_eq(a.qty, 100);
    ck_assert_int_eq(a.unrealised_cost, -212875);
    ck_assert_int_eq(b.unrealised_cost, 212875);
    px_t entry;
    ck_assert_int_eq(mf_px_to_tick(a.avg_entry_px, USD(0.5), MF_ROUND_NEAREST, &entry), MF_OK);
    ck_assert_int_eq(entry, USD(46976));
    sats_t taker = fee(-212875, cfg->inst[XBTUSD].taker_fee_e8);
    sats_t maker = fee(212875, cfg->inst[XBTUSD].maker_fee_e8);
    ck_assert_int_eq(taker, 160); /* 0.075% of 212875 = 159.66 */
    ck_assert_int_eq(maker, -21); /* the rebate, -0.01% */
    ck_assert_int_eq(mar(1, XBT).wallet, 1000000000 - taker);
    ck_assert_int_eq(mar(2, XBT).wallet, 1000000000 - maker);
    ck_assert_int_eq(a.comm, taker);
    struct exch_audit au;
    ck_assert(exch_audit(X, &au));
    ck_assert_int_eq(au.fees[XBT], taker + maker);
    audit_ok();
}
END_TEST

START_TEST(guide_example_long_15000_at_750_closed_at_800)
{
    for (uint32_t a = 1; a <= 3; a++)
        ck_assert_int_eq(deposit(a, XBT, 5000000000), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 15000, USD(750)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 15000, USD(750)), REJ_NONE);
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 15000, USD(800)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_SELL, 15000, USD(800)), REJ_NONE);
    struct exch_position a = pos(1, XBTUSD);
    ck_assert_int_eq(a.qty, 0);
    ck_assert_int_eq(a.realised_gross_pnl, 125000000); /* 1.25 XBT */
    audit_ok();
}
END_TEST

START_TEST(unaffordable_order_is_refused_and_changes_nothing)
{
    ck_assert_int_eq(deposit(1, XBT, 1000), REJ_NONE);
    uint64_t h = engine_hash(exch_engine(X));
    struct exch_margin m0 = mar(1, XBT);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(46976)), REJ_INSUFFICIENT_BALANCE);
    struct exch_margin m1 = mar(1, XBT);
    ck_assert_mem_eq(&m0, &m1, sizeof(m0));
    ck_assert_int_eq(engine_orders_live(exch_engine(X)), 0);
    (void)h;
    /* enough for IM 1% + the fee reserve: accepted */
    ck_assert_int_eq(deposit(1, XBT, 2500), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(46976)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).order_margin, 2129 + 160);
    audit_ok();
}
END_TEST

/* The order margin of a sell through the mark, derived from formula.h. */
static sats_t sell_margin(qty_t q, px_t px, px_t mark)
{
    const struct exch_instrument *in = &exch_config(X)->inst[XBTUSD];
    sats_t v = val(XBTUSD, -q, px), im = 0, comm = 0, prem = 0;
    ck_assert_int_eq(mf_margin_req(v, in->im_e8, &im), MF_OK);
    ck_assert_int_eq(mf_margin_req(v, in->taker_fee_e8, &comm), MF_OK);
    ck_assert_int_eq(mf_through_mark_premium(&in->contract, -q, px, mark, &prem), MF_OK);
    return im + comm + prem;
}

START_TEST(a_flat_accounts_order_margin_follows_the_mark)
{
    /* Account 4 holds no position, only a sell 1000 @ 49500 under a 50000
     * mark: it pays the premium through the mark. When the mark falls
     * below its price the premium goes, though no position was touched. */
    ck_assert_int_eq(deposit(4, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(4, XBTUSD, SIDE_SELL, 1000, USD(49500)), REJ_NONE);
    struct exch_instrument_state st;
    exch_instrument_state(X, XBTUSD, &st);
    sats_t before = sell_margin(1000, USD(49500), st.mark_px);
    ck_assert_int_eq(mar(4, XBT).order_margin, before);
    ck_assert_int_eq(set_index(0, USD(49000)), REJ_NONE);
    exch_instrument_state(X, XBTUSD, &st);
    ck_assert(st.mark_px < USD(49500));
    sats_t after = sell_margin(1000, USD(49500), st.mark_px);
    ck_assert(after < before);
    ck_assert_int_eq(mar(4, XBT).order_margin, after);
    audit_ok();
}
END_TEST

/* A stop that a mark move triggers is judged at the new mark, like an order
 * placed right after it. Account 1 rests a sell 1000 @ 10000; the index
 * jumps to 11000, so the sell pays a premium through the mark and account
 * 1's available goes negative. Its triggered Stop buy of 100 is on the
 * smaller side (the net-bid rule charges only the larger one): it does not
 * raise the order margin and is admitted, as the same buy placed directly
 * is. (Until the order margin became lazy, the trigger was compared with
 * the order margin at the old mark and refused.) */
START_TEST(a_stop_triggered_by_a_mark_move_is_judged_at_the_new_mark)
{
    ck_assert_int_eq(deposit(1, XBT, 200000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(10000)), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 5000, USD(10000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_SELL, 1000, USD(10000)), REJ_NONE);
    struct cmd c = {.type = CMD_NEW_ORDER, .account = 1, .inst = XBTUSD};
    c.u.new_order.has = HAS_QTY | HAS_STOP_PX;
    c.u.new_order.side = SIDE_BUY;
    c.u.new_order.ord_type = ORD_STOP;
    c.u.new_order.exec_inst = EXEC_MARK_PRICE;
    c.u.new_order.qty = 100;
    c.u.new_order.stop_px = USD(10500);
    ck_assert_int_eq(run(&c), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(set_index(0, USD(11000)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 100);
    ck_assert(mar(1, XBT).available < 0);
    /* the same order placed directly now: the same answer */
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, 0), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 200);
    audit_ok();
}
END_TEST

START_TEST(net_bid_rule_charges_the_larger_side)
{
    const struct exch_config *cfg = exch_config(X);
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 2000, USD(10000)), REJ_NONE);
    sats_t bids = -val(XBTUSD, 2000, USD(10000)); /* 20,000,000 */
    sats_t one_side;
    ck_assert_int_eq(mf_margin_req(bids, cfg->inst[XBTUSD].im_e8, &one_side), MF_OK);
    sats_t comm;
    ck_assert_int_eq(mf_margin_req(bids, cfg->inst[XBTUSD].taker_fee_e8, &comm), MF_OK);
    ck_assert_int_eq(pos(1, XBTUSD).order_margin, one_side + comm);
    /* offers of smaller value add nothing: only the net side is charged */
    ck_assert_int_eq(order(1, XBTUSD, SIDE_SELL, 1500, USD(15000)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).order_margin, one_side + comm);
    ck_assert_int_eq(mar(1, XBT).order_margin, one_side + comm);
    audit_ok();
}
END_TEST

/* ---- liquidation, insurance, ADL ------------------------------------------------ */

/* Account 1 long 10000 XBTUSD @ 50000 at 10x isolated from account 2's
 * offer (account 2 cross, large balance). */
static struct exch_position open_isolated_long(void)
{
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(3, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(leverage(1, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    struct exch_position p = pos(1, XBTUSD);
    ck_assert_int_eq(p.qty, 10000);
    ck_assert_int_eq(p.unrealised_cost, -20000000);
    ck_assert(p.pos_margin > 2000000); /* 10% + the closing fee reserve */
    ck_assert(p.liq_px > p.bankrupt_px);
    ck_assert(p.liq_px < USD(50000));
    audit_ok();
    return p;
}

START_TEST(surplus_liquidation_credits_the_fund)
{
    struct exch_position p = open_isolated_long();
    sats_t w0 = mar(1, XBT).wallet;
    sats_t fund0 = exch_insurance(X, XBT);
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 10000, USD(46000)), REJ_NONE); /* above bankruptcy */
    ck_assert_int_eq(set_index(0, USD(45000)), REJ_NONE);
    /* the owner loses exactly the isolated margin, no more */
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(mar(1, XBT).wallet, w0 - p.pos_margin);
    ck_assert_int_eq(n_money[MK_LIQUIDATION], 1);
    /* the liquidator took it at cost - margin and sold it to the bid */
    sats_t taken = p.unrealised_cost - p.pos_margin;
    sats_t sold = val(XBTUSD, -10000, USD(46000));
    ck_assert_int_eq(exch_insurance(X, XBT), fund0 - (taken + sold));
    ck_assert(exch_insurance(X, XBT) > fund0);
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(3, XBTUSD).qty, 10000);
    ck_assert_int_eq(n_money[MK_INSURANCE], 1);
    audit_ok();
}
END_TEST

START_TEST(market_close_stops_at_the_bankruptcy_price)
{
    /* A thin book: 100 bid at 49000, then nothing until 40000, far below
     * the 10x long's bankruptcy price. Selling it all at market takes the
     * 100 and cancels the rest: no fill past bankruptcy, so the owner can
     * never lose more than the isolated margin. */
    struct exch_position p = open_isolated_long();
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 100, USD(49000)), REJ_NONE);
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 10000, USD(40000)), REJ_NONE);
    sats_t w0 = mar(1, XBT).wallet;
    ck_assert_int_eq(order(1, XBTUSD, SIDE_SELL, 10000, 0), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 9900);
    ck_assert_int_eq(pos(3, XBTUSD).qty, 100);
    sats_t share = 0;
    ck_assert_int_eq(mf_cost_share(p.unrealised_cost, 10000, 100, &share), MF_OK);
    sats_t v = val(XBTUSD, -100, USD(49000));
    sats_t released = p.pos_margin / 100; /* the isolated margin of 100 of 10000 */
    ck_assert_int_eq(mar(1, XBT).wallet,
                     w0 - (share + v) - fee(v, exch_config(X)->inst[XBTUSD].taker_fee_e8));
    ck_assert_int_eq(pos(1, XBTUSD).pos_margin, p.pos_margin - released);
    /* A buy that would add to the long has no such bound. */
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 100, USD(60000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, 0), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 10000);
    audit_ok();
}
END_TEST

START_TEST(shortfall_is_paid_by_the_fund)
{
    struct exch_position p = open_isolated_long();
    sats_t fund0 = exch_insurance(X, XBT);
    px_t bid = p.bankrupt_px - USD(500); /* below bankruptcy */
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 10000, bid), REJ_NONE);
    ck_assert_int_eq(set_index(0, p.liq_px - USD(100)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    sats_t taken = p.unrealised_cost - p.pos_margin;
    sats_t sold = val(XBTUSD, -10000, bid);
    ck_assert_int_eq(exch_insurance(X, XBT), fund0 - (taken + sold));
    ck_assert(exch_insurance(X, XBT) < fund0);
    ck_assert_int_eq(pos(3, XBTUSD).qty, 10000);
    audit_ok();
}
END_TEST

START_TEST(empty_fund_deleverages_the_top_ranked_opposite_trader)
{
    teardown();
    setup_with(0);
    /* account 4 short 10000 against account 5, both cross with large
     * balances: low effective leverage; account 2 short 10000 at 10x
     * isolated: the same PnL%, higher leverage, so first in the queue. */
    ck_assert_int_eq(deposit(4, XBT, 10000000000), REJ_NONE);
    ck_assert_int_eq(deposit(5, XBT, 10000000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(4, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(5, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(leverage(1, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    ck_assert_int_eq(leverage(2, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    struct exch_position p = pos(1, XBTUSD);
    ck_assert(exch_adl_percentile(X, 2, XBTUSD) > exch_adl_percentile(X, 4, XBTUSD));
    sats_t w2 = mar(2, XBT).wallet;
    ck_assert_int_eq(set_index(0, p.liq_px - USD(100)), REJ_NONE); /* no bids at all */
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(2, XBTUSD).qty, 0);       /* deleveraged */
    ck_assert_int_eq(pos(4, XBTUSD).qty, -10000);  /* untouched */
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, XBTUSD).qty, 0);
    ck_assert_int_eq(exch_insurance(X, XBT), 0);
    ck_assert_int_eq(n_money[MK_DELEVERAGE], 1);
    /* closed at the bankruptcy value: account 2 realises cost - that value */
    sats_t at_bankruptcy = p.unrealised_cost - p.pos_margin;
    /* account 2 (short, cost +20000000) buys back at that value */
    ck_assert_int_eq(mar(2, XBT).wallet, w2 - (20000000 + at_bankruptcy));
    ck_assert_int_eq(money_sum[MK_DELEVERAGE][2], -(20000000 + at_bankruptcy));
    ck_assert(money_sum[MK_DELEVERAGE][2] > 0);
    audit_ok();
}
END_TEST

START_TEST(isolated_loss_stops_at_the_position_cross_uses_the_balance)
{
    /* Account 1 isolated 10x and account 6 cross with the same 0.1 XBT
     * wallet, both long 10000 @ 50000 (0.2 XBT of value). */
    open_isolated_long();
    ck_assert_int_eq(deposit(6, XBT, 10000000), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(6, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(pos(6, XBTUSD).qty, 10000);
    struct exch_position iso = pos(1, XBTUSD);
    sats_t w1 = mar(1, XBT).wallet;
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 10000, USD(44000)), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(45100)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(mar(1, XBT).wallet, w1 - iso.pos_margin); /* 0.1 XBT wallet kept the rest */
    ck_assert(mar(1, XBT).wallet > 0);
    ck_assert_int_eq(pos(6, XBTUSD).qty, 10000); /* the cross balance holds it */
    ck_assert(pos(6, XBTUSD).unrealised_pnl < -iso.pos_margin);
    audit_ok();
}
END_TEST

/* ---- liquidation steps down the risk tiers first --------------------------- */

static enum reject risk_limit(uint32_t a, uint16_t inst, sats_t limit)
{
    struct cmd c = {.type = CMD_SET_RISK_LIMIT, .account = a, .inst = inst};
    c.u.risk_limit = limit;
    return run(&c);
}

/* XBTUSD with a 0.1 XBT base risk limit and 0.1 XBT steps; account 1 at
 * 10x isolated long 12000 @ 50000 (0.24 XBT: step 2, MM 1.05%). */
static struct exch_position open_tiered_long(void)
{
    teardown();
    g_risk_limit = 10000000;
    g_risk_step = 10000000;
    setup_with(INT64_C(1000000000));
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(3, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(risk_limit(2, XBTUSD, 100000000), REJ_NONE); /* the other side: room */
    ck_assert_int_eq(risk_limit(3, XBTUSD, 300000000), REJ_NONE);
    ck_assert_int_eq(leverage(1, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 12000, USD(50000)), REJ_NONE);
    /* over the base limit: refused until the limit is raised */
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 12000, USD(50000)), REJ_RISK_LIMIT_EXCEEDED);
    ck_assert_int_eq(risk_limit(1, XBTUSD, 30000000), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 12000, USD(50000)), REJ_NONE);
    struct exch_position p = pos(1, XBTUSD);
    ck_assert_int_eq(p.qty, 12000);
    ck_assert_int_eq(p.risk_limit, 30000000);
    ck_assert_int_eq(p.mm_e8, 3 * 350000); /* baseMM x (1 + 2) */
    audit_ok();
    return p;
}

START_TEST(liquidation_first_drops_to_the_tier_the_position_needs)
{
    /* Account 4 raised its limit four steps for nothing: 0.09 XBT long at
     * 10x and a small bid, MM 1.75% instead of 0.35%. A fall that breaches 1.75% but not
     * 0.35% costs it its tier, not its position. */
    open_tiered_long();
    ck_assert_int_eq(deposit(4, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(leverage(4, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    ck_assert_int_eq(risk_limit(4, XBTUSD, 50000000), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 4500, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(4, XBTUSD, SIDE_BUY, 4500, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(4, XBTUSD, SIDE_BUY, 100, USD(30000)), REJ_NONE); /* rests */
    struct exch_position p = pos(4, XBTUSD);
    ck_assert_int_eq(p.mm_e8, 5 * 350000);
    ck_assert_msg(p.liq_px > USD(46000), "liq %lld", (long long)p.liq_px); /* at 1.75% */
    ck_assert_int_eq(set_index(0, USD(46000)), REJ_NONE);
    struct exch_position q = pos(4, XBTUSD);
    ck_assert_int_eq(q.qty, 4500);             /* kept */
    ck_assert_int_eq(q.risk_limit, 10000000);  /* the tier of position and orders */
    ck_assert_int_eq(q.mm_e8, 350000);
    ck_assert_int_eq(q.open_buy_qty, 100);     /* its order was not needed */
    ck_assert_msg(q.liq_px < USD(46000), "liq %lld", (long long)q.liq_px);
    ck_assert_int_eq(q.pos_margin, p.pos_margin); /* the isolated margin stays posted */
    audit_ok();
}
END_TEST

START_TEST(liquidation_sells_a_tier_at_a_time_with_fill_or_kill)
{
    struct exch_position p = open_tiered_long();
    sats_t w0 = mar(1, XBT).wallet;
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 100000, USD(47000)), REJ_NONE); /* deep bid */
    /* Below maintenance at MM 1.05% and at 0.70%, not at 0.35%. */
    ck_assert_int_eq(set_index(0, USD(45700)), REJ_NONE);
    struct exch_position q = pos(1, XBTUSD);
    /* 12000 -> 10000 (0.2 XBT, step 1) -> 5000 (0.1 XBT, step 0) */
    ck_assert_int_eq(q.qty, 5000);
    ck_assert_int_eq(q.risk_limit, 10000000);
    ck_assert_int_eq(pos(3, XBTUSD).qty, 7000);
    ck_assert_int_eq(n_money[MK_LIQUIDATION], 0); /* never taken over */
    /* The 7000 sold at the bid: the owner realised their loss and the
     * taker fee, and got the isolated margin of the part closed back. */
    sats_t share = 0, fees = 0;
    ck_assert_int_eq(mf_cost_share(p.unrealised_cost, 12000, 2000, &share), MF_OK);
    sats_t share2 = 0;
    ck_assert_int_eq(mf_cost_share(p.unrealised_cost - share, 10000, 5000, &share2), MF_OK);
    sats_t v1 = val(XBTUSD, -2000, USD(47000)), v2 = val(XBTUSD, -5000, USD(47000));
    rate_t taker = exch_config(X)->inst[XBTUSD].taker_fee_e8;
    fees = fee(v1, taker) + fee(v2, taker);
    sats_t realised = -(share + v1) - (share2 + v2);
    ck_assert_int_eq(mar(1, XBT).wallet, w0 + realised - fees);
    ck_assert_int_eq(q.unrealised_cost, p.unrealised_cost - share - share2);
    audit_ok();
}
END_TEST

START_TEST(liquidation_takes_over_when_fill_or_kill_cannot_fill)
{
    struct exch_position p = open_tiered_long();
    sats_t w0 = mar(1, XBT).wallet;
    /* the only bid is below the bankruptcy price: the FillOrKill dies */
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 100000, p.bankrupt_px - USD(1000)), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(45700)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(n_money[MK_LIQUIDATION], 1);
    ck_assert_int_eq(mar(1, XBT).wallet, w0 - p.pos_margin); /* the margin, no more */
    ck_assert_int_eq(pos(3, XBTUSD).qty, 12000);             /* the liquidator sold it all */
    audit_ok();
}
END_TEST

START_TEST(cross_account_below_maintenance_is_liquidated_whole)
{
    ck_assert_int_eq(deposit(1, XBT, 1000000), REJ_NONE); /* 0.01 XBT */
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(3, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    /* 0.2 XBT of XBTUSD on a 0.01 XBT cross wallet: 20x */
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 10000, USD(40000)), REJ_NONE);
    sats_t w = mar(1, XBT).wallet;
    ck_assert(w > 0);
    ck_assert_int_eq(set_index(0, USD(48000)), REJ_NONE); /* -0.0083 XBT: still above */
    ck_assert_int_eq(pos(1, XBTUSD).qty, 10000);
    ck_assert(mar(1, XBT).margin_balance > mar(1, XBT).maint_margin);
    ck_assert_int_eq(set_index(0, USD(47000)), REJ_NONE); /* -0.0128 XBT: below */
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(mar(1, XBT).wallet, 0); /* the whole cross balance, never below 0 */
    ck_assert_int_eq(money_sum[MK_LIQUIDATION][1], -w);
    audit_ok();
}
END_TEST

/* Issue 19, item 7: the XBt fund went from +2.16 to -6.54 XBT in one command,
 * an ETHUSD liquidation order Buy 9 @ 100,000. A cross account long a large
 * XBTUSD position and short a small ETHUSD (quanto) one gaps far past
 * bankruptcy: its negative equity, shared by maintenance (M6 b), gives the
 * ETHUSD short more loss than the position's whole value, so the
 * liquidator holds a short whose cost is positive: no positive price buys it
 * back within any fund. M6c prices the order at what the fund can pay for;
 * there is no such price here, so no order is sent and ADL closes the
 * position at the liquidator's cost. The fund never goes below zero. */
START_TEST(unpayable_quanto_short_is_deleveraged_not_bought_at_any_price)
{
    teardown();
    setup_with(500000); /* 0.005 XBT: less than the ETHUSD short lost */
    ck_assert_int_eq(deposit(1, XBT, 5000000), REJ_NONE);   /* 0.05 XBT, cross */
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(3, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(4, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(set_index(1, USD(3000)), REJ_NONE);
    /* 2 XBT of XBTUSD long and 0.027 XBT of ETHUSD short on 0.05 XBT */
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 100000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(3, ETHUSD, SIDE_BUY, 9, USD(3000)), REJ_NONE);
    ck_assert_int_eq(order(1, ETHUSD, SIDE_SELL, 9, USD(3000)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 100000);
    ck_assert_int_eq(pos(1, ETHUSD).qty, -9);
    /* an offer the liquidator could buy the ETHUSD short back from */
    ck_assert_int_eq(order(4, ETHUSD, SIDE_SELL, 9, USD(3010)), REJ_NONE);
    audit_ok();
    sats_t fund0 = exch_insurance(X, XBT);
    ck_assert_int_eq(set_index(0, USD(20000)), REJ_NONE); /* -3 XBT on 0.05 */
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(1, ETHUSD).qty, 0);
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, ETHUSD).qty, 0);
    /* before the fix: Buy 9 @ 100,000 (the price bound) bought account
     * 4's offer at 3010 and the fund went from 0.005 to -0.0384 XBT */
    ck_assert_msg(exch_insurance(X, XBT) >= 0, "fund %lld from %lld",
                  (long long)exch_insurance(X, XBT), (long long)fund0);
    /* both legs were deleveraged (no XBTUSD bids; no payable ETHUSD price),
     * which moves no money: the fund is untouched */
    ck_assert_int_eq(exch_insurance(X, XBT), fund0);
    ck_assert_int_eq(n_money[MK_INSURANCE], 0);
    ck_assert_int_eq(n_money[MK_DELEVERAGE], 2);
    ck_assert_int_eq(mar(1, XBT).wallet, 0); /* the owner never below zero */
    /* the unpayable short was deleveraged against account 3's long, and
     * nobody bought from account 4's offer */
    ck_assert_int_eq(pos(3, ETHUSD).qty, 0);
    ck_assert_int_eq(pos(4, ETHUSD).qty, 0);
    audit_ok();
}
END_TEST

/* The inverse mirror, as the seeded simulation found it (XBTH27): a cross
 * account short a large XBTUSD position and long a small future; XBT
 * triples, the short's loss shared onto the long leaves the liquidator a
 * long inverse position of positive cost, which no price sells within the
 * fund (before the fix: a Sell at the lowest tick, filled at the bid). */
START_TEST(unpayable_inverse_long_is_deleveraged_not_sold_at_any_price)
{
    teardown();
    setup_with(100000); /* 0.001 XBT */
    ck_assert_int_eq(deposit(1, XBT, 5000000), REJ_NONE);   /* 0.05 XBT, cross */
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(3, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(4, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    struct exch_instrument_state fs;
    exch_instrument_state(X, FUT, &fs);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_BUY, 100000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_SELL, 100000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(3, FUT, SIDE_SELL, 1000, fs.mark_px), REJ_NONE);
    ck_assert_int_eq(order(1, FUT, SIDE_BUY, 1000, fs.mark_px), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, -100000);
    ck_assert_int_eq(pos(1, FUT).qty, 1000);
    /* a bid the liquidator could sell the future to */
    ck_assert_int_eq(order(4, FUT, SIDE_BUY, 1000, USD(40000)), REJ_NONE);
    audit_ok();
    sats_t fund0 = exch_insurance(X, XBT);
    ck_assert_int_eq(set_index(0, USD(150000)), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(1, FUT).qty, 0);
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, XBTUSD).qty, 0);
    ck_assert_int_eq(pos(EXCH_LIQUIDATOR, FUT).qty, 0);
    ck_assert_msg(exch_insurance(X, XBT) >= 0, "fund %lld from %lld",
                  (long long)exch_insurance(X, XBT), (long long)fund0);
    ck_assert_int_eq(exch_insurance(X, XBT), fund0);
    ck_assert_int_eq(n_money[MK_INSURANCE], 0);
    ck_assert_int_eq(mar(1, XBT).wallet, 0);
    ck_assert_int_eq(pos(3, FUT).qty, 0);   /* deleveraged */
    ck_assert_int_eq(pos(4, FUT).qty, 0);   /* the bid untouched */
    audit_ok();
}
END_TEST

/* ---- funding and settlement -------------------------------------------------------- */

START_TEST(funding_pays_the_right_side_to_the_satoshi)
{
    ck_assert_int_eq(deposit(1, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 12300, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 12300, USD(50000)), REJ_NONE);
    sats_t w1 = mar(1, XBT).wallet, w2 = mar(2, XBT).wallet;
    struct exch_audit a0;
    exch_audit(X, &a0);
    struct exch_instrument_state st;
    exch_instrument_state(X, XBTUSD, &st);
    ck_assert_int_eq(st.funding_rate_e8, 10000); /* 0.01% */
    ck_assert_int_eq(st.next_funding_ms, T0 + 3 * 3600000 + 1800000); /* 04:00 */
    ck_assert_int_eq(clock_to(st.next_funding_ms), REJ_NONE);
    ck_assert_int_eq(n_xbtusd_funding, 1);
    sats_t pay, recv;
    const struct mf_contract *c = &exch_config(X)->inst[XBTUSD].contract;
    ck_assert_int_eq(mf_funding_payment(c, 12300, last_funding.mark_px, 10000, &pay), MF_OK);
    ck_assert_int_eq(mf_funding_payment(c, -12300, last_funding.mark_px, 10000, &recv), MF_OK);
    ck_assert(pay > 0 && recv < 0);
    ck_assert_int_eq(mar(1, XBT).wallet, w1 - pay); /* longs pay */
    ck_assert_int_eq(mar(2, XBT).wallet, w2 - recv); /* shorts receive */
    ck_assert_int_eq(money_sum[MK_FUNDING][1], -pay);
    struct exch_audit a1;
    exch_audit(X, &a1);
    ck_assert_int_eq(a1.rounding[XBT] - a0.rounding[XBT], pay + recv);
    ck_assert(pay + recv == 0 || pay + recv == 1);
    exch_instrument_state(X, XBTUSD, &st);
    ck_assert_int_eq(st.next_funding_ms, T0 + 11 * 3600000 + 1800000); /* 12:00 */
    audit_ok();
}
END_TEST

static ms_t g_for_ms; /* set_funding's funding time (0: the next) */

static enum reject set_funding(uint16_t inst, rate_t rate, int has_ind, rate_t ind)
{
    struct cmd c = {.type = CMD_SET_FUNDING, .inst = inst};
    c.u.set_funding.for_ms = g_for_ms;
    c.u.set_funding.rate_e8 = rate;
    c.u.set_funding.indicative_e8 = ind;
    c.u.set_funding.has_indicative = (uint8_t)has_ind;
    return run(&c);
}

/* A rate announced from outside (a backtest's data, an instructor) is the
 * one paid; the fair price and the payer's maintenance follow it at once;
 * a future, a rate beyond +-10% or an unknown instrument change nothing. */
START_TEST(an_announced_funding_rate_is_paid_and_marks_at_once)
{
    ck_assert_int_eq(deposit(1, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 12300, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 12300, USD(50000)), REJ_NONE);
    uint64_t h0 = exch_hash(X);
    ck_assert_int_eq(set_funding(FUT, 10000, 0, 0), REJ_INVALID_FUNDING);
    ck_assert_int_eq(set_funding(XBTUSD, FUNDING_RATE_MAX + 1, 0, 0), REJ_INVALID_FUNDING);
    ck_assert_int_eq(set_funding(XBTUSD, 10000, 1, -FUNDING_RATE_MAX - 1), REJ_INVALID_FUNDING);
    ck_assert_int_eq(set_funding(99, 10000, 0, 0), REJ_UNKNOWN_SYMBOL);
    struct exch_instrument_state st0;
    exch_instrument_state(X, XBTUSD, &st0);
    g_for_ms = st0.next_funding_ms + exch_config(X)->inst[XBTUSD].funding_interval_ms; /* the one after */
    ck_assert_int_eq(set_funding(XBTUSD, 10000, 0, 0), REJ_INVALID_FUNDING);
    g_for_ms = 0;
    ck_assert_uint_eq(exch_hash(X), h0);
    struct exch_position p0;
    exch_position(X, 1, XBTUSD, &p0);
    /* the long pays 0.375% at the next funding (named) */
    g_for_ms = st0.next_funding_ms;
    ck_assert_int_eq(set_funding(XBTUSD, 375000, 1, -2500), REJ_NONE);
    g_for_ms = 0;
    struct exch_instrument_state st;
    exch_instrument_state(X, XBTUSD, &st);
    ck_assert_int_eq(st.funding_rate_e8, 375000);
    ck_assert_int_eq(st.indicative_rate_e8, -2500);
    px_t fair;
    ck_assert_int_eq(mf_perp_fair_px(USD(50000), 375000, st.next_funding_ms - NOW,
                                     exch_config(X)->inst[XBTUSD].funding_interval_ms, &fair), MF_OK);
    ck_assert_int_eq(st.mark_px, fair);
    ck_assert(fair > USD(50000));
    struct exch_position p1;
    exch_position(X, 1, XBTUSD, &p1);
    ck_assert_msg(p1.maint > p0.maint, "the payer's maintenance takes in the rate: %lld -> %lld",
                  (long long)p0.maint, (long long)p1.maint);
    sats_t w1 = mar(1, XBT).wallet;
    ck_assert_int_eq(clock_to(st.next_funding_ms), REJ_NONE);
    ck_assert_int_eq(n_xbtusd_funding, 1);
    ck_assert_int_eq(last_funding.rate_e8, 375000);
    sats_t pay;
    ck_assert_int_eq(mf_funding_payment(&exch_config(X)->inst[XBTUSD].contract, 12300, last_funding.mark_px,
                                        375000, &pay), MF_OK);
    ck_assert_int_eq(mar(1, XBT).wallet, w1 - pay);
    audit_ok();
}
END_TEST

START_TEST(settlement_closes_everything)
{
    const struct exch_config *cfg = exch_config(X);
    ck_assert_int_eq(deposit(1, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 1000000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(2, FUT, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, FUT, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(2, FUT, SIDE_SELL, 500, USD(60000)), REJ_NONE); /* resting */
    sats_t w1 = mar(1, XBT).wallet, w2 = mar(2, XBT).wallet;
    NOW = EXPIRY - 3600000;
    ck_assert_int_eq(set_index(0, USD(55000)), REJ_NONE);
    ck_assert_int_eq(clock_to(EXPIRY), REJ_NONE);
    struct exch_instrument_state st;
    exch_instrument_state(X, FUT, &st);
    ck_assert(st.settled);
    ck_assert_int_eq(st.settled_px, USD(55000)); /* the index over the last 30 min */
    ck_assert_int_eq(pos(1, FUT).qty, 0);
    ck_assert_int_eq(pos(2, FUT).qty, 0);
    ck_assert_int_eq(engine_orders_live(exch_engine(X)), 0);
    sats_t v = val(FUT, 10000, USD(55000));
    sats_t f1 = fee(v, cfg->inst[FUT].settle_fee_e8), f2 = fee(-v, cfg->inst[FUT].settle_fee_e8);
    ck_assert_int_eq(mar(1, XBT).wallet, w1 + (v - -20000000) - f1);
    ck_assert_int_eq(mar(2, XBT).wallet, w2 + (-v - 20000000) - f2);
    ck_assert_int_eq(order(1, FUT, SIDE_BUY, 100, USD(50000)), REJ_INSTRUMENT_CLOSED);
    audit_ok();
}
END_TEST

/* ---- bad input: named rejects, nothing changes ---------------------------------------- */

static enum reject set_spam(uint32_t a, uint8_t on)
{
    struct cmd c = {.type = CMD_SET_SPAM, .account = a};
    c.u.spam = on;
    return run(&c);
}

/* BitMEX's spam rule: a spam account's orders worth less than 0.0025 XBT
 * become hidden, its small Post-Only orders are rejected; the daily review
 * (00:00 UTC) marks an account with spam_orders small working orders and
 * clears one with fewer. XBTUSD: q contracts at px are worth q / px XBT. */
START_TEST(spam_accounts_get_small_orders_hidden_and_post_only_rejected)
{
    teardown();
    g_spam_orders = 3;
    setup();
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 100000000), REJ_NONE);
    uint32_t small = 99;
    ck_assert_int_eq(exch_spam(X, 1, &small), 0);
    ck_assert_uint_eq(small, 0);
    /* Not marked: a small order shows. */
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(50000)), REJ_NONE); /* 0.002 XBT */
    ck_assert_int_eq(last_new.display_qty, -1);
    uint64_t first = last_new.id;
    ck_assert_int_eq(set_spam(1, 1), REJ_NONE);
    ck_assert_int_eq(exch_spam(X, 1, &small), 1);
    ck_assert_uint_eq(small, 1);
    /* Marked: a small Limit becomes hidden, a large one does not. */
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(49000)), REJ_NONE);
    ck_assert_int_eq(last_new.display_qty, 0);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 1000, USD(50000)), REJ_NONE); /* 0.02 XBT */
    ck_assert_int_eq(last_new.display_qty, -1);
    ck_assert_int_eq(exch_spam(X, 1, &small), 1);
    ck_assert_uint_eq(small, 2);
    /* A small Post-Only is rejected and changes nothing. */
    uint64_t h = exch_hash(X);
    struct cmd po = {.type = CMD_NEW_ORDER, .account = 1, .inst = XBTUSD};
    po.u.new_order.has = HAS_QTY | HAS_PRICE;
    po.u.new_order.side = SIDE_BUY;
    po.u.new_order.qty = 100;
    po.u.new_order.price = USD(48000);
    po.u.new_order.exec_inst = EXEC_POST_ONLY;
    ck_assert_int_eq(run(&po), REJ_SPAM_POST_ONLY);
    ck_assert_uint_eq(exch_hash(X), h);
    ck_assert_str_eq(engine_reject_name(REJ_SPAM_POST_ONLY), "spam_post_only");
    /* Another account is untouched. */
    ck_assert_int_eq(order(2, XBTUSD, SIDE_BUY, 100, USD(47000)), REJ_NONE);
    ck_assert_int_eq(last_new.display_qty, -1);
    /* Cleared by the admin: shows again. */
    ck_assert_int_eq(set_spam(1, 0), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(46000)), REJ_NONE);
    ck_assert_int_eq(last_new.display_qty, -1);
    ck_assert_int_eq(exch_spam(X, 1, &small), 0);
    ck_assert_uint_eq(small, 3);
    /* Marked, an invalid order keeps its own reason: a displayQty above the
     * quantity, a Post-Only Market order. */
    ck_assert_int_eq(set_spam(1, 1), REJ_NONE);
    struct cmd bad = po;
    bad.u.new_order.exec_inst = 0;
    bad.u.new_order.has |= HAS_DISPLAY_QTY;
    bad.u.new_order.display_qty = 200;
    ck_assert_int_eq(run(&bad), REJ_INVALID_DISPLAY_QTY);
    bad = po;
    bad.u.new_order.has = HAS_QTY;
    ck_assert_int_eq(run(&bad), REJ_INVALID_EXEC_INST);
    ck_assert_int_eq(set_spam(1, 0), REJ_NONE);
    /* Account 3, exempt (an agent's), with 3 small orders too. */
    ck_assert_int_eq(deposit(3, XBT, 100000000), REJ_NONE);
    exch_spam_exempt(X, 3);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(order(3, XBTUSD, SIDE_BUY, 100, USD(45000 - 100 * k)), REJ_NONE);
    /* The review at the next 00:00 UTC runs before the command that brings
     * the time: account 1 (3 small orders) is marked, and that very order
     * is hidden; not account 2 (1 small order), nor the exempt account 3. */
    NOW = T0 - T0 % MS_PER_DAY + MS_PER_DAY + 1;
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 100, USD(44000)), REJ_NONE);
    ck_assert_int_eq(last_new.display_qty, 0);
    ck_assert_int_eq(exch_spam(X, 1, &small), 1);
    ck_assert_uint_eq(small, 4);
    ck_assert_int_eq(exch_spam(X, 2, NULL), 0);
    ck_assert_int_eq(exch_spam(X, 3, NULL), 0);
    /* Below the count at the next review: cleared. */
    struct cmd cx = {.type = CMD_CANCEL, .account = 1, .inst = XBTUSD};
    cx.u.cancel.order_id = first;
    ck_assert_int_eq(run(&cx), REJ_NONE);
    ck_assert_int_eq(exch_spam(X, 1, &small), 1);
    ck_assert_uint_eq(small, 3);
    cx.u.cancel.order_id = last_new.id;
    ck_assert_int_eq(run(&cx), REJ_NONE);
    NOW += MS_PER_DAY;
    ck_assert_int_eq(deposit(2, XBT, 1), REJ_NONE);
    ck_assert_int_eq(exch_spam(X, 1, NULL), 0);
    /* The liquidator and unknown accounts are not accounts to mark. */
    ck_assert_int_eq(set_spam(0, 1), REJ_UNKNOWN_ACCOUNT);
    ck_assert_int_eq(exch_spam(X, 0, NULL), -1);
    ck_assert_int_eq(exch_spam(X, 99, NULL), -1);
    ck_assert_ptr_null(exch_verify(X));
}
END_TEST

START_TEST(bad_margin_commands_are_refused_and_change_nothing)
{
    ck_assert_int_eq(deposit(1, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(deposit(2, XBT, 100000000), REJ_NONE);
    ck_assert_int_eq(set_index(0, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(2, XBTUSD, SIDE_SELL, 10000, USD(50000)), REJ_NONE);
    ck_assert_int_eq(order(1, XBTUSD, SIDE_BUY, 10000, USD(50000)), REJ_NONE);
    struct exch_margin m0 = mar(1, XBT);
    struct exch_position p0 = pos(1, XBTUSD);
    struct exch_audit a0;
    exch_audit(X, &a0);
    ck_assert_int_eq(deposit(1, 9, 100), REJ_INVALID_CURRENCY);
    ck_assert_int_eq(deposit(1, XBT, 0), REJ_INVALID_AMOUNT);
    ck_assert_int_eq(deposit(1, XBT, -5), REJ_INVALID_AMOUNT);
    ck_assert_int_eq(withdraw(1, XBT, m0.withdrawable + 1), REJ_INSUFFICIENT_WITHDRAWABLE);
    ck_assert_int_eq(withdraw(1, XBT, m0.wallet), REJ_INSUFFICIENT_WITHDRAWABLE);
    ck_assert_int_eq(leverage(1, XBTUSD, MF_RATE_SCALE / 1000), REJ_INVALID_LEVERAGE); /* 0.001 */
    ck_assert_int_eq(leverage(1, XBTUSD, 101 * MF_RATE_SCALE), REJ_INVALID_LEVERAGE);
    ck_assert_int_eq(leverage(1, ETHUSD, 75 * MF_RATE_SCALE), REJ_INVALID_LEVERAGE); /* 50x max */
    ck_assert_int_eq(transfer(1, XBTUSD, 1000), REJ_NOT_ISOLATED);
    ck_assert_int_eq(leverage(1, XBTUSD, 0), REJ_NONE); /* cross again: no change */
    struct cmd rl = {.type = CMD_SET_RISK_LIMIT, .account = 1, .inst = XBTUSD};
    rl.u.risk_limit = 20000000001;
    ck_assert_int_eq(run(&rl), REJ_INVALID_RISK_LIMIT);
    struct exch_margin m1 = mar(1, XBT);
    struct exch_position p1 = pos(1, XBTUSD);
    ck_assert_mem_eq(&m0, &m1, sizeof(m0));
    ck_assert_mem_eq(&p0, &p1, sizeof(p0));
    struct exch_audit a1;
    exch_audit(X, &a1);
    ck_assert_mem_eq(&a0, &a1, sizeof(a0));
    /* isolated: transfers within bounds work, beyond them are refused */
    ck_assert_int_eq(leverage(1, XBTUSD, 10 * MF_RATE_SCALE), REJ_NONE);
    struct exch_position iso = pos(1, XBTUSD);
    struct exch_margin mi = mar(1, XBT);
    ck_assert_int_eq(transfer(1, XBTUSD, mi.available + 1), REJ_INSUFFICIENT_BALANCE);
    ck_assert_int_eq(transfer(1, XBTUSD, -1), REJ_TRANSFER_TOO_LARGE);
    ck_assert_int_eq(transfer(1, XBTUSD, 5000), REJ_NONE);
    ck_assert_int_eq(pos(1, XBTUSD).pos_margin, iso.pos_margin + 5000);
    ck_assert_int_eq(transfer(1, XBTUSD, -5000), REJ_NONE);
    ck_assert_int_eq(transfer(2, XBTUSD, 1), REJ_NOT_ISOLATED);
    ck_assert_int_eq(withdraw(1, XBT, mar(1, XBT).withdrawable), REJ_NONE);
    ck_assert_int_eq(mar(1, XBT).withdrawable, 0);
    audit_ok();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("exchange");
    TCase *t = tcase_create("exchange");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, fill_books_cost_fees_and_entry);
    tcase_add_test(t, a_flat_accounts_order_margin_follows_the_mark);
    tcase_add_test(t, a_stop_triggered_by_a_mark_move_is_judged_at_the_new_mark);
    tcase_add_test(t, market_close_stops_at_the_bankruptcy_price);
    tcase_add_test(t, liquidation_first_drops_to_the_tier_the_position_needs);
    tcase_add_test(t, liquidation_sells_a_tier_at_a_time_with_fill_or_kill);
    tcase_add_test(t, liquidation_takes_over_when_fill_or_kill_cannot_fill);
    tcase_add_test(t, guide_example_long_15000_at_750_closed_at_800);
    tcase_add_test(t, unaffordable_order_is_refused_and_changes_nothing);
    tcase_add_test(t, net_bid_rule_charges_the_larger_side);
    tcase_add_test(t, surplus_liquidation_credits_the_fund);
    tcase_add_test(t, shortfall_is_paid_by_the_fund);
    tcase_add_test(t, empty_fund_deleverages_the_top_ranked_opposite_trader);
    tcase_add_test(t, isolated_loss_stops_at_the_position_cross_uses_the_balance);
    tcase_add_test(t, cross_account_below_maintenance_is_liquidated_whole);
    tcase_add_test(t, unpayable_quanto_short_is_deleveraged_not_bought_at_any_price);
    tcase_add_test(t, unpayable_inverse_long_is_deleveraged_not_sold_at_any_price);
    tcase_add_test(t, funding_pays_the_right_side_to_the_satoshi);
    tcase_add_test(t, an_announced_funding_rate_is_paid_and_marks_at_once);
    tcase_add_test(t, settlement_closes_everything);
    tcase_add_test(t, bad_margin_commands_are_refused_and_change_nothing);
    tcase_add_test(t, spam_accounts_get_small_orders_hidden_and_post_only_rejected);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
