/*
 * faults.h - fault injection: what testnets do to bots on their bad days.
 *
 * POST /admin/v1/faults turns faults on for a duration or until turned off;
 * GET shows what is on with the time left; DELETE turns everything off.
 * The faults act on /api/v1 only (the root included); the admin API and
 * /metrics are never subject to them, so a test can always turn them off.
 *
 *   overload      a share (0..1) of /api/v1 writes (POST/PUT/DELETE) is
 *                 answered 503 {"error":{"message":"The system is currently
 *                 overloaded. Please try again later.","name":"HTTPError"}},
 *                 as the full write queue answers, though it has room: the
 *                 write never reaches the core (no command, no tokens).
 *                 As by the real queue, cancels (DELETE /order, /order/all,
 *                 cancelAllAfter) and closePosition are never refused.
 *   maintenance   every /api/v1 request is answered 503 with a short HTML
 *                 page (Content-Type text/html), as BitMEX's maintenance
 *                 window does, before authentication.
 *   latency       every /api/v1 reply leaves latencyMs + latencyPerVolPct x
 *                 the index volatility (percent) later than it is ready (at
 *                 most 60 s). The volatility is the largest, over the
 *                 indices, of (highest - lowest) / lowest x 100 of the index
 *                 prices the server has seen (read from the instruments'
 *                 state at each /api/v1 request while this fault is on, and
 *                 when it is turned on) in the last minute of wall time, in
 *                 5-second buckets. The connection is suspended and resumed
 *                 from one timer thread (a min-heap of deadlines on the
 *                 monotonic clock): no HTTP thread waits.
 *   rateLimit429  a share (0..1) of /api/v1 requests is answered 429 as the
 *                 rate limiter answers ({"error":{"message":"Rate limit
 *                 exceeded, retry in 1 seconds.","name":"RateLimitError"}},
 *                 Retry-After 1, x-ratelimit-remaining 0 when limits are
 *                 on) whatever the real limits say.
 *   websocketDrops a share (0..1): once a second each open WebSocket
 *                 connection is dropped with that chance, its TCP
 *                 connection closed without a close frame (the client sees
 *                 1006), as a load balancer or a network fault does.
 *
 * Order of the checks for one request: maintenance (before auth); then,
 * after auth, rateLimit429, then overload (writes only). A request the
 * real limiter refuses gets the real 429 (not counted as injected). An
 * injected reply charges no rate-limit tokens and does not count toward
 * --ban-errors. Durations run on the wall clock. The shares draw from a
 * xorshift64* seeded from --seed when given, else from the wall clock.
 * Each injected fault is counted in /metrics:
 * perpsim_faults_injected_total{kind="overload"|"maintenance"|"latency"|
 * "rateLimit429"|"websocketDrops"}.
 *
 * Thread safety: every function may be called from any HTTP thread.
 */
#ifndef PERPSIM_API_FAULTS_H
#define PERPSIM_API_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct faults;
struct req;

/* Everything off; starts the timer thread. seed 0: from the wall clock.
 * NULL with a message in err on failure. */
struct faults *faults_create(uint64_t seed, char *err, size_t errcap);
/* Resumes every held connection at once (the daemon's stop that follows
 * may close one before its reply goes) and stops the timer; afterwards
 * replies are never held. Before the daemon stops. NULL is a no-op. */
void faults_stop(struct faults *f);
/* Frees it (stopping it first if needed). NULL is a no-op. */
void faults_destroy(struct faults *f);

/* The request hooks (server.c). faults_pre: any request, before auth: sets
 * the reply's extra latency and answers maintenance; true when the reply is
 * set. faults_post: after auth, before routing: rateLimit429 and overload;
 * true when the reply is set. faults_hold: the reply is ready; true when
 * the connection was suspended to delay it (the handler returns and is
 * called again when the delay is over). faults_metrics: appends the
 * counters to a /metrics reply. */
bool faults_pre(struct req *r);
/* One draw of websocketDrops for one connection (the WebSocket thread, once
 * a second per connection): true when it is to be dropped now. */
bool faults_ws_drop(struct faults *f);
bool faults_post(struct req *r);
bool faults_hold(struct req *r);
void faults_metrics(struct req *r);

/* GET, POST and DELETE /admin/v1/faults. */
void faults_admin(struct req *r);

#endif
