/*
 * market.h - the living market: index feeds and the agents that trade.
 *
 * A simulation on engine time, seeded, with no clock or I/O of its own:
 * the sequencer asks it when it next wants to act (market_next) and, at
 * that engine time, what it does (market_fire), and applies what it
 * decides as ordinary commands in the one sequence, each with the same
 * validation, margin checks and audit as a user's. The agents' accounts
 * are made by ordinary account commands; their money is in the audit,
 * their orders and positions show in the tables, they can be liquidated.
 * They read what a trader can read (the book, the instrument, their own
 * positions and orders) through a view of the state. The same seed, the
 * same clock steps and the same user commands give the same market,
 * command for command.
 *
 * What acts:
 *  - index feeds: each index replays a price path when given one
 *    (market_set_path: a CSV of timestamp,symbol,price), else follows a
 *    geometric Brownian motion (annual
 *    volatility vol) with jumps (jumps_per_day on average, each a move of
 *    jump_pct on average, down as often as up), one step every
 *    index_step_ms; a shock from the admin API moves the index and the
 *    walk goes on from there (the feed reads the index it moves);
 *  - market makers, one account per instrument: a ladder of `levels`
 *    orders a side, each side holding depth_impacts x the instrument's
 *    impact notional (at least size_lots a level), the first at
 *    spread_bp/2 from the index (or the mark when the index is unknown),
 *    the next level_bp apart, shifted against the maker's inventory by
 *    skew_bp per max_inventory, and on perpetuals centered a premium off
 *    the index that walks (premium_bp), so the premium index and the
 *    funding prediction move; re-quoted (amends of the same orders) after
 *    every index step, which also replaces what fills took;
 *  - noise traders (noise accounts): market and limit orders at Poisson
 *    times, noise_per_min per instrument on average, sizes heavy-tailed
 *    (Pareto, shape 1.5, from one lot);
 *  - directional traders (directional accounts): isolated positions at
 *    25x-100x opened with most of their margin every directional_every_ms
 *    on average and closed after a while: a sharp move liquidates them,
 *    so the insurance fund and ADL have work.
 *
 * Agents only (agents_only): a backtest's history drives the indices and
 * gives the book; the market adds only its noise and directional traders,
 * which act as above against whatever book and index there are. No index
 * feed (the market never sets an index: no walk, no jumps, no path; paths
 * are refused), no makers (no maker accounts, no maker commands); the
 * agents' accounts are noise then directional. Fixed at start.
 */
#ifndef PERPSIM_MARKET_MARKET_H
#define PERPSIM_MARKET_MARKET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

#define MARKET_LEVELS_MAX 50
#define MARKET_NOISE_MAX 64
#define MARKET_DIRECTIONAL_MAX 32

struct market_params {
    uint64_t seed;
    ms_t index_step_ms;       /* 1000 */
    double vol;               /* annual volatility of each index, 0.6 */
    double jumps_per_day;     /* 2 */
    double jump_pct;          /* mean jump size, 0.04 */
    uint32_t levels;          /* maker levels a side, 12 */
    double spread_bp;         /* 4 */
    double level_bp;          /* 2 */
    uint32_t size_lots;       /* maker size per level, in lots, at least: 50 */
    double depth_impacts;     /* each side of a maker's ladder holds this many times the
                               * instrument's impact notional: 2 */
    double skew_bp;           /* per max_inventory of position: 10 */
    double premium_bp;        /* perpetuals: the makers' premium over the index, a walk
                               * reverting to 0 (half-life 1 h) with this deviation: 8 */
    uint32_t max_inventory_lots; /* 5000 */
    uint32_t noise;           /* noise accounts: 12 */
    double noise_per_min;     /* per instrument: 30 */
    uint32_t directional;     /* directional accounts: 6 */
    ms_t directional_every_ms; /* 10 minutes */
    bool agents_only;         /* no index feed and no makers: only the noise and
                               * directional traders act (a backtest on history,
                               * which moves the index and gives the book); the
                               * walk's and makers' fields are kept but unused.
                               * Fixed at start: false */
};

void market_params_default(struct market_params *p);
/* Checks p; NULL when valid, else a static message naming the field. */
const char *market_params_check(const struct market_params *p);
/* The fields of o (the names of GET /admin/v1/market; the config file's
 * "market" object) into *p, checked; "enabled" into *enabled when given
 * and enabled is not NULL. 0, or -1 with a message and *p unchanged. */
struct cJSON;
int market_params_json(const struct cJSON *o, struct market_params *p, bool *enabled, char *err,
                       size_t cap);
/* The fields of p added to the object o under those names. */
void market_params_add_json(const struct market_params *p, struct cJSON *o);

struct market;

/* The market over the exchange of cfg (its instruments and indices). */
struct market *market_create(const struct market_params *p, const struct exch_config *cfg);
void market_destroy(struct market *m);

/* The agents' accounts: J_ACCOUNT jobs (a key drawn from the seed, the
 * deposits) the caller applies in order (core_run), reporting each made
 * account with market_account_made (k: the job's place: makers, one per
 * instrument and none when agents_only, then noise, then directional).
 * Returns how many jobs it filled. */
uint32_t market_account_jobs(struct market *m, struct core_job **jobs, uint32_t max);
void market_account_made(struct market *m, uint32_t k, uint32_t account);

/* A price path for index k (times ascending, prices > 0, n > 0): instead
 * of the walk, the index takes each price at its time (the last one at or
 * before the market's start at once) and stays at the last. Before
 * market_start; copied. -1 on a bad path, and always when agents_only
 * (the market moves no index then). */
int market_set_path(struct market *m, uint16_t k, const ms_t *t, const px_t *px, uint32_t n);

/* The core's timer (core.h): when next, and what at that time. */
struct core_timer market_timer(struct market *m);

/* All of it on a core: the market made, the agents' accounts made by
 * account commands applied now (core_run) or, on a core recovered from a
 * journal, taken back (their seeded keys are there), the market set as
 * the core's timer. NULL with a message in err. market_stop takes the timer off the
 * core and frees the market. */
struct market *market_start(struct core *c, const struct market_params *p, char *err, size_t errcap);
/* market_start with index paths (path_n[k] == 0: the walk for index k).
 * agents_only refuses any path (path_n[k] > 0), with a message. */
struct market *market_start_paths(struct core *c, const struct market_params *p, const ms_t *const *path_t,
                                  const px_t *const *path_px, const uint32_t *path_n, char *err,
                                  size_t errcap);
void market_stop(struct core *c, struct market *m);

/* Parameters at run time (the admin API). set: checked first; the
 * market's seeded draws go on; noise, directional, seed and agents_only
 * are fixed at start (a change is refused with a message). */
void market_params_get(struct market *m, struct market_params *out);
const char *market_params_set(struct market *m, const struct market_params *p);
/* Counters for the admin API and metrics. */
struct market_stats {
    uint64_t index_steps, jumps, maker_commands, noise_orders, directional_orders;
};
void market_stats(struct market *m, struct market_stats *out);

#endif
