/*
 * bench_journal.c - what the journal costs and how fast it reads back.
 *
 * The mixed workload: 8 funded accounts on XBTUSD; of every 10 commands, 5
 * new orders (Buys at 60,000 + 0..4 ticks and Sells at 60,000: half rest,
 * half fill), 2 amends and 2 cancels by clOrdID of earlier orders (those
 * already filled are refused, as a bot's late cancel is), 1 index move;
 * the clock one millisecond per command.
 *
 *   append   the workload through core_run() on a fresh exchange without a
 *            journal and with one at each fsync policy (off, interval:5,
 *            batch), interleaved, 3 runs each: ns per command on the
 *            applying thread until the journal has closed (every command
 *            written, and synced by policy), the journal's MB/s, commands
 *            per write() and syncs. core_run never waits for the journal:
 *            this is the engine's cost and the writer's capacity; the
 *            reply path's (a client waiting for its group commit) is
 *            loadgen's, against a server with --data-dir.
 *   replay   the batch run's journal re-applied on a fresh exchange
 *            (journal_replay: read, checksum, decode, apply, read model),
 *            commands/s, median of 3 (target >= 2,000,000/s); the state hash
 *            equal to the run's, or exit 1.
 *   recovery with --perpsim PATH: PATH started on that journal (--data-dir,
 *            the WebSocket's feed rebuilt too), the time until it listens,
 *            less the time a start on an empty directory takes (target
 *            <= 1 s for 1,000,000 commands).
 *
 *   bench_journal [--small] [--commands N] [--perpsim PATH] [--keep]
 * --small: 5,000 commands (the test suite runs this so it cannot rot).
 * --keep: leave the batch run's data directory (printed) for
 * `perpsim replay --data-dir DIR/j` or a profiler.
 * Exit 1 only when something is wrong, never for a figure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/hugepages.h"
#include "core/core.h"
#include "journal/journal.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define ACCOUNTS 8
#define RUNS 3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct tclock {
    ms_t t;
};

static ms_t tclock_now(void *ctx)
{
    return ((struct tclock *)ctx)->t;
}

static void mixed_cmd(uint32_t k, struct cmd *c)
{
    memset(c, 0, sizeof(*c));
    c->account = 1 + k % ACCOUNTS;
    uint32_t r = k % 10;
    if (r < 5) {
        c->type = CMD_NEW_ORDER;
        c->u.new_order.has = HAS_QTY | HAS_PRICE;
        bool buy = (k / ACCOUNTS) % 2 == 0;
        c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
        c->u.new_order.qty = 100;
        c->u.new_order.price = buy ? 60000 * PX_SCALE + (px_t)(k % 5) * (PX_SCALE / 2) : 60000 * PX_SCALE;
        snprintf(c->u.new_order.clordid, sizeof(c->u.new_order.clordid), "o%u", k);
    } else if (r < 7) {
        c->type = CMD_AMEND;
        /* k - 24: the same account (24 = 3 x ACCOUNTS), a new order then */
        snprintf(c->u.amend.ref.clordid, sizeof(c->u.amend.ref.clordid), "o%u", k - 24);
        c->u.amend.has = AMD_QTY;
        c->u.amend.qty = 200;
    } else if (r < 9) {
        c->type = CMD_CANCEL;
        snprintf(c->u.cancel.clordid, sizeof(c->u.cancel.clordid), "o%u", k - 24);
    } else {
        c->type = CMD_SET_INDEX;
        c->u.set_index.index = 0;
        c->u.set_index.price = 60000 * PX_SCALE + (px_t)((k / 10) % 7) * PX_SCALE;
    }
}

static struct core *make_core(struct tclock *clk)
{
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch.engine.accounts_max = 64;
    cfg.exch.engine.verify_every = 1000;
    cfg.clock = (struct core_clock){tclock_now, clk, NULL};
    char err[256];
    struct core *c = core_create(&cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_journal: %s\n", err);
        exit(1);
    }
    return c;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct run {
    double ns;              /* per command, until the journal closed */
    struct journal_stats js;
    uint64_t hash, seq;
};

/* The workload on a fresh exchange; policy < 0: no journal. */
static void run_append(uint32_t n, int policy, const char *dir, struct run *out)
{
    struct tclock clk = {T0};
    struct core *c = make_core(&clk);
    struct journal *j = NULL;
    char err[512];
    if (policy >= 0) {
        rm_rf(dir);
        struct journal_config jc;
        memset(&jc, 0, sizeof(jc));
        snprintf(jc.dir, sizeof(jc.dir), "%s", dir);
        jc.fsync = (enum jr_fsync)policy;
        jc.interval_ms = 5;
        j = journal_create(&jc, err, sizeof(err));
        if (!j || journal_attach(j, c) != 0 || journal_start(j, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench_journal: %s\n", err);
            exit(1);
        }
    }
    for (uint32_t a = 1; a <= ACCOUNTS; a++) {
        struct core_job *jb = core_job_new(J_ACCOUNT, 0, 1);
        snprintf(jb->key.id, sizeof(jb->key.id), "key%021u", a);
        snprintf(jb->key.secret, sizeof(jb->key.secret), "secret%042u", a);
        jb->key.enabled = true;
        jb->cmds[0].type = CMD_DEPOSIT;
        jb->cmds[0].u.money.amount = INT64_C(100000000000);
        core_run(c, jb);
        if (jb->status != REJ_NONE || jb->account != a) {
            fprintf(stderr, "bench_journal: account %u not made\n", a);
            exit(1);
        }
        core_job_free(jb);
    }
    struct core_job *jb = core_job_new(J_ORDERS, 0, 1);
    double t0 = now_s();
    for (uint32_t k = 0; k < n; k++) {
        mixed_cmd(k, &jb->cmds[0]);
        jb->account = jb->cmds[0].account;
        jb->kind = jb->cmds[0].type == CMD_SET_INDEX ? J_INDEX : J_ORDERS;
        clk.t++;
        core_run(c, jb);
    }
    if (j)
        journal_close(j);
    double t1 = now_s();
    core_job_free(jb);
    struct core_state st;
    core_state(c, &st);
    out->ns = (t1 - t0) * 1e9 / n;
    out->hash = st.hash;
    out->seq = st.seq;
    memset(&out->js, 0, sizeof(out->js));
    if (j)
        journal_stats(j, &out->js);
    core_destroy(c);
    journal_destroy(j);
}

static double run_replay(const char *dir, uint64_t want_hash, uint64_t *commands)
{
    struct core_cmd_buf *first = malloc(sizeof(*first));
    char err[512];
    if (!first || journal_first(dir, first, err, sizeof(err)) != 1) {
        fprintf(stderr, "bench_journal: no journal to replay: %s\n", err);
        exit(1);
    }
    struct tclock clk = {0};
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch = *first->cmd.config;
    cfg.limits = *first->cmd.limits;
    cfg.clock = (struct core_clock){tclock_now, &clk, NULL};
    free(first);
    struct core *c = core_create(&cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_journal: %s\n", err);
        exit(1);
    }
    struct journal_report rep;
    double t0 = now_s();
    if (journal_replay(dir, c, 0, false, NULL, NULL, &rep, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_journal: replay: %s\n", err);
        exit(1);
    }
    double el = now_s() - t0;
    struct core_state st;
    core_state(c, &st);
    if (st.hash != want_hash) {
        fprintf(stderr, "bench_journal: the replay's state hash %016llx differs from the run's %016llx\n",
                (unsigned long long)st.hash, (unsigned long long)want_hash);
        exit(1);
    }
    core_destroy(c);
    *commands = rep.commands;
    return (double)rep.commands / el;
}

/* Seconds from exec to the "listening" line of perpsim on dir. */
static double start_time(const char *perpsim, const char *dir)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(perpsim, perpsim, "--listen", "127.0.0.1:0", "--no-market", "--no-demo", "--quiet", "--clock", "stepped",
              "--data-dir", dir, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    double t = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strstr(line, "listening on")) {
            t = now_s() - t0;
            break;
        }
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    if (f)
        fclose(f);
    return t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    hugepages_reexec(argv); /* as perpsim runs */
    uint32_t n = 1000000;
    const char *perpsim = NULL;
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--small") == 0)
            n = 5000;
        else if (strcmp(argv[i], "--commands") == 0 && i + 1 < argc)
            n = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--perpsim") == 0 && i + 1 < argc)
            perpsim = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else {
            fprintf(stderr, "usage: bench_journal [--small] [--commands N] [--perpsim PATH] [--keep]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/perpsim-bench-journal-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_journal: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char jdir[sizeof(dir) + 16];
    snprintf(jdir, sizeof(jdir), "%s/j", dir);
    static const char *const names[] = {"no journal", "--fsync off", "--fsync interval:5", "--fsync batch"};
    static const int policy[] = {-1, JR_FSYNC_OFF, JR_FSYNC_INTERVAL, JR_FSYNC_BATCH};
    double ns[4][RUNS];
    struct run last[4];
    uint64_t hash = 0;
    for (int r = 0; r < RUNS; r++)
        for (int p = 0; p < 4; p++) {
            struct run x;
            run_append(n, policy[p], jdir, &x);
            if (r == 0 && p == 0)
                hash = x.hash;
            if (x.hash != hash) {
                fprintf(stderr, "bench_journal: state hashes differ between runs\n");
                return 1;
            }
            if (p > 0 && x.js.records != x.seq) {
                fprintf(stderr, "bench_journal: %s journaled %llu of %llu commands\n", names[p],
                        (unsigned long long)x.js.records, (unsigned long long)x.seq);
                return 1;
            }
            ns[p][r] = x.ns;
            last[p] = x;
        }
    printf("== bench_journal: %u commands of the mixed workload (orders, amends, cancels, index moves) ==\n", n);
    printf("append: ns per command on the applying thread until the journal closed, median of %d\n", RUNS);
    for (int p = 0; p < 4; p++) {
        qsort(ns[p], RUNS, sizeof(double), cmp);
        printf("  %-20s %6.0f ns (%+5.0f)", names[p], ns[p][1], ns[p][1] - ns[0][1]);
        if (p > 0) {
            const struct journal_stats *s = &last[p].js;
            double secs = ns[p][1] * n / 1e9;
            printf("   %6.1f MB/s  %.0f B/command  %5.0f commands/write  %llu syncs", (double)s->bytes / secs / 1e6,
                   (double)s->bytes / (double)s->records, (double)s->records / (double)s->batches,
                   (unsigned long long)s->syncs);
        }
        printf("\n");
    }
    /* The batch run's journal (the last run of the loop wrote it). */
    double rate[RUNS];
    uint64_t cmds = 0;
    for (int r = 0; r < RUNS; r++)
        rate[r] = run_replay(jdir, hash, &cmds);
    qsort(rate, RUNS, sizeof(double), cmp);
    printf("replay: %llu commands, %.2fM commands/s (median of %d; target >= 2M: %s)\n", (unsigned long long)cmds,
           rate[1] / 1e6, RUNS, rate[1] >= 2e6 ? "met" : "NOT met");
    if (perpsim) {
        char empty[sizeof(dir) + 16];
        snprintf(empty, sizeof(empty), "%s/e", dir);
        double rec[RUNS], base[RUNS];
        for (int r = 0; r < RUNS; r++) {
            rm_rf(empty);
            base[r] = start_time(perpsim, empty);
            /* The server adds a segment of its own at every start: the
             * journal stays the run's (it journals nothing on a stepped
             * clock with nobody writing). */
            rec[r] = start_time(perpsim, jdir);
            if (base[r] < 0 || rec[r] < 0) {
                fprintf(stderr, "bench_journal: %s did not start\n", perpsim);
                rm_rf(dir);
                return 1;
            }
        }
        qsort(rec, RUNS, sizeof(double), cmp);
        qsort(base, RUNS, sizeof(double), cmp);
        double per_m = (rec[1] - base[1]) * 1e6 / (double)cmds;
        printf("recovery: perpsim on %llu commands listens after %.3f s, on none after %.3f s: %.3f s per "
               "1,000,000 commands (target <= 1 s: %s)\n",
               (unsigned long long)cmds, rec[1], base[1], per_m, per_m <= 1.0 ? "met" : "NOT met");
    }
    if (keep)
        printf("kept: %s (perpsim replay --data-dir %s)\n", dir, jdir);
    else
        rm_rf(dir);
    return 0;
}
