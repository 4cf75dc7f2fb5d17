/*
 * config.c - perpsim's default market: XBTUSD, ETHUSD, XBTUSDT and a
 * quarterly XBT future with BitMEX's parameters (2022 values where they
 * changed).
 * Every number here is a default the config file may override, and
 * exch_config_add_instrument() is how the config file adds its own.
 */
#include "margin/exchange.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define USD(x) ((px_t)(x) * PX_SCALE)
#define RATE(num, den) ((rate_t)(MF_RATE_SCALE * (num) / (den)))

/* Civil date from days since 1970-01-01 (proleptic Gregorian). */
static void civil(int64_t days, int *year, int *month)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
}

/* Days since 1970-01-01 of a civil date (the inverse of civil()). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* BitMEX's quarterly expiry: the last Friday of a quarter month (March,
 * June, September, December), 12:00 UTC; the first more than a day after
 * now. The one place this rule lives. */
ms_t exch_next_quarter_expiry(ms_t now)
{
    int y, m;
    civil(now / MS_PER_DAY, &y, &m);
    for (int k = 0; k < 8; k++) {
        int qm = ((m - 1) / 3 + 1) * 3 + 3 * k; /* 3, 6, 9, 12, ... */
        int qy = y + (qm - 1) / 12;
        qm = (qm - 1) % 12 + 1;
        int ny = qm == 12 ? qy + 1 : qy, nm = qm == 12 ? 1 : qm + 1;
        int64_t day = days_from_civil(ny, nm, 1) - 1; /* last day of qm */
        int64_t wd = (day + 4) % 7;                   /* 1970-01-01 was a Thursday: 4 */
        day -= (wd - 5 + 7) % 7;                      /* back to Friday (5) */
        ms_t t = day * MS_PER_DAY + 12 * 3600000;
        if (t > now + MS_PER_DAY)
            return t;
    }
    return now + 90 * MS_PER_DAY;
}

static int is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int same_symbol(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
        char y = *b >= 'a' && *b <= 'z' ? (char)(*b - 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* An order's value must stay well inside int64 (margins sum many of them):
 * 2^54 minor units, 180 million XBT. */
#define ORDER_VALUE_MAX (INT64_C(1) << 54)

/* The impact notional when none is given: BitMEX's 0.1 XBT (10,000,000 XBt)
 * or 5,000 USDT (5,000,000,000 USDt) at the instrument's initial margin. */
static sats_t impact_default(const struct exch_config *cfg, const struct exch_instrument *in)
{
    const char *cur = cfg->currency[in->currency];
    sats_t base = strcmp(cur, "XBt") == 0 ? INT64_C(10000000)
                  : strcmp(cur, "USDt") == 0 ? INT64_C(5000000000) : 0;
    return base > 0 && in->im_e8 > 0 ? (sats_t)((i128)base * MF_RATE_SCALE / in->im_e8) : 0;
}

const char *exch_config_add_instrument(struct exch_config *cfg, const char *symbol, px_t tick,
                                       px_t max_px, qty_t lot, qty_t max_qty,
                                       const struct exch_instrument *in)
{
    size_t n = symbol ? strlen(symbol) : 0;
    if (n == 0 || n > SYMBOL_LEN_MAX)
        return "symbol must be 1 to 15 letters and digits";
    for (size_t k = 0; k < n; k++)
        if (!is_alnum(symbol[k]))
            return "symbol must be 1 to 15 letters and digits";
    uint16_t i = cfg->engine.instruments_count;
    for (uint16_t k = 0; k < cfg->engine.instruments_count; k++)
        if (same_symbol(cfg->engine.instruments[k].symbol, symbol))
            i = k;
    if (i == INSTRUMENTS_MAX)
        return "too many instruments (at most 64)";
    struct exch_instrument x = *in;
    x.contract.tick_px = tick;
    x.contract.lot_qty = lot;
    if (x.contract.kind != MF_INVERSE && x.contract.kind != MF_QUANTO && x.contract.kind != MF_LINEAR)
        return "type must be inverse, quanto or linear";
    if (x.contract.kind == MF_INVERSE && x.contract.multiplier >= 0)
        return "multiplier must be negative for an inverse contract (XBTUSD: -100000000)";
    if (x.contract.kind != MF_INVERSE && x.contract.multiplier <= 0)
        return "multiplier must be positive for a quanto or linear contract";
    if (x.currency >= cfg->currencies_count)
        return "settlCurrency is not a known currency";
    if (x.index >= cfg->indices_count)
        return "index is not a known index";
    if (tick <= 0)
        return "tickSize must be > 0";
    if (max_px <= 0 || max_px % tick != 0)
        return "maxPrice must be a positive multiple of tickSize";
    if (max_px / tick >= (px_t)LADDER_TICKS_MAX)
        return "maxPrice / tickSize must be below 16777216 ticks";
    if (lot <= 0)
        return "lotSize must be > 0";
    if (max_qty < lot)
        return "maxOrderQty must be >= lotSize";
    sats_t v = 0;
    px_t worst = x.contract.kind == MF_INVERSE ? tick : max_px;
    if (mf_value(&x.contract, max_qty, worst, &v) != MF_OK || v > ORDER_VALUE_MAX || v < -ORDER_VALUE_MAX)
        return x.contract.kind == MF_INVERSE
                   ? "maxOrderQty x multiplier / tickSize is too large (an order's value must stay "
                     "below 2^54 minor units)"
                   : "maxOrderQty x multiplier x maxPrice is too large (an order's value must stay "
                     "below 2^54 minor units)";
    if (x.im_e8 <= 0 || x.im_e8 > MF_RATE_SCALE)
        return "initMargin must be > 0 and <= 1";
    if (x.mm_e8 <= 0 || x.mm_e8 > x.im_e8)
        return "maintMargin must be > 0 and <= initMargin";
    if (x.risk_limit <= 0)
        return "riskLimit must be > 0";
    if (x.risk_step <= 0 || x.risk_step > (INT64_MAX - x.risk_limit) / (RISK_STEPS_MAX + 1))
        return "riskStep must be > 0 (and riskLimit + 100 x riskStep must fit in 63 bits)";
    if (x.taker_fee_e8 < 0 || x.taker_fee_e8 >= MF_RATE_SCALE)
        return "takerFee must be >= 0 and < 1";
    if (x.maker_fee_e8 <= -MF_RATE_SCALE || x.maker_fee_e8 >= MF_RATE_SCALE)
        return "makerFee must be > -1 and < 1";
    if (x.settle_fee_e8 < 0 || x.settle_fee_e8 >= MF_RATE_SCALE)
        return "settlementFee must be >= 0 and < 1";
    if (x.perpetual) {
        x.perpetual = 1;
        x.expiry_ms = 0;
        if (x.settle_fee_e8 != 0)
            return "settlementFee is only for futures (give an expiry)";
        if (x.funding_interval_ms <= 0 || x.funding_interval_ms > MS_PER_DAY ||
            x.funding_interval_ms % 60000 != 0)
            return "fundingIntervalHours must be a whole number of minutes, more than 0 and at "
                   "most 24 hours";
        if (x.funding_interest_e8 <= -MF_RATE_SCALE || x.funding_interest_e8 >= MF_RATE_SCALE)
            return "fundingInterest must be > -1 and < 1";
    } else {
        if (x.expiry_ms <= 0)
            return "expiry is required for a future";
        if (x.funding_interval_ms != 0)
            return "fundingIntervalHours is only for perpetuals (this one has an expiry)";
        if (x.funding_interest_e8 != 0)
            return "fundingInterest is only for perpetuals (this one has an expiry)";
    }
    if (x.impact_notional < 0)
        return "impactNotional must be > 0";
    if (x.impact_notional == 0 && (x.impact_notional = impact_default(cfg, &x)) <= 0)
        return "impactNotional is required for this settlCurrency";

    struct engine_instrument *ei = &cfg->engine.instruments[i];
    if (i == cfg->engine.instruments_count)
        cfg->engine.instruments_count++;
    snprintf(ei->symbol, sizeof(ei->symbol), "%s", symbol);
    ei->tick_px = tick;
    ei->max_px = max_px;
    ei->lot_qty = lot;
    ei->max_order_qty = max_qty;
    cfg->inst[i] = x;
    return NULL;
}

/* A default instrument. They pass the checks by construction; should one
 * not (an expiry_ms <= 0 from the caller), it is stored as given so that
 * exch_create() refuses the config with its message. */
static void add(struct exch_config *cfg, const char *symbol, px_t tick, px_t max_px, qty_t lot,
                qty_t max_qty, const struct exch_instrument *in)
{
    if (exch_config_add_instrument(cfg, symbol, tick, max_px, lot, max_qty, in) == NULL ||
        cfg->engine.instruments_count >= INSTRUMENTS_MAX)
        return;
    uint16_t i = cfg->engine.instruments_count++;
    struct engine_instrument *ei = &cfg->engine.instruments[i];
    snprintf(ei->symbol, sizeof(ei->symbol), "%s", symbol);
    ei->tick_px = tick;
    ei->max_px = max_px;
    ei->lot_qty = lot;
    ei->max_order_qty = max_qty;
    cfg->inst[i] = *in;
    cfg->inst[i].contract.tick_px = tick;
    cfg->inst[i].contract.lot_qty = lot;
}

void exch_config_default(struct exch_config *cfg, ms_t expiry_ms)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->engine.orders_max = 1u << 20;
    cfg->engine.accounts_max = 10000;
    cfg->engine.stops_max = 1u << 16;
    cfg->engine.open_orders_max = 200;
    cfg->engine.stop_orders_max = 10;
    cfg->engine.stp = STP_ALLOW;
    cfg->currencies_count = 2;
    snprintf(cfg->currency[0], sizeof(cfg->currency[0]), "XBt");
    snprintf(cfg->currency[1], sizeof(cfg->currency[1]), "USDt");
    cfg->indices_count = 2;
    snprintf(cfg->index[0], sizeof(cfg->index[0]), ".BXBT");
    snprintf(cfg->index[1], sizeof(cfg->index[1]), ".BETH");
    cfg->insurance_initial[0] = INT64_C(1000000000);   /* 10 XBT */
    cfg->insurance_initial[1] = INT64_C(100000000000); /* 100,000 USDT */
    /* Spam: BitMEX's 0.0025 XBT (in USDT at 60,000); how many small orders
     * make a spam account BitMEX does not say: 50 here. */
    cfg->spam_orders = 50;
    cfg->spam_value[0] = 250000;       /* 0.0025 XBT */
    cfg->spam_value[1] = 150000000;    /* 150 USDT */

    /* XBTUSD: inverse perpetual, 2022 parameters. */
    struct exch_instrument xbtusd = {
        .contract = {.kind = MF_INVERSE, .multiplier = -100000000},
        .currency = 0, .index = 0, .perpetual = 1,
        .im_e8 = RATE(1, 100), .mm_e8 = RATE(35, 10000),
        .risk_limit = INT64_C(20000000000), .risk_step = INT64_C(15000000000),
        .maker_fee_e8 = -RATE(1, 10000), .taker_fee_e8 = RATE(75, 100000),
        .funding_interval_ms = 8 * 3600 * INT64_C(1000),
        .funding_interest_e8 = RATE(1, 10000),
        .impact_notional = INT64_C(1000000000), /* 0.1 XBT / 1% = 10 XBT */
    };
    add(cfg, "XBTUSD", USD(1) / 2, USD(1000000), 100, 10000000, &xbtusd);

    /* ETHUSD: quanto perpetual, 100 XBt per $ per contract, 50x. */
    struct exch_instrument ethusd = xbtusd;
    ethusd.contract = (struct mf_contract){.kind = MF_QUANTO, .multiplier = 100};
    ethusd.index = 1;
    ethusd.im_e8 = RATE(2, 100);
    ethusd.mm_e8 = RATE(1, 100);
    ethusd.risk_limit = INT64_C(5000000000);
    ethusd.risk_step = INT64_C(10000000000);
    ethusd.impact_notional = INT64_C(500000000); /* 0.1 XBT / 2% = 5 XBT */
    add(cfg, "ETHUSD", USD(1) / 20, USD(100000), 1, 10000000, &ethusd);

    /* XBTUSDT: linear perpetual settled in USDt; a contract is 1e-6 XBT. */
    struct exch_instrument xbtusdt = xbtusd;
    xbtusdt.contract = (struct mf_contract){.kind = MF_LINEAR, .multiplier = 1};
    xbtusdt.currency = 1;
    xbtusdt.mm_e8 = RATE(5, 1000);
    xbtusdt.risk_limit = INT64_C(1000000000000);
    xbtusdt.risk_step = INT64_C(1000000000000);
    xbtusdt.impact_notional = INT64_C(500000000000); /* 500,000 USDT */
    add(cfg, "XBTUSDT", USD(1) / 2, USD(1000000), 1000, 10000000000LL, &xbtusdt);

    /* The quarterly inverse future: as XBTUSD, no funding, a settlement fee. */
    struct exch_instrument fut = xbtusd;
    fut.perpetual = 0;
    fut.expiry_ms = expiry_ms;
    fut.funding_interval_ms = 0;
    fut.funding_interest_e8 = 0;
    fut.settle_fee_e8 = RATE(5, 10000);
    int y, m;
    civil(expiry_ms / MS_PER_DAY, &y, &m);
    char sym[SYMBOL_LEN_MAX + 1];
    snprintf(sym, sizeof(sym), "XBT%c%02d", "FGHJKMNQUVXZ"[m - 1], y % 100);
    add(cfg, sym, USD(1) / 2, USD(1000000), 100, 10000000, &fut);
}

int exch_config_find(const struct exch_config *cfg, const char *symbol)
{
    if (!symbol)
        return -1;
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (strcasecmp(cfg->engine.instruments[i].symbol, symbol) == 0)
            return i;
    return -1;
}
