/*
 * backtest.h - `perpsim backtest --data FILE... [--from ISO] [--to ISO]
 * [--speed max] [--report FILE.json] [--data-dir DIR] [--strict]`: market
 * history (BitMEX dumps, Tardis CSV) replayed into the real book without
 * serving, at full speed, with a progress bar on a terminal and a report
 * per account at the end (history/driver.h, history/report.h).
 */
#ifndef PERPSIM_APP_BACKTEST_H
#define PERPSIM_APP_BACKTEST_H

int backtest_main(int argc, char **argv);

#endif
