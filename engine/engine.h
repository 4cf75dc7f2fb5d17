/*
 * engine.h - perpsim's matching engine: commands in, events out.
 *
 * The engine is a pure, deterministic state machine. A command (with its own
 * sequence number and timestamp) goes in through engine_apply(); the engine
 * emits one ordered batch of typed events through the sink it was created
 * with, and returns. It does no I/O, reads no clock, calls no rand(), and
 * allocates nothing after engine_create(): every pool is sized at start and a
 * full pool is a reject. The same command sequence always yields the same
 * bytes of events and the same engine_hash().
 *
 * Semantics follow BitMEX's order API as it documents it; where BitMEX is
 * silent the rule chosen is written here, because this header is also the
 * specification the naive reference book in tests/ is written against.
 *
 * ---------------------------------------------------------------------------
 * THE RULES, in the order the engine applies them to one command
 * ---------------------------------------------------------------------------
 * 0. Time. Before the command itself, time-driven work runs at cmd.ts:
 *    a) dead man's switch: every account whose cancel-all-after deadline is
 *       <= ts, in (deadline, account) order, has all its live orders canceled
 *       (ascending order id, reason CXL_DEAD_MAN) and its switch disarmed;
 *    b) Day orders: when ts reaches the next 00:00 UTC after the previous
 *       command's ts, every live order with TIF_DAY is canceled (ascending
 *       order id, reason CXL_DAY_EXPIRY).
 *    Commands must have non-decreasing ts and strictly increasing seq; a
 *    command that breaks this is rejected (REJ_BAD_SEQUENCE) and ignored.
 *
 * 1. Validation first, mutation second. A rejected command emits exactly one
 *    EV_REJECTED event and leaves the state byte-identical.
 *
 * 2. New orders. Defaults as BitMEX: side from the sign of orderQty when
 *    side is SIDE_NONE (negative = Sell, else Buy); ordType from the fields
 *    given (pegPriceType other than TrailingStopPeg -> Pegged; price and
 *    stopPx -> StopLimit; stopPx -> Stop; price -> Limit; neither -> Market);
 *    timeInForce GoodTillCancel for Limit/StopLimit/LimitIfTouched/Pegged,
 *    ImmediateOrCancel for Market/Stop/MarketIfTouched (the only TIF those
 *    accept). Order ids are assigned 1, 2, 3, ... to accepted orders only.
 *    An accepted order emits EV_NEW first. Then:
 *    - stop types (Stop, StopLimit, MarketIfTouched, LimitIfTouched) wait
 *      outside the book, untriggered (working = 0), holding no margin;
 *    - everything else is an incoming order and is matched (rule 3).
 *
 * 3. Matching an incoming order. It takes liquidity from the best opposite
 *    level while that level crosses its limit (Market: no limit, or the
 *    bound from hooks.market_bound), FIFO within the level by the time each
 *    order joined the level's queue.
 *    - Post-only (ParticipateDoNotInitiate): if the order would match any
 *      resting order on arrival (hidden ones included, own ones included),
 *      it is canceled whole (CXL_POST_ONLY), no fills.
 *    - FillOrKill: if it cannot fill completely now (counting what
 *      self-trade prevention would let it take), canceled whole (CXL_FOK).
 *    - One match: qty = min(taker leaves, maker's available quantity, any
 *      ReduceOnly cap of either side). The maker's available quantity is its
 *      visible slice for an iceberg, its leaves otherwise (hidden included).
 *      Events, in this order: EV_FILL (maker), EV_FILL (taker), EV_TRADE,
 *      then EV_LEVEL if the maker level's visible size changed, then OCO
 *      cancels (rule 7) of the maker's group, then of the taker's group.
 *      An iceberg whose slice is used up while leaves remain shows a new
 *      slice of min(displayQty, leaves) at the back of its level (one change:
 *      fill + refill give one EV_LEVEL).
 *    - Self-trade (taker and maker of the same account), per config:
 *      STP_ALLOW (default, as BitMEX) trades; STP_CANCEL_MAKER cancels the
 *      resting order (CXL_SELF_TRADE) and goes on; STP_CANCEL_TAKER cancels
 *      the incoming remainder (CXL_SELF_TRADE).
 *    - ReduceOnly maker with no room left: canceled (CXL_REDUCE_ONLY), go on.
 *      ReduceOnly taker with no room left: remainder canceled.
 *    - Afterwards the remainder: Market and IOC are canceled (CXL_IOC,
 *      CXL_MARKET for Market; for a Market that never traded: CXL_MARKET);
 *      GTC and Day rest at the back of their level (EV_LEVEL if visible).
 *    - Then ReduceOnly enforcement (rule 6) for every (account, instrument)
 *      whose position changed, ascending (account, instrument).
 *
 * 4. Amend. Target by order id or original clOrdID, same account, live.
 *    Exactly one of orderQty / leavesQty may be given. New leaves must be > 0.
 *    Reducing leaves (nothing else) keeps the order's place in its queue;
 *    raising leaves or changing price takes it out of the level and puts it
 *    back as an incoming order (rule 3, post-only included). Changing stopPx
 *    of an untriggered stop moves it in the trigger set. An amend that
 *    changes nothing is rejected (REJ_AMEND_UNCHANGED). A terminal order
 *    (id < next id, no longer live) rejects with REJ_ORDER_TERMINAL.
 *    Events: EV_AMENDED, then level/match events.
 *
 * 5. Cancel / cancel-all / cancel-all-after. Cancel by id or clOrdID. Cancel
 *    all: the account's live orders, optionally one instrument and one side,
 *    in ascending order id. Cancel-all-after(timeout_ms): arms the account's
 *    dead man's switch at ts + timeout (0 disarms).
 *
 * 6. ReduceOnly (Close implies it). room = |position| when the order's side
 *    reduces the position, else 0. A ReduceOnly order arriving with room 0
 *    is canceled (CXL_REDUCE_ONLY) after EV_NEW; with room < leaves its
 *    leaves are cut to room (EV_RESTATED) before matching. Close without
 *    orderQty means the whole position (at trigger time for stops); without a
 *    side it takes the side that reduces the position. Enforcement: the sum
 *    of leaves of working ReduceOnly orders on the reducing side must not
 *    exceed room; when it does, the least aggressive are cut first (sells:
 *    highest price first; buys: lowest first; ties: highest id first),
 *    EV_RESTATED, or canceled (CXL_REDUCE_ONLY) when cut to zero. Working
 *    ReduceOnly orders on the non-reducing side are canceled.
 *
 * 7. OCO (contingencyType OneCancelsTheOther + clOrdLinkID): orders of one
 *    account and instrument with the same clOrdLinkID form a group. When any
 *    member fills (partly or fully), every other live member is canceled
 *    (CXL_OCO), ascending id. OneTriggersTheOther is rejected (deprecated).
 *
 * 8. Triggers. At the end of every command, a trigger pass: first trailing
 *    stops move their stopPx toward their reference (never away); then every
 *    untriggered stop whose condition holds is collected and activated in
 *    ascending order id; activation may trade and move the last price, so
 *    the pass repeats until nothing fires. Condition, with ref the order's
 *    price source (MarkPrice default, LastPrice, IndexPrice):
 *       fires up   (Buy Stop/StopLimit, Sell MIT/LIT):  ref >= stopPx
 *       fires down (Sell Stop/StopLimit, Buy MIT/LIT):  ref <= stopPx
 *    A source never set (0) fires nothing. LastWithinMark also needs
 *    last within 5% of mark (fires down: last*100 >= mark*95; fires up:
 *    last*100 <= mark*105). Activation: EV_TRIGGERED (triggered = 1,
 *    working = 1), the margin hook admits it (else canceled with the reason),
 *    then it is an incoming Market (Stop, MIT) or Limit (StopLimit, LIT)
 *    order under rule 3, joining its level at activation time.
 *    Trailing (pegPriceType TrailingStopPeg): stopPx = ref + pegOffsetValue,
 *    rounded to the tick away from ref; fires-down stops need offset < 0
 *    and stopPx only rises; fires-up need offset > 0 and stopPx only falls.
 *
 * 9. Pegged orders need execInst Fixed: the price is fixed at acceptance as
 *    PrimaryPeg = same-side best (buy: best bid) + offset, MarketPeg =
 *    opposite best (buy: best ask) + offset; then they behave as Limit.
 *
 * 10. Limits: per account per instrument at most open_orders_max working
 *    orders and stop_orders_max untriggered stops (BitMEX-style text in api/).
 *
 * 11. Details every consumer relies on:
 *    - EV_CANCELED comes before the EV_LEVEL of the removal; a canceled
 *      order reports leaves 0 (as BitMEX shows leavesQty 0).
 *    - An amend that takes an order out of its level emits EV_AMENDED (new
 *      values), then the EV_LEVEL of the removal, then rule 3.
 *    - clOrdID is unique among the account's live orders (api/ keeps the
 *      history and refuses reuse of a recent id as well).
 *    - FillOrKill's test counts every eligible resting order's whole leaves
 *      (an iceberg's hidden part included); ReduceOnly caps of makers are not
 *      counted, so when one cuts a fill short the remainder is CXL_FOK.
 *    - Validation order for new orders (first failure wins): instrument,
 *      account, AllOrNone, unknown/duplicate trigger execInst, side, qty,
 *      ordType, price, peg, pegOffsetValue, stopPx / trigger execInst,
 *      timeInForce, post-only combination, displayQty, contingency,
 *      clOrdID/clOrdLinkID text, duplicate clOrdID, per-account limits,
 *      pools, Pegged reference, margin admit.
 *
 * Every reject reason is an enum value here; only api/ maps it to BitMEX's
 * HTTP status and message text.
 */
#ifndef PERPSIM_ENGINE_H
#define PERPSIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/units.h"

/* ---- limits, each with the reason it exists --------------------------- */

/* BitMEX: clOrdID and clOrdLinkID are at most 36 characters. */
#define CLORDID_LEN_MAX 36
/* Symbols such as "XBTUSD", "XBTH27"; room for longer test names. */
#define SYMBOL_LEN_MAX 15
/* An instrument's price ladder is indexed by tick; this bounds its memory
 * (4 bytes a tick: 64 MiB at the limit). XBTUSD needs 2,000,001. */
#define LADDER_TICKS_MAX (UINT32_C(1) << 24)
/* Instruments are few; the id is a uint16_t. */
#define INSTRUMENTS_MAX 64

#define ENGINE_NIL UINT32_MAX
#define INST_ALL UINT16_MAX

/* ---- enumerations (BitMEX strings are mapped in api/) ------------------ */

enum side { SIDE_NONE = 0, SIDE_BUY = 1, SIDE_SELL = 2 };

enum ord_type {
    ORD_NONE = 0, /* derive from the fields given (rule 2) */
    ORD_LIMIT,
    ORD_MARKET,
    ORD_STOP,
    ORD_STOP_LIMIT,
    ORD_MARKET_IF_TOUCHED,
    ORD_LIMIT_IF_TOUCHED,
    ORD_PEGGED,
};

enum tif {
    TIF_NONE = 0, /* default for the ordType (rule 2) */
    TIF_GTC,
    TIF_IOC,
    TIF_FOK,
    TIF_DAY,
};

enum peg_type {
    PEG_NONE = 0,
    PEG_PRIMARY,       /* PrimaryPeg: near touch */
    PEG_MARKET,        /* MarketPeg: far touch */
    PEG_TRAILING_STOP, /* TrailingStopPeg: stops only */
};

/* execInst is a comma-separated set in BitMEX; here a bit set. */
enum exec_inst {
    EXEC_POST_ONLY = 1u << 0,        /* ParticipateDoNotInitiate */
    EXEC_REDUCE_ONLY = 1u << 1,      /* ReduceOnly */
    EXEC_CLOSE = 1u << 2,            /* Close */
    EXEC_MARK_PRICE = 1u << 3,       /* MarkPrice */
    EXEC_LAST_PRICE = 1u << 4,       /* LastPrice */
    EXEC_INDEX_PRICE = 1u << 5,      /* IndexPrice */
    EXEC_FIXED = 1u << 6,            /* Fixed */
    EXEC_LAST_WITHIN_MARK = 1u << 7, /* LastWithinMark */
    EXEC_ALL_OR_NONE = 1u << 8,      /* AllOrNone: removed by BitMEX, rejected */
};

enum contingency { CONT_NONE = 0, CONT_OCO, CONT_OTO };
/* BitMEX's limit: live orders with a contingency per account and contract
 * ("Too many contingent orders"). */
#define ENGINE_CONTINGENT_MAX 10

enum ord_status { ST_NEW = 0, ST_PARTIALLY_FILLED, ST_FILLED, ST_CANCELED, ST_REJECTED };

enum price_source { SRC_MARK = 0, SRC_LAST = 1, SRC_INDEX = 2, SRC_COUNT = 3 };

enum stp_mode { STP_ALLOW = 0, STP_CANCEL_MAKER, STP_CANCEL_TAKER };

/* Why a command was refused. Validate first: a reject changes nothing. */
enum reject {
    REJ_NONE = 0,
    REJ_BAD_SEQUENCE,        /* seq not increasing or ts going back */
    REJ_UNKNOWN_COMMAND,
    REJ_UNKNOWN_SYMBOL,
    REJ_UNKNOWN_ACCOUNT,
    REJ_INVALID_SIDE,
    REJ_INVALID_QTY,         /* zero, negative, not a lot multiple */
    REJ_QTY_TOO_LARGE,       /* above maxOrderQty */
    REJ_INVALID_PRICE,       /* <= 0, above maxPrice, or given where not allowed */
    REJ_PRICE_TICK,          /* not a multiple of tickSize */
    REJ_INVALID_STOP_PX,     /* missing/forbidden for the ordType, <= 0, > max */
    REJ_STOP_PX_TICK,
    REJ_INVALID_DISPLAY_QTY,
    REJ_UNSUPPORTED_ORD_TYPE,
    REJ_UNSUPPORTED_TIF,     /* e.g. GTC on a Market order */
    REJ_INVALID_EXEC_INST,   /* combination not allowed for the ordType */
    REJ_ALL_OR_NONE,         /* AllOrNone was removed by BitMEX on 2018-05-14 */
    REJ_INVALID_PEG,         /* peg type for the wrong ordType, Pegged without Fixed */
    REJ_PEG_NO_REFERENCE,    /* the price a peg or trailing stop follows is not there */
    REJ_INVALID_PEG_OFFSET,  /* wrong sign for a trailing stop, off the tick */
    REJ_INVALID_CONTINGENCY, /* OTO, OCO without clOrdLinkID */
    REJ_INVALID_CLORDID,     /* too long or not printable */
    REJ_DUPLICATE_CLORDID,
    REJ_NOT_FOUND,           /* no live order with that id/clOrdID for the account */
    REJ_ORDER_TERMINAL,      /* that order exists no more: filled or canceled */
    REJ_AMEND_UNCHANGED,
    REJ_AMEND_BOTH_QTY,      /* orderQty and leavesQty both given */
    REJ_AMEND_NOT_ALLOWED,   /* field not amendable for this order (stopPx of a limit...) */
    REJ_TOO_MANY_OPEN_ORDERS,
    REJ_TOO_MANY_STOP_ORDERS,
    REJ_POOL_FULL,           /* the engine's order pool is full */
    REJ_INSUFFICIENT_BALANCE, /* from the margin hook */
    REJ_INVALID_TIMEOUT,     /* cancel-all-after */
    /* margin/ (commands the engine itself does not handle) */
    REJ_INVALID_CURRENCY,    /* unknown currency */
    REJ_INVALID_AMOUNT,      /* deposit/withdrawal/transfer amount <= 0 or too large */
    REJ_INSUFFICIENT_WITHDRAWABLE, /* withdrawal beyond withdrawable balance */
    REJ_INVALID_LEVERAGE,    /* outside 0.01..100 or above the tier's maximum */
    REJ_INVALID_RISK_LIMIT,  /* not base + k x step, or below the current risk */
    REJ_RISK_LIMIT_EXCEEDED, /* position + orders would exceed the chosen risk limit */
    REJ_NOT_ISOLATED,        /* transfer margin into a cross position */
    REJ_NO_POSITION,         /* transfer margin with no open position */
    REJ_TRANSFER_TOO_LARGE,  /* removing margin below the initial margin */
    REJ_INSTRUMENT_CLOSED,   /* the future has settled */
    REJ_LIQUIDATION_IN_PROGRESS, /* the account is being liquidated */
    REJ_INVALID_FUNDING,     /* a funding rate for a future, beyond +-10%, or not for the next funding */
    REJ_TOO_MANY_CONTINGENT, /* ENGINE_CONTINGENT_MAX live contingent orders already */
    REJ_SPAM_POST_ONLY,      /* a spam account's post-only order below the spam value */
    REJ_COUNT
};

/* Why a live order stopped being live without filling. */
enum cancel_reason {
    CXL_NONE = 0,
    CXL_USER,         /* DELETE /order */
    CXL_CANCEL_ALL,   /* DELETE /order/all */
    CXL_DEAD_MAN,     /* cancelAllAfter timer */
    CXL_DAY_EXPIRY,   /* TIF Day at 00:00 UTC */
    CXL_POST_ONLY,    /* ParticipateDoNotInitiate would have taken liquidity */
    CXL_IOC,          /* ImmediateOrCancel remainder */
    CXL_FOK,          /* FillOrKill could not fill whole */
    CXL_MARKET,       /* Market remainder: no more liquidity within bounds */
    CXL_SELF_TRADE,
    CXL_REDUCE_ONLY,  /* ReduceOnly/Close with no position left to reduce */
    CXL_OCO,          /* another order of the OCO group filled */
    CXL_TRIGGER_REJECTED, /* a triggered stop failed the margin check */
    CXL_LIQUIDATION,  /* canceled by the liquidation engine (margin/) */
    CXL_COUNT
};

/* ---- configuration ----------------------------------------------------- */

struct engine_instrument {
    char symbol[SYMBOL_LEN_MAX + 1];
    px_t tick_px;        /* tickSize */
    px_t max_px;         /* maxPrice */
    qty_t lot_qty;       /* lotSize */
    qty_t max_order_qty; /* maxOrderQty */
};

struct engine_config {
    uint32_t orders_max;        /* live orders, all instruments */
    uint32_t strings_max;       /* live clOrdIDs + clOrdLinkIDs; 0 = orders_max */
    uint32_t accounts_max;      /* account ids are 0 .. accounts_max-1 */
    uint32_t stops_max;         /* untriggered stops per instrument */
    uint32_t open_orders_max;   /* per account per instrument (BitMEX 200) */
    uint32_t stop_orders_max;   /* per account per instrument (BitMEX 10) */
    enum stp_mode stp;
    /* Builds with -Dchecks=true run engine_verify() after every n-th
     * command (0 and 1: every one); long randomized tests thin it out. */
    uint32_t verify_every;
    uint16_t instruments_count;
    struct engine_instrument instruments[INSTRUMENTS_MAX];
};

/* ---- commands ---------------------------------------------------------- */

enum cmd_type {
    CMD_NEW_ORDER = 1,
    CMD_AMEND,
    CMD_CANCEL,
    CMD_CANCEL_ALL,
    CMD_CANCEL_ALL_AFTER,
    CMD_SET_PRICE,   /* mark or index price (last comes from trades) */
    CMD_CLOCK,       /* only advance time (rule 0) */
    /* Handled by margin/ (margin/exchange.h); the engine alone rejects them
     * with REJ_UNKNOWN_COMMAND. */
    CMD_DEPOSIT,         /* credit a wallet: the testnet faucet */
    CMD_WITHDRAW,        /* debit a wallet, at most its withdrawable balance */
    CMD_SET_LEVERAGE,    /* position/leverage: 0 = cross, else isolated 1/leverage */
    CMD_SET_CROSS,       /* position/isolate enabled=false (true = SET_LEVERAGE) */
    CMD_SET_RISK_LIMIT,  /* position/riskLimit */
    CMD_TRANSFER_MARGIN, /* position/transferMargin: signed amount */
    CMD_SET_INDEX,       /* an index price; margin/ derives every mark from it */
    CMD_SET_FUNDING,     /* a perpetual's announced funding rate (history's data, an admin) */
    CMD_SET_SPAM,        /* mark an account as spam (or lift it): an admin's */
};
#define CMD_TYPE_LAST CMD_SET_SPAM

/* Which optional fields of a new order were given (no sentinels). */
enum new_has {
    HAS_QTY = 1u << 0,
    HAS_PRICE = 1u << 1,
    HAS_STOP_PX = 1u << 2,
    HAS_DISPLAY_QTY = 1u << 3,
    HAS_PEG_OFFSET = 1u << 4,
};

struct cmd_new_order {
    uint32_t has;          /* enum new_has */
    uint8_t side;          /* enum side */
    uint8_t ord_type;      /* enum ord_type */
    uint8_t tif;           /* enum tif */
    uint8_t peg_type;      /* enum peg_type */
    uint8_t contingency;   /* enum contingency */
    uint16_t exec_inst;    /* enum exec_inst bits */
    qty_t qty;             /* orderQty; negative means Sell when side is NONE */
    qty_t display_qty;     /* displayQty: 0 hidden, < qty iceberg */
    px_t price;
    px_t stop_px;
    px_t peg_offset_px;    /* pegOffsetValue */
    char clordid[CLORDID_LEN_MAX + 1];     /* "" = none */
    char clordlinkid[CLORDID_LEN_MAX + 1]; /* "" = none */
};

enum amend_has {
    AMD_QTY = 1u << 0,
    AMD_LEAVES = 1u << 1,
    AMD_PRICE = 1u << 2,
    AMD_STOP_PX = 1u << 3,
    AMD_PEG_OFFSET = 1u << 4,
    AMD_NEW_CLORDID = 1u << 5,
};

/* An order reference: order_id when nonzero, else clordid of the account. */
struct order_ref {
    uint64_t order_id;
    char clordid[CLORDID_LEN_MAX + 1];
};

struct cmd_amend {
    struct order_ref ref;
    uint32_t has; /* enum amend_has */
    qty_t qty;
    qty_t leaves;
    px_t price;
    px_t stop_px;
    px_t peg_offset_px;
    char new_clordid[CLORDID_LEN_MAX + 1];
};

struct cmd_cancel_all {
    uint16_t inst; /* INST_ALL for every instrument */
    uint8_t side;  /* SIDE_NONE for both */
    uint8_t reason; /* 0 = CXL_CANCEL_ALL; margin/ passes CXL_LIQUIDATION etc. */
};

struct cmd_set_price {
    uint8_t source; /* SRC_MARK or SRC_INDEX */
    px_t price;     /* > 0; may be off the tick */
};

struct cmd {
    uint8_t type;     /* enum cmd_type */
    uint64_t seq;     /* strictly increasing, from the sequencer */
    ms_t ts;          /* non-decreasing engine time */
    uint32_t account; /* orders and cancels */
    uint16_t inst;    /* instrument index (api/ resolves symbols) */
    union {
        struct cmd_new_order new_order;
        struct cmd_amend amend;
        struct order_ref cancel;
        struct cmd_cancel_all cancel_all;
        int64_t cancel_after_ms;
        struct cmd_set_price set_price;
        struct { uint8_t currency; sats_t amount; } money; /* DEPOSIT, WITHDRAW */
        int64_t leverage_e8;    /* SET_LEVERAGE: 1.0 = 100000000, 0 = cross */
        sats_t risk_limit;      /* SET_RISK_LIMIT */
        sats_t transfer;        /* TRANSFER_MARGIN: > 0 adds to the position */
        struct { uint16_t index; px_t price; } set_index; /* SET_INDEX */
        /* SET_FUNDING (of inst): the rate paid at the funding at for_ms
         * (refused unless that is the next one; 0: the next, whenever), and
         * the indicative rate of the interval after when has_indicative */
        struct { int64_t rate_e8, indicative_e8; ms_t for_ms; uint8_t has_indicative; } set_funding;
        uint8_t spam;           /* SET_SPAM: 1 marks the account, 0 lifts the mark */
    } u;
};

/* ---- events ------------------------------------------------------------ */

enum ev_type {
    EV_NEW = 1,      /* order accepted (execType New) */
    EV_REJECTED,     /* command refused (execType Rejected for orders) */
    EV_AMENDED,      /* execType Replaced */
    EV_RESTATED,     /* size cut by the system, e.g. ReduceOnly (Restated) */
    EV_CANCELED,     /* execType Canceled */
    EV_TRIGGERED,    /* TriggeredOrActivatedBySystem */
    EV_FILL,         /* execType Trade, one per side of a match */
    EV_TRADE,        /* the public trade */
    EV_LEVEL,        /* a price level's visible size changed (orderBookL2) */
    EV_PRICE,        /* a mark/index price was set */
    EV_CANCEL_AFTER, /* dead man's switch armed or disarmed */
    /* from margin/ */
    EV_MONEY,        /* a wallet moved outside trading (ev_money) */
    EV_POSITION,     /* a position's figures changed (read it with exch_position) */
    EV_FUNDING,      /* an instrument's funding was paid (ev_funding) */
    EV_INSTRUMENT,   /* mark, fair basis, funding rates or state changed */
    EV_LIQUIDATING,  /* an account found below maintenance: its liquidation begins, and ends (ev_liq) */
};

/* What moved a wallet (EV_MONEY), as BitMEX's transactType / execType. */
enum money_kind {
    MK_DEPOSIT = 1,    /* transactType Deposit */
    MK_WITHDRAWAL,     /* transactType Withdrawal */
    MK_FUNDING,        /* execType Funding: amount < 0 paid, > 0 received */
    MK_SETTLEMENT,     /* execType Settlement: PnL realised at expiry, fee included */
    MK_LIQUIDATION,    /* execType Liquidation: position taken over at bankruptcy */
    MK_DELEVERAGE,     /* execType Bankruptcy: closed by ADL at the bankruptcy price */
    MK_INSURANCE,      /* the insurance fund moved (account = the liquidator) */
    MK_TRANSFER,       /* margin moved into (> 0) or out of an isolated position */
};

struct ev_money {
    uint8_t kind;      /* enum money_kind */
    uint8_t currency;
    sats_t amount;     /* signed change of the wallet (isolated margin for MK_TRANSFER) */
    sats_t balance;    /* the wallet after */
    qty_t qty;         /* contracts involved (funding: the position) */
    px_t px;           /* mark, settlement or bankruptcy price */
    int64_t rate_e8;   /* funding rate, settlement fee rate; MK_DELEVERAGE: the
                        * counterparty's ADL score x 1e8 (mf_adl_score) */
    sats_t cost;       /* MK_DELEVERAGE: the change of the account's position cost,
                        * its share of the bankrupt position's (its execCost; px,
                        * rounded to the tick, is within a tick's value of it) */
};

/* EV_LIQUIDATING: what margin/ found (M6), before anything is done: an
 * isolated position (cross 0, the position in ev.inst) or an account's
 * cross positions in one currency (cross 1). The events of the liquidation
 * follow, then a second EV_LIQUIDATING with end 1 (its figures as they are
 * then): everything in between is that liquidation's. */
struct ev_liq {
    uint8_t cross;
    uint8_t currency;
    uint8_t end;       /* 0: it begins; 1: it is over */
    sats_t equity;     /* isolated: isolatedMargin + unrealisedPnl; cross: the cross equity */
    sats_t maint;      /* the maintenance margin it is below */
    qty_t qty;         /* isolated: the position */
    px_t mark_px;      /* isolated: the instrument's mark */
    sats_t risk_limit; /* isolated: the position's risk limit */
};

struct ev_funding {
    px_t mark_px;
    int64_t rate_e8;
    int64_t next_rate_e8;
    sats_t paid;       /* sum paid by the paying side */
    sats_t received;   /* sum received: paid - received went to the rounding account */
    /* next_rate_e8 = P + clamp(I - P, -0.05%, 0.05%), capped at 0.75 x
     * (IM - MM): P the mean of the interval's minute premium samples */
    int64_t premium_e8;
    int64_t samples;
    px_t index_px;     /* the index at the funding */
};

/* The public state of an order, as the Order table shows it. */
struct order_view {
    uint64_t id;
    uint32_t slot;     /* the engine's pool slot while live (< orders_max), stable
                        * for the order's life and reused after; ENGINE_NIL in
                        * rejects. margin/ keys its per-order figures on it. */
    uint32_t account;
    uint16_t inst;
    uint8_t side, ord_type, tif, peg_type, contingency, status;
    uint16_t exec_inst;
    uint8_t triggered; /* "StopOrderTriggered" once fired */
    uint8_t working;   /* workingIndicator */
    qty_t qty;         /* orderQty */
    qty_t leaves;      /* leavesQty */
    qty_t cum;         /* cumQty */
    qty_t display_qty; /* -1 when not given */
    px_t price;        /* 0 when none (Market, Stop) */
    px_t stop_px;      /* 0 when none */
    px_t peg_offset_px;
};

struct ev_fill {
    uint64_t trade_id;  /* shared by both sides and the EV_TRADE */
    qty_t last_qty;
    px_t last_px;
    uint8_t maker;      /* AddedLiquidity (1) or RemovedLiquidity (0) */
    uint8_t pays_taker; /* hidden/iceberg maker: BitMEX charges taker fee */
};

struct ev_trade {
    uint64_t trade_id;
    uint64_t maker_order_id, taker_order_id;
    uint32_t maker_account, taker_account;
    qty_t qty;
    px_t px;
    uint8_t taker_side; /* the aggressor */
};

struct ev_level {
    uint8_t side;
    px_t px;
    qty_t size_before; /* visible size before the change (0 = level was not shown) */
    qty_t size;        /* visible size now (0 = level gone from orderBookL2) */
};

struct event {
    uint8_t type;     /* enum ev_type */
    uint8_t reason;   /* enum reject (EV_REJECTED) or enum cancel_reason (EV_CANCELED) */
    uint16_t inst;
    uint32_t account;
    uint64_t seq;     /* the command's */
    ms_t ts;          /* the command's */
    struct order_view order; /* order events and EV_FILL */
    union {
        struct ev_fill fill;
        struct ev_trade trade;
        struct ev_level level;
        struct { uint8_t source; px_t price; } price;
        struct { ms_t deadline; } cancel_after; /* 0 = disarmed */
        struct ev_money money;
        struct ev_funding funding;
        struct ev_liq liq;
        /* EV_NEW, EV_AMENDED (when renamed) and EV_REJECTED carry the ids. */
        struct {
            char clordid[CLORDID_LEN_MAX + 1];
            char clordlinkid[CLORDID_LEN_MAX + 1];
        } ids;
    } u;
};

/* Events are handed out one at a time, in order; the pointer is valid only
 * during the call. A batch is every event of one engine_apply() call. */
typedef void (*engine_sink_fn)(void *ctx, const struct event *ev);

/* ---- the margin core's hooks (stubs allow everything) ------------------- */

struct engine_hooks {
    void *ctx;
    /* Pre-trade check before an order may rest or take liquidity: a new
     * order, an amend that raises size or moves price, a triggered stop.
     * Return REJ_NONE or a reason (REJ_INSUFFICIENT_BALANCE). Must not
     * change anything. May be NULL. */
    enum reject (*admit)(void *ctx, const struct order_view *o);
    /* Called after each EV_FILL pair (maker then taker) is emitted; the
     * margin core books the fill. May be NULL. */
    void (*on_fill)(void *ctx, const struct event *maker, const struct event *taker);
    /* The worst price a Market order of this account may reach (its
     * bankruptcy price), or 0 for none. May be NULL. */
    px_t (*market_bound)(void *ctx, uint32_t account, uint16_t inst, uint8_t side);
};

/* ---- the API ----------------------------------------------------------- */

struct engine;

/* A new order's ordType and timeInForce as rule 2 derives them from the
 * fields given (values out of range are passed through, for the engine to
 * refuse). */
void engine_order_defaults(const struct cmd_new_order *n, uint8_t *ord_type, uint8_t *tif);

/* Checks the config; returns NULL with *err set when it is invalid or memory
 * cannot be had. All memory is taken here. */
struct engine *engine_create(const struct engine_config *cfg, engine_sink_fn sink, void *sink_ctx,
                             const struct engine_hooks *hooks, const char **err);
void engine_destroy(struct engine *e);

/* Applies one command; emits its batch of events. Returns REJ_NONE when the
 * command was accepted (an accepted order may still be canceled at once,
 * e.g. post-only), else the reject reason (an EV_REJECTED was emitted). */
enum reject engine_apply(struct engine *e, const struct cmd *c);

/* Reads (the engine thread's own view; api/ keeps its copy from events). */
const struct engine_config *engine_config(const struct engine *e);
int engine_order(const struct engine *e, uint64_t order_id, struct order_view *out);
qty_t engine_position(const struct engine *e, uint32_t account, uint16_t inst);
px_t engine_price(const struct engine *e, uint16_t inst, enum price_source src);
/* Best price with any resting quantity (hidden included); 0 when empty. */
px_t engine_best(const struct engine *e, uint16_t inst, enum side side);
uint32_t engine_orders_live(const struct engine *e);
/* Takes the next order id for an order that will never live (a refused new
 * order the read model keeps, Rejected): ids stay one sequence. */
uint64_t engine_take_order_id(struct engine *e);
/* Visible (orderBookL2) levels from the best outwards: fills up to max
 * (px, size) pairs, returns how many. */
uint32_t engine_levels(const struct engine *e, uint16_t inst, enum side side, uint32_t max,
                       px_t *px, qty_t *size);

/* For margin/: applies a command as part of the command being applied now
 * (the last engine_apply): same seq and ts, no sequence check, no time work
 * (rule 0); the trigger pass (rule 8) runs after it as after any command.
 * Liquidation orders, cancels of a liquidated account and mark prices
 * derived from an index go through here. */
enum reject engine_apply_within(struct engine *e, const struct cmd *c);

/* A hint, no change of state: starts loading what applying c will read
 * (the order it names, its price level, its account's records), so that a
 * caller holding several commands can overlap those cache misses with the
 * work of the command before. Stage 0 needs only the command; stage 1 reads
 * the index entries stage 0 loaded (call it for the next command after
 * stage 0 for the one after it). Safe with any command, valid or not.
 * Stage 1 returns the pool slot at the direct place of the order id c
 * names (usually that order's; a hint, never checked), else ENGINE_NIL;
 * margin/ prefetches its own record of that slot. */
uint32_t engine_prefetch(const struct engine *e, const struct cmd *c, int stage);

/* For margin/: a position changed outside matching (liquidation transfer,
 * ADL, settlement). Runs ReduceOnly enforcement; events go to the sink. */
void engine_position_set(struct engine *e, uint32_t account, uint16_t inst, qty_t pos);

/* The earliest engine time at which rule 0 has work: the first armed
 * dead man's switch deadline, or the next 00:00 UTC (Day orders) after the
 * last command; INT64_MAX before any command. A caller advancing time in
 * steps stops at each such time, so that work runs at its own time. */
ms_t engine_next_deadline(const struct engine *e);

/* A 64-bit hash of the whole state (orders, queues, stops, positions,
 * prices, counters): equal for equal command histories. */
uint64_t engine_hash(const struct engine *e);

/* Walks every structure and checks every invariant; returns NULL when all
 * hold, else a static description of the first broken one. O(state). */
const char *engine_verify(const struct engine *e);

/* Names for logs and tests. */
const char *engine_reject_name(enum reject r);
const char *engine_cancel_name(enum cancel_reason r);

/* Memory the engine holds per order slot (for the benchmark's report). */
size_t engine_bytes_per_order(void);

#endif
