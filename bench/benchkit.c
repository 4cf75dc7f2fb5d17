/*
 * benchkit.c - the helpers loadgen.c and bench_ws.c share: the stop flag,
 * sleeping, report formatting, the latency histogram and a perpsim child
 * process. See benchkit.h.
 */
#define _GNU_SOURCE

#include "benchkit.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small helpers --------------------------------------------------------- */

volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void bench_process_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    raise_fd_limit();
}

void bench_vcheck_failed(const char *fmt, va_list ap)
{
    fprintf(stderr, "CHECK FAILED: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop)
        ;
}

const char *met(bool ok)
{
    return ok ? "met" : "NOT met";
}

const char *fmt_u(char *buf, size_t cap, uint64_t v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    size_t k = 0;
    for (int i = 0; i < len && k + 1 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && k + 2 < cap)
            buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = 0;
    return buf;
}

double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* ---- latency histogram ------------------------------------------------------ */

uint64_t hist_value(uint32_t i)
{
    if (i < HIST_SUB)
        return i;
    int shift = (int)(i / HIST_SUB) - 1;
    uint64_t low = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
    return low + ((UINT64_C(1) << shift) >> 1);
}

void hist_merge(struct hist *d, const struct hist *s)
{
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        d->b[i] += s->b[i];
    d->count += s->count;
    if (s->max_ns > d->max_ns)
        d->max_ns = s->max_ns;
}

uint64_t hist_pct(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

/* ---- a perpsim child process ------------------------------------------------ */

int bench_server_spawn(struct bench_server *s, const char *prog, const char *const *argv)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the benchmark */
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    s->pid = pid;
    s->out_fd = p[0];
    return 0;
}

const char *bench_server_wait(struct bench_server *s, int timeout_ms, char *buf, size_t cap,
                              size_t *len, const char **addr, size_t *addr_len)
{
    *len = 0;
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    const char *tag = "listening on http://";
    for (;;) {
        buf[*len] = 0;
        char *at = strstr(buf, tag);
        if (at) {
            const char *start = at + strlen("listening on ");
            size_t l = strcspn(start, " \t\r\n");
            if (start[l] != 0) { /* the whole address has arrived */
                *addr = start;
                *addr_len = l;
                return NULL;
            }
        }
        int64_t left = deadline - now_ns();
        struct pollfd pf = {.fd = s->out_fd, .events = POLLIN};
        int r = left > 0 ? poll(&pf, 1, (int)(left / 1000000) + 1) : 0;
        ssize_t got = 0;
        if (r > 0) {
            got = read(s->out_fd, buf + *len, cap - 1 - *len);
            if (got < 0 && errno == EINTR)
                continue;
        } else if (r < 0 && errno == EINTR && !g_stop) {
            continue;
        }
        if (r <= 0 || got <= 0 || *len + (size_t)got >= cap - 1) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            close(s->out_fd);
            s->out_fd = -1;
            s->pid = 0;
            return r == 0 ? "timed out" : "it closed its output";
        }
        *len += (size_t)got;
    }
}

static void *drain_main(void *arg)
{
    struct bench_server *s = arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(s->out_fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (s->verbose)
            fwrite(buf, 1, (size_t)n, stderr);
    }
    return NULL;
}

void bench_server_drain(struct bench_server *s, const char *buf, size_t len)
{
    if (s->verbose)
        fwrite(buf, 1, len, stderr);
    if (pthread_create(&s->drain, NULL, drain_main, s) == 0)
        s->drain_started = true;
}

bool bench_server_reap(struct bench_server *s, int timeout_ms, int *status)
{
    kill(s->pid, SIGTERM);
    *status = 0;
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    while (now_ns() < deadline) {
        if (waitpid(s->pid, status, WNOHANG) == s->pid)
            return true;
        sleep_ns(10000000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, status, 0);
    return false;
}

void bench_server_close(struct bench_server *s)
{
    if (s->drain_started)
        pthread_join(s->drain, NULL);
    s->drain_started = false;
    if (s->out_fd >= 0)
        close(s->out_fd);
    s->out_fd = -1;
    s->pid = 0;
}
