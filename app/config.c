/*
 * config.c - the JSON config file (--config FILE): defaults first, then the
 * file, then the command line (app/main.c). Every key known and of its type,
 * every number in its range: a typo or a wrong type stops start-up with a
 * message and exit status 2 instead of being ignored, and no value is cast
 * out of range. Pure apart from reading the file and printing the message,
 * so the fuzzer (tests/fuzz/fuzz_config.c) drives config_parse() directly.
 */
#define _GNU_SOURCE
#include "app/config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "api/timefmt.h"

int perpsim_fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "perpsim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

int config_listen(struct srv_config *c, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof(c->host))
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    snprintf(c->host, sizeof(c->host), "%.*s", (int)(colon - v), v);
    c->port = (uint16_t)port;
    return 0;
}

int config_rate_profile(const char *v, enum rl_profile *p)
{
    if (strcmp(v, "default") == 0)
        *p = RLP_DEFAULT;
    else if (strcmp(v, "2021") == 0)
        *p = RLP_2021;
    else if (strcmp(v, "off") == 0)
        *p = RLP_OFF;
    else
        return -1;
    return 0;
}

static double num(const cJSON *o, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A JSON number that is whole and within lo..hi (so casting it is safe). */
static bool whole_in(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

static int px8(double v, px_t *out) { return tf_fixed_from_double(v, 8, out) == TF_OK && *out > 0 ? 0 : -1; }

/* ---- instruments from the config file ----------------------------------------------------- */

/* Prints "perpsim: config: instrument SYM: <message>" and gives exit status 2. */
static int inst_fail(const char *symbol, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int inst_fail(const char *symbol, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "perpsim: config: instrument %s: ", symbol);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

static const char *const inst_keys[] = {
    "symbol", "type", "settlCurrency", "index", "indexPrice", "multiplier", "tickSize", "lotSize",
    "maxOrderQty", "maxPrice", "initMargin", "maintMargin", "riskLimit", "riskStep", "makerFee",
    "takerFee", "settlementFee", "expiry", "fundingIntervalHours", "fundingInterest",
    "impactNotional", NULL};

/* What the config file does to the instruments and indices, beyond the
 * srv_config itself. */
struct cfg_state {
    bool given[INSTRUMENTS_MAX];      /* instrument named by the file (twice is an error) */
    bool px_given[INDICES_MAX];       /* indexPrice set by an instrument entry */
    char default_index[INDICES_MAX][SYMBOL_LEN_MAX + 1];
    px_t default_index_px[INDICES_MAX];
    uint16_t default_indices;
};

/* A number field at scale digits (8: prices and rates, 0: integers).
 * 1 when present and read, 0 when absent and optional, else the exit status
 * (2, message printed) through *rc. */
static int field_fixed(const cJSON *in, const char *symbol, const char *name, int scale, bool required,
                       int64_t *out, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
    if (!v) {
        if (required)
            *rc = inst_fail(symbol, "missing %s (required for a new instrument)", name);
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        *rc = inst_fail(symbol, "%s must be a number", name);
        return 0;
    }
    enum tf_err e = tf_fixed_from_double(v->valuedouble, scale, out);
    if (e == TF_ERR_PRECISION)
        *rc = scale ? inst_fail(symbol, "%s has more than %d decimals", name, scale)
                    : inst_fail(symbol, "%s must be a whole number", name);
    else if (e != TF_OK)
        *rc = inst_fail(symbol, "%s is out of range", name);
    return e == TF_OK;
}

/* A string field; NULL when absent (and *rc = 2 if required) or not a string. */
static const char *field_str(const cJSON *in, const char *symbol, const char *name, bool required, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
    if (!v) {
        if (required)
            *rc = inst_fail(symbol, "missing %s (required for a new instrument)", name);
        return NULL;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        *rc = inst_fail(symbol, "%s must be a non-empty string", name);
        return NULL;
    }
    return v->valuestring;
}

static int index_find(const struct exch_config *x, const char *name)
{
    for (uint16_t k = 0; k < x->indices_count; k++)
        if (strcasecmp(x->index[k], name) == 0)
            return k;
    return -1;
}

/* An index symbol as BitMEX writes them: '.' then 1 to 14 letters/digits. */
static bool index_name_ok(const char *v)
{
    size_t n = strlen(v);
    if (n < 2 || n > SYMBOL_LEN_MAX || v[0] != '.')
        return false;
    for (size_t k = 1; k < n; k++)
        if (!((v[k] >= 'A' && v[k] <= 'Z') || (v[k] >= 'a' && v[k] <= 'z') || (v[k] >= '0' && v[k] <= '9')))
            return false;
    return true;
}

/* 0.03% a day (BitMEX's quote minus base interest), pro rata to the interval:
 * 0.01% for 8 hours. */
static rate_t funding_interest_default(ms_t interval_ms)
{
    return (rate_t)((i128)30000 * interval_ms / MS_PER_DAY);
}

/* One entry of "instruments": a new instrument, or changes to one that exists
 * (a default, when the defaults are kept). 0 or the exit status. */
static int instrument_entry(struct srv_config *c, struct cfg_state *cs, const cJSON *in, int pos)
{
    char where[32];
    snprintf(where, sizeof(where), "#%d", pos + 1);
    if (!cJSON_IsObject(in))
        return inst_fail(where, "%s", "each entry of instruments must be an object");
    int rc = 0;
    const char *y = field_str(in, where, "symbol", true, &rc);
    if (!y)
        return rc ? rc : 2;
    size_t yl = strlen(y);
    bool sym_ok = yl <= SYMBOL_LEN_MAX;
    for (size_t k = 0; k < yl; k++)
        sym_ok = sym_ok && isalnum((unsigned char)y[k]);
    if (!sym_ok)
        return inst_fail(y, "%s", "symbol must be 1 to 15 letters and digits");
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
    {
        bool known = false;
        for (int k = 0; inst_keys[k]; k++)
            known = known || strcmp(it->string, inst_keys[k]) == 0;
        if (!known)
            return inst_fail(y, "unknown field %s", it->string);
    }
    struct exch_config *x = &c->core.exch;
    int found = -1;
    for (uint16_t k = 0; k < x->engine.instruments_count; k++)
        if (strcasecmp(x->engine.instruments[k].symbol, y) == 0)
            found = k;
    if (found >= 0 && cs->given[found])
        return inst_fail(y, "%s", "given twice in instruments");
    bool fresh = found < 0;
    struct engine_instrument ei = {0};
    struct exch_instrument xi = {0};
    if (!fresh) {
        ei = x->engine.instruments[found];
        xi = x->inst[found];
    }

    /* The contract: type, settlement currency, index, multiplier. */
    const char *v;
    if ((v = field_str(in, y, "type", fresh, &rc))) {
        if (strcasecmp(v, "inverse") == 0)
            xi.contract.kind = MF_INVERSE;
        else if (strcasecmp(v, "quanto") == 0)
            xi.contract.kind = MF_QUANTO;
        else if (strcasecmp(v, "linear") == 0)
            xi.contract.kind = MF_LINEAR;
        else
            return inst_fail(y, "type must be inverse, quanto or linear, not \"%s\"", v);
    }
    if (rc)
        return rc;
    if ((v = field_str(in, y, "settlCurrency", fresh, &rc))) {
        int cur = -1;
        for (uint8_t k = 0; k < x->currencies_count; k++)
            if (strcasecmp(x->currency[k], v) == 0)
                cur = k;
        if (cur < 0)
            return inst_fail(y, "settlCurrency must be XBt or USDt, not \"%s\"", v);
        xi.currency = (uint8_t)cur;
    }
    if (rc)
        return rc;
    const char *index_name = field_str(in, y, "index", fresh, &rc);
    if (rc)
        return rc;
    if (index_name && !index_name_ok(index_name))
        return inst_fail(y, "index must be an index symbol such as .BXBT ('.' and 1 to 14 letters or "
                            "digits), not \"%s\"", index_name);
    int64_t n;
    if (field_fixed(in, y, "multiplier", 0, fresh, &n, &rc))
        xi.contract.multiplier = n;
    if (field_fixed(in, y, "tickSize", 8, fresh, &n, &rc))
        ei.tick_px = n;
    if (field_fixed(in, y, "maxPrice", 8, fresh, &n, &rc))
        ei.max_px = n;
    if (field_fixed(in, y, "lotSize", 0, fresh, &n, &rc))
        ei.lot_qty = n;
    if (field_fixed(in, y, "maxOrderQty", 0, fresh, &n, &rc))
        ei.max_order_qty = n;
    bool im_given = field_fixed(in, y, "initMargin", 8, fresh, &n, &rc);
    if (im_given)
        xi.im_e8 = n;
    if (field_fixed(in, y, "maintMargin", 8, fresh, &n, &rc))
        xi.mm_e8 = n;
    if (field_fixed(in, y, "riskLimit", 0, fresh, &n, &rc))
        xi.risk_limit = n;
    if (field_fixed(in, y, "riskStep", 0, fresh, &n, &rc))
        xi.risk_step = n;
    if (field_fixed(in, y, "makerFee", 8, fresh, &n, &rc))
        xi.maker_fee_e8 = n;
    if (field_fixed(in, y, "takerFee", 8, fresh, &n, &rc))
        xi.taker_fee_e8 = n;
    if (field_fixed(in, y, "impactNotional", 0, false, &n, &rc)) {
        if (n <= 0)
            return inst_fail(y, "%s", "impactNotional must be > 0");
        xi.impact_notional = n;
    } else if (im_given) {
        xi.impact_notional = 0; /* derived from the new initMargin */
    }
    if (rc)
        return rc;

    /* Perpetual or future. */
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(in, "expiry");
    if (ex) {
        ms_t ms = 0;
        if (!(cJSON_IsString(ex) ? tf_parse_time(ex->valuestring, strlen(ex->valuestring), &ms) == TF_OK
                                 : cJSON_IsNumber(ex) && tf_fixed_from_double(ex->valuedouble, 0, &ms) == TF_OK))
            return inst_fail(y, "%s", "expiry must be ISO-8601 UTC text (\"2027-03-26T12:00:00Z\") or epoch ms");
        if (ms <= (ms_t)time(NULL) * 1000)
            return inst_fail(y, "%s", "expiry is in the past");
        if (!fresh && xi.perpetual)
            return inst_fail(y, "%s", "expiry: this default instrument is a perpetual");
        xi.perpetual = 0;
        xi.expiry_ms = ms;
    } else if (fresh) {
        xi.perpetual = 1;
    }
    bool fih = false, fin = false;
    if (xi.perpetual) {
        double h = num(in, "fundingIntervalHours", 0);
        const cJSON *fv = cJSON_GetObjectItemCaseSensitive(in, "fundingIntervalHours");
        if (fv && (!cJSON_IsNumber(fv) || !(h > 0 && h <= 24)))
            return inst_fail(y, "%s", "fundingIntervalHours must be a number of hours, more than 0 and at most 24");
        fih = fv != NULL;
        if (fih)
            xi.funding_interval_ms = (ms_t)(h * 3600000.0 + 0.5);
        else if (fresh)
            xi.funding_interval_ms = 8 * 3600000;
        fin = field_fixed(in, y, "fundingInterest", 8, false, &n, &rc);
        if (rc)
            return rc;
        if (fin)
            xi.funding_interest_e8 = n;
        else if (fresh || fih)
            xi.funding_interest_e8 = funding_interest_default(xi.funding_interval_ms);
    } else {
        if (cJSON_GetObjectItemCaseSensitive(in, "fundingIntervalHours"))
            return inst_fail(y, "%s", "fundingIntervalHours is only for perpetuals (this one has an expiry)");
        if (cJSON_GetObjectItemCaseSensitive(in, "fundingInterest"))
            return inst_fail(y, "%s", "fundingInterest is only for perpetuals (this one has an expiry)");
        xi.funding_interval_ms = 0;
        xi.funding_interest_e8 = 0;
    }
    if (field_fixed(in, y, "settlementFee", 8, fresh && !xi.perpetual, &n, &rc))
        xi.settle_fee_e8 = n;
    if (rc)
        return rc;

    /* The index: an existing one, or a new one added to the list. */
    px_t start = 0;
    const cJSON *ipv = cJSON_GetObjectItemCaseSensitive(in, "indexPrice");
    if (ipv && (!cJSON_IsNumber(ipv) || px8(ipv->valuedouble, &start) != 0))
        return inst_fail(y, "%s", "indexPrice must be a positive number with at most 8 decimals");
    int idx = index_name ? index_find(x, index_name) : (int)xi.index;
    if (idx < 0) {
        if (x->indices_count >= INDICES_MAX)
            return inst_fail(y, "index %s: too many indices (at most %d)", index_name, INDICES_MAX);
        idx = x->indices_count;
    }
    if (start > 0 && idx < x->indices_count && cs->px_given[idx] && c->core.index_px[idx] != start)
        return inst_fail(y, "indexPrice differs from the one another instrument gives %s", x->index[idx]);
    xi.index = (uint16_t)idx;
    bool new_index = idx == x->indices_count;
    if (new_index)
        snprintf(x->index[x->indices_count++], sizeof(x->index[0]), "%s", index_name);
    char name[SYMBOL_LEN_MAX + 1]; /* a default keeps its spelling: "xbtusd" changes XBTUSD */
    snprintf(name, sizeof(name), "%s", fresh ? y : x->engine.instruments[found].symbol);
    const char *e = exch_config_add_instrument(x, name, ei.tick_px, ei.max_px, ei.lot_qty, ei.max_order_qty, &xi);
    if (e) {
        if (new_index)
            x->indices_count--;
        return inst_fail(y, "%s", e);
    }
    if (new_index) {
        c->core.index_px[idx] = 0;
        for (uint16_t k = 0; k < cs->default_indices; k++)
            if (strcasecmp(cs->default_index[k], index_name) == 0)
                c->core.index_px[idx] = cs->default_index_px[k]; /* .BXBT keeps its 60000 */
    }
    if (start > 0) {
        c->core.index_px[idx] = start;
        cs->px_given[idx] = true;
    }
    for (uint16_t k = 0; k < x->engine.instruments_count; k++)
        if (strcasecmp(x->engine.instruments[k].symbol, y) == 0)
            cs->given[k] = true;
    return 0;
}

/* "defaultInstruments", "instruments" and then "indices". 0 or the exit status. */
static int config_market(struct srv_config *c, const cJSON *o)
{
    struct cfg_state cs;
    memset(&cs, 0, sizeof(cs));
    struct exch_config *x = &c->core.exch;
    cs.default_indices = x->indices_count;
    for (uint16_t k = 0; k < x->indices_count; k++) {
        snprintf(cs.default_index[k], sizeof(cs.default_index[k]), "%s", x->index[k]);
        cs.default_index_px[k] = c->core.index_px[k];
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "defaultInstruments");
    if (d && !cJSON_IsBool(d))
        return perpsim_fail("%s", "config: defaultInstruments must be true or false");
    bool defaults = !d || cJSON_IsTrue(d);
    if (!defaults) {
        /* A market from scratch: the indices come with the instruments. */
        x->engine.instruments_count = 0;
        x->indices_count = 0;
        memset(c->core.index_px, 0, sizeof(c->core.index_px));
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "instruments");
    if (v && !cJSON_IsArray(v))
        return perpsim_fail("%s", "config: instruments must be an array");
    int pos = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int rc = instrument_entry(c, &cs, it, pos++);
        if (rc)
            return rc;
    }
    if (x->engine.instruments_count == 0)
        return perpsim_fail("%s", "config: defaultInstruments is false and instruments defines none");
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "indices"))) {
        if (!cJSON_IsObject(v))
            return perpsim_fail("%s", "config: indices must be an object such as {\".BXBT\": 60000}");
        cJSON_ArrayForEach(it, v)
        {
            int k = index_find(x, it->string);
            if (k < 0)
                return perpsim_fail("config: indices: unknown index %s (no instrument uses it)", it->string);
            if (!cJSON_IsNumber(it) || px8(it->valuedouble, &c->core.index_px[k]) != 0)
                return perpsim_fail("config: indices: %s must be a positive price with at most 8 decimals", it->string);
        }
    }
    /* Every instrument needs its index's start price, so it has a mark. */
    for (uint16_t i = 0; i < x->engine.instruments_count; i++) {
        uint16_t k = x->inst[i].index;
        if (c->core.index_px[k] <= 0) {
            fprintf(stderr,
                    "perpsim: config: instrument %s: index %s has no start price (give indexPrice in "
                    "the instrument or \"indices\": {\"%s\": PRICE})\n",
                    x->engine.instruments[i].symbol, x->index[k], x->index[k]);
            return 2;
        }
    }
    return 0;
}

int config_load(struct srv_config *c, const char *path, struct config_effects *fx)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return perpsim_fail("cannot open config %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = (cap + 4096) * 2;
            char *p = realloc(text, cap);
            if (!p) {
                fclose(f);
                free(text);
                return perpsim_fail("%s", "out of memory");
            }
            text = p;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    text[len] = 0;
    int rc = config_parse(c, text, len, path, fx);
    free(text);
    return rc;
}

int config_parse(struct srv_config *c, const char *text, size_t len, const char *path, struct config_effects *fx)
{
    if (memchr(text, 0, len))
        return perpsim_fail("config %s holds a NUL byte (not JSON text)", path);
    /* The whole text is the one object: nothing may follow it (cJSON
     * checks that on a NUL-terminated copy). */
    char *z = malloc(len + 1);
    if (!z)
        return perpsim_fail("%s", "out of memory");
    memcpy(z, text, len);
    z[len] = 0;
    cJSON *o = cJSON_ParseWithOpts(z, NULL, true);
    free(z);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return perpsim_fail("config %s is not a JSON object", path);
    }
    int rc = 0;
    const cJSON *v;
    /* Every key known and of its type, every number in its range (as the
     * flags'): a typo or a wrong type stops start-up instead of being
     * ignored, and no value is cast out of range. */
    static const char *const keys[] = {"listen", "adminToken", "rateLimit", "demo", "market", "engineDelayUs",
                                       "loadShed", "indices", "instruments", "defaultInstruments", NULL};
    cJSON_ArrayForEach(v, o)
    {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], v->string) != 0)
            k++;
        if (!keys[k]) {
            rc = perpsim_fail("config: unknown key %s", v->string);
            break;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "listen")) && (!cJSON_IsString(v) || config_listen(c, v->valuestring)))
        rc = perpsim_fail("config: bad listen (want \"HOST:PORT\") in %s", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "adminToken"))) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof(c->admin_token))
            rc = perpsim_fail("config: adminToken must be a string of at most 128 characters in %s", path);
        else {
            snprintf(c->admin_token, sizeof(c->admin_token), "%s", v->valuestring);
            fx->token_set = true;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "rateLimit")) && (!cJSON_IsString(v) || config_rate_profile(v->valuestring, &c->rate_limit)))
        rc = perpsim_fail("config: bad rateLimit in %s (default, 2021 or off)", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "demo"))) {
        if (!cJSON_IsBool(v))
            rc = perpsim_fail("config: demo must be true or false in %s", path);
        else
            fx->demo = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "market"))) {
        char merr[160];
        if (cJSON_IsFalse(v)) {
            fx->market_on = false;
        } else if (!cJSON_IsObject(v) || market_params_json(v, &c->market, &fx->market_on, merr, sizeof(merr)) != 0) {
            rc = perpsim_fail("config: market: %s", cJSON_IsObject(v) ? merr : "want false or an object of parameters");
        } else if (cJSON_GetObjectItemCaseSensitive(v, "seed")) {
            c->market_seed_set = true;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "engineDelayUs"))) {
        if (!whole_in(v, 0, 10000000))
            rc = perpsim_fail("config: engineDelayUs must be a whole number 0..10000000 in %s", path);
        else
            c->core.engine_delay_ns = (int64_t)v->valuedouble * 1000;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "loadShed"))) {
        const cJSON *cap = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "latencyCapMs") : NULL;
        const cJSON *depth = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "fixedDepth") : NULL;
        if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 1 || (!cap && !depth) ||
            (cap && !whole_in(cap, 1, 3600000)) || (depth && !whole_in(depth, 0, (double)c->core.ls.capacity))) {
            rc = perpsim_fail("config: loadShed must be {\"latencyCapMs\": 1..3600000} or {\"fixedDepth\": 0..65536} "
                      "in %s", path);
        } else if (cap) {
            c->core.ls.mode = LS_LATENCY_CAP;
            c->core.ls.latency_cap_ns = (int64_t)cap->valuedouble * 1000000;
        } else {
            c->core.ls.mode = LS_FIXED;
            c->core.ls.fixed_depth = (uint32_t)depth->valuedouble;
        }
    }
    if (rc == 0)
        rc = config_market(c, o);
    cJSON_Delete(o);
    return rc;
}
