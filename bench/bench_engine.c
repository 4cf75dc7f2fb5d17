/*
 * bench_engine.c - throughput and per-command latency of the matching engine.
 *
 * A benchmark program, not a timed test: it prints figures and the targets
 * next to them, and exits 1 only when something is wrong (engine_create
 * fails, more than 0.1% of commands are rejected, the three runs of one
 * workload disagree, engine_verify() fails). It never asserts a speed.
 *
 *   bench_engine [--small] [--workload N] [--seed S] [--commands N]
 *                [--book N] [--verify]
 *
 *   --small      20,000 timed commands per workload and a 20,000-order book
 *                for workload 3 (5,000 and 5,000 in a -Dchecks=true build,
 *                whose per-command invariant walk is O(state));
 *                engine_verify() after every run (the test suite runs this
 *                mode so the benchmark cannot rot)
 *   --workload N run only workload N (1, 2 or 3)
 *   --seed S     PRNG seed (default 1); same seed, same command streams
 *   --commands N timed commands for every workload run
 *   --book N     resting orders for workload 3 (default 1,000,000)
 *   --verify     engine_verify() after every run in full mode too
 *
 * Full-mode sizes: 10,000,000 timed commands for workloads 1 and 2,
 * 5,000,000 for workload 3.
 *
 * THE WORKLOADS. One instrument, XBTUSD-like: tick 0.5 USD (50,000,000 px),
 * lot 1, maxOrderQty 10,000,000, maxPrice 1,000,000 USD. The reference mid
 * is 50,000 USD (tick 100,000). Accounts are drawn uniformly from 0..999.
 * Every command is one engine_apply(); ts advances 1 ms every 100 commands.
 * The PRNG is splitmix64 (seeded by --seed; no rand()).
 *
 * 1. liquibook - after Liquibook's pt_order_book: a stream of GTC limit
 *    order inserts only (no cancels, no amends). Side Buy/Sell 50/50. With
 *    probability 2/3 the order is passive: price mid - U[1,10] ticks for a
 *    buy, mid + U[1,10] for a sell, qty 100 * U[1,10] (Liquibook's sizes).
 *    With probability 1/3 it is aggressive: price at the far end of the
 *    other side's band (buy mid + 10 ticks, sell mid - 10 ticks), qty
 *    100 * U[1,30]; what it cannot fill rests (GTC). Liquibook's own stream
 *    (alternating sides, buys at base + U[0,9], sells at base + 4 + U[0,9],
 *    qty 100 * U[1,10]; ~27% of inserts trade) never trades its tails, so
 *    its book grows by about half an order a command; here the
 *    aggressive volume (1/3 * 1,550 a command) exceeds the passive volume
 *    (2/3 * 550), so crossing alone keeps the book bounded: about 38% of
 *    inserts trade, and the book holds hundreds to a few thousand orders
 *    (peak 4,571 in 10,000,000 commands with seed 1), all within
 *    mid -/+ 10 ticks, so on at most 21 levels.
 *
 * 2. mixed-1k - modelled on exchange-core's mixed benchmark (whose own mix
 *    is move-heavy: 9% GTC, 3% IOC, 6% cancel, 82% move, ~1,000 resting
 *    orders on ~750 prices, 1,000 accounts); the mix here is:
 *      45% GTC limit place: side 50/50, price ref -/+ U[1,1000] ticks
 *          (buy below ref, sell above), qty 100 * U[1,20];
 *      35% cancel of a live order chosen uniformly;
 *       5% amend price of a live order chosen uniformly: new price
 *          ref -/+ U[1,1000] ticks on its side (never its current price);
 *       5% amend leavesQty of a live order chosen uniformly: new leaves
 *          100 * U[1,20] (never its current leaves; lower keeps the queue
 *          place, higher re-queues);
 *       5% IOC limit, side 50/50, price 5 ticks through the opposite best
 *          (ref -/+ 1 tick, trading nothing, if that side is empty);
 *       5% Market, side 50/50.
 *    The IOC/Market quantity steers the book towards the target of 5,000
 *    resting orders: qty = 1,050 * m * U[0.5,1.5), with
 *    m = clamp(1 + 8 * (resting - target) / target, 0.25, 16), so each one
 *    takes about one resting order at the target. ref (the mid) starts at
 *    50,000 USD and drifts by one tick with probability 1/256 per command
 *    (random walk), so places near the touch occasionally cross too. The
 *    book is pre-filled (not timed) with 5,000 GTC places drawn as above:
 *    prices spread over ~2,000 ticks, ~1,000 levels per side, 1,000
 *    accounts. Cancel/amend with no live order left place instead.
 *
 * 3. mixed-1m - the same mix with 1,000,000 resting orders: pre-filled (not
 *    timed) with 1,000,000 GTC places over ref -/+ U[1,10000] ticks (about
 *    50 orders a level, 10,000 levels a side); then the mix above with the
 *    same band and the IOC/Market steering towards 1,000,000 resting.
 *    (With --book N: N orders over a band of N / 100 ticks, kept within
 *    1,000 .. 50,000.)
 *
 * HOW COMMANDS ARE MADE AND TIMED. For each workload the whole command
 * stream is generated before anything is timed, by a generation run against
 * a first engine: the generator learns which orders are live (and their
 * price and leaves) from that engine's events (EV_NEW, EV_FILL, EV_AMENDED,
 * EV_CANCELED...) and reads engine_best() for IOC prices, so cancels and
 * amends always name live orders of the right account. Commands are stored
 * as 32-byte records. The engine is deterministic, so replaying the same
 * records into a fresh engine reproduces the same states; two replays are
 * made, each into a fresh engine with the pre-fill replayed untimed first:
 *   - throughput: one clock_gettime(CLOCK_MONOTONIC) pair around the whole
 *     timed stream; cmd/s = commands / seconds. Each iteration decodes the
 *     record into a preset struct cmd (a handful of stores) and calls
 *     engine_apply(); the decode is included.
 *   - latency: clock_gettime(CLOCK_MONOTONIC) right before and after each
 *     engine_apply(); the median cost of an empty clock_gettime pair
 *     (printed) is subtracted from each sample; samples are sorted for
 *     p50/p99/p99.9/max. Page faults of first-touched engine memory count.
 * The sink used in both replays only counts events (by type, reject reason
 * and cancel reason) and flags commands that traded. The replays must end
 * with the generation run's engine_hash(), live order count and event
 * counts, or the benchmark fails. Rejects are counted per reason and
 * printed; the generator makes none on purpose, so more than 0.1% is an
 * error.
 *
 * Config: orders_max sized per workload (65,536 for 1 and 2;
 * book * 1.25 + 65,536, i.e. 1,315,536, for 3), accounts_max 1024,
 * stops_max 1024, open_orders_max 4096 (set explicitly: 1,000,000 resting
 * orders over 1,000 accounts is ~1,000 per account, above BitMEX's 200),
 * stop_orders_max 10, stp STP_ALLOW, hooks NULL.
 *
 * Memory: "B/order" is engine_bytes_per_order(). For workload 3 the peak
 * RSS (VmHWM from /proc/self/status; reset through /proc/self/clear_refs
 * before the latency run when the kernel allows) is also printed divided by
 * the resting orders, both whole-process and less the RSS just before
 * engine_create() (the command records and the latency array). With glibc
 * the mmap threshold is fixed at 1 MiB so that a destroyed engine's memory
 * goes back to the kernel and the next engine's is counted afresh.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* ---- constants of the workloads ------------------------------------------ */

#define TICK_PX INT64_C(50000000)            /* 0.5 USD */
#define MAX_PX (INT64_C(1000000) * PX_SCALE) /* 1,000,000 USD */
#define MID_TICKS INT64_C(100000)            /* 50,000 USD */
#define T0_MS INT64_C(1700010000000)         /* 2023-11-15 01:00:00 UTC */
#define CMDS_PER_MS 100u
#define ACCOUNTS 1000u
#define ACCOUNTS_MAX 1024u
#define OPEN_ORDERS_MAX 4096u
#define MIX_QTY_MEAN 1050                    /* mean of 100 * U[1,20] */
#define REJECT_LIMIT_PPM 1000u               /* 0.1% */

/* --small sizes; a PERPSIM_CHECKS build walks the whole state after every
 * command, so there the small mode is smaller still. */
#if defined(PERPSIM_CHECKS)
#define SMALL_N 5000u
#else
#define SMALL_N 20000u
#endif


/* ---- PRNG: splitmix64 ---------------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n): the bias of the modulo is below 2^-40 for our n. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* Uniform in [lo, hi]. */
static int64_t rng_range(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)rng_below(r, (uint64_t)(hi - lo + 1));
}

/* Uniform in [0, 1). */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- compact command records -------------------------------------------- */

enum kind {
    K_PLACE_GTC = 0,
    K_PLACE_IOC,
    K_MARKET,
    K_CANCEL,
    K_AMEND_PX,
    K_AMEND_LEAVES,
    K_COUNT
};

static const char *const kind_name[K_COUNT] = {
    "gtc", "ioc", "market", "cancel", "amend-px", "amend-qty",
};

struct rec {
    uint64_t id;      /* cancel / amend target */
    px_t px;          /* limit price or new price */
    qty_t qty;        /* orderQty or new leavesQty */
    uint32_t account;
    uint8_t kind;     /* enum kind */
    uint8_t side;     /* enum side */
    uint8_t pad[2];
};

/* Preset commands, one per kind; decode() only writes what varies. */
struct decoder {
    struct cmd c[K_COUNT];
};

static void decoder_init(struct decoder *d)
{
    memset(d, 0, sizeof *d); /* inst 0, no clOrdID, nothing else given */

    d->c[K_PLACE_GTC].type = CMD_NEW_ORDER;
    d->c[K_PLACE_GTC].u.new_order.has = HAS_QTY | HAS_PRICE;
    d->c[K_PLACE_GTC].u.new_order.ord_type = ORD_LIMIT;
    d->c[K_PLACE_GTC].u.new_order.tif = TIF_GTC;

    d->c[K_PLACE_IOC].type = CMD_NEW_ORDER;
    d->c[K_PLACE_IOC].u.new_order.has = HAS_QTY | HAS_PRICE;
    d->c[K_PLACE_IOC].u.new_order.ord_type = ORD_LIMIT;
    d->c[K_PLACE_IOC].u.new_order.tif = TIF_IOC;

    d->c[K_MARKET].type = CMD_NEW_ORDER;
    d->c[K_MARKET].u.new_order.has = HAS_QTY;
    d->c[K_MARKET].u.new_order.ord_type = ORD_MARKET;
    d->c[K_MARKET].u.new_order.tif = TIF_NONE;

    d->c[K_CANCEL].type = CMD_CANCEL;

    d->c[K_AMEND_PX].type = CMD_AMEND;
    d->c[K_AMEND_PX].u.amend.has = AMD_PRICE;

    d->c[K_AMEND_LEAVES].type = CMD_AMEND;
    d->c[K_AMEND_LEAVES].u.amend.has = AMD_LEAVES;
}

static inline const struct cmd *decode(struct decoder *d, const struct rec *r, uint64_t idx)
{
    struct cmd *c = &d->c[r->kind];
    c->seq = idx + 1;
    c->ts = T0_MS + (ms_t)(idx / CMDS_PER_MS);
    c->account = r->account;
    switch (r->kind) {
    case K_PLACE_GTC:
    case K_PLACE_IOC:
        c->u.new_order.price = r->px;
        /* fall through */
    case K_MARKET:
        c->u.new_order.side = r->side;
        c->u.new_order.qty = r->qty;
        break;
    case K_CANCEL:
        c->u.cancel.order_id = r->id;
        break;
    case K_AMEND_PX:
        c->u.amend.ref.order_id = r->id;
        c->u.amend.price = r->px;
        break;
    default: /* K_AMEND_LEAVES */
        c->u.amend.ref.order_id = r->id;
        c->u.amend.leaves = r->qty;
        break;
    }
    return c;
}

/* ---- sinks ---------------------------------------------------------------- */

#define EV_SLOTS 16u

struct counts {
    uint64_t ev[EV_SLOTS];
    uint64_t rej[REJ_COUNT + 1];  /* last: out-of-range reason */
    uint64_t cxl[CXL_COUNT + 1];
    uint64_t traded_cmds;         /* commands with at least one EV_TRADE */
    uint8_t traded;               /* set by the sink, cleared per command */
};

static inline void count_event(struct counts *c, const struct event *ev)
{
    c->ev[ev->type & (EV_SLOTS - 1)]++;
    if (ev->type == EV_TRADE)
        c->traded = 1;
    else if (ev->type == EV_REJECTED)
        c->rej[ev->reason < REJ_COUNT ? ev->reason : REJ_COUNT]++;
    else if (ev->type == EV_CANCELED)
        c->cxl[ev->reason < CXL_COUNT ? ev->reason : CXL_COUNT]++;
}

static void sink_count(void *ctx, const struct event *ev)
{
    count_event(ctx, ev);
}

static uint64_t counts_events(const struct counts *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < EV_SLOTS; i++)
        n += c->ev[i];
    return n;
}

static uint64_t counts_rejects(const struct counts *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= REJ_COUNT; i++)
        n += c->rej[i];
    return n;
}

static void counts_add(struct counts *a, const struct counts *b)
{
    for (unsigned i = 0; i < EV_SLOTS; i++)
        a->ev[i] += b->ev[i];
    for (unsigned i = 0; i <= REJ_COUNT; i++)
        a->rej[i] += b->rej[i];
    for (unsigned i = 0; i <= CXL_COUNT; i++)
        a->cxl[i] += b->cxl[i];
    a->traded_cmds += b->traded_cmds;
}

/* The generation run's sink: counts, and keeps the set of live orders. */
struct live {
    uint64_t id;
    px_t px;
    qty_t leaves;
    uint32_t account;
    uint8_t side;
};

struct tracker {
    struct counts cnt;
    struct live *v;   /* live orders, unordered */
    uint32_t n, cap;
    uint32_t peak;    /* most live orders after a command */
    uint32_t *pos;    /* pos[id]: index in v, or UINT32_MAX */
    uint64_t ids;     /* size of pos */
    int overflow;
};

static void live_del(struct tracker *t, uint64_t id)
{
    if (id >= t->ids || t->pos[id] == UINT32_MAX)
        return;
    uint32_t p = t->pos[id];
    t->v[p] = t->v[--t->n];
    t->pos[t->v[p].id] = p;
    t->pos[id] = UINT32_MAX;
}

static void sink_track(void *ctx, const struct event *ev)
{
    struct tracker *t = ctx;
    const struct order_view *o = &ev->order;
    count_event(&t->cnt, ev);
    switch (ev->type) {
    case EV_NEW:
        if (o->id >= t->ids || t->n == t->cap) {
            t->overflow = 1;
            return;
        }
        if (t->pos[o->id] != UINT32_MAX)
            return;
        t->pos[o->id] = t->n;
        t->v[t->n++] = (struct live){.id = o->id, .px = o->price, .leaves = o->leaves,
                                     .account = o->account, .side = o->side};
        break;
    case EV_FILL:
    case EV_AMENDED:
    case EV_RESTATED:
        if (o->leaves <= 0 || o->status == ST_FILLED || o->status == ST_CANCELED) {
            live_del(t, o->id);
        } else if (o->id < t->ids && t->pos[o->id] != UINT32_MAX) {
            struct live *l = &t->v[t->pos[o->id]];
            l->px = o->price;
            l->leaves = o->leaves;
        }
        break;
    case EV_CANCELED:
        live_del(t, o->id);
        break;
    default:
        break;
    }
}

/* ---- workloads ------------------------------------------------------------ */

struct workload {
    int num;
    const char *name;
    uint64_t commands;  /* timed */
    uint64_t prefill;   /* untimed pre-fill places */
    uint32_t target;    /* resting orders the mix steers to (mixed) */
    int64_t band;       /* price band per side, ticks */
    uint32_t orders_max;
    uint64_t target_cmd_per_s; /* the target; 0 = none set */
    uint32_t target_p99_ns;
};

struct opts {
    int small;
    int only;           /* 0 = all */
    uint64_t seed;
    uint64_t commands;  /* 0 = default */
    uint64_t book;      /* 0 = default */
    int verify;
};

static void make_config(struct engine_config *cfg, uint32_t orders_max)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->orders_max = orders_max;
    cfg->accounts_max = ACCOUNTS_MAX;
    cfg->stops_max = 1024;
    cfg->open_orders_max = OPEN_ORDERS_MAX;
    cfg->stop_orders_max = 10;
    cfg->stp = STP_ALLOW;
    cfg->instruments_count = 1;
    struct engine_instrument *in = &cfg->instruments[0];
    memcpy(in->symbol, "XBTUSD", sizeof "XBTUSD");
    in->tick_px = TICK_PX;
    in->max_px = MAX_PX;
    in->lot_qty = 1;
    in->max_order_qty = 10000000;
}

/* Generation state. */
struct gen {
    struct engine *e;
    struct tracker *t;
    struct decoder dec;
    struct rec *recs;
    uint64_t n;         /* records so far */
    struct rng rng;
    int64_t ref;        /* mid, ticks */
    int fail;
};

/* Applies the record to the generation engine and keeps it. */
static void gen_emit(struct gen *g, const struct rec *r)
{
    g->recs[g->n] = *r;
    g->t->cnt.traded = 0;
    engine_apply(g->e, decode(&g->dec, &g->recs[g->n], g->n));
    g->t->cnt.traded_cmds += g->t->cnt.traded;
    if (g->t->n > g->t->peak)
        g->t->peak = g->t->n;
    g->n++;
}

static uint32_t rand_account(struct gen *g)
{
    return (uint32_t)rng_below(&g->rng, ACCOUNTS);
}

static void gen_liquibook(struct gen *g, uint64_t commands)
{
    for (uint64_t i = 0; i < commands; i++) {
        struct rec r = {.kind = K_PLACE_GTC};
        int buy = (int)(rng_next(&g->rng) & 1);
        r.side = buy ? SIDE_BUY : SIDE_SELL;
        int64_t tick;
        if (rng_below(&g->rng, 3) == 0) { /* aggressive */
            tick = buy ? MID_TICKS + 10 : MID_TICKS - 10;
            r.qty = 100 * rng_range(&g->rng, 1, 30);
        } else {
            int64_t off = rng_range(&g->rng, 1, 10);
            tick = buy ? MID_TICKS - off : MID_TICKS + off;
            r.qty = 100 * rng_range(&g->rng, 1, 10);
        }
        r.px = tick * TICK_PX;
        r.account = rand_account(g);
        gen_emit(g, &r);
    }
}

/* A passive GTC place in the band around ref. */
static void mix_place(struct gen *g, int64_t band)
{
    struct rec r = {.kind = K_PLACE_GTC};
    int buy = (int)(rng_next(&g->rng) & 1);
    int64_t off = rng_range(&g->rng, 1, band);
    r.side = buy ? SIDE_BUY : SIDE_SELL;
    r.px = (buy ? g->ref - off : g->ref + off) * TICK_PX;
    r.qty = 100 * rng_range(&g->rng, 1, 20);
    r.account = rand_account(g);
    gen_emit(g, &r);
}

static void gen_mixed(struct gen *g, const struct workload *w)
{
    struct tracker *t = g->t;
    g->ref = MID_TICKS;
    while (t->n < w->prefill && g->n < w->prefill)
        mix_place(g, w->band);
    if (t->n < w->prefill) {
        fprintf(stderr, "%s: pre-fill reached only %u resting orders\n", w->name, t->n);
        g->fail = 1;
    }
    uint64_t end = g->n + w->commands;
    while (g->n < end) {
        if (rng_below(&g->rng, 256) == 0)
            g->ref += (rng_next(&g->rng) & 1) ? 1 : -1;
        uint64_t u = rng_below(&g->rng, 100);
        if (u < 45 || (u < 90 && t->n == 0)) {
            mix_place(g, w->band);
        } else if (u < 90) {
            const struct live *l = &t->v[rng_below(&g->rng, t->n)];
            struct rec r = {.id = l->id, .account = l->account, .side = l->side};
            if (u < 80) {
                r.kind = K_CANCEL;
            } else if (u < 85) {
                r.kind = K_AMEND_PX;
                int64_t off = rng_range(&g->rng, 1, w->band);
                int64_t tick = l->side == SIDE_BUY ? g->ref - off : g->ref + off;
                if (tick * TICK_PX == l->px)
                    tick += l->side == SIDE_BUY ? -1 : 1;
                r.px = tick * TICK_PX;
            } else {
                r.kind = K_AMEND_LEAVES;
                r.qty = 100 * rng_range(&g->rng, 1, 20);
                if (r.qty == l->leaves)
                    r.qty += 100;
            }
            gen_emit(g, &r);
        } else {
            struct rec r = {.kind = u < 95 ? K_PLACE_IOC : K_MARKET};
            int buy = (int)(rng_next(&g->rng) & 1);
            r.side = buy ? SIDE_BUY : SIDE_SELL;
            r.account = rand_account(g);
            double m = 1.0 + 8.0 * ((double)t->n - (double)w->target) / (double)w->target;
            m = m < 0.25 ? 0.25 : m > 16.0 ? 16.0 : m;
            r.qty = (qty_t)(MIX_QTY_MEAN * m * (0.5 + rng_unit(&g->rng)));
            if (r.qty < 1)
                r.qty = 1;
            if (r.kind == K_PLACE_IOC) {
                px_t best = engine_best(g->e, 0, buy ? SIDE_SELL : SIDE_BUY);
                if (best > 0)
                    r.px = buy ? best + 5 * TICK_PX : best - 5 * TICK_PX;
                else
                    r.px = (buy ? g->ref - 1 : g->ref + 1) * TICK_PX;
                if (r.px <= 0)
                    r.px = TICK_PX;
            }
            gen_emit(g, &r);
        }
    }
}

/* ---- machine, time, memory ------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Median cost of an empty clock_gettime pair, ns. */
static uint32_t timer_overhead_ns(void)
{
    enum { N = 200001 };
    uint32_t *d = malloc(N * sizeof *d);
    if (!d)
        return 0;
    for (int i = 0; i < N; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
        d[i] = ns < 0 ? 0 : (uint32_t)ns;
    }
    qsort(d, N, sizeof *d, cmp_u32);
    uint32_t med = d[N / 2];
    free(d);
    return med;
}

/* A "Key:   value kB" line of /proc/self/status, in bytes; 0 if absent. */
static uint64_t proc_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kl = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); 0 on success. */
static int reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int bad = fputs("5", f) < 0;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* 1234567 -> "1,234,567" */
static const char *fmt_u(char *buf, size_t n, uint64_t v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < n)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

/* ---- one workload --------------------------------------------------------- */

struct result {
    uint64_t commands;
    double seconds;
    uint32_t p50, p99, p999, pmax;
    double mean_ns;
    double ev_per_cmd;
    uint32_t resting;
    struct counts timed;    /* events of the timed commands (throughput run) */
    struct counts all;      /* events of the whole stream */
    uint64_t kinds[K_COUNT];
    uint32_t peak;          /* most resting orders after any command */
    uint64_t hwm, rss_before;
    int hwm_reset;
};

/* Replays recs[0..prefill) untimed, then the rest; returns the timed counts in
 * *timed and the prefill counts in *pre. lat != NULL: per-command timing. */
static double replay(struct engine *e, struct counts *cnt, struct decoder *dec,
                     const struct rec *recs, uint64_t prefill, uint64_t total,
                     struct counts *pre, uint32_t *lat, uint32_t ovh)
{
    for (uint64_t i = 0; i < prefill; i++) {
        cnt->traded = 0;
        engine_apply(e, decode(dec, &recs[i], i));
        cnt->traded_cmds += cnt->traded;
    }
    *pre = *cnt;
    memset(cnt, 0, sizeof *cnt);
    double secs;
    if (!lat) {
        uint64_t t0 = now_ns();
        for (uint64_t i = prefill; i < total; i++) {
            cnt->traded = 0;
            engine_apply(e, decode(dec, &recs[i], i));
            cnt->traded_cmds += cnt->traded;
        }
        secs = (double)(now_ns() - t0) / 1e9;
    } else {
        uint64_t sum = 0;
        for (uint64_t i = prefill; i < total; i++) {
            const struct cmd *c = decode(dec, &recs[i], i);
            struct timespec a, b;
            cnt->traded = 0;
            clock_gettime(CLOCK_MONOTONIC, &a);
            engine_apply(e, c);
            clock_gettime(CLOCK_MONOTONIC, &b);
            cnt->traded_cmds += cnt->traded;
            int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
            ns -= ovh;
            if (ns < 0)
                ns = 0;
            if (ns > UINT32_MAX)
                ns = UINT32_MAX;
            lat[i - prefill] = (uint32_t)ns;
            sum += (uint64_t)ns;
        }
        secs = (double)sum / 1e9;
    }
    return secs;
}

static int counts_equal(const struct counts *a, const struct counts *b)
{
    return memcmp(a->ev, b->ev, sizeof a->ev) == 0 && memcmp(a->rej, b->rej, sizeof a->rej) == 0 &&
           memcmp(a->cxl, b->cxl, sizeof a->cxl) == 0 && a->traded_cmds == b->traded_cmds;
}

static int check_engine(const struct opts *o, const struct engine *e, const char *name,
                        const char *run)
{
    if (!(o->small || o->verify))
        return 0;
    const char *bad = engine_verify(e);
    if (bad) {
        fprintf(stderr, "%s: engine_verify failed after the %s run: %s\n", name, run, bad);
        return 1;
    }
    return 0;
}

static uint32_t pct(const uint32_t *v, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t k = (uint64_t)(p * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static int run_workload(const struct workload *w, const struct opts *o, uint32_t ovh,
                        struct result *res)
{
    int fail = 0;
    memset(res, 0, sizeof *res);
    uint64_t total = w->prefill + w->commands;
    struct engine_config cfg;
    make_config(&cfg, w->orders_max);
    const char *err = NULL;

    struct rec *recs = malloc(total * sizeof *recs);
    struct tracker *t = calloc(1, sizeof *t);
    uint32_t *lat = malloc((w->commands ? w->commands : 1) * sizeof *lat);
    if (!recs || !t || !lat) {
        fprintf(stderr, "%s: out of memory for %" PRIu64 " commands\n", w->name, total);
        free(recs);
        free(t);
        free(lat);
        return 1;
    }
    /* Touched now, so that the RSS read before the latency run includes it. */
    memset(lat, 0, (w->commands ? w->commands : 1) * sizeof *lat);

    /* 1. generation run */
    t->cap = w->orders_max;
    t->ids = total + 2;
    t->v = malloc((size_t)t->cap * sizeof *t->v);
    t->pos = malloc(t->ids * sizeof *t->pos);
    struct gen *g = calloc(1, sizeof *g);
    if (!t->v || !t->pos || !g) {
        fprintf(stderr, "%s: out of memory for the generator\n", w->name);
        fail = 1;
        goto out_gen;
    }
    memset(t->pos, 0xff, t->ids * sizeof *t->pos);
    g->t = t;
    g->recs = recs;
    g->rng.s = o->seed * UINT64_C(0x100000001b3) + (uint64_t)w->num;
    decoder_init(&g->dec);
    g->e = engine_create(&cfg, sink_track, t, NULL, &err);
    if (!g->e) {
        fprintf(stderr, "%s: engine_create: %s\n", w->name, err ? err : "(no reason)");
        fail = 1;
        goto out_gen;
    }
    if (w->num == 1)
        gen_liquibook(g, w->commands);
    else
        gen_mixed(g, w);
    fail |= g->fail;
    if (t->overflow) {
        fprintf(stderr, "%s: generator's live set overflowed\n", w->name);
        fail = 1;
    }
    uint64_t gen_hash = engine_hash(g->e);
    uint32_t gen_live = engine_orders_live(g->e);
    struct counts gen_cnt = t->cnt;
    fail |= check_engine(o, g->e, w->name, "generation");
    engine_destroy(g->e);
    if (g->n != total) {
        fprintf(stderr, "%s: generated %" PRIu64 " commands, expected %" PRIu64 "\n", w->name,
                g->n, total);
        fail = 1;
    }
    for (uint64_t i = w->prefill; i < total; i++)
        res->kinds[recs[i].kind]++;
    res->peak = t->peak;
out_gen:
    free(g);
    free(t->v);
    free(t->pos);
    free(t);
    if (fail)
        goto out;

    /* 2. throughput run, 3. latency run */
    for (int run = 0; run < 2; run++) {
        struct counts cnt, pre;
        struct decoder dec;
        memset(&cnt, 0, sizeof cnt);
        decoder_init(&dec);
        if (run == 1) {
            res->hwm_reset = reset_hwm() == 0;
            res->rss_before = proc_status_bytes("VmRSS");
        }
        struct engine *e = engine_create(&cfg, sink_count, &cnt, NULL, &err);
        if (!e) {
            fprintf(stderr, "%s: engine_create: %s\n", w->name, err ? err : "(no reason)");
            fail = 1;
            break;
        }
        double secs = replay(e, &cnt, &dec, recs, w->prefill, total, &pre, run ? lat : NULL, ovh);
        struct counts all = pre;
        counts_add(&all, &cnt);
        const char *rn = run ? "latency" : "throughput";
        if (engine_hash(e) != gen_hash || engine_orders_live(e) != gen_live ||
            !counts_equal(&all, &gen_cnt)) {
            fprintf(stderr, "%s: the %s run did not reproduce the generation run "
                            "(hash %016" PRIx64 " vs %016" PRIx64 ", live %u vs %u)\n",
                    w->name, rn, engine_hash(e), gen_hash, engine_orders_live(e), gen_live);
            fail = 1;
        }
        fail |= check_engine(o, e, w->name, rn);
        if (run == 0) {
            res->seconds = secs;
            res->timed = cnt;
            res->all = all;
        } else {
            res->hwm = proc_status_bytes("VmHWM");
            res->mean_ns = w->commands ? secs * 1e9 / (double)w->commands : 0;
            res->resting = engine_orders_live(e);
        }
        engine_destroy(e);
    }
    if (fail)
        goto out;

    res->commands = w->commands;
    res->ev_per_cmd = w->commands ? (double)counts_events(&res->timed) / (double)w->commands : 0;
    qsort(lat, w->commands, sizeof *lat, cmp_u32);
    res->p50 = pct(lat, w->commands, 0.50);
    res->p99 = pct(lat, w->commands, 0.99);
    res->p999 = pct(lat, w->commands, 0.999);
    res->pmax = w->commands ? lat[w->commands - 1] : 0;

    uint64_t rej = counts_rejects(&res->all);
    if (rej * 1000000u > (uint64_t)REJECT_LIMIT_PPM * total) {
        fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " commands rejected (limit 0.1%%)\n",
                w->name, rej, total);
        fail = 1;
    }
out:
    free(recs);
    free(lat);
    return fail;
}

/* ---- output --------------------------------------------------------------- */

static void print_header(const struct opts *o, uint32_t ovh)
{
    char model[256];
    cpu_model(model, sizeof model);
    printf("perpsim bench_engine: %s, %ld CPUs", model, cpu_count());
#if defined(BENCH_BUILD_TYPE)
    printf(", build %s", BENCH_BUILD_TYPE);
#elif defined(__OPTIMIZE__)
    printf(", build optimized");
#else
    printf(", build unoptimized");
#endif
#if defined(PERPSIM_CHECKS)
    printf(" with PERPSIM_CHECKS (per-command invariant checks: figures are not engine speed)");
#endif
#if defined(__VERSION__)
    printf(", cc %s", __VERSION__);
#endif
    printf("\n");
    printf("mode %s, seed %" PRIu64 ", clock_gettime pair overhead %u ns (subtracted from each "
           "latency sample)\n",
           o->small ? "small" : "full", o->seed, ovh);
    printf("targets (per workload): mixed-1k >= 5,000,000 cmd/s, p99 <= 1000 ns; "
           "mixed-1m >= 1,000,000 cmd/s, p99 <= 5000 ns; liquibook none\n\n");
    printf("%-10s %12s %8s %12s %7s %7s %7s %9s %7s %9s %8s\n", "workload", "commands", "seconds",
           "cmd/s", "p50 ns", "p99 ns", "p99.9", "max ns", "ev/cmd", "resting", "B/order");
    fflush(stdout);
}

static void print_result(const struct workload *w, const struct result *r)
{
    char a[32], b[32], c[32], d[32];
    double rate = r->seconds > 0 ? (double)r->commands / r->seconds : 0;
    printf("%-10s %12s %8.3f %12s %7u %7u %7u %9s %7.2f %9s %8zu\n", w->name,
           fmt_u(a, sizeof a, r->commands), r->seconds, fmt_u(b, sizeof b, (uint64_t)(rate + 0.5)),
           r->p50, r->p99, r->p999, fmt_u(c, sizeof c, r->pmax), r->ev_per_cmd,
           fmt_u(d, sizeof d, r->resting), engine_bytes_per_order());
    if (w->target_cmd_per_s)
        printf("           vs target: cmd/s %s %" PRIu64 ", p99 %s %u ns; mean latency %.0f ns\n",
               rate >= (double)w->target_cmd_per_s ? ">=" : "<", w->target_cmd_per_s,
               r->p99 <= w->target_p99_ns ? "<=" : ">", w->target_p99_ns, r->mean_ns);
    else
        printf("           no target set; mean latency %.0f ns\n", r->mean_ns);

    printf("           mix:");
    for (int k = 0; k < K_COUNT; k++)
        if (r->kinds[k])
            printf(" %s %.1f%%", kind_name[k], 100.0 * (double)r->kinds[k] / (double)r->commands);
    if (w->prefill) {
        char p[32];
        printf(" (after %s untimed pre-fill places)", fmt_u(p, sizeof p, w->prefill));
    }
    char pk[32], om[32];
    printf("; resting peak %s, orders_max %s\n", fmt_u(pk, sizeof pk, r->peak),
           fmt_u(om, sizeof om, w->orders_max));

    const struct counts *t = &r->timed;
    double n = r->commands ? (double)r->commands : 1;
    printf("           per cmd: trades %.3f, fills %.3f, level %.3f, new %.3f, canceled %.3f, "
           "amended %.3f; commands that traded %.1f%%\n",
           (double)t->ev[EV_TRADE] / n, (double)t->ev[EV_FILL] / n, (double)t->ev[EV_LEVEL] / n,
           (double)t->ev[EV_NEW] / n, (double)t->ev[EV_CANCELED] / n,
           (double)t->ev[EV_AMENDED] / n, 100.0 * (double)t->traded_cmds / n);

    printf("           cancels by reason:");
    int any = 0;
    for (int i = 1; i <= CXL_COUNT; i++)
        if (t->cxl[i]) {
            printf(" %s %" PRIu64, i < CXL_COUNT ? engine_cancel_name((enum cancel_reason)i) : "?",
                   t->cxl[i]);
            any = 1;
        }
    printf("%s\n", any ? "" : " none");

    printf("           rejects (whole stream):");
    any = 0;
    for (int i = 0; i <= REJ_COUNT; i++)
        if (r->all.rej[i]) {
            printf(" %s %" PRIu64, i < REJ_COUNT ? engine_reject_name((enum reject)i) : "?",
                   r->all.rej[i]);
            any = 1;
        }
    printf("%s\n", any ? "" : " none");

    if (w->num == 3 && r->resting > 0) {
        printf("           memory: VmHWM %.1f MiB = %.0f B/resting order (whole process); "
               "less RSS before engine_create (%.1f MiB): %.0f B/resting order%s\n",
               (double)r->hwm / 1048576.0, (double)r->hwm / r->resting,
               (double)r->rss_before / 1048576.0,
               r->hwm > r->rss_before ? (double)(r->hwm - r->rss_before) / r->resting : 0.0,
               r->hwm_reset ? "" : " (VmHWM not reset: includes earlier peaks)");
    }
    fflush(stdout);
}

/* ---- main ----------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_engine [--small] [--workload 1|2|3] [--seed S] [--commands N] "
               "[--book N] [--verify]\n");
}

int main(int argc, char **argv)
{
    struct opts o = {.seed = 1};
    for (int i = 1; i < argc; i++) {
        uint64_t v = 0;
        const char *a = argv[i];
        if (strcmp(a, "--small") == 0) {
            o.small = 1;
        } else if (strcmp(a, "--verify") == 0) {
            o.verify = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--workload") == 0 &&
                   parse_u64(argv[i + 1], &v) == 0 && v >= 1 && v <= 3) {
            o.only = (int)v;
            i++;
        } else if (i + 1 < argc && strcmp(a, "--seed") == 0 && parse_u64(argv[i + 1], &v) == 0) {
            o.seed = v;
            i++;
        } else if (i + 1 < argc && strcmp(a, "--commands") == 0 &&
                   parse_u64(argv[i + 1], &v) == 0 && v > 0 && v <= UINT64_C(200000000)) {
            o.commands = v;
            i++;
        } else if (i + 1 < argc && strcmp(a, "--book") == 0 && parse_u64(argv[i + 1], &v) == 0 &&
                   v > 0 && v <= UINT64_C(100000000)) {
            o.book = v;
            i++;
        } else {
            fprintf(stderr, "bench_engine: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    uint64_t book = o.book ? o.book : o.small ? SMALL_N : 1000000;
    uint64_t n12 = o.commands ? o.commands : o.small ? SMALL_N : 10000000;
    uint64_t n3 = o.commands ? o.commands : o.small ? SMALL_N : 5000000;
    int64_t band3 = (int64_t)(book / 100);
    if (band3 < 1000)
        band3 = 1000;
    if (band3 > MID_TICKS / 2)
        band3 = MID_TICKS / 2;
    uint64_t om3 = book + book / 4 + 65536;
    if (om3 > UINT32_MAX / 2) {
        fprintf(stderr, "bench_engine: --book too large\n");
        return 2;
    }
    const struct workload wls[3] = {
        {.num = 1, .name = "liquibook", .commands = n12, .orders_max = 65536},
        {.num = 2, .name = "mixed-1k", .commands = n12, .prefill = 5000, .target = 5000,
         .band = 1000, .orders_max = 65536, .target_cmd_per_s = 5000000, .target_p99_ns = 1000},
        {.num = 3, .name = "mixed-1m", .commands = n3, .prefill = book, .target = (uint32_t)book,
         .band = band3, .orders_max = (uint32_t)om3, .target_cmd_per_s = 1000000,
         .target_p99_ns = 5000},
    };

#if defined(__GLIBC__)
    /* A fixed mmap threshold: large blocks go back to the kernel when freed
     * (glibc's dynamic threshold would keep a freed engine's tables in the
     * heap, resident, and the next engine would reuse them unseen by the
     * RSS figures). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    uint32_t ovh = timer_overhead_ns();
    print_header(&o, ovh);
    int fail = 0;
    for (int i = 0; i < 3; i++) {
        if (o.only && o.only != wls[i].num)
            continue;
        struct result r;
        int bad = run_workload(&wls[i], &o, ovh, &r);
        if (r.commands) /* measured, even if then found wrong (rejects) */
            print_result(&wls[i], &r);
        if (bad) {
            printf("%-10s FAILED (see stderr)\n", wls[i].name);
            fflush(stdout);
            fail = 1;
        }
    }
    if (fail)
        fprintf(stderr, "bench_engine: FAILED\n");
    return fail ? 1 : 0;
}
