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

#endif
