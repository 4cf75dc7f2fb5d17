/*
 * query.c - BitMEX's generic table query and the row collector; the rules
 * are in query.h.
 *
 * q_parse checks everything once, so that a bad filter is a 400 before any
 * row is built: every filter key's value has an accepted form, every
 * timestamp.* value compiles (ts_compile), columns are strings. q_match
 * then reads the filter as it is (it is small; compiling it into a private
 * form would need fields q_opts does not have), compiling the few
 * timestamp.* values again per row; that costs a few comparisons.
 *
 * A timestamp filter value compiles to an inclusive range [lo, hi] over one
 * measure of the row's time t: t itself (exact time, day, month, year) or
 * one of its parts (day of week, day of month, millisecond of the day,
 * hour, minute of the hour, second of the minute).
 */
#include "api/query.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/params.h"
#include "api/timefmt.h"

/* Limits on what one query may ask; a request is already bounded in bytes
 * by the server, these bound the work per row (keys x list length). */
#define Q_FILTER_KEYS_MAX 64 /* the widest BitMEX row has about 90 fields */
#define Q_IN_LIST_MAX 1000   /* as many ids as one bulk cancel could name */
#define Q_COLUMNS_MAX 256

_Static_assert(Q_COUNT_DEFAULT >= 1 && Q_COUNT_DEFAULT <= Q_COUNT_MAX, "default count in range");

#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_MIN INT64_C(60000)
#define MS_PER_SEC INT64_C(1000)
#define DOUBLE_EXACT_MAX 9007199254740992.0 /* 2^53 */

const char *q_err_message(enum q_err e)
{
    switch (e) {
    case Q_OK: return "OK";
    case Q_BAD_COUNT: return "count is invalid";
    case Q_BAD_START: return "start is invalid";
    case Q_BAD_FILTER: return "filter values are not valid";
    case Q_BAD_COLUMNS: return "columns are not valid";
    case Q_BAD_START_TIME: return "startTime is invalid";
    case Q_BAD_END_TIME: return "endTime is invalid";
    case Q_BAD_REVERSE: return "reverse is invalid";
    case Q_NOMEM: return "Server Error";
    }
    return "Server Error";
}

/* ---- small readers ------------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* n digits at s as a number. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* An integer in any of the forms clients send: a JSON number with no
 * fraction within +-2^53, or a string of an optional '-' and 1..18 digits. */
static bool int_item(const cJSON *v, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || fabs(d) > DOUBLE_EXACT_MAX || d != trunc(d))
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return false;
    const char *s = v->valuestring;
    bool neg = *s == '-';
    if (neg)
        s++;
    size_t n = strlen(s);
    if (n == 0 || n > 18)
        return false;
    int64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        acc = acc * 10 + (s[i] - '0');
    }
    *out = neg ? -acc : acc;
    return true;
}

/* true/false, "true"/"false" (any case), as prm_bool reads them. */
static bool bool_item(const cJSON *v, bool *out)
{
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        if (strcasecmp(v->valuestring, "true") == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v->valuestring, "false") == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* A string holding exactly a JSON number (no white space), as a double. */
static bool num_text(const char *s, double *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!is_digit(*p))
        return false;
    while (is_digit(*p))
        p++;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return false;
        while (is_digit(*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return false;
        while (is_digit(*p))
            p++;
    }
    if (*p != '\0')
        return false;
    double d = strtod(s, NULL); /* the grammar above is a subset of strtod's */
    if (!isfinite(d))
        return false;
    *out = d;
    return true;
}

/* A point in time: epoch milliseconds as a JSON number, or any text
 * tf_parse_time reads (ISO-8601, "2014-12-26 11:00", a digit string of
 * epoch milliseconds). */
static bool time_item(const cJSON *v, ms_t *out)
{
    if (cJSON_IsNumber(v)) {
        int64_t ms;
        if (!int_item(v, &ms) || ms < 0 || ms > TF_MS_MAX)
            return false;
        *out = ms;
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL)
        return tf_parse_time(v->valuestring, strlen(v->valuestring), out) == TF_OK;
    return false;
}

/* ---- calendar pieces ------------------------------------------------------------ */

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* "YYYY-MM" (n == 7) or "YYYY-MM-DD" (n == 10); the day is 1 for the
 * first form. Years 1970..9999, fields in range. */
static bool parse_date(const char *s, size_t n, int *y, int *m, int *d)
{
    if ((n != 7 && n != 10) || strlen(s) != n)
        return false;
    if (!digits(s, 4, y) || s[4] != '-' || !digits(s + 5, 2, m))
        return false;
    *d = 1;
    if (n == 10 && (s[7] != '-' || !digits(s + 8, 2, d)))
        return false;
    return *y >= 1970 && *y <= 9999 && *m >= 1 && *m <= 12 && *d >= 1 &&
           *d <= month_days(*y, *m);
}

/* A time of day "hh:mm", "hh:mm:ss" or "hh:mm:ss.f" (1..9 fraction digits,
 * truncated to milliseconds as tf_parse_time does). *parts is 2 or 3, and
 * *frac whether a fraction was given. */
static bool parse_tod(const char *s, int64_t *ms, int *parts, bool *frac)
{
    int hh, mm, ss = 0, msec = 0;
    if (!digits(s, 2, &hh) || s[2] != ':' || !digits(s + 3, 2, &mm))
        return false;
    s += 5;
    *parts = 2;
    *frac = false;
    if (*s == ':') {
        if (!digits(s + 1, 2, &ss))
            return false;
        s += 3;
        *parts = 3;
        if (*s == '.') {
            s++;
            int n = 0;
            while (is_digit(s[n]) && n < 9) {
                if (n < 3)
                    msec = msec * 10 + (s[n] - '0');
                n++;
            }
            if (n == 0)
                return false;
            for (int i = n; i < 3; i++)
                msec *= 10;
            s += n;
            *frac = true;
        }
    }
    if (*s != '\0' || hh > 23 || mm > 59 || ss > 59)
        return false;
    *ms = hh * MS_PER_HOUR + mm * MS_PER_MIN + ss * MS_PER_SEC + msec;
    return true;
}

/* ---- timestamp filters ------------------------------------------------------------ */

enum ts_measure {
    TS_INSTANT,    /* t, epoch ms */
    TS_WEEKDAY,    /* 0 = Saturday .. 6 = Friday, BitMEX's numbering */
    TS_MONTHDAY,   /* 1..31 */
    TS_MS_OF_DAY,  /* 0..86399999 */
    TS_HOUR,       /* 0..23 */
    TS_MIN_OF_HR,  /* 0..59 */
    TS_SEC_OF_MIN, /* 0..59 */
};

enum ts_key {
    TK_EXACT, /* "timestamp" */
    TK_DATE,
    TK_MONTH,
    TK_YEAR,
    TK_DD,
    TK_WW,
    TK_TIME,
    TK_SECOND,
    TK_MINUTE,
    TK_HH,
    TK_UU,
    TK_SS,
};

static const struct {
    const char *name;
    enum ts_key key;
} TS_KEYS[] = {
    {"timestamp", TK_EXACT},          {"timestamp.date", TK_DATE},
    {"timestamp.month", TK_MONTH},    {"timestamp.year", TK_YEAR},
    {"timestamp.dd", TK_DD},          {"timestamp.ww", TK_WW},
    {"timestamp.time", TK_TIME},      {"timestamp.second", TK_SECOND},
    {"timestamp.minute", TK_MINUTE},  {"timestamp.hh", TK_HH},
    {"timestamp.uu", TK_UU},          {"timestamp.ss", TK_SS},
};

struct ts_test {
    enum ts_measure m;
    int64_t lo, hi; /* inclusive */
};

/* The index into TS_KEYS, -1 for a "timestamp.*" name not there, -2 for a
 * name that is not a timestamp filter at all. */
static int ts_find(const char *name)
{
    for (size_t i = 0; i < sizeof TS_KEYS / sizeof TS_KEYS[0]; i++)
        if (strcmp(name, TS_KEYS[i].name) == 0)
            return (int)i;
    return strncmp(name, "timestamp.", 10) == 0 ? -1 : -2;
}

static ms_t day_ms(int y, int m, int d)
{
    return tf_days_from_civil(y, m, d) * MS_PER_DAY;
}

static bool int_in(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    return int_item(v, out) && *out >= lo && *out <= hi;
}

/* A part of the time (hour, weekday...) equal to one integer in lo..hi. */
static bool part_test(const cJSON *v, enum ts_measure m, int64_t lo, int64_t hi, struct ts_test *t)
{
    int64_t x;
    if (!int_in(v, lo, hi, &x))
        return false;
    t->m = m;
    t->lo = x;
    t->hi = x;
    return true;
}

/* Compiles one scalar value of a timestamp filter key. */
static bool ts_compile(enum ts_key k, const cJSON *v, struct ts_test *t)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    size_t n = s != NULL ? strlen(s) : 0;
    int y, mo, d, parts;
    bool frac;
    int64_t x;
    switch (k) {
    case TK_EXACT:
        t->m = TS_INSTANT;
        if (s != NULL && n == 10 && parse_date(s, n, &y, &mo, &d)) {
            t->lo = day_ms(y, mo, d); /* a bare date: the whole day */
            t->hi = t->lo + MS_PER_DAY - 1;
            return true;
        }
        if (!time_item(v, &t->lo))
            return false;
        t->hi = t->lo;
        return true;
    case TK_DATE:
    case TK_MONTH:
        if (s == NULL || !parse_date(s, k == TK_DATE ? 10 : 7, &y, &mo, &d))
            return false;
        t->m = TS_INSTANT;
        t->lo = day_ms(y, mo, d);
        t->hi = t->lo + (k == TK_DATE ? 1 : month_days(y, mo)) * MS_PER_DAY - 1;
        return true;
    case TK_YEAR:
        if (!int_in(v, 1970, 9999, &x))
            return false;
        t->m = TS_INSTANT;
        t->lo = day_ms((int)x, 1, 1);
        t->hi = day_ms((int)x, 12, 31) + MS_PER_DAY - 1;
        return true;
    case TK_DD: return part_test(v, TS_MONTHDAY, 1, 31, t);
    case TK_WW: return part_test(v, TS_WEEKDAY, 0, 6, t);
    case TK_HH: return part_test(v, TS_HOUR, 0, 23, t);
    case TK_UU: return part_test(v, TS_MIN_OF_HR, 0, 59, t);
    case TK_SS: return part_test(v, TS_SEC_OF_MIN, 0, 59, t);
    case TK_TIME:
    case TK_SECOND:
    case TK_MINUTE:
        if (s == NULL || !parse_tod(s, &x, &parts, &frac))
            return false;
        t->m = TS_MS_OF_DAY;
        t->lo = x;
        if (k == TK_TIME) {
            t->hi = x;
        } else if (k == TK_SECOND) {
            if (parts != 3 || frac)
                return false;
            t->hi = x + MS_PER_SEC - 1;
        } else {
            if (parts != 2)
                return false;
            t->hi = x + MS_PER_MIN - 1;
        }
        return true;
    }
    return false;
}

static bool ts_eval(const struct ts_test *t, ms_t ms)
{
    int64_t x;
    if (t->m == TS_INSTANT) {
        x = ms;
    } else {
        if (ms < 0)
            return false; /* no calendar before the epoch here */
        int64_t days = ms / MS_PER_DAY, in_day = ms % MS_PER_DAY;
        int y, mo, d;
        switch (t->m) {
        case TS_WEEKDAY: x = (days + 5) % 7; break; /* 1970-01-01 was a Thursday: 5 */
        case TS_MONTHDAY:
            tf_civil_from_days(days, &y, &mo, &d);
            x = d;
            break;
        case TS_MS_OF_DAY: x = in_day; break;
        case TS_HOUR: x = in_day / MS_PER_HOUR; break;
        case TS_MIN_OF_HR: x = in_day / MS_PER_MIN % 60; break;
        case TS_SEC_OF_MIN: x = in_day / MS_PER_SEC % 60; break;
        default: return false;
        }
    }
    return x >= t->lo && x <= t->hi;
}

/* A timestamp key's value (a scalar or an IN list) against t. */
static bool ts_match(enum ts_key k, const cJSON *v, ms_t t)
{
    struct ts_test tt;
    if (!cJSON_IsArray(v))
        return ts_compile(k, v, &tt) && ts_eval(&tt, t);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (ts_compile(k, e, &tt) && ts_eval(&tt, t))
            return true;
    }
    return false;
}

/* ---- equality filters ----------------------------------------------------------- */

static bool is_scalar(const cJSON *v)
{
    return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v);
}

/* Filter value f against row value r, in either order of JSON types. */
static bool scalar_eq(const cJSON *f, const cJSON *r)
{
    double d;
    bool b;
    if (cJSON_IsString(f) && cJSON_IsString(r))
        return strcmp(f->valuestring, r->valuestring) == 0;
    if (cJSON_IsNumber(f) && cJSON_IsNumber(r))
        return f->valuedouble == r->valuedouble;
    if (cJSON_IsNumber(f) && cJSON_IsString(r))
        return num_text(r->valuestring, &d) && d == f->valuedouble;
    if (cJSON_IsString(f) && cJSON_IsNumber(r))
        return num_text(f->valuestring, &d) && d == r->valuedouble;
    if (cJSON_IsBool(f) && cJSON_IsBool(r))
        return cJSON_IsTrue(f) == cJSON_IsTrue(r);
    if (cJSON_IsBool(f) && cJSON_IsString(r))
        return bool_item(r, &b) && b == (bool)cJSON_IsTrue(f);
    if (cJSON_IsString(f) && cJSON_IsBool(r))
        return bool_item(f, &b) && b == (bool)cJSON_IsTrue(r);
    return cJSON_IsNull(f) && cJSON_IsNull(r);
}

static bool value_match(const cJSON *f, const cJSON *r)
{
    if (r == NULL)
        return false; /* a row without the field does not match */
    if (!cJSON_IsArray(f))
        return scalar_eq(f, r);
    const cJSON *e;
    cJSON_ArrayForEach(e, f) {
        if (scalar_eq(e, r))
            return true;
    }
    return false;
}

/* BitMEX's open order states (query.h). */
static bool status_open(const char *s)
{
    static const char *const open[] = {"New",        "PartiallyFilled", "Untriggered",
                                       "Triggered",  "PendingNew",      "PendingCancel"};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        if (strcmp(s, open[i]) == 0)
            return true;
    return false;
}

/* "open": b or "ordStatus.isTerminated": !b. A row without a string
 * ordStatus matches neither. */
static bool open_match(const cJSON *row, bool want_open)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(row, "ordStatus");
    if (!cJSON_IsString(st) || st->valuestring == NULL)
        return false;
    return status_open(st->valuestring) == want_open;
}

/* ---- one filter key ---------------------------------------------------------------- */

enum key_kind { KEY_BOUND, KEY_TS, KEY_OPEN, KEY_TERMINATED, KEY_EQ };

/* "open" is the ordStatus test only with a boolean value: TradeBin rows
 * have a numeric "open" column, and {"open": 35000} compares with it. */
static enum key_kind key_kind(const char *name, const cJSON *v, int *ts)
{
    bool b;
    if (strcmp(name, "startTime") == 0 || strcmp(name, "endTime") == 0)
        return KEY_BOUND;
    if (strcmp(name, "open") == 0 && bool_item(v, &b))
        return KEY_OPEN;
    if (strcmp(name, "ordStatus.isTerminated") == 0)
        return KEY_TERMINATED;
    *ts = ts_find(name);
    return *ts == -2 ? KEY_EQ : KEY_TS;
}

static bool key_match(const cJSON *f, const cJSON *row, ms_t t)
{
    int ts = -2;
    bool b = false;
    switch (key_kind(f->string, f, &ts)) {
    case KEY_BOUND: return true; /* folded into the time bounds by q_parse */
    case KEY_TS: return ts >= 0 && ts_match(TS_KEYS[ts].key, f, t);
    case KEY_OPEN: return bool_item(f, &b) && open_match(row, b);
    case KEY_TERMINATED: return bool_item(f, &b) && open_match(row, !b);
    case KEY_EQ: return value_match(f, cJSON_GetObjectItemCaseSensitive(row, f->string));
    }
    return false;
}

/* Checks one filter key at parse time; folds startTime/endTime into o. */
static enum q_err key_check(const cJSON *f, struct q_opts *o)
{
    int ts = -2;
    bool b;
    ms_t ms;
    struct ts_test tt;
    const cJSON *e;
    switch (key_kind(f->string, f, &ts)) {
    case KEY_BOUND:
        if (f->string[0] == 's') {
            if (!time_item(f, &ms))
                return Q_BAD_START_TIME;
            if (!o->has_start || ms > o->start_ms)
                o->start_ms = ms;
            o->has_start = true;
        } else {
            if (!time_item(f, &ms))
                return Q_BAD_END_TIME;
            if (!o->has_end || ms < o->end_ms)
                o->end_ms = ms;
            o->has_end = true;
        }
        return Q_OK;
    case KEY_OPEN: return Q_OK;
    case KEY_TERMINATED: return bool_item(f, &b) ? Q_OK : Q_BAD_FILTER;
    case KEY_TS:
        if (ts < 0)
            return Q_BAD_FILTER; /* an unknown timestamp.* key */
        if (!cJSON_IsArray(f))
            return ts_compile(TS_KEYS[ts].key, f, &tt) ? Q_OK : Q_BAD_FILTER;
        if (cJSON_GetArraySize(f) > Q_IN_LIST_MAX)
            return Q_BAD_FILTER;
        cJSON_ArrayForEach(e, f) {
            if (!ts_compile(TS_KEYS[ts].key, e, &tt))
                return Q_BAD_FILTER;
        }
        return Q_OK;
    case KEY_EQ:
        if (is_scalar(f))
            return Q_OK;
        if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) > Q_IN_LIST_MAX)
            return Q_BAD_FILTER;
        cJSON_ArrayForEach(e, f) {
            if (!is_scalar(e))
                return Q_BAD_FILTER;
        }
        return Q_OK;
    }
    return Q_BAD_FILTER;
}

/* ---- parsing the parameters ------------------------------------------------------ */

/* Absent, JSON null or "" (a hand-written "?count=&filter=") all mean the
 * parameter was not given. */
static bool given(const cJSON *params, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (v == NULL || cJSON_IsNull(v))
        return false;
    return !(cJSON_IsString(v) && v->valuestring != NULL && v->valuestring[0] == '\0');
}

static enum q_err parse_filter(const cJSON *params, struct q_opts *o)
{
    if (!given(params, "filter"))
        return Q_OK;
    cJSON *f = NULL;
    enum prm_get g = prm_json(params, "filter", &f);
    if (g != PRM_FOUND)
        return Q_BAD_FILTER;
    o->filter = f; /* owned by o from here; q_parse frees it on error */
    if (!cJSON_IsObject(f) || cJSON_GetArraySize(f) > Q_FILTER_KEYS_MAX)
        return Q_BAD_FILTER;
    const cJSON *k;
    cJSON_ArrayForEach(k, f) {
        enum q_err e = key_check(k, o);
        if (e != Q_OK)
            return e;
    }
    return Q_OK;
}

/* "price, size" (a plain comma-separated string) as an array of names. */
static enum q_err columns_from_list(const char *s, cJSON **out)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return Q_NOMEM;
    while (true) {
        const char *end = s + strcspn(s, ",");
        const char *a = s, *b = end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        /* a name with JSON punctuation is a mangled JSON text, not a name */
        size_t n = (size_t)(b - a);
        bool odd = false;
        for (size_t i = 0; i < n; i++)
            odd = odd || strchr("{}[]\"", a[i]) != NULL;
        if (a == b || odd || cJSON_GetArraySize(arr) >= Q_COLUMNS_MAX) {
            cJSON_Delete(arr);
            return Q_BAD_COLUMNS;
        }
        char *name = malloc(n + 1);
        cJSON *item = NULL;
        if (name != NULL) {
            memcpy(name, a, n);
            name[n] = '\0';
            item = cJSON_CreateString(name);
            free(name);
        }
        if (item == NULL || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            cJSON_Delete(arr);
            return Q_NOMEM;
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }
    *out = arr;
    return Q_OK;
}

static enum q_err parse_columns(const cJSON *params, struct q_opts *o)
{
    if (!given(params, "columns"))
        return Q_OK;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "columns");
    cJSON *arr = NULL;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (is_space(*s))
            s++;
        if (*s != '[') {
            enum q_err e = columns_from_list(s, &arr);
            if (e != Q_OK)
                return e;
        } else if (prm_json(params, "columns", &arr) != PRM_FOUND) {
            return Q_BAD_COLUMNS;
        }
    } else if (cJSON_IsArray(v)) {
        arr = cJSON_Duplicate(v, true);
        if (arr == NULL)
            return Q_NOMEM;
    } else {
        return Q_BAD_COLUMNS;
    }
    o->columns = arr;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > Q_COLUMNS_MAX)
        return Q_BAD_COLUMNS;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsString(e) || e->valuestring == NULL || e->valuestring[0] == '\0')
            return Q_BAD_COLUMNS;
    }
    if (arr->child == NULL) { /* [] asks for no projection: every column */
        cJSON_Delete(arr);
        o->columns = NULL;
    }
    return Q_OK;
}

/* startTime / endTime parameters, intersected with any bound the filter
 * already gave (the later start, the earlier end). */
static enum q_err parse_bound(const cJSON *params, const char *name, bool is_start,
                              struct q_opts *o)
{
    if (!given(params, name))
        return Q_OK;
    ms_t ms;
    if (!time_item(cJSON_GetObjectItemCaseSensitive(params, name), &ms))
        return is_start ? Q_BAD_START_TIME : Q_BAD_END_TIME;
    if (is_start) {
        if (!o->has_start || ms > o->start_ms)
            o->start_ms = ms;
        o->has_start = true;
    } else {
        if (!o->has_end || ms < o->end_ms)
            o->end_ms = ms;
        o->has_end = true;
    }
    return Q_OK;
}

static enum q_err parse_all(const cJSON *params, const struct q_spec *spec, struct q_opts *o)
{
    int64_t count_max = spec != NULL && spec->count_max > 0 ? spec->count_max : Q_COUNT_MAX;
    int64_t x;
    bool b;

    o->count = spec != NULL && spec->count_default > 0 ? spec->count_default : Q_COUNT_DEFAULT;
    if (o->count > count_max)
        o->count = count_max;
    o->reverse = spec != NULL && spec->reverse_default;
    o->keys = spec != NULL ? spec->keys : NULL;

    if (given(params, "count")) {
        if (prm_int(params, "count", &x) != PRM_FOUND || x < 1 || x > count_max)
            return Q_BAD_COUNT;
        o->count = x;
    }
    if (given(params, "start")) {
        if (prm_int(params, "start", &x) != PRM_FOUND || x < 0)
            return Q_BAD_START;
        o->start = x;
    }
    if (given(params, "reverse")) {
        if (prm_bool(params, "reverse", &b) != PRM_FOUND)
            return Q_BAD_REVERSE;
        o->reverse = b;
    }
    enum q_err e = parse_filter(params, o);
    if (e == Q_OK)
        e = parse_columns(params, o);
    if (e == Q_OK)
        e = parse_bound(params, "startTime", true, o);
    if (e == Q_OK)
        e = parse_bound(params, "endTime", false, o);
    return e;
}

enum q_err q_parse(const cJSON *params, const struct q_spec *spec, struct q_opts *out)
{
    memset(out, 0, sizeof *out);
    enum q_err e = parse_all(params, spec, out);
    if (e != Q_OK) {
        q_free(out);
        memset(out, 0, sizeof *out);
    }
    return e;
}

void q_free(struct q_opts *o)
{
    if (o == NULL)
        return;
    cJSON_Delete(o->filter);
    cJSON_Delete(o->columns);
    o->filter = NULL;
    o->columns = NULL;
}

/* ---- matching and collecting ------------------------------------------------------ */

bool q_time_ok(const struct q_opts *o, ms_t t)
{
    return (!o->has_start || t >= o->start_ms) && (!o->has_end || t <= o->end_ms);
}

bool q_match(const struct q_opts *o, const cJSON *row, ms_t t)
{
    if (!q_time_ok(o, t))
        return false;
    if (o->filter == NULL)
        return true;
    const cJSON *f;
    cJSON_ArrayForEach(f, o->filter) {
        if (!key_match(f, row, t))
            return false;
    }
    return true;
}

static bool name_in(const char *name, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(name, *list) == 0)
            return true;
    return false;
}

static bool name_in_array(const char *name, const cJSON *arr)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (strcmp(name, e->valuestring) == 0)
            return true;
    }
    return false;
}

/* Keeps the key columns and the asked-for ones; deletes the rest. */
static void project(const struct q_opts *o, cJSON *row)
{
    if (o->columns == NULL)
        return;
    cJSON *c = row->child;
    while (c != NULL) {
        cJSON *next = c->next;
        if (c->string == NULL || (!name_in(c->string, o->keys) && !name_in_array(c->string, o->columns)))
            cJSON_Delete(cJSON_DetachItemViaPointer(row, c));
        c = next;
    }
}

bool q_collect_init(struct q_collect *c, const struct q_opts *o)
{
    c->o = o;
    c->skipped = 0;
    c->taken = 0;
    c->out = cJSON_CreateArray();
    return c->out != NULL;
}

/* time bounds -> filter -> start -> count -> columns (query.h). A NULL row
 * (the caller could not build it) is passed over. */
bool q_offer(struct q_collect *c, cJSON *row, ms_t t)
{
    const struct q_opts *o = c->o;
    if (c->out == NULL || c->taken >= o->count) {
        cJSON_Delete(row);
        return false;
    }
    if (row == NULL)
        return true;
    if (!q_match(o, row, t)) {
        cJSON_Delete(row);
        return true;
    }
    if (c->skipped < o->start) {
        c->skipped++;
        cJSON_Delete(row);
        return true;
    }
    project(o, row);
    if (!cJSON_AddItemToArray(c->out, row)) {
        cJSON_Delete(row);
        return true;
    }
    c->taken++;
    return c->taken < o->count;
}

cJSON *q_collect_done(struct q_collect *c)
{
    cJSON *out = c->out;
    c->out = NULL;
    return out;
}
