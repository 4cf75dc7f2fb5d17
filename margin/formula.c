/*
 * formula.c - the pure integer formulas of the margin core (see formula.h
 * for the contract of each function and the BitMEX rule it follows).
 *
 * Invariants: no floating point, no globals, no I/O. Every product is formed
 * in i128 through mulc()/addc(), which refuse to overflow; every division goes
 * through one of the four named rounding helpers below, and its call site
 * says why that rounding. Out-parameters are written only on MF_OK.
 */
#include "margin/formula.h"

#include <stddef.h>

/* ---- i128 arithmetic: checked products and named roundings ---------------- */

/* 2^127 - 1, built without an unsigned __int128 (which -Wpedantic flags). */
#define I128_MAX ((((i128)INT64_MAX) << 64) | (i128)UINT64_MAX)

/* a * b into *out; 0 when it overflows. The result is kept within
 * [-I128_MAX, I128_MAX] so that negating it is always safe. */
static int mulc(i128 a, i128 b, i128 *out)
{
    i128 r;
    if (__builtin_mul_overflow(a, b, &r) || r < -I128_MAX)
        return 0;
    *out = r;
    return 1;
}

/* a + b into *out; 0 when it overflows (same symmetric range). */
static int addc(i128 a, i128 b, i128 *out)
{
    i128 r;
    if (__builtin_add_overflow(a, b, &r) || r < -I128_MAX)
        return 0;
    *out = r;
    return 1;
}

static i128 abs128(i128 x)
{
    return x < 0 ? -x : x;
}

/* n / d and n % d truncated as C does, d > 0. The margin core divides on
 * every order event (a value at a price, a rate of a value), and the
 * generic i128 division (__divmodti4) costs ~100 cycles, so the common cases
 * go faster with the same result: both in int64 (a constant divisor becomes
 * a multiplication), or one 128-by-64 division (mf_divq) when the quotient
 * fits in 64 bits (|n| / 2^64 < d). */
static inline void divmod(i128 n, i128 d, i128 *q, i128 *r)
{
    if (n >= INT64_MIN && n <= INT64_MAX && d <= INT64_MAX) {
        int64_t a = (int64_t)n, b = (int64_t)d;
        *q = a / b;
        *r = a % b;
        return;
    }
    i128 m = abs128(n);
    if (d <= (i128)UINT64_MAX && (m >> 64) < d) {
        uint64_t rr, qq = mf_divq((mf_u128)m, (uint64_t)d, &rr);
        *q = n < 0 ? -(i128)qq : (i128)qq;
        *r = n < 0 ? -(i128)rr : (i128)rr;
        return;
    }
    *q = n / d;
    *r = n % d;
}

/* Rounding helpers; every one requires d > 0. */

/* floor(n / d): toward -infinity. */
static i128 div_floor(i128 n, i128 d)
{
    i128 q, r;
    divmod(n, d, &q, &r);
    if (r != 0 && n < 0)
        q -= 1;
    return q;
}

/* ceil(n / d): toward +infinity. */
static i128 div_ceil(i128 n, i128 d)
{
    i128 q, r;
    divmod(n, d, &q, &r);
    if (r != 0 && n > 0)
        q += 1;
    return q;
}

/* Nearest, ties away from zero (half-up on the magnitude). Symmetric:
 * div_half_away(-n, d) == -div_half_away(n, d). */
static i128 div_half_away(i128 n, i128 d)
{
    i128 q, r;
    divmod(abs128(n), d, &q, &r);
    if (r >= d - r) /* 2r >= d without forming 2r */
        q += 1;
    return n < 0 ? -q : q;
}

/* Nearest, ties toward +infinity. */
static i128 div_half_ceil(i128 n, i128 d)
{
    i128 q = div_floor(n, d);
    i128 r = n - q * d; /* 0 <= r < d */
    if (r >= d - r)
        q += 1;
    return q;
}

/* x into an int64; 0 when it does not fit. */
static int fit64(i128 x, int64_t *out)
{
    if (x > (i128)INT64_MAX || x < (i128)INT64_MIN)
        return 0;
    *out = (int64_t)x;
    return 1;
}

/* ---- contract --------------------------------------------------------------- */

enum mf_err mf_contract_check(const struct mf_contract *c)
{
    if (c == NULL || c->tick_px <= 0 || c->lot_qty <= 0)
        return MF_ERR_RANGE;
    switch (c->kind) {
    case MF_INVERSE:
        return c->multiplier < 0 ? MF_OK : MF_ERR_RANGE;
    case MF_QUANTO:
    case MF_LINEAR:
        return c->multiplier > 0 ? MF_OK : MF_ERR_RANGE;
    }
    return MF_ERR_RANGE;
}

const char *mf_err_name(enum mf_err e)
{
    switch (e) {
    case MF_OK:
        return "ok";
    case MF_ERR_RANGE:
        return "range";
    case MF_ERR_OVERFLOW:
        return "overflow";
    case MF_ERR_NO_PRICE:
        return "no_price";
    }
    return "unknown";
}

/* ---- value, fees, entry price, PnL ------------------------------------------ */

/* The value as an i128, unrounded inputs checked by the caller. */
static enum mf_err value128(const struct mf_contract *c, qty_t qty, px_t price_px, i128 *v)
{
    i128 n;
    if (!mulc(qty, c->multiplier, &n))
        return MF_ERR_OVERFLOW;
    if (c->kind == MF_INVERSE) {
        /* Inverse: q * mult / (price_px / PX_SCALE). */
        if (!mulc(n, PX_SCALE, &n))
            return MF_ERR_OVERFLOW;
        /* Rounding: half away from zero, symmetric in q (formula.h). */
        *v = div_half_away(n, price_px);
    } else {
        /* Quanto/linear: q * mult * (price_px / PX_SCALE). */
        if (!mulc(n, price_px, &n))
            return MF_ERR_OVERFLOW;
        /* Rounding: half away from zero, symmetric in q (formula.h). */
        *v = div_half_away(n, PX_SCALE);
    }
    return MF_OK;
}

enum mf_err mf_value(const struct mf_contract *c, qty_t qty, px_t price_px, sats_t *value_sats)
{
    enum mf_err e = mf_contract_check(c);
    if (e != MF_OK)
        return e;
    if (price_px <= 0)
        return MF_ERR_RANGE;
    i128 v;
    e = value128(c, qty, price_px, &v);
    if (e != MF_OK)
        return e;
    sats_t out;
    if (!fit64(v, &out))
        return MF_ERR_OVERFLOW;
    *value_sats = out;
    return MF_OK;
}

enum mf_err mf_fee(sats_t value_sats, rate_t rate_e8, sats_t *comm_sats)
{
    i128 n;
    if (!mulc(abs128(value_sats), rate_e8, &n))
        return MF_ERR_OVERFLOW;
    /* BitMEX's execComm = round(|execCost| x rate). Rounding: nearest,
     * ties toward +inf (a tie goes against the trader). */
    sats_t out;
    if (!fit64(div_half_ceil(n, MF_RATE_SCALE), &out))
        return MF_ERR_OVERFLOW;
    *comm_sats = out;
    return MF_OK;
}

enum mf_err mf_avg_entry_px(const struct mf_contract *c, qty_t qty, sats_t cost_sats,
                            px_t *avg_px)
{
    enum mf_err e = mf_contract_check(c);
    if (e != MF_OK)
        return e;
    if (qty == 0 || cost_sats == 0)
        return MF_ERR_RANGE;
    i128 qm, num, den;
    if (!mulc(qty, c->multiplier, &qm))
        return MF_ERR_OVERFLOW;
    /* The cost has the sign of qty x multiplier. */
    if ((qm < 0) != (cost_sats < 0))
        return MF_ERR_RANGE;
    if (c->kind == MF_INVERSE) {
        /* avgEntryPrice = q x mult / unrealisedCost. */
        if (!mulc(qm, PX_SCALE, &num))
            return MF_ERR_OVERFLOW;
        den = cost_sats;
    } else {
        /* avgEntryPrice = unrealisedCost / (q x mult). */
        if (!mulc(cost_sats, PX_SCALE, &num))
            return MF_ERR_OVERFLOW;
        den = qm;
    }
    /* Rounding: nearest px, ties away from zero (informational price). */
    px_t out;
    if (!fit64(div_half_away(abs128(num), abs128(den)), &out))
        return MF_ERR_OVERFLOW;
    *avg_px = out;
    return MF_OK;
}

enum mf_err mf_px_to_tick(px_t px, px_t tick_px, enum mf_round mode, px_t *out_px)
{
    if (tick_px <= 0)
        return MF_ERR_RANGE;
    i128 t;
    switch (mode) {
    case MF_ROUND_DOWN:
        t = div_floor(px, tick_px); /* toward -inf */
        break;
    case MF_ROUND_UP:
        t = div_ceil(px, tick_px); /* toward +inf */
        break;
    case MF_ROUND_NEAREST:
        t = div_half_ceil(px, tick_px); /* nearest, ties up */
        break;
    default:
        return MF_ERR_RANGE;
    }
    px_t out;
    if (!fit64(t * tick_px, &out)) /* |t| <= |px| + 1: no i128 overflow */
        return MF_ERR_OVERFLOW;
    *out_px = out;
    return MF_OK;
}

enum mf_err mf_pnl(const struct mf_contract *c, qty_t qty, px_t entry_px, px_t exit_px,
                   sats_t *pnl_sats)
{
    sats_t v_entry, v_exit;
    enum mf_err e = mf_value(c, qty, entry_px, &v_entry);
    if (e != MF_OK)
        return e;
    e = mf_value(c, qty, exit_px, &v_exit);
    if (e != MF_OK)
        return e;
    /* realisedGrossPnl = -(cost open + cost close)
     * = value(q, exit) - value(q, entry), value being odd in q. */
    sats_t out;
    if (!fit64((i128)v_exit - v_entry, &out))
        return MF_ERR_OVERFLOW;
    *pnl_sats = out;
    return MF_OK;
}

enum mf_err mf_unrealised_pnl(const struct mf_contract *c, qty_t qty, px_t mark_px,
                              sats_t unrealised_cost_sats, sats_t *pnl_sats)
{
    sats_t mark_value;
    enum mf_err e = mf_value(c, qty, mark_px, &mark_value);
    if (e != MF_OK)
        return e;
    /* unrealisedPnl = markValue - unrealisedCost. */
    sats_t out;
    if (!fit64((i128)mark_value - unrealised_cost_sats, &out))
        return MF_ERR_OVERFLOW;
    *pnl_sats = out;
    return MF_OK;
}

enum mf_err mf_cost_share(sats_t open_cost_sats, qty_t open_qty, qty_t close_qty,
                          sats_t *share_sats)
{
    i128 open_abs = abs128(open_qty);
    if (open_qty == 0 || close_qty < 0 || close_qty > open_abs)
        return MF_ERR_RANGE;
    i128 n;
    if (!mulc(open_cost_sats, close_qty, &n))
        return MF_ERR_OVERFLOW;
    /* Average cost: closing fraction x open cost. Rounding:
     * toward +inf, so the PnL realised now rounds down (against the trader);
     * exact when everything is closed. |result| <= |open_cost|: fits. */
    *share_sats = (sats_t)div_ceil(n, open_abs);
    return MF_OK;
}

/* ---- margin requirements ------------------------------------------------------ */

/* ceil(|value| x rate), rate >= 0, as an i128 (no int64 check). */
static enum mf_err req128(i128 value, rate_t rate_e8, i128 *req)
{
    if (rate_e8 < 0)
        return MF_ERR_RANGE;
    i128 n;
    if (!mulc(abs128(value), rate_e8, &n))
        return MF_ERR_OVERFLOW;
    /* Rounding: UP, a requirement goes against the trader. */
    *req = div_ceil(n, MF_RATE_SCALE);
    return MF_OK;
}

enum mf_err mf_margin_req(sats_t value_sats, rate_t rate_e8, sats_t *req_sats)
{
    i128 r;
    enum mf_err e = req128(value_sats, rate_e8, &r);
    if (e != MF_OK)
        return e;
    sats_t out;
    if (!fit64(r, &out))
        return MF_ERR_OVERFLOW;
    *req_sats = out;
    return MF_OK;
}

enum mf_err mf_through_mark_premium(const struct mf_contract *c, qty_t qty, px_t price_px,
                                    px_t mark_px, sats_t *premium_sats)
{
    sats_t v_price, v_mark;
    enum mf_err e = mf_value(c, qty, price_px, &v_price);
    if (e != MF_OK)
        return e;
    e = mf_value(c, qty, mark_px, &v_mark);
    if (e != MF_OK)
        return e;
    /* BitMEX: +100% of (order price - mark) in value terms for a
     * buy above / sell below the mark = the unrealised loss at fill,
     * -(markValue - cost) = value(q, price) - value(q, mark), floored at 0. */
    i128 d = (i128)v_price - v_mark;
    if (d < 0)
        d = 0;
    sats_t out;
    if (!fit64(d, &out))
        return MF_ERR_OVERFLOW;
    *premium_sats = out;
    return MF_OK;
}

enum mf_err mf_order_init_margin(const struct mf_contract *c, qty_t qty, px_t price_px,
                                 px_t mark_px, rate_t im_e8, sats_t *req_sats)
{
    sats_t v_price, premium;
    enum mf_err e = mf_value(c, qty, price_px, &v_price);
    if (e != MF_OK)
        return e;
    e = mf_through_mark_premium(c, qty, price_px, mark_px, &premium);
    if (e != MF_OK)
        return e;
    i128 im, total;
    e = req128(v_price, im_e8, &im); /* IM% x value, UP */
    if (e != MF_OK)
        return e;
    if (!addc(im, premium, &total))
        return MF_ERR_OVERFLOW;
    sats_t out;
    if (!fit64(total, &out))
        return MF_ERR_OVERFLOW;
    *req_sats = out;
    return MF_OK;
}

enum mf_err mf_close_comm_reserve(sats_t cost_sats, sats_t pos_init_sats, rate_t taker_e8,
                                  sats_t *comm_sats)
{
    if (pos_init_sats < 0)
        return MF_ERR_RANGE;
    if (taker_e8 <= 0) {
        *comm_sats = 0;
        return MF_OK;
    }
    i128 base = abs128(cost_sats) + pos_init_sats; /* < 2^65: no overflow */
    i128 r;
    /* As observed: posComm = taker x (|posCost| + posInit), UP. */
    enum mf_err e = req128(base, taker_e8, &r);
    if (e != MF_OK)
        return e;
    sats_t out;
    if (!fit64(r, &out))
        return MF_ERR_OVERFLOW;
    *comm_sats = out;
    return MF_OK;
}

enum mf_err mf_funding_payment(const struct mf_contract *c, qty_t qty, px_t mark_px,
                               rate_t rate_e8, sats_t *paid_sats)
{
    sats_t mark_value;
    enum mf_err e = mf_value(c, qty, mark_px, &mark_value);
    if (e != MF_OK)
        return e;
    i128 n;
    if (!mulc(abs128(mark_value), abs128(rate_e8), &n))
        return MF_ERR_OVERFLOW;
    /* Positive rate, longs pay; negative, shorts pay. */
    int pays = (qty > 0 && rate_e8 > 0) || (qty < 0 && rate_e8 < 0);
    /* Rounding: payer UP, receiver DOWN (both against the trader). */
    i128 amount = pays ? div_ceil(n, MF_RATE_SCALE) : -div_floor(n, MF_RATE_SCALE);
    sats_t out;
    if (!fit64(amount, &out))
        return MF_ERR_OVERFLOW;
    *paid_sats = out;
    return MF_OK;
}

enum mf_err mf_maint_margin(const struct mf_contract *c, qty_t qty, px_t mark_px, rate_t mm_e8,
                            sats_t close_comm_sats, rate_t funding_rate_e8, sats_t *req_sats)
{
    if (close_comm_sats < 0)
        return MF_ERR_RANGE;
    sats_t mark_value, funding;
    enum mf_err e = mf_value(c, qty, mark_px, &mark_value);
    if (e != MF_OK)
        return e;
    e = mf_funding_payment(c, qty, mark_px, funding_rate_e8, &funding);
    if (e != MF_OK)
        return e;
    i128 mm, total;
    e = req128(mark_value, mm_e8, &mm); /* MM% x value at mark, UP */
    if (e != MF_OK)
        return e;
    /* + closing commission + next funding if it will be paid. */
    if (!addc(mm, close_comm_sats, &total) || !addc(total, funding > 0 ? funding : 0, &total))
        return MF_ERR_OVERFLOW;
    sats_t out;
    if (!fit64(total, &out))
        return MF_ERR_OVERFLOW;
    *req_sats = out;
    return MF_OK;
}

/* ---- risk limits ---------------------------------------------------------------- */

enum mf_err mf_risk_limit(sats_t base_limit_sats, sats_t step_sats, int64_t k,
                          sats_t *limit_sats)
{
    if (base_limit_sats <= 0 || step_sats <= 0 || k < 0)
        return MF_ERR_RANGE;
    i128 s;
    /* riskLimit in {R0 + k x S}. */
    if (!mulc(k, step_sats, &s) || !addc(s, base_limit_sats, &s))
        return MF_ERR_OVERFLOW;
    sats_t out;
    if (!fit64(s, &out))
        return MF_ERR_OVERFLOW;
    *limit_sats = out;
    return MF_OK;
}

enum mf_err mf_risk_step(sats_t base_limit_sats, sats_t step_sats, sats_t risk_value_sats,
                         int64_t *k)
{
    if (base_limit_sats <= 0 || step_sats <= 0)
        return MF_ERR_RANGE;
    i128 risk = abs128(risk_value_sats);
    /* Rounding: UP, a value over a limit needs the next step. */
    *k = risk <= base_limit_sats ? 0 : (int64_t)div_ceil(risk - base_limit_sats, step_sats);
    return MF_OK;
}

enum mf_err mf_tier_rates(rate_t base_im_e8, rate_t base_mm_e8, int64_t k, rate_t *im_e8,
                          rate_t *mm_e8)
{
    if (k < 0 || base_im_e8 < 0 || base_mm_e8 < 0)
        return MF_ERR_RANGE;
    i128 mm, im;
    /* MM% = baseMM x (1 + k), IM% = baseIM + k x baseMM. */
    if (!mulc(base_mm_e8, (i128)k + 1, &mm) || !mulc(base_mm_e8, k, &im) ||
        !addc(im, base_im_e8, &im))
        return MF_ERR_OVERFLOW;
    rate_t im_out, mm_out;
    if (!fit64(im, &im_out) || !fit64(mm, &mm_out))
        return MF_ERR_OVERFLOW;
    *im_e8 = im_out;
    *mm_e8 = mm_out;
    return MF_OK;
}

/* ---- bankruptcy and liquidation ---------------------------------------------------- */

enum mf_err mf_im_from_leverage(rate_t leverage_e8, rate_t *im_e8)
{
    if (leverage_e8 <= 0)
        return MF_ERR_RANGE;
    /* initMarginReq = 1 / leverage. Rounding: UP. */
    rate_t out;
    if (!fit64(div_ceil((i128)MF_RATE_SCALE * MF_RATE_SCALE, leverage_e8), &out))
        return MF_ERR_OVERFLOW;
    *im_e8 = out;
    return MF_OK;
}

enum mf_err mf_im_eff(sats_t margin_sats, sats_t value_sats, rate_t *im_e8)
{
    if (value_sats == 0 || margin_sats < 0)
        return MF_ERR_RANGE;
    /* IM_eff = (posInit + posCross) / |value|. Rounding:
     * DOWN (less margin counted, against the trader). */
    rate_t out;
    if (!fit64(div_floor((i128)margin_sats * MF_RATE_SCALE, abs128(value_sats)), &out))
        return MF_ERR_OVERFLOW;
    *im_e8 = out;
    return MF_OK;
}

enum mf_err mf_mm_eff(rate_t mm_e8, rate_t funding_rate_e8, qty_t qty, rate_t *mm_eff_e8)
{
    if (mm_e8 < 0)
        return MF_ERR_RANGE;
    /* MM_eff = maintMarginReq + (fundingRate if paying). */
    int pays = (qty > 0 && funding_rate_e8 > 0) || (qty < 0 && funding_rate_e8 < 0);
    rate_t out;
    if (!fit64((i128)mm_e8 + (pays ? abs128(funding_rate_e8) : 0), &out))
        return MF_ERR_OVERFLOW;
    *mm_eff_e8 = out;
    return MF_OK;
}

/*
 * The price at which an isolated position entered at entry_px has lost the
 * fraction g of its entry value:
 *   inverse  long E / (1 + g)    short E / (1 - g)
 *   linear   long E x (1 - g)    short E x (1 + g)
 * straight to the tick in one division: long UP, short DOWN.
 */
static enum mf_err px_at_loss(const struct mf_contract *c, qty_t qty, px_t entry_px, i128 g_e8,
                              px_t *px)
{
    enum mf_err e = mf_contract_check(c);
    if (e != MF_OK)
        return e;
    if (qty == 0 || entry_px <= 0)
        return MF_ERR_RANGE;
    int is_long = qty > 0;
    i128 num, den, ticks;
    if (c->kind == MF_INVERSE) {
        i128 f = is_long ? MF_RATE_SCALE + g_e8 : MF_RATE_SCALE - g_e8;
        if (f <= 0)
            return MF_ERR_NO_PRICE;
        /* price = E x SCALE / f; in ticks: E x SCALE / (f x tick). */
        if (!mulc(entry_px, MF_RATE_SCALE, &num) || !mulc(f, c->tick_px, &den))
            return MF_ERR_OVERFLOW;
    } else {
        i128 f = is_long ? MF_RATE_SCALE - g_e8 : MF_RATE_SCALE + g_e8;
        if (f <= 0)
            return MF_ERR_NO_PRICE;
        /* price = E x f / SCALE; in ticks: E x f / (SCALE x tick). */
        if (!mulc(entry_px, f, &num) || !mulc(MF_RATE_SCALE, c->tick_px, &den))
            return MF_ERR_OVERFLOW;
    }
    /* Rounding: long UP, short DOWN, to the tick (inferred; BitMEX is silent). */
    ticks = is_long ? div_ceil(num, den) : div_floor(num, den);
    i128 p;
    if (!mulc(ticks, c->tick_px, &p))
        return MF_ERR_OVERFLOW;
    if (p <= 0)
        return MF_ERR_NO_PRICE;
    px_t out;
    if (!fit64(p, &out))
        return MF_ERR_OVERFLOW;
    *px = out;
    return MF_OK;
}

enum mf_err mf_bankrupt_px(const struct mf_contract *c, qty_t qty, px_t entry_px, rate_t im_eff_e8,
                           px_t *px)
{
    if (im_eff_e8 < 0)
        return MF_ERR_RANGE;
    return px_at_loss(c, qty, entry_px, im_eff_e8, px);
}

enum mf_err mf_liq_px(const struct mf_contract *c, qty_t qty, px_t entry_px, rate_t im_eff_e8,
                      rate_t mm_eff_e8, px_t *px)
{
    if (im_eff_e8 < 0 || mm_eff_e8 < 0)
        return MF_ERR_RANGE;
    return px_at_loss(c, qty, entry_px, (i128)im_eff_e8 - mm_eff_e8, px);
}

/* ---- funding rate ---------------------------------------------------------------------- */


enum mf_err mf_funding_interest(rate_t quote_daily_e8, rate_t base_daily_e8, ms_t interval_ms,
                                rate_t *interest_e8)
{
    if (interval_ms <= 0)
        return MF_ERR_RANGE;
    i128 n;
    if (!mulc((i128)quote_daily_e8 - base_daily_e8, interval_ms, &n))
        return MF_ERR_OVERFLOW;
    /* I = (quote - base) / 3 at 8 h. Rounding: nearest,
     * ties away from zero. */
    rate_t out;
    if (!fit64(div_half_away(n, MS_PER_DAY), &out))
        return MF_ERR_OVERFLOW;
    *interest_e8 = out;
    return MF_OK;
}

enum mf_err mf_premium_index(px_t impact_bid_px, px_t impact_ask_px, px_t mark_px, px_t index_px,
                             rate_t basis_in_mark_e8, rate_t *premium_e8)
{
    if (impact_bid_px <= 0 || impact_ask_px <= 0 || mark_px <= 0 || index_px <= 0)
        return MF_ERR_RANGE;
    /* P = (max(0, impactBid - mark) - max(0, mark - impactAsk))
     * / index + fundingBasisUsedInMark. */
    i128 above = (i128)impact_bid_px - mark_px;
    i128 below = (i128)mark_px - impact_ask_px;
    i128 diff = (above > 0 ? above : 0) - (below > 0 ? below : 0);
    i128 n, p;
    if (!mulc(diff, MF_RATE_SCALE, &n))
        return MF_ERR_OVERFLOW;
    /* Rounding: nearest, ties away from zero (symmetric). */
    if (!addc(div_half_away(n, index_px), basis_in_mark_e8, &p))
        return MF_ERR_OVERFLOW;
    rate_t out;
    if (!fit64(p, &out))
        return MF_ERR_OVERFLOW;
    *premium_e8 = out;
    return MF_OK;
}

enum mf_err mf_funding_rate(rate_t premium_e8, rate_t interest_e8, rate_t im_e8, rate_t mm_e8,
                            rate_t *rate_e8)
{
    if (mm_e8 < 0 || im_e8 < mm_e8)
        return MF_ERR_RANGE;
    /* F = P + clamp(I - P, -0.05%, +0.05%). */
    i128 d = (i128)interest_e8 - premium_e8;
    if (d > MF_FUNDING_CLAMP_E8)
        d = MF_FUNDING_CLAMP_E8;
    if (d < -MF_FUNDING_CLAMP_E8)
        d = -MF_FUNDING_CLAMP_E8;
    i128 f = premium_e8 + d;
    /* Cap |F| <= 0.75 x (IM - MM); x3/4 rounded DOWN (cap >= 0). */
    i128 cap = div_floor(((i128)im_e8 - mm_e8) * 3, 4);
    if (f > cap)
        f = cap;
    if (f < -cap)
        f = -cap;
    *rate_e8 = (rate_t)f; /* |f| <= cap < 2^63 */
    return MF_OK;
}

/* ---- fair price --------------------------------------------------------------------------- */

enum mf_err mf_funding_basis(rate_t funding_rate_e8, ms_t until_funding_ms, ms_t interval_ms,
                             rate_t *basis_e8)
{
    if (interval_ms <= 0 || until_funding_ms < 0)
        return MF_ERR_RANGE;
    i128 n;
    if (!mulc(funding_rate_e8, until_funding_ms, &n))
        return MF_ERR_OVERFLOW;
    /* fundingBasis = rate x until / interval. Rounding:
     * nearest, ties away from zero. */
    rate_t out;
    if (!fit64(div_half_away(n, interval_ms), &out))
        return MF_ERR_OVERFLOW;
    *basis_e8 = out;
    return MF_OK;
}

/* index + index x rate x t / (MF_RATE_SCALE x span), in one division
 * rounded to the nearest px, ties away from zero: the shape of both fair
 * prices. */
static enum mf_err index_plus_basis(px_t index_px, rate_t rate_e8, ms_t t_ms, ms_t span_ms,
                                    px_t *fair_px)
{
    i128 n, d, fair;
    if (!mulc(index_px, rate_e8, &n) || !mulc(n, t_ms, &n) || !mulc(MF_RATE_SCALE, span_ms, &d))
        return MF_ERR_OVERFLOW;
    if (!addc(index_px, div_half_away(n, d), &fair))
        return MF_ERR_OVERFLOW;
    if (fair <= 0)
        return MF_ERR_NO_PRICE;
    px_t out;
    if (!fit64(fair, &out))
        return MF_ERR_OVERFLOW;
    *fair_px = out;
    return MF_OK;
}

enum mf_err mf_perp_fair_px(px_t index_px, rate_t funding_rate_e8, ms_t until_funding_ms,
                            ms_t interval_ms, px_t *fair_px)
{
    if (index_px <= 0 || interval_ms <= 0 || until_funding_ms < 0)
        return MF_ERR_RANGE;
    /* fairPrice = index x (1 + rate x until / interval). */
    return index_plus_basis(index_px, funding_rate_e8, until_funding_ms, interval_ms, fair_px);
}

enum mf_err mf_perp_fair_basis_rate(rate_t funding_rate_e8, ms_t interval_ms,
                                    rate_t *basis_rate_e8)
{
    if (interval_ms <= 0)
        return MF_ERR_RANGE;
    i128 n;
    if (!mulc(funding_rate_e8, MF_YEAR_MS, &n))
        return MF_ERR_OVERFLOW;
    /* fairBasisRate = rate x 3 x 365 at 8 h. Rounding:
     * nearest, ties away from zero (exact for 8 h). */
    rate_t out;
    if (!fit64(div_half_away(n, interval_ms), &out))
        return MF_ERR_OVERFLOW;
    *basis_rate_e8 = out;
    return MF_OK;
}

enum mf_err mf_futures_basis_rate(px_t impact_bid_px, px_t impact_ask_px, px_t index_px,
                                  ms_t to_expiry_ms, rate_t *basis_annual_e8)
{
    if (impact_bid_px <= 0 || impact_ask_px <= 0 || index_px <= 0 || to_expiry_ms <= 0)
        return MF_ERR_RANGE;
    /* %FairBasis = (impactMid / index - 1) / (T / year)
     *   = (bid + ask - 2 index) x year / (2 index x T). */
    i128 n, d;
    i128 diff = (i128)impact_bid_px + impact_ask_px - 2 * (i128)index_px;
    if (!mulc(diff, MF_RATE_SCALE, &n) || !mulc(n, MF_YEAR_MS, &n) ||
        !mulc(2 * (i128)index_px, to_expiry_ms, &d))
        return MF_ERR_OVERFLOW;
    /* Rounding: nearest, ties away from zero (symmetric). */
    rate_t out;
    if (!fit64(div_half_away(n, d), &out))
        return MF_ERR_OVERFLOW;
    *basis_annual_e8 = out;
    return MF_OK;
}

enum mf_err mf_futures_fair_px(px_t index_px, rate_t basis_annual_e8, ms_t to_expiry_ms,
                               px_t *fair_px)
{
    if (index_px <= 0 || to_expiry_ms < 0)
        return MF_ERR_RANGE;
    /* fairPrice = index + index x %FairBasis x T / year. */
    return index_plus_basis(index_px, basis_annual_e8, to_expiry_ms, MF_YEAR_MS, fair_px);
}

int mf_futures_basis_updatable(px_t impact_bid_px, px_t impact_ask_px, rate_t mm_e8)
{
    if (impact_bid_px <= 0 || impact_ask_px < impact_bid_px || mm_e8 < 0)
        return 0;
    /* ask - bid < MM x (bid + ask) / 2, cross-multiplied
     * (exact, no rounding). Each side < 2^64 x 2^28: no overflow. */
    i128 spread = ((i128)impact_ask_px - impact_bid_px) * 2 * MF_RATE_SCALE;
    i128 allowed = (i128)mm_e8 * ((i128)impact_bid_px + impact_ask_px);
    return spread < allowed;
}

/* ---- auto-deleveraging ----------------------------------------------------------------------- */

enum mf_err mf_adl_score(sats_t mark_value_sats, sats_t entry_value_sats,
                         sats_t bankrupt_value_sats, int64_t *score_e8)
{
    i128 pnl = (i128)mark_value_sats - entry_value_sats;   /* PNL% numerator */
    i128 entry = abs128(entry_value_sats);                 /* PNL% denominator */
    i128 mark = abs128(mark_value_sats);                   /* effLev numerator */
    i128 margin = (i128)mark_value_sats - bankrupt_value_sats; /* effLev denominator */
    if (entry == 0 || margin <= 0)
        return MF_ERR_RANGE;
    i128 n, d;
    if (pnl > 0) {
        /* PNL% x effLev = pnl x mark / (entry x margin). */
        if (!mulc(pnl, mark, &n) || !mulc(n, MF_RATE_SCALE, &n) || !mulc(entry, margin, &d))
            return MF_ERR_OVERFLOW;
    } else {
        /* PNL% / effLev = pnl x margin / (entry x mark). */
        if (mark == 0)
            return MF_ERR_RANGE;
        if (!mulc(pnl, margin, &n) || !mulc(n, MF_RATE_SCALE, &n) || !mulc(entry, mark, &d))
            return MF_ERR_OVERFLOW;
    }
    /* Rounding: DOWN (toward -inf), one consistent order for ranking. */
    int64_t out;
    if (!fit64(div_floor(n, d), &out))
        return MF_ERR_OVERFLOW;
    *score_e8 = out;
    return MF_OK;
}
