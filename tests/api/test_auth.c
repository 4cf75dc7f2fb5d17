/*
 * test_auth.c - Check suite for api/auth: BitMEX request signing.
 *
 * Signature vectors: the examples on BitMEX's API-key usage page (secret
 * chNOOS4K..., expires 1518064236/7/8), recomputed independently with
 * Python's hmac before being written here. Message texts: BitMEX's
 * documented and captured error responses and the texts ccxt matches (see
 * api/auth.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"

static const char SECRET[] = "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO";
static const char KEY[] = "LAqUlngMIQkIUjXMUreyu3qn";

static const char T_INSTR[] = "/api/v1/instrument";
static const char T_FILTER[] = "/api/v1/instrument?filter=%7B%22symbol%22%3A+%22XBTM15%22%7D";
static const char T_ORDER[] = "/api/v1/order";
static const char B_ORDER[] =
    "{\"symbol\":\"XBTM15\",\"price\":219.0,\"clOrdID\":\"mm_bitmex_1a/oemUeQ4CAJZgP3fjHsA\","
    "\"orderQty\":98}";

static const char SIG_GET[] = "c7682d435d0cfe87c16098df34ef2eb5a549d4c5a3c2b1f0f77b8af73423bf00";
static const char SIG_FILTER[] = "e2f422547eecb5b3cb29ade2127e21b858b235b386bfa45e1c1756eb3383919f";
static const char SIG_POST[] = "1749cd2ccae4aa49048ae09f0b95110cee706e0944e6a14ad0b3a8cb45bd336b";

static struct auth_request req(const char *verb, const char *target, const char *body)
{
    struct auth_request r = {verb, target, strlen(target), body, body != NULL ? strlen(body) : 0};
    return r;
}

static struct auth_policy policy(int64_t skew_ms, int64_t max_future_s)
{
    struct auth_policy p = {skew_ms, max_future_s};
    return p;
}

static enum auth_verdict verify_at(const struct auth_policy *p, const char *expires, const char *sig,
                                   const struct auth_request *r, ms_t now_ms)
{
    struct auth_headers h = {KEY, expires, sig};
    return auth_verify(p, &h, SECRET, strlen(SECRET), r, now_ms);
}

#define ck_verdict(got, want)                                                               \
    do {                                                                                    \
        enum auth_verdict g_ = (got), w_ = (want);                                          \
        ck_assert_msg(g_ == w_, "got %s, want %s", auth_verdict_name(g_), auth_verdict_name(w_)); \
    } while (0)

/* ---- signing ------------------------------------------------------------------- */

START_TEST(sign_bitmex_get_example)
{
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = req("GET", T_INSTR, NULL);
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, 1518064236, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_GET);
    r = req("GET", T_INSTR, ""); /* empty body = no body */
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, 1518064236, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_GET);
}
END_TEST

START_TEST(sign_bitmex_get_with_raw_query_example)
{
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = req("GET", T_FILTER, NULL);
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, 1518064237, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_FILTER);
}
END_TEST

START_TEST(sign_bitmex_post_with_json_body_example)
{
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = req("POST", T_ORDER, B_ORDER);
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, 1518064238, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_POST);
    ck_assert_int_eq(auth_sign_text(SECRET, strlen(SECRET), &r, "1518064238", 10, hex),
                     AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_POST);
}
END_TEST

START_TEST(sign_uses_lengths_not_nul)
{
    /* target and body taken by length: trailing bytes beyond are ignored,
     * embedded bytes within count */
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = {"GET", "/api/v1/instrumentXYZ", 18, "junk", 0};
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, 1518064236, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, SIG_GET);
}
END_TEST

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the 64-byte block is
 * hashed first), and keys of exactly 64 and 65 bytes (values from Python's
 * hmac): the whole message goes in as the body, verb, target and expires
 * empty, since the signature is HMAC over their concatenation. */
static void rfc_case(const char *key, size_t key_len, const char *msg, const char *want)
{
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = {"", "", 0, msg, strlen(msg)};
    ck_assert_int_eq(auth_sign_text(key, key_len, &r, "", 0, hex), AUTH_E_OK);
    ck_assert_str_eq(hex, want);
}

START_TEST(sign_is_hmac_sha256_by_rfc_4231)
{
    char k[131];
    memset(k, 0x0b, 20);
    rfc_case(k, 20, "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    rfc_case("Jefe", 4, "what do ya want for nothing?",
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(k, 0xaa, 131);
    rfc_case(k, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    memset(k, 'k', 65);
    rfc_case(k, 64, "block-size key", "3639ed45f96410ae1abf821aaf15a4e616209464f7e06fb79435d35e485bd3c2");
    rfc_case(k, 65, "block-size key", "492c0e30e79bd478c547ea77404336b1093be9a3fe2de81aca2185a7a92a69fa");
}
END_TEST

START_TEST(sign_rejects_bad_arguments)
{
    char hex[AUTH_SIG_HEX_LEN + 1];
    struct auth_request r = req("GET", T_INSTR, NULL);
    ck_assert_int_eq(auth_sign(SECRET, 0, &r, 1, hex), AUTH_E_ARG);
    ck_assert_int_eq(auth_sign(NULL, 5, &r, 1, hex), AUTH_E_ARG);
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &r, -1, hex), AUTH_E_ARG);
    struct auth_request bad = {"GET", T_INSTR, strlen(T_INSTR), NULL, 3};
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &bad, 1, hex), AUTH_E_ARG);
}
END_TEST

/* ---- verifying ------------------------------------------------------------------- */

START_TEST(verify_accepts_the_bitmex_examples)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    struct auth_request f = req("GET", T_FILTER, NULL);
    struct auth_request o = req("POST", T_ORDER, B_ORDER);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, INT64_C(1518064230000)), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064237", SIG_FILTER, &f, INT64_C(1518064230000)), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064238", SIG_POST, &o, INT64_C(1518064230000)), AUTH_OK);
}
END_TEST

START_TEST(verify_refuses_any_change_to_what_was_signed)
{
    struct auth_policy p = policy(0, 0);
    const ms_t now = INT64_C(1518064230000);
    /* body one byte different */
    struct auth_request o = req("POST", T_ORDER, B_ORDER);
    o.body_len--;
    ck_verdict(verify_at(&p, "1518064238", SIG_POST, &o, now), AUTH_SIGNATURE_INVALID);
    /* the same query encoded another way (%20 instead of +) */
    struct auth_request f = req("GET", "/api/v1/instrument?filter=%7B%22symbol%22%3A%20%22XBTM15%22%7D",
                                NULL);
    ck_verdict(verify_at(&p, "1518064237", SIG_FILTER, &f, now), AUTH_SIGNATURE_INVALID);
    /* lower-case verb */
    struct auth_request g = req("get", T_INSTR, NULL);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, now), AUTH_SIGNATURE_INVALID);
    /* another expires than signed */
    g = req("GET", T_INSTR, NULL);
    ck_verdict(verify_at(&p, "1518064237", SIG_GET, &g, now), AUTH_SIGNATURE_INVALID);
    /* leading zero: a different text, so a different message */
    ck_verdict(verify_at(&p, "01518064236", SIG_GET, &g, now), AUTH_SIGNATURE_INVALID);
    /* another secret */
    struct auth_headers h = {KEY, "1518064236", SIG_GET};
    ck_verdict(auth_verify(&p, &h, "other", 5, &g, now), AUTH_SIGNATURE_INVALID);
    /* a secret one character short */
    ck_verdict(auth_verify(&p, &h, SECRET, strlen(SECRET) - 1, &g, now), AUTH_SIGNATURE_INVALID);
    /* an empty stored secret never verifies */
    ck_verdict(auth_verify(&p, &h, "", 0, &g, now), AUTH_SIGNATURE_INVALID);
}
END_TEST

START_TEST(verify_leading_zero_expires_signed_as_sent)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    char hex[AUTH_SIG_HEX_LEN + 1];
    ck_assert_int_eq(auth_sign_text(SECRET, strlen(SECRET), &g, "01518064236", 11, hex), AUTH_E_OK);
    ck_verdict(verify_at(&p, "01518064236", hex, &g, INT64_C(1518064230000)), AUTH_OK);
}
END_TEST

START_TEST(verify_upper_case_hex_is_the_same_signature)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    char up[AUTH_SIG_HEX_LEN + 1];
    for (int i = 0; i <= AUTH_SIG_HEX_LEN; i++)
        up[i] = (SIG_GET[i] >= 'a' && SIG_GET[i] <= 'f') ? (char)(SIG_GET[i] - 32) : SIG_GET[i];
    ck_verdict(verify_at(&p, "1518064236", up, &g, INT64_C(1518064230000)), AUTH_OK);
}
END_TEST

START_TEST(verify_expiry_boundary_without_skew)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t e = INT64_C(1518064236000);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e - 1), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e + 999), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e + 1000), AUTH_EXPIRED);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e + 86400000), AUTH_EXPIRED);
}
END_TEST

START_TEST(verify_expiry_boundary_with_skew)
{
    struct auth_policy p = policy(5000, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t e = INT64_C(1518064236000);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e + 1000 + 4999), AUTH_OK);
    ck_verdict(verify_at(&p, "1518064236", SIG_GET, &g, e + 1000 + 5000), AUTH_EXPIRED);
    struct auth_policy d;
    auth_policy_default(&d);
    ck_assert_int_eq(d.skew_ms, 5000);
    ck_assert_int_eq(d.max_future_s, 172800);
    ck_verdict(verify_at(&d, "1518064236", SIG_GET, &g, e + 5999), AUTH_OK);
    ck_verdict(verify_at(&d, "1518064236", SIG_GET, &g, e + 6000), AUTH_EXPIRED);
    /* NULL policy = the defaults */
    ck_verdict(verify_at(NULL, "1518064236", SIG_GET, &g, e + 5999), AUTH_OK);
    ck_verdict(verify_at(NULL, "1518064236", SIG_GET, &g, e + 6000), AUTH_EXPIRED);
    /* a server clock before the epoch or an expires of 0 */
    ck_verdict(verify_at(&p, "0", SIG_GET, &g, -1), AUTH_SIGNATURE_INVALID);
    ck_verdict(verify_at(&p, "0", SIG_GET, &g, 5999), AUTH_SIGNATURE_INVALID); /* skew 5 s */
    ck_verdict(verify_at(&p, "0", SIG_GET, &g, 6000), AUTH_EXPIRED);
}
END_TEST

START_TEST(verify_replay_after_expires_is_refused)
{
    struct auth_policy d;
    auth_policy_default(&d);
    struct auth_request o = req("POST", T_ORDER, B_ORDER);
    const ms_t sent = INT64_C(1518064233000);
    ck_verdict(verify_at(&d, "1518064238", SIG_POST, &o, sent), AUTH_OK);
    ck_verdict(verify_at(&d, "1518064238", SIG_POST, &o, sent + 2000), AUTH_OK); /* replay in time */
    ck_verdict(verify_at(&d, "1518064238", SIG_POST, &o, INT64_C(1518064244000)), AUTH_EXPIRED);
}
END_TEST

START_TEST(verify_far_future_bound)
{
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t now = INT64_C(1518064236000) - INT64_C(3600000);
    struct auth_policy hour = policy(0, 3600);
    ck_verdict(verify_at(&hour, "1518064236", SIG_GET, &g, now), AUTH_OK);          /* exactly 1 h */
    ck_verdict(verify_at(&hour, "1518064236", SIG_GET, &g, now - 1), AUTH_EXPIRES_TOO_FAR);
    /* ccxt pro's WebSocket login sends milliseconds */
    struct auth_policy d, none = policy(5000, AUTH_NO_MAX_FUTURE);
    auth_policy_default(&d);
    struct auth_request ws = req("GET", "/realtime", NULL);
    char hex[AUTH_SIG_HEX_LEN + 1];
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &ws, INT64_C(1795247978123), hex), AUTH_E_OK);
    /* milliseconds read as seconds: far beyond the default bound (the
     * WebSocket reads ccxt pro's as milliseconds itself) */
    ck_verdict(verify_at(&d, "1795247978123", hex, &ws, INT64_C(1795247973123)), AUTH_EXPIRES_TOO_FAR);
    ck_verdict(verify_at(&none, "1795247978123", hex, &ws, INT64_C(1795247973123)), AUTH_OK);
    ck_verdict(verify_at(&hour, "1795247978123", hex, &ws, INT64_C(1795247973123)),
               AUTH_EXPIRES_TOO_FAR);
    /* the largest accepted expires */
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &ws, INT64_MAX, hex), AUTH_E_OK);
    ck_verdict(verify_at(&none, "9223372036854775807", hex, &ws, 0), AUTH_OK);
    ck_verdict(verify_at(&d, "9223372036854775807", hex, &ws, 0), AUTH_EXPIRES_TOO_FAR);
    /* the default bound: two days ahead of now, to the second */
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &ws, 1795420773, hex), AUTH_E_OK);
    ck_verdict(verify_at(&d, "1795420773", hex, &ws, INT64_C(1795247973000)), AUTH_OK);
    ck_assert_int_eq(auth_sign(SECRET, strlen(SECRET), &ws, 1795420774, hex), AUTH_E_OK);
    ck_verdict(verify_at(&d, "1795420774", hex, &ws, INT64_C(1795247973000)), AUTH_EXPIRES_TOO_FAR);
}
END_TEST

START_TEST(verify_header_presence)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t now = INT64_C(1518064230000);
    struct auth_headers none = {NULL, NULL, NULL};
    ck_verdict(auth_verify(&p, &none, NULL, 0, &g, now), AUTH_ANONYMOUS);
    struct auth_headers cases[] = {
        {KEY, NULL, NULL},          {NULL, "1518064236", NULL}, {NULL, NULL, SIG_GET},
        {KEY, "1518064236", NULL},  {KEY, NULL, SIG_GET},       {NULL, "1518064236", SIG_GET},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_verdict(auth_verify(&p, &cases[i], SECRET, strlen(SECRET), &g, now),
                   AUTH_MISSING_HEADERS);
}
END_TEST

START_TEST(verify_malformed_expires)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t now = INT64_C(1518064230000);
    const char *bad[] = {"",    "abc",          "-1",           "+1518064236",
                         "1.5", " 1518064236",  "1518064236 ", "1518064236.0",
                         "1e9", "99999999999999999999", "9223372036854775808", "0x5A7C3F6C"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_verdict(verify_at(&p, bad[i], SIG_GET, &g, now), AUTH_EXPIRES_MALFORMED);
}
END_TEST

START_TEST(verify_unknown_key)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    struct auth_headers h = {"nosuchkey", "1518064236", SIG_GET};
    ck_verdict(auth_verify(&p, &h, NULL, 0, &g, INT64_C(1518064230000)), AUTH_INVALID_KEY);
    /* expiry is judged first */
    ck_verdict(auth_verify(&p, &h, NULL, 0, &g, INT64_C(1518064240000)), AUTH_EXPIRED);
}
END_TEST

START_TEST(verify_malformed_signature)
{
    struct auth_policy p = policy(0, 0);
    struct auth_request g = req("GET", T_INSTR, NULL);
    const ms_t now = INT64_C(1518064230000);
    char s63[64], s65[66], sg[65];
    memcpy(s63, SIG_GET, 63);
    s63[63] = '\0';
    snprintf(s65, sizeof s65, "%s0", SIG_GET);
    memcpy(sg, SIG_GET, 65);
    sg[10] = 'g';
    ck_verdict(verify_at(&p, "1518064236", "", &g, now), AUTH_SIGNATURE_MALFORMED);
    ck_verdict(verify_at(&p, "1518064236", s63, &g, now), AUTH_SIGNATURE_MALFORMED);
    ck_verdict(verify_at(&p, "1518064236", s65, &g, now), AUTH_SIGNATURE_MALFORMED);
    ck_verdict(verify_at(&p, "1518064236", sg, &g, now), AUTH_SIGNATURE_MALFORMED);
    /* well-formed but one digit off */
    char off[65];
    memcpy(off, SIG_GET, 65);
    off[63] = off[63] == '0' ? '1' : '0';
    ck_verdict(verify_at(&p, "1518064236", off, &g, now), AUTH_SIGNATURE_INVALID);
}
END_TEST

/* ---- what the client sees --------------------------------------------------------- */

START_TEST(messages_and_statuses)
{
    ck_assert_ptr_null(auth_error_message(AUTH_OK));
    ck_assert_int_eq(auth_http_status(AUTH_OK), 200);
    ck_assert_str_eq(auth_error_message(AUTH_INVALID_KEY), "Invalid API Key.");
    ck_assert_int_eq(auth_http_status(AUTH_INVALID_KEY), 401);
    ck_assert_str_eq(auth_error_message(AUTH_SIGNATURE_INVALID), "Signature not valid.");
    ck_assert_int_eq(auth_http_status(AUTH_SIGNATURE_INVALID), 401);
    ck_assert_str_eq(auth_error_message(AUTH_SIGNATURE_MALFORMED), "Signature not valid.");
    ck_assert_str_eq(auth_error_message(AUTH_EXPIRES_MALFORMED), "Signature not valid.");
    ck_assert_int_eq(auth_http_status(AUTH_EXPIRES_MALFORMED), 401);
    ck_assert_str_eq(auth_error_message(AUTH_ANONYMOUS), "Authorization Required");
    ck_assert_str_eq(auth_error_message(AUTH_MISSING_HEADERS), "Authorization Required");
    ck_assert_int_eq(auth_http_status(AUTH_MISSING_HEADERS), 401);
    ck_assert_str_eq(auth_error_message(AUTH_EXPIRED),
                     "This request has expired - `expires` is in the past.");
    ck_assert_int_eq(auth_http_status(AUTH_EXPIRED), 400);
    ck_assert_int_eq(auth_http_status(AUTH_EXPIRES_TOO_FAR), 400);
    ck_assert_int_eq(auth_http_status(AUTH_INTERNAL), 500);
    ck_assert_str_eq(auth_verdict_name(AUTH_SIGNATURE_MALFORMED), "AUTH_SIGNATURE_MALFORMED");
}
END_TEST

START_TEST(formatted_messages_carry_current_time)
{
    char buf[160];
    ck_assert_int_eq(auth_format_error(AUTH_EXPIRED, INT64_C(1516534870123), buf, sizeof buf),
                     (int)strlen("This request has expired - `expires` is in the past. "
                                 "Current time: 1516534870"));
    ck_assert_str_eq(buf,
                     "This request has expired - `expires` is in the past. Current time: 1516534870");
    ck_assert_int_eq(auth_format_error(AUTH_EXPIRES_TOO_FAR, INT64_C(1516534870999), buf, sizeof buf) > 0,
                     1);
    ck_assert_str_eq(buf, "This request's `expires` is too far in the future. Current time: 1516534870");
    ck_assert_int_eq(auth_format_error(AUTH_INVALID_KEY, 0, buf, sizeof buf), 16);
    ck_assert_str_eq(buf, "Invalid API Key.");
    ck_assert_int_eq(auth_format_error(AUTH_OK, 0, buf, sizeof buf), -1);
    ck_assert_int_eq(auth_format_error(AUTH_EXPIRED, 0, buf, 10), -1);
}
END_TEST

/* ---- keys ------------------------------------------------------------------------- */

static int b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

START_TEST(generated_keys_have_bitmex_shapes)
{
    char seen[256] = {0};
    char prev_id[AUTH_KEY_ID_LEN + 1] = "";
    for (int n = 0; n < 200; n++) {
        char id[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
        ck_assert_int_eq(auth_generate_key(id, secret), AUTH_E_OK);
        ck_assert_uint_eq(strlen(id), 24);
        ck_assert_uint_eq(strlen(secret), 48);
        for (int i = 0; i < 24; i++)
            ck_assert(b64url(id[i]));
        for (int i = 0; i < 48; i++) {
            ck_assert(b64url(secret[i]));
            seen[(unsigned char)secret[i]] = 1;
        }
        ck_assert_str_ne(id, prev_id);
        memcpy(prev_id, id, sizeof id);
    }
    /* 9600 uniform characters: every one of the 64 symbols shows up */
    int distinct = 0;
    for (int c = 0; c < 256; c++)
        distinct += seen[c];
    ck_assert_int_eq(distinct, 64);
}
END_TEST

START_TEST(generated_key_signs_and_verifies)
{
    char id[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1], hex[AUTH_SIG_HEX_LEN + 1];
    ck_assert_int_eq(auth_generate_key(id, secret), AUTH_E_OK);
    struct auth_request o = req("POST", T_ORDER, B_ORDER);
    ck_assert_int_eq(auth_sign(secret, strlen(secret), &o, 2000000000, hex), AUTH_E_OK);
    struct auth_policy d;
    auth_policy_default(&d);
    struct auth_headers h = {id, "2000000000", hex};
    ck_verdict(auth_verify(&d, &h, secret, strlen(secret), &o, INT64_C(1999999990000)), AUTH_OK);
    ck_verdict(auth_verify(&d, &h, SECRET, strlen(SECRET), &o, INT64_C(1999999990000)),
               AUTH_SIGNATURE_INVALID);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("api_auth");
    TCase *t = tcase_create("sign");
    tcase_add_test(t, sign_bitmex_get_example);
    tcase_add_test(t, sign_bitmex_get_with_raw_query_example);
    tcase_add_test(t, sign_bitmex_post_with_json_body_example);
    tcase_add_test(t, sign_uses_lengths_not_nul);
    tcase_add_test(t, sign_is_hmac_sha256_by_rfc_4231);
    tcase_add_test(t, sign_rejects_bad_arguments);
    suite_add_tcase(s, t);
    TCase *v = tcase_create("verify");
    tcase_add_test(v, verify_accepts_the_bitmex_examples);
    tcase_add_test(v, verify_refuses_any_change_to_what_was_signed);
    tcase_add_test(v, verify_leading_zero_expires_signed_as_sent);
    tcase_add_test(v, verify_upper_case_hex_is_the_same_signature);
    tcase_add_test(v, verify_expiry_boundary_without_skew);
    tcase_add_test(v, verify_expiry_boundary_with_skew);
    tcase_add_test(v, verify_replay_after_expires_is_refused);
    tcase_add_test(v, verify_far_future_bound);
    tcase_add_test(v, verify_header_presence);
    tcase_add_test(v, verify_malformed_expires);
    tcase_add_test(v, verify_unknown_key);
    tcase_add_test(v, verify_malformed_signature);
    suite_add_tcase(s, v);
    TCase *m = tcase_create("messages_and_keys");
    tcase_add_test(m, messages_and_statuses);
    tcase_add_test(m, formatted_messages_carry_current_time);
    tcase_add_test(m, generated_keys_have_bitmex_shapes);
    tcase_add_test(m, generated_key_signs_and_verifies);
    suite_add_tcase(s, m);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
