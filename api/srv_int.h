/*
 * srv_int.h - what the server's files share: the server, a request, and
 * the renderers of BitMEX's models. The state, jobs and keys are core/'s.
 */
#ifndef PERPSIM_API_SRV_INT_H
#define PERPSIM_API_SRV_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "api/accept.h"
#include "api/auth.h"
#include "api/faults.h"
#include "api/params.h"
#include "api/query.h"
#include "api/ratelimit.h"
#include "api/server.h"
#include "api/warm.h"
#include "api/web.h"
#include "api/ws.h"
#include "core/core.h"

_Static_assert(KEY_ID_LEN == AUTH_KEY_ID_LEN && KEY_SECRET_LEN == AUTH_SECRET_LEN,
               "core/keys.h and api/auth.h agree on key lengths");

/* Who resumes the connection. The HTTP thread suspends it only after the
 * queue admitted the job, unless the job is already done (then the reply
 * goes out in the same handler call, no suspend and no resume); the
 * completion callback resumes only a connection parked here. */
enum job_state {
    JOB_QUEUED = 0, /* admitted; the HTTP thread has not parked the connection */
    JOB_PARKED,     /* the connection is suspended; the completion resumes it */
    JOB_DONE,       /* results written; the core no longer touches the job */
};

/* ---- the server ---------------------------------------------------------------- */

/* An HTTP thread: one single-threaded libmicrohttpd daemon, fed
 * connections by the acceptor (accept.h). */
struct http_thread {
    struct srv *s;
    unsigned k;
};

struct srv {
    struct srv_config cfg;
    struct acceptor *acc;     /* the listening socket, handing connections out */
    struct MHD_Daemon *d[ACCEPT_THREADS_MAX];
    struct http_thread th[ACCEPT_THREADS_MAX];
    unsigned nd;              /* HTTP threads */
    uint16_t port;
    struct core *core;        /* the state, the sequencer, the write queue */
    struct clocksrc clk;      /* engine time */
    pthread_mutex_t key_lock; /* the seeded key generator */
    uint64_t key_rng;         /* 0: keys from the system's random source */
    const struct exch_config *x; /* the exchange's config (immutable) */
    struct warm *warm; /* NULL: off */
    /* limits */
    struct rl_table *rl;
    struct auth_policy auth;
    struct faults *faults; /* fault injection (faults.h) */
    /* Admin changes of the clock and the market, one at a time. */
    pthread_mutex_t admin_lock;
    struct market *market;    /* the living market, NULL when off */
    struct ws *ws;            /* the realtime WebSocket, NULL when off */
    struct journal *journal;  /* NULL when off */
    struct guard *guard;      /* connection deadlines (server.c) */
    struct web *web;          /* the web page's files, NULL when none */
    char web_note[512];       /* why not, when web_dir was given */
    struct journal_report recovered;
    bool has_recovered;
    bool market_paused;       /* its timer taken off the core (admin API) */
    int advancing;            /* clock advances submitted and not yet answered */
    int restoring;            /* restores submitted and not yet answered */
    /* counters for /metrics */
    atomic_uint_fast64_t http_status[6]; /* 1xx .. 5xx by hundreds, [0] unused */
    atomic_uint_fast64_t connections, connections_open;
};

/* The auth policy for a request at engine time engine_now: the bound on
 * api-expires (auth.h rule 4) counted from the later of engine time and
 * the wall clock. */
struct auth_policy srv_auth_policy(struct srv *s, ms_t engine_now);
/* Connections closed for holding past a deadline (server.c's guard). */
uint64_t srv_connections_closed_by_deadline(struct srv *s);

enum req_state { RS_HEADERS = 0, RS_BODY, RS_WAITING, RS_READY };

struct req {
    struct srv *s;
    enum req_state state;
    char method[8];
    char *target;        /* raw request target, as on the request line */
    size_t target_len;
    const char *path;    /* inside target, query cut off (target_q is the query) */
    const char *query;
    size_t query_len;
    char *body;
    size_t body_len, body_cap;
    bool body_too_large, target_too_long;
    cJSON *params;
    const struct core_view *v; /* a read's view of the state, between begin and end */
    /* authentication */
    bool authed;
    uint64_t seen_seq;   /* the latest state a view of this request read */
    struct key_rec key;  /* a copy of the caller's key */
    char client_ip[64];
    uint32_t client_ip4; /* host order, 0 when not IPv4 */
    struct rl_status rl;
    bool has_rl;
    int32_t charge_tenths; /* an order-route write: charged when the queue admits it */
    /* the reply */
    int status;
    char *reply;         /* JSON text, malloc'd */
    bool text_plain;     /* /metrics: Prometheus text, not JSON */
    const char *content_type; /* when set, instead of JSON's or text_plain's */
    const unsigned char *reply_static; /* instead of reply: bytes that outlive the server's requests */
    size_t reply_static_len;
    const char *cache_control;
    int32_t fault_delay_ms; /* faults.h: the reply leaves this much later */
    bool fault_held;     /* ... and has been held */
    bool fault_injected; /* an injected reply: no ban error counted */
    char retry_after[24];
    struct core_job *job;
    atomic_int job_state;  /* enum job_state: the hand-back with the completion */
    void (*finish)(struct req *r); /* renders the job's reply after resume */
    struct MHD_Connection *conn;
    struct MHD_Response *upgrade; /* /realtime: the 101 response to queue */
    struct conn *ws_conn;         /* ... and the connection it will become */
};

/* ---- server.c -------------------------------------------------------------------- */

/* Replies. */
void reply_json(struct req *r, int status, cJSON *body); /* takes body */
void reply_error(struct req *r, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Hands a job to the write queue; kind/exempt as loadshed. On LS_ACCEPTED
 * the connection waits and r->finish renders the reply later; on a full
 * queue the reply is the 503. */
void submit_job(struct req *r, struct core_job *j, enum ls_kind kind, bool exempt,
                void (*finish)(struct req *r));
/* The rate limit (cost in tenths): charged now, or only checked (writes are
 * charged when the queue accepts them). false when the 429 reply is set. */
bool rate_limit(struct req *r, int32_t cost, bool order_route, bool never_refuse, bool charge);
/* The wall clock in milliseconds (rate limits). */
ms_t wall_ms(void);
/* Engine time now (the clock source's, never behind the last command's). */
ms_t engine_ms(struct srv *s);
/* A new API key: from the seeded generator (--seed) or the system's random
 * source. 0 on success. */
int new_key(struct srv *s, struct key_rec *k);

/* ---- market_api.c ------------------------------------------------------------------ */

void admin_market(struct req *r);

/* ---- routes.c ------------------------------------------------------------------------ */

/* Serves r (method, path, params, auth set). */
void route(struct req *r);

/* ---- render.c -------------------------------------------------------------------------- */

const char *sym(const struct exch_config *cfg, uint16_t inst);
int currency_find(const struct exch_config *cfg, const char *name);
void id_format(char out[37], uint32_t tag, uint64_t id);
bool id_parse(const char *text, uint32_t tag, uint64_t *id);
double px_num(px_t px);
/* homeNotional (+ for long) and foreignNotional (- for long) of a signed
 * quantity at px, in the instrument's underlying and quote units. */
void notional(const struct exch_config *cfg, uint16_t inst, qty_t q, px_t px, double *home,
              double *foreign);
void add_time(cJSON *o, const char *name, ms_t ms);
/* GET /explain/v1/liquidation (explain_api.c). */
void explain_liquidation(struct req *r);
void explain_funding(struct req *r);
/* Every key of obj is one of known, else a 400 naming it (false). */
bool only_known(struct req *r, const cJSON *obj, const char *const *known);
/* Renderers of copies take the config; those of live state a view. */
cJSON *render_order(const struct exch_config *cfg, const struct ord_rec *r);
cJSON *render_exec(const struct core_view *v, const struct exe_rec *e);
cJSON *render_position(const struct exch_config *cfg, uint32_t account, uint16_t inst,
                       const struct exch_position *p, rate_t adl_e8, ms_t now);
cJSON *render_margin(const struct exch_config *cfg, uint32_t account, uint8_t cur,
                     const struct exch_margin *m, ms_t now);
cJSON *render_wallet(const struct exch_config *cfg, uint32_t account, uint8_t cur,
                     const struct exch_margin *m, ms_t now);
cJSON *render_instrument(const struct core_view *v, uint16_t inst, ms_t now);
cJSON *render_index(const struct core_view *v, uint16_t index, ms_t now);
cJSON *render_trade(const struct exch_config *cfg, uint16_t inst, const struct trade_rec *t);
/* The same rows from a read model and figures of one's own (the WebSocket
 * feed keeps its own read model, built from the change stream). */
cJSON *render_exec_st(const struct exch_config *cfg, const struct store *st, const struct exe_rec *e);
cJSON *render_instrument_st(const struct exch_config *cfg, const struct store *store,
                            const struct exch_instrument_state *st, px_t bid, px_t ask, uint16_t inst,
                            ms_t now);
/* A bucket of trades (TradeBin) starting at start: the stored one, or an
 * empty one at the last close before it; NULL when no trade came before. */
cJSON *render_bin(const struct exch_config *cfg, uint16_t inst, const struct bin_rec *bins, uint32_t nb,
                  ms_t start, ms_t width);
cJSON *render_funding(const struct exch_config *cfg, const struct funding_rec *f);
cJSON *render_insurance(const struct exch_config *cfg, const struct insurance_rec *f);
cJSON *render_settlement(const struct exch_config *cfg, const struct settle_rec *f);
cJSON *render_liquidation(const struct exch_config *cfg, const struct ord_rec *rec);
cJSON *render_transact(const struct exch_config *cfg, const struct wallet_rec *w);
const char *reject_message(enum reject r, int *status);

#define ID_ORDER 0u
#define ID_EXEC 1u
#define ID_TRADE 2u
#define ID_TRANSACT 3u
#define ID_CLOSE 4u /* liquidation, deleverage, settlement transfers */

#endif
