/*
 * query.h - BitMEX's generic table query: filter, columns, count, start,
 * reverse, startTime, endTime (with the timestamp filters of BitMEX's REST
 * documentation).
 *
 * An endpoint parses the parameters once (q_parse), then walks its records
 * in the order the query asks for (oldest first, or newest first when
 * o.reverse), builds each candidate row as a cJSON object and offers it
 * (q_offer) with its time. The collector applies the time bounds and the
 * filter, skips `start` matches, keeps `count`, projects `columns` (the
 * endpoint's key columns always stay), and says when to stop; in that
 * order, so `start` counts matching rows only and the filter sees the
 * whole row before the projection. Records outside [startTime, endTime]
 * can be skipped before building a row with q_time_ok.
 *
 * Filter semantics (a JSON object; every key must match):
 *   - "field": scalar  -> equality with the row's field. Strings compare
 *     exactly; a number matches a number or a numeric string of the same
 *     value; booleans match booleans (or "true"/"false").
 *   - "field": [a, b]  -> IN: equal to any element.
 *   - a row without the field does not match.
 *   - "open": true/false -> ordStatus is (is not) open: New,
 *     PartiallyFilled, Untriggered, Triggered, PendingNew, PendingCancel.
 *     Only a boolean value (or "true"/"false") means this; any other value
 *     is plain equality with the row's "open" column (TradeBin rows have
 *     one). A row without an ordStatus matches neither true nor false.
 *   - "ordStatus.isTerminated": bool -> the negation of "open".
 *   - "startTime" / "endTime": inclusive bounds like the parameters; when
 *     both the filter and the parameters give one, the tighter wins (the
 *     later start, the earlier end). One that does not parse is
 *     "startTime is invalid" / "endTime is invalid", as a parameter.
 *   - timestamp keys (BitMEX's documented table), each a scalar or an IN list:
 *     "timestamp" an exact time ("2014-12-26 12:00", ISO-8601, epoch ms),
 *     or with only a date ("2014-12-26") the whole day;
 *     "timestamp.date" a day "2014-12-26"; "timestamp.month" "2014-12";
 *     "timestamp.year" 2014; "timestamp.dd" day of month 1-31;
 *     "timestamp.ww" day of week (0 = Sat, 1 = Sun, ..., 6 = Fri, as
 *     BitMEX); "timestamp.time" "12:00:00.000" an exact time of day
 *     (shorter forms "12:00" mean 12:00:00.000); "timestamp.second"
 *     "12:00:00" that whole second of every day; "timestamp.minute"
 *     "12:00" that whole minute of every day; "timestamp.hh" hour of day
 *     0-23; "timestamp.uu" minute of hour 0-59; "timestamp.ss" second of
 *     minute 0-59. Numbers may be JSON numbers or numeric strings. These
 *     test the row's time (the t given to q_offer), not a row field.
 *     Month of year is not offered: BitMEX's table leaves its key name
 *     blank (as it does for the day and second-of-minute keys, whose names
 *     "timestamp.date" and "timestamp.ss" follow the pattern of the
 *     others). Any other "timestamp.*" key, or a value out of its range
 *     (hh 24, ww 7, "2014-13"), is "filter values are not valid".
 *   - other values: a scalar or an array of scalars; an object, or an
 *     array holding one, is "filter values are not valid".
 *   - limits: 64 keys, 1000 elements per IN list (query.c).
 * Other parameter choices: absent, JSON null and "" all mean "not given"
 * (so "?count=&filter=" is the defaults); count, start accept what prm_int
 * does ("100", 100, 100.0), reverse what prm_bool does; columns [] means
 * no projection (every column); filter and columns may be a JSON text in
 * a string, columns also "price, size" (at most 256 names).
 * Errors use BitMEX's texts: "count is invalid", "start is invalid",
 * "filter values are not valid", "columns are not valid",
 * "startTime is invalid", "endTime is invalid", "reverse is invalid".
 */
#ifndef PERPSIM_API_QUERY_H
#define PERPSIM_API_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/units.h"

#define Q_COUNT_DEFAULT 100
#define Q_COUNT_MAX 1000

/* What an endpoint allows. */
struct q_spec {
    int64_t count_default;   /* 0 = Q_COUNT_DEFAULT */
    int64_t count_max;       /* 0 = Q_COUNT_MAX */
    bool reverse_default;    /* walletHistory: true */
    const char *const *keys; /* NULL-terminated key columns kept by `columns`; may be NULL */
};

struct q_opts {
    cJSON *filter;   /* owned; NULL when none */
    cJSON *columns;  /* owned array of strings; NULL when none */
    int64_t count;   /* 1 .. count_max */
    int64_t start;   /* >= 0 */
    bool reverse;
    bool has_start, has_end;
    ms_t start_ms, end_ms; /* inclusive, from the parameters or the filter */
    const char *const *keys;
};

enum q_err {
    Q_OK = 0,
    Q_BAD_COUNT,
    Q_BAD_START,
    Q_BAD_FILTER,
    Q_BAD_COLUMNS,
    Q_BAD_START_TIME,
    Q_BAD_END_TIME,
    Q_BAD_REVERSE,
    Q_NOMEM,
};

/* The message for a 400 ValidationError ("count is invalid"). */
const char *q_err_message(enum q_err e);

/* Reads filter, columns, count, start, reverse, startTime, endTime from
 * params (a prm_parse object); spec NULL means the defaults.
 * startTime/endTime: ISO-8601 (with or without milliseconds/'Z',
 * "2014-12-26 11:00" too; a bare date is its 00:00:00.000) or epoch
 * milliseconds (a number or a digit string, as ccxt's fetchLiquidations
 * sends). On error *out is zeroed and nothing is left to free. */
enum q_err q_parse(const cJSON *params, const struct q_spec *spec, struct q_opts *out);
void q_free(struct q_opts *o);

/* Within the time bounds? */
bool q_time_ok(const struct q_opts *o, ms_t t);

/* The collector. */
struct q_collect {
    const struct q_opts *o;
    cJSON *out;         /* the result array */
    int64_t skipped;    /* matches skipped for `start` */
    int64_t taken;
};

/* out array allocated here; false only when memory cannot be had. */
bool q_collect_init(struct q_collect *c, const struct q_opts *o);
/* Offers one row (ownership passes to the collector, kept or freed) whose
 * time is t. Returns false when the result is full: stop walking (a row
 * offered after that is freed). A NULL row is passed over. */
bool q_offer(struct q_collect *c, cJSON *row, ms_t t);
/* Does the row match the filter and the time bounds (without counting)? */
bool q_match(const struct q_opts *o, const cJSON *row, ms_t t);
/* The result array (caller owns it); the collector is spent. */
cJSON *q_collect_done(struct q_collect *c);

#endif
