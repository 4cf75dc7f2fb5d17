/*
 * main.c - the perpsim program: a BitMEX-compatible exchange on
 * http://127.0.0.1:8080 (api/server.h), configured from defaults, then an
 * optional JSON config file, then the command line, in that order.
 */
#define _GNU_SOURCE
#include "api/server.h"

#include <errno.h>
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

static const char usage[] =
    "usage: perpsim [options]\n"
    "\n"
    "A BitMEX-compatible exchange emulator: REST under /api/v1, the testnet\n"
    "admin API under /admin/v1, Prometheus metrics under /metrics.\n"
    "\n"
    "  --config FILE          JSON config (see README: listen, adminToken, rateLimit,\n"
    "                         loadShed, indices, instruments, demo)\n"
    "  --listen HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 = any free)\n"
    "  --data-dir DIR         directory for the server's files (created if missing)\n"
    "  --admin-token TOKEN    bearer token of the admin API (else $PERPSIM_ADMIN_TOKEN,\n"
    "                         else the config, else a random one printed at start)\n"
    "  --admin-remote         let non-loopback clients use the admin API\n"
    "  --rate-limit PROFILE   default (300/5 min signed, 150 unsigned), 2021\n"
    "                         (120/min + 10/s on order routes) or off (backtests)\n"
    "  --ban-errors N         ban a client after N 4xx/5xx in the ban window (0 = off)\n"
    "  --latency-cap-ms N     worst queue wait a write may meet before 503 (default 3000)\n"
    "  --queue-depth N        a fixed write-queue depth instead of the latency cap\n"
    "  --engine-delay-us N    slow the engine by N us per write (demonstrations)\n"
    "  --http-threads N       HTTP worker threads (default 2)\n"
    "  --no-demo              do not create the demo account\n"
    "  --quiet                print only the listening line\n"
    "  --help                 this text\n";

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

static int64_t rate_e8(double v) { return (int64_t)(v * 1e8 + (v < 0 ? -0.5 : 0.5)); }
static int64_t px8(double v) { return (int64_t)(v * 1e8 + 0.5); }

/* Overrides of a default instrument from the config file. */
static int instrument_override(struct srv_config *c, const cJSON *in)
{
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(in, "symbol");
    if (!cJSON_IsString(y))
        return -1;
    for (uint16_t i = 0; i < c->exch.engine.instruments_count; i++) {
        struct engine_instrument *ei = &c->exch.engine.instruments[i];
        if (strcasecmp(ei->symbol, y->valuestring) != 0)
            continue;
        struct exch_instrument *x = &c->exch.inst[i];
        ei->tick_px = px8(num(in, "tickSize", (double)ei->tick_px / 1e8));
        ei->max_px = px8(num(in, "maxPrice", (double)ei->max_px / 1e8));
        ei->lot_qty = (qty_t)num(in, "lotSize", (double)ei->lot_qty);
        ei->max_order_qty = (qty_t)num(in, "maxOrderQty", (double)ei->max_order_qty);
        x->contract.tick_px = ei->tick_px;
        x->contract.lot_qty = ei->lot_qty;
        x->im_e8 = rate_e8(num(in, "initMargin", (double)x->im_e8 / 1e8));
        x->mm_e8 = rate_e8(num(in, "maintMargin", (double)x->mm_e8 / 1e8));
        x->maker_fee_e8 = rate_e8(num(in, "makerFee", (double)x->maker_fee_e8 / 1e8));
        x->taker_fee_e8 = rate_e8(num(in, "takerFee", (double)x->taker_fee_e8 / 1e8));
        x->settle_fee_e8 = rate_e8(num(in, "settlementFee", (double)x->settle_fee_e8 / 1e8));
        x->risk_limit = (sats_t)num(in, "riskLimit", (double)x->risk_limit);
        x->risk_step = (sats_t)num(in, "riskStep", (double)x->risk_step);
        if (x->perpetual)
            x->funding_interval_ms =
                (ms_t)(num(in, "fundingIntervalHours", (double)x->funding_interval_ms / 3.6e6) * 3.6e6);
        return 0;
    }
    return -1;
}

static int load_config(struct srv_config *c, const char *path, bool *demo, bool *token_set)
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
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "listen")) && (!cJSON_IsString(v) || parse_listen(c, v->valuestring)))
        rc = fail("config: bad listen (want \"HOST:PORT\") in %s", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "adminToken")) && cJSON_IsString(v)) {
        snprintf(c->admin_token, sizeof(c->admin_token), "%s", v->valuestring);
        *token_set = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "rateLimit")) && (!cJSON_IsString(v) || rate_profile(v->valuestring, &c->rate_limit)))
        rc = fail("config: bad rateLimit in %s (default, 2021 or off)", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "demo")) && cJSON_IsBool(v))
        *demo = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "engineDelayUs")) && cJSON_IsNumber(v))
        c->engine_delay_ns = (int64_t)(v->valuedouble * 1000);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "loadShed")) && cJSON_IsObject(v)) {
        double cap_ms = num(v, "latencyCapMs", 0), depth = num(v, "fixedDepth", -1);
        if (cap_ms > 0) {
            c->ls.mode = LS_LATENCY_CAP;
            c->ls.latency_cap_ns = (int64_t)(cap_ms * 1e6);
        }
        if (depth >= 0) {
            c->ls.mode = LS_FIXED;
            c->ls.fixed_depth = (uint32_t)depth;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "indices")) && cJSON_IsObject(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            bool found = false;
            for (uint16_t k = 0; k < c->exch.indices_count; k++)
                if (strcmp(c->exch.index[k], it->string) == 0 && cJSON_IsNumber(it)) {
                    c->index_px[k] = px8(it->valuedouble);
                    found = true;
                }
            if (!found)
                rc = fail("config: unknown index %s", it->string);
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "instruments")) && cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (instrument_override(c, it) != 0)
                rc = fail("config: instruments: unknown or missing symbol in %s", path);
        }
    }
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
    struct srv_config cfg;
    srv_config_default(&cfg, 0);
    bool demo = true, token_set = false;
    const char *token_source = "the --admin-token flag";
    const char *data_dir = NULL;
    /* The config file first, so flags override it wherever they appear. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return fail("%s needs a value", argv[i]);
            if (load_config(&cfg, argv[i + 1], &demo, &token_set))
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
            return 0;
        } else if (strcmp(a, "--no-demo") == 0) {
            demo = false;
        } else if (strcmp(a, "--quiet") == 0) {
            cfg.quiet = true;
        } else if (strcmp(a, "--admin-remote") == 0) {
            cfg.admin_remote = true;
        } else if (!v) {
            return fail("unknown option or missing value: %s (see --help)", a);
        } else if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(&cfg, v))
                return fail("--listen wants HOST:PORT, got %s", v);
            i++;
        } else if (strcmp(a, "--data-dir") == 0) {
            data_dir = v;
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
            cfg.ls.mode = LS_LATENCY_CAP;
            cfg.ls.latency_cap_ns = (int64_t)n * 1000000;
            i++;
        } else if (strcmp(a, "--queue-depth") == 0) {
            if (parse_long(v, 0, (long)cfg.ls.capacity, &n))
                return fail("--queue-depth wants 0..65536, got %s", v);
            cfg.ls.mode = LS_FIXED;
            cfg.ls.fixed_depth = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--engine-delay-us") == 0) {
            if (parse_long(v, 0, 10000000, &n))
                return fail("--engine-delay-us wants 0..10000000, got %s", v);
            cfg.engine_delay_ns = (int64_t)n * 1000;
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
    if (!cfg.quiet) {
        printf("perpsim 0.1.0: a BitMEX-compatible exchange emulator\n");
        printf("  REST API     http://%s:%u/api/v1   (sign requests as BitMEX documents)\n", cfg.host, port);
        printf("  admin API    http://%s:%u/admin/v1 (Authorization: Bearer <token>)\n", cfg.host, port);
        printf("  admin token  from %s%s%s\n", token_source, token_set ? "" : ": ",
               token_set ? "" : cfg.admin_token);
        printf("  metrics      http://%s:%u/metrics\n", cfg.host, port);
        printf("  instruments ");
        for (uint16_t i = 0; i < cfg.exch.engine.instruments_count; i++)
            printf(" %s", cfg.exch.engine.instruments[i].symbol);
        printf("\n  rate limits  %s; write queue: %s\n",
               cfg.rate_limit == RLP_OFF ? "off" : cfg.rate_limit == RLP_2021 ? "BitMEX 2021 profile" : "BitMEX 2019 profile",
               cfg.ls.mode == LS_FIXED ? "fixed depth" : "latency cap");
        if (data_dir)
            printf("  data dir     %s\n", data_dir);
        if (demo) {
            sats_t dep[CURRENCIES_MAX] = {INT64_C(1000000000), INT64_C(100000000000)};
            uint32_t account;
            char key[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
            if (srv_create_account(s, dep, &account, key, secret) == 0)
                printf("  demo account %u (10 XBT, 100,000 USDT): apiKey %s apiSecret %s\n", account, key,
                       secret);
        }
        printf("  new accounts: curl -X POST -H 'Authorization: Bearer <token>' -d "
               "'{\"deposits\":{\"XBt\":100000000}}' http://%s:%u/admin/v1/accounts\n", cfg.host, port);
    }
    printf("listening on http://%s:%u\n", cfg.host, port);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    if (!cfg.quiet)
        printf("perpsim: stopping (signal %d)\n", sig);
    srv_stop(s);
    return 0;
}
