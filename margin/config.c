/*
 * config.c - perpsim's default market: the instruments of MECHANICS.md
 * section 1 with BitMEX's parameters (2022 values where they changed).
 * Every number here is a default the config file may override.
 */
#include "margin/exchange.h"

#include <stdio.h>
#include <string.h>

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

static void add(struct exch_config *cfg, const char *symbol, px_t tick, px_t max_px, qty_t lot,
                qty_t max_qty, const struct exch_instrument *in)
{
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
