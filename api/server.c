/*
 * server.c - the HTTP pipeline on libmicrohttpd: target and body in,
 * authenticate, rate-limit, route, hand writes to the core, reply.
 */
#define _GNU_SOURCE
#include "api/srv_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api/json.h"

ms_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ms_t engine_ms(struct srv *s)
{
    ms_t t = clocksrc_now(&s->clk);
    const struct core_view *v = core_view_begin(s->core);
    ms_t last = cv_now(v);
    core_view_end(v);
    return t > last ? t : last;
}

/* splitmix64: the seeded key generator's step. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

int new_key(struct srv *s, struct key_rec *k)
{
    if (!s->key_rng)
        return auth_generate_key(k->id, k->secret) == AUTH_E_OK ? 0 : -1;
    /* base64url's alphabet, as auth_generate_key's keys. */
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* Past the keys the exchange ever made (a restore's undone ones too):
     * on a journal recovered with the same seed, the draws start where the
     * first run's did, and never hand out a key someone once held. */
    pthread_mutex_lock(&s->key_lock);
    do {
        for (int i = 0; i < KEY_ID_LEN; i++)
            k->id[i] = al[splitmix(&s->key_rng) & 63];
        for (int i = 0; i < KEY_SECRET_LEN; i++)
            k->secret[i] = al[splitmix(&s->key_rng) & 63];
        k->id[KEY_ID_LEN] = 0;
        k->secret[KEY_SECRET_LEN] = 0;
    } while (s->core && core_key_known(s->core, k->id));
    pthread_mutex_unlock(&s->key_lock);
    return 0;
}

/* ---- configuration ---------------------------------------------------------- */

void srv_config_default(struct srv_config *c, ms_t now_ms)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = 8080;
    c->rate_limit = RLP_DEFAULT;
    c->http_threads = 2;
    c->websocket = true;
    ws_config_default(&c->ws);
    c->warm_ns = SRV_DEFAULT_WARM_NS;
    c->body_max = 1u << 20;
    c->url_max = 16u << 10;
    c->skew_ms = AUTH_DEFAULT_SKEW_MS;
    c->max_expires_ahead_s = AUTH_DEFAULT_MAX_FUTURE_S;
    c->http_max_per_ip = 3000;
    c->http_idle_s = 90;
    c->http_header_s = 30;
    c->http_body_s = 60;
    core_config_default(&c->core, now_ms ? now_ms : wall_ms());
    c->clock_mode = CLOCK_REAL;
    c->clock_speed = 1;
    c->start_ms = now_ms;
    market_params_default(&c->market);
}

/* ---- replies ---------------------------------------------------------------------- */

void reply_json(struct req *r, int status, cJSON *body)
{
    free(r->reply);
    r->reply = body ? json_print(body) : NULL;
    cJSON_Delete(body);
    if (!r->reply) {
        r->reply = strdup("{\"error\":{\"message\":\"Server Error\",\"name\":\"HTTPError\"}}");
        status = 500;
    }
    r->status = status;
    r->state = RS_READY;
}

void reply_error(struct req *r, int status, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_utf8_scrub(msg); /* a bad key or value echoed back stays valid JSON */
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "name", name);
    reply_json(r, status, o);
}

/* ---- jobs ---------------------------------------------------------------------------- */

static const char overloaded[] = "The system is currently overloaded. Please try again later.";

/* The job's completion (core.h): its HTTP thread may reply and free the
 * request once JOB_DONE is visible, so the connection is read first and
 * nothing is touched after; a parked connection is resumed. */
static void job_done(struct core_job *j)
{
    struct req *r = j->ctx;
    struct MHD_Connection *conn = r->conn;
    if (atomic_exchange_explicit(&r->job_state, JOB_DONE, memory_order_acq_rel) == JOB_PARKED)
        MHD_resume_connection(conn);
}

void submit_job(struct req *r, struct core_job *j, enum ls_kind kind, bool exempt,
                void (*finish)(struct req *r))
{
    struct srv *s = r->s;
    j->done = job_done;
    j->ctx = r;
    atomic_store_explicit(&r->job_state, JOB_QUEUED, memory_order_relaxed);
    r->job = j;
    r->finish = finish;
    r->state = RS_WAITING;
    enum ls_result res = core_submit(s->core, j, kind, exempt);
    if (res != LS_ACCEPTED) {
        /* Refused before anything was suspended: the 503 goes out in this
         * handler call (never the first one, so keep-alive holds), and a
         * storm of them costs no suspend, resume or wake-up. */
        r->job = NULL;
        core_job_free(j);
        if (res == LS_SHED)
            reply_error(r, 503, "HTTPError", "%s", overloaded);
        else
            reply_error(r, 503, "HTTPError", "Service unavailable");
        return;
    }
    /* Checked before, charged now: a shed write costs no tokens. */
    if (r->charge_tenths > 0)
        rate_limit(r, r->charge_tenths, true, true, true);
    /* Park the connection unless the job is already done (it may run the
     * moment it is queued, or on this thread); the handler then replies at
     * once. If the job finishes between this check and the exchange below,
     * the completion saw JOB_QUEUED and left the resume to us. */
    if (atomic_load_explicit(&r->job_state, memory_order_acquire) == JOB_DONE)
        return;
    MHD_suspend_connection(r->conn);
    int expect = JOB_QUEUED;
    if (!atomic_compare_exchange_strong_explicit(&r->job_state, &expect, JOB_PARKED,
                                                 memory_order_acq_rel, memory_order_acquire))
        MHD_resume_connection(r->conn);
}

/* ---- the HTTP pipeline ------------------------------------------------------------------------ */

/* ---- connection deadlines ------------------------------------------------------------------ */

/* Each connection's phase and since when, so that one client cannot hold
 * connections forever: between requests at most idle_s, a request's
 * headers within header_s of its request line, its body within body_s.
 * libmicrohttpd's own timeout is an idle one (each byte resets it), which
 * a client trickling a byte at a time never meets. A guard thread looks
 * once a second and shuts down the socket of a connection past its
 * deadline; libmicrohttpd then closes it as a client that went away. A
 * request being handled (a job in the engine) or a WebSocket has none. */
enum conn_phase { CP_IDLE = 0, CP_HEADERS, CP_BODY, CP_BUSY, CP_UPGRADED };

struct conn_ctx {
    struct conn_ctx *prev, *next;
    bool listed;       /* in the guard's list */
    int fd;
    _Atomic int phase;
    _Atomic int64_t since_ms; /* monotonic */
    bool shut;
};

struct guard {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct conn_ctx head;     /* the list's sentinel */
    bool stop;
    pthread_t thread;
    int64_t limit_ms[CP_UPGRADED + 1];
    atomic_uint_fast64_t closed;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void conn_phase(struct MHD_Connection *conn, enum conn_phase p)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_ctx *c = ci ? ci->socket_context : NULL;
    if (!c)
        return;
    atomic_store(&c->since_ms, mono_ms());
    atomic_store(&c->phase, (int)p);
}

static void *guard_main(void *arg)
{
    struct guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&g->cv, &g->lock, &dl);
        int64_t now = mono_ms();
        for (struct conn_ctx *c = g->head.next; c != &g->head; c = c->next) {
            int64_t lim = g->limit_ms[atomic_load(&c->phase)];
            if (!c->shut && lim > 0 && now - atomic_load(&c->since_ms) > lim) {
                shutdown(c->fd, SHUT_RDWR);
                c->shut = true;
                atomic_fetch_add(&g->closed, 1);
            }
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static struct guard *guard_start(const struct srv_config *cfg)
{
    struct guard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->head.next = g->head.prev = &g->head;
    g->limit_ms[CP_IDLE] = (int64_t)cfg->http_idle_s * 1000;
    g->limit_ms[CP_HEADERS] = (int64_t)cfg->http_header_s * 1000;
    g->limit_ms[CP_BODY] = (int64_t)cfg->http_body_s * 1000;
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->cv);
        free(g);
        return NULL;
    }
    return g;
}

/* Stops the thread; the connections' contexts go with their connections. */
static void guard_stop(struct guard *g)
{
    if (!g || g->stop)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
}

static void guard_free(struct guard *g)
{
    if (!g)
        return;
    guard_stop(g);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cv);
    free(g);
}

uint64_t srv_connections_closed_by_deadline(struct srv *s)
{
    return s->guard ? (uint64_t)atomic_load(&s->guard->closed) : 0;
}


static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct srv *s = cls;
    warm_touch(s->warm);
    conn_phase(conn, CP_HEADERS);
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = s;
    r->conn = conn;
    size_t len = strlen(uri);
    if (len > s->cfg.url_max) {
        r->target_too_long = true;
        len = 0;
    }
    r->target = malloc(len + 1);
    if (!r->target) {
        free(r);
        return NULL;
    }
    memcpy(r->target, uri, len);
    r->target[len] = 0;
    r->target_len = len;
    char *q = strchr(r->target, '?');
    r->path = r->target;
    if (q) {
        r->query = q + 1;
        r->query_len = len - (size_t)(q + 1 - r->target);
    }
    /* The query is ours to parse (api/query.c, from the copy above);
     * libmicrohttpd would also split it into GET arguments, one entry of
     * its connection memory each, and a query of thousands of empty ones
     * ('&' x 15,000) exhausted that memory: no reply, the connection hung
     * and this request was never completed (leaked). uri is libmicrohttpd's
     * own request-line buffer, which it parses after this call: ending the
     * query there leaves it nothing to split. */
    char *mq = strchr(uri, '?');
    if (mq)
        mq[1] = '\0';
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    struct req *r = *con_cls;
    if (!r)
        return;
    conn_phase(conn, r->upgrade ? CP_UPGRADED : CP_IDLE);
    ws_request_done(r);
    if (r->upgrade)
        MHD_destroy_response(r->upgrade);
    /* A job still queued keeps its connection suspended; the server stops
     * the engine before the daemon, so here every job is done. */
    core_job_free(r->job);
    cJSON_Delete(r->params);
    free(r->body);
    free(r->reply);
    free(r->target);
    free(r);
    *con_cls = NULL;
}


static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    const struct http_thread *th = cls;
    struct srv *s = th->s;
    struct guard *g = s->guard;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        atomic_fetch_add(&s->connections_open, 1);
        struct conn_ctx *c = calloc(1, sizeof(*c));
        if (c) {
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            c->fd = ci ? ci->connect_fd : -1;
            atomic_init(&c->phase, CP_IDLE);
            atomic_init(&c->since_ms, mono_ms());
            if (g && c->fd >= 0) {
                pthread_mutex_lock(&g->lock);
                c->next = g->head.next;
                c->prev = &g->head;
                g->head.next->prev = c;
                g->head.next = c;
                c->listed = true;
                pthread_mutex_unlock(&g->lock);
            }
        }
        *socket_context = c;
    } else {
        atomic_fetch_sub(&s->connections_open, 1);
        /* Before the daemon closes the descriptor: its place is given back. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            acceptor_closed(s->acc, ci->connect_fd);
        struct conn_ctx *c = *socket_context;
        if (c) {
            if (c->listed) {
                pthread_mutex_lock(&g->lock);
                c->prev->next = c->next;
                c->next->prev = c->prev;
                pthread_mutex_unlock(&g->lock);
            }
            free(c);
            *socket_context = NULL;
        }
    }
}

static bool ip_allowed(const struct req *r)
{
    if (!r->key.ncidr)
        return true;
    for (int i = 0; i < r->key.ncidr; i++) {
        uint32_t bits = r->key.cidr_bits[i];
        uint32_t mask = bits == 0 ? 0 : ~UINT32_C(0) << (32 - bits);
        if (r->client_ip4 && (r->client_ip4 & mask) == (r->key.cidr_addr[i] & mask))
            return true;
    }
    return false;
}

/* Authentication and the rate limit; false when a reply was set. */
static bool admit(struct req *r)
{
    struct srv *s = r->s;
    struct auth_headers h = {
        .api_key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-key"),
        .api_expires = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-expires"),
        .api_signature = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-signature"),
    };
    struct auth_request ar = {r->method, r->target, r->target_len, r->body, r->body_len};
    ms_t now = clocksrc_now(&s->clk); /* api-expires is checked against engine time */
    bool found = h.api_key && core_key_get(s->core, h.api_key, &r->key);
    struct auth_policy pol = srv_auth_policy(s, now);
    enum auth_verdict v = auth_verify(&pol, &h, found ? r->key.secret : NULL,
                                      found ? strlen(r->key.secret) : 0, &ar, now);
    if (v == AUTH_OK) {
        if (!r->key.enabled) {
            reply_error(r, 403, "HTTPError", "This key is disabled.");
            return false;
        }
        if (!ip_allowed(r)) {
            reply_error(r, 403, "HTTPError", "Access Denied");
            return false;
        }
        r->authed = true;
    } else if (v != AUTH_ANONYMOUS) {
        char msg[256];
        if (auth_format_error(v, now, msg, sizeof(msg)) < 0)
            snprintf(msg, sizeof(msg), "Signature not valid.");
        reply_error(r, auth_http_status(v), "HTTPError", "%s", msg);
        return false;
    }
    return true;
}

/* Rate limit for this request: charged now (reads) or checked now and
 * charged when the write is accepted. cost in tenths. */
bool rate_limit(struct req *r, int32_t cost, bool order_route, bool never_refuse, bool charge)
{
    struct srv *s = r->s;
    if (!s->rl)
        return true;
    struct rl_request q = {r->authed ? r->key.id : r->client_ip, r->authed, order_route,
                           never_refuse, cost};
    ms_t now = wall_ms();
    enum rl_result res = charge ? rl_charge(s->rl, &q, now, &r->rl) : rl_check(s->rl, &q, now, &r->rl);
    r->has_rl = true;
    if (res == RL_REFUSED) {
        char msg[128];
        rl_format_429(r->rl.retry_after_s, msg, sizeof(msg));
        snprintf(r->retry_after, sizeof(r->retry_after), "%" PRId32, r->rl.retry_after_s);
        reply_error(r, 429, RL_429_NAME, "%s", msg);
        return false;
    }
    return true;
}

static enum MHD_Result send_reply(struct req *r)
{
    if (r->upgrade) {
        atomic_fetch_add(&r->s->http_status[1], 1);
        enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_SWITCHING_PROTOCOLS, r->upgrade);
        MHD_destroy_response(r->upgrade);
        r->upgrade = NULL;
        return ret;
    }
    struct srv *s = r->s;
    /* A reply shows nothing the journal does not have yet (a fill a client
     * saw must not vanish in a crash): a read waits here, on its HTTP
     * thread, for the state it read to be durable; at once without a
     * journal or with no write in flight, else at most a group commit. A
     * write's reply has waited for its own commands already. */
    core_wait_durable(s->core, r->seen_seq);
    if (!r->reply && !r->reply_static) {
        r->reply = strdup("{\"error\":{\"message\":\"Server Error\",\"name\":\"HTTPError\"}}");
        r->status = 500;
    }
    struct MHD_Response *resp;
    if (r->reply_static) {
        resp = MHD_create_response_from_buffer(r->reply_static_len, (void *)(uintptr_t)r->reply_static,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(strlen(r->reply), r->reply, MHD_RESPMEM_MUST_FREE);
        r->reply = NULL;
    }
    if (!resp)
        return MHD_NO;
    if (r->cache_control)
        MHD_add_response_header(resp, "Cache-Control", r->cache_control);
    if (r->reply_static) {
        /* The web page: its types as given, and the page's own rules for
         * what it may load (its scripts, styles and this API only: the key
         * pasted in it is for this exchange alone). */
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (r->content_type && strncmp(r->content_type, "text/html", 9) == 0)
            MHD_add_response_header(resp, "Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    }
    MHD_add_response_header(resp, "Content-Type",
                            r->content_type ? r->content_type
                            : r->text_plain ? "text/plain; version=0.0.4"
                                            : "application/json; charset=utf-8");
    MHD_add_response_header(resp, "Keep-Alive", "timeout=60");
    if (r->has_rl) {
        char b[32];
        snprintf(b, sizeof(b), "%" PRId32, r->rl.limit);
        MHD_add_response_header(resp, "x-ratelimit-limit", b);
        snprintf(b, sizeof(b), "%" PRId32, r->rl.remaining);
        MHD_add_response_header(resp, "x-ratelimit-remaining", b);
        snprintf(b, sizeof(b), "%" PRId64, r->rl.reset_s);
        MHD_add_response_header(resp, "x-ratelimit-reset", b);
        if (r->rl.has_1s) {
            snprintf(b, sizeof(b), "%" PRId32, r->rl.remaining_1s);
            MHD_add_response_header(resp, "x-ratelimit-remaining-1s", b);
        }
    }
    if (r->retry_after[0])
        MHD_add_response_header(resp, "Retry-After", r->retry_after);
    /* Errors count against the address, signed or not: the ban is the
     * address's (recorded under a key, a signed client was never banned). */
    if (r->status >= 400 && s->rl && s->cfg.ban_errors > 0 && !r->fault_injected)
        rl_record_error(s->rl, r->client_ip, wall_ms(), NULL, NULL);
    int hundreds = r->status / 100;
    if (hundreds >= 1 && hundreds <= 5)
        atomic_fetch_add(&s->http_status[hundreds], 1);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void client_addr(struct req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, r->client_ip, sizeof(r->client_ip));
        r->client_ip4 = ntohl(in->sin_addr.s_addr);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, r->client_ip, sizeof(r->client_ip));
    }
}

static void dispatch(struct req *r)
{
    struct srv *s = r->s;
    client_addr(r);
    if (faults_pre(r)) /* maintenance; the latency of an /api/v1 reply */
        return;
    if (r->target_too_long) {
        reply_error(r, 414, "HTTPError", "URI Too Long");
        return;
    }
    if (r->body_too_large) {
        reply_error(r, 413, "HTTPError", "Payload Too Large: the body is over %zu bytes",
                    s->cfg.body_max);
        return;
    }
    if (s->rl && s->cfg.ban_errors > 0 && rl_banned(s->rl, r->client_ip, wall_ms(), NULL)) {
        reply_error(r, 403, "HTTPError", "Your IP is temporarily banned for sending too many errors.");
        return;
    }
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    enum prm_err pe = prm_parse(r->query, r->query_len, r->body, r->body_len, ctype, &r->params);
    if (pe != PRM_OK) {
        reply_error(r, 400, "HTTPError", "%s", prm_err_message(pe));
        return;
    }
    size_t plen = r->query ? (size_t)(r->query - 1 - r->path) : strlen(r->path);
    if (plen == 9 && strncmp(r->path, "/realtime", 9) == 0) {
        ws_request(r);
        return;
    }
    bool api = strncmp(r->path, "/api/v1/", 8) == 0;
    if (api && !admit(r))
        return;
    if (faults_post(r)) /* injected 429s and overload */
        return;
    route(r);
    faults_metrics(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)version;
    struct req *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (r->state == RS_HEADERS) {
        /* First call: headers only. Replying here would make libmicrohttpd
         * close the connection after the reply; wait for the next call. */
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->conn = conn;
        r->state = RS_BODY;
        conn_phase(conn, CP_BODY);
        return MHD_YES;
    }
    if (r->state == RS_BODY) {
        if (*upload_data_size) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            if (r->body_too_large || r->body_len + n > r->s->cfg.body_max) {
                r->body_too_large = true;
                return MHD_YES;
            }
            if (r->body_len + n + 1 > r->body_cap) {
                size_t nc = (r->body_len + n + 1) * 2;
                char *p = realloc(r->body, nc);
                if (!p)
                    return MHD_NO;
                r->body = p;
                r->body_cap = nc;
            }
            memcpy(r->body + r->body_len, upload_data, n);
            r->body_len += n;
            r->body[r->body_len] = 0;
            return MHD_YES;
        }
        conn_phase(conn, CP_BUSY);
        dispatch(r);
    }
    if (r->state == RS_WAITING) {
        if (!r->job || atomic_load_explicit(&r->job_state, memory_order_acquire) != JOB_DONE)
            return MHD_YES; /* parked until the job's completion resumes it */
        r->finish(r);
        core_job_free(r->job);
        r->job = NULL;
    }
    if (faults_hold(r))
        return MHD_YES; /* the reply is held; resumed when its delay is over */
    return send_reply(r);
}

/* ---- start and stop ---------------------------------------------------------------------------- */

int srv_create_account(struct srv *s, const sats_t *deposits, uint32_t *account, char *key,
                       char *secret)
{
    uint32_t n = 0;
    for (uint8_t c = 0; c < s->x->currencies_count; c++)
        n += deposits[c] > 0;
    struct core_job *j = core_job_new(J_ACCOUNT, 0, n);
    if (!j)
        return -1;
    n = 0;
    for (uint8_t c = 0; c < s->x->currencies_count; c++)
        if (deposits[c] > 0) {
            j->cmds[n].type = CMD_DEPOSIT;
            j->cmds[n].u.money.currency = c;
            j->cmds[n++].u.money.amount = deposits[c];
        }
    j->key.perms = PERM_ORDER;
    j->key.enabled = true;
    int rc = -1;
    if (new_key(s, &j->key) != 0)
        goto out;
    core_run(s->core, j);
    if (j->status != REJ_NONE)
        goto out;
    for (uint32_t i = 0; i < j->n; i++)
        if (j->rej[i] != REJ_NONE)
            goto out;
    *account = j->account;
    memcpy(key, j->key.id, sizeof(j->key.id));
    memcpy(secret, j->key.secret, sizeof(j->key.secret));
    rc = 0;
out:
    core_job_free(j);
    return rc;
}

struct core *srv_core(struct srv *s)
{
    return s->core;
}

/* The journal on the core: what it holds replayed (every consumer, the
 * WebSocket's feed too, sees each record as when it was first applied),
 * its torn tail cut, a new segment opened; the clock resumed from the last
 * command's time when the source is behind it (stepped, accelerated, a
 * chosen start). */
static int recover(struct srv *s, char *err, size_t errcap)
{
    if (journal_attach(s->journal, s->core) != 0) {
        snprintf(err, errcap, "journal: cannot subscribe to the change stream");
        return -1;
    }
    if (s->has_recovered) {
        if (journal_replay(s->cfg.journal.dir, s->core, 0, s->cfg.journal.last_good, NULL, NULL, &s->recovered,
                           err, errcap) != 0)
            return -1;
        if (s->recovered.commands == 0) {
            snprintf(err, errcap, "journal: command 1 was readable but the replay applied nothing");
            return -1;
        }
        if (s->recovered.last_ts > clocksrc_now(&s->clk)) {
            enum clock_mode mode;
            int64_t speed;
            clocksrc_get(&s->clk, &mode, &speed);
            if (mode == CLOCK_STEPPED)
                clocksrc_set_stepped(&s->clk, s->recovered.last_ts);
            else
                clocksrc_set_mode(&s->clk, mode, speed, s->recovered.last_ts);
        }
    }
    return journal_start(s->journal, s->has_recovered ? &s->recovered : NULL, err, errcap);
}

struct auth_policy srv_auth_policy(struct srv *s, ms_t engine_now)
{
    struct auth_policy p = s->auth;
    ms_t wall = wall_ms();
    if (p.max_future_s > 0 && wall > engine_now)
        p.max_future_s += (wall - engine_now + 999) / 1000;
    return p;
}

const struct journal_report *srv_recovery(const struct srv *s)
{
    return s->has_recovered ? &s->recovered : NULL;
}

int srv_journal_stats(struct srv *s, struct journal_stats *out)
{
    if (!s->journal)
        return -1;
    journal_stats(s->journal, out);
    return 0;
}

struct srv *srv_start(const struct srv_config *cfg, char *err, size_t errcap)
{
    struct srv *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    clocksrc_init(&s->clk, wall_ms, cfg->clock_mode, cfg->clock_speed, cfg->start_ms);
    s->cfg.core.clock = clocksrc_iface(&s->clk);
    pthread_mutex_init(&s->key_lock, NULL);
    pthread_mutex_init(&s->admin_lock, NULL);
    s->key_rng = cfg->seed;
    auth_policy_default(&s->auth);
    s->auth.skew_ms = cfg->skew_ms;
    s->auth.max_future_s = cfg->max_expires_ahead_s;
    struct core_cmd_buf *first = NULL;
    if (cfg->journal.dir[0]) {
        /* The journal first: its lock keeps a second server off the
         * directory, and its command 1 is the exchange's config. */
        s->journal = journal_create(&cfg->journal, err, errcap);
        if (!s->journal)
            goto fail_first;
        first = malloc(sizeof(*first));
        if (!first) {
            snprintf(err, errcap, "out of memory");
            goto fail_first;
        }
        int have = journal_first(cfg->journal.dir, first, err, errcap);
        if (have < 0)
            goto fail_first;
        if (have) {
            s->cfg.core.exch = *first->cmd.config;
            s->cfg.core.limits = *first->cmd.limits;
            s->has_recovered = true;
        }
        free(first);
        first = NULL;
    }
    s->core = core_create(&s->cfg.core, err, errcap);
    if (!s->core)
        goto fail;
    if (cfg->attach && cfg->attach(cfg->attach_ctx, s->core) != 0) {
        snprintf(err, errcap, "cannot subscribe to the change stream");
        goto fail;
    }
    s->x = core_exch_config(s->core);
    core_set_ticking(s->core, cfg->clock_mode != CLOCK_STEPPED);
    if (cfg->rate_limit != RLP_OFF) {
        struct rl_config rc;
        if (cfg->rate_limit == RLP_2021)
            rl_config_2021(&rc);
        else
            rl_config_default(&rc);
        rc.ban_errors = cfg->ban_errors > 0 ? cfg->ban_errors : 0;
        rc.hash_seed = (uint64_t)wall_ms() * UINT64_C(0x9E3779B97F4A7C15);
        s->rl = rl_create(&rc, NULL);
        if (!s->rl) {
            snprintf(err, errcap, "rate limit config");
            goto fail;
        }
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        snprintf(err, errcap, "listen address %s is not an IPv4 address", cfg->host);
        goto fail;
    }
    if (cfg->web_dir[0]) {
        s->web = web_load(cfg->web_dir, s->web_note, sizeof(s->web_note));
        if (!s->web && cfg->web_required) {
            snprintf(err, errcap, "the web page: %s", s->web_note);
            goto fail;
        }
    }
    if (cfg->websocket) {
        s->ws = ws_create(s, &cfg->ws);
        if (!s->ws) {
            snprintf(err, errcap, "cannot start the WebSocket");
            goto fail;
        }
    }
    if (s->journal && recover(s, err, errcap) != 0)
        goto fail;
    if (core_start(s->core) != 0) {
        snprintf(err, errcap, "cannot start the engine thread");
        goto fail;
    }
    s->faults = faults_create(cfg->seed, err, errcap);
    if (!s->faults)
        goto fail;
    /* Before the daemon: its threads call warm_touch(s->warm) at once. */
    s->warm = warm_start(cfg->warm_ns);
    s->guard = guard_start(cfg);
    if (!s->guard) {
        snprintf(err, errcap, "cannot start the connection guard");
        goto fail;
    }
    /* The listening socket is the acceptor's; each HTTP thread is a daemon
     * of its own, given connections by count (accept.h). The caps are the
     * acceptor's; each daemon's are only a bound. */
    s->nd = cfg->http_threads ? cfg->http_threads : 1;
    s->acc = acceptor_open(&addr, s->nd, cfg->http_max_per_ip, 4000, err, errcap);
    if (!s->acc)
        goto fail;
    for (unsigned k = 0; k < s->nd; k++) {
        s->th[k] = (struct http_thread){s, k};
        s->d[k] = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                MHD_ALLOW_UPGRADE | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
            0, NULL, NULL, on_request, s, MHD_OPTION_URI_LOG_CALLBACK, uri_log, s, MHD_OPTION_NOTIFY_COMPLETED,
            completed, s, MHD_OPTION_NOTIFY_CONNECTION, notify_conn, &s->th[k], MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)(cfg->http_idle_s ? cfg->http_idle_s : 90), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)(cfg->url_max + (64u << 10)), MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000, MHD_OPTION_END);
        if (!s->d[k]) {
            snprintf(err, errcap, "cannot start HTTP thread %u", k);
            goto fail;
        }
    }
    if (acceptor_run(s->acc, s->d) != 0) {
        snprintf(err, errcap, "cannot start the acceptor thread");
        goto fail;
    }
    s->port = acceptor_port(s->acc);
    return s;
fail_first:
    free(first);
fail:
    acceptor_stop(s->acc); /* not running: nothing was handed out */
    for (unsigned k = 0; k < s->nd; k++)
        if (s->d[k])
            MHD_stop_daemon(s->d[k]);
    acceptor_free(s->acc);
    journal_close(s->journal);
    guard_free(s->guard); /* no daemon left: no connection holds a context */
    faults_destroy(s->faults);
    warm_stop(s->warm);
    market_stop(s->core, s->market);
    ws_stop(s->ws);
    core_destroy(s->core);
    ws_destroy(s->ws);
    journal_destroy(s->journal);
    rl_destroy(s->rl);
    web_free(s->web);
    clocksrc_destroy(&s->clk);
    pthread_mutex_destroy(&s->key_lock);
    pthread_mutex_destroy(&s->admin_lock);
    free(s);
    return NULL;
}

uint16_t srv_port(const struct srv *s)
{
    return s->port;
}

void srv_stop(struct srv *s)
{
    if (!s)
        return;
    /* The write queue first: the engine thread finishes every queued job
     * (each completion resumes its connection) and exits; a write arriving
     * meanwhile is refused with a 503. Then the daemon stops its threads
     * and closes every connection, with no job in flight. No
     * MHD_quiesce_daemon: it raced with the daemon's polling thread
     * ("Failed to remove listen FD from epoll set") and aborted a run. */
    core_shutdown(s->core);
    journal_close(s->journal); /* the last replies released: every write on disk */
    faults_stop(s->faults); /* held replies resumed at once; none held after */
    ws_stop(s->ws);         /* every WebSocket closed before the daemon goes */
    acceptor_stop(s->acc);  /* no new connection; the daemons close theirs */
    for (unsigned k = 0; k < s->nd; k++)
        MHD_stop_daemon(s->d[k]);
    acceptor_free(s->acc);
    guard_free(s->guard); /* after the daemons: every connection's context is gone */
    faults_destroy(s->faults);
    warm_stop(s->warm);
    market_stop(s->core, s->market);
    core_destroy(s->core);
    ws_destroy(s->ws);      /* after the core: no record is delivered any more */
    journal_destroy(s->journal);
    rl_destroy(s->rl);
    web_free(s->web); /* after the daemon: no reply points into it */
    clocksrc_destroy(&s->clk);
    pthread_mutex_destroy(&s->key_lock);
    pthread_mutex_destroy(&s->admin_lock);
    free(s);
}

const char *srv_web(const struct srv *s, uint32_t *files)
{
    *files = web_count(s->web);
    return s->web ? NULL : s->web_note[0] ? s->web_note : "no web directory given";
}
