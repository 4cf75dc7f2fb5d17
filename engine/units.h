/*
 * units.h - the integer units every part of perpsim speaks.
 *
 * Money, price and size are integers; the unit is the last word of a name
 * (price_px, margin_sats, latency_ns). Doubles exist only at the JSON edge
 * (api/), converted in one place that rejects prices off the tick.
 *
 *   px_t    a price in 1e-8 units of the quote currency (PX_SCALE per 1.0).
 *           XBTUSD tick 0.5 USD = 50,000,000 px; max price 1,000,000 USD
 *           = 1e14 px, far inside int64. Mark and index prices may be off
 *           the tick; order prices never are.
 *   qty_t   a size in contracts; signed where it is a position
 *           (long > 0, short < 0).
 *   sats_t  money in the minor unit of the settlement currency
 *           (XBt satoshi = 1e-8 XBT, USDt = 1e-6 USDT).
 *   ms_t    engine time: milliseconds since the Unix epoch, UTC. The engine
 *           never reads a clock; every command carries its own time.
 */
#ifndef PERPSIM_UNITS_H
#define PERPSIM_UNITS_H

#include <stdint.h>

typedef int64_t px_t;
typedef int64_t qty_t;
typedef int64_t sats_t;
typedef int64_t ms_t;

#define PX_SCALE INT64_C(100000000)
#define MS_PER_DAY INT64_C(86400000)

/* 128-bit intermediates for products such as qty * multiplier * PX_SCALE.
 * __extension__ keeps -Wpedantic quiet about the GNU type. */
__extension__ typedef __int128 i128;

#endif
