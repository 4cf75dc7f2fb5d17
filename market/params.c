/*
 * params.c - the living market's parameters (market.h): defaults, checks,
 * and their JSON form (the config file's "market" object and
 * GET/POST /admin/v1/market share the names). No state, no I/O.
 */
#include "market/market.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

void market_params_default(struct market_params *p)
{
    memset(p, 0, sizeof(*p));
    p->seed = 1;
    p->index_step_ms = 1000;
    p->vol = 0.6;
    p->jumps_per_day = 2;
    p->jump_pct = 0.04;
    p->levels = 12;
    p->spread_bp = 4;
    p->level_bp = 2;
    p->size_lots = 50;
    p->skew_bp = 10;
    p->premium_bp = 8;
    p->depth_impacts = 2;
    p->max_inventory_lots = 5000;
    p->noise = 12;
    p->noise_per_min = 30;
    p->directional = 6;
    p->directional_every_ms = 10 * 60 * 1000;
}

const char *market_params_check(const struct market_params *p)
{
    if (p->index_step_ms < 100 || p->index_step_ms > 3600 * 1000)
        return "indexStepMs must be 100 to 3600000";
    if (!(p->vol >= 0 && p->vol <= 10))
        return "volatility must be 0 to 10 (annual, 0.6 = 60%)";
    if (!(p->jumps_per_day >= 0 && p->jumps_per_day <= 1000))
        return "jumpsPerDay must be 0 to 1000";
    if (!(p->jump_pct >= 0 && p->jump_pct <= 0.5))
        return "jumpSize must be 0 to 0.5";
    if (p->levels < 1 || p->levels > MARKET_LEVELS_MAX)
        return "levels must be 1 to 50";
    if (!(p->spread_bp > 0 && p->spread_bp <= 1000) || !(p->level_bp > 0 && p->level_bp <= 1000))
        return "spreadBp and levelBp must be above 0 and at most 1000";
    if (p->size_lots < 1 || p->size_lots > 100000)
        return "sizeLots must be 1 to 100000";
    if (!(p->premium_bp >= 0 && p->premium_bp <= 1000))
        return "premiumBp must be 0 to 1000";
    if (!(p->depth_impacts >= 0 && p->depth_impacts <= 100))
        return "depthImpacts must be 0 to 100";
    if (!(p->skew_bp >= 0 && p->skew_bp <= 1000) || p->max_inventory_lots < 1)
        return "skewBp must be 0 to 1000 and maxInventoryLots at least 1";
    if (p->noise > MARKET_NOISE_MAX || p->directional > MARKET_DIRECTIONAL_MAX)
        return "at most 64 noise and 32 directional traders";
    if (!(p->noise_per_min == 0 || (p->noise_per_min >= 0.001 && p->noise_per_min <= 6000)))
        return "noisePerMin must be 0 or 0.001 to 6000";
    if (p->directional_every_ms < 1000 || p->directional_every_ms > 30LL * 24 * 3600 * 1000)
        return "directionalEveryMs must be 1000 to 2592000000 (30 days)";
    return NULL;
}

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
        bool whole = d >= 0 && d < 1.8e19 && d == (double)(uint64_t)d; /* range first: the cast */
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

void market_params_add_json(const struct market_params *p, cJSON *o)
{
    for (size_t k = 0; k < NFIELDS; k++) {
        const char *at = (const char *)p + fields[k].off;
        double d = 0;
        switch (fields[k].kind) {
        case MP_DBL: memcpy(&d, at, sizeof(d)); break;
        case MP_U32: d = *(const uint32_t *)(const void *)at; break;
        case MP_MS: d = (double)*(const ms_t *)(const void *)at; break;
        case MP_U64: d = (double)*(const uint64_t *)(const void *)at; break;
        }
        cJSON_AddNumberToObject(o, fields[k].name, d);
    }
}
