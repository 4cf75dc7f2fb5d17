/*
 * report.h - a backtest's report: what each account did, from the change
 * stream.
 *
 * A consumer of the change stream (subscribed before the sequence opens)
 * that adds up, per account and settlement currency: fills, contracts and
 * notional traded, fees paid and rebates earned, funding paid and
 * received, liquidations and deleverages, the wallet and margin balance as
 * they are now, realised and unrealised PnL and the largest fall of the
 * margin balance from a previous high (max drawdown). Every figure is an
 * integer in the currency's minor units (XBt, USDt), taken from the
 * records, so the same commands give the same report, byte for byte.
 *
 *   realised PnL = wallet - deposited + withdrawn + fees - funding received
 *                  + funding paid
 *   (the wallet moves by realised PnL, less fees, plus funding; a
 *   liquidation's loss is realised PnL).
 */
#ifndef PERPSIM_HISTORY_REPORT_H
#define PERPSIM_HISTORY_REPORT_H

#include <stdint.h>

#include "core/core.h"

struct report;

/* For the exchange of cfg; accounts named by report_name are labelled. */
struct report *report_create(const struct exch_config *cfg);
void report_destroy(struct report *r);
/* Subscribes (in-lock: the figures are those of the state readers see).
 * Before the sequence opens; -1 when too late. */
int report_attach(struct report *r, struct core *c);
/* A label for an account in the report ("history"); a named account is
 * not plotted. Under a view of c's state (any thread). */
void report_name(struct report *r, struct core *c, uint32_t account, const char *name);

/* The report as JSON (a NUL-terminated string the caller frees): accounts
 * that traded, paid funding or hold money, ascending, one object per
 * account and currency; meta: the state it was taken at. Under a view of
 * the state (the caller holds none). NULL when memory is gone. */
char *report_json(struct report *r, struct core *c);

/* The run as a plot, SVG (a NUL-terminated string the caller frees; NULL
 * when memory is gone), three panels over data time: the price (last
 * trade and mark) of the instruments the traders traded (of all with
 * trades when none did), each trader's equity (margin balance net of
 * deposits, per currency) and each trader's position per instrument.
 * Traders are the accounts not given a name (and not the liquidator); a
 * point per second of data time (the second's last value), each pixel
 * column drawn as its low and high; at most 64 series. Under a view of the state, as report_json. */
char *report_svg(struct report *r, struct core *c);

#endif
