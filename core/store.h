/*
 * store.h - the read model: every table the REST API (and later the
 * WebSocket feed) shows, kept from the one change stream.
 *
 * The sequencer hands it every change-stream record (record.h), in
 * sequence order, holding the state lock for writing; readers hold it for
 * reading (core_view_begin), so a reader sees the state between two
 * commands, never inside one. It reads nothing but the records: every
 * figure it keeps comes in an event. The
 * store keeps what the margin core does not: order history (terminal
 * orders included) with the client's clOrdID and text, executions per
 * account, public trades and their time buckets, funding, insurance,
 * liquidation and settlement rows, and the wallet history.
 *
 * Ids are dense (orders: the engine's ids 1, 2, 3, ..., Rejected ones
 * among them; executions: 1, 2, 3, ... in stream order). Lookups are O(1): orders by id through a hash
 * of the orders kept, executions by their index in the stream.
 *
 * Limits (struct store_limits): order history, executions and public
 * trades are bounded, oldest first out, so the read model does not grow
 * until allocation fails. Every cost is O(1) amortized per event.
 *  - Orders: a live (working) order is never dropped. Of the terminal ones
 *    (Filled, Canceled, Rejected) the store keeps the `orders` that became
 *    terminal last; one that became terminal earlier is dropped: from
 *    store_order() (NULL), from store_find_clordid() (0, so its clOrdID
 *    can be used again), from the account's order list and from
 *    store_liquidations(). Orders that become terminal in the record being
 *    applied are dropped no earlier than the end of the next record, so a
 *    command's reply (the sequencer reads its orders right after the
 *    record) always finds them: between records the store keeps at most
 *    max(orders, those made terminal by the last record).
 *  - Executions: the newest `execs` of the whole stream (every account's,
 *    funding and settlement rows included); the per-account lists hold
 *    exactly the kept ones, and store_exec() of an index a list holds is
 *    never NULL.
 *  - Trades: the newest `trades` per instrument, always one contiguous
 *    array (store_trades). The time buckets (store_bins) count every
 *    trade, dropped or not, and are not bounded.
 *  - Wallet rows, funding, insurance and settlement rows, buckets and
 *    texts (at most 65,536 distinct) are not bounded.
 * A limit of 0 means unbounded (the store keeps everything).
 */
#ifndef PERPSIM_CORE_STORE_H
#define PERPSIM_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "margin/exchange.h"

enum exec_type {
    EX_NEW = 0,
    EX_TRADE,
    EX_CANCELED,
    EX_REPLACED,
    EX_RESTATED,
    EX_TRIGGERED,
    EX_REJECTED,
    EX_FUNDING,
    EX_SETTLEMENT,
    EX_LIQUIDATION, /* the position taken over by the liquidation engine */
    EX_BANKRUPTCY,  /* closed by auto-deleveraging at the bankruptcy price */
    EX_COUNT
};

/* An order as the Order table shows it. */
struct ord_rec {
    struct order_view v; /* latest state (status, leaves, cum, price...) */
    char clordid[CLORDID_LEN_MAX + 1];
    char clordlinkid[CLORDID_LEN_MAX + 1];
    const char *text;    /* the user's text, interned: valid while the store lives ("" = none) */
    uint8_t cancel_reason; /* enum cancel_reason once canceled */
    uint8_t rej_reason;    /* enum reject: a Rejected order's ordRejReason */
    ms_t created_ms, updated_ms;
    i128 fill_px_qty;    /* sum of px * qty over fills, for avgPx */
};

struct exe_rec {
    uint64_t exec_id;
    uint64_t order_id;   /* 0 for funding/settlement rows */
    uint64_t trd_match_id;
    struct order_view v; /* the order after this execution (or a sketch) */
    uint8_t type;        /* enum exec_type */
    uint8_t liq;         /* 0 none, 1 AddedLiquidity, 2 RemovedLiquidity */
    uint8_t reason;      /* cancel / reject reason */
    uint8_t currency;
    qty_t last_qty;
    px_t last_px;
    px_t avg_px;
    sats_t exec_cost, exec_comm;
    rate_t commission_e8;
    ms_t ts;
};

struct trade_rec {
    uint64_t trade_id;
    ms_t ts;
    qty_t size;
    px_t px;
    sats_t gross;        /* |value| in settlement units */
    uint8_t side;        /* aggressor */
    uint8_t tick_dir;    /* 0 PlusTick 1 ZeroPlusTick 2 MinusTick 3 ZeroMinusTick */
};

/* A time bucket of trades (stored only when it has trades). */
struct bin_rec {
    ms_t start_ms;
    px_t open, high, low, close;
    int64_t trades;
    qty_t volume;
    sats_t turnover;
    i128 px_qty;         /* for vwap */
    qty_t last_size;
};

enum bin_size { BIN_1M = 0, BIN_5M, BIN_1H, BIN_1D, BIN_COUNT };

struct funding_rec { ms_t ts; uint16_t inst; rate_t rate_e8; px_t mark_px; sats_t paid; };
struct insurance_rec { ms_t ts; uint8_t currency; sats_t balance; };
struct settle_rec { ms_t ts; uint16_t inst; px_t px; };
struct wallet_rec {
    uint64_t id;
    ms_t ts;
    uint32_t account;
    uint8_t currency;
    uint8_t kind;        /* enum money_kind */
    uint16_t inst;
    sats_t amount, balance;
};

/* A growable array of uint32 indices: entries v[0] .. v[n-1]. */
struct idx_vec { uint32_t *v; uint32_t n, cap; };

/* Rows kept (module comment); 0 = unbounded. */
/* struct store_limits: record.h (command 1 carries it). */

/* core_config_default's limits (docs/configuration.md gives their cost). */
#define STORE_KEEP_ORDERS 1000000u
#define STORE_KEEP_EXECS 1000000u
#define STORE_KEEP_TRADES 1000000u
/* The largest limit accepted (larger ones are taken as this). */
#define STORE_KEEP_MAX 1000000000u

/* What the store holds now, and the room it has allocated, for tests and
 * metrics. Rows are counted in the bounded tables only. */
struct store_stats {
    uint64_t orders;          /* orders kept, live and terminal */
    uint64_t orders_terminal; /* of which terminal */
    uint64_t orders_dropped;  /* terminal orders dropped so far */
    uint64_t execs, execs_dropped;
    uint64_t trades, trades_dropped; /* all instruments */
    uint64_t list_entries;    /* entries of every account's order and
                               * execution lists and the liquidation list */
    uint64_t clordids;        /* entries of the clOrdID map */
    size_t bytes;             /* allocated for the bounded tables, their
                               * lists and maps (capacity, not rows) */
};

struct store;

/* A new order the engine or the margin core refused is kept too, Rejected
 * with its ordRejReason, when the sequencer names it (store_limits.
 * keep_rejected): its EV_REJECTED then carries the order and the next
 * engine order id (engine_take_order_id, so a replay names it the same).
 * It takes no clOrdID. */
/* Whether ev (of record r) is such a refused new order, named. */
bool store_rejected_new(const struct core_record *r, const struct event *ev);

struct store *store_create(const struct exch_config *cfg, uint32_t accounts_max,
                           struct store_limits limits);
void store_destroy(struct store *s);

/* Applies one record (the sequencer, state lock held for writing). */
void store_apply(struct store *s, const struct core_record *r);

/* Folds the read model's counters into h: rows ever added to every table
 * (dropped ones included), so the hash depends on the records only, not
 * on the limits. */
uint64_t store_hash(const struct store *s, uint64_t h);
/* Each liquidation step by step (explain.h), for GET /explain/v1/liquidation. */
struct explain;
const struct explain *store_explain(const struct store *s); /* NULL when off */
/* Keeps the explanations from now on (the exchange's own read model; a
 * WebSocket feed's copy has no use for them). -1 when memory is gone. */
int store_explain_on(struct store *s);

/* Reads (state lock held for reading). */
/* The order, NULL if unknown or dropped. */
const struct ord_rec *store_order(const struct store *s, uint64_t id);
/* The highest order id seen (dropped orders included). */
uint64_t store_orders_count(const struct store *s);
/* The account's orders (ids ascending = oldest first). An entry may name
 * an order dropped since (store_order gives NULL: skip it); such entries
 * are at most about as many as the kept ones and are compacted away. */
const struct idx_vec *store_account_orders(const struct store *s, uint32_t account);
/* Latest kept order of the account with that clOrdID, 0 if none. */
uint64_t store_find_clordid(const struct store *s, uint32_t account, const char *clordid);
/* The execution at that index (exec_id - 1, mod 2^32); NULL if dropped or
 * not yet made. The indices the account lists hold are always kept. */
const struct exe_rec *store_exec(const struct store *s, uint32_t idx);
/* The account's kept executions, oldest first. */
const struct idx_vec *store_account_execs(const struct store *s, uint32_t account);
/* The instrument's kept trades, oldest first, contiguous. */
const struct trade_rec *store_trades(const struct store *s, uint16_t inst, uint32_t *n);
const struct bin_rec *store_bins(const struct store *s, uint16_t inst, enum bin_size b, uint32_t *n);
ms_t store_bin_ms(enum bin_size b);
const struct funding_rec *store_funding(const struct store *s, uint32_t *n);
const struct insurance_rec *store_insurance(const struct store *s, uint32_t *n);
const struct settle_rec *store_settlements(const struct store *s, uint32_t *n);
const struct wallet_rec *store_wallet(const struct store *s, uint32_t idx);
uint32_t store_wallet_count(const struct store *s); /* wallet rows, all accounts */
uint64_t store_execs_total(const struct store *s);  /* executions ever made (dropped included) */
const struct idx_vec *store_account_wallet(const struct store *s, uint32_t account);
/* Liquidation orders (the liquidator's), ids ascending; an entry may name
 * a dropped order, as in store_account_orders. */
const struct idx_vec *store_liquidations(const struct store *s);
/* Instruments the account has had an order or position in (bit i). */
uint64_t store_account_insts(const struct store *s, uint32_t account);
/* An account made with CORE_ACCOUNT_AGENT or CORE_ACCOUNT_NO_ROWS (the
 * living market's agents, a backtest's history account). */
bool store_account_agent(const struct store *s, uint32_t account);
/* The last trade's price and tick direction, 0 if none. */
px_t store_last_px(const struct store *s, uint16_t inst, uint8_t *tick_dir);
ms_t store_now(const struct store *s); /* the last event's time */
ms_t store_opened(const struct store *s); /* command 1's time: when the exchange opened */
struct store_limits store_limits(const struct store *s);
void store_stats(const struct store *s, struct store_stats *out);

#endif
