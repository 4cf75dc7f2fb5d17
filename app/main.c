/*
 * main.c - the perpsim program: a BitMEX-compatible exchange on
 * http://127.0.0.1:8080 (api/server.h), configured from defaults, then an
 * optional JSON config file, then the command line, in that order.
 */
#define _GNU_SOURCE
#include "api/server.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "api/auth.h"
#include "api/timefmt.h"
#include "app/hugepages.h"
#include "app/backtest.h"
#include "app/replay.h"

static const char usage[] =
    "usage: perpsim [options]\n"
    "\n"
    "A BitMEX-compatible exchange emulator: REST under /api/v1, the testnet\n"
    "admin API under /admin/v1, Prometheus metrics under /metrics.\n"
    "\n"
    "  --config FILE          JSON config (see README: listen, adminToken, rateLimit,\n"
    "                         loadShed, indices, instruments, defaultInstruments, demo)\n"
    "  --listen HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 = any free)\n"
    "  --admin-token TOKEN    bearer token of the admin API (else $PERPSIM_ADMIN_TOKEN,\n"
    "                         else the config, else a random one printed at start)\n"
    "  --admin-remote         let non-loopback clients use the admin API\n"
    "  --rate-limit PROFILE   default (300/5 min signed, 150 unsigned), 2021\n"
    "                         (120/min + 10/s on order routes) or off (backtests)\n"
    "  --ban-errors N         ban a client after N 4xx/5xx in the ban window (0 = off)\n"
    "  --http-max-per-ip N    connections from one address (default 3000)\n"
    "  --http-idle-s N, --http-header-s N, --http-body-s N  a connection between\n"
    "                         requests is closed after N s (90), a request's headers\n"
    "                         must arrive within N s of its first line (30), its body\n"
    "                         within N s (60)\n"
    "  --max-expires-ahead S  api-expires at most S seconds ahead of the exchange's\n"
    "                         time (default 172800, two days; 0 = no bound)\n"
    "  --latency-cap-ms N     worst queue wait a write may meet before 503 (default 3000)\n"
    "  --queue-depth N        a fixed write-queue depth instead of the latency cap\n"
    "  --engine-delay-us N    every write takes at least N us in the engine (demonstrations)\n"
    "  --http-threads N       HTTP worker threads (default 2)\n"
    "  --warm-us N            keep the CPUs awake N us after each request with idle-priority\n"
    "                         spinners: no hypervisor wake-ups on a VM (default 1000, 0 = off)\n"
    "  --engine-thread-only   every write goes through the engine thread (by default a\n"
    "                         single write on an idle engine runs on its HTTP thread)\n"
    "  --keep-orders N        terminal orders the read model keeps, oldest dropped first;\n"
    "                         live orders are always kept (default 1000000, 0 = all)\n"
    "  --keep-executions N    executions kept, all accounts together (default 1000000,\n"
    "                         0 = all)\n"
    "  --keep-trades N        public trades kept per instrument (default 1000000, 0 = all)\n"
    "  --clock MODE           the engine clock: real (default), stepped (time moves only\n"
    "                         when POST /admin/v1/clock/advance says) or accelerated:N\n"
    "                         (N x real time)\n"
    "  --start-time ISO       engine time at start (default now); api-expires is checked\n"
    "                         against engine time, which GET /api/v1 gives\n"
    "  --seed N               draw API keys from seed N: the same keys every run, for\n"
    "                         reproducible backtests (predictable: not for shared servers)\n"
    "  --index-csv FILE       the market's indices replay FILE's timestamp,symbol,price\n"
    "                         rows (ISO or Unix ms times) instead of their random walks\n"
    "  --no-market            no living market: no index walk, no makers or traders\n"
    "                         (an empty exchange on frozen indices, as tests need)\n"
    "  --no-websocket         no realtime WebSocket at /realtime\n"
    "  --web-dir DIR          the web page's built files, served at / (default: web/dist\n"
    "                         of the source tree, which `make run` builds; \"\": none)\n"
    "  --ws-max-per-ip N      WebSocket connections from one address (default 2000)\n"
    "  --ws-max-subs N        topics per WebSocket connection (default 256)\n"
    "  --ws-msgs-per-s N      client messages per second per connection (default 50)\n"
    "  --ws-send-buffer-kib N bytes waiting for a slow reader before it is closed\n"
    "                         with 1008 (default 8192 KiB)\n"
    "  --no-demo              do not create the demo account\n"
    "  --quiet                print only the listening line\n"
    "  --help                 this text\n";

/* The journal's options (one string is kept under C's 4,095 bytes). */
static const char usage_data[] =
    "  --data-dir DIR         keep the exchange in DIR: every command journaled before\n"
    "                         its reply; on start the journal there is recovered (its\n"
    "                         config is the exchange's). Without it nothing is kept\n"
    "  --fsync POLICY         batch (default: each group of writes synced before their\n"
    "                         replies), interval:MS (synced every MS ms) or off; every\n"
    "                         policy survives a process crash (docs/journal.md)\n"
    "  --start-from-last-good recover past a corrupt journal: up to its last good\n"
    "                         command, the rest set aside (renamed, never deleted)\n"
    "  --journal-segment-mb N a new journal segment past N MiB (default 64)\n"
    "\n"
    "       perpsim replay --data-dir DIR [--to-seq N]   (re-apply a journal, print its hash)\n"
    "       perpsim backtest --data FILE... [--report FILE]  (history replayed into the book)\n";


static ms_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "perpsim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

static int parse_listen(struct srv_config *c, const char *v)
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

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int rate_profile(const char *v, enum rl_profile *p)
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
        return fail("%s", "config: defaultInstruments must be true or false");
    bool defaults = !d || cJSON_IsTrue(d);
    if (!defaults) {
        /* A market from scratch: the indices come with the instruments. */
        x->engine.instruments_count = 0;
        x->indices_count = 0;
        memset(c->core.index_px, 0, sizeof(c->core.index_px));
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "instruments");
    if (v && !cJSON_IsArray(v))
        return fail("%s", "config: instruments must be an array");
    int pos = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int rc = instrument_entry(c, &cs, it, pos++);
        if (rc)
            return rc;
    }
    if (x->engine.instruments_count == 0)
        return fail("%s", "config: defaultInstruments is false and instruments defines none");
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "indices"))) {
        if (!cJSON_IsObject(v))
            return fail("%s", "config: indices must be an object such as {\".BXBT\": 60000}");
        cJSON_ArrayForEach(it, v)
        {
            int k = index_find(x, it->string);
            if (k < 0)
                return fail("config: indices: unknown index %s (no instrument uses it)", it->string);
            if (!cJSON_IsNumber(it) || px8(it->valuedouble, &c->core.index_px[k]) != 0)
                return fail("config: indices: %s must be a positive price with at most 8 decimals", it->string);
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

static int load_config(struct srv_config *c, const char *path, bool *demo, bool *token_set, bool *market_on)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail("cannot open config %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = (cap + 4096) * 2;
            char *p = realloc(text, cap);
            if (!p) {
                fclose(f);
                free(text);
                return fail("%s", "out of memory");
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
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return fail("config %s is not a JSON object", path);
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
            rc = fail("config: unknown key %s", v->string);
            break;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "listen")) && (!cJSON_IsString(v) || parse_listen(c, v->valuestring)))
        rc = fail("config: bad listen (want \"HOST:PORT\") in %s", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "adminToken"))) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof(c->admin_token))
            rc = fail("config: adminToken must be a string of at most 128 characters in %s", path);
        else {
            snprintf(c->admin_token, sizeof(c->admin_token), "%s", v->valuestring);
            *token_set = true;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "rateLimit")) && (!cJSON_IsString(v) || rate_profile(v->valuestring, &c->rate_limit)))
        rc = fail("config: bad rateLimit in %s (default, 2021 or off)", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "demo"))) {
        if (!cJSON_IsBool(v))
            rc = fail("config: demo must be true or false in %s", path);
        else
            *demo = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "market"))) {
        char merr[160];
        if (cJSON_IsFalse(v)) {
            *market_on = false;
        } else if (!cJSON_IsObject(v) || market_params_json(v, &c->market, market_on, merr, sizeof(merr)) != 0) {
            rc = fail("config: market: %s", cJSON_IsObject(v) ? merr : "want false or an object of parameters");
        } else if (cJSON_GetObjectItemCaseSensitive(v, "seed")) {
            c->market_seed_set = true;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "engineDelayUs"))) {
        if (!whole_in(v, 0, 10000000))
            rc = fail("config: engineDelayUs must be a whole number 0..10000000 in %s", path);
        else
            c->core.engine_delay_ns = (int64_t)v->valuedouble * 1000;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "loadShed"))) {
        const cJSON *cap = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "latencyCapMs") : NULL;
        const cJSON *depth = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "fixedDepth") : NULL;
        if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 1 || (!cap && !depth) ||
            (cap && !whole_in(cap, 1, 3600000)) || (depth && !whole_in(depth, 0, (double)c->core.ls.capacity))) {
            rc = fail("config: loadShed must be {\"latencyCapMs\": 1..3600000} or {\"fixedDepth\": 0..65536} "
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

static void random_token(char *out, size_t cap)
{
    char id[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
    auth_generate_key(id, secret);
    snprintf(out, cap, "%s", secret);
}

int main(int argc, char **argv)
{
    hugepages_reexec(argv);
    if (argc > 1 && strcmp(argv[1], "replay") == 0)
        return replay_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backtest") == 0) {
        bool serve = false;
        for (int i = 2; i < argc; i++)
            serve |= strcmp(argv[i], "--serve") == 0;
        if (!serve)
            return backtest_main(argc - 1, argv + 1);
        /* `perpsim backtest --serve --data FILE... [--strict] [--report F]
         * [server options]` is the server with --history FILE... */
        static char **args; /* the process's to its end */
        args = calloc((size_t)argc + 1, sizeof(*args));
        if (!args)
            return fail("%s", "out of memory");
        int n = 0;
        args[n++] = argv[0];
        for (int i = 2; i < argc; i++) {
            const char *a = argv[i];
            if (strcmp(a, "--serve") == 0)
                continue;
            if (strcmp(a, "--speed") == 0 && i + 1 < argc) {
                /* --speed N: the clock runs at N x from the first row */
                static char clk[48];
                char *end = NULL;
                long long sp = strtoll(argv[i + 1], &end, 10);
                if (end == argv[i + 1] || *end || sp < 1 || sp > 1000000)
                    return fail("backtest --serve: --speed wants N, 1..1000000 (the clock runs at N x; "
                                "without --speed it is stepped: POST /admin/v1/clock/advance moves it), got %s",
                                argv[i + 1]);
                snprintf(clk, sizeof(clk), "accelerated:%lld", sp);
                args[n++] = "--clock";
                args[n++] = clk;
                i++;
                continue;
            }
            args[n++] = strcmp(a, "--data") == 0     ? "--history"
                        : strcmp(a, "--strict") == 0 ? "--history-strict"
                        : strcmp(a, "--report") == 0 ? "--history-report"
                        : strcmp(a, "--plot") == 0   ? "--history-plot"
                        : strcmp(a, "--from") == 0   ? "--history-from"
                        : strcmp(a, "--to") == 0     ? "--history-to"
                                                     : argv[i];
        }
        argc = n;
        argv = args;
    }
    struct srv_config cfg;
    /* The start time first: the default future expires at the quarter end
     * after it. A served backtest starts at its first row. */
    ms_t start_ms = 0;
    char herr[1024];
    ms_t hist_ms = 0;
    struct served *served = served_open(argc, argv, &hist_ms, herr, sizeof(herr));
    if (!served && herr[0])
        return fail("%s", herr);
    if (served)
        start_ms = hist_ms;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--start-time") == 0) {
            const char *v = argv[i + 1];
            if (tf_parse_time(v, strlen(v), &start_ms) != TF_OK || start_ms <= 0)
                return fail("--start-time wants an ISO 8601 time after 1970, got %s", v);
        }
    srv_config_default(&cfg, start_ms);
    snprintf(cfg.web_dir, sizeof(cfg.web_dir), "%s", PERPSIM_WEB_DIR);
    bool demo = true, token_set = false, market_on = served == NULL;
    if (served) {
        cfg.clock_mode = CLOCK_STEPPED;
        cfg.start_ms = start_ms;
        /* As `perpsim backtest` (docs/backtest.md): the history account
         * holds the whole book. */
        cfg.core.exch.engine.open_orders_max = 100000;
        cfg.core.exch.engine.verify_every = 1000;
        cfg.attach = served_attach;
        cfg.attach_ctx = served;
        cfg.report = served_report_fn;
    }
    const char *token_source = "the --admin-token flag";
    const char *data_dir = NULL;
    /* The config file first, so flags override it wherever they appear. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return fail("%s needs a value", argv[i]);
            if (load_config(&cfg, argv[i + 1], &demo, &token_set, &market_on))
                return 2;
            if (token_set)
                token_source = "the config file";
        }
    const char *env = getenv("PERPSIM_ADMIN_TOKEN");
    if (env && *env) {
        snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", env);
        token_set = true;
        token_source = "the environment variable PERPSIM_ADMIN_TOKEN";
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            fputs(usage_data, stdout);
            return 0;
        } else if (strcmp(a, "--no-demo") == 0) {
            demo = false;
        } else if (strcmp(a, "--no-market") == 0) {
            market_on = false;
        } else if (strcmp(a, "--quiet") == 0) {
            cfg.quiet = true;
        } else if (strcmp(a, "--no-websocket") == 0) {
            cfg.websocket = false;
        } else if (strcmp(a, "--admin-remote") == 0) {
            cfg.admin_remote = true;
        } else if (strcmp(a, "--engine-thread-only") == 0) {
            cfg.core.engine_thread_only = true;
        } else if (strcmp(a, "--start-from-last-good") == 0) {
            cfg.journal.last_good = true;
        } else if (!v) {
            return fail("unknown option or missing value: %s (see --help)", a);
        } else if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(&cfg, v))
                return fail("--listen wants HOST:PORT, got %s", v);
            i++;
        } else if (strcmp(a, "--data-dir") == 0) {
            if (strlen(v) >= sizeof(cfg.journal.dir))
                return fail("--data-dir: the path is too long: %s", v);
            data_dir = v;
            snprintf(cfg.journal.dir, sizeof(cfg.journal.dir), "%s", v);
            i++;
        } else if (strcmp(a, "--fsync") == 0) {
            if (journal_parse_fsync(v, &cfg.journal.fsync, &cfg.journal.interval_ms) != 0)
                return fail("--fsync wants batch, interval:MS (1..60000) or off, got %s", v);
            i++;
        } else if (strcmp(a, "--journal-segment-mb") == 0) {
            if (parse_long(v, 1, 65536, &n))
                return fail("--journal-segment-mb wants 1..65536, got %s", v);
            cfg.journal.segment_bytes = (uint64_t)n << 20;
            i++;
        } else if (strcmp(a, "--admin-token") == 0) {
            snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", v);
            token_set = true;
            token_source = "the --admin-token flag";
            i++;
        } else if (strcmp(a, "--rate-limit") == 0) {
            if (rate_profile(v, &cfg.rate_limit))
                return fail("--rate-limit wants default, 2021 or off, got %s", v);
            i++;
        } else if (strcmp(a, "--ban-errors") == 0) {
            if (parse_long(v, 0, 1000000, &n))
                return fail("--ban-errors wants a count, got %s", v);
            cfg.ban_errors = (int32_t)n;
            i++;
        } else if (strcmp(a, "--latency-cap-ms") == 0) {
            if (parse_long(v, 1, 3600000, &n))
                return fail("--latency-cap-ms wants 1..3600000, got %s", v);
            cfg.core.ls.mode = LS_LATENCY_CAP;
            cfg.core.ls.latency_cap_ns = (int64_t)n * 1000000;
            i++;
        } else if (strcmp(a, "--queue-depth") == 0) {
            if (parse_long(v, 0, (long)cfg.core.ls.capacity, &n))
                return fail("--queue-depth wants 0..65536, got %s", v);
            cfg.core.ls.mode = LS_FIXED;
            cfg.core.ls.fixed_depth = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--engine-delay-us") == 0) {
            if (parse_long(v, 0, 10000000, &n))
                return fail("--engine-delay-us wants 0..10000000, got %s", v);
            cfg.core.engine_delay_ns = (int64_t)n * 1000;
            i++;
        } else if (strcmp(a, "--warm-us") == 0) {
            if (parse_long(v, 0, 1000000, &n))
                return fail("--warm-us wants 0..1000000, got %s", v);
            cfg.warm_ns = (int64_t)n * 1000;
            i++;
        } else if (strcmp(a, "--keep-orders") == 0 || strcmp(a, "--keep-executions") == 0 ||
                   strcmp(a, "--keep-trades") == 0) {
            if (parse_long(v, 0, (long)STORE_KEEP_MAX, &n))
                return fail("%s wants 0..1000000000 (0 = keep all)", a);
            if (strcmp(a, "--keep-orders") == 0)
                cfg.core.limits.orders = (uint32_t)n;
            else if (strcmp(a, "--keep-executions") == 0)
                cfg.core.limits.execs = (uint32_t)n;
            else
                cfg.core.limits.trades = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--clock") == 0) {
            if (clock_mode_parse(v, &cfg.clock_mode, &cfg.clock_speed) != 0)
                return fail("--clock wants real, stepped or accelerated:N (N 1..1000000), got %s", v);
            i++;
        } else if (strcmp(a, "--web-dir") == 0) {
            if (strlen(v) >= sizeof(cfg.web_dir))
                return fail("--web-dir: the path is too long: %s", v);
            snprintf(cfg.web_dir, sizeof(cfg.web_dir), "%s", v);
            cfg.web_required = v[0] != '\0';
            i++;
        } else if (strcmp(a, "--index-csv") == 0) {
            if (strlen(v) >= sizeof(cfg.index_csv))
                return fail("--index-csv: the path is too long: %s", v);
            snprintf(cfg.index_csv, sizeof(cfg.index_csv), "%s", v);
            i++;
        } else if (strcmp(a, "--start-time") == 0) {
            i++; /* read above */
        } else if (strcmp(a, "--history") == 0) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                i++; /* read above */
        } else if (strcmp(a, "--history-strict") == 0) {
        } else if (strcmp(a, "--history-report") == 0 || strcmp(a, "--history-plot") == 0 ||
                   strcmp(a, "--history-from") == 0 || strcmp(a, "--history-to") == 0) {
            i++; /* read above */
        } else if (strcmp(a, "--seed") == 0) {
            char *end = NULL;
            unsigned long long sd = strtoull(v, &end, 10);
            if (end == v || *end || sd == 0)
                return fail("--seed wants a whole number > 0, got %s", v);
            cfg.seed = sd;
            i++;
        } else if (strcmp(a, "--ws-max-per-ip") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return fail("--ws-max-per-ip wants 1..100000, got %s", v);
            cfg.ws.max_per_ip = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-max-subs") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return fail("--ws-max-subs wants 1..100000, got %s", v);
            cfg.ws.max_subs = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-msgs-per-s") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return fail("--ws-msgs-per-s wants 1..100000, got %s", v);
            cfg.ws.msgs_per_s = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-send-buffer-kib") == 0) {
            if (parse_long(v, 16, 1048576, &n))
                return fail("--ws-send-buffer-kib wants 16..1048576, got %s", v);
            cfg.ws.send_buf = (size_t)n << 10;
            i++;
        } else if (strcmp(a, "--http-max-per-ip") == 0 || strcmp(a, "--http-idle-s") == 0 ||
                   strcmp(a, "--http-header-s") == 0 || strcmp(a, "--http-body-s") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return fail("%s wants 1..100000", a);
            if (strcmp(a, "--http-max-per-ip") == 0)
                cfg.http_max_per_ip = (unsigned)n;
            else if (strcmp(a, "--http-idle-s") == 0)
                cfg.http_idle_s = (unsigned)n;
            else if (strcmp(a, "--http-header-s") == 0)
                cfg.http_header_s = (unsigned)n;
            else
                cfg.http_body_s = (unsigned)n;
            i++;
        } else if (strcmp(a, "--max-expires-ahead") == 0) {
            if (parse_long(v, 0, 315360000, &n))
                return fail("--max-expires-ahead wants seconds 0..315360000 (0 = no bound), got %s", v);
            cfg.max_expires_ahead_s = n;
            i++;
        } else if (strcmp(a, "--http-threads") == 0) {
            if (parse_long(v, 1, 64, &n))
                return fail("--http-threads wants 1..64, got %s", v);
            cfg.http_threads = (unsigned)n;
            i++;
        } else {
            return fail("unknown option %s (see --help)", a);
        }
    }
    if (!token_set) {
        random_token(cfg.admin_token, sizeof(cfg.admin_token));
        token_source = "generated at start (set PERPSIM_ADMIN_TOKEN to choose it)";
    }
    if (served && (cfg.clock_mode == CLOCK_REAL || market_on))
        return fail("%s", "--history replays on a stepped or accelerated clock without the market: "
                          "drop --clock real and --market");
    if (data_dir && mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return fail("cannot create the data directory %s", data_dir);

    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256];
    struct srv *s = srv_start(&cfg, err, sizeof(err));
    if (!s)
        return fail("%s", err);
    unsigned port = srv_port(s);
    const struct journal_report *rec = srv_recovery(s);
    if (rec && served) {
        srv_stop(s);
        served_free(served);
        return fail("%s", "--history journals into a new --data-dir (resuming a served backtest is not supported)");
    }
    if (rec) {
        /* Always printed, --quiet or not: what the exchange came back as. */
        struct core_summary sum;
        core_summarize(srv_core(s), &sum);
        printf("perpsim: recovered %" PRIu64 " commands from %s (%u segment(s))\n", rec->commands, data_dir,
               rec->segments);
        replay_print_summary(stdout, &sum);
        replay_print_cut(stdout, rec);
        fflush(stdout);
        if (!sum.audit_ok) {
            srv_stop(s);
            return fail("%s", "the recovered state fails the money audit: stopping");
        }
    }
    if (!cfg.quiet) {
        printf("perpsim 0.1.0: a BitMEX-compatible exchange emulator\n");
        printf("  REST API     http://%s:%u/api/v1   (sign requests as BitMEX documents)\n", cfg.host, port);
        printf("  admin API    http://%s:%u/admin/v1 (Authorization: Bearer <token>)\n", cfg.host, port);
        printf("  admin token  from %s%s%s\n", token_source, token_set ? "" : ": ",
               token_set ? "" : cfg.admin_token);
        printf("  metrics      http://%s:%u/metrics\n", cfg.host, port);
        printf("  instruments ");
        for (uint16_t i = 0; i < cfg.core.exch.engine.instruments_count; i++)
            printf(" %s", cfg.core.exch.engine.instruments[i].symbol);
        printf("\n  rate limits  %s; write queue: %s\n",
               cfg.rate_limit == RLP_OFF ? "off" : cfg.rate_limit == RLP_2021 ? "BitMEX 2021 profile" : "BitMEX 2019 profile",
               cfg.core.ls.mode == LS_FIXED ? "fixed depth" : "latency cap");
        if (cfg.clock_mode != CLOCK_REAL || cfg.start_ms) {
            char ts[TF_ISO_BUF];
            tf_format_ms(cfg.start_ms ? cfg.start_ms : wall_now_ms(), ts, sizeof(ts));
            if (cfg.clock_mode == CLOCK_ACCELERATED)
                printf("  clock        accelerated %" PRId64 "x from %s\n", cfg.clock_speed, ts);
            else
                printf("  clock        %s from %s%s\n", clock_mode_name(cfg.clock_mode), ts,
                       cfg.clock_mode == CLOCK_STEPPED ? " (POST /admin/v1/clock/advance moves it)" : "");
        }
        if (data_dir)
            printf("  data dir     %s (journal, --fsync %s)\n", data_dir, journal_fsync_name(cfg.journal.fsync));
        struct key_rec demo_key;
        if (demo && rec) {
            /* The demo account came back with the rest. */
            if (core_keys_list(srv_core(s), 1, &demo_key, 1) == 1)
                printf("  demo account 1: apiKey %s apiSecret %s\n", demo_key.id, demo_key.secret);
        } else if (demo) {
            sats_t dep[CURRENCIES_MAX] = {INT64_C(1000000000), INT64_C(100000000000)};
            uint32_t account;
            char key[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
            int made = srv_create_account(s, dep, &account, key, secret);
            /* Printed once the journal has it: a key shown is a key kept. */
            core_wait_durable(srv_core(s), core_seq(srv_core(s)));
            if (made == 0)
                printf("  demo account %u (10 XBT, 100,000 USDT): apiKey %s apiSecret %s\n", account, key,
                       secret);
        }
        printf("  new accounts: curl -X POST -H 'Authorization: Bearer <token>' -d "
               "'{\"deposits\":{\"XBt\":100000000}}' http://%s:%u/admin/v1/accounts\n", cfg.host, port);
    }
    if (cfg.index_csv[0] && !market_on) {
        srv_stop(s);
        return fail("%s", "--index-csv replays the market's indices: it needs the market (drop --no-market)");
    }
    /* The history after the demo account, which keeps number 1. */
    if (served) {
        if (served_start(served, srv_core(s), err, sizeof(err)) != 0) {
            srv_stop(s);
            served_free(served);
            return fail("%s", err);
        }
        if (!cfg.quiet)
            printf("  history      replayed into the book as the clock advances "
                   "(POST /admin/v1/clock/advance; GET /admin/v1/report)\n");
    }
    /* The living market after the demo account, which keeps number 1. */
    if (market_on) {
        if (srv_market_start(s, err, sizeof(err)) != 0) {
            srv_stop(s);
            return fail("%s", err);
        }
        if (!cfg.quiet)
            printf("  market       a maker on every instrument, %u noise and %u directional traders, "
                   "the indices walking (GET /admin/v1/market; --no-market: an empty exchange)\n",
                   cfg.market.noise, cfg.market.directional);
    }
    if (!cfg.quiet && cfg.websocket)
        printf("  realtime     ws://%s:%u/realtime (BitMEX's WebSocket tables)\n", cfg.host, port);
    if (!cfg.quiet && cfg.web_dir[0]) {
        uint32_t files;
        const char *why = srv_web(s, &files);
        if (why)
            printf("  web page     not served: %s (make run builds it)\n", why);
        else
            printf("  web page     http://%s:%u/ (the market, your orders, liquidations and funding explained)\n",
                   cfg.host, port);
    }
    printf("listening on http://%s:%u\n", cfg.host, port);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    if (!cfg.quiet)
        printf("perpsim: stopping (signal %d)\n", sig);
    if (served)
        served_finish(served, srv_core(s));
    srv_stop(s);
    served_free(served);
    return 0;
}
