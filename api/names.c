/*
 * names.c - BitMEX's names of the exchange's enumerations (names.h).
 */
#include "api/names.h"

#include <stdio.h>
#include <string.h>

#include "core/keys.h"
#include "core/store.h"
#include "engine/engine.h"

#define TABLE(var, fld, ...)                                                                        \
    static const struct name_entry var##_entries[] = {__VA_ARGS__};                                 \
    const struct name_table var = {fld, var##_entries, sizeof(var##_entries) / sizeof(var##_entries[0])}

TABLE(names_side, "side", {SIDE_BUY, "Buy"}, {SIDE_SELL, "Sell"});

TABLE(names_ord_type, "ordType", {ORD_LIMIT, "Limit"}, {ORD_MARKET, "Market"}, {ORD_STOP, "Stop"},
      {ORD_STOP_LIMIT, "StopLimit"}, {ORD_MARKET_IF_TOUCHED, "MarketIfTouched"},
      {ORD_LIMIT_IF_TOUCHED, "LimitIfTouched"}, {ORD_PEGGED, "Pegged"});

TABLE(names_tif, "timeInForce", {TIF_GTC, "GoodTillCancel"}, {TIF_IOC, "ImmediateOrCancel"},
      {TIF_FOK, "FillOrKill"}, {TIF_DAY, "Day"});

TABLE(names_peg, "pegPriceType", {PEG_PRIMARY, "PrimaryPeg"}, {PEG_MARKET, "MarketPeg"},
      {PEG_TRAILING_STOP, "TrailingStopPeg"});

TABLE(names_contingency, "contingencyType", {CONT_OCO, "OneCancelsTheOther"},
      {CONT_OTO, "OneTriggersTheOther"});

TABLE(names_ord_status, "ordStatus", {ST_NEW, "New"}, {ST_PARTIALLY_FILLED, "PartiallyFilled"},
      {ST_FILLED, "Filled"}, {ST_CANCELED, "Canceled"}, {ST_REJECTED, "Rejected"});

TABLE(names_exec_type, "execType", {EX_NEW, "New"}, {EX_TRADE, "Trade"}, {EX_CANCELED, "Canceled"},
      {EX_REPLACED, "Replaced"}, {EX_RESTATED, "Restated"},
      {EX_TRIGGERED, "TriggeredOrActivatedBySystem"}, {EX_REJECTED, "Rejected"},
      {EX_FUNDING, "Funding"}, {EX_SETTLEMENT, "Settlement"}, {EX_LIQUIDATION, "Liquidation"},
      {EX_BANKRUPTCY, "Bankruptcy"});

/* trade_rec.tick_dir (core/store.h). */
TABLE(names_tick, "tickDirection", {0, "PlusTick"}, {1, "ZeroPlusTick"}, {2, "MinusTick"},
      {3, "ZeroMinusTick"});

/* exe_rec.liq (core/store.h); 0 is neither. */
TABLE(names_liquidity, "lastLiquidityInd", {1, "AddedLiquidity"}, {2, "RemovedLiquidity"});

TABLE(names_money_kind, "transactType", {MK_DEPOSIT, "Deposit"}, {MK_WITHDRAWAL, "Withdrawal"},
      {MK_FUNDING, "Funding"}, {MK_SETTLEMENT, "Settlement"}, {MK_LIQUIDATION, "Liquidation"},
      {MK_DELEVERAGE, "Deleverage"}, {MK_INSURANCE, "Insurance"}, {MK_TRANSFER, "Transfer"});

TABLE(names_bin_size, "binSize", {BIN_1M, "1m"}, {BIN_5M, "5m"}, {BIN_1H, "1h"}, {BIN_1D, "1d"});

/* In the order BitMEX lists them. */
TABLE(names_exec_inst, "execInst", {EXEC_POST_ONLY, "ParticipateDoNotInitiate"},
      {EXEC_ALL_OR_NONE, "AllOrNone"}, {EXEC_MARK_PRICE, "MarkPrice"}, {EXEC_INDEX_PRICE, "IndexPrice"},
      {EXEC_LAST_PRICE, "LastPrice"}, {EXEC_CLOSE, "Close"}, {EXEC_REDUCE_ONLY, "ReduceOnly"},
      {EXEC_FIXED, "Fixed"}, {EXEC_LAST_WITHIN_MARK, "LastWithinMark"});

/* "read": every key may read; it names no bit. */
TABLE(names_permission, "permissions", {0, "read"}, {PERM_ORDER, "order"}, {PERM_CANCEL, "orderCancel"},
      {PERM_WITHDRAW, "withdraw"});

const char *name_of(const struct name_table *t, unsigned v)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->entries[i].value == v)
            return t->entries[i].name;
    return "";
}

bool name_parse(const struct name_table *t, const char *text, unsigned *out)
{
    if (!text || !*text)
        return false;
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].name, text) == 0) {
            *out = t->entries[i].value;
            return true;
        }
    return false;
}

size_t name_format_set(const struct name_table *t, unsigned bits, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < t->count; i++)
        if (bits & t->entries[i].value) {
            int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", t->entries[i].name);
            if (w < 0 || (size_t)w >= cap - n) {
                out[n] = 0; /* no part of a name */
                break;
            }
            n += (size_t)w;
        }
    return n;
}

bool name_parse_set(const struct name_table *t, const char *text, unsigned *bits)
{
    char buf[NAME_SET_TEXT_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", text ? text : "");
    unsigned set = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        unsigned v = 0;
        if (!name_parse(t, item, &v))
            return false;
        set |= v;
    }
    *bits = set;
    return true;
}
