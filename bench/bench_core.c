/*
 * bench_core.c - what the sequencer (core/) adds to a command.
 *
 * The load generator's order workload (8 funded accounts on XBTUSD, each
 * alternating a Buy of 100 at 60,000 + 0..4 ticks and a Sell of 100 at
 * 60,000: half the orders rest, half fill on arrival, the book stays small),
 * applied three ways, each on a fresh exchange, the clock one millisecond
 * per command:
 *   margin  exch_apply() with a sink that drops the events: the margin core
 *           and the engine alone;
 *   core    one job per order through core_run(): sequence number and time,
 *           the record and its events' figures, the closing position and
 *           instrument events, the read model, the reply row copied out;
 *           once with the read model full (limits of n/40 rows: the steady
 *           state of a long-running server), once growing (the default
 *           limits, never reached here: every row is new memory, which on
 *           this VM costs most in page faults);
 *   +encode the full case with an after-lock consumer that encodes every
 *           record (core_record_encode into a reused buffer): what a
 *           journal writer would pay before its write.
 * Prints ns per command (the median of 3 runs of each, interleaved) and the
 * record's size. Exit 1 only when something is wrong (a run that differs
 * from another in events, bytes or state hash), never for a figure.
 *
 * --small runs 20,000 commands (the test suite does this so the program
 * cannot rot); --commands N sets the length (default 400,000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define ACCOUNTS 8
#define RUNS 3

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct tclock {
    ms_t t;
};

static ms_t tclock_now(void *ctx)
{
    return ((struct tclock *)ctx)->t;
}

static void order_cmd(uint32_t k, struct cmd *c)
{
    memset(c, 0, sizeof(*c));
    c->type = CMD_NEW_ORDER;
    c->account = 1 + k % ACCOUNTS;
    c->inst = 0;
    c->u.new_order.has = HAS_QTY | HAS_PRICE;
    bool buy = (k / ACCOUNTS) % 2 == 0;
    c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
    c->u.new_order.qty = 100;
    c->u.new_order.price = buy ? 60000 * PX_SCALE + (px_t)(k % 5) * (PX_SCALE / 2) : 60000 * PX_SCALE;
}

static void config(struct core_config *cfg, struct tclock *clk)
{
    core_config_default(cfg, T0);
    cfg->exch.engine.accounts_max = 64;
    cfg->exch.engine.verify_every = 1000;
    cfg->clock = (struct core_clock){tclock_now, clk, NULL};
}

/* ---- the margin core alone ---------------------------------------------------- */

static uint64_t events_margin;

static void count_sink(void *ctx, const struct event *ev)
{
    (void)ctx;
    (void)ev;
    events_margin++;
}

static double run_margin(uint32_t n)
{
    struct tclock clk = {T0};
    struct core_config cfg;
    config(&cfg, &clk);
    const char *err = NULL;
    struct exch *x = exch_create(&cfg.exch, count_sink, NULL, &err);
    if (!x) {
        fprintf(stderr, "exch_create: %s\n", err);
        exit(1);
    }
    uint64_t seq = 0;
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_SET_INDEX;
    c.u.set_index.price = 60000 * PX_SCALE;
    c.seq = ++seq;
    c.ts = clk.t;
    exch_apply(x, &c);
    for (uint32_t a = 1; a <= ACCOUNTS; a++) {
        memset(&c, 0, sizeof(c));
        c.type = CMD_DEPOSIT;
        c.account = a;
        c.u.money.amount = INT64_C(100000000000);
        c.seq = ++seq;
        c.ts = clk.t;
        exch_apply(x, &c);
    }
    events_margin = 0;
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < n; k++) {
        order_cmd(k, &c);
        clk.t++;
        c.seq = ++seq;
        c.ts = clk.t;
        if (exch_apply(x, &c) != REJ_NONE) {
            fprintf(stderr, "bench_core: order %u refused\n", k);
            exit(1);
        }
    }
    uint64_t t1 = now_ns();
    exch_destroy(x);
    return (double)(t1 - t0) / n;
}

/* ---- through the sequencer --------------------------------------------------------- */

struct enc {
    struct rbuf b;
    uint64_t records, bytes, events;
};

static void encode(void *ctx, const struct core_record *r)
{
    struct enc *e = ctx;
    e->b.len = 0;
    core_record_encode(r, &e->b);
    e->records++;
    e->bytes += e->b.len;
    e->events += r->nev;
}

/* keep: the read model's limits (0: the defaults, 1,000,000 rows each,
 * which these runs never reach: the read model grows all the way). */
static double run_core(uint32_t n, uint32_t keep, bool with_encode, struct enc *enc, uint64_t *hash)
{
    struct tclock clk = {T0};
    struct core_config cfg;
    config(&cfg, &clk);
    if (keep)
        cfg.limits = (struct store_limits){keep, keep, keep, true};
    cfg.index_px[0] = 60000 * PX_SCALE;
    char err[128];
    struct core *core = core_create(&cfg, err, sizeof(err));
    if (!core) {
        fprintf(stderr, "core_create: %s\n", err);
        exit(1);
    }
    if (with_encode)
        core_subscribe(core, encode, enc, false);
    for (uint32_t a = 1; a <= ACCOUNTS; a++) {
        struct core_job *j = core_job_new(J_ACCOUNT, 0, 1);
        snprintf(j->key.id, sizeof(j->key.id), "key%021u", a);
        snprintf(j->key.secret, sizeof(j->key.secret), "secret%042u", a);
        j->key.enabled = true;
        j->cmds[0].type = CMD_DEPOSIT;
        j->cmds[0].u.money.amount = INT64_C(100000000000);
        core_run(core, j);
        if (j->status != REJ_NONE || j->account != a) {
            fprintf(stderr, "bench_core: account %u not made\n", a);
            exit(1);
        }
        core_job_free(j);
    }
    struct core_job *j = core_job_new(J_ORDERS, 0, 1);
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < n; k++) {
        /* A job as a request makes one: one command, its reply row. */
        order_cmd(k, &j->cmds[0]);
        j->account = j->cmds[0].account;
        clk.t++;
        core_run(core, j);
        if (j->rej[0] != REJ_NONE) {
            fprintf(stderr, "bench_core: order %u refused\n", k);
            exit(1);
        }
    }
    uint64_t t1 = now_ns();
    core_job_free(j);
    struct core_state st;
    core_state(core, &st);
    *hash = st.hash;
    core_destroy(core);
    return (double)(t1 - t0) / n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    uint32_t n = 400000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--small") == 0)
            n = 20000;
        else if (strcmp(argv[i], "--commands") == 0 && i + 1 < argc)
            n = (uint32_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_core [--small] [--commands N]\n");
            return 2;
        }
    }
    uint32_t keep = n / 40; /* the full read model's limits */
    double m[RUNS], g[RUNS], c[RUNS], e[RUNS];
    uint64_t h[3 * RUNS], events = 0;
    struct enc enc;
    memset(&enc, 0, sizeof(enc));
    for (int r = 0; r < RUNS; r++) {
        m[r] = run_margin(n);
        if (r && events_margin != events) {
            fprintf(stderr, "bench_core: the margin runs differ (%llu events, then %llu)\n",
                    (unsigned long long)events, (unsigned long long)events_margin);
            return 1;
        }
        events = events_margin;
        g[r] = run_core(n, 0, false, NULL, &h[3 * r]);
        c[r] = run_core(n, keep, false, NULL, &h[3 * r + 1]);
        uint64_t before = enc.bytes, rec_before = enc.records, ev_before = enc.events;
        e[r] = run_core(n, keep, true, &enc, &h[3 * r + 2]);
        if (r && (enc.bytes - before != before / (uint64_t)r || enc.records - rec_before != rec_before / (uint64_t)r ||
                  enc.events - ev_before != ev_before / (uint64_t)r)) {
            fprintf(stderr, "bench_core: the encoded runs differ\n");
            return 1;
        }
    }
    for (int k = 1; k < 3 * RUNS; k++)
        if (h[k] != h[0]) {
            fprintf(stderr, "bench_core: state hashes differ between runs\n");
            return 1;
        }
    qsort(m, RUNS, sizeof(double), cmp);
    qsort(g, RUNS, sizeof(double), cmp);
    qsort(c, RUNS, sizeof(double), cmp);
    qsort(e, RUNS, sizeof(double), cmp);
    printf("== bench_core: %u orders (the load generator's workload), median of %d runs ==\n", n, RUNS);
    printf("  margin core alone (exch_apply)                 %7.0f ns/command   %.2f engine events each\n",
           m[1], (double)events / n);
    printf("  sequencer, read model full (limits %u)     %7.0f ns/command   (+%.0f ns)\n", keep, c[1],
           c[1] - m[1]);
    printf("  sequencer, read model growing (defaults)       %7.0f ns/command   (+%.0f ns: new memory)\n",
           g[1], g[1] - c[1]);
    printf("  full, + an after-lock consumer encoding        %7.0f ns/command   (+%.0f ns)\n", e[1],
           e[1] - c[1]);
    printf("  records: %.2f events each (closing events included), %.0f bytes encoded each\n",
           (double)enc.events / (double)enc.records, (double)enc.bytes / (double)enc.records);
    printf("  state hash %016llx (the same in every run, whatever the limits)\n", (unsigned long long)h[0]);
    rbuf_free(&enc.b);
    return 0;
}
