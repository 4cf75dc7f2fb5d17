/*
 * test_query.c - Check suite for api/query: BitMEX's generic table query
 * and the row collector.
 *
 * Times are written as constants computed independently (Python's
 * datetime, UTC): 2014-12-26T12:00:00.000Z is 1419595200000 ms and a
 * Friday, so BitMEX's "timestamp.ww" (0 = Sat, 1 = Sun, ..., 6 = Fri) is 6
 * there. The timestamp filter table is the one BitMEX's REST
 * documentation gives.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "api/query.h"

#define T0 INT64_C(1419595200000)          /* 2014-12-26T12:00:00.000Z, Friday */
#define DAY0 INT64_C(1419552000000)        /* 2014-12-26T00:00:00.000Z */
#define DAY1 INT64_C(1419638400000)        /* 2014-12-27T00:00:00.000Z, Saturday */
#define DEC1 INT64_C(1417392000000)        /* 2014-12-01T00:00:00.000Z */
#define Y2015 INT64_C(1420070400000)       /* 2015-01-01T00:00:00.000Z */
#define Y2014 INT64_C(1388534400000)       /* 2014-01-01T00:00:00.000Z */
#define LEAP_NOON INT64_C(1456747200000)   /* 2016-02-29T12:00:00.000Z */
#define MAR1_2016 INT64_C(1456790400000)   /* 2016-03-01T00:00:00.000Z */
#define THU_NOON INT64_C(1419508800000)    /* 2014-12-25T12:00Z, Thursday */
#define SAT_NOON INT64_C(1419681600000)    /* 2014-12-27T12:00Z */
#define SUN_NOON INT64_C(1419768000000)    /* 2014-12-28T12:00Z */
#define JAN26_NOON INT64_C(1422273600000)  /* 2015-01-26T12:00Z */
#define T11 INT64_C(1419591600000)         /* 2014-12-26T11:00Z */
#define T13 INT64_C(1419598800000)         /* 2014-12-26T13:00Z */
#define H INT64_C(3600000)
#define M INT64_C(60000)
#define S INT64_C(1000)

#define ck_qerr(got, want)                                                                     \
    do {                                                                                       \
        enum q_err g_ = (got), w_ = (want);                                                    \
        ck_assert_msg(g_ == w_, "got %d (%s), want %d (%s)", (int)g_, q_err_message(g_), (int)w_, \
                      q_err_message(w_));                                                      \
    } while (0)

/* q_parse of a query string (as it arrives on the wire) or a JSON body. */
static enum q_err parse_q(const char *query, const char *body, const struct q_spec *spec,
                          struct q_opts *o)
{
    cJSON *p = NULL;
    ck_assert_int_eq(prm_parse(query, query ? strlen(query) : 0, body, body ? strlen(body) : 0,
                               body ? "application/json" : NULL, &p),
                     PRM_OK);
    enum q_err e = q_parse(p, spec, o);
    cJSON_Delete(p);
    return e;
}

static void parse_ok(const char *query, const char *body, struct q_opts *o)
{
    ck_qerr(parse_q(query, body, NULL, o), Q_OK);
}

static void parse_err(const char *query, const char *body, enum q_err want)
{
    struct q_opts o;
    ck_qerr(parse_q(query, body, NULL, &o), want);
    /* nothing is left to free */
    ck_assert_ptr_null(o.filter);
    ck_assert_ptr_null(o.columns);
}

/* filter given as a JSON body text: {"filter": <f>} */
static void filter_opts(const char *filter_json, struct q_opts *o)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"filter\":%s}", filter_json);
    parse_ok(NULL, body, o);
}

static cJSON *row_of(const char *json)
{
    cJSON *r = cJSON_Parse(json);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Does the row (JSON text) at time t match the filter (JSON text)? */
static bool fmatch(const char *filter_json, const char *row_json, ms_t t)
{
    struct q_opts o;
    filter_opts(filter_json, &o);
    cJSON *r = row_of(row_json);
    bool m = q_match(&o, r, t);
    cJSON_Delete(r);
    q_free(&o);
    return m;
}

/* Does the timestamp filter match time t (on an empty row)? */
static bool tmatch(const char *filter_json, ms_t t)
{
    return fmatch(filter_json, "{}", t);
}

/* ---- parameters -------------------------------------------------------------------- */

START_TEST(defaults_without_parameters)
{
    struct q_opts o;
    parse_ok(NULL, NULL, &o);
    ck_assert_int_eq(o.count, Q_COUNT_DEFAULT);
    ck_assert_int_eq(o.start, 0);
    ck_assert(!o.reverse);
    ck_assert(!o.has_start && !o.has_end);
    ck_assert_ptr_null(o.filter);
    ck_assert_ptr_null(o.columns);
    ck_assert_ptr_null(o.keys);
    ck_assert(q_time_ok(&o, 0) && q_time_ok(&o, T0));
    q_free(&o);
    q_free(&o); /* twice is harmless */
    /* NULL params too */
    ck_qerr(q_parse(NULL, NULL, &o), Q_OK);
    ck_assert_int_eq(o.count, Q_COUNT_DEFAULT);
    q_free(&o);
}
END_TEST

START_TEST(wallet_history_spec_defaults)
{
    static const char *const keys[] = {"transactID", NULL};
    struct q_spec spec = {10000, 10000, true, keys};
    struct q_opts o;
    ck_qerr(parse_q(NULL, NULL, &spec, &o), Q_OK);
    ck_assert_int_eq(o.count, 10000);
    ck_assert(o.reverse);
    ck_assert_ptr_eq(o.keys, keys);
    q_free(&o);
    ck_qerr(parse_q("count=10000&reverse=false", NULL, &spec, &o), Q_OK);
    ck_assert_int_eq(o.count, 10000);
    ck_assert(!o.reverse);
    q_free(&o);
    ck_qerr(parse_q("count=10001", NULL, &spec, &o), Q_BAD_COUNT);
    /* a default above the max is clamped */
    struct q_spec odd = {5000, 10, false, NULL};
    ck_qerr(parse_q(NULL, NULL, &odd, &o), Q_OK);
    ck_assert_int_eq(o.count, 10);
    q_free(&o);
}
END_TEST

START_TEST(count_must_be_1_to_max)
{
    struct q_opts o;
    parse_ok("count=1", NULL, &o);
    ck_assert_int_eq(o.count, 1);
    q_free(&o);
    parse_ok("count=1000", NULL, &o);
    ck_assert_int_eq(o.count, 1000);
    q_free(&o);
    parse_ok(NULL, "{\"count\":500.0}", &o); /* Python's float */
    ck_assert_int_eq(o.count, 500);
    q_free(&o);
    static const char *const bad[] = {"count=1001", "count=0",     "count=-1",   "count=abc",
                                      "count=1.5",  "count=1e2",   "count=true", "count=%2B",
                                      "count=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_err(bad[i], NULL, Q_BAD_COUNT);
    parse_err(NULL, "{\"count\":[1]}", Q_BAD_COUNT);
    parse_err(NULL, "{\"count\":2.5}", Q_BAD_COUNT);
    ck_assert_str_eq(q_err_message(Q_BAD_COUNT), "count is invalid");
}
END_TEST

START_TEST(start_must_be_non_negative)
{
    struct q_opts o;
    parse_ok("start=0", NULL, &o);
    ck_assert_int_eq(o.start, 0);
    q_free(&o);
    parse_ok("start=250", NULL, &o);
    ck_assert_int_eq(o.start, 250);
    q_free(&o);
    parse_err("start=-1", NULL, Q_BAD_START);
    parse_err("start=x", NULL, Q_BAD_START);
    parse_err(NULL, "{\"start\":0.5}", Q_BAD_START);
    ck_assert_str_eq(q_err_message(Q_BAD_START), "start is invalid");
}
END_TEST

START_TEST(reverse_is_a_boolean)
{
    struct q_opts o;
    parse_ok("reverse=true", NULL, &o);
    ck_assert(o.reverse);
    q_free(&o);
    parse_ok("reverse=TRUE", NULL, &o);
    ck_assert(o.reverse);
    q_free(&o);
    parse_ok("reverse=false", NULL, &o);
    ck_assert(!o.reverse);
    q_free(&o);
    parse_ok(NULL, "{\"reverse\":true}", &o);
    ck_assert(o.reverse);
    q_free(&o);
    parse_err("reverse=maybe", NULL, Q_BAD_REVERSE);
    parse_err(NULL, "{\"reverse\":2}", Q_BAD_REVERSE);
    ck_assert_str_eq(q_err_message(Q_BAD_REVERSE), "reverse is invalid");
}
END_TEST

START_TEST(empty_values_mean_not_given)
{
    struct q_opts o;
    parse_ok("count=&start=&reverse=&filter=&columns=&startTime=&endTime=", NULL, &o);
    ck_assert_int_eq(o.count, Q_COUNT_DEFAULT);
    ck_assert_ptr_null(o.filter);
    ck_assert_ptr_null(o.columns);
    ck_assert(!o.has_start && !o.has_end);
    q_free(&o);
    parse_ok(NULL, "{\"count\":null,\"filter\":null}", &o);
    ck_assert_int_eq(o.count, Q_COUNT_DEFAULT);
    ck_assert_ptr_null(o.filter);
    q_free(&o);
}
END_TEST

START_TEST(filter_from_ccxt_query_python_query_and_body)
{
    struct q_opts o;
    parse_ok("symbol=XBTUSD&filter=%7B%22open%22%3Atrue%7D", NULL, &o);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o.filter, "open")));
    q_free(&o);
    parse_ok("filter=%7B%22symbol%22%3A+%22XBTM15%22%7D", NULL, &o);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o.filter, "symbol")->valuestring, "XBTM15");
    q_free(&o);
    parse_ok(NULL, "{\"filter\":{\"execType\":[\"Settlement\",\"Trade\"]}}", &o);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o.filter, "execType")), 2);
    q_free(&o);
    parse_ok(NULL, "{\"filter\":\"{\\\"side\\\":\\\"Buy\\\"}\"}", &o); /* a string in a body */
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o.filter, "side")->valuestring, "Buy");
    q_free(&o);
}
END_TEST

START_TEST(filter_malformed_is_invalid)
{
    static const char *const bad_q[] = {
        "filter=%7B",                  /* "{" */
        "filter=%5B1%5D",              /* [1] */
        "filter=42",                   /* not an object */
        "filter=symbol",               /* not JSON */
    };
    for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++)
        parse_err(bad_q[i], NULL, Q_BAD_FILTER);
    static const char *const bad_f[] = {
        "{\"a\":{\"b\":1}}",              /* an object value */
        "{\"a\":[[1]]}",                  /* a list inside a list */
        "{\"a\":[{\"b\":1}]}",
        "{\"ordStatus.isTerminated\":\"x\"}",
        "{\"ordStatus.isTerminated\":1}",
        "{\"timestamp.mm\":12}",          /* no month-of-year key */
        "{\"timestamp.foo\":1}",
        "{\"timestamp.hh\":24}",          /* values out of their range */
        "{\"timestamp.hh\":-1}",
        "{\"timestamp.hh\":11.5}",
        "{\"timestamp.uu\":60}",
        "{\"timestamp.ss\":60}",
        "{\"timestamp.ww\":7}",
        "{\"timestamp.dd\":0}",
        "{\"timestamp.dd\":32}",
        "{\"timestamp.dd\":\"x\"}",
        "{\"timestamp.year\":1969}",
        "{\"timestamp.year\":10000}",
        "{\"timestamp.month\":\"2014-13\"}",
        "{\"timestamp.month\":\"2014-12-26\"}",
        "{\"timestamp.month\":201412}",
        "{\"timestamp.date\":\"2014-02-29\"}", /* not a leap year */
        "{\"timestamp.date\":\"2014-12\"}",
        "{\"timestamp.date\":\"2014-12-26T00:00\"}",
        "{\"timestamp\":\"yesterday\"}",
        "{\"timestamp\":\"2014-12-32\"}",
        "{\"timestamp\":-5}",
        "{\"timestamp.time\":\"25:00\"}",
        "{\"timestamp.time\":\"12:60\"}",
        "{\"timestamp.time\":\"12\"}",
        "{\"timestamp.time\":\"12:00:00.\"}",
        "{\"timestamp.time\":\"12:00Z\"}",
        "{\"timestamp.second\":\"12:00\"}",
        "{\"timestamp.second\":\"12:00:00.000\"}",
        "{\"timestamp.minute\":\"12:00:00\"}",
        "{\"timestamp.hh\":[12,24]}",     /* each IN element is checked */
        "{\"timestamp.hh\":{}}",
    };
    for (size_t i = 0; i < sizeof bad_f / sizeof bad_f[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"filter\":%s}", bad_f[i]);
        struct q_opts o;
        enum q_err e = parse_q(NULL, body, NULL, &o);
        ck_assert_msg(e == Q_BAD_FILTER, "%s: got %d", bad_f[i], (int)e);
        ck_assert_ptr_null(o.filter);
    }
    ck_assert_str_eq(q_err_message(Q_BAD_FILTER), "filter values are not valid");
}
END_TEST

START_TEST(filter_key_count_is_limited)
{
    char body[4096] = "{\"filter\":{";
    for (int i = 0; i < 65; i++) {
        char kv[32];
        snprintf(kv, sizeof kv, "%s\"k%d\":1", i ? "," : "", i);
        strcat(body, kv);
    }
    strcat(body, "}}");
    parse_err(NULL, body, Q_BAD_FILTER);
}
END_TEST

START_TEST(columns_forms)
{
    struct q_opts o;
    parse_ok(NULL, "{\"columns\":[\"price\",\"size\"]}", &o);
    ck_assert_int_eq(cJSON_GetArraySize(o.columns), 2);
    q_free(&o);
    parse_ok("columns=%5B%22price%22%2C%22size%22%5D", NULL, &o); /* ["price","size"] */
    ck_assert_int_eq(cJSON_GetArraySize(o.columns), 2);
    q_free(&o);
    parse_ok("columns=price,size", NULL, &o);
    ck_assert_int_eq(cJSON_GetArraySize(o.columns), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(o.columns, 0)->valuestring, "price");
    ck_assert_str_eq(cJSON_GetArrayItem(o.columns, 1)->valuestring, "size");
    q_free(&o);
    parse_ok("columns=+price+,+size", NULL, &o); /* spaces trimmed */
    ck_assert_str_eq(cJSON_GetArrayItem(o.columns, 0)->valuestring, "price");
    ck_assert_str_eq(cJSON_GetArrayItem(o.columns, 1)->valuestring, "size");
    q_free(&o);
    parse_ok("columns=price", NULL, &o);
    ck_assert_int_eq(cJSON_GetArraySize(o.columns), 1);
    q_free(&o);
    parse_ok(NULL, "{\"columns\":[]}", &o); /* [] = every column */
    ck_assert_ptr_null(o.columns);
    q_free(&o);
    static const char *const bad_q[] = {"columns=price,,size", "columns=price,", "columns=,",
                                        "columns=%5B1%5D",     "columns=%5B",    "columns=%7B%7D",
                                        "columns=%22price%22"};
    for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++)
        parse_err(bad_q[i], NULL, Q_BAD_COLUMNS);
    parse_err(NULL, "{\"columns\":[\"a\",2]}", Q_BAD_COLUMNS);
    parse_err(NULL, "{\"columns\":[\"\"]}", Q_BAD_COLUMNS);
    parse_err(NULL, "{\"columns\":{\"a\":1}}", Q_BAD_COLUMNS);
    parse_err(NULL, "{\"columns\":7}", Q_BAD_COLUMNS);
    ck_assert_str_eq(q_err_message(Q_BAD_COLUMNS), "columns are not valid");
}
END_TEST

START_TEST(errors_after_a_good_filter_leave_nothing)
{
    /* the filter is parsed before columns/startTime: the error path frees it */
    parse_err("filter=%7B%22side%22%3A%22Buy%22%7D&columns=a,,b", NULL, Q_BAD_COLUMNS);
    parse_err("filter=%7B%22side%22%3A%22Buy%22%7D&columns=a&startTime=x", NULL, Q_BAD_START_TIME);
    parse_err("filter=%7B%22side%22%3A%22Buy%22%7D&columns=a&endTime=x", NULL, Q_BAD_END_TIME);
}
END_TEST

START_TEST(start_and_end_time_forms)
{
    static const struct {
        const char *q;
        ms_t ms;
    } ok[] = {
        {"startTime=2014-12-26T12%3A00%3A00.000Z", T0},
        {"startTime=2014-12-26T12:00:00Z", T0},
        {"startTime=2014-12-26T12:00", T0},
        {"startTime=2014-12-26+12%3A00", T0},   /* Python: "2014-12-26 12:00" */
        {"startTime=2014-12-26%2012%3A00", T0}, /* ccxt */
        {"startTime=2014-12-26T13:00:00%2B01:00", T0},
        {"startTime=1419595200000", T0},        /* ccxt fetchLiquidations */
        {"startTime=2014-12-26", DAY0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct q_opts o;
        parse_ok(ok[i].q, NULL, &o);
        ck_assert_msg(o.has_start && o.start_ms == ok[i].ms, "%s", ok[i].q);
        ck_assert(!o.has_end);
        q_free(&o);
    }
    struct q_opts o;
    parse_ok(NULL, "{\"startTime\":1419595200000,\"endTime\":\"2014-12-26T13:00:00.000Z\"}", &o);
    ck_assert(o.has_start && o.has_end);
    ck_assert_int_eq(o.start_ms, T0);
    ck_assert_int_eq(o.end_ms, T13);
    q_free(&o);
    static const char *const bad[] = {"startTime=yesterday", "startTime=2014-12-26T25:00",
                                      "startTime=-1",        "startTime=2014-12",
                                      "startTime=true",      "startTime=2014-12-26Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_err(bad[i], NULL, Q_BAD_START_TIME);
    parse_err(NULL, "{\"startTime\":-1}", Q_BAD_START_TIME);
    parse_err(NULL, "{\"startTime\":1.5}", Q_BAD_START_TIME);
    parse_err(NULL, "{\"startTime\":true}", Q_BAD_START_TIME);
    parse_err("endTime=soon", NULL, Q_BAD_END_TIME);
    parse_err(NULL, "{\"endTime\":{}}", Q_BAD_END_TIME);
    ck_assert_str_eq(q_err_message(Q_BAD_START_TIME), "startTime is invalid");
    ck_assert_str_eq(q_err_message(Q_BAD_END_TIME), "endTime is invalid");
}
END_TEST

START_TEST(time_bounds_inside_filter_fold_into_options)
{
    struct q_opts o;
    /* BitMEX's documented example: startTime "2014-12-26 11:00", endTime
     * "2014-12-26 13:00" in the filter */
    filter_opts("{\"startTime\":\"2014-12-26 11:00\",\"endTime\":\"2014-12-26 13:00\"}", &o);
    ck_assert(o.has_start && o.has_end);
    ck_assert_int_eq(o.start_ms, T11);
    ck_assert_int_eq(o.end_ms, T13);
    ck_assert(!q_time_ok(&o, T11 - 1));
    ck_assert(q_time_ok(&o, T11));  /* inclusive */
    ck_assert(q_time_ok(&o, T13));  /* inclusive */
    ck_assert(!q_time_ok(&o, T13 + 1));
    cJSON *r = row_of("{}");
    ck_assert(q_match(&o, r, T0));
    ck_assert(!q_match(&o, r, T13 + 1));
    cJSON_Delete(r);
    q_free(&o);
    /* both places: the tighter bound wins, whichever side gives it */
    parse_ok(NULL,
             "{\"startTime\":\"2014-12-26T11:30:00Z\",\"endTime\":\"2014-12-26T13:00:00Z\","
             "\"filter\":{\"startTime\":\"2014-12-26 11:00\",\"endTime\":\"2014-12-26 12:00\"}}",
             &o);
    ck_assert_int_eq(o.start_ms, T11 + 30 * M);
    ck_assert_int_eq(o.end_ms, T0);
    q_free(&o);
    /* a key repeated inside a filter string: still the tighter bound */
    parse_ok("filter=%7B%22startTime%22%3A1419595200000%2C%22startTime%22%3A1419591600000%2C"
             "%22endTime%22%3A1419595200000%2C%22endTime%22%3A1419598800000%7D",
             NULL, &o);
    ck_assert_int_eq(o.start_ms, T0);
    ck_assert_int_eq(o.end_ms, T0);
    q_free(&o);
    parse_err(NULL, "{\"filter\":{\"startTime\":\"x\"}}", Q_BAD_START_TIME);
    parse_err(NULL, "{\"filter\":{\"endTime\":\"x\"}}", Q_BAD_END_TIME);
    /* an empty window is not an error; it matches nothing */
    parse_ok("startTime=1419595200001&endTime=1419595200000", NULL, &o);
    ck_assert(!q_time_ok(&o, T0) && !q_time_ok(&o, T0 + 1));
    q_free(&o);
}
END_TEST

START_TEST(error_messages)
{
    ck_assert_str_eq(q_err_message(Q_OK), "OK");
    ck_assert_str_eq(q_err_message(Q_NOMEM), "Server Error");
}
END_TEST

/* ---- equality filters ---------------------------------------------------------------- */

START_TEST(filter_equality_by_type)
{
    const char *row = "{\"symbol\":\"XBTUSD\",\"price\":35000.5,\"qty\":\"100\",\"side\":\"Buy\","
                      "\"hidden\":false,\"flag\":\"true\",\"avgPx\":null,\"n\":0}";
    ck_assert(fmatch("{\"symbol\":\"XBTUSD\"}", row, T0));
    ck_assert(!fmatch("{\"symbol\":\"xbtusd\"}", row, T0)); /* exact */
    ck_assert(!fmatch("{\"symbol\":\"XBTUSD \"}", row, T0));
    ck_assert(fmatch("{\"price\":35000.5}", row, T0));
    ck_assert(fmatch("{\"price\":\"35000.5\"}", row, T0)); /* numeric string vs number */
    ck_assert(fmatch("{\"price\":\"35000.50\"}", row, T0));
    ck_assert(!fmatch("{\"price\":35000}", row, T0));
    ck_assert(!fmatch("{\"price\":\"35000.5x\"}", row, T0));
    ck_assert(fmatch("{\"qty\":100}", row, T0)); /* number vs numeric string */
    ck_assert(fmatch("{\"qty\":\"100\"}", row, T0));
    ck_assert(!fmatch("{\"qty\":\"100.0\"}", row, T0)); /* strings compare exactly */
    ck_assert(fmatch("{\"hidden\":false}", row, T0));
    ck_assert(fmatch("{\"hidden\":\"false\"}", row, T0));
    ck_assert(!fmatch("{\"hidden\":true}", row, T0));
    ck_assert(!fmatch("{\"hidden\":0}", row, T0)); /* a number is not a boolean */
    ck_assert(fmatch("{\"flag\":true}", row, T0));
    ck_assert(fmatch("{\"avgPx\":null}", row, T0));
    ck_assert(!fmatch("{\"n\":null}", row, T0));
    ck_assert(!fmatch("{\"n\":false}", row, T0));
    ck_assert(!fmatch("{\"missing\":1}", row, T0)); /* a row without the field */
    ck_assert(!fmatch("{\"missing\":null}", row, T0));
    ck_assert(fmatch("{\"symbol\":\"XBTUSD\",\"side\":\"Buy\"}", row, T0)); /* all must match */
    ck_assert(!fmatch("{\"symbol\":\"XBTUSD\",\"side\":\"Sell\"}", row, T0));
    ck_assert(fmatch("{}", row, T0));
}
END_TEST

START_TEST(filter_in_lists)
{
    const char *settle = "{\"execType\":\"Settlement\",\"price\":100}";
    const char *funding = "{\"execType\":\"Funding\",\"price\":100}";
    const char *f = "{\"execType\":[\"Settlement\",\"Trade\"]}";
    ck_assert(fmatch(f, settle, T0));
    ck_assert(!fmatch(f, funding, T0));
    ck_assert(fmatch("{\"price\":[1,\"100\"]}", settle, T0));
    ck_assert(!fmatch("{\"execType\":[]}", settle, T0)); /* an empty list matches nothing */
    ck_assert(fmatch("{\"orderID\":[\"a\",\"b\"]}", "{\"orderID\":\"b\"}", T0));
}
END_TEST

START_TEST(filter_open_and_is_terminated)
{
    static const char *const open[] = {"New",       "PartiallyFilled", "Untriggered",
                                       "Triggered", "PendingNew",      "PendingCancel"};
    static const char *const closed[] = {"Filled", "Canceled", "Rejected", "Expired", "Stopped"};
    char row[128];
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        snprintf(row, sizeof row, "{\"ordStatus\":\"%s\"}", open[i]);
        ck_assert_msg(fmatch("{\"open\":true}", row, T0), "%s", open[i]);
        ck_assert(fmatch("{\"open\":\"true\"}", row, T0));
        ck_assert(!fmatch("{\"open\":false}", row, T0));
        ck_assert(fmatch("{\"ordStatus.isTerminated\":false}", row, T0));
        ck_assert(!fmatch("{\"ordStatus.isTerminated\":true}", row, T0));
    }
    for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++) {
        snprintf(row, sizeof row, "{\"ordStatus\":\"%s\"}", closed[i]);
        ck_assert_msg(!fmatch("{\"open\":true}", row, T0), "%s", closed[i]);
        ck_assert(fmatch("{\"open\":false}", row, T0));
        ck_assert(fmatch("{\"ordStatus.isTerminated\":true}", row, T0));
        ck_assert(fmatch("{\"ordStatus.isTerminated\":\"TRUE\"}", row, T0));
    }
    /* a row without ordStatus matches neither */
    ck_assert(!fmatch("{\"open\":true}", "{\"symbol\":\"XBTUSD\"}", T0));
    ck_assert(!fmatch("{\"open\":false}", "{\"symbol\":\"XBTUSD\"}", T0));
    ck_assert(!fmatch("{\"ordStatus.isTerminated\":true}", "{}", T0));
    /* with a number, "open" is TradeBin's column */
    ck_assert(fmatch("{\"open\":35000.5}", "{\"open\":35000.5,\"close\":35001}", T0));
    ck_assert(!fmatch("{\"open\":35000}", "{\"open\":35000.5}", T0));
    /* combined with equality, as ccxt's fetchOpenOrders sends */
    ck_assert(fmatch("{\"open\":true,\"symbol\":\"XBTUSD\"}",
                     "{\"ordStatus\":\"New\",\"symbol\":\"XBTUSD\"}", T0));
    ck_assert(!fmatch("{\"open\":true,\"symbol\":\"XBTUSD\"}",
                      "{\"ordStatus\":\"New\",\"symbol\":\"ETHUSD\"}", T0));
}
END_TEST

/* ---- timestamp filters (BitMEX's documented table) ----------------------------------- */

START_TEST(timestamp_exact)
{
    ck_assert(tmatch("{\"timestamp\":\"2014-12-26 12:00\"}", T0));
    ck_assert(!tmatch("{\"timestamp\":\"2014-12-26 12:00\"}", T0 + 1));
    ck_assert(!tmatch("{\"timestamp\":\"2014-12-26 12:00\"}", T0 - 1));
    ck_assert(tmatch("{\"timestamp\":\"2014-12-26T12:00:00.000Z\"}", T0));
    ck_assert(tmatch("{\"timestamp\":1419595200000}", T0));
    ck_assert(tmatch("{\"timestamp\":\"1419595200000\"}", T0));
    ck_assert(tmatch("{\"timestamp\":[\"2014-12-26 11:00\",\"2014-12-26 13:00\"]}", T13));
    ck_assert(!tmatch("{\"timestamp\":[\"2014-12-26 11:00\",\"2014-12-26 13:00\"]}", T0));
    /* the row's time t is what is tested, not a row field */
    ck_assert(!fmatch("{\"timestamp\":\"2014-12-26 12:00\"}",
                      "{\"timestamp\":\"2014-12-26T12:00:00.000Z\"}", T0 + 1));
}
END_TEST

START_TEST(timestamp_whole_day)
{
    static const char *const fs[] = {"{\"timestamp\":\"2014-12-26\"}",
                                     "{\"timestamp.date\":\"2014-12-26\"}"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert(tmatch(fs[i], DAY0));
        ck_assert(tmatch(fs[i], T0));
        ck_assert(tmatch(fs[i], DAY1 - 1));
        ck_assert(!tmatch(fs[i], DAY1));
        ck_assert(!tmatch(fs[i], DAY0 - 1));
    }
    ck_assert(tmatch("{\"timestamp.date\":\"2016-02-29\"}", LEAP_NOON));
}
END_TEST

START_TEST(timestamp_month_and_year)
{
    const char *dec = "{\"timestamp.month\":\"2014-12\"}";
    ck_assert(tmatch(dec, DEC1));
    ck_assert(tmatch(dec, T0));
    ck_assert(tmatch(dec, Y2015 - 1));
    ck_assert(!tmatch(dec, Y2015));
    ck_assert(!tmatch(dec, DEC1 - 1));
    ck_assert(tmatch("{\"timestamp.month\":\"2016-02\"}", LEAP_NOON));
    ck_assert(tmatch("{\"timestamp.month\":\"2016-02\"}", MAR1_2016 - 1));
    ck_assert(!tmatch("{\"timestamp.month\":\"2016-02\"}", MAR1_2016));
    ck_assert(tmatch("{\"timestamp.month\":[\"2014-11\",\"2014-12\"]}", T0));
    for (int i = 0; i < 2; i++) {
        const char *y = i ? "{\"timestamp.year\":\"2014\"}" : "{\"timestamp.year\":2014}";
        ck_assert(tmatch(y, Y2014));
        ck_assert(tmatch(y, T0));
        ck_assert(tmatch(y, Y2015 - 1));
        ck_assert(!tmatch(y, Y2015));
        ck_assert(!tmatch(y, Y2014 - 1));
    }
    ck_assert(tmatch("{\"timestamp.year\":1970}", 0));
    ck_assert(tmatch("{\"timestamp.year\":9999}", INT64_C(253402300799999)));
}
END_TEST

START_TEST(timestamp_day_of_month_and_week)
{
    ck_assert(tmatch("{\"timestamp.dd\":26}", T0));
    ck_assert(tmatch("{\"timestamp.dd\":\"26\"}", JAN26_NOON));
    ck_assert(!tmatch("{\"timestamp.dd\":26}", THU_NOON));
    ck_assert(tmatch("{\"timestamp.dd\":29}", LEAP_NOON));
    ck_assert(tmatch("{\"timestamp.dd\":1}", MAR1_2016));
    /* 0 = Sat, 1 = Sun, ..., 6 = Fri */
    ck_assert(tmatch("{\"timestamp.ww\":6}", T0));
    ck_assert(tmatch("{\"timestamp.ww\":6}", DAY0));
    ck_assert(tmatch("{\"timestamp.ww\":6}", DAY1 - 1));
    ck_assert(!tmatch("{\"timestamp.ww\":6}", DAY1));
    ck_assert(tmatch("{\"timestamp.ww\":5}", THU_NOON));
    ck_assert(tmatch("{\"timestamp.ww\":0}", SAT_NOON));
    ck_assert(tmatch("{\"timestamp.ww\":1}", SUN_NOON));
    ck_assert(tmatch("{\"timestamp.ww\":2}", LEAP_NOON));      /* a Monday */
    ck_assert(tmatch("{\"timestamp.ww\":3}", MAR1_2016));      /* a Tuesday */
    ck_assert(tmatch("{\"timestamp.ww\":5}", 0));              /* 1970-01-01, a Thursday */
    ck_assert(tmatch("{\"timestamp.ww\":\"6\"}", T0));
    ck_assert(tmatch("{\"timestamp.ww\":[0,1]}", SUN_NOON));
    ck_assert(!tmatch("{\"timestamp.ww\":[0,1]}", T0));
}
END_TEST

START_TEST(timestamp_time_of_day)
{
    const char *exact[] = {"{\"timestamp.time\":\"12:00:00.000\"}", "{\"timestamp.time\":\"12:00\"}",
                           "{\"timestamp.time\":\"12:00:00\"}"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert(tmatch(exact[i], T0));
        ck_assert(tmatch(exact[i], THU_NOON)); /* every day */
        ck_assert(!tmatch(exact[i], T0 + 1));
        ck_assert(!tmatch(exact[i], T0 - 1));
    }
    ck_assert(tmatch("{\"timestamp.time\":\"12:00:00.5\"}", T0 + 500));
    ck_assert(tmatch("{\"timestamp.time\":\"12:00:00.0509\"}", T0 + 50)); /* truncated */
    ck_assert(tmatch("{\"timestamp.time\":\"00:00\"}", DAY0));
    ck_assert(tmatch("{\"timestamp.time\":\"23:59:59.999\"}", DAY1 - 1));
    /* a whole second */
    const char *sec = "{\"timestamp.second\":\"12:00:00\"}";
    ck_assert(tmatch(sec, T0));
    ck_assert(tmatch(sec, T0 + 999));
    ck_assert(!tmatch(sec, T0 + 1000));
    ck_assert(!tmatch(sec, T0 - 1));
    ck_assert(tmatch(sec, SUN_NOON + 123));
    /* a whole minute */
    const char *min = "{\"timestamp.minute\":\"12:00\"}";
    ck_assert(tmatch(min, T0));
    ck_assert(tmatch(min, T0 + M - 1));
    ck_assert(!tmatch(min, T0 + M));
    ck_assert(!tmatch(min, T0 - 1));
    ck_assert(tmatch(min, THU_NOON + 30 * S));
}
END_TEST

START_TEST(timestamp_hour_minute_second_parts)
{
    ck_assert(tmatch("{\"timestamp.hh\":12}", T0));
    ck_assert(tmatch("{\"timestamp.hh\":12}", T0 + H - 1));
    ck_assert(!tmatch("{\"timestamp.hh\":12}", T0 - 1));
    ck_assert(!tmatch("{\"timestamp.hh\":12}", T0 + H));
    ck_assert(tmatch("{\"timestamp.hh\":\"12\"}", T0));
    ck_assert(tmatch("{\"timestamp.hh\":0}", DAY0));
    ck_assert(tmatch("{\"timestamp.hh\":[11,12]}", T11));
    ck_assert(tmatch("{\"timestamp.uu\":30}", T0 + 30 * M));
    ck_assert(tmatch("{\"timestamp.uu\":30}", T11 + 30 * M + 59 * S));
    ck_assert(!tmatch("{\"timestamp.uu\":30}", T0 + 31 * M));
    ck_assert(tmatch("{\"timestamp.uu\":0}", T0));
    ck_assert(tmatch("{\"timestamp.ss\":15}", T0 + 15 * S));
    ck_assert(tmatch("{\"timestamp.ss\":15}", T13 + 7 * M + 15 * S + 999));
    ck_assert(!tmatch("{\"timestamp.ss\":15}", T0 + 16 * S));
}
END_TEST

START_TEST(timestamp_seed_example_noon_on_fridays)
{
    /* {"symbol": ".BVOL7D", "filter": {"timestamp.time":"12:00", "timestamp.ww":6}} */
    struct q_opts o;
    parse_ok(NULL, "{\"symbol\":\".BVOL7D\",\"filter\":{\"timestamp.time\":\"12:00\",\"timestamp.ww\":6}}",
             &o);
    struct q_collect c;
    ck_assert(q_collect_init(&c, &o));
    /* every 5 minutes from Thursday 11:00 to Saturday 13:00 */
    int offered = 0;
    for (ms_t t = THU_NOON - H; t <= SAT_NOON + H; t += 5 * M) {
        char row[96];
        snprintf(row, sizeof row, "{\"symbol\":\".BVOL7D\",\"t\":%lld}", (long long)t);
        ck_assert(q_offer(&c, row_of(row), t) || c.taken == o.count);
        offered++;
    }
    cJSON *out = q_collect_done(&c);
    ck_assert_int_eq(offered, 2 * 24 * 12 + 2 * 12 + 1);
    ck_assert_int_eq(cJSON_GetArraySize(out), 1);
    ck_assert_int_eq((int64_t)cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(out, 0), "t")->valuedouble,
                     T0);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

/* ---- the collector ------------------------------------------------------------------- */

/* Row i: orderID "o<i>", side Buy for even i, price 100+i, time T0 + i s. */
static cJSON *order_row(int i)
{
    char json[160];
    snprintf(json, sizeof json,
             "{\"orderID\":\"o%d\",\"symbol\":\"XBTUSD\",\"side\":\"%s\",\"price\":%d,"
             "\"ordStatus\":\"%s\"}",
             i, i % 2 == 0 ? "Buy" : "Sell", 100 + i, i % 3 == 0 ? "Filled" : "New");
    return row_of(json);
}

/* Offers rows first..last (step) until the collector says stop; returns
 * the result and how many rows were offered. */
static cJSON *collect(const struct q_opts *o, int first, int last, int step, int *offered)
{
    struct q_collect c;
    ck_assert(q_collect_init(&c, o));
    *offered = 0;
    for (int i = first; step > 0 ? i <= last : i >= last; i += step) {
        (*offered)++;
        if (!q_offer(&c, order_row(i), T0 + i * S))
            break;
    }
    return q_collect_done(&c);
}

static void assert_ids(const cJSON *out, const char *const *ids, int n)
{
    ck_assert_int_eq(cJSON_GetArraySize(out), n);
    for (int i = 0; i < n; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(out, i), "orderID");
        ck_assert_str_eq(id->valuestring, ids[i]);
    }
}

START_TEST(collect_filter_then_start_then_count)
{
    struct q_opts o;
    parse_ok("filter=%7B%22side%22%3A%22Buy%22%7D&start=1&count=2", NULL, &o);
    int offered;
    cJSON *out = collect(&o, 0, 9, 1, &offered);
    /* Buy rows are 0,2,4,6,8; start skips o0; count keeps o2,o4 and stops there */
    static const char *const want[] = {"o2", "o4"};
    assert_ids(out, want, 2);
    ck_assert_int_eq(offered, 5);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(collect_reverse_walk_is_the_endpoints)
{
    struct q_opts o;
    parse_ok("reverse=true&count=3&filter=%7B%22open%22%3Atrue%7D", NULL, &o);
    ck_assert(o.reverse);
    int offered;
    cJSON *out = collect(&o, 9, 0, -1, &offered); /* newest first */
    /* open (not i % 3 == 0): 8,7,5 */
    static const char *const want[] = {"o8", "o7", "o5"};
    assert_ids(out, want, 3);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(collect_time_bounds_before_start)
{
    struct q_opts o;
    /* rows 3..7 are within the bounds; start counts only those */
    parse_ok("startTime=1419595203000&endTime=1419595207000&start=2", NULL, &o);
    int offered;
    cJSON *out = collect(&o, 0, 9, 1, &offered);
    static const char *const want[] = {"o5", "o6", "o7"};
    assert_ids(out, want, 3);
    ck_assert_int_eq(offered, 10); /* never full: the walk ran to the end */
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(collect_start_beyond_matches_is_empty)
{
    struct q_opts o;
    parse_ok("start=100", NULL, &o);
    int offered;
    cJSON *out = collect(&o, 0, 9, 1, &offered);
    ck_assert(cJSON_IsArray(out));
    ck_assert_int_eq(cJSON_GetArraySize(out), 0);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(collect_stops_at_count_and_frees_late_rows)
{
    struct q_opts o;
    parse_ok("count=1", NULL, &o);
    struct q_collect c;
    ck_assert(q_collect_init(&c, &o));
    ck_assert(!q_offer(&c, order_row(0), T0)); /* full at once */
    ck_assert(!q_offer(&c, order_row(1), T0)); /* freed, still full */
    ck_assert(!q_offer(&c, NULL, T0));
    ck_assert_int_eq(c.taken, 1);
    cJSON *out = q_collect_done(&c);
    ck_assert_int_eq(cJSON_GetArraySize(out), 1);
    cJSON_Delete(out);
    /* NULL rows (a failed build) are passed over */
    ck_assert(q_collect_init(&c, &o));
    ck_assert(q_offer(&c, NULL, T0));
    ck_assert_int_eq(c.taken, 0);
    cJSON_Delete(q_collect_done(&c));
    q_free(&o);
}
END_TEST

START_TEST(collect_counts_and_skips)
{
    struct q_opts o;
    parse_ok("start=3&count=4", NULL, &o);
    struct q_collect c;
    ck_assert(q_collect_init(&c, &o));
    int i = 0;
    while (q_offer(&c, order_row(i), T0 + i))
        i++;
    ck_assert_int_eq(i, 6); /* 3 skipped, 4 kept; the 7th offer said stop */
    ck_assert_int_eq(c.skipped, 3);
    ck_assert_int_eq(c.taken, 4);
    cJSON *out = q_collect_done(&c);
    static const char *const want[] = {"o3", "o4", "o5", "o6"};
    assert_ids(out, want, 4);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(columns_project_keeping_keys)
{
    static const char *const keys[] = {"orderID", NULL};
    struct q_spec spec = {0, 0, false, keys};
    struct q_opts o;
    ck_qerr(parse_q("columns=price,nosuch&count=2", NULL, &spec, &o), Q_OK);
    int offered;
    cJSON *out = collect(&o, 0, 9, 1, &offered);
    ck_assert_int_eq(cJSON_GetArraySize(out), 2);
    const cJSON *r;
    cJSON_ArrayForEach(r, out) {
        ck_assert_int_eq(cJSON_GetArraySize(r), 2);
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "orderID"));
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "price"));
    }
    cJSON_Delete(out);
    q_free(&o);
    /* the filter sees the whole row: filtering on a dropped column still works */
    ck_qerr(parse_q(NULL, "{\"columns\":[\"price\"],\"filter\":{\"side\":\"Sell\"},\"count\":1}",
                    &spec, &o),
            Q_OK);
    out = collect(&o, 0, 9, 1, &offered);
    ck_assert_int_eq(cJSON_GetArraySize(out), 1);
    r = cJSON_GetArrayItem(out, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "orderID")->valuestring, "o1");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "side"));
    cJSON_Delete(out);
    q_free(&o);
    /* no keys: only the asked-for columns */
    ck_qerr(parse_q("columns=side&count=1", NULL, NULL, &o), Q_OK);
    out = collect(&o, 0, 9, 1, &offered);
    r = cJSON_GetArrayItem(out, 0);
    ck_assert_int_eq(cJSON_GetArraySize(r), 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "side")->valuestring, "Buy");
    cJSON_Delete(out);
    q_free(&o);
    /* no columns: every field */
    ck_qerr(parse_q("count=1", NULL, &spec, &o), Q_OK);
    out = collect(&o, 0, 9, 1, &offered);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(out, 0)), 5);
    cJSON_Delete(out);
    q_free(&o);
}
END_TEST

START_TEST(ccxt_fetch_liquidations_query)
{
    struct q_opts o;
    parse_ok("symbol=XBTUSD&startTime=1419595200000&count=500&reverse=true", NULL, &o);
    ck_assert(o.has_start && o.start_ms == T0);
    ck_assert_int_eq(o.count, 500);
    ck_assert(o.reverse);
    ck_assert(!q_time_ok(&o, T0 - 1));
    ck_assert(q_time_ok(&o, T0));
    q_free(&o);
}
END_TEST

static Suite *query_suite(void)
{
    Suite *s = suite_create("api_query");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, defaults_without_parameters);
    tcase_add_test(tc, wallet_history_spec_defaults);
    tcase_add_test(tc, count_must_be_1_to_max);
    tcase_add_test(tc, start_must_be_non_negative);
    tcase_add_test(tc, reverse_is_a_boolean);
    tcase_add_test(tc, empty_values_mean_not_given);
    tcase_add_test(tc, filter_from_ccxt_query_python_query_and_body);
    tcase_add_test(tc, filter_malformed_is_invalid);
    tcase_add_test(tc, filter_key_count_is_limited);
    tcase_add_test(tc, columns_forms);
    tcase_add_test(tc, errors_after_a_good_filter_leave_nothing);
    tcase_add_test(tc, start_and_end_time_forms);
    tcase_add_test(tc, time_bounds_inside_filter_fold_into_options);
    tcase_add_test(tc, error_messages);
    tcase_add_test(tc, ccxt_fetch_liquidations_query);
    suite_add_tcase(s, tc);

    tc = tcase_create("filter");
    tcase_add_test(tc, filter_equality_by_type);
    tcase_add_test(tc, filter_in_lists);
    tcase_add_test(tc, filter_open_and_is_terminated);
    tcase_add_test(tc, timestamp_exact);
    tcase_add_test(tc, timestamp_whole_day);
    tcase_add_test(tc, timestamp_month_and_year);
    tcase_add_test(tc, timestamp_day_of_month_and_week);
    tcase_add_test(tc, timestamp_time_of_day);
    tcase_add_test(tc, timestamp_hour_minute_second_parts);
    tcase_add_test(tc, timestamp_seed_example_noon_on_fridays);
    suite_add_tcase(s, tc);

    tc = tcase_create("collect");
    tcase_add_test(tc, collect_filter_then_start_then_count);
    tcase_add_test(tc, collect_reverse_walk_is_the_endpoints);
    tcase_add_test(tc, collect_time_bounds_before_start);
    tcase_add_test(tc, collect_start_beyond_matches_is_empty);
    tcase_add_test(tc, collect_stops_at_count_and_frees_late_rows);
    tcase_add_test(tc, collect_counts_and_skips);
    tcase_add_test(tc, columns_project_keeping_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(query_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
