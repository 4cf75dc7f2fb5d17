/*
 * wsmsg.c - a client's WebSocket message read (wsmsg.h).
 */
#include "api/wsmsg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/feed.h"

enum ws_op ws_msg_read(const char *text, size_t len, cJSON **req)
{
    *req = NULL;
    if (len == 4 && memcmp(text, "ping", 4) == 0)
        return WS_OP_PING;
    if (len == 4 && memcmp(text, "help", 4) == 0)
        return WS_OP_HELP;
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return WS_OP_MALFORMED;
    }
    *req = o;
    static const struct {
        const char *name;
        enum ws_op op;
    } ops[] = {{"subscribe", WS_OP_SUBSCRIBE}, {"unsubscribe", WS_OP_UNSUBSCRIBE},
               {"authKeyExpires", WS_OP_AUTH}, {"authKey", WS_OP_AUTHKEY},
               {"cancelAllAfter", WS_OP_CANCEL_AFTER}, {"ping", WS_OP_PING}, {"help", WS_OP_HELP}};
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    if (cJSON_IsString(op))
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
            if (strcmp(op->valuestring, ops[k].name) == 0)
                return ops[k].op;
    return WS_OP_UNKNOWN;
}

/* How many bytes of s to quote, at most max, without cutting a UTF-8
 * sequence (s is valid UTF-8). */
static int quote_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

int ws_topic_read(const char *topic, const struct exch_config *x, struct ws_topic *t, char *msg, size_t cap)
{
    char name[64];
    const char *colon = strchr(topic, ':');
    size_t n = colon ? (size_t)(colon - topic) : strlen(topic);
    if (n >= sizeof(name)) {
        snprintf(msg, cap, "Unknown table: %.*s", quote_len(topic, 40), topic);
        return 400;
    }
    memcpy(name, topic, n);
    name[n] = 0;
    t->table = ft_find(name);
    if (t->table < 0) {
        snprintf(msg, cap, "Unknown table: %s", name);
        return 400;
    }
    const struct ft_info *info = ft_info(t->table);
    t->inst = FT_ALL;
    if (colon && strcmp(colon + 1, "*") != 0 && colon[1]) {
        if (!info->symbol) {
            snprintf(msg, cap, "Table %s does not take a symbol filter: %.*s", name, quote_len(topic, 40), topic);
            return 400;
        }
        t->inst = exch_config_find(x, colon + 1);
        if (t->inst < 0) {
            snprintf(msg, cap, "Unknown or expired symbol: %.*s", quote_len(colon + 1, 40), colon + 1);
            return 400;
        }
    }
    if (t->inst == FT_ALL)
        snprintf(t->canon, sizeof(t->canon), "%s", name);
    else
        snprintf(t->canon, sizeof(t->canon), "%s:%s", name, x->engine.instruments[t->inst].symbol);
    return 0;
}

int ws_auth_args(const cJSON *args, const char **key, char expires[WS_EXPIRES_LEN], const char **sig, char *msg,
                 size_t cap)
{
    if (!cJSON_IsArray(args) || cJSON_GetArraySize(args) != 3 || !cJSON_IsString(cJSON_GetArrayItem(args, 0)) ||
        !cJSON_IsString(cJSON_GetArrayItem(args, 2))) {
        snprintf(msg, cap, "authKeyExpires takes [apiKey, expires, signature]");
        return 400;
    }
    const cJSON *e = cJSON_GetArrayItem(args, 1);
    if (cJSON_IsNumber(e) && e->valuedouble > 0 && e->valuedouble < 9e15)
        snprintf(expires, WS_EXPIRES_LEN, "%" PRId64, (int64_t)e->valuedouble);
    else if (cJSON_IsString(e) && strlen(e->valuestring) < WS_EXPIRES_LEN)
        snprintf(expires, WS_EXPIRES_LEN, "%s", e->valuestring);
    else {
        snprintf(msg, cap, "expires must be a number");
        return 400;
    }
    *key = cJSON_GetArrayItem(args, 0)->valuestring;
    *sig = cJSON_GetArrayItem(args, 2)->valuestring;
    return 0;
}

int ws_after_args(const cJSON *args, int64_t *ms, char *msg, size_t cap)
{
    const cJSON *t = cJSON_IsArray(args) ? cJSON_GetArrayItem(args, 0) : args;
    if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 9e15 ||
        (double)(int64_t)t->valuedouble != t->valuedouble) {
        snprintf(msg, cap, "Invalid timeout: a whole number of milliseconds >= 0");
        return 400;
    }
    *ms = (int64_t)t->valuedouble;
    return 0;
}

cJSON *ws_error_json(int status, const char *error, const cJSON *request, cJSON *meta)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddItemToObject(o, "meta", meta ? meta : cJSON_CreateObject());
    cJSON_AddItemToObject(o, "request", request ? cJSON_Duplicate(request, true) : cJSON_CreateObject());
    return o;
}
