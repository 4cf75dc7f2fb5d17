/*
 * loadshed.h - the bounded write queue between the API threads and the single
 * engine thread: admit or refuse (503) at arrival, serve in arrival order.
 *
 * BitMEX (its load-shedding documentation and the 2019 "Road to 100x"
 * article): every order-management write joins ONE FIFO queue in front
 * of the engine. When the queue is at its depth limit a new write is refused
 * at once (api/ answers 503 "The system is currently overloaded. Please try
 * again later."), it never waits. Cancels (single, multiple, all,
 * cancelAllAfter) and a full-position Close (execInst Close without orderQty,
 * not bulk) are exempt: always admitted, at the back of the same queue.
 * Acceptance depends only on the depth at arrival; service is strictly in
 * arrival order; there is no fast lane. This module does no I/O and knows
 * nothing of HTTP: api/ classifies a request (kind, exempt) and maps the
 * result to a status; the items are opaque pointers.
 *
 * ---------------------------------------------------------------------------
 * THE RULES
 * ---------------------------------------------------------------------------
 * 1. Depth. depth = writes admitted and not yet taken by the consumer, plus
 *    exempt writes waiting for a slot (rule 4). A write is out of the queue
 *    the moment ls_take() hands it to the engine thread.
 *
 * 2. Admission of an ordinary (non-exempt) write: admitted iff the queue is
 *    open, depth < depth limit, and no exempt write is waiting for a slot
 *    (rule 4). Otherwise it is SHED: nothing is enqueued and nothing changes
 *    but the shed counter of its kind. A shed never blocks; when the depth
 *    read without the lock is already at the limit it does not even take the
 *    lock (rule 8), so refusing costs the engine nothing under overload.
 *
 * 3. Depth limit, one of two modes, changeable at run time (thread-safe):
 *    - LS_FIXED: the limit is a number of writes, 0..capacity (0 sheds every
 *      ordinary write: a maintenance switch).
 *    - LS_LATENCY_CAP: the limit is a maximum queue wait. limit =
 *      floor(cap_ns / mean service time per write) - 1 (the slot of the write
 *      in service: a write admitted at the back then waits at most about
 *      cap - one service time on average, not exactly the cap), clamped to
 *      [min_depth, capacity]. The mean is an EWMA of the per-write service
 *      time the consumer reports through ls_done(): before the first report
 *      it is config.initial_service_ns; the first report replaces that guess
 *      outright; every later report moves it by 1/2^ewma_shift of the
 *      difference (one update per ls_done() call, whatever its batch size).
 *      The mean is kept in 1/256 ns fixed point; a zero mean gives capacity.
 *      The limit is recomputed on every report and every setter call. The
 *      EWMA is fed in both modes, so switching to LS_LATENCY_CAP uses what
 *      was measured while the depth was fixed.
 *    Lowering the limit never evicts admitted writes: new ordinary writes are
 *    shed until the depth falls below the new limit.
 *
 * 4. Exempt writes are never refused while the queue is open. The ring has
 *    capacity + exempt_headroom slots; ordinary writes can use at most
 *    capacity of them (limit <= capacity), so exempt writes always find the
 *    headroom. If even the whole ring is full (more than exempt_headroom
 *    exempt writes queued beyond the limit, a pathological flood), the
 *    submitting thread waits for a slot instead of being refused, in ticket
 *    order, so exempt writes still enter in arrival order; while any waits,
 *    every ordinary write is shed and every new exempt write waits behind it.
 *    Such a write counts in the depth while it waits, keeps its arrival time
 *    (now_ns) as its enqueue time, and is refused only by ls_shutdown()
 *    (LS_CLOSED). No allocation happens after ls_create().
 *
 * 5. Service. ls_take() returns the oldest writes first, up to max, each with
 *    its arrival sequence number (1, 2, 3, ... over admitted writes, in the
 *    order they entered the ring) and its enqueue time. Queue wait = the
 *    queue's clock at take time - enqueue time (0 if negative), recorded in
 *    the wait histogram. Exactly one consumer thread (the engine thread)
 *    calls ls_take() and ls_done().
 *
 * 5a. Running at once. ls_submit_run() admits a write like ls_submit() but,
 *    when the queue is empty and nobody is serving (the consumer is not
 *    between an ls_take() that returned writes and its ls_done() or next
 *    ls_take(), and no other producer is running one), it hands the write
 *    straight back instead of queuing it: the producer serves it itself, at
 *    once, and reports with ls_run_done(). Such a write takes the next
 *    sequence number, waits 0 ns and counts as taken; while it is served,
 *    writes admitted behind it queue as usual and ls_take() does not hand
 *    them out before ls_run_done(), so service stays one write at a time in
 *    arrival order. When it is done, the producer may go on serving the
 *    writes queued behind it meanwhile, oldest first, as long as each was
 *    submitted through ls_submit_run() (ls_run_done()); it stops at the
 *    first other write or when it chooses to, and the consumer takes the
 *    rest. While a producer serves, a write queued behind it does not wake
 *    the consumer; stopping does, if anything is queued. On an idle or
 *    lightly loaded engine this saves the wake-up of the consumer thread and
 *    the wake-up back (flat combining: the engine is whoever serves, one at
 *    a time).
 *
 * 6. Shutdown. ls_shutdown() closes the queue: every later ls_submit() is
 *    LS_CLOSED (counted in `closed`, nothing else changes), exempt writes
 *    waiting for a slot return LS_CLOSED, and a blocked consumer wakes.
 *    Writes admitted before the shutdown are still handed out: ls_take()
 *    returns LS_TAKE_CLOSED only once the queue is closed AND empty, so every
 *    admitted write gets its answer. Drain before ls_destroy(); the queue
 *    never frees items.
 *
 * 7. Time. Times are int64 nanoseconds of one monotonic clock (names end in
 *    _ns). Producers pass their own now_ns (the request's arrival time). The
 *    consumer may block, so ls_take() reads the clock itself, through
 *    config.clock (default ls_now_ns(), CLOCK_MONOTONIC); tests inject a fake
 *    clock there. Producers must use the same clock. Timeouts of ls_take()
 *    are real time (the condition variable waits on CLOCK_MONOTONIC).
 *
 * 8. Concurrency and memory ordering. The ring, the sequence counter, the
 *    exempt tickets, the mode and the EWMA are guarded by one mutex; the
 *    critical sections are a few loads and stores (no allocation, no clock,
 *    no histogram work inside; a waiting consumer is signalled after the
 *    producer unlocks, so it never wakes only to block on the mutex). Every
 *    counter and gauge in ls_metrics is a C11 _Atomic 64-bit value, updated
 *    with relaxed read-modify-writes (or relaxed stores under the mutex, for
 *    the gauges) and read with relaxed loads, so metrics never stop
 *    producers or the consumer. Relaxed means:
 *    each value by itself is exact, torn-free and (counters) monotonic, but
 *    a snapshot taken while traffic flows is not one instant: e.g.
 *    accepted may already include a write the depth gauge does not show yet.
 *    A histogram's count is computed as the sum of its buckets, so _count
 *    always equals the +Inf bucket; its sum may lead or lag by the
 *    observations in flight. Once all threads are quiescent (joined), a
 *    snapshot is exact: sum(accepted) + sum(shed) + closed == submits
 *    (LS_BAD_KIND submits count nowhere).
 *    The shed fast path reads depth and limit relaxed without the lock: it
 *    may see a depth a few nanoseconds old and shed a write that a
 *    just-finished ls_take() would have made room for; that is the same as
 *    the write arriving a moment earlier, and never admits beyond the limit
 *    (admission itself is decided under the lock).
 *
 * 9. Histograms (queue wait and per-write service time): log-linear buckets
 *    with upper bounds 1 us * 2^i, i = 0..24 (1 us .. 16.777216 s), plus
 *    +Inf. A value v goes to the first bucket with v <= bound (Prometheus
 *    `le`): 1000 ns is in le=1us, 1001 ns in le=2us. ls_done(n, s) observes
 *    the per-write mean floor(s / n) n times and adds s to the sum, so
 *    sum / count is the exact mean. Quantiles: ls_hist_quantile_ns().
 */
#ifndef PERPSIM_LOADSHED_H
#define PERPSIM_LOADSHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits, each with the reason it exists ----------------------------- */

/* Ring indices are uint32_t; 16M slots of 32 bytes is already 512 MiB. */
#define LS_SLOTS_MAX (UINT32_C(1) << 24)
/* A latency cap or service sample beyond an hour is a unit error, not a
 * setting; the bound also keeps the 1/256 ns fixed point inside int64. */
#define LS_TIME_MAX_NS (INT64_C(3600) * 1000000000)
/* EWMA weight 1/2^shift; 0 = follow the last report only. */
#define LS_EWMA_SHIFT_MAX 16u
/* Finite histogram buckets: upper bounds 1 us * 2^i, i = 0..24. */
#define LS_HIST_FINITE 25u
/* ... plus the +Inf bucket. */
#define LS_HIST_BUCKETS (LS_HIST_FINITE + 1u)

/* ---- defaults (ls_config_default) -------------------------------------- */

/* BitMEX tunes the depth "to cap latency at a worst-case latency of 3-5
 * seconds" (Road to 100x, 2019): the lower end. */
#define LS_DEFAULT_LATENCY_CAP_NS (INT64_C(3) * 1000000000)
#define LS_DEFAULT_CAPACITY 65536u
/* Far more than the concurrent connections api/ serves, so an exempt write
 * waiting for a slot (rule 4) does not happen in practice. */
#define LS_DEFAULT_EXEMPT_HEADROOM 65536u
/* Never shed while fewer than this many writes wait: one slow command must
 * not close the door. */
#define LS_DEFAULT_MIN_DEPTH 8u
/* The guess before any measurement: a write's engine work plus its reply. */
#define LS_DEFAULT_INITIAL_SERVICE_NS INT64_C(10000)
#define LS_DEFAULT_EWMA_SHIFT 3u

/* ---- enumerations -------------------------------------------------------- */

/* What a write is, for metrics only (admission uses the exempt flag). */
enum ls_kind {
    LS_KIND_NEW_ORDER = 0, /* POST /order (also Close without qty: exempt) */
    LS_KIND_AMEND,         /* PUT /order */
    LS_KIND_CANCEL,        /* DELETE /order: exempt */
    LS_KIND_CANCEL_ALL,    /* DELETE /order/all: exempt */
    LS_KIND_CANCEL_AFTER,  /* POST /order/cancelAllAfter: exempt */
    LS_KIND_BULK,          /* POST/PUT /order/bulk: never exempt */
    LS_KIND_POSITION,      /* leverage, isolate, transferMargin, riskLimit */
    LS_KIND_OTHER,
    LS_KIND_COUNT
};

enum ls_mode { LS_FIXED = 1, LS_LATENCY_CAP = 2 };

/* The answer to one ls_submit(). */
enum ls_result {
    LS_ACCEPTED = 0, /* enqueued; the consumer will take it */
    LS_SHED,         /* at the depth limit: refused, nothing enqueued (503) */
    LS_CLOSED,       /* after ls_shutdown(): refused, nothing enqueued */
    LS_BAD_KIND,     /* kind not an enum ls_kind value: nothing changed */
};

/* Errors of create, setters and ls_done(). */
enum ls_err {
    LS_OK = 0,
    LS_ERR_RANGE,  /* an argument or config field outside its documented range */
    LS_ERR_NOMEM,  /* ls_create() could not allocate */
    LS_ERR_THREAD, /* ls_create() could not initialise a mutex or condition */
};

/* What ls_take() returned. */
enum ls_take_result {
    LS_TAKE_OK = 0,  /* *n_out >= 1 entries written */
    LS_TAKE_TIMEOUT, /* nothing arrived within timeout_ns */
    LS_TAKE_CLOSED,  /* shut down and empty: the consumer can stop */
    LS_TAKE_BAD_ARG, /* out or n_out NULL, or max 0: nothing taken */
};

/* ---- configuration ------------------------------------------------------- */

typedef int64_t (*ls_clock_fn)(void *ctx);

struct ls_config {
    uint32_t capacity;        /* >= 1: the largest depth limit (ordinary writes) */
    uint32_t exempt_headroom; /* extra slots only exempt writes use; may be 0 */
    enum ls_mode mode;
    uint32_t fixed_depth;       /* LS_FIXED: 0..capacity (ignored otherwise) */
    int64_t latency_cap_ns;     /* LS_LATENCY_CAP: 1..LS_TIME_MAX_NS (ignored otherwise) */
    /* Checked in both modes: a setter may switch to LS_LATENCY_CAP later. */
    uint32_t min_depth;         /* latency-cap clamp: 0..capacity */
    int64_t initial_service_ns; /* the guess before any ls_done(): 1..LS_TIME_MAX_NS */
    uint32_t ewma_shift;        /* 0..LS_EWMA_SHIFT_MAX */
    ls_clock_fn clock;         /* NULL: ls_now_ns() */
    void *clock_ctx;
};

/* LS_LATENCY_CAP, 3 s cap, the LS_DEFAULT_* values above, fixed_depth =
 * capacity (used if the mode is switched to LS_FIXED), clock NULL. */
void ls_config_default(struct ls_config *cfg);

/* ---- lifetime -------------------------------------------------------------- */

struct ls_queue;

/* Allocates the whole ring. *out is set only on LS_OK. */
enum ls_err ls_create(const struct ls_config *cfg, struct ls_queue **out);
/* After every producer and the consumer have stopped. NULL is a no-op. */
void ls_destroy(struct ls_queue *q);
/* Rule 6. Idempotent; any thread. */
void ls_shutdown(struct ls_queue *q);

/* CLOCK_MONOTONIC in ns, for real callers. */
int64_t ls_now_ns(void);

/* ---- producers (any number of threads) ----------------------------------- */

/* Rules 2 and 4. Blocks only for an exempt write when the whole ring is
 * full (rule 4). */
enum ls_result ls_submit(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt,
                         int64_t now_ns);

struct ls_entry;

/* Rule 5a. As ls_submit(), and when the result is LS_ACCEPTED, *run_now
 * tells whether the caller must serve the write itself now and then call
 * ls_run_done() (true) or it was queued for the consumer (false). */
enum ls_result ls_submit_run(struct ls_queue *q, void *item, enum ls_kind kind, bool exempt,
                             int64_t now_ns, bool *run_now);

/* Rule 5a: the producer finished the write it serves, in service_ns (as
 * ls_done(q, 1, service_ns)). When `more` and the oldest queued write was
 * submitted through ls_submit_run() too, that write is moved to *next (as
 * ls_take() would) and the producer serves it next (true). Otherwise the
 * producer stops serving and the consumer takes what is queued (false). */
bool ls_run_done(struct ls_queue *q, int64_t service_ns, bool more, struct ls_entry *next);

/* ---- the consumer (one thread) --------------------------------------------- */

struct ls_entry {
    void *item;
    int64_t enqueue_ns; /* the now_ns given to ls_submit() */
    int64_t wait_ns;    /* take time - enqueue_ns, >= 0 */
    uint64_t seq;       /* arrival order of admitted writes: 1, 2, 3, ... */
    enum ls_kind kind;
    bool exempt;
};

/* Waits until at least one write is queued and no producer is serving one
 * (rule 5a), the timeout passes
 * (timeout_ns < 0: forever; 0: do not wait) or the queue is closed and
 * empty; then moves up to max of the oldest writes to out[] in FIFO order.
 * *n_out is always written (0 unless LS_TAKE_OK). */
enum ls_take_result ls_take(struct ls_queue *q, struct ls_entry *out, size_t max,
                            int64_t timeout_ns, size_t *n_out);

/* The engine finished n_items (>= 1) writes in service_ns (0..) of work:
 * feeds the EWMA (rule 3), the service histogram (rule 9) and `processed`.
 * service_ns per write above LS_TIME_MAX_NS is clamped for the EWMA only.
 * LS_ERR_RANGE (n_items 0, service_ns < 0) records nothing. */
enum ls_err ls_done(struct ls_queue *q, size_t n_items, int64_t service_ns);

/* ---- run-time settings (admin API; any thread) ---------------------------- */

/* Switches to LS_FIXED with this depth (0..capacity), else LS_ERR_RANGE. */
enum ls_err ls_set_fixed_depth(struct ls_queue *q, uint32_t depth);
/* Switches to LS_LATENCY_CAP with this cap (1..LS_TIME_MAX_NS), keeping the
 * EWMA measured so far, else LS_ERR_RANGE. */
enum ls_err ls_set_latency_cap(struct ls_queue *q, int64_t cap_ns);

/* ---- metrics ---------------------------------------------------------------- */

struct ls_hist_snap {
    uint64_t bucket[LS_HIST_BUCKETS]; /* per bucket, not cumulative; last: +Inf */
    uint64_t count;                   /* sum of bucket[] */
    uint64_t sum_ns;
    int64_t max_ns; /* largest value observed, 0 if none */
};

struct ls_metrics {
    uint64_t accepted[LS_KIND_COUNT]; /* exempt ones included */
    uint64_t shed[LS_KIND_COUNT];
    uint64_t accepted_exempt; /* of all accepted, how many were exempt */
    uint64_t exempt_waits;    /* exempt writes that had to wait for a slot (rule 4) */
    uint64_t closed;          /* submits refused after shutdown */
    uint64_t taken;           /* writes taken for service (consumer or rule 5a) */
    uint64_t processed;       /* writes the consumer reported done (ls_done) */
    uint64_t producer_served; /* of those taken, writes a producer served (rule 5a) */
    uint64_t depth;
    uint64_t depth_max;
    uint64_t depth_limit;
    enum ls_mode mode;
    int64_t latency_cap_ns;      /* 0 in LS_FIXED */
    int64_t service_estimate_ns; /* the EWMA (or the guess), truncated to ns */
    struct ls_hist_snap wait;    /* queue wait per write */
    struct ls_hist_snap service; /* service time per write */
};

/* Relaxed snapshot (rule 8); never blocks producers or the consumer. */
void ls_metrics(const struct ls_queue *q, struct ls_metrics *m);

/* Renders ls_metrics() in the Prometheus text exposition format (0.0.4):
 * HELP and TYPE lines, perpsim_loadshed_* names, times in seconds as exact
 * decimals, histograms as _bucket{le="..."} (cumulative), _sum, _count.
 * Like snprintf: writes at most size bytes including the NUL (buf may be
 * NULL when size is 0) and returns the length the full text needs. */
size_t ls_metrics_prometheus(const struct ls_queue *q, char *buf, size_t size);
/* The same text from a snapshot (deterministic for tests). */
size_t ls_metrics_format(const struct ls_metrics *m, char *buf, size_t size);

/* ---- histogram helpers --------------------------------------------------- */

/* The bucket a value lands in (rule 9): 0..LS_HIST_FINITE (= +Inf). */
unsigned ls_hist_bucket(int64_t ns);
/* Upper bound of finite bucket i in ns (1000 << i); INT64_MAX for +Inf. */
int64_t ls_hist_bound_ns(unsigned i);

/* Quantile estimate, q in parts per million (500000 = p50, 990000 = p99,
 * 999000 = p99.9), as Prometheus' histogram_quantile but in integers:
 * rank = ceil(q * count / 1e6) (at least 1); find the bucket where the
 * cumulative count reaches rank; interpolate linearly inside it:
 *   lower + (upper - lower) * (rank - count below) / count in bucket,
 * truncated to ns, with lower = 0 for the first bucket. In the +Inf bucket
 * the answer is max_ns. An empty histogram gives 0; q above 1e6 is 1e6. */
int64_t ls_hist_quantile_ns(const struct ls_hist_snap *h, uint32_t q_ppm);

/* "new_order", "amend", ... (the Prometheus label); "?" out of range. */
const char *ls_kind_name(enum ls_kind kind);

#endif
