/*
 * server.h - the perpsim server: BitMEX's REST API under /api/v1, the
 * testnet admin API under /admin/v1 and /metrics, on libmicrohttpd, in
 * front of the sequencer (core/core.h).
 *
 * Threads. libmicrohttpd's threads parse, authenticate, rate-limit and
 * validate a request. A read opens a view of the state (the state lock
 * held for reading), copies what it needs and answers: it waits for at
 * most the one command being applied, never for the write queue. A write
 * becomes a job submitted to the core: it enters the bounded write queue
 * (loadshed/) and its connection is suspended; the job's completion
 * callback resumes it, and the connection's thread renders and sends the
 * reply outside the state lock. A job the core finishes before the
 * connection is suspended is answered at once, with no suspend or resume
 * (the request's job_state says who resumes). A full queue answers 503 at
 * once, without suspending; cancels never meet a full queue.
 *
 * Time. Engine time comes from the server's clock source (api/clock.h):
 * real (the wall clock, or offset to a chosen start), accelerated or
 * stepped, switched and advanced by the admin API; the core never lets it
 * go back. Everything the exchange shows and does runs on engine time,
 * and api-expires is checked against it (equal to the wall clock unless a
 * start time, acceleration or stepping moved it). Rate limits measure
 * the clients' real pace: wall time.
 */
#ifndef PERPSIM_API_SERVER_H
#define PERPSIM_API_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/clock.h"
#include "api/ws.h"
#include "core/core.h"
#include "journal/journal.h"
#include "market/market.h"

#define ADMIN_TOKEN_LEN_MAX 128
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
    int64_t warm_ns;           /* keep the CPUs awake this long after a request (warm.h); 0 = off */
    unsigned http_threads;     /* libmicrohttpd thread pool */
    /* Connections (issue 19): at most max_per_ip from one address; a
     * connection between requests is closed after idle_s (BitMEX's
     * keep-alive: 90 s), a request's headers must arrive within
     * header_s of its request line and its body within body_s. */
    unsigned http_max_per_ip;
    unsigned http_idle_s, http_header_s, http_body_s;
    size_t body_max;           /* bytes; larger bodies get 413 */
    size_t url_max;            /* bytes of request target; longer get 414 */
    int64_t skew_ms;           /* api-expires leniency */
    int64_t max_expires_ahead_s; /* api-expires at most this far ahead (auth.h rule 4); 0 = no bound */
    struct core_config core;   /* the exchange, the write queue (its clock is the server's) */
    enum clock_mode clock_mode; /* the engine clock: real (default), accelerated, stepped */
    int64_t clock_speed;       /* accelerated: engine ms per wall ms */
    ms_t start_ms;             /* engine time at start; 0 = the wall clock's now */
    uint64_t seed;             /* API keys drawn from this seed (backtests: the same keys
                                * every run); 0 = from the system's random source */
    struct market_params market; /* the living market's, when srv_market_start starts it */
    bool market_seed_set;      /* market.seed given (else --seed, else 1) */
    char index_csv[1024];      /* index paths to replay (timestamp,symbol,price), "" = none */
    bool quiet;                /* no request log */
    bool websocket;            /* the realtime WebSocket at /realtime (on by default) */
    struct ws_config ws;       /* its limits */
    /* The journal (journal.h): on when journal.dir is set. An existing
     * journal there is recovered at start: its config (command 1) is the
     * exchange's, whatever this config says. */
    struct journal_config journal;
    /* The web page (web.h): its built files, served at /. "" = none;
     * when they cannot be loaded, / says so, unless web_required (then
     * the start fails). */
    char web_dir[1024];
    bool web_required;
    /* Called with the core once it is made, before the sequence opens and
     * before the journal's replay: another consumer of the change stream
     * subscribes there (a backtest's history driver and its report). 0, or
     * -1 and the start fails. NULL: none. */
    int (*attach)(void *ctx, struct core *c);
    void *attach_ctx;
    /* GET /admin/v1/report: a served backtest's report as JSON (malloc'd,
     * NULL when memory is gone), ctx attach_ctx. NULL: 404. */
    char *(*report)(void *ctx, struct core *c);
};

/* Defaults: 127.0.0.1:8080, rate limits as BitMEX's 2019 profile, latency
 * cap 3 s, two HTTP threads, 1 MiB bodies, 16 KiB targets, the default
 * instruments with .BXBT 60000 and .BETH 3000, expiry of the future at the
 * quarter end after now_ms (0: the wall clock's now), the real clock
 * starting at now_ms (0: the wall clock's now). */
void srv_config_default(struct srv_config *c, ms_t now_ms);

struct srv;

/* Starts everything; NULL with a message in err on failure. */
struct srv *srv_start(const struct srv_config *cfg, char *err, size_t errcap);
/* The sequencer behind the server (tests, the app). */
struct core *srv_core(struct srv *s);
uint16_t srv_port(const struct srv *s);
/* The web page: NULL and its file count when served, else why not. */
const char *srv_web(const struct srv *s, uint32_t *files);
/* Creates an account with deposits (per currency, 0 = none) and an
 * order-permission key, as POST /admin/v1/accounts does: commands in the
 * one sequence, applied before this returns. 0 on success. */
int srv_create_account(struct srv *s, const sats_t *deposits, uint32_t *account, char *key,
                       char *secret);
/* Starts the living market (market/) with cfg.market: the agents' accounts
 * are made now, after any made before (the demo account keeps number 1).
 * 0 on success, else -1 with a message. */
int srv_market_start(struct srv *s, char *err, size_t errcap);
void srv_stop(struct srv *s);

/* What start-up recovered from the journal; NULL when it found none (a new
 * exchange, or no journal). */
const struct journal_report *srv_recovery(const struct srv *s);
/* The journal's figures; -1 when there is no journal. */
int srv_journal_stats(struct srv *s, struct journal_stats *out);

#endif
