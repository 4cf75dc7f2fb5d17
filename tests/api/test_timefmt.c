/*
 * test_timefmt.c - Check suite for api/timefmt: BitMEX timestamps and
 * decimal numbers.
 *
 * Epoch values were computed independently (Python's datetime in UTC) and
 * are written as literals. BitMEX forms: its responses ("2020-10-12T
 * 18:18:38.282Z"), its REST documentation's filter example ("2014-12-26
 * 11:00") and what clients send (ISO with .000Z, and ccxt's raw epoch-ms
 * integers). A seeded property test checks
 * format/parse against each other over the whole 1970..9999 range
 * (PERPSIM_SEED replays it).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/timefmt.h"

#define DEFAULT_SEED UINT64_C(20261121)

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

/* ---- helpers ------------------------------------------------------------------ */

static enum tf_err ptime(const char *s, ms_t *out)
{
    return tf_parse_time(s, strlen(s), out);
}

static ms_t time_ok(const char *s)
{
    ms_t v = -1;
    enum tf_err e = ptime(s, &v);
    ck_assert_msg(e == TF_OK, "\"%s\": %s", s, tf_err_name(e));
    return v;
}

static void time_err(const char *s, enum tf_err want)
{
    ms_t v = 12345;
    enum tf_err e = ptime(s, &v);
    ck_assert_msg(e == want, "\"%s\": got %s, want %s", s, tf_err_name(e), tf_err_name(want));
    ck_assert_int_eq(v, 12345);
}

static int64_t fixed_ok(const char *s, int scale)
{
    int64_t v = -1;
    enum tf_err e = tf_parse_fixed(s, strlen(s), scale, &v);
    ck_assert_msg(e == TF_OK, "\"%s\" scale %d: %s", s, scale, tf_err_name(e));
    return v;
}

static void fixed_err(const char *s, int scale, enum tf_err want)
{
    int64_t v = 777;
    enum tf_err e = tf_parse_fixed(s, strlen(s), scale, &v);
    ck_assert_msg(e == want, "\"%s\" scale %d: got %s, want %s", s, scale, tf_err_name(e),
                  tf_err_name(want));
    ck_assert_int_eq(v, 777);
}

static void fmt_is(ms_t ms, const char *want)
{
    char buf[TF_ISO_BUF];
    ck_assert_int_eq(tf_format_ms(ms, buf, sizeof buf), TF_OK);
    ck_assert_str_eq(buf, want);
}

/* ---- formatting ----------------------------------------------------------------- */

START_TEST(format_bitmex_iso_with_millis)
{
    fmt_is(0, "1970-01-01T00:00:00.000Z");
    fmt_is(INT64_C(1795233600000), "2026-11-21T04:00:00.000Z");
    fmt_is(INT64_C(1602526718282), "2020-10-12T18:18:38.282Z");
    fmt_is(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
    fmt_is(INT64_C(951868800000), "2000-03-01T00:00:00.000Z");
    fmt_is(INT64_C(4107542400000), "2100-03-01T00:00:00.000Z");
    fmt_is(INT64_C(68169600000), "1972-02-29T00:00:00.000Z");
    fmt_is(TF_MS_MAX, "9999-12-31T23:59:59.999Z");
    fmt_is(INT64_C(1795233600000) - 1, "2026-11-21T03:59:59.999Z");
}
END_TEST

START_TEST(format_rejects_out_of_range_and_small_buffers)
{
    char buf[TF_ISO_BUF];
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(tf_format_ms(-1, buf, sizeof buf), TF_ERR_RANGE);
    ck_assert_int_eq(tf_format_ms(TF_MS_MAX + 1, buf, sizeof buf), TF_ERR_RANGE);
    ck_assert_int_eq(tf_format_ms(0, buf, TF_ISO_LEN), TF_ERR_BUFFER);
    ck_assert_int_eq(buf[0], 'x');
}
END_TEST

/* ---- parsing timestamps ------------------------------------------------------------ */

START_TEST(parse_every_accepted_form)
{
    const ms_t t = INT64_C(1795233600000); /* 2026-11-21T04:00:00Z */
    const ms_t day = INT64_C(1795219200000); /* 2026-11-21T00:00:00Z */
    ck_assert_int_eq(time_ok("2026-11-21"), day);
    ck_assert_int_eq(time_ok("2026-11-21T04:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21 04:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00Z"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00z"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00Z"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.000Z"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.5Z"), t + 500);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.05"), t + 50);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.123456789Z"), t + 123);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.1239Z"), t + 123); /* truncated */
    ck_assert_int_eq(time_ok("2020-10-12T18:18:38.282Z"), INT64_C(1602526718282));
    ck_assert_int_eq(time_ok("2014-12-26 11:00"), INT64_C(1419591600000));
    ck_assert_int_eq(time_ok("2024-01-01T00:00:00.000Z"), INT64_C(1704067200000));
}
END_TEST

START_TEST(parse_offsets)
{
    const ms_t t = INT64_C(1795233600000); /* 04:00Z */
    ck_assert_int_eq(time_ok("2026-11-21T05:30:00+01:30"), t);
    ck_assert_int_eq(time_ok("2026-11-21T05:30+0130"), t);
    ck_assert_int_eq(time_ok("2026-11-21T05:00:00+01"), t);
    ck_assert_int_eq(time_ok("2026-11-20T23:00:00-05:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00.000+00:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21T04:00:00-00:00"), t);
    ck_assert_int_eq(time_ok("2026-11-21T05:00:00 01:00"), t); /* '+' decoded to ' ' */
    /* an offset that crosses into the range from 1969 */
    ck_assert_int_eq(time_ok("1969-12-31T23:30:00-01:00"), 30 * 60000);
}
END_TEST

START_TEST(parse_epoch_milliseconds)
{
    ck_assert_int_eq(time_ok("0"), 0);
    ck_assert_int_eq(time_ok("1795233600000"), INT64_C(1795233600000));
    ck_assert_int_eq(time_ok("2014"), 2014); /* digits are always ms */
    ck_assert_int_eq(time_ok("253402300799999"), TF_MS_MAX);
    ck_assert_int_eq(time_ok("0000000000000001"), 1);
    time_err("253402300800000", TF_ERR_RANGE);
    time_err("99999999999999999999999999", TF_ERR_RANGE);
    time_err("-1", TF_ERR_SYNTAX);
    time_err("+1", TF_ERR_SYNTAX);
    time_err("1795233600000.0", TF_ERR_SYNTAX);
}
END_TEST

START_TEST(parse_rejects_empty_text)
{
    time_err("", TF_ERR_EMPTY);
    ms_t v = 12345;
    ck_assert_int_eq(tf_parse_time(NULL, 0, &v), TF_ERR_EMPTY);
    ck_assert_int_eq(v, 12345);
}
END_TEST

START_TEST(parse_rejects_malformed)
{
    time_err("2026-11", TF_ERR_SYNTAX);
    time_err("2026/11/21", TF_ERR_SYNTAX);
    time_err("26-11-21", TF_ERR_SYNTAX);
    time_err("2026-1-21", TF_ERR_SYNTAX);
    time_err("2026-11-21T", TF_ERR_SYNTAX);
    time_err("2026-11-21T4:00", TF_ERR_SYNTAX);
    time_err("2026-11-21T04", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:0", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00.", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00.1234567890Z", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00.5", TF_ERR_SYNTAX);
    time_err("2026-11-21Z", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00ZZ", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00 Z", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00+1", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00+01:0", TF_ERR_SYNTAX);
    time_err("2026-11-21T04:00:00+01:00:00", TF_ERR_SYNTAX);
    time_err(" 2026-11-21", TF_ERR_SYNTAX);
    time_err("2026-11-21 ", TF_ERR_SYNTAX);
    time_err("2026-11-21x04:00", TF_ERR_SYNTAX);
    time_err("now", TF_ERR_SYNTAX);
    time_err("1e12", TF_ERR_SYNTAX);
}
END_TEST

START_TEST(parse_rejects_bad_fields)
{
    time_err("2026-13-01", TF_ERR_FIELD);
    time_err("2026-00-01", TF_ERR_FIELD);
    time_err("2026-11-00", TF_ERR_FIELD);
    time_err("2026-11-31", TF_ERR_FIELD);
    time_err("2026-02-29", TF_ERR_FIELD); /* 2026 is not a leap year */
    time_err("2100-02-29", TF_ERR_FIELD); /* century rule */
    ck_assert_int_eq(time_ok("2000-02-29"), INT64_C(951782400000));
    time_err("2026-11-21T24:00", TF_ERR_FIELD);
    time_err("2026-11-21T23:60", TF_ERR_FIELD);
    time_err("2026-11-21T23:59:60", TF_ERR_FIELD);
    time_err("2026-11-21T04:00+24:00", TF_ERR_FIELD);
    time_err("2026-11-21T04:00+01:60", TF_ERR_FIELD);
}
END_TEST

START_TEST(parse_rejects_out_of_range_instants)
{
    time_err("1969-12-31", TF_ERR_RANGE);
    time_err("1970-01-01T00:30+01:00", TF_ERR_RANGE);
    time_err("0000-01-01", TF_ERR_RANGE);
    ck_assert_int_eq(time_ok("9999-12-31T23:59:59.999Z"), TF_MS_MAX);
    time_err("9999-12-31T23:59:59.999-00:01", TF_ERR_RANGE);
    ck_assert_int_eq(time_ok("1970-01-01T00:00:00Z"), 0);
}
END_TEST

START_TEST(format_then_parse_round_trips_over_the_range)
{
    char buf[TF_ISO_BUF];
    for (int i = 0; i < 100000; i++) {
        ms_t ms = (ms_t)(rng_next() % (uint64_t)(TF_MS_MAX + 1));
        ck_assert_int_eq(tf_format_ms(ms, buf, sizeof buf), TF_OK);
        ms_t back = -1;
        ck_assert_msg(ptime(buf, &back) == TF_OK && back == ms,
                      "seed %" PRIu64 ": %" PRId64 " -> %s -> %" PRId64, g_seed, ms, buf, back);
    }
}
END_TEST

START_TEST(civil_days_match_a_day_by_day_walk)
{
    /* Walk every day 1970-01-01 .. 2400-12-31 by incrementing the date by
     * hand, and compare with both conversions. */
    int y = 1970, m = 1, d = 1;
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int64_t n = 0; y <= 2400; n++) {
        ck_assert_int_eq(tf_days_from_civil(y, m, d), n);
        int yy, mm, dd;
        tf_civil_from_days(n, &yy, &mm, &dd);
        ck_assert(yy == y && mm == m && dd == d);
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int len = m == 2 ? 28 + leap : dim[m - 1];
        if (++d > len) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
}
END_TEST

/* ---- fixed-point numbers ------------------------------------------------------------ */

START_TEST(fixed_prices_at_scale_8)
{
    ck_assert_int_eq(fixed_ok("35000.5", 8), INT64_C(3500050000000));
    ck_assert_int_eq(fixed_ok("219.0", 8), INT64_C(21900000000));
    ck_assert_int_eq(fixed_ok("0.00000001", 8), 1);
    ck_assert_int_eq(fixed_ok("-0.5", 8), -50000000);
    ck_assert_int_eq(fixed_ok("-0", 8), 0);
    ck_assert_int_eq(fixed_ok("0", 8), 0);
    ck_assert_int_eq(fixed_ok("007", 8), 700000000);
    ck_assert_int_eq(fixed_ok("1.50000000000", 8), 150000000);
    ck_assert_int_eq(fixed_ok("1000000", 8), INT64_C(100000000000000));
    ck_assert_int_eq(fixed_ok("2.5", 8), 250000000); /* leverage */
}
END_TEST

START_TEST(fixed_exponents)
{
    ck_assert_int_eq(fixed_ok("1e-8", 8), 1);
    ck_assert_int_eq(fixed_ok("1E-8", 8), 1);
    ck_assert_int_eq(fixed_ok("1.5e0", 8), 150000000);
    ck_assert_int_eq(fixed_ok("15e-1", 8), 150000000);
    ck_assert_int_eq(fixed_ok("3.5e4", 8), INT64_C(3500000000000));
    ck_assert_int_eq(fixed_ok("3.5e+4", 8), INT64_C(3500000000000));
    ck_assert_int_eq(fixed_ok("1000e-11", 8), 1);
    ck_assert_int_eq(fixed_ok("0e999999999999999999999", 8), 0);
    ck_assert_int_eq(fixed_ok("0.0e-99999", 8), 0);
    fixed_err("1e-9", 8, TF_ERR_PRECISION);
    fixed_err("1e999999999999999999", 8, TF_ERR_OVERFLOW);
    fixed_err("1e-999999999999999999", 8, TF_ERR_PRECISION);
    fixed_err("1e99999999999999999999999999999", 8, TF_ERR_OVERFLOW);
    fixed_err("1e-99999999999999999999999999999", 8, TF_ERR_PRECISION);
    ck_assert_int_eq(fixed_ok("100000000000000000000e-20", 8), 100000000);
    ck_assert_int_eq(fixed_ok("0.000000000000000000000000000001e30", 8), 100000000);
    fixed_err("1e", 8, TF_ERR_SYNTAX);
    fixed_err("1e+", 8, TF_ERR_SYNTAX);
}
END_TEST

START_TEST(fixed_limits_of_int64)
{
    ck_assert_int_eq(fixed_ok("92233720368.54775807", 8), INT64_MAX);
    ck_assert_int_eq(fixed_ok("-92233720368.54775808", 8), INT64_MIN);
    fixed_err("92233720368.54775808", 8, TF_ERR_OVERFLOW);
    fixed_err("-92233720368.54775809", 8, TF_ERR_OVERFLOW);
    ck_assert_int_eq(fixed_ok("9223372036854775807", 0), INT64_MAX);
    fixed_err("9223372036854775808", 0, TF_ERR_OVERFLOW);
    fixed_err("99999999999999999999", 0, TF_ERR_OVERFLOW);
    fixed_err("18446744073709551616", 0, TF_ERR_OVERFLOW);
    ck_assert_int_eq(fixed_ok("1000000000000000000", 0), INT64_C(1000000000000000000));
    fixed_err("10000000000000000000", 0, TF_ERR_OVERFLOW);
    ck_assert_int_eq(fixed_ok("1", 18), INT64_C(1000000000000000000));
    fixed_err("10", 18, TF_ERR_OVERFLOW);
}
END_TEST

START_TEST(fixed_rejects_bad_text)
{
    fixed_err("", 8, TF_ERR_EMPTY);
    fixed_err("NaN", 8, TF_ERR_NOT_FINITE);
    fixed_err("nan", 8, TF_ERR_NOT_FINITE);
    fixed_err("-Infinity", 8, TF_ERR_NOT_FINITE);
    fixed_err("inf", 8, TF_ERR_NOT_FINITE);
    fixed_err("+INF", 8, TF_ERR_NOT_FINITE);
    fixed_err("0.123456789", 8, TF_ERR_PRECISION);
    fixed_err("100.5", 0, TF_ERR_PRECISION);
    fixed_err("+1", 8, TF_ERR_SYNTAX);
    fixed_err(".5", 8, TF_ERR_SYNTAX);
    fixed_err("5.", 8, TF_ERR_SYNTAX);
    fixed_err("-", 8, TF_ERR_SYNTAX);
    fixed_err("--1", 8, TF_ERR_SYNTAX);
    fixed_err(" 1", 8, TF_ERR_SYNTAX);
    fixed_err("1 ", 8, TF_ERR_SYNTAX);
    fixed_err("0x10", 8, TF_ERR_SYNTAX);
    fixed_err("1,000", 8, TF_ERR_SYNTAX);
    fixed_err("1.2.3", 8, TF_ERR_SYNTAX);
    fixed_err("abc", 8, TF_ERR_SYNTAX);
    fixed_err("1", -1, TF_ERR_SCALE);
    fixed_err("1", 19, TF_ERR_SCALE);
}
END_TEST

START_TEST(fixed_uses_the_given_length_not_the_nul)
{
    int64_t v = 0;
    ck_assert_int_eq(tf_parse_fixed("12.5xyz", 4, 8, &v), TF_OK);
    ck_assert_int_eq(v, 1250000000);
    ms_t t = 0;
    ck_assert_int_eq(tf_parse_time("2026-11-21garbage", 10, &t), TF_OK);
    ck_assert_int_eq(t, INT64_C(1795219200000));
}
END_TEST

START_TEST(qty_integers_and_fractions)
{
    int64_t v = 0;
    ck_assert_int_eq(tf_parse_qty("100", 3, &v), TF_OK);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(tf_parse_qty("100.0", 5, &v), TF_OK);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(tf_parse_qty("100.00", 6, &v), TF_OK);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(tf_parse_qty("-100", 4, &v), TF_OK);
    ck_assert_int_eq(v, -100);
    ck_assert_int_eq(tf_parse_qty("1e2", 3, &v), TF_OK);
    ck_assert_int_eq(v, 100);
    v = 5;
    ck_assert_int_eq(tf_parse_qty("1.5", 3, &v), TF_ERR_FRACTION);
    ck_assert_int_eq(tf_parse_qty("0.1", 3, &v), TF_ERR_FRACTION);
    ck_assert_int_eq(tf_parse_qty("1e-1", 4, &v), TF_ERR_FRACTION);
    ck_assert_int_eq(tf_parse_qty("NaN", 3, &v), TF_ERR_NOT_FINITE);
    ck_assert_int_eq(tf_parse_qty("1e30", 4, &v), TF_ERR_OVERFLOW);
    ck_assert_int_eq(tf_parse_qty("", 0, &v), TF_ERR_EMPTY);
    ck_assert_int_eq(v, 5);
}
END_TEST

START_TEST(fixed_from_double_uses_shortest_text)
{
    int64_t v = 0;
    ck_assert_int_eq(tf_fixed_from_double(219.0, 8, &v), TF_OK);
    ck_assert_int_eq(v, INT64_C(21900000000));
    ck_assert_int_eq(tf_fixed_from_double(0.1, 8, &v), TF_OK);
    ck_assert_int_eq(v, 10000000);
    ck_assert_int_eq(tf_fixed_from_double(26000.5, 8, &v), TF_OK);
    ck_assert_int_eq(v, INT64_C(2600050000000));
    ck_assert_int_eq(tf_fixed_from_double(0.3, 8, &v), TF_OK); /* 0.1+0.2 != 0.3 but 0.3 is fine */
    ck_assert_int_eq(v, 30000000);
    ck_assert_int_eq(tf_fixed_from_double(1e-8, 8, &v), TF_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(tf_fixed_from_double(-46976.5, 8, &v), TF_OK);
    ck_assert_int_eq(v, INT64_C(-4697650000000));
    ck_assert_int_eq(tf_fixed_from_double(100.0, 0, &v), TF_OK);
    ck_assert_int_eq(v, 100);
    v = 9;
    ck_assert_int_eq(tf_fixed_from_double(0.1 + 0.2, 8, &v), TF_ERR_PRECISION);
    ck_assert_int_eq(tf_fixed_from_double(1e-9, 8, &v), TF_ERR_PRECISION);
    ck_assert_int_eq(tf_fixed_from_double(1e300, 8, &v), TF_ERR_OVERFLOW);
    ck_assert_int_eq(tf_fixed_from_double(strtod("nan", NULL), 8, &v), TF_ERR_NOT_FINITE);
    ck_assert_int_eq(tf_fixed_from_double(strtod("inf", NULL), 8, &v), TF_ERR_NOT_FINITE);
    ck_assert_int_eq(v, 9);
}
END_TEST

START_TEST(fixed_matches_a_reference_over_random_values)
{
    /* Random int64 values at random scales, written out by hand in plain and
     * exponent form, must parse back to themselves. */
    char buf[64];
    for (int i = 0; i < 100000; i++) {
        int64_t v = (int64_t)rng_next();
        int scale = (int)(rng_next() % 19);
        uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        uint64_t p10 = 1;
        for (int k = 0; k < scale; k++)
            p10 *= 10;
        int n = snprintf(buf, sizeof buf, "%s%" PRIu64, v < 0 ? "-" : "", mag / p10);
        if (scale > 0)
            snprintf(buf + n, sizeof buf - (size_t)n, ".%0*" PRIu64, scale, mag % p10);
        int64_t got = 0;
        enum tf_err e = tf_parse_fixed(buf, strlen(buf), scale, &got);
        ck_assert_msg(e == TF_OK && got == v, "seed %" PRIu64 ": %s scale %d -> %s %" PRId64,
                      g_seed, buf, scale, tf_err_name(e), got);
        /* the same value as integer digits times 10^-scale */
        snprintf(buf, sizeof buf, "%s%" PRIu64 "e-%d", v < 0 ? "-" : "", mag, scale);
        e = tf_parse_fixed(buf, strlen(buf), scale, &got);
        ck_assert_msg(e == TF_OK && got == v, "seed %" PRIu64 ": %s scale %d -> %s %" PRId64,
                      g_seed, buf, scale, tf_err_name(e), got);
    }
}
END_TEST

static Suite *timefmt_suite(void)
{
    Suite *s = suite_create("api_timefmt");
    TCase *t = tcase_create("time");
    tcase_add_test(t, format_bitmex_iso_with_millis);
    tcase_add_test(t, format_rejects_out_of_range_and_small_buffers);
    tcase_add_test(t, parse_every_accepted_form);
    tcase_add_test(t, parse_offsets);
    tcase_add_test(t, parse_epoch_milliseconds);
    tcase_add_test(t, parse_rejects_empty_text);
    tcase_add_test(t, parse_rejects_malformed);
    tcase_add_test(t, parse_rejects_bad_fields);
    tcase_add_test(t, parse_rejects_out_of_range_instants);
    tcase_add_test(t, format_then_parse_round_trips_over_the_range);
    tcase_add_test(t, civil_days_match_a_day_by_day_walk);
    suite_add_tcase(s, t);
    TCase *n = tcase_create("numbers");
    tcase_add_test(n, fixed_prices_at_scale_8);
    tcase_add_test(n, fixed_exponents);
    tcase_add_test(n, fixed_limits_of_int64);
    tcase_add_test(n, fixed_rejects_bad_text);
    tcase_add_test(n, fixed_uses_the_given_length_not_the_nul);
    tcase_add_test(n, qty_integers_and_fractions);
    tcase_add_test(n, fixed_from_double_uses_shortest_text);
    tcase_add_test(n, fixed_matches_a_reference_over_random_values);
    suite_add_tcase(s, n);
    return s;
}

int main(void)
{
    rng_init();
    printf("api_timefmt: seed %" PRIu64 "\n", g_seed);
    SRunner *sr = srunner_create(timefmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
