/*
 * driver.c - history replayed into the real book (driver.h has the model).
 *
 * The driver keeps a mirror of its own book orders, level by level, from
 * the change stream (an in-lock consumer: it sees each command's record
 * before the next row is decided). Each fire() decides one row from that
 * mirror and the view, so what it decides never rests on commands not yet
 * applied; a stepped advance calls it again at the same time until the
 * rows of that millisecond are done.
 */
#include "history/driver.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One history book order. */
struct horder {
    uint64_t id;
    qty_t leaves;
    uint64_t join_seq; /* the command it joined the level's queue at */
};

/* A price level of one instrument and side, as the history holds it. */
struct level {
    uint16_t inst;
    uint8_t side;
    uint8_t used;
    px_t px;
    qty_t desired;        /* the data's size (rounded to the lot) */
    qty_t have;           /* the history's leaves at the level */
    struct horder *o;     /* by id: the queue order among the history's orders */
    uint32_t n, cap;
    uint64_t foreign_seq; /* the last command at which someone else joined the level */
    uint32_t gen;         /* the snapshot that last named it */
    bool retry;           /* an add was refused (post-only): try again once nothing crosses */
    int32_t live;         /* its place in its instrument's live list, -1 when not there */
};

/* An instrument's state in the replay. */
struct hinst {
    uint32_t *live;       /* levels with desired or have > 0 (indices into the table) */
    uint32_t nlive, caplive;
    bool has_book;        /* book rows seen: quotes ignored */
    bool in_snapshot;
    int64_t snap_us;      /* the time of the snapshot being read */
    uint32_t gen;
    bool dirty;           /* some level's add was refused: try again before the next row */
    /* the data's funding rates last announced, for the funding at fund_for */
    int64_t fund_rate, fund_pred;
    bool fund_has_pred;
    ms_t fund_for;
};

struct history {
    struct history_params p;
    const struct exch_config *cfg;
    struct hsource *src;
    struct hrow row;      /* the next row, when has_row */
    bool has_row, eof;
    char err[256];
    bool failed;
    uint32_t account;
    bool account_made;
    /* levels: open addressing on (inst, side, px) */
    struct level *tab;
    uint32_t tabcap, tabn;
    struct hinst inst[INSTRUMENTS_MAX];
    /* the index of each exchange index: from a ticker (then trades leave it) */
    bool index_from_ticker[INDICES_MAX];
    px_t index_px[INDICES_MAX];
    ms_t index_ms[INDICES_MAX];
    uint64_t seq;         /* the record being consumed */
    uint64_t shortfalls;  /* clOrdIDs of the shortfall orders: "hs<n>" */
    struct history_stats st;
    pthread_mutex_t lock; /* st, for readers on other threads */
};

void history_params_default(struct history_params *p)
{
    memset(p, 0, sizeof(*p));
    p->index_step_ms = 1000;
}

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return p;
    uint32_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (!q) {
        fprintf(stderr, "perpsim: history: out of memory\n");
        abort();
    }
    *cap = c;
    return q;
}

/* ---- the level table ------------------------------------------------------ */

static uint32_t level_hash(uint16_t inst, uint8_t side, px_t px)
{
    uint64_t k = (uint64_t)px * UINT64_C(0x9E3779B97F4A7C15) ^ ((uint64_t)inst << 8 | side);
    k ^= k >> 29;
    k *= UINT64_C(0xBF58476D1CE4E5B9);
    return (uint32_t)(k ^ (k >> 32));
}

static uint32_t level_slot(const struct history *h, uint16_t inst, uint8_t side, px_t px)
{
    uint32_t m = h->tabcap - 1, i = level_hash(inst, side, px) & m;
    while (h->tab[i].used && !(h->tab[i].px == px && h->tab[i].inst == inst && h->tab[i].side == side))
        i = (i + 1) & m;
    return i;
}

static void table_grow(struct history *h)
{
    struct level *old = h->tab;
    uint32_t oldcap = h->tabcap;
    h->tabcap = oldcap ? oldcap * 2 : 1024;
    h->tab = calloc(h->tabcap, sizeof(*h->tab));
    if (!h->tab) {
        fprintf(stderr, "perpsim: history: out of memory\n");
        abort();
    }
    for (uint32_t i = 0; i < oldcap; i++) {
        if (!old[i].used)
            continue;
        uint32_t j = level_slot(h, old[i].inst, old[i].side, old[i].px);
        h->tab[j] = old[i];
        struct hinst *hi = &h->inst[old[i].inst];
        if (old[i].live >= 0)
            hi->live[old[i].live] = j;
    }
    free(old);
}

/* The level, or -1 when the table has none (add: made). */
static int64_t level_find(struct history *h, uint16_t inst, uint8_t side, px_t px, bool add)
{
    if (!add && !h->tabcap)
        return -1;
    if ((h->tabn + 1) * 4 >= h->tabcap * 3)
        table_grow(h);
    uint32_t i = level_slot(h, inst, side, px);
    if (!h->tab[i].used) {
        if (!add)
            return -1;
        h->tab[i] = (struct level){.inst = inst, .side = side, .used = 1, .px = px, .live = -1};
        h->tabn++;
    }
    return i;
}

/* Keeps the instrument's live list: levels the history holds or wants. */
static void level_touch(struct history *h, uint32_t i)
{
    struct level *l = &h->tab[i];
    struct hinst *hi = &h->inst[l->inst];
    bool want = l->desired > 0 || l->have > 0 || l->n > 0;
    if (want && l->live < 0) {
        hi->live = grow(hi->live, &hi->caplive, hi->nlive + 1, sizeof(*hi->live));
        l->live = (int32_t)hi->nlive;
        hi->live[hi->nlive++] = i;
    } else if (!want && l->live >= 0) {
        uint32_t last = hi->live[--hi->nlive];
        hi->live[l->live] = last;
        h->tab[last].live = l->live;
        l->live = -1;
    }
}

/* ---- the mirror, from the change stream ------------------------------------ */

static struct horder *order_find(struct level *l, uint64_t id)
{
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (l->o[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->o[lo].id == id ? &l->o[lo] : NULL;
}

static void order_remove(struct level *l, struct horder *o)
{
    l->have -= o->leaves;
    uint32_t k = (uint32_t)(o - l->o);
    memmove(&l->o[k], &l->o[k + 1], (l->n - k - 1) * sizeof(*l->o));
    l->n--;
}

/* The history's resting orders (its book and a trade's shortfall); its
 * takers are ImmediateOrCancel. */
static bool is_book_order(const struct order_view *o)
{
    return o->ord_type == ORD_LIMIT && o->tif == TIF_GTC;
}

static void consume(void *ctx, const struct core_record *r)
{
    struct history *h = ctx;
    h->seq = r->seq;
    for (uint32_t k = 0; k < r->nev; k++) {
        const struct event *e = &r->ev[k].ev;
        if (e->type != EV_NEW && e->type != EV_FILL && e->type != EV_CANCELED && e->type != EV_AMENDED &&
            e->type != EV_RESTATED && e->type != EV_TRIGGERED && e->type != EV_REJECTED)
            continue;
        const struct order_view *o = &e->order;
        if (!h->account_made || e->account != h->account) {
            /* Someone else at a level: history's later size goes behind
             * it (an iceberg's new slice joins the back too). */
            bool refill = e->type == EV_FILL && e->u.fill.maker && o->display_qty > 0 && o->leaves > 0;
            if (o->price > 0 && (e->type == EV_NEW || e->type == EV_AMENDED || e->type == EV_TRIGGERED || refill)) {
                int64_t i = level_find(h, o->inst, o->side, o->price, false);
                if (i >= 0)
                    h->tab[i].foreign_seq = r->seq;
            }
            continue;
        }
        if (e->type == EV_REJECTED) {
            if (r->cmd->type != CC_EXCH || r->cmd->x.type != CMD_NEW_ORDER)
                continue; /* a cut of an order a trade has just taken */
            pthread_mutex_lock(&h->lock);
            h->st.refused++;
            pthread_mutex_unlock(&h->lock);
            continue;
        }
        if (!is_book_order(o))
            continue;
        int64_t i = level_find(h, o->inst, o->side, o->price, e->type == EV_NEW);
        if (i < 0)
            continue;
        struct level *l = &h->tab[i];
        if (e->type == EV_NEW) {
            l->o = grow(l->o, &l->cap, l->n + 1, sizeof(*l->o));
            l->o[l->n++] = (struct horder){o->id, o->leaves, r->seq};
            l->have += o->leaves;
        } else {
            struct horder *ho = order_find(l, o->id);
            if (!ho)
                continue;
            if (e->type == EV_CANCELED || o->leaves == 0) {
                order_remove(l, ho);
            } else {
                if (e->type == EV_AMENDED && o->leaves > ho->leaves)
                    ho->join_seq = r->seq; /* a raise goes to the back; a cut keeps its place */
                l->have += o->leaves - ho->leaves;
                ho->leaves = o->leaves;
            }
            if (e->type == EV_CANCELED && e->reason == CXL_POST_ONLY) {
                l->retry = true;
                h->inst[o->inst].dirty = true;
            }
        }
        level_touch(h, (uint32_t)i);
    }
}

/* ---- commands --------------------------------------------------------------- */

struct out {
    struct history *h;
    struct core_batch *b;
};

static void push(struct out *w, struct cmd *x)
{
    core_batch_push(w->b, x);
    w->h->st.commands++;
}

enum hord { H_BOOK, H_SHORTFALL, H_TAKER };

/* History's orders: its book (post-only: it never takes by itself), a
 * trade's shortfall (resting, named to be cut after the trade), the tape's
 * taker (ImmediateOrCancel). */
static void new_order(struct out *w, uint16_t inst, uint8_t side, px_t px, qty_t qty, enum hord kind)
{
    qty_t max = w->h->cfg->engine.instruments[inst].max_order_qty;
    while (qty > 0) {
        qty_t q = max > 0 && qty > max ? max : qty;
        struct cmd x;
        memset(&x, 0, sizeof(x));
        x.type = CMD_NEW_ORDER;
        x.account = w->h->account;
        x.inst = inst;
        struct cmd_new_order *no = &x.u.new_order;
        no->has = HAS_QTY | HAS_PRICE;
        no->side = side;
        no->ord_type = ORD_LIMIT;
        no->tif = kind == H_TAKER ? TIF_IOC : TIF_GTC;
        no->exec_inst = kind == H_BOOK ? EXEC_POST_ONLY : 0;
        no->qty = q;
        no->price = px;
        if (kind == H_SHORTFALL)
            snprintf(no->clordid, sizeof(no->clordid), "hs%" PRIu64, ++w->h->shortfalls);
        push(w, &x);
        qty -= q;
    }
}

static void amend_leaves(struct out *w, uint16_t inst, uint64_t id, qty_t leaves)
{
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_AMEND;
    x.account = w->h->account;
    x.inst = inst;
    x.u.amend.ref.order_id = id;
    x.u.amend.has = AMD_LEAVES;
    x.u.amend.leaves = leaves;
    push(w, &x);
}

static void cancel(struct out *w, uint16_t inst, uint64_t id)
{
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_CANCEL;
    x.account = w->h->account;
    x.inst = inst;
    x.u.cancel.order_id = id;
    push(w, &x);
}

static void set_index(struct out *w, uint16_t index, px_t px, ms_t t)
{
    struct history *h = w->h;
    h->index_ms[index] = t;
    if (h->index_px[index] == px)
        return;
    h->index_px[index] = px;
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_SET_INDEX;
    x.u.set_index.index = index;
    x.u.set_index.price = px;
    push(w, &x);
    h->st.index_moves++;
}

/* Cuts a level down to its desired size, from the back. */
static void level_cut(struct out *w, struct level *l)
{
    qty_t cut = l->have - l->desired;
    for (uint32_t k = l->n; k-- > 0 && cut > 0;) {
        struct horder *o = &l->o[k];
        if (o->leaves <= cut) {
            cancel(w, l->inst, o->id);
            cut -= o->leaves;
        } else {
            amend_leaves(w, l->inst, o->id, o->leaves - cut);
            cut = 0;
        }
    }
}

/* Whether a book order of the history at l would cross the opposite side
 * now (post-only would cancel it). */
static bool crosses(const struct core_view *v, const struct level *l)
{
    px_t px[1];
    qty_t sz[1];
    uint8_t opp = l->side == SIDE_BUY ? SIDE_SELL : SIDE_BUY;
    if (cv_levels(v, l->inst, (enum side)opp, 1, px, sz) == 0)
        return false;
    return l->side == SIDE_BUY ? l->px >= px[0] : l->px <= px[0];
}

/* Raises a level to its desired size: the newest history order there
 * raised when nobody joined after it (it is at the back), else a new one. */
static void level_add(struct out *w, const struct core_view *v, struct level *l, bool check)
{
    /* The engine applies the row's cuts before its adds, so within a row
     * history never crosses itself; a user's order it would cross cancels
     * the add (post-only), tried again later: check then first. */
    if (check && crosses(v, l)) {
        l->retry = true;
        w->h->inst[l->inst].dirty = true;
        return;
    }
    qty_t add = l->desired - l->have;
    qty_t max = w->h->cfg->engine.instruments[l->inst].max_order_qty;
    if (l->n > 0) {
        struct horder *o = &l->o[l->n - 1];
        if (o->join_seq > l->foreign_seq && (max <= 0 || o->leaves + add <= max)) {
            amend_leaves(w, l->inst, o->id, o->leaves + add);
            return;
        }
    }
    new_order(w, l->inst, l->side, l->px, add, H_BOOK);
}

/* One pass over a level: cuts (adds false) or adds. A row's cuts and adds
 * are of different levels, decided from the same mirror: cuts first in the
 * batch, each once. */
static void level_fix(struct out *w, const struct core_view *v, uint32_t i, bool adds)
{
    struct level *l = &w->h->tab[i];
    if (!adds && l->desired < l->have)
        level_cut(w, l);
    else if (adds && l->desired > l->have)
        level_add(w, v, l, false);
}

/* The levels of an instrument refused earlier (post-only), once nothing
 * crosses them. */
static void retry_dirty(struct out *w, const struct core_view *v, uint16_t inst)
{
    struct hinst *hi = &w->h->inst[inst];
    if (!hi->dirty)
        return;
    hi->dirty = false;
    for (uint32_t k = 0; k < hi->nlive; k++) {
        struct level *l = &w->h->tab[hi->live[k]];
        if (!l->retry)
            continue;
        l->retry = false;
        if (l->desired > l->have)
            level_add(w, v, l, true);
    }
}

/* ---- rows ------------------------------------------------------------------- */

static int inst_of(const struct history *h, const char *symbol)
{
    for (uint16_t k = 0; k < h->cfg->engine.instruments_count; k++)
        if (strcmp(h->cfg->engine.instruments[k].symbol, symbol) == 0)
            return k;
    return -1;
}

/* A price on the instrument's tick, a size rounded down to the lot. */
static bool on_tick(const struct history *h, uint16_t inst, px_t px)
{
    px_t tick = h->cfg->engine.instruments[inst].tick_px;
    return px > 0 && (tick <= 0 || px % tick == 0);
}

/* A size rounded down to the lot; 0 (skipped) when it is not a size any
 * book holds: past 1,000 orders of the largest size. */
static qty_t lots(const struct history *h, uint16_t inst, qty_t q)
{
    qty_t lot = h->cfg->engine.instruments[inst].lot_qty;
    qty_t max = h->cfg->engine.instruments[inst].max_order_qty;
    if (max > 0 && q / 1000 > max)
        return 0;
    return lot > 1 ? q / lot * lot : q;
}

static void set_desired(struct history *h, uint16_t inst, uint8_t side, px_t px, qty_t q)
{
    int64_t i = level_find(h, inst, side, px, q > 0);
    if (i < 0)
        return;
    h->tab[i].desired = q;
    level_touch(h, (uint32_t)i);
}

static void do_trade(struct out *w, const struct core_view *v, uint16_t inst, const struct hrow *r, ms_t t)
{
    struct history *h = w->h;
    qty_t q = lots(h, inst, r->size);
    if (q <= 0) {
        h->st.small++;
        return;
    }
    h->st.trades++;
    /* What the book holds at the trade's price or better on the side it takes. */
    uint8_t opp = r->side == SIDE_BUY ? SIDE_SELL : SIDE_BUY;
    px_t px[64];
    qty_t sz[64];
    uint32_t n = cv_levels(v, inst, (enum side)opp, 64, px, sz);
    qty_t avail = 0;
    for (uint32_t k = 0; k < n && avail < q; k++) {
        if (r->side == SIDE_BUY ? px[k] > r->price : px[k] < r->price)
            break;
        avail += sz[k];
    }
    /* History's own levels on the taker's side at or through the price
     * are stale (the data's book moved in the same instant): they go first,
     * or the shortfall would meet them. */
    struct hinst *hi = &h->inst[inst];
    for (uint32_t k = 0; k < hi->nlive; k++) {
        struct level *l = &h->tab[hi->live[k]];
        if (l->side == r->side && l->have > 0 && (r->side == SIDE_BUY ? l->px >= r->price : l->px <= r->price)) {
            l->desired = 0;
            level_cut(w, l);
        }
    }
    uint64_t named = 0;
    if (avail < q) {
        h->st.shortfall++;
        new_order(w, inst, opp, r->price, q - avail, H_SHORTFALL);
        named = h->shortfalls;
    }
    new_order(w, inst, r->side, r->price, q, H_TAKER);
    if (named) {
        /* What the trade left of it (the book held hidden size it did not
         * count) is not in the data: cut. */
        struct cmd x;
        memset(&x, 0, sizeof(x));
        x.type = CMD_CANCEL;
        x.account = h->account;
        x.inst = inst;
        snprintf(x.u.cancel.clordid, sizeof(x.u.cancel.clordid), "hs%" PRIu64, named);
        push(w, &x);
    }
    uint16_t ix = h->cfg->inst[inst].index;
    if (!h->index_from_ticker[ix] &&
        (h->index_px[ix] == 0 || t - h->index_ms[ix] >= h->p.index_step_ms))
        set_index(w, ix, r->price, t);
}

static void prune(struct history *h, uint16_t inst);

static void do_quote(struct out *w, const struct core_view *v, uint16_t inst, const struct hrow *r, ms_t t)
{
    struct history *h = w->h;
    struct hinst *hi = &h->inst[inst];
    if (hi->has_book)
        return;
    h->st.quotes++;
    qty_t bq = r->bid_size > 0 && on_tick(h, inst, r->bid_px) ? lots(h, inst, r->bid_size) : 0;
    qty_t aq = r->ask_size > 0 && on_tick(h, inst, r->ask_px) ? lots(h, inst, r->ask_size) : 0;
    if ((r->bid_size > 0 && !on_tick(h, inst, r->bid_px)) || (r->ask_size > 0 && !on_tick(h, inst, r->ask_px)))
        h->st.off_tick++;
    /* Every other level of the instrument goes. */
    for (uint32_t k = 0; k < hi->nlive; k++) {
        struct level *l = &h->tab[hi->live[k]];
        bool top = (l->side == SIDE_BUY && bq > 0 && l->px == r->bid_px) ||
                   (l->side == SIDE_SELL && aq > 0 && l->px == r->ask_px);
        if (!top)
            l->desired = 0;
    }
    if (bq > 0)
        set_desired(h, inst, SIDE_BUY, r->bid_px, bq);
    if (aq > 0)
        set_desired(h, inst, SIDE_SELL, r->ask_px, aq);
    /* Cuts first, then adds: a top moving up on one side leaves the other
     * before anything joins where it was. */
    for (int adds = 0; adds < 2; adds++)
        for (uint32_t k = 0; k < hi->nlive; k++)
            level_fix(w, v, hi->live[k], adds);
    prune(h, inst);
    uint16_t ix = h->cfg->inst[inst].index;
    if (!h->index_from_ticker[ix] && h->index_px[ix] == 0 && bq > 0 && aq > 0) {
        px_t tick = h->cfg->engine.instruments[inst].tick_px;
        px_t mid = (r->bid_px + r->ask_px) / 2;
        set_index(w, ix, tick > 0 ? mid / tick * tick : mid, t);
    }
}

/* The end of a snapshot: the levels it did not name go. */
static void snapshot_end(struct history *h, uint16_t inst)
{
    struct hinst *hi = &h->inst[inst];
    hi->in_snapshot = false;
    for (uint32_t k = 0; k < hi->nlive; k++) {
        struct level *l = &h->tab[hi->live[k]];
        if (l->gen != hi->gen)
            l->desired = 0;
    }
}

static void do_book(struct out *w, const struct core_view *v, uint16_t inst, const struct hrow *r)
{
    struct history *h = w->h;
    struct hinst *hi = &h->inst[inst];
    hi->has_book = true;
    if (!on_tick(h, inst, r->price)) {
        h->st.off_tick++;
        return;
    }
    h->st.book_rows++;
    if (r->snapshot && !hi->in_snapshot) {
        hi->in_snapshot = true;
        hi->snap_us = r->ts_us;
        hi->gen++;
    }
    qty_t q = lots(h, inst, r->size);
    int64_t i = level_find(h, inst, r->side, r->price, q > 0);
    if (i < 0)
        return;
    struct level *l = &h->tab[i];
    l->desired = q;
    if (r->snapshot)
        l->gen = hi->gen;
    level_touch(h, (uint32_t)i);
    level_fix(w, v, (uint32_t)i, false);
    level_fix(w, v, (uint32_t)i, true);
}

/* Drops the levels the history neither holds nor wants from the live list
 * (backwards: a removal moves the last one into its place). */
static void prune(struct history *h, uint16_t inst)
{
    struct hinst *hi = &h->inst[inst];
    for (uint32_t k = hi->nlive; k-- > 0;)
        level_touch(h, hi->live[k]);
}

/* The data's funding rate for a perpetual's next funding (and its
 * predicted rate for the one after, as the indicative rate), when it names
 * the funding the exchange will pay next and differs from what is
 * announced: the rate paid is the data's, not the formula's. */
static void ticker_funding(struct out *w, const struct core_view *v, uint16_t inst, const struct hrow *r)
{
    struct history *h = w->h;
    if (!(r->has & HT_FUNDING_RATE) || !h->cfg->inst[inst].perpetual)
        return;
    struct exch_instrument_state st;
    cv_instrument(v, inst, &st);
    if (st.settled)
        return;
    if ((r->has & HT_FUNDING_TS) && r->funding_ts_us / 1000 != st.next_funding_ms) {
        h->st.funding_other_time++;
        return;
    }
    if (r->funding_rate_e8 < -FUNDING_RATE_MAX || r->funding_rate_e8 > FUNDING_RATE_MAX ||
        ((r->has & HT_PREDICTED_RATE) &&
         (r->predicted_rate_e8 < -FUNDING_RATE_MAX || r->predicted_rate_e8 > FUNDING_RATE_MAX))) {
        h->st.funding_absurd++;
        return;
    }
    struct hinst *hi = &h->inst[inst];
    bool pred = (r->has & HT_PREDICTED_RATE) != 0;
    if (st.funding_rate_e8 == r->funding_rate_e8 && hi->fund_for == st.next_funding_ms &&
        hi->fund_rate == r->funding_rate_e8 && hi->fund_has_pred == pred &&
        (!pred || hi->fund_pred == r->predicted_rate_e8))
        return;
    hi->fund_for = st.next_funding_ms;
    hi->fund_rate = r->funding_rate_e8;
    hi->fund_has_pred = pred;
    hi->fund_pred = pred ? r->predicted_rate_e8 : 0;
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_SET_FUNDING;
    x.inst = inst;
    x.u.set_funding.rate_e8 = r->funding_rate_e8;
    x.u.set_funding.indicative_e8 = hi->fund_pred;
    x.u.set_funding.has_indicative = pred;
    x.u.set_funding.for_ms = st.next_funding_ms;
    push(w, &x);
    h->st.funding_rates++;
}

static void do_ticker(struct out *w, const struct core_view *v, uint16_t inst, const struct hrow *r, ms_t t)
{
    struct history *h = w->h;
    h->st.tickers++;
    ticker_funding(w, v, inst, r);
    if (!(r->has & HT_INDEX) || r->index_px <= 0)
        return;
    uint16_t ix = h->cfg->inst[inst].index;
    h->index_from_ticker[ix] = true;
    set_index(w, ix, r->index_px, t);
}

/* ---- the timer --------------------------------------------------------------- */

/* The next row read ahead (h->lock held). */
static bool peek(struct history *h)
{
    if (h->has_row)
        return true;
    if (h->eof || h->failed)
        return false;
    int rc = hsource_next(h->src, &h->row, h->err, sizeof(h->err));
    if (rc < 0)
        h->failed = true;
    if (rc <= 0) {
        h->eof = true;
        h->st.done = rc == 0;
        return false;
    }
    h->has_row = true;
    return true;
}

static ms_t row_ms(const struct hrow *r)
{
    return r->ts_us / 1000;
}

static ms_t timer_next(void *ctx)
{
    struct history *h = ctx;
    pthread_mutex_lock(&h->lock);
    ms_t t = peek(h) ? row_ms(&h->row) : INT64_MAX;
    pthread_mutex_unlock(&h->lock);
    return t;
}

/* One row's commands (more rows of the same millisecond while they make
 * none): the next fire() decides from the state they leave. */
static void timer_fire(void *ctx, ms_t t, const struct core_view *v, struct core_batch *out)
{
    struct history *h = ctx;
    struct out w = {h, out};
    pthread_mutex_lock(&h->lock);
    while (out->n == 0 && peek(h) && row_ms(&h->row) <= t) {
        struct hrow *r = &h->row;
        int k = inst_of(h, r->symbol);
        if (k < 0) {
            h->has_row = false;
            h->st.rows++;
            h->st.unlisted++;
            continue;
        }
        uint16_t inst = (uint16_t)k;
        struct hinst *hi = &h->inst[inst];
        /* Steps of their own before the row, each decided from the mirror
         * with the step before applied: the levels refused earlier, then
         * the end of a snapshot. */
        if (hi->dirty) {
            retry_dirty(&w, v, inst);
            if (out->n)
                break;
        }
        if (hi->in_snapshot && !(r->kind == HR_BOOK && r->snapshot && r->ts_us == hi->snap_us)) {
            snapshot_end(h, inst);
            for (uint32_t j = 0; j < hi->nlive; j++)
                level_fix(&w, v, hi->live[j], false);
            prune(h, inst);
            if (out->n)
                break;
        }
        h->has_row = false;
        h->st.rows++;
        h->st.last_ms = row_ms(r);
        switch (r->kind) {
        case HR_TRADE:
            if (!on_tick(h, inst, r->price))
                h->st.off_tick++;
            else
                do_trade(&w, v, inst, r, t);
            break;
        case HR_QUOTE:
            do_quote(&w, v, inst, r, t);
            break;
        case HR_BOOK:
            do_book(&w, v, inst, r);
            break;
        case HR_TICKER:
            do_ticker(&w, v, inst, r, t);
            break;
        default:
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- life ------------------------------------------------------------------------ */

struct history *history_create(struct hsource *src, const struct exch_config *cfg, const struct history_params *p)
{
    struct history *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->p = *p;
    h->cfg = cfg;
    h->src = src;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

int history_attach(struct history *h, struct core *c)
{
    /* The data cannot rewind: a backtest's exchange is not restored. */
    core_forbid_restore(c);
    return core_subscribe(c, consume, h, true);
}

int history_first_ms(struct history *h, ms_t *out, char *err, size_t errcap)
{
    pthread_mutex_lock(&h->lock);
    bool any = peek(h);
    *out = any ? row_ms(&h->row) : INT64_MAX;
    pthread_mutex_unlock(&h->lock);
    if (h->failed) {
        snprintf(err, errcap, "%s", h->err);
        return -1;
    }
    return 0;
}

/* The history account's key: fixed, so a replay or a second run makes the
 * same, and disabled, so nobody signs as history. */
static const char history_key_id[KEY_ID_LEN + 1] = "perpsimHistoryAccount000";

int history_start(struct history *h, struct core *c, char *err, size_t errcap)
{
    struct key_rec had;
    if (core_key_get(c, history_key_id, &had)) {
        h->account = had.account;
        h->account_made = true;
    } else {
        uint16_t ninst = h->cfg->engine.instruments_count;
        struct core_job *j = core_job_new(J_ACCOUNT, 0, h->cfg->currencies_count + ninst);
        if (!j) {
            snprintf(err, errcap, "history: out of memory");
            return -1;
        }
        memcpy(j->key.id, history_key_id, sizeof(j->key.id));
        for (int i = 0; i < KEY_SECRET_LEN; i++)
            j->key.secret[i] = 'h';
        j->key.perms = PERM_ORDER;
        j->key.enabled = false;
        /* Its millions of book orders are no one's to read (the key is
         * disabled): the read model keeps none of their rows. */
        j->account_flags = CORE_ACCOUNT_NO_ROWS;
        for (uint8_t cur = 0; cur < h->cfg->currencies_count; cur++) {
            /* A million XBT, ten billion USDT: the whole book's margin. */
            bool usd = strcmp(h->cfg->currency[cur], "USDt") == 0;
            j->cmds[cur].type = CMD_DEPOSIT;
            j->cmds[cur].u.money.currency = cur;
            j->cmds[cur].u.money.amount = usd ? INT64_C(10000000000000000) : INT64_C(100000000000000);
        }
        for (uint16_t k = 0; k < ninst; k++) {
            struct cmd *r = &j->cmds[h->cfg->currencies_count + k];
            r->type = CMD_SET_RISK_LIMIT;
            r->inst = k;
            r->u.risk_limit = h->cfg->inst[k].risk_limit + RISK_STEPS_MAX * h->cfg->inst[k].risk_step;
        }
        core_run(c, j);
        bool ok = j->status == REJ_NONE;
        for (uint32_t i = 0; ok && i < j->n; i++)
            ok = j->rej[i] == REJ_NONE;
        h->account = j->account;
        core_job_free(j);
        if (!ok) {
            snprintf(err, errcap, "history: the history account could not be made");
            return -1;
        }
        /* Its orders from now on are the mirror's (the consumer saw none yet). */
        h->account_made = true;
    }
    struct core_timer t = {timer_next, timer_fire, h, NULL};
    core_set_timer(c, &t);
    return 0;
}

const char *history_error(const struct history *h)
{
    return h->failed ? h->err : NULL;
}

void history_stats(struct history *h, struct history_stats *out)
{
    pthread_mutex_lock(&h->lock);
    *out = h->st;
    pthread_mutex_unlock(&h->lock);
}

const struct hsource *history_source(const struct history *h)
{
    return h->src;
}

uint32_t history_account(const struct history *h)
{
    return h->account;
}

bool history_done(void *ctx)
{
    struct history *h = ctx;
    pthread_mutex_lock(&h->lock);
    bool done = h->eof && !h->has_row;
    pthread_mutex_unlock(&h->lock);
    return done;
}

struct core_timer history_timer(struct history *h)
{
    return (struct core_timer){timer_next, timer_fire, h, NULL};
}

void history_stop(struct core *c, struct history *h)
{
    if (!h)
        return;
    if (c)
        core_set_timer(c, NULL);
    for (uint32_t i = 0; i < h->tabcap; i++)
        free(h->tab[i].o);
    free(h->tab);
    for (int k = 0; k < INSTRUMENTS_MAX; k++)
        free(h->inst[k].live);
    hsource_close(h->src);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
