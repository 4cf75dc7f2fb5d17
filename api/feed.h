/*
 * feed.h - the realtime feed's tables: BitMEX's WebSocket tables kept from
 * the change stream alone, and their messages.
 *
 * The feed is a consumer of whole change-stream records (core.h), applied
 * in sequence order by one thread (the WebSocket thread), never under the
 * state lock. It keeps its own read model (a store of its own, fed the
 * same records as the REST one), the order book's visible levels from the
 * level events, every position and margin from the position and margin
 * events, and each instrument's state from the instrument events. It
 * reads nothing else: a partial is the feed's own tables at the record it
 * has applied last, and the deltas that follow are exactly the records
 * after it, so a client that applies them holds what REST shows at each
 * sequence number.
 *
 * feed_apply renders each record's rows once per topic (table, instrument,
 * account) that some subscriber wants, grouped into one message per
 * action in event order, and hands each message to emit. No I/O, no clock.
 */
#ifndef PERPSIM_API_FEED_H
#define PERPSIM_API_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "margin/exchange.h"

enum ft_table {
    /* public */
    FT_ORDERBOOKL2 = 0,
    FT_ORDERBOOKL2_25,
    FT_ORDERBOOK10,
    FT_QUOTE,
    FT_TRADE,
    FT_TRADEBIN1M,
    FT_TRADEBIN5M,
    FT_TRADEBIN1H,
    FT_TRADEBIN1D,
    FT_QUOTEBIN1M,
    FT_QUOTEBIN5M,
    FT_QUOTEBIN1H,
    FT_QUOTEBIN1D,
    FT_INSTRUMENT,
    FT_FUNDING,
    FT_LIQUIDATION,
    FT_INSURANCE,
    FT_SETTLEMENT,
    FT_ANNOUNCEMENT,
    FT_CONNECTED,
    FT_CHAT,
    FT_PUBLICNOTIFICATIONS,
    /* private (authentication required) */
    FT_ORDER,
    FT_EXECUTION,
    FT_POSITION,
    FT_MARGIN,
    FT_WALLET,
    FT_TRANSACT,
    FT_ACCOUNT,
    FT_AFFILIATE,
    FT_PRIVATENOTIFICATIONS,
    FT_COUNT
};

#define FT_ALL (-1) /* no symbol filter / no instrument */

struct ft_info {
    const char *name;
    bool priv;       /* authentication required */
    bool symbol;     /* takes table:SYMBOL */
};

const struct ft_info *ft_info(int table);
/* A table's partial: its info and the JSON text of its keys, types,
 * foreignKeys and attributes. */
struct ft_def {
    struct ft_info info;
    const char *keys, *types, *foreign, *attrs;
};
const struct ft_def *ft_def(int table);
/* The table named (case-sensitive, as BitMEX), -1 if none. */
int ft_find(const char *name);

/* Someone wants (table, inst, account): inst FT_ALL for a table without
 * instruments, account 0 for public tables. */
typedef bool (*feed_want_fn)(void *ctx, int table, int inst, uint32_t account);
/* A message for (table, inst, account): malloc'd JSON text, taken. */
typedef void (*feed_emit_fn)(void *ctx, int table, int inst, uint32_t account, char *msg, size_t len);

struct feed;

/* NULL when memory cannot be had. The config must outlive the feed. */
struct feed *feed_create(const struct exch_config *cfg, uint32_t accounts_max);
void feed_destroy(struct feed *f);

/* Applies one record, emitting its messages. */
void feed_apply(struct feed *f, const struct core_record *r, feed_want_fn want, feed_emit_fn emit,
                void *ctx);

/* The partial of (table, inst or FT_ALL, account or 0): malloc'd JSON text
 * with keys, types, foreignKeys, attributes, filter and data. */
char *feed_partial(struct feed *f, int table, int inst, uint32_t account, size_t *len);

uint64_t feed_seq(const struct feed *f); /* the last record applied */
ms_t feed_now(const struct feed *f);      /* its time */

#endif
