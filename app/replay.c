/*
 * replay.c - `perpsim replay`: a journal re-applied on a fresh state,
 * without serving, with what it gave (replay.h).
 */
#define _GNU_SOURCE
#include "app/replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/timefmt.h"
#include "journal/journal.h"

double replay_mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void replay_sleep_until(double mono_s)
{
    double d = mono_s - replay_mono_s();
    if (d <= 0)
        return;
    struct timespec t = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

void replay_print_summary(FILE *f, const struct core_summary *s)
{
    char ts[TF_ISO_BUF];
    tf_format_ms(s->state.time, ts, sizeof(ts));
    fprintf(f, "  sequence     %" PRIu64 " at %s\n", s->state.seq, ts);
    fprintf(f, "  state hash   %016" PRIx64 "\n", s->state.hash);
    fprintf(f, "  orders       %" PRIu64 " placed, %" PRIu64 " executions, %u accounts\n", s->orders,
            s->executions, s->accounts);
    if (s->audit_ok)
        fprintf(f, "  audit        exact to the satoshi\n");
    else
        fprintf(f, "  audit        FAILED: %s\n", s->audit_report);
}

void replay_print_cut(FILE *f, const struct journal_report *r)
{
    if (!r->cut)
        return;
    fprintf(f, "  cut          %s offset %" PRIu64 ": %s\n", r->cut_file, r->cut_offset, r->cut_reason);
    if (r->set_aside)
        fprintf(f, "  set aside    %u later segment(s), renamed *.set-aside\n", r->set_aside);
}

struct progress {
    bool tty;
    double t0;
    uint64_t commands;
};

static void on_progress(void *ctx, uint64_t bytes, uint64_t total, const struct core_cmd *last)
{
    struct progress *p = ctx;
    if (!p->tty || !total)
        return;
    double el = replay_mono_s() - p->t0, frac = (double)bytes / (double)total;
    char ts[TF_ISO_BUF] = "-";
    if (last)
        tf_format_ms(last->ts, ts, sizeof(ts));
    double rate = el > 0 && last ? (double)last->seq / el : 0;
    double eta = frac > 0 ? el * (1 - frac) / frac : 0;
    char what[64];
    snprintf(what, sizeof(what), "%.2fM commands/s", rate / 1e6);
    replay_print_bar(frac, ts, what, eta);
}

void replay_print_bar(double frac, const char *ts, const char *what, double eta_s)
{
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  %s  %s  ETA %.0fs   ", bar, frac * 100, ts, what, eta_s);
    fflush(stderr);
}

static void count_events(void *ctx, const struct core_record *r)
{
    *(uint64_t *)ctx += r->nev;
}

static ms_t no_clock(void *ctx)
{
    (void)ctx;
    return 0; /* replay applies each command at its journaled time */
}

static const char usage[] =
    "usage: perpsim replay --data-dir DIR [--to-seq N] [--start-from-last-good]\n"
    "\n"
    "Re-applies DIR's journal on a fresh state without serving, then prints the\n"
    "final sequence number, events, state hash, audit and commands/s. Two runs on\n"
    "the same journal print the same hash.\n";

int replay_main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t to_seq = 0;
    bool last_good = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--start-from-last-good") == 0) {
            last_good = true;
        } else if (strcmp(a, "--data-dir") == 0 && v) {
            dir = v;
            i++;
        } else if (strcmp(a, "--to-seq") == 0 && v) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || end == v || *end || n == 0) {
                fprintf(stderr, "perpsim replay: --to-seq wants a sequence number > 0, got %s\n", v);
                return 2;
            }
            to_seq = n;
            i++;
        } else {
            fprintf(stderr, "perpsim replay: unknown option or missing value: %s\n%s", a, usage);
            return 2;
        }
    }
    if (!dir) {
        fputs(usage, stderr);
        return 2;
    }
    char err[1024];
    struct core_cmd_buf *first = malloc(sizeof(*first));
    if (!first)
        return 1;
    int have = journal_first(dir, first, err, sizeof(err));
    if (have <= 0) {
        fprintf(stderr, "perpsim replay: %s\n", have < 0 ? err : "no journal in that directory");
        free(first);
        return 1;
    }
    struct core_config cfg;
    core_config_default(&cfg, 0);
    cfg.exch = *first->cmd.config;
    cfg.limits = *first->cmd.limits;
    /* Builds with -Dchecks=true audit the money after every command; the
     * walk of every pool (a million order slots) after every 1,000th is
     * enough for a replay of millions (a build-time check, not state: the
     * journal does not carry it). */
    cfg.exch.engine.verify_every = 1000;
    cfg.clock = (struct core_clock){no_clock, NULL, NULL};
    free(first);
    struct core *c = core_create(&cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "perpsim replay: %s\n", err);
        return 1;
    }
    uint64_t events = 0;
    core_subscribe(c, count_events, &events, true);
    struct progress p = {isatty(STDERR_FILENO) != 0, replay_mono_s(), 0};
    struct journal_report rep;
    int rc = journal_replay(dir, c, to_seq, last_good, on_progress, &p, &rep, err, sizeof(err));
    double el = replay_mono_s() - p.t0;
    if (p.tty)
        fprintf(stderr, "\n");
    if (rc != 0) {
        fprintf(stderr, "perpsim replay: %s\n", err);
        core_destroy(c);
        return 1;
    }
    struct core_summary s;
    core_summarize(c, &s);
    printf("replayed %" PRIu64 " commands from %s in %.3f s: %.0f commands/s\n", rep.commands, dir, el,
           el > 0 ? (double)rep.commands / el : 0);
    printf("  events       %" PRIu64 "\n", events);
    replay_print_summary(stdout, &s);
    replay_print_cut(stdout, &rep);
    core_destroy(c);
    return s.audit_ok ? 0 : 1;
}
