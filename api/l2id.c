/*
 * l2id.c - orderBookL2 ids; the formula and its ranges are in l2id.h.
 */
#include "api/l2id.h"

#include <stddef.h>
#include <string.h>

const char *l2_err_name(enum l2_err e)
{
    switch (e) {
    case L2_OK: return "L2_OK";
    case L2_ERR_TICK: return "L2_ERR_TICK";
    case L2_ERR_OFF_TICK: return "L2_ERR_OFF_TICK";
    case L2_ERR_RANGE: return "L2_ERR_RANGE";
    }
    return "L2_ERR_?";
}

/* BitMEX's LEGACY_TICKS (from its orderBookL2 id documentation), in px. */
static const struct {
    const char *symbol;
    px_t tick_px;
} LEGACY[] = {
    {"XBTUSD", INT64_C(1000000)},   /* 0.01 */
    {"XBTZ17", INT64_C(10000000)},  /* 0.1 */
    {"XBJZ17", INT64_C(100000000)}, /* 1 */
};

px_t l2_formula_tick_px(const char *symbol, px_t instrument_tick_px)
{
    if (symbol != NULL)
        for (size_t i = 0; i < sizeof LEGACY / sizeof LEGACY[0]; i++)
            if (strcmp(symbol, LEGACY[i].symbol) == 0)
                return LEGACY[i].tick_px;
    return instrument_tick_px;
}

enum l2_err l2_id_from_price(int64_t symbol_idx, px_t price_px, px_t tick_px, int64_t *out_id)
{
    if (tick_px <= 0)
        return L2_ERR_TICK;
    if (price_px <= 0 || price_px % tick_px != 0)
        return L2_ERR_OFF_TICK;
    if (symbol_idx < 0 || symbol_idx > L2_IDX_MAX)
        return L2_ERR_RANGE;
    int64_t ticks = price_px / tick_px;
    if (ticks > L2_IDX_STRIDE)
        return L2_ERR_RANGE;
    *out_id = L2_IDX_STRIDE * symbol_idx - ticks; /* both terms in range: no overflow */
    return L2_OK;
}

enum l2_err l2_price_from_id(int64_t symbol_idx, int64_t id, px_t tick_px, px_t *out_price_px)
{
    if (tick_px <= 0)
        return L2_ERR_TICK;
    if (symbol_idx < 0 || symbol_idx > L2_IDX_MAX)
        return L2_ERR_RANGE;
    int64_t base = L2_IDX_STRIDE * symbol_idx;
    /* ticks = base - id must be 1..1e8, i.e. base - 1e8 <= id <= base - 1
     * (compared without forming base - id, which could overflow). */
    if (id > base - 1 || id < base - L2_IDX_STRIDE)
        return L2_ERR_RANGE;
    int64_t ticks = base - id;
    if (ticks > INT64_MAX / tick_px)
        return L2_ERR_RANGE;
    *out_price_px = ticks * tick_px;
    return L2_OK;
}

enum l2_err l2_split_id(int64_t id, int64_t *out_symbol_idx, int64_t *out_ticks)
{
    if (id < -L2_IDX_STRIDE)
        return L2_ERR_RANGE;
    /* floor(id / 1e8) + 1 */
    int64_t q = id / L2_IDX_STRIDE;
    if (id % L2_IDX_STRIDE < 0)
        q--;
    int64_t k = q + 1;
    if (k > L2_IDX_MAX)
        return L2_ERR_RANGE;
    *out_symbol_idx = k;
    *out_ticks = L2_IDX_STRIDE * k - id;
    return L2_OK;
}
