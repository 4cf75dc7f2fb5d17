/*
 * explain.h - each liquidation as it happened, step by step, from the change
 * stream: the read model's teaching table (GET /explain/v1/liquidation).
 *
 * A liquidation is what margin/ puts between its two EV_LIQUIDATING events
 * (the first: what was found below maintenance, the equity and the
 * maintenance it is below; the second: it is over); of those events, the
 * ones that are part of it (rule M6 in margin/exchange.h, in its order):
 *   LS_CANCELED    an open order of the owner canceled by the liquidation
 *   LS_RISK_STEP   a position's risk limit stepped down (from, to)
 *   LS_REDUCED     a fill of the owner's FillOrKill reduction at the
 *                  bankruptcy price of the step
 *   LS_TAKEOVER    the position taken over by the liquidator at its
 *                  bankruptcy price (the owner's Liquidation execution)
 *   LS_LIQUIDATOR  a fill of the liquidator's order for it in the book
 *   LS_INSURANCE   the insurance fund's move (and its balance after)
 *   LS_DELEVERAGE  an opposite position closed by ADL at the bankruptcy price
 * with what the command was (an index move, a clock tick's mark or
 * funding, a trader's own command), the instrument's mark before the
 * command and when the liquidation ended, and the owner's position as last
 * shown before the liquidation began. Every figure is the one the exchange
 * used, none recomputed.
 *
 * The table keeps the newest EXPLAIN_KEEP liquidations, each with at most
 * EXPLAIN_CANCELS_MAX canceled orders listed (all counted) and at most
 * EXPLAIN_STEPS_MAX steps (the count of the rest kept); the takeover's
 * execution is kept apart, so a liquidation is always found by it. Only the
 * exchange's own read model keeps the table (store_explain_on).
 */
#ifndef PERPSIM_CORE_EXPLAIN_H
#define PERPSIM_CORE_EXPLAIN_H

#include <stdint.h>

#include "core/record.h"

#define EXPLAIN_KEEP 1024
#define EXPLAIN_STEPS_MAX 128
#define EXPLAIN_CANCELS_MAX 16

enum liq_step_kind {
    LS_CANCELED = 1,
    LS_RISK_STEP,
    LS_REDUCED,
    LS_TAKEOVER,
    LS_LIQUIDATOR,
    LS_INSURANCE,
    LS_DELEVERAGE,
};

struct liq_step {
    uint8_t kind;
    uint8_t side;        /* an order's or fill's side (enum side) */
    uint16_t inst;
    uint32_t account;    /* LS_DELEVERAGE: the counterparty; else the owner or the liquidator */
    uint64_t id;         /* LS_CANCELED: the order; LS_TAKEOVER, LS_DELEVERAGE: the execution */
    qty_t qty;           /* contracts, > 0 (leaves of a canceled order, of a fill, taken over, closed) */
    px_t px;             /* price (order, fill, bankruptcy) */
    px_t limit_px;       /* LS_REDUCED: the FillOrKill's limit (the step's bankruptcy price) */
    sats_t amount;       /* LS_INSURANCE: the fund's change; LS_TAKEOVER: the owner's wallet change;
                          * LS_RISK_STEP: the risk limit before */
    sats_t balance;      /* LS_INSURANCE: the fund after; LS_RISK_STEP: the risk limit after */
    int64_t score_e8;    /* LS_DELEVERAGE: the counterparty's ADL score x 1e8 (steps in the queue's order) */
};

struct liq_explain {
    uint64_t id;         /* 1, 2, ... in the order they happened */
    uint64_t seq;        /* the command it happened in */
    ms_t ts;
    uint8_t cmd_kind;    /* the command: CC_EXCH's struct cmd type, or 0 */
    uint32_t account;
    uint16_t inst;       /* isolated: the position's; cross: the first taken over (else the
                          * first step's, else the first open position's in the currency) */
    uint8_t cross, currency;
    sats_t equity, maint;
    px_t mark_before, mark_after; /* the instrument's, before the command and when it ended */
    px_t index_px;       /* the instrument's index when it ended */
    /* the position as last shown before the liquidation began */
    qty_t qty;
    px_t avg_entry_px, liq_px, bankrupt_px, pos_mark_px;
    sats_t pos_maint, pos_margin, upnl;
    sats_t risk_limit;
    sats_t fund_before, fund_after;   /* the insurance fund in its currency */
    uint64_t takeover_exec;           /* the owner's Liquidation execution, 0 when none */
    uint32_t canceled;                /* orders canceled (the first EXPLAIN_CANCELS_MAX listed) */
    qty_t canceled_qty;               /* their leaves together */
    uint32_t nsteps, dropped;
    struct liq_step steps[EXPLAIN_STEPS_MAX];
};

/* Each funding of a perpetual, from its EV_FUNDING and the Funding
 * payments (EV_MONEY, MK_FUNDING) before it in the same record: the rate
 * paid and where it came from (the previous funding's premium mean, an
 * announcement, or the opening rate), every position's payment, and the
 * next interval's rate with its inputs. The newest EXPLAIN_FUNDING_KEEP,
 * each listing at most EXPLAIN_PAYMENTS_MAX payments (all counted). */
#define EXPLAIN_FUNDING_KEEP 512
#define EXPLAIN_PAYMENTS_MAX 4096

enum fund_origin {
    FO_OPENING = 0,   /* the instrument's opening rate: no funding before it here */
    FO_PREMIUM,       /* formed at the previous funding from that interval's premium */
    FO_ANNOUNCED,     /* announced since (an admin's, a backtest's data) */
};

struct fund_payment {
    uint32_t account;
    qty_t qty;        /* the position (currentQty) */
    sats_t amount;    /* the wallet's change: < 0 paid, > 0 received */
    uint64_t exec;    /* its Funding execution, 0 when none */
};

struct fund_explain {
    uint64_t id;      /* 1, 2, ... */
    uint64_t seq;
    ms_t ts;
    uint16_t inst;
    px_t mark_px, index_px;
    rate_t rate_e8;   /* paid now */
    uint8_t origin;   /* enum fund_origin */
    /* FO_PREMIUM: the previous funding's time, premium mean and samples */
    ms_t formed_ms;
    rate_t formed_premium_e8;
    int64_t formed_samples;
    /* the next interval's rate, formed now, and its inputs */
    rate_t next_rate_e8, premium_e8;
    int64_t samples;
    sats_t paid, received;
    uint32_t npayments, listed;
    struct fund_payment *payments; /* listed of them */
};

struct explain;

struct explain *explain_create(const struct exch_config *cfg, uint32_t accounts_max);
void explain_destroy(struct explain *e);
/* A record, as the read model applies it (exec_ids: per event, the
 * execution the read model made of it, 0 for none). */
void explain_record(struct explain *e, const struct core_record *r, const uint64_t *exec_ids);
/* The liquidations kept, newest first from skip, at most max of them;
 * how many there are in all. */
uint32_t explain_list(const struct explain *e, uint32_t skip, uint32_t max, const struct liq_explain **out);
/* The liquidation whose takeover (or an ADL close) is execution exec_id. */
const struct liq_explain *explain_by_exec(const struct explain *e, uint64_t exec_id);
/* Liquidations of the account so far (all, not only those kept). */
uint32_t explain_liquidations_of(const struct explain *e, uint32_t account);
/* The fundings of inst kept, newest first from skip, at most max; how many
 * are kept in all. */
uint32_t explain_fundings(const struct explain *e, uint16_t inst, uint32_t skip, uint32_t max,
                          const struct fund_explain **out);

#endif
