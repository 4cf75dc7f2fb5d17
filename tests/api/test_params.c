/*
 * test_params.c - Check suite for api/params: merging the query string, a
 * JSON body and a form body, and the typed getters.
 *
 * Encodings as the clients send them: ccxt
 * percent-encodes by RFC 3986 (space %20, '{' %7B, ':' %3A), Python
 * requests writes a space as '+'; ccxt sends DELETE bodies as JSON and
 * sometimes an empty body with the JSON content type.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"

static const char CT_JSON[] = "application/json";
static const char CT_FORM[] = "application/x-www-form-urlencoded";

/* prm_parse of NUL-terminated texts (NULL allowed). */
static enum prm_err parse3(const char *q, const char *body, const char *ct, cJSON **out)
{
    return prm_parse(q, q != NULL ? strlen(q) : 0, body, body != NULL ? strlen(body) : 0, ct, out);
}

/* A successful parse; the test frees the object. */
static cJSON *parse_ok(const char *q, const char *body, const char *ct)
{
    cJSON *p = NULL;
    enum prm_err e = parse3(q, body, ct, &p);
    ck_assert_msg(e == PRM_OK, "parse of q=[%s] body=[%s] gave %d", q ? q : "", body ? body : "",
                  (int)e);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void parse_fails(const char *q, const char *body, const char *ct, enum prm_err want)
{
    cJSON *p = (cJSON *)1;
    enum prm_err e = parse3(q, body, ct, &p);
    ck_assert_msg(e == want, "q=[%s] body=[%s]: got %d want %d", q ? q : "", body ? body : "",
                  (int)e, (int)want);
    ck_assert_ptr_null(p);
}

/* The string value of name, or fails. */
static const char *str_of(const cJSON *p, const char *name)
{
    const char *s = NULL;
    ck_assert_int_eq(prm_str(p, name, &s), PRM_FOUND);
    return s;
}

/* ---- prm_decode -------------------------------------------------------------------- */

START_TEST(decode_handles_percent_and_plus)
{
    char buf[64];
    ck_assert_int_eq(prm_decode("%7B%22open%22%3Atrue%7D", 23, buf, sizeof buf, true), 13);
    ck_assert_str_eq(buf, "{\"open\":true}");
    ck_assert_int_eq(prm_decode("a+b%20c", 7, buf, sizeof buf, true), 5);
    ck_assert_str_eq(buf, "a b c");
    ck_assert_int_eq(prm_decode("a+b", 3, buf, sizeof buf, false), 3);
    ck_assert_str_eq(buf, "a+b");
    ck_assert_int_eq(prm_decode("%2B%2b%7e", 9, buf, sizeof buf, true), 3); /* either case */
    ck_assert_str_eq(buf, "++~");
    ck_assert_int_eq(prm_decode("", 0, buf, sizeof buf, true), 0);
    ck_assert_str_eq(buf, "");
    /* only len bytes are read */
    ck_assert_int_eq(prm_decode("abc%zz", 3, buf, sizeof buf, true), 3);
    ck_assert_str_eq(buf, "abc");
}
END_TEST

START_TEST(decode_refuses_bad_escapes_nul_and_short_buffer)
{
    char buf[16];
    ck_assert_int_eq(prm_decode("%", 1, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("a%4", 3, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("%zz", 3, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("%4g", 3, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("a%00b", 5, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("a\0b", 3, buf, sizeof buf, true), -1);
    ck_assert_int_eq(prm_decode("abcd", 4, buf, 4, true), -1); /* needs len + 1 */
    ck_assert_int_eq(prm_decode("abcd", 4, buf, 5, true), 4);
}
END_TEST

/* ---- the query string -------------------------------------------------------------- */

START_TEST(query_ccxt_percent_encoded_filter)
{
    cJSON *p = parse_ok("symbol=XBTUSD&filter=%7B%22open%22%3Atrue%7D&count=100", NULL, NULL);
    ck_assert_str_eq(str_of(p, "symbol"), "XBTUSD");
    ck_assert_str_eq(str_of(p, "filter"), "{\"open\":true}");
    ck_assert_str_eq(str_of(p, "count"), "100");
    cJSON *f = NULL;
    ck_assert_int_eq(prm_json(p, "filter", &f), PRM_FOUND);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "open")));
    cJSON_Delete(f);
    cJSON_Delete(p);
}
END_TEST

START_TEST(query_python_plus_is_space_and_ccxt_percent20_too)
{
    cJSON *p = parse_ok("filter=%7B%22symbol%22%3A+%22XBTM15%22%7D&startTime=2014-12-26+11%3A00"
                        "&text=a%20b",
                        NULL, NULL);
    ck_assert_str_eq(str_of(p, "filter"), "{\"symbol\": \"XBTM15\"}");
    ck_assert_str_eq(str_of(p, "startTime"), "2014-12-26 11:00");
    ck_assert_str_eq(str_of(p, "text"), "a b");
    cJSON_Delete(p);
    /* an encoded '+' stays a plus */
    p = parse_ok("startTime=2014-12-26T11%3A00%2B01%3A00", NULL, NULL);
    ck_assert_str_eq(str_of(p, "startTime"), "2014-12-26T11:00+01:00");
    cJSON_Delete(p);
}
END_TEST

START_TEST(query_pair_shapes)
{
    cJSON *p = parse_ok("reverse&a=1&a=2&&=x&b=c=d&&e=&%66oo=b%61r&", NULL, NULL);
    ck_assert_str_eq(str_of(p, "reverse"), ""); /* a name without '=' */
    ck_assert_str_eq(str_of(p, "a"), "2");      /* last one wins */
    ck_assert_str_eq(str_of(p, "b"), "c=d");    /* only the first '=' splits */
    ck_assert_str_eq(str_of(p, "e"), "");
    ck_assert_str_eq(str_of(p, "foo"), "bar");  /* names are decoded too */
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, ""));
    ck_assert_int_eq(cJSON_GetArraySize(p), 5);
    cJSON_Delete(p);
    /* keys are case-sensitive */
    p = parse_ok("Count=5", NULL, NULL);
    int64_t n;
    ck_assert_int_eq(prm_int(p, "count", &n), PRM_ABSENT);
    cJSON_Delete(p);
}
END_TEST

START_TEST(query_empty_or_null_gives_empty_object)
{
    cJSON *p = parse_ok(NULL, NULL, NULL);
    ck_assert(cJSON_IsObject(p));
    ck_assert_int_eq(cJSON_GetArraySize(p), 0);
    cJSON_Delete(p);
    p = NULL;
    ck_assert_int_eq(prm_parse("ignored", 0, NULL, 5, NULL, &p), PRM_OK);
    ck_assert_int_eq(cJSON_GetArraySize(p), 0);
    cJSON_Delete(p);
}
END_TEST

START_TEST(query_malformed_is_bad_query)
{
    parse_fails("a=%", NULL, NULL, PRM_BAD_QUERY);
    parse_fails("a=%4", NULL, NULL, PRM_BAD_QUERY);
    parse_fails("a=%GG", NULL, NULL, PRM_BAD_QUERY);
    parse_fails("a%zz=1", NULL, NULL, PRM_BAD_QUERY);
    parse_fails("a=1%00", NULL, NULL, PRM_BAD_QUERY);
    cJSON *p = (cJSON *)1;
    ck_assert_int_eq(prm_parse("a=1\0b=2", 7, NULL, 0, NULL, &p), PRM_BAD_QUERY);
    ck_assert_ptr_null(p);
    /* a bad query is refused even with a good body */
    parse_fails("a=%", "{\"b\":1}", CT_JSON, PRM_BAD_QUERY);
}
END_TEST

/* ---- JSON bodies ---------------------------------------------------------------------- */

START_TEST(json_body_overrides_query)
{
    cJSON *p = parse_ok("symbol=ETHUSD&count=5",
                        "{\"symbol\":\"XBTUSD\",\"price\":35000.5,\"orderQty\":100}", CT_JSON);
    ck_assert_str_eq(str_of(p, "symbol"), "XBTUSD");
    ck_assert_str_eq(str_of(p, "count"), "5");
    int64_t px = 0, qty = 0;
    ck_assert_int_eq(prm_fixed(p, "price", 8, &px), PRM_FOUND);
    ck_assert_int_eq(px, INT64_C(3500050000000));
    ck_assert_int_eq(prm_int(p, "orderQty", &qty), PRM_FOUND);
    ck_assert_int_eq(qty, 100);
    ck_assert_int_eq(cJSON_GetArraySize(p), 4);
    cJSON_Delete(p);
}
END_TEST

START_TEST(json_body_keeps_types_and_nesting)
{
    cJSON *p = parse_ok(NULL,
                        "{\"orderID\":[\"a\",\"b\"],\"filter\":{\"open\":true},\"reverse\":true,"
                        "\"x\":null}",
                        CT_JSON);
    ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(p, "orderID")));
    bool b = false;
    ck_assert_int_eq(prm_bool(p, "reverse", &b), PRM_FOUND);
    ck_assert(b);
    const char *s;
    ck_assert_int_eq(prm_str(p, "x", &s), PRM_ABSENT); /* null is absent */
    cJSON *f = NULL;
    ck_assert_int_eq(prm_json(p, "filter", &f), PRM_FOUND);
    ck_assert(cJSON_IsObject(f));
    cJSON_Delete(f);
    cJSON_Delete(p);
}
END_TEST

START_TEST(json_body_recognised_by_type_or_first_byte)
{
    static const char *const types[] = {"application/json", "application/json; charset=utf-8",
                                        "Application/JSON", " application/json ;charset=UTF-8",
                                        "application/vnd.api+json", NULL, CT_FORM, "text/plain"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        cJSON *p = parse_ok(NULL, " \n{\"symbol\":\"XBTUSD\"}\n", types[i]);
        ck_assert_str_eq(str_of(p, "symbol"), "XBTUSD");
        cJSON_Delete(p);
    }
    /* with a JSON type a body that is not JSON is an error, not a form */
    parse_fails(NULL, "symbol=XBTUSD", CT_JSON, PRM_BAD_JSON);
}
END_TEST

START_TEST(json_empty_body_is_no_params)
{
    /* ccxt's DELETE /order/all without params: JSON type, no bytes */
    cJSON *p = parse_ok(NULL, "", CT_JSON);
    ck_assert_int_eq(cJSON_GetArraySize(p), 0);
    cJSON_Delete(p);
    p = parse_ok("symbol=XBTUSD", " \r\n\t ", CT_JSON);
    ck_assert_int_eq(cJSON_GetArraySize(p), 1);
    cJSON_Delete(p);
    p = parse_ok(NULL, "{}", CT_JSON);
    ck_assert_int_eq(cJSON_GetArraySize(p), 0);
    cJSON_Delete(p);
}
END_TEST

START_TEST(json_body_not_an_object_is_bad_json)
{
    static const char *const bad[] = {"[1,2]", "[]", "42", "\"x\"", "true", "null", "{",
                                      "{\"a\":1,}", "{} x", "{}{}", "{\"a\":}", "{'a':1}",
                                      "{\"a\":1", "{\"a\" 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_fails(NULL, bad[i], CT_JSON, PRM_BAD_JSON);
    parse_fails(NULL, "[1]", NULL, PRM_BAD_JSON); /* '[' means JSON without a type */
    parse_fails(NULL, "{]", NULL, PRM_BAD_JSON);
}
END_TEST

START_TEST(json_depth_is_limited)
{
    /* PRM_DEPTH_MAX containers deep is fine, one more is not */
    char ok[64] = "", deep[64] = "";
    strcat(ok, "{\"a\":");
    strcat(deep, "{\"a\":");
    for (int i = 1; i < PRM_DEPTH_MAX; i++)
        strcat(ok, "[");
    for (int i = 1; i < PRM_DEPTH_MAX + 1; i++)
        strcat(deep, "[");
    strcat(ok, "1");
    strcat(deep, "1");
    for (int i = 1; i < PRM_DEPTH_MAX; i++)
        strcat(ok, "]");
    for (int i = 1; i < PRM_DEPTH_MAX + 1; i++)
        strcat(deep, "]");
    strcat(ok, "}");
    strcat(deep, "}");
    cJSON *p = parse_ok(NULL, ok, CT_JSON);
    cJSON_Delete(p);
    parse_fails(NULL, deep, CT_JSON, PRM_BAD_JSON);
    /* brackets inside strings do not count */
    p = parse_ok(NULL, "{\"a\":\"[[[[[[[[[[[[{{{{{{{\",\"b\":\"\\\"[[[[[[[[[[\"}", CT_JSON);
    ck_assert_str_eq(str_of(p, "a"), "[[[[[[[[[[[[{{{{{{{");
    ck_assert_str_eq(str_of(p, "b"), "\"[[[[[[[[[[");
    cJSON_Delete(p);
}
END_TEST

START_TEST(json_nul_bytes_are_refused)
{
    cJSON *p = (cJSON *)1;
    ck_assert_int_eq(prm_parse(NULL, 0, "{\"a\":\"x\0y\"}", 11, CT_JSON, &p), PRM_BAD_JSON);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(prm_parse(NULL, 0, "{\"a\":1}\0", 8, CT_JSON, &p), PRM_BAD_JSON);
    parse_fails(NULL, "{\"clOrdID\":\"abc\\u0000def\"}", CT_JSON, PRM_BAD_JSON);
    /* an escaped backslash followed by the letters u0000 is not an escape */
    p = parse_ok(NULL, "{\"a\":\"\\\\u0000\"}", CT_JSON);
    ck_assert_str_eq(str_of(p, "a"), "\\u0000");
    cJSON_Delete(p);
    /* other \u escapes are fine */
    p = parse_ok(NULL, "{\"a\":\"\\u0041\"}", CT_JSON);
    ck_assert_str_eq(str_of(p, "a"), "A");
    cJSON_Delete(p);
}
END_TEST

START_TEST(json_repeated_body_key_keeps_last)
{
    cJSON *p = parse_ok("a=q", "{\"a\":1,\"b\":2,\"a\":3}", CT_JSON);
    int64_t v = 0;
    ck_assert_int_eq(prm_int(p, "a", &v), PRM_FOUND);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(cJSON_GetArraySize(p), 2);
    cJSON_Delete(p);
}
END_TEST

/* ---- form bodies ---------------------------------------------------------------------- */

START_TEST(form_body_decoded_and_overrides_query)
{
    cJSON *p = parse_ok("symbol=ETHUSD&side=Buy",
                        "symbol=XBTUSD&orderQty=100&text=hello+world%21&price=35000.5", CT_FORM);
    ck_assert_str_eq(str_of(p, "symbol"), "XBTUSD");
    ck_assert_str_eq(str_of(p, "side"), "Buy");
    ck_assert_str_eq(str_of(p, "text"), "hello world!");
    int64_t q = 0, px = 0;
    ck_assert_int_eq(prm_int(p, "orderQty", &q), PRM_FOUND);
    ck_assert_int_eq(q, 100);
    ck_assert_int_eq(prm_fixed(p, "price", 8, &px), PRM_FOUND);
    ck_assert_int_eq(px, INT64_C(3500050000000));
    cJSON_Delete(p);
    /* no content type: a body not starting with '{' or '[' is a form */
    p = parse_ok(NULL, "symbol=XBTUSD", NULL);
    ck_assert_str_eq(str_of(p, "symbol"), "XBTUSD");
    cJSON_Delete(p);
}
END_TEST

START_TEST(form_body_malformed_is_bad_query)
{
    parse_fails(NULL, "a=%2", CT_FORM, PRM_BAD_QUERY);
    parse_fails(NULL, "a=%00", CT_FORM, PRM_BAD_QUERY);
    cJSON *p = (cJSON *)1;
    ck_assert_int_eq(prm_parse(NULL, 0, "a=1\0", 4, CT_FORM, &p), PRM_BAD_QUERY);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(error_messages_are_distinct)
{
    ck_assert_str_eq(prm_err_message(PRM_BAD_JSON), "Invalid JSON body");
    ck_assert_str_eq(prm_err_message(PRM_BAD_QUERY), "Invalid query string");
    ck_assert_str_ne(prm_err_message(PRM_NOMEM), prm_err_message(PRM_BAD_JSON));
}
END_TEST

/* ---- getters -------------------------------------------------------------------------- */

static cJSON *obj(const char *json)
{
    cJSON *p = cJSON_Parse(json);
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(get_str_forms)
{
    cJSON *p = obj("{\"s\":\"XBTUSD\",\"e\":\"\",\"n\":5,\"b\":true,\"z\":null,\"o\":{}}");
    const char *s = NULL;
    ck_assert_int_eq(prm_str(p, "s", &s), PRM_FOUND);
    ck_assert_str_eq(s, "XBTUSD");
    ck_assert_int_eq(prm_str(p, "e", &s), PRM_FOUND);
    ck_assert_str_eq(s, "");
    s = "untouched";
    ck_assert_int_eq(prm_str(p, "n", &s), PRM_BAD_TYPE);
    ck_assert_int_eq(prm_str(p, "b", &s), PRM_BAD_TYPE);
    ck_assert_int_eq(prm_str(p, "o", &s), PRM_BAD_TYPE);
    ck_assert_int_eq(prm_str(p, "z", &s), PRM_ABSENT);
    ck_assert_int_eq(prm_str(p, "missing", &s), PRM_ABSENT);
    ck_assert_int_eq(prm_str(NULL, "s", &s), PRM_ABSENT);
    ck_assert_str_eq(s, "untouched");
    cJSON_Delete(p);
}
END_TEST

START_TEST(get_bool_forms)
{
    cJSON *p = obj("{\"t\":true,\"f\":false,\"st\":\"true\",\"sf\":\"FALSE\",\"sT\":\"True\","
                   "\"one\":1,\"zero\":0,\"s1\":\"1\",\"s0\":\"0\",\"two\":2,\"half\":0.5,"
                   "\"yes\":\"yes\",\"empty\":\"\",\"arr\":[],\"z\":null}");
    static const struct {
        const char *name;
        enum prm_get r;
        bool v;
    } cases[] = {
        {"t", PRM_FOUND, true},        {"f", PRM_FOUND, false},      {"st", PRM_FOUND, true},
        {"sf", PRM_FOUND, false},      {"sT", PRM_FOUND, true},      {"one", PRM_FOUND, true},
        {"zero", PRM_FOUND, false},    {"s1", PRM_FOUND, true},      {"s0", PRM_FOUND, false},
        {"two", PRM_BAD_VALUE, false}, {"half", PRM_BAD_VALUE, false}, {"yes", PRM_BAD_VALUE, false},
        {"empty", PRM_BAD_VALUE, false}, {"arr", PRM_BAD_TYPE, false}, {"z", PRM_ABSENT, false},
        {"nope", PRM_ABSENT, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool b = !cases[i].v;
        enum prm_get r = prm_bool(p, cases[i].name, &b);
        ck_assert_msg(r == cases[i].r, "%s: got %d", cases[i].name, (int)r);
        if (r == PRM_FOUND)
            ck_assert_msg(b == cases[i].v, "%s", cases[i].name);
    }
    cJSON_Delete(p);
}
END_TEST

START_TEST(get_int_forms)
{
    cJSON *p = obj("{\"n\":100,\"s\":\"100\",\"neg\":\"-5\",\"pos\":\"+7\",\"f\":100.0,\"nz\":-0,"
                   "\"frac\":100.5,\"abc\":\"abc\",\"sfrac\":\"1.5\",\"sexp\":\"1e2\",\"sp\":\" 1\","
                   "\"e\":\"\",\"sign\":\"-\",\"big\":1e20,\"p53\":9007199254740992,"
                   "\"p53b\":9007199254740994,\"m53\":-9007199254740992,"
                   "\"smax\":\"9223372036854775807\",\"sover\":\"9223372036854775808\","
                   "\"smin\":\"-9223372036854775808\",\"sunder\":\"-9223372036854775809\","
                   "\"b\":true,\"o\":{},\"a\":[1],\"z\":null,\"inf\":1e400}");
    static const struct {
        const char *name;
        enum prm_get r;
        int64_t v;
    } cases[] = {
        {"n", PRM_FOUND, 100},
        {"s", PRM_FOUND, 100},
        {"neg", PRM_FOUND, -5},
        {"pos", PRM_FOUND, 7},
        {"f", PRM_FOUND, 100},
        {"nz", PRM_FOUND, 0},
        {"frac", PRM_BAD_VALUE, 0},
        {"abc", PRM_BAD_VALUE, 0},
        {"sfrac", PRM_BAD_VALUE, 0},
        {"sexp", PRM_BAD_VALUE, 0},
        {"sp", PRM_BAD_VALUE, 0},
        {"e", PRM_BAD_VALUE, 0},
        {"sign", PRM_BAD_VALUE, 0},
        {"big", PRM_BAD_VALUE, 0},
        {"p53", PRM_FOUND, INT64_C(9007199254740992)},
        {"p53b", PRM_BAD_VALUE, 0},
        {"m53", PRM_FOUND, -INT64_C(9007199254740992)},
        {"smax", PRM_FOUND, INT64_MAX},
        {"sover", PRM_BAD_VALUE, 0},
        {"smin", PRM_FOUND, INT64_MIN},
        {"sunder", PRM_BAD_VALUE, 0},
        {"b", PRM_BAD_TYPE, 0},
        {"o", PRM_BAD_TYPE, 0},
        {"a", PRM_BAD_TYPE, 0},
        {"z", PRM_ABSENT, 0},
        {"nope", PRM_ABSENT, 0},
        {"inf", PRM_BAD_VALUE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 12345;
        enum prm_get r = prm_int(p, cases[i].name, &v);
        ck_assert_msg(r == cases[i].r, "%s: got %d", cases[i].name, (int)r);
        if (r == PRM_FOUND)
            ck_assert_msg(v == cases[i].v, "%s: got %lld", cases[i].name, (long long)v);
        else
            ck_assert_int_eq(v, 12345);
    }
    cJSON_Delete(p);
}
END_TEST

START_TEST(get_int_refuses_nan_and_infinity_numbers)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "nan", NAN);
    cJSON_AddNumberToObject(p, "inf", INFINITY);
    cJSON_AddNumberToObject(p, "ninf", -INFINITY);
    int64_t v;
    ck_assert_int_eq(prm_int(p, "nan", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_int(p, "inf", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_int(p, "ninf", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_fixed(p, "nan", 8, &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_fixed(p, "inf", 8, &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_fixed(p, "ninf", 8, &v), PRM_BAD_VALUE);
    cJSON_Delete(p);
}
END_TEST

START_TEST(get_fixed_numbers_and_strings)
{
    cJSON *p = obj("{\"px\":35000.5,\"tenth\":0.1,\"neg\":-35000.5,\"nz\":-0,\"nz2\":-0.0,"
                   "\"int\":100,\"tiny\":1e-8,\"toofine\":0.123456789,\"huge\":1e300,"
                   "\"inf\":1e400,\"long\":0.10000000000000001,\"max7\":9999999.99999999,"
                   "\"over53\":100000000.5,\"s\":\"35000.5\",\"stenth\":\"0.1\",\"sneg\":\"-2.5\","
                   "\"sexp\":\"1e3\",\"sExp\":\"1E3\",\"snan\":\"NaN\",\"sinf\":\"Infinity\","
                   "\"sfine\":\"0.123456789\",\"smax\":\"92233720368.54775807\","
                   "\"sover\":\"92233720368.54775808\",\"sz\":\"-0\",\"sp\":\" 1\",\"se\":\"\","
                   "\"sdot\":\".5\",\"b\":true,\"o\":{},\"z\":null}");
    static const struct {
        const char *name;
        enum prm_get r;
        int64_t v;
    } cases[] = {
        {"px", PRM_FOUND, INT64_C(3500050000000)},
        {"tenth", PRM_FOUND, INT64_C(10000000)},
        {"neg", PRM_FOUND, -INT64_C(3500050000000)},
        {"nz", PRM_FOUND, 0},
        {"nz2", PRM_FOUND, 0},
        {"int", PRM_FOUND, INT64_C(10000000000)},
        {"tiny", PRM_FOUND, 1},
        {"toofine", PRM_BAD_VALUE, 0},
        {"huge", PRM_BAD_VALUE, 0},
        {"inf", PRM_BAD_VALUE, 0},
        {"long", PRM_FOUND, INT64_C(10000000)}, /* within half an ulp of 0.1 */
        {"max7", PRM_FOUND, INT64_C(999999999999999)},
        {"over53", PRM_BAD_VALUE, 0}, /* 1.000000005e16 scaled > 2^53 */
        {"s", PRM_FOUND, INT64_C(3500050000000)},
        {"stenth", PRM_FOUND, INT64_C(10000000)},
        {"sneg", PRM_FOUND, -INT64_C(250000000)},
        {"sexp", PRM_BAD_VALUE, 0},
        {"sExp", PRM_BAD_VALUE, 0},
        {"snan", PRM_BAD_VALUE, 0},
        {"sinf", PRM_BAD_VALUE, 0},
        {"sfine", PRM_BAD_VALUE, 0},
        {"smax", PRM_FOUND, INT64_MAX},
        {"sover", PRM_BAD_VALUE, 0},
        {"sz", PRM_FOUND, 0},
        {"sp", PRM_BAD_VALUE, 0},
        {"se", PRM_BAD_VALUE, 0},
        {"sdot", PRM_BAD_VALUE, 0},
        {"b", PRM_BAD_TYPE, 0},
        {"o", PRM_BAD_TYPE, 0},
        {"z", PRM_ABSENT, 0},
        {"nope", PRM_ABSENT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 12345;
        enum prm_get r = prm_fixed(p, cases[i].name, 8, &v);
        ck_assert_msg(r == cases[i].r, "%s: got %d", cases[i].name, (int)r);
        if (r == PRM_FOUND)
            ck_assert_msg(v == cases[i].v, "%s: got %lld", cases[i].name, (long long)v);
        else
            ck_assert_int_eq(v, 12345);
    }
    cJSON_Delete(p);
}
END_TEST

START_TEST(get_fixed_other_scales)
{
    cJSON *p = obj("{\"lev\":2.5,\"q\":100,\"u\":1.234567,\"u7\":1.2345671}");
    int64_t v = 0;
    ck_assert_int_eq(prm_fixed(p, "lev", 2, &v), PRM_FOUND);
    ck_assert_int_eq(v, 250);
    ck_assert_int_eq(prm_fixed(p, "lev", 0, &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_fixed(p, "q", 0, &v), PRM_FOUND);
    ck_assert_int_eq(v, 100);
    ck_assert_int_eq(prm_fixed(p, "u", 6, &v), PRM_FOUND);
    ck_assert_int_eq(v, 1234567);
    ck_assert_int_eq(prm_fixed(p, "u7", 6, &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_fixed(p, "q", 19, &v), PRM_BAD_VALUE); /* scale out of range */
    cJSON_Delete(p);
}
END_TEST

/* every cent from 0.00 to 1000.00 read as a JSON number is exact */
START_TEST(get_fixed_two_decimal_numbers_are_exact)
{
    char json[64];
    for (int c = 0; c <= 100000; c += 7) {
        snprintf(json, sizeof json, "{\"p\":%d.%02d}", c / 100, c % 100);
        cJSON *p = obj(json);
        int64_t v = -1;
        ck_assert_int_eq(prm_fixed(p, "p", 8, &v), PRM_FOUND);
        ck_assert_int_eq(v, (int64_t)c * 1000000);
        cJSON_Delete(p);
    }
}
END_TEST

START_TEST(get_json_forms)
{
    cJSON *p = obj("{\"o\":{\"open\":true},\"a\":[\"x\",\"y\"],\"so\":\"{\\\"open\\\":false}\","
                   "\"sa\":\" [1,2] \",\"sn\":\"42\",\"sb\":\"{\",\"se\":\"\",\"n\":1,\"b\":true,"
                   "\"deep\":\"[[[[[[[[[1]]]]]]]]]\",\"snul\":\"{\\\"a\\\":\\\"\\\\u0000\\\"}\","
                   "\"z\":null}");
    cJSON *v = NULL;
    ck_assert_int_eq(prm_json(p, "o", &v), PRM_FOUND);
    ck_assert(cJSON_IsObject(v));
    cJSON_DeleteItemFromObject(v, "open"); /* a copy: the original keeps its member */
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "o"),
                                                           "open"));
    cJSON_Delete(v);
    ck_assert_int_eq(prm_json(p, "a", &v), PRM_FOUND);
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    cJSON_Delete(v);
    ck_assert_int_eq(prm_json(p, "so", &v), PRM_FOUND);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(v, "open")));
    cJSON_Delete(v);
    ck_assert_int_eq(prm_json(p, "sa", &v), PRM_FOUND);
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    cJSON_Delete(v);
    v = NULL;
    ck_assert_int_eq(prm_json(p, "sn", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_json(p, "sb", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_json(p, "se", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_json(p, "deep", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_json(p, "snul", &v), PRM_BAD_VALUE);
    ck_assert_int_eq(prm_json(p, "n", &v), PRM_BAD_TYPE);
    ck_assert_int_eq(prm_json(p, "b", &v), PRM_BAD_TYPE);
    ck_assert_int_eq(prm_json(p, "z", &v), PRM_ABSENT);
    ck_assert_int_eq(prm_json(p, "nope", &v), PRM_ABSENT);
    ck_assert_ptr_null(v);
    cJSON_Delete(p);
}
END_TEST

static Suite *params_suite(void)
{
    Suite *s = suite_create("api_params");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, decode_handles_percent_and_plus);
    tcase_add_test(tc, decode_refuses_bad_escapes_nul_and_short_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_test(tc, query_ccxt_percent_encoded_filter);
    tcase_add_test(tc, query_python_plus_is_space_and_ccxt_percent20_too);
    tcase_add_test(tc, query_pair_shapes);
    tcase_add_test(tc, query_empty_or_null_gives_empty_object);
    tcase_add_test(tc, query_malformed_is_bad_query);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_test(tc, json_body_overrides_query);
    tcase_add_test(tc, json_body_keeps_types_and_nesting);
    tcase_add_test(tc, json_body_recognised_by_type_or_first_byte);
    tcase_add_test(tc, json_empty_body_is_no_params);
    tcase_add_test(tc, json_body_not_an_object_is_bad_json);
    tcase_add_test(tc, json_depth_is_limited);
    tcase_add_test(tc, json_nul_bytes_are_refused);
    tcase_add_test(tc, json_repeated_body_key_keeps_last);
    tcase_add_test(tc, form_body_decoded_and_overrides_query);
    tcase_add_test(tc, form_body_malformed_is_bad_query);
    tcase_add_test(tc, error_messages_are_distinct);
    suite_add_tcase(s, tc);

    tc = tcase_create("getters");
    tcase_add_test(tc, get_str_forms);
    tcase_add_test(tc, get_bool_forms);
    tcase_add_test(tc, get_int_forms);
    tcase_add_test(tc, get_int_refuses_nan_and_infinity_numbers);
    tcase_add_test(tc, get_fixed_numbers_and_strings);
    tcase_add_test(tc, get_fixed_other_scales);
    tcase_add_test(tc, get_fixed_two_decimal_numbers_are_exact);
    tcase_add_test(tc, get_json_forms);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(params_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
