/*
 * bench_market.c - how fast the living market runs by itself: the default
 * market (market/, default parameters, seed 1) on a stepped clock with no
 * user, advanced an hour at a time; prints simulated hours per wall-clock
 * second and the commands per second that represents. Target: a simulated
 * day in <= 10 s on this machine.
 *
 * --small runs one simulated hour (the test suite does this so the program
 * cannot rot); --hours N sets the length (default 24). Exit 1 only when
 * something is wrong (the audit, a market that did not trade).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "market/market.h"

#define T0 INT64_C(1797985800000) /* 2026-12-23T00:30:00Z */

static ms_t stepped(void *ctx)
{
    return *(ms_t *)ctx;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int hours = 24;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--small") == 0)
            hours = 1;
        else if (strcmp(argv[i], "--hours") == 0 && i + 1 < argc)
            hours = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_market [--small] [--hours N]\n");
            return 2;
        }
    }
    ms_t clk = T0;
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch.engine.verify_every = 1000; /* checked builds: the invariant walk every 1,000th */
    cfg.clock = (struct core_clock){stepped, &clk, NULL};
    char err[160];
    struct core *c = core_create(&cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "core_create: %s\n", err);
        return 1;
    }
    struct market_params p;
    market_params_default(&p);
    struct market *m = market_start(c, &p, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct core_state s0, s1;
    core_state(c, &s0);
    double t0 = now_s();
    for (int h = 0; h < hours; h++) {
        struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
        j->advance_to = T0 + (ms_t)(h + 1) * 3600 * 1000;
        core_run(c, j);
        clk = j->ts;
        core_job_free(j);
    }
    double secs = now_s() - t0;
    core_state(c, &s1);
    struct market_stats ms;
    market_stats(m, &ms);
    const struct core_view *v = core_view_begin(c);
    struct exch_audit a;
    int ok = cv_audit(v, &a);
    uint32_t trades = 0;
    store_trades(cv_store(v), 0, &trades);
    core_view_end(v);
    uint64_t cmds = s1.seq - s0.seq;
    printf("== bench_market: the default market, stepped, no user, %d simulated hours ==\n", hours);
    printf("  %.2f s wall: %.1f simulated hours per second (a day in %.2f s; target <= 10 s)\n", secs,
           hours / secs, secs * 24 / hours);
    printf("  %llu commands, %.0f commands/s; index steps %llu, jumps %llu, maker %llu, noise %llu, "
           "directional %llu\n",
           (unsigned long long)cmds, (double)cmds / secs, (unsigned long long)ms.index_steps,
           (unsigned long long)ms.jumps, (unsigned long long)ms.maker_commands,
           (unsigned long long)ms.noise_orders, (unsigned long long)ms.directional_orders);
    market_stop(c, m);
    core_destroy(c);
    if (!ok) {
        fprintf(stderr, "bench_market: audit: %s\n", a.report);
        return 1;
    }
    if (!trades) {
        fprintf(stderr, "bench_market: the market did not trade\n");
        return 1;
    }
    return 0;
}
