/*
 * test_loadshed.c - Check suite for loadshed/: the bounded write queue.
 *
 * Every test names the rule of loadshed.h it checks. Queue waits use a fake
 * clock (config.clock reads an atomic the test sets), so wait histograms are
 * exact; only the blocking tests (shutdown, exempt wait, timeouts) and the
 * stress runs use real time, and those assert orders of events, never
 * durations beyond "at least the timeout". The stress runs print their
 * throughput (submits/s, takes/s) to the test log.
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadshed/loadshed.h"

#define MS (INT64_C(1000000))
#define US (INT64_C(1000))

/* ---- helpers ---------------------------------------------------------------- */

struct fake_clock {
    _Atomic int64_t now_ns;
};

static int64_t fake_now(void *ctx)
{
    return atomic_load(&((struct fake_clock *)ctx)->now_ns);
}

static void fake_set(struct fake_clock *c, int64_t ns)
{
    atomic_store(&c->now_ns, ns);
}

/* A FIXED-mode queue on a fake clock. */
static struct ls_queue *fixed_queue(uint32_t capacity, uint32_t headroom, uint32_t depth,
                                    struct fake_clock *clk)
{
    struct ls_config cfg;
    ls_config_default(&cfg);
    cfg.capacity = capacity;
    cfg.exempt_headroom = headroom;
    cfg.mode = LS_FIXED;
    cfg.fixed_depth = depth;
    cfg.min_depth = capacity < LS_DEFAULT_MIN_DEPTH ? capacity : LS_DEFAULT_MIN_DEPTH;
    cfg.clock = clk != NULL ? fake_now : NULL;
    cfg.clock_ctx = clk;
    struct ls_queue *q = NULL;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_OK);
    ck_assert_ptr_nonnull(q);
    return q;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

static struct ls_metrics metrics(const struct ls_queue *q)
{
    struct ls_metrics m;
    ls_metrics(q, &m);
    return m;
}

/* Polls until the queue's depth gauge reads `depth` (2 s at most). */
static int wait_depth(const struct ls_queue *q, uint64_t depth)
{
    for (int i = 0; i < 2000; i++) {
        if (metrics(q).depth == depth)
            return 1;
        sleep_ns(MS);
    }
    return 0;
}

static uint64_t sum_kinds(const uint64_t *v)
{
    uint64_t s = 0;
    for (unsigned k = 0; k < LS_KIND_COUNT; k++)
        s += v[k];
    return s;
}

/* Items the tests enqueue: their address is the opaque pointer. */
static int tokens[64];
#define TOK(i) ((void *)&tokens[(i)])

/* ---- creation and arguments ---------------------------------------------------- */

START_TEST(create_rejects_bad_config_by_name)
{
    struct ls_config cfg;
    struct ls_queue *q = (struct ls_queue *)&tokens[0]; /* must stay untouched */
    struct ls_queue *const sentinel = q;

    ls_config_default(&cfg);
    cfg.capacity = 0;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.capacity = LS_SLOTS_MAX;
    cfg.exempt_headroom = 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.mode = LS_FIXED;
    cfg.fixed_depth = cfg.capacity + 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.latency_cap_ns = 0;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.latency_cap_ns = LS_TIME_MAX_NS + 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.initial_service_ns = 0;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.min_depth = cfg.capacity + 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    /* min_depth and the guess are checked in LS_FIXED too: a setter can
     * switch to the latency cap later. */
    ls_config_default(&cfg);
    cfg.mode = LS_FIXED;
    cfg.min_depth = cfg.capacity + 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.mode = LS_FIXED;
    cfg.initial_service_ns = 0;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.ewma_shift = LS_EWMA_SHIFT_MAX + 1;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ls_config_default(&cfg);
    cfg.mode = (enum ls_mode)7;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_ERR_RANGE);
    ck_assert_int_eq(ls_create(NULL, &q), LS_ERR_RANGE);
    ck_assert_ptr_eq(q, sentinel);

    /* The defaults: latency cap 3 s over a 10 us guess = 300,000, clamped to
     * the capacity 65,536. */
    ls_config_default(&cfg);
    ck_assert_int_eq(ls_create(&cfg, &q), LS_OK);
    struct ls_metrics m = metrics(q);
    ck_assert_int_eq(m.mode, LS_LATENCY_CAP);
    ck_assert_uint_eq(m.depth_limit, 65536);
    ck_assert_int_eq(m.latency_cap_ns, 3000 * MS);
    ck_assert_int_eq(m.service_estimate_ns, 10 * US);
    ls_destroy(q);
    ls_destroy(NULL);
}
END_TEST

START_TEST(submit_and_take_reject_bad_arguments)
{
    struct ls_queue *q = fixed_queue(4, 0, 4, NULL);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_COUNT, false, 0), LS_BAD_KIND);
    ck_assert_int_eq(ls_submit(q, TOK(0), (enum ls_kind)-1, true, 0), LS_BAD_KIND);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth, 0);
    ck_assert_uint_eq(sum_kinds(m.accepted) + sum_kinds(m.shed) + m.closed, 0);

    struct ls_entry e[2];
    size_t n = 99;
    ck_assert_int_eq(ls_take(q, NULL, 2, 0, &n), LS_TAKE_BAD_ARG);
    ck_assert_uint_eq(n, 0);
    n = 99;
    ck_assert_int_eq(ls_take(q, e, 0, 0, &n), LS_TAKE_BAD_ARG);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(ls_take(q, e, 2, 0, NULL), LS_TAKE_BAD_ARG);
    ck_assert_int_eq(ls_take(q, NULL, 2, 0, NULL), LS_TAKE_BAD_ARG);
    ck_assert_str_eq(ls_kind_name(LS_KIND_CANCEL_AFTER), "cancel_after");
    ck_assert_str_eq(ls_kind_name(LS_KIND_COUNT), "?");
    ls_destroy(q);
}
END_TEST

/* ---- FIFO (rule 5) ------------------------------------------------------------ */

START_TEST(fifo_single_thread_with_seq_times_and_waits)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(8, 0, 8, &clk);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ls_submit(q, TOK(i), (enum ls_kind)(i % 3), false, 10 * (i + 1)),
                         LS_ACCEPTED);

    struct ls_entry e[8];
    size_t n = 0;
    fake_set(&clk, 100);
    ck_assert_int_eq(ls_take(q, e, 3, -1, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_eq(e[i].item, TOK(i));
        ck_assert_uint_eq(e[i].seq, (uint64_t)i + 1);
        ck_assert_int_eq(e[i].enqueue_ns, 10 * (i + 1));
        ck_assert_int_eq(e[i].wait_ns, 100 - 10 * (i + 1));
        ck_assert_int_eq(e[i].kind, i % 3);
        ck_assert(!e[i].exempt);
    }
    ck_assert_uint_eq(metrics(q).depth, 2);

    /* A clock behind the enqueue time gives wait 0, never negative. */
    fake_set(&clk, 0);
    ck_assert_int_eq(ls_take(q, e, 8, -1, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(e[0].item, TOK(3));
    ck_assert_ptr_eq(e[1].item, TOK(4));
    ck_assert_uint_eq(e[1].seq, 5);
    ck_assert_int_eq(e[0].wait_ns, 0);

    ck_assert_int_eq(ls_take(q, e, 8, 0, &n), LS_TAKE_TIMEOUT);
    ck_assert_uint_eq(n, 0);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.taken, 5);
    ck_assert_uint_eq(m.depth, 0);
    ck_assert_uint_eq(m.depth_max, 5);
    ls_destroy(q);
}
END_TEST

/* The ring wraps: many laps through 3 slots keep order and sequence. */
START_TEST(fifo_survives_ring_wraparound)
{
    struct ls_queue *q = fixed_queue(3, 0, 3, NULL);
    struct ls_entry e[3];
    size_t n = 0;
    uint64_t seq = 0;
    for (int lap = 0; lap < 50; lap++) {
        int put = 1 + lap % 3;
        for (int i = 0; i < put; i++)
            ck_assert_int_eq(ls_submit(q, TOK(lap % 20 + i), LS_KIND_NEW_ORDER, false, 0),
                             LS_ACCEPTED);
        ck_assert_int_eq(ls_take(q, e, 3, 0, &n), LS_TAKE_OK);
        ck_assert_uint_eq(n, (size_t)put);
        for (int i = 0; i < put; i++) {
            ck_assert_ptr_eq(e[i].item, TOK(lap % 20 + i));
            ck_assert_uint_eq(e[i].seq, ++seq);
        }
    }
    ls_destroy(q);
}
END_TEST

#define FP_PRODUCERS 4
#define FP_ITEMS 5000

struct fp_arg {
    struct ls_queue *q;
    uint32_t items[FP_ITEMS]; /* value: producer << 16 | index */
    int failures;
};

static void *fp_producer(void *p)
{
    struct fp_arg *a = p;
    for (int i = 0; i < FP_ITEMS; i++)
        if (ls_submit(a->q, &a->items[i], LS_KIND_NEW_ORDER, false, 0) != LS_ACCEPTED)
            a->failures++;
    return NULL;
}

START_TEST(fifo_across_producers_keeps_each_producers_order)
{
    uint32_t total = FP_PRODUCERS * FP_ITEMS;
    struct ls_queue *q = fixed_queue(total, 0, total, NULL);
    static struct fp_arg args[FP_PRODUCERS];
    pthread_t th[FP_PRODUCERS];
    for (int p = 0; p < FP_PRODUCERS; p++) {
        args[p].q = q;
        args[p].failures = 0;
        for (int i = 0; i < FP_ITEMS; i++)
            args[p].items[i] = (uint32_t)p << 16 | (uint32_t)i;
        ck_assert_int_eq(pthread_create(&th[p], NULL, fp_producer, &args[p]), 0);
    }
    for (int p = 0; p < FP_PRODUCERS; p++) {
        pthread_join(th[p], NULL);
        ck_assert_int_eq(args[p].failures, 0);
    }

    static struct ls_entry e[FP_PRODUCERS * FP_ITEMS];
    size_t n = 0;
    ck_assert_int_eq(ls_take(q, e, total, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, total);
    int next[FP_PRODUCERS] = {0};
    for (uint32_t k = 0; k < total; k++) {
        uint32_t v = *(uint32_t *)e[k].item;
        uint32_t p = v >> 16, i = v & 0xffff;
        ck_assert_uint_lt(p, FP_PRODUCERS);
        ck_assert_uint_eq(i, (uint32_t)next[p]); /* in order, none lost or repeated */
        next[p]++;
        ck_assert_uint_eq(e[k].seq, (uint64_t)k + 1); /* served in arrival order */
    }
    for (int p = 0; p < FP_PRODUCERS; p++)
        ck_assert_int_eq(next[p], FP_ITEMS);
    ls_destroy(q);
}
END_TEST

/* ---- admission (rules 2 and 4) -------------------------------------------------- */

START_TEST(fixed_depth_refuses_exactly_at_the_limit)
{
    struct ls_queue *q = fixed_queue(10, 4, 3, NULL);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_AMEND, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_POSITION, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(3), LS_KIND_NEW_ORDER, false, 0), LS_SHED);
    ck_assert_int_eq(ls_submit(q, TOK(4), LS_KIND_BULK, false, 0), LS_SHED);
    ck_assert_uint_eq(metrics(q).depth, 3);

    struct ls_entry e[4];
    size_t n = 0;
    ck_assert_int_eq(ls_take(q, e, 1, 0, &n), LS_TAKE_OK);
    ck_assert_ptr_eq(e[0].item, TOK(0));
    ck_assert_int_eq(ls_submit(q, TOK(5), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(6), LS_KIND_NEW_ORDER, false, 0), LS_SHED);

    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.accepted[LS_KIND_NEW_ORDER], 2);
    ck_assert_uint_eq(m.accepted[LS_KIND_AMEND], 1);
    ck_assert_uint_eq(m.accepted[LS_KIND_POSITION], 1);
    ck_assert_uint_eq(m.shed[LS_KIND_NEW_ORDER], 2);
    ck_assert_uint_eq(m.shed[LS_KIND_BULK], 1);
    ck_assert_uint_eq(sum_kinds(m.accepted), 4);
    ck_assert_uint_eq(sum_kinds(m.shed), 3);
    ck_assert_uint_eq(m.depth, 3);
    ck_assert_uint_eq(m.depth_max, 3);
    ck_assert_uint_eq(m.depth_limit, 3);

    /* Depth 0: every ordinary write is shed, exempt ones still enter. */
    ck_assert_int_eq(ls_set_fixed_depth(q, 0), LS_OK);
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ls_submit(q, TOK(7), LS_KIND_NEW_ORDER, false, 0), LS_SHED);
    ck_assert_int_eq(ls_submit(q, TOK(8), LS_KIND_CANCEL, true, 0), LS_ACCEPTED);
    ls_destroy(q);
}
END_TEST

#define RACE_THREADS 3
#define RACE_TAKES 20000
#define RACE_LIMIT 8

struct race_arg {
    struct ls_queue *q;
    _Atomic int *stop;
    uint64_t accepted;
    uint64_t submitted;
};

static void *race_producer(void *v)
{
    struct race_arg *a = v;
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        enum ls_result r = ls_submit(a->q, TOK(a->submitted % 64), LS_KIND_NEW_ORDER, false, 0);
        a->submitted++;
        if (r == LS_ACCEPTED)
            a->accepted++;
        else
            sched_yield(); /* let the consumer run; stay runnable for the next slot */
    }
    return NULL;
}

/* Producers hammer a full queue while the consumer takes one write at a
 * time (RACE_TAKES of them, or 1 s): every take opens one slot that all of
 * them race for. The decision under the lock admits one racer per slot, so
 * the depth never goes past the limit, and every count adds up. */
START_TEST(racing_producers_never_pass_the_limit)
{
    struct ls_queue *q = fixed_queue(64, 0, RACE_LIMIT, NULL);
    _Atomic int stop = 0;
    struct race_arg a[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int t = 0; t < RACE_THREADS; t++) {
        a[t] = (struct race_arg){q, &stop, 0, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, race_producer, &a[t]), 0);
    }
    struct ls_entry e[1];
    size_t n = 0;
    uint64_t taken = 0;
    int64_t until = ls_now_ns() + 1000 * MS;
    while (taken < RACE_TAKES && ls_now_ns() < until) {
        if (ls_take(q, e, 1, 0, &n) == LS_TAKE_OK)
            taken += n;
    }
    atomic_store(&stop, 1);
    uint64_t acc = 0, sub = 0;
    for (int t = 0; t < RACE_THREADS; t++) {
        pthread_join(th[t], NULL);
        acc += a[t].accepted;
        sub += a[t].submitted;
    }
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth_max, RACE_LIMIT);
    ck_assert_uint_eq(acc, taken + m.depth);
    ck_assert_uint_eq(sum_kinds(m.accepted), acc);
    ck_assert_uint_eq(sum_kinds(m.shed), sub - acc);
    printf("loadshed race: %" PRIu64 " taken one at a time, %" PRIu64 " submits\n", taken, sub);
    ls_destroy(q);
}
END_TEST

START_TEST(shed_changes_nothing_but_its_counter)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(4, 2, 2, &clk);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 5), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_NEW_ORDER, false, 6), LS_ACCEPTED);
    struct ls_metrics before = metrics(q);

    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_AMEND, false, 7), LS_SHED);
    struct ls_metrics after = metrics(q);
    ck_assert_uint_eq(after.shed[LS_KIND_AMEND], before.shed[LS_KIND_AMEND] + 1);
    after.shed[LS_KIND_AMEND] = before.shed[LS_KIND_AMEND];
    ck_assert_int_eq(memcmp(&before, &after, sizeof before), 0);

    /* The ring and the sequence are untouched: the next admitted write gets
     * seq 3 and the shed item never comes out. */
    ck_assert_int_eq(ls_submit(q, TOK(3), LS_KIND_CANCEL, true, 8), LS_ACCEPTED);
    struct ls_entry e[4];
    size_t n = 0;
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(e[0].item, TOK(0));
    ck_assert_ptr_eq(e[1].item, TOK(1));
    ck_assert_ptr_eq(e[2].item, TOK(3));
    ck_assert_uint_eq(e[2].seq, 3);
    ls_destroy(q);
}
END_TEST

START_TEST(exempt_accepted_when_full_and_served_in_arrival_order)
{
    struct ls_queue *q = fixed_queue(2, 4, 2, NULL);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_AMEND, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_NEW_ORDER, false, 0), LS_SHED);
    ck_assert_int_eq(ls_submit(q, TOK(3), LS_KIND_CANCEL, true, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(4), LS_KIND_NEW_ORDER, false, 0), LS_SHED);
    /* A full-position Close is a new order flagged exempt by api/. */
    ck_assert_int_eq(ls_submit(q, TOK(5), LS_KIND_NEW_ORDER, true, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(6), LS_KIND_CANCEL_ALL, true, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(7), LS_KIND_CANCEL_AFTER, true, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(8), LS_KIND_BULK, false, 0), LS_SHED);

    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth, 6);
    ck_assert_uint_eq(m.accepted_exempt, 4);
    ck_assert_uint_eq(m.accepted[LS_KIND_NEW_ORDER], 2);
    ck_assert_uint_eq(m.shed[LS_KIND_NEW_ORDER], 2);
    ck_assert_uint_eq(m.exempt_waits, 0);

    struct ls_entry e[8];
    size_t n = 0;
    ck_assert_int_eq(ls_take(q, e, 8, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 6);
    const int order[6] = {0, 1, 3, 5, 6, 7};
    const bool exempt[6] = {false, false, true, true, true, true};
    for (int i = 0; i < 6; i++) {
        ck_assert_ptr_eq(e[i].item, TOK(order[i]));
        ck_assert_uint_eq(e[i].seq, (uint64_t)i + 1);
        ck_assert(e[i].exempt == exempt[i]);
    }
    ls_destroy(q);
}
END_TEST

struct sub_arg {
    struct ls_queue *q;
    void *item;
    enum ls_kind kind;
    bool exempt;
    int64_t now_ns;
    _Atomic int done;
    enum ls_result result;
};

static void *submitter(void *p)
{
    struct sub_arg *a = p;
    a->result = ls_submit(a->q, a->item, a->kind, a->exempt, a->now_ns);
    atomic_store(&a->done, 1);
    return NULL;
}

START_TEST(exempt_waits_for_a_slot_when_the_whole_ring_is_full)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(2, 1, 2, &clk);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_CANCEL, true, 10), LS_ACCEPTED);

    struct sub_arg a = {q, TOK(3), LS_KIND_CANCEL, true, 20, 0, LS_SHED};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, submitter, &a), 0);
    ck_assert(wait_depth(q, 4)); /* counted while it waits */
    ck_assert_uint_eq(metrics(q).exempt_waits, 1);
    ck_assert_int_eq(atomic_load(&a.done), 0);
    /* While an exempt write waits, ordinary writes are shed. */
    ck_assert_int_eq(ls_submit(q, TOK(4), LS_KIND_AMEND, false, 30), LS_SHED);

    struct ls_entry e[4];
    size_t n = 0;
    fake_set(&clk, 100);
    ck_assert_int_eq(ls_take(q, e, 1, 0, &n), LS_TAKE_OK);
    ck_assert_ptr_eq(e[0].item, TOK(0));
    pthread_join(th, NULL);
    ck_assert_int_eq(a.result, LS_ACCEPTED);

    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(e[0].item, TOK(1));
    ck_assert_ptr_eq(e[1].item, TOK(2));
    ck_assert_ptr_eq(e[2].item, TOK(3));
    ck_assert_uint_eq(e[2].seq, 4);
    ck_assert_int_eq(e[2].enqueue_ns, 20); /* its arrival time, not its entry time */
    ck_assert_int_eq(e[2].wait_ns, 80);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth, 0);
    ck_assert_uint_eq(m.depth_max, 4);
    ck_assert_uint_eq(m.accepted_exempt, 2);
    ls_destroy(q);
}
END_TEST

/* ---- latency cap (rule 3) ----------------------------------------------------- */

static struct ls_queue *cap_queue(uint32_t capacity, uint32_t min_depth, int64_t cap_ns,
                                  int64_t guess_ns)
{
    struct ls_config cfg;
    ls_config_default(&cfg);
    cfg.capacity = capacity;
    cfg.exempt_headroom = 8;
    cfg.mode = LS_LATENCY_CAP;
    cfg.latency_cap_ns = cap_ns;
    cfg.min_depth = min_depth;
    cfg.initial_service_ns = guess_ns;
    cfg.ewma_shift = 3;
    struct ls_queue *q = NULL;
    ck_assert_int_eq(ls_create(&cfg, &q), LS_OK);
    return q;
}

START_TEST(latency_cap_depth_follows_reported_service_times)
{
    struct ls_queue *q = cap_queue(1000, 1, 10 * MS, 50 * US);
    /* Guess 50 us: 10 ms / 50 us = 200, less the slot in service. */
    ck_assert_uint_eq(metrics(q).depth_limit, 199);

    /* The first report replaces the guess: 100 us -> 100 - 1. */
    ck_assert_int_eq(ls_done(q, 1, 100 * US), LS_OK);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth_limit, 99);
    ck_assert_int_eq(m.service_estimate_ns, 100 * US);
    for (int i = 0; i < 99; i++)
        ck_assert_int_eq(ls_submit(q, TOK(i % 64), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_SHED);

    /* 4 writes in 800 us = 200 us each: EWMA 100 + (200 - 100) / 8 = 112.5 us;
     * 10 ms / 112.5 us = 88.9 -> 88 - 1. */
    ck_assert_int_eq(ls_done(q, 4, 800 * US), LS_OK);
    m = metrics(q);
    ck_assert_int_eq(m.service_estimate_ns, 112500);
    ck_assert_uint_eq(m.depth_limit, 87);
    ck_assert_uint_eq(m.processed, 5);

    /* Runtime setter: 20 ms / 112.5 us = 177.8 -> 177 - 1. */
    ck_assert_int_eq(ls_set_latency_cap(q, 20 * MS), LS_OK);
    m = metrics(q);
    ck_assert_uint_eq(m.depth_limit, 176);
    ck_assert_int_eq(m.latency_cap_ns, 20 * MS);
    ck_assert_int_eq(m.mode, LS_LATENCY_CAP);
    /* 99 queued < 176: admitted again without any take. */
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_AMEND, false, 0), LS_ACCEPTED);

    /* Clamp above: 10 s / 112.5 us = 88,888 -> capacity 1000. */
    ck_assert_int_eq(ls_set_latency_cap(q, 10000 * MS), LS_OK);
    ck_assert_uint_eq(metrics(q).depth_limit, 1000);

    /* Switch to a fixed depth: reports keep the EWMA but not the limit. */
    ck_assert_int_eq(ls_set_fixed_depth(q, 5), LS_OK);
    ck_assert_int_eq(ls_done(q, 1, 1 * US), LS_OK);
    m = metrics(q);
    ck_assert_int_eq(m.mode, LS_FIXED);
    ck_assert_uint_eq(m.depth_limit, 5);
    ck_assert_int_eq(m.latency_cap_ns, 0);
    /* 112500 + (1000 - 112500) / 8 = 98562.5 */
    ck_assert_int_eq(m.service_estimate_ns, 98562);
    /* Back to the cap: 10 ms * 256 / (98562.5 * 256) = 101.46 -> 101 - 1. */
    ck_assert_int_eq(ls_set_latency_cap(q, 10 * MS), LS_OK);
    ck_assert_uint_eq(metrics(q).depth_limit, 100);

    /* Bad values are named and change nothing. */
    ck_assert_int_eq(ls_set_fixed_depth(q, 1001), LS_ERR_RANGE);
    ck_assert_int_eq(ls_set_latency_cap(q, 0), LS_ERR_RANGE);
    ck_assert_int_eq(ls_set_latency_cap(q, LS_TIME_MAX_NS + 1), LS_ERR_RANGE);
    ck_assert_int_eq(ls_done(q, 0, 5), LS_ERR_RANGE);
    ck_assert_int_eq(ls_done(q, 1, -1), LS_ERR_RANGE);
    m = metrics(q);
    ck_assert_uint_eq(m.depth_limit, 100);
    ck_assert_int_eq(m.mode, LS_LATENCY_CAP);
    ck_assert_uint_eq(m.processed, 6);
    ck_assert_uint_eq(m.service.count, 6);
    ls_destroy(q);
}
END_TEST

START_TEST(latency_cap_clamps_to_min_depth_and_handles_zero_service)
{
    /* A queue started fixed switches to the cap with the configured guess
     * (10 us default): 1 ms / 10 us = 100, less the slot in service;
     * min_depth 8 (default) clamps 50 us / 10 us = 5 up to 8. */
    struct ls_queue *f = fixed_queue(1000, 0, 3, NULL);
    ck_assert_int_eq(ls_set_latency_cap(f, 1 * MS), LS_OK);
    ck_assert_uint_eq(metrics(f).depth_limit, 99);
    ck_assert_int_eq(ls_set_latency_cap(f, 50 * US), LS_OK);
    ck_assert_uint_eq(metrics(f).depth_limit, LS_DEFAULT_MIN_DEPTH);
    ls_destroy(f);

    struct ls_queue *q = cap_queue(1000, 10, 1 * MS, 10 * US);
    ck_assert_uint_eq(metrics(q).depth_limit, 99);
    /* 1 ms / 200 us = 5 -> min_depth 10. */
    ck_assert_int_eq(ls_done(q, 2, 400 * US), LS_OK);
    ck_assert_uint_eq(metrics(q).depth_limit, 10);
    ls_destroy(q);

    /* A first report of 0 ns: the mean is 0, the limit is the capacity. */
    q = cap_queue(1000, 10, 1 * MS, 10 * US);
    ck_assert_int_eq(ls_done(q, 3, 0), LS_OK);
    ck_assert_uint_eq(metrics(q).depth_limit, 1000);
    /* Sub-ns precision: 1 ns per 3 writes stays 85/256 ns, 1 ms over that
     * mean = 1e6 * 256 / 85 = 3,011,764 -> capacity. */
    ck_assert_int_eq(ls_done(q, 3, 1), LS_OK);
    ck_assert_uint_eq(metrics(q).depth_limit, 1000);
    ls_destroy(q);
}
END_TEST

/* A consumer blocked in ls_take() on another thread. */
struct take_arg {
    struct ls_queue *q;
    _Atomic int done;
    enum ls_take_result result;
    size_t n;
};

static void *taker(void *p)
{
    struct take_arg *a = p;
    struct ls_entry e[4];
    a->result = ls_take(a->q, e, 4, -1, &a->n);
    atomic_store(&a->done, 1);
    return NULL;
}

/* ---- running at once (rule 5a) ------------------------------------------------ */

START_TEST(run_now_hands_back_a_write_on_an_idle_queue_and_serves_in_order)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(8, 0, 8, &clk);
    bool run = false;
    ck_assert_int_eq(ls_submit_run(q, TOK(0), LS_KIND_NEW_ORDER, false, 0, &run), LS_ACCEPTED);
    ck_assert(run); /* empty, nobody serving: the producer serves it */
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth, 0);
    ck_assert_uint_eq(m.taken, 1);
    ck_assert_uint_eq(m.accepted[LS_KIND_NEW_ORDER], 1);

    /* While it serves, writes queue behind it, and the consumer gets none. */
    ck_assert_int_eq(ls_submit_run(q, TOK(1), LS_KIND_AMEND, false, 10, &run), LS_ACCEPTED);
    ck_assert(!run);
    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_NEW_ORDER, false, 20), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit_run(q, TOK(3), LS_KIND_NEW_ORDER, false, 30, &run), LS_ACCEPTED);
    ck_assert(!run);
    ck_assert_uint_eq(metrics(q).depth, 3);
    struct ls_entry e[4];
    size_t n = 9;
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_TIMEOUT);
    ck_assert_uint_eq(n, 0);

    /* Done: the oldest queued write came through ls_submit_run, so the
     * producer serves it next, with its sequence number and wait. */
    fake_set(&clk, 110);
    struct ls_entry next;
    ck_assert(ls_run_done(q, 100, true, &next));
    ck_assert_ptr_eq(next.item, TOK(1));
    ck_assert_uint_eq(next.seq, 2);
    ck_assert_int_eq(next.wait_ns, 100);
    ck_assert_int_eq(next.kind, LS_KIND_AMEND);
    /* The next one is a plain ls_submit write: the producer stops there. */
    ck_assert(!ls_run_done(q, 100, true, &next));
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(e[0].item, TOK(2));
    ck_assert_uint_eq(e[0].seq, 3);
    ck_assert_ptr_eq(e[1].item, TOK(3));
    ck_assert_uint_eq(e[1].seq, 4);

    /* The consumer is serving until ls_done or its next take: no hand-back. */
    ck_assert_int_eq(ls_submit_run(q, TOK(4), LS_KIND_NEW_ORDER, false, 40, &run), LS_ACCEPTED);
    ck_assert(!run);
    ck_assert_int_eq(ls_done(q, 2, 200), LS_OK);
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_ptr_eq(e[0].item, TOK(4));
    ck_assert_uint_eq(e[0].seq, 5);
    ck_assert_int_eq(ls_done(q, 1, 100), LS_OK);
    ck_assert_int_eq(ls_submit_run(q, TOK(5), LS_KIND_NEW_ORDER, false, 50, &run), LS_ACCEPTED);
    ck_assert(run);
    /* `more` false: the producer stops even before a runnable write. */
    ck_assert_int_eq(ls_submit_run(q, TOK(6), LS_KIND_NEW_ORDER, false, 60, &run), LS_ACCEPTED);
    ck_assert(!run);
    ck_assert(!ls_run_done(q, 100, false, &next));
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_OK);
    ck_assert_ptr_eq(e[0].item, TOK(6));
    ck_assert_uint_eq(e[0].seq, 7);
    ck_assert_int_eq(ls_done(q, 1, 100), LS_OK);

    m = metrics(q);
    ck_assert_uint_eq(m.taken, 7);
    ck_assert_uint_eq(m.producer_served, 3); /* TOK 0, 1 and 5 */
    ck_assert_uint_eq(m.processed, 7);
    ck_assert_uint_eq(m.wait.count, 7);
    ck_assert_uint_eq(m.depth, 0);
    ls_destroy(q);
}
END_TEST

START_TEST(run_now_sheds_and_refuses_as_submit_does)
{
    struct ls_queue *q = fixed_queue(8, 2, 0, NULL);
    bool run = true;
    /* Depth 0 sheds every ordinary write, idle or not. */
    ck_assert_int_eq(ls_submit_run(q, TOK(0), LS_KIND_NEW_ORDER, false, 0, &run), LS_SHED);
    ck_assert(!run);
    /* An exempt write is admitted, and on an idle queue handed back. */
    ck_assert_int_eq(ls_submit_run(q, TOK(1), LS_KIND_CANCEL, true, 0, &run), LS_ACCEPTED);
    ck_assert(run);
    struct ls_entry next;
    ck_assert(!ls_run_done(q, 10, true, &next));
    ls_shutdown(q);
    ck_assert_int_eq(ls_submit_run(q, TOK(2), LS_KIND_CANCEL, true, 0, &run), LS_CLOSED);
    ck_assert(!run);
    size_t n = 9;
    ck_assert_int_eq(ls_take(q, &next, 1, -1, &n), LS_TAKE_CLOSED);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.shed[LS_KIND_NEW_ORDER], 1);
    ck_assert_uint_eq(m.accepted_exempt, 1);
    ck_assert_uint_eq(m.closed, 1);
    ls_destroy(q);
}
END_TEST

START_TEST(a_consumer_waits_for_the_serving_producer_and_then_takes)
{
    struct ls_queue *q = fixed_queue(8, 0, 8, NULL);
    struct take_arg a = {q, 0, LS_TAKE_TIMEOUT, 99};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, taker, &a), 0);
    sleep_ns(20 * MS);
    bool run = false;
    ck_assert_int_eq(ls_submit_run(q, TOK(0), LS_KIND_NEW_ORDER, false, 0, &run), LS_ACCEPTED);
    ck_assert(run);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    sleep_ns(50 * MS);
    ck_assert_int_eq(atomic_load(&a.done), 0); /* a write is queued, but a producer serves */
    struct ls_entry next;
    ck_assert(!ls_run_done(q, 10, true, &next)); /* plain write next: handed over */
    pthread_join(th, NULL);
    ck_assert_int_eq(a.result, LS_TAKE_OK);
    ck_assert_uint_eq(a.n, 1);
    ls_destroy(q);
}
END_TEST

/* ---- shutdown (rule 6) --------------------------------------------------------- */

START_TEST(shutdown_wakes_a_blocked_consumer)
{
    struct ls_queue *q = fixed_queue(4, 0, 4, NULL);
    struct take_arg a = {q, 0, LS_TAKE_OK, 99};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, taker, &a), 0);
    sleep_ns(50 * MS);
    ck_assert_int_eq(atomic_load(&a.done), 0); /* still blocked: nothing queued */
    ls_shutdown(q);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.result, LS_TAKE_CLOSED);
    ck_assert_uint_eq(a.n, 0);

    /* Refused with a distinct result; nothing but `closed` changes. */
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_CLOSED);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_CANCEL, true, 0), LS_CLOSED);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.closed, 2);
    ck_assert_uint_eq(sum_kinds(m.accepted) + sum_kinds(m.shed), 0);
    ck_assert_uint_eq(m.depth, 0);
    ls_shutdown(q); /* idempotent */
    ls_destroy(q);
}
END_TEST

START_TEST(a_blocked_consumer_wakes_for_a_submit)
{
    struct ls_queue *q = fixed_queue(4, 0, 4, NULL);
    struct take_arg a = {q, 0, LS_TAKE_TIMEOUT, 99};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, taker, &a), 0);
    sleep_ns(20 * MS);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.result, LS_TAKE_OK);
    ck_assert_uint_eq(a.n, 1);
    ls_destroy(q);
}
END_TEST

START_TEST(shutdown_hands_out_admitted_writes_first)
{
    struct ls_queue *q = fixed_queue(4, 0, 4, NULL);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_CANCEL, true, 0), LS_ACCEPTED);
    ls_shutdown(q);
    struct ls_entry e[4];
    size_t n = 0;
    ck_assert_int_eq(ls_take(q, e, 4, -1, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(e[0].item, TOK(0));
    ck_assert_ptr_eq(e[1].item, TOK(1));
    ck_assert_int_eq(ls_take(q, e, 4, -1, &n), LS_TAKE_CLOSED);
    ck_assert_int_eq(ls_take(q, e, 4, 0, &n), LS_TAKE_CLOSED);
    ls_destroy(q);
}
END_TEST

START_TEST(shutdown_releases_an_exempt_write_waiting_for_a_slot)
{
    struct ls_queue *q = fixed_queue(1, 0, 1, NULL);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    struct sub_arg a = {q, TOK(1), LS_KIND_CANCEL_ALL, true, 0, 0, LS_ACCEPTED};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, submitter, &a), 0);
    ck_assert(wait_depth(q, 2));
    ls_shutdown(q);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.result, LS_CLOSED);
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.depth, 1);
    ck_assert_uint_eq(m.closed, 1);
    ck_assert_uint_eq(m.accepted_exempt, 0);
    ls_destroy(q);
}
END_TEST

START_TEST(take_times_out_on_an_empty_queue)
{
    struct ls_queue *q = fixed_queue(4, 0, 4, NULL);
    struct ls_entry e[1];
    size_t n = 99;
    int64_t t0 = ls_now_ns();
    ck_assert_int_eq(ls_take(q, e, 1, 20 * MS, &n), LS_TAKE_TIMEOUT);
    ck_assert_int_ge(ls_now_ns() - t0, 20 * MS);
    ck_assert_uint_eq(n, 0);
    /* A timeout with a sub-second carry (0.9999 s from any nanosecond). */
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_OTHER, false, ls_now_ns()), LS_ACCEPTED);
    ck_assert_int_eq(ls_take(q, e, 1, 999999999, &n), LS_TAKE_OK);
    ck_assert_uint_eq(n, 1);
    ls_destroy(q);
}
END_TEST

/* ---- histograms (rule 9) -------------------------------------------------------- */

START_TEST(histogram_bucket_placement_is_le)
{
    ck_assert_int_eq(ls_hist_bound_ns(0), 1000);
    ck_assert_int_eq(ls_hist_bound_ns(1), 2000);
    ck_assert_int_eq(ls_hist_bound_ns(10), 1024000);
    ck_assert_int_eq(ls_hist_bound_ns(24), INT64_C(16777216000));
    ck_assert_int_eq(ls_hist_bound_ns(25), INT64_MAX);
    ck_assert_uint_eq(ls_hist_bucket(-5), 0);
    ck_assert_uint_eq(ls_hist_bucket(0), 0);
    ck_assert_uint_eq(ls_hist_bucket(1000), 0);
    ck_assert_uint_eq(ls_hist_bucket(1001), 1);
    ck_assert_uint_eq(ls_hist_bucket(2000), 1);
    ck_assert_uint_eq(ls_hist_bucket(2001), 2);
    ck_assert_uint_eq(ls_hist_bucket(4000), 2);
    ck_assert_uint_eq(ls_hist_bucket(4001), 3);
    ck_assert_uint_eq(ls_hist_bucket(1024000), 10);
    ck_assert_uint_eq(ls_hist_bucket(1024001), 11);
    ck_assert_uint_eq(ls_hist_bucket(INT64_C(16777216000)), 24);
    ck_assert_uint_eq(ls_hist_bucket(INT64_C(16777216001)), 25);
    ck_assert_uint_eq(ls_hist_bucket(INT64_MAX), 25);
    for (unsigned i = 1; i < LS_HIST_FINITE; i++) {
        ck_assert_uint_eq(ls_hist_bucket(ls_hist_bound_ns(i)), i);
        ck_assert_uint_eq(ls_hist_bucket(ls_hist_bound_ns(i - 1) + 1), i);
    }
}
END_TEST

START_TEST(histograms_record_waits_and_service_times)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(8, 0, 8, &clk);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ls_submit(q, TOK(i), LS_KIND_NEW_ORDER, false, 1000 * i), LS_ACCEPTED);
    struct ls_entry e[8];
    size_t n = 0;
    fake_set(&clk, 5000);
    ck_assert_int_eq(ls_take(q, e, 8, 0, &n), LS_TAKE_OK);
    /* waits 5000 (le 8 us), 4000 (le 4 us), 3000 (le 4 us) */
    struct ls_metrics m = metrics(q);
    ck_assert_uint_eq(m.wait.bucket[2], 2);
    ck_assert_uint_eq(m.wait.bucket[3], 1);
    ck_assert_uint_eq(m.wait.count, 3);
    ck_assert_uint_eq(m.wait.sum_ns, 12000);
    ck_assert_int_eq(m.wait.max_ns, 5000);

    /* 100 writes in 300 us: 100 observations of 3000 ns (le 4 us). */
    ck_assert_int_eq(ls_done(q, 100, 300 * US), LS_OK);
    /* 3 writes in 10 ns: mean 3 ns (le 1 us), the sum stays exact. */
    ck_assert_int_eq(ls_done(q, 3, 10), LS_OK);
    /* One write of 20 s: +Inf. */
    ck_assert_int_eq(ls_done(q, 1, 20000 * MS), LS_OK);
    m = metrics(q);
    ck_assert_uint_eq(m.service.bucket[0], 3);
    ck_assert_uint_eq(m.service.bucket[2], 100);
    ck_assert_uint_eq(m.service.bucket[LS_HIST_FINITE], 1);
    ck_assert_uint_eq(m.service.count, 104);
    ck_assert_uint_eq(m.service.sum_ns, 300 * US + 10 + 20000 * MS);
    ck_assert_int_eq(m.service.max_ns, 20000 * MS);
    ck_assert_uint_eq(m.processed, 104);
    ls_destroy(q);
}
END_TEST

START_TEST(quantiles_are_exact_on_known_inputs)
{
    struct ls_queue *q = fixed_queue(8, 0, 8, NULL);
    ck_assert_int_eq(ls_done(q, 100, 300 * US), LS_OK); /* 100 x 3000 ns */
    struct ls_metrics m = metrics(q);
    /* All in (2000, 4000]: 2000 + 2000 * rank / 100. */
    ck_assert_int_eq(ls_hist_quantile_ns(&m.service, 500000), 3000);
    ck_assert_int_eq(ls_hist_quantile_ns(&m.service, 990000), 3980);
    ck_assert_int_eq(ls_hist_quantile_ns(&m.service, 1000000), 4000);
    ck_assert_int_eq(ls_hist_quantile_ns(&m.service, 2000000), 4000);
    ck_assert_int_eq(ls_hist_quantile_ns(&m.service, 0), 2020); /* rank 1 */
    ls_destroy(q);

    /* 90 in (0, 1 us], 9 in (512 us, 1024 us], 1 in +Inf (max 20 s). */
    struct ls_hist_snap h;
    memset(&h, 0, sizeof h);
    h.bucket[0] = 90;
    h.bucket[10] = 9;
    h.bucket[LS_HIST_FINITE] = 1;
    h.count = 100;
    h.max_ns = 20000 * MS;
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 500000), 555);      /* 1000 * 50 / 90 */
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 900000), 1000);     /* rank 90: top of bucket 0 */
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 950000), 796444);   /* 512000 + 512000 * 5 / 9 */
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 990000), 1024000);  /* rank 99 */
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 999000), 20000 * MS); /* rank 100: +Inf -> max */
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 0), 11);            /* rank 1: 1000 / 90 */
    /* 1 sample: every quantile is rank 1. */
    memset(&h, 0, sizeof h);
    h.bucket[4] = 1;
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 500000), 16000);
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 10), 16000);
    memset(&h, 0, sizeof h);
    ck_assert_int_eq(ls_hist_quantile_ns(&h, 500000), 0); /* empty */
}
END_TEST

/* ---- Prometheus text ------------------------------------------------------------- */

static void assert_line(const char *text, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[len] == '\n')
            return;
    }
    ck_abort_msg("line not found: %s", line);
}

START_TEST(prometheus_text_for_a_known_state)
{
    struct fake_clock clk = {0};
    struct ls_queue *q = fixed_queue(4, 2, 2, &clk);
    ck_assert_int_eq(ls_submit(q, TOK(0), LS_KIND_NEW_ORDER, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(1), LS_KIND_AMEND, false, 0), LS_ACCEPTED);
    ck_assert_int_eq(ls_submit(q, TOK(2), LS_KIND_NEW_ORDER, false, 0), LS_SHED);
    ck_assert_int_eq(ls_submit(q, TOK(3), LS_KIND_CANCEL, true, 1000), LS_ACCEPTED);
    struct ls_entry e[2];
    size_t n = 0;
    fake_set(&clk, 3000);
    ck_assert_int_eq(ls_take(q, e, 2, 0, &n), LS_TAKE_OK); /* waits 3000, 3000 */
    ck_assert_int_eq(ls_done(q, 2, 3000), LS_OK);          /* 2 x 1500 ns */

    static char text[16384];
    size_t len = ls_metrics_prometheus(q, text, sizeof text);
    ck_assert_uint_lt(len, sizeof text);
    ck_assert_uint_eq(strlen(text), len);

    const char *lines[] = {
        "# HELP perpsim_loadshed_accepted_total Writes admitted to the engine queue, by kind "
        "(exempt ones included).",
        "# TYPE perpsim_loadshed_accepted_total counter",
        "perpsim_loadshed_accepted_total{kind=\"new_order\"} 1",
        "perpsim_loadshed_accepted_total{kind=\"amend\"} 1",
        "perpsim_loadshed_accepted_total{kind=\"cancel\"} 1",
        "perpsim_loadshed_accepted_total{kind=\"cancel_all\"} 0",
        "perpsim_loadshed_accepted_total{kind=\"other\"} 0",
        "# TYPE perpsim_loadshed_shed_total counter",
        "perpsim_loadshed_shed_total{kind=\"new_order\"} 1",
        "perpsim_loadshed_shed_total{kind=\"bulk\"} 0",
        "perpsim_loadshed_accepted_exempt_total 1",
        "perpsim_loadshed_exempt_waits_total 0",
        "perpsim_loadshed_closed_total 0",
        "perpsim_loadshed_taken_total 2",
        "# TYPE perpsim_loadshed_processed_total counter",
        "perpsim_loadshed_processed_total 2",
        "# TYPE perpsim_loadshed_producer_served_total counter",
        "perpsim_loadshed_producer_served_total 0",
        "# TYPE perpsim_loadshed_depth gauge",
        "perpsim_loadshed_depth 1",
        "perpsim_loadshed_depth_max 3",
        "perpsim_loadshed_depth_limit 2",
        "perpsim_loadshed_latency_cap_seconds 0",
        "perpsim_loadshed_service_estimate_seconds 0.0000015",
        "# HELP perpsim_loadshed_queue_wait_seconds Time from admission until the write was "
        "taken for service.",
        "# TYPE perpsim_loadshed_queue_wait_seconds histogram",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"0.000001\"} 0",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"0.000002\"} 0",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"0.000004\"} 2",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"0.001024\"} 2",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"1.048576\"} 2",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"16.777216\"} 2",
        "perpsim_loadshed_queue_wait_seconds_bucket{le=\"+Inf\"} 2",
        "perpsim_loadshed_queue_wait_seconds_sum 0.000006",
        "perpsim_loadshed_queue_wait_seconds_count 2",
        "# TYPE perpsim_loadshed_service_seconds histogram",
        "perpsim_loadshed_service_seconds_bucket{le=\"0.000001\"} 0",
        "perpsim_loadshed_service_seconds_bucket{le=\"0.000002\"} 2",
        "perpsim_loadshed_service_seconds_bucket{le=\"+Inf\"} 2",
        "perpsim_loadshed_service_seconds_sum 0.000003",
        "perpsim_loadshed_service_seconds_count 2",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_line(text, lines[i]);

    /* Shape: 15 families (30 comment lines), 16 per-kind samples, 11 scalars,
     * 2 histograms of 26 buckets + sum + count = 113 lines, no blank line. */
    int nl = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            nl++;
            ck_assert(p[1] != '\n');
        }
    }
    ck_assert_int_eq(nl, 113);
    ck_assert_int_eq(text[len - 1], '\n');

    /* snprintf contract: truncated but terminated, same length reported. */
    char small[16];
    ck_assert_uint_eq(ls_metrics_prometheus(q, small, sizeof small), len);
    ck_assert_uint_eq(strlen(small), 15);
    ck_assert_int_eq(strncmp(small, text, 15), 0);
    ck_assert_uint_eq(ls_metrics_prometheus(q, NULL, 0), len);

    /* A latency-cap queue shows its cap in seconds. */
    struct ls_queue *c = cap_queue(100, 1, 3000 * MS + 500 * US, 1 * US);
    ls_metrics_prometheus(c, text, sizeof text);
    assert_line(text, "perpsim_loadshed_latency_cap_seconds 3.0005");
    assert_line(text, "perpsim_loadshed_service_estimate_seconds 0.000001");
    assert_line(text, "perpsim_loadshed_depth_limit 100");
    ls_destroy(c);
    ls_destroy(q);
}
END_TEST

/* ---- stress --------------------------------------------------------------------- */

#define ST_PRODUCERS 4
#define ST_ITEMS 50000
#define ST_BATCH 64

struct st_item {
    uint32_t producer;
    uint32_t index;
};

struct st_shared {
    struct ls_queue *q;
    struct st_item items[ST_PRODUCERS][ST_ITEMS];
    uint8_t result[ST_PRODUCERS][ST_ITEMS]; /* enum ls_result, by producers */
    uint8_t taken[ST_PRODUCERS][ST_ITEMS];  /* times taken, by the consumer */
    int64_t service_per_item_ns;            /* consumer busy-wait per write */
    _Atomic int producers_left;
    /* consumer findings */
    uint64_t consumer_taken;
    uint64_t order_errors;
    uint64_t seq_errors;
    int64_t consumer_end_ns;
};

struct st_producer_arg {
    struct st_shared *s;
    uint32_t p;
};

static bool st_exempt(uint32_t i)
{
    return i % 7 == 3;
}

static void *st_producer(void *v)
{
    struct st_producer_arg *a = v;
    struct st_shared *s = a->s;
    for (uint32_t i = 0; i < ST_ITEMS; i++) {
        bool ex = st_exempt(i);
        enum ls_kind kind = ex ? LS_KIND_CANCEL : (i % 2 ? LS_KIND_AMEND : LS_KIND_NEW_ORDER);
        s->result[a->p][i] = (uint8_t)ls_submit(s->q, &s->items[a->p][i], kind, ex, ls_now_ns());
    }
    atomic_fetch_sub(&s->producers_left, 1);
    return NULL;
}

static void *st_consumer(void *v)
{
    struct st_shared *s = v;
    struct ls_entry e[ST_BATCH];
    int64_t next[ST_PRODUCERS] = {0};
    uint64_t last_seq = 0;
    size_t n = 0;
    while (ls_take(s->q, e, ST_BATCH, -1, &n) == LS_TAKE_OK) {
        int64_t t0 = ls_now_ns();
        for (size_t k = 0; k < n; k++) {
            const struct st_item *it = e[k].item;
            if ((int64_t)it->index < next[it->producer])
                s->order_errors++;
            next[it->producer] = (int64_t)it->index + 1;
            if (e[k].seq != last_seq + 1)
                s->seq_errors++;
            last_seq = e[k].seq;
            s->taken[it->producer][it->index]++;
        }
        if (s->service_per_item_ns > 0)
            while (ls_now_ns() - t0 < s->service_per_item_ns * (int64_t)n) {
            }
        ls_done(s->q, n, ls_now_ns() - t0);
        s->consumer_taken += n;
    }
    s->consumer_end_ns = ls_now_ns();
    return NULL;
}

static void *st_admin(void *v)
{
    struct st_shared *s = v;
    for (uint32_t i = 0; atomic_load(&s->producers_left) > 0; i++) {
        switch (i % 3) {
        case 0: ls_set_fixed_depth(s->q, 64); break;
        case 1: ls_set_fixed_depth(s->q, 256); break;
        default: ls_set_latency_cap(s->q, 200 * US); break;
        }
        sleep_ns(200 * US);
    }
    return NULL;
}

/* Runs the stress, checks every invariant, prints throughput; returns the
 * number of shed writes. */
static uint64_t stress_run(struct st_shared *s, uint32_t capacity, uint32_t headroom, uint32_t depth,
                       int64_t service_ns, bool admin, const char *label)
{
    struct ls_config cfg;
    ls_config_default(&cfg);
    cfg.capacity = capacity;
    cfg.exempt_headroom = headroom;
    cfg.mode = LS_FIXED;
    cfg.fixed_depth = depth;
    ck_assert_int_eq(ls_create(&cfg, &s->q), LS_OK);
    for (uint32_t p = 0; p < ST_PRODUCERS; p++)
        for (uint32_t i = 0; i < ST_ITEMS; i++)
            s->items[p][i] = (struct st_item){p, i};
    s->service_per_item_ns = service_ns;
    atomic_store(&s->producers_left, ST_PRODUCERS);

    pthread_t cons, adm, prod[ST_PRODUCERS];
    struct st_producer_arg pa[ST_PRODUCERS];
    int64_t t0 = ls_now_ns();
    ck_assert_int_eq(pthread_create(&cons, NULL, st_consumer, s), 0);
    if (admin)
        ck_assert_int_eq(pthread_create(&adm, NULL, st_admin, s), 0);
    for (uint32_t p = 0; p < ST_PRODUCERS; p++) {
        pa[p] = (struct st_producer_arg){s, p};
        ck_assert_int_eq(pthread_create(&prod[p], NULL, st_producer, &pa[p]), 0);
    }
    for (uint32_t p = 0; p < ST_PRODUCERS; p++)
        pthread_join(prod[p], NULL);
    int64_t t_prod = ls_now_ns() - t0;
    if (admin)
        pthread_join(adm, NULL);
    ls_shutdown(s->q);
    pthread_join(cons, NULL);
    int64_t t_all = s->consumer_end_ns - t0;

    uint64_t acc = 0, shed = 0, exempt_acc = 0;
    for (uint32_t p = 0; p < ST_PRODUCERS; p++) {
        for (uint32_t i = 0; i < ST_ITEMS; i++) {
            uint8_t r = s->result[p][i];
            ck_assert_msg(r == LS_ACCEPTED || r == LS_SHED, "item %u/%u result %u", p, i, r);
            if (r == LS_ACCEPTED) {
                acc++;
                ck_assert_msg(s->taken[p][i] == 1, "accepted item %u/%u taken %u times", p, i,
                              s->taken[p][i]);
            } else {
                shed++;
                ck_assert_msg(s->taken[p][i] == 0, "shed item %u/%u taken", p, i);
            }
            if (st_exempt(i)) {
                ck_assert_msg(r == LS_ACCEPTED, "exempt item %u/%u refused", p, i);
                exempt_acc++;
            }
        }
    }
    ck_assert_uint_eq(acc + shed, (uint64_t)ST_PRODUCERS * ST_ITEMS);
    ck_assert_uint_eq(s->order_errors, 0);
    ck_assert_uint_eq(s->seq_errors, 0);
    ck_assert_uint_eq(s->consumer_taken, acc);

    struct ls_metrics m = metrics(s->q);
    ck_assert_uint_eq(sum_kinds(m.accepted), acc);
    ck_assert_uint_eq(sum_kinds(m.shed), shed);
    ck_assert_uint_eq(m.accepted[LS_KIND_CANCEL], exempt_acc);
    ck_assert_uint_eq(m.accepted_exempt, exempt_acc);
    ck_assert_uint_eq(m.shed[LS_KIND_CANCEL], 0);
    ck_assert_uint_eq(m.closed, 0);
    ck_assert_uint_eq(m.taken, acc);
    ck_assert_uint_eq(m.processed, acc);
    ck_assert_uint_eq(m.wait.count, acc);
    ck_assert_uint_eq(m.service.count, acc);
    ck_assert_uint_eq(m.depth, 0);
    ck_assert_uint_le(m.depth_max, (uint64_t)capacity + headroom + ST_PRODUCERS);
    printf("loadshed stress %s: %d producers x %d, accepted %" PRIu64 " shed %" PRIu64
           " exempt waits %" PRIu64 ", depth max %" PRIu64 "; submits %.0f/s, taken %.0f/s; "
           "wait p50 %" PRId64 " ns p99 %" PRId64 " ns\n",
           label, ST_PRODUCERS, ST_ITEMS, acc, shed, m.exempt_waits, m.depth_max,
           (double)(ST_PRODUCERS * ST_ITEMS) * 1e9 / (double)t_prod,
           (double)acc * 1e9 / (double)t_all, ls_hist_quantile_ns(&m.wait, 500000),
           ls_hist_quantile_ns(&m.wait, 990000));
    fflush(stdout);
    ls_destroy(s->q);
    return shed;
}

/* Overload: the consumer spends 1 us per write, the producers far outrun it,
 * the limit flips between 64, 256 and a 200 us cap, and the 16 slots of
 * headroom make exempt writes wait for slots. */
START_TEST(stress_overloaded_every_accepted_item_once_in_order)
{
    struct st_shared *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    /* 200,000 submits take milliseconds; serving them would take 0.2 s. */
    ck_assert_uint_gt(stress_run(s, 256, 16, 128, 1000, true, "overloaded"), 0);
    free(s);
}
END_TEST

/* Throughput: a limit no producer reaches, so nothing is shed and the
 * consumer takes as fast as it can. */
START_TEST(stress_unloaded_nothing_shed)
{
    struct st_shared *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    uint32_t all = ST_PRODUCERS * ST_ITEMS;
    ck_assert_uint_eq(stress_run(s, all, 0, all, 0, false, "unloaded"), 0);
    free(s);
}
END_TEST

static Suite *loadshed_suite(void)
{
    Suite *s = suite_create("loadshed");

    TCase *t = tcase_create("queue");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, create_rejects_bad_config_by_name);
    tcase_add_test(t, submit_and_take_reject_bad_arguments);
    tcase_add_test(t, fifo_single_thread_with_seq_times_and_waits);
    tcase_add_test(t, fifo_survives_ring_wraparound);
    tcase_add_test(t, fifo_across_producers_keeps_each_producers_order);
    tcase_add_test(t, fixed_depth_refuses_exactly_at_the_limit);
    tcase_add_test(t, racing_producers_never_pass_the_limit);
    tcase_add_test(t, shed_changes_nothing_but_its_counter);
    tcase_add_test(t, exempt_accepted_when_full_and_served_in_arrival_order);
    tcase_add_test(t, exempt_waits_for_a_slot_when_the_whole_ring_is_full);
    tcase_add_test(t, latency_cap_depth_follows_reported_service_times);
    tcase_add_test(t, latency_cap_clamps_to_min_depth_and_handles_zero_service);
    tcase_add_test(t, run_now_hands_back_a_write_on_an_idle_queue_and_serves_in_order);
    tcase_add_test(t, run_now_sheds_and_refuses_as_submit_does);
    tcase_add_test(t, a_consumer_waits_for_the_serving_producer_and_then_takes);
    tcase_add_test(t, shutdown_wakes_a_blocked_consumer);
    tcase_add_test(t, a_blocked_consumer_wakes_for_a_submit);
    tcase_add_test(t, shutdown_hands_out_admitted_writes_first);
    tcase_add_test(t, shutdown_releases_an_exempt_write_waiting_for_a_slot);
    tcase_add_test(t, take_times_out_on_an_empty_queue);
    suite_add_tcase(s, t);

    TCase *h = tcase_create("metrics");
    tcase_add_test(h, histogram_bucket_placement_is_le);
    tcase_add_test(h, histograms_record_waits_and_service_times);
    tcase_add_test(h, quantiles_are_exact_on_known_inputs);
    tcase_add_test(h, prometheus_text_for_a_known_state);
    suite_add_tcase(s, h);

    TCase *st = tcase_create("stress");
    tcase_set_timeout(st, 100);
    tcase_add_test(st, stress_overloaded_every_accepted_item_once_in_order);
    tcase_add_test(st, stress_unloaded_nothing_shed);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loadshed_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
