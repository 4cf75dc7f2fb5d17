/*
 * timefmt.h - text <-> integers at the REST edge: BitMEX timestamps and
 * decimal numbers.
 *
 * Pure functions: no I/O, no clock, no globals, no locale, no libc time zone
 * (the civil-date arithmetic is done here). Every function takes the text
 * with an explicit length (query values and JSON tokens are not always
 * NUL-terminated) and writes its out-parameter only on TF_OK.
 *
 * ---------------------------------------------------------------------------
 * TIMESTAMPS
 * ---------------------------------------------------------------------------
 * Output (tf_format_ms): BitMEX's form, always 24 characters, UTC, with
 * milliseconds and 'Z':  "2026-11-21T04:00:00.000Z".
 * The range is years 1970..9999: 0 <= ms <= TF_MS_MAX.
 *
 * Input (tf_parse_time), for startTime/endTime and the timestamp filters
 * (the forms BitMEX documents and its clients send):
 *   a) epoch milliseconds: ASCII digits only, no sign ("0",
 *      "1700000000000"); ccxt's fetchLiquidations sends this form. A value
 *      made only of digits is always read as milliseconds, never as a year
 *      or a compact date ("2014" is 2014 ms after the epoch). A value above
 *      TF_MS_MAX is TF_ERR_RANGE.
 *   b) ISO-8601, UTC unless an offset is given (BitMEX timestamps "are all
 *      UTC"):
 *        YYYY-MM-DD                          the day's 00:00:00.000
 *        YYYY-MM-DD?hh:mm                    ? is 'T' or ' ' (BitMEX's docs
 *        YYYY-MM-DD?hh:mm:ss                   write "2014-12-26 11:00")
 *        YYYY-MM-DD?hh:mm:ss.f...            1 to 9 fraction digits
 *      each time form optionally followed by one zone designator:
 *        Z | z | +hh:mm | -hh:mm | +hhmm | -hhmm | +hh | -hh
 *      Choices where ISO/BitMEX leave room (documented, tested):
 *      - Fractions beyond milliseconds are truncated toward the past
 *        ("...00.1239Z" is .123), so a bound never moves later than written.
 *      - A zone needs a time: "2026-11-21Z" is TF_ERR_SYNTAX.
 *      - A ' ' in place of the offset's '+' is accepted ("04:00:00 01:00"),
 *        because form-decoding a query string turns an unescaped '+' into a
 *        space. A ' ' before a bare 'Z' is not.
 *      - Fields must be in range: month 1-12, day within its month
 *        (leap years by the Gregorian rule), hour 0-23, minute 0-59,
 *        second 0-59 (no leap second, no 24:00), offset hours 0-23 and
 *        minutes 0-59. A bad field is TF_ERR_FIELD.
 *      - The instant after applying the offset must lie in
 *        [0, TF_MS_MAX] ("1970-01-01T00:30+01:00" is TF_ERR_RANGE).
 *      - Exactly four year digits, two for every other field; no leading or
 *        trailing whitespace, no trailing characters.
 *   Anything else is an error; the caller answers BitMEX's 400
 *   "startTime is invalid" or its endTime twin.
 *
 * ---------------------------------------------------------------------------
 * DECIMAL NUMBERS
 * ---------------------------------------------------------------------------
 * tf_parse_fixed(text, len, scale, &out) reads a decimal number and returns
 * value * 10^scale as an exact int64 (prices: scale 8 gives px_t, see
 * engine/units.h). Grammar (JSON's number grammar, plus leading zeros, which
 * query strings written by hand contain):
 *     [-] digits [ . digits ] [ (e|E) [+|-] digits ]
 * - No leading '+', no whitespace, no ".5", no "5.", no hex, no thousands
 *   separators: TF_ERR_SYNTAX. Empty text: TF_ERR_EMPTY.
 * - "NaN", "Infinity", "inf" (any case, any sign): TF_ERR_NOT_FINITE.
 * - The value must be exact at the scale: a non-zero digit below 10^-scale
 *   is TF_ERR_PRECISION ("0.123456789" at scale 8). Zeros are free
 *   ("1.50000000000", "1.5e0", "15e-1" are all 150000000 at scale 8).
 * - A result outside int64 is TF_ERR_OVERFLOW; so is an exponent that pushes
 *   a non-zero value past int64, however many digits it has
 *   ("1e999999999999999999"). A zero value is 0 whatever its exponent.
 *   Huge negative exponents on a non-zero value are TF_ERR_PRECISION.
 * - "-0" is 0.
 * - scale must be 0..18 (TF_ERR_SCALE otherwise).
 *
 * tf_parse_qty reads an integer quantity (orderQty, leavesQty, count...):
 * the same grammar at scale 0, so "100", "-100", "100.0", "100.00" and
 * "1e2" are 100 / -100 (Python's json.dumps writes a float quantity as
 * "100.0"; a negative orderQty means Sell, so the sign is kept), while
 * "1.5" is TF_ERR_FRACTION (not TF_ERR_PRECISION, so the caller can answer
 * "Invalid orderQty").
 *
 * tf_fixed_from_double converts a double (what cJSON hands over) by taking
 * its shortest round-trip decimal text ("%.15g", "%.16g", then "%.17g", the
 * first that reads back as the same double) and passing that text to
 * tf_parse_fixed. So 219.0 -> "219", 0.1 -> "0.1", 26000.5 -> "26000.5"; a
 * double whose shortest text has too many decimals is TF_ERR_PRECISION.
 * It uses snprintf/strtod, which read the C locale's decimal point: the
 * program must not call setlocale(LC_NUMERIC, ...) with a comma locale.
 */
#ifndef PERPSIM_API_TIMEFMT_H
#define PERPSIM_API_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/units.h"

enum tf_err {
    TF_OK = 0,
    TF_ERR_EMPTY,      /* zero-length text */
    TF_ERR_SYNTAX,     /* not one of the accepted forms */
    TF_ERR_FIELD,      /* a date/time field out of its range (month 13, Feb 30) */
    TF_ERR_RANGE,      /* a timestamp outside 1970-01-01 .. 9999-12-31T23:59:59.999Z */
    TF_ERR_NOT_FINITE, /* NaN or infinity */
    TF_ERR_PRECISION,  /* more decimals than the scale allows */
    TF_ERR_OVERFLOW,   /* the scaled value does not fit int64 */
    TF_ERR_FRACTION,   /* tf_parse_qty: a non-integer quantity */
    TF_ERR_SCALE,      /* scale_digits outside 0..18 */
    TF_ERR_BUFFER,     /* output buffer too small */
};

/* Last millisecond of 9999-12-31, UTC. */
#define TF_MS_MAX INT64_C(253402300799999)

/* "YYYY-MM-DDThh:mm:ss.mmmZ" is 24 characters; the buffer needs one more. */
#define TF_ISO_LEN 24
#define TF_ISO_BUF (TF_ISO_LEN + 1)

/* A short constant name for an error ("TF_ERR_SYNTAX"), for logs and tests. */
const char *tf_err_name(enum tf_err e);

/* Days since 1970-01-01 of a proleptic Gregorian date. The caller keeps
 * year in 1970..9999, month 1..12, day 1..days_in_month. */
int64_t tf_days_from_civil(int year, int month, int day);

/* The date of a day count (0 = 1970-01-01), days >= 0. */
void tf_civil_from_days(int64_t days, int *year, int *month, int *day);

/* Writes the 24 characters and a NUL into buf (cap >= TF_ISO_BUF).
 * TF_ERR_RANGE outside [0, TF_MS_MAX], TF_ERR_BUFFER when cap is small. */
enum tf_err tf_format_ms(ms_t ms, char *buf, size_t cap);

/* Parses one of the timestamp forms above into ms since the epoch. */
enum tf_err tf_parse_time(const char *text, size_t len, ms_t *out_ms);

/* Parses a decimal number into value * 10^scale_digits. */
enum tf_err tf_parse_fixed(const char *text, size_t len, int scale_digits, int64_t *out);

/* Parses an integer quantity; fractions are TF_ERR_FRACTION. */
enum tf_err tf_parse_qty(const char *text, size_t len, int64_t *out);

/* Converts a double through its shortest round-trip decimal text. */
enum tf_err tf_fixed_from_double(double value, int scale_digits, int64_t *out);

#endif
