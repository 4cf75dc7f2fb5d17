/*
 * loadshed.c - the bounded write queue: a mutex + condition variable ring
 * with a lock-free shed fast path and relaxed atomic metrics. The rules are
 * written in loadshed.h; this file applies them.
 *
 * Layout: one ring of capacity + exempt_headroom slots, guarded by `mu`.
 * Producers lock only to enqueue (or to re-check before shedding); the
 * consumer locks only to copy a batch out. Histograms and the clock are
 * touched outside the lock. Fields written by producers, by the consumer and
 * by both sit on separate cache lines (the struct is 64-byte aligned).
 */
#include "loadshed/loadshed.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__extension__ typedef __int128 ls_i128;

#define NS_PER_S INT64_C(1000000000)
#define PPM INT64_C(1000000)
/* The EWMA keeps 8 fractional bits of a nanosecond. */
#define FP_SHIFT 8
#define FP_ONE (INT64_C(1) << FP_SHIFT)
#define CACHE_LINE 64

struct ls_hist {
    _Atomic uint64_t bucket[LS_HIST_BUCKETS];
    _Atomic uint64_t sum_ns;
    _Atomic int64_t max_ns;
};

struct ls_slot {
    void *item;
    int64_t enqueue_ns;
    uint64_t seq;
    uint8_t kind;
    uint8_t exempt;
    uint8_t runnable; /* submitted by ls_submit_run: a producer may serve it */
};

struct ls_queue {
    /* ---- immutable after ls_create() ---- */
    struct ls_slot *ring;
    uint32_t slots;    /* capacity + exempt_headroom */
    uint32_t capacity; /* the largest depth limit */
    uint32_t min_depth;
    uint32_t ewma_shift;
    ls_clock_fn clock;
    void *clock_ctx;

    /* ---- guarded by mu ---- */
    _Alignas(CACHE_LINE) pthread_mutex_t mu;
    pthread_cond_t not_empty; /* the consumer waits here */
    pthread_cond_t slot_free; /* exempt writes waiting for a slot (rule 4) */
    uint32_t head;            /* oldest slot */
    uint32_t count;           /* slots in use */
    uint32_t waiting;         /* exempt writes waiting for a slot */
    uint32_t consumers_waiting;
    bool consumer_serving;    /* between a take that returned writes and ls_done */
    bool producer_serving;    /* a write handed back by ls_submit_run (rule 5a) */
    uint64_t next_seq;
    uint64_t ticket_next;    /* exempt waiters enter in ticket order */
    uint64_t ticket_serving;
    bool closed;
    enum ls_mode mode;
    int64_t cap_ns;
    uint32_t fixed_depth;
    int64_t ewma_fp; /* mean service ns per write, 1/256 ns units */
    bool measured;   /* a report has replaced the initial guess */

    /* ---- read without the lock (rule 8) ---- */
    _Alignas(CACHE_LINE) _Atomic bool closed_flag;
    _Atomic uint64_t depth;
    _Atomic uint64_t depth_limit;
    _Atomic uint64_t depth_max;
    _Atomic int mode_now;
    _Atomic int64_t cap_now_ns;
    _Atomic int64_t ewma_now_fp;

    /* ---- producer counters ---- */
    _Alignas(CACHE_LINE) _Atomic uint64_t accepted[LS_KIND_COUNT];
    _Atomic uint64_t shed[LS_KIND_COUNT];
    _Atomic uint64_t accepted_exempt;
    _Atomic uint64_t exempt_waits;
    _Atomic uint64_t closed_refused;

    /* ---- consumer counters ---- */
    _Alignas(CACHE_LINE) _Atomic uint64_t taken;
    _Atomic uint64_t processed;
    _Atomic uint64_t producer_served;
    struct ls_hist wait;
    struct ls_hist service;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t ld(const _Atomic uint64_t *a)
{
    return atomic_load_explicit((_Atomic uint64_t *)a, memory_order_relaxed);
}

static void add(_Atomic uint64_t *a, uint64_t v)
{
    atomic_fetch_add_explicit(a, v, memory_order_relaxed);
}

static bool kind_ok(enum ls_kind kind)
{
    return (unsigned)kind < (unsigned)LS_KIND_COUNT;
}

const char *ls_kind_name(enum ls_kind kind)
{
    static const char *const names[LS_KIND_COUNT] = {
        "new_order", "amend", "cancel", "cancel_all", "cancel_after", "bulk", "position", "other",
    };
    return kind_ok(kind) ? names[kind] : "?";
}

int64_t ls_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return ls_now_ns();
}

/* ---- histograms (rule 9) ---------------------------------------------- */

int64_t ls_hist_bound_ns(unsigned i)
{
    return i < LS_HIST_FINITE ? INT64_C(1000) << i : INT64_MAX;
}

unsigned ls_hist_bucket(int64_t ns)
{
    for (unsigned i = 0; i < LS_HIST_FINITE; i++)
        if (ns <= ls_hist_bound_ns(i))
            return i;
    return LS_HIST_FINITE;
}

/* n observations of value v whose sum is sum_ns. */
static void hist_observe(struct ls_hist *h, int64_t v, uint64_t n, uint64_t sum_ns)
{
    add(&h->bucket[ls_hist_bucket(v)], n);
    add(&h->sum_ns, sum_ns);
    int64_t cur = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(&h->max_ns, &cur, v,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

static void hist_snap(const struct ls_hist *h, struct ls_hist_snap *s)
{
    s->count = 0;
    for (unsigned i = 0; i < LS_HIST_BUCKETS; i++) {
        s->bucket[i] = ld(&h->bucket[i]);
        s->count += s->bucket[i];
    }
    s->sum_ns = ld(&h->sum_ns);
    s->max_ns = atomic_load_explicit((_Atomic int64_t *)&h->max_ns, memory_order_relaxed);
}

int64_t ls_hist_quantile_ns(const struct ls_hist_snap *h, uint32_t q_ppm)
{
    uint64_t count = 0;
    for (unsigned i = 0; i < LS_HIST_BUCKETS; i++)
        count += h->bucket[i];
    if (count == 0)
        return 0;
    if (q_ppm > PPM)
        q_ppm = (uint32_t)PPM;
    /* rank = ceil(q * count / 1e6), at least 1; fits: q <= 1e6. */
    uint64_t rank = (uint64_t)(((ls_i128)q_ppm * count + (PPM - 1)) / PPM);
    if (rank < 1)
        rank = 1;
    uint64_t below = 0;
    for (unsigned i = 0; i < LS_HIST_BUCKETS; i++) {
        uint64_t in = h->bucket[i];
        if (in > 0 && below + in >= rank) {
            if (i == LS_HIST_FINITE)
                return h->max_ns;
            int64_t lower = i == 0 ? 0 : ls_hist_bound_ns(i - 1);
            int64_t upper = ls_hist_bound_ns(i);
            return lower + (int64_t)((ls_i128)(upper - lower) * (rank - below) / in);
        }
        below += in;
    }
    return h->max_ns; /* not reached: rank <= count */
}

/* ---- configuration and lifetime ------------------------------------------ */

void ls_config_default(struct ls_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity = LS_DEFAULT_CAPACITY;
    cfg->exempt_headroom = LS_DEFAULT_EXEMPT_HEADROOM;
    cfg->mode = LS_LATENCY_CAP;
    cfg->fixed_depth = LS_DEFAULT_CAPACITY;
    cfg->latency_cap_ns = LS_DEFAULT_LATENCY_CAP_NS;
    cfg->min_depth = LS_DEFAULT_MIN_DEPTH;
    cfg->initial_service_ns = LS_DEFAULT_INITIAL_SERVICE_NS;
    cfg->ewma_shift = LS_DEFAULT_EWMA_SHIFT;
    cfg->clock = NULL;
    cfg->clock_ctx = NULL;
}

/* Fields used by a mode the queue can switch to later (min_depth, the
 * service guess, the EWMA weight) are checked whatever the starting mode;
 * latency_cap_ns only in LS_LATENCY_CAP and fixed_depth only in LS_FIXED
 * (the setters bring their own). */
static bool config_ok(const struct ls_config *c)
{
    if (c->capacity < 1 || (uint64_t)c->capacity + c->exempt_headroom > LS_SLOTS_MAX)
        return false;
    if (c->ewma_shift > LS_EWMA_SHIFT_MAX || c->min_depth > c->capacity)
        return false;
    if (c->initial_service_ns < 1 || c->initial_service_ns > LS_TIME_MAX_NS)
        return false;
    if (c->mode == LS_FIXED)
        return c->fixed_depth <= c->capacity;
    return c->mode == LS_LATENCY_CAP && c->latency_cap_ns >= 1 &&
           c->latency_cap_ns <= LS_TIME_MAX_NS;
}

/* The limit for the current mode (rule 3). Under mu. */
static void recompute_limit(struct ls_queue *q)
{
    uint64_t limit;
    if (q->mode == LS_FIXED) {
        limit = q->fixed_depth;
    } else if (q->ewma_fp <= 0) {
        limit = q->capacity;
    } else {
        /* cap <= LS_TIME_MAX_NS, so cap * 256 < 2^50: no overflow. */
        limit = (uint64_t)(q->cap_ns * FP_ONE / q->ewma_fp);
        /* One slot less: a write admitted behind limit - 1 others also waits
         * for the one in service, and under sustained overload every
         * admitted write sits at the back, so without the margin the wait
         * rides on the cap and any service time above the mean crosses it. */
        limit = limit > 0 ? limit - 1 : 0;
        if (limit < q->min_depth)
            limit = q->min_depth;
        if (limit > q->capacity) /* last: ordinary writes never reach the headroom */
            limit = q->capacity;
    }
    atomic_store_explicit(&q->depth_limit, limit, memory_order_relaxed);
    atomic_store_explicit(&q->mode_now, (int)q->mode, memory_order_relaxed);
    atomic_store_explicit(&q->cap_now_ns, q->mode == LS_FIXED ? 0 : q->cap_ns,
                          memory_order_relaxed);
    atomic_store_explicit(&q->ewma_now_fp, q->ewma_fp, memory_order_relaxed);
}

enum ls_err ls_create(const struct ls_config *cfg, struct ls_queue **out)
{
    if (cfg == NULL || out == NULL || !config_ok(cfg))
        return LS_ERR_RANGE;
    size_t size = (sizeof(struct ls_queue) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    struct ls_queue *q = aligned_alloc(CACHE_LINE, size);
    if (q == NULL)
        return LS_ERR_NOMEM;
    memset(q, 0, size);
    q->slots = cfg->capacity + cfg->exempt_headroom;
    q->ring = calloc(q->slots, sizeof *q->ring);
    if (q->ring == NULL) {
        free(q);
        return LS_ERR_NOMEM;
    }
    q->capacity = cfg->capacity;
    q->min_depth = cfg->min_depth;
    q->ewma_shift = cfg->ewma_shift;
    q->clock = cfg->clock != NULL ? cfg->clock : default_clock;
    q->clock_ctx = cfg->clock_ctx;

    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    bool ok = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    bool mu_ok = ok && pthread_mutex_init(&q->mu, NULL) == 0;
    bool ne_ok = mu_ok && pthread_cond_init(&q->not_empty, &ca) == 0;
    bool sf_ok = ne_ok && pthread_cond_init(&q->slot_free, &ca) == 0;
    if (ca_ok)
        pthread_condattr_destroy(&ca);
    if (!sf_ok) {
        if (ne_ok)
            pthread_cond_destroy(&q->not_empty);
        if (mu_ok)
            pthread_mutex_destroy(&q->mu);
        free(q->ring);
        free(q);
        return LS_ERR_THREAD;
    }

    q->mode = cfg->mode;
    q->fixed_depth = cfg->fixed_depth;
    q->cap_ns = cfg->mode == LS_LATENCY_CAP ? cfg->latency_cap_ns : LS_DEFAULT_LATENCY_CAP_NS;
    q->ewma_fp = cfg->initial_service_ns * FP_ONE;
    q->measured = false;
    recompute_limit(q);
    *out = q;
    return LS_OK;
}

void ls_destroy(struct ls_queue *q)
{
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->slot_free);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    free(q);
}

void ls_shutdown(struct ls_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    atomic_store_explicit(&q->closed_flag, true, memory_order_relaxed);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->slot_free);
    pthread_mutex_unlock(&q->mu);
}

/* ---- producers --------------------------------------------------------- */

/* Under mu. */
static void publish_depth(struct ls_queue *q)
{
    uint64_t d = (uint64_t)q->count + q->waiting;
    atomic_store_explicit(&q->depth, d, memory_order_relaxed);
    if (d > atomic_load_explicit(&q->depth_max, memory_order_relaxed))
        atomic_store_explicit(&q->depth_max, d, memory_order_relaxed);
}

/* Under mu, with count < slots. True when the consumer is waiting: the
 * caller signals it after unlocking (wake_consumer), since a consumer woken
 * while the producer still holds mu only blocks again on mu and needs a
 * second wake-up (two futex calls and two context switches per write). */
static bool enqueue(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt, int64_t now_ns,
                    bool runnable)
{
    uint32_t at = q->head + q->count;
    if (at >= q->slots)
        at -= q->slots;
    struct ls_slot *s = &q->ring[at];
    s->item = item;
    s->enqueue_ns = now_ns;
    s->seq = ++q->next_seq;
    s->kind = (uint8_t)kind;
    s->exempt = exempt;
    s->runnable = runnable;
    q->count++;
    publish_depth(q);
    /* A producer serving (rule 5a) hands over or serves this write itself
     * when it finishes: waking the consumer now would only make it wait. */
    return q->consumers_waiting > 0 && !q->producer_serving;
}

/* After unlocking mu. A consumer that has not started waiting yet sees the
 * write under mu before it waits, so signalling late loses no wake-up. */
static void wake_consumer(struct ls_queue *q, bool wake)
{
    if (wake)
        pthread_cond_signal(&q->not_empty);
}

/* Rule 2, the one test both the lock-free read and the decision under the
 * lock apply to an ordinary write. */
static bool must_shed(uint64_t depth, uint64_t limit, uint32_t waiting)
{
    return waiting > 0 || depth >= limit;
}

static enum ls_result refuse_closed(struct ls_queue *q)
{
    add(&q->closed_refused, 1);
    return LS_CLOSED;
}

static enum ls_result refuse_shed(struct ls_queue *q, enum ls_kind kind)
{
    add(&q->shed[kind], 1);
    return LS_SHED;
}

/* Outside mu: a write handed back waited 0 ns and is taken. */
static void handed_back(struct ls_queue *q)
{
    hist_observe(&q->wait, 0, 1, 0);
    add(&q->taken, 1);
    add(&q->producer_served, 1);
}

/* Under mu: rule 5a's test for handing a write back. */
static bool may_run_now(const struct ls_queue *q)
{
    return q->count == 0 && q->waiting == 0 && !q->consumer_serving && !q->producer_serving;
}

/* Under mu: the write handed back is admitted, sequenced and taken at once. */
static void run_now_admit(struct ls_queue *q)
{
    q->next_seq++;
    q->producer_serving = true;
}

static enum ls_result submit(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt,
                             int64_t now_ns, bool *run_now)
{
    if (!kind_ok(kind))
        return LS_BAD_KIND;
    if (atomic_load_explicit(&q->closed_flag, memory_order_relaxed))
        return refuse_closed(q);
    /* Fast path (rule 2): a shed takes no lock. Waiting exempt writes are
     * already in the depth gauge. */
    if (!exempt && must_shed(atomic_load_explicit(&q->depth, memory_order_relaxed),
                             atomic_load_explicit(&q->depth_limit, memory_order_relaxed), 0))
        return refuse_shed(q, kind);

    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return refuse_closed(q);
    }
    if (!exempt) {
        if (must_shed((uint64_t)q->count + q->waiting,
                      atomic_load_explicit(&q->depth_limit, memory_order_relaxed), q->waiting)) {
            pthread_mutex_unlock(&q->mu);
            return refuse_shed(q, kind);
        }
        bool wake = false;
        if (run_now && may_run_now(q)) {
            run_now_admit(q);
            *run_now = true;
        } else {
            wake = enqueue(q, item, kind, false, now_ns, run_now != NULL);
        }
        pthread_mutex_unlock(&q->mu);
        wake_consumer(q, wake);
        add(&q->accepted[kind], 1);
        if (run_now && *run_now)
            handed_back(q);
        return LS_ACCEPTED;
    }

    bool wake;
    if (q->waiting > 0 || q->count == q->slots) {
        /* Rule 4: the whole ring is full; wait in ticket order. */
        uint64_t ticket = q->ticket_next++;
        q->waiting++;
        publish_depth(q);
        add(&q->exempt_waits, 1);
        while (!q->closed && !(ticket == q->ticket_serving && q->count < q->slots))
            pthread_cond_wait(&q->slot_free, &q->mu);
        q->waiting--;
        if (q->closed) {
            publish_depth(q);
            pthread_mutex_unlock(&q->mu);
            return refuse_closed(q);
        }
        q->ticket_serving++;
        wake = enqueue(q, item, kind, true, now_ns, run_now != NULL);
        if (q->waiting > 0 && q->count < q->slots)
            pthread_cond_broadcast(&q->slot_free);
    } else if (run_now && may_run_now(q)) {
        run_now_admit(q);
        *run_now = true;
        wake = false;
    } else {
        wake = enqueue(q, item, kind, true, now_ns, run_now != NULL);
    }
    pthread_mutex_unlock(&q->mu);
    wake_consumer(q, wake);
    add(&q->accepted[kind], 1);
    add(&q->accepted_exempt, 1);
    if (run_now && *run_now)
        handed_back(q);
    return LS_ACCEPTED;
}

enum ls_result ls_submit(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt,
                         int64_t now_ns)
{
    return submit(q, item, kind, exempt, now_ns, NULL);
}

enum ls_result ls_submit_run(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt,
                             int64_t now_ns, bool *run_now)
{
    *run_now = false;
    return submit(q, item, kind, exempt, now_ns, run_now);
}

/* ---- the consumer -------------------------------------------------------- */

/* Under mu, n <= count: moves the n oldest writes to out[] (rule 5). */
static void pop(struct ls_queue *q, struct ls_entry *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct ls_slot *s = &q->ring[q->head];
        out[i].item = s->item;
        out[i].enqueue_ns = s->enqueue_ns;
        out[i].seq = s->seq;
        out[i].kind = (enum ls_kind)s->kind;
        out[i].exempt = s->exempt != 0;
        if (++q->head == q->slots)
            q->head = 0;
    }
    q->count -= (uint32_t)n;
    publish_depth(q);
    if (q->waiting > 0)
        pthread_cond_broadcast(&q->slot_free);
}

/* Outside mu: the queue waits of writes just taken. */
static void observe_taken(struct ls_queue *q, struct ls_entry *out, size_t n)
{
    int64_t now_ns = q->clock(q->clock_ctx);
    for (size_t i = 0; i < n; i++) {
        int64_t w = now_ns - out[i].enqueue_ns;
        out[i].wait_ns = w > 0 ? w : 0;
        hist_observe(&q->wait, out[i].wait_ns, 1, (uint64_t)out[i].wait_ns);
    }
    add(&q->taken, n);
}

static struct timespec deadline_after(int64_t timeout_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + timeout_ns % NS_PER_S;
    ts.tv_sec += (time_t)(timeout_ns / NS_PER_S + ns / NS_PER_S);
    ts.tv_nsec = (long)(ns % NS_PER_S);
    return ts;
}

enum ls_take_result ls_take(struct ls_queue *q, struct ls_entry *out, size_t max,
                            int64_t timeout_ns, size_t *n_out)
{
    if (n_out != NULL)
        *n_out = 0;
    if (out == NULL || max == 0 || n_out == NULL)
        return LS_TAKE_BAD_ARG;
    struct timespec deadline = {0, 0};
    if (timeout_ns > 0)
        deadline = deadline_after(timeout_ns);

    pthread_mutex_lock(&q->mu);
    q->consumer_serving = false; /* asking again: the last batch is over */
    while (timeout_ns != 0 && (q->producer_serving || (q->count == 0 && !q->closed))) {
        q->consumers_waiting++;
        int rc = timeout_ns < 0 ? pthread_cond_wait(&q->not_empty, &q->mu)
                                : pthread_cond_timedwait(&q->not_empty, &q->mu, &deadline);
        q->consumers_waiting--;
        if (rc == ETIMEDOUT)
            break;
    }
    if (q->count == 0 || q->producer_serving) {
        /* Closed, empty and nobody serving: every admitted write is done. */
        bool closed = q->closed && q->count == 0 && !q->producer_serving;
        pthread_mutex_unlock(&q->mu);
        return closed ? LS_TAKE_CLOSED : LS_TAKE_TIMEOUT;
    }
    size_t n = max < q->count ? max : q->count;
    pop(q, out, n);
    q->consumer_serving = true;
    pthread_mutex_unlock(&q->mu);
    observe_taken(q, out, n);
    *n_out = n;
    return LS_TAKE_OK;
}

/* The EWMA, the service histogram and `processed` (rules 3, 9), under mu
 * for the EWMA; returns with mu held. LS_ERR_RANGE records nothing and
 * does not lock. */
static enum ls_err report_locked(struct ls_queue *q, size_t n_items, int64_t service_ns)
{
    if (n_items == 0 || service_ns < 0)
        return LS_ERR_RANGE;
    uint64_t n = (uint64_t)n_items;
    int64_t per_ns = (int64_t)((uint64_t)service_ns / n);
    hist_observe(&q->service, per_ns, n, (uint64_t)service_ns);
    add(&q->processed, n);

    ls_i128 sample = (ls_i128)service_ns * FP_ONE / n;
    if (sample > (ls_i128)LS_TIME_MAX_NS * FP_ONE)
        sample = (ls_i128)LS_TIME_MAX_NS * FP_ONE;
    int64_t s = (int64_t)sample;

    pthread_mutex_lock(&q->mu);
    if (!q->measured) {
        q->ewma_fp = s;
        q->measured = true;
    } else {
        q->ewma_fp += (s - q->ewma_fp) / (INT64_C(1) << q->ewma_shift);
    }
    recompute_limit(q);
    return LS_OK;
}

enum ls_err ls_done(struct ls_queue *q, size_t n_items, int64_t service_ns)
{
    enum ls_err e = report_locked(q, n_items, service_ns);
    if (e != LS_OK)
        return e;
    q->consumer_serving = false;
    pthread_mutex_unlock(&q->mu);
    return LS_OK;
}

bool ls_run_done(struct ls_queue *q, int64_t service_ns, bool more, struct ls_entry *next)
{
    report_locked(q, 1, service_ns < 0 ? 0 : service_ns);
    if (more && q->count > 0 && q->ring[q->head].runnable) {
        pop(q, next, 1);
        pthread_mutex_unlock(&q->mu);
        observe_taken(q, next, 1);
        add(&q->producer_served, 1);
        return true;
    }
    q->producer_serving = false;
    bool wake = q->consumers_waiting > 0 && (q->count > 0 || q->closed);
    pthread_mutex_unlock(&q->mu);
    wake_consumer(q, wake);
    return false;
}

/* ---- run-time settings ----------------------------------------------- */

enum ls_err ls_set_fixed_depth(struct ls_queue *q, uint32_t depth)
{
    if (depth > q->capacity)
        return LS_ERR_RANGE;
    pthread_mutex_lock(&q->mu);
    q->mode = LS_FIXED;
    q->fixed_depth = depth;
    recompute_limit(q);
    pthread_mutex_unlock(&q->mu);
    return LS_OK;
}

enum ls_err ls_set_latency_cap(struct ls_queue *q, int64_t cap_ns)
{
    if (cap_ns < 1 || cap_ns > LS_TIME_MAX_NS)
        return LS_ERR_RANGE;
    pthread_mutex_lock(&q->mu);
    q->mode = LS_LATENCY_CAP;
    q->cap_ns = cap_ns;
    recompute_limit(q);
    pthread_mutex_unlock(&q->mu);
    return LS_OK;
}

/* ---- metrics --------------------------------------------------------- */

void ls_metrics(const struct ls_queue *q, struct ls_metrics *m)
{
    memset(m, 0, sizeof *m);
    for (unsigned k = 0; k < LS_KIND_COUNT; k++) {
        m->accepted[k] = ld(&q->accepted[k]);
        m->shed[k] = ld(&q->shed[k]);
    }
    m->accepted_exempt = ld(&q->accepted_exempt);
    m->exempt_waits = ld(&q->exempt_waits);
    m->closed = ld(&q->closed_refused);
    m->taken = ld(&q->taken);
    m->processed = ld(&q->processed);
    m->producer_served = ld(&q->producer_served);
    m->depth = ld(&q->depth);
    m->depth_max = ld(&q->depth_max);
    m->depth_limit = ld(&q->depth_limit);
    m->mode = (enum ls_mode)atomic_load_explicit((_Atomic int *)&q->mode_now,
                                                 memory_order_relaxed);
    m->latency_cap_ns = atomic_load_explicit((_Atomic int64_t *)&q->cap_now_ns,
                                             memory_order_relaxed);
    m->service_estimate_ns = atomic_load_explicit((_Atomic int64_t *)&q->ewma_now_fp,
                                                  memory_order_relaxed) /
                             FP_ONE;
    hist_snap(&q->wait, &m->wait);
    hist_snap(&q->service, &m->service);
}

/* An snprintf-style appender that keeps counting past the end. */
struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->size ? o->buf + o->len : NULL;
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* ns as seconds, an exact decimal without trailing zeros: 1000 ->
 * "0.000001", 3000000000 -> "3", 1500 -> "0.0000015". */
static const char *seconds(uint64_t ns, char buf[32])
{
    uint64_t s = ns / (uint64_t)NS_PER_S, f = ns % (uint64_t)NS_PER_S;
    if (f == 0) {
        snprintf(buf, 32, "%llu", (unsigned long long)s);
        return buf;
    }
    snprintf(buf, 32, "%llu.%09llu", (unsigned long long)s, (unsigned long long)f);
    size_t len = strlen(buf);
    while (buf[len - 1] == '0')
        buf[--len] = '\0';
    return buf;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP perpsim_loadshed_%s %s\n# TYPE perpsim_loadshed_%s %s\n", name, help, name,
        type);
}

static void scalar(struct out *o, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    head(o, name, type, help);
    put(o, "perpsim_loadshed_%s %llu\n", name, (unsigned long long)v);
}

static void per_kind(struct out *o, const char *name, const char *help, const uint64_t *v)
{
    head(o, name, "counter", help);
    for (unsigned k = 0; k < LS_KIND_COUNT; k++)
        put(o, "perpsim_loadshed_%s{kind=\"%s\"} %llu\n", name, ls_kind_name((enum ls_kind)k),
            (unsigned long long)v[k]);
}

static void histogram(struct out *o, const char *name, const char *help,
                      const struct ls_hist_snap *h)
{
    char b[32];
    head(o, name, "histogram", help);
    uint64_t cum = 0;
    for (unsigned i = 0; i < LS_HIST_FINITE; i++) {
        cum += h->bucket[i];
        put(o, "perpsim_loadshed_%s_bucket{le=\"%s\"} %llu\n", name,
            seconds((uint64_t)ls_hist_bound_ns(i), b), (unsigned long long)cum);
    }
    cum += h->bucket[LS_HIST_FINITE];
    put(o, "perpsim_loadshed_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(o, "perpsim_loadshed_%s_sum %s\n", name, seconds(h->sum_ns, b));
    put(o, "perpsim_loadshed_%s_count %llu\n", name, (unsigned long long)h->count);
}

size_t ls_metrics_format(const struct ls_metrics *m, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    char b[32];
    if (buf != NULL && size > 0)
        buf[0] = '\0';
    per_kind(&o, "accepted_total",
             "Writes admitted to the engine queue, by kind (exempt ones included).",
             m->accepted);
    per_kind(&o, "shed_total", "Writes refused at the depth limit (HTTP 503), by kind.", m->shed);
    scalar(&o, "accepted_exempt_total", "counter",
           "Exempt writes (cancels, full-position Close) admitted.", m->accepted_exempt);
    scalar(&o, "exempt_waits_total", "counter",
           "Exempt writes that waited for a slot because the whole ring was full.",
           m->exempt_waits);
    scalar(&o, "closed_total", "counter", "Writes refused because the queue was shut down.",
           m->closed);
    scalar(&o, "taken_total", "counter",
           "Writes taken for service (by the engine thread or, rule 5a, a producer).", m->taken);
    scalar(&o, "processed_total", "counter", "Engine commands processed.", m->processed);
    scalar(&o, "producer_served_total", "counter",
           "Writes served on the thread that submitted them, not the engine thread.",
           m->producer_served);
    scalar(&o, "depth", "gauge", "Writes waiting in the queue.", m->depth);
    scalar(&o, "depth_max", "gauge", "Largest queue depth seen.", m->depth_max);
    scalar(&o, "depth_limit", "gauge", "Depth at which new writes are shed.", m->depth_limit);
    head(&o, "latency_cap_seconds", "gauge",
         "Queue wait the depth limit is derived from (0: fixed depth).");
    put(&o, "perpsim_loadshed_latency_cap_seconds %s\n",
        seconds((uint64_t)(m->latency_cap_ns > 0 ? m->latency_cap_ns : 0), b));
    head(&o, "service_estimate_seconds", "gauge", "Moving average of the service time per write.");
    put(&o, "perpsim_loadshed_service_estimate_seconds %s\n",
        seconds((uint64_t)(m->service_estimate_ns > 0 ? m->service_estimate_ns : 0), b));
    histogram(&o, "queue_wait_seconds", "Time from admission until the write was taken for service.",
              &m->wait);
    histogram(&o, "service_seconds", "Engine service time per write.", &m->service);
    return o.len;
}

size_t ls_metrics_prometheus(const struct ls_queue *q, char *buf, size_t size)
{
    struct ls_metrics m;
    ls_metrics(q, &m);
    return ls_metrics_format(&m, buf, size);
}
