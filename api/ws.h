/*
 * ws.h - BitMEX's realtime WebSocket at /realtime, on the REST port.
 *
 * libmicrohttpd upgrades the connection (RFC 6455 handshake); from then on
 * one thread of the WebSocket's own serves every upgraded socket through
 * epoll, with wslay for the framing. That thread also applies the change
 * stream to the realtime feed (feed.h): the sequencer hands each record to
 * an after-lock consumer that only queues it, so the engine never waits on
 * a socket, a renderer or a slow reader. Each message is rendered once per
 * topic and shared by every subscriber of it; each connection has its own
 * bounded queue, and a reader that lets it fill is closed with a reason
 * (1008) without slowing the feed or anyone else.
 *
 * Protocol (docs/api.md): the welcome message; subscribe / unsubscribe by
 * op (args a string or an array) and by ?subscribe= on the URL; one ack
 * per topic, then its partial, then deltas; authentication by
 * api-key/api-expires/api-signature on the upgrade (query or headers) or
 * the authKeyExpires op (expires in seconds or milliseconds);
 * cancelAllAfter; "ping" -> "pong"; ping frames answered; idle
 * connections pinged. BitMEX's error messages; limits on connections per
 * IP, subscriptions per connection and client messages per second.
 */
#ifndef PERPSIM_API_WS_H
#define PERPSIM_API_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct srv;
struct req;
struct ws;

struct ws_config {
    uint32_t max_conns;        /* all connections */
    uint32_t max_per_ip;       /* connections from one address */
    uint32_t max_subs;         /* topics per connection */
    uint32_t msgs_per_s;       /* client messages per second (burst twice that) */
    size_t send_buf;           /* bytes queued for one connection before it is closed */
    size_t max_msg;            /* largest client message (larger: close 1009) */
    uint32_t ping_ms;          /* a ping after this long without a client frame */
    uint32_t idle_ms;          /* closed after this long without a client frame */
};

void ws_config_default(struct ws_config *c);

/* Makes the feed and subscribes it to the core's change stream (before the
 * sequence opens); starts the thread. NULL on failure. */
struct ws *ws_create(struct srv *s, const struct ws_config *cfg);
/* Closes every connection and stops the thread (before the HTTP daemon
 * stops); records delivered later are dropped. */
void ws_stop(struct ws *w);
/* Frees it (after the core is destroyed). */
void ws_destroy(struct ws *w);

/* The HTTP side: a request for /realtime. Sets the reply (an error, or the
 * 101 upgrade response in r->upgrade). */
void ws_request(struct req *r);

/* The request ends without its upgrade: frees what ws_request kept. */
void ws_request_done(struct req *r);

/* Prometheus lines for /metrics, appended to buf (cap bytes); the length. */
size_t ws_metrics(struct ws *w, char *buf, size_t cap);

#endif
