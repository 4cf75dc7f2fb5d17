/*
 * server.c - libmicrohttpd glue, the engine thread, keys and the request
 * pipeline: target and body in, authenticate, rate-limit, route, reply.
 */
#define _GNU_SOURCE
#include "api/srv_int.h"

#include <arpa/inet.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
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
    c->warm_ns = SRV_DEFAULT_WARM_NS;
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

/* The JSON text of a reply, byte for byte what cJSON_PrintUnformatted()
 * (cJSON 1.7.15) gives, about three times faster: one buffer sized from the
 * start instead of doubling from 256 bytes, no strlen() after every value,
 * and numbers without sprintf + sscanf in the common cases (a whole number
 * within int, a decimal of at most 15 significant digits such as a price or
 * a notional). Checked builds compare every reply with cJSON's own text. */
struct jbuf {
    char *p;
    size_t len, cap;
    bool bad; /* out of memory or a value cJSON cannot print */
};

static bool jb_room(struct jbuf *b, size_t n)
{
    if (b->bad)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t nc = b->cap * 2;
    while (nc < b->len + n + 1)
        nc *= 2;
    char *q = realloc(b->p, nc);
    if (!q) {
        b->bad = true;
        return false;
    }
    b->p = q;
    b->cap = nc;
    return true;
}

static void jb_put(struct jbuf *b, const char *t, size_t n)
{
    if (jb_room(b, n)) {
        memcpy(b->p + b->len, t, n);
        b->len += n;
    }
}

static void jb_char(struct jbuf *b, char c)
{
    if (jb_room(b, 1))
        b->p[b->len++] = c;
}

/* cJSON's print_string_ptr: " \\ and the control characters escaped, the
 * rest (UTF-8 included) as is; NULL is "". */
static void jb_string(struct jbuf *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)u);
    if (!jb_room(b, n * 6 + 2))
        return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c > 31 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '\\': *o++ = '\\'; break;
        case '"': *o++ = '"'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* Digits of v (< 10^19) into the end of buf; returns the first. */
static char *jb_digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* m / 10^k as a plain decimal: 6000050 and 2 give "60000.5" (trailing zeros
 * of the fraction and a bare point dropped, as %g does). */
static size_t jb_fixed(char *out, bool neg, uint64_t m, int k)
{
    char tmp[32];
    char *d = jb_digits(tmp + sizeof(tmp), m);
    size_t nd = (size_t)(tmp + sizeof(tmp) - d);
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if ((int)nd <= k) { /* 0.000123 */
        out[o++] = '0';
        out[o++] = '.';
        for (int z = 0; z < k - (int)nd; z++)
            out[o++] = '0';
        memcpy(out + o, d, nd);
        o += nd;
    } else {
        memcpy(out + o, d, nd - (size_t)k);
        o += nd - (size_t)k;
        if (k > 0) {
            out[o++] = '.';
            memcpy(out + o, d + nd - k, (size_t)k);
            o += (size_t)k;
        }
    }
    if (k > 0) {
        while (out[o - 1] == '0')
            o--;
        if (out[o - 1] == '.')
            o--;
    }
    return o;
}

/* cJSON's print_number. A whole number equal to valueint prints as %d. The
 * rest is %1.15g when that reads back within DBL_EPSILON, else %1.17g. The
 * fast path finds the shortest m / 10^k (k <= 15, m < 10^15) that IS d:
 * a decimal of at most 15 significant digits that converts to d is exactly
 * what %.15g prints for d (15 digits always round-trip through a double, and
 * d lies closer to it than to any other 15-digit decimal), and it reads back
 * exactly, so cJSON would keep it. Values outside 1e-4 .. 1e15 (%g's
 * exponent form) and the rest take cJSON's own route. */
static void jb_number(struct jbuf *b, const cJSON *item)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double d = item->valuedouble;
    char t[64];
    size_t n;
    if (isnan(d) || isinf(d)) {
        jb_put(b, "null", 4);
        return;
    }
    if (d == (double)item->valueint) {
        int64_t v = item->valueint;
        char *s = jb_digits(t + sizeof(t), (uint64_t)(v < 0 ? -v : v));
        if (v < 0)
            *--s = '-';
        jb_put(b, s, (size_t)(t + sizeof(t) - s));
        return;
    }
    double a = fabs(d);
    if (a >= 1e-4 && a < 1e15) {
        for (int k = 0; k <= 15; k++) {
            double m = nearbyint(a * p10[k]);
            if (m >= 1e15)
                break;
            if (m / p10[k] == a) {
                n = jb_fixed(t, d < 0, (uint64_t)m, k);
                jb_put(b, t, n);
                return;
            }
        }
    }
    int len = snprintf(t, sizeof(t), "%1.15g", d);
    double back = strtod(t, NULL);
    double mx = fabs(back) > a ? fabs(back) : a;
    if (!(fabs(back - d) <= mx * DBL_EPSILON))
        len = snprintf(t, sizeof(t), "%1.17g", d);
    if (len < 0 || len >= (int)sizeof(t)) {
        b->bad = true;
        return;
    }
    char point = localeconv()->decimal_point[0]; /* as cJSON: '.' whatever the locale */
    for (int i = 0; i < len; i++)
        if (t[i] == point)
            t[i] = '.';
    jb_put(b, t, (size_t)len);
}

static void jb_value(struct jbuf *b, const cJSON *item)
{
    switch (item->type & 0xFF) {
    case cJSON_NULL: jb_put(b, "null", 4); return;
    case cJSON_False: jb_put(b, "false", 5); return;
    case cJSON_True: jb_put(b, "true", 4); return;
    case cJSON_Number: jb_number(b, item); return;
    case cJSON_String: jb_string(b, item->valuestring); return;
    case cJSON_Raw:
        if (!item->valuestring)
            b->bad = true;
        else
            jb_put(b, item->valuestring, strlen(item->valuestring));
        return;
    case cJSON_Array:
        jb_char(b, '[');
        for (const cJSON *c = item->child; c && !b->bad; c = c->next) {
            jb_value(b, c);
            if (c->next)
                jb_char(b, ',');
        }
        jb_char(b, ']');
        return;
    case cJSON_Object:
        jb_char(b, '{');
        for (const cJSON *c = item->child; c && !b->bad; c = c->next) {
            jb_string(b, c->string);
            jb_char(b, ':');
            jb_value(b, c);
            if (c->next)
                jb_char(b, ',');
        }
        jb_char(b, '}');
        return;
    default:
        b->bad = true;
    }
}

/* NULL where cJSON_PrintUnformatted() gives NULL. */
static char *json_print(const cJSON *body)
{
    /* 1 KiB holds an order row (about 800 bytes) and stays in malloc's
     * per-thread cache; bigger replies grow it. */
    struct jbuf b = {malloc(1024), 0, 1024, false};
    if (!b.p)
        return NULL;
    jb_value(&b, body);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = 0;
#ifdef PERPSIM_CHECKS
    char *want = cJSON_PrintUnformatted(body);
    if (!want || strcmp(want, b.p) != 0) {
        fprintf(stderr, "perpsim: json_print differs from cJSON:\n  cJSON: %s\n  ours:  %s\n",
                want ? want : "(null)", b.p);
        abort();
    }
    free(want);
#endif
    return b.p;
}

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
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "name", name);
    reply_json(r, status, o);
}

/* ---- jobs ---------------------------------------------------------------------------- */

/* One allocation for the job and its per-command arrays (a new order is
 * n = 1; six callocs per order showed in the profile). run_job replaces rows
 * by a separate array only for a cancel-all; job_free frees that one. */
static size_t align_up(size_t n)
{
    return (n + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
}

struct job *job_new(enum job_kind kind, uint32_t account, uint32_t n)
{
    size_t at_cmds = align_up(sizeof(struct job));
    size_t at_rows = at_cmds + align_up((size_t)n * sizeof(struct cmd));
    size_t at_texts = at_rows + align_up((size_t)n * sizeof(struct ord_rec));
    size_t at_target = at_texts + align_up((size_t)n * sizeof(char *));
    size_t at_rej = at_target + align_up((size_t)n * sizeof(uint64_t));
    size_t size = at_rej + align_up((size_t)n * sizeof(enum reject));
    char *block = calloc(1, size);
    if (!block)
        return NULL;
    struct job *j = (struct job *)(void *)block;
    j->kind = kind;
    j->account = account;
    j->n = n;
    if (n) {
        j->cmds = (struct cmd *)(void *)(block + at_cmds);
        j->rows = (struct ord_rec *)(void *)(block + at_rows);
        j->texts = (char **)(void *)(block + at_texts);
        j->target = (uint64_t *)(void *)(block + at_target);
        j->rej = (enum reject *)(void *)(block + at_rej);
    }
    j->rows_inline = j->rows;
    for (uint32_t i = 0; i < n; i++)
        j->cmds[i].account = account;
    return j;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    for (uint32_t i = 0; i < j->n; i++)
        free(j->texts[i]);
    if (j->rows != j->rows_inline)
        free(j->rows);
    free(j);
}

static const char overloaded[] = "The system is currently overloaded. Please try again later.";

static void run_job(struct srv *s, struct job *j);

/* The job is done: its HTTP thread may reply and free it once JOB_DONE is
 * visible, so the connection is read first and nothing is touched after;
 * a parked connection is resumed. */
static void job_complete(struct job *j)
{
    struct MHD_Connection *conn = j->conn;
    if (atomic_exchange_explicit(&j->state, JOB_DONE, memory_order_acq_rel) == JOB_PARKED)
        MHD_resume_connection(conn);
}

/* Writes this HTTP thread serves after its own, from the queue, before it
 * hands the rest to the engine thread: its own reply waits for them. */
#define SERVE_MORE_MAX 8u

/* Loadshed rule 5a: the queue handed job j back; serve it here, then the
 * single writes queued behind it meanwhile, up to SERVE_MORE_MAX. */
static void serve_here(struct srv *s, struct job *j)
{
    unsigned more = 0;
    struct ls_entry next;
    for (;;) {
        int64_t t0 = ls_now_ns();
        run_job(s, j);
        int64_t t1 = ls_now_ns();
        job_complete(j);
        if (!ls_run_done(s->q, t1 - t0, more < SERVE_MORE_MAX, &next))
            return;
        j = next.item;
        more++;
    }
}

void submit_job(struct req *r, struct job *j, enum ls_kind kind, bool exempt,
                void (*finish)(struct req *r))
{
    struct srv *s = r->s;
    j->conn = r->conn;
    atomic_init(&j->state, JOB_QUEUED);
    /* On an idle engine a single write runs here, on its HTTP thread, in
     * its place in the one sequence (loadshed rule 5a): no wake-up of the
     * engine thread and none back. Cancel-all and multi-order bulk jobs,
     * whose size has no small bound, and the demonstration delay stay on
     * the engine thread so an HTTP thread never stalls its other
     * connections for long. */
    bool run_now = false;
    int64_t t0 = ls_now_ns();
    bool here = !s->cfg.engine_thread_only && s->cfg.engine_delay_ns == 0 && j->n == 1 &&
                j->kind != J_CANCEL_ALL;
    enum ls_result res;
    if (here)
        res = ls_submit_run(s->q, j, kind, exempt, t0, &run_now);
    else
        res = ls_submit(s->q, j, kind, exempt, t0);
    if (res != LS_ACCEPTED) {
        /* Refused before anything was suspended: the 503 goes out in this
         * handler call (never the first one, so keep-alive holds), and a
         * storm of them costs no suspend, resume or wake-up. */
        job_free(j);
        if (res == LS_SHED)
            reply_error(r, 503, "HTTPError", "%s", overloaded);
        else
            reply_error(r, 503, "HTTPError", "Service unavailable");
        return;
    }
    r->job = j;
    r->finish = finish;
    r->state = RS_WAITING;
    if (run_now)
        serve_here(s, j);
    /* Checked before, charged now: a shed write costs no tokens. */
    if (r->charge_tenths > 0)
        rate_limit(r, r->charge_tenths, true, true, true);
    /* Park the connection unless the engine thread already finished the
     * job (it may run the moment it is queued); the handler then replies at
     * once. If the job finishes between this check and the exchange below,
     * the engine thread saw JOB_QUEUED and left the resume to us. */
    if (atomic_load_explicit(&j->state, memory_order_acquire) == JOB_DONE)
        return;
    MHD_suspend_connection(r->conn);
    int expect = JOB_QUEUED;
    if (!atomic_compare_exchange_strong_explicit(&j->state, &expect, JOB_PARKED,
                                                 memory_order_acq_rel, memory_order_acquire))
        MHD_resume_connection(r->conn);
}

static bool job_done(struct job *j)
{
    return atomic_load_explicit(&j->state, memory_order_acquire) == JOB_DONE;
}

/* ---- the engine thread -------------------------------------------------------------------- */

static void sink(void *ctx, const struct event *ev)
{
    struct srv *s = ctx;
    store_event(s->st, s->x, ev);
}

/* The demonstration delay: waits until the queue's clock reads `until`,
 * sleeping all but the last 0.1 ms (the core stays free for the HTTP
 * threads), then spinning, so the service time is the one asked for. */
static void delay_until(int64_t until)
{
    int64_t ns = until - ls_now_ns();
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
                if (j->rows != j->rows_inline)
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
            /* --engine-delay-us: every write takes at least that long, its
             * own work included, so the service time is known and steady
             * (a checked build's invariant walk grows with the state). */
            if (s->cfg.engine_delay_ns > 0)
                delay_until(t0 + s->cfg.engine_delay_ns);
            int64_t t1 = ls_now_ns();
            ls_done(s->q, 1, t1 - t0);
            last_cmd_ns = t1;
            job_complete(j);
        }
    }
    return NULL;
}

/* ---- the HTTP pipeline ------------------------------------------------------------------------ */

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct srv *s = cls;
    warm_touch(s->warm);
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
    }
    if (r->state == RS_WAITING) {
        if (!r->job || !job_done(r->job))
            return MHD_YES; /* parked until the engine thread resumes it */
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
    /* Before the daemon: its threads call warm_touch(s->warm) at once. */
    s->warm = warm_start(cfg->warm_ns);
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
    warm_stop(s->warm);
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
    warm_stop(s->warm);
    ls_destroy(s->q);
    rl_destroy(s->rl);
    store_destroy(s->st);
    exch_destroy(s->x);
    free(s->keys);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->keys_lock);
    free(s);
}
