/*
 * driver.h - history replayed into the real book.
 *
 * The driver reads rows from a source (source.h) in time order and turns
 * each into ordinary commands of the one sequence, at the row's time (the
 * core's timer: next() is the next row's millisecond, fire() one row's
 * commands), so a user's orders meet history in the same FIFO book, under
 * the same margin, fees and audit.
 *
 * The model (docs/backtest.md says why):
 *  - The historical book is real resting orders of one history account
 *    (an ordinary account with a large deposit and a disabled key): Limit,
 *    GoodTillCancel, post-only. Quotes set the top level of each side (every
 *    other history level of the instrument goes); incremental_book_L2 rows
 *    set each level's size, a snapshot replacing the instrument's book
 *    (levels it does not name go when the snapshot ends). Once an
 *    instrument has book rows its quote rows are ignored.
 *  - A level's size going up adds an order at the back of the level's queue
 *    (or raises the history's newest order there, when no one joined the
 *    level after it: the same place). Going down cancels from the back:
 *    the history's newest orders at the level first, so a user's order
 *    never moves ahead of size that was there before it, and moves up only
 *    when size ahead of it goes (or trades). Someone else's order joining
 *    the level (an iceberg's new slice too) puts later history size behind
 *    it.
 *  - History never takes liquidity with its book: a book order that would
 *    cross (a user's order at or through its price) is canceled by the
 *    engine (post-only) and tried again on a later row of its instrument,
 *    once nothing crosses it.
 *  - A trade row is an ImmediateOrCancel limit order of the history account
 *    on the taker's side at the trade's price and size: it takes every
 *    order at that price or better in price-time priority, the user's
 *    included, so a user's order fills when, and only when, the tape
 *    reaches it. History's own levels on the taker's side at or through
 *    the trade's price are stale (the data's book moved in that instant)
 *    and go first. When the book shows less than the trade at that price
 *    or better (trades without a book, or a user's order took that
 *    liquidity earlier), a history order for the shortfall rests at the
 *    trade's price first, so the print happens as it did, and what the
 *    trade leaves of it is cut after. History trading with history is a
 *    self-trade of one account: no position, a public trade.
 *  - A user's fill against history leaves the history level smaller than
 *    the data says; the next quote or book row for that level sets it to
 *    the data's size again (the data's later sizes are absolute).
 *  - The index follows the data's index_price (derivative_ticker) where an
 *    instrument's index has it, else its trades: the last trade price at
 *    most once per index_step_ms of data time (and the first quote's mid
 *    before any trade). Marks, funding and liquidations follow from the
 *    index by the margin core's own rules.
 *  - A perpetual's funding rate is the data's funding_rate (derivative_ticker)
 *    for the funding its funding_timestamp names, when that is the next one
 *    the exchange pays (predicted_funding_rate is the indicative rate), else
 *    the margin core's formula on the premium the replayed book forms.
 * Rows for symbols the exchange does not list, prices off the tick, and
 * sizes below one lot are counted and skipped; sizes are rounded down to
 * the lot.
 */
#ifndef PERPSIM_HISTORY_DRIVER_H
#define PERPSIM_HISTORY_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "history/source.h"

struct history_params {
    ms_t index_step_ms;   /* 1000: trade-driven index updates at most this often */
};

void history_params_default(struct history_params *p);

struct history_stats {
    uint64_t rows;           /* rows read */
    uint64_t commands;       /* commands the driver made */
    uint64_t trades, quotes, book_rows, tickers;
    uint64_t shortfall;      /* trades that needed liquidity placed first */
    uint64_t unlisted;       /* rows of symbols the exchange does not list */
    uint64_t off_tick;       /* prices off the instrument's tick */
    uint64_t small;          /* sizes below one lot */
    uint64_t refused;        /* history orders the exchange refused */
    uint64_t index_moves;
    uint64_t funding_rates;  /* the data's funding rates announced */
    uint64_t funding_other_time; /* ticker rates for another funding than the next */
    uint64_t funding_absurd; /* rates beyond +-10%: skipped */
    ms_t last_ms;            /* data time of the last row applied */
    bool done;               /* every row applied */
};

struct history;

/* A driver over src (the driver owns it from now on) for the exchange of
 * cfg. NULL when memory is gone. */
struct history *history_create(struct hsource *src, const struct exch_config *cfg,
                               const struct history_params *p);
/* Subscribes the driver to the core's change stream (it follows its own
 * orders): before the sequence opens. -1 when too late. */
int history_attach(struct history *h, struct core *c);
/* Makes the history account (core_run) and sets the driver as the core's
 * timer: on a new exchange (the driver's mirror of its orders starts
 * empty, so a core recovered from a journal cannot be resumed). -1 with a
 * message in err. */
int history_start(struct history *h, struct core *c, char *err, size_t errcap);
/* The engine time of the first row (INT64_MAX when none), reading it
 * ahead: the clock's start. -1 with err when the source fails. */
int history_first_ms(struct history *h, ms_t *out, char *err, size_t errcap);
/* The source's failure (strict mode), or NULL. */
const char *history_error(const struct history *h);
void history_stats(struct history *h, struct history_stats *out);
const struct hsource *history_source(const struct history *h);
uint32_t history_account(const struct history *h);
/* Whether every row is applied (or the source failed): for a J_ADVANCE's
 * done, so that a run ends at its last row (ctx: the driver). */
bool history_done(void *ctx);
/* The driver as a core timer (history_start sets it on the core; this is
 * for composing it with another timer: core_timer_pair). */
struct core_timer history_timer(struct history *h);
/* Takes the timer off the core and frees everything (the source too).
 * The driver stays a consumer of the core's change stream: after the
 * core's last command (core_shutdown), or with c NULL after the core is
 * gone. */
void history_stop(struct core *c, struct history *h);

#endif
