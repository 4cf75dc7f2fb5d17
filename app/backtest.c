/*
 * backtest.c - `perpsim backtest`: market history replayed into the real
 * book at full speed, a report at the end (backtest.h).
 */
#define _GNU_SOURCE
#include "app/backtest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/timefmt.h"
#include "app/replay.h"
#include "history/driver.h"
#include "history/report.h"
#include "journal/journal.h"
#include "market/market.h"

/* Data time advanced per job: progress is shown between jobs. */
#define STEP_MS (60 * INT64_C(1000))

struct stepped {
    ms_t t;
};

static ms_t stepped_now(void *ctx)
{
    return ((struct stepped *)ctx)->t;
}

static const char usage[] =
    "usage: perpsim backtest --data FILE... [--from ISO] [--to ISO] [--speed max|N]\n"
    "                        [--report FILE.json] [--plot FILE.svg] [--data-dir DIR]\n"
    "                        [--agents [--seed N]] [--strict]\n"
    "\n"
    "Replays market history into the real book: BitMEX's daily dumps\n"
    "(trade/YYYYMMDD.csv.gz, quote/YYYYMMDD.csv.gz) and Tardis.dev's CSV (trades,\n"
    "quotes, incremental_book_L2, derivative_ticker), gzip or plain, several files\n"
    "merged in time order. The book is orders of a history account; trades take\n"
    "it in FIFO order (docs/backtest.md).\n"
    "\n"
    "  --data FILE...     the files (the format is read from each header)\n"
    "  --from ISO         start at this time (default: the first row)\n"
    "  --to ISO           stop before this time (default: the last row)\n"
    "  --speed max|N      as fast as the machine goes (the default), or N times\n"
    "                     real time\n"
    "  --report FILE      the report as JSON (default: printed at the end)\n"
    "  --plot FILE.svg    price, each trader's equity and position over time, SVG\n"
    "  --agents           the living market's noise and directional traders trade\n"
    "                     in the historical book (no market makers, no index walk)\n"
    "  --seed N           the agents' seed (the same seed, the same run)\n"
    "  --data-dir DIR     journal the run there (a new directory): `perpsim replay\n"
    "                     --data-dir DIR` then gives the same state hash\n"
    "  --strict           a malformed line stops the run (default: reported, skipped)\n";

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "perpsim backtest: %s%s\n", msg, arg ? arg : "");
    return 2;
}

static int parse_time_us(const char *v, int64_t *out)
{
    ms_t ms;
    if (tf_parse_time(v, strlen(v), &ms) != TF_OK)
        return -1;
    *out = ms * 1000;
    return 0;
}

/* Writes text (taken: freed here) to path, with a final newline when nl;
 * -1 with a message on stderr. */
static int write_text(const char *path, char *text, bool nl)
{
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = 0;
    if (!f || fputs(text, f) < 0 || (nl && fputc('\n', f) == EOF))
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "perpsim: cannot write %s: %s\n", path, text ? strerror(errno) : "out of memory");
    free(text);
    return rc;
}

static void progress(bool tty, double t0, const struct history_stats *st, const struct hsource_stats *ss,
                     uint64_t commands)
{
    if (!tty || !ss->bytes_total)
        return;
    double el = replay_mono_s() - t0, frac = (double)ss->bytes_in / (double)ss->bytes_total;
    if (frac > 1)
        frac = 1;
    char ts[TF_ISO_BUF] = "-";
    if (st->last_ms)
        tf_format_ms(st->last_ms, ts, sizeof(ts));
    char what[96];
    snprintf(what, sizeof(what), "%.2fM rows/s  %.2fM commands/s", el > 0 ? (double)st->rows / el / 1e6 : 0,
             el > 0 ? (double)commands / el / 1e6 : 0);
    replay_print_bar(frac, ts, what, frac > 0 ? el * (1 - frac) / frac : 0);
}

int backtest_main(int argc, char **argv)
{
    const char *paths[HSOURCE_FILES_MAX];
    uint32_t npaths = 0;
    const char *report_path = NULL, *plot_path = NULL, *dir = NULL;
    int64_t speed = 0; /* 0: as fast as the machine goes, else N x real time */
    bool agents = false;
    uint64_t seed = 0;
    struct hsource_opts so = {.strict = false, .from_us = 0, .to_us = INT64_MAX, .report = stderr};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--data") == 0) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (npaths == HSOURCE_FILES_MAX)
                    return fail("too many --data files (at most 64)", NULL);
                paths[npaths++] = argv[++i];
            }
        } else if (strcmp(a, "--strict") == 0) {
            so.strict = true;
        } else if (strcmp(a, "--from") == 0 && v) {
            if (parse_time_us(v, &so.from_us))
                return fail("--from wants an ISO 8601 time, got ", v);
            i++;
        } else if (strcmp(a, "--to") == 0 && v) {
            if (parse_time_us(v, &so.to_us))
                return fail("--to wants an ISO 8601 time, got ", v);
            i++;
        } else if (strcmp(a, "--speed") == 0 && v) {
            char *end = NULL;
            long long sp = strcmp(v, "max") == 0 ? 0 : strtoll(v, &end, 10);
            if (sp == 0 ? strcmp(v, "max") != 0 : (end == v || *end || sp < 1 || sp > 1000000))
                return fail("--speed wants max or N (1..1000000), got ", v);
            speed = sp;
            i++;
        } else if (strcmp(a, "--report") == 0 && v) {
            report_path = v;
            i++;
        } else if (strcmp(a, "--agents") == 0) {
            agents = true;
        } else if (strcmp(a, "--seed") == 0 && v) {
            char *end = NULL;
            seed = strtoull(v, &end, 10);
            if (end == v || *end || seed == 0)
                return fail("--seed wants a whole number > 0, got ", v);
            i++;
        } else if (strcmp(a, "--plot") == 0 && v) {
            plot_path = v;
            i++;
        } else if (strcmp(a, "--data-dir") == 0 && v) {
            dir = v;
            i++;
        } else {
            fprintf(stderr, "perpsim backtest: unknown option or missing value: %s\n%s", a, usage);
            return 2;
        }
    }
    if (!npaths) {
        fputs(usage, stderr);
        return 2;
    }
    if (seed && !agents)
        return fail("--seed is the agents' seed: give --agents too", NULL);
    char err[1024];
    struct hsource *src = hsource_open(paths, npaths, &so, err, sizeof(err));
    if (!src) {
        fprintf(stderr, "perpsim backtest: %s\n", err);
        return 1;
    }
    struct history_params hp;
    history_params_default(&hp);
    /* The config's future expires at the quarter end after the data's
     * start: the first row's time, read ahead before the exchange is made. */
    struct core_config cfg;
    core_config_default(&cfg, 0);
    struct history *h = history_create(src, &cfg.exch, &hp);
    if (!h) {
        hsource_close(src);
        return fail("out of memory", NULL);
    }
    ms_t t0;
    int first = history_first_ms(h, &t0, err, sizeof(err));
    if (first != 0 || t0 == INT64_MAX) {
        fprintf(stderr, "perpsim backtest: %s\n", first != 0 ? err : "no rows in the data");
        history_stop(NULL, h);
        return 1;
    }
    if (so.from_us > 0 && so.from_us / 1000 < t0)
        t0 = so.from_us / 1000;
    core_config_default(&cfg, t0);
    /* The history account holds the whole historical book: BitMEX's 200
     * open orders per account and contract would cut a deep book. */
    cfg.exch.engine.open_orders_max = 100000;
    cfg.exch.spam_orders = 0; /* the history account's many small orders are the book, not spam */
    /* Builds with -Dchecks=true audit the money after every command; the
     * walk of every pool (a million order slots) every 1,000th is enough
     * for a run of millions of commands. */
    cfg.exch.engine.verify_every = 1000;
    struct stepped clk = {t0};
    cfg.clock = (struct core_clock){stepped_now, &clk, NULL};
    struct core *c = core_create(&cfg, err, sizeof(err));
    if (!c) {
        history_stop(NULL, h);
        fprintf(stderr, "perpsim backtest: %s\n", err);
        return 1;
    }
    struct report *rep = report_create(core_exch_config(c));
    struct journal *jr = NULL;
    struct market *mk = NULL;
    struct core_timer_pair pair;
    int rc = 1;
    if (dir) {
        struct core_cmd_buf *first = malloc(sizeof(*first));
        int had = first ? journal_first(dir, first, err, sizeof(err)) : -1;
        free(first);
        if (had != 0) {
            fprintf(stderr, "perpsim backtest: %s\n",
                    had > 0 ? "--data-dir has a journal already: a backtest journals into a new directory" : err);
            goto out;
        }
        struct journal_config jc;
        memset(&jc, 0, sizeof(jc));
        snprintf(jc.dir, sizeof(jc.dir), "%s", dir);
        jc.fsync = JR_FSYNC_BATCH;
        jr = journal_create(&jc, err, sizeof(err));
        if (!jr || journal_attach(jr, c) != 0 || journal_start(jr, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "perpsim backtest: %s\n", err);
            goto out;
        }
    }
    if (!rep || history_attach(h, c) != 0 || report_attach(rep, c) != 0) {
        fprintf(stderr, "perpsim backtest: out of memory\n");
        goto out;
    }
    if (history_start(h, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "perpsim backtest: %s\n", err);
        goto out;
    }
    report_name(rep, c, history_account(h), "history");
    if (agents) {
        /* The living market's noise and directional traders trade in the
         * historical book; the history keeps the index and the book. */
        struct market_params mp;
        market_params_default(&mp);
        mp.agents_only = true;
        if (seed)
            mp.seed = seed;
        mk = market_start(c, &mp, err, sizeof(err));
        if (!mk) {
            fprintf(stderr, "perpsim backtest: --agents: %s\n", err);
            goto out;
        }
        pair = (struct core_timer_pair){history_timer(h), market_timer(mk)};
        struct core_timer t = core_timer_pair(&pair);
        core_set_timer(c, &t);
    }
    bool tty = isatty(STDERR_FILENO) != 0;
    double w0 = replay_mono_s();
    struct history_stats st;
    for (;;) {
        history_stats(h, &st);
        if (st.done || history_error(h))
            break;
        /* Paced: steps of 100 ms of wall time, each waited for. */
        ms_t step = speed ? (100 * speed < STEP_MS ? 100 * speed : STEP_MS) : STEP_MS;
        ms_t next = clk.t + step;
        if (speed)
            replay_sleep_until(w0 + (double)(next - t0) / 1000.0 / (double)speed);
        if (so.to_us != INT64_MAX && next > so.to_us / 1000)
            next = so.to_us / 1000;
        struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
        if (!j) {
            fprintf(stderr, "perpsim backtest: out of memory\n");
            goto out;
        }
        j->advance_to = next;
        j->until_done = history_done; /* the run ends at the data's last row */
        j->until_ctx = h;
        core_run(c, j);
        clk.t = j->ts > next ? j->ts : next;
        core_job_free(j);
        struct hsource_stats ss;
        hsource_stats(history_source(h), &ss);
        progress(tty, w0, &st, &ss, core_commands(c));
        if (so.to_us != INT64_MAX && next >= so.to_us / 1000)
            break;
    }
    double el = replay_mono_s() - w0;
    if (tty)
        fprintf(stderr, "\n");
    if (history_error(h)) {
        fprintf(stderr, "perpsim backtest: %s\n", history_error(h));
        goto out;
    }
    history_stats(h, &st);
    struct hsource_stats ss;
    hsource_stats(history_source(h), &ss);
    struct core_summary sum;
    core_summarize(c, &sum);
    char a[TF_ISO_BUF] = "-", b[TF_ISO_BUF] = "-";
    tf_format_ms(t0, a, sizeof(a));
    tf_format_ms(st.last_ms, b, sizeof(b));
    double span = (double)(st.last_ms - t0) / 1000.0;
    printf("backtest: %" PRIu64 " rows from %u file(s), %s to %s, in %.3f s: %.0f rows/s, %.0fx real time\n",
           st.rows, npaths, a, b, el, el > 0 ? (double)st.rows / el : 0, el > 0 ? span / el : 0);
    printf("  rows         %" PRIu64 " trades, %" PRIu64 " quotes, %" PRIu64 " book, %" PRIu64 " tickers; %" PRIu64
           " skipped malformed, %" PRIu64 " unlisted symbol, %" PRIu64 " off tick, %" PRIu64 " below a lot\n",
           st.trades, st.quotes, st.book_rows, st.tickers, ss.skipped, st.unlisted, st.off_tick, st.small);
    printf("  commands     %" PRIu64 " (%.0f/s), %" PRIu64 " index moves, %" PRIu64
           " trades needing liquidity placed\n",
           core_commands(c), el > 0 ? (double)core_commands(c) / el : 0, st.index_moves, st.shortfall);
    if (st.funding_rates || st.funding_other_time || st.funding_absurd)
        printf("  funding      %" PRIu64 " rates from the data announced, %" PRIu64
               " for another funding time, %" PRIu64 " beyond +-10%% skipped\n",
               st.funding_rates, st.funding_other_time, st.funding_absurd);
    replay_print_summary(stdout, &sum);
    char *json = report_json(rep, c);
    if (!json) {
        fprintf(stderr, "perpsim backtest: out of memory for the report\n");
        goto out;
    }
    if (report_path) {
        if (write_text(report_path, json, true) != 0)
            goto out;
        printf("  report       %s\n", report_path);
    } else {
        printf("%s\n", json);
        free(json);
    }
    if (plot_path) {
        if (write_text(plot_path, report_svg(rep, c), false) != 0)
            goto out;
        printf("  plot         %s\n", plot_path);
    }
    rc = sum.audit_ok ? 0 : 1;
out:
    core_shutdown(c);
    if (jr)
        journal_close(jr);
    if (mk)
        market_stop(c, mk);
    history_stop(c, h);
    core_destroy(c);
    journal_destroy(jr);
    report_destroy(rep);
    return rc;
}

/* ---- a served backtest ------------------------------------------------------ */

struct served {
    const char *paths[HSOURCE_FILES_MAX];
    uint32_t npaths;
    struct hsource_opts so;
    const char *report_path, *plot_path;
    struct hsource *src;  /* until the driver takes it */
    ms_t first_ms;
    struct history *h;
    struct report *rep;
};

struct served *served_open(int argc, char **argv, ms_t *first_ms, char *err, size_t errcap)
{
    err[0] = '\0';
    struct served *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    b->so = (struct hsource_opts){.strict = false, .from_us = 0, .to_us = INT64_MAX, .report = stderr};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--history") == 0) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (b->npaths == HSOURCE_FILES_MAX) {
                    snprintf(err, errcap, "too many --history files (at most %d)", HSOURCE_FILES_MAX);
                    free(b);
                    return NULL;
                }
                b->paths[b->npaths++] = argv[++i];
            }
        } else if (strcmp(argv[i], "--history-strict") == 0) {
            b->so.strict = true;
        } else if (strcmp(argv[i], "--history-report") == 0 && i + 1 < argc) {
            b->report_path = argv[++i];
        } else if (strcmp(argv[i], "--history-plot") == 0 && i + 1 < argc) {
            b->plot_path = argv[++i];
        } else if ((strcmp(argv[i], "--history-from") == 0 || strcmp(argv[i], "--history-to") == 0) &&
                   i + 1 < argc) {
            bool from = strcmp(argv[i], "--history-from") == 0;
            if (parse_time_us(argv[i + 1], from ? &b->so.from_us : &b->so.to_us)) {
                snprintf(err, errcap, "%s wants an ISO 8601 time, got %s", from ? "--from" : "--to", argv[i + 1]);
                free(b);
                return NULL;
            }
            i++;
        }
    }
    if (!b->npaths) {
        if (b->report_path || b->plot_path || b->so.strict || b->so.from_us || b->so.to_us != INT64_MAX)
            snprintf(err, errcap, "--history-report, --history-plot, --history-strict, --history-from and "
                                  "--history-to need --history FILE...");
        free(b);
        return NULL;
    }
    b->src = hsource_open(b->paths, b->npaths, &b->so, err, errcap);
    if (!b->src) {
        free(b);
        return NULL;
    }
    /* The first row's time, read by a source of its own: the driver's
     * reads from the start. */
    struct hsource *peek = hsource_open(b->paths, b->npaths, &b->so, err, errcap);
    struct hrow row;
    int rc = peek ? hsource_next(peek, &row, err, errcap) : -1;
    hsource_close(peek);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errcap, "no rows in the --history data");
        hsource_close(b->src);
        free(b);
        return NULL;
    }
    b->first_ms = row.ts_us / 1000;
    *first_ms = b->first_ms;
    return b;
}

int served_attach(void *ctx, struct core *c)
{
    struct served *b = ctx;
    struct history_params hp;
    history_params_default(&hp);
    b->h = history_create(b->src, core_exch_config(c), &hp);
    if (!b->h)
        return -1;
    b->src = NULL;
    b->rep = report_create(core_exch_config(c));
    if (!b->rep || history_attach(b->h, c) != 0 || report_attach(b->rep, c) != 0)
        return -1;
    return 0;
}

int served_start(struct served *b, struct core *c, char *err, size_t errcap)
{
    if (history_start(b->h, c, err, errcap) != 0)
        return -1;
    report_name(b->rep, c, history_account(b->h), "history");
    return 0;
}

void served_finish(struct served *b, struct core *c)
{
    if (!b->rep)
        return;
    if (b->report_path)
        write_text(b->report_path, report_json(b->rep, c), true);
    if (b->plot_path)
        write_text(b->plot_path, report_svg(b->rep, c), false);
}

char *served_report_fn(void *ctx, struct core *c)
{
    struct served *b = ctx;
    return b->rep ? report_json(b->rep, c) : NULL;
}

void served_free(struct served *b)
{
    if (!b)
        return;
    hsource_close(b->src);
    history_stop(NULL, b->h);
    report_destroy(b->rep);
    free(b);
}
