/*
 * benchkit.h - what the REST load generator (loadgen.c) and the WebSocket
 * benchmark (bench_ws.c) share: the monotonic clock and splitmix64, the stop
 * flag their SIGINT/SIGTERM handler sets, the log-linear latency histogram,
 * report formatting, the open-files limit, and a perpsim child process
 * (started, its "listening on" line awaited, its output drained, stopped).
 * Each program keeps its own workload, options, checks and messages.
 */
#ifndef PERPSIM_BENCH_BENCHKIT_H
#define PERPSIM_BENCH_BENCHKIT_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ---- small helpers --------------------------------------------------------- */

/* Set by on_signal (SIGINT/SIGTERM): finish early, stop the server. */
extern volatile sig_atomic_t g_stop;

/* At the start of main: SIGPIPE ignored, SIGINT and SIGTERM set g_stop, the
 * open-files soft limit raised to the hard one. */
void bench_process_init(void);

/* "CHECK FAILED: <fmt, ap>" and a newline on stderr (the caller counts it). */
void bench_vcheck_failed(const char *fmt, va_list ap);

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleeps ns (nothing when <= 0); an interrupted sleep resumes unless g_stop. */
void sleep_ns(int64_t ns);

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* "met" or "NOT met". */
const char *met(bool ok);

/* 1234567 -> "1,234,567" into buf[cap] (cut to fit); returns buf. */
const char *fmt_u(char *buf, size_t cap, uint64_t v);

/* Nanoseconds in milliseconds. */
double ms(uint64_t ns);

/* ---- latency histogram ------------------------------------------------------
 * Log-linear: values below 128 ns exactly, above that 128 sub-buckets per
 * power of two up to 2^HIST_MAG_MAX ns (~18 minutes; larger values clamp). */

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAG_MAX 40
#define HIST_BUCKETS ((HIST_MAG_MAX - HIST_SUB_BITS + 2) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t b[HIST_BUCKETS];
};

static inline uint32_t hist_index(uint64_t v)
{
    if (v >= (UINT64_C(1) << (HIST_MAG_MAX + 1)))
        v = (UINT64_C(1) << (HIST_MAG_MAX + 1)) - 1;
    if (v < HIST_SUB)
        return (uint32_t)v;
    int mag = 63 - __builtin_clzll(v); /* >= HIST_SUB_BITS */
    int shift = mag - HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(v >> shift) - HIST_SUB;
    return (uint32_t)(mag - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* The middle of bucket i. */
uint64_t hist_value(uint32_t i);

static inline void hist_add(struct hist *h, int64_t v_ns)
{
    uint64_t v = v_ns < 0 ? 0 : (uint64_t)v_ns;
    h->b[hist_index(v)]++;
    h->count++;
    if (v > h->max_ns)
        h->max_ns = v;
}

void hist_merge(struct hist *d, const struct hist *s);

/* The q-quantile (0 < q <= 1) in ns: the value of the ceil(q * count)-th
 * smallest sample's bucket, never above the exact max. 0 when empty. */
uint64_t hist_pct(const struct hist *h, double q);

/* ---- a perpsim child process ------------------------------------------------ */

struct bench_server {
    pid_t pid;  /* 0 when none */
    int out_fd; /* the read end of its stdout, -1 when none */
    pthread_t drain;
    bool drain_started;
    bool verbose; /* copy its output to stderr */
};

/* Forks and execs argv[0] (argv NULL-ended) with its stdout on a pipe; the
 * child gets SIGTERM when this process dies. prog names this program in the
 * child's message when exec fails. 0, or -1 (perror'd). */
int bench_server_spawn(struct bench_server *s, const char *prog, const char *const *argv);

/* Reads the server's output into buf[cap] (NUL-ended, *len bytes) until its
 * "listening on http://ADDR" line has come, at most timeout_ms: NULL then,
 * with the address "http://..." at *addr, *addr_len bytes (inside buf).
 * Otherwise kills and reaps it, closes its output and returns why: "timed
 * out" or "it closed its output". */
const char *bench_server_wait(struct bench_server *s, int timeout_ms, char *buf, size_t cap,
                              size_t *len, const char **addr, size_t *addr_len);

/* Copies buf[0..len) to stderr when verbose and starts the thread that reads
 * (and, when verbose, copies) the rest of its output. */
void bench_server_drain(struct bench_server *s, const char *buf, size_t len);

/* SIGTERM, then waits up to timeout_ms; SIGKILL and a blocking wait after
 * that. true when it exited in time; its wait status in *status. */
bool bench_server_reap(struct bench_server *s, int timeout_ms, int *status);

/* Joins the drain thread and closes the output; no server left (pid 0). */
void bench_server_close(struct bench_server *s);

#endif
