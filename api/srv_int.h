/*
 * srv_int.h - what the server's files share: the server, a request, a job
 * for the engine thread, keys, and the renderers of BitMEX's models.
 */
#ifndef PERPSIM_API_SRV_INT_H
#define PERPSIM_API_SRV_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "api/auth.h"
#include "api/params.h"
#include "api/query.h"
#include "api/ratelimit.h"
#include "api/server.h"
#include "api/store.h"
#include "api/warm.h"

/* ---- keys ------------------------------------------------------------------ */

enum perm { PERM_ORDER = 1u << 0, PERM_CANCEL = 1u << 1, PERM_WITHDRAW = 1u << 2 };

#define KEY_CIDRS_MAX 4

struct key_rec {
    char id[AUTH_KEY_ID_LEN + 1];
    char secret[AUTH_SECRET_LEN + 1];
    uint32_t account;
    uint32_t perms;      /* enum perm; reading is always allowed */
    bool enabled;
    uint8_t ncidr;
    uint32_t cidr_addr[KEY_CIDRS_MAX]; /* IPv4, host order */
    uint8_t cidr_bits[KEY_CIDRS_MAX];
    ms_t created_ms;
};

/* ---- jobs ------------------------------------------------------------------- */

enum job_kind {
    J_ORDERS,   /* new orders, amends, cancels: one reply row per command */
    J_CANCEL_ALL,
    J_CANCEL_AFTER,
    J_POSITION, /* leverage, isolate, risk limit, transfer: the position after */
    J_MONEY,    /* deposits / withdrawals: the wallet after */
    J_INDEX,    /* admin: set an index price */
};

struct job {
    enum job_kind kind;
    uint32_t account;
    uint32_t n;               /* commands */
    struct cmd *cmds;
    char **texts;             /* per command: the order's text or NULL */
    uint64_t *target;         /* per command: the order the reply shows (amend/cancel) */
    /* results, written by the engine thread before `state` becomes JOB_DONE */
    enum reject *rej;
    struct ord_rec *rows;     /* J_ORDERS: n rows (v.id 0 = none); J_CANCEL_ALL: nrows */
    struct ord_rec *rows_inline; /* the n rows allocated with the job */
    uint32_t nrows;
    struct exch_position pos;
    struct exch_margin margin;
    ms_t ts;                  /* engine time of the last command */
    atomic_int state;         /* enum job_state: the hand-back between the threads */
    struct MHD_Connection *conn;
};

/* Who resumes the connection. The HTTP thread suspends it only after the
 * queue admitted the job, unless the engine thread has already finished it
 * (then the reply goes out in the same handler call, no suspend and no
 * resume); the engine thread resumes only a connection parked here. */
enum job_state {
    JOB_QUEUED = 0, /* admitted; the HTTP thread has not parked the connection */
    JOB_PARKED,     /* the connection is suspended; the engine thread resumes it */
    JOB_DONE,       /* results written; the engine thread no longer touches the job */
};

/* ---- the server ---------------------------------------------------------------- */

struct srv {
    struct srv_config cfg;
    struct MHD_Daemon *d;
    uint16_t port;
    /* the state: the exchange and the read model, one lock */
    pthread_rwlock_t lock;
    struct exch *x;
    struct store *st;
    uint64_t seq;
    ms_t now;
    /* the engine thread */
    pthread_t engine;
    struct warm *warm; /* NULL: off */
    struct ls_queue *q;
    atomic_bool stop;
    atomic_uint_fast64_t commands;
    /* keys and accounts */
    pthread_mutex_t keys_lock;
    struct key_rec *keys;
    uint32_t nkeys, cap_keys;
    uint32_t next_account;
    /* limits */
    struct rl_table *rl;
    struct auth_policy auth;
    /* counters for /metrics */
    atomic_uint_fast64_t http_status[6]; /* 1xx .. 5xx by hundreds, [0] unused */
    atomic_uint_fast64_t connections, connections_open;
};

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
    /* authentication */
    bool authed;
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
    char retry_after[24];
    struct job *job;
    void (*finish)(struct req *r); /* renders the job's reply after resume */
    struct MHD_Connection *conn;
};

/* ---- server.c -------------------------------------------------------------------- */

/* Replies. */
void reply_json(struct req *r, int status, cJSON *body); /* takes body */
void reply_error(struct req *r, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Hands a job to the write queue; kind/exempt as loadshed. On LS_ACCEPTED
 * the connection waits and r->finish renders the reply later; on a full
 * queue the reply is the 503. */
void submit_job(struct req *r, struct job *j, enum ls_kind kind, bool exempt,
                void (*finish)(struct req *r));
/* The rate limit (cost in tenths): charged now, or only checked (writes are
 * charged when the queue accepts them). false when the 429 reply is set. */
bool rate_limit(struct req *r, int32_t cost, bool order_route, bool never_refuse, bool charge);
struct job *job_new(enum job_kind kind, uint32_t account, uint32_t n);
void job_free(struct job *j);

int keys_add(struct srv *s, uint32_t account, uint32_t perms, struct key_rec *out);
int keys_list(struct srv *s, uint32_t account, struct key_rec *out, int max);
uint32_t accounts_alloc(struct srv *s);
bool account_exists(struct srv *s, uint32_t account); /* allocated by the admin API */

/* ---- routes.c ------------------------------------------------------------------------ */

/* Serves r (method, path, params, auth set). */
void route(struct req *r);

/* ---- render.c -------------------------------------------------------------------------- */

const char *sym(const struct srv *s, uint16_t inst);
int inst_find(const struct srv *s, const char *symbol); /* -1 if unknown; case-insensitive */
int currency_find(const struct srv *s, const char *name);
void id_format(char out[37], uint32_t tag, uint64_t id);
bool id_parse(const char *text, uint32_t tag, uint64_t *id);
double px_num(px_t px);
/* homeNotional (+ for long) and foreignNotional (- for long) of a signed
 * quantity at px, in the instrument's underlying and quote units. */
void notional(const struct srv *s, uint16_t inst, qty_t q, px_t px, double *home, double *foreign);
void add_time(cJSON *o, const char *name, ms_t ms);
cJSON *render_order(const struct srv *s, const struct ord_rec *r);
cJSON *render_exec(const struct srv *s, const struct exe_rec *e);
cJSON *render_position(const struct srv *s, uint32_t account, uint16_t inst,
                       const struct exch_position *p, ms_t now);
cJSON *render_margin(const struct srv *s, uint32_t account, uint8_t cur, const struct exch_margin *m,
                     ms_t now);
cJSON *render_wallet(const struct srv *s, uint32_t account, uint8_t cur, const struct exch_margin *m,
                     ms_t now);
cJSON *render_instrument(const struct srv *s, uint16_t inst, ms_t now);
cJSON *render_index(const struct srv *s, uint16_t index, ms_t now);
cJSON *render_trade(const struct srv *s, uint16_t inst, const struct trade_rec *t);
const char *money_kind_name(uint8_t kind);
const char *reject_message(enum reject r, int *status);

#define ID_ORDER 0u
#define ID_EXEC 1u
#define ID_TRADE 2u
#define ID_TRANSACT 3u
#define ID_CLOSE 4u /* liquidation, deleverage, settlement transfers */

#endif
