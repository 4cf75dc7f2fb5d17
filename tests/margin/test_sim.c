/*
 * test_sim.c - the seeded margin simulation: hundreds of accounts trading
 * four instruments at leverage up to 100x, market makers quoting around the
 * mark, an index random walk with jumps that sets off liquidation cascades
 * and auto-deleveraging, funding every 8 hours over simulated weeks and a
 * quarterly future settling inside the run. After every command the money
 * audit must hold (and, in the checked build, exch_verify: every cached sum
 * recomputed). The run must also have exercised what it is for: it fails
 * when no liquidation, no ADL, no funding or no settlement happened.
 *
 * Environment: PERPSIM_SEED (default 1), PERPSIM_SIM_COMMANDS (default
 * 1,000,000), PERPSIM_SIM_JUMP_BP (the largest index jump, default 1500 =
 * 15%; larger gaps take accounts far past bankruptcy), PERPSIM_SIM_FUND_CAP
 * (XBt: the fund's surplus above it is withdrawn after each command, so a
 * thin fund meets the gaps; default none). The seed is printed first and
 * again on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "margin/exchange.h"

#define ACCOUNTS 301 /* 0 is the liquidator */
#define MAKERS 20
#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define RECENT 4096

static uint64_t rng_state;
static uint64_t seed;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * UINT64_C(2685821657736338717);
}

static int64_t range(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static struct {
    uint64_t liquidations, deleverages, insurance, funding_rows, fundings, settlements;
    uint64_t fills, rejects, accepted;
} st;

static uint64_t recent_id[RECENT];
static uint32_t recent_acct[RECENT];
static uint32_t recent_n;

static void sink(void *ctx, const struct event *ev)
{
    (void)ctx;
    switch (ev->type) {
    case EV_MONEY:
        if (ev->u.money.kind == MK_LIQUIDATION)
            st.liquidations++;
        else if (ev->u.money.kind == MK_DELEVERAGE)
            st.deleverages++;
        else if (ev->u.money.kind == MK_INSURANCE)
            st.insurance++;
        else if (ev->u.money.kind == MK_FUNDING)
            st.funding_rows++;
        else if (ev->u.money.kind == MK_SETTLEMENT)
            st.settlements++;
        break;
    case EV_FUNDING:
        st.fundings++;
        break;
    case EV_FILL:
        st.fills++;
        break;
    case EV_REJECTED:
        st.rejects++;
        break;
    case EV_NEW:
        if (ev->account != EXCH_LIQUIDATOR) {
            recent_id[recent_n % RECENT] = ev->order.id;
            recent_acct[recent_n % RECENT] = ev->account;
            recent_n++;
        }
        break;
    default:
        break;
    }
}

static uint64_t cur_seq;

static void audit_failed(void *ctx, const struct cmd *c, const struct exch_audit *a)
{
    (void)ctx;
    fprintf(stderr, "AUDIT FAILED at command %llu (type %d account %u): %s\nreplay: PERPSIM_SEED=%llu\n",
            (unsigned long long)c->seq, c->type, c->account, a->report, (unsigned long long)seed);
    exit(1);
}

static struct exch *X;
static ms_t now;

/* M6c: the liquidator's order is priced at what the insurance fund can pay
 * for and ADL closes whatever that price cannot, at the liquidator's cost
 * (which moves no money): so the fund, the liquidator's wallet, never goes
 * below zero. Checked after every command (run()). */
static void fund_check(const struct cmd *c)
{
    for (int k = 0; k < exch_config(X)->currencies_count; k++) {
        sats_t f = exch_insurance(X, (uint8_t)k);
        if (f < 0) {
            fprintf(stderr,
                    "INSURANCE FUND NEGATIVE at command %llu (type %d account %u inst %u): "
                    "currency %d fund %lld\nreplay: PERPSIM_SEED=%llu\n",
                    (unsigned long long)c->seq, c->type, c->account, c->inst, k, (long long)f,
                    (unsigned long long)seed);
            exit(1);
        }
    }
}

static enum reject run(struct cmd *c)
{
    c->seq = ++cur_seq;
    c->ts = now;
    enum reject r = exch_apply(X, c);
    if (r == REJ_NONE)
        st.accepted++;
    fund_check(c);
    return r;
}

static px_t to_tick(px_t px, px_t tick)
{
    px -= px % tick;
    return px < tick ? tick : px;
}

static int64_t jump_max_bp = 1500;
static sats_t fund_cap; /* 0: the fund keeps what it earns */

static void index_move(px_t *index, int idx)
{
    /* a walk of +-0.3%, and 1 move in 40 a jump of 3-15% (down 2 in 3;
     * PERPSIM_SIM_JUMP_BP raises the 15%) */
    int64_t bp = range(-30, 30);
    if (range(0, 39) == 0)
        bp = range(300, jump_max_bp) * (range(0, 2) ? -1 : 1);
    px_t next = *index + (px_t)((i128)*index * bp / 10000);
    if (next < 20000 * PX_SCALE / (idx ? 10 : 1))
        next = 20000 * PX_SCALE / (idx ? 10 : 1) + range(0, 100) * PX_SCALE;
    if (next > 90000 * PX_SCALE / (idx ? 10 : 1))
        next = 90000 * PX_SCALE / (idx ? 10 : 1) - range(0, 100) * PX_SCALE;
    *index = next;
    struct cmd c = {.type = CMD_SET_INDEX};
    c.u.set_index.index = (uint16_t)idx;
    c.u.set_index.price = next;
    run(&c);
}

int main(void)
{
    const char *s = getenv("PERPSIM_SEED");
    seed = s ? strtoull(s, NULL, 10) : 1;
    const char *n = getenv("PERPSIM_SIM_COMMANDS");
    uint64_t commands = n ? strtoull(n, NULL, 10) : 1000000;
    const char *j = getenv("PERPSIM_SIM_JUMP_BP");
    if (j && strtoll(j, NULL, 10) > 300)
        jump_max_bp = strtoll(j, NULL, 10) > 9000 ? 9000 : strtoll(j, NULL, 10);
    const char *fc = getenv("PERPSIM_SIM_FUND_CAP");
    fund_cap = fc ? strtoll(fc, NULL, 10) : 0;
    rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    printf("margin simulation: seed %llu, %llu commands\n", (unsigned long long)seed,
           (unsigned long long)commands);

    struct exch_config cfg;
    ms_t expiry = T0 + 6 * MS_PER_DAY + 12 * 3600000; /* settles inside the run */
    exch_config_default(&cfg, expiry);
    cfg.engine.accounts_max = ACCOUNTS;
    cfg.engine.orders_max = 1u << 15;
    cfg.engine.stops_max = 4096;
    cfg.engine.open_orders_max = 50;
    cfg.engine.verify_every = 101; /* the audit still runs after every command */
    cfg.insurance_initial[0] = 2000000;      /* 0.02 XBT: runs dry in a crash */
    cfg.insurance_initial[1] = 1000000000;   /* 1,000 USDT */
    /* Small risk limits, so that positions climb the risk tiers and
     * liquidations step them down (FillOrKill a tier at a time). */
    for (uint16_t i = 0; i < cfg.engine.instruments_count; i++) {
        sats_t unit = cfg.inst[i].currency == 0 ? INT64_C(100000000) : INT64_C(50000000000);
        cfg.inst[i].risk_limit = unit; /* 1 XBT or 50,000 USDT, steps of as much */
        cfg.inst[i].risk_step = unit;
    }
    const char *err = NULL;
    X = exch_create(&cfg, sink, NULL, &err);
    if (!X) {
        fprintf(stderr, "exch_create: %s\n", err);
        return 1;
    }
    exch_on_audit_fail(X, audit_failed, NULL);
    now = T0;
    px_t index[2] = {50000 * PX_SCALE, 3000 * PX_SCALE};
    for (int i = 0; i < 2; i++) {
        struct cmd c = {.type = CMD_SET_INDEX};
        c.u.set_index.index = (uint16_t)i;
        c.u.set_index.price = index[i];
        run(&c);
    }
    for (uint32_t a = 1; a < ACCOUNTS; a++) {
        struct cmd c = {.type = CMD_DEPOSIT, .account = a};
        c.u.money.currency = 0;
        c.u.money.amount = a <= MAKERS ? INT64_C(10000000000) : range(1000000, 100000000);
        run(&c);
        c.u.money.currency = 1;
        c.u.money.amount = a <= MAKERS ? INT64_C(5000000000000) : range(1000000000, 50000000000);
        run(&c);
        for (uint16_t i = 0; i < cfg.engine.instruments_count; i++) {
            if (a <= MAKERS) { /* market makers take the top tier */
                struct cmd r = {.type = CMD_SET_RISK_LIMIT, .account = a, .inst = i};
                r.u.risk_limit = cfg.inst[i].risk_limit + RISK_STEPS_MAX * cfg.inst[i].risk_step;
                run(&r);
            }
            if (a <= MAKERS || range(0, 2) == 0)
                continue; /* cross */
            struct cmd l = {.type = CMD_SET_LEVERAGE, .account = a, .inst = i};
            l.u.leverage_e8 = range(1, 100) * MF_RATE_SCALE;
            run(&l);
        }
    }

    struct exch_audit au;
    for (uint64_t k = 0; k < commands; k++) {
        now += range(20, 2400);
        uint32_t a = (uint32_t)range(1, ACCOUNTS - 1);
        uint16_t inst = (uint16_t)range(0, cfg.engine.instruments_count - 1);
        const struct engine_instrument *ei = &cfg.engine.instruments[inst];
        struct exch_instrument_state is;
        exch_instrument_state(X, inst, &is);
        px_t mark = is.mark_px ? is.mark_px : index[cfg.inst[inst].index];
        int roll = (int)range(0, 999);
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.account = a;
        c.inst = inst;
        if (roll < 30) {
            index_move(&index[range(0, 1)], (int)range(0, 1));
            continue;
        } else if (roll < 480 || a <= MAKERS) {
            /* a limit order near the mark; makers quote, traders lean in */
            int buy = (int)range(0, 1);
            int64_t off_bp = a <= MAKERS ? range(2, 80) : range(-40, 60);
            px_t px = mark + (px_t)((i128)mark * off_bp / 10000) * (buy ? -1 : 1);
            c.type = CMD_NEW_ORDER;
            c.u.new_order.has = HAS_QTY | HAS_PRICE;
            c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * range(1, a <= MAKERS ? 200 : 60);
            c.u.new_order.price = to_tick(px > 0 ? px : ei->tick_px, ei->tick_px);
            if (range(0, 9) == 0)
                c.u.new_order.tif = TIF_IOC;
            if (range(0, 19) == 0)
                c.u.new_order.exec_inst = EXEC_POST_ONLY;
        } else if (roll < 640) {
            c.type = CMD_NEW_ORDER; /* market */
            c.u.new_order.has = HAS_QTY;
            c.u.new_order.side = range(0, 1) ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * range(1, 80);
        } else if (roll < 700) {
            c.type = CMD_NEW_ORDER; /* a stop on the mark */
            int buy = (int)range(0, 1);
            c.u.new_order.has = HAS_QTY | HAS_STOP_PX;
            c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * range(1, 40);
            px_t sp = mark + (px_t)((i128)mark * range(20, 300) / 10000) * (buy ? 1 : -1);
            c.u.new_order.stop_px = to_tick(sp, ei->tick_px);
            if (range(0, 3) == 0)
                c.u.new_order.exec_inst = EXEC_CLOSE;
        } else if (roll < 860) {
            if (!recent_n)
                continue;
            uint32_t r = (uint32_t)range(0, (recent_n < RECENT ? recent_n : RECENT) - 1);
            c.account = recent_acct[r];
            if (range(0, 3) == 0) {
                c.type = CMD_AMEND;
                c.u.amend.ref.order_id = recent_id[r];
                c.u.amend.has = AMD_LEAVES;
                c.u.amend.leaves = ei->lot_qty * range(1, 20);
            } else {
                c.type = CMD_CANCEL;
                c.u.cancel.order_id = recent_id[r];
            }
        } else if (roll < 880) {
            c.type = CMD_SET_LEVERAGE;
            c.u.leverage_e8 = range(0, 3) == 0 ? 0 : range(1, 10000) * (MF_RATE_SCALE / 100);
        } else if (roll < 895) {
            c.type = CMD_TRANSFER_MARGIN;
            c.u.transfer = range(-200000, 400000);
        } else if (roll < 905) {
            c.type = CMD_SET_RISK_LIMIT;
            c.u.risk_limit = cfg.inst[inst].risk_limit + range(0, 40) * cfg.inst[inst].risk_step;
        } else if (roll < 935) {
            c.type = range(0, 1) ? CMD_DEPOSIT : CMD_WITHDRAW;
            c.u.money.currency = (uint8_t)range(0, 1);
            c.u.money.amount = range(1, c.u.money.currency ? 10000000000 : 20000000);
        } else if (roll < 945) {
            c.type = CMD_CANCEL_ALL;
            c.u.cancel_all.inst = inst;
        } else {
            c.type = CMD_CLOCK;
        }
        run(&c);
        if (!exch_audit(X, &au))
            audit_failed(NULL, &c, &au);
        if (fund_cap > 0 && exch_insurance(X, 0) > fund_cap) {
            /* the exchange pays the XBt fund's surplus out, keeping it thin */
            struct cmd w = {.type = CMD_WITHDRAW, .account = EXCH_LIQUIDATOR};
            w.u.money.currency = 0;
            w.u.money.amount = exch_insurance(X, 0) - fund_cap;
            run(&w);
        }
    }
    const char *bad = exch_verify(X);
    printf("fills %llu, accepted %llu, rejects %llu\n", (unsigned long long)st.fills,
           (unsigned long long)st.accepted, (unsigned long long)st.rejects);
    printf("liquidations %llu, insurance moves %llu, ADL closes %llu\n",
           (unsigned long long)st.liquidations, (unsigned long long)st.insurance,
           (unsigned long long)st.deleverages);
    printf("funding events %llu (%llu payments), settlements %llu, simulated %.1f days\n",
           (unsigned long long)st.fundings, (unsigned long long)st.funding_rows,
           (unsigned long long)st.settlements, (double)(now - T0) / MS_PER_DAY);
    exch_audit(X, &au);
    for (int c = 0; c < cfg.currencies_count; c++)
        printf("%s: wallets+fund+fees+rounding+open = %lld = deposits-withdrawals %lld "
               "(fund %lld, fees %lld, rounding %lld)\n",
               cfg.currency[c], (long long)au.total[c], (long long)au.expected[c],
               (long long)au.insurance[c], (long long)au.fees[c], (long long)au.rounding[c]);
    int fail = 0;
    if (bad) {
        fprintf(stderr, "verify: %s\n", bad);
        fail = 1;
    }
    if (commands >= 100000 &&
        (!st.liquidations || !st.deleverages || !st.fundings ||
         (now > expiry && !st.settlements))) {
        fprintf(stderr, "the run did not exercise every mechanism\n");
        fail = 1;
    }
    if (fail)
        fprintf(stderr, "replay: PERPSIM_SEED=%llu\n", (unsigned long long)seed);
    exch_destroy(X);
    return fail;
}
