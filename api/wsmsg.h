/*
 * wsmsg.h - a client's WebSocket message read, with no connection and no
 * state: the op, each topic of a subscribe (table and symbol), the
 * arguments of authKeyExpires and cancelAllAfter, and BitMEX's error
 * object. ws.c acts on what these read; tests/fuzz/fuzz_wsmsg.c drives them
 * with any bytes (through wslay's frame parser too).
 */
#ifndef PERPSIM_API_WSMSG_H
#define PERPSIM_API_WSMSG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "margin/exchange.h"

enum ws_op {
    WS_OP_MALFORMED,   /* not a JSON object */
    WS_OP_UNKNOWN,     /* an object without a known "op" */
    WS_OP_PING,        /* the text ping, or {"op":"ping"} */
    WS_OP_HELP,        /* the text help, or {"op":"help"} */
    WS_OP_SUBSCRIBE,
    WS_OP_UNSUBSCRIBE,
    WS_OP_AUTH,        /* authKeyExpires */
    WS_OP_AUTHKEY,     /* authKey (the nonce form: refused) */
    WS_OP_CANCEL_AFTER /* cancelAllAfter */
};

/* The op of the message text[0..len) (valid UTF-8: the caller checks).
 * *req is the parsed object for the caller to free (NULL for the texts
 * ping and help, and when malformed). */
enum ws_op ws_msg_read(const char *text, size_t len, cJSON **req);

/* One topic: "table", "table:*" or "table:SYMBOL". */
struct ws_topic {
    int table;       /* enum ft_table */
    int inst;        /* FT_ALL, or the instrument */
    char canon[96];  /* as BitMEX acknowledges it: the table, ":" and the symbol as listed */
};
/* 0, or 400 with BitMEX's message in msg (valid UTF-8, the topic quoted
 * at most 40 bytes without cutting a character). */
int ws_topic_read(const char *topic, const struct exch_config *x, struct ws_topic *t, char *msg, size_t cap);

#define WS_EXPIRES_LEN 32
/* authKeyExpires's [apiKey, expires, signature]: expires in seconds or
 * milliseconds, a number or a string (as clients send it). 0, or 400
 * with the message. */
int ws_auth_args(const cJSON *args, const char **key, char expires[WS_EXPIRES_LEN], const char **sig, char *msg,
                 size_t cap);
/* cancelAllAfter's timeout (a number or [number]): whole milliseconds >= 0.
 * 0, or 400 with the message. */
int ws_after_args(const cJSON *args, int64_t *ms, char *msg, size_t cap);

/* {"status":N,"error":E,"meta":META or {},"request":REQ or {}}; takes meta. */
cJSON *ws_error_json(int status, const char *error, const cJSON *request, cJSON *meta);

#endif
