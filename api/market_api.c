/*
 * market_api.c - the living market on the server (market/market.h): its
 * parameters as JSON (the config file's "market" object and the admin API
 * share the names), GET/POST /admin/v1/market, and its start after the
 * demo account.
 */
#define _GNU_SOURCE
#include "api/srv_int.h"

#include <stdio.h>
#include <string.h>

/* BitMEX-style camelCase names of market_params' fields. */
enum mp_kind { MP_U64, MP_MS, MP_DBL, MP_U32 };
static const struct {
    const char *name;
    enum mp_kind kind;
    size_t off;
} fields[] = {
    {"seed", MP_U64, offsetof(struct market_params, seed)},
    {"indexStepMs", MP_MS, offsetof(struct market_params, index_step_ms)},
    {"volatility", MP_DBL, offsetof(struct market_params, vol)},
    {"jumpsPerDay", MP_DBL, offsetof(struct market_params, jumps_per_day)},
    {"jumpSize", MP_DBL, offsetof(struct market_params, jump_pct)},
    {"levels", MP_U32, offsetof(struct market_params, levels)},
    {"spreadBp", MP_DBL, offsetof(struct market_params, spread_bp)},
    {"levelBp", MP_DBL, offsetof(struct market_params, level_bp)},
    {"sizeLots", MP_U32, offsetof(struct market_params, size_lots)},
    {"depthImpacts", MP_DBL, offsetof(struct market_params, depth_impacts)},
    {"skewBp", MP_DBL, offsetof(struct market_params, skew_bp)},
    {"premiumBp", MP_DBL, offsetof(struct market_params, premium_bp)},
    {"maxInventoryLots", MP_U32, offsetof(struct market_params, max_inventory_lots)},
    {"noiseTraders", MP_U32, offsetof(struct market_params, noise)},
    {"noisePerMin", MP_DBL, offsetof(struct market_params, noise_per_min)},
    {"directionalTraders", MP_U32, offsetof(struct market_params, directional)},
    {"directionalEveryMs", MP_MS, offsetof(struct market_params, directional_every_ms)},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

int market_params_json(const cJSON *o, struct market_params *p, bool *enabled, char *err, size_t cap)
{
    struct market_params q = *p;
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (strcmp(it->string, "enabled") == 0) {
            if (!enabled || !cJSON_IsBool(it)) {
                snprintf(err, cap, "Invalid enabled");
                return -1;
            }
            continue;
        }
        size_t k = 0;
        while (k < NFIELDS && strcmp(fields[k].name, it->string) != 0)
            k++;
        if (k == NFIELDS) {
            snprintf(err, cap, "Unknown market parameter: %s", it->string);
            return -1;
        }
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        bool whole = d >= 0 && d == (double)(uint64_t)d && d < 1.8e19;
        char *at = (char *)&q + fields[k].off;
        switch (fields[k].kind) {
        case MP_DBL:
            if (!cJSON_IsNumber(it) || d < 0)
                goto bad;
            memcpy(at, &d, sizeof(d));
            break;
        case MP_U32:
            if (!whole || d > 4294967295.0)
                goto bad;
            *(uint32_t *)(void *)at = (uint32_t)d;
            break;
        case MP_MS:
            if (!whole || d > 9.2e18)
                goto bad;
            *(ms_t *)(void *)at = (ms_t)d;
            break;
        case MP_U64:
            if (!whole || d < 1 || d > 9007199254740992.0)
                goto bad;
            *(uint64_t *)(void *)at = (uint64_t)d;
            break;
        }
        continue;
    bad:
        snprintf(err, cap, "Invalid %s", it->string);
        return -1;
    }
    const char *e = market_params_check(&q);
    if (e) {
        snprintf(err, cap, "%s", e);
        return -1;
    }
    if (enabled && (it = cJSON_GetObjectItemCaseSensitive(o, "enabled")))
        *enabled = cJSON_IsTrue(it);
    *p = q;
    return 0;
}

static cJSON *market_json(struct srv *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "enabled", s->market && !s->market_paused);
    struct market_params p = s->cfg.market;
    if (s->market)
        market_params_get(s->market, &p);
    for (size_t k = 0; k < NFIELDS; k++) {
        const char *at = (const char *)&p + fields[k].off;
        double d = 0;
        switch (fields[k].kind) {
        case MP_DBL: memcpy(&d, at, sizeof(d)); break;
        case MP_U32: d = *(const uint32_t *)(const void *)at; break;
        case MP_MS: d = (double)*(const ms_t *)(const void *)at; break;
        case MP_U64: d = (double)*(const uint64_t *)(const void *)at; break;
        }
        cJSON_AddNumberToObject(o, fields[k].name, d);
    }
    if (s->market) {
        struct market_stats st;
        market_stats(s->market, &st);
        cJSON *c = cJSON_AddObjectToObject(o, "counts");
        cJSON_AddNumberToObject(c, "indexSteps", (double)st.index_steps);
        cJSON_AddNumberToObject(c, "jumps", (double)st.jumps);
        cJSON_AddNumberToObject(c, "makerCommands", (double)st.maker_commands);
        cJSON_AddNumberToObject(c, "noiseOrders", (double)st.noise_orders);
        cJSON_AddNumberToObject(c, "directionalOrders", (double)st.directional_orders);
    }
    return o;
}

/* GET: the parameters, whether the agents act, their counts. POST: any of
 * the parameters (the number of traders and the seed are fixed at start)
 * and {"enabled":false|true} to pause and resume the agents (their orders
 * stay). */
void admin_market(struct req *r)
{
    struct srv *s = r->s;
    if (strcmp(r->method, "GET") == 0) {
        reply_json(r, 200, market_json(s));
        return;
    }
    if (!s->market) {
        reply_error(r, 400, "ValidationError", "The market is off (started with --no-market)");
        return;
    }
    struct market_params p;
    market_params_get(s->market, &p);
    bool enabled = !s->market_paused;
    char err[160];
    if (!cJSON_IsObject(r->params) || market_params_json(r->params, &p, &enabled, err, sizeof(err)) != 0) {
        reply_error(r, 400, "ValidationError", "%s", cJSON_IsObject(r->params) ? err : "Invalid body");
        return;
    }
    const char *e = market_params_set(s->market, &p);
    if (e) {
        reply_error(r, 400, "ValidationError", "%s", e);
        return;
    }
    if (enabled != !s->market_paused) {
        struct core_timer t = market_timer(s->market);
        core_set_timer(s->core, enabled ? &t : NULL);
        s->market_paused = !enabled;
    }
    reply_json(r, 200, market_json(s));
}

int srv_market_start(struct srv *s, char *err, size_t errcap)
{
    if (s->market)
        return 0;
    struct market_params p = s->cfg.market;
    if (!s->cfg.market_seed_set)
        p.seed = s->cfg.seed ? s->cfg.seed : 1;
    s->market = market_start(s->core, &p, err, errcap);
    return s->market ? 0 : -1;
}
