/*
 * formula.h - the pure integer formulas of the margin core: contract value,
 * fees, entry price, PnL, margin requirements, risk-limit tiers, bankruptcy
 * and liquidation prices, funding, fair price and the ADL score.
 *
 * Everything here is a pure function of its arguments: no I/O, no globals,
 * no floating point. Positions, accounts and liquidation (built on top) own
 * all state; this layer only computes numbers.
 *
 * Invariants every function keeps:
 *   - Results are written only on MF_OK; on an error the out-parameters are
 *     left untouched. Products are formed in i128 with overflow checks, and a
 *     result that does not fit its int64 type is MF_ERR_OVERFLOW, never a
 *     wrapped number.
 *   - Every division names its rounding (here and in formula.c). Rounding goes
 *     against the trader (requirements up, realised PnL down, funding payer up
 *     / receiver down), or is symmetric between the two sides of a trade so
 *     that it moves money between nobody (value, mark and fair prices), or is
 *     BitMEX's observed rule with the rounding residue kept by a named account
 *     (fees: the fee account). Each function says which.
 *   - A BitMEX rule is stated in full where it is used: its formula, and
 *     BitMEX's worked figure when there is one.
 *
 * Units (see engine/units.h): px_t price in 1e-8 quote units, qty_t contracts
 * (signed: long > 0), sats_t settlement minor units (XBt, USDt), ms_t ms.
 * Rates are rate_t in 1e-8 units (names end in _e8):
 *   takerFee 0.00075 = 75000, makerFee -0.00025 = -25000, initMargin 0.01 =
 *   1000000, maintMargin 0.005 = 500000, fundingRate 0.0001 = 10000,
 *   leverage 100x = 10000000000 (leverage is a rate_t too: 1.0 = RATE_SCALE).
 */
#ifndef PERPSIM_MARGIN_FORMULA_H
#define PERPSIM_MARGIN_FORMULA_H

#include <stdint.h>

#include "engine/units.h"

/* A rate in 1e-8 units: 0.00075 = 75000. */
typedef int64_t rate_t;
#define MF_RATE_SCALE INT64_C(100000000)

/* A year for annualised rates (%FairBasis, fairBasisRate): 365 days, as
 * BitMEX's "daysToExpiry/365" and "fundingRate x 3 x 365". */
#define MF_YEAR_MS (INT64_C(365) * MS_PER_DAY)

enum mf_err {
    MF_OK = 0,
    MF_ERR_RANGE,    /* an argument outside its domain (price <= 0, bad contract...) */
    MF_ERR_OVERFLOW, /* the result (or an intermediate beyond i128) does not fit */
    MF_ERR_NO_PRICE, /* no finite positive price exists (e.g. 1x short inverse bankruptcy) */
};

/* BitMEX's contract types. QUANTO and LINEAR share every formula here
 * (value is q * multiplier * price for both); the kind is kept for what
 * callers show. */
enum mf_kind { MF_INVERSE = 1, MF_QUANTO = 2, MF_LINEAR = 3 };

/*
 * A contract, as BitMEX's instrument fields:
 *   multiplier  BitMEX's `multiplier`, settlement minor units per contract
 *               per 1.0 of price (inverse: per 1/price), signed as BitMEX:
 *               INVERSE must be < 0 (XBTUSD -100000000, so a long has
 *               negative value); QUANTO and LINEAR must be > 0 (ETHUSD 100
 *               XBt per $; ETHZ20 100000000; XBTUSDT 1).
 *               For linear contracts BitMEX's multiplier already equals
 *               quoteToSettleMultiplier / underlyingToPositionMultiplier
 *               (XBTUSDT: 1e6 USDt per USDT / 1e6 contracts per XBT = 1), so
 *               those two fields are not stored: one contract of XBTUSDT is
 *               1e-6 XBT and 1000 (one lot) @ 20000.5 is worth 20,000,500 USDt.
 *   tick_px     tickSize in px (XBTUSD 0.5 USD = 50000000).
 *   lot_qty     lotSize in contracts (XBTUSD 100 since 2021, XBTUSDT 1000).
 */
struct mf_contract {
    enum mf_kind kind;
    int64_t multiplier;
    px_t tick_px;
    qty_t lot_qty;
};

/* ---- contract ------------------------------------------------------------ */

/* MF_OK when the kind is known, the multiplier has its kind's sign, and tick
 * and lot are > 0; else MF_ERR_RANGE. Every function taking a contract checks
 * this first. */
enum mf_err mf_contract_check(const struct mf_contract *c);

/* A static name for an error ("ok", "range", "overflow", "no_price"). */
const char *mf_err_name(enum mf_err e);

/* ---- value, fees, entry price, PnL --------------------------------------- */

/*
 * The signed value of qty contracts at price_px, in settlement minor units:
 *   INVERSE          value = qty * multiplier / price   (long: negative)
 *   QUANTO, LINEAR   value = qty * multiplier * price   (long: positive)
 * Rounding: the exact rational value of the WHOLE quantity, rounded half away
 * from zero (half-up on the magnitude, sign applied after). So
 * value(-q, p) == -value(q, p) exactly: the two sides of a trade book
 * opposite values and the rounding moves money between nobody. The error is
 * <= 0.5 minor unit whatever the size.
 * Deliberately not the per-lot rule (one lot's value rounded, times lots):
 * per-lot rounding errs by up to 0.5 unit per lot and does not reproduce
 * BitMEX's guide example (long 15000 XBTUSD @750 -> 800 = exactly
 * 1.25 XBT; per contract it would be 124,995,000 XBt). Both rules agree on the
 * 2021 observations (one lot: 100 @ 46976 -> -212875). Pre-2021 trade
 * grossValue rounded per contract (229 @ 8120 -> 2,820,135); this gives
 * 2,820,197 (exact 2,820,197.04).
 * MF_ERR_RANGE: bad contract or price_px <= 0.
 */
enum mf_err mf_value(const struct mf_contract *c, qty_t qty, px_t price_px, sats_t *value_sats);

/*
 * Commission of one fill: execComm = |value| * rate.
 * Positive = paid by the trader; a negative rate (maker rebate) gives a
 * negative commission (received).
 * Rounding: to the nearest unit, ties toward +infinity (against the trader:
 * a tie charges the extra unit of a fee, pays the smaller rebate). Nearest,
 * not ceiling, because a fill observed on BitMEX (execCost 9919 x 0.00075
 * = 7.44) charged 7. The trader and the fee account move the same integer,
 * so the residue is the fee account's pricing, not lost money.
 */
enum mf_err mf_fee(sats_t value_sats, rate_t rate_e8, sats_t *comm_sats);

/*
 * avgEntryPrice from an open position's qty and unrealisedCost:
 *   INVERSE          price = qty * multiplier / cost  (harmonic mean of fills)
 *   QUANTO, LINEAR   price = cost / (qty * multiplier)
 * Rounding: to the nearest px, ties away from zero. It is informational (PnL
 * comes from costs, never from this price), so no side is favoured. The
 * result may be off the tick: 100 @ 46976 has cost -212875 and gives
 * 46975.92483852 (4697592483852 px); mf_px_to_tick(..., MF_ROUND_NEAREST) gives
 * back 46976 for a single-fill position of that size.
 * MF_ERR_RANGE: qty == 0, cost == 0, or cost of the wrong sign for qty.
 */
enum mf_err mf_avg_entry_px(const struct mf_contract *c, qty_t qty, sats_t cost_sats,
                            px_t *avg_px);

enum mf_round { MF_ROUND_DOWN = 1, MF_ROUND_UP = 2, MF_ROUND_NEAREST = 3 };

/* px to a multiple of tick_px: DOWN toward -inf, UP toward +inf, NEAREST
 * with ties up. MF_ERR_RANGE: tick_px <= 0 or unknown mode. */
enum mf_err mf_px_to_tick(px_t px, px_t tick_px, enum mf_round mode, px_t *out_px);

/*
 * Gross PnL of qty contracts (signed; long > 0) opened at entry_px and closed
 * at exit_px: value(qty, exit) - value(qty, entry), i.e.
 * -(cost of the open fill + cost of the close fill), exactly the engine
 * bookkeeping's realisedGrossPnl for a full round trip.
 *   inverse  q * |mult| * (1/entry - 1/exit);  quanto/linear  q*mult*(exit-entry).
 * Rounding: none beyond mf_value's; pnl(-q) == -pnl(q) exactly.
 */
enum mf_err mf_pnl(const struct mf_contract *c, qty_t qty, px_t entry_px, px_t exit_px,
                   sats_t *pnl_sats);

/* unrealisedPnl = markValue - unrealisedCost, markValue = value(qty, mark)
 * (a real XBTUSD position: -212951 - (-212875) = -76). No rounding beyond
 * mf_value. */
enum mf_err mf_unrealised_pnl(const struct mf_contract *c, qty_t qty, px_t mark_px,
                              sats_t unrealised_cost_sats, sats_t *pnl_sats);

/*
 * The part of an open position's cost attributed to closing close_qty of its
 * open_qty contracts, by the average-cost method (BitMEX's realisedCost =
 * closing fraction x open cost):
 *   share = open_cost * close_qty / |open_qty|.
 * close_qty is a count, 0 <= close_qty <= |open_qty|; a close that flips the
 * position is two calls (close all, then open).
 * Rounding: toward +infinity. The realised gross PnL of the close is
 * -(share + value of the closing fill), so rounding the share up rounds the
 * PnL realised now down (against the trader); the remaining cost
 * (open_cost - share) carries the residue, and closing everything attributes
 * exactly open_cost, so nothing is lost over the position's life.
 * MF_ERR_RANGE: open_qty == 0 or close_qty outside [0, |open_qty|].
 */
enum mf_err mf_cost_share(sats_t open_cost_sats, qty_t open_qty, qty_t close_qty,
                          sats_t *share_sats);

/* ---- margin requirements ------------------------------------------------- */

/* A requirement |value| * rate, rounded UP (against the trader): posInit =
 * IM% x |cost| (BitMEX showed 1% of 212875 = 2128.75 as 2129), order IM,
 * MM at mark.
 * MF_ERR_RANGE: rate_e8 < 0. */
enum mf_err mf_margin_req(sats_t value_sats, rate_t rate_e8, sats_t *req_sats);

/* The extra initial margin for an order through the mark (BitMEX's
 * openOrderBuyPremium / grossOpenPremium): 100% of the loss it would show
 * at once if filled, i.e. max(0, value(qty, price) - value(qty, mark)) with
 * qty signed (buy > 0):
 * positive for a buy above the mark or a sell below it, else 0.
 * Rounding: none beyond mf_value. */
enum mf_err mf_through_mark_premium(const struct mf_contract *c, qty_t qty, px_t price_px,
                                    px_t mark_px, sats_t *premium_sats);

/* Initial margin of an order: mf_margin_req(value(qty, price), im) +
 * mf_through_mark_premium. For a sell BitMEX values the order
 * at max(limit, bestBid): the caller passes that as price_px. Reducing parts
 * and the net-bid rule are the caller's (they need the position and book). */
enum mf_err mf_order_init_margin(const struct mf_contract *c, qty_t qty, px_t price_px,
                                 px_t mark_px, rate_t im_e8, sats_t *req_sats);

/* Commission held to close a position, posComm (as observed on BitMEX:
 * taker x (|posCost| + posInit); 0.0005 x (212875 + 2129) = 107.5 -> 108).
 * Rounding: UP (against the trader). A negative rate reserves 0. */
enum mf_err mf_close_comm_reserve(sats_t cost_sats, sats_t pos_init_sats, rate_t taker_e8,
                                  sats_t *comm_sats);

/* The clamp on I - P in the funding rate, 0.05% (BitMEX's formula). */
#define MF_FUNDING_CLAMP_E8 INT64_C(50000)

/*
 * Funding payment of a position: |value(qty, mark)| x |rate|,
 * signed: > 0 the position pays, < 0 it receives. Positive rate: longs pay,
 * shorts receive; negative rate: the reverse. qty == 0 or rate == 0: 0.
 * Rounding: against the trader on both sides: the payer's amount rounded UP,
 * the receiver's DOWN. Over all positions payments >= receipts; the residue
 * (>= 0) belongs to the named account the caller books it to.
 * BitMEX's guide example: 20 XBT x 0.25% = 0.05 XBT paid by the long.
 */
enum mf_err mf_funding_payment(const struct mf_contract *c, qty_t qty, px_t mark_px,
                               rate_t rate_e8, sats_t *paid_sats);

/*
 * Maintenance margin of a position: MM% x |value at mark| (rounded UP) +
 * close_comm_sats (mf_close_comm_reserve) + the next funding payment if the
 * position will pay it (mf_funding_payment, > 0 only).
 * A real XBTUSD position: MM 0.35% x 212951 = 745.3 -> 746, + 108 + 21.3 ->
 * 22 = 876 where BitMEX showed 875 (its individual roundings are not
 * determinable, +-1).
 */
enum mf_err mf_maint_margin(const struct mf_contract *c, qty_t qty, px_t mark_px, rate_t mm_e8,
                            sats_t close_comm_sats, rate_t funding_rate_e8, sats_t *req_sats);

/* ---- risk limits --------------------------------------------------------- */

/* The risk limit of step k: base + k x step. MF_ERR_RANGE: k < 0, base or
 * step <= 0. */
enum mf_err mf_risk_limit(sats_t base_limit_sats, sats_t step_sats, int64_t k,
                          sats_t *limit_sats);

/* The lowest step k >= 0 whose limit holds |risk_value|: 0 when |risk| <=
 * base, else ceil((|risk| - base) / step) (division rounded UP: a value over
 * a limit needs the next step; a value equal to a limit fits it, as BitMEX
 * rejects only "over the chosen limit"). MF_ERR_RANGE: base or step <= 0. */
enum mf_err mf_risk_step(sats_t base_limit_sats, sats_t step_sats, sats_t risk_value_sats,
                         int64_t *k);

/* Rates at step k: MM = baseMM x (1 + k), IM = baseIM + k x baseMM (IM
 * rises by the base maintenance rate). Exact (no division). MF_ERR_RANGE:
 * k < 0 or a negative rate. */
enum mf_err mf_tier_rates(rate_t base_im_e8, rate_t base_mm_e8, int64_t k, rate_t *im_e8,
                          rate_t *mm_e8);

/* ---- bankruptcy and liquidation, isolated -------------------------------- */

/* initMarginReq = 1 / leverage, leverage in 1e-8 units
 * (100x = 10000000000). Rounding: UP (more margin: against the trader).
 * MF_ERR_RANGE: leverage <= 0. */
enum mf_err mf_im_from_leverage(rate_t leverage_e8, rate_t *im_e8);

/* IM_eff = (posInit + posCross) / |value(q, E)|; pass the sum as margin_sats
 * and the cost as value_sats. Rounding: DOWN (less margin
 * counted: the liquidation price lands nearer the entry, against the trader).
 * MF_ERR_RANGE: value == 0 or margin < 0. */
enum mf_err mf_im_eff(sats_t margin_sats, sats_t value_sats, rate_t *im_e8);

/* MM_eff = maintMarginReq + |fundingRate| if the position pays the next
 * funding (long with rate > 0, short with rate < 0). Exact. */
enum mf_err mf_mm_eff(rate_t mm_e8, rate_t funding_rate_e8, qty_t qty, rate_t *mm_eff_e8);

/*
 * Bankruptcy price of an isolated position entered at entry_px, qty's sign
 * picks the side:
 *   inverse  long E / (1 + IM)    short E / (1 - IM)
 *   linear   long E x (1 - IM)    short E x (1 + IM)      (quanto as linear)
 * Rounded to the tick in one step from the exact rational: long UP, short
 * DOWN (inferred, BitMEX does not document it; the position is closed out
 * no later than the exact price).
 * MF_ERR_NO_PRICE: no finite price > 0 (inverse short with IM >= 1: cannot
 * go bankrupt; linear long with IM >= 1: bankrupt only at 0).
 * MF_ERR_RANGE: bad contract, qty == 0, entry <= 0, IM < 0.
 */
enum mf_err mf_bankrupt_px(const struct mf_contract *c, qty_t qty, px_t entry_px, rate_t im_eff_e8,
                           px_t *px);

/* Liquidation price, same as mf_bankrupt_px with IM replaced by IM - MM:
 *   inverse  long E / (1 + IM - MM)   short E / (1 - IM + MM)
 *   linear   long E x (1 - IM + MM)   short E x (1 + IM - MM)
 * Same rounding (long UP, short DOWN: liquidation comes no later) and
 * errors. MF_ERR_RANGE also for mm < 0. */
enum mf_err mf_liq_px(const struct mf_contract *c, qty_t qty, px_t entry_px, rate_t im_eff_e8,
                      rate_t mm_eff_e8, px_t *px);

/* ---- funding rate -------------------------------------------------------- */

/* Interest component per funding interval from the daily quote and base
 * interest rates: I = (quote - base) x interval / 1 day (8 h: / 3; 0.06% and
 * 0.03% a day -> 0.01%). Rounding: nearest, ties away from zero (a rate, not
 * money; symmetric). MF_ERR_RANGE: interval_ms <= 0. */
enum mf_err mf_funding_interest(rate_t quote_daily_e8, rate_t base_daily_e8, ms_t interval_ms,
                                rate_t *interest_e8);

/* Premium index P = (max(0, impactBid - mark) - max(0, mark - impactAsk)) /
 * index + fundingBasisUsedInMark. The division rounds to nearest,
 * ties away from zero (symmetric). MF_ERR_RANGE: a price <= 0. */
enum mf_err mf_premium_index(px_t impact_bid_px, px_t impact_ask_px, px_t mark_px, px_t index_px,
                             rate_t basis_in_mark_e8, rate_t *premium_e8);

/* F = P + clamp(I - P, -0.05%, +0.05%), then |F| <= 0.75 x (IM - MM).
 * The cap's x0.75 rounds DOWN in magnitude (1%/0.5% -> 0.375% exactly).
 * MF_ERR_RANGE: IM < MM or a negative IM/MM. */
enum mf_err mf_funding_rate(rate_t premium_e8, rate_t interest_e8, rate_t im_e8, rate_t mm_e8,
                            rate_t *rate_e8);

/* ---- fair price ---------------------------------------------------------- */

/* fundingBasis = fundingRate x timeUntilFunding / fundingInterval, as a rate
 * (the fundingBasisUsedInMark of mf_premium_index). Rounding: nearest, ties
 * away from zero. MF_ERR_RANGE: interval <= 0, until < 0. */
enum mf_err mf_funding_basis(rate_t funding_rate_e8, ms_t until_funding_ms, ms_t interval_ms,
                             rate_t *basis_e8);

/* Perpetual fair price = index x (1 + fundingRate x until / interval), in
 * one rounding from the exact product: nearest px, ties away from zero (a
 * mark price: off the tick allowed, symmetric for longs and shorts).
 * MF_ERR_RANGE: index <= 0, interval <= 0, until < 0. */
enum mf_err mf_perp_fair_px(px_t index_px, rate_t funding_rate_e8, ms_t until_funding_ms,
                            ms_t interval_ms, px_t *fair_px);

/* The instrument's fairBasisRate = fundingRate x (year / interval) (8 h:
 * x 3 x 365; 0.0001 -> 0.1095). Rounding: nearest, ties away from zero.
 * MF_ERR_RANGE: interval <= 0. */
enum mf_err mf_perp_fair_basis_rate(rate_t funding_rate_e8, ms_t interval_ms,
                                    rate_t *basis_rate_e8);

/* Futures %FairBasis (annualised) = (impactMid / index - 1) / (T / 365 d),
 * impactMid = (impactBid + impactAsk) / 2 kept as a sum (no halving
 * rounding). Rounding: one division, nearest, ties away from zero.
 * MF_ERR_RANGE: a price <= 0 or to_expiry_ms <= 0. */
enum mf_err mf_futures_basis_rate(px_t impact_bid_px, px_t impact_ask_px, px_t index_px,
                                  ms_t to_expiry_ms, rate_t *basis_annual_e8);

/* Futures fair price = index + index x %FairBasis x T / 365 d (between
 * basis updates it floats with the index and decays with T).
 * Rounding: nearest px, ties away from zero. MF_ERR_RANGE: index <= 0 or
 * to_expiry_ms < 0. */
enum mf_err mf_futures_fair_px(px_t index_px, rate_t basis_annual_e8, ms_t to_expiry_ms,
                               px_t *fair_px);

/* 1 when %FairBasis may be recalculated: impactAsk - impactBid < MM x
 * impactMid, compared exactly by cross-multiplication;
 * 0 otherwise, and 0 for non-positive or crossed prices. */
int mf_futures_basis_updatable(px_t impact_bid_px, px_t impact_ask_px, rate_t mm_e8);

/* ---- auto-deleveraging --------------------------------------------------- */

/*
 * ADL ranking score, higher is deleveraged first, from the position's value
 * at mark, at average entry and at bankruptcy (each mf_value(qty, price)):
 *   PNL%   = (markValue - entryValue) / |entryValue|
 *   effLev = |markValue| / (markValue - bankruptValue)
 *   score  = PNL% x effLev if PNL% > 0, else PNL% / effLev.
 * As one fraction, scaled by 1e8 (score 6 = 600000000) and rounded DOWN
 * (toward -inf; a consistent order, equal within 1e-8 compare equal and the
 * caller breaks ties). Longs and shorts are ranked separately by the caller.
 * MF_ERR_RANGE: entryValue == 0, markValue - bankruptValue <= 0 (past
 * bankruptcy), or markValue == 0 with PNL% <= 0. MF_ERR_OVERFLOW beyond i128
 * (values above ~1e13 each) or a score beyond int64.
 */
enum mf_err mf_adl_score(sats_t mark_value_sats, sats_t entry_value_sats,
                         sats_t bankrupt_value_sats, int64_t *score_e8);

/* ---- the hot paths' versions ------------------------------------------------
 *
 * The margin core asks for a value, a requirement or a fee on every order
 * event. These inline versions give exactly the checked function's result
 * (the unit tests compare them on edge and random operands) without its
 * i128 products: one 64-bit product with an overflow check and, for a value,
 * one 128-by-64 division. Operands outside that range (or invalid ones) go
 * to the checked function, so errors are the same too.
 */

__extension__ typedef unsigned __int128 mf_u128;

/* n / d with *rem = n % d, for d > 0 and a quotient that fits 64 bits
 * ((n >> 64) < d): one `div` on x86-64. */
static inline uint64_t mf_divq(mf_u128 n, uint64_t d, uint64_t *rem)
{
#if defined(__x86_64__)
    uint64_t q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"((uint64_t)n), "d"((uint64_t)(n >> 64)), "rm"(d));
    *rem = r;
    return q;
#else
    *rem = (uint64_t)(n % d);
    return (uint64_t)(n / d);
#endif
}

/* mf_value's fast path for a contract known to be valid (mf_contract_check)
 * and a price > 0: 1 with *v set, or 0 when the operands are too large for
 * it. */
static inline int mf_value_fast_valid(const struct mf_contract *c, qty_t qty, px_t price_px,
                                      sats_t *v)
{
    int64_t m = c->multiplier;
    int inverse = c->kind == MF_INVERSE;
    /* magnitudes as unsigned, defined for INT64_MIN too */
    uint64_t aq = qty < 0 ? 0 - (uint64_t)qty : (uint64_t)qty;
    uint64_t am = m < 0 ? 0 - (uint64_t)m : (uint64_t)m, qm;
    if (__builtin_mul_overflow(aq, am, &qm))
        return 0;
    /* inverse: |q x mult| x PX_SCALE / price; else |q x mult| x price / PX_SCALE */
    uint64_t d = inverse ? (uint64_t)price_px : (uint64_t)PX_SCALE;
    mf_u128 n = (mf_u128)qm * (inverse ? (uint64_t)PX_SCALE : (uint64_t)price_px);
    if ((uint64_t)(n >> 64) >= d)
        return 0;
    uint64_t r, q = mf_divq(n, d, &r);
    if (q >= (uint64_t)INT64_MAX)
        return 0;
    q += r >= d - r; /* nearest, ties away from zero, as mf_value */
    *v = (qty < 0) != (m < 0) ? -(sats_t)q : (sats_t)q;
    return 1;
}

/* mf_value's fast path: 1 with *v set, or 0 when the checked function must
 * decide (it then also reports any error). */
static inline int mf_value_fast(const struct mf_contract *c, qty_t qty, px_t price_px, sats_t *v)
{
    int64_t m = c->multiplier;
    if (price_px <= 0 || c->tick_px <= 0 || c->lot_qty <= 0 || m == 0 ||
        (c->kind == MF_INVERSE) != (m < 0) ||
        (c->kind != MF_INVERSE && c->kind != MF_QUANTO && c->kind != MF_LINEAR))
        return 0;
    return mf_value_fast_valid(c, qty, price_px, v);
}

static inline enum mf_err mf_value_quick(const struct mf_contract *c, qty_t qty, px_t price_px,
                                         sats_t *v)
{
    return mf_value_fast(c, qty, price_px, v) ? MF_OK : mf_value(c, qty, price_px, v);
}

/* mf_margin_req's fast path: |v| x rate / RATE_SCALE, rounded up. */
static inline int mf_margin_req_fast(sats_t value_sats, rate_t rate_e8, sats_t *req_sats)
{
    uint64_t p;
    if (rate_e8 < 0 || value_sats == INT64_MIN ||
        __builtin_mul_overflow((uint64_t)(value_sats < 0 ? -value_sats : value_sats),
                               (uint64_t)rate_e8, &p))
        return 0;
    uint64_t q = p / (uint64_t)MF_RATE_SCALE;
    *req_sats = (sats_t)(q + (p - q * (uint64_t)MF_RATE_SCALE != 0));
    return 1;
}

static inline enum mf_err mf_margin_req_quick(sats_t value_sats, rate_t rate_e8, sats_t *req_sats)
{
    return mf_margin_req_fast(value_sats, rate_e8, req_sats)
               ? MF_OK
               : mf_margin_req(value_sats, rate_e8, req_sats);
}

/* mf_fee's fast path: |v| x rate / RATE_SCALE, nearest, ties toward +inf. */
static inline int mf_fee_fast(sats_t value_sats, rate_t rate_e8, sats_t *comm_sats)
{
    int64_t n;
    if (value_sats == INT64_MIN ||
        __builtin_mul_overflow(value_sats < 0 ? -value_sats : value_sats, rate_e8, &n))
        return 0;
    int64_t q = n / MF_RATE_SCALE, r = n % MF_RATE_SCALE;
    if (r < 0) {
        q -= 1;
        r += MF_RATE_SCALE;
    }
    *comm_sats = q + (r >= MF_RATE_SCALE - r);
    return 1;
}

static inline enum mf_err mf_fee_quick(sats_t value_sats, rate_t rate_e8, sats_t *comm_sats)
{
    return mf_fee_fast(value_sats, rate_e8, comm_sats) ? MF_OK
                                                       : mf_fee(value_sats, rate_e8, comm_sats);
}

/* mf_close_comm_reserve's fast path. */
static inline int mf_close_comm_reserve_fast(sats_t cost_sats, sats_t pos_init_sats,
                                             rate_t taker_e8, sats_t *comm_sats)
{
    if (pos_init_sats < 0 || cost_sats == INT64_MIN)
        return 0;
    if (taker_e8 <= 0) {
        *comm_sats = 0;
        return 1;
    }
    sats_t base;
    if (__builtin_add_overflow(cost_sats < 0 ? -cost_sats : cost_sats, pos_init_sats, &base))
        return 0;
    return mf_margin_req_fast(base, taker_e8, comm_sats);
}

static inline enum mf_err mf_close_comm_reserve_quick(sats_t cost_sats, sats_t pos_init_sats,
                                                      rate_t taker_e8, sats_t *comm_sats)
{
    return mf_close_comm_reserve_fast(cost_sats, pos_init_sats, taker_e8, comm_sats)
               ? MF_OK
               : mf_close_comm_reserve(cost_sats, pos_init_sats, taker_e8, comm_sats);
}

#endif
