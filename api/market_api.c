/*
 * market_api.c - the living market on the server (market/market.h): its
 * parameters as JSON (the config file's "market" object and the admin API
 * share the names), GET/POST /admin/v1/market, and its start after the
 * demo account.
 */
#define _GNU_SOURCE
#include "api/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/timefmt.h"

static cJSON *market_json(struct srv *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "enabled", s->market && !s->market_paused);
    struct market_params p = s->cfg.market;
    if (s->market)
        market_params_get(s->market, &p);
    market_params_add_json(&p, o);
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
static void market_post(struct req *r);

void admin_market(struct req *r)
{
    struct srv *s = r->s;
    pthread_mutex_lock(&s->admin_lock);
    if (strcmp(r->method, "GET") == 0)
        reply_json(r, 200, market_json(s));
    else
        market_post(r);
    pthread_mutex_unlock(&s->admin_lock);
}

/* (admin_lock held) */
static void market_post(struct req *r)
{
    struct srv *s = r->s;
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

/* ---- index paths from a CSV ---------------------------------------------------------- */

struct paths {
    ms_t *t[INDICES_MAX];
    px_t *px[INDICES_MAX];
    uint32_t n[INDICES_MAX], cap[INDICES_MAX];
};

static void paths_free(struct paths *p)
{
    for (int k = 0; k < INDICES_MAX; k++) {
        free(p->t[k]);
        free(p->px[k]);
    }
}

static int path_push(struct paths *p, int k, ms_t t, px_t px)
{
    if (p->n[k] == p->cap[k]) {
        uint32_t nc = p->cap[k] ? p->cap[k] * 2 : 256;
        ms_t *tt = realloc(p->t[k], nc * sizeof(*tt));
        if (!tt)
            return -1;
        p->t[k] = tt;
        px_t *pp = realloc(p->px[k], nc * sizeof(*pp));
        if (!pp)
            return -1;
        p->px[k] = pp;
        p->cap[k] = nc;
    }
    p->t[k][p->n[k]] = t;
    p->px[k][p->n[k]++] = px;
    return 0;
}

/* `timestamp,symbol,price` rows (a header line may come first): the
 * timestamp ISO 8601 or Unix milliseconds, the symbol an index's, the
 * price > 0; each index's rows in time order. A bad line stops with its
 * file and line number. */
static int read_paths(const struct exch_config *x, const char *file, struct paths *p, char *err, size_t cap)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, cap, "index csv %s: cannot open it", file);
        return -1;
    }
    char line[512];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof(line), f); no++) {
        size_t len = strcspn(line, "\r\n");
        if (line[len] == 0 && !feof(f)) {
            snprintf(err, cap, "index csv %s line %u: longer than %zu bytes", file, no, sizeof(line) - 2);
            rc = -1;
            break;
        }
        line[len] = 0;
        if (!len || (no == 1 && (strncmp(line, "timestamp,", 10) == 0 || strncmp(line, "\xEF\xBB\xBFtimestamp,", 13) == 0)))
            continue;
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2 || strchr(c2 + 1, ',')) {
            snprintf(err, cap, "index csv %s line %u: want timestamp,symbol,price", file, no);
            rc = -1;
            break;
        }
        *c1 = *c2 = 0;
        ms_t t = 0;
        char *end = NULL, *ts = line;
        if (no == 1 && (unsigned char)ts[0] == 0xEF && (unsigned char)ts[1] == 0xBB &&
            (unsigned char)ts[2] == 0xBF)
            ts += 3; /* a UTF-8 byte order mark */
        errno = 0;
        long long ms = strtoll(ts, &end, 10);
        if (end != ts && *end == 0)
            t = errno == ERANGE || ms > INT64_C(253402300799999) ? -1 : ms; /* to 9999-12-31 */
        else if (tf_parse_time(ts, strlen(ts), &t) != TF_OK)
            t = -1;
        int k = -1;
        for (uint16_t i = 0; i < x->indices_count; i++)
            if (strcasecmp(c1 + 1, x->index[i]) == 0)
                k = i;
        double px = strtod(c2 + 1, &end);
        const char *bad = t <= 0                                   ? "a bad timestamp"
                          : k < 0                                  ? "not an index of this exchange"
                          : end == c2 + 1 || *end || !(px >= 1e-8 && px < 1e9) ? "a bad price"
                          : p->n[k] && t < p->t[k][p->n[k] - 1]    ? "before the index's previous row"
                                                                   : NULL;
        if (bad) {
            snprintf(err, cap, "index csv %s line %u: %s", file, no, bad);
            rc = -1;
        } else if (path_push(p, k, t, (px_t)(px * PX_SCALE + 0.5)) != 0) {
            snprintf(err, cap, "index csv %s: out of memory", file);
            rc = -1;
        }
    }
    fclose(f);
    uint32_t rows = 0;
    for (int k = 0; k < INDICES_MAX; k++)
        rows += p->n[k];
    if (rc == 0 && rows == 0) {
        snprintf(err, cap, "index csv %s: no rows", file);
        rc = -1;
    }
    return rc;
}

int srv_market_start(struct srv *s, char *err, size_t errcap)
{
    if (s->market)
        return 0;
    struct market_params p = s->cfg.market;
    if (!s->cfg.market_seed_set)
        p.seed = s->cfg.seed ? s->cfg.seed : 1;
    struct paths paths;
    memset(&paths, 0, sizeof(paths));
    if (s->cfg.index_csv[0] && read_paths(s->x, s->cfg.index_csv, &paths, err, errcap) != 0) {
        paths_free(&paths);
        return -1;
    }
    const ms_t *t[INDICES_MAX];
    const px_t *px[INDICES_MAX];
    for (int k = 0; k < INDICES_MAX; k++) {
        t[k] = paths.t[k];
        px[k] = paths.px[k];
    }
    struct market *m = market_start_paths(s->core, &p, t, px, paths.n, err, errcap);
    paths_free(&paths);
    pthread_mutex_lock(&s->admin_lock);
    s->market = m;
    pthread_mutex_unlock(&s->admin_lock);
    return m ? 0 : -1;
}
