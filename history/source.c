/*
 * source.c - BitMEX dumps and Tardis CSV read as one time-ordered stream of
 * rows (source.h).
 *
 * Each file is read through zlib in big blocks and cut into lines here; a
 * line is split at its commas in place and its fields parsed straight into
 * the file's row read ahead. The files' rows ahead are merged by a binary
 * heap keyed (time, kind, file). A file is read one row further only when
 * the row it had ahead has been handed out, so a malformed line or a
 * damaged stream is met at the point of the merge where it matters: every
 * row before it in the stream's order has already been handed out.
 *
 * Choices the header leaves open:
 *  - A line longer than HS_LINE_MAX bytes is malformed (the rest of it is
 *    read and dropped). An empty line is malformed unless only empty lines
 *    follow it to the end of the file. A UTF-8 byte order mark before the
 *    header is allowed. A field is never quoted.
 *  - Every column is counted, but only those a row needs are read; of the
 *    others only Tardis's local_timestamp (digits) and exchange (not empty)
 *    are checked. A symbol is 1..HSOURCE_SYMBOL_MAX printable ASCII bytes.
 *  - A quote side is both fields empty (no orders) or a price > 0 and a
 *    size >= 0; a size of 0 with a price is a side without orders too (its
 *    price then 0). A crossed quote is not refused.
 *  - Funding rates are read exactly as decimals and rounded to the nearest
 *    1e-8, halves away from zero; open interest is a whole number >= 0;
 *    ticker prices are > 0 and exact at 1e-8.
 *  - Rows before from_us still set the time the next row must not go
 *    before. A file stops being read at its first row at or after to_us
 *    (its later rows cannot be earlier), so outside counts the rows before
 *    from_us and one row per file at or after to_us, and lines after that
 *    are never checked.
 */
#include "history/source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "api/timefmt.h"
#include "engine/engine.h"

#define HS_LINE_MAX 4096              /* longer lines are malformed */
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)
#define READ_BLOCK (256u << 10)       /* asked of gzread at a time */
#define GZ_BUFFER (256u << 10)        /* zlib's own input buffer */
#define BUF_CAP (READ_BLOCK + HS_LINE_MAX + 1)
#define FIELDS_MAX 12                 /* kept of a line (the widest format has 11) */
#define ERR_CAP 4352                  /* a path and a reason */
#define WHY_CAP 160
#define US_MAX INT64_C(253402300799999999) /* 9999-12-31T23:59:59.999999Z */
#define US_PER_S INT64_C(1000000)

struct fld {
    const char *p;
    size_t n;
};

struct hfile {
    gzFile gz;                  /* NULL once the file is done */
    char *path;
    enum hformat fmt;
    uint32_t nfields;           /* a row's field count: the header's */
    uint32_t tie;               /* kind priority << 8 | file index: the merge's tie-break */
    char *buf;                  /* BUF_CAP bytes; unread bytes are buf[pos, end) */
    size_t pos, end;
    bool eof;                   /* gzread has given everything */
    bool done;                  /* no more rows */
    uint64_t line;              /* lines read so far */
    int64_t last_ts;            /* the last good row's time (INT64_MIN: none yet) */
    uint64_t size, bytes_in;
    struct hrow row;            /* the row read ahead */
};

struct hsource {
    struct hsource_opts o;
    uint32_t n;
    struct hfile *files;
    uint32_t heap[HSOURCE_FILES_MAX]; /* files with a row ahead, by (ts, tie) */
    uint32_t nheap;
    bool primed;                /* every file has been read to its first row */
    bool refill;                /* the top's row has been handed out */
    bool failed;
    struct hsource_stats st;
    char err[ERR_CAP];          /* the failure, told again on every later call */
};

static void put_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- times -------------------------------------------------------------------- */

static int two_digits(const char *s)
{
    if (!is_digit(s[0]) || !is_digit(s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
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

int hsource_parse_dump_time(const char *s, size_t len, int64_t *out_us)
{
    if (s == NULL || len < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'D' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int yh = two_digits(s), yl = two_digits(s + 2), mo = two_digits(s + 5), d = two_digits(s + 8);
    int h = two_digits(s + 11), mi = two_digits(s + 14), sec = two_digits(s + 17);
    if (yh < 0 || yl < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return -1;
    int y = yh * 100 + yl;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return -1;
    int64_t frac = 0;
    if (len > 19) {
        /* .f... : 1 to 9 digits, truncated to the microsecond */
        size_t nd = len - 20;
        if (s[19] != '.' || nd < 1 || nd > 9)
            return -1;
        for (size_t i = 0; i < nd; i++) {
            if (!is_digit(s[20 + i]))
                return -1;
            if (i < 6)
                frac = frac * 10 + (s[20 + i] - '0');
        }
        for (size_t i = nd; i < 6; i++)
            frac *= 10;
    }
    int64_t secs = tf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    *out_us = secs * US_PER_S + frac;
    return 0;
}

/* Tardis's time: microseconds since the epoch, digits only. */
static bool get_us(struct fld v, int64_t *out)
{
    if (v.n == 0 || v.n > 18)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (!is_digit(v.p[i]))
            return false;
        x = x * 10 + (v.p[i] - '0'); /* 18 digits cannot overflow */
    }
    if (x > US_MAX)
        return false;
    *out = x;
    return true;
}

/* ---- numbers ------------------------------------------------------------------ */

/* value * 10^scale for the common form "digits[.digits]" when it is
 * exact and fits without a check (integer digits + scale <= 18); false for
 * anything else, which tf_parse_fixed then reads (the reference: for what
 * this takes, the two agree). tf_parse_fixed is general and three times
 * slower, and a row has up to four numbers. */
static bool fast_fixed(const char *s, size_t n, int scale, int64_t *out)
{
    size_t i = 0, most = 18 - (size_t)scale; /* integer digits */
    int64_t v = 0;
    while (i < n && is_digit(s[i])) {
        if (i == most)
            return false;
        v = v * 10 + (s[i++] - '0');
    }
    if (i == 0)
        return false;
    int frac = 0;
    if (i < n) {
        if (s[i] != '.')
            return false;
        size_t fs = ++i;
        while (i < n && is_digit(s[i]) && i - fs < (size_t)scale)
            v = v * 10 + (s[i++] - '0');
        frac = (int)(i - fs);
        if (frac == 0 || i != n)
            return false;
    }
    for (int k = frac; k < scale; k++)
        v *= 10;
    *out = v;
    return true;
}

static bool get_px(struct fld v, px_t *out)
{
    int64_t x;
    if (!fast_fixed(v.p, v.n, 8, &x) && tf_parse_fixed(v.p, v.n, 8, &x) != TF_OK)
        return false;
    if (x <= 0)
        return false;
    *out = x;
    return true;
}

static bool get_qty(struct fld v, qty_t *out, int64_t least)
{
    int64_t x;
    if (!fast_fixed(v.p, v.n, 0, &x) && tf_parse_qty(v.p, v.n, &x) != TF_OK)
        return false;
    if (x < least)
        return false;
    *out = x;
    return true;
}

/* Exponents are read saturating here: far past anything that can matter,
 * far from overflowing when combined with a field's length. */
#define EXP_SATURATE INT64_C(1000000000)

/* A decimal number (tf_parse_fixed's grammar) times 1e8, rounded to the
 * nearest, halves away from zero. Read exactly, digit by digit: no double
 * in between, so "0.000123456789" is 12346 and "1e-05" 1000. */
static bool get_e8_rounded(struct fld v, int64_t *out)
{
    const char *s = v.p;
    size_t n = v.n, i = 0;
    bool neg = false;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    while (i < n && is_digit(s[i]))
        i++;
    size_t n_int = i - int_start;
    if (n_int == 0)
        return false;
    size_t frac_start = i, n_frac = 0;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        n_frac = i - frac_start;
        if (n_frac == 0)
            return false;
    }
    int64_t exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        size_t es = i;
        while (i < n && is_digit(s[i])) {
            if (exp < EXP_SATURATE)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (i == es)
            return false;
        if (eneg)
            exp = -exp;
    }
    if (i != n)
        return false;

    /* The digits D (integer part, then fraction) as one sequence 0..nd-1:
     * the value times 1e8 is D * 10^k. */
    size_t nd = n_int + n_frac;
#define DIGIT(j) ((j) < n_int ? s[int_start + (j)] : s[frac_start + (j) - n_int])
    int64_t k = exp - (int64_t)n_frac + 8;
    int64_t keep = (int64_t)nd + (k < 0 ? k : 0); /* digits left of the point */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t mag = 0;
    for (int64_t j = 0; j < keep; j++) {
        unsigned d = (unsigned)(DIGIT((size_t)j) - '0');
        if (mag > (limit - d) / 10)
            return false;
        mag = mag * 10 + d;
    }
    if (k < 0) {
        if (keep >= 0 && DIGIT((size_t)keep) >= '5') { /* keep < nd here */
            if (mag == limit)
                return false;
            mag++;
        }
    } else {
        for (int64_t t = 0; t < k && mag != 0; t++) {
            if (mag > limit / 10)
                return false;
            mag *= 10;
        }
    }
#undef DIGIT
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return true;
}

/* ---- reasons ------------------------------------------------------------------ */

/* v made printable in out (cap bytes), cut short with "..." when it does
 * not fit. */
static const char *printable(char *out, size_t cap, struct fld v)
{
    size_t m = v.n < cap - 4 ? v.n : cap - 4;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)v.p[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    memcpy(out + m, v.n > m ? "..." : "", v.n > m ? 4 : 1);
    return out;
}

/* "bad NAME \"VALUE\"" ("empty NAME" for an empty field) in why. */
static const char *bad(char *why, const char *name, struct fld v)
{
    char text[36];
    if (v.n == 0)
        snprintf(why, WHY_CAP, "empty %s", name);
    else
        snprintf(why, WHY_CAP, "bad %s \"%s\"", name, printable(text, sizeof(text), v));
    return why;
}

/* ---- fields ------------------------------------------------------------------- */

/* Splits a line at its commas: the number of fields, all counted, the first
 * FIELDS_MAX kept. */
static uint32_t split(const char *p, size_t n, struct fld *f)
{
    const char *end = p + n;
    uint32_t k = 0;
    for (;;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (k < FIELDS_MAX)
            f[k] = (struct fld){p, (size_t)(e - p)};
        k++;
        if (c == NULL)
            return k;
        p = c + 1;
    }
}

static bool field_is(struct fld v, const char *word, size_t len)
{
    return v.n == len && memcmp(v.p, word, len) == 0;
}

static const char *get_symbol(struct hrow *r, struct fld v, char *why)
{
    if (v.n > HSOURCE_SYMBOL_MAX) {
        snprintf(why, WHY_CAP, "symbol longer than %d characters", HSOURCE_SYMBOL_MAX);
        return why;
    }
    if (v.n == 0)
        return "empty symbol";
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c <= ' ' || c >= 0x7f)
            return bad(why, "symbol", v);
    }
    memcpy(r->symbol, v.p, v.n);
    r->symbol[v.n] = '\0';
    return NULL;
}

/* One side of a quote: no size and no price (no orders), or a price > 0
 * and a size >= 0 (0: no orders, the price then 0). */
static const char *get_quote_side(struct fld size, struct fld price, const char *size_name,
                                  const char *price_name, qty_t *qs, px_t *qp, char *why)
{
    if (size.n == 0 && price.n == 0)
        return NULL;
    qty_t q;
    px_t p;
    if (!get_qty(size, &q, 0))
        return bad(why, size_name, size);
    if (!get_px(price, &p))
        return bad(why, price_name, price);
    if (q > 0) {
        *qs = q;
        *qp = p;
    }
    return NULL;
}

/* Tardis's first four columns: exchange, symbol, timestamp, local_timestamp. */
static const char *tardis_head(struct hrow *r, const struct fld *f, char *why)
{
    if (f[0].n == 0)
        return "empty exchange";
    const char *w = get_symbol(r, f[1], why);
    if (w)
        return w;
    if (!get_us(f[2], &r->ts_us))
        return bad(why, "timestamp", f[2]);
    int64_t local;
    if (!get_us(f[3], &local))
        return bad(why, "local_timestamp", f[3]);
    return NULL;
}

/* ---- rows --------------------------------------------------------------------- */

static const char *parse_bitmex_trade(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_TRADE;
    if (hsource_parse_dump_time(f[0].p, f[0].n, &r->ts_us) != 0)
        return bad(why, "timestamp", f[0]);
    const char *w = get_symbol(r, f[1], why);
    if (w)
        return w;
    if (field_is(f[2], "Buy", 3))
        r->side = SIDE_BUY;
    else if (field_is(f[2], "Sell", 4))
        r->side = SIDE_SELL;
    else
        return bad(why, "side", f[2]);
    if (!get_qty(f[3], &r->size, 1))
        return bad(why, "size", f[3]);
    if (!get_px(f[4], &r->price))
        return bad(why, "price", f[4]);
    return NULL;
}

static const char *parse_bitmex_quote(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_QUOTE;
    if (hsource_parse_dump_time(f[0].p, f[0].n, &r->ts_us) != 0)
        return bad(why, "timestamp", f[0]);
    const char *w = get_symbol(r, f[1], why);
    if (!w)
        w = get_quote_side(f[2], f[3], "bidSize", "bidPrice", &r->bid_size, &r->bid_px, why);
    if (!w)
        w = get_quote_side(f[5], f[4], "askSize", "askPrice", &r->ask_size, &r->ask_px, why);
    return w;
}

static const char *parse_tardis_trade(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_TRADE;
    const char *w = tardis_head(r, f, why);
    if (w)
        return w;
    if (field_is(f[5], "buy", 3))
        r->side = SIDE_BUY;
    else if (field_is(f[5], "sell", 4))
        r->side = SIDE_SELL;
    else
        return bad(why, "side", f[5]);
    if (!get_px(f[6], &r->price))
        return bad(why, "price", f[6]);
    if (!get_qty(f[7], &r->size, 1))
        return bad(why, "amount", f[7]);
    return NULL;
}

static const char *parse_tardis_quote(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_QUOTE;
    const char *w = tardis_head(r, f, why);
    if (!w)
        w = get_quote_side(f[4], f[5], "ask_amount", "ask_price", &r->ask_size, &r->ask_px, why);
    if (!w)
        w = get_quote_side(f[7], f[6], "bid_amount", "bid_price", &r->bid_size, &r->bid_px, why);
    return w;
}

static const char *parse_tardis_book(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_BOOK;
    const char *w = tardis_head(r, f, why);
    if (w)
        return w;
    if (field_is(f[4], "true", 4))
        r->snapshot = true;
    else if (!field_is(f[4], "false", 5))
        return bad(why, "is_snapshot", f[4]);
    if (field_is(f[5], "bid", 3))
        r->side = SIDE_BUY;
    else if (field_is(f[5], "ask", 3))
        r->side = SIDE_SELL;
    else
        return bad(why, "side", f[5]);
    if (!get_px(f[6], &r->price))
        return bad(why, "price", f[6]);
    if (!get_qty(f[7], &r->size, 0))
        return bad(why, "amount", f[7]);
    return NULL;
}

static const char *parse_tardis_ticker(struct hrow *r, const struct fld *f, char *why)
{
    r->kind = HR_TICKER;
    const char *w = tardis_head(r, f, why);
    if (w)
        return w;
    if (f[4].n) {
        if (!get_us(f[4], &r->funding_ts_us))
            return bad(why, "funding_timestamp", f[4]);
        r->has |= HT_FUNDING_TS;
    }
    if (f[5].n) {
        if (!get_e8_rounded(f[5], &r->funding_rate_e8))
            return bad(why, "funding_rate", f[5]);
        r->has |= HT_FUNDING_RATE;
    }
    if (f[6].n) {
        if (!get_e8_rounded(f[6], &r->predicted_rate_e8))
            return bad(why, "predicted_funding_rate", f[6]);
        r->has |= HT_PREDICTED_RATE;
    }
    if (f[7].n) {
        if (!get_qty(f[7], &r->open_interest, 0))
            return bad(why, "open_interest", f[7]);
        r->has |= HT_OPEN_INTEREST;
    }
    if (f[8].n) {
        if (!get_px(f[8], &r->last_px))
            return bad(why, "last_price", f[8]);
        r->has |= HT_LAST;
    }
    if (f[9].n) {
        if (!get_px(f[9], &r->index_px))
            return bad(why, "index_price", f[9]);
        r->has |= HT_INDEX;
    }
    if (f[10].n) {
        if (!get_px(f[10], &r->mark_px))
            return bad(why, "mark_price", f[10]);
        r->has |= HT_MARK;
    }
    return NULL;
}

/* Parses a line of f (not empty, without its end) into r; NULL, or why not. */
static const char *parse_row(const struct hfile *f, const char *line, size_t len, struct hrow *r,
                             char *why)
{
    if (memchr(line, '\0', len) != NULL)
        return "a NUL byte";
    struct fld fl[FIELDS_MAX];
    uint32_t nf = split(line, len, fl);
    if (nf != f->nfields) {
        snprintf(why, WHY_CAP, "%" PRIu32 " fields, expected %" PRIu32, nf, f->nfields);
        return why;
    }
    memset(r, 0, sizeof(*r));
    switch (f->fmt) {
    case HF_BITMEX_TRADE: return parse_bitmex_trade(r, fl, why);
    case HF_BITMEX_QUOTE: return parse_bitmex_quote(r, fl, why);
    case HF_TARDIS_TRADES: return parse_tardis_trade(r, fl, why);
    case HF_TARDIS_QUOTES: return parse_tardis_quote(r, fl, why);
    case HF_TARDIS_BOOK: return parse_tardis_book(r, fl, why);
    case HF_TARDIS_TICKER: return parse_tardis_ticker(r, fl, why);
    }
    return "unknown format";
}

/* ---- headers ------------------------------------------------------------------ */

static const struct {
    const char *text;
    enum hformat fmt;
    enum hrow_kind kind;
} headers[] = {
    {"timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
     "foreignNotional",
     HF_BITMEX_TRADE, HR_TRADE},
    {"timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
     "foreignNotional,trdType",
     HF_BITMEX_TRADE, HR_TRADE},
    {"timestamp,symbol,bidSize,bidPrice,askPrice,askSize", HF_BITMEX_QUOTE, HR_QUOTE},
    {"exchange,symbol,timestamp,local_timestamp,id,side,price,amount", HF_TARDIS_TRADES, HR_TRADE},
    {"exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
     HF_TARDIS_QUOTES, HR_QUOTE},
    {"exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount", HF_TARDIS_BOOK,
     HR_BOOK},
    {"exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
     "predicted_funding_rate,open_interest,last_price,index_price,mark_price",
     HF_TARDIS_TICKER, HR_TICKER},
};

/* Where rows of the same microsecond go: trades, quotes and book rows,
 * tickers. */
static uint32_t kind_priority(enum hrow_kind k)
{
    return k == HR_TRADE ? 0 : k == HR_TICKER ? 2 : 1;
}

/* ---- reading ------------------------------------------------------------------ */

static void fail(struct hsource *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct hsource *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->failed = true;
}

/* Moves the unread bytes to the front of buf and reads more after them:
 * 0, or -1 (failed) when the stream is damaged or cannot be read. */
static int fill(struct hsource *s, struct hfile *f)
{
    if (f->pos > 0) {
        memmove(f->buf, f->buf + f->pos, f->end - f->pos);
        f->end -= f->pos;
        f->pos = 0;
    }
    int got = gzread(f->gz, f->buf + f->end, (unsigned)(BUF_CAP - f->end));
    int zerr = Z_OK;
    const char *msg = gzerror(f->gz, &zerr);
    if (got < 0 || zerr != Z_OK) {
        if (zerr == Z_BUF_ERROR)
            fail(s, "%s: the gzip stream is cut short", f->path);
        else if (zerr == Z_ERRNO)
            fail(s, "%s: cannot read: %s", f->path, strerror(errno));
        else
            fail(s, "%s: the gzip stream is damaged (%s)", f->path, msg ? msg : "zlib error");
        return -1;
    }
    if (got == 0)
        f->eof = true;
    f->end += (size_t)got;
    z_off_t off = gzoffset(f->gz);
    if (off >= 0)
        f->bytes_in = (uint64_t)off;
    return 0;
}

/* The next line of f without its end ("\n" or "\r\n"; the last line may
 * have none): 1, 0 at the end of the file, -1 (failed). A line longer than
 * HS_LINE_MAX comes back empty with *too_long set, all of it read. */
static int next_line(struct hsource *s, struct hfile *f, const char **line, size_t *len,
                     bool *too_long)
{
    *too_long = false;
    size_t scanned = 0; /* bytes from pos known to hold no '\n' */
    for (;;) {
        char *p = f->buf + f->pos;
        size_t avail = f->end - f->pos;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        size_t n;
        if (nl != NULL) {
            n = (size_t)(nl - p);
            f->pos += n + 1;
        } else if (f->eof) {
            if (avail == 0 && !*too_long)
                return 0;
            n = avail;
            f->pos = f->end;
        } else {
            if (avail > HS_LINE_MAX) {
                *too_long = true;
                f->pos = f->end; /* dropped */
                avail = 0;
            }
            scanned = avail;
            if (fill(s, f) != 0)
                return -1;
            continue;
        }
        f->line++;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > HS_LINE_MAX)
            *too_long = true;
        *line = p;
        *len = *too_long ? 0 : n;
        return 1;
    }
}

/* After an empty line: 1 when only line ends follow it to the end of the
 * file (all read then), 0 when something else does, -1 (failed). */
static int only_blank_follows(struct hsource *s, struct hfile *f)
{
    for (;;) {
        for (size_t i = f->pos; i < f->end; i++)
            if (f->buf[i] != '\n' && f->buf[i] != '\r')
                return 0;
        if (f->eof) {
            f->pos = f->end;
            return 1;
        }
        if (f->end - f->pos > HS_LINE_MAX)
            return 0; /* a long run of empty lines: not the end yet as far as this looks */
        if (fill(s, f) != 0)
            return -1;
    }
}

static void finish(struct hfile *f)
{
    f->done = true;
    if (f->gz != NULL)
        gzclose(f->gz);
    f->gz = NULL;
    free(f->buf);
    f->buf = NULL;
    f->pos = f->end = 0;
    if (f->size > f->bytes_in)
        f->bytes_in = f->size;
}

/* A malformed line: fails when strict, else counted and maybe reported. */
static int skip(struct hsource *s, const struct hfile *f, const char *why)
{
    if (s->o.strict) {
        fail(s, "%s:%" PRIu64 ": %s", f->path, f->line, why);
        return -1;
    }
    s->st.skipped++;
    if (s->o.report != NULL && s->st.skipped <= HSOURCE_REPORT_MAX)
        fprintf(s->o.report, "perpsim: %s:%" PRIu64 ": %s (skipped)\n", f->path, f->line, why);
    return 0;
}

/* Reads f to its next good row inside [from, to): 1 (in f->row), 0 when
 * the file has no more, -1 (failed). */
static int advance(struct hsource *s, struct hfile *f)
{
    char why_buf[WHY_CAP];
    while (!f->done) {
        const char *line;
        size_t len;
        bool too_long;
        int rc = next_line(s, f, &line, &len, &too_long);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        const char *why;
        if (too_long) {
            why = "a line longer than " TEXT(HS_LINE_MAX) " bytes";
        } else if (len == 0) {
            rc = only_blank_follows(s, f);
            if (rc < 0)
                return -1;
            if (rc > 0)
                break;
            why = "an empty line";
        } else {
            why = parse_row(f, line, len, &f->row, why_buf);
            if (why == NULL && f->row.ts_us < f->last_ts)
                why = "time goes back";
        }
        if (why != NULL) {
            if (skip(s, f, why) != 0)
                return -1;
            continue;
        }
        int64_t ts = f->row.ts_us;
        f->last_ts = ts;
        if (ts < s->o.from_us) {
            s->st.outside++;
            continue;
        }
        if (ts >= s->o.to_us) {
            s->st.outside++;
            break;
        }
        f->row.file = (uint16_t)(f - s->files);
        f->row.line = f->line;
        return 1;
    }
    finish(f);
    return 0;
}

/* ---- the merge ------------------------------------------------------------------ */

static bool before(const struct hsource *s, uint32_t a, uint32_t b)
{
    const struct hfile *x = &s->files[a], *y = &s->files[b];
    if (x->row.ts_us != y->row.ts_us)
        return x->row.ts_us < y->row.ts_us;
    return x->tie < y->tie;
}

static void sift_down(struct hsource *s, uint32_t i)
{
    uint32_t *h = s->heap, n = s->nheap;
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < n && before(s, h[l], h[m]))
            m = l;
        if (l + 1 < n && before(s, h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void push(struct hsource *s, uint32_t file)
{
    uint32_t *h = s->heap, i = s->nheap++;
    h[i] = file;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(s, h[i], h[p]))
            return;
        uint32_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

int hsource_next(struct hsource *s, struct hrow *out, char *err, size_t errcap)
{
    if (s == NULL) {
        put_err(err, errcap, "hsource: no source");
        return -1;
    }
    if (s->failed) {
        put_err(err, errcap, "%s", s->err);
        return -1;
    }
    if (!s->primed) {
        for (uint32_t i = 0; i < s->n; i++) {
            int rc = advance(s, &s->files[i]);
            if (rc < 0) {
                put_err(err, errcap, "%s", s->err);
                return -1;
            }
            if (rc > 0)
                push(s, i);
        }
        s->primed = true;
    } else if (s->refill) {
        /* the top's row went out last time: read its file on */
        s->refill = false;
        int rc = advance(s, &s->files[s->heap[0]]);
        if (rc < 0) {
            put_err(err, errcap, "%s", s->err);
            return -1;
        }
        if (rc == 0)
            s->heap[0] = s->heap[--s->nheap];
        if (s->nheap > 1)
            sift_down(s, 0);
    }
    if (s->nheap == 0)
        return 0;
    *out = s->files[s->heap[0]].row;
    s->refill = true;
    s->st.rows++;
    return 1;
}

/* ---- opening -------------------------------------------------------------------- */

/* Opens file i and reads its header: 0, or -1 with the message in s->err. */
static int open_file(struct hsource *s, uint32_t i, const char *path)
{
    struct hfile *f = &s->files[i];
    f->last_ts = INT64_MIN;
    f->path = strdup(path);
    if (f->path == NULL) {
        fail(s, "%s: out of memory", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(s, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(s, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        fail(s, "%s: is a directory", path);
        close(fd);
        return -1;
    }
    f->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    s->st.bytes_total += f->size;
    f->gz = gzdopen(fd, "rb");
    if (f->gz == NULL) {
        fail(s, "%s: cannot read: out of memory", path);
        close(fd);
        return -1;
    }
    f->buf = malloc(BUF_CAP);
    if (f->buf == NULL || gzbuffer(f->gz, GZ_BUFFER) != 0) {
        fail(s, "%s: out of memory", path);
        return -1;
    }

    const char *line;
    size_t len;
    bool too_long;
    int rc = next_line(s, f, &line, &len, &too_long);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        fail(s, "%s: empty file (no header line)", path);
        return -1;
    }
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    for (size_t k = 0; k < sizeof(headers) / sizeof(headers[0]); k++) {
        if (!too_long && strlen(headers[k].text) == len && memcmp(headers[k].text, line, len) == 0) {
            f->fmt = headers[k].fmt;
            f->nfields = split(line, len, (struct fld[FIELDS_MAX]){{0}});
            f->tie = kind_priority(headers[k].kind) << 8 | i;
            return 0;
        }
    }
    char text[100];
    if (too_long)
        fail(s, "%s: unknown header (a line longer than %d bytes)", path, HS_LINE_MAX);
    else
        fail(s, "%s: unknown header \"%s\" (not a BitMEX dump or a Tardis CSV this reads)", path,
             printable(text, sizeof(text), (struct fld){line, len}));
    return -1;
}

struct hsource *hsource_open(const char *const *paths, uint32_t n, const struct hsource_opts *o,
                             char *err, size_t errcap)
{
    if (paths == NULL || n < 1 || n > HSOURCE_FILES_MAX) {
        put_err(err, errcap, "hsource: %" PRIu32 " files (1 to %d)", n, HSOURCE_FILES_MAX);
        return NULL;
    }
    struct hsource *s = calloc(1, sizeof(*s));
    struct hfile *files = calloc(n, sizeof(*files));
    if (s == NULL || files == NULL) {
        free(s);
        free(files);
        put_err(err, errcap, "hsource: out of memory");
        return NULL;
    }
    s->files = files;
    s->n = n;
    if (o != NULL)
        s->o = *o;
    if (s->o.to_us <= 0)
        s->o.to_us = INT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (paths[i] == NULL) {
            put_err(err, errcap, "hsource: file %" PRIu32 " has no path", i);
            hsource_close(s);
            return NULL;
        }
        if (open_file(s, i, paths[i]) != 0) {
            put_err(err, errcap, "%s", s->err);
            hsource_close(s);
            return NULL;
        }
    }
    return s;
}

enum hformat hsource_format(const struct hsource *s, uint32_t file)
{
    return s != NULL && file < s->n ? s->files[file].fmt : (enum hformat)0;
}

const char *hsource_path(const struct hsource *s, uint32_t file)
{
    return s != NULL && file < s->n ? s->files[file].path : NULL;
}

void hsource_stats(const struct hsource *s, struct hsource_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return;
    *out = s->st;
    out->bytes_in = 0;
    for (uint32_t i = 0; i < s->n; i++)
        out->bytes_in += s->files[i].bytes_in;
}

void hsource_close(struct hsource *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->n; i++) {
        struct hfile *f = &s->files[i];
        if (f->gz != NULL)
            gzclose(f->gz);
        free(f->buf);
        free(f->path);
    }
    free(s->files);
    free(s);
}
