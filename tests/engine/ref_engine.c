/*
 * ref_engine.c - the naive reference matching engine (tests only).
 *
 * Model: every live order (resting, incoming or an untriggered stop) sits in
 * one array kept in ascending order id. A resting order carries the "queue
 * time" (a counter) at which it joined its level: FIFO within a level is the
 * smallest queue time. Nothing is indexed: the best level, the queue head,
 * a level's visible size, an account's open orders are all found by walking
 * the array. Orders that stop being live during a command are only marked
 * dead and are squeezed out at the end of the command, so pointers into the
 * array stay valid while one command runs (a command adds at most one order).
 *
 * FillOrKill's test walks the crossing makers in priority order and sums
 * their leaves (rule 11).
 *
 * The semantics are engine.h's THE RULES. Where engine.h leaves a detail
 * open, the choice made here is marked "READING:" at the spot; the list of
 * them is also in the report that came with this file.
 */
#include "ref_engine.h"

#include <stdlib.h>
#include <string.h>

struct ref_order {
    struct order_view v;
    char clordid[CLORDID_LEN_MAX + 1];
    char linkid[CLORDID_LEN_MAX + 1];
    qty_t slice;      /* visible slice when displayQty was given (0 when hidden) */
    uint64_t qtime;   /* when it joined its level's queue */
    uint8_t live;     /* not yet filled or canceled */
    uint8_t resting;  /* in its level's queue */
    uint8_t close_all; /* Close without orderQty: qty 0 until it comes in */
};

struct ref_engine {
    struct engine_config cfg;
    engine_sink_fn sink;
    void *ctx;

    struct ref_order *ord; /* live orders, ascending id */
    uint32_t n, cap;
    qty_t *pos;        /* [account * instruments + inst] */
    uint8_t *touched;  /* positions changed since the last enforcement */
    ms_t *deadline;    /* dead man's switch per account, 0 = disarmed */
    px_t price[INSTRUMENTS_MAX][SRC_COUNT];
    uint64_t next_id, next_trade, qclock;

    int have_prev;
    uint64_t last_seq;
    ms_t last_ts;
    uint64_t seq; /* the command being applied */
    ms_t ts;

    uint64_t *scratch; /* ids collected by a trigger pass */
};

/* ---- small helpers ----------------------------------------------------- */

static qty_t qmin(qty_t a, qty_t b) { return a < b ? a : b; }

static uint8_t other_side(uint8_t s) { return s == SIDE_BUY ? SIDE_SELL : SIDE_BUY; }

static int is_stop_type(uint8_t t)
{
    return t == ORD_STOP || t == ORD_STOP_LIMIT || t == ORD_MARKET_IF_TOUCHED || t == ORD_LIMIT_IF_TOUCHED;
}

/* No limit price when incoming: Market, and triggered Stop / MarketIfTouched. */
static int is_market_like(uint8_t t)
{
    return t == ORD_MARKET || t == ORD_STOP || t == ORD_MARKET_IF_TOUCHED;
}

static int is_ro(const struct ref_order *o)
{
    return (o->v.exec_inst & (EXEC_REDUCE_ONLY | EXEC_CLOSE)) != 0;
}

static int untriggered_stop(const struct ref_order *o)
{
    return o->live && is_stop_type(o->v.ord_type) && !o->v.triggered;
}

static qty_t *pos_at(struct ref_engine *r, uint32_t account, uint16_t inst)
{
    return &r->pos[(size_t)account * r->cfg.instruments_count + inst];
}

static qty_t room_of(struct ref_engine *r, uint32_t account, uint16_t inst, uint8_t side)
{
    qty_t p = *pos_at(r, account, inst);
    if (p > 0 && side == SIDE_SELL)
        return p;
    if (p < 0 && side == SIDE_BUY)
        return -p;
    return 0;
}

static uint8_t reducing_side(qty_t p)
{
    return p > 0 ? SIDE_SELL : p < 0 ? SIDE_BUY : SIDE_NONE;
}

/* Printable ASCII, at most 36 characters (the array must hold its NUL). */
static int id_text_ok(const char s[CLORDID_LEN_MAX + 1])
{
    const char *end = memchr(s, '\0', CLORDID_LEN_MAX + 1);
    if (!end)
        return 0;
    for (const char *p = s; p < end; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return 1;
}

static int same_id_text(const char *a, const char *b)
{
    return strncmp(a, b, CLORDID_LEN_MAX + 1) == 0;
}

static void copy_id_text(char dst[CLORDID_LEN_MAX + 1], const char src[CLORDID_LEN_MAX + 1])
{
    memset(dst, 0, CLORDID_LEN_MAX + 1);
    const char *end = memchr(src, '\0', CLORDID_LEN_MAX + 1);
    size_t len = end ? (size_t)(end - src) : CLORDID_LEN_MAX;
    memcpy(dst, src, len);
}

static struct ref_order *find_live(struct ref_engine *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->ord[i].v.id == id && r->ord[i].live)
            return &r->ord[i];
    return NULL;
}

static struct ref_order *find_clordid(struct ref_engine *r, uint32_t account, const char *clordid)
{
    if (!clordid[0])
        return NULL;
    for (uint32_t i = 0; i < r->n; i++) {
        struct ref_order *o = &r->ord[i];
        if (o->live && o->v.account == account && same_id_text(o->clordid, clordid))
            return o;
    }
    return NULL;
}

/* ---- events ------------------------------------------------------------ */

static void ev_init(struct ref_engine *r, struct event *ev, uint8_t type)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->seq = r->seq;
    ev->ts = r->ts;
}

static void emit(struct ref_engine *r, const struct event *ev)
{
    r->sink(r->ctx, ev);
}

static void emit_order(struct ref_engine *r, uint8_t type, uint8_t reason, const struct ref_order *o,
                       int with_ids)
{
    struct event ev;
    ev_init(r, &ev, type);
    ev.reason = reason;
    ev.inst = o->v.inst;
    ev.account = o->v.account;
    ev.order = o->v;
    if (with_ids) {
        copy_id_text(ev.u.ids.clordid, o->clordid);
        copy_id_text(ev.u.ids.clordlinkid, o->linkid);
    }
    emit(r, &ev);
}

/* ---- levels ------------------------------------------------------------ */

/* READING: a resting order shows its leaves when no displayQty was given,
 * else its current slice (0 for hidden); a displayQty >= leaves simply shows
 * everything (slice = min(displayQty, leaves)). */
static qty_t visible_of(const struct ref_order *o)
{
    if (!o->live || !o->resting)
        return 0;
    return o->v.display_qty < 0 ? o->v.leaves : o->slice;
}

/* What a maker can give in one match: the slice of an iceberg, else leaves
 * (hidden included). */
static qty_t available_of(const struct ref_order *o)
{
    return o->v.display_qty > 0 ? o->slice : o->v.leaves;
}

static qty_t level_visible(const struct ref_engine *r, uint16_t inst, uint8_t side, px_t px)
{
    qty_t sum = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const struct ref_order *o = &r->ord[i];
        if (o->live && o->resting && o->v.inst == inst && o->v.side == side && o->v.price == px)
            sum += visible_of(o);
    }
    return sum;
}

/* Emits EV_LEVEL when the visible size moved from `before`. */
static void level_changed(struct ref_engine *r, uint16_t inst, uint8_t side, px_t px, qty_t before)
{
    qty_t now = level_visible(r, inst, side, px);
    if (now == before)
        return;
    struct event ev;
    ev_init(r, &ev, EV_LEVEL);
    ev.inst = inst;
    ev.u.level.side = side;
    ev.u.level.px = px;
    ev.u.level.size_before = before;
    ev.u.level.size = now;
    emit(r, &ev);
}

static px_t best_px(const struct ref_engine *r, uint16_t inst, uint8_t side)
{
    px_t best = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const struct ref_order *o = &r->ord[i];
        if (!o->live || !o->resting || o->v.inst != inst || o->v.side != side)
            continue;
        if (best == 0 || (side == SIDE_BUY ? o->v.price > best : o->v.price < best))
            best = o->v.price;
    }
    return best;
}

/* Joins the back of its level. */
static void rest(struct ref_engine *r, struct ref_order *o)
{
    qty_t before = level_visible(r, o->v.inst, o->v.side, o->v.price);
    o->resting = 1;
    o->qtime = ++r->qclock;
    o->slice = o->v.display_qty >= 0 ? qmin(o->v.display_qty, o->v.leaves) : o->v.leaves;
    level_changed(r, o->v.inst, o->v.side, o->v.price, before);
}

/* READING: a canceled order is reported with status Canceled, leavesQty 0
 * and workingIndicator 0 (as BitMEX shows it); EV_CANCELED comes first, then
 * the EV_LEVEL of its level when it was resting and visible. */
static void cancel(struct ref_engine *r, struct ref_order *o, uint8_t reason)
{
    int was_resting = o->resting;
    qty_t before = was_resting ? level_visible(r, o->v.inst, o->v.side, o->v.price) : 0;
    o->live = 0;
    o->resting = 0;
    o->v.status = ST_CANCELED;
    o->v.leaves = 0;
    o->v.working = 0;
    emit_order(r, EV_CANCELED, reason, o, 0);
    if (was_resting)
        level_changed(r, o->v.inst, o->v.side, o->v.price, before);
}

/* ---- matching (rule 3) ------------------------------------------------- */

/* Whether maker a comes strictly after maker b in price-time priority on
 * side `side`. */
static int maker_after(const struct ref_order *a, const struct ref_order *b, uint8_t side)
{
    if (a->v.price != b->v.price)
        return side == SIDE_SELL ? a->v.price > b->v.price : a->v.price < b->v.price;
    return a->qtime > b->qtime;
}

/* The first order in the queue of the best opposite level that crosses the
 * taker's limit (no limit for market-like orders: hooks are NULL). */
static struct ref_order *best_maker(struct ref_engine *r, const struct ref_order *t)
{
    uint8_t opp = other_side(t->v.side);
    int limited = !is_market_like(t->v.ord_type);
    struct ref_order *best = NULL;
    for (uint32_t i = 0; i < r->n; i++) {
        struct ref_order *o = &r->ord[i];
        if (!o->live || !o->resting || o->v.inst != t->v.inst || o->v.side != opp)
            continue;
        if (limited && (t->v.side == SIDE_BUY ? o->v.price > t->v.price : o->v.price < t->v.price))
            continue;
        if (!best)
            best = o;
        else if (o->v.price == best->v.price ? o->qtime < best->qtime
                 : opp == SIDE_SELL           ? o->v.price < best->v.price
                                              : o->v.price > best->v.price)
            best = o;
    }
    return best;
}

static int in_oco(const struct ref_order *o)
{
    return o->v.contingency == CONT_OCO && o->linkid[0];
}

/* Rule 7: cancels every other live member of o's group, ascending id.
 * READING: a group is the live orders of one account and instrument with
 * contingencyType OCO and the same clOrdLinkID. After a match the maker's
 * group goes first, then the taker's. When taker and maker share a group
 * (self-trade allowed): a taker with leaves left is live, so the maker's
 * group cancels it (CXL_OCO) and matching stops; a taker the match filled is
 * not live and is not canceled. Either way the taker's group then cancels
 * its other live members, the maker included if it still has leaves. */
static void oco_cancel(struct ref_engine *r, const struct ref_order *o)
{
    if (!in_oco(o))
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        struct ref_order *x = &r->ord[i];
        if (x == o || !x->live || !in_oco(x) || x->v.account != o->v.account || x->v.inst != o->v.inst ||
            !same_id_text(x->linkid, o->linkid))
            continue;
        cancel(r, x, CXL_OCO);
    }
}

static void set_fill_status(struct ref_order *o)
{
    if (o->v.leaves == 0) {
        o->v.status = ST_FILLED;
        /* READING: a filled order is no longer working (workingIndicator 0). */
        o->v.working = 0;
        o->live = 0;
        o->resting = 0;
    } else {
        o->v.status = ST_PARTIALLY_FILLED;
    }
}

static void fill(struct ref_engine *r, struct ref_order *m, struct ref_order *t, qty_t q)
{
    uint16_t inst = m->v.inst;
    uint8_t mside = m->v.side;
    px_t px = m->v.price;
    qty_t before = level_visible(r, inst, mside, px);
    uint64_t trade_id = ++r->next_trade;
    /* READING: the maker's fill pays the taker fee when it is hidden, or an
     * iceberg that still had a hidden part before this fill (leaves > its
     * slice); the taker's fill always does. */
    uint8_t maker_pays_taker = m->v.display_qty == 0 || (m->v.display_qty > 0 && m->v.leaves > m->slice);

    m->v.leaves -= q;
    m->v.cum += q;
    if (m->v.display_qty > 0)
        m->slice -= q; /* hidden keeps slice 0; no displayQty: slice unused */
    set_fill_status(m);
    if (m->live && m->v.display_qty > 0 && m->slice == 0) {
        /* the iceberg shows a new slice at the back of its level */
        m->slice = qmin(m->v.display_qty, m->v.leaves);
        m->qtime = ++r->qclock;
    }
    t->v.leaves -= q;
    t->v.cum += q;
    set_fill_status(t);

    qty_t signed_q = t->v.side == SIDE_BUY ? q : -q;
    *pos_at(r, t->v.account, inst) += signed_q;
    *pos_at(r, m->v.account, inst) -= signed_q;
    r->touched[(size_t)t->v.account * r->cfg.instruments_count + inst] = 1;
    r->touched[(size_t)m->v.account * r->cfg.instruments_count + inst] = 1;
    r->price[inst][SRC_LAST] = px;

    struct event ev;
    ev_init(r, &ev, EV_FILL);
    ev.inst = inst;
    ev.account = m->v.account;
    ev.order = m->v;
    ev.u.fill.trade_id = trade_id;
    ev.u.fill.last_qty = q;
    ev.u.fill.last_px = px;
    ev.u.fill.maker = 1;
    ev.u.fill.pays_taker = maker_pays_taker;
    emit(r, &ev);

    ev_init(r, &ev, EV_FILL);
    ev.inst = inst;
    ev.account = t->v.account;
    ev.order = t->v;
    ev.u.fill.trade_id = trade_id;
    ev.u.fill.last_qty = q;
    ev.u.fill.last_px = px;
    ev.u.fill.maker = 0;
    ev.u.fill.pays_taker = 1;
    emit(r, &ev);

    /* READING: public events (EV_TRADE, EV_LEVEL, EV_PRICE) carry account 0
     * and an all-zero order view. */
    ev_init(r, &ev, EV_TRADE);
    ev.inst = inst;
    ev.u.trade.trade_id = trade_id;
    ev.u.trade.maker_order_id = m->v.id;
    ev.u.trade.taker_order_id = t->v.id;
    ev.u.trade.maker_account = m->v.account;
    ev.u.trade.taker_account = t->v.account;
    ev.u.trade.qty = q;
    ev.u.trade.px = px;
    ev.u.trade.taker_side = t->v.side;
    emit(r, &ev);

    level_changed(r, inst, mside, px, before);
    oco_cancel(r, m);
    oco_cancel(r, t);
}

/* READING: one match step checks, in this order: a crossing maker exists
 * (else stop); self-trade prevention; the ReduceOnly maker's room (0: the
 * maker is canceled CXL_REDUCE_ONLY, go on); the ReduceOnly taker's room (0:
 * the remainder is canceled CXL_REDUCE_ONLY); then the fill of
 * min(taker leaves, maker available, both rooms). */
static void match(struct ref_engine *r, struct ref_order *t)
{
    while (t->live && t->v.leaves > 0) {
        struct ref_order *m = best_maker(r, t);
        if (!m)
            break;
        if (m->v.account == t->v.account && r->cfg.stp != STP_ALLOW) {
            if (r->cfg.stp == STP_CANCEL_MAKER) {
                cancel(r, m, CXL_SELF_TRADE);
                continue;
            }
            cancel(r, t, CXL_SELF_TRADE);
            break;
        }
        qty_t q = qmin(t->v.leaves, available_of(m));
        if (is_ro(m)) {
            qty_t room = room_of(r, m->v.account, m->v.inst, m->v.side);
            if (room == 0) {
                cancel(r, m, CXL_REDUCE_ONLY);
                continue;
            }
            q = qmin(q, room);
        }
        if (is_ro(t)) {
            qty_t room = room_of(r, t->v.account, t->v.inst, t->v.side);
            if (room == 0) {
                cancel(r, t, CXL_REDUCE_ONLY);
                break;
            }
            q = qmin(q, room);
        }
        fill(r, m, t, q);
    }
}

/* Rule 11: FillOrKill's test sums the whole leaves (hidden parts included)
 * of the eligible resting orders on crossing levels; ReduceOnly caps of
 * makers are not counted (matching that falls short ends in CXL_FOK).
 * READING: "eligible" follows self-trade prevention in price-time order:
 * STP_CANCEL_MAKER skips the taker's own orders, STP_CANCEL_TAKER stops the
 * count at the first own order (queue order as it stands on arrival; an
 * iceberg's later slices are not re-queued in this count); OCO cancels that
 * matching may cause are not foreseen either. */
static int fok_fills(struct ref_engine *r, struct ref_order *t)
{
    qty_t sum = 0;
    /* walk makers in priority order without changing anything: repeatedly
     * take the best (price, qtime) after the previous one */
    const struct ref_order *prev = NULL;
    uint8_t opp = other_side(t->v.side);
    int limited = !is_market_like(t->v.ord_type);
    for (;;) {
        const struct ref_order *best = NULL;
        for (uint32_t i = 0; i < r->n; i++) {
            const struct ref_order *o = &r->ord[i];
            if (!o->live || !o->resting || o->v.inst != t->v.inst || o->v.side != opp)
                continue;
            if (limited && (t->v.side == SIDE_BUY ? o->v.price > t->v.price : o->v.price < t->v.price))
                continue;
            if (prev && !maker_after(o, prev, opp))
                continue;
            if (!best || maker_after(best, o, opp))
                best = o;
        }
        if (!best)
            break;
        prev = best;
        if (best->v.account == t->v.account) {
            if (r->cfg.stp == STP_CANCEL_MAKER)
                continue;
            if (r->cfg.stp == STP_CANCEL_TAKER)
                break;
        }
        sum += best->v.leaves;
        if (sum >= t->v.leaves)
            return 1;
    }
    return sum >= t->v.leaves;
}

/* ---- ReduceOnly (rule 6) ----------------------------------------------- */

/* Rule 6's arrival step, for every order coming in (new, requeued by an
 * amend, triggered). Returns 0 when it was canceled.
 * READING: a cut lowers orderQty with leavesQty (orderQty = cumQty +
 * leavesQty stays true). A Close without orderQty carries qty 0 until here
 * and is then set to the whole position with EV_RESTATED. An amend that
 * requeues an order passes here too. */
static int ro_arrival(struct ref_engine *r, struct ref_order *o)
{
    if (!is_ro(o))
        return 1;
    qty_t room = room_of(r, o->v.account, o->v.inst, o->v.side);
    if (room == 0) {
        cancel(r, o, CXL_REDUCE_ONLY);
        return 0;
    }
    if (o->close_all) {
        o->close_all = 0;
        o->v.qty = o->v.cum + room;
        o->v.leaves = room;
        emit_order(r, EV_RESTATED, 0, o, 0);
    } else if (room < o->v.leaves) {
        o->v.qty -= o->v.leaves - room;
        o->v.leaves = room;
        emit_order(r, EV_RESTATED, 0, o, 0);
    }
    return 1;
}

/* READING: "position changed" = touched by any fill (a self-trade counts
 * even though it nets to zero); enforcement runs after each incoming order.
 * Per (account, instrument), Buy side then Sell side, each against its own
 * room (0 on the side that does not reduce): when the leaves of its resting
 * ReduceOnly orders exceed the room, the least aggressive are cut first;
 * cut to zero = canceled (so the non-reducing side is canceled least
 * aggressive first, not by id). A cut keeps the order's place; it lowers
 * orderQty with leavesQty; EV_RESTATED then EV_LEVEL. */
static int ro_in_book(const struct ref_order *o, uint32_t a, uint16_t inst, uint8_t side)
{
    return o->live && o->resting && is_ro(o) && o->v.account == a && o->v.inst == inst && o->v.side == side;
}

static void enforce(struct ref_engine *r)
{
    uint16_t ni = r->cfg.instruments_count;
    for (uint32_t a = 0; a < r->cfg.accounts_max; a++) {
        for (uint16_t inst = 0; inst < ni; inst++) {
            size_t k = (size_t)a * ni + inst;
            if (!r->touched[k])
                continue;
            r->touched[k] = 0;
            for (uint8_t side = SIDE_BUY; side <= SIDE_SELL; side++) {
                qty_t room = room_of(r, a, inst, side);
                qty_t sum = 0;
                for (uint32_t i = 0; i < r->n; i++)
                    if (ro_in_book(&r->ord[i], a, inst, side))
                        sum += r->ord[i].v.leaves;
                while (sum > room) {
                    struct ref_order *w = NULL; /* least aggressive */
                    for (uint32_t i = 0; i < r->n; i++) {
                        struct ref_order *o = &r->ord[i];
                        if (!ro_in_book(o, a, inst, side))
                            continue;
                        if (!w || (o->v.price == w->v.price
                                       ? o->v.id > w->v.id
                                       : (side == SIDE_SELL ? o->v.price > w->v.price : o->v.price < w->v.price)))
                            w = o;
                    }
                    qty_t cut = qmin(sum - room, w->v.leaves);
                    sum -= cut;
                    if (cut == w->v.leaves) {
                        cancel(r, w, CXL_REDUCE_ONLY);
                    } else {
                        qty_t before = level_visible(r, inst, side, w->v.price);
                        w->v.leaves -= cut;
                        w->v.qty -= cut;
                        w->slice = qmin(w->slice, w->v.leaves);
                        emit_order(r, EV_RESTATED, 0, w, 0);
                        level_changed(r, inst, side, w->v.price, before);
                    }
                }
            }
        }
    }
}

/* Rule 3 for a live, working order that is not in the book: ReduceOnly
 * arrival (rule 6), post-only, FillOrKill, matching, the remainder, then
 * ReduceOnly enforcement.
 * READING: the same path serves new orders, amends that requeue and
 * triggered stops (an amended order is GTC or Day, so IOC/FOK never apply to
 * it). */
static void incoming(struct ref_engine *r, struct ref_order *t)
{
    if (!ro_arrival(r, t)) {
        /* canceled: no fill, nothing to enforce */
    } else if ((t->v.exec_inst & EXEC_POST_ONLY) && best_maker(r, t)) {
        cancel(r, t, CXL_POST_ONLY);
    } else if (t->v.tif == TIF_FOK && !fok_fills(r, t)) {
        cancel(r, t, CXL_FOK);
    } else {
        match(r, t);
        if (t->live) {
            if (is_market_like(t->v.ord_type))
                cancel(r, t, CXL_MARKET);
            else if (t->v.tif == TIF_IOC)
                cancel(r, t, CXL_IOC);
            else if (t->v.tif == TIF_FOK)
                cancel(r, t, CXL_FOK); /* the sum said yes, matching fell short */
            else
                rest(r, t);
        }
    }
    enforce(r);
}

/* ---- triggers (rule 8) ------------------------------------------------- */

static uint8_t source_of(const struct ref_order *o)
{
    if (o->v.exec_inst & EXEC_LAST_PRICE)
        return SRC_LAST;
    if (o->v.exec_inst & EXEC_INDEX_PRICE)
        return SRC_INDEX;
    return SRC_MARK;
}

/* Buy Stop/StopLimit and Sell MIT/LIT fire when the price rises to stopPx. */
static int fires_up(uint8_t side, uint8_t ord_type)
{
    int stop = ord_type == ORD_STOP || ord_type == ORD_STOP_LIMIT;
    return stop ? side == SIDE_BUY : side == SIDE_SELL;
}

/* stopPx of a trailing stop: ref + offset rounded to the tick away from ref. */
static px_t trail_px(px_t ref, px_t offset, px_t tick)
{
    px_t x = ref + offset;
    px_t m = x % tick;
    if (m < 0)
        m += tick;
    if (m == 0)
        return x;
    return offset < 0 ? x - m : x - m + tick;
}

static int condition_holds(const struct ref_engine *r, const struct ref_order *o)
{
    px_t ref = r->price[o->v.inst][source_of(o)];
    if (ref == 0)
        return 0;
    int up = fires_up(o->v.side, o->v.ord_type);
    if (up ? ref < o->v.stop_px : ref > o->v.stop_px)
        return 0;
    if (o->v.exec_inst & EXEC_LAST_WITHIN_MARK) {
        /* READING: no mark price yet = not within. */
        i128 last = r->price[o->v.inst][SRC_LAST], mark = r->price[o->v.inst][SRC_MARK];
        if (mark == 0)
            return 0;
        if (up ? !(last * 100 <= mark * 105) : !(last * 100 >= mark * 95))
            return 0;
    }
    return 1;
}

/* READING: a trailing stop's stopPx moves silently (no event); the move
 * happens at the start of every round of the trigger pass. */
static void trail_move(struct ref_engine *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        struct ref_order *o = &r->ord[i];
        if (!untriggered_stop(o) || o->v.peg_type != PEG_TRAILING_STOP)
            continue;
        px_t ref = r->price[o->v.inst][source_of(o)];
        if (ref == 0)
            continue;
        px_t cand = trail_px(ref, o->v.peg_offset_px, r->cfg.instruments[o->v.inst].tick_px);
        if (fires_up(o->v.side, o->v.ord_type) ? cand < o->v.stop_px : cand > o->v.stop_px)
            o->v.stop_px = cand;
    }
}

static void activate(struct ref_engine *r, struct ref_order *o)
{
    o->v.triggered = 1;
    o->v.working = 1;
    /* a Close stop without orderQty still shows qty 0 here; rule 6's
     * arrival step sets it */
    emit_order(r, EV_TRIGGERED, 0, o, 0);
    incoming(r, o);
}

/* READING: each round collects every untriggered stop whose condition holds
 * at the start of the round and activates them in ascending id; one that
 * stopped being live meanwhile (e.g. OCO) is skipped; one whose condition no
 * longer holds by its turn is still activated. */
static void trigger_pass(struct ref_engine *r)
{
    for (;;) {
        trail_move(r);
        uint32_t k = 0;
        for (uint32_t i = 0; i < r->n; i++)
            if (untriggered_stop(&r->ord[i]) && condition_holds(r, &r->ord[i]))
                r->scratch[k++] = r->ord[i].v.id;
        if (k == 0)
            return;
        for (uint32_t j = 0; j < k; j++) {
            struct ref_order *o = find_live(r, r->scratch[j]);
            if (o && untriggered_stop(o))
                activate(r, o);
        }
    }
}

/* ---- rejects ----------------------------------------------------------- */

/* READING: the order view of EV_REJECTED is the command's raw fields: zero,
 * then account and inst of the command, status Rejected, display_qty -1;
 * new order: side/ordType/tif/pegType/contingency/execInst exactly as sent
 * (no defaults applied), qty/price/stopPx/displayQty/pegOffset when given
 * (qty with its sign), ids = clOrdID and clOrdLinkID; amend: id =
 * ref.order_id, qty/leaves/price/stopPx/pegOffset when given, ids.clordid =
 * ref.clordid; cancel: id = ref.order_id, ids.clordid = ref.clordid; other
 * commands: nothing more. event.account/inst are the command's. */
static enum reject reject(struct ref_engine *r, const struct cmd *c, enum reject why)
{
    struct event ev;
    ev_init(r, &ev, EV_REJECTED);
    ev.reason = (uint8_t)why;
    ev.account = c->account;
    ev.inst = c->inst;
    struct order_view *v = &ev.order;
    v->account = c->account;
    v->inst = c->inst;
    v->status = ST_REJECTED;
    v->display_qty = -1;
    if (c->type == CMD_NEW_ORDER) {
        const struct cmd_new_order *n = &c->u.new_order;
        v->side = n->side;
        v->ord_type = n->ord_type;
        v->tif = n->tif;
        v->peg_type = n->peg_type;
        v->contingency = n->contingency;
        v->exec_inst = n->exec_inst;
        if (n->has & HAS_QTY)
            v->qty = n->qty;
        if (n->has & HAS_DISPLAY_QTY)
            v->display_qty = n->display_qty;
        if (n->has & HAS_PRICE)
            v->price = n->price;
        if (n->has & HAS_STOP_PX)
            v->stop_px = n->stop_px;
        if (n->has & HAS_PEG_OFFSET)
            v->peg_offset_px = n->peg_offset_px;
        copy_id_text(ev.u.ids.clordid, n->clordid);
        copy_id_text(ev.u.ids.clordlinkid, n->clordlinkid);
    } else if (c->type == CMD_AMEND) {
        const struct cmd_amend *a = &c->u.amend;
        v->id = a->ref.order_id;
        if (a->has & AMD_QTY)
            v->qty = a->qty;
        if (a->has & AMD_LEAVES)
            v->leaves = a->leaves;
        if (a->has & AMD_PRICE)
            v->price = a->price;
        if (a->has & AMD_STOP_PX)
            v->stop_px = a->stop_px;
        if (a->has & AMD_PEG_OFFSET)
            v->peg_offset_px = a->peg_offset_px;
        copy_id_text(ev.u.ids.clordid, a->ref.clordid);
    } else if (c->type == CMD_CANCEL) {
        v->id = c->u.cancel.order_id;
        copy_id_text(ev.u.ids.clordid, c->u.cancel.clordid);
    }
    emit(r, &ev);
    return why;
}

/* ---- new orders (rules 2, 9, 10) --------------------------------------- */

struct norm {
    uint8_t side, ord_type, tif;
    qty_t qty, display;
    px_t price, stop_px, peg_off;
    int close_all;
};

#define EXEC_KNOWN 0x1ffu

static enum reject validate_new(struct ref_engine *r, const struct cmd *c, struct norm *nm)
{
    const struct cmd_new_order *n = &c->u.new_order;
    /* Rule 11's order, first failure wins: instrument, account, AllOrNone,
     * unknown/duplicate trigger execInst, side, qty, ordType, price, peg,
     * pegOffsetValue, stopPx / trigger execInst, timeInForce, post-only
     * combination, displayQty, contingency, clOrdID/clOrdLinkID text,
     * duplicate clOrdID, per-account limits, pools, Pegged reference.
     * READING (within "contingency ... clOrdID text"): an unknown or OTO
     * contingency is refused before the id text, OCO without clOrdLinkID
     * after it. */
    if (c->inst >= r->cfg.instruments_count)
        return REJ_UNKNOWN_SYMBOL;
    if (c->account >= r->cfg.accounts_max)
        return REJ_UNKNOWN_ACCOUNT;
    const struct engine_instrument *in = &r->cfg.instruments[c->inst];
    uint16_t x = n->exec_inst;
    if (x & EXEC_ALL_OR_NONE)
        return REJ_ALL_OR_NONE;
    /* "unknown" = bits outside enum exec_inst; "duplicate trigger" = more
     * than one of MarkPrice/LastPrice/IndexPrice */
    if (x & ~EXEC_KNOWN)
        return REJ_INVALID_EXEC_INST;
    uint16_t srcs = x & (EXEC_MARK_PRICE | EXEC_LAST_PRICE | EXEC_INDEX_PRICE);
    if (srcs & (srcs - 1))
        return REJ_INVALID_EXEC_INST;
    if (n->side > SIDE_SELL)
        return REJ_INVALID_SIDE;

    /* orderQty and side */
    uint8_t side = n->side;
    qty_t q;
    nm->close_all = 0;
    if (n->has & HAS_QTY) {
        /* READING: with orderQty given, a missing side comes from its sign
         * (Close included); with a side given, orderQty must be > 0. */
        q = n->qty;
        if (q < 0 && side == SIDE_NONE) {
            side = SIDE_SELL;
            q = -q;
        }
        if (q <= 0 || q % in->lot_qty != 0)
            return REJ_INVALID_QTY;
        if (q > in->max_order_qty)
            return REJ_QTY_TOO_LARGE;
        if (side == SIDE_NONE)
            side = SIDE_BUY;
    } else {
        /* READING: only Close may omit orderQty. The order carries qty 0
         * until it comes in (rule 6's arrival step sets the whole position,
         * for a stop at trigger time); without a side it takes the reducing
         * one, and flat with no side is REJ_INVALID_SIDE. */
        if (!(x & EXEC_CLOSE))
            return REJ_INVALID_QTY;
        q = 0;
        nm->close_all = 1;
        if (side == SIDE_NONE) {
            side = reducing_side(*pos_at(r, c->account, c->inst));
            if (side == SIDE_NONE)
                return REJ_INVALID_SIDE;
        }
    }
    nm->side = side;
    nm->qty = q;

    /* ordType from the fields given (rule 2) */
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
    if (t > ORD_PEGGED)
        return REJ_UNSUPPORTED_ORD_TYPE;
    nm->ord_type = t;
    int stop = is_stop_type(t);
    int trailing = n->peg_type == PEG_TRAILING_STOP;

    int limit_priced = t == ORD_LIMIT || t == ORD_STOP_LIMIT || t == ORD_LIMIT_IF_TOUCHED;
    nm->price = 0;
    if (limit_priced) {
        if (!(n->has & HAS_PRICE) || n->price <= 0 || n->price > in->max_px)
            return REJ_INVALID_PRICE;
        if (n->price % in->tick_px != 0)
            return REJ_PRICE_TICK;
        nm->price = n->price;
    } else if (n->has & HAS_PRICE) {
        return REJ_INVALID_PRICE;
    }

    /* peg: pegPriceType fit for the ordType; Pegged needs Fixed. READING:
     * Fixed on anything else is REJ_INVALID_EXEC_INST. */
    if (n->peg_type > PEG_TRAILING_STOP)
        return REJ_INVALID_PEG;
    if (t == ORD_PEGGED) {
        if (n->peg_type != PEG_PRIMARY && n->peg_type != PEG_MARKET)
            return REJ_INVALID_PEG;
        if (!(x & EXEC_FIXED))
            return REJ_INVALID_PEG;
    } else if (n->peg_type == PEG_PRIMARY || n->peg_type == PEG_MARKET || (trailing && !stop)) {
        return REJ_INVALID_PEG;
    }
    if ((x & EXEC_FIXED) && t != ORD_PEGGED)
        return REJ_INVALID_EXEC_INST;

    /* pegOffsetValue: READING: given without a pegPriceType, or off the
     * tick, REJ_INVALID_PEG_OFFSET; defaults to 0. */
    nm->peg_off = 0;
    if (n->has & HAS_PEG_OFFSET) {
        if (n->peg_type == PEG_NONE || n->peg_offset_px % in->tick_px != 0)
            return REJ_INVALID_PEG_OFFSET;
        nm->peg_off = n->peg_offset_px;
    }

    /* stopPx and the trigger execInst */
    nm->stop_px = 0;
    if (stop) {
        if (trailing) {
            /* READING: the sign test (a zero or missing offset fails it) and
             * the reference (REJ_PEG_NO_REFERENCE) belong to this step; a
             * stopPx given with a trailing stop is ignored (computed). */
            if (fires_up(side, t) ? nm->peg_off <= 0 : nm->peg_off >= 0)
                return REJ_INVALID_PEG_OFFSET;
            px_t ref = r->price[c->inst][(x & EXEC_LAST_PRICE) ? SRC_LAST : (x & EXEC_INDEX_PRICE) ? SRC_INDEX : SRC_MARK];
            if (ref == 0)
                return REJ_PEG_NO_REFERENCE;
            px_t sp = trail_px(ref, nm->peg_off, in->tick_px);
            if (sp <= 0 || sp > in->max_px)
                return REJ_INVALID_STOP_PX;
            nm->stop_px = sp;
        } else {
            if (!(n->has & HAS_STOP_PX) || n->stop_px <= 0 || n->stop_px > in->max_px)
                return REJ_INVALID_STOP_PX;
            if (n->stop_px % in->tick_px != 0)
                return REJ_STOP_PX_TICK;
            nm->stop_px = n->stop_px;
        }
        /* READING: LastWithinMark only with LastPrice, on Stop/StopLimit. */
        if ((x & EXEC_LAST_WITHIN_MARK) && (!(x & EXEC_LAST_PRICE) || (t != ORD_STOP && t != ORD_STOP_LIMIT)))
            return REJ_INVALID_EXEC_INST;
    } else {
        if (n->has & HAS_STOP_PX)
            return REJ_INVALID_STOP_PX;
        if (srcs || (x & EXEC_LAST_WITHIN_MARK))
            return REJ_INVALID_EXEC_INST;
    }

    /* timeInForce: rule 2 says IOC is the only one Market, Stop and
     * MarketIfTouched accept (FOK included in the refusal). */
    if (n->tif > TIF_DAY)
        return REJ_UNSUPPORTED_TIF;
    if (is_market_like(t)) {
        if (n->tif != TIF_NONE && n->tif != TIF_IOC)
            return REJ_UNSUPPORTED_TIF;
        nm->tif = TIF_IOC;
    } else {
        nm->tif = n->tif == TIF_NONE ? TIF_GTC : n->tif;
    }
    /* READING: post-only needs a limit price and a TIF that can rest. */
    if ((x & EXEC_POST_ONLY) && (is_market_like(t) || nm->tif == TIF_IOC || nm->tif == TIF_FOK))
        return REJ_INVALID_EXEC_INST;

    /* READING: displayQty must be 0 <= displayQty <= orderQty and a lot
     * multiple; refused on market-like orders and on a Close without
     * orderQty. */
    nm->display = -1;
    if (n->has & HAS_DISPLAY_QTY) {
        qty_t d = n->display_qty;
        if (is_market_like(t) || q == 0 || d < 0 || d > q || d % in->lot_qty != 0)
            return REJ_INVALID_DISPLAY_QTY;
        nm->display = d;
    }

    if (n->contingency == CONT_OTO || n->contingency > CONT_OTO)
        return REJ_INVALID_CONTINGENCY;
    if (!id_text_ok(n->clordid) || !id_text_ok(n->clordlinkid))
        return REJ_INVALID_CLORDID;
    if (n->contingency == CONT_OCO && !n->clordlinkid[0])
        return REJ_INVALID_CONTINGENCY;
    if (find_clordid(r, c->account, n->clordid))
        return REJ_DUPLICATE_CLORDID;

    /* READING: a stop counts against stop_orders_max, then stops_max
     * (REJ_POOL_FULL); anything else against open_orders_max whatever its
     * TIF; then the order pool. The string pool (strings_max) is not
     * modelled: the test sizes it so that it never binds. */
    if (stop) {
        if (ref_stop_orders(r, c->account, c->inst) >= r->cfg.stop_orders_max)
            return REJ_TOO_MANY_STOP_ORDERS;
        uint32_t k = 0;
        for (uint32_t i = 0; i < r->n; i++)
            if (untriggered_stop(&r->ord[i]) && r->ord[i].v.inst == c->inst)
                k++;
        if (k >= r->cfg.stops_max)
            return REJ_POOL_FULL;
    } else if (ref_open_orders(r, c->account, c->inst) >= r->cfg.open_orders_max) {
        return REJ_TOO_MANY_OPEN_ORDERS;
    }
    /* READING: BitMEX's "Too many contingent orders": at most
     * ENGINE_CONTINGENT_MAX live orders with a contingency per account and
     * contract, stops included, after the open/stop limits. */
    if (n->contingency != CONT_NONE) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < r->n; i++) {
            const struct ref_order *o = &r->ord[i];
            if (o->live && o->v.account == c->account && o->v.inst == c->inst && o->v.contingency != CONT_NONE)
                k++;
        }
        if (k >= ENGINE_CONTINGENT_MAX)
            return REJ_TOO_MANY_CONTINGENT;
    }
    if (ref_orders_live(r) >= r->cfg.orders_max)
        return REJ_POOL_FULL;

    if (t == ORD_PEGGED) {
        /* READING: the reference is engine_best() (hidden included); a
         * resulting price <= 0 or > maxPrice is REJ_INVALID_PRICE. */
        uint8_t ref_side = n->peg_type == PEG_PRIMARY ? side : other_side(side);
        px_t ref = best_px(r, c->inst, ref_side);
        if (ref == 0)
            return REJ_PEG_NO_REFERENCE;
        px_t p = ref + nm->peg_off;
        if (p <= 0 || p > in->max_px)
            return REJ_INVALID_PRICE;
        nm->price = p;
    }
    return REJ_NONE;
}

static enum reject new_order(struct ref_engine *r, const struct cmd *c)
{
    struct norm nm;
    enum reject why = validate_new(r, c, &nm);
    if (why != REJ_NONE)
        return reject(r, c, why);
    const struct cmd_new_order *n = &c->u.new_order;

    struct ref_order *o = &r->ord[r->n++];
    memset(o, 0, sizeof *o);
    o->v.id = r->next_id++;
    o->v.account = c->account;
    o->v.inst = c->inst;
    o->v.side = nm.side;
    o->v.ord_type = nm.ord_type;
    o->v.tif = nm.tif;
    o->v.peg_type = n->peg_type;
    o->v.contingency = n->contingency;
    o->v.status = ST_NEW;
    o->v.exec_inst = n->exec_inst;
    o->v.triggered = 0;
    o->v.working = is_stop_type(nm.ord_type) ? 0 : 1;
    o->v.qty = nm.qty;
    o->v.leaves = nm.qty;
    o->v.cum = 0;
    o->v.display_qty = nm.display;
    o->v.price = nm.price;
    o->v.stop_px = nm.stop_px;
    o->v.peg_offset_px = nm.peg_off;
    copy_id_text(o->clordid, n->clordid);
    copy_id_text(o->linkid, n->clordlinkid);
    o->live = 1;
    o->close_all = (uint8_t)nm.close_all;

    emit_order(r, EV_NEW, 0, o, 1);
    if (is_stop_type(o->v.ord_type))
        return REJ_NONE; /* waits for the trigger pass */
    incoming(r, o);
    return REJ_NONE;
}

/* ---- amend, cancel (rules 4, 5) ---------------------------------------- */

/* READING: an order is found by id (any account's live orders are looked at,
 * another account's counts as not found), else by the account's current
 * clOrdID (after a rename, the new one). An id below the next id that is not
 * live is REJ_ORDER_TERMINAL whoever owned it; anything else not found is
 * REJ_NOT_FOUND. cmd.inst plays no part. */
static enum reject target(struct ref_engine *r, const struct cmd *c, const struct order_ref *ref,
                          struct ref_order **out)
{
    if (c->account >= r->cfg.accounts_max)
        return REJ_UNKNOWN_ACCOUNT;
    if (ref->order_id != 0) {
        struct ref_order *o = find_live(r, ref->order_id);
        if (o) {
            if (o->v.account != c->account)
                return REJ_NOT_FOUND;
            *out = o;
            return REJ_NONE;
        }
        return ref->order_id < r->next_id ? REJ_ORDER_TERMINAL : REJ_NOT_FOUND;
    }
    struct ref_order *o = find_clordid(r, c->account, ref->clordid);
    if (!o)
        return REJ_NOT_FOUND;
    *out = o;
    return REJ_NONE;
}

static enum reject amend(struct ref_engine *r, const struct cmd *c)
{
    const struct cmd_amend *a = &c->u.amend;
    struct ref_order *o = NULL;
    enum reject why = target(r, c, &a->ref, &o);
    if (why != REJ_NONE)
        return reject(r, c, why);
    const struct engine_instrument *in = &r->cfg.instruments[o->v.inst];
    int untrig = untriggered_stop(o);
    qty_t cum = o->v.cum;

    /* READING: checks in this order: both quantities; orderQty Q (Q <=
     * cumQty, then Q's own validity) giving leaves Q - cumQty; leavesQty L
     * (L's validity, then cumQty + L against maxOrderQty); price (only on
     * orders with a limit price, else REJ_AMEND_NOT_ALLOWED); stopPx (only an
     * untriggered non-trailing stop); pegOffsetValue (only an untriggered
     * trailing stop: sign and tick as on entry, stopPx recomputed from the
     * reference at once); the new clOrdID (text or empty: invalid; equal to
     * the current one: no change; else duplicate test); unchanged. */
    if ((a->has & AMD_QTY) && (a->has & AMD_LEAVES))
        return reject(r, c, REJ_AMEND_BOTH_QTY);
    qty_t nl = o->v.leaves;
    if (a->has & AMD_QTY) {
        if (a->qty <= cum || a->qty % in->lot_qty != 0)
            return reject(r, c, REJ_INVALID_QTY);
        if (a->qty > in->max_order_qty)
            return reject(r, c, REJ_QTY_TOO_LARGE);
        nl = a->qty - cum;
    }
    if (a->has & AMD_LEAVES) {
        if (a->leaves <= 0 || a->leaves % in->lot_qty != 0)
            return reject(r, c, REJ_INVALID_QTY);
        if (a->leaves > in->max_order_qty || cum + a->leaves > in->max_order_qty)
            return reject(r, c, REJ_QTY_TOO_LARGE);
        nl = a->leaves;
    }
    px_t np = o->v.price;
    if (a->has & AMD_PRICE) {
        if (is_market_like(o->v.ord_type))
            return reject(r, c, REJ_AMEND_NOT_ALLOWED);
        if (a->price <= 0 || a->price > in->max_px)
            return reject(r, c, REJ_INVALID_PRICE);
        if (a->price % in->tick_px != 0)
            return reject(r, c, REJ_PRICE_TICK);
        np = a->price;
    }
    px_t ns = o->v.stop_px;
    if (a->has & AMD_STOP_PX) {
        if (!untrig || o->v.peg_type == PEG_TRAILING_STOP)
            return reject(r, c, REJ_AMEND_NOT_ALLOWED);
        if (a->stop_px <= 0 || a->stop_px > in->max_px)
            return reject(r, c, REJ_INVALID_STOP_PX);
        if (a->stop_px % in->tick_px != 0)
            return reject(r, c, REJ_STOP_PX_TICK);
        ns = a->stop_px;
    }
    px_t noff = o->v.peg_offset_px;
    if (a->has & AMD_PEG_OFFSET) {
        if (!untrig || o->v.peg_type != PEG_TRAILING_STOP)
            return reject(r, c, REJ_AMEND_NOT_ALLOWED);
        int up = fires_up(o->v.side, o->v.ord_type);
        if (a->peg_offset_px % in->tick_px != 0 || (up ? a->peg_offset_px <= 0 : a->peg_offset_px >= 0))
            return reject(r, c, REJ_INVALID_PEG_OFFSET);
        noff = a->peg_offset_px;
        ns = trail_px(r->price[o->v.inst][source_of(o)], noff, in->tick_px);
        if (ns <= 0 || ns > in->max_px)
            return reject(r, c, REJ_INVALID_STOP_PX);
    }
    int renamed = 0;
    if (a->has & AMD_NEW_CLORDID) {
        if (!id_text_ok(a->new_clordid) || !a->new_clordid[0])
            return reject(r, c, REJ_INVALID_CLORDID);
        if (!same_id_text(a->new_clordid, o->clordid)) {
            if (find_clordid(r, c->account, a->new_clordid))
                return reject(r, c, REJ_DUPLICATE_CLORDID);
            renamed = 1;
        }
    }
    if (nl == o->v.leaves && np == o->v.price && ns == o->v.stop_px && noff == o->v.peg_offset_px && !renamed)
        return reject(r, c, REJ_AMEND_UNCHANGED);

    if (renamed)
        copy_id_text(o->clordid, a->new_clordid);
    /* READING: a Close stop without orderQty keeps taking the whole
     * position at trigger time unless the amend gives a quantity. */
    if (a->has & (AMD_QTY | AMD_LEAVES))
        o->close_all = 0;
    /* READING: EV_AMENDED carries the ids (clOrdID and clOrdLinkID) only
     * when the clOrdID changed; otherwise the union is zero. */
    if (untrig) {
        o->v.qty = cum + nl;
        o->v.leaves = nl;
        o->v.price = np;
        o->v.stop_px = ns;
        o->v.peg_offset_px = noff;
        emit_order(r, EV_AMENDED, 0, o, renamed);
        return REJ_NONE;
    }
    qty_t before = level_visible(r, o->v.inst, o->v.side, o->v.price);
    px_t old_price = o->v.price;
    int requeue = nl > o->v.leaves || np != o->v.price;
    o->v.qty = cum + nl;
    o->v.leaves = nl;
    o->v.price = np;
    if (!requeue) {
        /* only leaves went down (or a rename): keeps its place */
        o->slice = qmin(o->slice, o->v.leaves);
        emit_order(r, EV_AMENDED, 0, o, renamed);
        level_changed(r, o->v.inst, o->v.side, old_price, before);
        return REJ_NONE;
    }
    /* rule 11: EV_AMENDED (new values), the EV_LEVEL of leaving, then rule
     * 3 (ReduceOnly arrival included). READING: resting again gives its own
     * EV_LEVEL, even at the same price. */
    emit_order(r, EV_AMENDED, 0, o, renamed);
    o->resting = 0;
    level_changed(r, o->v.inst, o->v.side, old_price, before);
    incoming(r, o);
    return REJ_NONE;
}

static enum reject cancel_one(struct ref_engine *r, const struct cmd *c)
{
    struct ref_order *o = NULL;
    enum reject why = target(r, c, &c->u.cancel, &o);
    if (why != REJ_NONE)
        return reject(r, c, why);
    cancel(r, o, CXL_USER);
    return REJ_NONE;
}

static void cancel_account(struct ref_engine *r, uint32_t account, uint16_t inst, uint8_t side, uint8_t reason)
{
    for (uint32_t i = 0; i < r->n; i++) {
        struct ref_order *o = &r->ord[i];
        if (!o->live || o->v.account != account)
            continue;
        if (inst != INST_ALL && o->v.inst != inst)
            continue;
        if (side != SIDE_NONE && o->v.side != side)
            continue;
        cancel(r, o, reason);
    }
}

/* READING: an account with nothing to cancel gives no events (accepted). */
static enum reject cancel_all(struct ref_engine *r, const struct cmd *c)
{
    const struct cmd_cancel_all *ca = &c->u.cancel_all;
    if (c->account >= r->cfg.accounts_max)
        return reject(r, c, REJ_UNKNOWN_ACCOUNT);
    if (ca->inst != INST_ALL && ca->inst >= r->cfg.instruments_count)
        return reject(r, c, REJ_UNKNOWN_SYMBOL);
    if (ca->side > SIDE_SELL)
        return reject(r, c, REJ_INVALID_SIDE);
    cancel_account(r, c->account, ca->inst, ca->side, CXL_CANCEL_ALL);
    return REJ_NONE;
}

/* READING: timeout < 0 (or one that would overflow ts) is
 * REJ_INVALID_TIMEOUT; 0 disarms, also when nothing was armed; either way one
 * EV_CANCEL_AFTER (account and inst = the command's, deadline or 0). */
static enum reject cancel_after(struct ref_engine *r, const struct cmd *c)
{
    if (c->account >= r->cfg.accounts_max)
        return reject(r, c, REJ_UNKNOWN_ACCOUNT);
    int64_t t = c->u.cancel_after_ms;
    if (t < 0 || t > INT64_MAX - c->ts)
        return reject(r, c, REJ_INVALID_TIMEOUT);
    r->deadline[c->account] = t == 0 ? 0 : c->ts + t;
    struct event ev;
    ev_init(r, &ev, EV_CANCEL_AFTER);
    ev.account = c->account;
    ev.inst = c->inst;
    ev.u.cancel_after.deadline = r->deadline[c->account];
    emit(r, &ev);
    return REJ_NONE;
}

/* READING: account is not looked at; a source other than Mark or Index is
 * REJ_UNKNOWN_COMMAND; price must be in (0, maxPrice] (else
 * REJ_INVALID_PRICE); always one EV_PRICE (inst = the command's, account
 * 0). */
static enum reject set_price(struct ref_engine *r, const struct cmd *c)
{
    const struct cmd_set_price *sp = &c->u.set_price;
    if (c->inst >= r->cfg.instruments_count)
        return reject(r, c, REJ_UNKNOWN_SYMBOL);
    if (sp->source != SRC_MARK && sp->source != SRC_INDEX)
        return reject(r, c, REJ_UNKNOWN_COMMAND);
    if (sp->price <= 0 || sp->price > r->cfg.instruments[c->inst].max_px)
        return reject(r, c, REJ_INVALID_PRICE);
    r->price[c->inst][sp->source] = sp->price;
    struct event ev;
    ev_init(r, &ev, EV_PRICE);
    ev.inst = c->inst;
    ev.u.price.source = sp->source;
    ev.u.price.price = sp->price;
    emit(r, &ev);
    return REJ_NONE;
}

/* ---- time (rule 0) ----------------------------------------------------- */

static void time_work(struct ref_engine *r, ms_t prev_ts)
{
    /* a) dead man's switches, (deadline, account) order */
    for (;;) {
        uint32_t who = UINT32_MAX;
        for (uint32_t a = 0; a < r->cfg.accounts_max; a++) {
            ms_t d = r->deadline[a];
            if (d == 0 || d > r->ts)
                continue;
            if (who == UINT32_MAX || d < r->deadline[who])
                who = a;
        }
        if (who == UINT32_MAX)
            break;
        /* READING: firing disarms silently (no EV_CANCEL_AFTER). */
        r->deadline[who] = 0;
        cancel_account(r, who, INST_ALL, SIDE_NONE, CXL_DEAD_MAN);
    }
    /* b) Day orders at 00:00 UTC */
    if (r->ts / MS_PER_DAY > prev_ts / MS_PER_DAY) {
        for (uint32_t i = 0; i < r->n; i++)
            if (r->ord[i].live && r->ord[i].v.tif == TIF_DAY)
                cancel(r, &r->ord[i], CXL_DAY_EXPIRY);
    }
}

static void compact(struct ref_engine *r)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->ord[i].live)
            r->ord[k++] = r->ord[i];
    r->n = k;
}

/* READING: the sequence check comes first (a bad command runs no time work
 * and moves nothing); any other command first records its seq and ts as the
 * previous command's (even when it is then rejected) and runs rule 0, then
 * is validated. Before the first command seq and ts count as 0 (seq 0 is a
 * bad sequence); the first command expires no Day orders. */
enum reject ref_apply(struct ref_engine *r, const struct cmd *c)
{
    r->seq = c->seq;
    r->ts = c->ts;
    if (c->seq <= r->last_seq || c->ts < r->last_ts)
        return reject(r, c, REJ_BAD_SEQUENCE);
    ms_t prev_ts = r->have_prev ? r->last_ts : c->ts;
    r->have_prev = 1;
    r->last_seq = c->seq;
    r->last_ts = c->ts;
    time_work(r, prev_ts);
    compact(r);

    enum reject why;
    switch (c->type) {
    case CMD_NEW_ORDER: why = new_order(r, c); break;
    case CMD_AMEND: why = amend(r, c); break;
    case CMD_CANCEL: why = cancel_one(r, c); break;
    case CMD_CANCEL_ALL: why = cancel_all(r, c); break;
    case CMD_CANCEL_ALL_AFTER: why = cancel_after(r, c); break;
    case CMD_SET_PRICE: why = set_price(r, c); break;
    case CMD_CLOCK: why = REJ_NONE; break;
    default: why = reject(r, c, REJ_UNKNOWN_COMMAND); break;
    }
    if (why == REJ_NONE)
        trigger_pass(r);
    compact(r);
    return why;
}

/* ---- life cycle and reads ---------------------------------------------- */

struct ref_engine *ref_create(const struct engine_config *cfg, engine_sink_fn sink, void *sink_ctx,
                              const struct engine_hooks *hooks)
{
    if (!cfg || !sink || hooks || cfg->instruments_count == 0 || cfg->instruments_count > INSTRUMENTS_MAX ||
        cfg->accounts_max == 0 || cfg->orders_max == 0)
        return NULL;
    for (uint16_t i = 0; i < cfg->instruments_count; i++) {
        const struct engine_instrument *in = &cfg->instruments[i];
        if (in->tick_px <= 0 || in->lot_qty <= 0 || in->max_px <= 0 || in->max_order_qty <= 0)
            return NULL;
    }
    struct ref_engine *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->sink = sink;
    r->ctx = sink_ctx;
    r->cap = cfg->orders_max + 1;
    size_t np = (size_t)cfg->accounts_max * cfg->instruments_count;
    r->ord = calloc(r->cap, sizeof *r->ord);
    r->pos = calloc(np, sizeof *r->pos);
    r->touched = calloc(np, 1);
    r->deadline = calloc(cfg->accounts_max, sizeof *r->deadline);
    r->scratch = calloc(r->cap, sizeof *r->scratch);
    if (!r->ord || !r->pos || !r->touched || !r->deadline || !r->scratch) {
        ref_destroy(r);
        return NULL;
    }
    r->next_id = 1;
    return r;
}

void ref_destroy(struct ref_engine *r)
{
    if (!r)
        return;
    free(r->ord);
    free(r->pos);
    free(r->touched);
    free(r->deadline);
    free(r->scratch);
    free(r);
}

uint32_t ref_orders_live(const struct ref_engine *r)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++)
        k += r->ord[i].live;
    return k;
}

int ref_live_at(const struct ref_engine *r, uint32_t i, struct order_view *out, const char **clordid,
                const char **linkid)
{
    for (uint32_t j = 0; j < r->n; j++) {
        if (!r->ord[j].live)
            continue;
        if (i-- == 0) {
            if (out)
                *out = r->ord[j].v;
            if (clordid)
                *clordid = r->ord[j].clordid;
            if (linkid)
                *linkid = r->ord[j].linkid;
            return 1;
        }
    }
    return 0;
}

int ref_order(const struct ref_engine *r, uint64_t order_id, struct order_view *out)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->ord[i].live && r->ord[i].v.id == order_id) {
            *out = r->ord[i].v;
            return 1;
        }
    return 0;
}

uint64_t ref_next_order_id(const struct ref_engine *r) { return r->next_id; }

qty_t ref_position(const struct ref_engine *r, uint32_t account, uint16_t inst)
{
    if (account >= r->cfg.accounts_max || inst >= r->cfg.instruments_count)
        return 0;
    return r->pos[(size_t)account * r->cfg.instruments_count + inst];
}

px_t ref_price(const struct ref_engine *r, uint16_t inst, enum price_source src)
{
    if (inst >= r->cfg.instruments_count || src >= SRC_COUNT)
        return 0;
    return r->price[inst][src];
}

px_t ref_best(const struct ref_engine *r, uint16_t inst, enum side side)
{
    return best_px(r, inst, (uint8_t)side);
}

uint32_t ref_levels(const struct ref_engine *r, uint16_t inst, enum side side, uint32_t max, px_t *px,
                    qty_t *size)
{
    uint32_t k = 0;
    px_t last = 0; /* levels strictly beyond this one */
    while (k < max) {
        px_t next = 0;
        for (uint32_t i = 0; i < r->n; i++) {
            const struct ref_order *o = &r->ord[i];
            if (!o->live || !o->resting || o->v.inst != inst || o->v.side != side || visible_of(o) == 0)
                continue;
            px_t p = o->v.price;
            if (last != 0 && (side == SIDE_BUY ? p >= last : p <= last))
                continue;
            if (next == 0 || (side == SIDE_BUY ? p > next : p < next))
                next = p;
        }
        if (next == 0)
            break;
        px[k] = next;
        size[k] = level_visible(r, inst, (uint8_t)side, next);
        k++;
        last = next;
    }
    return k;
}

uint32_t ref_open_orders(const struct ref_engine *r, uint32_t account, uint16_t inst)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const struct ref_order *o = &r->ord[i];
        if (o->live && o->v.working && o->v.account == account && o->v.inst == inst)
            k++;
    }
    return k;
}

uint32_t ref_stop_orders(const struct ref_engine *r, uint32_t account, uint16_t inst)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const struct ref_order *o = &r->ord[i];
        if (untriggered_stop(o) && o->v.account == account && o->v.inst == inst)
            k++;
    }
    return k;
}
