/*
 * faults.c - fault injection on /api/v1: the settings, the admin route that
 * changes them, the decision per request and the timer that delays replies.
 * The rules are in faults.h.
 */
#define _GNU_SOURCE
#include "api/faults.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/srv_int.h"

enum fault_kind { FK_OVERLOAD = 0, FK_MAINTENANCE, FK_LATENCY, FK_RATE429, FK_WSDROP, FK_COUNT };

static const char *const fk_name[FK_COUNT] = {"overload", "maintenance", "latency", "rateLimit429",
                                              "websocketDrops"};

#define SHARE_SCALE 1000000           /* shares are kept in millionths */
#define LATENCY_MAX_MS 60000          /* the most a reply is held */
#define PER_VOL_MAX 60000             /* latencyPerVolPct: ms per 1% */
#define DURATION_MAX_MS (INT64_C(7) * 86400000) /* a week */
#define VOL_BUCKETS 12
#define VOL_BUCKET_MS 5000            /* 12 x 5 s: the last minute */
#define RETRY_AFTER_S 1

static const char VALIDATION[] = "ValidationError";

static const char overloaded[] = "The system is currently overloaded. Please try again later.";

static const char maintenance_html[] =
    "<!DOCTYPE html>\n"
    "<html>\n"
    "<head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n"
    "<body>\n"
    "<h1>Down for maintenance</h1>\n"
    "<p>The exchange is down for maintenance and will be back shortly. Please try again "
    "later.</p>\n"
    "</body>\n"
    "</html>\n";

struct vol_bucket {
    int64_t stamp; /* wall ms / VOL_BUCKET_MS; 0: empty */
    px_t lo[INDICES_MAX], hi[INDICES_MAX];
};

struct held {
    int64_t due_ns; /* monotonic */
    struct MHD_Connection *conn;
};

struct faults {
    /* the settings, the generator and the volatility buckets */
    pthread_mutex_t mu;
    _Atomic unsigned on_bits; /* a bit per kind switched on (maybe expired): the fast path */
    bool on[FK_COUNT];
    ms_t until[FK_COUNT];   /* wall ms; 0: until turned off */
    int64_t overload_e6, rate429_e6, wsdrop_e6;
    int64_t latency_ms, per_vol_ms;
    uint64_t rng;
    struct vol_bucket vb[VOL_BUCKETS];
    atomic_uint_fast64_t injected[FK_COUNT];
    /* the timer: held connections by deadline */
    pthread_mutex_t tmu;
    pthread_cond_t tcond; /* on the monotonic clock */
    struct held *heap;
    size_t n, cap;
    size_t reserved; /* slots promised to holds between reserve and push */
    bool closing, started, joined;
    pthread_t timer;
};

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64* (Vigna): the shares' draws. Under mu. */
static uint64_t draw(struct faults *f)
{
    uint64_t x = f->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rng = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* true with probability share_e6 / SHARE_SCALE. Under mu. */
static bool hit(struct faults *f, int64_t share_e6)
{
    if (share_e6 <= 0)
        return false;
    if (share_e6 >= SHARE_SCALE)
        return true;
    return (draw(f) >> 11) % SHARE_SCALE < (uint64_t)share_e6;
}

/* Switches off every fault whose time is up. Under mu. */
static void expire(struct faults *f, ms_t now)
{
    unsigned bits = 0;
    for (int k = 0; k < FK_COUNT; k++) {
        if (f->on[k] && f->until[k] && now >= f->until[k])
            f->on[k] = false;
        if (f->on[k])
            bits |= 1u << k;
    }
    atomic_store_explicit(&f->on_bits, bits, memory_order_release);
}

/* /api/v1 itself or a path under it (the target may go on with a query). */
static bool is_api(const struct req *r)
{
    const char *p = r->path;
    return !r->target_too_long && p && strncmp(p, "/api/v1", 7) == 0 &&
           (p[7] == 0 || p[7] == '/' || p[7] == '?');
}

/* The writes an overload refuses: as the real write queue, never a cancel
 * (DELETE /order, /order/all, POST /order/cancelAllAfter). */
static bool is_write(const struct req *r)
{
    if (strcmp(r->method, "DELETE") == 0)
        return strncmp(r->path, "/api/v1/order", 13) != 0;
    if (strcmp(r->method, "POST") == 0)
        return strncmp(r->path, "/api/v1/order/cancelAllAfter", 28) != 0 &&
               strncmp(r->path, "/api/v1/order/closePosition", 27) != 0;
    return strcmp(r->method, "PUT") == 0;
}

/* ---- the volatility of the indices ------------------------------------------------------- */

/* Reads every index's price from the state of the first instrument it
 * marks (as GET /instrument/indices does) into the bucket of `now`. */
static void vol_sample(struct faults *f, struct srv *s, ms_t now)
{
    const struct exch_config *x = s->x;
    px_t px[INDICES_MAX] = {0};
    const struct core_view *v = core_view_begin(s->core);
    for (uint16_t k = 0; k < x->indices_count && k < INDICES_MAX; k++)
        for (uint16_t i = 0; i < x->engine.instruments_count; i++)
            if (x->inst[i].index == k) {
                struct exch_instrument_state st;
                cv_instrument(v, i, &st);
                px[k] = st.index_px;
                break;
            }
    core_view_end(v);
    int64_t stamp = now / VOL_BUCKET_MS;
    pthread_mutex_lock(&f->mu);
    struct vol_bucket *b = &f->vb[stamp % VOL_BUCKETS];
    if (b->stamp != stamp) {
        b->stamp = stamp;
        memset(b->lo, 0, sizeof(b->lo));
        memset(b->hi, 0, sizeof(b->hi));
    }
    for (int k = 0; k < INDICES_MAX; k++) {
        if (px[k] <= 0)
            continue;
        if (!b->lo[k] || px[k] < b->lo[k])
            b->lo[k] = px[k];
        if (px[k] > b->hi[k])
            b->hi[k] = px[k];
    }
    pthread_mutex_unlock(&f->mu);
}

/* The largest range of an index over the last minute, in percent. Under mu. */
static double vol_pct(const struct faults *f, ms_t now)
{
    int64_t stamp = now / VOL_BUCKET_MS;
    double best = 0;
    for (int k = 0; k < INDICES_MAX; k++) {
        px_t lo = 0, hi = 0;
        for (int i = 0; i < VOL_BUCKETS; i++) {
            const struct vol_bucket *b = &f->vb[i];
            if (!b->stamp || b->stamp > stamp || b->stamp <= stamp - VOL_BUCKETS || !b->lo[k])
                continue;
            if (!lo || b->lo[k] < lo)
                lo = b->lo[k];
            if (b->hi[k] > hi)
                hi = b->hi[k];
        }
        if (lo > 0 && hi > lo) {
            double p = (double)(hi - lo) * 100.0 / (double)lo;
            if (p > best)
                best = p;
        }
    }
    return best;
}

/* The latency fault's delay now, in ms. Under mu. */
static int64_t delay_ms(const struct faults *f, ms_t now, double *vol)
{
    double v = f->per_vol_ms > 0 ? vol_pct(f, now) : 0;
    if (vol)
        *vol = v;
    double d = (double)f->latency_ms + (double)f->per_vol_ms * v;
    return d >= LATENCY_MAX_MS ? LATENCY_MAX_MS : (int64_t)(d + 0.5);
}

/* ---- the timer ------------------------------------------------------------------------------ */

static void heap_push(struct faults *f, struct held h)
{
    size_t i = f->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (f->heap[p].due_ns <= h.due_ns)
            break;
        f->heap[i] = f->heap[p];
        i = p;
    }
    f->heap[i] = h;
}

static struct held heap_pop(struct faults *f)
{
    struct held top = f->heap[0], last = f->heap[--f->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= f->n)
            break;
        if (c + 1 < f->n && f->heap[c + 1].due_ns < f->heap[c].due_ns)
            c++;
        if (last.due_ns <= f->heap[c].due_ns)
            break;
        f->heap[i] = f->heap[c];
        i = c;
    }
    if (f->n)
        f->heap[i] = last;
    return top;
}

/* Resumes each held connection at its deadline, outside tmu; on closing,
 * resumes every one left at once and ends. */
static void *timer_main(void *arg)
{
    struct faults *f = arg;
    pthread_mutex_lock(&f->tmu);
    for (;;) {
        if (f->n && (f->closing || f->heap[0].due_ns <= mono_ns())) {
            struct held h = heap_pop(f);
            pthread_mutex_unlock(&f->tmu);
            MHD_resume_connection(h.conn);
            pthread_mutex_lock(&f->tmu);
            continue;
        }
        if (f->closing)
            break;
        if (!f->n) {
            pthread_cond_wait(&f->tcond, &f->tmu);
            continue;
        }
        int64_t due = f->heap[0].due_ns;
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        pthread_cond_timedwait(&f->tcond, &f->tmu, &ts);
    }
    pthread_mutex_unlock(&f->tmu);
    return NULL;
}

bool faults_hold(struct req *r)
{
    struct faults *f = r->s->faults;
    if (!f || r->fault_delay_ms <= 0 || r->fault_held)
        return false;
    r->fault_held = true;
    int64_t due = mono_ns() + (int64_t)r->fault_delay_ms * 1000000;
    /* A slot first, so the push after the suspend cannot fail. */
    pthread_mutex_lock(&f->tmu);
    if (f->closing) {
        pthread_mutex_unlock(&f->tmu);
        return false;
    }
    if (f->n + f->reserved + 1 > f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        struct held *h = realloc(f->heap, nc * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&f->tmu);
            return false; /* no memory: the reply goes now */
        }
        f->heap = h;
        f->cap = nc;
    }
    f->reserved++;
    pthread_mutex_unlock(&f->tmu);
    /* Suspended before it is pushed, so the timer's resume comes after. On
     * resume the handler is called again with the reply ready. */
    r->state = RS_READY;
    MHD_suspend_connection(r->conn);
    pthread_mutex_lock(&f->tmu);
    f->reserved--;
    bool closing = f->closing;
    if (!closing) {
        heap_push(f, (struct held){due, r->conn});
        if (f->heap[0].conn == r->conn)
            pthread_cond_signal(&f->tcond);
    }
    pthread_mutex_unlock(&f->tmu);
    if (closing)
        MHD_resume_connection(r->conn);
    else
        atomic_fetch_add(&f->injected[FK_LATENCY], 1);
    return true;
}

/* ---- start and stop ------------------------------------------------------------------------- */

struct faults *faults_create(uint64_t seed, char *err, size_t errcap)
{
    struct faults *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    /* splitmix64 of the seed: a generator of its own, apart from the keys'. */
    uint64_t z = seed ? seed : (uint64_t)wall_ms() ^ (uint64_t)(uintptr_t)f;
    z += UINT64_C(0x9E3779B97F4A7C15) * 3;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    f->rng = z ? z : UINT64_C(0x9E3779B97F4A7C15);
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->tcond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&f->timer, NULL, timer_main, f);
    if (rc != 0) {
        snprintf(err, errcap, "cannot start the fault timer thread: %s", strerror(rc));
        f->joined = true;
        faults_destroy(f);
        return NULL;
    }
    f->started = true;
    return f;
}

void faults_stop(struct faults *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->tmu);
    f->closing = true;
    pthread_cond_signal(&f->tcond);
    pthread_mutex_unlock(&f->tmu);
    if (f->started && !f->joined) {
        pthread_join(f->timer, NULL);
        f->joined = true;
    }
}

void faults_destroy(struct faults *f)
{
    if (!f)
        return;
    faults_stop(f);
    pthread_cond_destroy(&f->tcond);
    pthread_mutex_destroy(&f->tmu);
    pthread_mutex_destroy(&f->mu);
    free(f->heap);
    free(f);
}

/* ---- the decision per request --------------------------------------------------------------- */

bool faults_pre(struct req *r)
{
    struct faults *f = r->s->faults;
    if (!f || !atomic_load_explicit(&f->on_bits, memory_order_acquire) || !is_api(r))
        return false;
    ms_t now = wall_ms();
    pthread_mutex_lock(&f->mu);
    expire(f, now);
    bool maint = f->on[FK_MAINTENANCE], lat = f->on[FK_LATENCY];
    bool vol = lat && f->per_vol_ms > 0;
    pthread_mutex_unlock(&f->mu);
    if (vol)
        vol_sample(f, r->s, now);
    if (lat) {
        pthread_mutex_lock(&f->mu);
        r->fault_delay_ms = (int32_t)delay_ms(f, now, NULL);
        pthread_mutex_unlock(&f->mu);
    }
    if (!maint)
        return false;
    free(r->reply);
    r->reply = strdup(maintenance_html);
    r->status = 503;
    r->state = RS_READY;
    if (r->reply)
        r->content_type = "text/html; charset=utf-8";
    r->fault_injected = true;
    atomic_fetch_add(&f->injected[FK_MAINTENANCE], 1);
    return true;
}

bool faults_post(struct req *r)
{
    struct faults *f = r->s->faults;
    if (!f || !atomic_load_explicit(&f->on_bits, memory_order_acquire) || !is_api(r))
        return false;
    ms_t now = wall_ms();
    pthread_mutex_lock(&f->mu);
    expire(f, now);
    bool h429 = f->on[FK_RATE429] && hit(f, f->rate429_e6);
    bool shed = !h429 && f->on[FK_OVERLOAD] && is_write(r) && hit(f, f->overload_e6);
    pthread_mutex_unlock(&f->mu);
    if (!h429 && !shed)
        return false;
    /* The real limiter first, as a real request meets it: when it refuses,
     * its own 429 stands. Checked only: nothing is charged. Its headers go
     * on the injected reply. */
    if (!rate_limit(r, rl_cost_single(), false, false, false))
        return true;
    r->fault_injected = true;
    if (shed) {
        reply_error(r, 503, "HTTPError", "%s", overloaded);
        atomic_fetch_add(&f->injected[FK_OVERLOAD], 1);
        return true;
    }
    char msg[128];
    rl_format_429(RETRY_AFTER_S, msg, sizeof(msg));
    if (r->has_rl) {
        r->rl.remaining = 0;
        r->rl.retry_after_s = RETRY_AFTER_S;
        r->rl.reset_s = now / 1000 + RETRY_AFTER_S;
    }
    snprintf(r->retry_after, sizeof(r->retry_after), "%d", RETRY_AFTER_S);
    reply_error(r, 429, RL_429_NAME, "%s", msg);
    atomic_fetch_add(&f->injected[FK_RATE429], 1);
    return true;
}

void faults_metrics(struct req *r)
{
    struct faults *f = r->s->faults;
    if (!f || !r->text_plain || r->status != 200 || !r->reply)
        return;
    size_t len = strlen(r->reply), cap = len + 768;
    char *p = realloc(r->reply, cap);
    if (!p)
        return;
    r->reply = p;
    int n = snprintf(p + len, cap - len,
                     "# HELP perpsim_faults_injected_total Faults injected into /api/v1 replies "
                     "(POST /admin/v1/faults), by kind.\n"
                     "# TYPE perpsim_faults_injected_total counter\n");
    for (int k = 0; k < FK_COUNT && n > 0 && (size_t)n < cap - len; k++) {
        int m = snprintf(p + len + n, cap - len - (size_t)n,
                         "perpsim_faults_injected_total{kind=\"%s\"} %" PRIu64 "\n", fk_name[k],
                         (uint64_t)atomic_load(&f->injected[k]));
        if (m < 0)
            break;
        n += m;
    }
}

/* ---- /admin/v1/faults ----------------------------------------------------------------------- */

/* What is on, with the time left. */
static cJSON *faults_json(struct faults *f, ms_t now)
{
    cJSON *o = cJSON_CreateObject(), *on = cJSON_AddObjectToObject(o, "faults");
    pthread_mutex_lock(&f->mu);
    expire(f, now);
    for (int k = 0; k < FK_COUNT; k++) {
        if (!f->on[k])
            continue;
        cJSON *e = cJSON_AddObjectToObject(on, fk_name[k]);
        if (k == FK_OVERLOAD || k == FK_RATE429 || k == FK_WSDROP)
            cJSON_AddNumberToObject(e, "share",
                                    (double)(k == FK_OVERLOAD   ? f->overload_e6
                                             : k == FK_RATE429 ? f->rate429_e6
                                                               : f->wsdrop_e6) /
                                        SHARE_SCALE);
        if (k == FK_LATENCY) {
            double vol = 0;
            int64_t d = delay_ms(f, now, &vol);
            cJSON_AddNumberToObject(e, "latencyMs", (double)f->latency_ms);
            cJSON_AddNumberToObject(e, "latencyPerVolPct", (double)f->per_vol_ms);
            cJSON_AddNumberToObject(e, "volatilityPct", (double)(int64_t)(vol * 1e4 + 0.5) / 1e4);
            cJSON_AddNumberToObject(e, "currentMs", (double)d);
        }
        if (f->until[k]) {
            cJSON_AddNumberToObject(e, "timeLeftMs", (double)(f->until[k] - now));
            add_time(e, "until", f->until[k]);
        } else {
            cJSON_AddNullToObject(e, "timeLeftMs");
            cJSON_AddNullToObject(e, "until");
        }
    }
    pthread_mutex_unlock(&f->mu);
    cJSON *inj = cJSON_AddObjectToObject(o, "injected");
    for (int k = 0; k < FK_COUNT; k++)
        cJSON_AddNumberToObject(inj, fk_name[k], (double)atomic_load(&f->injected[k]));
    add_time(o, "timestamp", now);
    return o;
}

/* A share: a number (or decimal string) from 0 to 1, to the millionth. */
static bool get_share(struct req *r, const char *name, bool *given, int64_t *e6)
{
    enum prm_get g = prm_fixed(r->params, name, 6, e6);
    *given = g == PRM_FOUND;
    if (g == PRM_ABSENT && !cJSON_GetObjectItemCaseSensitive(r->params, name))
        return true;
    if (g != PRM_FOUND || *e6 < 0 || *e6 > SHARE_SCALE) {
        reply_error(r, 400, VALIDATION, "Invalid %s: a share from 0 to 1", name);
        return false;
    }
    return true;
}

/* A whole number from lo to hi. */
static bool get_int(struct req *r, const char *name, int64_t lo, int64_t hi, bool *given,
                    int64_t *v)
{
    enum prm_get g = prm_int(r->params, name, v);
    *given = g == PRM_FOUND;
    if (g == PRM_ABSENT && !cJSON_GetObjectItemCaseSensitive(r->params, name))
        return true;
    if (g != PRM_FOUND || *v < lo || *v > hi) {
        reply_error(r, 400, VALIDATION, "Invalid %s: a whole number from %" PRId64 " to %" PRId64,
                    name, lo, hi);
        return false;
    }
    return true;
}

static void faults_set(struct req *r)
{
    struct faults *f = r->s->faults;
    static const char *const known[] = {"overload", "maintenance", "latencyMs", "latencyPerVolPct",
                                        "rateLimit429", "durationMs", "websocketDrops", NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, r->params)
    {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok |= strcmp(it->string, *k) == 0;
        if (!ok) {
            reply_error(r, 400, VALIDATION, "Unknown parameter: %s", it->string);
            return;
        }
    }
    bool g_over, g_429, g_maint = false, g_lat, g_vol, g_dur, g_ws;
    int64_t over = 0, r429 = 0, lat = 0, vol = 0, dur = 0, wsd = 0;
    bool maint = false;
    if (!get_share(r, "overload", &g_over, &over) || !get_share(r, "rateLimit429", &g_429, &r429) ||
        !get_share(r, "websocketDrops", &g_ws, &wsd) ||
        !get_int(r, "latencyMs", 0, LATENCY_MAX_MS, &g_lat, &lat) ||
        !get_int(r, "latencyPerVolPct", 0, PER_VOL_MAX, &g_vol, &vol) ||
        !get_int(r, "durationMs", 1, DURATION_MAX_MS, &g_dur, &dur))
        return;
    if (cJSON_GetObjectItemCaseSensitive(r->params, "maintenance")) {
        if (prm_bool(r->params, "maintenance", &maint) != PRM_FOUND) {
            reply_error(r, 400, VALIDATION, "Invalid maintenance: true or false");
            return;
        }
        g_maint = true;
    }
    if (g_ws && !r->s->ws) {
        reply_error(r, 400, VALIDATION, "websocketDrops needs the WebSocket (started without --no-websocket)");
        return;
    }
    if (!g_over && !g_429 && !g_maint && !g_lat && !g_vol && !g_ws) {
        reply_error(r, 400, VALIDATION,
                    "Give at least one of overload, maintenance, latencyMs, latencyPerVolPct, "
                    "rateLimit429, websocketDrops (or DELETE /admin/v1/faults)");
        return;
    }
    bool lat_on = (g_lat || g_vol) && (lat > 0 || vol > 0);
    bool any_on = (g_over && over > 0) || (g_429 && r429 > 0) || (g_maint && maint) || lat_on ||
                  (g_ws && wsd > 0);
    if (g_dur && !any_on) {
        reply_error(r, 400, VALIDATION, "durationMs goes with a fault turned on");
        return;
    }
    ms_t now = wall_ms();
    /* The index prices of the moment, the first sample of the volatility. */
    if (lat_on && vol > 0)
        vol_sample(f, r->s, now);
    ms_t until = g_dur ? now + dur : 0;
    pthread_mutex_lock(&f->mu);
    if (g_over) {
        f->on[FK_OVERLOAD] = over > 0;
        f->overload_e6 = over;
        f->until[FK_OVERLOAD] = until;
    }
    if (g_429) {
        f->on[FK_RATE429] = r429 > 0;
        f->rate429_e6 = r429;
        f->until[FK_RATE429] = until;
    }
    if (g_ws) {
        f->on[FK_WSDROP] = wsd > 0;
        f->wsdrop_e6 = wsd;
        f->until[FK_WSDROP] = until;
    }
    if (g_maint) {
        f->on[FK_MAINTENANCE] = maint;
        f->until[FK_MAINTENANCE] = until;
    }
    if (g_lat || g_vol) {
        f->on[FK_LATENCY] = lat_on;
        f->latency_ms = lat;
        f->per_vol_ms = vol;
        f->until[FK_LATENCY] = until;
    }
    expire(f, now);
    pthread_mutex_unlock(&f->mu);
    reply_json(r, 200, faults_json(f, now));
}

bool faults_ws_drop(struct faults *f)
{
    if (!f || !(atomic_load_explicit(&f->on_bits, memory_order_acquire) >> FK_WSDROP & 1))
        return false;
    pthread_mutex_lock(&f->mu);
    expire(f, wall_ms());
    bool yes = f->on[FK_WSDROP] && hit(f, f->wsdrop_e6);
    pthread_mutex_unlock(&f->mu);
    if (yes)
        atomic_fetch_add(&f->injected[FK_WSDROP], 1);
    return yes;
}

void faults_admin(struct req *r)
{
    struct faults *f = r->s->faults;
    if (!f) {
        reply_error(r, 503, "HTTPError", "Service unavailable");
        return;
    }
    if (strcmp(r->method, "POST") == 0) {
        faults_set(r);
        return;
    }
    if (cJSON_GetArraySize(r->params) > 0) {
        reply_error(r, 400, VALIDATION, "Unknown parameter: %s", r->params->child->string);
        return;
    }
    ms_t now = wall_ms();
    if (strcmp(r->method, "DELETE") == 0) {
        pthread_mutex_lock(&f->mu);
        for (int k = 0; k < FK_COUNT; k++) {
            f->on[k] = false;
            f->until[k] = 0;
        }
        expire(f, now);
        pthread_mutex_unlock(&f->mu);
    } else {
        /* A fresh sample, so the volatility shown is the current one. */
        pthread_mutex_lock(&f->mu);
        bool vol = f->on[FK_LATENCY] && f->per_vol_ms > 0;
        pthread_mutex_unlock(&f->mu);
        if (vol)
            vol_sample(f, r->s, now);
    }
    reply_json(r, 200, faults_json(f, now));
}
