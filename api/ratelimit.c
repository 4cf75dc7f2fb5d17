/*
 * ratelimit.c - token buckets, bans and the client table; the rules are in
 * ratelimit.h.
 */
#include "api/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_MAX 1000000
#define WINDOW_MAX_MS (INT64_C(366) * MS_PER_DAY)

/* ---- one bucket -------------------------------------------------------------- */

struct bucket {
    int64_t level_u; /* tenths * window_ms; 0 .. limit * 10 * window_ms */
    ms_t t;          /* time of the last refill */
    bool init;
};

static int64_t cap_tenths(const struct rl_limit *l)
{
    return (int64_t)l->limit * RL_TENTHS;
}

static int64_t full_u(const struct rl_limit *l)
{
    return cap_tenths(l) * l->window_ms;
}

/* Brings the bucket to now: +elapsed * cap_tenths units, capped at full. */
static void refill(struct bucket *b, const struct rl_limit *l, ms_t now)
{
    int64_t full = full_u(l);
    if (!b->init) {
        b->level_u = full;
        b->t = now;
        b->init = true;
        return;
    }
    if (b->level_u > full)
        b->level_u = full; /* limits are fixed per table; kept as a guard */
    if (now <= b->t)
        return; /* stale time: nothing added, clock not moved back */
    int64_t elapsed = now - b->t;
    if (elapsed >= l->window_ms)
        b->level_u = full;
    else {
        int64_t add = elapsed * cap_tenths(l); /* < window * cap: fits */
        b->level_u = full - b->level_u <= add ? full : b->level_u + add;
    }
    b->t = now;
}

/* Units a request of cost tenths needs from this bucket (clamped to full). */
static int64_t need_u(const struct rl_limit *l, int32_t cost_tenths)
{
    int64_t c = cost_tenths < cap_tenths(l) ? cost_tenths : cap_tenths(l);
    return c * l->window_ms;
}

/* ms until the bucket holds `need` units: ceil(deficit / cap_tenths). */
static ms_t wait_ms(const struct bucket *b, const struct rl_limit *l, int64_t need)
{
    if (b->level_u >= need)
        return 0;
    int64_t deficit = need - b->level_u;
    int64_t rate = cap_tenths(l);
    return (deficit + rate - 1) / rate;
}

static int32_t whole_tokens(const struct bucket *b, const struct rl_limit *l)
{
    return (int32_t)(b->level_u / (RL_TENTHS * l->window_ms));
}

static int64_t floor_s(ms_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

/* The UNIX second at which `wait` ms from now have passed (now's second when
 * there is no wait). */
static int64_t at_s(ms_t now, ms_t wait)
{
    if (wait <= 0)
        return floor_s(now);
    return -floor_s(-(now + wait)); /* ceil */
}

/* ---- the table ------------------------------------------------------------------ */

struct entry {
    uint64_t hash;
    int32_t prev, next; /* recency list: prev = more recent */
    uint8_t key_len;
    char key[RL_KEY_MAX];
    struct bucket sig, uns, ord, err;
    ms_t ban_until_ms;
    ms_t last_ban_start_ms;
    bool ever_banned;
};

struct rl_table {
    pthread_mutex_t mu;
    struct rl_config cfg;
    struct entry *slab; /* capacity entries; 0..count-1 in use */
    uint32_t *index;    /* slab slot + 1, 0 = empty */
    uint32_t mask;
    uint32_t count;
    int32_t head, tail; /* most / least recently seen, -1 when empty */
};

void rl_config_default(struct rl_config *c)
{
    memset(c, 0, sizeof *c);
    c->signed_ = (struct rl_limit){300, INT64_C(300000)};
    c->unsigned_ = (struct rl_limit){150, INT64_C(300000)};
    c->order = (struct rl_limit){0, 0};
    c->ban_errors = 300;
    c->ban_window_ms = INT64_C(300000);
    c->ban_ms = INT64_C(3600000);
    c->ban_repeat_window_ms = INT64_C(86400000);
    c->ban_long_ms = INT64_C(7) * INT64_C(86400000);
    c->capacity = 4096;
    c->hash_seed = 0;
}

void rl_config_2021(struct rl_config *c)
{
    rl_config_default(c);
    c->signed_ = (struct rl_limit){120, INT64_C(60000)};
    c->unsigned_ = (struct rl_limit){30, INT64_C(60000)};
    c->order = (struct rl_limit){10, INT64_C(1000)};
    c->ban_errors = 120;
    c->ban_window_ms = INT64_C(60000);
}

static bool limit_ok(const struct rl_limit *l)
{
    return l->limit >= 1 && l->limit <= LIMIT_MAX && l->window_ms >= 1 &&
           l->window_ms <= WINDOW_MAX_MS;
}

static bool config_ok(const struct rl_config *c)
{
    if (!limit_ok(&c->signed_) || !limit_ok(&c->unsigned_))
        return false;
    if (c->order.limit != 0 && !limit_ok(&c->order))
        return false;
    if (c->ban_errors < 0 || c->ban_errors > LIMIT_MAX)
        return false;
    if (c->ban_errors > 0) {
        struct rl_limit e = {c->ban_errors, c->ban_window_ms};
        if (!limit_ok(&e) || c->ban_ms < 0 || c->ban_long_ms < 0 || c->ban_repeat_window_ms < 0)
            return false;
    }
    return c->capacity >= 1 && c->capacity <= RL_CAPACITY_MAX;
}

struct rl_table *rl_create(const struct rl_config *c, enum rl_err *err)
{
    enum rl_err dummy;
    if (err == NULL)
        err = &dummy;
    if (c == NULL || !config_ok(c)) {
        *err = RL_E_CONFIG;
        return NULL;
    }
    struct rl_table *t = calloc(1, sizeof *t);
    if (t == NULL) {
        *err = RL_E_NOMEM;
        return NULL;
    }
    uint32_t slots = 2;
    while (slots < 2 * c->capacity)
        slots <<= 1;
    t->cfg = *c;
    t->slab = calloc(c->capacity, sizeof *t->slab);
    t->index = calloc(slots, sizeof *t->index);
    if (t->slab == NULL || t->index == NULL) {
        free(t->slab);
        free(t->index);
        free(t);
        *err = RL_E_NOMEM;
        return NULL;
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t->slab);
        free(t->index);
        free(t);
        *err = RL_E_THREAD;
        return NULL;
    }
    t->mask = slots - 1;
    t->head = t->tail = -1;
    *err = RL_E_OK;
    return t;
}

void rl_destroy(struct rl_table *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slab);
    free(t->index);
    free(t);
}

uint32_t rl_size(struct rl_table *t)
{
    pthread_mutex_lock(&t->mu);
    uint32_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* FNV-1a 64 seeded, then the splitmix64 finalizer. */
static uint64_t hash_key(uint64_t seed, const char *key, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037) ^ (seed * UINT64_C(0x9E3779B97F4A7C15));
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 30;
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    h ^= h >> 27;
    h *= UINT64_C(0x94D049BB133111EB);
    return h ^ (h >> 31);
}

/* Index position holding key, or -1; *slot_out = slab slot. */
static int64_t find(const struct rl_table *t, const char *key, size_t len, uint64_t h,
                    int32_t *slot_out)
{
    uint32_t i = (uint32_t)h & t->mask;
    for (;;) {
        uint32_t s = t->index[i];
        if (s == 0)
            return -1;
        const struct entry *e = &t->slab[s - 1];
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
            *slot_out = (int32_t)(s - 1);
            return i;
        }
        i = (i + 1) & t->mask;
    }
}

static void index_insert(struct rl_table *t, uint64_t h, int32_t slot)
{
    uint32_t i = (uint32_t)h & t->mask;
    while (t->index[i] != 0)
        i = (i + 1) & t->mask;
    t->index[i] = (uint32_t)slot + 1;
}

/* Removes index position pos by backward shift (no tombstones). */
static void index_remove(struct rl_table *t, uint32_t pos)
{
    uint32_t i = pos, j = pos;
    t->index[i] = 0;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->index[j] == 0)
            return;
        uint32_t k = (uint32_t)t->slab[t->index[j] - 1].hash & t->mask; /* home of j */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        t->index[i] = t->index[j];
        t->index[j] = 0;
        i = j;
    }
}

static void list_unlink(struct rl_table *t, int32_t x)
{
    struct entry *e = &t->slab[x];
    if (e->prev >= 0)
        t->slab[e->prev].next = e->next;
    else
        t->head = e->next;
    if (e->next >= 0)
        t->slab[e->next].prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = -1;
}

static void list_push_front(struct rl_table *t, int32_t x)
{
    struct entry *e = &t->slab[x];
    e->prev = -1;
    e->next = t->head;
    if (t->head >= 0)
        t->slab[t->head].prev = x;
    t->head = x;
    if (t->tail < 0)
        t->tail = x;
}

static bool key_ok(const char *key, size_t *len)
{
    if (key == NULL)
        return false;
    *len = strnlen(key, RL_KEY_MAX + 1);
    return *len >= 1 && *len <= RL_KEY_MAX;
}

/* The entry of key, created (evicting the least recently seen when full) and
 * moved to the front of the recency list. Never fails. */
static struct entry *see(struct rl_table *t, const char *key, size_t len)
{
    uint64_t h = hash_key(t->cfg.hash_seed, key, len);
    int32_t slot;
    if (find(t, key, len, h, &slot) >= 0) {
        list_unlink(t, slot);
        list_push_front(t, slot);
        return &t->slab[slot];
    }
    if (t->count < t->cfg.capacity) {
        slot = (int32_t)t->count++;
    } else {
        slot = t->tail;
        struct entry *old = &t->slab[slot];
        int32_t same;
        int64_t pos = find(t, old->key, old->key_len, old->hash, &same);
        index_remove(t, (uint32_t)pos);
        list_unlink(t, slot);
    }
    struct entry *e = &t->slab[slot];
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->key_len = (uint8_t)len;
    memcpy(e->key, key, len);
    e->prev = e->next = -1;
    index_insert(t, h, slot);
    list_push_front(t, slot);
    return e;
}

/* The entry of key or NULL; does not touch recency. */
static struct entry *peek(struct rl_table *t, const char *key, size_t len)
{
    int32_t slot;
    uint64_t h = hash_key(t->cfg.hash_seed, key, len);
    return find(t, key, len, h, &slot) >= 0 ? &t->slab[slot] : NULL;
}

/* ---- requests ---------------------------------------------------------------- */

int32_t rl_cost_single(void)
{
    return RL_TENTHS;
}

int32_t rl_cost_bulk(int64_t n_orders)
{
    if (n_orders <= 10)
        return RL_TENTHS;
    int64_t tokens = (n_orders + 9) / 10;
    if (tokens > INT32_MAX / RL_TENTHS)
        tokens = INT32_MAX / RL_TENTHS;
    return (int32_t)(tokens * RL_TENTHS);
}

/* Decides and applies one request to the buckets of e (which may be a copy,
 * for rl_check). */
static enum rl_result apply(const struct rl_config *c, struct bucket *main_b, struct bucket *ord_b,
                            const struct rl_request *r, ms_t now, struct rl_status *st)
{
    const struct rl_limit *ml = r->is_signed ? &c->signed_ : &c->unsigned_;
    const struct rl_limit *ol = &c->order;
    bool use_ord = r->order_route && ol->limit > 0;

    refill(main_b, ml, now);
    int64_t need_m = need_u(ml, r->cost_tenths);
    int64_t need_o = 0;
    if (use_ord) {
        refill(ord_b, ol, now);
        need_o = need_u(ol, r->cost_tenths);
    }
    bool enough = main_b->level_u >= need_m && (!use_ord || ord_b->level_u >= need_o);
    bool take = enough || r->never_refuse;
    if (take) {
        main_b->level_u = main_b->level_u > need_m ? main_b->level_u - need_m : 0;
        if (use_ord)
            ord_b->level_u = ord_b->level_u > need_o ? ord_b->level_u - need_o : 0;
    }

    ms_t retry = wait_ms(main_b, ml, need_m);
    if (use_ord) {
        ms_t w = wait_ms(ord_b, ol, need_o);
        if (w > retry)
            retry = w;
    }
    st->limit = ml->limit;
    st->remaining = whole_tokens(main_b, ml);
    st->retry_ms = retry;
    st->reset_s = at_s(now, retry);
    st->retry_after_s = (int32_t)((retry + 999) / 1000);
    st->full_at_s = at_s(now, wait_ms(main_b, ml, full_u(ml)));
    st->has_1s = use_ord;
    st->limit_1s = use_ord ? ol->limit : 0;
    st->remaining_1s = use_ord ? whole_tokens(ord_b, ol) : 0;
    st->forced = take && !enough;
    return take ? RL_ALLOWED : RL_REFUSED;
}

static enum rl_result request(struct rl_table *t, const struct rl_request *r, ms_t now,
                              struct rl_status *st, bool commit)
{
    struct rl_status dummy;
    if (st == NULL)
        st = &dummy;
    memset(st, 0, sizeof *st);
    size_t len;
    if (r == NULL || !key_ok(r->key, &len))
        return RL_BAD_KEY;
    if (r->cost_tenths < 0)
        return RL_BAD_COST;

    pthread_mutex_lock(&t->mu);
    enum rl_result res;
    if (commit) {
        struct entry *e = see(t, r->key, len);
        res = apply(&t->cfg, r->is_signed ? &e->sig : &e->uns, &e->ord, r, now, st);
    } else {
        struct entry *e = peek(t, r->key, len);
        struct bucket m = {0, 0, false}, o = {0, 0, false};
        if (e != NULL) {
            m = r->is_signed ? e->sig : e->uns;
            o = e->ord;
        }
        res = apply(&t->cfg, &m, &o, r, now, st);
    }
    pthread_mutex_unlock(&t->mu);
    return res;
}

enum rl_result rl_check(struct rl_table *t, const struct rl_request *r, ms_t now_ms,
                        struct rl_status *st)
{
    return request(t, r, now_ms, st, false);
}

enum rl_result rl_charge(struct rl_table *t, const struct rl_request *r, ms_t now_ms,
                         struct rl_status *st)
{
    return request(t, r, now_ms, st, true);
}

/* ---- bans ------------------------------------------------------------------------ */

enum rl_result rl_record_error(struct rl_table *t, const char *key, ms_t now_ms,
                               bool *ban_started, ms_t *banned_until_ms)
{
    bool started = false;
    ms_t until = 0;
    size_t len;
    if (ban_started != NULL)
        *ban_started = false;
    if (banned_until_ms != NULL)
        *banned_until_ms = 0;
    if (!key_ok(key, &len))
        return RL_BAD_KEY;

    pthread_mutex_lock(&t->mu);
    const struct rl_config *c = &t->cfg;
    struct entry *e = see(t, key, len);
    if (c->ban_errors > 0) {
        if (now_ms < e->ban_until_ms) {
            until = e->ban_until_ms; /* banned: ignored */
        } else {
            struct rl_limit el = {c->ban_errors, c->ban_window_ms};
            refill(&e->err, &el, now_ms);
            int64_t need = need_u(&el, RL_TENTHS);
            if (e->err.level_u >= need) {
                e->err.level_u -= need;
            } else {
                bool repeat = e->ever_banned &&
                              now_ms - e->last_ban_start_ms < c->ban_repeat_window_ms;
                e->ban_until_ms = now_ms + (repeat ? c->ban_long_ms : c->ban_ms);
                e->last_ban_start_ms = now_ms;
                e->ever_banned = true;
                e->err.level_u = full_u(&el);
                started = true;
                until = e->ban_until_ms;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (ban_started != NULL)
        *ban_started = started;
    if (banned_until_ms != NULL)
        *banned_until_ms = until;
    return RL_ALLOWED;
}

bool rl_banned(struct rl_table *t, const char *key, ms_t now_ms, ms_t *until_ms)
{
    size_t len;
    if (until_ms != NULL)
        *until_ms = 0;
    if (!key_ok(key, &len))
        return false;
    pthread_mutex_lock(&t->mu);
    struct entry *e = peek(t, key, len);
    bool banned = e != NULL && now_ms < e->ban_until_ms;
    if (banned && until_ms != NULL)
        *until_ms = e->ban_until_ms;
    pthread_mutex_unlock(&t->mu);
    return banned;
}

/* ---- texts ------------------------------------------------------------------------ */

int rl_format_429(int32_t retry_after_s, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return -1;
    int n = snprintf(buf, cap, "Rate limit exceeded, retry in %ld seconds.", (long)retry_after_s);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

const char *rl_result_name(enum rl_result r)
{
    switch (r) {
    case RL_ALLOWED: return "RL_ALLOWED";
    case RL_REFUSED: return "RL_REFUSED";
    case RL_BAD_KEY: return "RL_BAD_KEY";
    case RL_BAD_COST: return "RL_BAD_COST";
    }
    return "RL_?";
}
