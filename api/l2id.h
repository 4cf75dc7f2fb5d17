/*
 * l2id.h - BitMEX's orderBookL2 row id for a (symbol index, price) and back.
 *
 * The legacy scheme documented by BitMEX (its REST and WebSocket
 * documentation of orderBookL2):
 *
 *     ID    = (100000000 * symbolIdx) - (price / tickSize)
 *     price = ((100000000 * symbolIdx) - ID) * tickSize
 *
 * with symbolIdx the instrument's index in the instrument list and tickSize
 * the instrument's tickSize, except for three instruments whose tick changed
 * while they were listed; for those BitMEX keeps the original tick in the
 * formula (LEGACY_TICKS): XBTUSD 0.01, XBTZ17 0.1, XBJZ17 1.
 * Worked numbers (the test vectors): XBTUSD, symbolIdx 88, tick 0.01:
 * price 10476 <-> 8798952400, 22105 <-> 8797789500, 22077.5 <-> 8797792250,
 * 26902 <-> 8797309800; 2018 testnet XBTUSD idx 156: 8215.5 <-> 15599178450.
 *
 * Buy and Sell rows at one price share the id (side is part of BitMEX's key).
 * Since 2023 BitMEX's ids are opaque; perpsim keeps the decodable legacy
 * formula (backward compatible) and always sends price as well.
 *
 * Integers only. Prices are px_t (1e-8 quote units, engine/units.h), so the
 * formula's "price / tickSize" is price_px / tick_px, and
 * "* tickSize" is ticks * tick_px. Rules chosen where BitMEX is silent:
 *   - price_px must be a positive exact multiple of the formula tick
 *     (L2_ERR_OFF_TICK otherwise): the formula would give a fractional id.
 *     Every XBTUSD price on its 0.5 tick is a multiple of the legacy 0.01.
 *   - The tick count price/tick must be 1..L2_IDX_STRIDE (1e8): a larger
 *     count would run into the previous symbol's ids (L2_ERR_RANGE). The
 *     count 1e8 itself maps to 1e8 * (symbolIdx - 1), which is the id of
 *     price 0 of the previous symbol, a price that cannot exist.
 *     So symbol k owns exactly the ids 1e8*(k-1) .. 1e8*k - 1.
 *   - symbolIdx must be 0 .. L2_IDX_MAX so the product fits int64
 *     (symbol 0's ids are negative, as the formula says; perpsim numbers its
 *     instruments from whatever index its instrument list gives them).
 *   - Decoding checks the same ranges, so an id from another symbol is
 *     L2_ERR_RANGE, never a wrong price.
 */
#ifndef PERPSIM_API_L2ID_H
#define PERPSIM_API_L2ID_H

#include <stdint.h>

#include "engine/units.h"

/* The symbol index of instrument 0 (XBTUSD's on BitMEX); the others follow. */
#define L2_SYMBOL_IDX_BASE 88
#define L2_IDX_STRIDE INT64_C(100000000)
#define L2_IDX_MAX (INT64_MAX / L2_IDX_STRIDE)

enum l2_err {
    L2_OK = 0,
    L2_ERR_TICK,     /* tick_px <= 0 */
    L2_ERR_OFF_TICK, /* price not a positive multiple of the formula tick */
    L2_ERR_RANGE,    /* symbol index, tick count or id outside the ranges above */
};

const char *l2_err_name(enum l2_err e);

/* The formula tick for a symbol: the legacy tick for XBTUSD (0.01 =
 * 1000000 px), XBTZ17 (0.1 = 10000000 px) and XBJZ17 (1 = 100000000 px),
 * else instrument_tick_px. The symbol match is exact (BitMEX symbols are
 * upper case on the wire). symbol may be NULL (no override). */
px_t l2_formula_tick_px(const char *symbol, px_t instrument_tick_px);

/* id = 1e8 * symbol_idx - price_px / tick_px. */
enum l2_err l2_id_from_price(int64_t symbol_idx, px_t price_px, px_t tick_px, int64_t *out_id);

/* price_px = (1e8 * symbol_idx - id) * tick_px. */
enum l2_err l2_price_from_id(int64_t symbol_idx, int64_t id, px_t tick_px, px_t *out_price_px);

/* The symbol index an id belongs to (ids of symbol k are 1e8*(k-1) ..
 * 1e8*k - 1) and its tick count. L2_ERR_RANGE for an id below -1e8. */
enum l2_err l2_split_id(int64_t id, int64_t *out_symbol_idx, int64_t *out_ticks);

#endif
