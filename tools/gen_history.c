/*
 * gen_history.c - a synthetic trading day of one BitMEX perpetual, written
 * in the public formats the backtester reads (history/source.h): BitMEX's
 * daily dumps or Tardis.dev's normalized CSV, gzip. Made up, not recorded:
 * for tests and benchmarks of the replay, never for research.
 *
 * What it models. An L2 book on the tick grid (sizes whole lots) around a
 * fair price that walks (about 2.5% a day); the book follows it with a lag:
 * the best level on the far side is cancelled, a level one tick better is
 * added on the near side. Each side keeps about --levels levels within
 * 1.5 x --levels ticks of its best, with holes. Between trades the book
 * changes one level at a time (a size added or cut, mostly near the top; a
 * level appearing or going; the deepest trimmed, a deep one added). A trade
 * takes the best opposite level (a Buy the best ask) for a heavy-tailed
 * number of lots, at most that level's size, and the book shows the level
 * cut (or gone: the next one is best) at the trade's own timestamp. The
 * book is never crossed or locked. Events fall at random times over the
 * day (exponential gaps, busier in the US afternoon), one microsecond
 * apart at least, so that the reader's ordering (trades before book rows
 * within one microsecond) cannot put a trade against a book it has not
 * seen.
 *
 *   bitmex  OUT/trade/YYYYMMDD.csv.gz   a row a trade
 *           OUT/quote/YYYYMMDD.csv.gz   a row a change of the top of book:
 *             one at 00:00, one after each trade, --quotes between trades
 *             (the deeper book is simulated but not written)
 *   tardis  OUT/bitmex_trades_DATE_SYMBOL.csv.gz
 *           OUT/bitmex_incremental_book_L2_DATE_SYMBOL.csv.gz  the whole
 *             book at 00:00 (is_snapshot true), then a row a level change:
 *             --quotes between trades, one after each trade (and one when a
 *             trade must first add a level behind a side's last)
 *           OUT/bitmex_quotes_DATE_SYMBOL.csv.gz  a row a change of the top
 *           OUT/bitmex_derivative_ticker_DATE_SYMBOL.csv.gz  about a row a
 *             second: funding (04:00, 12:00, 20:00 UTC; a rate near 0.0001
 *             that drifts, the predicted rate becoming the rate at each
 *             funding), open interest, last, index and mark prices
 *
 * Deterministic: the same arguments give the same bytes (seeded xorshift64*
 * streams, no clock, gzip headers without a time).
 *
 *   gen_history --format bitmex|tardis --out DIR [--date YYYY-MM-DD]
 *     [--symbol XBTUSD] [--trades N] [--quotes N] [--seed S] [--price P]
 *     [--tick T] [--lot L] [--levels L] [--level 1..9]
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#define DAY_US INT64_C(86400000000)
#define HOUR_US INT64_C(3600000000)
#define E8 INT64_C(100000000)
#define SYMBOL_MAX 31
#define OUT_BUF (1u << 20)
#define ROW_MAX 512             /* no row is longer */
#define LOTS_MAX 10000000u      /* a level's size, in lots */
#define DAY_VOL 0.025           /* the fair price's daily standard deviation, relative */

enum fmt { FMT_BITMEX = 1, FMT_TARDIS };

/* ---- random numbers ----------------------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* One stream per use (the book, the clock, the ids, the latencies), so
 * that a change to one does not shift the others. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * UINT64_C(0xD1B54A32D192ED03));
    r->s = splitmix64(&x);
    if (!r->s)
        r->s = 1;
}

/* xorshift64* */
static uint64_t rng_next(struct rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* [0, 1) */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* (0, 1] */
static double rng_unit_open(struct rng *r)
{
    return (double)((rng_next(r) >> 11) + 1) * 0x1p-53;
}

/* [0, n) */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static bool rng_coin(struct rng *r)
{
    return rng_next(r) >> 63;
}

/* About N(0, 1): a sum of four uniforms, rescaled (cheap; tails cut at 3.5) */
static double rng_gauss(struct rng *r)
{
    uint64_t a = rng_next(r), b = rng_next(r);
    double s = (double)(a >> 32) + (double)(a & 0xffffffffu) + (double)(b >> 32) + (double)(b & 0xffffffffu);
    return (s * 0x1p-32 - 2.0) * 1.7320508075688772;
}

/* log and exp from + - * / only (libm's may pick a different code path on
 * another CPU, FMA or not, and round a last bit differently: the files
 * would differ). Within a few units in the last place; exact enough. */
#define LN2 0.69314718055994530942

/* x > 0 and normal */
static double det_log(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int e = (int)(bits >> 52) - 1022;
    bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1022) << 52);
    double m;                   /* x = m 2^e, m in [0.5, 1) */
    memcpy(&m, &bits, 8);
    if (m < 0.70710678118654752440) {
        m *= 2;
        e--;
    }
    /* log m = 2 atanh z = 2 (z + z^3/3 + z^5/5 ...), |z| <= 0.172 */
    double z = (m - 1) / (m + 1), z2 = z * z;
    double s = 1.0 / 21;
    s = 1.0 / 19 + z2 * s;
    s = 1.0 / 17 + z2 * s;
    s = 1.0 / 15 + z2 * s;
    s = 1.0 / 13 + z2 * s;
    s = 1.0 / 11 + z2 * s;
    s = 1.0 / 9 + z2 * s;
    s = 1.0 / 7 + z2 * s;
    s = 1.0 / 5 + z2 * s;
    s = 1.0 / 3 + z2 * s;
    s = 1.0 + z2 * s;
    return e * LN2 + 2 * z * s;
}

static double det_exp(double x)
{
    double k = floor(x / LN2 + 0.5), r = x - k * LN2;
    /* e^r, |r| <= 0.35: Taylor to r^13 (the coefficients 1/n!, folded) */
    static const double c[14] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
        1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0,
    };
    double s = c[13];
    for (int i = 12; i >= 0; i--)
        s = c[i] + r * s;
    if (k < -1000 || k > 1000)
        return ldexp(s, (int)k);
    uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double p2;                  /* 2^k */
    memcpy(&p2, &bits, 8);
    return s * p2;
}

/* -log of a uniform in (0, 1]: an exponential with mean 1 */
static double rng_exp(struct rng *r)
{
    return -det_log(rng_unit_open(r));
}

/* ---- number formatting ---------------------------------------------------------- */

static const uint64_t pow10_u64[] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* v / 10^places, without trailing zeros (and no point when whole) */
static char *put_dec(char *p, int64_t v, int places)
{
    uint64_t a = (uint64_t)v;
    if (v < 0) {
        *p++ = '-';
        a = (uint64_t)0 - a;
    }
    uint64_t fp = a % pow10_u64[places];
    p = put_u64(p, a / pow10_u64[places]);
    if (fp) {
        int d = places;
        while (fp % 10 == 0) {
            fp /= 10;
            d--;
        }
        *p++ = '.';
        for (int i = d - 1; i >= 0; i--) {
            p[i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        p += d;
    }
    return p;
}

/* exactly n digits */
static char *put_fixed(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, s) put_str((p), (s), sizeof(s) - 1)

/* ---- gzip output ---------------------------------------------------------------- */

struct out {
    gzFile gz;
    char path[4096];
    char *buf;
    size_t len;
    uint64_t rows;
    int64_t last_local;         /* Tardis: local_timestamp never goes back */
};

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "gen_history: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void out_flush(struct out *o)
{
    if (o->len && gzwrite(o->gz, o->buf, (unsigned)o->len) != (int)o->len) {
        int e;
        const char *m = gzerror(o->gz, &e);
        fprintf(stderr, "gen_history: %s: %s\n", o->path, e == Z_ERRNO ? strerror(errno) : m);
        exit(1);
    }
    o->len = 0;
}

static void out_open(struct out *o, const char *path, int level, const char *header)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->path, sizeof(o->path), "%s", path);
    char mode[4] = {'w', 'b', (char)('0' + level), 0};
    o->gz = gzopen(path, mode);
    if (!o->gz)
        die("cannot create %s", path);
    gzbuffer(o->gz, 1u << 20);
    o->buf = malloc(OUT_BUF);
    if (!o->buf)
        die("%s", "out of memory");
    size_t n = strlen(header);
    memcpy(o->buf, header, n);
    o->buf[n] = '\n';
    o->len = n + 1;
}

/* Where the next row goes: room for ROW_MAX bytes. */
static char *out_row(struct out *o)
{
    if (o->len > OUT_BUF - ROW_MAX)
        out_flush(o);
    return o->buf + o->len;
}

static void out_end_row(struct out *o, char *p)
{
    *p++ = '\n';
    o->len = (size_t)(p - o->buf);
    o->rows++;
}

static void out_close(struct out *o)
{
    if (!o->gz)
        return;
    out_flush(o);
    if (gzclose(o->gz) != Z_OK)
        die("cannot finish %s", o->path);
    o->gz = NULL;
    free(o->buf);
}

/* ---- the generator -------------------------------------------------------------- */

/* One side of the book: sizes in lots by tick, in a ring of g->mask + 1
 * ticks (the side's levels always lie within half of it). 0: no level. */
struct side {
    uint32_t *lots;
    int64_t best, deep;         /* ticks of the best and the deepest level */
    uint32_t count;
    int64_t dir;                /* +1 bids (better is higher), -1 asks */
    const char *name;           /* Tardis: "bid" / "ask" */
};

struct gen {
    /* arguments */
    enum fmt fmt;
    char symbol[SYMBOL_MAX + 1];
    size_t symlen;
    int64_t tick_e8;            /* the tick, in 1e-8 */
    uint64_t lot;
    uint32_t levels;
    uint64_t seed;

    int64_t day_start;          /* µs since the epoch */
    char bitmex_day[11];        /* "2024-01-15D" */

    struct side bid, ask;
    uint64_t mask;
    uint32_t span, lo, hi;      /* where and how many levels a side keeps */
    double touch_mean;          /* mean distance from the best of a random change */
    double fair;                /* in ticks */
    double fair_min, vol_tick;  /* vol_tick: the fair price's sd over a day, in ticks */

    struct rng book, clock, ids, lat;

    /* the event being written */
    int64_t ts;                 /* µs since the epoch */
    uint32_t ts_ns;             /* BitMEX: the nanoseconds below ts */

    /* the top of book the last quote row showed */
    int64_t q_bid, q_ask;
    uint32_t q_bid_lots, q_ask_lots;

    /* trades */
    int64_t last_px;            /* ticks; 0: none yet */
    bool last_up;
    int64_t px_lo, px_hi;
    uint64_t oi;

    /* derivative ticker */
    int64_t funding_next;       /* µs */
    double funding_rate, pred_rate; /* 1e-8 */
    double index_dev;           /* ticks from the mid */
    int64_t idx_quantum;        /* index and mark prices rounded to this, 1e-8 */

    struct out trade, quote, book_l2, ticker;
};

/* ---- what is written -------------------------------------------------------------- */

static char *put_px(const struct gen *g, char *p, int64_t ticks)
{
    return put_dec(p, ticks * g->tick_e8, 8);
}

static char *put_bitmex_ts(const struct gen *g, char *p)
{
    int64_t tod = g->ts - g->day_start;
    uint64_t s = (uint64_t)(tod / 1000000), us = (uint64_t)(tod % 1000000);
    p = put_str(p, g->bitmex_day, 11);
    p = put_fixed(p, s / 3600, 2);
    *p++ = ':';
    p = put_fixed(p, s / 60 % 60, 2);
    *p++ = ':';
    p = put_fixed(p, s % 60, 2);
    *p++ = '.';
    p = put_fixed(p, us, 6);
    return put_fixed(p, g->ts_ns, 3);
}

/* "bitmex,SYMBOL,timestamp,local_timestamp," */
static char *put_tardis_head(struct gen *g, struct out *o, char *p, int64_t ts)
{
    int64_t local = ts + 1000 + (int64_t)rng_below(&g->lat, 4000);
    if (local < o->last_local)
        local = o->last_local;
    o->last_local = local;
    p = PUT_LIT(p, "bitmex,");
    p = put_str(p, g->symbol, g->symlen);
    *p++ = ',';
    p = put_i64(p, ts);
    *p++ = ',';
    p = put_i64(p, local);
    *p++ = ',';
    return p;
}

static void book_row(struct gen *g, const struct side *s, int64_t t, uint32_t lots, bool snapshot)
{
    struct out *o = &g->book_l2;
    char *p = put_tardis_head(g, o, out_row(o), g->ts);
    p = snapshot ? PUT_LIT(p, "true,") : PUT_LIT(p, "false,");
    p = put_str(p, s->name, 3);
    *p++ = ',';
    p = put_px(g, p, t);
    *p++ = ',';
    p = put_u64(p, (uint64_t)lots * g->lot);
    out_end_row(o, p);
}

/* A quote row if the top of book is not what the last one showed. */
static bool quote_check(struct gen *g)
{
    int64_t b = g->bid.best, a = g->ask.best;
    uint32_t bl = g->bid.lots[b & g->mask], al = g->ask.lots[a & g->mask];
    if (b == g->q_bid && a == g->q_ask && bl == g->q_bid_lots && al == g->q_ask_lots)
        return false;
    if (b >= a) {
        fprintf(stderr, "gen_history: internal error: crossed book %" PRId64 " / %" PRId64 "\n", b, a);
        exit(1);
    }
    g->q_bid = b;
    g->q_ask = a;
    g->q_bid_lots = bl;
    g->q_ask_lots = al;
    struct out *o = &g->quote;
    char *p = out_row(o);
    if (g->fmt == FMT_BITMEX) {
        /* timestamp,symbol,bidSize,bidPrice,askPrice,askSize */
        p = put_bitmex_ts(g, p);
        *p++ = ',';
        p = put_str(p, g->symbol, g->symlen);
        *p++ = ',';
        p = put_u64(p, (uint64_t)bl * g->lot);
        *p++ = ',';
        p = put_px(g, p, b);
        *p++ = ',';
        p = put_px(g, p, a);
        *p++ = ',';
        p = put_u64(p, (uint64_t)al * g->lot);
    } else {
        /* ...,ask_amount,ask_price,bid_price,bid_amount */
        p = put_tardis_head(g, o, p, g->ts);
        p = put_u64(p, (uint64_t)al * g->lot);
        *p++ = ',';
        p = put_px(g, p, a);
        *p++ = ',';
        p = put_px(g, p, b);
        *p++ = ',';
        p = put_u64(p, (uint64_t)bl * g->lot);
    }
    out_end_row(o, p);
    return true;
}

static char *put_uuid(struct gen *g, char *p)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t hi = rng_next(&g->ids), lo = rng_next(&g->ids);
    hi = (hi & ~UINT64_C(0xf000)) | UINT64_C(0x4000);              /* version 4 */
    lo = (lo & ~(UINT64_C(3) << 62)) | (UINT64_C(2) << 62);         /* variant 10 */
    char d[32];
    for (int i = 0; i < 16; i++) {
        d[i] = hex[(hi >> (60 - 4 * i)) & 15];
        d[16 + i] = hex[(lo >> (60 - 4 * i)) & 15];
    }
    p = put_str(p, d, 8);
    *p++ = '-';
    p = put_str(p, d + 8, 4);
    *p++ = '-';
    p = put_str(p, d + 12, 4);
    *p++ = '-';
    p = put_str(p, d + 16, 4);
    *p++ = '-';
    return put_str(p, d + 20, 12);
}

static void trade_row(struct gen *g, bool buy, int64_t px, uint32_t lots)
{
    uint64_t size = (uint64_t)lots * g->lot;
    const char *tick;
    if (!g->last_px || px == g->last_px)
        tick = g->last_up ? "ZeroPlusTick" : "ZeroMinusTick";
    else {
        g->last_up = px > g->last_px;
        tick = g->last_up ? "PlusTick" : "MinusTick";
    }
    g->last_px = px;
    if (px < g->px_lo)
        g->px_lo = px;
    if (px > g->px_hi)
        g->px_hi = px;
    struct out *o = &g->trade;
    char *p = out_row(o);
    if (g->fmt == FMT_BITMEX) {
        /* timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,
         * homeNotional,foreignNotional,trdType; the values of an inverse
         * contract: grossValue = size / price in satoshis */
        p = put_bitmex_ts(g, p);
        *p++ = ',';
        p = put_str(p, g->symbol, g->symlen);
        p = buy ? PUT_LIT(p, ",Buy,") : PUT_LIT(p, ",Sell,");
        p = put_u64(p, size);
        *p++ = ',';
        p = put_px(g, p, px);
        *p++ = ',';
        p = put_str(p, tick, strlen(tick));
        *p++ = ',';
        p = put_uuid(g, p);
        *p++ = ',';
        __extension__ typedef unsigned __int128 u128;
        uint64_t price_e8 = (uint64_t)(px * g->tick_e8);
        uint64_t gross = (uint64_t)(((u128)size * (u128)E8 * (u128)E8 + price_e8 / 2) / price_e8);
        p = put_u64(p, gross);
        *p++ = ',';
        p = put_dec(p, (int64_t)gross, 8);
        *p++ = ',';
        p = put_u64(p, size);
        p = PUT_LIT(p, ",Regular");
    } else {
        /* ...,id,side,price,amount */
        p = put_tardis_head(g, o, p, g->ts);
        p = put_uuid(g, p);
        p = buy ? PUT_LIT(p, ",buy,") : PUT_LIT(p, ",sell,");
        p = put_px(g, p, px);
        *p++ = ',';
        p = put_u64(p, size);
    }
    out_end_row(o, p);
}

/* ---- the book ----------------------------------------------------------------- */

static uint32_t *cell(const struct gen *g, const struct side *s, int64_t t)
{
    return &s->lots[(uint64_t)t & g->mask];
}

static bool better(const struct side *s, int64_t a, int64_t b)
{
    return (a - b) * s->dir > 0;
}

/* The side's levels, t among them, would still lie within half the ring. */
static bool fits(const struct gen *g, const struct side *s, int64_t t)
{
    int64_t lo = s->dir > 0 ? s->deep : s->best, hi = s->dir > 0 ? s->best : s->deep;
    if (t < lo)
        lo = t;
    if (t > hi)
        hi = t;
    return t >= 1 && (uint64_t)(hi - lo) < (g->mask + 1) / 2;
}

/* Sets a level's size (0: removes it), keeps best / deep / count, and for
 * Tardis writes the book row. */
static void level_set(struct gen *g, struct side *s, int64_t t, uint32_t lots)
{
    uint32_t *c = cell(g, s, t);
    uint32_t old = *c;
    *c = lots;
    if (!old && lots) {
        if (s->count++ == 0)
            s->best = s->deep = t;
        else if (better(s, t, s->best))
            s->best = t;
        else if (better(s, s->deep, t))
            s->deep = t;
    } else if (old && !lots) {
        if (s->count < 2) {
            fprintf(stderr, "gen_history: internal error: a side emptied\n");
            exit(1);
        }
        s->count--;
        int64_t k = t;
        if (t == s->best) {
            do
                k -= s->dir;
            while (!*cell(g, s, k));
            s->best = k;
        } else if (t == s->deep) {
            do
                k += s->dir;
            while (!*cell(g, s, k));
            s->deep = k;
        }
    }
    if (g->fmt == FMT_TARDIS)
        book_row(g, s, t, lots, false);
}

/* A new level's size, or a size added: heavy-tailed, a few to thousands of lots. */
static uint32_t draw_lots(struct gen *g)
{
    double v = 5.0 * det_exp(rng_exp(&g->book) / 1.3);
    return v >= LOTS_MAX ? LOTS_MAX : (uint32_t)ceil(v);
}

/* A trade's size: 1 lot more often than not, a long tail. */
static uint32_t draw_trade_lots(struct gen *g)
{
    double v = det_exp(rng_exp(&g->book) / 1.2);
    return v >= LOTS_MAX ? LOTS_MAX : (uint32_t)v;
}

/* A new level behind the best, within span ticks of it. */
static bool add_deep(struct gen *g, struct side *s)
{
    int64_t t = s->best - s->dir * (int64_t)(1 + rng_below(&g->book, g->span));
    for (uint32_t i = 0; i < g->span && t >= 1 && *cell(g, s, t); i++)
        t -= s->dir;
    if (!fits(g, s, t) || *cell(g, s, t))
        return false;
    level_set(g, s, t, draw_lots(g));
    return true;
}

/* A new best level inside the spread (needs >= 2 ticks): one tick better
 * than the best, or next to the other side's best (a one-tick spread). */
static bool improve(struct gen *g, struct side *s)
{
    if (g->ask.best - g->bid.best < 2)
        return false;
    struct side *o = s == &g->bid ? &g->ask : &g->bid;
    int64_t t = rng_unit(&g->book) < 0.6 ? o->best - s->dir : s->best + s->dir;
    if (!fits(g, s, t)) {
        if (s->count < 2)
            return false;
        level_set(g, s, s->deep, 0);
        return true;
    }
    level_set(g, s, t, draw_lots(g));
    return true;
}

/* Some lots added to a level or cut from it (all: the level goes, unless
 * it is the side's last). */
static void resize(struct gen *g, struct side *s, int64_t t)
{
    uint32_t l = *cell(g, s, t), nl;
    if (rng_coin(&g->book)) {
        uint64_t v = (uint64_t)l + draw_lots(g);
        nl = v > LOTS_MAX ? LOTS_MAX : (uint32_t)v;
    } else {
        nl = l - 1 - rng_below(&g->book, l);
        if (!nl && s->count < 2)
            nl = l + 1;
    }
    if (nl == l)
        nl = l - 1;
    level_set(g, s, t, nl);
}

/* A change at a random level near the top: mostly the first few. */
static void touch(struct gen *g)
{
    struct side *s = rng_coin(&g->book) ? &g->bid : &g->ask;
    double d = rng_exp(&g->book) * g->touch_mean;
    int64_t t = s->best - s->dir * (d >= g->span ? (int64_t)g->span : (int64_t)d);
    if (t >= 1 && *cell(g, s, t))
        resize(g, s, t);
    else if (s->count < g->levels && fits(g, s, t))
        level_set(g, s, t, draw_lots(g));
    else
        resize(g, s, s->best);
}

/* One change of one level. */
static void book_event(struct gen *g)
{
    struct side *b = &g->bid, *a = &g->ask;
    /* depth: the deepest trimmed, or a level added behind */
    if (b->count > g->hi || a->count > g->hi) {
        struct side *s = b->count > g->hi && (a->count <= g->hi || rng_coin(&g->book)) ? b : a;
        level_set(g, s, s->deep, 0);
        return;
    }
    if (b->count < g->lo || a->count < g->lo) {
        struct side *s = b->count < g->lo && (a->count >= g->lo || rng_coin(&g->book)) ? b : a;
        if (add_deep(g, s))
            return;
    }
    int64_t spread = a->best - b->best;
    double diff = g->fair - 0.5 * (double)(a->best + b->best);
    /* a gap in the spread filled, on the side the price leans to */
    if (spread > 1 && rng_unit(&g->book) < 0.8) {
        struct side *s = diff > 0 ? b : diff < 0 ? a : rng_coin(&g->book) ? b : a;
        if (improve(g, s))
            return;
    }
    /* the book follows the fair price: the best level on the far side goes */
    double ad = fabs(diff);
    if (ad > 1.0 && rng_unit(&g->book) < fmin(0.6, 0.2 * ad)) {
        struct side *s = diff > 0 ? a : b;
        if (s->count >= 2) {
            level_set(g, s, s->best, 0);
            return;
        }
    }
    touch(g);
}

/* A trade against the best level of one side, and the book after it. */
static void trade_event(struct gen *g)
{
    double diff = g->fair - 0.5 * (double)(g->ask.best + g->bid.best);
    double lean = diff * 0.1;
    lean = lean > 0.2 ? 0.2 : lean < -0.2 ? -0.2 : lean;
    bool buy = rng_unit(&g->book) < 0.5 + lean;
    struct side *s = buy ? &g->ask : &g->bid;
    /* never take a side's last level */
    if (s->count < 2 && !add_deep(g, s)) {
        s = buy ? &g->bid : &g->ask;
        buy = !buy;
        if (s->count < 2 && !add_deep(g, s))
            die("%s", "internal error: a book too thin to trade");
    }
    int64_t t = s->best;
    uint32_t l = *cell(g, s, t), q = draw_trade_lots(g);
    if (q > l)
        q = l;
    trade_row(g, buy, t, q);
    level_set(g, s, t, l - q);
    uint64_t sz = (uint64_t)q * g->lot;
    if (rng_coin(&g->book))
        g->oi += sz;
    else if (g->oi > sz + 1000 * g->lot)
        g->oi -= sz;
    quote_check(g);
}

/* ---- the derivative ticker (Tardis) ---------------------------------------------- */

static int64_t round_to(double v, int64_t q)
{
    return (int64_t)llround(v / (double)q) * q;
}

static void ticker_row(struct gen *g, int64_t tk)
{
    while (tk >= g->funding_next) {
        g->funding_rate = g->pred_rate;
        g->funding_next += 8 * HOUR_US;
    }
    /* the predicted rate drifts, pulled back to 0.0001 */
    g->pred_rate += 4.0 * rng_gauss(&g->lat) + (10000.0 - g->pred_rate) * 0.0005;
    if (g->pred_rate > 375000.0)
        g->pred_rate = 375000.0;
    if (g->pred_rate < -375000.0)
        g->pred_rate = -375000.0;
    g->index_dev = 0.98 * g->index_dev + 0.2 * rng_gauss(&g->lat);
    double mid = 0.5 * (double)(g->bid.best + g->ask.best);
    double index = (mid + g->index_dev) * (double)g->tick_e8;
    int64_t rate = llround(g->funding_rate), pred = llround(g->pred_rate);
    double left = (double)(g->funding_next - tk) / (double)(8 * HOUR_US);
    int64_t index_e8 = round_to(index, g->idx_quantum);
    int64_t mark_e8 = round_to((double)index_e8 * (1.0 + (double)rate * 1e-8 * left), g->idx_quantum);
    struct out *o = &g->ticker;
    /* ...,funding_timestamp,funding_rate,predicted_funding_rate,open_interest,
     * last_price,index_price,mark_price */
    char *p = put_tardis_head(g, o, out_row(o), tk);
    p = put_i64(p, g->funding_next);
    *p++ = ',';
    p = put_dec(p, rate, 8);
    *p++ = ',';
    p = put_dec(p, pred, 8);
    *p++ = ',';
    p = put_u64(p, g->oi);
    *p++ = ',';
    p = put_px(g, p, g->last_px ? g->last_px : g->bid.best);
    *p++ = ',';
    p = put_dec(p, index_e8, 8);
    *p++ = ',';
    p = put_dec(p, mark_e8, 8);
    out_end_row(o, p);
}

/* ---- the clock ------------------------------------------------------------------ */

/* How busy each UTC hour is, relative: quiet in the Asian night, busiest
 * around the US open. */
static const double hour_weight[24] = {
    1.0, 0.9, 0.85, 0.8, 0.75, 0.75, 0.8, 0.85, 0.95, 1.0, 1.0, 1.05,
    1.1, 1.3, 1.6, 1.7, 1.5, 1.3, 1.15, 1.05, 1.0, 1.0, 0.95, 0.95,
};

struct sched {
    double total, cum;          /* sums of the exponential gaps */
    double cw[25];              /* the hours' cumulative weights, 0..1 */
    int hour;
    int64_t prev;
};

/* The event times: n exponential gaps scaled onto the day (their sum, a
 * first pass over the same stream), warped by the hours' weights. */
static void sched_init(struct gen *g, struct sched *sc, uint64_t n)
{
    memset(sc, 0, sizeof(*sc));
    struct rng r = g->clock;
    for (uint64_t i = 0; i <= n; i++)
        sc->total += rng_exp(&r);
    double w = 0;
    for (int h = 0; h < 24; h++)
        w += hour_weight[h];
    for (int h = 0; h < 24; h++)
        sc->cw[h + 1] = sc->cw[h] + hour_weight[h] / w;
    sc->cw[24] = 1.0;
    sc->prev = g->day_start;
}

static int64_t sched_next(struct gen *g, struct sched *sc)
{
    sc->cum += rng_exp(&g->clock);
    double u = sc->cum / sc->total;
    while (sc->hour < 23 && u >= sc->cw[sc->hour + 1])
        sc->hour++;
    double x = (sc->hour + (u - sc->cw[sc->hour]) / (sc->cw[sc->hour + 1] - sc->cw[sc->hour])) / 24.0;
    /* within [00:00:00.001, 23:59:59.999) */
    int64_t t = g->day_start + 1000 + (int64_t)(x * (double)(DAY_US - 2000));
    if (t <= sc->prev)
        t = sc->prev + 1;
    sc->prev = t;
    return t;
}

/* ---- arguments -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: gen_history --format bitmex|tardis --out DIR [--date YYYY-MM-DD] [--symbol XBTUSD]\n"
            "         [--trades N] [--quotes N] [--seed S] [--price P] [--tick T] [--lot L]\n"
            "         [--levels L] [--level 1..9]\n"
            "  defaults: --date 2024-01-15 --symbol XBTUSD --trades 2000000 --quotes 10000000\n"
            "            --seed 1 --price 42000 --tick 0.5 --lot 100 --levels 25 --level 1\n"
            "  --quotes: book updates between trades (bitmex: each a quote row; tardis: each\n"
            "            an incremental_book_L2 row, quote rows when the top changes)\n");
    exit(2);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* A positive decimal with at most 8 places, in 1e-8. */
static bool parse_e8(const char *s, int64_t *out)
{
    int64_t v = 0;
    int places = -1;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s == '.' && places < 0) {
            places = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || places >= 8 || v > INT64_C(100000000000000000))
            return false;
        v = v * 10 + (*s - '0');
        if (places >= 0)
            places++;
    }
    for (int p = places < 0 ? 0 : places; p < 8; p++)
        v *= 10;
    *out = v;
    return v > 0;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool parse_date(const char *s, int *y, int *m, int *d)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    *y = atoi(s);
    *m = atoi(s + 5);
    *d = atoi(s + 8);
    if (*y < 1970 || *m < 1 || *m > 12 || *d < 1 || *d > mdays[*m - 1])
        return false;
    bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    return !(*m == 2 && *d == 29 && !leap);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || !*c) {
            char keep = *c;
            *c = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                die("cannot create %s", p);
            *c = keep;
            if (!keep)
                break;
        }
    }
}

static void report(const struct out *o)
{
    struct stat st;
    double mb = stat(o->path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
    printf("  %-64s %11" PRIu64 " rows %9.1f MB\n", o->path, o->rows, mb);
}

int main(int argc, char **argv)
{
    const char *format = NULL, *outdir = NULL, *date = "2024-01-15", *symbol = "XBTUSD";
    uint64_t trades = 2000000, quotes = 10000000, seed = 1, lot = 100, levels = 25, level = 1;
    int64_t price_e8 = 42000 * E8, tick_e8 = E8 / 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || !v)
            usage();
        i++;
        bool ok = true;
        if (strcmp(a, "--format") == 0)
            format = v;
        else if (strcmp(a, "--out") == 0)
            outdir = v;
        else if (strcmp(a, "--date") == 0)
            date = v;
        else if (strcmp(a, "--symbol") == 0)
            symbol = v;
        else if (strcmp(a, "--trades") == 0)
            ok = parse_u64(v, &trades);
        else if (strcmp(a, "--quotes") == 0)
            ok = parse_u64(v, &quotes);
        else if (strcmp(a, "--seed") == 0)
            ok = parse_u64(v, &seed);
        else if (strcmp(a, "--price") == 0)
            ok = parse_e8(v, &price_e8);
        else if (strcmp(a, "--tick") == 0)
            ok = parse_e8(v, &tick_e8);
        else if (strcmp(a, "--lot") == 0)
            ok = parse_u64(v, &lot) && lot >= 1 && lot <= 1000000000;
        else if (strcmp(a, "--levels") == 0)
            ok = parse_u64(v, &levels) && levels >= 2 && levels <= 100000;
        else if (strcmp(a, "--level") == 0)
            ok = parse_u64(v, &level) && level >= 1 && level <= 9;
        else {
            fprintf(stderr, "gen_history: unknown option %s\n", a);
            usage();
        }
        if (!ok) {
            fprintf(stderr, "gen_history: bad value for %s: %s\n", a, v);
            usage();
        }
    }
    if (!format || !outdir || (strcmp(format, "bitmex") != 0 && strcmp(format, "tardis") != 0))
        usage();
    int y, mo, d;
    if (!parse_date(date, &y, &mo, &d))
        die("bad --date %s (YYYY-MM-DD)", date);
    size_t symlen = strlen(symbol);
    if (symlen < 1 || symlen > SYMBOL_MAX)
        die("bad --symbol %s", symbol);
    for (size_t i = 0; i < symlen; i++) {
        char c = symbol[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            die("bad --symbol %s", symbol);
    }
    if (trades + quotes > UINT64_C(10000000000))
        die("%s", "at most 10,000,000,000 events in a day");

    static struct gen gen;
    struct gen *g = &gen;
    g->fmt = strcmp(format, "bitmex") == 0 ? FMT_BITMEX : FMT_TARDIS;
    memcpy(g->symbol, symbol, symlen + 1);
    g->symlen = symlen;
    g->tick_e8 = tick_e8;
    g->lot = lot;
    g->levels = (uint32_t)levels;
    g->seed = seed;
    g->day_start = days_from_civil(y, mo, d) * DAY_US;
    memcpy(g->bitmex_day, date, 10);
    g->bitmex_day[10] = 'D';
    rng_seed(&g->book, seed, 1);
    rng_seed(&g->clock, seed, 2);
    rng_seed(&g->ids, seed, 3);
    rng_seed(&g->lat, seed, 4);

    g->span = g->levels + g->levels / 2 + 1;
    g->lo = g->levels - g->levels / 4;
    if (g->lo < 2)
        g->lo = 2;
    g->hi = g->levels + (g->levels / 4 ? g->levels / 4 : 1);
    g->touch_mean = g->levels / 6.0 < 1.0 ? 1.0 : g->levels / 6.0;
    uint64_t ring = 1u << 16;
    while (ring < 16 * (uint64_t)g->span)
        ring <<= 1;
    g->mask = ring - 1;
    int64_t p0 = (price_e8 + tick_e8 / 2) / tick_e8;
    g->fair_min = 4.0 * g->span + 16;
    if ((double)p0 < 2 * g->fair_min)
        die("%s", "--price is too few ticks (at least 8 x 1.5 x --levels) above zero");
    if (p0 > INT64_C(1000000000000) || (double)p0 * (double)tick_e8 > 1e17)
        die("%s", "--price too high");
    g->vol_tick = DAY_VOL * (double)p0;
    g->idx_quantum = tick_e8 >= 1000000 ? 1000000 : tick_e8 / 100 ? tick_e8 / 100 : 1;

    /* the book at 00:00: the best bid at the price, a one-tick spread,
     * levels placed behind with holes */
    struct side *sides[2] = {&g->bid, &g->ask};
    g->bid.dir = 1;
    g->bid.name = "bid";
    g->ask.dir = -1;
    g->ask.name = "ask";
    for (int k = 0; k < 2; k++) {
        struct side *s = sides[k];
        s->lots = calloc(ring, sizeof(uint32_t));
        if (!s->lots)
            die("%s", "out of memory");
        int64_t t = k == 0 ? p0 : p0 + 1;
        s->lots[(uint64_t)t & g->mask] = draw_lots(g);
        s->best = s->deep = t;
        s->count = 1;
        while (s->count < g->levels) {
            t -= s->dir;
            if (rng_below(&g->book, g->span) < g->levels) {
                s->lots[(uint64_t)t & g->mask] = draw_lots(g);
                s->deep = t;
                s->count++;
            }
        }
    }
    g->fair = (double)p0 + 0.5;
    g->px_lo = INT64_MAX;
    g->last_up = true;
    g->px_hi = 0;
    g->oi = 5000000 * g->lot;
    g->funding_rate = g->pred_rate = 10000.0;
    g->funding_next = g->day_start + 4 * HOUR_US;
    g->q_bid = g->q_ask = -1;

    char path[4096];
    char compact[9] = {date[0], date[1], date[2], date[3], date[5], date[6], date[8], date[9], 0};
    mkdirs(outdir);
    if (g->fmt == FMT_BITMEX) {
        snprintf(path, sizeof(path), "%s/trade", outdir);
        mkdirs(path);
        snprintf(path, sizeof(path), "%s/quote", outdir);
        mkdirs(path);
        snprintf(path, sizeof(path), "%s/trade/%s.csv.gz", outdir, compact);
        out_open(&g->trade, path, (int)level,
                 "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
                 "foreignNotional,trdType");
        snprintf(path, sizeof(path), "%s/quote/%s.csv.gz", outdir, compact);
        out_open(&g->quote, path, (int)level, "timestamp,symbol,bidSize,bidPrice,askPrice,askSize");
    } else {
        snprintf(path, sizeof(path), "%s/bitmex_trades_%s_%s.csv.gz", outdir, date, symbol);
        out_open(&g->trade, path, (int)level, "exchange,symbol,timestamp,local_timestamp,id,side,price,amount");
        snprintf(path, sizeof(path), "%s/bitmex_quotes_%s_%s.csv.gz", outdir, date, symbol);
        out_open(&g->quote, path, (int)level,
                 "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount");
        snprintf(path, sizeof(path), "%s/bitmex_incremental_book_L2_%s_%s.csv.gz", outdir, date, symbol);
        out_open(&g->book_l2, path, (int)level,
                 "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount");
        snprintf(path, sizeof(path), "%s/bitmex_derivative_ticker_%s_%s.csv.gz", outdir, date, symbol);
        out_open(&g->ticker, path, (int)level,
                 "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
                 "predicted_funding_rate,open_interest,last_price,index_price,mark_price");
    }

    double t0 = now_s();
    /* 00:00: the snapshot (asks from the deepest down, then bids from the
     * best down) and the first quote */
    g->ts = g->day_start;
    g->ts_ns = 0;
    if (g->fmt == FMT_TARDIS) {
        for (int64_t t = g->ask.deep; t >= g->ask.best; t--)
            if (*cell(g, &g->ask, t))
                book_row(g, &g->ask, t, *cell(g, &g->ask, t), true);
        for (int64_t t = g->bid.best; t >= g->bid.deep; t--)
            if (*cell(g, &g->bid, t))
                book_row(g, &g->bid, t, *cell(g, &g->bid, t), true);
    }
    quote_check(g);

    struct sched sc;
    sched_init(g, &sc, trades + quotes);
    uint64_t tl = trades, ul = quotes, silent = 0;
    int64_t tick_k = 0, tick_at = g->day_start + rng_below(&g->lat, 900000);
    int64_t prev = g->day_start;
    while (tl + ul) {
        int64_t t = sched_next(g, &sc);
        if (g->fmt == FMT_TARDIS)
            while (tick_at < t) {
                ticker_row(g, tick_at);
                tick_k++;
                tick_at = g->day_start + tick_k * 1000000 + rng_below(&g->lat, 900000);
            }
        /* the fair price's step over the gap, reflected above a floor */
        g->fair += g->vol_tick * sqrt((double)(t - prev) / (double)DAY_US) * rng_gauss(&g->book);
        if (g->fair < g->fair_min)
            g->fair = 2 * g->fair_min - g->fair;
        prev = t;
        g->ts = t;
        g->ts_ns = rng_below(&g->lat, 1000);
        if (rng_unit(&g->book) * (double)(tl + ul) < (double)tl) {
            trade_event(g);
            tl--;
        } else {
            /* BitMEX shows the top of book only: changes deeper are made
             * but not written, until one changes the top */
            book_event(g);
            if (g->fmt == FMT_TARDIS)
                quote_check(g);
            else
                while (!quote_check(g)) {
                    book_event(g);
                    silent++;
                }
            ul--;
        }
    }
    if (g->fmt == FMT_TARDIS)
        for (; tick_k < 86400; tick_k++, tick_at = g->day_start + tick_k * 1000000 + rng_below(&g->lat, 900000))
            ticker_row(g, tick_at);
    out_close(&g->trade);
    out_close(&g->quote);
    out_close(&g->book_l2);
    out_close(&g->ticker);
    double t1 = now_s();

    printf("gen_history: %s %s %s seed %" PRIu64 ": %" PRIu64 " trades, %" PRIu64
           " book updates between them, in %.2f s\n",
           format, symbol, date, seed, trades, quotes, t1 - t0);
    report(&g->trade);
    report(&g->quote);
    if (g->fmt == FMT_TARDIS) {
        report(&g->book_l2);
        report(&g->ticker);
    }
    if (g->px_hi)
        printf("  trades from %.8g to %.8g, last %.8g\n", (double)(g->px_lo * tick_e8) / 1e8,
               (double)(g->px_hi * tick_e8) / 1e8, (double)(g->last_px * tick_e8) / 1e8);
    if (silent)
        printf("  %" PRIu64 " changes below the top of book made but not written\n", silent);
    free(g->bid.lots);
    free(g->ask.lots);
    return 0;
}
