/*
 * backtest.h - `perpsim backtest --data FILE... [--from ISO] [--to ISO]
 * [--speed max] [--report FILE.json] [--data-dir DIR] [--strict]`: market
 * history (BitMEX dumps, Tardis CSV) replayed into the real book without
 * serving, at full speed, with a progress bar on a terminal and a report
 * per account at the end (history/driver.h, history/report.h).
 */
#ifndef PERPSIM_APP_BACKTEST_H
#define PERPSIM_APP_BACKTEST_H

#include "core/core.h"

int backtest_main(int argc, char **argv);

/* A served backtest: the server with `--history FILE... [--history-strict]
 * [--history-report FILE]` (what `perpsim backtest --serve` runs) replays
 * the history as the core's timer on a stepped clock starting at the first
 * row, while the REST and WebSocket API serve: a bot moves time with
 * POST /admin/v1/clock/advance and trades in the replayed book.
 * served_open: NULL with err "" when argv has no --history; NULL with err
 * set on an error; else the first row's time in *first_ms. */
struct served;
struct served *served_open(int argc, char **argv, ms_t *first_ms, char *err, size_t errcap);
/* The server's attach hook (srv_config.attach): the driver and the report
 * subscribe. */
int served_attach(void *ctx, struct core *c);
/* After the server started (and the demo account): the history account,
 * the driver as the core's timer. */
int served_start(struct served *b, struct core *c, char *err, size_t errcap);
/* The server's report hook (srv_config.report, ctx the served backtest):
 * the report as JSON (the caller frees), NULL when memory is gone. */
char *served_report_fn(void *ctx, struct core *c);
/* At the stop, before the server's: the report to --history-report. */
void served_finish(struct served *b, struct core *c);
/* After the server stopped. */
void served_free(struct served *b);

#endif
