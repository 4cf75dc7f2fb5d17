/*
 * fuzz_auth.c - BitMEX request signing as a client presents it: the
 * api-key, api-expires and api-signature headers and the request they
 * sign, verified against a key at a fixed time, and the error a refusal
 * formats. Input: four fields separated by newlines (key, expires,
 * signature, then the verb's first byte and the target and body).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next newline-separated field as a NUL-terminated copy. */
static char *field(const uint8_t **p, size_t *n)
{
    const uint8_t *e = memchr(*p, '\n', *n);
    size_t len = e ? (size_t)(e - *p) : *n;
    char *s = malloc(len + 1);
    memcpy(s, *p, len);
    s[len] = 0;
    *p += e ? len + 1 : len;
    *n -= e ? len + 1 : len;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t n = size;
    char *key = field(&p, &n), *exp = field(&p, &n), *sig = field(&p, &n), *rest = field(&p, &n);
    static const char *const verbs[] = {"GET", "POST", "PUT", "DELETE"};
    size_t rl = strlen(rest);
    const char *target = rl ? rest + 1 : "/api/v1/order";
    struct auth_request req = {verbs[rl ? (uint8_t)rest[0] & 3 : 0], target, strlen(target), (const char *)p, n};
    struct auth_headers h = {key[0] ? key : NULL, exp[0] ? exp : NULL, sig[0] ? sig : NULL};
    struct auth_policy pol;
    auth_policy_default(&pol);
    static const char secret[] = "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO";
    enum auth_verdict v = auth_verify(&pol, &h, secret, sizeof(secret) - 1, &req, INT64_C(1796601600000));
    char msg[256];
    (void)auth_format_error(v, INT64_C(1796601600000), msg, sizeof(msg));
    (void)auth_http_status(v);
    free(key);
    free(exp);
    free(sig);
    free(rest);
    return 0;
}
