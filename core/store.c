/*
 * store.c - the read model kept from the change stream (store.h).
 */
#define _GNU_SOURCE
#include "core/store.h"

#include <stdint.h>
#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/explain.h"
#include "core/hash.h"

/* Order texts are kept once each, for the store's life (a row copied out
 * of the state lock keeps pointing at its text). One account may add at
 * most TEXTS_PER_ACCOUNT distinct texts; past that its orders keep no text
 * (rendered as BitMEX's default), so no account can use up the table the
 * others share (TEXTS_MAX: 256 accounts' worth). */
#define TEXTS_MAX (1u << 20)
#define TEXTS_PER_ACCOUNT 4096u

struct texts {
    char **s;         /* s[0] = ""; TEXTS_MAX pointers that never move, so
                       * another thread may read a text whose id it got
                       * from the engine thread without the state lock */
    uint32_t n, cap;
    uint32_t *hash;   /* open addressing: index into s, 0 = empty */
    uint32_t hcap;
};

struct cslot {         /* a clOrdID map entry */
    uint64_t id;          /* the order, 0 = empty */
    uint64_t h;           /* ckey(account, clOrdID): its home, kept for moves */
};

struct cmap {             /* (account, clOrdID) -> latest kept order id */
    struct cslot *slot;
    uint64_t n, cap;      /* cap: a power of two, at least 2n */
};

struct oentry { uint64_t id; uint32_t slot; };

struct omap {             /* order id -> slot in the slab, open addressing */
    struct oentry *e;     /* id 0 = empty */
    uint64_t n, cap;      /* cap: a power of two, at least 2n */
};

/* An order kept, in the slab (slots are reused after a drop). */
struct oslot {
    struct ord_rec r;
    uint8_t term;         /* terminal (counted in nterm) */
    uint8_t listed;       /* in its account's order list */
    uint8_t liq;          /* in the liquidation list */
};

/* A list of indices readers see as an idx_vec: view.v = buf + head.
 * Entries are dropped from the front (head moves on) or, for order
 * lists, left in place as stale entries and compacted away in bulk. */
struct ilist {
    struct idx_vec view;
    uint32_t *buf;
    uint32_t head, cap;
    uint32_t stale;       /* order lists: entries naming dropped orders */
};

/* A ring of elements: the kept rows are at head, head + 1, ... mod cap. */
#define RING(T) struct { T *v; uint32_t head, n, cap; uint64_t total, dropped; }

/* Public trades: a ring that is also mirrored (a row at p is written at
 * p + cap too) once it has its final size, so the kept rows are always
 * v[head .. head + n): contiguous for store_trades. */
struct tring {
    struct trade_rec *v;
    uint32_t head, n, cap;
    uint64_t total, dropped;
};

#define VEC(T) struct { T *v; uint32_t n, cap; }

struct acct {
    struct ilist orders, execs;
    struct idx_vec wallet;
    uint64_t insts;
    uint32_t texts;   /* distinct texts this account added (TEXTS_PER_ACCOUNT) */
    bool no_rows;     /* CORE_ACCOUNT_NO_ROWS: no order or execution rows kept */
    bool agent;       /* the history's account or a market agent's (CORE_ACCOUNT_AGENT) */
};

struct store {
    struct explain *ex;        /* the liquidations, step by step (explain.h) */
    uint64_t *ev_exec;         /* per event of the record being applied: the execution made of it */
    uint32_t cap_ev_exec;
    const struct exch_config *cfg;
    struct store_limits lim;
    uint32_t naccts;
    struct acct *acct;
    /* orders */
    VEC(struct oslot) slab;
    VEC(uint32_t) free_slots;
    struct omap omap;
    uint64_t ord_n;            /* highest id seen + 1 */
    uint64_t nterm;            /* terminal orders kept */
    uint64_t orders_dropped;
    RING(uint64_t) term;       /* terminal order ids, oldest to become terminal first
                                * (only when orders are bounded) */
    uint32_t term_fresh;       /* of which made terminal by the record being applied */
    RING(struct exe_rec) exe;  /* exe.total: executions ever made */
    struct tring trades[INSTRUMENTS_MAX];
    VEC(struct bin_rec) bins[INSTRUMENTS_MAX][BIN_COUNT];
    VEC(struct funding_rec) funding;
    VEC(struct insurance_rec) insurance;
    VEC(struct settle_rec) settle;
    VEC(struct wallet_rec) wallet;
    struct ilist liq;
    uint64_t liq_total;        /* liquidation orders ever listed */
    uint8_t settled[INSTRUMENTS_MAX];
    struct texts texts;
    struct cmap cmap;
    /* the record being applied: its command's account and text */
    uint32_t cmd_account;
    const char *cmd_text;
    bool text_given;
    bool cmd_new_order;  /* the command is a new order (an EV_REJECTED may name it) */
    uint64_t text_hash;  /* folds each order's id and text as it is given */
    ms_t now;
    ms_t opened;               /* command 1's time: when the exchange opened */
};

static const ms_t bin_ms[BIN_COUNT] = {60000, 300000, 3600000, 86400000};

/* Asks the kernel for transparent huge pages under a large block (Linux
 * gives them only where asked, madvise mode): a growing table then takes
 * one page fault per 2 MiB instead of per 4 KiB, which on a VM is most of
 * what a new row costs (a replay of a journal: 3x faster). A hint only:
 * nothing changes if the kernel says no. */
static void huge_pages(void *p, size_t n)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (n < 2 * huge)
        return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
    if (e > a)
        madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Grows a vector to hold one more element; aborts when memory is gone:
 * the read model cannot drop a row silently. */
static void *grow(void *v, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return v;
    uint32_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(v, (size_t)nc * elem);
    if (!p)
        abort();
    huge_pages(p, (size_t)nc * elem);
    *cap = nc;
    return p;
}
#define VPUSH(vec, val) do { \
        (vec).v = grow((vec).v, &(vec).cap, (vec).n, sizeof(*(vec).v)); \
        (vec).v[(vec).n++] = (val); \
    } while (0)

static void idx_push(struct idx_vec *iv, uint32_t x)
{
    VPUSH(*iv, x);
}

/* ---- rings and lists --------------------------------------------------------- */

/* Moves the ring's n rows, in order, to the front of a new buffer of nc. */
static void *ring_resize(void *v, uint32_t *head, uint32_t n, uint32_t *cap, uint32_t nc, size_t elem)
{
    char *p = malloc((size_t)nc * elem);
    if (!p)
        abort();
    huge_pages(p, (size_t)nc * elem);
    if (n) {
        uint32_t first = *cap - *head < n ? *cap - *head : n;
        memcpy(p, (char *)v + (size_t)*head * elem, (size_t)first * elem);
        memcpy(p + (size_t)first * elem, v, (size_t)(n - first) * elem);
    }
    free(v);
    *head = 0;
    *cap = nc;
    return p;
}

/* The next capacity of a table that may grow to lim (0 = no limit). */
static uint32_t next_cap(uint32_t cap, uint32_t lim)
{
    if (cap > UINT32_MAX / 4)
        abort();
    uint32_t nc = cap ? cap * 2 : 64;
    return lim && nc > lim ? lim : nc;
}

/* Room for one more row in ring r, which grows up to lim (0 = no limit);
 * at lim the caller drops the oldest row first. */
#define RING_ROOM(r, lim) do { \
        if ((r).n == (r).cap) \
            (r).v = ring_resize((r).v, &(r).head, (r).n, &(r).cap, next_cap((r).cap, (lim)), \
                                sizeof(*(r).v)); \
    } while (0)

/* Where the k-th row from head is. */
static uint32_t ring_at(uint32_t head, uint32_t k, uint32_t cap)
{
    return head + k >= cap ? head + k - cap : head + k;
}

static void ilist_sync(struct ilist *l)
{
    l->view.v = l->buf ? l->buf + l->head : NULL;
    l->view.cap = l->cap - l->head;
}

static void ilist_push(struct ilist *l, uint32_t x)
{
    if (l->head + l->view.n == l->cap) {
        /* Full: move the entries to the front; grow unless that freed at
         * least as much room as there are entries (amortized O(1)). */
        if (l->head) {
            memmove(l->buf, l->buf + l->head, (size_t)l->view.n * sizeof(uint32_t));
            l->head = 0;
        }
        if (l->view.n >= l->cap / 2) {
            uint32_t nc = next_cap(l->cap < 8 ? 8 : l->cap, 0);
            uint32_t *p = realloc(l->buf, (size_t)nc * sizeof(uint32_t));
            if (!p)
                abort();
            l->buf = p;
            l->cap = nc;
        }
    }
    l->buf[l->head + l->view.n++] = x;
    ilist_sync(l);
}

static void ilist_pop_front(struct ilist *l)
{
    l->head++;
    if (!--l->view.n)
        l->head = 0;
    ilist_sync(l);
}

static void ilist_free(struct ilist *l)
{
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

/* ---- texts ----------------------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * UINT64_C(1099511628211);
    return h;
}

static uint32_t intern(struct store *s, const char *text, uint32_t account)
{
    struct texts *t = &s->texts;
    if (!text || !*text)
        return 0;
    size_t len = strnlen(text, TEXT_LEN_MAX);
    uint64_t h = fnv(text, len, UINT64_C(1469598103934665603));
    uint32_t i = (uint32_t)h & (t->hcap - 1);
    for (; t->hash[i]; i = (i + 1) & (t->hcap - 1)) {
        const char *c = t->s[t->hash[i]];
        if (strlen(c) == len && memcmp(c, text, len) == 0)
            return t->hash[i];
    }
    if (t->n >= TEXTS_MAX)
        return 0; /* too many distinct texts: new ones are not kept */
    if (account < s->naccts) {
        if (s->acct[account].texts >= TEXTS_PER_ACCOUNT)
            return 0; /* this account's share is used up */
        s->acct[account].texts++;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, text, len);
    copy[len] = 0;
    t->s[t->n] = copy;
    t->hash[i] = t->n;
    return t->n++;
}

/* ---- orders by id ------------------------------------------------------------ */

#define NO_SLOT UINT32_MAX

static uint64_t omix(uint64_t id)
{
    id *= UINT64_C(0x9E3779B97F4A7C15);
    return id ^ (id >> 31);
}

static uint32_t omap_get(const struct store *s, uint64_t id)
{
    if (!id || !s->omap.cap)
        return NO_SLOT;
    uint64_t m = s->omap.cap - 1;
    for (uint64_t i = omix(id) & m; s->omap.e[i].id; i = (i + 1) & m)
        if (s->omap.e[i].id == id)
            return s->omap.e[i].slot;
    return NO_SLOT;
}

static void omap_insert(struct omap *o, uint64_t id, uint32_t slot)
{
    uint64_t m = o->cap - 1, i = omix(id) & m;
    while (o->e[i].id && o->e[i].id != id)
        i = (i + 1) & m;
    if (!o->e[i].id)
        o->n++;
    o->e[i].id = id;
    o->e[i].slot = slot;
}

static void omap_put(struct store *s, uint64_t id, uint32_t slot)
{
    struct omap *o = &s->omap;
    if ((o->n + 1) * 2 > o->cap) {
        struct omap old = *o;
        o->cap = old.cap ? old.cap * 2 : 1024;
        o->e = calloc(o->cap, sizeof(*o->e));
        if (!o->e)
            abort();
        o->n = 0;
        for (uint64_t i = 0; i < old.cap; i++)
            if (old.e[i].id)
                omap_insert(o, old.e[i].id, old.e[i].slot);
        free(old.e);
    }
    omap_insert(o, id, slot);
}

/* True when the entry's home h is cyclically outside (i, j]: it may move
 * back to the hole at i (linear probing's deletion without tombstones). */
static bool may_fill(uint64_t h, uint64_t i, uint64_t j)
{
    return i <= j ? (h <= i || h > j) : (h <= i && h > j);
}

static void omap_del(struct store *s, uint64_t id)
{
    struct omap *o = &s->omap;
    uint64_t m = o->cap - 1, i = omix(id) & m;
    while (o->e[i].id != id) {
        if (!o->e[i].id)
            return;
        i = (i + 1) & m;
    }
    for (uint64_t j = (i + 1) & m; o->e[j].id; j = (j + 1) & m)
        if (may_fill(omix(o->e[j].id) & m, i, j)) {
            o->e[i] = o->e[j];
            i = j;
        }
    o->e[i].id = 0;
    o->n--;
}

static struct oslot *ord_get(const struct store *s, uint64_t id)
{
    uint32_t k = omap_get(s, id);
    return k == NO_SLOT ? NULL : &s->slab.v[k];
}

static bool ord_kept(const struct store *s, uint64_t id)
{
    return omap_get(s, id) != NO_SLOT;
}

/* The order's slot, made (zeroed) if the order is not kept. Moves other
 * slots (the slab may grow). */
static struct oslot *ord_at(struct store *s, uint64_t id)
{
    uint32_t k = omap_get(s, id);
    if (k != NO_SLOT)
        return &s->slab.v[k];
    struct oslot zero;
    memset(&zero, 0, sizeof(zero));
    if (s->free_slots.n) {
        k = s->free_slots.v[--s->free_slots.n];
        s->slab.v[k] = zero;
    } else {
        VPUSH(s->slab, zero);
        k = s->slab.n - 1;
    }
    omap_put(s, id, k);
    if (id + 1 > s->ord_n)
        s->ord_n = id + 1;
    return &s->slab.v[k];
}

/* ---- clOrdID map ------------------------------------------------------------ */

static uint64_t ckey(uint32_t account, const char *clordid)
{
    return fnv(clordid, strlen(clordid), UINT64_C(1469598103934665603) ^ account);
}

static bool cmatch(const struct store *s, const struct cslot *c, uint64_t h, uint32_t account,
                   const char *clordid)
{
    if (c->h != h)
        return false;
    const struct oslot *o = ord_get(s, c->id);
    return o && o->r.v.account == account && strcmp(o->r.clordid, clordid) == 0;
}

/* The entry of (account, clOrdID), UINT64_MAX if none. */
static uint64_t cmap_find(const struct store *s, uint32_t account, const char *clordid)
{
    if (!s->cmap.cap || !clordid || !*clordid)
        return UINT64_MAX;
    uint64_t h = ckey(account, clordid), m = s->cmap.cap - 1;
    for (uint64_t i = h & m; s->cmap.slot[i].id; i = (i + 1) & m)
        if (cmatch(s, &s->cmap.slot[i], h, account, clordid))
            return i;
    return UINT64_MAX;
}

static void cmap_grow(struct store *s)
{
    struct cmap old = s->cmap;
    s->cmap.cap = old.cap ? old.cap * 2 : 1024;
    s->cmap.slot = calloc(s->cmap.cap, sizeof(*s->cmap.slot));
    if (!s->cmap.slot)
        abort();
    huge_pages(s->cmap.slot, s->cmap.cap * sizeof(*s->cmap.slot));
    uint64_t m = s->cmap.cap - 1;
    for (uint64_t k = 0; k < old.cap; k++) {
        if (!old.slot[k].id)
            continue;
        uint64_t i = old.slot[k].h & m;
        while (s->cmap.slot[i].id)
            i = (i + 1) & m;
        s->cmap.slot[i] = old.slot[k];
    }
    free(old.slot);
}

/* Inserts or replaces the entry for the order's (account, clOrdID). */
static void cmap_put(struct store *s, uint64_t id)
{
    if ((s->cmap.n + 1) * 2 > s->cmap.cap)
        cmap_grow(s);
    const struct ord_rec *r = &ord_get(s, id)->r;
    uint64_t h = ckey(r->v.account, r->clordid), m = s->cmap.cap - 1, i = h & m;
    for (; s->cmap.slot[i].id; i = (i + 1) & m)
        if (cmatch(s, &s->cmap.slot[i], h, r->v.account, r->clordid)) {
            s->cmap.slot[i].id = id;
            return;
        }
    s->cmap.slot[i].id = id;
    s->cmap.slot[i].h = h;
    s->cmap.n++;
}

static void cmap_del(struct store *s, uint64_t i)
{
    struct cmap *c = &s->cmap;
    uint64_t m = c->cap - 1;
    for (uint64_t j = (i + 1) & m; c->slot[j].id; j = (j + 1) & m)
        if (may_fill(c->slot[j].h & m, i, j)) {
            c->slot[i] = c->slot[j];
            i = j;
        }
    c->slot[i].id = 0;
    c->n--;
}

/* Removes the entry of (account, clOrdID) if it names order id. */
static void cmap_forget(struct store *s, uint64_t id, uint32_t account, const char *clordid)
{
    uint64_t i = cmap_find(s, account, clordid);
    if (i != UINT64_MAX && s->cmap.slot[i].id == id)
        cmap_del(s, i);
}

uint64_t store_find_clordid(const struct store *s, uint32_t account, const char *clordid)
{
    uint64_t i = cmap_find(s, account, clordid);
    return i == UINT64_MAX ? 0 : s->cmap.slot[i].id;
}

/* ---- dropping the oldest -------------------------------------------------------- */

static bool is_terminal(uint8_t status)
{
    return status == ST_FILLED || status == ST_CANCELED || status == ST_REJECTED;
}

/* An order list (ids ascending) loses order id, just dropped: popped when
 * it is the first entry (with the dropped ones after it), else left as a
 * stale entry; the list is compacted when half of it is stale, so each
 * drop costs O(1) amortized. */
static void olist_drop(struct store *s, struct ilist *l, uint64_t id)
{
    if (l->view.n && l->view.v[0] == (uint32_t)id) {
        ilist_pop_front(l);
        while (l->view.n && !ord_kept(s, l->view.v[0])) {
            ilist_pop_front(l);
            if (l->stale)
                l->stale--;
        }
        return;
    }
    l->stale++;
    if (l->stale * 2 < l->view.n)
        return;
    uint32_t w = 0;
    for (uint32_t k = 0; k < l->view.n; k++)
        if (ord_kept(s, l->view.v[k]))
            l->buf[w++] = l->view.v[k];
    l->head = 0;
    l->view.n = w;
    l->stale = 0;
    ilist_sync(l);
}

/* The order's status may have changed: count it, and queue it to be
 * dropped when it became terminal. */
static void ord_status(struct store *s, struct oslot *o)
{
    bool t = is_terminal(o->r.v.status);
    if (t == (bool)o->term)
        return;
    o->term = t;
    if (!t) { /* never seen: a terminal order does not come back */
        s->nterm--;
        return;
    }
    s->nterm++;
    if (!s->lim.orders)
        return;
    RING_ROOM(s->term, 0);
    s->term.v[ring_at(s->term.head, s->term.n, s->term.cap)] = o->r.v.id;
    s->term.n++;
    s->term.total++;
    s->term_fresh++;
}

static void order_drop(struct store *s, uint64_t id)
{
    uint32_t k = omap_get(s, id);
    if (k == NO_SLOT)
        return;
    struct oslot *o = &s->slab.v[k];
    if (!o->term)
        return; /* live again (never seen): kept */
    uint32_t a = o->r.v.account;
    bool listed = o->listed, liq = o->liq;
    if (o->r.clordid[0])
        cmap_forget(s, id, a, o->r.clordid);
    omap_del(s, id);
    memset(o, 0, sizeof(*o));
    VPUSH(s->free_slots, k);
    s->nterm--;
    s->orders_dropped++;
    if (listed && a < s->naccts)
        olist_drop(s, &s->acct[a].orders, id);
    if (liq)
        olist_drop(s, &s->liq, id);
}

/* After each record: terminal orders beyond the limit go, oldest to become
 * terminal first, but none made terminal by this record (its reply reads
 * them). */
static void orders_trim(struct store *s)
{
    while (s->term.n > s->lim.orders && s->term.n > s->term_fresh) {
        uint64_t id = s->term.v[s->term.head];
        if (++s->term.head == s->term.cap)
            s->term.head = 0;
        s->term.n--;
        order_drop(s, id);
    }
    s->term_fresh = 0;
}

static void exec_drop_oldest(struct store *s)
{
    const struct exe_rec *e = &s->exe.v[s->exe.head];
    uint32_t idx = (uint32_t)(s->exe.total - s->exe.n);
    uint32_t a = e->v.account;
    if (a < s->naccts) {
        struct ilist *l = &s->acct[a].execs;
        /* Executions go oldest first, so the account's oldest is this one. */
        if (l->view.n && l->view.v[0] == idx)
            ilist_pop_front(l);
    }
    if (++s->exe.head == s->exe.cap)
        s->exe.head = 0;
    s->exe.n--;
    s->exe.dropped++;
}

static void trade_push(struct store *s, uint16_t i, const struct trade_rec *tr)
{
    struct tring *t = &s->trades[i];
    uint32_t lim = s->lim.trades;
    if (t->n == t->cap && !(lim && t->cap == lim)) {
        uint32_t nc = next_cap(t->cap, lim);
        bool final = lim && nc == lim;
        struct trade_rec *p = realloc(t->v, (size_t)nc * (final ? 2 : 1) * sizeof(*p));
        if (!p)
            abort();
        if (final) /* head is 0: nothing was dropped yet */
            memcpy(p + nc, p, (size_t)t->n * sizeof(*p));
        t->v = p;
        t->cap = nc;
    }
    bool mirrored = lim && t->cap == lim;
    if (mirrored && t->n == lim) {
        if (++t->head == t->cap)
            t->head = 0;
        t->n--;
        t->dropped++;
    }
    uint32_t at = ring_at(t->head, t->n, t->cap);
    t->v[at] = *tr;
    if (mirrored)
        t->v[at + t->cap] = *tr;
    t->n++;
    t->total++;
}

/* ---- lifetime --------------------------------------------------------------- */

static uint32_t clamp_limit(uint32_t v)
{
    return v > STORE_KEEP_MAX ? STORE_KEEP_MAX : v;
}

struct store *store_create(const struct exch_config *cfg, uint32_t accounts_max,
                           struct store_limits limits)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->lim.orders = clamp_limit(limits.orders);
    s->lim.execs = clamp_limit(limits.execs);
    s->lim.trades = clamp_limit(limits.trades);
    s->naccts = accounts_max;
    s->acct = calloc(accounts_max, sizeof(*s->acct));
    s->texts.hcap = TEXTS_MAX * 2;
    s->texts.hash = calloc(s->texts.hcap, sizeof(uint32_t));
    s->texts.s = calloc(TEXTS_MAX, sizeof(char *));
    if (!s->acct || !s->texts.hash || !s->texts.s) {
        store_destroy(s);
        return NULL;
    }
    s->texts.cap = TEXTS_MAX;
    s->texts.s[0] = calloc(1, 1);
    s->texts.n = 1;
    s->ord_n = 1; /* ids start at 1 */
    return s;
}

void store_destroy(struct store *s)
{
    if (!s)
        return;
    if (s->acct)
        for (uint32_t a = 0; a < s->naccts; a++) {
            ilist_free(&s->acct[a].orders);
            ilist_free(&s->acct[a].execs);
            free(s->acct[a].wallet.v);
        }
    free(s->acct);
    free(s->slab.v);
    free(s->free_slots.v);
    free(s->omap.e);
    free(s->term.v);
    free(s->exe.v);
    for (int i = 0; i < INSTRUMENTS_MAX; i++) {
        free(s->trades[i].v);
        for (int b = 0; b < BIN_COUNT; b++)
            free(s->bins[i][b].v);
    }
    free(s->funding.v);
    free(s->insurance.v);
    free(s->settle.v);
    free(s->wallet.v);
    ilist_free(&s->liq);
    for (uint32_t i = 0; i < s->texts.n; i++)
        free(s->texts.s[i]);
    free(s->texts.s);
    free(s->texts.hash);
    free(s->cmap.slot);
    explain_destroy(s->ex);
    free(s->ev_exec);
    free(s);
}

const struct explain *store_explain(const struct store *s)
{
    return s->ex;
}

int store_explain_on(struct store *s)
{
    if (!s->ex)
        s->ex = explain_create(s->cfg, s->naccts);
    return s->ex ? 0 : -1;
}

/* ---- event handling ------------------------------------------------------------- */

static struct exe_rec *exec_push(struct store *s, const struct event *ev, uint8_t type,
                                 uint32_t account)
{
    struct exe_rec e;
    memset(&e, 0, sizeof(e));
    e.exec_id = s->exe.total + 1;
    e.type = type;
    e.ts = ev->ts;
    e.v = ev->order;
    e.v.account = account;
    e.v.inst = ev->inst;
    e.currency = s->cfg->inst[ev->inst].currency;
    e.reason = ev->reason;
    if (s->lim.execs && s->exe.n == s->lim.execs)
        exec_drop_oldest(s);
    RING_ROOM(s->exe, s->lim.execs);
    uint32_t at = ring_at(s->exe.head, s->exe.n, s->exe.cap);
    s->exe.v[at] = e;
    s->exe.n++;
    s->exe.total++;
    if (account < s->naccts)
        ilist_push(&s->acct[account].execs, (uint32_t)(s->exe.total - 1));
    return &s->exe.v[at];
}

static px_t avg_px(const struct ord_rec *r)
{
    if (r->v.cum <= 0)
        return 0;
    return (px_t)(r->fill_px_qty / r->v.cum);
}

static void order_update(struct store *s, const struct event *ev, uint8_t type)
{
    uint64_t id = ev->order.id;
    if (!id)
        return;
    struct oslot *o = ord_at(s, id);
    struct ord_rec *r = &o->r;
    r->v = ev->order;
    r->updated_ms = ev->ts;
    if (type == EX_CANCELED)
        r->cancel_reason = ev->reason;
    if (type == EX_REPLACED && ev->u.ids.clordid[0] && strcmp(ev->u.ids.clordid, r->clordid) != 0) {
        /* Renamed: the old clOrdID no longer finds it. */
        if (r->clordid[0])
            cmap_forget(s, id, r->v.account, r->clordid);
        memcpy(r->clordid, ev->u.ids.clordid, sizeof(r->clordid));
        cmap_put(s, id);
    }
    ord_status(s, o);
    struct exe_rec *e = exec_push(s, ev, type, ev->order.account);
    e->order_id = id;
    e->avg_px = avg_px(r);
}

/* The command's text goes to its account's first new order. */
static void give_text(struct store *s, struct ord_rec *r, uint64_t id, uint32_t a)
{
    if (a == s->cmd_account && !s->text_given && s->cmd_text) {
        s->text_given = true;
        r->text = s->texts.s[intern(s, s->cmd_text, a)];
        s->text_hash = hash_str(hash_u64(s->text_hash, id), r->text);
    }
}

/* A new order refused, named by the sequencer (store.h): kept Rejected,
 * with an execution of execType Rejected. */
static void on_rejected(struct store *s, const struct event *ev)
{
    uint64_t id = ev->order.id;
    uint32_t a = ev->order.account;
    if (a >= s->naccts || s->acct[a].no_rows)
        return;
    struct oslot *o = ord_at(s, id);
    struct ord_rec *r = &o->r;
    memset(r, 0, sizeof(*r));
    r->text = "";
    r->v = ev->order;
    r->rej_reason = ev->reason;
    memcpy(r->clordid, ev->u.ids.clordid, sizeof(r->clordid));
    memcpy(r->clordlinkid, ev->u.ids.clordlinkid, sizeof(r->clordlinkid));
    r->created_ms = r->updated_ms = ev->ts;
    give_text(s, r, id, a);
    ilist_push(&s->acct[a].orders, (uint32_t)id);
    o->listed = 1;
    s->acct[a].insts |= UINT64_C(1) << ev->order.inst;
    ord_status(s, o);
    struct exe_rec *e = exec_push(s, ev, EX_REJECTED, a);
    e->order_id = id;
}

static void on_new(struct store *s, const struct event *ev)
{
    uint64_t id = ev->order.id;
    struct oslot *o = ord_at(s, id);
    struct ord_rec *r = &o->r;
    memset(r, 0, sizeof(*r));
    r->text = "";
    r->v = ev->order;
    memcpy(r->clordid, ev->u.ids.clordid, sizeof(r->clordid));
    memcpy(r->clordlinkid, ev->u.ids.clordlinkid, sizeof(r->clordlinkid));
    r->created_ms = r->updated_ms = ev->ts;
    uint32_t a = ev->order.account;
    give_text(s, r, id, a);
    if (a < s->naccts) {
        ilist_push(&s->acct[a].orders, (uint32_t)id);
        o->listed = 1;
        s->acct[a].insts |= UINT64_C(1) << ev->order.inst;
    }
    if (a == EXCH_LIQUIDATOR) {
        ilist_push(&s->liq, (uint32_t)id);
        o->liq = 1;
        s->liq_total++;
    }
    if (r->clordid[0])
        cmap_put(s, id);
    ord_status(s, o);
    struct exe_rec *e = exec_push(s, ev, EX_NEW, a);
    e->order_id = id;
}

static void on_fill(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    uint64_t id = ev->order.id;
    struct oslot *o = ord_at(s, id);
    struct ord_rec *r = &o->r;
    r->v = ev->order;
    r->updated_ms = ev->ts;
    r->fill_px_qty += (i128)ev->u.fill.last_px * ev->u.fill.last_qty;
    ord_status(s, o);
    struct exe_rec *e = exec_push(s, ev, EX_TRADE, ev->order.account);
    e->order_id = id;
    e->trd_match_id = ev->u.fill.trade_id;
    e->last_qty = ev->u.fill.last_qty;
    e->last_px = ev->u.fill.last_px;
    e->liq = ev->u.fill.maker ? 1 : 2;
    e->commission_e8 = re->x.fill.rate_e8;
    e->avg_px = avg_px(r);
    e->exec_cost = re->x.fill.cost;
    e->exec_comm = re->x.fill.comm;
}

static void on_trade(struct store *s, const struct event *ev)
{
    uint16_t i = ev->inst;
    const struct ev_trade *t = &ev->u.trade;
    struct trade_rec tr;
    memset(&tr, 0, sizeof(tr));
    tr.trade_id = t->trade_id;
    tr.ts = ev->ts;
    tr.size = t->qty;
    tr.px = t->px;
    tr.side = t->taker_side;
    sats_t v = 0;
    if (mf_value(&s->cfg->inst[i].contract, t->qty, t->px, &v) == MF_OK)
        tr.gross = v < 0 ? -v : v;
    const struct tring *tg = &s->trades[i];
    if (tg->n) {
        const struct trade_rec *p = &tg->v[tg->head + tg->n - 1];
        if (t->px > p->px)
            tr.tick_dir = 0;
        else if (t->px < p->px)
            tr.tick_dir = 2;
        else
            tr.tick_dir = (p->tick_dir == 0 || p->tick_dir == 1) ? 1 : 3;
    }
    trade_push(s, i, &tr);
    for (int b = 0; b < BIN_COUNT; b++) {
        ms_t start = ev->ts - ev->ts % bin_ms[b];
        struct bin_rec *last = s->bins[i][b].n ? &s->bins[i][b].v[s->bins[i][b].n - 1] : NULL;
        if (!last || last->start_ms != start) {
            struct bin_rec nb;
            memset(&nb, 0, sizeof(nb));
            nb.start_ms = start;
            /* BitMEX: open is the previous bucket's close. */
            nb.open = last ? last->close : t->px;
            nb.high = nb.low = nb.open;
            VPUSH(s->bins[i][b], nb);
            last = &s->bins[i][b].v[s->bins[i][b].n - 1];
        }
        if (t->px > last->high)
            last->high = t->px;
        if (t->px < last->low)
            last->low = t->px;
        last->close = t->px;
        last->trades++;
        last->volume += t->qty;
        last->turnover += tr.gross;
        last->px_qty += (i128)t->px * t->qty;
        last->last_size = t->qty;
    }
}

static const uint8_t money_exec[] = {
    [MK_FUNDING] = EX_FUNDING,
    [MK_SETTLEMENT] = EX_SETTLEMENT,
    [MK_LIQUIDATION] = EX_LIQUIDATION,
    [MK_DELEVERAGE] = EX_BANKRUPTCY,
};

static void on_money(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    const struct ev_money *m = &ev->u.money;
    uint32_t a = ev->account;
    struct wallet_rec w;
    memset(&w, 0, sizeof(w));
    w.id = (uint64_t)s->wallet.n + 1;
    w.ts = ev->ts;
    w.account = a;
    w.currency = m->currency;
    w.kind = m->kind;
    w.inst = ev->inst;
    w.amount = m->amount;
    w.balance = m->balance;
    VPUSH(s->wallet, w);
    if (a < s->naccts)
        idx_push(&s->acct[a].wallet, s->wallet.n - 1);
    if (a == EXCH_LIQUIDATOR) {
        struct insurance_rec ir = {ev->ts, m->currency, m->balance};
        VPUSH(s->insurance, ir);
    }
    if (m->kind < sizeof(money_exec) && money_exec[m->kind]) {
        /* The account's change of position: margin/ gives the position
         * closed for a liquidation or settlement (a long's is > 0, closed
         * by a sell), the change itself for a deleverage; funding rows
         * carry the position and take its side. */
        qty_t change = m->kind == MK_DELEVERAGE || m->kind == MK_FUNDING ? m->qty : -m->qty;
        struct event e2 = *ev;
        memset(&e2.order, 0, sizeof(e2.order));
        e2.order.account = a;
        e2.order.inst = ev->inst;
        e2.order.side = change < 0 ? SIDE_SELL : SIDE_BUY;
        e2.order.status = ST_FILLED;
        e2.order.ord_type = m->kind == MK_FUNDING ? ORD_NONE : ORD_LIMIT;
        e2.order.display_qty = -1;
        struct exe_rec *e = exec_push(s, &e2, money_exec[m->kind], a);
        e->last_qty = change < 0 ? -change : change;
        e->last_px = m->px;
        e->commission_e8 = m->kind == MK_DELEVERAGE ? 0 : m->rate_e8; /* a deleverage's is its ADL score */
        e->currency = m->currency;
        /* Funding: execComm is what the account paid (a receipt is < 0);
         * the others carry their execCost. */
        e->exec_comm = m->kind == MK_FUNDING ? -m->amount : 0;
        e->exec_cost = m->kind == MK_FUNDING ? 0 : re->x.cost;
        if (a < s->naccts)
            s->acct[a].insts |= UINT64_C(1) << ev->inst;
    }
}

/* An order event of an account whose rows are not kept. */
static bool no_rows(const struct store *s, const struct event *ev)
{
    uint32_t a = ev->order.account;
    return a < s->naccts && s->acct[a].no_rows;
}

static void apply_event(struct store *s, const struct rec_event *re)
{
    const struct event *ev = &re->ev;
    if (ev->ts > s->now)
        s->now = ev->ts;
    switch (ev->type) {
    case EV_NEW:
    case EV_AMENDED:
    case EV_RESTATED:
    case EV_TRIGGERED:
    case EV_CANCELED:
    case EV_FILL:
        if (no_rows(s, ev))
            return;
        break;
    default:
        break;
    }
    switch (ev->type) {
    case EV_NEW:
        on_new(s, ev);
        break;
    case EV_AMENDED:
        order_update(s, ev, EX_REPLACED);
        break;
    case EV_RESTATED:
        order_update(s, ev, EX_RESTATED);
        break;
    case EV_TRIGGERED:
        order_update(s, ev, EX_TRIGGERED);
        break;
    case EV_CANCELED:
        order_update(s, ev, EX_CANCELED);
        break;
    case EV_FILL:
        on_fill(s, re);
        break;
    case EV_REJECTED:
        if (s->cmd_new_order && ev->order.id)
            on_rejected(s, ev);
        break;
    case EV_TRADE:
        on_trade(s, ev);
        break;
    case EV_MONEY:
        on_money(s, re);
        break;
    case EV_FUNDING: {
        struct funding_rec f = {ev->ts, ev->inst, ev->u.funding.rate_e8, ev->u.funding.mark_px,
                                ev->u.funding.paid};
        VPUSH(s->funding, f);
        break;
    }
    case EV_POSITION:
        if (ev->account < s->naccts)
            s->acct[ev->account].insts |= UINT64_C(1) << ev->inst;
        break;
    case EV_INSTRUMENT: {
        const struct exch_instrument_state *st = &re->x.inst;
        if (st->settled && !s->settled[ev->inst]) {
            s->settled[ev->inst] = 1;
            struct settle_rec r = {ev->ts, ev->inst, st->settled_px};
            VPUSH(s->settle, r);
        }
        break;
    }
    default:
        break;
    }
}

void store_apply(struct store *s, const struct core_record *r)
{
    const struct core_cmd *c = r->cmd;
    if (r->ts > s->now)
        s->now = r->ts;
    if (c->type == CC_CONFIG) {
        s->opened = r->ts;
        /* The insurance funds' opening balances: the first rows. */
        for (uint8_t k = 0; k < c->config->currencies_count; k++) {
            struct insurance_rec ir = {r->ts, k, c->config->insurance_initial[k]};
            VPUSH(s->insurance, ir);
        }
        return;
    }
    if (c->type == CC_ACCOUNT && r->result == 0 && c->account < s->naccts) {
        s->acct[c->account].no_rows = (c->account_flags & CORE_ACCOUNT_NO_ROWS) != 0;
        s->acct[c->account].agent = (c->account_flags & (CORE_ACCOUNT_NO_ROWS | CORE_ACCOUNT_AGENT)) != 0;
    }
    s->term_fresh = 0;
    s->cmd_account = c->type == CC_EXCH ? c->x.account : UINT32_MAX;
    s->cmd_new_order = c->type == CC_EXCH && c->x.type == CMD_NEW_ORDER;
    s->cmd_text = c->type == CC_EXCH && c->text && *c->text ? c->text : NULL;
    s->text_given = false;
    if (r->nev > s->cap_ev_exec) {
        uint32_t cap = r->nev * 2;
        uint64_t *p = realloc(s->ev_exec, cap * sizeof(*p));
        if (!p) {
            fprintf(stderr, "perpsim: out of memory for the read model: stopping\n");
            abort();
        }
        s->ev_exec = p;
        s->cap_ev_exec = cap;
    }
    for (uint32_t i = 0; i < r->nev; i++) {
        uint64_t before = s->exe.total;
        apply_event(s, &r->ev[i]);
        s->ev_exec[i] = s->exe.total != before ? s->exe.total : 0; /* exec_push's id */
    }
    if (s->ex)
        explain_record(s->ex, r, s->ev_exec);
    s->cmd_text = NULL;
    if (s->lim.orders)
        orders_trim(s);
}

uint64_t store_hash(const struct store *s, uint64_t h)
{
    /* Rows ever added, dropped ones included: the same figures whatever
     * the limits (and the same as before there were limits). */
    h = hash_u64(h, s->ord_n);
    h = hash_u64(h, s->exe.total);
    for (int i = 0; i < INSTRUMENTS_MAX; i++) {
        h = hash_u64(h, s->trades[i].total);
        for (int b = 0; b < BIN_COUNT; b++)
            h = hash_u64(h, s->bins[i][b].n);
    }
    h = hash_u64(h, s->funding.n);
    h = hash_u64(h, s->insurance.n);
    h = hash_u64(h, s->settle.n);
    h = hash_u64(h, s->wallet.n);
    h = hash_u64(h, s->liq_total);
    h = hash_u64(h, s->texts.n);
    h = hash_u64(h, s->text_hash);
    return hash_u64(h, (uint64_t)s->now);
}

/* ---- reads --------------------------------------------------------------------- */

const struct ord_rec *store_order(const struct store *s, uint64_t id)
{
    const struct oslot *o = ord_get(s, id);
    return o && o->r.v.id == id ? &o->r : NULL;
}

bool store_rejected_new(const struct core_record *r, const struct event *ev)
{
    return ev->type == EV_REJECTED && ev->order.id && r->cmd->type == CC_EXCH &&
           r->cmd->x.type == CMD_NEW_ORDER;
}

uint64_t store_orders_count(const struct store *s)
{
    return s->ord_n - 1;
}

static const struct idx_vec empty_vec;

const struct idx_vec *store_account_orders(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].orders.view : &empty_vec;
}

const struct exe_rec *store_exec(const struct store *s, uint32_t idx)
{
    uint32_t off = idx - (uint32_t)(s->exe.total - s->exe.n);
    if (off >= s->exe.n)
        return NULL;
    return &s->exe.v[ring_at(s->exe.head, off, s->exe.cap)];
}

const struct idx_vec *store_account_execs(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].execs.view : &empty_vec;
}

const struct trade_rec *store_trades(const struct store *s, uint16_t inst, uint32_t *n)
{
    const struct tring *t = &s->trades[inst];
    *n = t->n;
    return t->v ? t->v + t->head : NULL;
}

const struct bin_rec *store_bins(const struct store *s, uint16_t inst, enum bin_size b, uint32_t *n)
{
    *n = s->bins[inst][b].n;
    return s->bins[inst][b].v;
}

ms_t store_bin_ms(enum bin_size b)
{
    return bin_ms[b];
}

const struct funding_rec *store_funding(const struct store *s, uint32_t *n)
{
    *n = s->funding.n;
    return s->funding.v;
}

const struct insurance_rec *store_insurance(const struct store *s, uint32_t *n)
{
    *n = s->insurance.n;
    return s->insurance.v;
}

const struct settle_rec *store_settlements(const struct store *s, uint32_t *n)
{
    *n = s->settle.n;
    return s->settle.v;
}

uint32_t store_wallet_count(const struct store *s)
{
    return (uint32_t)s->wallet.n;
}

uint64_t store_execs_total(const struct store *s)
{
    return s->exe.total;
}

const struct wallet_rec *store_wallet(const struct store *s, uint32_t idx)
{
    return &s->wallet.v[idx];
}

const struct idx_vec *store_account_wallet(const struct store *s, uint32_t a)
{
    return a < s->naccts ? &s->acct[a].wallet : &empty_vec;
}

const struct idx_vec *store_liquidations(const struct store *s)
{
    return &s->liq.view;
}

bool store_account_agent(const struct store *s, uint32_t account)
{
    return account < s->naccts && s->acct[account].agent;
}

uint64_t store_account_insts(const struct store *s, uint32_t a)
{
    return a < s->naccts ? s->acct[a].insts : 0;
}

px_t store_last_px(const struct store *s, uint16_t inst, uint8_t *tick_dir)
{
    const struct tring *t = &s->trades[inst];
    if (!t->n) {
        if (tick_dir)
            *tick_dir = 0;
        return 0;
    }
    const struct trade_rec *last = &t->v[t->head + t->n - 1];
    if (tick_dir)
        *tick_dir = last->tick_dir;
    return last->px;
}

ms_t store_now(const struct store *s)
{
    return s->now;
}

ms_t store_opened(const struct store *s)
{
    return s->opened;
}

struct store_limits store_limits(const struct store *s)
{
    return s->lim;
}

void store_stats(const struct store *s, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->orders = s->omap.n;
    out->orders_terminal = s->nterm;
    out->orders_dropped = s->orders_dropped;
    out->execs = s->exe.n;
    out->execs_dropped = s->exe.dropped;
    out->clordids = s->cmap.n;
    size_t b = (size_t)s->slab.cap * sizeof(*s->slab.v) + (size_t)s->free_slots.cap * sizeof(uint32_t) +
               s->omap.cap * sizeof(*s->omap.e) + s->cmap.cap * sizeof(*s->cmap.slot) +
               (size_t)s->term.cap * sizeof(*s->term.v) + (size_t)s->exe.cap * sizeof(*s->exe.v) +
               (size_t)s->liq.cap * sizeof(uint32_t);
    out->list_entries = s->liq.view.n;
    for (int i = 0; i < INSTRUMENTS_MAX; i++) {
        const struct tring *t = &s->trades[i];
        out->trades += t->n;
        out->trades_dropped += t->dropped;
        b += (size_t)t->cap * (s->lim.trades && t->cap == s->lim.trades ? 2 : 1) * sizeof(*t->v);
    }
    for (uint32_t a = 0; a < s->naccts; a++) {
        const struct acct *ac = &s->acct[a];
        out->list_entries += ac->orders.view.n + ac->execs.view.n;
        b += ((size_t)ac->orders.cap + ac->execs.cap) * sizeof(uint32_t);
    }
    out->bytes = b;
}
