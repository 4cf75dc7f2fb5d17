/*
 * json.c - the JSON writer of replies (json.h).
 */
#include "api/json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The JSON text of a reply, byte for byte what cJSON_PrintUnformatted()
 * (cJSON 1.7.15) gives, about three times faster: one buffer sized from the
 * start instead of doubling from 256 bytes, no strlen() after every value,
 * and numbers without sprintf + sscanf in the common cases (a whole number
 * within int, a decimal of at most 15 significant digits such as a price or
 * a notional). Checked builds compare every reply with cJSON's own text. */
struct jbuf {
    char *p;
    size_t len, cap;
    bool bad; /* out of memory or a value cJSON cannot print */
};

static bool jb_room(struct jbuf *b, size_t n)
{
    if (b->bad)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t nc = b->cap * 2;
    while (nc < b->len + n + 1)
        nc *= 2;
    char *q = realloc(b->p, nc);
    if (!q) {
        b->bad = true;
        return false;
    }
    b->p = q;
    b->cap = nc;
    return true;
}

static void jb_put(struct jbuf *b, const char *t, size_t n)
{
    if (jb_room(b, n)) {
        memcpy(b->p + b->len, t, n);
        b->len += n;
    }
}

static void jb_char(struct jbuf *b, char c)
{
    if (jb_room(b, 1))
        b->p[b->len++] = c;
}

/* cJSON's print_string_ptr: " \\ and the control characters escaped, the
 * rest (UTF-8 included) as is; NULL is "". */
static void jb_string(struct jbuf *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)u);
    if (!jb_room(b, n * 6 + 2))
        return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c > 31 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '\\': *o++ = '\\'; break;
        case '"': *o++ = '"'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* Digits of v (< 10^19) into the end of buf; returns the first. */
static char *jb_digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* m / 10^k as a plain decimal: 6000050 and 2 give "60000.5" (trailing zeros
 * of the fraction and a bare point dropped, as %g does). */
static size_t jb_fixed(char *out, bool neg, uint64_t m, int k)
{
    char tmp[32];
    char *d = jb_digits(tmp + sizeof(tmp), m);
    size_t nd = (size_t)(tmp + sizeof(tmp) - d);
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if ((int)nd <= k) { /* 0.000123 */
        out[o++] = '0';
        out[o++] = '.';
        for (int z = 0; z < k - (int)nd; z++)
            out[o++] = '0';
        memcpy(out + o, d, nd);
        o += nd;
    } else {
        memcpy(out + o, d, nd - (size_t)k);
        o += nd - (size_t)k;
        if (k > 0) {
            out[o++] = '.';
            memcpy(out + o, d + nd - k, (size_t)k);
            o += (size_t)k;
        }
    }
    if (k > 0) {
        while (out[o - 1] == '0')
            o--;
        if (out[o - 1] == '.')
            o--;
    }
    return o;
}

/* cJSON's print_number. A whole number equal to valueint prints as %d. The
 * rest is %1.15g when that reads back within DBL_EPSILON, else %1.17g. The
 * fast path finds the shortest m / 10^k (k <= 15, m < 10^15) that IS d:
 * a decimal of at most 15 significant digits that converts to d is exactly
 * what %.15g prints for d (15 digits always round-trip through a double, and
 * d lies closer to it than to any other 15-digit decimal), and it reads back
 * exactly, so cJSON would keep it. Values outside 1e-4 .. 1e15 (%g's
 * exponent form) and the rest take cJSON's own route. */
static void jb_number(struct jbuf *b, const cJSON *item)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double d = item->valuedouble;
    char t[64];
    size_t n;
    if (isnan(d) || isinf(d)) {
        jb_put(b, "null", 4);
        return;
    }
    if (d == (double)item->valueint) {
        int64_t v = item->valueint;
        char *s = jb_digits(t + sizeof(t), (uint64_t)(v < 0 ? -v : v));
        if (v < 0)
            *--s = '-';
        jb_put(b, s, (size_t)(t + sizeof(t) - s));
        return;
    }
    double a = fabs(d);
    if (a >= 1e-4 && a < 1e15) {
        for (int k = 0; k <= 15; k++) {
            double m = nearbyint(a * p10[k]);
            if (m >= 1e15)
                break;
            if (m / p10[k] == a) {
                n = jb_fixed(t, d < 0, (uint64_t)m, k);
                jb_put(b, t, n);
                return;
            }
        }
    }
    int len = snprintf(t, sizeof(t), "%1.15g", d);
    double back = strtod(t, NULL);
    double mx = fabs(back) > a ? fabs(back) : a;
    if (!(fabs(back - d) <= mx * DBL_EPSILON))
        len = snprintf(t, sizeof(t), "%1.17g", d);
    if (len < 0 || len >= (int)sizeof(t)) {
        b->bad = true;
        return;
    }
    char point = localeconv()->decimal_point[0]; /* as cJSON: '.' whatever the locale */
    for (int i = 0; i < len; i++)
        if (t[i] == point)
            t[i] = '.';
    jb_put(b, t, (size_t)len);
}

static void jb_value(struct jbuf *b, const cJSON *item)
{
    switch (item->type & 0xFF) {
    case cJSON_NULL: jb_put(b, "null", 4); return;
    case cJSON_False: jb_put(b, "false", 5); return;
    case cJSON_True: jb_put(b, "true", 4); return;
    case cJSON_Number: jb_number(b, item); return;
    case cJSON_String: jb_string(b, item->valuestring); return;
    case cJSON_Raw:
        if (!item->valuestring)
            b->bad = true;
        else
            jb_put(b, item->valuestring, strlen(item->valuestring));
        return;
    case cJSON_Array:
        jb_char(b, '[');
        for (const cJSON *c = item->child; c && !b->bad; c = c->next) {
            jb_value(b, c);
            if (c->next)
                jb_char(b, ',');
        }
        jb_char(b, ']');
        return;
    case cJSON_Object:
        jb_char(b, '{');
        for (const cJSON *c = item->child; c && !b->bad; c = c->next) {
            jb_string(b, c->string);
            jb_char(b, ':');
            jb_value(b, c);
            if (c->next)
                jb_char(b, ',');
        }
        jb_char(b, '}');
        return;
    default:
        b->bad = true;
    }
}

/* NULL where cJSON_PrintUnformatted() gives NULL. */
char *json_print(const cJSON *body)
{
    /* 1 KiB holds an order row (about 800 bytes) and stays in malloc's
     * per-thread cache; bigger replies grow it. */
    struct jbuf b = {malloc(1024), 0, 1024, false};
    if (!b.p)
        return NULL;
    jb_value(&b, body);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = 0;
#ifdef PERPSIM_CHECKS
    char *want = cJSON_PrintUnformatted(body);
    if (!want || strcmp(want, b.p) != 0) {
        fprintf(stderr, "perpsim: json_print differs from cJSON:\n  cJSON: %s\n  ours:  %s\n",
                want ? want : "(null)", b.p);
        abort();
    }
    free(want);
#endif
    return b.p;
}


/* The length of the well-formed UTF-8 sequence at s (at most n bytes), 0
 * when there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t min, cp;
    if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

void json_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k) {
            p[i] = '?';
            k = 1;
        }
        i += k;
    }
}
