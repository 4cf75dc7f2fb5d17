/*
 * server.c - libmicrohttpd glue, the engine thread, keys and the request
 * pipeline: target and body in, authenticate, rate-limit, route, reply.
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

#include "api/timefmt.h"

static ms_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---------------------------------------------------------- */

/* The last Friday of the next quarter month (March, June, September,
 * December) after now, 12:00 UTC: BitMEX's quarterly expiry. */
static ms_t next_quarter_expiry(ms_t now)
{
    int y, m, d;
    tf_civil_from_days(now / MS_PER_DAY, &y, &m, &d);
    for (int k = 0; k < 8; k++) {
        int qm = ((m - 1) / 3 + 1) * 3 + 3 * k; /* 3, 6, 9, 12, ... */
        int qy = y + (qm - 1) / 12;
        qm = (qm - 1) % 12 + 1;
        int ny = qm == 12 ? qy + 1 : qy, nm = qm == 12 ? 1 : qm + 1;
        int64_t day = tf_days_from_civil(ny, nm, 1) - 1; /* last day of qm */
        int64_t wd = (day + 4) % 7;                      /* 1970-01-01 was a Thursday: 4 */
        day -= (wd - 5 + 7) % 7;                         /* back to Friday (5) */
        ms_t t = day * MS_PER_DAY + 12 * 3600000;
        if (t > now + MS_PER_DAY)
            return t;
    }
    return now + 90 * MS_PER_DAY;
}

void srv_config_default(struct srv_config *c, ms_t now_ms)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = 8080;
    c->rate_limit = RLP_DEFAULT;
    ls_config_default(&c->ls);
    c->http_threads = 2;
    c->body_max = 1u << 20;
    c->url_max = 16u << 10;
    c->skew_ms = AUTH_DEFAULT_SKEW_MS;
    exch_config_default(&c->exch, next_quarter_expiry(now_ms ? now_ms : wall_ms()));
    c->index_px[0] = 60000 * PX_SCALE;
    c->index_px[1] = 3000 * PX_SCALE;
}

/* ---- keys --------------------------------------------------------------------- */

uint32_t accounts_alloc(struct srv *s)
{
    pthread_mutex_lock(&s->keys_lock);
    uint32_t a = s->next_account < s->cfg.exch.engine.accounts_max ? s->next_account++ : 0;
    pthread_mutex_unlock(&s->keys_lock);
    return a;
}

bool account_exists(struct srv *s, uint32_t account)
{
    pthread_mutex_lock(&s->keys_lock);
    bool ok = account > 0 && account < s->next_account;
    pthread_mutex_unlock(&s->keys_lock);
    return ok;
}

int keys_add(struct srv *s, uint32_t account, uint32_t perms, struct key_rec *out)
{
    struct key_rec k;
    memset(&k, 0, sizeof(k));
    if (auth_generate_key(k.id, k.secret) != AUTH_E_OK)
        return -1;
    k.account = account;
    k.perms = perms;
    k.enabled = true;
    k.created_ms = wall_ms();
    pthread_mutex_lock(&s->keys_lock);
    if (s->nkeys == s->cap_keys) {
        uint32_t nc = s->cap_keys ? s->cap_keys * 2 : 16;
        struct key_rec *p = realloc(s->keys, nc * sizeof(*p));
        if (!p) {
            pthread_mutex_unlock(&s->keys_lock);
            return -1;
        }
        s->keys = p;
        s->cap_keys = nc;
    }
    s->keys[s->nkeys++] = k;
    pthread_mutex_unlock(&s->keys_lock);
    *out = k;
    return 0;
}

static bool keys_get(struct srv *s, const char *id, struct key_rec *out)
{
    bool found = false;
    pthread_mutex_lock(&s->keys_lock);
    for (uint32_t i = 0; i < s->nkeys; i++)
        if (strcmp(s->keys[i].id, id) == 0) {
            *out = s->keys[i];
            found = true;
            break;
        }
    pthread_mutex_unlock(&s->keys_lock);
    return found;
}

int keys_list(struct srv *s, uint32_t account, struct key_rec *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&s->keys_lock);
    for (uint32_t i = 0; i < s->nkeys && n < max; i++)
        if (s->keys[i].account == account)
            out[n++] = s->keys[i];
    pthread_mutex_unlock(&s->keys_lock);
    return n;
}

/* ---- replies ---------------------------------------------------------------------- */

void reply_json(struct req *r, int status, cJSON *body)
{
    free(r->reply);
    r->reply = body ? cJSON_PrintUnformatted(body) : NULL;
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
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "name", name);
    reply_json(r, status, o);
}

/* ---- jobs ---------------------------------------------------------------------------- */

struct job *job_new(enum job_kind kind, uint32_t account, uint32_t n)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->account = account;
    j->n = n;
    if (n) {
        j->cmds = calloc(n, sizeof(*j->cmds));
        j->texts = calloc(n, sizeof(*j->texts));
        j->target = calloc(n, sizeof(*j->target));
        j->rej = calloc(n, sizeof(*j->rej));
        j->rows = calloc(n, sizeof(*j->rows));
        if (!j->cmds || !j->texts || !j->target || !j->rej || !j->rows) {
            job_free(j);
            return NULL;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        j->cmds[i].account = account;
    return j;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->texts)
        for (uint32_t i = 0; i < j->n; i++)
            free(j->texts[i]);
    free(j->cmds);
    free(j->texts);
    free(j->target);
    free(j->rej);
    free(j->rows);
    free(j);
}

static const char overloaded[] = "The system is currently overloaded. Please try again later.";

void submit_job(struct req *r, struct job *j, enum ls_kind kind, bool exempt,
                void (*finish)(struct req *r))
{
    struct srv *s = r->s;
    j->conn = r->conn;
    r->job = j;
    r->finish = finish;
    r->state = RS_WAITING;
    /* Suspend first: the engine thread may finish the job and resume the
     * connection before this thread returns from submitting it. */
    MHD_suspend_connection(r->conn);
    enum ls_result res = ls_submit(s->q, j, kind, exempt, ls_now_ns());
    if (res == LS_ACCEPTED) {
        /* Checked before, charged now: a shed write costs no tokens. */
        if (r->charge_tenths > 0)
            rate_limit(r, r->charge_tenths, true, true, true);
        return;
    }
    r->job = NULL;
    job_free(j);
    if (res == LS_SHED)
        reply_error(r, 503, "HTTPError", "%s", overloaded);
    else
        reply_error(r, 503, "HTTPError", "Service unavailable");
    MHD_resume_connection(r->conn);
}

/* ---- the engine thread -------------------------------------------------------------------- */

static void sink(void *ctx, const struct event *ev)
{
    struct srv *s = ctx;
    store_event(s->st, s->x, ev);
}

/* The demonstration delay: sleep most of it (the core stays free for the
 * HTTP threads), spin the last 100 us for precision. */
static void delay_ns(int64_t ns)
{
    int64_t until = ls_now_ns() + ns;
    if (ns > 200000) {
        struct timespec ts = {(time_t)((ns - 100000) / 1000000000), (long)((ns - 100000) % 1000000000)};
        nanosleep(&ts, NULL);
    }
    while (ls_now_ns() < until)
        ;
}

/* Applies one command now (state lock held for writing). */
static enum reject apply(struct srv *s, struct cmd *c, struct store_capture *cap)
{
    ms_t now = wall_ms();
    if (now > s->now)
        s->now = now;
    c->seq = ++s->seq;
    c->ts = s->now;
    store_set_capture(s->st, cap);
    enum reject rej = exch_apply(s->x, c);
    store_set_capture(s->st, NULL);
    atomic_fetch_add(&s->commands, 1);
    return rej;
}

static void run_job(struct srv *s, struct job *j)
{
    struct store_capture cap;
    pthread_rwlock_wrlock(&s->lock);
    for (uint32_t i = 0; i < j->n; i++) {
        memset(&cap, 0, sizeof(cap));
        cap.account = j->account;
        cap.text = j->texts[i] ? store_intern(s->st, j->texts[i]) : 0;
        struct cmd *c = &j->cmds[i];
        j->rej[i] = apply(s, c, &cap);
        uint64_t show = c->type == CMD_NEW_ORDER ? cap.new_order_id : j->target[i];
        const struct ord_rec *o = store_order(s->st, show);
        if (o && j->kind == J_ORDERS)
            j->rows[i] = *o;
        if (j->kind == J_CANCEL_ALL && cap.ncanceled) {
            struct ord_rec *rows = malloc(cap.ncanceled * sizeof(*rows));
            if (rows) {
                for (uint32_t k = 0; k < cap.ncanceled; k++)
                    rows[k] = *store_order(s->st, cap.canceled[k]);
                free(j->rows);
                j->rows = rows;
                j->nrows = cap.ncanceled;
            }
        }
        free(cap.canceled);
        if (j->kind == J_POSITION)
            exch_position(s->x, j->account, c->inst, &j->pos);
        if (j->kind == J_MONEY && (c->type == CMD_DEPOSIT || c->type == CMD_WITHDRAW))
            exch_margin(s->x, c->account, c->u.money.currency, &j->margin);
    }
    j->ts = s->now;
    pthread_rwlock_unlock(&s->lock);
}

static void *engine_main(void *arg)
{
    struct srv *s = arg;
    /* One write at a time: a write taken out of the queue no longer counts
     * toward its depth, so taking a batch would let another full queue in
     * behind it and double the worst wait the latency cap promises. */
    struct ls_entry batch[1];
    int64_t last_cmd_ns = ls_now_ns();
    for (;;) {
        size_t n = 0;
        enum ls_take_result t = ls_take(s->q, batch, 1, (int64_t)CLOCK_TICK_MS * 1000000, &n);
        if (t == LS_TAKE_CLOSED)
            break;
        int64_t now = ls_now_ns();
        if (t == LS_TAKE_TIMEOUT || now - last_cmd_ns > (int64_t)CLOCK_TICK_MS * 1000000) {
            struct cmd c;
            memset(&c, 0, sizeof(c));
            c.type = CMD_CLOCK;
            pthread_rwlock_wrlock(&s->lock);
            apply(s, &c, NULL);
            pthread_rwlock_unlock(&s->lock);
            last_cmd_ns = now;
        }
        for (size_t i = 0; i < n; i++) {
            struct job *j = batch[i].item;
            int64_t t0 = ls_now_ns();
            run_job(s, j);
            if (s->cfg.engine_delay_ns > 0)
                delay_ns(s->cfg.engine_delay_ns);
            int64_t t1 = ls_now_ns();
            ls_done(s->q, 1, t1 - t0);
            last_cmd_ns = t1;
            struct MHD_Connection *conn = j->conn;
            atomic_store_explicit(&j->done, 1, memory_order_release);
            MHD_resume_connection(conn);
        }
    }
    return NULL;
}

/* ---- the HTTP pipeline ------------------------------------------------------------------------ */

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct srv *s = cls;
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
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req *r = *con_cls;
    if (!r)
        return;
    /* A job still queued keeps its connection suspended; the server stops
     * the engine before the daemon, so here every job is done. */
    job_free(r->job);
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
    (void)conn;
    (void)socket_context;
    struct srv *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        atomic_fetch_add(&s->connections_open, 1);
    } else {
        atomic_fetch_sub(&s->connections_open, 1);
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
    ms_t now = wall_ms();
    bool found = h.api_key && keys_get(s, h.api_key, &r->key);
    enum auth_verdict v = auth_verify(&s->auth, &h, found ? r->key.secret : NULL,
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
    struct srv *s = r->s;
    if (!r->reply) {
        r->reply = strdup("{\"error\":{\"message\":\"Server Error\",\"name\":\"HTTPError\"}}");
        r->status = 500;
    }
    size_t len = strlen(r->reply);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, r->reply, MHD_RESPMEM_MUST_FREE);
    r->reply = NULL;
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->text_plain ? "text/plain; version=0.0.4"
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
    if (r->status >= 400 && s->rl && s->cfg.ban_errors > 0)
        rl_record_error(s->rl, r->authed ? r->key.id : r->client_ip, wall_ms(), NULL, NULL);
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
    bool api = strncmp(r->path, "/api/v1/", 8) == 0;
    if (api && !admit(r))
        return;
    route(r);
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
        dispatch(r);
        if (r->state == RS_WAITING)
            return MHD_YES; /* suspended until the engine thread is done */
    }
    if (r->state == RS_WAITING) {
        if (!r->job || !atomic_load_explicit(&r->job->done, memory_order_acquire))
            return MHD_YES;
        r->finish(r);
        job_free(r->job);
        r->job = NULL;
    }
    return send_reply(r);
}

/* ---- start and stop ---------------------------------------------------------------------------- */

int srv_create_account(struct srv *s, const sats_t *deposits, uint32_t *account, char *key,
                       char *secret)
{
    uint32_t a = accounts_alloc(s);
    if (!a)
        return -1;
    struct key_rec k;
    if (keys_add(s, a, PERM_ORDER, &k) != 0)
        return -1;
    pthread_rwlock_wrlock(&s->lock);
    for (uint8_t c = 0; c < s->cfg.exch.currencies_count; c++) {
        if (deposits[c] <= 0)
            continue;
        struct cmd cmd;
        memset(&cmd, 0, sizeof(cmd));
        cmd.type = CMD_DEPOSIT;
        cmd.account = a;
        cmd.u.money.currency = c;
        cmd.u.money.amount = deposits[c];
        apply(s, &cmd, NULL);
    }
    pthread_rwlock_unlock(&s->lock);
    *account = a;
    memcpy(key, k.id, sizeof(k.id));
    memcpy(secret, k.secret, sizeof(k.secret));
    return 0;
}

static void audit_fail(void *ctx, const struct cmd *c, const struct exch_audit *a)
{
    (void)ctx;
    fprintf(stderr,
            "perpsim: MONEY AUDIT FAILED after command seq %" PRIu64 " type %u account %u: %s\n"
            "perpsim: stopping the engine.\n",
            c->seq, c->type, c->account, a->report);
    fflush(stderr);
    abort();
}

struct srv *srv_start(const struct srv_config *cfg, char *err, size_t errcap)
{
    struct srv *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->next_account = 1;
    auth_policy_default(&s->auth);
    s->auth.skew_ms = cfg->skew_ms;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers first: a stream of reads must not starve the engine. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&s->keys_lock, NULL);

    const char *e = NULL;
    s->x = exch_create(&s->cfg.exch, sink, s, &e);
    if (!s->x) {
        snprintf(err, errcap, "exchange config: %s", e ? e : "?");
        goto fail;
    }
    exch_on_audit_fail(s->x, audit_fail, s);
    s->st = store_create(exch_config(s->x), s->cfg.exch.engine.accounts_max);
    if (!s->st) {
        snprintf(err, errcap, "out of memory for the read model");
        goto fail;
    }
    for (uint8_t c = 0; c < s->cfg.exch.currencies_count; c++)
        store_insurance_open(s->st, wall_ms(), c, exch_insurance(s->x, c));
    if (cfg->rate_limit != RLP_OFF) {
        struct rl_config rc;
        if (cfg->rate_limit == RLP_2021)
            rl_config_2021(&rc);
        else
            rl_config_default(&rc);
        if (cfg->ban_errors > 0)
            rc.ban_errors = cfg->ban_errors;
        else
            rc.ban_errors = 0;
        rc.hash_seed = (uint64_t)wall_ms() * UINT64_C(0x9E3779B97F4A7C15);
        s->rl = rl_create(&rc, NULL);
        if (!s->rl) {
            snprintf(err, errcap, "rate limit config");
            goto fail;
        }
    }
    if (ls_create(&s->cfg.ls, &s->q) != LS_OK) {
        snprintf(err, errcap, "write queue config");
        goto fail;
    }
    /* Initial index prices: marks exist before the first order. */
    for (uint16_t i = 0; i < s->cfg.exch.indices_count; i++) {
        if (cfg->index_px[i] <= 0)
            continue;
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.type = CMD_SET_INDEX;
        c.u.set_index.index = i;
        c.u.set_index.price = cfg->index_px[i];
        apply(s, &c, NULL);
    }
    if (pthread_create(&s->engine, NULL, engine_main, s) != 0) {
        snprintf(err, errcap, "cannot start the engine thread");
        goto fail;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        snprintf(err, errcap, "listen address %s is not an IPv4 address", cfg->host);
        goto fail_engine;
    }
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_TURBO,
        cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, notify_conn, s, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->http_threads ? cfg->http_threads : 1), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(cfg->url_max + (64u << 10)),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errcap, "cannot listen on %s:%u", cfg->host, cfg->port);
        goto fail_engine;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
fail_engine:
    ls_shutdown(s->q);
    pthread_join(s->engine, NULL);
fail:
    if (s->q)
        ls_destroy(s->q);
    rl_destroy(s->rl);
    store_destroy(s->st);
    exch_destroy(s->x);
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
    /* Engine first: it finishes every queued job and resumes its
     * connection, so the daemon stops with no job in flight. */
    MHD_quiesce_daemon(s->d);
    ls_shutdown(s->q);
    pthread_join(s->engine, NULL);
    MHD_stop_daemon(s->d);
    ls_destroy(s->q);
    rl_destroy(s->rl);
    store_destroy(s->st);
    exch_destroy(s->x);
    free(s->keys);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->keys_lock);
    free(s);
}
