/*
 * ratelimit.h - BitMEX's REST rate limits: continuously refilled token
 * buckets per client, the x-ratelimit-* headers, 429 texts, and temporary
 * bans for clients that produce too many error responses.
 *
 * No clock reads: every call takes now_ms. No floating point. No globals.
 * Thread safety: a table is internally locked (one pthread mutex per table);
 * every rl_* function on one table may be called from any number of threads
 * at once. Each call is atomic with respect to the others.
 *
 * ---------------------------------------------------------------------------
 * THE BUCKET (BitMEX's documented limits; its own limiter, rollingLimit.lua)
 * ---------------------------------------------------------------------------
 * A bucket holds up to `limit` tokens and refills continuously at `limit`
 * tokens per `window_ms`; a new client starts full. Amounts are counted in
 * tenths of a token (cost 10 = one request). Internally the level is kept in
 * tenth-token-milliseconds per window (level_u = tenths * window_ms), so an
 * elapsed t ms adds exactly t * limit * 10 units: the refill is exact, with
 * no rounding and no drift however often it is computed. The level never
 * exceeds limit * 10 tenths and never goes below 0.
 *   - A time earlier than the bucket's last update adds nothing and does not
 *     move the bucket's clock back (threads may pass slightly stale times).
 *   - A request is allowed when every bucket that applies to it holds at
 *     least its cost; then the cost is taken from each. A refused request
 *     takes nothing (rollingLimit.lua: "rejection doesn't eat tokens").
 *   - A cost above a bucket's size is clamped to the bucket's size (it can
 *     never hold more; the request waits for a full bucket).
 *   - never_refuse (cancels: DELETE /order, DELETE /order/all, POST
 *     /user/logout, which BitMEX counts but never refuses): always
 *     allowed; takes its cost, and when the bucket holds less it drains it
 *     to exactly 0, never below (the Lua script's `force` mode: "netTokens
 *     = 0 -- drain the swamp").
 *
 * Costs (rl_cost_*): one request 10 tenths. A legacy bulk call with n orders
 * costs ceil(n / 10) tokens with a minimum of one (BitMEX: bulk calls count
 * at 1/10 the normal rate; an empty bulk call is still a request), i.e.
 * 10 * max(1, ceil(n/10)) tenths: 1..10 orders 1 token, 11..20 orders 2,
 * 100 orders 10. A bulk cancel is one request whatever its count (as BitMEX
 * documents). The second (per-second) bucket charges the same cost.
 *
 * Buckets that apply:
 *   - the main bucket: rl_config.signed (per API key) when the request is
 *     signed, rl_config.unsigned_ (per IP) when it is not;
 *   - the order bucket (rl_config.order, when its limit > 0) on order routes
 *     only: POST/PUT/DELETE /order, POST/PUT /order/bulk, DELETE /order/all,
 *     POST /position/isolate|leverage|transferMargin (BitMEX's second
 *     layer, since December 2020). The caller says whether a route is one
 *     (rl_request.order_route).
 * The table is keyed by a caller-chosen string (e.g. "k:<api key>" or
 * "ip:<address>"); one entry holds both buckets and the ban state for its
 * key, so a caller that uses one key for both kinds of limit gets both.
 *
 * Profiles:
 *   rl_config_default (BitMEX's documented limits until 2019):
 *     300 per 5 minutes signed, 150 per 5 minutes unsigned, no order bucket.
 *   rl_config_2021 (BitMEX's current limits): 120 per minute signed, 30 per
 *     minute unsigned, plus 10 per second on order routes.
 *
 * ---------------------------------------------------------------------------
 * HEADERS AND 429 (as BitMEX documents them)
 * ---------------------------------------------------------------------------
 * rl_check / rl_charge fill struct rl_status:
 *   limit        x-ratelimit-limit: the main bucket's limit (requests).
 *   remaining    x-ratelimit-remaining: whole tokens left in the main bucket
 *                after this request (floor; before it, when refused).
 *   reset_s      x-ratelimit-reset: the UNIX second at which the client "will
 *                have enough requests left to retry your current request"
 *                (BitMEX's docs; its limiter: now + ceil(retryDelta)).
 *                retry_ms is the time until every applicable bucket holds
 *                this request's cost again (for an allowed request:
 *                counting the tokens it just took, as rollingLimit.lua's
 *                "nextNet"); reset_s =
 *                floor(now_ms / 1000) when retry_ms is 0 ("If you have not
 *                exceeded your limit, this value is always the current
 *                timestamp"), else ceil((now_ms + retry_ms) / 1000).
 *                NOTE: this is when the request can be retried, not when the
 *                bucket is full again; full_at_s gives the latter.
 *   retry_after_s  Retry-After for a 429: ceil(retry_ms / 1000) (>= 1 when
 *                refused).
 *   has_1s, remaining_1s  x-ratelimit-remaining-1s, on order routes when the
 *                order bucket is on.
 * A refused request is answered 429 with
 *   {"error":{"message":"Rate limit exceeded, retry in N seconds.",
 *             "name":"RateLimitError"}}   N = retry_after_s.
 * rl_format_429 writes that message.
 *
 * ---------------------------------------------------------------------------
 * BANS (BitMEX's documentation: "If a large number of 4xx or 5xx responses
 * are delivered in a short period of time, your IP may be banned for an
 * hour. Multiple bans in a short time will result in a week ban.")
 * ---------------------------------------------------------------------------
 * BitMEX gives no thresholds; perpsim's rule (configurable; ban_errors 0
 * turns bans off):
 *   - Each client has an error bucket of ban_errors tokens refilled at
 *     ban_errors per ban_window_ms (same arithmetic as above). The caller
 *     reports every 4xx/5xx response it sent to that client, 429s included
 *     (BitMEX support: bans come from clients that ignore 429s), with
 *     rl_record_error. An error that finds the bucket empty starts a ban.
 *     So more than ban_errors errors faster than ban_errors per window ban.
 *   - The ban lasts ban_ms; but when the previous ban of the same client
 *     started less than ban_repeat_window_ms before, it lasts ban_long_ms.
 *   - A new ban refills the error bucket. Errors reported while the client
 *     is banned are ignored (a ban does not extend itself; the caller should
 *     answer banned clients with 403 without reporting them).
 *   - Defaults: ban_errors = the signed limit per the signed window (300
 *     per 5 minutes; 120 per minute in the 2021 profile): a client that
 *     keeps to its rate limit is never banned even if every request fails,
 *     one that hammers on through 429s is. ban_ms 1 hour, long ban 1 week,
 *     repeat window 24 hours.
 * rl_banned answers whether a client is banned at now_ms (403 on
 * BitMEX).
 *
 * ---------------------------------------------------------------------------
 * THE TABLE
 * ---------------------------------------------------------------------------
 * Fixed capacity chosen at rl_create (all memory allocated there; nothing
 * later). Entries live in a slab; an open-addressing index (linear probing,
 * power-of-two size >= 2 * capacity, backward-shift deletion, no tombstones)
 * maps a key's hash to its slab slot. Keys are 1..RL_KEY_MAX bytes
 * (RL_BAD_KEY otherwise). Hashing is FNV-1a over the key mixed with
 * rl_config.hash_seed and a final avalanche; a server should pass a random
 * seed so clients cannot aim keys at one probe chain.
 *   - "Seen" = rl_charge or rl_record_error on the key (rl_check and
 *     rl_banned only read: they create nothing and move nothing).
 *   - When the table is full and a new key is seen, the least recently seen
 *     entry is evicted (a doubly linked recency list makes that O(1)). An
 *     evicted client comes back with full buckets and no ban history, so
 *     capacity should exceed the number of clients active within a window
 *     plus a ban's length; the table never refuses a key for being full.
 */
#ifndef PERPSIM_API_RATELIMIT_H
#define PERPSIM_API_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/units.h"

#define RL_KEY_MAX 64
#define RL_TENTHS 10 /* cost of one request */

/* One bucket's size: `limit` requests per `window_ms`. limit 0 = no bucket
 * (allowed for `order` only). */
struct rl_limit {
    int32_t limit;
    ms_t window_ms;
};

struct rl_config {
    struct rl_limit signed_;   /* per API key, signed requests */
    struct rl_limit unsigned_; /* per IP, unsigned requests */
    struct rl_limit order;     /* second layer on order routes; limit 0 = off */
    int32_t ban_errors;        /* 0 = no bans */
    ms_t ban_window_ms;
    ms_t ban_ms;
    ms_t ban_repeat_window_ms;
    ms_t ban_long_ms;
    uint32_t capacity;  /* clients tracked, 1 .. RL_CAPACITY_MAX */
    uint64_t hash_seed; /* any value; random in a server */
};

#define RL_CAPACITY_MAX (UINT32_C(1) << 24)

enum rl_err {
    RL_E_OK = 0,
    RL_E_CONFIG, /* a limit/window/capacity outside its range */
    RL_E_NOMEM,
    RL_E_THREAD, /* pthread_mutex_init failed */
};

/* Outcome of rl_check / rl_charge / rl_record_error. */
enum rl_result {
    RL_ALLOWED = 0,
    RL_REFUSED,   /* 429; nothing was taken */
    RL_BAD_KEY,   /* key empty or longer than RL_KEY_MAX */
    RL_BAD_COST,  /* negative cost */
};

struct rl_request {
    const char *key;   /* NUL-terminated */
    bool is_signed;    /* signed -> rl_config.signed_, else unsigned_ */
    bool order_route;  /* the order bucket applies too */
    bool never_refuse; /* cancels: charged, never refused */
    int32_t cost_tenths;
};

struct rl_status {
    int32_t limit;       /* x-ratelimit-limit */
    int32_t remaining;   /* x-ratelimit-remaining */
    int64_t reset_s;     /* x-ratelimit-reset */
    int32_t retry_after_s; /* Retry-After (429) */
    ms_t retry_ms;       /* exact wait behind reset_s / retry_after_s */
    int64_t full_at_s;   /* UNIX second when the main bucket is full again */
    bool has_1s;         /* order bucket applied */
    int32_t limit_1s;
    int32_t remaining_1s; /* x-ratelimit-remaining-1s */
    bool forced;         /* never_refuse request that found too few tokens */
};

struct rl_table;

/* BitMEX's limits until 2019 (see above). capacity 4096, seed 0. */
void rl_config_default(struct rl_config *c);

/* BitMEX's current limits (see above). capacity 4096, seed 0. */
void rl_config_2021(struct rl_config *c);

/* Creates a table; NULL with *err set on failure (err may be NULL). */
struct rl_table *rl_create(const struct rl_config *c, enum rl_err *err);

void rl_destroy(struct rl_table *t);

/* Costs. */
int32_t rl_cost_single(void);             /* 10 */
int32_t rl_cost_bulk(int64_t n_orders);   /* 10 * max(1, ceil(n/10)) */

/* Would this request be allowed now? Takes nothing, creates nothing.
 * st may be NULL. A later rl_charge decides for real (another thread may
 * spend the tokens in between). */
enum rl_result rl_check(struct rl_table *t, const struct rl_request *r, ms_t now_ms,
                        struct rl_status *st);

/* Allow-and-take or refuse, atomically. st may be NULL. */
enum rl_result rl_charge(struct rl_table *t, const struct rl_request *r, ms_t now_ms,
                         struct rl_status *st);

/* Reports one 4xx/5xx response sent to `key`. Returns RL_ALLOWED, or
 * RL_BAD_KEY. *ban_started (may be NULL) says whether this error started a
 * ban, *banned_until_ms (may be NULL) when the current ban ends (0 if none). */
enum rl_result rl_record_error(struct rl_table *t, const char *key, ms_t now_ms,
                               bool *ban_started, ms_t *banned_until_ms);

/* Is `key` banned at now_ms? *until_ms (may be NULL) = end of the ban. */
bool rl_banned(struct rl_table *t, const char *key, ms_t now_ms, ms_t *until_ms);

/* Number of entries currently held (for tests and monitoring). */
uint32_t rl_size(struct rl_table *t);

/* "Rate limit exceeded, retry in N seconds." Returns the length, or -1 when
 * cap is too small. */
int rl_format_429(int32_t retry_after_s, char *buf, size_t cap);

#define RL_429_NAME "RateLimitError"

const char *rl_result_name(enum rl_result r);

#endif
