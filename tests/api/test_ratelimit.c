/*
 * test_ratelimit.c - Check suite for api/ratelimit: BitMEX's REST rate
 * limits, headers, 429 text, bans and the client table.
 *
 * Numbers: BitMEX's documentation until 2019 (300 per 5 minutes signed, 150
 * unsigned; the header example 300 / 297 / 1489791662), its current limits
 * (120/min, 30/min, 10/s on order routes, bulk ceil(0.1*n), cancels never
 * refused, 429 text), and BitMEX's
 * rollingLimit.lua (rejections take nothing, force drains to 0). Each
 * expectation is an exact number: one token of a 300-per-300000 ms bucket
 * refills in exactly 1000 ms, one tenth in 100 ms.
 *
 * The table test checks the open-addressing index and LRU eviction against a
 * naive model over a seeded random key stream (PERPSIM_SEED replays it); the
 * thread tests hammer one table from several threads.
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ratelimit.h"

#define DEFAULT_SEED UINT64_C(1489791662)
#define T0 INT64_C(1489791662000) /* BitMEX's documented x-ratelimit-reset example, in ms */

static uint64_t g_seed, g_state;

static void rng_init(void)
{
    const char *s = getenv("PERPSIM_SEED");
    g_seed = s != NULL ? (uint64_t)strtoull(s, NULL, 0) : DEFAULT_SEED;
    g_state = g_seed;
}

static uint64_t rng_next(void)
{
    uint64_t z = (g_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* ---- helpers --------------------------------------------------------------------- */

static struct rl_table *make(const struct rl_config *c)
{
    enum rl_err e = RL_E_CONFIG;
    struct rl_table *t = rl_create(c, &e);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(e, RL_E_OK);
    return t;
}

static struct rl_table *make_default(void)
{
    struct rl_config c;
    rl_config_default(&c);
    return make(&c);
}

static struct rl_table *make_2021(void)
{
    struct rl_config c;
    rl_config_2021(&c);
    return make(&c);
}

static struct rl_request sreq(const char *key)
{
    struct rl_request r = {key, true, false, false, RL_TENTHS};
    return r;
}

static enum rl_result charge(struct rl_table *t, struct rl_request r, ms_t now, struct rl_status *st)
{
    return rl_charge(t, &r, now, st);
}

/* Charges n single signed requests at `now`; returns how many were allowed. */
static int burst(struct rl_table *t, const char *key, int n, ms_t now)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += charge(t, sreq(key), now, NULL) == RL_ALLOWED;
    return ok;
}

/* ---- profiles and costs -------------------------------------------------------------- */

START_TEST(profiles_hold_the_documented_numbers)
{
    struct rl_config c;
    rl_config_default(&c);
    ck_assert_int_eq(c.signed_.limit, 300);
    ck_assert_int_eq(c.signed_.window_ms, 300000);
    ck_assert_int_eq(c.unsigned_.limit, 150);
    ck_assert_int_eq(c.unsigned_.window_ms, 300000);
    ck_assert_int_eq(c.order.limit, 0);
    ck_assert_int_eq(c.ban_ms, 3600000);
    ck_assert_int_eq(c.ban_long_ms, 604800000);
    rl_config_2021(&c);
    ck_assert_int_eq(c.signed_.limit, 120);
    ck_assert_int_eq(c.signed_.window_ms, 60000);
    ck_assert_int_eq(c.unsigned_.limit, 30);
    ck_assert_int_eq(c.unsigned_.window_ms, 60000);
    ck_assert_int_eq(c.order.limit, 10);
    ck_assert_int_eq(c.order.window_ms, 1000);
}
END_TEST

START_TEST(bulk_costs_ceil_tenth_of_the_orders)
{
    ck_assert_int_eq(rl_cost_single(), 10);
    ck_assert_int_eq(rl_cost_bulk(0), 10);
    ck_assert_int_eq(rl_cost_bulk(1), 10);
    ck_assert_int_eq(rl_cost_bulk(10), 10);
    ck_assert_int_eq(rl_cost_bulk(11), 20);
    ck_assert_int_eq(rl_cost_bulk(20), 20);
    ck_assert_int_eq(rl_cost_bulk(21), 30);
    ck_assert_int_eq(rl_cost_bulk(100), 100);
    ck_assert_int_eq(rl_cost_bulk(101), 110);
}
END_TEST

START_TEST(bad_configs_are_refused)
{
    struct rl_config c;
    enum rl_err e = RL_E_OK;
    rl_config_default(&c);
    c.signed_.limit = 0;
    ck_assert_ptr_null(rl_create(&c, &e));
    ck_assert_int_eq(e, RL_E_CONFIG);
    rl_config_default(&c);
    c.unsigned_.window_ms = 0;
    ck_assert_ptr_null(rl_create(&c, &e));
    rl_config_default(&c);
    c.capacity = 0;
    ck_assert_ptr_null(rl_create(&c, &e));
    rl_config_default(&c);
    c.order = (struct rl_limit){5, 0};
    ck_assert_ptr_null(rl_create(&c, &e));
    ck_assert_ptr_null(rl_create(NULL, NULL));
}
END_TEST

/* ---- the bucket ------------------------------------------------------------------------ */

START_TEST(seed_002_header_example)
{
    struct rl_table *t = make_default();
    struct rl_status st;
    ck_assert_int_eq(burst(t, "k:a", 2, T0), 2);
    ck_assert_int_eq(charge(t, sreq("k:a"), T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.limit, 300);
    ck_assert_int_eq(st.remaining, 297);
    ck_assert_int_eq(st.reset_s, 1489791662); /* not exceeded: the current second */
    ck_assert_int_eq(st.retry_ms, 0);
    ck_assert(!st.has_1s);
    ck_assert(!st.forced);
    /* 3 tokens short of full: 3000 ms */
    ck_assert_int_eq(st.full_at_s, 1489791665);
    rl_destroy(t);
}
END_TEST

START_TEST(burst_of_300_then_refused_with_exact_retry)
{
    struct rl_table *t = make_default();
    struct rl_status st;
    const ms_t now = T0 + 250;
    ck_assert_int_eq(burst(t, "k:a", 299, now), 299);
    ck_assert_int_eq(charge(t, sreq("k:a"), now, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 0);
    ck_assert_int_eq(st.retry_ms, 1000); /* the next one needs one more token */
    ck_assert_int_eq(st.reset_s, 1489791664); /* ceil(T0 + 1250 ms) */
    ck_assert_int_eq(st.full_at_s, 1489791962 + 1); /* ceil(now + 300000 ms) */
    ck_assert_int_eq(charge(t, sreq("k:a"), now, &st), RL_REFUSED);
    ck_assert_int_eq(st.remaining, 0);
    ck_assert_int_eq(st.retry_ms, 1000);
    ck_assert_int_eq(st.retry_after_s, 1);
    ck_assert_int_eq(st.reset_s, 1489791664);
    rl_destroy(t);
}
END_TEST

START_TEST(refill_is_continuous_and_exact)
{
    struct rl_table *t = make_default();
    struct rl_status st;
    ck_assert_int_eq(burst(t, "k:a", 300, T0), 300);
    ck_assert_int_eq(charge(t, sreq("k:a"), T0 + 999, &st), RL_REFUSED);
    ck_assert_int_eq(st.retry_ms, 1);
    ck_assert_int_eq(st.retry_after_s, 1);
    ck_assert_int_eq(charge(t, sreq("k:a"), T0 + 1000, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 0);
    /* 7.5 s later: 7.5 tokens, 7 whole */
    ck_assert_int_eq(charge(t, sreq("k:a"), T0 + 8500, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 6); /* 7.5 - 1 = 6.5 */
    ck_assert_int_eq(burst(t, "k:a", 7, T0 + 8500), 6);
    /* 0.5 left: the next needs 500 ms */
    ck_assert_int_eq(charge(t, sreq("k:a"), T0 + 8500, &st), RL_REFUSED);
    ck_assert_int_eq(st.retry_ms, 500);
    /* a full window refills everything, and not more */
    ck_assert_int_eq(burst(t, "k:a", 400, T0 + 10000000), 300);
    rl_destroy(t);
}
END_TEST

START_TEST(refused_requests_take_nothing)
{
    struct rl_table *t = make_default();
    ck_assert_int_eq(burst(t, "k:a", 300, T0), 300);
    ck_assert_int_eq(burst(t, "k:a", 1000, T0 + 500), 0);
    ck_assert_int_eq(burst(t, "k:a", 5, T0 + 1000), 1);
    ck_assert_int_eq(burst(t, "k:a", 5, T0 + 3000), 2);
    rl_destroy(t);
}
END_TEST

START_TEST(check_neither_takes_nor_creates)
{
    struct rl_table *t = make_default();
    struct rl_request r = sreq("k:a");
    struct rl_status st, st2;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(rl_check(t, &r, T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 299);
    ck_assert_uint_eq(rl_size(t), 0);
    ck_assert_int_eq(burst(t, "k:a", 300, T0), 300);
    ck_assert_int_eq(rl_check(t, &r, T0 + 10, &st), RL_REFUSED);
    ck_assert_int_eq(charge(t, r, T0 + 10, &st2), RL_REFUSED);
    ck_assert_mem_eq(&st, &st2, sizeof st);
    ck_assert_int_eq(rl_check(t, &r, T0 + 1000, &st), RL_ALLOWED);
    ck_assert_int_eq(charge(t, r, T0 + 1000, &st2), RL_ALLOWED);
    ck_assert_mem_eq(&st, &st2, sizeof st);
    ck_assert_uint_eq(rl_size(t), 1);
    rl_destroy(t);
}
END_TEST

START_TEST(unsigned_requests_use_the_unsigned_limit)
{
    struct rl_table *t = make_default();
    struct rl_request r = {"ip:10.0.0.1", false, false, false, RL_TENTHS};
    struct rl_status st;
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += rl_charge(t, &r, T0, &st) == RL_ALLOWED;
    ck_assert_int_eq(ok, 150);
    ck_assert_int_eq(st.limit, 150);
    ck_assert_int_eq(st.retry_ms, 2000); /* 150 per 300 s: one per 2 s */
    ck_assert_int_eq(st.retry_after_s, 2);
    rl_destroy(t);
}
END_TEST

START_TEST(bulk_call_costs_its_tokens)
{
    struct rl_table *t = make_default();
    struct rl_request r = sreq("k:a");
    struct rl_status st;
    r.cost_tenths = rl_cost_bulk(100);
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 290);
    r.cost_tenths = rl_cost_bulk(15);
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 288);
    /* tenths are honoured exactly: 5 tenths each */
    r.cost_tenths = 5;
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 287); /* 287.5 */
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining, 287);
    rl_destroy(t);
}
END_TEST

START_TEST(cost_above_the_bucket_is_clamped_to_a_full_bucket)
{
    struct rl_table *t = make_2021();
    struct rl_request r = {"k:a", true, true, false, rl_cost_bulk(200)}; /* 20 tokens */
    struct rl_status st;
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED); /* order bucket 10: takes 10 */
    ck_assert_int_eq(st.remaining_1s, 0);
    ck_assert_int_eq(st.remaining, 100); /* main bucket 120 took 20 */
    ck_assert_int_eq(rl_charge(t, &r, T0 + 999, &st), RL_REFUSED);
    ck_assert_int_eq(st.retry_ms, 1);
    ck_assert_int_eq(rl_charge(t, &r, T0 + 1000, &st), RL_ALLOWED);
    rl_destroy(t);
}
END_TEST

START_TEST(negative_cost_and_bad_keys)
{
    struct rl_table *t = make_default();
    struct rl_request r = sreq("k:a");
    struct rl_status st;
    r.cost_tenths = -1;
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_BAD_COST);
    char k64[65], k65[66];
    memset(k64, 'x', 64);
    k64[64] = '\0';
    memset(k65, 'x', 65);
    k65[65] = '\0';
    ck_assert_int_eq(charge(t, sreq(k64), T0, NULL), RL_ALLOWED);
    ck_assert_int_eq(charge(t, sreq(k65), T0, NULL), RL_BAD_KEY);
    ck_assert_int_eq(charge(t, sreq(""), T0, NULL), RL_BAD_KEY);
    ck_assert_int_eq(charge(t, sreq(NULL), T0, NULL), RL_BAD_KEY);
    ck_assert_int_eq(rl_check(t, NULL, T0, NULL), RL_BAD_KEY);
    ck_assert_int_eq(rl_record_error(t, k65, T0, NULL, NULL), RL_BAD_KEY);
    ck_assert(!rl_banned(t, NULL, T0, NULL));
    ck_assert_uint_eq(rl_size(t), 1);
    /* cost 0 is free and always allowed */
    r.cost_tenths = 0;
    ck_assert_int_eq(burst(t, "k:b", 300, T0), 300);
    r.key = "k:b";
    ck_assert_int_eq(rl_charge(t, &r, T0, &st), RL_ALLOWED);
    rl_destroy(t);
}
END_TEST

START_TEST(cancels_are_never_refused_and_drain_to_zero)
{
    struct rl_table *t = make_default();
    struct rl_request cancel = {"k:a", true, false, true, RL_TENTHS};
    struct rl_status st;
    ck_assert_int_eq(burst(t, "k:a", 300, T0), 300);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(rl_charge(t, &cancel, T0, &st), RL_ALLOWED);
        ck_assert(st.forced);
        ck_assert_int_eq(st.remaining, 0);
    }
    /* not below zero: one token is back after exactly 1000 ms */
    ck_assert_int_eq(burst(t, "k:a", 1, T0 + 999), 0);
    ck_assert_int_eq(burst(t, "k:a", 2, T0 + 1000), 1);
    /* half a token, then a forced cancel: drained to 0, not -0.5 */
    ck_assert_int_eq(rl_charge(t, &cancel, T0 + 1500, &st), RL_ALLOWED);
    ck_assert(st.forced);
    ck_assert_int_eq(burst(t, "k:a", 1, T0 + 2499), 0);
    ck_assert_int_eq(burst(t, "k:a", 1, T0 + 2500), 1);
    /* with tokens to spare a cancel is a normal charge */
    ck_assert_int_eq(rl_charge(t, &cancel, T0 + 100000, &st), RL_ALLOWED);
    ck_assert(!st.forced);
    ck_assert_int_eq(st.remaining, 96); /* 97.5 s after the drain: 97.5 - 1 */
    rl_destroy(t);
}
END_TEST

START_TEST(order_routes_have_a_second_bucket_of_10_per_second)
{
    struct rl_table *t = make_2021();
    struct rl_request order = {"k:a", true, true, false, RL_TENTHS};
    struct rl_request read = {"k:a", true, false, false, RL_TENTHS};
    struct rl_status st;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(rl_charge(t, &order, T0, &st), RL_ALLOWED);
    ck_assert(st.has_1s);
    ck_assert_int_eq(st.limit_1s, 10);
    ck_assert_int_eq(st.remaining_1s, 0);
    ck_assert_int_eq(st.limit, 120);
    ck_assert_int_eq(st.remaining, 110);
    ck_assert_int_eq(rl_charge(t, &order, T0, &st), RL_REFUSED);
    ck_assert_int_eq(st.retry_ms, 100);
    ck_assert_int_eq(st.retry_after_s, 1);
    ck_assert_int_eq(st.reset_s, 1489791663);
    ck_assert_int_eq(st.remaining, 110); /* refused: main bucket untouched */
    /* a non-order request only meets the main bucket */
    ck_assert_int_eq(rl_charge(t, &read, T0, &st), RL_ALLOWED);
    ck_assert(!st.has_1s);
    ck_assert_int_eq(st.remaining, 109);
    ck_assert_int_eq(rl_charge(t, &order, T0 + 100, &st), RL_ALLOWED);
    ck_assert_int_eq(st.remaining_1s, 0);
    /* cancels pass the second bucket too */
    order.never_refuse = true;
    ck_assert_int_eq(rl_charge(t, &order, T0 + 100, &st), RL_ALLOWED);
    ck_assert(st.forced);
    rl_destroy(t);
}
END_TEST

START_TEST(main_bucket_refusal_on_an_order_route)
{
    /* 2021: main 120 per minute (2 per second back), order bucket 10 per
     * second. Ten orders every second drain the main bucket by 8 a second:
     * after 14 s it holds 8, so second 14 gets 8 of its 10. */
    struct rl_table *t = make_2021();
    struct rl_request order = {"k:a", true, true, false, RL_TENTHS};
    struct rl_status st;
    int ok = 0;
    for (int sec = 0; sec < 14; sec++)
        for (int j = 0; j < 10; j++)
            ok += rl_charge(t, &order, T0 + sec * 1000, &st) == RL_ALLOWED;
    ck_assert_int_eq(ok, 140);
    ck_assert_int_eq(st.remaining, 6);
    const ms_t now = T0 + 14000;
    ok = 0;
    for (int j = 0; j < 10; j++)
        ok += rl_charge(t, &order, now, &st) == RL_ALLOWED;
    ck_assert_int_eq(ok, 8);
    ck_assert_int_eq(st.remaining, 0);
    ck_assert_int_eq(st.remaining_1s, 2); /* refused by the main bucket only */
    ck_assert_int_eq(st.retry_ms, 500);
    ck_assert_int_eq(st.retry_after_s, 1);
    ck_assert_int_eq(st.reset_s, 1489791677); /* ceil(T0 + 14.5 s) */
    rl_destroy(t);
}
END_TEST

START_TEST(stale_time_adds_nothing_and_keeps_the_clock)
{
    struct rl_table *t = make_default();
    ck_assert_int_eq(burst(t, "k:a", 290, T0 + 10000), 290); /* 10 left */
    ck_assert_int_eq(burst(t, "k:a", 1, T0), 1);             /* earlier time: 9 left */
    ck_assert_int_eq(burst(t, "k:a", 20, T0 + 10000), 9);
    ck_assert_int_eq(burst(t, "k:a", 5, T0 + 5000), 0);
    ck_assert_int_eq(burst(t, "k:a", 5, T0 + 10999), 0);
    ck_assert_int_eq(burst(t, "k:a", 5, T0 + 11000), 1); /* measured from T0 + 10000 */
    rl_destroy(t);
}
END_TEST

START_TEST(format_429_message)
{
    char buf[64];
    ck_assert_int_eq(rl_format_429(1, buf, sizeof buf), 40);
    ck_assert_str_eq(buf, "Rate limit exceeded, retry in 1 seconds.");
    ck_assert_int_eq(rl_format_429(37, buf, sizeof buf), 41);
    ck_assert_str_eq(buf, "Rate limit exceeded, retry in 37 seconds.");
    ck_assert_int_eq(rl_format_429(37, buf, 20), -1);
    ck_assert_str_eq(RL_429_NAME, "RateLimitError");
}
END_TEST

/* ---- bans ----------------------------------------------------------------------------- */

static struct rl_table *make_ban_table(void)
{
    struct rl_config c;
    rl_config_default(&c);
    c.ban_errors = 3;
    c.ban_window_ms = 1000;
    return make(&c);
}

START_TEST(too_many_errors_ban_for_an_hour)
{
    struct rl_table *t = make_ban_table();
    bool started = true;
    ms_t until = -1;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rl_record_error(t, "ip:1", T0, &started, &until), RL_ALLOWED);
        ck_assert(!started);
        ck_assert_int_eq(until, 0);
    }
    ck_assert(!rl_banned(t, "ip:1", T0, NULL));
    ck_assert_int_eq(rl_record_error(t, "ip:1", T0, &started, &until), RL_ALLOWED);
    ck_assert(started);
    ck_assert_int_eq(until, T0 + 3600000);
    ms_t u = 0;
    ck_assert(rl_banned(t, "ip:1", T0 + 3599999, &u));
    ck_assert_int_eq(u, T0 + 3600000);
    ck_assert(!rl_banned(t, "ip:1", T0 + 3600000, &u));
    ck_assert_int_eq(u, 0);
    ck_assert(!rl_banned(t, "ip:2", T0, NULL));
    /* errors during the ban do not extend it */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(rl_record_error(t, "ip:1", T0 + 1000, &started, &until), RL_ALLOWED);
        ck_assert(!started);
        ck_assert_int_eq(until, T0 + 3600000);
    }
    ck_assert(!rl_banned(t, "ip:1", T0 + 3600000, NULL));
    rl_destroy(t);
}
END_TEST

START_TEST(a_second_ban_within_a_day_lasts_a_week)
{
    struct rl_table *t = make_ban_table();
    bool started = false;
    ms_t until = 0;
    for (int i = 0; i < 4; i++)
        rl_record_error(t, "ip:1", T0, &started, &until);
    ck_assert(started);
    const ms_t t1 = T0 + 3600000; /* ban over; error bucket refilled at ban start */
    for (int i = 0; i < 3; i++) {
        rl_record_error(t, "ip:1", t1, &started, &until);
        ck_assert(!started);
    }
    rl_record_error(t, "ip:1", t1, &started, &until);
    ck_assert(started);
    ck_assert_int_eq(until, t1 + 604800000);
    ck_assert(rl_banned(t, "ip:1", t1 + 604799999, NULL));
    /* a ban more than a day after the previous one is an hour again */
    const ms_t t2 = t1 + 604800000;
    for (int i = 0; i < 4; i++)
        rl_record_error(t, "ip:1", t2, &started, &until);
    ck_assert(started);
    ck_assert_int_eq(until, t2 + 3600000);
    rl_destroy(t);
}
END_TEST

START_TEST(errors_at_the_allowed_rate_never_ban)
{
    struct rl_table *t = make_ban_table(); /* 3 per 1000 ms */
    bool started = false;
    for (int i = 0; i < 3000; i++) {
        rl_record_error(t, "ip:1", T0 + (ms_t)i * 334, &started, NULL);
        ck_assert(!started);
    }
    /* 333 ms apart is faster than 3 per second: a ban comes eventually */
    int bans = 0;
    for (int i = 0; i < 3000 && bans == 0; i++) {
        rl_record_error(t, "ip:2", T0 + (ms_t)i * 333, &started, NULL);
        bans += started;
    }
    ck_assert_int_eq(bans, 1);
    rl_destroy(t);
}
END_TEST

START_TEST(bans_can_be_turned_off)
{
    struct rl_config c;
    rl_config_default(&c);
    c.ban_errors = 0;
    struct rl_table *t = make(&c);
    bool started = true;
    for (int i = 0; i < 10000; i++) {
        rl_record_error(t, "ip:1", T0, &started, NULL);
        ck_assert(!started);
    }
    ck_assert(!rl_banned(t, "ip:1", T0, NULL));
    rl_destroy(t);
}
END_TEST

START_TEST(default_ban_threshold_is_the_signed_rate)
{
    struct rl_table *t = make_default();
    bool started = false;
    for (int i = 0; i < 300; i++) {
        rl_record_error(t, "ip:1", T0, &started, NULL);
        ck_assert(!started);
    }
    rl_record_error(t, "ip:1", T0, &started, NULL);
    ck_assert(started);
    rl_destroy(t);
}
END_TEST

/* ---- the table ------------------------------------------------------------------------- */

static int remaining_of(struct rl_table *t, const char *key, ms_t now)
{
    struct rl_request r = sreq(key);
    struct rl_status st;
    rl_check(t, &r, now, &st);
    return st.remaining; /* after a hypothetical charge */
}

START_TEST(full_table_evicts_the_least_recently_seen)
{
    struct rl_config c;
    rl_config_default(&c);
    c.capacity = 4;
    struct rl_table *t = make(&c);
    ck_assert_int_eq(burst(t, "a", 300, T0), 300);
    ck_assert_int_eq(burst(t, "b", 1, T0), 1);
    ck_assert_int_eq(burst(t, "c", 2, T0), 2);
    ck_assert_int_eq(burst(t, "d", 3, T0), 3);
    ck_assert_int_eq(burst(t, "a", 1, T0), 0); /* refused, but seen: a is most recent */
    ck_assert_uint_eq(rl_size(t), 4);
    ck_assert_int_eq(remaining_of(t, "b", T0), 298); /* still there (check does not touch) */
    ck_assert_int_eq(burst(t, "e", 1, T0), 1);       /* evicts b */
    ck_assert_uint_eq(rl_size(t), 4);
    ck_assert_int_eq(remaining_of(t, "b", T0), 299); /* a fresh, full bucket */
    ck_assert_int_eq(remaining_of(t, "a", T0), 0);   /* still drained: kept */
    ck_assert_int_eq(remaining_of(t, "c", T0), 297);
    ck_assert_int_eq(remaining_of(t, "d", T0), 296);
    ck_assert_int_eq(burst(t, "f", 1, T0), 1); /* evicts c */
    ck_assert_int_eq(remaining_of(t, "c", T0), 299);
    ck_assert_int_eq(remaining_of(t, "d", T0), 296);
    /* error reports count as seen */
    rl_record_error(t, "d", T0, NULL, NULL);
    ck_assert_int_eq(burst(t, "g", 1, T0), 1); /* evicts a (d was refreshed) */
    ck_assert_int_eq(remaining_of(t, "a", T0), 299);
    ck_assert_int_eq(remaining_of(t, "d", T0), 296);
    rl_destroy(t);
}
END_TEST

#define MODEL_KEYS 300
#define MODEL_CAP 64

START_TEST(table_matches_a_naive_lru_model)
{
    /* Fixed time, so buckets never refill: a key's remaining is 300 minus its
     * charges since it last entered the table. The model keeps a recency
     * stamp per key and evicts the smallest when 64 are present. */
    struct rl_config c;
    rl_config_default(&c);
    c.capacity = MODEL_CAP;
    c.hash_seed = g_seed;
    struct rl_table *t = make(&c);
    int charges[MODEL_KEYS];
    int64_t stamp[MODEL_KEYS];
    bool present[MODEL_KEYS];
    memset(charges, 0, sizeof charges);
    memset(present, 0, sizeof present);
    int count = 0;
    char key[32];
    for (int64_t step = 1; step <= 60000; step++) {
        /* skewed choice so some keys stay hot and others churn */
        int k = (int)(rng_next() % 4 == 0 ? rng_next() % 16 : rng_next() % MODEL_KEYS);
        snprintf(key, sizeof key, "ip:192.168.%d.%d", k / 256, k % 256);
        if (rng_next() % 3 == 0) {
            int want = present[k] ? 300 - (charges[k] + 1 > 300 ? 300 : charges[k] + 1) : 299;
            if (present[k] && charges[k] >= 300)
                want = 0;
            ck_assert_msg(remaining_of(t, key, T0) == want, "seed %" PRIu64 " step %" PRId64,
                          g_seed, step);
            continue;
        }
        if (!present[k]) {
            if (count == MODEL_CAP) {
                int lru = -1;
                for (int j = 0; j < MODEL_KEYS; j++)
                    if (present[j] && (lru < 0 || stamp[j] < stamp[lru]))
                        lru = j;
                present[lru] = false;
                count--;
            }
            present[k] = true;
            charges[k] = 0;
            count++;
        }
        stamp[k] = step;
        enum rl_result res = charge(t, sreq(key), T0, NULL);
        ck_assert_int_eq(res, charges[k] < 300 ? RL_ALLOWED : RL_REFUSED);
        charges[k]++;
        ck_assert_uint_eq(rl_size(t), (unsigned)count);
    }
    rl_destroy(t);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------ */

#define THREADS 4

struct worker {
    struct rl_table *t;
    int id;
    int allowed;
};

/* A bucket of 100000 at a fixed time, 4 threads x 40000 charges: exactly
 * 100000 may pass. Lost updates (no lock) would let more through. */
#define BIG_LIMIT 100000
#define PER_THREAD 40000

static void *same_key_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        w->allowed += charge(w->t, sreq("k:shared"), T0, NULL) == RL_ALLOWED;
    return NULL;
}

START_TEST(threads_never_overspend_one_bucket)
{
    struct rl_config c;
    rl_config_default(&c);
    c.signed_.limit = BIG_LIMIT;
    struct rl_table *t = make(&c);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){t, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, same_key_worker, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    ck_assert_int_eq(total, BIG_LIMIT);
    ck_assert_uint_eq(rl_size(t), 1);
    struct rl_request r = sreq("k:shared");
    struct rl_status st;
    ck_assert_int_eq(rl_check(t, &r, T0, &st), RL_REFUSED);
    ck_assert_int_eq(st.remaining, 0);
    rl_destroy(t);
}
END_TEST

static void *churn_worker(void *arg)
{
    struct worker *w = arg;
    char key[32];
    uint64_t x = (uint64_t)w->id * UINT64_C(0x9E3779B97F4A7C15) + 1;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        snprintf(key, sizeof key, "ip:%d.%u", w->id, (unsigned)(x % 500));
        ms_t now = T0 + i;
        switch (x % 4) {
        case 0: rl_record_error(w->t, key, now, NULL, NULL); break;
        case 1: (void)rl_banned(w->t, key, now, NULL); break;
        case 2: {
            struct rl_request r = sreq(key);
            (void)rl_check(w->t, &r, now, NULL);
            break;
        }
        default: w->allowed += charge(w->t, sreq(key), now, NULL) == RL_ALLOWED; break;
        }
        ck_assert_uint_le(rl_size(w->t), 256);
    }
    return NULL;
}

START_TEST(threads_churning_a_small_table)
{
    struct rl_config c;
    rl_config_default(&c);
    c.capacity = 256;
    struct rl_table *t = make(&c);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){t, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn_worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(rl_size(t), 256);
    /* each key is charged ~ 10 times within 20 s, far below 300: all allowed */
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_gt(w[i].allowed, 4000);
    rl_destroy(t);
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("api_ratelimit");
    TCase *b = tcase_create("bucket");
    tcase_add_test(b, profiles_hold_the_documented_numbers);
    tcase_add_test(b, bulk_costs_ceil_tenth_of_the_orders);
    tcase_add_test(b, bad_configs_are_refused);
    tcase_add_test(b, seed_002_header_example);
    tcase_add_test(b, burst_of_300_then_refused_with_exact_retry);
    tcase_add_test(b, refill_is_continuous_and_exact);
    tcase_add_test(b, refused_requests_take_nothing);
    tcase_add_test(b, check_neither_takes_nor_creates);
    tcase_add_test(b, unsigned_requests_use_the_unsigned_limit);
    tcase_add_test(b, bulk_call_costs_its_tokens);
    tcase_add_test(b, cost_above_the_bucket_is_clamped_to_a_full_bucket);
    tcase_add_test(b, negative_cost_and_bad_keys);
    tcase_add_test(b, cancels_are_never_refused_and_drain_to_zero);
    tcase_add_test(b, order_routes_have_a_second_bucket_of_10_per_second);
    tcase_add_test(b, main_bucket_refusal_on_an_order_route);
    tcase_add_test(b, stale_time_adds_nothing_and_keeps_the_clock);
    tcase_add_test(b, format_429_message);
    suite_add_tcase(s, b);
    TCase *bn = tcase_create("bans");
    tcase_add_test(bn, too_many_errors_ban_for_an_hour);
    tcase_add_test(bn, a_second_ban_within_a_day_lasts_a_week);
    tcase_add_test(bn, errors_at_the_allowed_rate_never_ban);
    tcase_add_test(bn, bans_can_be_turned_off);
    tcase_add_test(bn, default_ban_threshold_is_the_signed_rate);
    suite_add_tcase(s, bn);
    TCase *tb = tcase_create("table");
    tcase_add_test(tb, full_table_evicts_the_least_recently_seen);
    tcase_add_test(tb, table_matches_a_naive_lru_model);
    tcase_add_test(tb, threads_never_overspend_one_bucket);
    tcase_add_test(tb, threads_churning_a_small_table);
    tcase_set_timeout(tb, 60);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    rng_init();
    printf("api_ratelimit: seed %" PRIu64 "\n", g_seed);
    SRunner *sr = srunner_create(ratelimit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
