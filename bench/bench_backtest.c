/*
 * bench_backtest.c - a busy day of history replayed with `perpsim backtest
 * --speed max`: input rows/s and the speed-up over real time (issue 17's
 * target: >= 1,000,000 rows/s, the day in <= 15 s).
 *
 *   bench_backtest --perpsim PATH --gen PATH [--format bitmex|tardis]
 *                  [--trades N] [--quotes N] [--runs N] [--small]
 *
 * The day comes from tools/gen_history (2,000,000 trades and 10,000,000
 * book updates by default: BitMEX's busy-day density), written once into a
 * temporary folder; each run is the whole command, start to report, and
 * the figures are the backtest's own (it times its replay, not the start
 * of the process). --small: 20,000 trades, 100,000 updates, one run (the
 * test suite's).
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "bench_backtest: failed (%d): %s\n", rc, cmd);
    return rc;
}

int main(int argc, char **argv)
{
    const char *perpsim = NULL, *gen = NULL, *format = "bitmex";
    long trades = 2000000, quotes = 10000000, runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--small") == 0) {
            trades = 20000;
            quotes = 100000;
            runs = 1;
        } else if (strcmp(a, "--perpsim") == 0 && v) {
            perpsim = argv[++i];
        } else if (strcmp(a, "--gen") == 0 && v) {
            gen = argv[++i];
        } else if (strcmp(a, "--format") == 0 && v) {
            format = argv[++i];
        } else if (strcmp(a, "--trades") == 0 && v) {
            trades = atol(argv[++i]);
        } else if (strcmp(a, "--quotes") == 0 && v) {
            quotes = atol(argv[++i]);
        } else if (strcmp(a, "--runs") == 0 && v) {
            runs = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_backtest --perpsim PATH --gen PATH [--format bitmex|tardis] "
                            "[--trades N] [--quotes N] [--runs N] [--small]\n");
            return 2;
        }
    }
    if (!perpsim || !gen || runs < 1 || runs > 50 ||
        (strcmp(format, "bitmex") != 0 && strcmp(format, "tardis") != 0)) {
        fprintf(stderr, "bench_backtest: --perpsim and --gen are needed; --format bitmex|tardis\n");
        return 2;
    }
    char dir[] = "/tmp/perpsim-bench-bt-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_backtest: mkdtemp");
        return 1;
    }
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' --format %s --out '%s/day' --trades %ld --quotes %ld > /dev/null", gen, format,
             dir, trades, quotes);
    int rc = 1;
    double rate[50], speedup[50];
    long rows = 0;
    if (sh(cmd) != 0)
        goto out;
    printf("bench_backtest: %s format, %ld trades, %ld book updates, %ld run(s)\n", format, trades, quotes, runs);
    for (long r = 0; r < runs; r++) {
        snprintf(cmd, sizeof(cmd),
                 "'%s' backtest --data $(find '%s/day' -name '*.csv.gz' | sort) --speed max --report '%s/report.json'",
                 perpsim, dir, dir);
        FILE *p = popen(cmd, "r");
        if (!p) {
            perror("bench_backtest: popen");
            goto out;
        }
        char line[1024];
        bool got = false, audit = false;
        double secs = 0, rps = 0, x = 0;
        while (fgets(line, sizeof(line), p)) {
            if (sscanf(line, "backtest: %ld rows from %*d file(s), %*s to %*s in %lf s: %lf rows/s, %lfx", &rows,
                       &secs, &rps, &x) == 4)
                got = true;
            if (strstr(line, "audit        exact to the satoshi"))
                audit = true;
        }
        if (pclose(p) != 0 || !got || !audit) {
            fprintf(stderr, "bench_backtest: run %ld failed (no figures or the audit not exact)\n", r + 1);
            goto out;
        }
        rate[r] = rps;
        speedup[r] = x;
        printf("  run %ld: %ld rows in %.2f s: %.0f rows/s, %.0fx real time\n", r + 1, rows, secs, rps, x);
    }
    qsort(rate, (size_t)runs, sizeof(double), cmp_double);
    qsort(speedup, (size_t)runs, sizeof(double), cmp_double);
    printf("median: %.0f rows/s (%.2fM), %.0fx real time; the day of %ld rows in %.1f s\n", rate[runs / 2],
           rate[runs / 2] / 1e6, speedup[runs / 2], rows, rate[runs / 2] > 0 ? (double)rows / rate[runs / 2] : 0);
    rc = 0;
out:
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_backtest: could not remove %s\n", dir);
    return rc;
}
