/*
 * exchange.h - the margin core: the engine plus everything that turns fills
 * into money. Wallets, positions, order margin, fair-price marking,
 * re-margining, liquidation, the insurance fund, auto-deleveraging, funding,
 * futures settlement and the satoshi-exact money audit.
 *
 * Like the engine it wraps, the exchange is a pure deterministic state
 * machine: commands (struct cmd, engine.h) in, events out through one sink,
 * no I/O, no clock, no randomness, all memory taken at exch_create(). Every
 * formula is in formula.h; this file says which state they are applied to
 * and when.
 *
 * ---------------------------------------------------------------------------
 * THE RULES
 * ---------------------------------------------------------------------------
 * M0. Accounts. Account 0 (EXCH_LIQUIDATOR) is the liquidation engine: its
 *     wallet in a currency IS that currency's insurance fund, it takes
 *     positions over at the bankruptcy price and works them in the book, and
 *     it pays no trading fees. User accounts are 1 .. accounts_max-1. The
 *     fee account (every fee and rebate) and the rounding account (funding
 *     and settlement residue) are balances per currency outside accounts.
 *
 * M1. Money. Integer minor units of the settlement currency (XBt, USDt).
 *     Realised PnL and fees move the wallet at the fill (perpsim realises at
 *     once, rather than BitMEX's daily booking; walletBalance is thus
 *     deposits - withdrawals + realised PnL - fees - funding). Per currency:
 *       marginBalance = wallet + unrealised PnL of every position
 *       available     = wallet - isolated margins - cross position margins
 *                       - order margins + cross unrealised PnL
 *       withdrawable  = max(0, min(available, wallet - isolated margins -
 *                       cross position margins - order margins))
 *     (unrealised profit can back new orders, as BitMEX cross margin since
 *     2023, but cannot be withdrawn.)
 *
 * M2. Positions, average-cost bookkeeping from formula.h: a fill of dq
 *     contracts at px has value(dq, px); the part that closes realises
 *     -(cost share + closing value) into the wallet; the part that opens
 *     adds to unrealisedCost. Cross: posInit = IM x |cost|,
 *     posComm = taker x (|cost| + posInit), both rounded up, recomputed from
 *     the cost. Isolated: the position holds isolatedMargin, posted when it
 *     opens (posInit at 1/leverage + posComm), released pro rata when it
 *     closes, changed by transferMargin and funding.
 *     Maintenance at mark = MM x |markValue| + posComm + next funding if paid.
 *
 * M3. Order margin, per account and instrument, from the working (resting
 *     or in-flight, not untriggered) orders with a price: for each side the
 *     signed value sum; the part of a side that would reduce the position is
 *     free (pro rata by quantity, rounded up); of what remains only the
 *     larger side by value is charged (BitMEX's net-bid rule): IM x value +
 *     taker x value, rounded up, + the premium for orders through the mark:
 *     per side max(0, value at the limits - value of the side's quantity at
 *     mark) (formula.h's rule applied to the side's sum). Isolated positions
 *     use 1/leverage for IM. An order is admitted (new, amend that raises
 *     size or moves price, triggered stop) when it does not raise the order
 *     margin (both figures at the mark now)
 *     or the account's available stays >= 0 with it; else
 *     REJ_INSUFFICIENT_BALANCE and nothing changes. Market orders are valued
 *     at the worse of mark and the best opposite price. An order that would
 *     take |position cost| + the larger side's value beyond the chosen risk
 *     limit is REJ_RISK_LIMIT_EXCEEDED. Untriggered stops hold nothing.
 *
 * M4. Fees: maker fee for the resting side unless the engine marks it
 *     pays_taker (hidden, iceberg), taker fee otherwise, mf_fee rounding,
 *     paid to / rebated from the fee account.
 *
 * M5. Prices. CMD_SET_INDEX sets an index; every instrument marked from it
 *     gets a new mark: perpetual fair price index x (1 + rate x until next
 *     funding / interval), future index + index x fair basis x time to
 *     expiry / 365 d. Marks are also recomputed at every minute boundary of
 *     engine time (the basis decays). A new mark is given to the engine
 *     (mark-triggered stops fire), then every open position of the
 *     instrument is re-margined in the order of the instrument's position
 *     list (a deterministic function of the command history), then M6.
 *
 * M6. Liquidation. After a mark change and after
 *     funding, every isolated position with isolatedMargin + unrealisedPnl <
 *     maintenance, and every account whose cross equity (wallet - isolated
 *     margins + cross unrealised PnL) < the sum of its cross maintenance, is
 *     liquidated, in ascending account order (isolated before cross):
 *     a) risk tiers first: a position above the lowest risk step drops to
 *        the step its position and orders need (margin rates fall, the
 *        isolated margin stays posted); if still below, its open orders in
 *        the contract(s) are canceled (CXL_LIQUIDATION) and it drops to the
 *        step of the position alone; while still below and above step 0, a
 *        FillOrKill ReduceOnly limit order at the position's bankruptcy
 *        price (its value less the equity backing it), sent on the owner's
 *        behalf without a margin check, sells the part above the next lower
 *        step's limit, and the position drops to the step of what is left;
 *        at step 0 or when a FillOrKill dies, on to b);
 *     b) if still below maintenance, each position is taken over by the
 *        liquidator at its bankruptcy value: the value at which the owner
 *        loses exactly the margin backing it (isolated: isolatedMargin;
 *        cross: the account's whole cross equity, shared over its cross
 *        positions in that currency in proportion to maintenance), so the
 *        owner never goes below zero and the transfer moves no money between
 *        anyone else (EV_MONEY MK_LIQUIDATION);
 *     c) the liquidator sends an ImmediateOrCancel limit order for the whole
 *        position at the worst price the insurance fund can pay for (the
 *        bankruptcy price when the fund is empty): fills better than
 *        bankruptcy credit the fund, worse ones draw on it (MK_INSURANCE);
 *        no order when no price is within what the fund can pay (a cross
 *        position given more of a negative equity than it is worth at any
 *        price: a short quanto or linear, or a long inverse, taken over at
 *        a cost of the wrong sign), so the fund never goes below zero;
 *     d) what is left is auto-deleveraged: the opposite side's positions,
 *        ranked by mf_adl_score (highest first, ties by account), are closed
 *        against the liquidator at its cost (the bankruptcy price), their
 *        open orders in the contract canceled first (MK_DELEVERAGE).
 *
 * M6b. Market orders, as BitMEX documents them: a Market order (or a
 *     triggered Stop) that reduces a position fills until done or until the
 *     position's bankruptcy price would be crossed (the engine's
 *     market_bound hook), the rest canceled; one that opens or adds has no
 *     bound beyond the pre-trade check.
 *
 * M7. Funding, perpetuals, at every multiple of the
 *     funding interval after 04:00 UTC of engine time: each open position
 *     pays mf_funding_payment at the announced rate and the mark (execComm,
 *     into commissions); everything paid goes to the rounding account and
 *     every receipt comes from it, so its balance grows by exactly the
 *     rounding residue. Then the announced rate becomes the rate computed
 *     from the interval just ended: premium index sampled every minute
 *     (impact bid/ask for the impact notional against the visible book; a
 *     side without enough depth contributes no premium), averaged, and
 *     mf_funding_rate with the instrument's interest rate. The indicative
 *     rate is the same computation over the samples so far.
 *     CMD_SET_FUNDING announces the next rate from outside (a backtest's
 *     data, an instructor), up to +-FUNDING_RATE_MAX, and the indicative
 *     rate until the next minute's sample; the fair price and every
 *     maintenance requirement follow it at once.
 *
 * M8. Settlement: at expiry a future's open orders are canceled and
 *     every position closes at the settlement price
 *     (the mean of the index sampled each minute over the last 30 minutes,
 *     else the mark), realising PnL less the settlement fee; the rounding
 *     account absorbs the residue of valuing positions one by one. The
 *     instrument then refuses orders (REJ_INSTRUMENT_CLOSED).
 *
 * M9. The audit, after every command when built with -Dchecks=true and
 *     after every mark change and funding always: per currency, sum of
 *     wallets (the insurance fund included) + fee account + rounding account
 *     + open positions == deposits - withdrawals, where "open positions" is
 *     minus the sum of every open position's unrealisedCost: because PnL is
 *     realised into the wallet at once (M1), a trader who closed at a profit
 *     holds money whose other side is still in someone's open position at
 *     its entry value. When every position is flat the term is 0 and the
 *     equation is exactly wallets + fund + fees + rounding == deposits -
 *     withdrawals. Per instrument, long contracts == short contracts and
 *     every position equals the engine's. A mismatch calls the configured
 *     handler with a report naming the command, the currency and the
 *     difference; the default prints it and aborts the process.
 *
 * M10. Margin commands validate first and change nothing when refused:
 *     DEPOSIT/WITHDRAW (REJ_INVALID_CURRENCY, REJ_INVALID_AMOUNT,
 *     REJ_INSUFFICIENT_WITHDRAWABLE), SET_LEVERAGE (0.01 .. 100 and at most
 *     1/IM of the tier, else REJ_INVALID_LEVERAGE; the margin it needs must
 *     be available), SET_CROSS, SET_RISK_LIMIT (base + k x step, k <= 100,
 *     not below the position's risk, else REJ_INVALID_RISK_LIMIT),
 *     TRANSFER_MARGIN (isolated with a position, REJ_NOT_ISOLATED,
 *     REJ_NO_POSITION; adding needs available, removing may not go below
 *     posInit + posComm + unrealised loss: REJ_TRANSFER_TOO_LARGE).
 */
#ifndef PERPSIM_MARGIN_EXCHANGE_H
#define PERPSIM_MARGIN_EXCHANGE_H

#include "engine/engine.h"
#include "margin/formula.h"

#define EXCH_LIQUIDATOR 0u
/* Money bounds: one deposit or withdrawal moves at most EXCH_MONEY_MAX
 * minor units (a billion XBT); a currency's deposits together stay within
 * EXCH_DEPOSITS_MAX, so no wallet, sum or audit total comes near int64's
 * range (a deposit past it is refused, REJ_INVALID_AMOUNT). */
#define EXCH_MONEY_MAX INT64_C(100000000000000000)
#define EXCH_DEPOSITS_MAX INT64_C(1000000000000000000)
#define CURRENCIES_MAX 4
#define INDICES_MAX 16
#define CURRENCY_LEN_MAX 7
/* Risk-limit steps a position may choose (k = 0 .. RISK_STEPS_MAX). */
#define RISK_STEPS_MAX 100
/* Settlement price window (as BitMEX's XBT futures: a 30-minute TWAP). */
#define SETTLE_WINDOW_MS (30 * 60 * INT64_C(1000))
/* Funding timestamps are 04:00, 12:00, 20:00 UTC: multiples of the interval
 * from this offset into the day. */
#define FUNDING_ANCHOR_MS (4 * 3600 * INT64_C(1000))
/* The largest funding rate a CMD_SET_FUNDING may announce: +-10% (BitMEX caps
 * its own at 0.75 x (initial - maintenance) margin, far below). */
#define FUNDING_RATE_MAX INT64_C(10000000)

struct exch_instrument {
    struct mf_contract contract;
    uint8_t currency;         /* settlement currency index */
    uint16_t index;           /* the index (exch_config.indices) marking it */
    uint8_t perpetual;        /* 1: funding, no expiry; 0: future */
    ms_t expiry_ms;           /* futures: settlement time */
    rate_t im_e8, mm_e8;      /* base initMargin, maintMargin */
    sats_t risk_limit, risk_step;
    rate_t maker_fee_e8, taker_fee_e8, settle_fee_e8;
    ms_t funding_interval_ms;
    rate_t funding_interest_e8; /* the interest component I per interval */
    sats_t impact_notional;   /* impact bid/ask size, settlement units */
};

struct exch_config {
    struct engine_config engine; /* instruments_count, symbols, ticks, lots, pools */
    struct exch_instrument inst[INSTRUMENTS_MAX];
    uint8_t currencies_count;
    char currency[CURRENCIES_MAX][CURRENCY_LEN_MAX + 1]; /* "XBt", "USDt" */
    uint16_t indices_count;
    char index[INDICES_MAX][SYMBOL_LEN_MAX + 1];         /* ".BXBT" */
    sats_t insurance_initial[CURRENCIES_MAX]; /* booked as the liquidator's deposit */
    /* The spam rule (BitMEX's order minimum size): at each day's review
     * (00:00 UTC) an account with at least spam_orders working orders each
     * worth less than spam_value[its contract's currency] is marked spam,
     * and one with fewer is cleared (an admin's CMD_SET_SPAM marks or
     * clears at once). A spam account's new Limit, StopLimit or
     * LimitIfTouched order worth less than that becomes hidden (displayQty
     * 0: out of the book, the taker fee when it fills); a Post-Only one is
     * rejected (REJ_SPAM_POST_ONLY). spam_orders 0: no review, no rule. */
    uint32_t spam_orders;
    sats_t spam_value[CURRENCIES_MAX];
};

/* A position as BitMEX's Position table reports it (figures at the mark). */
struct exch_position {
    qty_t qty;                /* currentQty */
    sats_t current_cost;      /* sum of fill values over the position's life */
    sats_t unrealised_cost;   /* cost of the open quantity */
    sats_t realised_cost;     /* cost attributed to closed quantity */
    sats_t realised_gross_pnl;/* realised before commissions */
    sats_t comm;              /* currentComm: fees + funding */
    sats_t mark_value, unrealised_pnl;
    sats_t pos_margin;        /* cross: posInit + posComm; isolated: isolatedMargin */
    sats_t pos_init, pos_comm, maint;
    sats_t order_margin;
    qty_t open_buy_qty, open_sell_qty;
    rate_t leverage_e8;       /* 0 = cross */
    rate_t im_e8, mm_e8;      /* effective rates (tier, leverage) */
    sats_t risk_limit;
    px_t avg_entry_px, liq_px, bankrupt_px, mark_px; /* 0 when flat / none */
};

/* An account's money in one currency (BitMEX Margin / Wallet). */
struct exch_margin {
    sats_t wallet, deposited, withdrawn;
    sats_t unrealised_pnl, margin_balance;
    sats_t order_margin, position_margin, maint_margin;
    sats_t available, withdrawable;
};

struct exch_audit {
    int ok;
    char report[256];         /* the first mismatch, "" when ok */
    sats_t total[CURRENCIES_MAX];  /* wallets + fees + rounding + positions */
    sats_t expected[CURRENCIES_MAX]; /* deposits - withdrawals */
    sats_t insurance[CURRENCIES_MAX], fees[CURRENCIES_MAX], rounding[CURRENCIES_MAX];
    sats_t positions[CURRENCIES_MAX]; /* minus the open positions' unrealisedCost */
    qty_t long_qty[INSTRUMENTS_MAX], short_qty[INSTRUMENTS_MAX];
};

struct exch_instrument_state {
    px_t mark_px, index_px, fair_basis_px;
    rate_t funding_rate_e8;      /* announced for next_funding_ms */
    rate_t indicative_rate_e8;   /* for the interval after */
    rate_t fair_basis_rate_e8;
    ms_t next_funding_ms;
    rate_t premium_e8;           /* perpetuals: the mean premium index of the interval so far */
    int64_t premium_samples;     /* minute samples in it */
    int settled;
    px_t settled_px;
    qty_t open_interest;
};

typedef void (*exch_audit_fail_fn)(void *ctx, const struct cmd *c, const struct exch_audit *a);

struct exch;

/* Checks the config (engine's and margin's); NULL with *err on failure. */
struct exch *exch_create(const struct exch_config *cfg, engine_sink_fn sink, void *sink_ctx,
                         const char **err);
void exch_destroy(struct exch *x);

/* Replaces the default audit-failure handler (print + abort). */
void exch_on_audit_fail(struct exch *x, exch_audit_fail_fn fn, void *ctx);

/* Applies one command (engine or margin); REJ_NONE or the reject reason. */
enum reject exch_apply(struct exch *x, const struct cmd *c);

/* A hint, no change of state: engine_prefetch's stages for the margin
 * core's records too (the account's position and wallet, the order's
 * margin record). A caller holding queued commands calls stage 0 two
 * commands ahead and stage 1 one command ahead of exch_apply. */
void exch_prefetch(const struct exch *x, const struct cmd *c, int stage);

const struct exch_config *exch_config(const struct exch *x);
struct engine *exch_engine(struct exch *x);
int exch_position(const struct exch *x, uint32_t account, uint16_t inst, struct exch_position *out);
/* Whether the position is open or has open orders: what a mark move
 * changes the figures of (a flat one without orders shows only the new
 * mark). O(1). */
int exch_position_live(const struct exch *x, uint32_t account, uint16_t inst);
int exch_margin(const struct exch *x, uint32_t account, uint8_t currency, struct exch_margin *out);
void exch_instrument_state(const struct exch *x, uint16_t inst, struct exch_instrument_state *out);
sats_t exch_insurance(const struct exch *x, uint8_t currency);
/* 0..1 in 1e-8 units: the position's place in its side's ADL queue
 * (1 = first to be deleveraged), BitMEX's deleveragePercentile. -1 flat. */
rate_t exch_adl_percentile(const struct exch *x, uint32_t account, uint16_t inst);
/* Whether the account is marked spam (1, 0; -1 for no such account), and
 * how many of its working orders are worth less than the spam value. */
int exch_spam(const struct exch *x, uint32_t account, uint32_t *small_orders);
/* The daily review leaves the account alone (the living market's agents:
 * their ladders are liquidity, not spam). An admin may still mark it. */
void exch_spam_exempt(struct exch *x, uint32_t account);
/* engine_take_order_id's. */
uint64_t exch_take_order_id(struct exch *x);

/* The money audit now (M9); fills *out, returns out->ok. O(accounts). */
int exch_audit(const struct exch *x, struct exch_audit *out);
/* The full consistency check: audit + cached sums recomputed from scratch
 * + order margins recomputed from the engine's orders. NULL when all hold. */
const char *exch_verify(const struct exch *x);

/* The money of one side of a fill (an EV_FILL event): the fee rate charged
 * (maker, taker for a hidden or iceberg maker, none for the liquidator),
 * execCost (the side's signed value at the fill price) and execComm,
 * exactly as the margin core books them. */
struct exch_fill_money {
    rate_t rate_e8;
    sats_t cost, comm;
};
void exch_fill_money(const struct exch *x, const struct event *fill, struct exch_fill_money *out);

/* A 64-bit hash of the whole exchange: the engine's (engine_hash) and every
 * wallet, position, instrument state, index and the fee and rounding
 * accounts; equal for equal command histories. O(accounts x instruments). */
uint64_t exch_hash(const struct exch *x);

/* The earliest engine time at which a clock command has work: a funding
 * or settlement time, the next minute sample (marks move with the decaying
 * basis), or the engine's next deadline (engine_next_deadline). Advancing a
 * stepped clock by a clock command at each such time runs everything due
 * in between at its own time, in time order. */
ms_t exch_next_event(const struct exch *x);

/* BitMEX's quarterly expiry after now: the last Friday of the next quarter
 * month (March, June, September, December), 12:00 UTC, at least a day
 * ahead. */
ms_t exch_next_quarter_expiry(ms_t now);

/* The default instruments, currencies and indices (BitMEX's parameters):
 * XBTUSD, ETHUSD, XBTUSDT and the quarterly XBT future expiring at
 * expiry_ms (its symbol from the date: XBTH27 for March 2027). */
void exch_config_default(struct exch_config *cfg, ms_t expiry_ms);
/* The instrument named symbol (case-insensitive, as BitMEX), -1 if none. */
int exch_config_find(const struct exch_config *cfg, const char *symbol);
/* Adds an instrument (or replaces the one with the same symbol, compared
 * without case) after checking it; *in's contract tick and lot are taken
 * from tick and lot, its currency and index must already be in cfg, and an
 * impact_notional of 0 is derived: 0.1 XBT or 5,000 USDT at initMargin.
 * NULL when done, else a static message naming the field by BitMEX's name
 * ("maintMargin must be > 0 and <= initMargin"); cfg is then unchanged. */
const char *exch_config_add_instrument(struct exch_config *cfg, const char *symbol, px_t tick,
                                       px_t max_px, qty_t lot, qty_t max_qty,
                                       const struct exch_instrument *in);

#endif
