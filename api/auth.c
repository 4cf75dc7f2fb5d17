/*
 * auth.c - BitMEX request signing: HMAC-SHA256 over OpenSSL 3's SHA-256;
 * the rules are in auth.h.
 */
#include "api/auth.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SHA256_LEN 32

void auth_policy_default(struct auth_policy *p)
{
    p->skew_ms = AUTH_DEFAULT_SKEW_MS;
    p->max_future_s = AUTH_DEFAULT_MAX_FUTURE_S;
}

/* ---- HMAC ------------------------------------------------------------------ */

struct part {
    const void *data;
    size_t len;
};

/* HMAC-SHA256(key, parts[0] || parts[1] || ...) into out[32], RFC 2104 over
 * a SHA-256 fetched once. OpenSSL 3's EVP_MAC path fetches the HMAC method
 * and the digest and sets up a context on every call (~1.2 us a signature on
 * OpenSSL 3.0); two digests over a cached EVP_MD cost ~0.3 us. The RFC 4231
 * vectors in tests/api/test_auth.c hold it to the standard. */
#define HMAC_BLOCK 64

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool hmac_sha256(const char *key, size_t key_len, const struct part *parts, size_t n,
                        unsigned char out[SHA256_LEN])
{
    pthread_once(&sha256_once, sha256_fetch);
    EVP_MD_CTX *c = sha256_md != NULL ? EVP_MD_CTX_new() : NULL;
    if (c == NULL)
        return false;
    unsigned char k[HMAC_BLOCK] = {0}, pad[HMAC_BLOCK], inner[SHA256_LEN];
    unsigned int len = 0;
    bool ok = true;
    if (key_len > HMAC_BLOCK) /* a long key is replaced by its digest */
        ok = EVP_Digest(key, key_len, k, &len, sha256_md, NULL) == 1;
    else
        memcpy(k, key, key_len);
    for (int i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(c, sha256_md, NULL) == 1 && EVP_DigestUpdate(c, pad, HMAC_BLOCK) == 1;
    for (size_t i = 0; i < n && ok; i++)
        if (parts[i].len > 0)
            ok = EVP_DigestUpdate(c, parts[i].data, parts[i].len) == 1;
    ok = ok && EVP_DigestFinal_ex(c, inner, &len) == 1;
    for (int i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(c, sha256_md, NULL) == 1 && EVP_DigestUpdate(c, pad, HMAC_BLOCK) == 1 &&
         EVP_DigestUpdate(c, inner, SHA256_LEN) == 1 && EVP_DigestFinal_ex(c, out, &len) == 1;
    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * n] = '\0';
}

enum auth_err auth_sign_text(const char *secret, size_t secret_len, const struct auth_request *req,
                             const char *expires_text, size_t expires_len,
                             char out_hex[AUTH_SIG_HEX_LEN + 1])
{
    if (secret == NULL || secret_len == 0 || req == NULL || req->verb == NULL ||
        req->target == NULL || (req->body == NULL && req->body_len > 0) ||
        expires_text == NULL || out_hex == NULL)
        return AUTH_E_ARG;
    struct part parts[4] = {
        {req->verb, strlen(req->verb)},
        {req->target, req->target_len},
        {expires_text, expires_len},
        {req->body, req->body_len},
    };
    unsigned char mac[SHA256_LEN];
    if (!hmac_sha256(secret, secret_len, parts, 4, mac))
        return AUTH_E_CRYPTO;
    to_hex(mac, SHA256_LEN, out_hex);
    OPENSSL_cleanse(mac, sizeof mac);
    return AUTH_E_OK;
}

enum auth_err auth_sign(const char *secret, size_t secret_len, const struct auth_request *req,
                        int64_t expires_s, char out_hex[AUTH_SIG_HEX_LEN + 1])
{
    if (expires_s < 0)
        return AUTH_E_ARG;
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", (long long)expires_s);
    if (n <= 0 || (size_t)n >= sizeof text)
        return AUTH_E_ARG;
    return auth_sign_text(secret, secret_len, req, text, (size_t)n, out_hex);
}

/* ---- verifying ---------------------------------------------------------------- */

/* 1..19 digits, value <= INT64_MAX. */
static bool parse_expires(const char *s, int64_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 19)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0)) ? q - 1 : q; /* b > 0 here */
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum auth_verdict auth_verify(const struct auth_policy *pol, const struct auth_headers *h,
                              const char *secret, size_t secret_len,
                              const struct auth_request *req, ms_t now_ms)
{
    struct auth_policy defaults;
    if (pol == NULL) {
        auth_policy_default(&defaults);
        pol = &defaults;
    }

    /* 1. headers */
    int present = (h->api_key != NULL) + (h->api_expires != NULL) + (h->api_signature != NULL);
    if (present == 0)
        return AUTH_ANONYMOUS;
    if (present < 3)
        return AUTH_MISSING_HEADERS;

    /* 2. api-expires syntax */
    int64_t expires_s = 0;
    if (!parse_expires(h->api_expires, &expires_s))
        return AUTH_EXPIRES_MALFORMED;

    /* 3. expiry, in i128 so no argument can overflow */
    int64_t skew = pol->skew_ms > 0 ? pol->skew_ms : 0;
    i128 shifted = (i128)now_ms - skew;
    if (shifted < INT64_MIN)
        shifted = INT64_MIN;
    int64_t now_s = floor_div((int64_t)shifted, 1000);
    if (expires_s < now_s)
        return AUTH_EXPIRED;

    /* 4. too far ahead */
    if (pol->max_future_s > 0 &&
        (i128)expires_s * 1000 > (i128)now_ms + (i128)pol->max_future_s * 1000)
        return AUTH_EXPIRES_TOO_FAR;

    /* 5. key */
    if (secret == NULL)
        return AUTH_INVALID_KEY;

    /* 6. signature syntax, folded to lower case */
    char got[AUTH_SIG_HEX_LEN + 1];
    size_t sig_len = strlen(h->api_signature);
    if (sig_len != AUTH_SIG_HEX_LEN)
        return AUTH_SIGNATURE_MALFORMED;
    for (size_t i = 0; i < AUTH_SIG_HEX_LEN; i++) {
        char c = h->api_signature[i];
        if (hex_value(c) < 0)
            return AUTH_SIGNATURE_MALFORMED;
        got[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    got[AUTH_SIG_HEX_LEN] = '\0';

    /* 7. compare */
    char want[AUTH_SIG_HEX_LEN + 1];
    enum auth_err e = auth_sign_text(secret, secret_len, req, h->api_expires,
                                     strlen(h->api_expires), want);
    if (e != AUTH_E_OK)
        return e == AUTH_E_ARG && secret_len == 0 ? AUTH_SIGNATURE_INVALID : AUTH_INTERNAL;
    int diff = CRYPTO_memcmp(want, got, AUTH_SIG_HEX_LEN);
    OPENSSL_cleanse(want, sizeof want);
    return diff == 0 ? AUTH_OK : AUTH_SIGNATURE_INVALID;
}

/* ---- messages ------------------------------------------------------------------- */

#define MSG_AUTH_REQUIRED "Authorization Required"
#define MSG_SIG_INVALID "Signature not valid."
#define MSG_INVALID_KEY "Invalid API Key."
#define MSG_EXPIRED "This request has expired - `expires` is in the past."
#define MSG_TOO_FAR "This request's `expires` is too far in the future."
#define MSG_INTERNAL "Internal error"

int auth_http_status(enum auth_verdict v)
{
    switch (v) {
    case AUTH_OK: return 200;
    case AUTH_ANONYMOUS:
    case AUTH_MISSING_HEADERS:
    case AUTH_EXPIRES_MALFORMED:
    case AUTH_SIGNATURE_MALFORMED:
    case AUTH_SIGNATURE_INVALID:
    case AUTH_INVALID_KEY: return 401;
    case AUTH_EXPIRED:
    case AUTH_EXPIRES_TOO_FAR: return 400;
    case AUTH_INTERNAL: return 500;
    }
    return 500;
}

const char *auth_error_message(enum auth_verdict v)
{
    switch (v) {
    case AUTH_OK: return NULL;
    case AUTH_ANONYMOUS:
    case AUTH_MISSING_HEADERS: return MSG_AUTH_REQUIRED;
    case AUTH_EXPIRES_MALFORMED:
    case AUTH_SIGNATURE_MALFORMED:
    case AUTH_SIGNATURE_INVALID: return MSG_SIG_INVALID;
    case AUTH_INVALID_KEY: return MSG_INVALID_KEY;
    case AUTH_EXPIRED: return MSG_EXPIRED;
    case AUTH_EXPIRES_TOO_FAR: return MSG_TOO_FAR;
    case AUTH_INTERNAL: return MSG_INTERNAL;
    }
    return MSG_INTERNAL;
}

int auth_format_error(enum auth_verdict v, ms_t now_ms, char *buf, size_t cap)
{
    const char *msg = auth_error_message(v);
    if (msg == NULL || buf == NULL || cap == 0)
        return -1;
    int n;
    if (v == AUTH_EXPIRED || v == AUTH_EXPIRES_TOO_FAR)
        n = snprintf(buf, cap, "%s Current time: %lld", msg,
                     (long long)floor_div(now_ms, 1000));
    else
        n = snprintf(buf, cap, "%s", msg);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

const char *auth_verdict_name(enum auth_verdict v)
{
    switch (v) {
    case AUTH_OK: return "AUTH_OK";
    case AUTH_ANONYMOUS: return "AUTH_ANONYMOUS";
    case AUTH_MISSING_HEADERS: return "AUTH_MISSING_HEADERS";
    case AUTH_EXPIRES_MALFORMED: return "AUTH_EXPIRES_MALFORMED";
    case AUTH_EXPIRED: return "AUTH_EXPIRED";
    case AUTH_EXPIRES_TOO_FAR: return "AUTH_EXPIRES_TOO_FAR";
    case AUTH_INVALID_KEY: return "AUTH_INVALID_KEY";
    case AUTH_SIGNATURE_MALFORMED: return "AUTH_SIGNATURE_MALFORMED";
    case AUTH_SIGNATURE_INVALID: return "AUTH_SIGNATURE_INVALID";
    case AUTH_INTERNAL: return "AUTH_INTERNAL";
    }
    return "AUTH_?";
}

/* ---- key generation ------------------------------------------------------------- */

/* Unpadded base64url of n bytes, n a multiple of 3: 4n/3 characters + NUL. */
static void base64url(const unsigned char *in, size_t n, char *out)
{
    static const char A[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];
        out[o++] = A[v & 63];
    }
    out[o] = '\0';
}

enum auth_err auth_generate_key(char key_id[AUTH_KEY_ID_LEN + 1],
                                char secret[AUTH_SECRET_LEN + 1])
{
    if (key_id == NULL || secret == NULL)
        return AUTH_E_ARG;
    unsigned char id_bytes[AUTH_KEY_ID_LEN / 4 * 3];    /* 18 */
    unsigned char secret_bytes[AUTH_SECRET_LEN / 4 * 3]; /* 36 */
    if (RAND_bytes(id_bytes, (int)sizeof id_bytes) != 1 ||
        RAND_bytes(secret_bytes, (int)sizeof secret_bytes) != 1)
        return AUTH_E_CRYPTO;
    base64url(id_bytes, sizeof id_bytes, key_id);
    base64url(secret_bytes, sizeof secret_bytes, secret);
    OPENSSL_cleanse(secret_bytes, sizeof secret_bytes);
    return AUTH_E_OK;
}
