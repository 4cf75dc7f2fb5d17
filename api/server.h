/*
 * server.h - the perpsim server: BitMEX's REST API under /api/v1, the
 * testnet admin API under /admin/v1 and /metrics, on libmicrohttpd.
 *
 * Threads. libmicrohttpd's threads parse, authenticate, rate-limit and
 * validate a request. A read takes the state lock for reading and answers
 * at once: it waits for at most the one command being applied, never for
 * the write queue. A write becomes a job: it enters the bounded write queue
 * (loadshed/) and its connection is suspended, and the single engine thread
 * applies its commands in arrival order, holding the state lock for writing
 * for one job, copies the rows the reply needs and resumes the connection,
 * whose thread then renders and sends the reply. A job the engine thread
 * finishes before the connection is suspended is answered at once, with no
 * suspend or resume (struct job's state says who resumes). A full queue
 * answers 503 at once, without suspending; cancels never meet a full queue.
 *
 * Time. Engine time is the wall clock in milliseconds, never going back;
 * when no write arrives the engine thread applies a clock command every
 * CLOCK_TICK_MS so timers (dead man's switch, funding, marks) run.
 */
#ifndef PERPSIM_API_SERVER_H
#define PERPSIM_API_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadshed/loadshed.h"
#include "margin/exchange.h"

#define ADMIN_TOKEN_LEN_MAX 128
#define CLOCK_TICK_MS 200
/* 1 ms: an unloaded client's next request comes ~0.1 ms after the reply;
 * a bot sending one request a second costs 0.1% of each CPU. */
#define SRV_DEFAULT_WARM_NS INT64_C(1000000)

enum rl_profile { RLP_OFF = 0, RLP_DEFAULT, RLP_2021 };

struct srv_config {
    char host[64];             /* "127.0.0.1" */
    uint16_t port;             /* 0 = any free port (srv_port tells) */
    char admin_token[ADMIN_TOKEN_LEN_MAX + 1]; /* "" = admin API off */
    bool admin_remote;         /* admin API from non-loopback peers too */
    enum rl_profile rate_limit;
    int32_t ban_errors;        /* 4xx/5xx storm ban: errors per window, 0 = off */
    struct ls_config ls;
    int64_t engine_delay_ns;   /* demonstration: least service time per write */
    bool engine_thread_only;   /* no write runs on its HTTP thread (loadshed rule 5a) */
    int64_t warm_ns;           /* keep the CPUs awake this long after a request (warm.h); 0 = off */
    unsigned http_threads;     /* libmicrohttpd thread pool */
    size_t body_max;           /* bytes; larger bodies get 413 */
    size_t url_max;            /* bytes of request target; longer get 414 */
    int64_t skew_ms;           /* api-expires leniency */
    struct exch_config exch;
    px_t index_px[INDICES_MAX]; /* initial index prices, 0 = none */
    bool quiet;                /* no request log */
};

/* Defaults: 127.0.0.1:8080, rate limits as BitMEX's 2019 profile, latency
 * cap 3 s, two HTTP threads, 1 MiB bodies, 16 KiB targets, the default
 * instruments with .BXBT 60000 and .BETH 3000, expiry of the future at the
 * quarter end after now_ms. */
void srv_config_default(struct srv_config *c, ms_t now_ms);

struct srv;

/* Starts everything; NULL with a message in err on failure. */
struct srv *srv_start(const struct srv_config *cfg, char *err, size_t errcap);
uint16_t srv_port(const struct srv *s);
/* Creates an account with deposits (per currency, 0 = none) and an
 * order-permission key, as POST /admin/v1/accounts does. 0 on success. */
int srv_create_account(struct srv *s, const sats_t *deposits, uint32_t *account, char *key,
                       char *secret);
void srv_stop(struct srv *s);

#endif
