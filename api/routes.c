/*
 * routes.c - every endpoint: BitMEX's REST API under /api/v1 (the trading
 * endpoints and those ccxt and BitMEX's adapter call), the testnet admin
 * API under /admin/v1 and /metrics. Reads answer under the state lock held
 * for reading; writes are parsed and validated here, then become jobs for
 * the engine thread.
 */
#define _GNU_SOURCE
#include "api/srv_int.h"
#include "core/explain.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "api/l2id.h"
#include "api/json.h"
#include "api/names.h"
#include "api/timefmt.h"

#define BULK_MAX 100

static const char VALIDATION[] = "ValidationError";
static const char HTTP[] = "HTTPError";

/* ---- small helpers ------------------------------------------------------------ */

/* A view of the state for this request (core.h): short, no rendering of
 * JSON for a write's reply inside it. */
static void view_open(struct req *r) { r->v = core_view_begin(r->s->core); }
/* The state a reply may show: send_reply waits until the journal has it. */
static void view_close(struct req *r)
{
    uint64_t seq = cv_seq(r->v);
    if (seq > r->seen_seq)
        r->seen_seq = seq;
    core_view_end(r->v);
    r->v = NULL;
}

static bool need_auth(struct req *r)
{
    if (r->authed)
        return true;
    char msg[256];
    auth_format_error(AUTH_ANONYMOUS, 0, msg, sizeof(msg));
    reply_error(r, 401, HTTP, "%s", msg);
    return false;
}

static bool need_perm(struct req *r, uint32_t perms)
{
    if (!need_auth(r))
        return false;
    if (r->key.perms & perms)
        return true;
    reply_error(r, 403, HTTP, "Access Denied");
    return false;
}

/* Parameters a write accepts; anything else is refused (a typo must not be
 * silently ignored when money is at stake). */
bool only_known(struct req *r, const cJSON *obj, const char *const *known)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (strcmp(it->string, *k) == 0) {
                ok = true;
                break;
            }
        if (!ok) {
            reply_error(r, 400, VALIDATION, "Unknown parameter: %s", it->string);
            return false;
        }
    }
    return true;
}

static bool bad_param(struct req *r, enum prm_get g, const char *name)
{
    if (g == PRM_BAD_TYPE || g == PRM_BAD_VALUE) {
        reply_error(r, 400, VALIDATION, "Invalid %s", name);
        return true;
    }
    return false;
}

static const char *str_param(const cJSON *p, const char *name)
{
    const char *v = NULL;
    return prm_str(p, name, &v) == PRM_FOUND ? v : NULL;
}

/* Instruments a `symbol` parameter names: exact, a root ("XBT"), or a
 * series ("XBT:perpetual", "XBT:quarterly"). Returns the bit mask (all when
 * absent); 0 when it names nothing. */
static uint64_t symbol_mask(const struct exch_config *x, const char *symbol)
{
    uint16_t n = x->engine.instruments_count;
    uint64_t all = n >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1;
    if (!symbol || !*symbol)
        return all;
    int i = exch_config_find(x, symbol);
    if (i >= 0)
        return UINT64_C(1) << i;
    char root[16] = "", series[24] = "";
    const char *colon = strchr(symbol, ':');
    size_t rl = colon ? (size_t)(colon - symbol) : strlen(symbol);
    if (rl == 0 || rl >= sizeof(root))
        return 0;
    memcpy(root, symbol, rl);
    if (colon)
        snprintf(series, sizeof(series), "%s", colon + 1);
    uint64_t m = 0;
    for (uint16_t k = 0; k < n; k++) {
        const char *y = sym(x, k);
        if (strncasecmp(y, root, rl) != 0 || strlen(y) <= rl)
            continue;
        bool perp = x->inst[k].perpetual;
        if (!*series || (strcasecmp(series, "perpetual") == 0 && perp) ||
            (strcasecmp(series, "perpetual") != 0 && !perp))
            m |= UINT64_C(1) << k;
    }
    return m;
}

/* Generic query parameters; false when the 400 reply is set. */
static bool parse_query(struct req *r, const struct q_spec *spec, struct q_opts *o, uint64_t *mask)
{
    enum q_err e = q_parse(r->params, spec, o);
    if (e != Q_OK) {
        reply_error(r, 400, VALIDATION, "%s", q_err_message(e));
        return false;
    }
    if (mask)
        *mask = symbol_mask(r->s->x, str_param(r->params, "symbol"));
    return true;
}

/* A table read: the generic query parsed, the collector ready and the state
 * lock held for reading; false when the 400 reply is set. */
static bool table_open(struct req *r, const struct q_spec *spec, struct q_opts *o, uint64_t *mask,
                       struct q_collect *c)
{
    if (!parse_query(r, spec, o, mask))
        return false;
    q_collect_init(c, o);
    view_open(r);
    return true;
}

/* Lock released, the collected rows are the reply. */
static void table_close(struct req *r, struct q_collect *c, struct q_opts *o)
{
    view_close(r);
    cJSON *rows = q_collect_done(c);
    q_free(o);
    reply_json(r, 200, rows);
}

/* Walks n records oldest first, or newest first when reversed. */
#define WALK(i, n, rev) for (uint32_t i##_k = 0, i = 0; i##_k < (n) && \
    ((i = (rev) ? (n) - 1 - i##_k : i##_k), 1); i##_k++)

/* ---- public: instruments ------------------------------------------------------------ */

static void get_instruments(struct req *r, bool active, bool indices, bool instruments)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"symbol", NULL};
    struct q_spec spec = {.count_max = 1000, .keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    ms_t now = cv_now(r->v);
    if (instruments) {
        uint16_t n = s->x->engine.instruments_count;
        WALK(i, n, o.reverse)
        {
            if (!(mask >> i & 1))
                continue;
            if (active) {
                struct exch_instrument_state st;
                cv_instrument(r->v, (uint16_t)i, &st);
                if (st.settled)
                    continue;
            }
            if (!q_offer(&c, render_instrument(r->v, (uint16_t)i, now), now))
                break;
        }
    }
    const char *want = str_param(r->params, "symbol");
    if (indices)
        for (uint16_t k = 0; k < s->x->indices_count; k++)
            if (!want || strcasecmp(want, s->x->index[k]) == 0)
                if (!q_offer(&c, render_index(r->v, k, now), now))
                    break;
    table_close(r, &c, &o);
}

/* ---- public: order book ---------------------------------------------------------------- */

static void get_l2(struct req *r)
{
    struct srv *s = r->s;
    const char *symbol = str_param(r->params, "symbol");
    if (!symbol) {
        reply_error(r, 400, VALIDATION, "'symbol' is a required arg.");
        return;
    }
    int i = exch_config_find(s->x, symbol);
    if (i < 0) {
        reply_error(r, 400, VALIDATION, "Invalid symbol");
        return;
    }
    int64_t depth = 25;
    enum prm_get g = prm_int(r->params, "depth", &depth);
    if (bad_param(r, g, "depth"))
        return;
    if (depth < 0 || depth > 100000) {
        reply_error(r, 400, VALIDATION, "depth is invalid");
        return;
    }
    uint32_t max = depth == 0 ? 100000 : (uint32_t)depth;
    px_t *px = malloc(2 * max * sizeof(px_t));
    qty_t *sz = malloc(2 * max * sizeof(qty_t));
    if (!px || !sz) {
        free(px);
        free(sz);
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    view_open(r);
    uint32_t ns = cv_levels(r->v, (uint16_t)i, SIDE_SELL, max, px, sz);
    uint32_t nb = cv_levels(r->v, (uint16_t)i, SIDE_BUY, max, px + max, sz + max);
    ms_t now = cv_now(r->v);
    view_close(r);
    const struct engine_instrument *ei = &s->x->engine.instruments[i];
    px_t ftick = l2_formula_tick_px(ei->symbol, ei->tick_px);
    char ts[TF_ISO_BUF];
    tf_format_ms(now, ts, sizeof(ts));
    cJSON *rows = cJSON_CreateArray();
    for (uint32_t k = 0; k < ns + nb; k++) {
        bool sell = k < ns;
        uint32_t at = sell ? ns - 1 - k : max + (k - ns); /* sells high to low, then buys */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "symbol", ei->symbol);
        int64_t id = 0;
        l2_id_from_price(L2_SYMBOL_IDX_BASE + i, px[at], ftick, &id);
        cJSON_AddNumberToObject(o, "id", (double)id);
        cJSON_AddStringToObject(o, "side", name_of(&names_side, sell ? SIDE_SELL : SIDE_BUY));
        cJSON_AddNumberToObject(o, "size", (double)sz[at]);
        cJSON_AddNumberToObject(o, "price", px_num(px[at]));
        cJSON_AddStringToObject(o, "timestamp", ts);
        cJSON_AddItemToArray(rows, o);
    }
    free(px);
    free(sz);
    reply_json(r, 200, rows);
}

/* ---- public: trades and buckets -------------------------------------------------------------- */

static void get_trades(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"timestamp", "symbol", "trdMatchID", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    /* Merge the instruments' trade lists by time (ties by instrument). */
    uint16_t n = s->x->engine.instruments_count;
    const struct trade_rec *tv[INSTRUMENTS_MAX];
    uint32_t tn[INSTRUMENTS_MAX], pos[INSTRUMENTS_MAX];
    for (uint16_t i = 0; i < n; i++) {
        tv[i] = store_trades(cv_store(r->v), i, &tn[i]);
        if (!(mask >> i & 1))
            tn[i] = 0;
        pos[i] = 0;
    }
    for (;;) {
        int best = -1;
        ms_t bt = 0;
        for (uint16_t i = 0; i < n; i++) {
            if (pos[i] >= tn[i])
                continue;
            const struct trade_rec *t = &tv[i][o.reverse ? tn[i] - 1 - pos[i] : pos[i]];
            if (best < 0 || (o.reverse ? t->ts > bt : t->ts < bt)) {
                best = i;
                bt = t->ts;
            }
        }
        if (best < 0)
            break;
        const struct trade_rec *t = &tv[best][o.reverse ? tn[best] - 1 - pos[best] : pos[best]];
        pos[best]++;
        if (!q_time_ok(&o, t->ts))
            continue;
        if (!q_offer(&c, render_trade(s->x, (uint16_t)best, t), t->ts))
            break;
    }
    table_close(r, &c, &o);
}

static void get_bucketed(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"timestamp", "symbol", NULL};
    struct q_spec spec = {.keys = keys};
    const char *bs = str_param(r->params, "binSize");
    unsigned b = 0;
    if (!name_parse(&names_bin_size, bs, &b)) {
        reply_error(r, 400, VALIDATION, "binSize is invalid");
        return;
    }
    bool partial = false;
    if (bad_param(r, prm_bool(r->params, "partial", &partial), "partial"))
        return;
    const char *symbol = str_param(r->params, "symbol");
    int inst = exch_config_find(s->x, symbol);
    if (!symbol || inst < 0) {
        reply_error(r, 400, VALIDATION, symbol ? "Invalid symbol" : "'symbol' is a required arg.");
        return;
    }
    ms_t w = store_bin_ms((enum bin_size)b);
    struct q_opts o;
    struct q_collect c;
    if (!table_open(r, &spec, &o, NULL, &c))
        return;
    uint32_t nb = 0;
    const struct bin_rec *bins = store_bins(cv_store(r->v), (uint16_t)inst, (enum bin_size)b, &nb);
    ms_t now = cv_now(r->v);
    if (nb) {
        ms_t first = bins[0].start_ms;
        ms_t cur = now - now % w; /* the bucket in progress */
        ms_t last = partial ? cur : cur - w;
        /* Timestamps are bucket ends: t_end in [startTime, endTime]. */
        if (o.has_start && o.start_ms - w > first)
            first = ((o.start_ms - w + w - 1) / w) * w;
        if (o.has_end && o.end_ms - w < last)
            last = ((o.end_ms - w) / w) * w;
        if (last >= first) {
            uint64_t count = (uint64_t)((last - first) / w) + 1;
            for (uint64_t k = 0; k < count; k++) {
                ms_t start = o.reverse ? last - (ms_t)k * w : first + (ms_t)k * w;
                cJSON *row = render_bin(s->x, (uint16_t)inst, bins, nb, start, w);
                if (row && !q_offer(&c, row, start + w))
                    break;
            }
        }
    }
    table_close(r, &c, &o);
}

/* ---- public: funding, insurance, liquidation, settlement ---------------------------------------- */

static void get_funding(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"timestamp", "symbol", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    uint32_t n = 0;
    const struct funding_rec *f = store_funding(cv_store(r->v), &n);
    WALK(k, n, o.reverse)
    {
        if (!(mask >> f[k].inst & 1) || !q_time_ok(&o, f[k].ts))
            continue;
        cJSON *row = render_funding(s->x, &f[k]);
        if (!q_offer(&c, row, f[k].ts))
            break;
    }
    table_close(r, &c, &o);
}

static void get_insurance(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"currency", "timestamp", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    if (!table_open(r, &spec, &o, NULL, &c))
        return;
    /* BitMEX's `symbol` here names the fund's currency (XBt, any case);
     * a symbol that is none matches no row. */
    const char *want = str_param(r->params, "symbol");
    int cur = want ? currency_find(s->x, want) : -1;
    uint32_t n = 0;
    const struct insurance_rec *f = store_insurance(cv_store(r->v), &n);
    WALK(k, n, o.reverse)
    {
        if (!q_time_ok(&o, f[k].ts) || (want && f[k].currency != cur))
            continue;
        cJSON *row = render_insurance(s->x, &f[k]);
        if (!q_offer(&c, row, f[k].ts))
            break;
    }
    table_close(r, &c, &o);
}

static void get_liquidations(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"orderID", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    const struct idx_vec *lv = store_liquidations(cv_store(r->v));
    WALK(k, lv->n, o.reverse)
    {
        const struct ord_rec *rec = store_order(cv_store(r->v), lv->v[k]);
        if (!rec || !(mask >> rec->v.inst & 1) || !q_time_ok(&o, rec->created_ms))
            continue;
        cJSON *row = render_liquidation(s->x, rec);
        if (!q_offer(&c, row, rec->created_ms))
            break;
    }
    table_close(r, &c, &o);
}

static void get_settlements(struct req *r)
{
    struct srv *s = r->s;
    static const char *const keys[] = {"timestamp", "symbol", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    uint32_t n = 0;
    const struct settle_rec *f = store_settlements(cv_store(r->v), &n);
    WALK(k, n, o.reverse)
    {
        if (!(mask >> f[k].inst & 1) || !q_time_ok(&o, f[k].ts))
            continue;
        cJSON *row = render_settlement(s->x, &f[k]);
        if (!q_offer(&c, row, f[k].ts))
            break;
    }
    table_close(r, &c, &o);
}

/* ---- public: assets, schema, announcements ------------------------------------------------------- */

static void get_assets(struct req *r)
{
    struct srv *s = r->s;
    cJSON *rows = cJSON_CreateArray();
    for (uint8_t c = 0; c < s->x->currencies_count; c++) {
        const char *cur = s->x->currency[c];
        bool usdt = strcmp(cur, "USDt") == 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "asset", usdt ? "USDT" : "XBT");
        cJSON_AddStringToObject(o, "currency", cur);
        cJSON_AddStringToObject(o, "majorCurrency", usdt ? "USDT" : "XBT");
        cJSON_AddStringToObject(o, "name", usdt ? "Tether" : "Bitcoin");
        cJSON_AddStringToObject(o, "currencyType", "Crypto");
        cJSON_AddNumberToObject(o, "scale", usdt ? 6 : 8);
        cJSON_AddBoolToObject(o, "enabled", true);
        cJSON_AddBoolToObject(o, "isMarginCurrency", true);
        cJSON_AddNumberToObject(o, "minDepositAmount", usdt ? 1000000 : 10000);
        cJSON_AddNumberToObject(o, "minWithdrawalAmount", usdt ? 1000000 : 10000);
        cJSON_AddNumberToObject(o, "maxWithdrawalAmount", 1e15);
        cJSON *nets = cJSON_AddArrayToObject(o, "networks");
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "asset", usdt ? "eth" : "btc");
        cJSON_AddStringToObject(n, "tokenAddress", "");
        cJSON_AddBoolToObject(n, "depositEnabled", true);
        cJSON_AddBoolToObject(n, "withdrawalEnabled", true);
        cJSON_AddNumberToObject(n, "withdrawalFee", 0);
        cJSON_AddNumberToObject(n, "minFee", 0);
        cJSON_AddNumberToObject(n, "maxFee", 0);
        cJSON_AddItemToArray(nets, n);
        cJSON_AddItemToArray(rows, o);
    }
    reply_json(r, 200, rows);
}

static cJSON *str_array(const char *const *v)
{
    cJSON *a = cJSON_CreateArray();
    for (; *v; v++)
        cJSON_AddItemToArray(a, cJSON_CreateString(*v));
    return a;
}

static void get_ws_help(struct req *r)
{
    static const char *const pub[] = {"announcement", "chat", "connected", "funding", "instrument",
                                      "insurance", "liquidation", "orderBookL2_25", "orderBookL2",
                                      "orderBook10", "publicNotifications", "quote", "quoteBin1m",
                                      "quoteBin5m", "quoteBin1h", "quoteBin1d", "settlement", "trade",
                                      "tradeBin1m", "tradeBin5m", "tradeBin1h", "tradeBin1d", NULL};
    static const char *const priv[] = {"privateNotifications", "account", "wallet", "affiliate",
                                       "margin", "position", "transact", "order", "execution", NULL};
    static const char *const ops[] = {"authKey", "authKeyExpires", "cancelAllAfter", "ping",
                                      "subscribe", "unsubscribe", NULL};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "info", "See https://www.bitmex.com/app/wsAPI and https://www.bitmex.com/explorer for more documentation.");
    cJSON_AddStringToObject(o, "usage", "Send a message in the format: {\"op\": string, \"args\": Array<string>}");
    cJSON_AddItemToObject(o, "ops", str_array(ops));
    cJSON_AddStringToObject(o, "subscribe", "To subscribe, send: {\"op\": \"subscribe\", \"args\": [subscriptionTopic, ...]}.");
    cJSON *subj = cJSON_AddObjectToObject(o, "subscriptionSubjects");
    cJSON_AddItemToObject(subj, "authenticationRequired", str_array(priv));
    cJSON_AddItemToObject(subj, "public", str_array(pub));
    reply_json(r, 200, o);
}

/* GET /schema: each model's keys and field types (the WS partial's shape). */
static void get_schema(struct req *r)
{
    static const struct { const char *model; const char *keys[4]; const char *fields[12]; } m[] = {
        {"Order", {"orderID", NULL}, {"orderID:guid", "clOrdID:symbol", "account:long", "symbol:symbol", "side:symbol", "orderQty:long", "price:float", "ordStatus:symbol", "leavesQty:long", "cumQty:long", "timestamp:timestamp", NULL}},
        {"Execution", {"execID", NULL}, {"execID:guid", "orderID:guid", "symbol:symbol", "execType:symbol", "lastQty:long", "lastPx:float", "execCost:long", "execComm:long", "timestamp:timestamp", NULL}},
        {"Position", {"account", "symbol", NULL}, {"account:long", "symbol:symbol", "currentQty:long", "avgEntryPrice:float", "markPrice:float", "liquidationPrice:float", "unrealisedPnl:long", "timestamp:timestamp", NULL}},
        {"Margin", {"account", "currency", NULL}, {"account:long", "currency:symbol", "walletBalance:long", "marginBalance:long", "availableMargin:long", "timestamp:timestamp", NULL}},
        {"Trade", {"timestamp", "symbol", NULL}, {"timestamp:timestamp", "symbol:symbol", "side:symbol", "size:long", "price:float", "trdMatchID:guid", NULL}},
        {"OrderBookL2", {"symbol", "id", "side", NULL}, {"symbol:symbol", "id:long", "side:symbol", "size:long", "price:float", "timestamp:timestamp", NULL}},
        {"Instrument", {"symbol", NULL}, {"symbol:symbol", "state:symbol", "typ:symbol", "tickSize:float", "lotSize:long", "markPrice:float", "fundingRate:float", "timestamp:timestamp", NULL}},
        {"Funding", {"timestamp", "symbol", NULL}, {"timestamp:timestamp", "symbol:symbol", "fundingRate:float", "fundingRateDaily:float", NULL}},
    };
    const char *want = str_param(r->params, "model");
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        if (want && strcmp(want, m[i].model) != 0)
            continue;
        cJSON *mo = cJSON_AddObjectToObject(o, m[i].model);
        cJSON_AddItemToObject(mo, "keys", str_array(m[i].keys));
        cJSON *types = cJSON_AddObjectToObject(mo, "types");
        for (int k = 0; m[i].fields[k]; k++) {
            char name[64];
            const char *colon = strchr(m[i].fields[k], ':');
            snprintf(name, sizeof(name), "%.*s", (int)(colon - m[i].fields[k]), m[i].fields[k]);
            cJSON_AddStringToObject(types, name, colon + 1);
        }
    }
    reply_json(r, 200, o);
}

/* ---- private reads ---------------------------------------------------------------------------------- */

static void get_orders(struct req *r)
{
    struct srv *s = r->s;
    if (!need_auth(r))
        return;
    static const char *const keys[] = {"orderID", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    const struct idx_vec *ov = store_account_orders(cv_store(r->v), r->key.account);
    WALK(k, ov->n, o.reverse)
    {
        const struct ord_rec *rec = store_order(cv_store(r->v), ov->v[k]);
        if (!rec || !(mask >> rec->v.inst & 1) || !q_time_ok(&o, rec->updated_ms))
            continue;
        if (!q_offer(&c, render_order(s->x, rec), rec->updated_ms))
            break;
    }
    table_close(r, &c, &o);
}

static void get_executions(struct req *r, bool trades_only)
{
    if (!need_auth(r))
        return;
    static const char *const keys[] = {"execID", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    const struct idx_vec *ev = store_account_execs(cv_store(r->v), r->key.account);
    WALK(k, ev->n, o.reverse)
    {
        const struct exe_rec *e = store_exec(cv_store(r->v), ev->v[k]);
        if (!(mask >> e->v.inst & 1) || !q_time_ok(&o, e->ts))
            continue;
        if (trades_only && !(e->type == EX_TRADE || e->type == EX_FUNDING ||
                             e->type == EX_SETTLEMENT || e->type == EX_LIQUIDATION ||
                             e->type == EX_BANKRUPTCY))
            continue;
        if (!q_offer(&c, render_exec(r->v, e), e->ts))
            break;
    }
    table_close(r, &c, &o);
}

static void get_positions(struct req *r)
{
    struct srv *s = r->s;
    if (!need_auth(r))
        return;
    static const char *const keys[] = {"account", "symbol", "currency", NULL};
    struct q_spec spec = {.keys = keys};
    struct q_opts o;
    struct q_collect c;
    uint64_t mask;
    if (!table_open(r, &spec, &o, &mask, &c))
        return;
    uint64_t has = store_account_insts(cv_store(r->v), r->key.account);
    uint16_t n = s->x->engine.instruments_count;
    WALK(i, n, o.reverse)
    {
        struct exch_position p;
        if (!(mask >> i & 1) || cv_position(r->v, r->key.account, (uint16_t)i, &p) != 0)
            continue;
        if (!(has >> i & 1) && !p.qty && !p.leverage_e8)
            continue;
        if (!q_offer(&c, render_position(s->x, r->key.account, (uint16_t)i, &p,
                                          p.qty ? cv_adl(r->v, r->key.account, (uint16_t)i) : -1,
                                          cv_now(r->v)), cv_now(r->v)))
            break;
    }
    table_close(r, &c, &o);
}

/* `currency` parameter: default XBt; "all" = every currency (an array). */
static bool currency_param(struct req *r, int *cur, bool *all)
{
    const char *c = str_param(r->params, "currency");
    *all = c && strcasecmp(c, "all") == 0;
    *cur = 0;
    if (c && !*all) {
        *cur = currency_find(r->s->x, c);
        if (*cur < 0) {
            reply_error(r, 400, VALIDATION, "Invalid currency");
            return false;
        }
    }
    return true;
}

static void get_margin(struct req *r, bool wallet)
{
    struct srv *s = r->s;
    int cur;
    bool all;
    if (!need_auth(r) || !currency_param(r, &cur, &all))
        return;
    cJSON *rows = all ? cJSON_CreateArray() : NULL, *one = NULL;
    view_open(r);
    for (uint8_t c = 0; c < s->x->currencies_count; c++) {
        if (!all && c != cur)
            continue;
        struct exch_margin m;
        cv_margin(r->v, r->key.account, c, &m);
        cJSON *o = wallet ? render_wallet(s->x, r->key.account, c, &m, cv_now(r->v))
                          : render_margin(s->x, r->key.account, c, &m, cv_now(r->v));
        if (all)
            cJSON_AddItemToArray(rows, o);
        else
            one = o;
    }
    view_close(r);
    reply_json(r, 200, all ? rows : one);
}

static void get_wallet_history(struct req *r)
{
    struct srv *s = r->s;
    int cur;
    bool all;
    if (!need_auth(r) || !currency_param(r, &cur, &all))
        return;
    static const char *const keys[] = {"transactID", NULL};
    struct q_spec spec = {.count_default = 10000, .count_max = 10000, .reverse_default = true, .keys = keys};
    struct q_opts o;
    struct q_collect c;
    if (!table_open(r, &spec, &o, NULL, &c))
        return;
    const struct idx_vec *wv = store_account_wallet(cv_store(r->v), r->key.account);
    WALK(k, wv->n, o.reverse)
    {
        const struct wallet_rec *w = store_wallet(cv_store(r->v), wv->v[k]);
        if ((!all && w->currency != cur) || w->kind == MK_INSURANCE || !q_time_ok(&o, w->ts))
            continue;
        if (!q_offer(&c, render_transact(s->x, w), w->ts))
            break;
    }
    table_close(r, &c, &o);
}

static void get_wallet_summary(struct req *r)
{
    struct srv *s = r->s;
    int cur;
    bool all;
    if (!need_auth(r) || !currency_param(r, &cur, &all))
        return;
    struct q_spec spec = {0};
    struct q_opts o;
    if (!parse_query(r, &spec, &o, NULL))
        return;
    cJSON *rows = cJSON_CreateArray();
    view_open(r);
    const struct idx_vec *wv = store_account_wallet(cv_store(r->v), r->key.account);
    for (uint8_t c = 0; c < s->x->currencies_count; c++) {
        if (!all && c != cur)
            continue;
        sats_t sum[MK_TRANSFER + 1] = {0};
        for (uint32_t k = 0; k < wv->n; k++) {
            const struct wallet_rec *w = store_wallet(cv_store(r->v), wv->v[k]);
            if (w->currency == c && w->kind <= MK_TRANSFER && q_time_ok(&o, w->ts))
                sum[w->kind] += w->amount;
        }
        struct exch_margin m;
        cv_margin(r->v, r->key.account, c, &m);
        sats_t other = 0;
        static const uint8_t kinds[] = {MK_DEPOSIT, MK_WITHDRAWAL, MK_TRANSFER};
        for (size_t k = 0; k < sizeof(kinds); k++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "account", r->key.account);
            cJSON_AddStringToObject(row, "currency", s->x->currency[c]);
            cJSON_AddStringToObject(row, "transactType", name_of(&names_money_kind, kinds[k]));
            cJSON_AddStringToObject(row, "symbol", "");
            cJSON_AddNumberToObject(row, "amount", (double)sum[kinds[k]]);
            cJSON_AddNumberToObject(row, "pendingDebit", 0);
            cJSON_AddNumberToObject(row, "realisedPnl", 0);
            cJSON_AddNumberToObject(row, "walletBalance", (double)sum[kinds[k]]);
            cJSON_AddNumberToObject(row, "unrealisedPnl", 0);
            cJSON_AddNumberToObject(row, "marginBalance", (double)sum[kinds[k]]);
            cJSON_AddItemToArray(rows, row);
            if (kinds[k] != MK_TRANSFER)
                other += sum[kinds[k]];
        }
        /* Everything else that moved the wallet: trading PnL, fees, funding. */
        sats_t pnl = m.wallet - other;
        const char *names[] = {"RealisedPNL", "UnrealisedPNL", "Total"};
        sats_t amounts[] = {pnl, m.unrealised_pnl, m.wallet};
        for (int k = 0; k < 3; k++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "account", r->key.account);
            cJSON_AddStringToObject(row, "currency", s->x->currency[c]);
            cJSON_AddStringToObject(row, "transactType", names[k]);
            cJSON_AddStringToObject(row, "symbol", "");
            cJSON_AddNumberToObject(row, "amount", (double)amounts[k]);
            cJSON_AddNumberToObject(row, "pendingDebit", 0);
            cJSON_AddNumberToObject(row, "realisedPnl", k == 0 ? (double)pnl : 0);
            cJSON_AddNumberToObject(row, "walletBalance", k == 2 ? (double)m.wallet : (double)amounts[k]);
            cJSON_AddNumberToObject(row, "unrealisedPnl", k == 1 || k == 2 ? (double)m.unrealised_pnl : 0);
            cJSON_AddNumberToObject(row, "marginBalance", k == 2 ? (double)m.margin_balance : (double)amounts[k]);
            cJSON_AddItemToArray(rows, row);
        }
    }
    view_close(r);
    q_free(&o);
    reply_json(r, 200, rows);
}

/* A key's "permissions" array: the names of its bits, in table order. */
static void add_permissions(cJSON *o, uint32_t perms)
{
    cJSON *a = cJSON_AddArrayToObject(o, "permissions");
    for (size_t i = 0; i < names_permission.count; i++)
        if (perms & names_permission.entries[i].value)
            cJSON_AddItemToArray(a, cJSON_CreateString(names_permission.entries[i].name));
}

static void get_api_keys(struct req *r)
{
    if (!need_auth(r))
        return;
    struct key_rec keys[64];
    int n = core_keys_list(r->s->core, r->key.account, keys, 64);
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", keys[i].id); /* never the secret */
        cJSON_AddStringToObject(o, "name", "perpsim");
        cJSON_AddNumberToObject(o, "nonce", 0);
        cJSON_AddStringToObject(o, "cidr", keys[i].ncidr ? "" : "0.0.0.0/0");
        cJSON *cidrs = cJSON_AddArrayToObject(o, "cidrs");
        for (int k = 0; k < keys[i].ncidr; k++) {
            char b[32];
            uint32_t a = keys[i].cidr_addr[k];
            snprintf(b, sizeof(b), "%u.%u.%u.%u/%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255,
                     keys[i].cidr_bits[k]);
            cJSON_AddItemToArray(cidrs, cJSON_CreateString(b));
        }
        add_permissions(o, keys[i].perms);
        cJSON_AddBoolToObject(o, "enabled", keys[i].enabled);
        cJSON_AddNumberToObject(o, "userId", keys[i].account);
        add_time(o, "created", keys[i].created_ms);
        cJSON_AddItemToArray(rows, o);
    }
    reply_json(r, 200, rows);
}

static void get_user(struct req *r)
{
    if (!need_auth(r))
        return;
    cJSON *o = cJSON_CreateObject();
    char name[32];
    snprintf(name, sizeof(name), "trader%u", r->key.account);
    cJSON_AddNumberToObject(o, "id", r->key.account);
    cJSON_AddStringToObject(o, "username", name);
    cJSON_AddStringToObject(o, "accountName", name);
    cJSON_AddBoolToObject(o, "isUser", true);
    cJSON_AddStringToObject(o, "email", "");
    add_time(o, "created", r->key.created_ms);
    cJSON_AddBoolToObject(o, "TFAEnabled", false);
    cJSON_AddStringToObject(o, "typ", "Testnet");
    reply_json(r, 200, o);
}

static void get_commission(struct req *r)
{
    struct srv *s = r->s;
    if (!need_auth(r))
        return;
    cJSON *o = cJSON_CreateObject();
    for (uint16_t i = 0; i < s->x->engine.instruments_count; i++) {
        cJSON *f = cJSON_AddObjectToObject(o, sym(s->x, i));
        const struct exch_instrument *in = &s->x->inst[i];
        cJSON_AddNumberToObject(f, "makerFee", (double)in->maker_fee_e8 / (double)MF_RATE_SCALE);
        cJSON_AddNumberToObject(f, "takerFee", (double)in->taker_fee_e8 / (double)MF_RATE_SCALE);
        cJSON_AddNumberToObject(f, "settlementFee", (double)in->settle_fee_e8 / (double)MF_RATE_SCALE);
        cJSON_AddNumberToObject(f, "maxFee", (double)in->taker_fee_e8 / (double)MF_RATE_SCALE);
    }
    reply_json(r, 200, o);
}

/* ---- orders: parsing --------------------------------------------------------------------------------- */

/* An enumerated string parameter; false when the reply is set. */
static bool enum_param(struct req *r, const cJSON *p, const char *name, const struct name_table *t,
                       const char *bad, unsigned *out)
{
    const char *v = NULL;
    enum prm_get g = prm_str(p, name, &v);
    if (g == PRM_ABSENT || (g == PRM_FOUND && !*v))
        return true;
    if (g != PRM_FOUND || !name_parse(t, v, out)) {
        reply_error(r, 400, VALIDATION, "%s", bad);
        return false;
    }
    return true;
}

static bool text_param(struct req *r, const cJSON *p, const char *name, char *out, size_t cap,
                       const char *bad)
{
    const char *v = NULL;
    enum prm_get g = prm_str(p, name, &v);
    out[0] = 0;
    if (g == PRM_ABSENT)
        return true;
    if (g != PRM_FOUND || strlen(v) >= cap || !json_utf8_valid(v, strlen(v))) {
        reply_error(r, 400, VALIDATION, "%s", bad);
        return false;
    }
    memcpy(out, v, strlen(v) + 1);
    return true;
}

/* A price (or offset) parameter; sets `bit` in *has when given. */
static bool px_param(struct req *r, const cJSON *p, const char *name, px_t *out, uint32_t *has,
                     uint32_t bit, bool allow_negative)
{
    int64_t v = 0;
    enum prm_get g = prm_fixed(p, name, 8, &v);
    if (g == PRM_FOUND)
        *has |= bit;
    if (g == PRM_ABSENT)
        return true;
    if (g != PRM_FOUND || (!allow_negative && v <= 0)) {
        reply_error(r, 400, VALIDATION, "Invalid %s", name);
        return false;
    }
    *out = v;
    return true;
}

/* A quantity parameter; sets `bit` in *has when given. */
static bool qty_param(struct req *r, const cJSON *p, const char *name, qty_t *out, uint32_t *has,
                      uint32_t bit)
{
    int64_t v = 0;
    enum prm_get g = prm_int(p, name, &v);
    if (g == PRM_FOUND)
        *has |= bit;
    if (g == PRM_ABSENT)
        return true;
    if (g != PRM_FOUND || v == INT64_MIN) { /* no quantity negates out of range */
        reply_error(r, 400, VALIDATION, "Invalid %s", name);
        return false;
    }
    *out = v;
    return true;
}

static bool symbol_param(struct req *r, const cJSON *p, uint16_t *inst)
{
    const char *y = str_param(p, "symbol");
    if (!y) {
        reply_error(r, 400, VALIDATION, "'symbol' is a required arg.");
        return false;
    }
    int i = exch_config_find(r->s->x, y);
    if (i < 0) {
        reply_error(r, 400, VALIDATION, "Invalid symbol");
        return false;
    }
    *inst = (uint16_t)i;
    return true;
}

static const char *const order_fields[] = {
    "symbol", "side", "orderQty", "price", "displayQty", "stopPx", "clOrdID", "clOrdLinkID",
    "pegOffsetValue", "pegPriceType", "ordType", "timeInForce", "execInst", "contingencyType",
    "text", "simpleOrderQty", NULL};

/* One new order from p into c (account set by the caller); *text gets a
 * malloc'd copy of `text` or NULL. false when the 400 reply is set. */
static bool parse_new(struct req *r, const cJSON *p, struct cmd *c, char **text)
{
    struct cmd_new_order *n = &c->u.new_order;
    *text = NULL;
    if (!only_known(r, p, order_fields))
        return false;
    if (cJSON_GetObjectItemCaseSensitive(p, "simpleOrderQty") &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "simpleOrderQty"))) {
        reply_error(r, 400, VALIDATION, "simpleOrderQty is deprecated, use orderQty");
        return false;
    }
    c->type = CMD_NEW_ORDER;
    if (!symbol_param(r, p, &c->inst))
        return false;
    const cJSON *side_v = cJSON_GetObjectItemCaseSensitive(p, "side");
    if (side_v && !cJSON_IsString(side_v) && !cJSON_IsNull(side_v)) {
        reply_error(r, 400, VALIDATION, "Invalid side");
        return false;
    }
    const char *side = str_param(p, "side");
    if (side && *side) {
        unsigned sd = 0;
        if (!name_parse(&names_side, side, &sd)) {
            reply_error(r, 400, VALIDATION, "Invalid side");
            return false;
        }
        n->side = (uint8_t)sd;
    }
    if (!qty_param(r, p, "orderQty", &n->qty, &n->has, HAS_QTY) ||
        !qty_param(r, p, "displayQty", &n->display_qty, &n->has, HAS_DISPLAY_QTY) ||
        !px_param(r, p, "price", &n->price, &n->has, HAS_PRICE, false) ||
        !px_param(r, p, "stopPx", &n->stop_px, &n->has, HAS_STOP_PX, false) ||
        !px_param(r, p, "pegOffsetValue", &n->peg_offset_px, &n->has, HAS_PEG_OFFSET, true))
        return false;
    unsigned v = 0;
    if (!enum_param(r, p, "ordType", &names_ord_type, "Unsupported ordType", &v))
        return false;
    n->ord_type = (uint8_t)v;
    v = 0;
    if (!enum_param(r, p, "timeInForce", &names_tif, "Unsupported timeInForce", &v))
        return false;
    n->tif = (uint8_t)v;
    v = 0;
    if (!enum_param(r, p, "pegPriceType", &names_peg, "Unsupported pegPriceType", &v))
        return false;
    n->peg_type = (uint8_t)v;
    v = 0;
    if (!enum_param(r, p, "contingencyType", &names_contingency, "Unsupported contingencyType", &v))
        return false;
    n->contingency = (uint8_t)v;
    const char *ei = str_param(p, "execInst");
    if (ei && *ei) {
        unsigned bits = 0;
        if (!name_parse_set(&names_exec_inst, ei, &bits)) {
            reply_error(r, 400, VALIDATION, "Unsupported execInst");
            return false;
        }
        n->exec_inst |= (uint16_t)bits;
    } else if (cJSON_GetObjectItemCaseSensitive(p, "execInst") &&
               !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "execInst")) &&
               !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "execInst"))) {
        reply_error(r, 400, VALIDATION, "Invalid execInst");
        return false;
    }
    if (!text_param(r, p, "clOrdID", n->clordid, sizeof(n->clordid), "Invalid clOrdID") ||
        !text_param(r, p, "clOrdLinkID", n->clordlinkid, sizeof(n->clordlinkid), "Invalid clOrdLinkID"))
        return false;
    char t[TEXT_LEN_MAX + 1];
    if (!text_param(r, p, "text", t, sizeof(t), "Invalid text"))
        return false;
    if (t[0] && !(*text = strdup(t))) {
        reply_error(r, 500, HTTP, "Server Error");
        return false;
    }
    return true;
}

/* An order id or clOrdID of the caller's account -> the order; 404 reply
 * when it is unknown or another account's. */
static bool resolve_order(struct req *r, const char *order_id, const char *clordid, uint64_t *id)
{
    *id = 0;
    view_open(r);
    if (order_id) {
        uint64_t k;
        const struct ord_rec *rec = id_parse(order_id, ID_ORDER, &k) ? store_order(cv_store(r->v), k) : NULL;
        if (rec && rec->v.account == r->key.account)
            *id = k;
    } else if (clordid) {
        *id = store_find_clordid(cv_store(r->v), r->key.account, clordid);
    }
    view_close(r);
    if (!*id) {
        reply_error(r, 404, HTTP, "Not Found");
        return false;
    }
    return true;
}

static const char *const amend_fields[] = {"orderID", "origClOrdID", "clOrdID", "orderQty",
                                           "leavesQty", "price", "stopPx", "pegOffsetValue", "text",
                                           "simpleOrderQty", "simpleLeavesQty", NULL};

static bool parse_amend(struct req *r, const cJSON *p, struct cmd *c, uint64_t *target)
{
    struct cmd_amend *a = &c->u.amend;
    if (!only_known(r, p, amend_fields))
        return false;
    c->type = CMD_AMEND;
    const char *oid = str_param(p, "orderID"), *orig = str_param(p, "origClOrdID");
    if (!oid && !orig) {
        reply_error(r, 400, VALIDATION, "Must specify either orderID or origClOrdID");
        return false;
    }
    if (!resolve_order(r, oid, orig, target))
        return false;
    a->ref.order_id = *target;
    if (!qty_param(r, p, "orderQty", &a->qty, &a->has, AMD_QTY) ||
        !qty_param(r, p, "leavesQty", &a->leaves, &a->has, AMD_LEAVES) ||
        !px_param(r, p, "price", &a->price, &a->has, AMD_PRICE, false) ||
        !px_param(r, p, "stopPx", &a->stop_px, &a->has, AMD_STOP_PX, false) ||
        !px_param(r, p, "pegOffsetValue", &a->peg_offset_px, &a->has, AMD_PEG_OFFSET, true))
        return false;
    if (orig && str_param(p, "clOrdID")) {
        if (!text_param(r, p, "clOrdID", a->new_clordid, sizeof(a->new_clordid), "Invalid clOrdID"))
            return false;
        a->has |= AMD_NEW_CLORDID;
    }
    return true;
}

/* BitMEX refuses a clOrdID the account has used before, live or not. */
static bool clordid_free(struct req *r, const char *clordid)
{
    if (!*clordid)
        return true;
    view_open(r);
    uint64_t id = store_find_clordid(cv_store(r->v), r->key.account, clordid);
    view_close(r);
    if (id) {
        reply_error(r, 400, VALIDATION, "Duplicate clOrdID");
        return false;
    }
    return true;
}

/* ---- orders: replies ------------------------------------------------------------------------------------ */

static void reject_reply(struct req *r, const struct cmd *c, enum reject rej)
{
    int status;
    const char *msg = reject_message(rej, &status);
    if (rej == REJ_INSUFFICIENT_BALANCE && c->type == CMD_NEW_ORDER) {
        const struct exch_instrument *in = &r->s->x->inst[c->inst];
        sats_t v = 0, need = 0;
        qty_t q = c->u.new_order.qty < 0 ? -c->u.new_order.qty : c->u.new_order.qty;
        px_t px = c->u.new_order.price;
        if (!px) {
            struct exch_instrument_state st;
            view_open(r);
            cv_instrument(r->v, c->inst, &st);
            view_close(r);
            px = st.mark_px;
        }
        if (px > 0 && mf_value(&in->contract, q, px, &v) == MF_OK)
            mf_margin_req(v < 0 ? -v : v, in->im_e8 + 2 * in->taker_fee_e8, &need);
        reply_error(r, 400, VALIDATION, "%s, %" PRId64 " %s required", msg, need,
                    r->s->x->currency[in->currency]);
        return;
    }
    reply_error(r, status, status == 400 ? VALIDATION : HTTP, "%s", msg);
}

static cJSON *rejected_row(struct req *r, const struct cmd *c, enum reject rej)
{
    struct ord_rec rec;
    memset(&rec, 0, sizeof(rec));
    rec.v.account = c->account;
    rec.v.inst = c->inst;
    rec.v.side = c->u.new_order.side ? c->u.new_order.side : (c->u.new_order.qty < 0 ? SIDE_SELL : SIDE_BUY);
    rec.v.qty = c->u.new_order.qty < 0 ? -c->u.new_order.qty : c->u.new_order.qty;
    rec.v.price = c->u.new_order.price;
    rec.v.ord_type = c->u.new_order.ord_type;
    rec.v.status = ST_REJECTED;
    rec.v.display_qty = -1;
    memcpy(rec.clordid, c->u.new_order.clordid, sizeof(rec.clordid));
    rec.updated_ms = r->job ? r->job->ts : 0;
    cJSON *o = render_order(r->s->x, &rec);
    int status;
    const char *msg = reject_message(rej, &status);
    cJSON_ReplaceItemInObject(o, "ordRejReason", cJSON_CreateString(msg));
    cJSON_AddStringToObject(o, "error", msg);
    return o;
}

static void finish_one(struct req *r)
{
    struct core_job *j = r->job;
    /* A refused order is an error (BitMEX's 400), though history keeps it
     * Rejected (store.h); one the engine took and then ended (post-only,
     * say) is its row. */
    if (j->rej[0] != REJ_NONE &&
        !(j->cmds[0].type == CMD_NEW_ORDER && j->rows[0].v.id && j->rows[0].v.status != ST_REJECTED)) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    reply_json(r, 200, render_order(r->s->x, &j->rows[0]));
}

static void finish_list(struct req *r)
{
    struct core_job *j = r->job;
    cJSON *rows = cJSON_CreateArray();
    for (uint32_t i = 0; i < j->n; i++) {
        const struct cmd *c = &j->cmds[i];
        if (j->rows[i].v.id) {
            cJSON *o = render_order(r->s->x, &j->rows[i]);
            if (j->rej[i] != REJ_NONE && c->type == CMD_CANCEL) {
                char msg[128];
                snprintf(msg, sizeof(msg), "Unable to cancel order due to existing state: %s",
                         cJSON_GetObjectItem(o, "ordStatus")->valuestring);
                cJSON_AddStringToObject(o, "error", msg);
            } else if (j->rej[i] != REJ_NONE) {
                int st;
                cJSON_AddStringToObject(o, "error", reject_message(j->rej[i], &st));
            }
            cJSON_AddItemToArray(rows, o);
        } else {
            cJSON_AddItemToArray(rows, rejected_row(r, c, j->rej[i]));
        }
    }
    reply_json(r, 200, rows);
}

static void finish_cancel_all(struct req *r)
{
    struct core_job *j = r->job;
    cJSON *rows = cJSON_CreateArray();
    for (uint32_t i = 0; i < j->nrows; i++)
        cJSON_AddItemToArray(rows, render_order(r->s->x, &j->rows[i]));
    reply_json(r, 200, rows);
}

/* ---- orders: endpoints ----------------------------------------------------------------------------------- */

static void post_order(struct req *r)
{
    if (!need_perm(r, PERM_ORDER))
        return;
    struct core_job *j = core_job_new(J_ORDERS, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].account = r->key.account;
    if (!parse_new(r, r->params, &j->cmds[0], &j->texts[0]) ||
        !clordid_free(r, j->cmds[0].u.new_order.clordid) ||
        !rate_limit(r, rl_cost_single(), true, false, false)) {
        core_job_free(j);
        return;
    }
    /* A Close without a quantity is the exempt close-position order. */
    const struct cmd_new_order *n = &j->cmds[0].u.new_order;
    bool exempt = (n->exec_inst & EXEC_CLOSE) && !(n->has & HAS_QTY);
    r->charge_tenths = rl_cost_single(); /* charged only if the queue admits it */
    submit_job(r, j, LS_KIND_NEW_ORDER, exempt, finish_one);
}

static void put_order(struct req *r)
{
    if (!need_perm(r, PERM_ORDER))
        return;
    struct core_job *j = core_job_new(J_ORDERS, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].account = r->key.account;
    if (!parse_amend(r, r->params, &j->cmds[0], &j->target[0]) ||
        !rate_limit(r, rl_cost_single(), true, false, false)) {
        core_job_free(j);
        return;
    }
    char t[TEXT_LEN_MAX + 1];
    if (text_param(r, r->params, "text", t, sizeof(t), "Invalid text") && t[0])
        j->texts[0] = strdup(t);
    r->charge_tenths = rl_cost_single(); /* charged only if the queue admits it */
    submit_job(r, j, LS_KIND_AMEND, false, finish_one);
}

/* orderID / clOrdID: a string, a JSON array of strings, or a
 * comma-separated list. Returns how many ids were written (max cap), -1
 * with the reply set on bad input. */
static int id_list(struct req *r, const char *name, char ids[][64], int cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(r->params, name);
    if (!it || cJSON_IsNull(it))
        return 0;
    int n = 0;
    cJSON *parsed = NULL;
    if (cJSON_IsString(it) && it->valuestring[0] == '[') {
        parsed = cJSON_Parse(it->valuestring);
        if (parsed)
            it = parsed;
    }
    if (cJSON_IsArray(it)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, it)
        {
            if (!cJSON_IsString(e) || n >= cap || strlen(e->valuestring) >= 64) {
                cJSON_Delete(parsed);
                reply_error(r, 400, VALIDATION, "Invalid %s", name);
                return -1;
            }
            snprintf(ids[n++], 64, "%s", e->valuestring);
        }
    } else if (cJSON_IsString(it)) {
        char buf[8192];
        snprintf(buf, sizeof(buf), "%s", it->valuestring);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n >= cap || strlen(t) >= 64) {
                reply_error(r, 400, VALIDATION, "Invalid %s", name);
                return -1;
            }
            snprintf(ids[n++], 64, "%s", t);
        }
    } else {
        reply_error(r, 400, VALIDATION, "Invalid %s", name);
        return -1;
    }
    cJSON_Delete(parsed);
    return n;
}

/* When every order of the cancel job j is closed (filled, canceled,
 * rejected): the reply finish_list would give, from the read model, and
 * true. False (nothing sent) when any is open. */
static bool reply_closed_cancels(struct req *r, struct core_job *j)
{
    view_open(r);
    const struct store *st = cv_store(r->v);
    bool open = false;
    for (uint32_t i = 0; i < j->n && !open; i++) {
        const struct ord_rec *o = store_order(st, j->target[i]);
        open = !o || o->v.status == ST_NEW || o->v.status == ST_PARTIALLY_FILLED;
    }
    if (!open)
        for (uint32_t i = 0; i < j->n; i++) {
            j->rows[i] = *store_order(st, j->target[i]);
            j->rej[i] = REJ_ORDER_TERMINAL;
        }
    view_close(r);
    if (open)
        return false;
    r->job = j;
    finish_list(r);
    r->job = NULL;
    return true;
}

static void delete_order(struct req *r)
{
    if (!need_perm(r, PERM_ORDER | PERM_CANCEL))
        return;
    static const char *const known[] = {"orderID", "clOrdID", "text", NULL};
    if (!only_known(r, r->params, known))
        return;
    char (*oid)[64] = malloc(sizeof(char[BULK_MAX][64])), (*cid)[64] = malloc(sizeof(char[BULK_MAX][64]));
    int no = oid && cid ? id_list(r, "orderID", oid, BULK_MAX) : -1;
    int nc = no >= 0 ? id_list(r, "clOrdID", cid, BULK_MAX) : -1;
    struct core_job *j = NULL;
    if (no < 0 || nc < 0)
        goto out;
    if (no + nc == 0) {
        reply_error(r, 400, VALIDATION, "Must specify either orderID or clOrdID");
        goto out;
    }
    j = core_job_new(J_ORDERS, r->key.account, (uint32_t)(no + nc));
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        goto out;
    }
    for (int i = 0; i < no + nc; i++) {
        struct cmd *c = &j->cmds[i];
        c->type = CMD_CANCEL;
        c->account = r->key.account;
        if (!resolve_order(r, i < no ? oid[i] : NULL, i < no ? NULL : cid[i - no], &j->target[i]))
            goto out;
        c->u.cancel.order_id = j->target[i];
    }
    rate_limit(r, rl_cost_single(), true, true, true); /* cancels: counted, never refused */
    /* Fairness: cancels are never refused (BitMEX's rule), so a cancel of
     * an order that is closed already is answered from the read model, as
     * the engine would answer it, without a command: a flood of them takes
     * no engine time from anyone. A request with any open order goes to
     * the engine whole (an open order takes a rate-limited placement). */
    if (reply_closed_cancels(r, j))
        goto out;
    submit_job(r, j, LS_KIND_CANCEL, true, finish_list);
    j = NULL;
out:
    core_job_free(j);
    free(oid);
    free(cid);
}

static void delete_all(struct req *r)
{
    struct srv *s = r->s;
    if (!need_perm(r, PERM_ORDER | PERM_CANCEL))
        return;
    static const char *const known[] = {"symbol", "filter", "text", "targetAccountIds", NULL};
    if (!only_known(r, r->params, known))
        return;
    uint16_t inst = INST_ALL;
    const cJSON *yv = cJSON_GetObjectItemCaseSensitive(r->params, "symbol");
    if (yv && !cJSON_IsNull(yv)) {
        int i = cJSON_IsString(yv) ? exch_config_find(s->x, yv->valuestring) : -1;
        if (i < 0) {
            reply_error(r, 400, VALIDATION, "Invalid symbol");
            return;
        }
        inst = (uint16_t)i;
    }
    uint8_t side = SIDE_NONE;
    cJSON *f = NULL;
    enum prm_get g = prm_json(r->params, "filter", &f);
    if (g == PRM_BAD_TYPE || g == PRM_BAD_VALUE || (f && !cJSON_IsObject(f))) {
        cJSON_Delete(f);
        reply_error(r, 400, VALIDATION, "filter values are not valid");
        return;
    }
    /* The filter is applied exactly or refused: never widened to "all".
     * Cancel-all takes side ("Buy", "Sell") and symbol; anything else is
     * refused rather than ignored. */
    const cJSON *it;
    const char *bad = NULL;
    cJSON_ArrayForEach(it, f)
    {
        if (strcmp(it->string, "side") == 0) {
            unsigned sd = SIDE_NONE;
            if (!cJSON_IsString(it) || (strcmp(it->valuestring, "Buy") != 0 && strcmp(it->valuestring, "Sell") != 0) ||
                !name_parse(&names_side, it->valuestring, &sd)) {
                bad = "filter side must be \"Buy\" or \"Sell\"";
                break;
            }
            side = (uint8_t)sd;
        } else if (strcmp(it->string, "symbol") == 0) {
            int i = cJSON_IsString(it) ? exch_config_find(s->x, it->valuestring) : -1;
            if (i < 0 || (inst != INST_ALL && inst != (uint16_t)i)) {
                bad = i < 0 ? "filter symbol is not a symbol" : "filter symbol differs from symbol";
                break;
            }
            inst = (uint16_t)i;
        } else {
            bad = "cancel-all filters on side and symbol only";
            break;
        }
    }
    cJSON_Delete(f);
    if (bad) {
        reply_error(r, 400, VALIDATION, "Invalid filter: %s", bad);
        return;
    }
    struct core_job *j = core_job_new(J_CANCEL_ALL, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].type = CMD_CANCEL_ALL;
    j->cmds[0].inst = inst;
    j->cmds[0].u.cancel_all.inst = inst;
    j->cmds[0].u.cancel_all.side = side;
    rate_limit(r, rl_cost_single(), true, true, true);
    submit_job(r, j, LS_KIND_CANCEL_ALL, true, finish_cancel_all);
}

static void finish_cancel_after(struct req *r)
{
    struct core_job *j = r->job;
    if (j->rej[0] != REJ_NONE) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    add_time(o, "now", j->ts);
    if (j->cmds[0].u.cancel_after_ms > 0)
        add_time(o, "cancelTime", j->ts + j->cmds[0].u.cancel_after_ms);
    else
        cJSON_AddNumberToObject(o, "cancelTime", 0);
    reply_json(r, 200, o);
}

static void post_cancel_after(struct req *r)
{
    if (!need_perm(r, PERM_ORDER | PERM_CANCEL))
        return;
    static const char *const known[] = {"timeout", NULL};
    if (!only_known(r, r->params, known))
        return;
    int64_t t = 0;
    enum prm_get g = prm_int(r->params, "timeout", &t);
    if (g != PRM_FOUND || t < 0) {
        reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'timeout' is a required arg." : "Invalid timeout");
        return;
    }
    struct core_job *j = core_job_new(J_CANCEL_AFTER, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].type = CMD_CANCEL_ALL_AFTER;
    j->cmds[0].u.cancel_after_ms = t;
    rate_limit(r, rl_cost_single(), true, true, true);
    submit_job(r, j, LS_KIND_CANCEL_AFTER, true, finish_cancel_after);
}

static void bulk(struct req *r, bool amend)
{
    if (!need_perm(r, PERM_ORDER))
        return;
    static const char *const known[] = {"orders", NULL};
    if (!only_known(r, r->params, known))
        return;
    cJSON *orders = NULL;
    enum prm_get g = prm_json(r->params, "orders", &orders);
    if (g != PRM_FOUND || !cJSON_IsArray(orders)) {
        cJSON_Delete(orders);
        reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'orders' is a required arg." : "Invalid orders");
        return;
    }
    int n = cJSON_GetArraySize(orders);
    if (n > BULK_MAX || n == 0) {
        cJSON_Delete(orders);
        reply_error(r, 400, VALIDATION, n ? "Too many orders provided. The maximum count allowed is 100."
                                          : "Invalid orders");
        return;
    }
    struct core_job *j = core_job_new(J_ORDERS, r->key.account, (uint32_t)n);
    if (!j) {
        cJSON_Delete(orders);
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, orders)
    {
        struct cmd *c = &j->cmds[i];
        c->account = r->key.account;
        bool ok = cJSON_IsObject(it);
        if (!ok)
            reply_error(r, 400, VALIDATION, "Invalid orders");
        else if (amend)
            ok = parse_amend(r, it, c, &j->target[i]);
        else
            ok = parse_new(r, it, c, &j->texts[i]) && clordid_free(r, c->u.new_order.clordid);
        if (!ok) { /* if any order fails validation, none execute */
            cJSON_Delete(orders);
            core_job_free(j);
            return;
        }
        i++;
    }
    cJSON_Delete(orders);
    if (!rate_limit(r, rl_cost_bulk(n), true, false, false)) {
        core_job_free(j);
        return;
    }
    r->charge_tenths = rl_cost_bulk(n); /* charged only if the queue admits it */
    submit_job(r, j, LS_KIND_BULK, false, finish_list);
}

/* ---- positions ------------------------------------------------------------------------------------------- */

static void finish_position(struct req *r)
{
    struct core_job *j = r->job;
    if (j->rej[0] != REJ_NONE) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    /* The ADL rank walks the instrument's positions: read in a view here,
     * not under the write lock of the job. */
    rate_t adl = -1;
    if (j->pos.qty) {
        view_open(r);
        adl = cv_adl(r->v, j->account, j->cmds[0].inst);
        view_close(r);
    }
    cJSON *o = render_position(r->s->x, j->account, j->cmds[0].inst, &j->pos, adl, j->ts);
    reply_json(r, 200, o);
}

enum pos_op { POS_LEVERAGE, POS_ISOLATE, POS_RISK, POS_TRANSFER };

static void post_position(struct req *r, enum pos_op op)
{
    if (!need_perm(r, PERM_ORDER))
        return;
    static const char *const k_lev[] = {"symbol", "leverage", "targetAccountId", NULL};
    static const char *const k_iso[] = {"symbol", "enabled", NULL};
    static const char *const k_risk[] = {"symbol", "riskLimit", "targetAccountId", NULL};
    static const char *const k_tr[] = {"symbol", "amount", "targetAccountId", NULL};
    const char *const *known[] = {k_lev, k_iso, k_risk, k_tr};
    if (!only_known(r, r->params, known[op]))
        return;
    struct core_job *j = core_job_new(J_POSITION, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    struct cmd *c = &j->cmds[0];
    c->account = r->key.account;
    if (!symbol_param(r, r->params, &c->inst))
        goto bad;
    int64_t v = 0;
    enum prm_get g;
    switch (op) {
    case POS_LEVERAGE:
        g = prm_fixed(r->params, "leverage", 8, &v);
        if (g != PRM_FOUND || v < 0) {
            reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'leverage' is a required arg." : "Invalid leverage");
            goto bad;
        }
        c->type = CMD_SET_LEVERAGE;
        c->u.leverage_e8 = v;
        break;
    case POS_ISOLATE: {
        bool on = true;
        if (bad_param(r, prm_bool(r->params, "enabled", &on), "enabled"))
            goto bad;
        if (!on) {
            c->type = CMD_SET_CROSS;
            break;
        }
        /* Isolate at the leverage the position shows now. */
        struct exch_position p;
        view_open(r);
        cv_position(r->v, r->key.account, c->inst, &p);
        view_close(r);
        c->type = CMD_SET_LEVERAGE;
        c->u.leverage_e8 = p.leverage_e8 > 0 ? p.leverage_e8
                           : p.im_e8 > 0      ? MF_RATE_SCALE * MF_RATE_SCALE / p.im_e8
                                              : 100 * MF_RATE_SCALE;
        break;
    }
    case POS_RISK:
        g = prm_int(r->params, "riskLimit", &v);
        if (g != PRM_FOUND) {
            reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'riskLimit' is a required arg." : "Invalid riskLimit");
            goto bad;
        }
        c->type = CMD_SET_RISK_LIMIT;
        c->u.risk_limit = v;
        break;
    case POS_TRANSFER:
        g = prm_int(r->params, "amount", &v);
        if (g != PRM_FOUND) {
            reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'amount' is a required arg." : "Invalid amount");
            goto bad;
        }
        c->type = CMD_TRANSFER_MARGIN;
        c->u.transfer = v;
        break;
    }
    if (!rate_limit(r, rl_cost_single(), true, false, false))
        goto bad;
    r->charge_tenths = rl_cost_single(); /* charged only if the queue admits it */
    submit_job(r, j, LS_KIND_POSITION, false, finish_position);
    return;
bad:
    core_job_free(j);
}

/* ---- money: user withdrawal and the admin faucet ------------------------------------------------------------ */

static void finish_money(struct req *r)
{
    struct core_job *j = r->job;
    for (uint32_t i = 0; i < j->n; i++)
        if (j->rej[i] != REJ_NONE) {
            reject_reply(r, &j->cmds[i], j->rej[i]);
            return;
        }
    const struct cmd *c = &j->cmds[j->n - 1];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "account", c->account);
    cJSON_AddStringToObject(o, "currency", r->s->x->currency[c->u.money.currency]);
    cJSON_AddStringToObject(o, "transactType",
                            name_of(&names_money_kind, c->type == CMD_DEPOSIT ? MK_DEPOSIT : MK_WITHDRAWAL));
    cJSON_AddNumberToObject(o, "amount", (double)(c->type == CMD_DEPOSIT ? c->u.money.amount : -c->u.money.amount));
    cJSON_AddStringToObject(o, "transactStatus", "Completed");
    cJSON_AddNumberToObject(o, "walletBalance", (double)j->margin.wallet);
    add_time(o, "timestamp", j->ts);
    reply_json(r, 200, o);
}

/* {account?, currency, amount} into a money command; false with reply set. */
static bool money_cmd(struct req *r, struct cmd *c, uint8_t type, bool admin)
{
    int64_t amount = 0, account = r->key.account;
    const char *cur = str_param(r->params, "currency");
    int ci = currency_find(r->s->x, cur ? cur : "XBt");
    if (ci < 0) {
        reply_error(r, 400, VALIDATION, "Invalid currency");
        return false;
    }
    if (admin && prm_int(r->params, "account", &account) != PRM_FOUND) {
        reply_error(r, 400, VALIDATION, "'account' is a required arg.");
        return false;
    }
    if (admin && (account <= 0 || account > UINT32_MAX || !core_account_exists(r->s->core, (uint32_t)account))) {
        reply_error(r, 404, HTTP, "Account not found");
        return false;
    }
    enum prm_get g = prm_int(r->params, "amount", &amount);
    if (g != PRM_FOUND || amount <= 0) {
        reply_error(r, 400, VALIDATION, g == PRM_ABSENT ? "'amount' is a required arg." : "Invalid amount");
        return false;
    }
    c->type = type;
    c->account = (uint32_t)account;
    c->u.money.currency = (uint8_t)ci;
    c->u.money.amount = amount;
    return true;
}

static void post_withdrawal(struct req *r)
{
    if (!need_perm(r, PERM_WITHDRAW))
        return;
    struct core_job *j = core_job_new(J_MONEY, r->key.account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    if (!money_cmd(r, &j->cmds[0], CMD_WITHDRAW, false) ||
        !rate_limit(r, rl_cost_single(), false, false, true)) {
        core_job_free(j);
        return;
    }
    submit_job(r, j, LS_KIND_OTHER, false, finish_money);
}

/* ---- admin ------------------------------------------------------------------------------------------------- */

static bool admin_ok(struct req *r)
{
    struct srv *s = r->s;
    if (!s->cfg.admin_token[0]) {
        reply_error(r, 404, HTTP, "Not Found");
        return false;
    }
    bool loopback = strncmp(r->client_ip, "127.", 4) == 0 || strcmp(r->client_ip, "::1") == 0;
    if (!loopback && !s->cfg.admin_remote) {
        reply_error(r, 403, HTTP, "Access Denied: the admin API answers loopback clients only");
        return false;
    }
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    size_t tl = strlen(s->cfg.admin_token);
    if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) != tl ||
        CRYPTO_memcmp(h + 7, s->cfg.admin_token, tl) != 0) {
        reply_error(r, 401, HTTP, "Invalid admin token.");
        return false;
    }
    return true;
}

static void finish_account(struct req *r)
{
    struct core_job *j = r->job;
    if (j->status == REJ_CORE_ACCOUNTS_FULL) {
        reply_error(r, 400, VALIDATION, "No more accounts: the configured maximum is reached");
        return;
    }
    if (j->status != REJ_NONE) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    for (uint32_t i = 0; i < j->n; i++)
        if (j->rej[i] != REJ_NONE) {
            reject_reply(r, &j->cmds[i], j->rej[i]);
            return;
        }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "account", j->account);
    /* the reply shows the new key once, here only */
    cJSON_AddStringToObject(o, "apiKey", j->key.id);
    cJSON_AddStringToObject(o, "apiSecret", j->key.secret);
    add_permissions(o, j->key.perms);
    reply_json(r, 200, o);
}

/* The class table: every account's money, positions and liquidations,
 * GET /admin/v1/accounts?start=1&count=500[&agents=true]. Copied under the
 * view, rendered after it. */
struct class_row {
    uint32_t account;
    bool agent;
    uint32_t liqs;
    struct exch_margin m[CURRENCIES_MAX];
    uint16_t npos;
    struct class_pos { uint16_t inst; qty_t qty; sats_t upnl; px_t liq_px; } pos[INSTRUMENTS_MAX];
};

#define CLASS_COUNT_MAX 1000

static void admin_class(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"start", "count", "agents", NULL};
    if (!only_known(r, r->params, known))
        return;
    int64_t start = 1, count = 500;
    bool agents = false;
    enum prm_get gs = prm_int(r->params, "start", &start), gc = prm_int(r->params, "count", &count);
    enum prm_get ga = prm_bool(r->params, "agents", &agents);
    if ((gs != PRM_ABSENT && (gs != PRM_FOUND || start < 1 || start > UINT32_MAX)) ||
        (gc != PRM_ABSENT && (gc != PRM_FOUND || count < 1 || count > CLASS_COUNT_MAX)) ||
        (ga != PRM_ABSENT && ga != PRM_FOUND)) {
        reply_error(r, 400, VALIDATION, "Invalid start (an account, from 1), count (1 to %d) or agents",
                    CLASS_COUNT_MAX);
        return;
    }
    struct class_row *rows = malloc((size_t)count * sizeof(*rows));
    if (!rows) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    uint32_t n = 0, a = (uint32_t)start;
    view_open(r);
    const struct store *st = cv_store(r->v);
    uint32_t end = cv_accounts_end(r->v);
    for (; a < end && n < (uint32_t)count; a++) {
        bool agent = store_account_agent(st, a);
        if (agent && !agents)
            continue;
        struct class_row *w = &rows[n++];
        w->account = a;
        w->agent = agent;
        w->liqs = explain_liquidations_of(store_explain(st), a);
        for (uint8_t c = 0; c < s->x->currencies_count; c++)
            cv_margin(r->v, a, c, &w->m[c]);
        w->npos = 0;
        for (uint16_t i = 0; i < s->x->engine.instruments_count; i++) {
            struct exch_position p;
            if (cv_position(r->v, a, i, &p) == 0 && p.qty != 0)
                w->pos[w->npos++] = (struct class_pos){i, p.qty, p.unrealised_pnl, p.liq_px};
        }
    }
    view_close(r);
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "accounts");
    for (uint32_t k = 0; k < n; k++) {
        const struct class_row *w = &rows[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "account", w->account);
        cJSON_AddBoolToObject(o, "agent", w->agent);
        cJSON_AddNumberToObject(o, "liquidations", w->liqs);
        cJSON *cs = cJSON_AddArrayToObject(o, "currencies");
        for (uint8_t c = 0; c < s->x->currencies_count; c++) {
            const struct exch_margin *m = &w->m[c];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "currency", s->x->currency[c]);
            cJSON_AddNumberToObject(x, "deposited", (double)m->deposited);
            cJSON_AddNumberToObject(x, "withdrawn", (double)m->withdrawn);
            cJSON_AddNumberToObject(x, "walletBalance", (double)m->wallet);
            cJSON_AddNumberToObject(x, "marginBalance", (double)m->margin_balance);
            cJSON_AddNumberToObject(x, "unrealisedPnl", (double)m->unrealised_pnl);
            /* what the trading made: the wallet (realised) and the equity
             * (with the unrealised) against what was paid in */
            cJSON_AddNumberToObject(x, "realisedPnl", (double)(m->wallet - m->deposited + m->withdrawn));
            cJSON_AddNumberToObject(x, "pnl", (double)(m->margin_balance - m->deposited + m->withdrawn));
            cJSON_AddItemToArray(cs, x);
        }
        cJSON *ps = cJSON_AddArrayToObject(o, "positions");
        for (uint16_t k2 = 0; k2 < w->npos; k2++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "symbol", sym(s->x, w->pos[k2].inst));
            cJSON_AddNumberToObject(x, "currentQty", (double)w->pos[k2].qty);
            cJSON_AddNumberToObject(x, "unrealisedPnl", (double)w->pos[k2].upnl);
            if (w->pos[k2].liq_px)
                cJSON_AddNumberToObject(x, "liquidationPrice", px_num(w->pos[k2].liq_px));
            else
                cJSON_AddNullToObject(x, "liquidationPrice");
            cJSON_AddItemToArray(ps, x);
        }
        cJSON_AddItemToArray(arr, o);
    }
    if (a < end)
        cJSON_AddNumberToObject(out, "next", a);
    else
        cJSON_AddNullToObject(out, "next");
    free(rows);
    reply_json(r, 200, out);
}

static void admin_accounts(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"deposits", "permissions", "cidrs", NULL};
    if (!only_known(r, r->params, known))
        return;
    sats_t dep[CURRENCIES_MAX] = {0};
    uint32_t ndep = 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r->params, "deposits"), *it;
    if (d && !cJSON_IsObject(d)) {
        reply_error(r, 400, VALIDATION, "Invalid deposits");
        return;
    }
    cJSON_ArrayForEach(it, d)
    {
        int c = currency_find(s->x, it->string);
        int64_t v = 0;
        if (c < 0 || prm_int(d, it->string, &v) != PRM_FOUND || v < 0 || v > EXCH_MONEY_MAX) {
            /* refused before anything is made: no account without its deposit */
            reply_error(r, 400, VALIDATION, "Invalid deposits: %s (0 to %" PRId64 " minor units)", it->string,
                        EXCH_MONEY_MAX);
            return;
        }
        dep[c] = v;
    }
    uint32_t perms = PERM_ORDER;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->params, "permissions");
    if (p) {
        perms = 0;
        if (!cJSON_IsArray(p)) {
            reply_error(r, 400, VALIDATION, "Invalid permissions");
            return;
        }
        cJSON_ArrayForEach(it, p)
        {
            if (!cJSON_IsString(it)) {
                reply_error(r, 400, VALIDATION, "Invalid permissions");
                return;
            }
            unsigned bit = 0;
            if (!name_parse(&names_permission, it->valuestring, &bit)) {
                reply_error(r, 400, VALIDATION, "Invalid permissions: %s", it->valuestring);
                return;
            }
            perms |= bit;
        }
    }
    struct key_rec k;
    memset(&k, 0, sizeof(k));
    const cJSON *cidrs = cJSON_GetObjectItemCaseSensitive(r->params, "cidrs");
    if (cidrs) {
        if (!cJSON_IsArray(cidrs) || cJSON_GetArraySize(cidrs) > KEY_CIDRS_MAX) {
            reply_error(r, 400, VALIDATION, "Invalid cidrs");
            return;
        }
        cJSON_ArrayForEach(it, cidrs)
        {
            unsigned a, b, c2, e, bits;
            char tail;
            if (!cJSON_IsString(it) ||
                sscanf(it->valuestring, "%u.%u.%u.%u/%u%c", &a, &b, &c2, &e, &bits, &tail) != 5 ||
                a > 255 || b > 255 || c2 > 255 || e > 255 || bits > 32) {
                reply_error(r, 400, VALIDATION, "Invalid cidrs");
                return;
            }
            k.cidr_addr[k.ncidr] = a << 24 | b << 16 | c2 << 8 | e;
            k.cidr_bits[k.ncidr++] = (uint8_t)bits;
        }
    }
    for (uint8_t c = 0; c < s->x->currencies_count; c++)
        ndep += dep[c] > 0;
    struct core_job *j = core_job_new(J_ACCOUNT, 0, ndep);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    /* The key is drawn here and made by a command in the one sequence
     * (with the account and the deposits), so a replay makes the same. */
    k.perms = perms;
    k.enabled = true;
    if (new_key(s, &k) != 0) {
        core_job_free(j);
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->key = k;
    uint32_t n = 0;
    for (uint8_t c = 0; c < s->x->currencies_count; c++)
        if (dep[c] > 0) {
            j->cmds[n].type = CMD_DEPOSIT;
            j->cmds[n].u.money.currency = c;
            j->cmds[n++].u.money.amount = dep[c];
        }
    submit_job(r, j, LS_KIND_OTHER, true, finish_account);
}

static void admin_money(struct req *r, uint8_t type)
{
    static const char *const known[] = {"account", "currency", "amount", NULL};
    if (!only_known(r, r->params, known))
        return;
    struct core_job *j = core_job_new(J_MONEY, 0, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    if (!money_cmd(r, &j->cmds[0], type, true)) {
        core_job_free(j);
        return;
    }
    j->account = j->cmds[0].account;
    submit_job(r, j, LS_KIND_OTHER, true, finish_money);
}

static void finish_index(struct req *r)
{
    struct core_job *j = r->job;
    if (j->rej[0] != REJ_NONE) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", r->s->x->index[j->cmds[0].u.set_index.index]);
    cJSON_AddNumberToObject(o, "price", px_num(j->cmds[0].u.set_index.price));
    add_time(o, "timestamp", j->ts);
    reply_json(r, 200, o);
}

static void admin_index(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"symbol", "price", "move", NULL};
    if (!only_known(r, r->params, known))
        return;
    const char *y = str_param(r->params, "symbol");
    int idx = -1;
    for (uint16_t k = 0; y && k < s->x->indices_count; k++)
        if (strcasecmp(y, s->x->index[k]) == 0)
            idx = k;
    if (idx < 0) {
        reply_error(r, 400, VALIDATION, "Invalid symbol: not an index");
        return;
    }
    int64_t px = 0, move_e8 = 0;
    enum prm_get gp = prm_fixed(r->params, "price", 8, &px), gm = prm_fixed(r->params, "move", 8, &move_e8);
    if ((gp == PRM_ABSENT) == (gm == PRM_ABSENT)) {
        reply_error(r, 400, VALIDATION, "Give either price or move (a fraction: -0.08 is 8%% down)");
        return;
    }
    if (gm != PRM_ABSENT) {
        /* A shock: the index now, moved by the fraction given. */
        if (gm != PRM_FOUND || move_e8 <= -MF_RATE_SCALE || move_e8 > 10 * MF_RATE_SCALE) {
            reply_error(r, 400, VALIDATION, "Invalid move: above -1 and at most 10");
            return;
        }
        px_t now = 0;
        view_open(r);
        for (uint16_t i = 0; i < s->x->engine.instruments_count && !now; i++)
            if (s->x->inst[i].index == idx) {
                struct exch_instrument_state st;
                cv_instrument(r->v, i, &st);
                now = st.index_px;
            }
        view_close(r);
        if (now <= 0) {
            reply_error(r, 400, VALIDATION, "Invalid move: the index has no price yet");
            return;
        }
        px = (px_t)((i128)now * (MF_RATE_SCALE + move_e8) / MF_RATE_SCALE);
    }
    if (gp == PRM_BAD_TYPE || gp == PRM_BAD_VALUE || px <= 0 || px > 100000000 * PX_SCALE) {
        reply_error(r, 400, VALIDATION, "Invalid price");
        return;
    }
    struct core_job *j = core_job_new(J_INDEX, 0, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].type = CMD_SET_INDEX;
    j->cmds[0].u.set_index.index = (uint16_t)idx;
    j->cmds[0].u.set_index.price = px;
    submit_job(r, j, LS_KIND_OTHER, true, finish_index);
}

static void finish_funding(struct req *r)
{
    struct core_job *j = r->job;
    if (j->rej[0] != REJ_NONE) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    view_open(r);
    cJSON *o = render_instrument(r->v, j->cmds[0].inst, cv_now(r->v));
    view_close(r);
    reply_json(r, 200, o);
}

/* An instructor's (or a harness's) funding rate for a perpetual's next
 * funding, in place of the one the premium formed: {"symbol",
 * "fundingRate", "indicativeFundingRate"?, "fundingTimestamp"?}. Answers
 * the instrument. */
static void admin_funding(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"symbol", "fundingRate", "indicativeFundingRate", "fundingTimestamp", NULL};
    if (!only_known(r, r->params, known))
        return;
    const char *y = str_param(r->params, "symbol");
    int inst = y ? exch_config_find(s->x, y) : -1;
    if (inst < 0) {
        reply_error(r, 400, VALIDATION, y ? "Invalid symbol" : "'symbol' is a required arg.");
        return;
    }
    int64_t rate = 0, ind = 0;
    enum prm_get gr = prm_fixed(r->params, "fundingRate", 8, &rate);
    enum prm_get gi = prm_fixed(r->params, "indicativeFundingRate", 8, &ind);
    if (gr != PRM_FOUND) {
        reply_error(r, 400, VALIDATION, gr == PRM_ABSENT ? "'fundingRate' is a required arg." : "Invalid fundingRate");
        return;
    }
    if (gi != PRM_FOUND && gi != PRM_ABSENT) {
        reply_error(r, 400, VALIDATION, "Invalid indicativeFundingRate");
        return;
    }
    /* Optional: the funding the rate is for (refused unless it is the
     * next one when applied); absent: the next, whenever that is. */
    const char *fts = NULL;
    ms_t for_ms = 0;
    enum prm_get gt = prm_str(r->params, "fundingTimestamp", &fts);
    if (gt == PRM_FOUND ? tf_parse_time(fts, strlen(fts), &for_ms) != TF_OK : gt != PRM_ABSENT) {
        reply_error(r, 400, VALIDATION, "Invalid fundingTimestamp");
        return;
    }
    struct core_job *j = core_job_new(J_INDEX, 0, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].type = CMD_SET_FUNDING;
    j->cmds[0].inst = (uint16_t)inst;
    j->cmds[0].u.set_funding.rate_e8 = rate;
    j->cmds[0].u.set_funding.indicative_e8 = ind;
    j->cmds[0].u.set_funding.has_indicative = gi == PRM_FOUND;
    j->cmds[0].u.set_funding.for_ms = for_ms;
    submit_job(r, j, LS_KIND_OTHER, true, finish_funding);
}

/* {"account", "spam", "smallOrders"} of an account, and the rule's
 * figures. */
static cJSON *spam_json(struct req *r, uint32_t account)
{
    struct srv *s = r->s;
    uint32_t small = 0;
    view_open(r);
    int marked = cv_spam(r->v, account, &small);
    view_close(r);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "account", account);
    cJSON_AddBoolToObject(o, "spam", marked == 1);
    cJSON_AddNumberToObject(o, "smallOrders", small);
    cJSON_AddNumberToObject(o, "spamOrders", s->x->spam_orders);
    cJSON *v = cJSON_AddObjectToObject(o, "spamValue");
    for (uint8_t c = 0; c < s->x->currencies_count; c++)
        cJSON_AddNumberToObject(v, s->x->currency[c], (double)s->x->spam_value[c]);
    return o;
}

static void finish_spam(struct req *r)
{
    struct core_job *j = r->job;
    if (j->rej[0] != REJ_NONE) {
        reject_reply(r, &j->cmds[0], j->rej[0]);
        return;
    }
    reply_json(r, 200, spam_json(r, j->cmds[0].account));
}

/* The spam rule (exch_config.spam_orders): GET ?account=N shows whether
 * the account is marked and how many small orders it has working; POST
 * {"account": N, "spam": true|false} marks or clears it at once (the daily
 * review at 00:00 UTC decides again). */
static void admin_spam(struct req *r)
{
    static const char *const known_post[] = {"account", "spam", NULL}, *const known_get[] = {"account", NULL};
    bool get = strcmp(r->method, "GET") == 0;
    if (!only_known(r, r->params, get ? known_get : known_post))
        return;
    if (!r->s->x->spam_orders) {
        reply_error(r, 400, VALIDATION, "The spam rule is off on this exchange (a backtest's, or an older journal's)");
        return;
    }
    int64_t account = 0;
    if (prm_int(r->params, "account", &account) != PRM_FOUND) {
        reply_error(r, 400, VALIDATION, "'account' is a required arg.");
        return;
    }
    if (account <= 0 || account > UINT32_MAX || !core_account_exists(r->s->core, (uint32_t)account)) {
        reply_error(r, 400, VALIDATION, "Invalid account");
        return;
    }
    if (get) {
        reply_json(r, 200, spam_json(r, (uint32_t)account));
        return;
    }
    bool on = false;
    if (prm_bool(r->params, "spam", &on) != PRM_FOUND) {
        reply_error(r, 400, VALIDATION, "'spam' must be true or false");
        return;
    }
    struct core_job *j = core_job_new(J_MONEY, (uint32_t)account, 1);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    j->cmds[0].type = CMD_SET_SPAM;
    j->cmds[0].account = (uint32_t)account;
    j->cmds[0].u.spam = on;
    submit_job(r, j, LS_KIND_OTHER, true, finish_spam);
}

static void admin_audit(struct req *r)
{
    struct srv *s = r->s;
    struct exch_audit a;
    view_open(r);
    cv_audit(r->v, &a);
    const char *verify = NULL;
    ms_t now = cv_now(r->v);
    view_close(r);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", a.ok && !verify);
    cJSON_AddStringToObject(o, "report", a.report);
    cJSON *cur = cJSON_AddArrayToObject(o, "currencies");
    for (uint8_t c = 0; c < s->x->currencies_count; c++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "currency", s->x->currency[c]);
        cJSON_AddNumberToObject(row, "total", (double)a.total[c]);
        cJSON_AddNumberToObject(row, "expected", (double)a.expected[c]);
        cJSON_AddNumberToObject(row, "difference", (double)(a.total[c] - a.expected[c]));
        cJSON_AddNumberToObject(row, "insuranceFund", (double)a.insurance[c]);
        cJSON_AddNumberToObject(row, "fees", (double)a.fees[c]);
        cJSON_AddNumberToObject(row, "rounding", (double)a.rounding[c]);
        cJSON_AddNumberToObject(row, "openPositions", (double)a.positions[c]);
        cJSON_AddItemToArray(cur, row);
    }
    cJSON *ins = cJSON_AddArrayToObject(o, "instruments");
    for (uint16_t i = 0; i < s->x->engine.instruments_count; i++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "symbol", sym(s->x, i));
        cJSON_AddNumberToObject(row, "longContracts", (double)a.long_qty[i]);
        cJSON_AddNumberToObject(row, "shortContracts", (double)a.short_qty[i]);
        cJSON_AddItemToArray(ins, row);
    }
    add_time(o, "timestamp", now);
    reply_json(r, 200, o);
}

/* A served backtest's report (docs/backtest.md), as the run stands. */
static void admin_report(struct req *r)
{
    static const char *const known[] = {NULL};
    if (!only_known(r, r->params, known))
        return;
    struct srv *s = r->s;
    if (!s->cfg.report) {
        reply_error(r, 404, "HTTPError", "No backtest here: the report is a served backtest's "
                                         "(perpsim backtest --serve)");
        return;
    }
    char *json = s->cfg.report(s->cfg.attach_ctx, s->core);
    if (!json) {
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    free(r->reply);
    r->reply = json;
    r->status = 200;
    r->state = RS_READY;
}

/* The state hash of the whole exchange with the sequence number and engine
 * time it was taken at (core_state): equal command sequences, equal hash. */
static void admin_state(struct req *r)
{
    static const char *const known[] = {NULL};
    if (!only_known(r, r->params, known))
        return;
    struct core_state st;
    core_state(r->s->core, &st);
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, st.hash);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)st.seq);
    cJSON_AddStringToObject(o, "hash", hex);
    add_time(o, "time", st.time);
    reply_json(r, 200, o);
}

/* ---- admin: the engine clock -------------------------------------------------------------------- */

static cJSON *clock_json(struct srv *s, ms_t t)
{
    enum clock_mode mode;
    int64_t speed;
    clocksrc_get(&s->clk, &mode, &speed);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", clock_mode_name(mode));
    cJSON_AddNumberToObject(o, "speed", (double)speed);
    add_time(o, "time", t);
    return o;
}

/* GET: {"mode","speed","time"}. POST {"mode":"stepped"|"real"} or
 * {"mode":"accelerated","speed":N}: engine time goes on from where it is. */
static void admin_clock(struct req *r)
{
    struct srv *s = r->s;
    if (strcmp(r->method, "GET") == 0) {
        static const char *const none[] = {NULL};
        if (only_known(r, r->params, none))
            reply_json(r, 200, clock_json(s, engine_ms(s)));
        return;
    }
    static const char *const known[] = {"mode", "speed", NULL};
    if (!only_known(r, r->params, known))
        return;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->params, "mode");
    enum clock_mode mode;
    int64_t speed = 1;
    if (!cJSON_IsString(m)) {
        reply_error(r, 400, VALIDATION, "'mode' is a required arg: real, accelerated or stepped");
        return;
    }
    if (strcmp(m->valuestring, "real") == 0) {
        mode = CLOCK_REAL;
    } else if (strcmp(m->valuestring, "stepped") == 0) {
        mode = CLOCK_STEPPED;
    } else if (strcmp(m->valuestring, "accelerated") == 0) {
        mode = CLOCK_ACCELERATED;
        enum prm_get g = prm_int(r->params, "speed", &speed);
        if (g != PRM_FOUND || speed < 1 || speed > CLOCK_SPEED_MAX) {
            reply_error(r, 400, VALIDATION, "'speed' must be a whole number from 1 to %d",
                        CLOCK_SPEED_MAX);
            return;
        }
    } else {
        reply_error(r, 400, VALIDATION, "Invalid mode: real, accelerated or stepped");
        return;
    }
    if (mode != CLOCK_ACCELERATED && cJSON_GetObjectItemCaseSensitive(r->params, "speed")) {
        reply_error(r, 400, VALIDATION, "'speed' goes with the accelerated mode only");
        return;
    }
    pthread_mutex_lock(&s->admin_lock);
    if (s->advancing || s->restoring) {
        pthread_mutex_unlock(&s->admin_lock);
        reply_error(r, 400, VALIDATION, "An advance of the clock or a restore is running: switch after its reply");
        return;
    }
    clocksrc_set_mode(&s->clk, mode, speed, engine_ms(s));
    core_set_ticking(s->core, mode != CLOCK_STEPPED);
    pthread_mutex_unlock(&s->admin_lock);
    reply_json(r, 200, clock_json(s, engine_ms(s)));
}

static void finish_advance(struct req *r)
{
    struct core_job *j = r->job;
    pthread_mutex_lock(&r->s->admin_lock);
    clocksrc_set_stepped(&r->s->clk, j->ts);
    r->s->advancing--;
    pthread_mutex_unlock(&r->s->admin_lock);
    reply_json(r, 200, clock_json(r->s, j->ts));
}

/* {"ms":N} or {"to":"<ISO>"}: a stepped clock moves on, and the reply comes
 * after everything due in between has run, each at its own time. */
static void advance_abandon(struct srv *s);
static bool advance_submit(struct req *r, struct srv *s);

static void admin_advance(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"ms", "to", NULL};
    if (!only_known(r, r->params, known))
        return;
    enum clock_mode mode;
    int64_t speed;
    pthread_mutex_lock(&s->admin_lock);
    clocksrc_get(&s->clk, &mode, &speed);
    bool restoring = s->restoring > 0;
    if (mode == CLOCK_STEPPED && !restoring)
        s->advancing++; /* the mode stays stepped until the reply */
    pthread_mutex_unlock(&s->admin_lock);
    if (restoring) {
        reply_error(r, 400, VALIDATION, "A restore is running: advance after its reply");
        return;
    }
    if (mode != CLOCK_STEPPED) {
        reply_error(r, 400, VALIDATION,
                    "The clock is %s: advance needs the stepped clock (POST /admin/v1/clock {\"mode\":\"stepped\"})",
                    clock_mode_name(mode));
        return;
    }
    if (!advance_submit(r, s))
        advance_abandon(s);
}

static void advance_abandon(struct srv *s)
{
    pthread_mutex_lock(&s->admin_lock);
    s->advancing--;
    pthread_mutex_unlock(&s->admin_lock);
}

/* The advance's target from {ms} or {to}, and its job; false when a 400
 * (or 500) reply was set instead. */
static bool advance_submit(struct req *r, struct srv *s)
{
    ms_t now = engine_ms(s), to = 0;
    int64_t ms = 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->params, "to");
    enum prm_get g = prm_int(r->params, "ms", &ms);
    if ((g == PRM_FOUND) == (t != NULL)) {
        reply_error(r, 400, VALIDATION, "Give either 'ms' or 'to'");
        return false;
    }
    /* At most ten years at a time. */
    const int64_t max_ms = INT64_C(10) * 366 * MS_PER_DAY;
    if (g == PRM_FOUND) {
        if (ms < 0 || ms > max_ms) {
            reply_error(r, 400, VALIDATION, "Invalid ms: 0 to %" PRId64, max_ms);
            return false;
        }
        to = now + ms;
    } else {
        if (!cJSON_IsString(t) ||
            tf_parse_time(t->valuestring, strlen(t->valuestring), &to) != TF_OK) {
            reply_error(r, 400, VALIDATION, "Invalid to: an ISO 8601 time");
            return false;
        }
        if (to < now || to - now > max_ms) {
            reply_error(r, 400, VALIDATION, "Invalid to: from now (engine time) to ten years on");
            return false;
        }
    }
    struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
    if (!j) {
        reply_error(r, 500, HTTP, "Server Error");
        return false;
    }
    j->advance_to = to;
    submit_job(r, j, LS_KIND_OTHER, true, finish_advance);
    /* Refused by the queue (503, shutting down): no finish will come. */
    return r->state == RS_WAITING;
}


/* ---- admin: checkpoints (core.h, Checkpoints) ----------------------------------------------------- */

static cJSON *checkpoint_json(const struct core_checkpoint *cp)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, cp->hash);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", cp->name);
    cJSON_AddNumberToObject(o, "seq", (double)cp->seq);
    add_time(o, "time", cp->time);
    cJSON_AddStringToObject(o, "hash", hex);
    return o;
}

/* A checkpoint job's refusal, as a reply; false when there was none. */
static bool checkpoint_refused(struct req *r, int32_t status, const char *name)
{
    switch (status) {
    case REJ_NONE:
        return false;
    case REJ_CORE_NO_JOURNAL:
        reply_error(r, 400, VALIDATION, "Checkpoints need the journal: start perpsim with --data-dir DIR");
        break;
    case REJ_CORE_CHECKPOINT_TAKEN:
        reply_error(r, 400, VALIDATION, "A checkpoint named %s exists already", name);
        break;
    case REJ_CORE_CHECKPOINTS_FULL:
        reply_error(r, 400, VALIDATION, "At most %d checkpoints", CORE_CHECKPOINTS_MAX);
        break;
    case REJ_CORE_NO_CHECKPOINT:
        reply_error(r, 404, "NotFound", "No checkpoint named %s (GET /admin/v1/checkpoint lists them)", name);
        break;
    case REJ_CORE_NOT_DURABLE:
        reply_error(r, 503, "HTTPError", "The checkpoint is not on disk yet: try again");
        break;
    case REJ_CORE_NO_RESTORE:
        reply_error(r, 400, VALIDATION, "A backtest cannot be restored: its data does not rewind");
        break;
    default:
        reply_error(r, 500, "HTTPError", "The journal could not rebuild checkpoint %s: nothing changed "
                                         "(the server's log says why)", name);
        break;
    }
    return true;
}

static void finish_checkpoint(struct req *r)
{
    struct core_job *j = r->job;
    if (!checkpoint_refused(r, j->status, j->cp->name))
        reply_json(r, 200, checkpoint_json(j->cp));
}

static void finish_restore(struct req *r)
{
    struct core_job *j = r->job;
    pthread_mutex_lock(&r->s->admin_lock);
    r->s->restoring--;
    pthread_mutex_unlock(&r->s->admin_lock);
    if (checkpoint_refused(r, j->status, j->cp->name))
        return;
    cJSON *o = checkpoint_json(j->cp);
    cJSON_AddNumberToObject(o, "restoreSeq", (double)j->cp->restore_seq);
    reply_json(r, 200, o);
}

/* The name of {"name"}: 1 to 64 of letters, digits, '.', '_', '-'; NULL
 * when a 400 reply was set instead. */
static const char *checkpoint_name(struct req *r)
{
    static const char *const known[] = {"name", NULL};
    if (!only_known(r, r->params, known))
        return NULL;
    const char *n = NULL;
    enum prm_get g = prm_str(r->params, "name", &n);
    if (g == PRM_ABSENT) {
        reply_error(r, 400, VALIDATION, "'name' is a required arg.");
        return NULL;
    }
    size_t len = g == PRM_FOUND ? strlen(n) : 0;
    bool ok = len >= 1 && len <= CHECKPOINT_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)n[i]) || n[i] == '.' || n[i] == '_' || n[i] == '-';
    if (!ok) {
        reply_error(r, 400, VALIDATION, "Invalid name: 1 to %d letters, digits, '.', '_' or '-'",
                    CHECKPOINT_NAME_MAX);
        return NULL;
    }
    return n;
}

static struct core_job *checkpoint_job(struct req *r, enum job_kind kind, const char *name)
{
    struct core_job *j = core_job_new(kind, 0, 0);
    if (j)
        j->cp = calloc(1, sizeof(*j->cp));
    if (!j || !j->cp) {
        core_job_free(j);
        reply_error(r, 500, HTTP, "Server Error");
        return NULL;
    }
    snprintf(j->cp->name, sizeof(j->cp->name), "%s", name);
    return j;
}

/* GET: the checkpoints, oldest first. POST {"name"}: a checkpoint of the
 * exchange as it is now. */
static void admin_checkpoint(struct req *r)
{
    if (strcmp(r->method, "GET") == 0) {
        static const char *const none[] = {NULL};
        if (!only_known(r, r->params, none))
            return;
        struct core_checkpoint *v = calloc(CORE_CHECKPOINTS_MAX, sizeof(*v));
        if (!v) {
            reply_error(r, 500, HTTP, "Server Error");
            return;
        }
        int n = core_checkpoints(r->s->core, v, CORE_CHECKPOINTS_MAX);
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < n && i < CORE_CHECKPOINTS_MAX; i++)
            cJSON_AddItemToArray(a, checkpoint_json(&v[i]));
        free(v);
        reply_json(r, 200, a);
        return;
    }
    const char *name = checkpoint_name(r);
    struct core_job *j = name ? checkpoint_job(r, J_CHECKPOINT, name) : NULL;
    if (j)
        submit_job(r, j, LS_KIND_OTHER, true, finish_checkpoint);
}

/* {"name"}: the whole exchange back to that checkpoint. */
static void admin_restore(struct req *r)
{
    struct srv *s = r->s;
    const char *name = checkpoint_name(r);
    if (!name)
        return;
    pthread_mutex_lock(&s->admin_lock);
    bool busy = s->advancing > 0 || s->restoring > 0;
    if (!busy)
        s->restoring++; /* no clock switch, advance or advance's end in between */
    pthread_mutex_unlock(&s->admin_lock);
    if (busy) {
        reply_error(r, 400, VALIDATION, "An advance of the clock or a restore is running: restore after its reply");
        return;
    }
    struct core_job *j = checkpoint_job(r, J_RESTORE, name);
    if (j)
        submit_job(r, j, LS_KIND_OTHER, true, finish_restore);
    if (r->state != RS_WAITING) { /* refused: no finish will come */
        pthread_mutex_lock(&s->admin_lock);
        s->restoring--;
        pthread_mutex_unlock(&s->admin_lock);
    }
}

static void admin_loadshed(struct req *r)
{
    struct srv *s = r->s;
    static const char *const known[] = {"latencyCapMs", "fixedDepth", NULL};
    if (!only_known(r, r->params, known))
        return;
    int64_t v;
    if (prm_int(r->params, "latencyCapMs", &v) == PRM_FOUND) {
        if (v <= 0 || ls_set_latency_cap(core_queue(s->core), v * 1000000) != LS_OK) {
            reply_error(r, 400, VALIDATION, "Invalid latencyCapMs");
            return;
        }
    } else if (prm_int(r->params, "fixedDepth", &v) == PRM_FOUND) {
        if (v < 0 || v > UINT32_MAX || ls_set_fixed_depth(core_queue(s->core), (uint32_t)v) != LS_OK) {
            reply_error(r, 400, VALIDATION, "Invalid fixedDepth");
            return;
        }
    } else if (strcmp(r->method, "POST") == 0) {
        reply_error(r, 400, VALIDATION, "Give latencyCapMs or fixedDepth");
        return;
    }
    struct ls_metrics m;
    ls_metrics(core_queue(s->core), &m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", m.mode == LS_FIXED ? "fixed" : "latencyCap");
    cJSON_AddNumberToObject(o, "latencyCapMs", (double)m.latency_cap_ns / 1e6);
    cJSON_AddNumberToObject(o, "depthLimit", m.depth_limit);
    cJSON_AddNumberToObject(o, "depth", m.depth);
    cJSON_AddNumberToObject(o, "serviceNsEwma", (double)m.service_estimate_ns);
    reply_json(r, 200, o);
}

static void get_metrics(struct req *r)
{
    struct srv *s = r->s;
    size_t need = ls_metrics_prometheus(core_queue(s->core), NULL, 0);
    size_t cap = need + 8192 + 80 * (size_t)s->nd;
    char *buf = malloc(cap);
    if (!buf) {
        reply_error(r, 500, HTTP, "Server Error");
        return;
    }
    size_t n = ls_metrics_prometheus(core_queue(s->core), buf, need + 1);
    n += (size_t)snprintf(buf + n, cap - n,
                          "# HELP perpsim_engine_commands_total Commands applied in the one sequence (clock ticks, accounts and keys included).\n"
                          "# TYPE perpsim_engine_commands_total counter\n"
                          "perpsim_engine_commands_total %" PRIu64 "\n"
                          "# HELP perpsim_http_responses_total HTTP responses by status class.\n"
                          "# TYPE perpsim_http_responses_total counter\n",
                          core_commands(s->core));
    for (int k = 1; k <= 5; k++)
        n += (size_t)snprintf(buf + n, cap - n, "perpsim_http_responses_total{code=\"%dxx\"} %" PRIu64 "\n",
                              k, (uint64_t)atomic_load(&s->http_status[k]));
    n += (size_t)snprintf(buf + n, cap - n,
                          "# HELP perpsim_http_connections_total Connections accepted.\n"
                          "# TYPE perpsim_http_connections_total counter\n"
                          "perpsim_http_connections_total %" PRIu64 "\n"
                          "# HELP perpsim_http_connections_open Connections open now.\n"
                          "# TYPE perpsim_http_connections_open gauge\n"
                          "perpsim_http_connections_open %" PRIu64 "\n"
                          "# HELP perpsim_http_connections_deadline_total Connections closed for holding past a deadline (idle, headers, body).\n"
                          "# TYPE perpsim_http_connections_deadline_total counter\n"
                          "perpsim_http_connections_deadline_total %" PRIu64 "\n",
                          (uint64_t)atomic_load(&s->connections),
                          (uint64_t)atomic_load(&s->connections_open), srv_connections_closed_by_deadline(s));
    n += (size_t)snprintf(buf + n, cap - n,
                          "# HELP perpsim_http_connections_refused_total Connections closed at once: past the per-address or total cap.\n"
                          "# TYPE perpsim_http_connections_refused_total counter\n"
                          "perpsim_http_connections_refused_total %" PRIu64 "\n"
                          "# HELP perpsim_http_thread_connections Connections each HTTP thread holds now (the acceptor gives each new one to the thread with the fewest).\n"
                          "# TYPE perpsim_http_thread_connections gauge\n",
                          acceptor_refused(s->acc));
    for (unsigned k = 0; k < s->nd; k++)
        n += (size_t)snprintf(buf + n, cap - n, "perpsim_http_thread_connections{thread=\"%u\"} %" PRIu64 "\n", k,
                              acceptor_thread_connections(s->acc, k));
    struct journal_stats js;
    if (srv_journal_stats(s, &js) == 0)
        n += (size_t)snprintf(buf + n, cap - n,
                              "# HELP perpsim_journal_commands_total Commands written to the journal.\n"
                              "# TYPE perpsim_journal_commands_total counter\n"
                              "perpsim_journal_commands_total %" PRIu64 "\n"
                              "# HELP perpsim_journal_bytes_total Bytes written to the journal.\n"
                              "# TYPE perpsim_journal_bytes_total counter\n"
                              "perpsim_journal_bytes_total %" PRIu64 "\n"
                              "# HELP perpsim_journal_writes_total Group commits (one write each).\n"
                              "# TYPE perpsim_journal_writes_total counter\n"
                              "perpsim_journal_writes_total %" PRIu64 "\n"
                              "# HELP perpsim_journal_syncs_total fdatasync calls.\n"
                              "# TYPE perpsim_journal_syncs_total counter\n"
                              "perpsim_journal_syncs_total %" PRIu64 "\n"
                              "# HELP perpsim_journal_sync_seconds_total Time spent in fdatasync.\n"
                              "# TYPE perpsim_journal_sync_seconds_total counter\n"
                              "perpsim_journal_sync_seconds_total %.6f\n"
                              "# HELP perpsim_journal_durable_seq The last command on disk.\n"
                              "# TYPE perpsim_journal_durable_seq gauge\n"
                              "perpsim_journal_durable_seq %" PRIu64 "\n",
                              js.records, js.bytes, js.batches, js.syncs, (double)js.sync_ns / 1e9,
                              js.durable_seq);
    n += ws_metrics(s->ws, buf + n, cap - n);
    free(r->reply);
    r->reply = buf;
    r->status = 200;
    r->state = RS_READY;
    r->text_plain = true;
}

/* ---- the route table ------------------------------------------------------------------------------------------ */

struct route {
    const char *method;
    const char *path;
    void (*fn)(struct req *r);
    bool read;        /* charged as a read at once */
};

/* GET /instrument: the tradeable instruments; asked for an index by its
 * symbol (?symbol=.BXBT), that index's row, as BitMEX answers. */
static void r_instrument(struct req *r)
{
    const char *want = str_param(r->params, "symbol");
    get_instruments(r, false, want && want[0] == '.', true);
}
static void r_active(struct req *r) { get_instruments(r, true, false, true); }
static void r_active_idx(struct req *r) { get_instruments(r, true, true, true); }
static void r_indices(struct req *r) { get_instruments(r, false, true, false); }
static void r_exec(struct req *r) { get_executions(r, false); }
static void r_trade_hist(struct req *r) { get_executions(r, true); }
static void r_margin(struct req *r) { get_margin(r, false); }
static void r_wallet(struct req *r) { get_margin(r, true); }
static void r_bulk_new(struct req *r) { bulk(r, false); }
static void r_bulk_amend(struct req *r) { bulk(r, true); }
static void r_leverage(struct req *r) { post_position(r, POS_LEVERAGE); }
static void r_isolate(struct req *r) { post_position(r, POS_ISOLATE); }
static void r_risk(struct req *r) { post_position(r, POS_RISK); }
static void r_transfer(struct req *r) { post_position(r, POS_TRANSFER); }
static void r_empty(struct req *r) { reply_json(r, 200, cJSON_CreateArray()); }
static void a_deposit(struct req *r) { admin_money(r, CMD_DEPOSIT); }
static void a_withdraw(struct req *r) { admin_money(r, CMD_WITHDRAW); }

static const struct route api_routes[] = {
    {"GET", "announcement", r_empty, true},
    {"GET", "announcement/urgent", r_empty, true},
    {"GET", "schema", get_schema, true},
    {"GET", "schema/websocketHelp", get_ws_help, true},
    {"GET", "wallet/assets", get_assets, true},
    {"GET", "instrument", r_instrument, true},
    {"GET", "instrument/active", r_active, true},
    {"GET", "instrument/activeAndIndices", r_active_idx, true},
    {"GET", "instrument/indices", r_indices, true},
    {"GET", "orderBook/L2", get_l2, true},
    {"GET", "trade", get_trades, true},
    {"GET", "trade/bucketed", get_bucketed, true},
    {"GET", "funding", get_funding, true},
    {"GET", "insurance", get_insurance, true},
    {"GET", "liquidation", get_liquidations, true},
    {"GET", "settlement", get_settlements, true},
    {"GET", "order", get_orders, true},
    {"POST", "order", post_order, false},
    {"PUT", "order", put_order, false},
    {"DELETE", "order", delete_order, false},
    {"DELETE", "order/all", delete_all, false},
    {"POST", "order/bulk", r_bulk_new, false},
    {"PUT", "order/bulk", r_bulk_amend, false},
    {"POST", "order/cancelAllAfter", post_cancel_after, false},
    {"GET", "execution", r_exec, true},
    {"GET", "execution/tradeHistory", r_trade_hist, true},
    {"GET", "position", get_positions, true},
    {"POST", "position/leverage", r_leverage, false},
    {"POST", "position/isolate", r_isolate, false},
    {"POST", "position/riskLimit", r_risk, false},
    {"POST", "position/transferMargin", r_transfer, false},
    {"GET", "user", get_user, true},
    {"GET", "user/margin", r_margin, true},
    {"GET", "user/wallet", r_wallet, true},
    {"GET", "user/walletHistory", get_wallet_history, true},
    {"GET", "user/walletSummary", get_wallet_summary, true},
    {"GET", "user/commission", get_commission, true},
    {"POST", "user/requestWithdrawal", post_withdrawal, false},
    {"GET", "apiKey", get_api_keys, true},
};

static const struct route admin_routes[] = {
    {"POST", "accounts", admin_accounts, false},
    {"GET", "accounts", admin_class, false},
    {"POST", "deposit", a_deposit, false},
    {"POST", "withdraw", a_withdraw, false},
    {"POST", "index", admin_index, false},
    {"POST", "funding", admin_funding, false},
    {"GET", "audit", admin_audit, false},
    {"GET", "spam", admin_spam, false},
    {"POST", "spam", admin_spam, false},
    {"GET", "state", admin_state, false},
    {"GET", "report", admin_report, false},
    {"GET", "market", admin_market, false},
    {"POST", "market", admin_market, false},
    {"GET", "clock", admin_clock, false},
    {"POST", "clock", admin_clock, false},
    {"POST", "clock/advance", admin_advance, false},
    {"GET", "checkpoint", admin_checkpoint, false},
    {"POST", "checkpoint", admin_checkpoint, false},
    {"POST", "restore", admin_restore, false},
    {"GET", "loadshed", admin_loadshed, false},
    {"POST", "loadshed", admin_loadshed, false},
    {"GET", "faults", faults_admin, false},
    {"POST", "faults", faults_admin, false},
    {"DELETE", "faults", faults_admin, false},
};

/* The web page's files (web.h) at /; without them, / says why. */
static void serve_web(struct req *r, const char *path)
{
    const struct web_file *f = web_find(r->s->web, path);
    if (f) {
        r->status = 200;
        r->reply_static = f->body;
        r->reply_static_len = f->len;
        r->content_type = f->ctype;
        r->cache_control = f->immutable ? "public, max-age=31536000, immutable" : "no-cache";
        r->state = RS_READY;
        return;
    }
    if (strcmp(path, "/") != 0) {
        reply_error(r, 404, HTTP, "Not Found");
        return;
    }
    char note[1024];
    snprintf(note, sizeof(note),
             "<!doctype html><meta charset=utf-8><title>perpsim</title><h1>perpsim</h1>"
             "<p>The web page is not built here (%s): <code>make run</code> builds it "
             "(npm, in <code>web/</code>). The API is at <code>/api/v1</code>.</p>",
             r->s->web_note[0] ? "its files were not found" : "no --web-dir");
    free(r->reply);
    r->reply = strdup(note);
    r->status = 404;
    r->content_type = "text/html; charset=utf-8";
    r->state = RS_READY;
}

static void serve(struct req *r, const struct route *t, size_t n, const char *rest, bool api)
{
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].path, rest) != 0)
            continue;
        path_known = true;
        if (strcmp(t[i].method, r->method) != 0)
            continue;
        if (api && t[i].read && !rate_limit(r, rl_cost_single(), false, false, true))
            return;
        t[i].fn(r);
        return;
    }
    if (path_known)
        reply_error(r, 405, HTTP, "Method Not Allowed");
    else
        reply_error(r, 404, HTTP, "Not Found");
}

void route(struct req *r)
{
    char path[256];
    size_t len = r->query ? (size_t)(r->query - 1 - r->path) : strlen(r->path);
    if (len >= sizeof(path)) {
        reply_error(r, 404, HTTP, "Not Found");
        return;
    }
    memcpy(path, r->path, len);
    path[len] = 0;
    if (len > 1 && path[len - 1] == '/')
        path[len - 1] = 0;
    if (strcmp(path, "/api/v1") == 0 && strcmp(r->method, "GET") == 0) {
        /* BitMEX's root: the API's name and version and the exchange's
         * time, which a bot driving a stepped clock signs with. */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "BitMEX API");
        cJSON_AddStringToObject(o, "version", "1.2.0");
        cJSON_AddNumberToObject(o, "timestamp", (double)engine_ms(r->s));
        reply_json(r, 200, o);
    } else if (strncmp(path, "/api/v1/", 8) == 0) {
        serve(r, api_routes, sizeof(api_routes) / sizeof(api_routes[0]), path + 8, true);
    } else if (strncmp(path, "/admin/v1/", 10) == 0) {
        if (admin_ok(r))
            serve(r, admin_routes, sizeof(admin_routes) / sizeof(admin_routes[0]), path + 10, false);
    } else if (strcmp(path, "/metrics") == 0 && strcmp(r->method, "GET") == 0) {
        get_metrics(r);
    } else if (strcmp(path, "/explain/v1/liquidation") == 0 && strcmp(r->method, "GET") == 0) {
        /* Counted as a read of the API: no one loops it for free. */
        if (rate_limit(r, rl_cost_single(), false, false, true))
            explain_liquidation(r);
    } else if (strcmp(path, "/explain/v1/funding") == 0 && strcmp(r->method, "GET") == 0) {
        if (rate_limit(r, rl_cost_single(), false, false, true))
            explain_funding(r);
    } else if ((strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) &&
               (r->s->web || strcmp(path, "/") == 0)) {
        serve_web(r, path);
    } else {
        reply_error(r, 404, HTTP, "Not Found");
    }
}
