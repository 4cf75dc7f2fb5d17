/*
 * loadgen.c - load generator for perpsim's REST server: the signed-order
 * benchmark (closed loop) and the load-shedding sweep (open loop).
 *
 * A benchmark program, not a timed test: it prints figures with each target
 * next to them ("met" / "NOT met") and exits 1 only when something is wrong
 * (no request completed, a connection error or timeout, a reply other than
 * the expected ones, a 503 whose body is not BitMEX's, the server crashing).
 * It never asserts a speed.
 *
 *   loadgen (--server PATH | --url URL --admin-token T) [options] [-- ARGS]
 *
 *   --server PATH      start PATH (the perpsim binary) on 127.0.0.1:0 with
 *                      --admin-token --no-demo --no-market --rate-limit off [ARGS], once
 *                      for the closed-loop part and once (with
 *                      --engine-delay-us and --latency-cap-ms) for the sweep;
 *                      SIGTERM at the end
 *   --url URL          use a running server instead (every part on it)
 *   --admin-token T    its admin token (with --url)
 *   --mode M           closed | sweep | all (default all)
 *   --small            every part for a fraction of a second (the test suite
 *                      runs this so the program cannot rot); the CSV and PNG
 *                      go to a scratch directory that is removed at the end
 *                      unless --csv is given
 *   --duration S       closed-loop run length (default 5 s; the first 10%,
 *                      at most 0.5 s, is warm-up and not counted); 0 skips
 *                      the closed loop (e.g. to profile the unloaded runs)
 *   --connections N    closed-loop keep-alive connections (default 32)
 *   --threads N        client threads, each with its own curl multi handle
 *                      and a share of the connections (default 2: on a
 *                      two-core machine one thread caps the GET ceiling at
 *                      ~64,000/s, two reach ~94,000/s)
 *   --unloaded N       requests per unloaded run (default 20,000); 0 skips
 *                      the unloaded runs
 *   --capacity R       writes/s for the sweep; 0 = measure (default 0)
 *   --steps LIST       sweep multipliers (default 0.5,1,2,3,5,7,10)
 *   --step S           seconds per sweep step (default 3)
 *   --pool-max N       open-loop connections at most (default 1,000)
 *   --arrivals A       poisson | uniform (default poisson)
 *   --engine-delay-us N  for the sweep server (default 2000: ~500 writes/s,
 *                      so that 10x is within the generator's reach even on two
 *                      cores, one of which the engine's delay spin takes;
 *                      200, ~5,000 writes/s, wants more cores)
 *   --latency-cap-ms N for the sweep server (default 20); with --url, the
 *                      running server's cap (0 = unknown)
 *   --accounts N       trading accounts (default 8)
 *   --price USD        the Sell price; Buys at or above it (default 60000)
 *   --band TICKS       Buys spread over price + 0..TICKS ticks (default 4)
 *   --timeout-ms N     per-request timeout (default 10,000)
 *   --csv FILE         sweep CSV (default loadshed.csv); the PNG goes next to
 *                      it (same name, .png) unless --png FILE
 *   --plot CSV         only draw the PNG of an earlier sweep's CSV
 *   --seed S           PRNG seed for prices and arrivals (default 1)
 *   --verbose          copy the server's stdout to stderr
 *
 * ---------------------------------------------------------------------------
 * THE WORKLOAD
 * ---------------------------------------------------------------------------
 * Two routes of one server:
 *   ceiling  GET /api/v1/announcement, unsigned: the cheapest route, what the
 *            HTTP layer and this client can do at best;
 *   order    POST /api/v1/order, signed as BitMEX does (api-key, api-expires
 *            = now + 60 s, api-signature = hex HMAC-SHA256(secret, "POST" +
 *            "/api/v1/order" + expires + body) through api/auth.h), body
 *            {"symbol":"XBTUSD","side":S,"orderQty":100,"price":P,
 *             "ordType":"Limit"}.
 * Each connection (a curl easy handle) trades for account (connection index
 * mod --accounts), accounts made through POST /admin/v1/accounts with
 * 1,000 XBT each. A connection's accepted orders alternate: a Buy at
 * centre + U{0..band} ticks (0.5 USD), then a Sell at the centre. The side
 * only moves on once an order is accepted (a 503 or an error repeats it).
 * Every ask rests at the centre, at or below every Buy, so a Buy rests only
 * when there is no ask at all; every bid is at or above the centre, so a
 * Sell rests only when there is no bid. The book is therefore one-sided at
 * any moment and holds |accepted buys - accepted sells| orders, which is at
 * most the number of connections (each has at most one more Buy than
 * Sells). Orders both rest and cross (about half each; a Sell takes the best
 * bid, which is spread over band + 1 levels; self-trades are allowed, as on
 * BitMEX), positions stay a few lots, order margin stays far within the
 * deposit, and no account nears BitMEX's 200 open orders while connections
 * / accounts stays below it. Between runs every account cancels all its
 * orders (DELETE /api/v1/order/all), so each run starts from an empty book.
 * (A band on both sides, Buy and Sell at the same random price, does not
 * stay bounded: bids collect at the bottom and asks at the top.)
 *
 * ---------------------------------------------------------------------------
 * CLOSED LOOP (issue 4)
 * ---------------------------------------------------------------------------
 * --connections keep-alive connections, each sending its next request as
 * soon as its previous reply arrives, for --duration; req/s = replies with
 * 200 in the counted window / its length; latency = reply time - send time.
 * Then the unloaded round trip: one connection, one request at a time
 * (curl_easy_perform in a loop), the first 100 not counted. Targets: signed
 * order placement >= 50% of the ceiling; unloaded order round trip p50 <=
 * 100 us, p99 <= 250 us. The round trip depends on where the scheduler
 * puts the threads: on a small virtual machine a wake-up across cores can
 * cost tens of microseconds, so the figures may be bimodal from run to run
 * (on the 2-vCPU machine of the first measurements: GET p50 20 or 70 us);
 * `taskset -c 0 loadgen ...` (client and server on one core) gives the
 * repeatable lower figure.
 *
 * ---------------------------------------------------------------------------
 * OPEN LOOP (issue 5)
 * ---------------------------------------------------------------------------
 * A closed loop hides queueing: a slow server slows the client down. Here
 * orders are sent on a fixed schedule (Poisson arrivals by default) whatever
 * the replies, each on an idle connection of a pool that grows as needed up
 * to --pool-max (an arrival that finds the pool exhausted is an error, never
 * delayed). Latency is measured from the SCHEDULED send time, so a client
 * that falls behind shows up in the latencies instead of hiding (no
 * coordinated omission); how late sends were is printed too ("late p99").
 * Capacity is measured first by a closed-loop saturation run of orders
 * (32 connections, halved until at most 1% is shed, so that a storm of
 * instant 503s does not take the engine's CPU) unless given. Each step
 * offers multiplier x capacity for --step seconds (longer if that would be
 * fewer than 50 arrivals), waits for every reply, then cancels all orders.
 * Per step: offered/s, accepted/s (200s / step length), shed % (503s /
 * offered), p50/p99 of accepted writes and of 503s, errors (timeouts,
 * connection errors, pool exhausted, replies other than 200/503). The table
 * is printed, written as CSV and plotted to PNG with gnuplot (pngcairo, else
 * png) when it is on PATH, else the PNG is skipped with a note. Targets at
 * 5x: accepted p99 <= latency cap + 5 ms; 503 p99 <= 5 ms; accepted/s >=
 * 95% of capacity; zero timeouts or connection errors.
 *
 * In both modes every 503 body must be exactly BitMEX's
 * {"error":{"message":"The system is currently overloaded. Please try again
 * later.","name":"HTTPError"}}.
 *
 * ---------------------------------------------------------------------------
 * THE CLIENT
 * ---------------------------------------------------------------------------
 * libcurl's multi interface driven by its socket API: each thread owns an
 * epoll set, a curl multi handle and its connections, and waits with
 * epoll_pwait2 (nanosecond timeout) for the earliest of a socket event,
 * curl's timer and the next scheduled arrival. Latencies go into log-linear
 * histograms (128 sub-buckets per power of two: under 0.8% error), merged
 * over threads at the end.
 */
#define _GNU_SOURCE

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "benchkit.h"

/* ---- limits ---------------------------------------------------------------- */

#define CONNS_MAX 4096u        /* connections per run: stays well inside RLIMIT_NOFILE */
#define THREADS_MAX 16u        /* client threads */
#define ACCOUNTS_MAX 64u       /* trading accounts per server */
#define STEPS_MAX 32u          /* sweep multipliers */
#define EXTRA_ARGS_MAX 32u     /* server arguments after "--" */
#define RESP_MAX 4096u         /* reply bytes kept per request: an order reply or an error */
#define UNLOADED_WARMUP 100u   /* unloaded requests not counted (connect, first touches) */
#define CAPACITY_CONNS 32u     /* closed-loop connections of the first capacity run */
#define STEP_ARRIVALS_MIN 50.0 /* a sweep step lasts long enough for this many arrivals */
#define SERVER_START_MS 15000  /* wait for "listening on" at most this long */
#define SERVER_STOP_MS 10000   /* wait for exit after SIGTERM at most this long */
_Static_assert(CAPACITY_CONNS <= CONNS_MAX, "capacity run within the connection limit");

#define ORDER_QTY 100                      /* contracts: one XBTUSD lot */
#define DEPOSIT_SATS INT64_C(100000000000) /* 1,000 XBT per account */

/* The 503 body BitMEX sends when its write queue is full. */
static const char BODY_503[] = "{\"error\":{\"message\":\"The system is currently overloaded. "
                               "Please try again later.\",\"name\":\"HTTPError\"}}";

/* ---- small helpers ------------------------------------------------------- */

static int g_failures; /* checks that failed; exit 1 when > 0 */

/* Uniform in [0, 1). */
static double unit_real(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1p-53;
}

static void check(int ok, const char *fmt, ...)
{
    if (ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    bench_vcheck_failed(fmt, ap);
    va_end(ap);
    g_failures++;
}

/* Copies src into dst[cap], cut to fit. */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- run statistics -------------------------------------------------------- */

enum route { ROUTE_ANNOUNCEMENT, ROUTE_ORDER };

static const char *route_name(enum route r)
{
    return r == ROUTE_ORDER ? "POST /api/v1/order (signed)" : "GET  /api/v1/announcement";
}

struct stats {
    struct hist ok;   /* latency of 200 replies */
    struct hist shed; /* latency of 503 replies */
    struct hist lag;  /* open loop: actual send - scheduled send */
    uint64_t sched;   /* open loop: arrivals scheduled */
    uint64_t n_ok, n_shed, n_other, n_timeout, n_conn_err, n_pool_exhausted, n_bad_503;
    uint64_t ord_new, ord_partial, ord_filled, ord_unknown; /* ordStatus of accepted orders */
    uint32_t conns_max;                                     /* connections made */
    long first_other_status;
    char first_other_body[200];
    char first_error[CURL_ERROR_SIZE + 64];
    char first_bad_503[200];
};

static void stats_merge(struct stats *d, const struct stats *s)
{
    hist_merge(&d->ok, &s->ok);
    hist_merge(&d->shed, &s->shed);
    hist_merge(&d->lag, &s->lag);
    d->sched += s->sched;
    d->n_ok += s->n_ok;
    d->n_shed += s->n_shed;
    d->n_other += s->n_other;
    d->n_timeout += s->n_timeout;
    d->n_conn_err += s->n_conn_err;
    d->n_pool_exhausted += s->n_pool_exhausted;
    d->n_bad_503 += s->n_bad_503;
    d->ord_new += s->ord_new;
    d->ord_partial += s->ord_partial;
    d->ord_filled += s->ord_filled;
    d->ord_unknown += s->ord_unknown;
    d->conns_max += s->conns_max;
    if (!d->first_other_status && s->first_other_status) {
        d->first_other_status = s->first_other_status;
        memcpy(d->first_other_body, s->first_other_body, sizeof d->first_other_body);
    }
    if (!d->first_error[0])
        memcpy(d->first_error, s->first_error, sizeof d->first_error);
    if (!d->first_bad_503[0])
        memcpy(d->first_bad_503, s->first_bad_503, sizeof d->first_bad_503);
}

static struct stats *stats_new(void)
{
    struct stats *s = calloc(1, sizeof *s);
    if (!s) {
        perror("calloc");
        exit(2);
    }
    return s;
}

static uint64_t stats_errors(const struct stats *s)
{
    return s->n_timeout + s->n_conn_err + s->n_pool_exhausted;
}

/* ---- options ------------------------------------------------------------------ */

enum mode { MODE_ALL, MODE_CLOSED, MODE_SWEEP };
enum arrivals { ARR_POISSON, ARR_UNIFORM };

struct opts {
    int small;
    const char *server_path;
    const char *url;
    const char *admin_token;
    const char *extra[EXTRA_ARGS_MAX];
    uint32_t extra_n;
    enum mode mode;
    double duration_s;
    uint32_t connections;
    uint32_t threads;
    uint32_t unloaded_n;
    double capacity_per_s;
    double steps[STEPS_MAX];
    uint32_t steps_n;
    double step_s;
    uint32_t pool_max;
    enum arrivals arrivals;
    int engine_delay_us;
    int latency_cap_ms;
    int latency_cap_given;
    uint32_t accounts;
    int64_t price_half_usd; /* centre price in ticks of 0.5 USD */
    int band_ticks;
    long timeout_ms;
    const char *csv;
    const char *png;
    const char *plot_only;   /* --plot CSV: only draw the PNG of an earlier sweep */
    const char *scratch_dir; /* --small without --csv: CSV and PNG go here, removed at exit */
    uint64_t seed;
    int verbose;
};

static void usage(void)
{
    fprintf(stderr, "usage: loadgen (--server PATH | --url URL --admin-token T) [--small]\n"
                    "               [--mode closed|sweep|all] [--duration S] [--connections N]\n"
                    "               [--threads N] [--unloaded N] [--capacity R] [--steps LIST]\n"
                    "               [--step S] [--pool-max N] [--arrivals poisson|uniform]\n"
                    "               [--engine-delay-us N] [--latency-cap-ms N] [--accounts N]\n"
                    "               [--price USD] [--band TICKS] [--timeout-ms N] [--csv FILE]\n"
                    "               [--png FILE] [--seed S] [--verbose] [-- SERVER_ARGS...]\n"
                    "       loadgen --plot CSV [--png FILE]\n");
}

static int parse_steps(struct opts *o, const char *s)
{
    o->steps_n = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || !(v > 0) || o->steps_n == STEPS_MAX)
            return -1;
        o->steps[o->steps_n++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return o->steps_n > 0 ? 0 : -1;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){
        .mode = MODE_ALL,
        .duration_s = 5.0,
        .connections = 32,
        .threads = 2,
        .unloaded_n = 20000,
        .step_s = 3.0,
        .pool_max = 1000,
        .arrivals = ARR_POISSON,
        .engine_delay_us = 2000,
        .latency_cap_ms = 20,
        .accounts = 8,
        .price_half_usd = 120000,
        .band_ticks = 4,
        .timeout_ms = 10000,
        .csv = "loadshed.csv",
        .seed = 1,
    };
    parse_steps(o, "0.5,1,2,3,5,7,10");
    int cap_given = 0, csv_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "loadgen: %s needs a value\n", a);                                     \
            return -1;                                                                             \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) {
                if (o->extra_n == EXTRA_ARGS_MAX) {
                    fprintf(stderr, "loadgen: more than %u server arguments\n", EXTRA_ARGS_MAX);
                    return -1;
                }
                o->extra[o->extra_n++] = argv[i];
            }
        } else if (!strcmp(a, "--small")) {
            o->small = 1;
        } else if (!strcmp(a, "--verbose")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--server")) {
            NEEDV();
            o->server_path = v;
        } else if (!strcmp(a, "--url")) {
            NEEDV();
            o->url = v;
        } else if (!strcmp(a, "--admin-token")) {
            NEEDV();
            o->admin_token = v;
        } else if (!strcmp(a, "--mode")) {
            NEEDV();
            if (!strcmp(v, "all"))
                o->mode = MODE_ALL;
            else if (!strcmp(v, "closed"))
                o->mode = MODE_CLOSED;
            else if (!strcmp(v, "sweep"))
                o->mode = MODE_SWEEP;
            else
                return -1;
        } else if (!strcmp(a, "--duration")) {
            NEEDV();
            o->duration_s = atof(v);
        } else if (!strcmp(a, "--connections")) {
            NEEDV();
            o->connections = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--threads")) {
            NEEDV();
            o->threads = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--unloaded")) {
            NEEDV();
            o->unloaded_n = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--capacity")) {
            NEEDV();
            o->capacity_per_s = atof(v);
            cap_given = 1;
        } else if (!strcmp(a, "--steps")) {
            NEEDV();
            if (parse_steps(o, v) != 0) {
                fprintf(stderr, "loadgen: bad --steps list\n");
                return -1;
            }
        } else if (!strcmp(a, "--step")) {
            NEEDV();
            o->step_s = atof(v);
        } else if (!strcmp(a, "--pool-max")) {
            NEEDV();
            o->pool_max = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--arrivals")) {
            NEEDV();
            if (!strcmp(v, "poisson"))
                o->arrivals = ARR_POISSON;
            else if (!strcmp(v, "uniform"))
                o->arrivals = ARR_UNIFORM;
            else
                return -1;
        } else if (!strcmp(a, "--engine-delay-us")) {
            NEEDV();
            o->engine_delay_us = atoi(v);
        } else if (!strcmp(a, "--latency-cap-ms")) {
            NEEDV();
            o->latency_cap_ms = atoi(v);
            o->latency_cap_given = 1;
        } else if (!strcmp(a, "--accounts")) {
            NEEDV();
            o->accounts = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--price")) {
            NEEDV();
            o->price_half_usd = (int64_t)llround(atof(v) * 2.0);
        } else if (!strcmp(a, "--band")) {
            NEEDV();
            o->band_ticks = atoi(v);
        } else if (!strcmp(a, "--timeout-ms")) {
            NEEDV();
            o->timeout_ms = atol(v);
        } else if (!strcmp(a, "--csv")) {
            NEEDV();
            o->csv = v;
            csv_given = 1;
        } else if (!strcmp(a, "--png")) {
            NEEDV();
            o->png = v;
        } else if (!strcmp(a, "--plot")) {
            NEEDV();
            o->plot_only = v;
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            o->seed = strtoull(v, NULL, 10);
        } else {
            fprintf(stderr, "loadgen: unknown argument %s\n", a);
            return -1;
        }
#undef NEEDV
    }
    if (o->plot_only)
        return 0;
    if (!o->server_path == !o->url) {
        fprintf(stderr, "loadgen: give exactly one of --server and --url\n");
        return -1;
    }
    if (o->url && !o->admin_token) {
        fprintf(stderr, "loadgen: --url needs --admin-token\n");
        return -1;
    }
    if (o->small) {
        o->duration_s = 0.4;
        o->unloaded_n = 300;
        o->step_s = 0.4;
        o->connections = o->connections < 8 ? o->connections : 8;
        if (!cap_given)
            o->capacity_per_s = 0;
        parse_steps(o, "0.5,2,5");
        if (!csv_given) { /* a scratch directory, removed at the end */
            static char dir[] = "/tmp/loadgen-small-XXXXXX";
            static char csv[64];
            if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return -1;
            }
            snprintf(csv, sizeof csv, "%s/loadshed.csv", dir);
            o->csv = csv;
            o->scratch_dir = dir;
        }
    }
    if (o->connections < 1 || o->connections > CONNS_MAX || o->threads < 1 ||
        o->threads > THREADS_MAX || o->threads > o->connections || o->pool_max < o->threads ||
        o->pool_max > CONNS_MAX || o->accounts < 1 || o->accounts > ACCOUNTS_MAX ||
        !(o->duration_s >= 0) || !(o->step_s > 0) || o->timeout_ms < 1 ||
        o->band_ticks < 0 || o->price_half_usd < 2 || o->band_ticks > 1000 ||
        o->engine_delay_us < 0 || o->latency_cap_ms < 0) {
        fprintf(stderr,
                "loadgen: an argument is out of range (connections 1..%u, threads 1..%u "
                "and <= connections, pool-max threads..%u, accounts 1..%u)\n",
                CONNS_MAX, THREADS_MAX, CONNS_MAX, ACCOUNTS_MAX);
        return -1;
    }
    return 0;
}

/* ---- the server under test ---------------------------------------------------- */

struct account {
    long id;
    char key[64];
    char secret[128];
    size_t secret_len;
};

struct target {
    char base[128]; /* http://127.0.0.1:PORT */
    char url_announcement[192];
    char url_order[192];
    char url_cancel_all[192];
    char admin_token[96];
    struct account acct[ACCOUNTS_MAX];
    uint32_t accounts_n;
    struct bench_server srv; /* when started here */
};

static void target_set_base(struct target *t, const char *base, size_t len)
{
    while (len > 0 && base[len - 1] == '/')
        len--;
    snprintf(t->base, sizeof t->base, "%.*s", (int)len, base);
    snprintf(t->url_announcement, sizeof t->url_announcement, "%s/api/v1/announcement", t->base);
    snprintf(t->url_order, sizeof t->url_order, "%s/api/v1/order", t->base);
    snprintf(t->url_cancel_all, sizeof t->url_cancel_all, "%s/api/v1/order/all", t->base);
}

/* Starts PATH and waits for its "listening on http://..." line. */
static int server_start(struct target *t, const struct opts *o, int delay_us, int cap_ms)
{
    snprintf(t->admin_token, sizeof t->admin_token, "loadgen-%ld-%lld", (long)getpid(),
             (long long)now_ns());
    char delay_s[32], cap_s[32];
    snprintf(delay_s, sizeof delay_s, "%d", delay_us);
    snprintf(cap_s, sizeof cap_s, "%d", cap_ms);
    const char *argv[16 + EXTRA_ARGS_MAX];
    size_t n = 0;
    argv[n++] = o->server_path;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--admin-token";
    argv[n++] = t->admin_token;
    argv[n++] = "--no-demo";
    argv[n++] = "--no-market"; /* the benchmark's own orders only */
    argv[n++] = "--rate-limit";
    argv[n++] = "off";
    if (!o->verbose)
        argv[n++] = "--quiet"; /* no request log */
    if (delay_us > 0) {
        argv[n++] = "--engine-delay-us";
        argv[n++] = delay_s;
    }
    if (cap_ms > 0) {
        argv[n++] = "--latency-cap-ms";
        argv[n++] = cap_s;
    }
    for (uint32_t i = 0; i < o->extra_n; i++)
        argv[n++] = o->extra[i];
    argv[n] = NULL;

    printf("starting:");
    for (size_t i = 0; i < n; i++)
        printf(" %s", i == 4 ? "TOKEN" : argv[i]);
    printf("\n");
    fflush(stdout);

    t->srv.verbose = o->verbose;
    if (bench_server_spawn(&t->srv, "loadgen", argv) != 0)
        return -1;

    char buf[8192];
    size_t len;
    const char *addr;
    size_t addr_len;
    const char *why =
        bench_server_wait(&t->srv, SERVER_START_MS, buf, sizeof buf, &len, &addr, &addr_len);
    if (why) {
        fprintf(stderr, "loadgen: the server did not print \"%s...\" (%s); its output:\n%s\n",
                "listening on http://", why, buf);
        return -1;
    }
    target_set_base(t, addr, addr_len);
    bench_server_drain(&t->srv, buf, len);
    printf("server %ld listening on %s\n", (long)t->srv.pid, t->base);
    return 0;
}

/* SIGTERM, then wait; SIGKILL after SERVER_STOP_MS. Returns 0 when it exited
 * with status 0 or because of the SIGTERM. */
static int server_stop(struct target *t)
{
    if (t->srv.pid <= 0)
        return 0;
    int status;
    bool waited = bench_server_reap(&t->srv, SERVER_STOP_MS, &status);
    int rc = 0;
    if (!waited) {
        fprintf(stderr, "loadgen: server %ld still running %d ms after SIGTERM; killing it\n",
                (long)t->srv.pid, SERVER_STOP_MS);
        rc = -1;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        fprintf(stderr, "loadgen: server exited with status %d\n", WEXITSTATUS(status));
        rc = -1;
    } else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM) {
        fprintf(stderr, "loadgen: server died of signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
        rc = -1;
    }
    bench_server_close(&t->srv);
    return rc;
}

/* ---- blocking requests (admin, cancel-all) ----------------------------------- */

struct membuf {
    char *p;
    size_t len, cap;
};

static size_t membuf_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct membuf *m = userp;
    size_t n = size * nmemb;
    if (m->len + n + 1 > m->cap) {
        size_t cap = (m->len + n + 1) * 2;
        char *p = realloc(m->p, cap);
        if (!p)
            return 0;
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
    m->p[m->len] = 0;
    return n;
}

/* One blocking request; the reply body in *out (caller frees out->p).
 * Returns the HTTP status, or -1 on a transport error. */
static long http_blocking(const char *verb, const char *url, struct curl_slist *hdrs,
                          const char *body, struct membuf *out)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    char errbuf[CURL_ERROR_SIZE] = "";
    *out = (struct membuf){0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, verb);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, membuf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    CURLcode rc = curl_easy_perform(e);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "loadgen: %s %s: %s\n", verb, url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_easy_cleanup(e);
    return status;
}

static int accounts_create(struct target *t, uint32_t n)
{
    char url[256], auth[160], body[128];
    snprintf(url, sizeof url, "%s/admin/v1/accounts", t->base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->admin_token);
    snprintf(body, sizeof body, "{\"deposits\":{\"XBt\":%" PRId64 "}}", DEPOSIT_SATS);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct membuf m;
        long st = http_blocking("POST", url, h, body, &m);
        cJSON *j = st == 200 && m.p ? cJSON_Parse(m.p) : NULL;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "account");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "apiKey");
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "apiSecret");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(key) || !cJSON_IsString(sec) ||
            strlen(key->valuestring) >= sizeof t->acct[i].key ||
            strlen(sec->valuestring) >= sizeof t->acct[i].secret || !sec->valuestring[0]) {
            fprintf(stderr, "loadgen: POST /admin/v1/accounts: status %ld, reply %.300s\n", st,
                    m.p ? m.p : "(none)");
            rc = -1;
        } else {
            t->acct[i].id = (long)id->valuedouble;
            snprintf(t->acct[i].key, sizeof t->acct[i].key, "%s", key->valuestring);
            snprintf(t->acct[i].secret, sizeof t->acct[i].secret, "%s", sec->valuestring);
            t->acct[i].secret_len = strlen(t->acct[i].secret);
            t->accounts_n = i + 1;
        }
        cJSON_Delete(j);
        free(m.p);
    }
    curl_slist_free_all(h);
    return rc;
}

/* The four BitMEX auth headers for one request (caller frees). */
static struct curl_slist *signed_headers(const struct account *a, const char *verb,
                                         const char *path, const char *body, size_t body_len)
{
    int64_t expires = (int64_t)time(NULL) + 60;
    struct auth_request rq = {.verb = verb,
                              .target = path,
                              .target_len = strlen(path),
                              .body = body,
                              .body_len = body_len};
    char sig[AUTH_SIG_HEX_LEN + 1];
    if (auth_sign(a->secret, a->secret_len, &rq, expires, sig) != AUTH_E_OK) {
        fprintf(stderr, "loadgen: auth_sign failed\n");
        exit(2);
    }
    char h1[96], h2[64], h3[96];
    snprintf(h1, sizeof h1, "api-key: %s", a->key);
    snprintf(h2, sizeof h2, "api-expires: %" PRId64, expires);
    snprintf(h3, sizeof h3, "api-signature: %s", sig);
    struct curl_slist *h = curl_slist_append(NULL, h1);
    h = curl_slist_append(h, h2);
    h = curl_slist_append(h, h3);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* never wait for 100-continue */
    return h;
}

/* DELETE /api/v1/order/all for every account: the next run starts from an
 * empty book. Returns the number of orders canceled, -1 on a failure. */
static long cancel_all(const struct target *t)
{
    long canceled = 0;
    for (uint32_t i = 0; i < t->accounts_n; i++) {
        struct curl_slist *h = signed_headers(&t->acct[i], "DELETE", "/api/v1/order/all", "", 0);
        struct membuf m;
        long st = http_blocking("DELETE", t->url_cancel_all, h, NULL, &m);
        curl_slist_free_all(h);
        cJSON *j = st == 200 && m.p ? cJSON_Parse(m.p) : NULL;
        if (!cJSON_IsArray(j)) {
            fprintf(stderr, "loadgen: DELETE /api/v1/order/all: status %ld, reply %.300s\n", st,
                    m.p ? m.p : "(none)");
            canceled = -1;
        } else if (canceled >= 0) {
            canceled += cJSON_GetArraySize(j);
        }
        cJSON_Delete(j);
        free(m.p);
    }
    return canceled;
}

/* GET on the admin API or /metrics (auth may be NULL); the body or NULL. */
static char *get_text(const struct target *t, const char *path, bool admin)
{
    char url[256], auth[160];
    snprintf(url, sizeof url, "%s%s", t->base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->admin_token);
    struct curl_slist *h = admin ? curl_slist_append(NULL, auth) : NULL;
    struct membuf m;
    long st = http_blocking("GET", url, h, NULL, &m);
    curl_slist_free_all(h);
    if (st != 200) {
        fprintf(stderr, "loadgen: GET %s: status %ld\n", path, st);
        free(m.p);
        return NULL;
    }
    return m.p;
}

/* The money audit after a run: ok, and every currency's difference 0. */
static bool audit_exact(const struct target *t)
{
    char *text = get_text(t, "/admin/v1/audit", true);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "currencies"))
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "difference");
        ok = ok && cJSON_IsNumber(d) && d->valuedouble == 0;
    }
    if (!ok)
        fprintf(stderr, "loadgen: audit: %.500s\n", text ? text : "(none)");
    cJSON_Delete(j);
    free(text);
    return ok;
}

/* A counter of the server's /metrics, or -1. */
static double server_counter(const struct target *t, const char *name)
{
    char *text = get_text(t, "/metrics", false);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    free(text);
    return v;
}

/* The share of writes served on the HTTP thread that received them
 * (loadshed rule 5a) between two snapshots of the server's counters. */
struct served {
    double taken, here;
};

static struct served served_now(const struct target *t)
{
    struct served s = {server_counter(t, "perpsim_loadshed_taken_total"),
                       server_counter(t, "perpsim_loadshed_producer_served_total")};
    return s;
}

static void print_served(const struct target *t, struct served before)
{
    struct served after = served_now(t);
    double taken = after.taken - before.taken, here = after.here - before.here;
    if (before.taken >= 0 && after.taken >= 0 && before.here >= 0 && after.here >= 0 && taken > 0)
        printf("  writes served on their own HTTP thread (idle engine, loadshed rule 5a): %.1f%%\n",
               100.0 * here / taken);
}

/* ---- connections ------------------------------------------------------------------ */

struct worker;

struct conn {
    CURL *easy;
    struct worker *w;
    struct curl_slist *hdrs;
    int64_t t_sched_ns; /* latency is measured from here */
    uint64_t prng;
    uint32_t account;
    uint32_t accepted;  /* orders accepted on this connection: even -> next is a Buy */
    int64_t price_half; /* the current order's price, in 0.5 USD */
    size_t resp_len;    /* reply bytes received (resp keeps the first RESP_MAX - 1) */
    char body[192];
    size_t body_len;
    char resp[RESP_MAX];
    char errbuf[CURL_ERROR_SIZE];
};

static size_t conn_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct conn *c = userp;
    size_t n = size * nmemb;
    if (c->resp_len < RESP_MAX - 1) {
        size_t k = RESP_MAX - 1 - c->resp_len;
        if (k > n)
            k = n;
        memcpy(c->resp + c->resp_len, data, k);
    }
    c->resp_len += n;
    return n;
}

static int conn_init(struct conn *c, struct worker *w, uint32_t account, uint64_t seed,
                     long timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->easy = curl_easy_init();
    if (!c->easy)
        return -1;
    c->w = w;
    c->account = account;
    c->prng = seed;
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, conn_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    return 0;
}

static void conn_fini(struct conn *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    c->easy = NULL;
    c->hdrs = NULL;
}

/* Sets up c's next request on route r. */
static void conn_prepare(struct conn *c, const struct target *t, const struct opts *o, enum route r)
{
    CURL *e = c->easy;
    c->resp_len = 0;
    c->errbuf[0] = 0;
    if (r == ROUTE_ANNOUNCEMENT) {
        curl_easy_setopt(e, CURLOPT_URL, t->url_announcement);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
        return;
    }
    int buy = (c->accepted & 1) == 0;
    c->price_half = o->price_half_usd;
    if (buy)
        c->price_half += (int64_t)(splitmix64(&c->prng) % (uint64_t)(o->band_ticks + 1));
    int n = snprintf(c->body, sizeof c->body,
                     "{\"symbol\":\"XBTUSD\",\"side\":\"%s\",\"orderQty\":%d,\"price\":%" PRId64
                     "%s,\"ordType\":\"Limit\"}",
                     buy ? "Buy" : "Sell", ORDER_QTY, c->price_half / 2,
                     (c->price_half & 1) ? ".5" : "");
    c->body_len = (size_t)n;
    curl_slist_free_all(c->hdrs);
    c->hdrs = signed_headers(&t->acct[c->account], "POST", "/api/v1/order", c->body, c->body_len);
    curl_easy_setopt(e, CURLOPT_URL, t->url_order);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)c->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
}

/* Files one finished request. counted: inside the measured window (errors
 * and wrong replies are always counted). */
static void conn_record(struct conn *c, struct stats *st, enum route r, CURLcode rc, int64_t t_done,
                        int counted)
{
    int64_t lat = t_done - c->t_sched_ns;
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            st->n_timeout++;
        else
            st->n_conn_err++;
        if (!st->first_error[0])
            snprintf(st->first_error, sizeof st->first_error, "%s: %s", curl_easy_strerror(rc),
                     c->errbuf);
        return;
    }
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    size_t kept = c->resp_len < RESP_MAX - 1 ? c->resp_len : RESP_MAX - 1;
    c->resp[kept] = 0;
    if (status == 200) {
        if (r == ROUTE_ORDER) {
            c->accepted++;
            if (counted) {
                if (strstr(c->resp, "\"ordStatus\":\"Filled\""))
                    st->ord_filled++;
                else if (strstr(c->resp, "\"ordStatus\":\"PartiallyFilled\""))
                    st->ord_partial++;
                else if (strstr(c->resp, "\"ordStatus\":\"New\""))
                    st->ord_new++;
                else
                    st->ord_unknown++;
            }
        }
        if (counted) {
            st->n_ok++;
            hist_add(&st->ok, lat);
        }
    } else if (status == 503 && r == ROUTE_ORDER) {
        if (c->resp_len != sizeof BODY_503 - 1 || memcmp(c->resp, BODY_503, sizeof BODY_503 - 1)) {
            st->n_bad_503++;
            if (!st->first_bad_503[0])
                copy_trunc(st->first_bad_503, sizeof st->first_bad_503, c->resp);
        }
        if (counted) {
            st->n_shed++;
            hist_add(&st->shed, lat);
        }
    } else {
        st->n_other++;
        if (!st->first_other_status) {
            st->first_other_status = status;
            copy_trunc(st->first_other_body, sizeof st->first_other_body, c->resp);
        }
    }
}

/* ---- workers: one thread, one multi handle, one epoll set ------------------------ */

struct worker {
    pthread_t th;
    uint32_t id;
    const struct target *t;
    const struct opts *o;
    CURLM *multi;
    int ep;
    int64_t curl_deadline_ns; /* when curl wants CURL_SOCKET_TIMEOUT; INT64_MAX: never */
    struct conn *conns;       /* conns_cap slots, conns_n made */
    uint32_t conns_cap, conns_n;
    uint32_t conn_base; /* global index of conns[0]: picks the account */
    uint32_t *free_stack;
    uint32_t free_n;
    uint32_t in_flight;
    /* the current run */
    enum route route;
    int open_loop;
    double interval_ns; /* open loop: mean time between arrivals */
    double next_send_ns;
    int64_t t_measure_ns, t_end_ns, t_hard_end_ns;
    uint64_t prng;
    struct stats *st;
};

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct worker *w = userp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.fd = s;
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (socketp) {
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
            epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev);
    } else {
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(w->multi, s, w);
    }
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    struct worker *w = userp;
    (void)m;
    if (timeout_ms < 0)
        w->curl_deadline_ns = INT64_MAX;
    else if (timeout_ms == 0)
        w->curl_deadline_ns = 0;
    else
        w->curl_deadline_ns = now_ns() + (int64_t)timeout_ms * 1000000;
    return 0;
}

static int worker_init(struct worker *w, uint32_t id, const struct target *t, const struct opts *o,
                       uint32_t conns_cap, uint32_t conn_base)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->t = t;
    w->o = o;
    w->conns_cap = conns_cap;
    w->conn_base = conn_base;
    w->curl_deadline_ns = INT64_MAX;
    w->conns = calloc(conns_cap, sizeof *w->conns);
    w->free_stack = calloc(conns_cap, sizeof *w->free_stack);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->multi = curl_multi_init();
    if (!w->conns || !w->free_stack || w->ep < 0 || !w->multi)
        return -1;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, (void *)w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, (void *)w);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)conns_cap);
    curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return 0;
}

static void worker_fini(struct worker *w)
{
    for (uint32_t i = 0; i < w->conns_n; i++) {
        if (w->multi && w->conns[i].easy)
            curl_multi_remove_handle(w->multi, w->conns[i].easy);
        conn_fini(&w->conns[i]);
    }
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->ep >= 0)
        close(w->ep);
    free(w->conns);
    free(w->free_stack);
    memset(w, 0, sizeof *w);
    w->ep = -1;
}

/* A new connection (easy handle); NULL when the pool is at its limit. */
static struct conn *worker_new_conn(struct worker *w)
{
    if (w->conns_n == w->conns_cap)
        return NULL;
    uint32_t gi = w->conn_base + w->conns_n;
    struct conn *c = &w->conns[w->conns_n];
    uint64_t seed = w->o->seed ^ ((uint64_t)gi * UINT64_C(0x9e3779b97f4a7c15));
    if (conn_init(c, w, gi % w->t->accounts_n, seed, w->o->timeout_ms) != 0)
        return NULL;
    w->conns_n++;
    return c;
}

static void worker_launch(struct worker *w, struct conn *c, int64_t t_sched)
{
    conn_prepare(c, w->t, w->o, w->route);
    c->t_sched_ns = t_sched;
    CURLMcode mc = curl_multi_add_handle(w->multi, c->easy);
    if (mc != CURLM_OK) {
        fprintf(stderr, "loadgen: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
        exit(2);
    }
    w->in_flight++;
}

/* Open loop: send every arrival that is due. */
static void worker_launch_due(struct worker *w, int64_t t)
{
    while (w->next_send_ns <= (double)t && w->next_send_ns < (double)w->t_end_ns) {
        int64_t sched = (int64_t)w->next_send_ns;
        double gap = w->interval_ns;
        if (w->o->arrivals == ARR_POISSON)
            gap *= -log(1.0 - unit_real(&w->prng));
        w->next_send_ns += gap;
        w->st->sched++;
        struct conn *c = NULL;
        if (w->free_n > 0)
            c = &w->conns[w->free_stack[--w->free_n]];
        else
            c = worker_new_conn(w);
        if (!c) {
            w->st->n_pool_exhausted++;
            continue;
        }
        hist_add(&w->st->lag, t - sched);
        worker_launch(w, c, sched);
    }
}

static void worker_drain_done(struct worker *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct conn *c = (struct conn *)(void *)priv;
        int64_t t = now_ns();
        curl_multi_remove_handle(w->multi, e);
        w->in_flight--;
        int counted = w->open_loop || (c->t_sched_ns >= w->t_measure_ns && t <= w->t_end_ns);
        conn_record(c, w->st, w->route, rc, t, counted);
        if (w->open_loop)
            w->free_stack[w->free_n++] = (uint32_t)(c - w->conns);
        else if (t < w->t_end_ns && !g_stop)
            worker_launch(w, c, t);
    }
}

static int worker_wait(struct worker *w, int64_t wait_ns)
{
    struct epoll_event evs[256];
    struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
    int n = epoll_pwait2(w->ep, evs, (int)(sizeof evs / sizeof evs[0]), &ts, NULL);
    if (n < 0 && errno == ENOSYS) /* kernel before 5.11: millisecond waits */
        n = epoll_wait(w->ep, evs, (int)(sizeof evs / sizeof evs[0]),
                       (int)((wait_ns + 999999) / 1000000));
    int running;
    for (int i = 0; i < n; i++) {
        int flags = 0;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
            flags |= CURL_CSELECT_IN;
        if (evs[i].events & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (evs[i].events & EPOLLERR)
            flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(w->multi, evs[i].data.fd, flags, &running);
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int running;
    if (!w->open_loop) {
        int64_t t = now_ns();
        for (uint32_t i = 0; i < w->conns_n; i++)
            worker_launch(w, &w->conns[i], t);
    }
    for (;;) {
        int64_t t = now_ns();
        if (w->open_loop)
            worker_launch_due(w, t);
        if (w->curl_deadline_ns <= t) {
            w->curl_deadline_ns = INT64_MAX;
            curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        worker_drain_done(w);
        t = now_ns();
        int sending = w->open_loop ? w->next_send_ns < (double)w->t_end_ns && !g_stop
                                   : t < w->t_end_ns && !g_stop;
        if (!sending && w->in_flight == 0)
            break;
        if (t >= w->t_hard_end_ns || (g_stop && w->in_flight > 0)) {
            /* Give up on what is left: timeouts (or an interrupt). */
            for (uint32_t i = 0; i < w->conns_n; i++)
                curl_multi_remove_handle(w->multi, w->conns[i].easy);
            if (!g_stop)
                w->st->n_timeout += w->in_flight;
            w->in_flight = 0;
            if (w->open_loop) {
                w->free_n = 0;
                for (uint32_t i = 0; i < w->conns_n; i++)
                    w->free_stack[w->free_n++] = i;
            }
            break;
        }
        int64_t wake = w->curl_deadline_ns;
        if (w->open_loop && sending && (int64_t)w->next_send_ns < wake)
            wake = (int64_t)w->next_send_ns;
        if (w->t_hard_end_ns < wake)
            wake = w->t_hard_end_ns;
        worker_wait(w, wake > t ? wake - t : 0);
    }
    return NULL;
}

/* Runs ws[0..n) on their own threads until they finish. */
static void workers_run(struct worker *ws, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    for (uint32_t i = 0; i < n; i++)
        pthread_join(ws[i].th, NULL);
}

/* ---- closed loop ------------------------------------------------------------------- */

struct closed_result {
    struct stats *st;
    double seconds; /* the counted window */
    double ok_per_s;
};

static int run_closed(const struct target *t, const struct opts *o, enum route r, uint32_t conns,
                      uint32_t threads, double duration_s, struct closed_result *res)
{
    if (threads > conns)
        threads = conns;
    struct worker ws[THREADS_MAX];
    res->st = stats_new();
    double warm_s = duration_s * 0.1 < 0.5 ? duration_s * 0.1 : 0.5;
    int64_t t0 = now_ns() + 20000000; /* 20 ms to set up */
    int rc = 0;
    uint32_t base = 0;
    for (uint32_t i = 0; i < threads; i++) {
        uint32_t share = conns / threads + (i < conns % threads);
        if (worker_init(&ws[i], i, t, o, share, base) != 0) {
            fprintf(stderr, "loadgen: cannot set up a client thread\n");
            exit(2);
        }
        base += share;
        for (uint32_t k = 0; k < share; k++)
            if (!worker_new_conn(&ws[i])) {
                fprintf(stderr, "loadgen: curl_easy_init failed\n");
                exit(2);
            }
        ws[i].route = r;
        ws[i].open_loop = 0;
        ws[i].t_measure_ns = t0 + (int64_t)(warm_s * 1e9);
        ws[i].t_end_ns = t0 + (int64_t)(duration_s * 1e9);
        ws[i].t_hard_end_ns = ws[i].t_end_ns + o->timeout_ms * 1000000 + 1000000000;
        ws[i].st = stats_new();
    }
    sleep_ns(t0 - now_ns());
    workers_run(ws, threads);
    for (uint32_t i = 0; i < threads; i++) {
        ws[i].st->conns_max = ws[i].conns_n;
        stats_merge(res->st, ws[i].st);
        free(ws[i].st);
        worker_fini(&ws[i]);
    }
    res->seconds = duration_s - warm_s;
    res->ok_per_s = (double)res->st->n_ok / res->seconds;
    return rc;
}

/* One connection, one request at a time. */
static void run_unloaded(const struct target *t, const struct opts *o, enum route r, uint32_t n,
                         struct stats *st)
{
    struct worker w; /* only for conn_init's back pointer */
    memset(&w, 0, sizeof w);
    struct conn *c = calloc(1, sizeof *c);
    if (!c || conn_init(c, &w, 0, o->seed, o->timeout_ms) != 0) {
        fprintf(stderr, "loadgen: curl_easy_init failed\n");
        exit(2);
    }
    for (uint32_t i = 0; i < n + UNLOADED_WARMUP && !g_stop; i++) {
        conn_prepare(c, t, o, r);
        int64_t t0 = now_ns();
        c->t_sched_ns = t0;
        CURLcode rc = curl_easy_perform(c->easy);
        int64_t t1 = now_ns();
        conn_record(c, st, r, rc, t1, i >= UNLOADED_WARMUP);
    }
    st->conns_max = 1;
    conn_fini(c);
    free(c);
}

/* ---- report helpers ------------------------------------------------------------------ */

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

/* Sanity checks every run must pass (they never look at speed). */
static void check_run_errors(const char *what, const struct stats *s, enum route r);

static void check_run(const char *what, const struct stats *s, enum route r)
{
    check(s->n_ok > 0, "%s: no request completed with 200", what);
    check_run_errors(what, s, r);
}

/* The checks of a run that may legitimately see no 200 (an over-driven
 * capacity run that is then repeated with fewer connections). */
static void check_run_errors(const char *what, const struct stats *s, enum route r)
{
    check(s->n_conn_err == 0, "%s: %" PRIu64 " connection errors (first: %s)", what, s->n_conn_err,
          s->first_error);
    check(s->n_timeout == 0, "%s: %" PRIu64 " timeouts (first: %s)", what, s->n_timeout,
          s->first_error);
    check(s->n_pool_exhausted == 0, "%s: the connection pool ran out %" PRIu64 " times", what,
          s->n_pool_exhausted);
    check(s->n_bad_503 == 0,
          "%s: %" PRIu64 " replies 503 with another body than BitMEX's (first: %s)", what,
          s->n_bad_503, s->first_bad_503);
    check(s->n_other == 0, "%s: %" PRIu64 " replies neither 200 nor 503 (first: %ld %s)", what,
          s->n_other, s->first_other_status, s->first_other_body);
    if (r == ROUTE_ORDER)
        check(s->ord_unknown == 0,
              "%s: %" PRIu64 " accepted orders without ordStatus New/Filled/"
              "PartiallyFilled in the reply",
              what, s->ord_unknown);
}

static void print_closed_row(const char *label, double per_s, const struct stats *s)
{
    char a[32];
    printf("  %-28s %10s %8.1f %8.1f %8.1f %9.1f %7" PRIu64 " %7" PRIu64 "\n", label,
           fmt_u(a, sizeof a, (uint64_t)llround(per_s)), us(hist_pct(&s->ok, 0.5)),
           us(hist_pct(&s->ok, 0.99)), us(hist_pct(&s->ok, 0.999)), us(s->ok.max_ns), s->n_shed,
           stats_errors(s) + s->n_other);
}

static void print_order_mix(const struct stats *s)
{
    uint64_t n = s->ord_new + s->ord_partial + s->ord_filled + s->ord_unknown;
    if (n == 0)
        return;
    printf("  orders accepted: %.1f%% rested (New), %.1f%% partially filled, %.1f%% filled on "
           "arrival\n",
           100.0 * (double)s->ord_new / (double)n, 100.0 * (double)s->ord_partial / (double)n,
           100.0 * (double)s->ord_filled / (double)n);
}

static void after_run_cancel(const struct target *t, const char *what)
{
    long n = cancel_all(t);
    if (n < 0)
        check(0, "%s: cancel-all failed", what);
    else
        printf("  (after %s: %ld resting orders canceled)\n", what, n);
    check(audit_exact(t), "%s: the money audit is not exact", what);
}

/* ---- issue 4: closed loop and unloaded round trip -------------------------------------- */

static void bench_closed_loop(const struct target *t, const struct opts *o)
{
    struct closed_result ceil_r, ord_r;
    printf("\nCLOSED LOOP: %u keep-alive connections, %u client thread%s, %.1f s per route "
           "(first %.2f s not counted)\n",
           o->connections, o->threads, o->threads == 1 ? "" : "s", o->duration_s,
           o->duration_s * 0.1 < 0.5 ? o->duration_s * 0.1 : 0.5);
    run_closed(t, o, ROUTE_ANNOUNCEMENT, o->connections, o->threads, o->duration_s, &ceil_r);
    struct served before = served_now(t);
    run_closed(t, o, ROUTE_ORDER, o->connections, o->threads, o->duration_s, &ord_r);
    printf("  %-28s %10s %8s %8s %8s %9s %7s %7s\n", "route", "req/s", "p50 us", "p99 us",
           "p99.9 us", "max us", "503s", "errors");
    print_closed_row(route_name(ROUTE_ANNOUNCEMENT), ceil_r.ok_per_s, ceil_r.st);
    print_closed_row(route_name(ROUTE_ORDER), ord_r.ok_per_s, ord_r.st);
    print_order_mix(ord_r.st);
    print_served(t, before);
    double ratio = ceil_r.ok_per_s > 0 ? ord_r.ok_per_s / ceil_r.ok_per_s : 0;
    printf("  signed orders / ceiling = %.3f   target >= 0.50: %s\n", ratio, met(ratio >= 0.5));
    check_run("closed loop, announcement", ceil_r.st, ROUTE_ANNOUNCEMENT);
    check_run("closed loop, order", ord_r.st, ROUTE_ORDER);
    check(ceil_r.st->n_shed == 0, "closed loop, announcement: 503 on a read");
    after_run_cancel(t, "the closed loop");
    free(ceil_r.st);
    free(ord_r.st);
}

static void bench_unloaded(const struct target *t, const struct opts *o)
{
    struct stats *ua = stats_new(), *uo = stats_new();
    printf("\nUNLOADED ROUND TRIP: 1 connection, one request at a time, %u requests per route "
           "(after %u not counted)\n",
           o->unloaded_n, UNLOADED_WARMUP);
    run_unloaded(t, o, ROUTE_ANNOUNCEMENT, o->unloaded_n, ua);
    struct served before = served_now(t);
    run_unloaded(t, o, ROUTE_ORDER, o->unloaded_n, uo);
    printf("  %-28s %10s %8s %8s %8s %9s %7s %7s\n", "route", "req/s", "p50 us", "p99 us",
           "p99.9 us", "max us", "503s", "errors");
    double ua_rate = ua->ok.count ? 1e9 / ((double)hist_pct(&ua->ok, 0.5)) : 0;
    double uo_rate = uo->ok.count ? 1e9 / ((double)hist_pct(&uo->ok, 0.5)) : 0;
    print_closed_row(route_name(ROUTE_ANNOUNCEMENT), ua_rate, ua);
    print_closed_row(route_name(ROUTE_ORDER), uo_rate, uo);
    printf("  (req/s here is 1 / p50)\n");
    print_order_mix(uo);
    print_served(t, before);
    double p50 = us(hist_pct(&uo->ok, 0.5)), p99 = us(hist_pct(&uo->ok, 0.99));
    printf("  signed order round trip p50 %.1f us   target <= 100 us: %s\n", p50, met(p50 <= 100));
    printf("  signed order round trip p99 %.1f us   target <= 250 us: %s\n", p99, met(p99 <= 250));
    check_run("unloaded, announcement", ua, ROUTE_ANNOUNCEMENT);
    check_run("unloaded, order", uo, ROUTE_ORDER);
    check(uo->n_shed == 0, "unloaded, order: %" PRIu64 " 503s with one request at a time",
          uo->n_shed);
    after_run_cancel(t, "the unloaded runs");
    free(ua);
    free(uo);
}

/* --duration 0 or --unloaded 0 skips that part. */
static void bench_closed(const struct target *t, const struct opts *o)
{
    if (o->duration_s > 0)
        bench_closed_loop(t, o);
    if (o->unloaded_n > 0)
        bench_unloaded(t, o);
}

/* ---- issue 5: open-loop sweep ----------------------------------------------------------- */

struct step_result {
    double mult;
    double offered_per_s, sent_per_s, accepted_per_s, shed_pct;
    double acc_p50_ms, acc_p99_ms, shed_p50_ms, shed_p99_ms, lag_p99_ms;
    uint64_t timeouts, conn_errors, pool_exhausted, other;
    uint32_t conns;
};

static void csv_num(FILE *f, double v, int have)
{
    if (have)
        fprintf(f, ",%.4f", v);
    else
        fprintf(f, ",NaN");
}

/* mkdir -p of the directory part of path. */
static void make_parent_dirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(tmp, 0777);
        *p = '/';
    }
}

static int write_csv(const char *path, const struct step_result *r, uint32_t n, double cap_per_s,
                     int latency_cap_ms)
{
    make_parent_dirs(path);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "multiplier,offered_per_s,sent_per_s,accepted_per_s,shed_pct,accepted_p50_ms,"
               "accepted_p99_ms,shed_p50_ms,shed_p99_ms,timeouts,conn_errors,pool_exhausted,"
               "other_status,connections,send_late_p99_ms,capacity_per_s,latency_cap_ms\n");
    for (uint32_t i = 0; i < n; i++) {
        const struct step_result *s = &r[i];
        fprintf(f, "%g,%.1f,%.1f,%.1f,%.3f", s->mult, s->offered_per_s, s->sent_per_s,
                s->accepted_per_s, s->shed_pct);
        csv_num(f, s->acc_p50_ms, s->accepted_per_s > 0);
        csv_num(f, s->acc_p99_ms, s->accepted_per_s > 0);
        csv_num(f, s->shed_p50_ms, s->shed_pct > 0);
        csv_num(f, s->shed_p99_ms, s->shed_pct > 0);
        fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u,%.4f,%.1f,%d\n",
                s->timeouts, s->conn_errors, s->pool_exhausted, s->other, s->conns, s->lag_p99_ms,
                cap_per_s, latency_cap_ms);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "loadgen: writing %s failed\n", path);
        return -1;
    }
    printf("CSV: %s\n", path);
    return 0;
}

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[1024];
    while (*path) {
        size_t l = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)l, path, prog);
        if (l > 0 && access(buf, X_OK) == 0)
            return 1;
        path += l;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* Plots the CSV with gnuplot. 1 = no gnuplot (skipped), 0 = written, -1 = failed. */
static int write_png(const char *csv, const char *png, double cap_per_s, int latency_cap_ms)
{
    if (!on_path("gnuplot")) {
        printf("PNG: skipped, gnuplot is not on PATH\n");
        return 1;
    }
    if (strchr(csv, '\'') || strchr(png, '\'')) {
        fprintf(stderr, "loadgen: file names with a quote cannot be passed to gnuplot\n");
        return -1;
    }
    make_parent_dirs(png);
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        perror("popen gnuplot");
        return -1;
    }
    fprintf(
        g,
        "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
        "  set terminal pngcairo size 1200,500 font ',10'\n"
        "} else {\n"
        "  set terminal png size 1200,500\n"
        "}\n"
        "set output '%s'\n"
        "set datafile separator ','\n"
        "f = '%s'\n"
        "cap = %.1f\n"
        "lcap = %d\n"
        "set multiplot layout 1,2 title sprintf('perpsim load shedding: open-loop POST "
        "/api/v1/order, capacity %%.0f writes/s, latency cap %%d ms', cap, lcap)\n"
        "set grid\n"
        "set key at graph 0.98, graph 0.42 right top vertical opaque\n"
        "set xlabel 'offered load (x capacity)'\n"
        "set title 'throughput'\n"
        "set ylabel 'writes/s'\n"
        "set y2label 'shed (%%)'\n"
        "set yrange [0:*]\n"
        "set y2range [0:100]\n"
        "set ytics nomirror\n"
        "set y2tics\n"
        "plot f every ::1 using 1:2 with linespoints title 'offered/s', \\\n"
        "     f every ::1 using 1:4 with linespoints title 'accepted/s', \\\n"
        "     cap with lines dashtype 2 title 'capacity', \\\n"
        "     f every ::1 using 1:5 axes x1y2 with linespoints title 'shed %%'\n"
        "set title 'latency from the scheduled send time'\n"
        "set key inside top left vertical opaque\n"
        "set offsets 0, 0, graph 0.6, 0\n"
        "unset y2label\n"
        "unset y2tics\n"
        "set ytics mirror\n"
        "set ylabel 'ms'\n"
        "set logscale y\n"
        "set yrange [*:*]\n"
        "plot f every ::1 using 1:7 with linespoints title 'accepted p99', \\\n"
        "     f every ::1 using 1:6 with linespoints title 'accepted p50', \\\n"
        "     f every ::1 using 1:9 with linespoints title '503 p99', \\\n"
        "     f every ::1 using 1:8 with linespoints title '503 p50', \\\n"
        "     (lcap > 0 ? lcap + 5 : NaN) with lines dashtype 2 title 'target: cap + 5 ms', \\\n"
        "     5 with lines dashtype 3 title 'target: 503 p99 5 ms'\n"
        "unset multiplot\n",
        png, csv, cap_per_s, latency_cap_ms);
    int st = pclose(g);
    if (st != 0) {
        fprintf(stderr, "loadgen: gnuplot failed (status %d)\n", st);
        return -1;
    }
    struct stat sb;
    if (stat(png, &sb) != 0 || sb.st_size == 0) {
        fprintf(stderr, "loadgen: gnuplot wrote no %s\n", png);
        return -1;
    }
    printf("PNG: %s\n", png);
    return 0;
}

/* The PNG's name: given, or the CSV's with .png for .csv. */
static void png_path(char *out, size_t cap, const char *csv, const char *given)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return;
    }
    size_t l = strlen(csv);
    if (l > 4 && !strcmp(csv + l - 4, ".csv"))
        l -= 4;
    snprintf(out, cap, "%.*s.png", (int)l, csv);
}

/* --plot: capacity and cap come from the CSV's first row (its last two
 * columns). */
static int plot_only(const struct opts *o)
{
    FILE *f = fopen(o->plot_only, "r");
    if (!f) {
        fprintf(stderr, "loadgen: cannot read %s: %s\n", o->plot_only, strerror(errno));
        return 1;
    }
    char line[1024];
    double cap = 0;
    int cap_ms = 0, ok = 0;
    if (fgets(line, sizeof line, f) && fgets(line, sizeof line, f)) {
        char *last = strrchr(line, ',');
        if (last) {
            *last = 0;
            char *prev = strrchr(line, ',');
            cap_ms = atoi(last + 1);
            if (prev) {
                cap = atof(prev + 1);
                ok = 1;
            }
        }
    }
    fclose(f);
    if (!ok) {
        fprintf(stderr, "loadgen: %s is not a loadgen sweep CSV\n", o->plot_only);
        return 1;
    }
    char png[1024];
    png_path(png, sizeof png, o->plot_only, o->png);
    return write_png(o->plot_only, png, cap, cap_ms) == 0 ? 0 : 1;
}

static void bench_sweep(const struct target *t, const struct opts *o, int latency_cap_ms)
{
    double cap = o->capacity_per_s;
    printf("\nOPEN-LOOP SWEEP of signed POST /api/v1/order\n");
    if (cap <= 0) {
        /* A closed loop with more connections than the queue admits turns
         * into a storm of instant 503s that takes the CPU the engine needs;
         * halve the connections until (almost) nothing is shed. */
        double d = o->small ? o->duration_s : 2.0;
        for (uint32_t conns = CAPACITY_CONNS;; conns /= 2) {
            struct closed_result cr;
            run_closed(t, o, ROUTE_ORDER, conns, o->threads, d, &cr);
            uint64_t replies = cr.st->n_ok + cr.st->n_shed;
            double shed = replies ? (double)cr.st->n_shed / (double)replies : 0;
            printf("  capacity run: %u connections, %.1f s: %.0f writes/s, %.1f%% shed\n", conns, d,
                   cr.ok_per_s, 100 * shed);
            int last = shed <= 0.01 || conns == 1 || g_stop;
            if (last)
                check_run("capacity run", cr.st, ROUTE_ORDER);
            else
                check_run_errors("capacity run", cr.st, ROUTE_ORDER);
            free(cr.st);
            after_run_cancel(t, "the capacity run");
            cap = cr.ok_per_s;
            if (last)
                break;
        }
        printf("  capacity: %.0f writes/s (measured)\n", cap);
        if (!(cap > 0))
            return;
    } else {
        printf("  capacity: %.0f writes/s (given)\n", cap);
    }
    if (latency_cap_ms > 0)
        printf("  latency cap: %d ms\n", latency_cap_ms);
    else
        printf("  latency cap: unknown (give --latency-cap-ms)\n");
    printf("  %s arrivals, %.1f s per step (longer when needed for %.0f arrivals), pool of at "
           "most %u connections over %u thread%s\n",
           o->arrivals == ARR_POISSON ? "Poisson" : "uniform", o->step_s, STEP_ARRIVALS_MIN,
           o->pool_max, o->threads, o->threads == 1 ? "" : "s");
    printf(
        "  latency is from the scheduled send time; 'late' is how late the client sent (p99)\n\n");
    printf("  %5s %10s %10s %7s %8s %8s %8s %8s %6s %6s %7s\n", "x", "offered/s", "accepted/s",
           "shed %", "acc p50", "acc p99", "503 p50", "503 p99", "errors", "conns", "late");
    printf("  %5s %10s %10s %7s %8s %8s %8s %8s %6s %6s %7s\n", "", "", "", "", "ms", "ms", "ms",
           "ms", "", "", "ms");

    struct worker ws[THREADS_MAX];
    uint32_t base = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        uint32_t share = o->pool_max / o->threads + (i < o->pool_max % o->threads);
        if (worker_init(&ws[i], i, t, o, share, base) != 0) {
            fprintf(stderr, "loadgen: cannot set up a client thread\n");
            exit(2);
        }
        base += share;
        ws[i].prng = o->seed * UINT64_C(0x2545f4914f6cdd1d) + i;
    }
    struct step_result res[STEPS_MAX];
    uint32_t done = 0;
    int fived = -1;
    for (uint32_t s = 0; s < o->steps_n && !g_stop; s++) {
        double rate = o->steps[s] * cap;
        int64_t t0 = now_ns() + 20000000;
        /* At least STEP_ARRIVALS_MIN arrivals expected, so that a slow
         * (sanitized, checked) server still gives every step a sample. */
        double step_s = o->step_s;
        if (step_s * rate < STEP_ARRIVALS_MIN)
            step_s = STEP_ARRIVALS_MIN / rate;
        int64_t t_end = t0 + (int64_t)(step_s * 1e9);
        for (uint32_t i = 0; i < o->threads; i++) {
            struct worker *w = &ws[i];
            w->route = ROUTE_ORDER;
            w->open_loop = 1;
            w->interval_ns = 1e9 * (double)o->threads / rate;
            w->next_send_ns = (double)t0;
            if (o->arrivals == ARR_POISSON)
                w->next_send_ns += w->interval_ns * -log(1.0 - unit_real(&w->prng));
            else
                w->next_send_ns += w->interval_ns * (double)i / (double)o->threads;
            w->t_measure_ns = t0;
            w->t_end_ns = t_end;
            w->t_hard_end_ns = t_end + o->timeout_ms * 1000000 + 1000000000;
            w->st = stats_new();
        }
        sleep_ns(t0 - now_ns());
        workers_run(ws, o->threads);
        struct stats *st = stats_new();
        for (uint32_t i = 0; i < o->threads; i++) {
            ws[i].st->conns_max = ws[i].conns_n;
            stats_merge(st, ws[i].st);
            free(ws[i].st);
        }
        struct step_result *r = &res[done++];
        memset(r, 0, sizeof *r);
        r->mult = o->steps[s];
        r->offered_per_s = (double)st->sched / step_s;
        r->sent_per_s = (double)(st->sched - st->n_pool_exhausted) / step_s;
        r->accepted_per_s = (double)st->n_ok / step_s;
        r->shed_pct = st->sched ? 100.0 * (double)st->n_shed / (double)st->sched : 0;
        r->acc_p50_ms = ms(hist_pct(&st->ok, 0.5));
        r->acc_p99_ms = ms(hist_pct(&st->ok, 0.99));
        r->shed_p50_ms = ms(hist_pct(&st->shed, 0.5));
        r->shed_p99_ms = ms(hist_pct(&st->shed, 0.99));
        r->lag_p99_ms = ms(hist_pct(&st->lag, 0.99));
        r->timeouts = st->n_timeout;
        r->conn_errors = st->n_conn_err;
        r->pool_exhausted = st->n_pool_exhausted;
        r->other = st->n_other;
        r->conns = st->conns_max;
        if (fabs(r->mult - 5.0) < 1e-9)
            fived = (int)done - 1;
        char a[32], b[32], p50s[16] = "-", p99s[16] = "-";
        if (st->n_shed) {
            snprintf(p50s, sizeof p50s, "%.2f", r->shed_p50_ms);
            snprintf(p99s, sizeof p99s, "%.2f", r->shed_p99_ms);
        }
        printf("  %5g %10s %10s %7.2f %8.2f %8.2f %8s %8s %6" PRIu64 " %6u %7.2f\n", r->mult,
               fmt_u(a, sizeof a, (uint64_t)llround(r->offered_per_s)),
               fmt_u(b, sizeof b, (uint64_t)llround(r->accepted_per_s)), r->shed_pct, r->acc_p50_ms,
               r->acc_p99_ms, p50s, p99s, stats_errors(st) + st->n_other, r->conns, r->lag_p99_ms);
        fflush(stdout);
        char what[64];
        snprintf(what, sizeof what, "sweep step %gx", r->mult);
        check_run(what, st, ROUTE_ORDER);
        free(st);
        long n = cancel_all(t);
        if (n < 0)
            check(0, "%s: cancel-all failed", what);
    }
    for (uint32_t i = 0; i < o->threads; i++)
        worker_fini(&ws[i]);
    if (done == 0)
        return;

    double late_max = 0;
    for (uint32_t i = 0; i < done; i++)
        late_max = res[i].lag_p99_ms > late_max ? res[i].lag_p99_ms : late_max;
    if (late_max > 1.0)
        printf("\n  NOTE: the client sent up to %.2f ms late (p99) at some step; latencies "
               "include that lag (see 'late')\n",
               late_max);

    printf("\n  targets at 5x capacity:\n");
    if (fived < 0) {
        printf("    no 5x step in --steps: targets not evaluated\n");
    } else {
        const struct step_result *r = &res[fived];
        if (latency_cap_ms > 0)
            printf("    accepted p99 %.2f ms   target <= cap + 5 ms = %d ms: %s\n", r->acc_p99_ms,
                   latency_cap_ms + 5, met(r->acc_p99_ms <= latency_cap_ms + 5));
        else
            printf("    accepted p99 %.2f ms   target <= cap + 5 ms: cap unknown\n", r->acc_p99_ms);
        if (r->shed_pct > 0)
            printf("    503 p99 %.2f ms        target <= 5 ms: %s\n", r->shed_p99_ms,
                   met(r->shed_p99_ms <= 5));
        else
            printf(
                "    503 p99 -              target <= 5 ms: no 503 at 5x (NOT met: no shedding)\n");
        double frac = r->accepted_per_s / cap;
        printf("    throughput %.1f%% of capacity   target >= 95%%: %s\n", 100 * frac,
               met(frac >= 0.95));
        uint64_t errs = r->timeouts + r->conn_errors + r->pool_exhausted;
        printf("    timeouts + connection errors + pool exhausted %" PRIu64 "   target 0: %s\n",
               errs, met(errs == 0));
    }
    printf("\n");
    if (write_csv(o->csv, res, done, cap, latency_cap_ms) != 0) {
        check(0, "writing the CSV failed");
        return;
    }
    char png[1024];
    png_path(png, sizeof png, o->csv, o->png);
    if (write_png(o->csv, png, cap, latency_cap_ms) < 0)
        check(0, "writing the PNG failed");
}

/* ---- main ------------------------------------------------------------------------------ */

/* Starts (or names) a server and makes the accounts. */
static int target_open(struct target *t, const struct opts *o, int delay_us, int cap_ms)
{
    memset(t, 0, sizeof *t);
    t->srv.out_fd = -1;
    if (o->server_path) {
        if (server_start(t, o, delay_us, cap_ms) != 0)
            return -1;
    } else {
        target_set_base(t, o->url, strlen(o->url));
        snprintf(t->admin_token, sizeof t->admin_token, "%s", o->admin_token);
    }
    if (accounts_create(t, o->accounts) != 0)
        return -1;
    printf("%u accounts with %" PRId64 " XBt each\n", t->accounts_n, DEPOSIT_SATS);
    return 0;
}

static void target_close(struct target *t)
{
    if (t->srv.pid > 0)
        check(server_stop(t) == 0, "the server did not stop cleanly");
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(&o, argc, argv) != 0) {
        usage();
        return 2;
    }
    if (o.plot_only)
        return plot_only(&o);
    bench_process_init();
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("loadgen%s: %s; Sells at %" PRId64 "%s USD, Buys up to %d ticks above, %d "
           "contracts, %u accounts; seed %" PRIu64 "\n",
           o.small ? " --small" : "", curl_version(), o.price_half_usd / 2,
           (o.price_half_usd & 1) ? ".5" : "", o.band_ticks, ORDER_QTY, o.accounts, o.seed);

    static struct target t;
    if (o.mode != MODE_SWEEP && !g_stop) {
        printf("\n== issue 4: signed order placement vs the ceiling ==\n");
        if (target_open(&t, &o, 0, 0) == 0)
            bench_closed(&t, &o);
        else
            check(0, "could not set up the server for the closed loop");
        target_close(&t);
    }
    if (o.mode != MODE_CLOSED && !g_stop) {
        printf("\n== issue 5: load shedding, open loop ==\n");
        /* A running server's cap is known only when given. */
        int cap_ms = o.url && !o.latency_cap_given ? 0 : o.latency_cap_ms;
        if (target_open(&t, &o, o.engine_delay_us, o.latency_cap_ms) == 0)
            bench_sweep(&t, &o, cap_ms);
        else
            check(0, "could not set up the server for the sweep");
        target_close(&t);
    }
    curl_global_cleanup();
    if (o.scratch_dir) {
        char png[1024];
        png_path(png, sizeof png, o.csv, o.png);
        unlink(o.csv);
        unlink(png);
        rmdir(o.scratch_dir);
    }
    if (g_stop)
        fprintf(stderr, "loadgen: interrupted\n");
    if (g_failures) {
        fprintf(stderr, "loadgen: %d check%s failed\n", g_failures, g_failures == 1 ? "" : "s");
        return 1;
    }
    printf("loadgen: all checks passed\n");
    return g_stop ? 1 : 0;
}
