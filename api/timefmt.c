/*
 * timefmt.c - BitMEX timestamps and decimal numbers; the rules are in
 * timefmt.h.
 */
#include "api/timefmt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define MS_PER_MIN INT64_C(60000)
#define MS_PER_HOUR INT64_C(3600000)

const char *tf_err_name(enum tf_err e)
{
    switch (e) {
    case TF_OK: return "TF_OK";
    case TF_ERR_EMPTY: return "TF_ERR_EMPTY";
    case TF_ERR_SYNTAX: return "TF_ERR_SYNTAX";
    case TF_ERR_FIELD: return "TF_ERR_FIELD";
    case TF_ERR_RANGE: return "TF_ERR_RANGE";
    case TF_ERR_NOT_FINITE: return "TF_ERR_NOT_FINITE";
    case TF_ERR_PRECISION: return "TF_ERR_PRECISION";
    case TF_ERR_OVERFLOW: return "TF_ERR_OVERFLOW";
    case TF_ERR_FRACTION: return "TF_ERR_FRACTION";
    case TF_ERR_SCALE: return "TF_ERR_SCALE";
    case TF_ERR_BUFFER: return "TF_ERR_BUFFER";
    }
    return "TF_ERR_?";
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- civil dates ---------------------------------------------------------
 * The proleptic Gregorian calendar counted in 400-year eras of 146097 days,
 * with the year starting on 1 March so that the leap day is the last day of
 * the counted year. Floor division keeps it right for years before 1970
 * (needed transiently: "1969-12-31T23:30-01:00" is inside the range). */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t tf_days_from_civil(int year, int month, int day)
{
    int64_t y = (int64_t)year - (month <= 2 ? 1 : 0);
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t mp = month > 2 ? month - 3 : month + 9;                /* Mar = 0 */
    int64_t doy = (153 * mp + 2) / 5 + (int64_t)day - 1;           /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468; /* 719468 = days 0000-03-01 .. 1970-01-01 */
}

void tf_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
    *year = (int)y;
    *month = (int)m;
    *day = (int)d;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* ---- formatting ------------------------------------------------------------ */

static void put_num(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

enum tf_err tf_format_ms(ms_t ms, char *buf, size_t cap)
{
    if (buf == NULL || cap < TF_ISO_BUF)
        return TF_ERR_BUFFER;
    if (ms < 0 || ms > TF_MS_MAX)
        return TF_ERR_RANGE;
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    int y, mo, d;
    tf_civil_from_days(days, &y, &mo, &d);
    put_num(buf, y, 4);
    buf[4] = '-';
    put_num(buf + 5, mo, 2);
    buf[7] = '-';
    put_num(buf + 8, d, 2);
    buf[10] = 'T';
    put_num(buf + 11, rem / MS_PER_HOUR, 2);
    buf[13] = ':';
    put_num(buf + 14, rem / MS_PER_MIN % 60, 2);
    buf[16] = ':';
    put_num(buf + 17, rem / 1000 % 60, 2);
    buf[19] = '.';
    put_num(buf + 20, rem % 1000, 3);
    buf[23] = 'Z';
    buf[24] = '\0';
    return TF_OK;
}

/* ---- timestamp parsing ----------------------------------------------------- */

/* Two digits at s[0..1], or -1. */
static int two_digits(const char *s)
{
    if (!is_digit(s[0]) || !is_digit(s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static enum tf_err parse_epoch_ms(const char *s, size_t len, ms_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        v = v * 10 + (s[i] - '0');
        if (v > TF_MS_MAX)
            return TF_ERR_RANGE; /* stops before int64 could overflow */
    }
    *out = v;
    return TF_OK;
}

enum tf_err tf_parse_time(const char *s, size_t len, ms_t *out_ms)
{
    if (s == NULL || len == 0)
        return TF_ERR_EMPTY;

    bool all_digits = true;
    for (size_t i = 0; i < len && all_digits; i++)
        all_digits = is_digit(s[i]);
    if (all_digits)
        return parse_epoch_ms(s, len, out_ms);

    /* YYYY-MM-DD */
    if (len < 10 || s[4] != '-' || s[7] != '-')
        return TF_ERR_SYNTAX;
    int yh = two_digits(s), yl = two_digits(s + 2);
    int mo = two_digits(s + 5), d = two_digits(s + 8);
    if (yh < 0 || yl < 0 || mo < 0 || d < 0)
        return TF_ERR_SYNTAX;
    int y = yh * 100 + yl;
    int h = 0, mi = 0, sec = 0, frac_ms = 0;
    int off_sign = 0, off_h = 0, off_m = 0;

    size_t p = 10;
    if (p < len) {
        /* ?hh:mm */
        if (s[p] != 'T' && s[p] != ' ')
            return TF_ERR_SYNTAX;
        if (len - p < 6 || s[p + 3] != ':')
            return TF_ERR_SYNTAX;
        h = two_digits(s + p + 1);
        mi = two_digits(s + p + 4);
        if (h < 0 || mi < 0)
            return TF_ERR_SYNTAX;
        p += 6;
        /* :ss */
        if (p < len && s[p] == ':') {
            if (len - p < 3 || (sec = two_digits(s + p + 1)) < 0)
                return TF_ERR_SYNTAX;
            p += 3;
            /* .f... (1..9 digits, truncated to ms) */
            if (p < len && s[p] == '.') {
                p++;
                size_t start = p;
                while (p < len && is_digit(s[p])) {
                    if (p - start < 3)
                        frac_ms = frac_ms * 10 + (s[p] - '0');
                    p++;
                }
                size_t n = p - start;
                if (n == 0 || n > 9)
                    return TF_ERR_SYNTAX;
                for (size_t k = n; k < 3; k++)
                    frac_ms *= 10;
            }
        }
        /* zone */
        if (p < len) {
            if (s[p] == 'Z' || s[p] == 'z') {
                p++;
            } else if (s[p] == '+' || s[p] == '-' || s[p] == ' ') {
                off_sign = s[p] == '-' ? -1 : 1;
                p++;
                if (len - p < 2 || (off_h = two_digits(s + p)) < 0)
                    return TF_ERR_SYNTAX;
                p += 2;
                if (p < len) {
                    if (s[p] == ':')
                        p++;
                    if (len - p < 2 || (off_m = two_digits(s + p)) < 0)
                        return TF_ERR_SYNTAX;
                    p += 2;
                }
            } else {
                return TF_ERR_SYNTAX;
            }
        }
        if (p != len)
            return TF_ERR_SYNTAX;
    }

    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59 || off_h > 23 || off_m > 59)
        return TF_ERR_FIELD;

    int64_t ms = tf_days_from_civil(y, mo, d) * MS_PER_DAY + h * MS_PER_HOUR +
                 mi * MS_PER_MIN + sec * INT64_C(1000) + frac_ms;
    ms -= off_sign * (off_h * MS_PER_HOUR + off_m * MS_PER_MIN);
    if (ms < 0 || ms > TF_MS_MAX)
        return TF_ERR_RANGE;
    *out_ms = ms;
    return TF_OK;
}

/* ---- decimal numbers --------------------------------------------------------- */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool equals_nocase(const char *s, size_t len, const char *word)
{
    size_t i = 0;
    for (; i < len && word[i] != '\0'; i++)
        if (lower(s[i]) != word[i])
            return false;
    return i == len && word[i] == '\0';
}

static bool is_non_finite(const char *s, size_t len)
{
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        len--;
    }
    return equals_nocase(s, len, "nan") || equals_nocase(s, len, "inf") ||
           equals_nocase(s, len, "infinity");
}

/* Exponents are read saturating at this magnitude: far beyond anything that
 * can matter for an int64 result, far below int64 overflow when added to a
 * text length. */
#define EXP_SATURATE INT64_C(1000000000000000000)

enum tf_err tf_parse_fixed(const char *s, size_t len, int scale, int64_t *out)
{
    if (scale < 0 || scale > 18)
        return TF_ERR_SCALE;
    if (s == NULL || len == 0)
        return TF_ERR_EMPTY;
    if (is_non_finite(s, len))
        return TF_ERR_NOT_FINITE;

    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    size_t int_start = i;
    while (i < len && is_digit(s[i]))
        i++;
    size_t n_int = i - int_start;
    if (n_int == 0)
        return TF_ERR_SYNTAX;
    size_t frac_start = i, n_frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        frac_start = i;
        while (i < len && is_digit(s[i]))
            i++;
        n_frac = i - frac_start;
        if (n_frac == 0)
            return TF_ERR_SYNTAX;
    }
    int64_t exp = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        size_t es = i;
        while (i < len && is_digit(s[i])) {
            int d = s[i] - '0';
            exp = exp <= (EXP_SATURATE - d) / 10 ? exp * 10 + d : EXP_SATURATE;
            i++;
        }
        if (i == es)
            return TF_ERR_SYNTAX;
        if (eneg)
            exp = -exp;
    }
    if (i != len)
        return TF_ERR_SYNTAX;

    /* The digits, integer part then fraction, as one sequence 0..n-1. */
    size_t n = n_int + n_frac;
#define DIGIT(j) ((j) < n_int ? s[int_start + (j)] : s[frac_start + (j) - n_int])
    size_t first = n, last = 0;
    for (size_t j = 0; j < n; j++) {
        if (DIGIT(j) != '0') {
            if (first == n)
                first = j;
            last = j;
        }
    }
    if (first == n) {
        *out = 0; /* zero, whatever the exponent or the number of decimals */
        return TF_OK;
    }
    /* value = digits[first..last] * 10^k */
    int64_t trailing = (int64_t)(n - 1 - last);
    int64_t k = trailing + exp - (int64_t)n_frac + scale;
    if (k < 0)
        return TF_ERR_PRECISION;
    int64_t m = (int64_t)(last - first + 1);
    if (m + k > 19)
        return TF_ERR_OVERFLOW; /* >= 10^19 > 2^63 */
    uint64_t mag = 0;
    for (size_t j = first; j <= last; j++)
        mag = mag * 10 + (uint64_t)(DIGIT(j) - '0'); /* <= 19 digits: fits */
#undef DIGIT
    for (int64_t t = 0; t < k; t++) {
        if (mag > UINT64_MAX / 10)
            return TF_ERR_OVERFLOW;
        mag *= 10;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (mag > limit)
        return TF_ERR_OVERFLOW;
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return TF_OK;
}

enum tf_err tf_parse_qty(const char *s, size_t len, int64_t *out)
{
    enum tf_err e = tf_parse_fixed(s, len, 0, out);
    return e == TF_ERR_PRECISION ? TF_ERR_FRACTION : e;
}

enum tf_err tf_fixed_from_double(double value, int scale, int64_t *out)
{
    if (scale < 0 || scale > 18)
        return TF_ERR_SCALE;
    if (isnan(value) || isinf(value))
        return TF_ERR_NOT_FINITE;
    char buf[64];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, value);
        if (n <= 0 || (size_t)n >= sizeof buf)
            return TF_ERR_SYNTAX; /* cannot happen for a finite double */
        if (strtod(buf, NULL) == value)
            break; /* %.17g always round-trips, so the loop ends here at the latest */
    }
    return tf_parse_fixed(buf, (size_t)n, scale, out);
}
