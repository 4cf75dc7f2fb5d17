/*
 * engine.c - commands in, events out: validation, matching, order types,
 * triggers, contingencies and the time-driven work. The rules are written
 * in engine.h; this file applies them. Data structures: engine_int.h.
 *
 * Shape of one command: engine_apply() checks sequence and time, runs the
 * time-driven cancels, validates the command into a local description
 * without touching state (a reject returns here), then mutates. After the
 * command, trigger passes run for every instrument whose prices or stops
 * changed. Every mutation is reported as an event the moment it happens.
 */
#include "engine/engine.h"
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

#ifdef PERPSIM_CHECKS
#include <stdio.h>
#define VERIFY_AFTER_COMMAND(e)                                                           \
    do {                                                                                  \
        const char *why_ = engine_verify(e);                                              \
        if (why_) {                                                                       \
            fprintf(stderr, "perpsim: engine invariant broken after seq %llu: %s\n",     \
                    (unsigned long long)(e)->cur_seq, why_);                             \
            abort();                                                                      \
        }                                                                                 \
    } while (0)
#else
#define VERIFY_AFTER_COMMAND(e) ((void)0)
#endif

/* ---- small helpers ------------------------------------------------------ */

static inline struct acct_inst *ai_of(const struct engine *e, uint32_t account, uint16_t inst)
{
    return &e->ai[(size_t)account * e->cfg.instruments_count + inst];
}

static inline int is_stop_type(uint8_t t)
{
    return t == ORD_STOP || t == ORD_STOP_LIMIT || t == ORD_MARKET_IF_TOUCHED ||
           t == ORD_LIMIT_IF_TOUCHED;
}

static inline int is_market_type(uint8_t t)
{
    return t == ORD_MARKET || t == ORD_STOP || t == ORD_MARKET_IF_TOUCHED;
}

static inline int has_price_type(uint8_t t)
{
    return t == ORD_LIMIT || t == ORD_STOP_LIMIT || t == ORD_LIMIT_IF_TOUCHED || t == ORD_PEGGED;
}

void engine_order_defaults(const struct cmd_new_order *n, uint8_t *ord_type, uint8_t *tif)
{
    uint8_t t = n->ord_type;
    if (t == ORD_NONE) {
        if (n->peg_type == PEG_PRIMARY || n->peg_type == PEG_MARKET)
            t = ORD_PEGGED;
        else if ((n->has & HAS_PRICE) && (n->has & HAS_STOP_PX))
            t = ORD_STOP_LIMIT;
        else if (n->has & HAS_STOP_PX)
            t = ORD_STOP;
        else if (n->has & HAS_PRICE)
            t = ORD_LIMIT;
        else
            t = ORD_MARKET;
    }
    *ord_type = t;
    *tif = n->tif == TIF_NONE ? (is_market_type(t) ? TIF_IOC : TIF_GTC) : n->tif;
}

/* Fires when the reference rises to stop_px (buy Stop, sell if-touched). */
static inline int fires_up(uint8_t side, uint8_t t)
{
    int stop = t == ORD_STOP || t == ORD_STOP_LIMIT;
    return side == SIDE_BUY ? stop : !stop;
}

static inline enum price_source source_of(uint16_t exec_inst)
{
    if (exec_inst & EXEC_LAST_PRICE)
        return SRC_LAST;
    if (exec_inst & EXEC_INDEX_PRICE)
        return SRC_INDEX;
    return SRC_MARK;
}

static inline int is_special_stop(const struct order *o)
{
    return o->peg_type == PEG_TRAILING_STOP || (o->exec_inst & EXEC_LAST_WITHIN_MARK);
}

static inline qty_t signed_qty(uint8_t side, qty_t q) { return side == SIDE_BUY ? q : -q; }

static inline qty_t min_qty(qty_t a, qty_t b) { return a < b ? a : b; }

/* floor and ceiling of a / b for b > 0, rounding named. */
static inline int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t div_ceil(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static int cmp_idslot(const void *a, const void *b)
{
    uint64_t x = ((const struct idslot *)a)->id, y = ((const struct idslot *)b)->id;
    return (x > y) - (x < y);
}

/* A client id: at most CLORDID_LEN_MAX printable ASCII characters. */
static int clordid_valid(const char *s)
{
    for (int i = 0; i <= CLORDID_LEN_MAX; i++) {
        if (s[i] == 0)
            return 1;
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 0;
}

/* ---- events ------------------------------------------------------------- */

static inline void ev_begin(const struct engine *e, struct event *ev, uint8_t type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->seq = e->cur_seq;
    ev->ts = e->cur_ts;
}

static void view_of(const struct engine *e, const struct order *o, struct order_view *v)
{
    v->id = o->id;
    v->slot = o >= e->orders && o < e->orders + e->cfg.orders_max ? (uint32_t)(o - e->orders)
                                                                    : ENGINE_NIL;
    v->account = o->account;
    v->inst = o->inst;
    v->side = o->side;
    v->ord_type = o->ord_type;
    v->tif = o->tif;
    v->peg_type = o->peg_type;
    v->contingency = o->contingency;
    v->status = o->status;
    v->exec_inst = o->exec_inst;
    v->triggered = (o->flags & OF_TRIGGERED) ? 1 : 0;
    /* A terminal order is no longer working, and a canceled one shows
     * leavesQty 0, as BitMEX reports them. */
    int terminal = o->status == ST_FILLED || o->status == ST_CANCELED;
    v->working = (o->flags & OF_WORKING) && !terminal ? 1 : 0;
    v->qty = o->qty;
    v->leaves = o->status == ST_CANCELED ? 0 : o->leaves;
    v->cum = o->qty - o->leaves;
    v->display_qty = o->display;
    v->price = o->price;
    v->stop_px = o->stop_px;
    v->peg_offset_px = o->peg_offset_px;
}

/* EV_NEW always carries the client ids; EV_AMENDED only when renamed. */
static void emit_order_ids(struct engine *e, uint8_t type, const struct order *o, uint8_t reason,
                           int with_ids);
static void emit_order_copy(struct engine *e, uint8_t type, const struct order *copy,
                            uint32_t slot, uint8_t reason, int with_ids);

static void emit_order(struct engine *e, uint8_t type, const struct order *o, uint8_t reason)
{
    emit_order_ids(e, type, o, reason, type == EV_NEW);
}

static void emit_order_ids(struct engine *e, uint8_t type, const struct order *o, uint8_t reason,
                           int with_ids)
{
    emit_order_copy(e, type, o, (uint32_t)(o - e->orders), reason, with_ids);
}

/* o may be a modified copy of the order in `slot` (an amend shows its new
 * values before the order itself changes). */
static void emit_order_copy(struct engine *e, uint8_t type, const struct order *o, uint32_t slot,
                            uint8_t reason, int with_ids)
{
    struct event ev;
    ev_begin(e, &ev, type);
    ev.reason = reason;
    ev.inst = o->inst;
    ev.account = o->account;
    view_of(e, o, &ev.order);
    ev.order.slot = slot;
    if (with_ids) {
        if (o->clord != ENGINE_NIL)
            memcpy(ev.u.ids.clordid, e->strs[o->clord], CLORDID_LEN_MAX + 1);
        if (o->link != ENGINE_NIL)
            memcpy(ev.u.ids.clordlinkid, e->strs[o->link], CLORDID_LEN_MAX + 1);
    }
    e->sink(e->sink_ctx, &ev);
}

static void emit_level(struct engine *e, uint16_t inst, uint8_t side, px_t px, qty_t before,
                       qty_t after)
{
    if (before == after)
        return;
    struct event ev;
    ev_begin(e, &ev, EV_LEVEL);
    ev.inst = inst;
    ev.u.level.side = side;
    ev.u.level.px = px;
    ev.u.level.size_before = before;
    ev.u.level.size = after;
    e->sink(e->sink_ctx, &ev);
}

/* A reject: one EV_REJECTED built from what the command said. */
static enum reject reject_cmd(struct engine *e, const struct cmd *c, enum reject why)
{
    struct event ev;
    ev_begin(e, &ev, EV_REJECTED);
    ev.seq = c->seq;
    ev.ts = c->ts;
    ev.reason = (uint8_t)why;
    ev.inst = c->inst;
    ev.account = c->account;
    ev.order.account = c->account;
    ev.order.inst = c->inst;
    ev.order.status = ST_REJECTED;
    ev.order.display_qty = -1;
    ev.order.slot = ENGINE_NIL;
    if (c->type == CMD_NEW_ORDER) {
        const struct cmd_new_order *n = &c->u.new_order;
        ev.order.side = n->side;
        ev.order.ord_type = n->ord_type;
        ev.order.tif = n->tif;
        ev.order.peg_type = n->peg_type;
        ev.order.contingency = n->contingency;
        ev.order.exec_inst = n->exec_inst;
        ev.order.qty = (n->has & HAS_QTY) ? n->qty : 0;
        ev.order.display_qty = (n->has & HAS_DISPLAY_QTY) ? n->display_qty : -1;
        ev.order.price = (n->has & HAS_PRICE) ? n->price : 0;
        ev.order.stop_px = (n->has & HAS_STOP_PX) ? n->stop_px : 0;
        ev.order.peg_offset_px = (n->has & HAS_PEG_OFFSET) ? n->peg_offset_px : 0;
        memcpy(ev.u.ids.clordid, n->clordid, CLORDID_LEN_MAX);
        memcpy(ev.u.ids.clordlinkid, n->clordlinkid, CLORDID_LEN_MAX);
    } else if (c->type == CMD_AMEND) {
        const struct cmd_amend *a = &c->u.amend;
        ev.order.id = a->ref.order_id;
        ev.order.qty = (a->has & AMD_QTY) ? a->qty : 0;
        ev.order.leaves = (a->has & AMD_LEAVES) ? a->leaves : 0;
        ev.order.price = (a->has & AMD_PRICE) ? a->price : 0;
        ev.order.stop_px = (a->has & AMD_STOP_PX) ? a->stop_px : 0;
        ev.order.peg_offset_px = (a->has & AMD_PEG_OFFSET) ? a->peg_offset_px : 0;
        memcpy(ev.u.ids.clordid, c->u.amend.ref.clordid, CLORDID_LEN_MAX);
    } else if (c->type == CMD_CANCEL) {
        ev.order.id = c->u.cancel.order_id;
        memcpy(ev.u.ids.clordid, c->u.cancel.clordid, CLORDID_LEN_MAX);
    }
    e->sink(e->sink_ctx, &ev);
    return why;
}

/* ---- pools -------------------------------------------------------------- */

static uint32_t order_take(struct engine *e)
{
    uint32_t s;
    if (e->free_order != ENGINE_NIL) {
        s = e->free_order;
        e->free_order = e->orders[s].next;
    } else {
        s = e->orders_hw++;
    }
    e->live++;
    return s;
}

static int orders_full(const struct engine *e)
{
    return e->free_order == ENGINE_NIL && e->orders_hw == e->cfg.orders_max;
}

static uint32_t str_take(struct engine *e, const char *s)
{
    uint32_t k;
    if (e->free_str != ENGINE_NIL) {
        k = e->free_str;
        memcpy(&e->free_str, e->strs[k], sizeof(uint32_t));
    } else {
        k = e->strs_hw++;
    }
    e->strs_used++;
    memset(e->strs[k], 0, STR_SLOT_LEN);
    memcpy(e->strs[k], s, strlen(s));
    return k;
}

static void str_give(struct engine *e, uint32_t k)
{
    memcpy(e->strs[k], &e->free_str, sizeof(uint32_t));
    e->free_str = k;
    e->strs_used--;
}

/* ---- order lifecycle ---------------------------------------------------- */

static void acct_link(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct acct_inst *a = ai_of(e, o->account, o->inst);
    o->aprev = ENGINE_NIL;
    o->anext = a->head;
    if (a->head != ENGINE_NIL)
        e->orders[a->head].aprev = slot;
    a->head = slot;
}

static void acct_unlink(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct acct_inst *a = ai_of(e, o->account, o->inst);
    if (o->aprev != ENGINE_NIL)
        e->orders[o->aprev].anext = o->anext;
    else
        a->head = o->anext;
    if (o->anext != ENGINE_NIL)
        e->orders[o->anext].aprev = o->aprev;
}

/* The order is terminal and in no book or stop structure: free its slot. */
static void order_release(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct acct_inst *a = ai_of(e, o->account, o->inst);
    if (o->flags & OF_WORKING)
        a->open_count--;
    else
        a->stop_count--;
    if (o->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE))
        a->ro_count--;
    if (o->contingency != CONT_NONE)
        a->cont_count--;
    idmap_remove(e, slot);
    if (o->clord != ENGINE_NIL) {
        clomap_remove(e, slot);
        str_give(e, o->clord);
    }
    if (o->link != ENGINE_NIL)
        str_give(e, o->link);
    acct_unlink(e, slot);
    o->id = 0;
    o->next = e->free_order;
    e->free_order = slot;
    e->live--;
}

static struct sheap *heap_of(struct engine *e, const struct order *o)
{
    return &e->inst[o->inst].heaps[source_of(o->exec_inst)][fires_up(o->side, o->ord_type) ? 0 : 1];
}

static void special_link(struct engine *e, uint32_t slot)
{
    struct inst_state *is = &e->inst[e->orders[slot].inst];
    struct order *o = &e->orders[slot];
    o->prev = ENGINE_NIL;
    o->next = is->special_head;
    if (is->special_head != ENGINE_NIL)
        e->orders[is->special_head].prev = slot;
    is->special_head = slot;
}

static void special_unlink(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct inst_state *is = &e->inst[o->inst];
    if (o->prev != ENGINE_NIL)
        e->orders[o->prev].next = o->next;
    else
        is->special_head = o->next;
    if (o->next != ENGINE_NIL)
        e->orders[o->next].prev = o->prev;
}

static void stops_insert(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    if (is_special_stop(o))
        special_link(e, slot);
    else
        sheap_push(heap_of(e, o), e->orders, slot);
    e->inst[o->inst].stops++;
    of_set_where(o, WH_STOPS);
    e->dirty_insts |= UINT64_C(1) << o->inst;
}

static void stops_remove(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    if (is_special_stop(o))
        special_unlink(e, slot);
    else
        sheap_remove(heap_of(e, o), e->orders, slot);
    e->inst[o->inst].stops--;
    of_set_where(o, WH_NONE);
}

/* Put a working order at the back of its level; reports the level change. */
static void rest_order(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct book *b = &e->inst[o->inst].book;
    uint32_t ls = book_level_at(b, o->price);
    qty_t before = ls == ENGINE_NIL ? 0 : e->levels[ls].visible;
    ls = book_append(e, b, slot);
    of_set_where(o, WH_BOOK);
    emit_level(e, o->inst, o->side, o->price, before, e->levels[ls].visible);
}

/* Take a resting order out of its level; reports the level change. */
static void unrest_order(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct book *b = &e->inst[o->inst].book;
    qty_t before = e->levels[book_level_at(b, o->price)].visible;
    book_unlink(e, b, slot);
    of_set_where(o, WH_NONE);
    emit_level(e, o->inst, o->side, o->price, before, before - o->shown);
}

/* Cancel a live order wherever it is: EV_CANCELED, then the level change. */
static void cancel_order(struct engine *e, uint32_t slot, enum cancel_reason why)
{
    struct order *o = &e->orders[slot];
    uint32_t wh = of_where(o);
    qty_t before = 0, shown = o->shown;
    struct book *b = &e->inst[o->inst].book;
    if (wh == WH_BOOK) {
        before = e->levels[book_level_at(b, o->price)].visible;
        book_unlink(e, b, slot);
    } else if (wh == WH_STOPS) {
        stops_remove(e, slot);
    }
    of_set_where(o, WH_NONE);
    o->status = ST_CANCELED;
    emit_order(e, EV_CANCELED, o, (uint8_t)why);
    if (wh == WH_BOOK)
        emit_level(e, o->inst, o->side, o->price, before, before - shown);
    order_release(e, slot);
}

/* A visible-size-only change of a resting order (shown goes to new_shown). */
static void reshow(struct engine *e, uint32_t slot, qty_t new_shown)
{
    struct order *o = &e->orders[slot];
    struct level *l = &e->levels[book_level_at(&e->inst[o->inst].book, o->price)];
    qty_t before = l->visible;
    l->visible += new_shown - o->shown;
    o->shown = new_shown;
    emit_level(e, o->inst, o->side, o->price, before, l->visible);
}

/* What a resting order shows for its leaves: all, a slice, or nothing. */
static inline qty_t shown_for(const struct order *o, qty_t leaves)
{
    if (o->display < 0)
        return leaves;
    return min_qty(o->display, leaves);
}

static void touch_position(struct engine *e, uint32_t account, uint16_t inst, qty_t delta)
{
    struct acct_inst *a = ai_of(e, account, inst);
    a->pos += delta;
    if (!a->touched) {
        a->touched = 1;
        e->touched[e->touched_n++] = (uint32_t)(a - e->ai);
    }
}

/* ReduceOnly room: how much this side may still trade. */
static qty_t ro_room(const struct engine *e, uint32_t account, uint16_t inst, uint8_t side)
{
    qty_t pos = ai_of(e, account, inst)->pos;
    if (side == SIDE_BUY)
        return pos < 0 ? -pos : 0;
    return pos > 0 ? pos : 0;
}

/* ---- rule 7: OCO -------------------------------------------------------- */

static void oco_fired(struct engine *e, uint32_t slot)
{
    const struct order *o = &e->orders[slot];
    if (o->contingency != CONT_OCO || o->link == ENGINE_NIL)
        return;
    uint64_t id = o->id;
    uint32_t n = 0;
    const char *link = e->strs[o->link];
    for (uint32_t s = ai_of(e, o->account, o->inst)->head; s != ENGINE_NIL; s = e->orders[s].anext) {
        const struct order *x = &e->orders[s];
        /* a member filled in this same match is no longer live */
        if (x->id != id && x->status != ST_FILLED && x->contingency == CONT_OCO && x->link != ENGINE_NIL &&
            strcmp(e->strs[x->link], link) == 0)
            e->grp_buf[n++] = (struct idslot){x->id, s};
    }
    qsort(e->grp_buf, n, sizeof(struct idslot), cmp_idslot);
    for (uint32_t i = 0; i < n; i++)
        if (e->orders[e->grp_buf[i].slot].id == e->grp_buf[i].id)
            cancel_order(e, e->grp_buf[i].slot, CXL_OCO);
}

/* ---- rule 6: ReduceOnly enforcement -------------------------------------- */

/* Least aggressive first: sells highest price first, buys lowest first,
 * ties highest id first. Sorted on (key, id) with the sign folded in. */
struct ro_item {
    px_t key;
    uint64_t id;
    uint32_t slot;
};

static int cmp_ro(const void *a, const void *b)
{
    const struct ro_item *x = a, *y = b;
    if (x->key != y->key)
        return (x->key < y->key) - (x->key > y->key); /* larger key first */
    return (x->id < y->id) - (x->id > y->id);          /* larger id first */
}

static void ro_enforce(struct engine *e, uint32_t account, uint16_t inst)
{
    static const uint8_t sides[2] = {SIDE_BUY, SIDE_SELL};
    if (ai_of(e, account, inst)->ro_count == 0)
        return; /* the common case: nothing to enforce, no list walk */
    for (int k = 0; k < 2; k++) {
        uint8_t side = sides[k];
        qty_t room = ro_room(e, account, inst, side);
        qty_t total = 0;
        uint32_t n = 0;
        struct ro_item *items = (struct ro_item *)e->grp_buf;
        for (uint32_t s = ai_of(e, account, inst)->head; s != ENGINE_NIL; s = e->orders[s].anext) {
            const struct order *o = &e->orders[s];
            if (o->side != side || !(o->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE)) ||
                of_where(o) != WH_BOOK)
                continue;
            total += o->leaves;
            items[n++] = (struct ro_item){side == SIDE_SELL ? o->price : -o->price, o->id, s};
        }
        if (total <= room)
            continue;
        qsort(items, n, sizeof(*items), cmp_ro);
        qty_t excess = total - room;
        for (uint32_t i = 0; i < n && excess > 0; i++) {
            uint32_t s = items[i].slot;
            struct order *o = &e->orders[s];
            qty_t cut = min_qty(o->leaves, excess);
            excess -= cut;
            if (cut == o->leaves) {
                cancel_order(e, s, CXL_REDUCE_ONLY);
                continue;
            }
            o->leaves -= cut;
            o->qty -= cut;
            qty_t before_shown = o->shown;
            qty_t new_shown = min_qty(before_shown, o->leaves);
            emit_order(e, EV_RESTATED, o, 0);
            if (new_shown != before_shown)
                reshow(e, s, new_shown);
        }
    }
}

static void ro_enforce_touched(struct engine *e)
{
    if (e->touched_n == 0)
        return;
    /* ascending (account, instrument) = ascending acct_inst index */
    uint32_t n = e->touched_n;
    for (uint32_t i = 1; i < n; i++) {
        uint32_t v = e->touched[i], j = i;
        while (j > 0 && e->touched[j - 1] > v) {
            e->touched[j] = e->touched[j - 1];
            j--;
        }
        e->touched[j] = v;
    }
    e->touched_n = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ix = e->touched[i];
        e->ai[ix].touched = 0;
        ro_enforce(e, ix / e->cfg.instruments_count, (uint16_t)(ix % e->cfg.instruments_count));
    }
}

/* ---- rule 3: matching ---------------------------------------------------- */

/* Can a taker at limit px (0 = none) trade against a level at lpx? */
static inline int crosses(uint8_t taker_side, px_t limit, px_t lpx)
{
    if (limit == 0)
        return 1;
    return taker_side == SIDE_BUY ? lpx <= limit : lpx >= limit;
}

/* The taker's limit: its price, or for Market/Stop/MIT the margin core's
 * bound (the bankruptcy price), or none (0). */
static px_t taker_limit(struct engine *e, const struct order *t)
{
    if (!is_market_type(t->ord_type))
        return t->price;
    if (e->hooks.market_bound)
        return e->hooks.market_bound(e->hooks.ctx, t->account, t->inst, t->side);
    return 0;
}

/* Would the order take liquidity now (post-only test)? */
static int would_cross(struct engine *e, const struct order *t, px_t limit)
{
    struct book *b = &e->inst[t->inst].book;
    uint32_t ls = book_best_level(e, b, side_ix(side_opp(t->side)));
    return ls != ENGINE_NIL && crosses(t->side, limit, e->levels[ls].px);
}

/* FillOrKill: is there enough to fill the whole leaves now? */
static int fok_fillable(struct engine *e, const struct order *t, px_t limit)
{
    struct book *b = &e->inst[t->inst].book;
    qty_t need = t->leaves;
    for (uint32_t ls = book_best_level(e, b, side_ix(side_opp(t->side))); ls != ENGINE_NIL;
         ls = book_next_level(e, b, &e->levels[ls])) {
        const struct level *l = &e->levels[ls];
        if (!crosses(t->side, limit, l->px))
            return 0;
        for (uint32_t s = l->head; s != ENGINE_NIL; s = e->orders[s].next) {
            const struct order *m = &e->orders[s];
            if (m->account == t->account && e->cfg.stp != STP_ALLOW) {
                if (e->cfg.stp == STP_CANCEL_TAKER)
                    return 0;
                continue;
            }
            need -= m->leaves;
            if (need <= 0)
                return 1;
        }
    }
    return 0;
}

/* One match of q between taker t and the maker at the head of level ls. */
static void execute(struct engine *e, uint32_t tslot, uint32_t mslot, uint32_t ls, qty_t q)
{
    struct order *t = &e->orders[tslot], *m = &e->orders[mslot];
    struct level *l = &e->levels[ls];
    struct book *b = &e->inst[t->inst].book;
    px_t px = l->px;
    qty_t before = l->visible;
    uint64_t trade_id = e->next_trade_id++;
    /* BitMEX: hidden orders always pay taker; icebergs while a hidden part remains. */
    uint8_t pays_taker = m->display == 0 || (m->display > 0 && m->leaves > m->shown);

    m->leaves -= q;
    t->leaves -= q;
    m->status = m->leaves ? ST_PARTIALLY_FILLED : ST_FILLED;
    t->status = t->leaves ? ST_PARTIALLY_FILLED : ST_FILLED;
    if (m->display != 0) {
        qty_t shown = m->shown - q;
        if (shown == 0 && m->leaves > 0) {
            /* iceberg: a new slice joins the back of the level */
            shown = shown_for(m, m->leaves);
            book_to_tail(e, b, mslot);
        }
        l->visible += shown - m->shown;
        m->shown = shown;
    }
    touch_position(e, m->account, m->inst, signed_qty(m->side, q));
    touch_position(e, t->account, t->inst, signed_qty(t->side, q));
    e->inst[t->inst].prices[SRC_LAST] = px;
    e->dirty_insts |= UINT64_C(1) << t->inst;

    struct event mev, tev, trade;
    ev_begin(e, &mev, EV_FILL);
    mev.inst = m->inst;
    mev.account = m->account;
    view_of(e, m, &mev.order);
    mev.u.fill = (struct ev_fill){.trade_id = trade_id, .last_qty = q, .last_px = px, .maker = 1,
                                  .pays_taker = pays_taker};
    ev_begin(e, &tev, EV_FILL);
    tev.inst = t->inst;
    tev.account = t->account;
    view_of(e, t, &tev.order);
    tev.u.fill = (struct ev_fill){.trade_id = trade_id, .last_qty = q, .last_px = px, .maker = 0,
                                  .pays_taker = 1};
    ev_begin(e, &trade, EV_TRADE);
    trade.inst = t->inst;
    trade.u.trade = (struct ev_trade){.trade_id = trade_id, .maker_order_id = m->id,
                                      .taker_order_id = t->id, .maker_account = m->account,
                                      .taker_account = t->account, .qty = q, .px = px,
                                      .taker_side = t->side};
    e->sink(e->sink_ctx, &mev);
    e->sink(e->sink_ctx, &tev);
    e->sink(e->sink_ctx, &trade);
    if (e->hooks.on_fill)
        e->hooks.on_fill(e->hooks.ctx, &mev, &tev);

    uint8_t mside = m->side;
    uint16_t inst = m->inst;
    qty_t after = l->visible; /* a filled maker shows nothing more */
    int filled = m->leaves == 0;
    if (filled) {
        book_unlink(e, b, mslot);
        of_set_where(m, WH_NONE);
    }
    emit_level(e, inst, mside, px, before, after);
    uint64_t tid = t->id;
    oco_fired(e, mslot);
    if (filled)
        order_release(e, mslot);
    if (e->orders[tslot].id == tid) /* the maker's group may have canceled the taker */
        oco_fired(e, tslot);
}

/* Match taker t against the book. Returns the reason its remainder must be
 * canceled regardless of TIF (self-trade, reduce-only), or CXL_NONE. */
static enum cancel_reason match(struct engine *e, uint32_t tslot)
{
    struct order *t = &e->orders[tslot];
    struct book *b = &e->inst[t->inst].book;
    int opp = side_ix(side_opp(t->side));
    px_t limit = taker_limit(e, t);
    int ro_taker = (t->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE)) != 0;
    while (t->leaves > 0) {
        uint32_t ls = book_best_level(e, b, opp);
        if (ls == ENGINE_NIL || !crosses(t->side, limit, e->levels[ls].px))
            break;
        uint32_t mslot = e->levels[ls].head;
        const struct order *m = &e->orders[mslot];
        if (m->account == t->account && e->cfg.stp != STP_ALLOW) {
            if (e->cfg.stp == STP_CANCEL_TAKER)
                return CXL_SELF_TRADE;
            cancel_order(e, mslot, CXL_SELF_TRADE);
            continue;
        }
        qty_t q = min_qty(t->leaves, m->display > 0 ? m->shown : m->leaves);
        if (m->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE)) {
            qty_t room = ro_room(e, m->account, m->inst, m->side);
            if (room == 0) {
                cancel_order(e, mslot, CXL_REDUCE_ONLY);
                continue;
            }
            q = min_qty(q, room);
        }
        if (ro_taker) {
            qty_t room = ro_room(e, t->account, t->inst, t->side);
            if (room == 0)
                return CXL_REDUCE_ONLY;
            q = min_qty(q, room);
        }
        uint64_t tid = t->id;
        execute(e, tslot, mslot, ls, q);
        if (e->orders[tslot].id != tid)
            return CXL_NONE; /* canceled by its own OCO group */
    }
    return CXL_NONE;
}

/* An accepted working order not in the book: apply rule 6's entry step,
 * post-only, FOK, match, then rest or cancel the remainder; then enforce
 * ReduceOnly for every position that changed. */
static void process_incoming(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    enum cancel_reason why = CXL_NONE;
    if (o->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE)) {
        qty_t room = ro_room(e, o->account, o->inst, o->side);
        if (room == 0) {
            why = CXL_REDUCE_ONLY;
        } else if (o->flags & OF_CLOSE_ALL) {
            o->flags &= (uint8_t)~OF_CLOSE_ALL;
            o->qty = (o->qty - o->leaves) + room;
            o->leaves = room;
            emit_order(e, EV_RESTATED, o, 0);
        } else if (room < o->leaves) {
            o->qty -= o->leaves - room;
            o->leaves = room;
            emit_order(e, EV_RESTATED, o, 0);
        }
    }
    px_t limit = why ? 0 : taker_limit(e, o);
    if (!why && (o->exec_inst & EXEC_POST_ONLY) && would_cross(e, o, limit))
        why = CXL_POST_ONLY;
    if (!why && o->tif == TIF_FOK && !fok_fillable(e, o, limit))
        why = CXL_FOK;
    uint64_t id = o->id;
    if (!why)
        why = match(e, slot);
    o = &e->orders[slot];
    if (o->id != id) {
        /* already canceled while matching (an OCO sibling filled) */
    } else if (o->leaves > 0) {
        if (!why && is_market_type(o->ord_type))
            why = CXL_MARKET;
        else if (!why && o->tif == TIF_IOC)
            why = CXL_IOC;
        else if (!why && o->tif == TIF_FOK)
            why = CXL_FOK;
        if (why) {
            cancel_order(e, slot, why);
        } else {
            o->shown = shown_for(o, o->leaves);
            rest_order(e, slot);
        }
    } else if (why) {
        cancel_order(e, slot, why); /* e.g. a ReduceOnly Close with nothing to close */
    } else {
        order_release(e, slot); /* filled */
    }
    ro_enforce_touched(e);
}

/* ---- rule 8: triggers ---------------------------------------------------- */

static int stop_fires(const struct inst_state *is, const struct order *o)
{
    px_t ref = is->prices[source_of(o->exec_inst)];
    if (ref == 0)
        return 0;
    int up = fires_up(o->side, o->ord_type);
    if (up ? ref < o->stop_px : ref > o->stop_px)
        return 0;
    if (o->exec_inst & EXEC_LAST_WITHIN_MARK) {
        px_t mark = is->prices[SRC_MARK];
        if (mark == 0)
            return 0;
        if (up ? (i128)ref * 100 > (i128)mark * 105 : (i128)ref * 100 < (i128)mark * 95)
            return 0;
    }
    return 1;
}

/* Trailing stop price for a reference: rounded to the tick away from it. */
static px_t trail_px(px_t ref, px_t offset, px_t tick, int up)
{
    px_t raw = ref + offset;
    return (up ? div_ceil(raw, tick) : div_floor(raw, tick)) * tick;
}

static void activate(struct engine *e, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    struct acct_inst *a = ai_of(e, o->account, o->inst);
    of_set_where(o, WH_NONE);
    a->stop_count--;
    a->open_count++;
    o->flags |= OF_TRIGGERED | OF_WORKING;
    emit_order(e, EV_TRIGGERED, o, 0);
    if (e->hooks.admit) {
        struct order_view v;
        view_of(e, o, &v);
        if (e->hooks.admit(e->hooks.ctx, &v) != REJ_NONE) {
            cancel_order(e, slot, CXL_TRIGGER_REJECTED);
            return;
        }
    }
    process_incoming(e, slot);
}

static void trigger_pass(struct engine *e, uint16_t inst)
{
    struct inst_state *is = &e->inst[inst];
    for (;;) {
        for (uint32_t s = is->special_head; s != ENGINE_NIL; s = e->orders[s].next) {
            struct order *o = &e->orders[s];
            if (o->peg_type != PEG_TRAILING_STOP)
                continue;
            px_t ref = is->prices[source_of(o->exec_inst)];
            if (ref == 0)
                continue;
            int up = fires_up(o->side, o->ord_type);
            px_t px = trail_px(ref, o->peg_offset_px, is->book.tick_px, up);
            if (up ? px < o->stop_px : px > o->stop_px)
                o->stop_px = px;
        }
        uint32_t n = 0;
        for (int src = 0; src < SRC_COUNT; src++) {
            for (int dir = 0; dir < 2; dir++) {
                struct sheap *h = &is->heaps[src][dir];
                uint32_t s;
                while ((s = sheap_top(h)) != ENGINE_NIL && stop_fires(is, &e->orders[s])) {
                    sheap_remove(h, e->orders, s);
                    of_set_where(&e->orders[s], WH_FIRING);
                    is->stops--;
                    e->fire_buf[n++] = (struct idslot){e->orders[s].id, s};
                }
            }
        }
        for (uint32_t s = is->special_head, nx; s != ENGINE_NIL; s = nx) {
            nx = e->orders[s].next;
            if (stop_fires(is, &e->orders[s])) {
                special_unlink(e, s);
                of_set_where(&e->orders[s], WH_FIRING);
                is->stops--;
                e->fire_buf[n++] = (struct idslot){e->orders[s].id, s};
            }
        }
        if (n == 0)
            return;
        qsort(e->fire_buf, n, sizeof(struct idslot), cmp_idslot);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t s = e->fire_buf[i].slot;
            /* an earlier activation may have canceled it (OCO) */
            if (e->orders[s].id == e->fire_buf[i].id && of_where(&e->orders[s]) == WH_FIRING)
                activate(e, s);
        }
    }
}

static void run_triggers(struct engine *e)
{
    while (e->dirty_insts) {
        uint16_t inst = (uint16_t)__builtin_ctzll(e->dirty_insts);
        e->dirty_insts &= e->dirty_insts - 1;
        trigger_pass(e, inst);
    }
}

/* ---- rule 0: time ------------------------------------------------------- */

static int dm_before(const struct engine *e, uint32_t a, uint32_t b)
{
    if (e->acct[a].deadline != e->acct[b].deadline)
        return e->acct[a].deadline < e->acct[b].deadline;
    return a < b;
}

static void dm_place(struct engine *e, uint32_t pos, uint32_t acct)
{
    e->dm_heap[pos] = acct;
    e->acct[acct].heap_pos = pos;
}

static void dm_sift(struct engine *e, uint32_t pos)
{
    uint32_t a = e->dm_heap[pos];
    while (pos > 0 && dm_before(e, a, e->dm_heap[(pos - 1) / 2])) {
        dm_place(e, pos, e->dm_heap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= e->dm_count)
            break;
        if (c + 1 < e->dm_count && dm_before(e, e->dm_heap[c + 1], e->dm_heap[c]))
            c++;
        if (!dm_before(e, e->dm_heap[c], a))
            break;
        dm_place(e, pos, e->dm_heap[c]);
        pos = c;
    }
    dm_place(e, pos, a);
}

static void dm_disarm(struct engine *e, uint32_t acct)
{
    if (e->acct[acct].deadline == 0)
        return;
    uint32_t pos = e->acct[acct].heap_pos;
    e->acct[acct].deadline = 0;
    uint32_t last = e->dm_heap[--e->dm_count];
    if (pos < e->dm_count) {
        dm_place(e, pos, last);
        dm_sift(e, pos);
    }
}

static void dm_arm(struct engine *e, uint32_t acct, ms_t deadline)
{
    if (e->acct[acct].deadline == 0) {
        e->acct[acct].deadline = deadline;
        dm_place(e, e->dm_count++, acct);
        dm_sift(e, e->dm_count - 1);
    } else {
        e->acct[acct].deadline = deadline;
        dm_sift(e, e->acct[acct].heap_pos);
    }
}

/* Collect an account's live orders (one instrument or all, one side or
 * both) into acct_buf, ascending id. */
static uint32_t collect_account(struct engine *e, uint32_t account, uint16_t inst, uint8_t side)
{
    uint32_t n = 0;
    for (uint16_t i = 0; i < e->cfg.instruments_count; i++) {
        if (inst != INST_ALL && i != inst)
            continue;
        for (uint32_t s = ai_of(e, account, i)->head; s != ENGINE_NIL; s = e->orders[s].anext)
            if (side == SIDE_NONE || e->orders[s].side == side)
                e->acct_buf[n++] = (struct idslot){e->orders[s].id, s};
    }
    qsort(e->acct_buf, n, sizeof(struct idslot), cmp_idslot);
    return n;
}

static void cancel_collected(struct engine *e, struct idslot *buf, uint32_t n, enum cancel_reason why)
{
    for (uint32_t i = 0; i < n; i++)
        if (e->orders[buf[i].slot].id == buf[i].id)
            cancel_order(e, buf[i].slot, why);
}

static ms_t next_midnight(ms_t ts) { return div_floor(ts, MS_PER_DAY) * MS_PER_DAY + MS_PER_DAY; }

ms_t engine_next_deadline(const struct engine *e)
{
    ms_t t = e->day_end ? e->day_end : INT64_MAX;
    if (e->dm_count > 0 && e->acct[e->dm_heap[0]].deadline < t)
        t = e->acct[e->dm_heap[0]].deadline;
    return t;
}

static void time_work(struct engine *e, ms_t ts)
{
    while (e->dm_count > 0 && e->acct[e->dm_heap[0]].deadline <= ts) {
        uint32_t acct = e->dm_heap[0];
        dm_disarm(e, acct);
        uint32_t n = collect_account(e, acct, INST_ALL, SIDE_NONE);
        cancel_collected(e, e->acct_buf, n, CXL_DEAD_MAN);
    }
    if (e->day_end != 0 && ts >= e->day_end) {
        uint32_t n = 0;
        for (uint32_t s = 0; s < e->orders_hw; s++)
            if (e->orders[s].id != 0 && e->orders[s].tif == TIF_DAY)
                e->day_buf[n++] = (struct idslot){e->orders[s].id, s};
        qsort(e->day_buf, n, sizeof(struct idslot), cmp_idslot);
        cancel_collected(e, e->day_buf, n, CXL_DAY_EXPIRY);
    }
    e->day_end = next_midnight(ts);
}

/* ---- rule 2: new orders -------------------------------------------------- */

static enum reject check_px(const struct engine_instrument *in, px_t px, enum reject bad, enum reject tick)
{
    if (px <= 0 || px > in->max_px)
        return bad;
    if (px % in->tick_px != 0)
        return tick;
    return REJ_NONE;
}

static enum reject check_qty(const struct engine_instrument *in, qty_t q)
{
    if (q <= 0 || q % in->lot_qty != 0)
        return REJ_INVALID_QTY;
    if (q > in->max_order_qty)
        return REJ_QTY_TOO_LARGE;
    return REJ_NONE;
}

/* Validate a new order into *o (a local copy; nothing in the engine is
 * touched). The order of the checks decides which reason a bad order gets. */
static enum reject validate_new(struct engine *e, const struct cmd *c, struct order *o)
{
    const struct cmd_new_order *n = &c->u.new_order;
    enum reject r;
    if (c->inst >= e->cfg.instruments_count)
        return REJ_UNKNOWN_SYMBOL;
    if (c->account >= e->cfg.accounts_max)
        return REJ_UNKNOWN_ACCOUNT;
    const struct engine_instrument *in = &e->cfg.instruments[c->inst];
    struct inst_state *is = &e->inst[c->inst];
    struct acct_inst *a = ai_of(e, c->account, c->inst);

    memset(o, 0, sizeof(*o));
    o->account = c->account;
    o->inst = c->inst;
    o->display = -1;
    o->clord = o->link = ENGINE_NIL;

    /* exec_inst first: it decides what the other fields may be */
    const uint16_t known = EXEC_POST_ONLY | EXEC_REDUCE_ONLY | EXEC_CLOSE | EXEC_MARK_PRICE |
                           EXEC_LAST_PRICE | EXEC_INDEX_PRICE | EXEC_FIXED |
                           EXEC_LAST_WITHIN_MARK | EXEC_ALL_OR_NONE;
    if (n->exec_inst & EXEC_ALL_OR_NONE)
        return REJ_ALL_OR_NONE;
    if (n->exec_inst & ~known)
        return REJ_INVALID_EXEC_INST;
    uint16_t srcs = n->exec_inst & (EXEC_MARK_PRICE | EXEC_LAST_PRICE | EXEC_INDEX_PRICE);
    if (srcs & (srcs - 1))
        return REJ_INVALID_EXEC_INST;
    o->exec_inst = n->exec_inst;

    /* side and quantity */
    qty_t qty = n->qty;
    if (n->side > SIDE_SELL)
        return REJ_INVALID_SIDE;
    o->side = n->side;
    if (n->has & HAS_QTY) {
        if (qty < 0 && o->side == SIDE_NONE) {
            o->side = SIDE_SELL;
            qty = -qty;
        }
        if ((r = check_qty(in, qty)))
            return r;
        if (o->side == SIDE_NONE)
            o->side = SIDE_BUY;
    } else {
        if (!(n->exec_inst & EXEC_CLOSE))
            return REJ_INVALID_QTY;
        qty = 0; /* Close: the whole position */
        o->flags |= OF_CLOSE_ALL;
        if (o->side == SIDE_NONE) {
            if (a->pos == 0)
                return REJ_INVALID_SIDE;
            o->side = a->pos > 0 ? SIDE_SELL : SIDE_BUY;
        }
    }
    o->qty = o->leaves = qty;

    /* ordType from the fields given */
    uint8_t t, tif;
    engine_order_defaults(n, &t, &tif);
    if (t > ORD_PEGGED)
        return REJ_UNSUPPORTED_ORD_TYPE;
    o->ord_type = t;
    int stop = is_stop_type(t);

    /* price */
    if (has_price_type(t) && t != ORD_PEGGED) {
        if (!(n->has & HAS_PRICE))
            return REJ_INVALID_PRICE;
        if ((r = check_px(in, n->price, REJ_INVALID_PRICE, REJ_PRICE_TICK)))
            return r;
        o->price = n->price;
    } else if (n->has & HAS_PRICE) {
        return REJ_INVALID_PRICE;
    }

    /* peg */
    if (n->peg_type > PEG_TRAILING_STOP)
        return REJ_INVALID_PEG;
    o->peg_type = n->peg_type;
    if (t == ORD_PEGGED) {
        if (n->peg_type != PEG_PRIMARY && n->peg_type != PEG_MARKET)
            return REJ_INVALID_PEG;
        if (!(n->exec_inst & EXEC_FIXED))
            return REJ_INVALID_PEG;
    } else if (n->peg_type == PEG_PRIMARY || n->peg_type == PEG_MARKET) {
        return REJ_INVALID_PEG;
    } else if (n->peg_type == PEG_TRAILING_STOP && !stop) {
        return REJ_INVALID_PEG;
    }
    if ((n->exec_inst & EXEC_FIXED) && t != ORD_PEGGED)
        return REJ_INVALID_EXEC_INST;
    if (n->has & HAS_PEG_OFFSET) {
        if (n->peg_type == PEG_NONE || n->peg_offset_px % in->tick_px != 0)
            return REJ_INVALID_PEG_OFFSET;
        o->peg_offset_px = n->peg_offset_px;
    }

    /* stopPx and trigger instructions */
    if (stop) {
        if (n->peg_type == PEG_TRAILING_STOP) {
            int up = fires_up(o->side, t);
            if (up ? o->peg_offset_px <= 0 : o->peg_offset_px >= 0)
                return REJ_INVALID_PEG_OFFSET;
            px_t ref = is->prices[source_of(n->exec_inst)];
            if (ref == 0)
                return REJ_PEG_NO_REFERENCE;
            o->stop_px = trail_px(ref, o->peg_offset_px, in->tick_px, up);
            if (o->stop_px <= 0 || o->stop_px > in->max_px)
                return REJ_INVALID_STOP_PX;
        } else {
            if (!(n->has & HAS_STOP_PX))
                return REJ_INVALID_STOP_PX;
            if ((r = check_px(in, n->stop_px, REJ_INVALID_STOP_PX, REJ_STOP_PX_TICK)))
                return r;
            o->stop_px = n->stop_px;
        }
        if ((n->exec_inst & EXEC_LAST_WITHIN_MARK) &&
            (!(n->exec_inst & EXEC_LAST_PRICE) || (t != ORD_STOP && t != ORD_STOP_LIMIT)))
            return REJ_INVALID_EXEC_INST;
    } else {
        if (n->has & HAS_STOP_PX)
            return REJ_INVALID_STOP_PX;
        if (srcs || (n->exec_inst & EXEC_LAST_WITHIN_MARK))
            return REJ_INVALID_EXEC_INST;
    }

    /* timeInForce */
    if (tif > TIF_DAY)
        return REJ_UNSUPPORTED_TIF;
    if (is_market_type(t) && tif != TIF_IOC)
        return REJ_UNSUPPORTED_TIF;
    o->tif = tif;
    if ((n->exec_inst & EXEC_POST_ONLY) && (is_market_type(t) || tif == TIF_IOC || tif == TIF_FOK))
        return REJ_INVALID_EXEC_INST;

    /* displayQty */
    if (n->has & HAS_DISPLAY_QTY) {
        qty_t d = n->display_qty;
        if (is_market_type(t) || qty == 0 || d < 0 || d > qty || d % in->lot_qty != 0)
            return REJ_INVALID_DISPLAY_QTY;
        o->display = d;
    }

    /* contingency and client ids */
    if (n->contingency == CONT_OTO || n->contingency > CONT_OTO)
        return REJ_INVALID_CONTINGENCY;
    o->contingency = n->contingency;
    if (!clordid_valid(n->clordid) || !clordid_valid(n->clordlinkid))
        return REJ_INVALID_CLORDID;
    if (n->contingency == CONT_OCO && n->clordlinkid[0] == 0)
        return REJ_INVALID_CONTINGENCY;
    if (n->clordid[0] && clomap_find(e, c->account, n->clordid) != ENGINE_NIL)
        return REJ_DUPLICATE_CLORDID;

    /* limits and pools */
    if (stop) {
        if (a->stop_count >= e->cfg.stop_orders_max)
            return REJ_TOO_MANY_STOP_ORDERS;
        if (is->stops >= e->cfg.stops_max)
            return REJ_POOL_FULL;
    } else if (a->open_count >= e->cfg.open_orders_max) {
        return REJ_TOO_MANY_OPEN_ORDERS;
    }
    if (n->contingency != CONT_NONE && a->cont_count >= ENGINE_CONTINGENT_MAX)
        return REJ_TOO_MANY_CONTINGENT;
    if (orders_full(e))
        return REJ_POOL_FULL;
    uint32_t strs_needed = (n->clordid[0] != 0) + (n->clordlinkid[0] != 0);
    if (e->strs_used + strs_needed > e->cfg.strings_max)
        return REJ_POOL_FULL;

    /* Pegged + Fixed: the price is fixed now (rule 9) */
    if (t == ORD_PEGGED) {
        int same = n->peg_type == PEG_PRIMARY;
        int six = side_ix(same ? o->side : side_opp(o->side));
        int64_t best = is->book.best[six];
        if (best < 0)
            return REJ_PEG_NO_REFERENCE;
        px_t px = (px_t)best * in->tick_px + o->peg_offset_px;
        if (px <= 0 || px > in->max_px)
            return REJ_INVALID_PRICE;
        o->price = px;
    }

    if (!stop) {
        o->flags |= OF_WORKING;
        if (e->hooks.admit) {
            struct order_view v;
            view_of(e, o, &v);
            if ((r = e->hooks.admit(e->hooks.ctx, &v)))
                return r;
        }
    }
    return REJ_NONE;
}

static enum reject apply_new(struct engine *e, const struct cmd *c)
{
    struct order local;
    enum reject r = validate_new(e, c, &local);
    if (r)
        return reject_cmd(e, c, r);
    const struct cmd_new_order *n = &c->u.new_order;
    uint32_t slot = order_take(e);
    struct order *o = &e->orders[slot];
    *o = local;
    o->id = e->next_order_id++;
    o->status = ST_NEW;
    if (n->clordid[0])
        o->clord = str_take(e, n->clordid);
    if (n->clordlinkid[0])
        o->link = str_take(e, n->clordlinkid);
    idmap_insert(e, slot);
    if (o->clord != ENGINE_NIL)
        clomap_insert(e, slot);
    acct_link(e, slot);
    struct acct_inst *a = ai_of(e, o->account, o->inst);
    if (o->flags & OF_WORKING)
        a->open_count++;
    else
        a->stop_count++;
    if (o->exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE))
        a->ro_count++;
    if (o->contingency != CONT_NONE)
        a->cont_count++;
    emit_order(e, EV_NEW, o, 0);
    if (is_stop_type(o->ord_type))
        stops_insert(e, slot);
    else
        process_incoming(e, slot);
    return REJ_NONE;
}

/* ---- prefetch hints --------------------------------------------------------- */

uint32_t engine_prefetch(const struct engine *e, const struct cmd *c, int stage)
{
    uint64_t id = 0;
    px_t px = 0;
    if (c->type == CMD_CANCEL)
        id = c->u.cancel.order_id;
    else if (c->type == CMD_AMEND)
        id = c->u.amend.ref.order_id;
    else if (c->type == CMD_NEW_ORDER)
        px = c->u.new_order.price;
    else
        return ENGINE_NIL;
    if (c->inst >= e->cfg.instruments_count || c->account >= e->cfg.accounts_max)
        return ENGINE_NIL;
    const struct book *b = &e->inst[c->inst].book;
    uint64_t tick = px > 0 ? (uint64_t)(px / b->tick_px) : UINT64_MAX;
    if (stage == 0) {
        if (id)
            __builtin_prefetch(&e->ids.tab[id & e->ids.mask]);
        if (tick < b->ticks)
            __builtin_prefetch(&b->ladder[tick]);
        __builtin_prefetch(ai_of(e, c->account, c->inst));
        return ENGINE_NIL;
    }
    uint32_t slot = ENGINE_NIL;
    if (id) {
        uint32_t s = e->ids.tab[id & e->ids.mask];
        if (s != 0 && s - 1 < e->orders_hw) {
            const char *o = (const char *)&e->orders[s - 1];
            __builtin_prefetch(o);
            __builtin_prefetch(o + sizeof(struct order) - 1);
            slot = s - 1;
        }
    }
    if (tick < b->ticks) {
        uint32_t ls = b->ladder[tick];
        if (ls != ENGINE_NIL)
            __builtin_prefetch(&e->levels[ls]);
    }
    return slot;
}

/* ---- rule 4: amend -------------------------------------------------------- */

static enum reject find_order(struct engine *e, uint32_t account, const struct order_ref *ref,
                              uint32_t *slot)
{
    if (account >= e->cfg.accounts_max)
        return REJ_UNKNOWN_ACCOUNT;
    uint32_t s;
    if (ref->order_id != 0) {
        s = idmap_find(e, ref->order_id);
        if (s == ENGINE_NIL)
            return ref->order_id < e->next_order_id ? REJ_ORDER_TERMINAL : REJ_NOT_FOUND;
    } else {
        if (!clordid_valid(ref->clordid) || ref->clordid[0] == 0)
            return REJ_NOT_FOUND;
        s = clomap_find(e, account, ref->clordid);
        if (s == ENGINE_NIL)
            return REJ_NOT_FOUND;
    }
    if (e->orders[s].account != account)
        return REJ_NOT_FOUND;
    *slot = s;
    return REJ_NONE;
}

static enum reject apply_amend(struct engine *e, const struct cmd *c)
{
    const struct cmd_amend *m = &c->u.amend;
    uint32_t slot;
    enum reject r = find_order(e, c->account, &m->ref, &slot);
    if (r)
        return reject_cmd(e, c, r);
    struct order *o = &e->orders[slot];
    const struct engine_instrument *in = &e->cfg.instruments[o->inst];
    int untriggered = of_where(o) == WH_STOPS;
    qty_t cum = o->qty - o->leaves;
    qty_t leaves = o->leaves;
    px_t price = o->price, stop_px = o->stop_px, offset = o->peg_offset_px;

    if ((m->has & AMD_QTY) && (m->has & AMD_LEAVES))
        return reject_cmd(e, c, REJ_AMEND_BOTH_QTY);
    if (m->has & AMD_QTY) {
        if (m->qty <= cum)
            return reject_cmd(e, c, REJ_INVALID_QTY);
        if ((r = check_qty(in, m->qty)))
            return reject_cmd(e, c, r);
        leaves = m->qty - cum;
    }
    if (m->has & AMD_LEAVES) {
        if ((r = check_qty(in, m->leaves)))
            return reject_cmd(e, c, r);
        if ((r = check_qty(in, cum + m->leaves)))
            return reject_cmd(e, c, r);
        leaves = m->leaves;
    }
    if (m->has & AMD_PRICE) {
        if (!has_price_type(o->ord_type))
            return reject_cmd(e, c, REJ_AMEND_NOT_ALLOWED);
        if ((r = check_px(in, m->price, REJ_INVALID_PRICE, REJ_PRICE_TICK)))
            return reject_cmd(e, c, r);
        price = m->price;
    }
    if (m->has & AMD_STOP_PX) {
        if (!untriggered || o->peg_type == PEG_TRAILING_STOP)
            return reject_cmd(e, c, REJ_AMEND_NOT_ALLOWED);
        if ((r = check_px(in, m->stop_px, REJ_INVALID_STOP_PX, REJ_STOP_PX_TICK)))
            return reject_cmd(e, c, r);
        stop_px = m->stop_px;
    }
    if (m->has & AMD_PEG_OFFSET) {
        if (!untriggered || o->peg_type != PEG_TRAILING_STOP)
            return reject_cmd(e, c, REJ_AMEND_NOT_ALLOWED);
        int up = fires_up(o->side, o->ord_type);
        if (m->peg_offset_px % in->tick_px != 0 || (up ? m->peg_offset_px <= 0 : m->peg_offset_px >= 0))
            return reject_cmd(e, c, REJ_INVALID_PEG_OFFSET);
        offset = m->peg_offset_px;
        px_t ref = e->inst[o->inst].prices[source_of(o->exec_inst)];
        stop_px = trail_px(ref, offset, in->tick_px, up);
        if (stop_px <= 0 || stop_px > in->max_px)
            return reject_cmd(e, c, REJ_INVALID_STOP_PX);
    }
    int rename = 0;
    if (m->has & AMD_NEW_CLORDID) {
        if (!clordid_valid(m->new_clordid) || m->new_clordid[0] == 0)
            return reject_cmd(e, c, REJ_INVALID_CLORDID);
        const char *cur = o->clord != ENGINE_NIL ? e->strs[o->clord] : "";
        if (strcmp(cur, m->new_clordid) != 0) {
            if (clomap_find(e, o->account, m->new_clordid) != ENGINE_NIL)
                return reject_cmd(e, c, REJ_DUPLICATE_CLORDID);
            if (o->clord == ENGINE_NIL && e->strs_used >= e->cfg.strings_max)
                return reject_cmd(e, c, REJ_POOL_FULL);
            rename = 1;
        }
    }
    if (leaves == o->leaves && price == o->price && stop_px == o->stop_px &&
        offset == o->peg_offset_px && !rename)
        return reject_cmd(e, c, REJ_AMEND_UNCHANGED);
    int requeue = !untriggered && (price != o->price || leaves > o->leaves);
    if (requeue && e->hooks.admit) {
        struct order tmp = *o;
        tmp.leaves = leaves;
        tmp.qty = cum + leaves;
        tmp.price = price;
        struct order_view v;
        view_of(e, &tmp, &v);
        v.slot = (uint32_t)(o - e->orders);
        if ((r = e->hooks.admit(e->hooks.ctx, &v)))
            return reject_cmd(e, c, r);
    }

    /* mutate */
    if (rename) {
        if (o->clord != ENGINE_NIL) {
            clomap_remove(e, slot);
            str_give(e, o->clord);
            o->clord = ENGINE_NIL;
        }
        o->clord = str_take(e, m->new_clordid);
        clomap_insert(e, slot);
    }
    if (untriggered) {
        o->qty = cum + leaves;
        o->leaves = leaves;
        o->price = price;
        o->peg_offset_px = offset;
        if (stop_px != o->stop_px) {
            o->stop_px = stop_px;
            if (!is_special_stop(o))
                sheap_rekey(heap_of(e, o), e->orders, slot);
        }
        if (m->has & (AMD_QTY | AMD_LEAVES))
            o->flags &= (uint8_t)~OF_CLOSE_ALL; /* now sized; else still the whole position */
        e->dirty_insts |= UINT64_C(1) << o->inst;
        emit_order_ids(e, EV_AMENDED, o, 0, rename);
        return REJ_NONE;
    }
    if (!requeue) {
        /* only leaves went down (or a rename): keeps its place */
        o->qty = cum + leaves;
        o->leaves = leaves;
        emit_order_ids(e, EV_AMENDED, o, 0, rename);
        qty_t shown = o->display > 0 ? min_qty(o->shown, leaves) : shown_for(o, leaves);
        if (shown != o->shown)
            reshow(e, slot, shown);
        return REJ_NONE;
    }
    struct order amended = *o; /* EV_AMENDED first, then it leaves its level */
    amended.qty = cum + leaves;
    amended.leaves = leaves;
    amended.price = price;
    emit_order_copy(e, EV_AMENDED, &amended, slot, 0, rename);
    unrest_order(e, slot);
    o->qty = cum + leaves;
    o->leaves = leaves;
    o->price = price;
    o->shown = 0;
    process_incoming(e, slot);
    return REJ_NONE;
}

/* ---- rule 5: cancels ------------------------------------------------------ */

static enum reject apply_cancel(struct engine *e, const struct cmd *c)
{
    uint32_t slot;
    enum reject r = find_order(e, c->account, &c->u.cancel, &slot);
    if (r)
        return reject_cmd(e, c, r);
    cancel_order(e, slot, CXL_USER);
    return REJ_NONE;
}

static enum reject apply_cancel_all(struct engine *e, const struct cmd *c)
{
    const struct cmd_cancel_all *a = &c->u.cancel_all;
    if (c->account >= e->cfg.accounts_max)
        return reject_cmd(e, c, REJ_UNKNOWN_ACCOUNT);
    if (a->inst != INST_ALL && a->inst >= e->cfg.instruments_count)
        return reject_cmd(e, c, REJ_UNKNOWN_SYMBOL);
    if (a->side > SIDE_SELL || a->reason >= CXL_COUNT)
        return reject_cmd(e, c, REJ_INVALID_SIDE);
    uint32_t n = collect_account(e, c->account, a->inst, a->side);
    cancel_collected(e, e->acct_buf, n, a->reason ? a->reason : CXL_CANCEL_ALL);
    return REJ_NONE;
}

static enum reject apply_cancel_after(struct engine *e, const struct cmd *c)
{
    if (c->account >= e->cfg.accounts_max)
        return reject_cmd(e, c, REJ_UNKNOWN_ACCOUNT);
    int64_t t = c->u.cancel_after_ms;
    if (t < 0 || t > INT64_MAX - c->ts)
        return reject_cmd(e, c, REJ_INVALID_TIMEOUT);
    if (t == 0)
        dm_disarm(e, c->account);
    else
        dm_arm(e, c->account, c->ts + t);
    struct event ev;
    ev_begin(e, &ev, EV_CANCEL_AFTER);
    ev.account = c->account;
    ev.inst = c->inst;
    ev.u.cancel_after.deadline = t ? c->ts + t : 0;
    e->sink(e->sink_ctx, &ev);
    return REJ_NONE;
}

static enum reject apply_set_price(struct engine *e, const struct cmd *c)
{
    const struct cmd_set_price *p = &c->u.set_price;
    if (c->inst >= e->cfg.instruments_count)
        return reject_cmd(e, c, REJ_UNKNOWN_SYMBOL);
    if (p->source != SRC_MARK && p->source != SRC_INDEX)
        return reject_cmd(e, c, REJ_UNKNOWN_COMMAND);
    if (p->price <= 0 || p->price > e->cfg.instruments[c->inst].max_px)
        return reject_cmd(e, c, REJ_INVALID_PRICE);
    e->inst[c->inst].prices[p->source] = p->price;
    e->dirty_insts |= UINT64_C(1) << c->inst;
    struct event ev;
    ev_begin(e, &ev, EV_PRICE);
    ev.inst = c->inst;
    ev.u.price.source = p->source;
    ev.u.price.price = p->price;
    e->sink(e->sink_ctx, &ev);
    return REJ_NONE;
}

/* ---- the API -------------------------------------------------------------- */

enum reject engine_apply(struct engine *e, const struct cmd *c)
{
    if (c->seq <= e->last_seq || c->ts < e->last_ts) {
        e->cur_seq = c->seq;
        e->cur_ts = c->ts;
        return reject_cmd(e, c, REJ_BAD_SEQUENCE);
    }
    e->last_seq = e->cur_seq = c->seq;
    e->last_ts = e->cur_ts = c->ts;
    time_work(e, c->ts);
    enum reject r = engine_apply_within(e, c);
#ifdef PERPSIM_CHECKS
    if (++e->verify_n >= e->cfg.verify_every) {
        e->verify_n = 0;
        VERIFY_AFTER_COMMAND(e);
    }
#endif
    return r;
}

enum reject engine_apply_within(struct engine *e, const struct cmd *c)
{
    enum reject r;
    switch (c->type) {
    case CMD_NEW_ORDER: r = apply_new(e, c); break;
    case CMD_AMEND: r = apply_amend(e, c); break;
    case CMD_CANCEL: r = apply_cancel(e, c); break;
    case CMD_CANCEL_ALL: r = apply_cancel_all(e, c); break;
    case CMD_CANCEL_ALL_AFTER: r = apply_cancel_after(e, c); break;
    case CMD_SET_PRICE: r = apply_set_price(e, c); break;
    case CMD_CLOCK: r = REJ_NONE; break;
    default: r = reject_cmd(e, c, REJ_UNKNOWN_COMMAND); break;
    }
    run_triggers(e);
    return r;
}

void engine_position_set(struct engine *e, uint32_t account, uint16_t inst, qty_t pos)
{
    if (account >= e->cfg.accounts_max || inst >= e->cfg.instruments_count)
        return;
    struct acct_inst *a = ai_of(e, account, inst);
    touch_position(e, account, inst, pos - a->pos);
    ro_enforce_touched(e);
}

static const char *config_error(const struct engine_config *cfg)
{
    if (cfg->orders_max == 0 || cfg->orders_max >= ENGINE_NIL / 2)
        return "orders_max must be between 1 and 2^31";
    if (cfg->accounts_max == 0 || cfg->accounts_max >= ENGINE_NIL / 2)
        return "accounts_max must be between 1 and 2^31";
    if (cfg->instruments_count == 0 || cfg->instruments_count > INSTRUMENTS_MAX)
        return "instruments_count must be between 1 and INSTRUMENTS_MAX";
    if ((uint64_t)cfg->accounts_max * cfg->instruments_count >= ENGINE_NIL)
        return "accounts_max * instruments_count too large";
    if (cfg->open_orders_max == 0 || cfg->stop_orders_max == 0)
        return "open_orders_max and stop_orders_max must be positive";
    for (uint16_t i = 0; i < cfg->instruments_count; i++) {
        const struct engine_instrument *in = &cfg->instruments[i];
        if (in->tick_px <= 0 || in->max_px <= 0 || in->lot_qty <= 0 || in->max_order_qty <= 0)
            return "instrument tick, max price, lot and max order qty must be positive";
        if (in->max_px % in->tick_px != 0)
            return "instrument max price must be a multiple of its tick";
        if (in->max_px / in->tick_px + 1 > LADDER_TICKS_MAX)
            return "instrument max price / tick exceeds LADDER_TICKS_MAX";
        if (memchr(in->symbol, 0, sizeof(in->symbol)) == NULL || in->symbol[0] == 0)
            return "instrument symbol missing or too long";
    }
    return NULL;
}

struct engine *engine_create(const struct engine_config *cfg, engine_sink_fn sink, void *sink_ctx,
                             const struct engine_hooks *hooks, const char **err)
{
    const char *why = config_error(cfg);
    if (why || !sink) {
        if (err)
            *err = why ? why : "a sink is required";
        return NULL;
    }
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->cfg = *cfg;
    if (e->cfg.strings_max == 0)
        e->cfg.strings_max = e->cfg.orders_max;
    if (e->cfg.stops_max == 0)
        e->cfg.stops_max = e->cfg.orders_max;
    e->sink = sink;
    e->sink_ctx = sink_ctx;
    if (hooks)
        e->hooks = *hooks;
    e->free_order = e->free_level = e->free_str = ENGINE_NIL;
    e->next_order_id = e->next_trade_id = 1;
    uint32_t ni = cfg->instruments_count;
    size_t nai = (size_t)cfg->accounts_max * ni;
    uint32_t group = cfg->open_orders_max + cfg->stop_orders_max;
    e->orders = calloc(cfg->orders_max, sizeof(struct order));
    e->levels = calloc(cfg->orders_max, sizeof(struct level));
    e->strs = calloc(e->cfg.strings_max, STR_SLOT_LEN);
    e->inst = calloc(ni, sizeof(struct inst_state));
    e->ai = calloc(nai, sizeof(struct acct_inst));
    e->acct = calloc(cfg->accounts_max, sizeof(struct account));
    e->dm_heap = calloc(cfg->accounts_max, sizeof(uint32_t));
    e->touched = calloc(nai, sizeof(uint32_t));
    e->acct_buf = calloc((size_t)group * ni, sizeof(struct idslot));
    e->grp_buf = calloc(group, sizeof(struct ro_item) > sizeof(struct idslot) ? sizeof(struct ro_item)
                                                                              : sizeof(struct idslot));
    e->fire_buf = calloc(e->cfg.stops_max, sizeof(struct idslot));
    e->day_buf = calloc(cfg->orders_max, sizeof(struct idslot));
    if (!e->orders || !e->levels || !e->strs || !e->inst || !e->ai || !e->acct || !e->dm_heap ||
        !e->touched || !e->acct_buf || !e->grp_buf || !e->fire_buf || !e->day_buf)
        goto oom;
    if (slotmap_init(&e->ids, cfg->orders_max) || slotmap_init(&e->ids_over, cfg->orders_max) ||
        slotmap_init(&e->clords, e->cfg.strings_max))
        goto oom;
    for (size_t i = 0; i < nai; i++)
        e->ai[i].head = ENGINE_NIL;
    for (uint32_t i = 0; i < ni; i++) {
        struct inst_state *is = &e->inst[i];
        is->special_head = ENGINE_NIL;
        if (book_init(&is->book, cfg->instruments[i].tick_px, cfg->instruments[i].max_px))
            goto oom;
        for (int s = 0; s < SRC_COUNT; s++)
            for (int d = 0; d < 2; d++)
                if (sheap_init(&is->heaps[s][d], e->cfg.stops_max, d == 0))
                    goto oom;
    }
    return e;
oom:
    engine_destroy(e);
    if (err)
        *err = "out of memory";
    return NULL;
}

void engine_destroy(struct engine *e)
{
    if (!e)
        return;
    if (e->inst) {
        for (uint32_t i = 0; i < e->cfg.instruments_count; i++) {
            book_free(&e->inst[i].book);
            for (int s = 0; s < SRC_COUNT; s++)
                for (int d = 0; d < 2; d++)
                    sheap_free(&e->inst[i].heaps[s][d]);
        }
    }
    slotmap_free(&e->ids);
    slotmap_free(&e->ids_over);
    slotmap_free(&e->clords);
    free(e->orders);
    free(e->levels);
    free(e->strs);
    free(e->inst);
    free(e->ai);
    free(e->acct);
    free(e->dm_heap);
    free(e->touched);
    free(e->acct_buf);
    free(e->grp_buf);
    free(e->fire_buf);
    free(e->day_buf);
    free(e);
}

/* ---- reads ---------------------------------------------------------------- */

const struct engine_config *engine_config(const struct engine *e) { return &e->cfg; }

int engine_order(const struct engine *e, uint64_t order_id, struct order_view *out)
{
    uint32_t s = order_id ? idmap_find(e, order_id) : ENGINE_NIL;
    if (s == ENGINE_NIL)
        return 0;
    view_of(e, &e->orders[s], out);
    return 1;
}

qty_t engine_position(const struct engine *e, uint32_t account, uint16_t inst)
{
    if (account >= e->cfg.accounts_max || inst >= e->cfg.instruments_count)
        return 0;
    return ai_of(e, account, inst)->pos;
}

px_t engine_price(const struct engine *e, uint16_t inst, enum price_source src)
{
    if (inst >= e->cfg.instruments_count || (unsigned)src >= SRC_COUNT)
        return 0;
    return e->inst[inst].prices[src];
}

px_t engine_best(const struct engine *e, uint16_t inst, enum side side)
{
    if (inst >= e->cfg.instruments_count || (side != SIDE_BUY && side != SIDE_SELL))
        return 0;
    const struct book *b = &e->inst[inst].book;
    int64_t t = b->best[side_ix((uint8_t)side)];
    return t < 0 ? 0 : (px_t)t * b->tick_px;
}

uint32_t engine_orders_live(const struct engine *e) { return e->live; }

uint64_t engine_take_order_id(struct engine *e) { return e->next_order_id++; }

uint32_t engine_levels(const struct engine *e, uint16_t inst, enum side side, uint32_t max, px_t *px,
                       qty_t *size)
{
    if (inst >= e->cfg.instruments_count || (side != SIDE_BUY && side != SIDE_SELL))
        return 0;
    const struct book *b = &e->inst[inst].book;
    uint32_t n = 0;
    for (uint32_t ls = book_best_level(e, b, side_ix((uint8_t)side)); ls != ENGINE_NIL && n < max;
         ls = book_next_level(e, b, &e->levels[ls])) {
        if (e->levels[ls].visible == 0)
            continue;
        px[n] = e->levels[ls].px;
        size[n] = e->levels[ls].visible;
        n++;
    }
    return n;
}

size_t engine_bytes_per_order(void)
{
    /* the order slot and its id index entries: the direct table and the
     * overflow table, each of 2 x orders_max places */
    return sizeof(struct order) + 4 * sizeof(uint32_t);
}

/* ---- hash and verify ------------------------------------------------------ */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + UINT64_C(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2);
    return h * UINT64_C(0xff51afd7ed558ccd);
}

static uint64_t hash_order(uint64_t h, const struct engine *e, const struct order *o)
{
    struct order_view v;
    view_of(e, o, &v);
    h = mix(h, v.id);
    h = mix(h, v.account);
    h = mix(h, ((uint64_t)v.inst << 48) | ((uint64_t)v.side << 40) | ((uint64_t)v.ord_type << 32) |
                   ((uint64_t)v.tif << 24) | ((uint64_t)v.peg_type << 16) | ((uint64_t)v.status << 8) |
                   v.contingency);
    h = mix(h, ((uint64_t)v.exec_inst << 16) | ((uint64_t)v.triggered << 8) | v.working);
    h = mix(h, (uint64_t)v.qty);
    h = mix(h, (uint64_t)v.leaves);
    h = mix(h, (uint64_t)v.display_qty);
    h = mix(h, (uint64_t)o->shown);
    h = mix(h, (uint64_t)v.price);
    h = mix(h, (uint64_t)v.stop_px);
    h = mix(h, (uint64_t)v.peg_offset_px);
    h = mix(h, of_where(o));
    for (const char *s = o->clord != ENGINE_NIL ? e->strs[o->clord] : ""; *s; s++)
        h = mix(h, (uint8_t)*s);
    h = mix(h, 0xc1);
    for (const char *s = o->link != ENGINE_NIL ? e->strs[o->link] : ""; *s; s++)
        h = mix(h, (uint8_t)*s);
    return h;
}

uint64_t engine_hash(const struct engine *e)
{
    uint64_t h = mix(0, e->next_order_id);
    h = mix(h, e->next_trade_id);
    h = mix(h, (uint64_t)e->day_end);
    h = mix(h, e->live);
    for (uint16_t i = 0; i < e->cfg.instruments_count; i++) {
        const struct inst_state *is = &e->inst[i];
        for (int s = 0; s < SRC_COUNT; s++)
            h = mix(h, (uint64_t)is->prices[s]);
        /* the books in priority order */
        for (int six = 0; six < 2; six++) {
            for (uint32_t ls = book_best_level(e, &is->book, six); ls != ENGINE_NIL;
                 ls = book_next_level(e, &is->book, &e->levels[ls])) {
                h = mix(h, (uint64_t)e->levels[ls].px);
                for (uint32_t s = e->levels[ls].head; s != ENGINE_NIL; s = e->orders[s].next)
                    h = mix(h, e->orders[s].id);
            }
            h = mix(h, 0xb00c);
        }
    }
    /* every live order in id order */
    uint32_t n = 0;
    struct idslot *buf = e->day_buf;
    for (uint32_t s = 0; s < e->orders_hw; s++)
        if (e->orders[s].id != 0)
            buf[n++] = (struct idslot){e->orders[s].id, s};
    qsort(buf, n, sizeof(struct idslot), cmp_idslot);
    for (uint32_t i = 0; i < n; i++)
        h = hash_order(h, e, &e->orders[buf[i].slot]);
    size_t nai = (size_t)e->cfg.accounts_max * e->cfg.instruments_count;
    for (size_t i = 0; i < nai; i++)
        if (e->ai[i].pos != 0)
            h = mix(mix(h, i), (uint64_t)e->ai[i].pos);
    for (uint32_t a = 0; a < e->cfg.accounts_max; a++)
        if (e->acct[a].deadline)
            h = mix(mix(h, a), (uint64_t)e->acct[a].deadline);
    return h;
}

#define CHECK(cond, msg)                                                                          \
    do {                                                                                          \
        if (!(cond))                                                                              \
            return msg;                                                                           \
    } while (0)

static const char *verify_book(const struct engine *e, uint16_t i, uint32_t *orders_seen,
                               uint32_t *levels_seen)
{
    const struct inst_state *is = &e->inst[i];
    const struct book *b = &is->book;
    for (int six = 0; six < 2; six++) {
        int64_t first = six == 0 ? bitidx_prev(&b->bits[0], b->ticks - 1) : bitidx_next(&b->bits[1], 0);
        CHECK(first == b->best[six], "cached best tick differs from the bit set");
        px_t prev_px = -1;
        for (uint32_t ls = book_best_level(e, b, six); ls != ENGINE_NIL;
             ls = book_next_level(e, b, &e->levels[ls])) {
            const struct level *l = &e->levels[ls];
            (*levels_seen)++;
            CHECK(l->side == (six ? SIDE_SELL : SIDE_BUY), "level on the wrong side");
            CHECK(b->ladder[l->px / b->tick_px] == ls, "ladder does not point at its level");
            CHECK(prev_px < 0 || (six == 0 ? l->px < prev_px : l->px > prev_px), "levels out of order");
            prev_px = l->px;
            CHECK(l->count > 0 && l->head != ENGINE_NIL, "empty level in the book");
            uint32_t count = 0, prev = ENGINE_NIL;
            qty_t visible = 0;
            for (uint32_t s = l->head; s != ENGINE_NIL; s = e->orders[s].next) {
                const struct order *o = &e->orders[s];
                CHECK(o->id != 0, "free slot in a level queue");
                CHECK(o->prev == prev, "queue back link broken");
                CHECK(of_where(o) == WH_BOOK, "queued order not marked as resting");
                CHECK(o->price == l->px && o->side == l->side && o->inst == i, "order in the wrong level");
                CHECK(o->leaves > 0 && o->leaves <= o->qty, "resting order leaves out of range");
                CHECK(o->shown >= 0 && o->shown <= o->leaves, "shown out of range");
                CHECK(o->display != 0 || o->shown == 0, "hidden order shows quantity");
                CHECK(o->display >= 0 || o->shown == o->leaves, "plain order hides quantity");
                CHECK(o->display <= 0 || o->shown > 0, "iceberg with an empty slice");
                CHECK(o->flags & OF_WORKING, "resting order not working");
                visible += o->shown;
                count++;
                prev = s;
                (*orders_seen)++;
            }
            CHECK(l->tail == prev, "level tail wrong");
            CHECK(count == l->count, "level count differs from its queue");
            CHECK(visible == l->visible, "level visible size differs from its orders");
        }
    }
    if (b->best[0] >= 0 && b->best[1] >= 0)
        CHECK(b->best[0] < b->best[1], "book crossed: best bid >= best ask");
    return NULL;
}

const char *engine_verify(const struct engine *e)
{
    uint32_t in_books = 0, levels_seen = 0, in_stops = 0;
    for (uint16_t i = 0; i < e->cfg.instruments_count; i++) {
        const char *why = verify_book(e, i, &in_books, &levels_seen);
        if (why)
            return why;
        const struct inst_state *is = &e->inst[i];
        uint32_t stops = 0;
        for (int s = 0; s < SRC_COUNT; s++) {
            for (int d = 0; d < 2; d++) {
                const struct sheap *h = &is->heaps[s][d];
                for (uint32_t k = 0; k < h->n; k++) {
                    const struct order *o = &e->orders[h->a[k]];
                    CHECK(o->id != 0 && of_where(o) == WH_STOPS, "heap holds a non-stop");
                    CHECK(o->aux == k, "heap position wrong");
                    CHECK((int)source_of(o->exec_inst) == s && (fires_up(o->side, o->ord_type) ? 0 : 1) == d,
                          "stop in the wrong heap");
                    if (k > 0) {
                        const struct order *p = &e->orders[h->a[(k - 1) / 2]];
                        int ok = p->stop_px != o->stop_px
                                     ? (d == 0 ? p->stop_px < o->stop_px : p->stop_px > o->stop_px)
                                     : p->id < o->id;
                        CHECK(ok, "heap order broken");
                    }
                    stops++;
                }
            }
        }
        for (uint32_t s = is->special_head; s != ENGINE_NIL; s = e->orders[s].next) {
            CHECK(of_where(&e->orders[s]) == WH_STOPS && is_special_stop(&e->orders[s]),
                  "special list holds a non-special stop");
            stops++;
        }
        CHECK(stops == is->stops, "instrument stop count wrong");
        in_stops += stops;
    }
    CHECK(levels_seen == e->levels_used, "levels in use differ from levels in the books");
    uint32_t live = 0, strs = 0, ids_over = 0;
    for (uint32_t s = 0; s < e->orders_hw; s++) {
        const struct order *o = &e->orders[s];
        if (o->id == 0)
            continue;
        live++;
        CHECK(idmap_find(e, o->id) == s, "id index does not find a live order");
        if (e->ids.tab[o->id & e->ids.mask] != s + 1)
            ids_over++;
        CHECK(of_where(o) == WH_BOOK || of_where(o) == WH_STOPS, "live order nowhere between commands");
        if (o->clord != ENGINE_NIL) {
            strs++;
            CHECK(clomap_find(e, o->account, e->strs[o->clord]) == s, "clOrdID index wrong");
        }
        if (o->link != ENGINE_NIL)
            strs++;
    }
    CHECK(live == e->live, "live order count wrong");
    CHECK(ids_over == e->ids_over_n, "id overflow count wrong");
    CHECK(live == in_books + in_stops, "live orders differ from orders in books and stops");
    CHECK(strs == e->strs_used, "string pool count wrong");
    size_t nai = (size_t)e->cfg.accounts_max * e->cfg.instruments_count;
    for (size_t i = 0; i < nai; i++) {
        const struct acct_inst *a = &e->ai[i];
        uint32_t open = 0, stops = 0, ro = 0, cont = 0;
        for (uint32_t s = a->head, prev = ENGINE_NIL; s != ENGINE_NIL; prev = s, s = e->orders[s].anext) {
            if (e->orders[s].exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE))
                ro++;
            cont += e->orders[s].contingency != CONT_NONE;
            CHECK(e->orders[s].aprev == prev, "account list back link broken");
            CHECK((size_t)e->orders[s].account * e->cfg.instruments_count + e->orders[s].inst == i,
                  "order on another account's list");
            if (e->orders[s].flags & OF_WORKING)
                open++;
            else
                stops++;
        }
        CHECK(open == a->open_count && stops == a->stop_count, "account order counts wrong");
        CHECK(ro == a->ro_count, "account ReduceOnly count wrong");
        CHECK(cont == a->cont_count, "account contingent count wrong");
        CHECK(!a->touched, "touched flag left set");
    }
    for (uint32_t k = 0; k < e->dm_count; k++) {
        CHECK(e->acct[e->dm_heap[k]].heap_pos == k && e->acct[e->dm_heap[k]].deadline != 0,
              "dead man's switch heap broken");
    }
    return NULL;
}

static const char *const reject_names[REJ_COUNT] = {
    [REJ_NONE] = "none",
    [REJ_BAD_SEQUENCE] = "bad_sequence",
    [REJ_UNKNOWN_COMMAND] = "unknown_command",
    [REJ_UNKNOWN_SYMBOL] = "unknown_symbol",
    [REJ_UNKNOWN_ACCOUNT] = "unknown_account",
    [REJ_INVALID_SIDE] = "invalid_side",
    [REJ_INVALID_QTY] = "invalid_qty",
    [REJ_QTY_TOO_LARGE] = "qty_too_large",
    [REJ_INVALID_PRICE] = "invalid_price",
    [REJ_PRICE_TICK] = "price_tick",
    [REJ_INVALID_STOP_PX] = "invalid_stop_px",
    [REJ_STOP_PX_TICK] = "stop_px_tick",
    [REJ_INVALID_DISPLAY_QTY] = "invalid_display_qty",
    [REJ_UNSUPPORTED_ORD_TYPE] = "unsupported_ord_type",
    [REJ_UNSUPPORTED_TIF] = "unsupported_tif",
    [REJ_INVALID_EXEC_INST] = "invalid_exec_inst",
    [REJ_ALL_OR_NONE] = "all_or_none",
    [REJ_INVALID_PEG] = "invalid_peg",
    [REJ_PEG_NO_REFERENCE] = "peg_no_reference",
    [REJ_INVALID_PEG_OFFSET] = "invalid_peg_offset",
    [REJ_INVALID_CONTINGENCY] = "invalid_contingency",
    [REJ_INVALID_CLORDID] = "invalid_clordid",
    [REJ_DUPLICATE_CLORDID] = "duplicate_clordid",
    [REJ_NOT_FOUND] = "not_found",
    [REJ_ORDER_TERMINAL] = "order_terminal",
    [REJ_AMEND_UNCHANGED] = "amend_unchanged",
    [REJ_AMEND_BOTH_QTY] = "amend_both_qty",
    [REJ_AMEND_NOT_ALLOWED] = "amend_not_allowed",
    [REJ_TOO_MANY_OPEN_ORDERS] = "too_many_open_orders",
    [REJ_TOO_MANY_STOP_ORDERS] = "too_many_stop_orders",
    [REJ_POOL_FULL] = "pool_full",
    [REJ_INSUFFICIENT_BALANCE] = "insufficient_balance",
    [REJ_INVALID_TIMEOUT] = "invalid_timeout",
    [REJ_INVALID_CURRENCY] = "invalid_currency",
    [REJ_INVALID_AMOUNT] = "invalid_amount",
    [REJ_INSUFFICIENT_WITHDRAWABLE] = "insufficient_withdrawable",
    [REJ_INVALID_LEVERAGE] = "invalid_leverage",
    [REJ_INVALID_RISK_LIMIT] = "invalid_risk_limit",
    [REJ_RISK_LIMIT_EXCEEDED] = "risk_limit_exceeded",
    [REJ_NOT_ISOLATED] = "not_isolated",
    [REJ_NO_POSITION] = "no_position",
    [REJ_TRANSFER_TOO_LARGE] = "transfer_too_large",
    [REJ_INSTRUMENT_CLOSED] = "instrument_closed",
    [REJ_LIQUIDATION_IN_PROGRESS] = "liquidation_in_progress",
    [REJ_INVALID_FUNDING] = "invalid_funding",
    [REJ_TOO_MANY_CONTINGENT] = "too_many_contingent",
    [REJ_SPAM_POST_ONLY] = "spam_post_only",
};

static const char *const cancel_names[CXL_COUNT] = {
    [CXL_NONE] = "none",
    [CXL_USER] = "user",
    [CXL_CANCEL_ALL] = "cancel_all",
    [CXL_DEAD_MAN] = "dead_man",
    [CXL_DAY_EXPIRY] = "day_expiry",
    [CXL_POST_ONLY] = "post_only",
    [CXL_IOC] = "ioc",
    [CXL_FOK] = "fok",
    [CXL_MARKET] = "market",
    [CXL_SELF_TRADE] = "self_trade",
    [CXL_REDUCE_ONLY] = "reduce_only",
    [CXL_OCO] = "oco",
    [CXL_TRIGGER_REJECTED] = "trigger_rejected",
    [CXL_LIQUIDATION] = "liquidation",
};

const char *engine_reject_name(enum reject r)
{
    return (unsigned)r < REJ_COUNT && reject_names[r] ? reject_names[r] : "?";
}

const char *engine_cancel_name(enum cancel_reason r)
{
    return (unsigned)r < CXL_COUNT && cancel_names[r] ? cancel_names[r] : "?";
}
