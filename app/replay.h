/*
 * replay.h - `perpsim replay --data-dir DIR [--to-seq N]`: re-applies a
 * journal on a fresh state without serving and prints the final sequence
 * number, event count, state hash, audit and commands/s (a progress bar on
 * a terminal). The summary printers are the server's at recovery too.
 */
#ifndef PERPSIM_APP_REPLAY_H
#define PERPSIM_APP_REPLAY_H

#include <stdio.h>

#include "core/core.h"
#include "journal/journal.h"

int replay_main(int argc, char **argv);
void replay_print_summary(FILE *f, const struct core_summary *s);
void replay_print_cut(FILE *f, const struct journal_report *r);
/* Seconds on the monotonic clock. */
double replay_mono_s(void);
/* Sleeps until replay_mono_s() reaches mono_s (at once when past). */
void replay_sleep_until(double mono_s);
/* The progress bar on stderr: done frac (0..1), the data time reached,
 * what/s so far, the ETA (replay, backtest). */
void replay_print_bar(double frac, const char *ts, const char *what, double eta_s);

#endif
