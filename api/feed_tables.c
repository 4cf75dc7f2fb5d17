/*
 * feed_tables.c - the realtime tables (feed.h): their names, whether they
 * need authentication or take a symbol, and the fields of their partials.
 * No state: the message reader (wsmsg.c) and its fuzzer use it alone.
 */
#include "api/feed.h"

#include <stddef.h>
#include <string.h>

/* ---- the tables ------------------------------------------------------------------------------ */

#define T_L2 "{\"symbol\":\"symbol\",\"id\":\"long\",\"side\":\"symbol\",\"size\":\"long\",\"price\":\"float\",\"timestamp\":\"timestamp\"}"
#define T_QUOTE "{\"timestamp\":\"timestamp\",\"symbol\":\"symbol\",\"bidSize\":\"long\",\"bidPrice\":\"float\",\"askPrice\":\"float\",\"askSize\":\"long\"}"
#define T_TRADE "{\"timestamp\":\"timestamp\",\"symbol\":\"symbol\",\"side\":\"symbol\",\"size\":\"long\",\"price\":\"float\",\"tickDirection\":\"symbol\",\"trdMatchID\":\"guid\",\"grossValue\":\"long\",\"homeNotional\":\"float\",\"foreignNotional\":\"float\",\"trdType\":\"symbol\"}"
#define T_BIN "{\"timestamp\":\"timestamp\",\"symbol\":\"symbol\",\"open\":\"float\",\"high\":\"float\",\"low\":\"float\",\"close\":\"float\",\"trades\":\"long\",\"volume\":\"long\",\"vwap\":\"float\",\"lastSize\":\"long\",\"turnover\":\"long\",\"homeNotional\":\"float\",\"foreignNotional\":\"float\"}"
#define T_ORDER "{\"orderID\":\"guid\",\"clOrdID\":\"string\",\"clOrdLinkID\":\"symbol\",\"account\":\"long\",\"symbol\":\"symbol\",\"side\":\"symbol\",\"orderQty\":\"long\",\"price\":\"float\",\"displayQty\":\"long\",\"stopPx\":\"float\",\"pegOffsetValue\":\"float\",\"pegPriceType\":\"symbol\",\"currency\":\"symbol\",\"settlCurrency\":\"symbol\",\"ordType\":\"symbol\",\"timeInForce\":\"symbol\",\"execInst\":\"symbol\",\"contingencyType\":\"symbol\",\"ordStatus\":\"symbol\",\"triggered\":\"symbol\",\"workingIndicator\":\"boolean\",\"ordRejReason\":\"symbol\",\"leavesQty\":\"long\",\"cumQty\":\"long\",\"avgPx\":\"float\",\"text\":\"string\",\"transactTime\":\"timestamp\",\"timestamp\":\"timestamp\"}"
#define T_EXEC "{\"execID\":\"guid\",\"orderID\":\"guid\",\"clOrdID\":\"string\",\"account\":\"long\",\"symbol\":\"symbol\",\"side\":\"symbol\",\"lastQty\":\"long\",\"lastPx\":\"float\",\"lastLiquidityInd\":\"symbol\",\"orderQty\":\"long\",\"price\":\"float\",\"ordType\":\"symbol\",\"execType\":\"symbol\",\"ordStatus\":\"symbol\",\"leavesQty\":\"long\",\"cumQty\":\"long\",\"avgPx\":\"float\",\"commission\":\"float\",\"trdMatchID\":\"guid\",\"execCost\":\"long\",\"execComm\":\"long\",\"homeNotional\":\"float\",\"foreignNotional\":\"float\",\"transactTime\":\"timestamp\",\"timestamp\":\"timestamp\"}"
#define T_POS "{\"account\":\"long\",\"symbol\":\"symbol\",\"currency\":\"symbol\",\"currentQty\":\"long\",\"currentCost\":\"long\",\"currentComm\":\"long\",\"markPrice\":\"float\",\"markValue\":\"long\",\"homeNotional\":\"float\",\"foreignNotional\":\"float\",\"posMargin\":\"long\",\"maintMargin\":\"long\",\"unrealisedPnl\":\"long\",\"realisedPnl\":\"long\",\"avgEntryPrice\":\"float\",\"liquidationPrice\":\"float\",\"bankruptPrice\":\"float\",\"timestamp\":\"timestamp\"}"
#define T_MARGIN "{\"account\":\"long\",\"currency\":\"symbol\",\"amount\":\"long\",\"realisedPnl\":\"long\",\"unrealisedPnl\":\"long\",\"walletBalance\":\"long\",\"marginBalance\":\"long\",\"initMargin\":\"long\",\"maintMargin\":\"long\",\"availableMargin\":\"long\",\"withdrawableMargin\":\"long\",\"timestamp\":\"timestamp\"}"
#define T_WALLET "{\"account\":\"long\",\"currency\":\"symbol\",\"deposited\":\"long\",\"withdrawn\":\"long\",\"amount\":\"long\",\"timestamp\":\"timestamp\"}"
#define T_TRANSACT "{\"transactID\":\"guid\",\"account\":\"long\",\"currency\":\"symbol\",\"transactType\":\"symbol\",\"amount\":\"long\",\"fee\":\"long\",\"transactStatus\":\"symbol\",\"address\":\"symbol\",\"text\":\"string\",\"transactTime\":\"timestamp\",\"walletBalance\":\"long\",\"timestamp\":\"timestamp\"}"
#define FK_SYM "{\"symbol\":\"instrument\",\"side\":\"side\"}"
#define A_SYM "{\"timestamp\":\"sorted\",\"symbol\":\"grouped\"}"

static const struct ft_def tables[FT_COUNT] = {
    [FT_ORDERBOOKL2] = {{"orderBookL2", false, true}, "[\"symbol\",\"id\",\"side\"]", T_L2, FK_SYM,
                        "{\"symbol\":\"grouped\",\"id\":\"sorted\"}"},
    [FT_ORDERBOOKL2_25] = {{"orderBookL2_25", false, true}, "[\"symbol\",\"id\",\"side\"]", T_L2, FK_SYM,
                           "{\"symbol\":\"grouped\",\"id\":\"sorted\"}"},
    [FT_ORDERBOOK10] = {{"orderBook10", false, true}, "[\"symbol\"]",
                        "{\"symbol\":\"symbol\",\"bids\":\"\",\"asks\":\"\",\"timestamp\":\"timestamp\"}",
                        "{\"symbol\":\"instrument\"}", "{\"symbol\":\"sorted\"}"},
    [FT_QUOTE] = {{"quote", false, true}, "[]", T_QUOTE, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_TRADE] = {{"trade", false, true}, "[]", T_TRADE, FK_SYM, A_SYM},
    [FT_TRADEBIN1M] = {{"tradeBin1m", false, true}, "[]", T_BIN, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_TRADEBIN5M] = {{"tradeBin5m", false, true}, "[]", T_BIN, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_TRADEBIN1H] = {{"tradeBin1h", false, true}, "[]", T_BIN, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_TRADEBIN1D] = {{"tradeBin1d", false, true}, "[]", T_BIN, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_QUOTEBIN1M] = {{"quoteBin1m", false, true}, "[]", T_QUOTE, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_QUOTEBIN5M] = {{"quoteBin5m", false, true}, "[]", T_QUOTE, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_QUOTEBIN1H] = {{"quoteBin1h", false, true}, "[]", T_QUOTE, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_QUOTEBIN1D] = {{"quoteBin1d", false, true}, "[]", T_QUOTE, "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_INSTRUMENT] = {{"instrument", false, true}, "[\"symbol\"]",
                       "{\"symbol\":\"symbol\",\"state\":\"symbol\",\"typ\":\"symbol\",\"lastPrice\":\"float\",\"bidPrice\":\"float\",\"askPrice\":\"float\",\"markPrice\":\"float\",\"fairPrice\":\"float\",\"fairBasis\":\"float\",\"fundingRate\":\"float\",\"indicativeFundingRate\":\"float\",\"openInterest\":\"long\",\"timestamp\":\"timestamp\"}",
                       "{\"inverseLeg\":\"instrument\",\"quoteCurrency\":\"currency\",\"underlying\":\"currency\"}",
                       "{\"symbol\":\"unique\"}"},
    [FT_FUNDING] = {{"funding", false, true}, "[\"timestamp\",\"symbol\"]",
                    "{\"timestamp\":\"timestamp\",\"symbol\":\"symbol\",\"fundingInterval\":\"timespan\",\"fundingRate\":\"float\",\"fundingRateDaily\":\"float\"}",
                    "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_LIQUIDATION] = {{"liquidation", false, true}, "[\"orderID\"]",
                        "{\"orderID\":\"guid\",\"symbol\":\"symbol\",\"side\":\"symbol\",\"price\":\"float\",\"leavesQty\":\"long\"}",
                        FK_SYM, "{\"orderID\":\"grouped\"}"},
    [FT_INSURANCE] = {{"insurance", false, false}, "[\"currency\",\"timestamp\"]",
                      "{\"currency\":\"symbol\",\"timestamp\":\"timestamp\",\"walletBalance\":\"long\"}", "{}",
                      "{\"currency\":\"grouped\",\"timestamp\":\"sorted\"}"},
    [FT_SETTLEMENT] = {{"settlement", false, true}, "[\"symbol\",\"timestamp\"]",
                       "{\"timestamp\":\"timestamp\",\"symbol\":\"symbol\",\"settlementType\":\"symbol\",\"settledPrice\":\"float\"}",
                       "{\"symbol\":\"instrument\"}", A_SYM},
    [FT_ANNOUNCEMENT] = {{"announcement", false, false}, "[\"id\"]",
                         "{\"id\":\"long\",\"link\":\"string\",\"title\":\"string\",\"content\":\"string\",\"date\":\"timestamp\"}",
                         "{}", "{\"id\":\"grouped\"}"},
    [FT_CONNECTED] = {{"connected", false, false}, "[]", "{\"users\":\"long\",\"bots\":\"long\"}", "{}", "{}"},
    [FT_CHAT] = {{"chat", false, false}, "[\"id\"]", "{\"id\":\"long\",\"date\":\"timestamp\",\"user\":\"string\",\"message\":\"string\"}", "{}", "{\"id\":\"sorted\"}"},
    [FT_PUBLICNOTIFICATIONS] = {{"publicNotifications", false, false}, "[\"id\"]", "{\"id\":\"long\",\"title\":\"string\",\"body\":\"string\"}", "{}", "{}"},
    [FT_ORDER] = {{"order", true, true}, "[\"orderID\"]", T_ORDER,
                  "{\"symbol\":\"instrument\",\"side\":\"side\",\"ordStatus\":\"ordStatus\"}",
                  "{\"orderID\":\"grouped\",\"account\":\"grouped\",\"ordStatus\":\"grouped\",\"workingIndicator\":\"grouped\"}"},
    [FT_EXECUTION] = {{"execution", true, true}, "[\"execID\"]", T_EXEC,
                      "{\"symbol\":\"instrument\",\"side\":\"side\",\"ordStatus\":\"ordStatus\"}",
                      "{\"execID\":\"grouped\",\"account\":\"grouped\",\"execType\":\"grouped\",\"transactTime\":\"sorted\"}"},
    [FT_POSITION] = {{"position", true, true}, "[\"account\",\"symbol\",\"currency\"]", T_POS,
                     "{\"symbol\":\"instrument\"}",
                     "{\"account\":\"sorted\",\"symbol\":\"grouped\",\"currency\":\"grouped\"}"},
    [FT_MARGIN] = {{"margin", true, false}, "[\"account\",\"currency\"]", T_MARGIN, "{}",
                   "{\"account\":\"sorted\",\"currency\":\"grouped\"}"},
    [FT_WALLET] = {{"wallet", true, false}, "[\"account\",\"currency\"]", T_WALLET, "{}",
                   "{\"account\":\"sorted\",\"currency\":\"grouped\"}"},
    [FT_TRANSACT] = {{"transact", true, false}, "[\"transactID\"]", T_TRANSACT, "{}",
                     "{\"transactID\":\"grouped\",\"account\":\"sorted\"}"},
    [FT_ACCOUNT] = {{"account", true, false}, "[\"id\"]", "{\"id\":\"long\"}", "{}", "{}"},
    [FT_AFFILIATE] = {{"affiliate", true, false}, "[\"account\",\"currency\"]", "{\"account\":\"long\",\"currency\":\"symbol\"}", "{}", "{}"},
    [FT_PRIVATENOTIFICATIONS] = {{"privateNotifications", true, false}, "[\"id\"]", "{\"id\":\"long\",\"title\":\"string\",\"body\":\"string\"}", "{}", "{}"},
};

const struct ft_info *ft_info(int table)
{
    return table >= 0 && table < FT_COUNT ? &tables[table].info : NULL;
}

const struct ft_def *ft_def(int table)
{
    return table >= 0 && table < FT_COUNT ? &tables[table] : NULL;
}

int ft_find(const char *name)
{
    for (int t = 0; t < FT_COUNT; t++)
        if (strcmp(tables[t].info.name, name) == 0)
            return t;
    return -1;
}
