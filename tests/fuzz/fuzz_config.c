/*
 * fuzz_config.c - the config file (--config FILE, app/config.c): any bytes
 * over the defaults. A file is refused with exit status 2, or accepted; what
 * it accepts the exchange must accept too (exch_create on the result, with
 * few accounts and orders so each input is quick), and every instrument's
 * index has a start price (a mismatch aborts: a finding).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/config.h"
#include "core/core.h"
#include "margin/exchange.h"
#include "market/market.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_sink(void *ctx, const struct event *ev)
{
    (void)ctx;
    (void)ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct srv_config c; /* large: not on the stack */
    memset(&c, 0, sizeof(c));
    core_config_default(&c.core, INT64_C(1767225600000)); /* 2026-01-01 */
    market_params_default(&c.market);
    struct config_effects fx = {true, false, true};
    int rc = config_parse(&c, (const char *)data, size, "fuzz", &fx);
    if (rc != 0) {
        if (rc != 2)
            abort();
        return 0;
    }
    const struct exch_config *x = &c.core.exch;
    if (x->engine.instruments_count == 0)
        abort();
    for (uint16_t i = 0; i < x->engine.instruments_count; i++)
        if (x->inst[i].index >= x->indices_count || c.core.index_px[x->inst[i].index] <= 0)
            abort();
    if (fx.market_on && market_params_check(&c.market))
        abort();
    struct exch_config small = *x;
    small.engine.accounts_max = 4;
    small.engine.orders_max = 16;
    const char *err = NULL;
    struct exch *e = exch_create(&small, no_sink, NULL, &err);
    if (!e) {
        fprintf(stderr, "accepted config refused by exch_create: %s\n", err ? err : "?");
        abort();
    }
    exch_destroy(e);
    return 0;
}
