/*
 * test_source.c - market history read from files (history/source.h):
 *
 *  - each of the six formats, gzip and plain, read field by field: BitMEX
 *    trades (10 and 11 columns) and quotes (a side without orders), Tardis
 *    trades, quotes (an absent side), incremental_book_L2 (snapshot rows, a
 *    level removed) and derivative_ticker (empty fields leave their has
 *    bits clear; rates rounded to 1e-8);
 *  - the merge: a quote, a trade, a second trade and a ticker file, with
 *    rows of the same microsecond in several of them: trades first (in the
 *    order the files were given), then quotes, then tickers, each file by
 *    line; the same with the files given the other way round;
 *  - from/to: the rows inside come out, the others are counted;
 *  - bad lines, one of each kind, skipped, counted and reported as
 *    "perpsim: FILE:LINE: reason (skipped)"; only HSOURCE_REPORT_MAX of
 *    them reported; CRLF, a last line without its newline and empty lines
 *    at the very end are not bad; strict mode fails at the first, naming
 *    file and line, and stays failed;
 *  - always fatal: a gzip stream cut short (also when only its trailer is
 *    missing) or damaged, an unknown header, a missing or empty file, a
 *    directory;
 *  - hsource_parse_dump_time's accepted and refused forms;
 *  - random number texts as prices and sizes: read exactly as
 *    tf_parse_fixed and tf_parse_qty read them (source.c has a fast path
 *    for the common forms);
 *  - random bytes and random damage to a gzip file: never a crash, every
 *    line either a row or a skip.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/xorshift.h"
#include "api/timefmt.h"
#include "engine/engine.h"
#include "history/source.h"

#define T0 INT64_C(1705276800000000) /* 2024-01-15T00:00:00Z in µs */
#define PX(units) ((px_t)(units) * PX_SCALE)
#define PATHCAP 512
#define ROWS_MAX 64
#define ERRCAP 4608

#define BITMEX_TRADE_HEAD                                                                  \
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"   \
    "foreignNotional,trdType\n"
#define BITMEX_TRADE_HEAD10                                                                \
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"   \
    "foreignNotional\n"
#define BITMEX_QUOTE_HEAD "timestamp,symbol,bidSize,bidPrice,askPrice,askSize\n"
#define TARDIS_TRADES_HEAD "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
#define TARDIS_QUOTES_HEAD                                                                 \
    "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
#define TARDIS_BOOK_HEAD                                                                   \
    "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
#define TARDIS_TICKER_HEAD                                                                 \
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"            \
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price\n"

/* ---- small things ------------------------------------------------------------- */

static char dir[128];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/perpsim-history-XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes n bytes as dir/name, gzip-compressed when gz; the path in path. */
static void put_bytes(char *path, const char *name, const char *text, size_t n, bool gz)
{
    snprintf(path, PATHCAP, "%s/%s", dir, name);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ck_assert_msg(g != NULL, "gzopen %s", path);
        if (n)
            ck_assert_int_eq(gzwrite(g, text, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
        if (n)
            ck_assert_uint_eq(fwrite(text, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static void put_file(char *path, const char *name, const char *text, bool gz)
{
    put_bytes(path, name, text, strlen(text), gz);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

static struct hsource *open_n(const char *const *paths, uint32_t n, const struct hsource_opts *o)
{
    char err[ERRCAP];
    struct hsource *s = hsource_open(paths, n, o, err, sizeof(err));
    ck_assert_msg(s != NULL, "hsource_open: %s", err);
    return s;
}

static struct hsource *open_1(const char *path, const struct hsource_opts *o)
{
    return open_n(&path, 1, o);
}

/* Every row to the end; the end must be clean. */
static uint32_t read_rows(struct hsource *s, struct hrow *rows)
{
    char err[ERRCAP];
    uint32_t n = 0;
    for (;;) {
        struct hrow r;
        int rc = hsource_next(s, &r, err, sizeof(err));
        ck_assert_msg(rc >= 0, "hsource_next: %s", err);
        if (rc == 0)
            break;
        ck_assert_uint_lt(n, ROWS_MAX);
        rows[n++] = r;
    }
    return n;
}

/* The error that ends the stream, after *nrows rows. */
static void read_to_error(struct hsource *s, char *err, size_t cap, uint64_t *nrows)
{
    *nrows = 0;
    for (;;) {
        struct hrow r;
        int rc = hsource_next(s, &r, err, cap);
        ck_assert_msg(rc != 0, "the stream ended cleanly after %" PRIu64 " rows", *nrows);
        if (rc < 0)
            return;
        (*nrows)++;
    }
}

static void check_where(const struct hrow *r, uint16_t file, uint64_t line)
{
    ck_assert_uint_eq(r->file, file);
    ck_assert_uint_eq(r->line, line);
}

/* The fields of another kind are zero. */
static void check_no_quote(const struct hrow *r)
{
    ck_assert_int_eq(r->bid_px, 0);
    ck_assert_int_eq(r->ask_px, 0);
    ck_assert_int_eq(r->bid_size, 0);
    ck_assert_int_eq(r->ask_size, 0);
}

static void check_no_ticker(const struct hrow *r)
{
    ck_assert_uint_eq(r->has, 0);
    ck_assert_int_eq(r->funding_ts_us, 0);
    ck_assert_int_eq(r->funding_rate_e8, 0);
    ck_assert_int_eq(r->predicted_rate_e8, 0);
    ck_assert_int_eq(r->open_interest, 0);
    ck_assert_int_eq(r->last_px, 0);
    ck_assert_int_eq(r->index_px, 0);
    ck_assert_int_eq(r->mark_px, 0);
}

static void check_trade(const struct hrow *r, int64_t ts, const char *sym, uint8_t side, px_t px,
                        qty_t size)
{
    ck_assert_int_eq(r->kind, HR_TRADE);
    ck_assert_int_eq(r->ts_us, ts);
    ck_assert_str_eq(r->symbol, sym);
    ck_assert_uint_eq(r->side, side);
    ck_assert_int_eq(r->price, px);
    ck_assert_int_eq(r->size, size);
    ck_assert(!r->snapshot);
    check_no_quote(r);
    check_no_ticker(r);
}

static void check_quote(const struct hrow *r, int64_t ts, const char *sym, qty_t bid_size,
                        px_t bid_px, px_t ask_px, qty_t ask_size)
{
    ck_assert_int_eq(r->kind, HR_QUOTE);
    ck_assert_int_eq(r->ts_us, ts);
    ck_assert_str_eq(r->symbol, sym);
    ck_assert_int_eq(r->bid_size, bid_size);
    ck_assert_int_eq(r->bid_px, bid_px);
    ck_assert_int_eq(r->ask_px, ask_px);
    ck_assert_int_eq(r->ask_size, ask_size);
    ck_assert_uint_eq(r->side, 0);
    ck_assert_int_eq(r->price, 0);
    ck_assert_int_eq(r->size, 0);
    check_no_ticker(r);
}

/* A reader of what a source reports, through a memory stream. */
struct report {
    FILE *f;
    char *text;
    size_t len;
};

static void report_open(struct report *r)
{
    r->text = NULL;
    r->len = 0;
    r->f = open_memstream(&r->text, &r->len);
    ck_assert_ptr_nonnull(r->f);
}

static const char *report_text(struct report *r)
{
    fflush(r->f);
    return r->text ? r->text : "";
}

static void report_close(struct report *r)
{
    fclose(r->f);
    free(r->text);
}

static uint32_t count_lines(const char *text)
{
    uint32_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* ---- hsource_parse_dump_time ---------------------------------------------------- */

static int dump_time(const char *text, int64_t *us)
{
    *us = -42;
    return hsource_parse_dump_time(text, strlen(text), us);
}

START_TEST(dump_time_forms)
{
    int64_t us;
    ck_assert_int_eq(dump_time("2024-01-15D00:00:00.451986388", &us), 0);
    ck_assert_int_eq(us, T0 + 451986);
    ck_assert_int_eq(dump_time("2024-01-15D00:00:00.451986999", &us), 0);
    ck_assert_int_eq(us, T0 + 451986); /* truncated, not rounded */
    ck_assert_int_eq(dump_time("2024-01-15D00:00:01.5", &us), 0);
    ck_assert_int_eq(us, T0 + 1500000);
    ck_assert_int_eq(dump_time("2024-01-15D13:07:09", &us), 0);
    ck_assert_int_eq(us, T0 + (13 * 3600 + 7 * 60 + 9) * INT64_C(1000000));
    ck_assert_int_eq(dump_time("2024-02-29D23:59:59.999999999", &us), 0);
    ck_assert_int_eq(us, INT64_C(1709251199999999));
    ck_assert_int_eq(dump_time("1970-01-01D00:00:00.000001", &us), 0);
    ck_assert_int_eq(us, 1);
    ck_assert_int_eq(dump_time("9999-12-31D23:59:59.999999", &us), 0);
    ck_assert_int_eq(us, INT64_C(253402300799999999));

    static const char *const refused[] = {
        "",
        "2024-13-01D00:00:00.000000000",  /* month 13 */
        "2024-00-01D00:00:00",            /* month 0 */
        "2023-02-29D00:00:00",            /* not a leap year */
        "2024-04-31D00:00:00",            /* April has 30 days */
        "2024-01-15T00:00:00.451986388",  /* no D */
        "2024-01-15 00:00:00.451986388",
        "2024-01-15D00:00:00.4519863881", /* 10 fraction digits */
        "2024-01-15D00:00:00.",           /* a point and no digit */
        "2024-01-15D24:00:00",
        "2024-01-15D00:60:00",
        "2024-01-15D00:00:60",            /* no leap second */
        "1969-12-31D23:59:59",            /* before the epoch */
        "2024-01-15D00:00:00Z",
        "2024-01-15D00:00:00.45198638x",
        "2024-1-15D00:00:00.000",
        "2024-01-15",
        " 2024-01-15D00:00:00",
        "2024-01-15D00:00:00,5",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ck_assert_msg(dump_time(refused[i], &us) == -1, "\"%s\" was read", refused[i]);
        ck_assert_int_eq(us, -42); /* untouched */
    }
    /* the length counts, not a NUL */
    ck_assert_int_eq(hsource_parse_dump_time("2024-01-15D00:00:00.5,XBTUSD", 21, &us), 0);
    ck_assert_int_eq(us, T0 + 500000);
    ck_assert_int_eq(hsource_parse_dump_time(NULL, 0, &us), -1);
}
END_TEST

/* ---- the formats -------------------------------------------------------------- */

static void bitmex_trades(bool gz)
{
    char path[PATHCAP], path10[PATHCAP];
    put_file(path, gz ? "trade.csv.gz" : "trade.csv",
             BITMEX_TRADE_HEAD
             "2024-01-15D00:00:00.451986388,XBTUSD,Buy,100,42000.5,PlusTick,"
             "00000000-006d-1000-0000-0009e0d2b1a1,238100,0.002381,100,Regular\n"
             "2024-01-15D00:00:00.451986999,XBTUSD,Sell,2500.0,41999,MinusTick,"
             "00000000-006d-1000-0000-0009e0d2b1a2,5952525,0.05952525,2500,Regular\n"
             "2024-01-15D00:00:02.000000000,ETHUSD,Sell,7,2500.05,ZeroMinusTick,"
             "00000000-006d-1000-0000-0009e0d2b1a3,,,,\n",
             gz);
    put_file(path10, gz ? "trade10.csv.gz" : "trade10.csv",
             BITMEX_TRADE_HEAD10 "2024-01-15D00:00:03.1,XBTUSD,Buy,1,42000,ZeroPlusTick,x,1,1,1\n",
             gz);
    const char *paths[] = {path, path10};
    struct hsource *s = open_n(paths, 2, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_BITMEX_TRADE);
    ck_assert_int_eq(hsource_format(s, 1), HF_BITMEX_TRADE);
    ck_assert_str_eq(hsource_path(s, 1), path10);
    ck_assert_ptr_null(hsource_path(s, 2));
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 4);
    check_trade(&rows[0], T0 + 451986, "XBTUSD", SIDE_BUY, 4200050000000, 100);
    check_where(&rows[0], 0, 2);
    check_trade(&rows[1], T0 + 451986, "XBTUSD", SIDE_SELL, PX(41999), 2500);
    check_where(&rows[1], 0, 3);
    check_trade(&rows[2], T0 + 2000000, "ETHUSD", SIDE_SELL, 250005000000, 7);
    check_where(&rows[2], 0, 4);
    check_trade(&rows[3], T0 + 3100000, "XBTUSD", SIDE_BUY, PX(42000), 1);
    check_where(&rows[3], 1, 2);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.rows, 4);
    ck_assert_uint_eq(st.skipped, 0);
    ck_assert_uint_eq(st.outside, 0);
    ck_assert_uint_eq(st.bytes_total, file_size(path) + file_size(path10));
    ck_assert_uint_eq(st.bytes_in, st.bytes_total);
    hsource_close(s);
}

START_TEST(bitmex_trade_plain)
{
    bitmex_trades(false);
}
END_TEST

START_TEST(bitmex_trade_gzip)
{
    bitmex_trades(true);
}
END_TEST

static void bitmex_quotes(bool gz)
{
    char path[PATHCAP];
    put_file(path, gz ? "quote.csv.gz" : "quote.csv",
             BITMEX_QUOTE_HEAD
             "2024-01-15D00:00:00.451986388,XBTUSD,1200,42000.5,42001,54300\n"
             "2024-01-15D00:00:00.500000000,XBTUSD,,,42001,54300\n"   /* no bid */
             "2024-01-15D00:00:00.600000000,XBTUSD,1200,42000.5,,\n"  /* no ask */
             "2024-01-15D00:00:00.700000000,XBTUSD,0,42000.5,42001,54300.0\n" /* bid size 0 */
             "2024-01-15D00:00:00.800000000,ETHUSD,15,2500.05,2500.1,20\n",
             gz);
    struct hsource *s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_BITMEX_QUOTE);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 5);
    check_quote(&rows[0], T0 + 451986, "XBTUSD", 1200, 4200050000000, PX(42001), 54300);
    check_quote(&rows[1], T0 + 500000, "XBTUSD", 0, 0, PX(42001), 54300);
    check_quote(&rows[2], T0 + 600000, "XBTUSD", 1200, 4200050000000, 0, 0);
    check_quote(&rows[3], T0 + 700000, "XBTUSD", 0, 0, PX(42001), 54300);
    check_quote(&rows[4], T0 + 800000, "ETHUSD", 15, 250005000000, 250010000000, 20);
    for (uint32_t i = 0; i < 5; i++)
        check_where(&rows[i], 0, i + 2);
    hsource_close(s);
}

START_TEST(bitmex_quote_plain)
{
    bitmex_quotes(false);
}
END_TEST

START_TEST(bitmex_quote_gzip)
{
    bitmex_quotes(true);
}
END_TEST

START_TEST(tardis_trades)
{
    char path[PATHCAP];
    put_file(path, "trades.csv.gz",
             TARDIS_TRADES_HEAD
             "bitmex,XBTUSD,1705276800451986,1705276800460123,"
             "00000000-006d-1000-0000-0009e0d2b1a1,buy,42000.5,100\n"
             "bitmex,ETHUSD,1705276800500000,1705276800510000,,sell,2500.05,3.0\n"
             "bitmex,XBTUSD,1705276800600000,1705276800610000,x,unknown,42000.5,100\n"
             "bitmex,XBTUSD,1705276800700000,1705276800710000,x,buy,42000.5,0\n"
             "bitmex,XBTUSD,1705276800800000,1705276800810000,x,sell,1e3,2\n",
             true);
    struct report rep;
    report_open(&rep);
    struct hsource_opts o = {.report = rep.f};
    struct hsource *s = open_1(path, &o);
    ck_assert_int_eq(hsource_format(s, 0), HF_TARDIS_TRADES);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 3);
    check_trade(&rows[0], T0 + 451986, "XBTUSD", SIDE_BUY, 4200050000000, 100);
    check_where(&rows[0], 0, 2);
    check_trade(&rows[1], T0 + 500000, "ETHUSD", SIDE_SELL, 250005000000, 3);
    check_where(&rows[1], 0, 3);
    check_trade(&rows[2], T0 + 800000, "XBTUSD", SIDE_SELL, PX(1000), 2);
    check_where(&rows[2], 0, 6);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 2);
    char want[2 * PATHCAP + 200];
    snprintf(want, sizeof(want),
             "perpsim: %s:4: bad side \"unknown\" (skipped)\n"
             "perpsim: %s:5: bad amount \"0\" (skipped)\n",
             path, path);
    ck_assert_str_eq(report_text(&rep), want);
    hsource_close(s);
    report_close(&rep);
}
END_TEST

START_TEST(tardis_quotes)
{
    char path[PATHCAP];
    put_file(path, "quotes.csv",
             TARDIS_QUOTES_HEAD
             "bitmex,XBTUSD,1705276800451986,1705276800460123,54300,42001,42000.5,1200\n"
             "bitmex,XBTUSD,1705276800500000,1705276800510000,,,42000.5,1200\n"
             "bitmex,XBTUSD,1705276800600000,1705276800610000,54300,42001,,\n"
             "bitmex,XBTUSD,1705276800700000,1705276800710000,54300,,42000.5,1200\n",
             false);
    struct hsource *s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_TARDIS_QUOTES);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 3);
    check_quote(&rows[0], T0 + 451986, "XBTUSD", 1200, 4200050000000, PX(42001), 54300);
    check_quote(&rows[1], T0 + 500000, "XBTUSD", 1200, 4200050000000, 0, 0);
    check_quote(&rows[2], T0 + 600000, "XBTUSD", 0, 0, PX(42001), 54300);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 1); /* an amount without a price */
    hsource_close(s);
}
END_TEST

static void check_book(const struct hrow *r, int64_t ts, bool snapshot, uint8_t side, px_t px,
                       qty_t size)
{
    ck_assert_int_eq(r->kind, HR_BOOK);
    ck_assert_int_eq(r->ts_us, ts);
    ck_assert_str_eq(r->symbol, "XBTUSD");
    ck_assert_int_eq(r->snapshot, snapshot);
    ck_assert_uint_eq(r->side, side);
    ck_assert_int_eq(r->price, px);
    ck_assert_int_eq(r->size, size);
    check_no_quote(r);
    check_no_ticker(r);
}

START_TEST(tardis_book)
{
    char path[PATHCAP];
    put_file(path, "book.csv.gz",
             TARDIS_BOOK_HEAD
             "bitmex,XBTUSD,1705276800000000,1705276800001000,true,bid,42000.5,1200\n"
             "bitmex,XBTUSD,1705276800000000,1705276800001000,true,ask,42001,300\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,false,ask,42001,0\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,yes,ask,42001,5\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,false,buy,42001,5\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,false,bid,42001,-1\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,false,bid,-42001,1\n"
             "bitmex,XBTUSD,1705276802000000,1705276802001000,false,bid,42000,25\n",
             true);
    struct hsource *s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_TARDIS_BOOK);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 4);
    check_book(&rows[0], T0, true, SIDE_BUY, 4200050000000, 1200);
    check_book(&rows[1], T0, true, SIDE_SELL, PX(42001), 300);
    check_book(&rows[2], T0 + 1000000, false, SIDE_SELL, PX(42001), 0);
    check_book(&rows[3], T0 + 2000000, false, SIDE_BUY, PX(42000), 25);
    check_where(&rows[3], 0, 9);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 4);
    hsource_close(s);
}
END_TEST

START_TEST(tardis_ticker)
{
    char path[PATHCAP];
    put_file(path, "ticker.csv",
             TARDIS_TICKER_HEAD
             "bitmex,XBTUSD,1705276800000000,1705276800001000,1705305600000000,0.0001,"
             "0.000123456789,5000000000,42000.5,41990.12,42001.37\n"
             "bitmex,XBTUSD,1705276801000000,1705276801001000,,1e-05,,123.0,,,42001.5\n"
             "bitmex,XBTUSD,1705276802000000,1705276802001000,,,,,,,\n"
             "bitmex,XBTUSD,1705276803000000,1705276803001000,,-0.000000005,2.5E-9,,,42000.123,\n"
             "bitmex,XBTUSD,1705276804000000,1705276804001000,,nan,,,,,\n"
             "bitmex,XBTUSD,1705276804000000,1705276804001000,,,,,,42000.123456789,\n"
             "bitmex,XBTUSD,1705276804000000,1705276804001000,,,,1.5,,,\n"
             "bitmex,XBTUSD,1705276804000000,1705276804001000,x,,,,,,\n"
             "bitmex,XBTUSD,1705276804000000,1705276804001000,,0.00012345675,-0.000123456749,,,,\n",
             false);
    struct hsource *s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_TARDIS_TICKER);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 5);
    const struct hrow *r = &rows[0];
    ck_assert_int_eq(r->kind, HR_TICKER);
    ck_assert_int_eq(r->ts_us, T0);
    ck_assert_str_eq(r->symbol, "XBTUSD");
    ck_assert_uint_eq(r->has, HT_FUNDING_TS | HT_FUNDING_RATE | HT_PREDICTED_RATE |
                                  HT_OPEN_INTEREST | HT_LAST | HT_INDEX | HT_MARK);
    ck_assert_int_eq(r->funding_ts_us, INT64_C(1705305600000000));
    ck_assert_int_eq(r->funding_rate_e8, 10000);
    ck_assert_int_eq(r->predicted_rate_e8, 12346); /* 12345.6789 rounded */
    ck_assert_int_eq(r->open_interest, INT64_C(5000000000));
    ck_assert_int_eq(r->last_px, 4200050000000);
    ck_assert_int_eq(r->index_px, 4199012000000);
    ck_assert_int_eq(r->mark_px, 4200137000000);
    ck_assert_uint_eq(r->side, 0);
    ck_assert_int_eq(r->price, 0);
    check_no_quote(r);

    r = &rows[1];
    ck_assert_int_eq(r->ts_us, T0 + 1000000);
    ck_assert_uint_eq(r->has, HT_FUNDING_RATE | HT_OPEN_INTEREST | HT_MARK);
    ck_assert_int_eq(r->funding_ts_us, 0);
    ck_assert_int_eq(r->funding_rate_e8, 1000);
    ck_assert_int_eq(r->predicted_rate_e8, 0);
    ck_assert_int_eq(r->open_interest, 123);
    ck_assert_int_eq(r->last_px, 0);
    ck_assert_int_eq(r->index_px, 0);
    ck_assert_int_eq(r->mark_px, 4200150000000);

    r = &rows[2];
    ck_assert_int_eq(r->ts_us, T0 + 2000000);
    check_no_ticker(r);

    r = &rows[3];
    ck_assert_uint_eq(r->has, HT_FUNDING_RATE | HT_PREDICTED_RATE | HT_INDEX);
    ck_assert_int_eq(r->funding_rate_e8, -1);  /* -0.5 rounded away from zero */
    ck_assert_int_eq(r->predicted_rate_e8, 0); /* 0.25 */
    ck_assert_int_eq(r->index_px, 4200012300000);
    check_where(r, 0, 5);

    r = &rows[4];
    ck_assert_uint_eq(r->has, HT_FUNDING_RATE | HT_PREDICTED_RATE);
    ck_assert_int_eq(r->funding_rate_e8, 12346);    /* 12345.675 */
    ck_assert_int_eq(r->predicted_rate_e8, -12346); /* -12345.6749 */
    check_where(r, 0, 10);

    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 4); /* nan, 9 decimals, 1.5 contracts, x */
    hsource_close(s);
}
END_TEST

/* ---- the merge ---------------------------------------------------------------- */

/* T0 + ms as a dump's timestamp. */
static void dump_ts(char *out, size_t cap, int ms)
{
    snprintf(out, cap, "2024-01-15D00:00:%02d.%03d000000", ms / 1000, ms % 1000);
}

static void merge_files(char paths[4][PATHCAP])
{
    char q[1024], t[1024], a[4][64];
    int qms[] = {0, 1, 1, 3}, tms[] = {1, 2, 3};
    for (int i = 0; i < 4; i++)
        dump_ts(a[i], sizeof(a[i]), qms[i]);
    snprintf(q, sizeof(q),
             BITMEX_QUOTE_HEAD "%s,XBTUSD,10,42000,42000.5,20\n%s,XBTUSD,11,42000,42000.5,20\n"
                               "%s,XBTUSD,12,42000,42000.5,20\n%s,XBTUSD,13,42000,42000.5,20\n",
             a[0], a[1], a[2], a[3]);
    put_file(paths[0], "m_quote.csv", q, false);
    for (int i = 0; i < 3; i++)
        dump_ts(a[i], sizeof(a[i]), tms[i]);
    snprintf(t, sizeof(t),
             BITMEX_TRADE_HEAD "%s,XBTUSD,Buy,1,42000.5,PlusTick,a,1,1,1,Regular\n"
                               "%s,XBTUSD,Sell,2,42000,MinusTick,b,1,1,1,Regular\n"
                               "%s,XBTUSD,Buy,3,42000.5,PlusTick,c,1,1,1,Regular\n",
             a[0], a[1], a[2]);
    put_file(paths[1], "m_trade.csv.gz", t, true);
    put_file(paths[2], "m_tardis.csv",
             TARDIS_TRADES_HEAD "bitmex,XBTUSD,1705276800001000,1705276800002000,x,sell,42000,4\n"
                                "bitmex,XBTUSD,1705276800003000,1705276800004000,y,buy,42000.5,5\n",
             false);
    put_file(paths[3], "m_ticker.csv.gz",
             TARDIS_TICKER_HEAD "bitmex,XBTUSD,1705276800000000,1705276800000500,,,,,42000,,\n"
                                "bitmex,XBTUSD,1705276800001000,1705276800001500,,,,,42000.5,,\n",
             true);
}

START_TEST(merge_order)
{
    char paths[4][PATHCAP];
    merge_files(paths);
    const char *p[4] = {paths[0], paths[1], paths[2], paths[3]};
    struct hsource *s = open_n(p, 4, NULL);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 11);
    /* (file, line): at each microsecond trades first, in file order */
    static const int want[11][2] = {{0, 2}, {3, 2}, {1, 2}, {2, 2}, {0, 3}, {0, 4},
                                    {3, 3}, {1, 3}, {1, 4}, {2, 3}, {0, 5}};
    static const int64_t want_ms[11] = {0, 0, 1, 1, 1, 1, 1, 2, 3, 3, 3};
    for (int i = 0; i < 11; i++) {
        ck_assert_msg(rows[i].file == want[i][0] && rows[i].line == (uint64_t)want[i][1],
                      "row %d is %u:%" PRIu64 ", expected %d:%d", i, rows[i].file, rows[i].line,
                      want[i][0], want[i][1]);
        ck_assert_int_eq(rows[i].ts_us, T0 + want_ms[i] * 1000);
    }
    ck_assert_int_eq(rows[2].size, 1);
    ck_assert_int_eq(rows[3].size, 4);
    ck_assert_int_eq(rows[4].bid_size, 11);
    ck_assert_int_eq(rows[5].bid_size, 12);
    ck_assert_int_eq(rows[6].last_px, 4200050000000);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.rows, 11);
    ck_assert_uint_eq(st.bytes_total, file_size(p[0]) + file_size(p[1]) + file_size(p[2]) +
                                          file_size(p[3]));
    ck_assert_uint_eq(st.bytes_in, st.bytes_total);
    /* the end stays the end */
    char err[ERRCAP];
    struct hrow r;
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), 0);
    hsource_close(s);

    /* the files the other way round: the kinds still come first, then the
     * new file order (the Tardis trades are now file 1, the dump's file 2) */
    const char *rev[4] = {paths[3], paths[2], paths[1], paths[0]};
    s = open_n(rev, 4, NULL);
    ck_assert_uint_eq(read_rows(s, rows), 11);
    static const int want_rev[11][2] = {{3, 2}, {0, 2}, {1, 2}, {2, 2}, {3, 3}, {3, 4},
                                        {0, 3}, {2, 3}, {1, 3}, {2, 4}, {3, 5}};
    for (int i = 0; i < 11; i++)
        ck_assert_msg(rows[i].file == want_rev[i][0] && rows[i].line == (uint64_t)want_rev[i][1],
                      "reversed: row %d is %u:%" PRIu64 ", expected %d:%d", i, rows[i].file,
                      rows[i].line, want_rev[i][0], want_rev[i][1]);
    hsource_close(s);
}
END_TEST

START_TEST(from_to)
{
    char paths[4][PATHCAP];
    merge_files(paths);
    const char *p[4] = {paths[0], paths[1], paths[2], paths[3]};
    struct hsource_opts o = {.from_us = T0 + 1000, .to_us = T0 + 3000};
    struct hsource *s = open_n(p, 4, &o);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 6);
    static const int want[6][2] = {{1, 2}, {2, 2}, {0, 3}, {0, 4}, {3, 3}, {1, 3}};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(rows[i].file == want[i][0] && rows[i].line == (uint64_t)want[i][1],
                      "row %d is %u:%" PRIu64 ", expected %d:%d", i, rows[i].file, rows[i].line,
                      want[i][0], want[i][1]);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.rows, 6);
    ck_assert_uint_eq(st.outside, 5); /* quote 2 and 5, trade 4, Tardis 3, ticker 2 */
    ck_assert_uint_eq(st.skipped, 0);
    hsource_close(s);

    /* a bound inside one microsecond's rows, and to_us 0: no upper bound */
    o = (struct hsource_opts){.from_us = T0 + 3000, .to_us = 0};
    s = open_n(p, 4, &o);
    ck_assert_uint_eq(read_rows(s, rows), 3);
    check_where(&rows[0], 1, 4);
    check_where(&rows[1], 2, 3);
    check_where(&rows[2], 0, 5);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.outside, 8);
    hsource_close(s);

    /* nothing inside */
    o = (struct hsource_opts){.from_us = T0 + 10000, .to_us = INT64_MAX};
    s = open_n(p, 4, &o);
    ck_assert_uint_eq(read_rows(s, rows), 0);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.outside, 11);
    hsource_close(s);
}
END_TEST

/* ---- bad lines ------------------------------------------------------------------ */

/* A quote file with one bad line of each kind, some lines CRLF, the last
 * without its newline: the text and its length (it holds a NUL). */
static size_t bad_quote_file(char *out, size_t cap)
{
    char longline[5001];
    memset(longline, 'x', 5000);
    longline[5000] = '\0';
    int n = snprintf(out, cap,
                     BITMEX_QUOTE_HEAD
                     "2024-01-15D00:00:00.000000000,XBTUSD,100,42000.5,42001,200\r\n" /* 2 good */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,42000.5,42001\n"       /* 3 */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,,42001,200\n"          /* 4 */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,42000.5x,42001,200\n"  /* 5 */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,0,42001,200\n"         /* 6 */
                     "2024-01-15D00:00:00.001000000,XBTUSD,-100,42000.5,42001,200\n"  /* 7 */
                     "2024-01-15D00:00:00.001000000,XBTUSDXBTUSDXBTUSDXBTUSDXBTUSDXB,"
                     "100,42000.5,42001,200\n"                                          /* 8 */
                     "%s\n"                                                             /* 9 */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,42000.5,42001,2@0\n"   /* 10 NUL */
                     "\n"                                                               /* 11 */
                     "2024-01-15X00:00:00.001000000,XBTUSD,100,42000.5,42001,200\n"   /* 12 */
                     "2024-01-15D00:00:00.002000000,XBTUSD,101,42000.5,42001,200\n"   /* 13 good */
                     "2024-01-15D00:00:00.001000000,XBTUSD,100,42000.5,42001,200\n"   /* 14 back */
                     "2024-01-15D00:00:00.002000000,XBTUSD,100,42000.123456789,42001,200\n"
                     "2024-01-15D00:00:00.002000000,XBTUSD,100.5,42000.5,42001,200\n" /* 16 */
                     "2024-01-15D00:00:00.003000000,XBTUSD,102,42000.5,42001,200\r\n" /* 17 good */
                     "2024-01-15D00:00:00.004000000,XBTUSD,103,42000.5,42001,200",    /* 18 good */
                     longline);
    ck_assert(n > 0 && (size_t)n < cap);
    char *nul = strstr(out, "2@0");
    ck_assert_ptr_nonnull(nul);
    nul[1] = '\0';
    return (size_t)n;
}

static void bad_lines(bool gz)
{
    static char text[8192];
    size_t n = bad_quote_file(text, sizeof(text));
    char path[PATHCAP];
    put_bytes(path, gz ? "bad.csv.gz" : "bad.csv", text, n, gz);
    struct report rep;
    report_open(&rep);
    struct hsource_opts o = {.report = rep.f};
    struct hsource *s = open_1(path, &o);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 4);
    check_quote(&rows[0], T0, "XBTUSD", 100, 4200050000000, PX(42001), 200);
    check_where(&rows[0], 0, 2);
    check_quote(&rows[1], T0 + 2000, "XBTUSD", 101, 4200050000000, PX(42001), 200);
    check_where(&rows[1], 0, 13);
    check_quote(&rows[2], T0 + 3000, "XBTUSD", 102, 4200050000000, PX(42001), 200);
    check_where(&rows[2], 0, 17);
    check_quote(&rows[3], T0 + 4000, "XBTUSD", 103, 4200050000000, PX(42001), 200);
    check_where(&rows[3], 0, 18);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 13);
    ck_assert_uint_eq(st.rows, 4);

    static const struct {
        int line;
        const char *why;
    } want[] = {
        {3, "5 fields, expected 6"},
        {4, "empty bidPrice"},
        {5, "bad bidPrice \"42000.5x\""},
        {6, "bad bidPrice \"0\""},
        {7, "bad bidSize \"-100\""},
        {8, "symbol longer than 31 characters"},
        {9, "a line longer than 4096 bytes"},
        {10, "a NUL byte"},
        {11, "an empty line"},
        {12, "bad timestamp \"2024-01-15X00:00:00.001000000\""},
        {14, "time goes back"},
        {15, "bad bidPrice \"42000.123456789\""},
        {16, "bad bidSize \"100.5\""},
    };
    char expect[16384] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        len += (size_t)snprintf(expect + len, sizeof(expect) - len, "perpsim: %s:%d: %s (skipped)\n",
                                path, want[i].line, want[i].why);
    ck_assert_str_eq(report_text(&rep), expect);
    hsource_close(s);
    report_close(&rep);
}

START_TEST(bad_lines_plain)
{
    bad_lines(false);
}
END_TEST

START_TEST(bad_lines_gzip)
{
    bad_lines(true);
}
END_TEST

START_TEST(bad_trade_lines)
{
    char path[PATHCAP];
    put_file(path, "badtrade.csv",
             BITMEX_TRADE_HEAD
             "2024-01-15D00:00:00.000000000,XBTUSD,buy,100,42000.5,PlusTick,a,1,1,1,Regular\n"
             "2024-01-15D00:00:00.000000000,XBTUSD,Buy,0,42000.5,PlusTick,a,1,1,1,Regular\n"
             "2024-01-15D00:00:00.000000000,XBTUSD,Buy,100,42000.5,PlusTick,a,1,1,1\n"
             "2024-01-15D00:00:00.000000000,,Buy,100,42000.5,PlusTick,a,1,1,1,Regular\n"
             "2024-01-15D00:00:00.000000000,XBT USD,Buy,100,42000.5,PlusTick,a,1,1,1,Regular\n"
             "2024-01-15D00:00:00.000000000,XBTUSD,Sell,5,1e400,PlusTick,a,1,1,1,Regular\n"
             "2024-01-15D00:00:00.000000000,XBTUSD,Sell,5,42000.5,PlusTick,a,1,1,1,Regular\n",
             false);
    struct report rep;
    report_open(&rep);
    struct hsource_opts o = {.report = rep.f};
    struct hsource *s = open_1(path, &o);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 1);
    check_trade(&rows[0], T0, "XBTUSD", SIDE_SELL, 4200050000000, 5);
    check_where(&rows[0], 0, 8);
    char expect[4096];
    snprintf(expect, sizeof(expect),
             "perpsim: %s:2: bad side \"buy\" (skipped)\n"
             "perpsim: %s:3: bad size \"0\" (skipped)\n"
             "perpsim: %s:4: 10 fields, expected 11 (skipped)\n"
             "perpsim: %s:5: empty symbol (skipped)\n"
             "perpsim: %s:6: bad symbol \"XBT USD\" (skipped)\n"
             "perpsim: %s:7: bad price \"1e400\" (skipped)\n",
             path, path, path, path, path, path);
    ck_assert_str_eq(report_text(&rep), expect);
    hsource_close(s);
    report_close(&rep);
}
END_TEST

START_TEST(report_is_capped)
{
    char text[8192], path[PATHCAP];
    size_t n = (size_t)snprintf(text, sizeof(text), "%s", BITMEX_QUOTE_HEAD);
    for (int i = 0; i < HSOURCE_REPORT_MAX + 5; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "2024-01-15D00:00:00.%09d,XBTUSD,1\n", i);
    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "2024-01-15D00:00:01.000000000,XBTUSD,1,42000,42000.5,1\n");
    put_bytes(path, "many.csv.gz", text, n, true);
    struct report rep;
    report_open(&rep);
    struct hsource_opts o = {.report = rep.f};
    struct hsource *s = open_1(path, &o);
    struct hrow rows[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, rows), 1);
    check_where(&rows[0], 0, HSOURCE_REPORT_MAX + 7);
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, HSOURCE_REPORT_MAX + 5);
    const char *r = report_text(&rep);
    ck_assert_uint_eq(count_lines(r), HSOURCE_REPORT_MAX);
    char last[PATHCAP + 64];
    snprintf(last, sizeof(last), "perpsim: %s:%d: 3 fields, expected 6 (skipped)\n", path,
             HSOURCE_REPORT_MAX + 1);
    ck_assert_ptr_nonnull(strstr(r, last));
    hsource_close(s);
    report_close(&rep);

    /* no report: only counted */
    o.report = NULL;
    s = open_1(path, &o);
    ck_assert_uint_eq(read_rows(s, rows), 1);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, HSOURCE_REPORT_MAX + 5);
    hsource_close(s);
}
END_TEST

START_TEST(line_ends)
{
    char path[PATHCAP];
    struct hrow rows[ROWS_MAX];
    struct hsource_stats st;
    /* empty lines at the very end (LF and CRLF) are the end, not bad lines */
    put_file(path, "tail.csv",
             TARDIS_QUOTES_HEAD "bitmex,XBTUSD,1705276800000000,1705276800000000,1,2,1,1\r\n\n\r\n\n",
             false);
    struct hsource *s = open_1(path, NULL);
    ck_assert_uint_eq(read_rows(s, rows), 1);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 0);
    hsource_close(s);
    /* an empty line before a row is one */
    put_file(path, "gap.csv.gz",
             TARDIS_QUOTES_HEAD "bitmex,XBTUSD,1705276800000000,1705276800000000,1,2,1,1\n\n"
                                "bitmex,XBTUSD,1705276800000000,1705276800000000,1,2,1,1\n",
             true);
    s = open_1(path, NULL);
    ck_assert_uint_eq(read_rows(s, rows), 2);
    check_where(&rows[1], 0, 4);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 1);
    hsource_close(s);
    /* a header only, with CRLF and a byte order mark */
    put_file(path, "head.csv", "\xEF\xBB\xBF" "timestamp,symbol,bidSize,bidPrice,askPrice,askSize\r\n",
             false);
    s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_BITMEX_QUOTE);
    ck_assert_uint_eq(read_rows(s, rows), 0);
    hsource_close(s);
    /* a header without a newline */
    put_file(path, "head2.csv.gz", "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
             true);
    s = open_1(path, NULL);
    ck_assert_int_eq(hsource_format(s, 0), HF_TARDIS_TRADES);
    ck_assert_uint_eq(read_rows(s, rows), 0);
    hsource_close(s);
    /* a long line as the last, without its newline */
    char text[20000];
    int n = snprintf(text, sizeof(text), "%s", TARDIS_TRADES_HEAD);
    memset(text + n, '7', 10000);
    text[n + 10000] = '\0';
    put_file(path, "longlast.csv.gz", text, true);
    s = open_1(path, NULL);
    ck_assert_uint_eq(read_rows(s, rows), 0);
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.skipped, 1);
    hsource_close(s);
}
END_TEST

START_TEST(strict_fails)
{
    char path[PATHCAP], other[PATHCAP];
    put_file(path, "strict.csv.gz",
             BITMEX_QUOTE_HEAD "2024-01-15D00:00:00.000000000,XBTUSD,100,42000.5,42001,200\n"
                               "2024-01-15D00:00:00.002000000,XBTUSD,100,42000.5,42001,200\n"
                               "2024-01-15D00:00:00.003000000,XBTUSD,100,42000.5,42001\n"
                               "2024-01-15D00:00:00.004000000,XBTUSD,100,42000.5,42001,200\n",
             true);
    put_file(other, "strict_other.csv",
             TARDIS_TRADES_HEAD "bitmex,XBTUSD,1705276800001000,1705276800001000,x,buy,42000.5,1\n"
                                "bitmex,XBTUSD,1705276800005000,1705276800005000,x,buy,42000.5,1\n",
             false);
    const char *p[2] = {path, other};
    struct report rep;
    report_open(&rep);
    struct hsource_opts o = {.strict = true, .report = rep.f};
    struct hsource *s = open_n(p, 2, &o);
    char err[ERRCAP];
    struct hrow r;
    /* every row before the bad line in the stream's order comes out first */
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), 1);
    check_where(&r, 0, 2);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), 1);
    check_where(&r, 1, 2);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), 1);
    check_where(&r, 0, 3);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), -1);
    char want[PATHCAP + 64];
    snprintf(want, sizeof(want), "%s:4: 5 fields, expected 6", path);
    ck_assert_str_eq(err, want);
    /* and stays failed */
    err[0] = '\0';
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(report_text(&rep), ""); /* failing is not skipping */
    struct hsource_stats st;
    hsource_stats(s, &st);
    ck_assert_uint_eq(st.rows, 3);
    ck_assert_uint_eq(st.skipped, 0);
    hsource_close(s);
    report_close(&rep);

    /* time going back is fatal too, and a bad first row fails the first call */
    put_file(path, "strict2.csv",
             TARDIS_TRADES_HEAD "bitmex,XBTUSD,1705276800001000,1705276800001000,x,unknown,42000.5,1\n",
             false);
    s = open_1(path, &o);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: bad side \"unknown\"", path);
    ck_assert_str_eq(err, want);
    hsource_close(s);
    put_file(path, "strict3.csv",
             TARDIS_TRADES_HEAD "bitmex,XBTUSD,1705276800001000,1705276800001000,x,buy,42000.5,1\n"
                                "bitmex,XBTUSD,1705276800000999,1705276800001000,x,buy,42000.5,1\n",
             false);
    s = open_1(path, &o);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), 1);
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: time goes back", path);
    ck_assert_str_eq(err, want);
    hsource_close(s);
}
END_TEST

/* ---- fatal ---------------------------------------------------------------------- */

/* A gzip file of n quote rows; its bytes in *out (malloc'd). */
static unsigned char *quote_gzip(const char *name, int n, char *path, size_t *len)
{
    size_t cap = (size_t)n * 80 + 100, at = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    at += (size_t)snprintf(text, cap, "%s", BITMEX_QUOTE_HEAD);
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(text + at, cap - at,
                               "2024-01-15D%02d:%02d:%02d.%06d000,XBTUSD,%d,42000.5,42001,%d\n",
                               i / 3600000 % 24, i / 60000 % 60, i / 1000 % 60, i % 1000 * 1000,
                               100 + i % 997, 200 + i % 991);
    put_bytes(path, name, text, at, true);
    free(text);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    *len = file_size(path);
    unsigned char *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void expect_fatal_read(const char *path, uint64_t most_rows, const char *what)
{
    struct hsource *s = open_1(path, NULL); /* not strict: still fatal */
    char err[ERRCAP];
    uint64_t rows;
    read_to_error(s, err, sizeof(err), &rows);
    ck_assert_uint_le(rows, most_rows);
    char want[PATHCAP + 64];
    snprintf(want, sizeof(want), "%s: ", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error \"%s\" does not start with the path",
                  err);
    if (what)
        ck_assert_msg(strstr(err, what) != NULL, "error \"%s\" does not say \"%s\"", err, what);
    struct hrow r;
    ck_assert_int_eq(hsource_next(s, &r, err, sizeof(err)), -1);
    hsource_close(s);
}

START_TEST(gzip_cut_or_damaged)
{
    char path[PATHCAP], cut[PATHCAP];
    size_t len;
    unsigned char *b = quote_gzip("whole.csv.gz", 20000, path, &len);
    ck_assert_uint_gt(len, 4000);
    /* the whole file reads */
    struct hsource *s = open_1(path, NULL);
    char err[ERRCAP];
    struct hrow r;
    uint64_t n = 0;
    int rc;
    while ((rc = hsource_next(s, &r, err, sizeof(err))) == 1)
        n++;
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(n, 20000);
    hsource_close(s);

    /* cut in the middle */
    put_bytes(cut, "cut.csv.gz", (const char *)b, len / 2, false);
    expect_fatal_read(cut, 19999, "cut short");
    /* only the trailer (CRC and length) missing: every row is there, still fatal */
    put_bytes(cut, "cut8.csv.gz", (const char *)b, len - 8, false);
    expect_fatal_read(cut, 20000, "cut short");
    /* cut inside the header: fatal at open */
    put_bytes(cut, "cut5.csv.gz", (const char *)b, 5, false);
    const char *p = cut;
    s = hsource_open(&p, 1, NULL, err, sizeof(err));
    if (s != NULL) {
        expect_fatal_read(cut, 0, NULL);
        hsource_close(s);
    } else {
        ck_assert_msg(strstr(err, cut) == err, "%s", err);
    }
    /* damaged: bytes in the middle changed; the CRC at the end is the last
     * word */
    for (size_t k = 0; k < 16; k++)
        b[len / 2 + k] ^= 0x5a;
    put_bytes(cut, "damaged.csv.gz", (const char *)b, len, false);
    expect_fatal_read(cut, 20000, NULL);
    free(b);
}
END_TEST

START_TEST(open_errors)
{
    char good[PATHCAP], path[PATHCAP], err[ERRCAP], want[PATHCAP + 64];
    put_file(good, "good.csv", BITMEX_QUOTE_HEAD, false);
    const char *p[2] = {good, path};

    put_file(path, "unknown.csv.gz", "timestamp,symbol,side,size,price\n2024,XBTUSD,Buy,1,1\n",
             true);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: unknown header \"timestamp,symbol,side,size,price\"", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

    /* a header one column short, and one with spaces */
    put_file(path, "short.csv", "timestamp,symbol,bidSize,bidPrice,askPrice\n", false);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "unknown header"));
    put_file(path, "spaces.csv", "timestamp, symbol, bidSize, bidPrice, askPrice, askSize\n", false);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "unknown header"));

    snprintf(path, sizeof(path), "%s/missing.csv.gz", dir);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: cannot open: ", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

    put_file(path, "empty.csv", "", false);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: empty file (no header line)", path);
    ck_assert_str_eq(err, want);

    put_file(path, "emptygz.csv.gz", "", true);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: empty file (no header line)", path);
    ck_assert_str_eq(err, want);

    snprintf(path, sizeof(path), "%s", dir);
    ck_assert_ptr_null(hsource_open(p, 2, NULL, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: is a directory", path);
    ck_assert_str_eq(err, want);

    ck_assert_ptr_null(hsource_open(p, 0, NULL, err, sizeof(err)));
    ck_assert_ptr_null(hsource_open(p, HSOURCE_FILES_MAX + 1, NULL, err, sizeof(err)));
    /* the good one alone opens */
    struct hsource *s = hsource_open(p, 1, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    hsource_close(s);
    hsource_close(NULL);
}
END_TEST

/* ---- numbers ------------------------------------------------------------------- */

/* A random number's text: mostly well formed, some not. */
static size_t random_number(struct rng *g, char *out)
{
    static const char digits[] = "0123456789";
    size_t n = 0;
    if (rnd(g) % 10 == 0)
        out[n++] = '-';
    int nint = (int)range(g, 0, rnd(g) % 4 == 0 ? 22 : 6);
    for (int i = 0; i < nint; i++)
        out[n++] = digits[rnd(g) % (i == 0 && rnd(g) % 2 ? 9 : 10) + (i == 0 && rnd(g) % 2)];
    if (rnd(g) % 2) {
        out[n++] = '.';
        int nfrac = (int)range(g, 0, rnd(g) % 4 == 0 ? 14 : 9);
        for (int i = 0; i < nfrac; i++)
            out[n++] = rnd(g) % 3 == 0 ? '0' : digits[rnd(g) % 10];
    }
    if (rnd(g) % 12 == 0)
        n += (size_t)sprintf(out + n, "e%s%d", rnd(g) % 2 ? "-" : "", (int)range(g, 0, 12));
    if (rnd(g) % 40 == 0)
        out[n++] = "x+ "[rnd(g) % 3];
    out[n] = '\0';
    return n;
}

START_TEST(numbers_as_timefmt)
{
    /* prices and sizes are read as tf_parse_fixed (scale 8) and
     * tf_parse_qty read them: the rows a random file gives, row by row */
    enum { N = 3000 };
    struct rng g = {UINT64_C(0xD1B54A32D192ED03)};
    size_t cap = (size_t)N * 160 + 200, at = 0;
    char *text = malloc(cap);
    px_t *px = calloc(N, sizeof(*px));
    qty_t *qty = calloc(N, sizeof(*qty));
    bool *ok = calloc(N, sizeof(*ok));
    ck_assert(text && px && qty && ok);
    at += (size_t)snprintf(text, cap, "%s", TARDIS_TRADES_HEAD);
    uint64_t want_rows = 0;
    for (int i = 0; i < N; i++) {
        char p[64], q[64];
        size_t pn = random_number(&g, p), qn = random_number(&g, q);
        ok[i] = tf_parse_fixed(p, pn, 8, &px[i]) == TF_OK && px[i] > 0 &&
                tf_parse_qty(q, qn, &qty[i]) == TF_OK && qty[i] > 0;
        want_rows += ok[i];
        at += (size_t)snprintf(text + at, cap - at, "bitmex,XBTUSD,%" PRId64 ",%" PRId64 ",i,buy,%s,%s\n",
                               T0 + i, T0 + i, p, q);
    }
    ck_assert_uint_gt(want_rows, N / 10);
    char path[PATHCAP];
    put_bytes(path, "numbers.csv.gz", text, at, true);
    struct hsource *s = open_1(path, NULL);
    char err[ERRCAP];
    struct hrow r;
    int rc;
    uint64_t rows = 0;
    while ((rc = hsource_next(s, &r, err, sizeof(err))) == 1) {
        int i = (int)(r.line - 2);
        ck_assert_msg(ok[i], "line %" PRIu64 " was read", r.line);
        ck_assert_int_eq(r.price, px[i]);
        ck_assert_int_eq(r.size, qty[i]);
        rows++;
    }
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(rows, want_rows);
    hsource_close(s);

    /* at the edges of int64 */
    put_file(path, "edges.csv",
             TARDIS_TRADES_HEAD
             "bitmex,XBTUSD,1,1,i,buy,92233720368.54775807,9223372036854775807\n"
             "bitmex,XBTUSD,2,2,i,buy,92233720368.54775808,1\n"
             "bitmex,XBTUSD,3,3,i,buy,99999999999,1\n"
             "bitmex,XBTUSD,4,4,i,buy,1,9223372036854775808\n"
             "bitmex,XBTUSD,5,5,i,buy,9999999999.99999999,999999999999999999\n"
             "bitmex,XBTUSD,6,6,i,buy,0000000000000000000001.5,0000000000000000000007\n",
             false);
    s = open_1(path, NULL);
    struct hrow e[ROWS_MAX];
    ck_assert_uint_eq(read_rows(s, e), 3);
    ck_assert_int_eq(e[0].price, INT64_MAX);
    ck_assert_int_eq(e[0].size, INT64_MAX);
    ck_assert_int_eq(e[1].price, INT64_C(999999999999999999));
    ck_assert_int_eq(e[1].size, INT64_C(999999999999999999));
    ck_assert_int_eq(e[2].price, 150000000);
    ck_assert_int_eq(e[2].size, 7);
    hsource_close(s);
    free(text);
    free(px);
    free(qty);
    free(ok);
}
END_TEST

/* ---- random bytes ----------------------------------------------------------------- */

START_TEST(random_bytes)
{
    static const char alphabet[] = "0123456789,,,,,..--D:eE XBTUSDbuysellBuySell\r\n\n\n\t\x01\xff";
    struct rng g = {UINT64_C(0x9E3779B97F4A7C15)};
    size_t cap = 200000;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    static const char *const heads[] = {BITMEX_TRADE_HEAD, BITMEX_QUOTE_HEAD, TARDIS_TRADES_HEAD,
                                        TARDIS_QUOTES_HEAD, TARDIS_BOOK_HEAD, TARDIS_TICKER_HEAD};
    for (int round = 0; round < 24; round++) {
        size_t n = (size_t)snprintf(text, cap, "%s", heads[round % 6]);
        size_t body = (size_t)range(&g, 0, (int64_t)(cap - n - 1));
        for (size_t i = 0; i < body; i++)
            text[n++] = rnd(&g) % 5 == 0 ? (char)rnd(&g) : alphabet[rnd(&g) % (sizeof(alphabet) - 1)];
        uint64_t lines = 1;
        for (size_t i = 0; i < n; i++)
            lines += text[i] == '\n';
        char path[PATHCAP], name[32];
        snprintf(name, sizeof(name), "random%d.csv%s", round, round % 2 ? ".gz" : "");
        put_bytes(path, name, text, n, round % 2);
        struct hsource *s = open_1(path, NULL);
        char err[ERRCAP];
        struct hrow r;
        int rc;
        int64_t last = INT64_MIN;
        while ((rc = hsource_next(s, &r, err, sizeof(err))) == 1) {
            ck_assert_int_ge(r.ts_us, last);
            last = r.ts_us;
            ck_assert_uint_le(strlen(r.symbol), HSOURCE_SYMBOL_MAX);
        }
        ck_assert_msg(rc == 0, "%s", err);
        struct hsource_stats st;
        hsource_stats(s, &st);
        ck_assert_uint_le(st.rows + st.skipped, lines);
        hsource_close(s);
    }
    free(text);

    /* random damage to a gzip file: a clean end or an error, never a crash */
    char path[PATHCAP], bad[PATHCAP];
    size_t len;
    unsigned char *b = quote_gzip("rnd.csv.gz", 3000, path, &len);
    for (int round = 0; round < 40; round++) {
        unsigned char *c = malloc(len);
        ck_assert_ptr_nonnull(c);
        memcpy(c, b, len);
        for (int k = 0; k < 1 + round % 4; k++)
            c[range(&g, 10, (int64_t)len - 1)] ^= (unsigned char)(1 + rnd(&g) % 255);
        put_bytes(bad, "rnd_bad.csv.gz", (const char *)c, len, false);
        free(c);
        char err[ERRCAP];
        const char *p = bad;
        struct hsource *s = hsource_open(&p, 1, NULL, err, sizeof(err));
        if (s == NULL)
            continue;
        struct hrow r;
        int rc;
        uint64_t n = 0;
        while ((rc = hsource_next(s, &r, err, sizeof(err))) == 1)
            n++;
        ck_assert_uint_le(n, 3000);
        if (rc < 0)
            ck_assert_msg(strstr(err, bad) == err, "%s", err);
        hsource_close(s);
    }
    free(b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("history_source");
    TCase *fmt = tcase_create("formats");
    tcase_add_checked_fixture(fmt, setup, teardown);
    tcase_add_test(fmt, dump_time_forms);
    tcase_add_test(fmt, bitmex_trade_plain);
    tcase_add_test(fmt, bitmex_trade_gzip);
    tcase_add_test(fmt, bitmex_quote_plain);
    tcase_add_test(fmt, bitmex_quote_gzip);
    tcase_add_test(fmt, tardis_trades);
    tcase_add_test(fmt, tardis_quotes);
    tcase_add_test(fmt, tardis_book);
    tcase_add_test(fmt, tardis_ticker);
    tcase_add_test(fmt, numbers_as_timefmt);
    suite_add_tcase(s, fmt);
    TCase *order = tcase_create("order");
    tcase_add_checked_fixture(order, setup, teardown);
    tcase_add_test(order, merge_order);
    tcase_add_test(order, from_to);
    suite_add_tcase(s, order);
    TCase *bad = tcase_create("bad_input");
    tcase_set_timeout(bad, 60);
    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, bad_lines_plain);
    tcase_add_test(bad, bad_lines_gzip);
    tcase_add_test(bad, bad_trade_lines);
    tcase_add_test(bad, report_is_capped);
    tcase_add_test(bad, line_ends);
    tcase_add_test(bad, strict_fails);
    tcase_add_test(bad, gzip_cut_or_damaged);
    tcase_add_test(bad, open_errors);
    tcase_add_test(bad, random_bytes);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
