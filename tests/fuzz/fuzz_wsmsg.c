/*
 * fuzz_wsmsg.c - what a WebSocket client sends (api/wsmsg.c), as the
 * server reads it. The first byte picks the way in: even, the rest is one
 * message's text; odd, the rest is the bytes of frames on the wire, read
 * by wslay as a server reads them (masked frames, fragments, control
 * frames, 64 KiB messages at most as ws.c sets it). Each text message that
 * is UTF-8 (ws.c closes the others with 1007) is read: its op, every topic
 * of a subscribe, authKeyExpires's and cancelAllAfter's arguments, and the
 * reply ws.c would build from them. Every reply must print as valid JSON
 * and valid UTF-8, and a topic's acknowledged name must read back to the
 * same table and symbol (a failure aborts: a finding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <wslay/wslay.h>

#include "api/feed.h"
#include "api/json.h"
#include "api/wsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct exch_config cfg;

/* Prints the reply as ws.c sends it; it must be valid JSON and UTF-8. */
static void reply(cJSON *o)
{
    char *t = json_print(o);
    cJSON_Delete(o);
    if (!t)
        abort();
    if (!json_utf8_valid(t, strlen(t)))
        abort();
    cJSON *back = cJSON_Parse(t);
    if (!back)
        abort();
    cJSON_Delete(back);
    free(t);
}

static void topic(const char *name, const cJSON *req)
{
    char msg[160];
    struct ws_topic t;
    if (ws_topic_read(name, &cfg, &t, msg, sizeof(msg)) != 0) {
        reply(ws_error_json(400, msg, req, NULL));
        return;
    }
    if (t.table < 0 || t.table >= FT_COUNT || (t.inst != FT_ALL && (t.inst < 0 || t.inst >= cfg.engine.instruments_count)))
        abort();
    struct ws_topic again;
    if (ws_topic_read(t.canon, &cfg, &again, msg, sizeof(msg)) != 0 || again.table != t.table ||
        again.inst != t.inst || strcmp(again.canon, t.canon) != 0)
        abort();
    cJSON *ack = cJSON_CreateObject();
    cJSON_AddBoolToObject(ack, "success", true);
    cJSON_AddStringToObject(ack, "subscribe", t.canon);
    cJSON_AddItemToObject(ack, "request", cJSON_Duplicate(req, true));
    reply(ack);
}

static void message(const char *text, size_t len)
{
    if (!json_utf8_valid(text, len))
        return; /* closed with 1007 */
    cJSON *req;
    enum ws_op op = ws_msg_read(text, len, &req);
    if ((op == WS_OP_MALFORMED) != (req == NULL) && op != WS_OP_PING && op != WS_OP_HELP)
        abort();
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
    char msg[200];
    switch (op) {
    case WS_OP_SUBSCRIBE:
    case WS_OP_UNSUBSCRIBE:
        if (cJSON_IsString(args)) {
            topic(args->valuestring, req);
        } else if (cJSON_IsArray(args)) {
            const cJSON *a;
            cJSON_ArrayForEach(a, args)
            {
                if (cJSON_IsString(a))
                    topic(a->valuestring, req);
                else
                    reply(ws_error_json(400, "Invalid args: every topic must be a string", req, NULL));
            }
        } else {
            reply(ws_error_json(400, "Invalid args", req, NULL));
        }
        break;
    case WS_OP_AUTH: {
        const char *key = NULL, *sig = NULL;
        char expires[WS_EXPIRES_LEN];
        if (ws_auth_args(args, &key, expires, &sig, msg, sizeof(msg)) != 0)
            reply(ws_error_json(400, msg, req, NULL));
        else if (!key || !sig || strnlen(expires, sizeof(expires)) == sizeof(expires))
            abort();
        break;
    }
    case WS_OP_CANCEL_AFTER: {
        int64_t ms = -1;
        if (ws_after_args(args, &ms, msg, sizeof(msg)) != 0)
            reply(ws_error_json(400, msg, req, NULL));
        else if (ms < 0)
            abort();
        break;
    }
    default: reply(ws_error_json(400, "Unrecognized request.", req, NULL)); break;
    }
    cJSON_Delete(req);
}

/* ---- frames through wslay ---- */

struct wire {
    const uint8_t *p;
    size_t n;
};

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct wire *w = user;
    if (w->n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t k = len < w->n ? len : w->n;
    if (k > 7)
        k = 7; /* short reads: frames cut anywhere */
    memcpy(buf, w->p, k);
    w->p += k;
    w->n -= k;
    return (ssize_t)k;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)ctx, (void)data, (void)flags, (void)user;
    return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx, (void)user;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        message((const char *)arg->msg, arg->msg_length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cfg.engine.instruments_count == 0)
        exch_config_default(&cfg, INT64_C(1774526400000)); /* XBTH26 */
    if (size == 0)
        return 0;
    if (!(data[0] & 1)) {
        char *text = malloc(size - 1 ? size - 1 : 1);
        memcpy(text, data + 1, size - 1);
        message(text, size - 1);
        free(text);
        return 0;
    }
    struct wire w = {data + 1, size - 1};
    static const struct wslay_event_callbacks cbs = {on_recv, on_send, NULL, NULL, NULL, NULL, on_msg};
    wslay_event_context_ptr ctx;
    if (wslay_event_context_server_init(&ctx, &cbs, &w) != 0)
        abort();
    wslay_event_config_set_max_recv_msg_length(ctx, 64u << 10);
    while (w.n > 0 && wslay_event_want_read(ctx))
        if (wslay_event_recv(ctx) != 0 && w.n > 0)
            break;
    wslay_event_send(ctx); /* the pongs and the close it queued */
    wslay_event_context_free(ctx);
    return 0;
}
