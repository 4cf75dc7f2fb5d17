/*
 * bench_margin.c - the margin core's two benchmarks (issue 3):
 *
 *  1. mixed-margin: the mixed order workload through exch_apply(), so every
 *     order pays the pre-trade margin check, every fill books two positions
 *     and fees, every order event updates the order-margin inputs. The mix
 *     and sizes are bench_engine's mixed workload, on XBTUSD with the index
 *     fixed at 50,000 USD (the mark, 50,000 x (1 + funding basis), is a few
 *     USD above) and 1,000 funded accounts: 45% GTC limit orders (side
 *     50/50, 1 to 500 ticks from 50,000 on their side, 100 to 2,000
 *     contracts), 35% cancels of a live order, 5% amends of a live order's
 *     price (a new one on its side, never the same), 5% amends of its
 *     leaves (100 to 2,000, never the same; lower keeps the queue place),
 *     5% IOC orders 5 ticks through the opposite best (one tick on their
 *     own side of 50,000 when that side is empty), 5% Market orders.
 *     The IOC and Market size steers the book towards 5,000 resting orders
 *     (1,000 with --small): 1,050 x m x U[0.5,1.5) contracts, m = clamp(1 +
 *     8 x (resting - target) / target, 0.25, 16), so each takes about one
 *     resting order at the target. While fewer than half the target rest
 *     (at the start), every command places. Commands are generated once on a scratch
 *     exchange (to know which orders are live) and replayed on a fresh
 *     one, which must emit exactly the same number of events: the timing
 *     covers only exch_apply(). The generator makes no reject on purpose;
 *     more than 0.1% fails the benchmark. Target: >= 5,000,000 commands/s
 *     and p99 <= 1 us.
 *  2. remargin-100k: 100,000 open XBTUSD positions (50,000 long / short
 *     pairs, half cross, half isolated at 1x-100x); one index change moves
 *     the mark and re-margins every position (and checks each for
 *     liquidation). The time of one CMD_SET_INDEX, over 21 moves of +-0.1%
 *     (none liquidates), median and worst. Target: <= 10 ms.
 *
 * --small runs both at a fraction of the size (the test suite does this so
 * the program cannot rot); --commands N sets the mixed workload's length
 * (for profilers). It also replays the same commands with hints (the
 * commands read ahead, exch_prefetch), and on the engine alone, without the margin core, to show how the
 * time splits. Exit 1 only when something is wrong (a replay
 * that differs, an audit that fails), never for a missed target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "margin/exchange.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define MARK_USD 50000
#define BAND_TICKS 500 /* limit prices within 0.5% of the mark */

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * UINT64_C(2685821657736338717);
}
static int64_t range(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- live-order tracking from events (generation pass) ------------------ */

struct live {
    uint64_t *id;
    uint32_t *acct;
    uint32_t n, cap;
    uint32_t *slot; /* by order id: its index in id[] + 1, 0 when not live */
    uint64_t ids;   /* the size of slot[] */
    uint64_t events;
};

static void live_del(struct live *l, uint64_t id)
{
    if (id >= l->ids || l->slot[id] == 0)
        return;
    uint32_t k = l->slot[id] - 1;
    l->slot[id] = 0;
    if (k != --l->n) {
        l->id[k] = l->id[l->n];
        l->acct[k] = l->acct[l->n];
        l->slot[l->id[k]] = k + 1;
    }
}

static void sink_live(void *ctx, const struct event *ev)
{
    struct live *l = ctx;
    l->events++;
    if (ev->account == EXCH_LIQUIDATOR)
        return;
    if ((ev->type == EV_NEW || ev->type == EV_AMENDED || ev->type == EV_FILL) &&
        ev->order.working && ev->order.leaves > 0) {
        if (ev->type == EV_NEW && l->n < l->cap && ev->order.id < l->ids) {
            l->slot[ev->order.id] = l->n + 1;
            l->id[l->n] = ev->order.id;
            l->acct[l->n++] = ev->account;
        }
    } else if (ev->type == EV_CANCELED || (ev->type == EV_FILL && ev->order.leaves == 0)) {
        live_del(l, ev->order.id);
    }
}

static void sink_count(void *ctx, const struct event *ev)
{
    (void)ev;
    (*(uint64_t *)ctx)++;
}

static void audit_fail(void *ctx, const struct cmd *c, const struct exch_audit *a)
{
    (void)ctx;
    fprintf(stderr, "bench_margin: audit failed at seq %llu: %s\n", (unsigned long long)c->seq,
            a->report);
    exit(1);
}

static void base_config(struct exch_config *cfg, uint32_t accounts, uint32_t orders)
{
    exch_config_default(cfg, T0 + 120 * MS_PER_DAY);
    cfg->engine.accounts_max = accounts;
    cfg->engine.orders_max = orders;
    cfg->engine.stops_max = 1024;
    cfg->engine.open_orders_max = 100000;
}

static void setup_market(struct exch *x, uint64_t *seq, uint32_t accounts)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_SET_INDEX;
    c.seq = ++*seq;
    c.ts = T0;
    c.u.set_index.price = MARK_USD * PX_SCALE;
    exch_apply(x, &c);
    for (uint32_t a = 1; a < accounts; a++) {
        memset(&c, 0, sizeof(c));
        c.type = CMD_DEPOSIT;
        c.seq = ++*seq;
        c.ts = T0;
        c.account = a;
        c.u.money.amount = INT64_C(100000000000); /* 1,000 XBT: nothing is refused for money */
        exch_apply(x, &c);
    }
}

/* A fresh exchange with the market set up, counting its events into
 * *events; NULL when it cannot be made or its setup differs from the
 * generation pass's (setup_seq). */
static struct exch *fresh_market(const struct exch_config *cfg, uint64_t *events,
                                 uint32_t accounts, uint64_t setup_seq)
{
    const char *err = NULL;
    struct exch *x = exch_create(cfg, sink_count, events, &err);
    if (!x) {
        fprintf(stderr, "exch_create: %s\n", err);
        return NULL;
    }
    exch_on_audit_fail(x, audit_fail, NULL);
    uint64_t seq = 0;
    setup_market(x, &seq, accounts);
    if (seq != setup_seq) {
        exch_destroy(x);
        return NULL;
    }
    return x;
}

/* ---- 1. mixed-margin -------------------------------------------------------- */

static int mixed(int small, uint64_t commands)
{
    const uint32_t accounts = 1001;
    const uint64_t n = commands ? commands : small ? 20000 : 5000000;
    struct exch_config cfg;
    base_config(&cfg, accounts, 1u << 16);
    struct live l = {.cap = 1u << 16};
    l.id = calloc(l.cap, sizeof(*l.id));
    l.acct = calloc(l.cap, sizeof(*l.acct));
    l.ids = n + 2; /* order ids are 1, 2, ... one per accepted order at most */
    l.slot = calloc(l.ids, sizeof(*l.slot));
    struct cmd *cmds = calloc(n, sizeof(*cmds));
    uint32_t *lat = calloc(n, sizeof(*lat));
    if (!l.id || !l.acct || !l.slot || !cmds || !lat)
        return 1;
    const char *err = NULL;
    struct exch *g = exch_create(&cfg, sink_live, &l, &err);
    if (!g) {
        fprintf(stderr, "exch_create: %s\n", err);
        return 1;
    }
    uint64_t seq = 0;
    setup_market(g, &seq, accounts);
    uint64_t setup_seq = seq;
    px_t mark = MARK_USD * PX_SCALE, tick = PX_SCALE / 2;
    ms_t ts = T0;
    const uint32_t target = small ? 1000 : 5000; /* resting orders */
    uint64_t rejects = 0;
    for (uint64_t k = 0; k < n; k++) {
        struct cmd *c = &cmds[k];
        memset(c, 0, sizeof(*c));
        c->seq = ++seq;
        if (k % 100 == 0)
            ts++;
        c->ts = ts;
        c->inst = 0;
        c->account = (uint32_t)range(1, accounts - 1);
        int roll = (int)range(0, 99);
        if (l.n < target / 2)
            roll = 0; /* build the book first */
        if ((roll >= 45 && roll < 90) && l.n == 0)
            roll = 0; /* nothing to cancel or amend: place */
        struct order_view v;
        uint32_t r = l.n ? (uint32_t)range(0, l.n - 1) : 0;
        if (roll >= 80 && roll < 90 && !engine_order(exch_engine(g), l.id[r], &v))
            return 1; /* the live-order list and the engine disagree */
        if (roll < 45) {
            int buy = (int)range(0, 1);
            c->type = CMD_NEW_ORDER;
            c->u.new_order.has = HAS_QTY | HAS_PRICE;
            c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c->u.new_order.qty = 100 * range(1, 20);
            c->u.new_order.price = mark + (buy ? -1 : 1) * range(1, BAND_TICKS) * tick;
        } else if (roll < 80) {
            c->type = CMD_CANCEL;
            c->account = l.acct[r];
            c->u.cancel.order_id = l.id[r];
        } else if (roll < 90) {
            c->type = CMD_AMEND;
            c->account = l.acct[r];
            c->u.amend.ref.order_id = l.id[r];
            if (roll < 85) { /* a new price on its side, never its current one */
                px_t px;
                do
                    px = mark + (v.side == SIDE_BUY ? -1 : 1) * range(1, BAND_TICKS) * tick;
                while (px == v.price);
                c->u.amend.has = AMD_PRICE;
                c->u.amend.price = px;
            } else { /* new leaves, never the current ones (lower keeps the queue place) */
                qty_t q;
                do
                    q = 100 * range(1, 20);
                while (q == v.leaves);
                c->u.amend.has = AMD_LEAVES;
                c->u.amend.leaves = q;
            }
        } else {
            /* IOC 5 ticks through the opposite best, or Market; the size
             * steers the book: 1,050 x m x U[0.5,1.5) contracts,
             * m = clamp(1 + 8 (resting - target) / target, 0.25, 16) */
            int buy = (int)range(0, 1);
            double m = 1.0 + 8.0 * ((double)l.n - target) / target;
            m = m < 0.25 ? 0.25 : m > 16 ? 16 : m;
            double u = 0.5 + (double)(rnd() >> 11) / 9007199254740992.0;
            int64_t lots = (int64_t)(10.5 * m * u + 0.5);
            c->type = CMD_NEW_ORDER;
            c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c->u.new_order.qty = 100 * (lots < 1 ? 1 : lots);
            if (roll < 95) {
                px_t best = engine_best(exch_engine(g), 0, buy ? SIDE_SELL : SIDE_BUY);
                c->u.new_order.has = HAS_QTY | HAS_PRICE;
                c->u.new_order.tif = TIF_IOC;
                c->u.new_order.price = best ? best + (buy ? 5 : -5) * tick : mark + (buy ? -1 : 1) * tick;
            } else {
                c->u.new_order.has = HAS_QTY;
            }
        }
        rejects += exch_apply(g, c) != REJ_NONE;
    }
    uint64_t gen_events = l.events;
    uint32_t resting = l.n;
    exch_destroy(g);

    /* the timed replay on a fresh exchange */
    uint64_t events = 0;
    struct exch *x = fresh_market(&cfg, &events, accounts, setup_seq);
    if (!x)
        return 1;
    uint64_t ovh = UINT64_MAX;
    for (int k = 0; k < 1000; k++) {
        uint64_t a = now_ns(), b = now_ns();
        if (b - a < ovh)
            ovh = b - a;
    }
    uint64_t t0 = now_ns();
    for (uint64_t k = 0; k < n; k++)
        exch_apply(x, &cmds[k]);
    uint64_t t1 = now_ns();
    uint64_t whole = t1 - t0;
    /* again, as a replay or a backtest holding its commands can: each
     * command's records hinted two and one commands ahead (exch_prefetch),
     * and the commands themselves read ahead without keeping them in the
     * caches (each is read once; they would push the exchange's records
     * out) */
    exch_destroy(x);
    uint64_t ev_hint = 0;
    if (!(x = fresh_market(&cfg, &ev_hint, accounts, setup_seq)))
        return 1;
    uint64_t t4 = now_ns();
    for (uint64_t k = 0; k < n; k++) {
        if (k + 8 < n) {
            const char *ahead = (const char *)&cmds[k + 8];
            for (size_t b = 0; b < sizeof(struct cmd); b += 64)
                __builtin_prefetch(ahead + b, 0, 0);
            __builtin_prefetch(ahead + sizeof(struct cmd) - 1, 0, 0);
        }
        if (k + 2 < n) {
            exch_prefetch(x, &cmds[k + 2], 0);
            exch_prefetch(x, &cmds[k + 1], 1);
        }
        exch_apply(x, &cmds[k]);
    }
    uint64_t t5 = now_ns();
    /* a second replay, timing each command */
    exch_destroy(x);
    uint64_t ev2 = 0;
    if (!(x = fresh_market(&cfg, &ev2, accounts, setup_seq)))
        return 1;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t a = now_ns();
        exch_apply(x, &cmds[k]);
        uint64_t b = now_ns();
        uint64_t d = b - a > ovh ? b - a - ovh : 0;
        lat[k] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    struct exch_audit au;
    int audit_ok = exch_audit(x, &au);
    exch_destroy(x);
    /* the engine alone on the same commands (no margin hooks): how the time
     * splits between matching and the margin core */
    uint64_t ev3 = 0;
    struct engine *e = engine_create(&cfg.engine, sink_count, &ev3, NULL, &err);
    if (!e)
        return 1;
    {
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.type = CMD_CLOCK;
        c.seq = setup_seq;
        c.ts = T0;
        engine_apply(e, &c);
    }
    uint64_t t2 = now_ns();
    for (uint64_t k = 0; k < n; k++)
        engine_apply(e, &cmds[k]);
    uint64_t t3 = now_ns();
    engine_destroy(e);
    qsort(lat, n, sizeof(*lat), cmp_u32);
    double rate = (double)n / ((double)whole / 1e9);
    printf("mixed-margin: %llu commands, %llu events, %.0f commands/s, p50 %u ns, p99 %u ns, "
           "p99.9 %u ns (timer overhead %llu ns subtracted)\n",
           (unsigned long long)n, (unsigned long long)events, rate, lat[n / 2],
           lat[n * 99 / 100], lat[n * 999 / 1000], (unsigned long long)ovh);
    printf("  book: %u resting orders at the end (steered to %u); %llu commands rejected\n",
           resting, target, (unsigned long long)rejects);
    printf("  target: >= 5,000,000 commands/s and p99 <= 1,000 ns: %s\n",
           rate >= 5e6 && lat[n * 99 / 100] <= 1000 ? "met" : "NOT met");
    printf("  replayed with hints (commands read ahead, exch_prefetch two and one ahead): "
           "%.0f commands/s\n",
           (double)n / ((double)(t5 - t4) / 1e9));
    double erate = (double)n / ((double)(t3 - t2) / 1e9);
    printf("  the engine alone on the same commands (no margin core): %.0f commands/s, "
           "%.0f ns/command; the margin core adds %.0f ns/command\n",
           erate, 1e9 / erate, 1e9 / ((double)n / ((double)whole / 1e9)) - 1e9 / erate);
    free(cmds);
    free(lat);
    free(l.id);
    free(l.acct);
    free(l.slot);
    /* events of the generation pass include the setup's; the replays must agree */
    if (rejects * 1000 > n) {
        fprintf(stderr, "mixed-margin: %llu of %llu commands rejected (> 0.1%%): the workload is "
                        "not what it says\n",
                (unsigned long long)rejects, (unsigned long long)n);
        return 1;
    }
    if (ev2 != events || ev_hint != events || !audit_ok || events + 0 != gen_events) {
        fprintf(stderr, "mixed-margin: replay differs (%llu / %llu / %llu events) or audit failed\n",
                (unsigned long long)gen_events, (unsigned long long)events,
                (unsigned long long)ev2);
        return 1;
    }
    return 0;
}

/* ---- 2. remargin-100k --------------------------------------------------------- */

static int remargin(int small)
{
    const uint32_t pairs = small ? 2000 : 50000;
    const uint32_t accounts = 2 * pairs + 1;
    struct exch_config cfg;
    base_config(&cfg, accounts, 1u << 12);
    uint64_t events = 0;
    const char *err = NULL;
    struct exch *x = exch_create(&cfg, sink_count, &events, &err);
    if (!x) {
        fprintf(stderr, "exch_create: %s\n", err);
        return 1;
    }
    exch_on_audit_fail(x, audit_fail, NULL);
    uint64_t seq = 0;
    setup_market(x, &seq, accounts);
    ms_t ts = T0;
    for (uint32_t p = 0; p < pairs; p++) {
        uint32_t a = 1 + 2 * p, b = a + 1;
        struct cmd c;
        for (int side = 0; side < 2; side++) {
            uint32_t who = side ? b : a;
            if (who % 4 < 2) { /* half isolated, leverage 1x-100x */
                memset(&c, 0, sizeof(c));
                c.type = CMD_SET_LEVERAGE;
                c.seq = ++seq;
                c.ts = ts;
                c.account = who;
                c.u.leverage_e8 = range(1, 100) * MF_RATE_SCALE;
                exch_apply(x, &c);
            }
        }
        px_t px = (MARK_USD - 50 + range(0, 100)) * PX_SCALE;
        memset(&c, 0, sizeof(c));
        c.type = CMD_NEW_ORDER;
        c.seq = ++seq;
        c.ts = ts;
        c.account = b;
        c.u.new_order.has = HAS_QTY | HAS_PRICE;
        c.u.new_order.side = SIDE_SELL;
        c.u.new_order.qty = 100 * range(1, 50);
        c.u.new_order.price = px;
        exch_apply(x, &c);
        c.seq = ++seq;
        c.account = a;
        c.u.new_order.side = SIDE_BUY;
        exch_apply(x, &c);
    }
    struct exch_instrument_state st;
    exch_instrument_state(x, 0, &st);
    uint32_t open = 0;
    for (uint32_t a = 1; a < accounts; a++) {
        struct exch_position p;
        exch_position(x, a, 0, &p);
        open += p.qty != 0;
    }
    enum { MOVES = 21 };
    uint64_t t[MOVES];
    px_t index = MARK_USD * PX_SCALE;
    for (int k = 0; k < MOVES; k++) {
        index += (k % 2 ? -1 : 1) * (index / 1000); /* +-0.1% */
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.type = CMD_SET_INDEX;
        c.seq = ++seq;
        c.ts = ts;
        c.u.set_index.price = index;
        uint64_t a = now_ns();
        exch_apply(x, &c);
        t[k] = now_ns() - a;
    }
    struct exch_audit au;
    int ok = exch_audit(x, &au);
    exch_destroy(x);
    for (int i = 0; i < MOVES; i++)
        for (int j = i + 1; j < MOVES; j++)
            if (t[j] < t[i]) {
                uint64_t s = t[i];
                t[i] = t[j];
                t[j] = s;
            }
    printf("remargin: %u open positions (open interest %lld), one mark change re-margins all: "
           "median %.3f ms, worst %.3f ms over %d moves\n",
           open, (long long)st.open_interest, (double)t[MOVES / 2] / 1e6,
           (double)t[MOVES - 1] / 1e6, MOVES);
    if (!small)
        printf("  target: <= 10 ms: %s\n", t[MOVES - 1] <= 10000000 ? "met" : "NOT met");
    if (!ok || open != 2 * pairs) {
        fprintf(stderr, "remargin: %u positions instead of %u, or audit failed\n", open, 2 * pairs);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int small = 0;
    uint64_t commands = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small"))
            small = 1;
        else if (!strcmp(argv[i], "--workload") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--commands") && i + 1 < argc)
            commands = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_margin [--small] [--workload mixed|remargin] "
                            "[--commands N]\n");
            return 2;
        }
    }
    int bad = 0;
    if (!only || !strcmp(only, "mixed"))
        bad |= mixed(small, commands);
    if (!only || !strcmp(only, "remargin"))
        bad |= remargin(small);
    return bad;
}
