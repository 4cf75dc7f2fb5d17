/*
 * config.c - the core's defaults (core.h): the default instruments and
 * their indices' start prices, the write queue's, the read model's limits.
 */
#include "core/core.h"

#include <string.h>

#include "core/store.h"

void core_config_default(struct core_config *c, ms_t now_ms)
{
    memset(c, 0, sizeof(*c));
    exch_config_default(&c->exch, exch_next_quarter_expiry(now_ms));
    c->index_px[0] = 60000 * PX_SCALE;
    c->index_px[1] = 3000 * PX_SCALE;
    ls_config_default(&c->ls);
    c->tick_ms = CORE_TICK_MS;
    c->limits = (struct store_limits){STORE_KEEP_ORDERS, STORE_KEEP_EXECS, STORE_KEEP_TRADES, true};
}
