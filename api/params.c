/*
 * params.c - a request's parameters merged into one cJSON object, and the
 * typed getters; the rules are in params.h.
 *
 * prm_parse builds a fresh object: the query pairs first, then the body's
 * keys on top (a body key replaces a query key, and a later duplicate
 * replaces an earlier one, as JavaScript's JSON.parse does). Before a JSON
 * text (body, or a string given to prm_json) reaches cJSON, one linear scan
 * (json_prescan) refuses nesting deeper than PRM_DEPTH_MAX, raw NUL bytes
 * and the escape \u0000: cJSON would cut a string at an escaped NUL, so
 * "abc\u0000def" would silently become "abc".
 */
#include "api/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/timefmt.h"

/* 2^53: every integer up to it is exact in a double, and cJSON hands every
 * JSON number over as a double. */
#define PRM_DOUBLE_EXACT_MAX 9007199254740992.0

/* ---- percent-decoding --------------------------------------------------------- */

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

long prm_decode(const char *src, size_t len, char *dst, size_t cap, bool plus_is_space)
{
    if (dst == NULL || cap < len + 1 || (src == NULL && len > 0))
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3)
                return -1; /* fewer than two characters follow */
            int hi = hex_value(src[i + 1]), lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return (long)n;
}

/* ---- building the object ------------------------------------------------------ */

/* Puts item under key, replacing (and freeing) an existing member of that
 * name. key may be item's own name. Consumes item whatever happens. */
static bool obj_put(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL)
        return false;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (old != NULL)
        cJSON_Delete(cJSON_DetachItemViaPointer(obj, old));
    /* cJSON_AddItemToObject copies key before it frees item's old name */
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* Adds the '&'-separated pairs of text to obj. scratch holds len + 1 bytes. */
static enum prm_err add_pairs(cJSON *obj, const char *text, size_t len, char *scratch)
{
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '&')
            end++;
        if (end > i) {
            size_t eq = i;
            while (eq < end && text[eq] != '=')
                eq++;
            /* name and value decode into the one scratch buffer, the value
             * after the name's NUL; both fit since they come from [i, end) */
            long nlen = prm_decode(text + i, eq - i, scratch, eq - i + 1, true);
            if (nlen < 0)
                return PRM_BAD_QUERY;
            const char *vsrc = eq < end ? text + eq + 1 : text + end;
            size_t vlen = eq < end ? end - eq - 1 : 0;
            char *vdst = scratch + nlen + 1;
            if (prm_decode(vsrc, vlen, vdst, vlen + 1, true) < 0)
                return PRM_BAD_QUERY;
            /* a pair with an empty name ("=x", or a lone "=") says nothing */
            if (nlen > 0 && !obj_put(obj, scratch, cJSON_CreateString(vdst)))
                return PRM_NOMEM;
        }
        i = end + 1;
    }
    return PRM_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One pass over a JSON text: false when it nests deeper than PRM_DEPTH_MAX,
 * holds a raw NUL, or escapes a NUL (\u0000). Malformed text is left for
 * cJSON to refuse. */
static bool json_prescan(const char *s, size_t len)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\0')
            return false;
        if (in_str) {
            if (c == '\\') {
                if (i + 1 < len && s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
                    return false;
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > PRM_DEPTH_MAX)
                return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

/* Parses a whole JSON text (trailing white space allowed) after the
 * prescan. NULL when it does not parse or is refused. */
static cJSON *json_parse(const char *s, size_t len)
{
    if (!json_prescan(s, len))
        return NULL;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, len, &end, false);
    if (v == NULL)
        return NULL;
    for (size_t i = (size_t)(end - s); i < len; i++) {
        if (!is_space(s[i])) {
            cJSON_Delete(v);
            return NULL;
        }
    }
    return v;
}

/* "application/json", any case, with or without parameters
 * ("; charset=utf-8"), and the "+json" suffix types. */
static bool type_is_json(const char *ct)
{
    if (ct == NULL)
        return false;
    size_t n = strcspn(ct, ";");
    while (n > 0 && is_space(ct[n - 1]))
        n--;
    while (n > 0 && is_space(*ct)) {
        ct++;
        n--;
    }
    static const char json[] = "application/json";
    if (n == sizeof json - 1 && strncasecmp(ct, json, n) == 0)
        return true;
    return n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static enum prm_err add_json_body(cJSON *obj, const char *body, size_t blen)
{
    cJSON *doc = json_parse(body, blen);
    if (doc == NULL)
        return PRM_BAD_JSON; /* cannot tell a failed allocation from bad text */
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return PRM_BAD_JSON;
    }
    while (doc->child != NULL) {
        /* every member of a parsed object has a name */
        cJSON *item = cJSON_DetachItemViaPointer(doc, doc->child);
        if (!obj_put(obj, item->string, item)) {
            cJSON_Delete(doc);
            return PRM_NOMEM;
        }
    }
    cJSON_Delete(doc);
    return PRM_OK;
}

enum prm_err prm_parse(const char *query, size_t qlen, const char *body, size_t blen,
                       const char *content_type, cJSON **out)
{
    *out = NULL;
    if (query == NULL)
        qlen = 0;
    if (body == NULL)
        blen = 0;
    size_t b0 = 0;
    while (b0 < blen && is_space(body[b0]))
        b0++;
    bool has_body = b0 < blen;
    bool json = has_body && (type_is_json(content_type) || body[b0] == '{' || body[b0] == '[');

    cJSON *obj = cJSON_CreateObject();
    if (obj == NULL)
        return PRM_NOMEM;
    size_t scratch_len = (qlen > blen ? qlen : blen) + 2;
    char *scratch = malloc(scratch_len);
    if (scratch == NULL) {
        cJSON_Delete(obj);
        return PRM_NOMEM;
    }
    enum prm_err e = add_pairs(obj, query, qlen, scratch);
    if (e == PRM_OK && has_body)
        e = json ? add_json_body(obj, body, blen) : add_pairs(obj, body, blen, scratch);
    free(scratch);
    if (e != PRM_OK) {
        cJSON_Delete(obj);
        return e;
    }
    *out = obj;
    return PRM_OK;
}

const char *prm_err_message(enum prm_err e)
{
    switch (e) {
    case PRM_OK: return "OK";
    case PRM_BAD_JSON: return "Invalid JSON body";
    case PRM_BAD_QUERY: return "Invalid query string";
    case PRM_NOMEM: return "Server Error";
    }
    return "Server Error";
}

/* ---- getters ------------------------------------------------------------------ */

/* The named member, or NULL when it is absent or JSON null. */
static const cJSON *member(const cJSON *p, const char *name)
{
    if (p == NULL || name == NULL)
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    return cJSON_IsNull(v) ? NULL : v;
}

enum prm_get prm_str(const cJSON *p, const char *name, const char **out)
{
    const cJSON *v = member(p, name);
    if (v == NULL)
        return PRM_ABSENT;
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return PRM_BAD_TYPE;
    *out = v->valuestring;
    return PRM_FOUND;
}

enum prm_get prm_bool(const cJSON *p, const char *name, bool *out)
{
    const cJSON *v = member(p, name);
    if (v == NULL)
        return PRM_ABSENT;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return PRM_FOUND;
    }
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble != 0.0 && v->valuedouble != 1.0)
            return PRM_BAD_VALUE;
        *out = v->valuedouble == 1.0;
        return PRM_FOUND;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        const char *s = v->valuestring;
        if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
            *out = true;
        else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
            *out = false;
        else
            return PRM_BAD_VALUE;
        return PRM_FOUND;
    }
    return PRM_BAD_TYPE;
}

/* A decimal integer string: optional sign, then 1 or more digits, within
 * int64. */
static bool int_from_text(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s == '\0')
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (acc > (limit - d) / 10u)
            return false;
        acc = acc * 10u + d;
    }
    *out = neg ? (int64_t)(0u - acc) : (int64_t)acc;
    return true;
}

enum prm_get prm_int(const cJSON *p, const char *name, int64_t *out)
{
    const cJSON *v = member(p, name);
    if (v == NULL)
        return PRM_ABSENT;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || fabs(d) > PRM_DOUBLE_EXACT_MAX || d != trunc(d))
            return PRM_BAD_VALUE;
        *out = (int64_t)d; /* -0.0 becomes 0 */
        return PRM_FOUND;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        /* a string is a form prm_int takes; text that is not an integer
         * ("abc", "1.5", "1e2", " 1") is a bad value, not a bad type */
        return int_from_text(v->valuestring, out) ? PRM_FOUND : PRM_BAD_VALUE;
    }
    return PRM_BAD_TYPE;
}

/*
 * JSON numbers come from cJSON as doubles (strtod, correctly rounded).
 * tf_fixed_from_double reads the double back as its shortest round-trip
 * decimal text and requires that text to be exact at the scale. So:
 *   - a decimal written with at most 15 significant digits (DBL_DIG) comes
 *     back exactly as written: 35000.5 -> 3500050000000, 0.1 -> 10000000;
 *   - a longer one is taken as the shortest decimal naming the same double,
 *     i.e. within half an ulp, a relative 2^-53 (1.1e-16), of what was
 *     written ("0.10000000000000001" is 0.1); if that decimal is not exact
 *     at the scale (0.123456789 at scale 8) the value is refused;
 *   - a scaled magnitude above 2^53 is refused: there neighbouring values
 *     of the scale collide in a double, so what the client meant cannot be
 *     known (send such a value as a string).
 * -0 and -0.0 give 0.
 */
enum prm_get prm_fixed(const cJSON *p, const char *name, int scale, int64_t *out)
{
    const cJSON *v = member(p, name);
    if (v == NULL)
        return PRM_ABSENT;
    int64_t r;
    if (cJSON_IsNumber(v)) {
        if (tf_fixed_from_double(v->valuedouble, scale, &r) != TF_OK)
            return PRM_BAD_VALUE;
        if ((double)r > PRM_DOUBLE_EXACT_MAX || (double)r < -PRM_DOUBLE_EXACT_MAX)
            return PRM_BAD_VALUE;
        *out = r;
        return PRM_FOUND;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        const char *s = v->valuestring;
        /* plain decimals only: exponents are a JSON-number convenience */
        if (strpbrk(s, "eE") != NULL)
            return PRM_BAD_VALUE;
        if (tf_parse_fixed(s, strlen(s), scale, &r) != TF_OK)
            return PRM_BAD_VALUE;
        *out = r;
        return PRM_FOUND;
    }
    return PRM_BAD_TYPE;
}

enum prm_get prm_json(const cJSON *p, const char *name, cJSON **out)
{
    const cJSON *v = member(p, name);
    if (v == NULL)
        return PRM_ABSENT;
    cJSON *r;
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        r = cJSON_Duplicate(v, true);
    } else if (cJSON_IsString(v) && v->valuestring != NULL) {
        r = json_parse(v->valuestring, strlen(v->valuestring));
        if (r != NULL && !cJSON_IsObject(r) && !cJSON_IsArray(r)) {
            cJSON_Delete(r);
            r = NULL;
        }
    } else {
        return PRM_BAD_TYPE;
    }
    /* a failed allocation also lands here: the getters have no NOMEM */
    if (r == NULL)
        return PRM_BAD_VALUE;
    *out = r;
    return PRM_FOUND;
}
