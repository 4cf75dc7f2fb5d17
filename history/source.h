/*
 * source.h - market history read from files: BitMEX's public daily dumps
 * and Tardis.dev's normalized CSV, as one stream of rows in time order.
 *
 * Formats, told apart by each file's header line (gzip or plain text, read
 * through zlib either way):
 *   BitMEX trade   timestamp,symbol,side,size,price,tickDirection,trdMatchID,
 *                  grossValue,homeNotional,foreignNotional[,trdType]
 *   BitMEX quote   timestamp,symbol,bidSize,bidPrice,askPrice,askSize
 *     timestamps "2024-01-15D00:00:00.451986388" (UTC, 1..9 fraction digits,
 *     read to the microsecond, truncated); side Buy/Sell; an empty quote
 *     side (no size and no price) is a side without orders.
 *   Tardis trades               exchange,symbol,timestamp,local_timestamp,id,side,price,amount
 *   Tardis quotes               exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,
 *                               bid_price,bid_amount
 *   Tardis incremental_book_L2  exchange,symbol,timestamp,local_timestamp,is_snapshot,side,
 *                               price,amount
 *   Tardis derivative_ticker    exchange,symbol,timestamp,local_timestamp,funding_timestamp,
 *                               funding_rate,predicted_funding_rate,open_interest,last_price,
 *                               index_price,mark_price
 *     timestamps in microseconds since the epoch; trade side buy/sell
 *     (unknown: the row is skipped as malformed: who took is the point);
 *     book side bid/ask, amount the level's new size (0: gone), is_snapshot
 *     true/false; ticker fields may be empty (absent).
 * Prices are exact decimals at 8 places (px_t); sizes are whole contracts
 * ("100" or "100.0"). A row's time is its exchange timestamp.
 *
 * Order. Rows come out by time; rows of the same microsecond by kind
 * (trades, then quotes and book rows, then tickers: a dump's quote at the
 * time of a trade shows the book after it), then by the order the files
 * were given, then by line. Within one file time must not go back.
 *
 * Bad input. A line that does not parse (wrong field count, a bad number,
 * an unknown side, time going back) is reported as "FILE:LINE: reason":
 * with strict set, hsource_next fails with that message; otherwise the
 * line is skipped, counted, and the first HSOURCE_REPORT_MAX of them are
 * written to opts.report (when not NULL). A file that cannot be opened, an
 * unknown header or a gzip stream that is cut or damaged is always fatal.
 * Never a crash, whatever the bytes.
 */
#ifndef PERPSIM_HISTORY_SOURCE_H
#define PERPSIM_HISTORY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/units.h"

#define HSOURCE_FILES_MAX 64
#define HSOURCE_SYMBOL_MAX 31
#define HSOURCE_REPORT_MAX 20

enum hrow_kind { HR_TRADE = 1, HR_QUOTE, HR_BOOK, HR_TICKER };

enum hformat {
    HF_BITMEX_TRADE = 1,
    HF_BITMEX_QUOTE,
    HF_TARDIS_TRADES,
    HF_TARDIS_QUOTES,
    HF_TARDIS_BOOK,
    HF_TARDIS_TICKER,
};

/* Which ticker fields a row has. */
enum hticker_has {
    HT_FUNDING_TS = 1u << 0,
    HT_FUNDING_RATE = 1u << 1,
    HT_PREDICTED_RATE = 1u << 2,
    HT_OPEN_INTEREST = 1u << 3,
    HT_LAST = 1u << 4,
    HT_INDEX = 1u << 5,
    HT_MARK = 1u << 6,
};

struct hrow {
    int64_t ts_us;              /* exchange time, microseconds since the epoch */
    uint8_t kind;               /* enum hrow_kind */
    char symbol[HSOURCE_SYMBOL_MAX + 1];
    /* HR_TRADE: the taker's side (SIDE_BUY 1 / SIDE_SELL 2), price, size.
     * HR_BOOK: the level's side (bid SIDE_BUY, ask SIDE_SELL), price, its
     * new size (0: removed), snapshot (a row of a snapshot: the rows of one
     * snapshot replace that symbol's whole book). */
    uint8_t side;
    px_t price;
    qty_t size;
    bool snapshot;
    /* HR_QUOTE: the best bid and ask; a size of 0 is a side without orders
     * (its price is then 0). */
    px_t bid_px, ask_px;
    qty_t bid_size, ask_size;
    /* HR_TICKER: the fields in has (enum hticker_has). Rates in 1e-8
     * (0.0001 = 10000), rounded to the nearest when the data has more
     * places. */
    uint32_t has;
    int64_t funding_ts_us;
    int64_t funding_rate_e8, predicted_rate_e8;
    int64_t open_interest;
    px_t last_px, index_px, mark_px;
    /* where it came from */
    uint16_t file;              /* index into the paths given */
    uint64_t line;              /* 1-based; the header is line 1 */
};

struct hsource_opts {
    bool strict;                /* a malformed line is fatal */
    int64_t from_us, to_us;     /* rows with from_us <= ts_us < to_us (0 / INT64_MAX: all) */
    FILE *report;               /* skipped lines reported here (NULL: only counted) */
};

struct hsource_stats {
    uint64_t rows;              /* rows handed out */
    uint64_t skipped;           /* malformed lines skipped */
    uint64_t outside;           /* rows outside [from, to) */
    uint64_t bytes_in;          /* compressed bytes read so far (progress) */
    uint64_t bytes_total;       /* sum of the files' sizes */
};

struct hsource;

/* Opens n files (1 <= n <= HSOURCE_FILES_MAX), reads each header. NULL
 * with a message in err ("FILE: reason") on the first that cannot be
 * opened or has an unknown header. */
struct hsource *hsource_open(const char *const *paths, uint32_t n, const struct hsource_opts *o,
                             char *err, size_t errcap);
/* The next row in order: 1 (out written), 0 at the end of every file, -1
 * with "FILE:LINE: reason" (or "FILE: reason") in err. After -1 the source
 * stays failed. */
int hsource_next(struct hsource *s, struct hrow *out, char *err, size_t errcap);
enum hformat hsource_format(const struct hsource *s, uint32_t file);
const char *hsource_path(const struct hsource *s, uint32_t file);
void hsource_stats(const struct hsource *s, struct hsource_stats *out);
void hsource_close(struct hsource *s);

/* Parses "YYYY-MM-DDDhh:mm:ss[.fffffffff]" (BitMEX's dump timestamp) into
 * microseconds; -1 when it is not one. */
int hsource_parse_dump_time(const char *s, size_t len, int64_t *out_us);

#endif
