/*
 * exchange.c - the margin core around the engine. Rules: exchange.h (M0-M10).
 *
 * State per account and currency (struct wal) caches the sums the hot paths
 * need (cross unrealised PnL, cross position margin and maintenance,
 * isolated margins) and which instruments hold orders; per account and
 * instrument (struct pos) the position and its order aggregates; per engine
 * order slot (struct oslot) what that order contributes to its side's
 * aggregate. Every cache is changed only by delta from the one function that
 * owns it (pos_refresh, isolated-margin moves), and exch_verify() recomputes
 * them all from scratch.
 *
 * Order margin is computed when it is asked for, not on every order event:
 * a position keeps the last figure with the mark it was computed at, and
 * any change of its inputs (an order event, a fill, a new leverage or risk
 * step) only marks it stale (om_get). Nothing the engine does depends on an
 * order margin except the pre-trade check (admit), which needs the new
 * figure anyway and the account's other instruments' figures.
 */
#include "margin/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

/* What x->cur points at between commands. */
static const struct cmd no_cmd;

/* Per account and currency; the balance itself lives in exch.bal (the
 * audit sums every balance after each mark change: a dense array of
 * int64 instead of a 64-byte stride). One cache line. */
struct wal {
    sats_t iso;                               /* sum of isolated margins */
    sats_t cross_pm;                          /* over cross positions: posInit + posComm */
    sats_t cross_upnl, cross_maint;           /* over cross positions */
    uint64_t om_has;                          /* instruments where it has working priced orders */
    sats_t dep, wd;
    sats_t pad_;
};

/* Three cache lines (the array is line-aligned): the first holds all that
 * an order event reads and writes (the order margin and its inputs), the
 * first two all that re-margining on a mark change does. */
struct pos {
    /* line 0: order margin (M3) */
    qty_t qty;
    rate_t im;                            /* from lev and k, by pos_set_mode */
    qty_t bq, sq;                         /* working buy / sell leaves with a price */
    sats_t bv, sv;                        /* their signed values at their limits */
    sats_t om;                            /* order margin at om_mark (om_get) */
    px_t om_mark;                         /* the mark om was computed at; -1 = stale */
    /* line 1: the mark (pos_marks, pos_remark) */
    sats_t cost;                          /* unrealisedCost */
    sats_t mv, upnl, maint;               /* at the mark, by pos_marks */
    sats_t pcomm;                         /* from the cost, by pos_refresh */
    sats_t iso;                           /* isolated margin (leverage > 0) */
    rate_t mm;                            /* from lev and k, by pos_set_mode */
    rate_t lev;                           /* 0 = cross */
    /* line 2: cold */
    sats_t pinit;                         /* from the cost, by pos_refresh */
    int32_t k;                            /* risk-limit step */
    uint32_t li;                          /* index in the instrument's list or NIL */
    sats_t cur_cost, real_cost, real_gross, comm;
    char pad_[16];
};

_Static_assert(sizeof(struct wal) == 64, "struct wal is one cache line");
_Static_assert(sizeof(struct pos) == 192, "struct pos is three cache lines");

/* Half a cache line (the array is line-aligned). */
struct oslot {
    uint64_t id;
    qty_t leaves; /* counted leaves (0 = contributes nothing) */
    px_t px;
    sats_t sv;    /* signed value of leaves at px */
};

struct ist {
    px_t mark;
    rate_t rate, indicative;
    ms_t next_funding;
    i128 prem_sum;
    int64_t prem_n;
    rate_t basis_annual;
    int settled;
    px_t settled_px;
    i128 settle_sum;
    int64_t settle_n;
    uint32_t *list; /* accounts with an open position */
    uint32_t n;
    /* The exact value of one contract at the mark vpc_mark (signed, for a
     * long), floored and ceiled: om_bound's. vpc_mark 0: not computed. */
    px_t vpc_mark;
    sats_t vpc_lo, vpc_hi;
};

struct cand {
    uint32_t account;
    uint8_t cross;   /* 0 isolated (inst), 1 cross (currency) */
    uint16_t which;  /* inst or currency */
};

struct rank {
    int64_t score;
    uint32_t account;
};

struct exch {
    struct exch_config cfg;
    struct engine *eng;
    engine_sink_fn sink;
    void *sink_ctx;
    exch_audit_fail_fn on_fail;
    void *on_fail_ctx;
    uint32_t naccts;
    /* Accounts from acct_hi up have never been named by a command, so hold
     * no money and no position (every balance moves by a command of its
     * account, or by a fill, funding, liquidation or settlement of a
     * position its orders made): the audit's sums stop there. */
    uint32_t acct_hi;
    uint16_t ninst;
    struct wal *w;
    sats_t *bal; /* walletBalance by currency, then account */
    struct pos *p;
    struct oslot *os;
    void *w_mem, *p_mem, *os_mem; /* the blocks w, p and os lie in (zalloc_lines) */
    struct ist is[INSTRUMENTS_MAX];
    px_t index_px[INDICES_MAX];
    sats_t fees[CURRENCIES_MAX], rounding[CURRENCIES_MAX];
    sats_t dep[CURRENCIES_MAX], wd[CURRENCIES_MAX];
    int started;
    uint32_t verify_n;
    ms_t now, next_minute;
    uint64_t last_seq;
    ms_t last_ts;
    const struct cmd *cur; /* the command being applied (for reports), else no_cmd */
    ms_t next_event;       /* next_time_event(), kept by time_start and time_work */
    struct cand *cand;
    uint32_t ncand;
    struct rank *rank;
    uint32_t *small; /* per account: working orders worth less than the spam value */
    uint8_t *spam;   /* per account: marked spam */
    uint32_t liq_owner; /* account + 1 whose liquidation order is being sent, else 0 */
    struct { uint16_t inst; qty_t q; px_t px; sats_t v; } vmemo; /* value_memo's */
};

/* ---- small helpers -------------------------------------------------------- */

static void fatal(const char *what, enum mf_err e)
{
    fprintf(stderr, "perpsim margin: %s failed (%s): stopping\n", what, mf_err_name(e));
    abort();
}

static inline void must(enum mf_err e, const char *what)
{
    if (e != MF_OK)
        fatal(what, e);
}

/* Positions are stored instrument-major and wallets currency-major: a mark
 * change walks one instrument's positions (and their wallets) in account
 * order, and the audit sums one currency's wallets, both as a stream
 * through memory rather than a stride across every account's record. */
static inline struct pos *P(struct exch *x, uint32_t a, uint16_t i)
{
    return &x->p[(size_t)i * x->naccts + a];
}

static inline const struct pos *PC(const struct exch *x, uint32_t a, uint16_t i)
{
    return &x->p[(size_t)i * x->naccts + a];
}

static inline struct wal *W(struct exch *x, uint32_t a, uint8_t cur)
{
    return &x->w[(size_t)cur * x->naccts + a];
}

static inline const struct wal *WC(const struct exch *x, uint32_t a, uint8_t cur)
{
    return &x->w[(size_t)cur * x->naccts + a];
}

static inline sats_t *BAL(struct exch *x, uint32_t a, uint8_t cur)
{
    return &x->bal[(size_t)cur * x->naccts + a];
}

static inline sats_t BALC(const struct exch *x, uint32_t a, uint8_t cur)
{
    return x->bal[(size_t)cur * x->naccts + a];
}

static inline const struct exch_instrument *I(const struct exch *x, uint16_t i)
{
    return &x->cfg.inst[i];
}

static inline qty_t qabs(qty_t q) { return q < 0 ? -q : q; }
static inline sats_t sabs(sats_t v) { return v < 0 ? -v : v; }
static inline sats_t smax(sats_t a, sats_t b) { return a > b ? a : b; }

static sats_t value_slow(const struct exch *x, uint16_t i, qty_t q, px_t px)
{
    sats_t v;
    must(mf_value(&I(x, i)->contract, q, px, &v), "value");
    return v;
}

/* The instruments' contracts were checked when the exchange was made. */
static inline sats_t value(const struct exch *x, uint16_t i, qty_t q, px_t px)
{
    sats_t v;
    if (q == 0)
        return 0;
    if (px > 0 && mf_value_fast_valid(&I(x, i)->contract, q, px, &v))
        return v;
    return value_slow(x, i, q, px);
}

/* value() remembering the last answer: the pre-trade check and the event of
 * the same order ask for the value of the same quantity at the same price. */
static sats_t value_memo(struct exch *x, uint16_t i, qty_t q, px_t px)
{
    if (x->vmemo.q != q || x->vmemo.px != px || x->vmemo.inst != i) {
        x->vmemo.v = value(x, i, q, px);
        x->vmemo.inst = i;
        x->vmemo.q = q;
        x->vmemo.px = px;
    }
    return x->vmemo.v;
}

static sats_t req(sats_t v, rate_t r)
{
    sats_t out;
    must(mf_margin_req_quick(v, r, &out), "margin requirement");
    return out;
}

static void emit(struct exch *x, struct event *ev)
{
    ev->seq = x->cur->seq;
    ev->ts = x->cur->ts;
    x->sink(x->sink_ctx, ev);
}

static void ev_init(struct event *ev, uint8_t type, uint32_t account, uint16_t inst)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->account = account;
    ev->inst = inst;
}

static void emit_simple(struct exch *x, uint8_t type, uint32_t account, uint16_t inst)
{
    struct event ev;
    ev_init(&ev, type, account, inst);
    emit(x, &ev);
}

static void emit_money_cost(struct exch *x, uint32_t account, uint16_t inst, uint8_t kind, uint8_t cur,
                            sats_t amount, qty_t qty, px_t px, rate_t rate, sats_t cost)
{
    struct event ev;
    ev_init(&ev, EV_MONEY, account, inst);
    ev.u.money.kind = kind;
    ev.u.money.currency = cur;
    ev.u.money.amount = amount;
    ev.u.money.balance = *BAL(x, account, cur);
    ev.u.money.qty = qty;
    ev.u.money.px = px;
    ev.u.money.rate_e8 = rate;
    ev.u.money.cost = cost;
    emit(x, &ev);
}

static void emit_money(struct exch *x, uint32_t account, uint16_t inst, uint8_t kind, uint8_t cur,
                       sats_t amount, qty_t qty, px_t px, rate_t rate)
{
    emit_money_cost(x, account, inst, kind, cur, amount, qty, px, rate, 0);
}

static enum reject reject(struct exch *x, const struct cmd *c, enum reject why)
{
    struct event ev;
    ev_init(&ev, EV_REJECTED, c->account, c->inst);
    ev.reason = (uint8_t)why;
    ev.order.account = c->account;
    ev.order.inst = c->inst;
    ev.order.status = ST_REJECTED;
    ev.order.slot = ENGINE_NIL;
    ev.order.display_qty = -1;
    emit(x, &ev);
    return why;
}

/* ---- rates ---------------------------------------------------------------- */

/* IM and MM of a position: its risk tier (mf_tier_rates), and
 * for an isolated position IM = max(tier IM, 1/leverage). */
static void rates_of(const struct exch *x, uint16_t i, const struct pos *p, rate_t *im,
                     rate_t *mm)
{
    const struct exch_instrument *in = I(x, i);
    must(mf_tier_rates(in->im_e8, in->mm_e8, p->k, im, mm), "tier rates");
    if (p->lev > 0) {
        rate_t lim;
        must(mf_im_from_leverage(p->lev, &lim), "leverage");
        if (lim > *im)
            *im = lim;
    }
}

/* Sets the mode of a position (leverage, 0 = cross; risk step) and the
 * rates that follow from it, which every margin figure reads. */
static void pos_set_mode(const struct exch *x, uint16_t i, struct pos *p, rate_t lev, int32_t k)
{
    p->lev = lev;
    p->k = k;
    rates_of(x, i, p, &p->im, &p->mm);
    p->om_mark = -1; /* the order margin follows IM */
}


/* availableMargin (M1) given the account's order margin in cur. */
static inline sats_t available_with(const struct exch *x, uint32_t a, uint8_t cur, sats_t om)
{
    const struct wal *w = WC(x, a, cur);
    return BALC(x, a, cur) - w->iso - w->cross_pm - om + w->cross_upnl;
}

static inline sats_t cross_equity(const struct exch *x, uint32_t a, uint8_t cur)
{
    const struct wal *w = WC(x, a, cur);
    return BALC(x, a, cur) - w->iso + w->cross_upnl;
}

/* ---- the position list of an instrument ------------------------------------ */

static void list_update(struct exch *x, uint32_t a, uint16_t i)
{
    struct pos *p = P(x, a, i);
    struct ist *s = &x->is[i];
    if (p->qty != 0 && p->li == NIL) {
        p->li = s->n;
        s->list[s->n++] = a;
    } else if (p->qty == 0 && p->li != NIL) {
        uint32_t last = s->list[--s->n];
        s->list[p->li] = last;
        P(x, last, i)->li = p->li;
        p->li = NIL;
    }
}

/* ---- re-margining one position (M2) ---------------------------------------- */

/* |v| x r rounded up, as mf_margin_req; 0 for a rate <= 0. */
static inline sats_t ceil_rate(sats_t v, rate_t r)
{
    return r <= 0 || v == 0 ? 0 : req(v, r);
}

/* The figures that move with the mark: markValue, unrealisedPnl and
 * maintenance = MM x |markValue| + posComm + the next funding if the
 * position pays it (the same roundings as mf_maint_margin: each term
 * up). */
static void pos_marks(struct exch *x, uint16_t i, struct pos *p)
{
    const struct exch_instrument *in = I(x, i);
    rate_t mm = p->mm;
    px_t mark = x->is[i].mark;
    p->mv = mark > 0 ? value(x, i, p->qty, mark) : p->cost;
    p->upnl = p->mv - p->cost;
    p->maint = ceil_rate(p->mv, mm) + p->pcomm;
    rate_t fr = in->perpetual && mark > 0 ? x->is[i].rate : 0;
    if ((fr > 0 && p->qty > 0) || (fr < 0 && p->qty < 0))
        p->maint += ceil_rate(p->mv, fr < 0 ? -fr : fr);
}

static inline void cross_add(struct wal *w, const struct pos *p, int sign)
{
    w->cross_upnl += sign * p->upnl;
    w->cross_pm += sign * (p->pinit + p->pcomm);
    w->cross_maint += sign * p->maint;
}

/* Re-margins one position after its cost, mode or the mark changed. */
static void pos_refresh(struct exch *x, uint32_t a, uint16_t i)
{
    struct pos *p = P(x, a, i);
    const struct exch_instrument *in = I(x, i);
    struct wal *w = W(x, a, in->currency);
    int cross = p->lev == 0;
    if (cross)
        cross_add(w, p, -1);
    if (p->qty == 0) {
        p->mv = p->upnl = p->pinit = p->pcomm = p->maint = 0;
    } else {
        p->pinit = req(p->cost, p->im);
        must(mf_close_comm_reserve_quick(p->cost, p->pinit, in->taker_fee_e8, &p->pcomm), "posComm");
        pos_marks(x, i, p);
    }
    if (cross)
        cross_add(w, p, 1);
}

/* Re-margins one open position after only the mark moved. */
static inline void pos_remark(struct exch *x, uint32_t a, uint16_t i)
{
    struct pos *p = P(x, a, i);
    if (p->lev == 0) {
        struct wal *w = W(x, a, I(x, i)->currency);
        sats_t u = p->upnl, m = p->maint;
        pos_marks(x, i, p);
        w->cross_upnl += p->upnl - u;
        w->cross_maint += p->maint - m;
    } else {
        pos_marks(x, i, p);
    }
}

/* ---- order margin (M3) ------------------------------------------------------ */

/* ceil(v x num / den) for v >= 0, 0 <= num <= den, den > 0: in int64 when the
 * product fits, which is every order below ~4.6e18 / qty. */
static inline sats_t ceil_part(sats_t v, qty_t num, qty_t den)
{
    int64_t n;
    if (!__builtin_mul_overflow(v, num, &n) && !__builtin_add_overflow(n, den - 1, &n))
        return n / den;
    return (sats_t)(((i128)v * num + den - 1) / den);
}

/* Order margin from the aggregates (bq, bv) buys and (sq, sv) sells. */
static sats_t om_compute(const struct exch *x, uint16_t i, const struct pos *p, qty_t bq,
                         sats_t bv, qty_t sq, sats_t sv)
{
    if (bq == 0 && sq == 0)
        return 0;
    const struct exch_instrument *in = I(x, i);
    rate_t im = p->im;
    /* Reducing parts are free, pro rata by quantity, rounded up (M3). */
    qty_t rb = p->qty < 0 ? (bq < -p->qty ? bq : -p->qty) : 0;
    qty_t rs = p->qty > 0 ? (sq < p->qty ? sq : p->qty) : 0;
    sats_t bval = sabs(bv), sval = sabs(sv);
    if (rb > 0)
        bval = ceil_part(bval, bq - rb, bq);
    if (rs > 0)
        sval = ceil_part(sval, sq - rs, sq);
    sats_t side = smax(bval, sval);
    sats_t om = req(side, im) + req(side, in->taker_fee_e8 > 0 ? in->taker_fee_e8 : 0);
    px_t mark = x->is[i].mark;
    if (mark > 0) {
        if (bq > 0)
            om += smax(0, bv - value(x, i, bq, mark));
        if (sq > 0)
            om += smax(0, sv - value(x, i, -sq, mark));
    }
    return om;
}

/* An upper bound of om_compute(x, i, p, bq, bv, sq, sv) without its
 * divisions, for the pre-trade check: no reducing part taken off, and the
 * premium through the mark from a lower bound of each side's value at the
 * mark, value(q, mark) >= q x floor(c) for a buy and >= -q x ceil(c) for a
 * sell, c the exact signed value of one long contract at the mark (value
 * rounds to nearest, so it is never below the integer under q x c). 1 with
 * *ub set, or 0 when a product would overflow (the caller computes). */
static int om_bound(struct exch *x, uint16_t i, const struct pos *p, qty_t bq, sats_t bv,
                    qty_t sq, sats_t sv, sats_t *ub)
{
    if (bq == 0 && sq == 0) {
        *ub = 0;
        return 1;
    }
    const struct exch_instrument *in = I(x, i);
    struct ist *s = &x->is[i];
    sats_t side = smax(sabs(bv), sabs(sv)), im_part, fee_part;
    if (!mf_margin_req_fast(side, p->im, &im_part) ||
        !mf_margin_req_fast(side, in->taker_fee_e8 > 0 ? in->taker_fee_e8 : 0, &fee_part))
        return 0;
    sats_t bound = im_part + fee_part; /* each < 2^64 / 1e8 (the fast path's product check): no overflow */
    if (s->mark > 0) {
        if (s->vpc_mark != s->mark) {
            const struct mf_contract *c = &in->contract;
            i128 n = c->kind == MF_INVERSE ? (i128)c->multiplier * PX_SCALE
                                           : (i128)c->multiplier * s->mark;
            i128 d = c->kind == MF_INVERSE ? s->mark : PX_SCALE;
            i128 q = n / d, r = n % d; /* toward zero */
            if (q > INT64_MAX - 1 || q < INT64_MIN + 1)
                return 0;
            s->vpc_lo = (sats_t)(r < 0 ? q - 1 : q);
            s->vpc_hi = (sats_t)(r > 0 ? q + 1 : q);
            s->vpc_mark = s->mark;
        }
        sats_t lo, prem;
        if (bq > 0) {
            if (__builtin_mul_overflow(bq, s->vpc_lo, &lo) || __builtin_sub_overflow(bv, lo, &prem))
                return 0;
            if (prem > 0 && __builtin_add_overflow(bound, prem, &bound))
                return 0;
        }
        if (sq > 0) {
            if (__builtin_mul_overflow(-sq, s->vpc_hi, &lo) || __builtin_sub_overflow(sv, lo, &prem))
                return 0;
            if (prem > 0 && __builtin_add_overflow(bound, prem, &bound))
                return 0;
        }
    }
    *ub = bound;
    return 1;
}

/* The order margin of a's position p in i now: the cached figure while its
 * inputs and the mark are unchanged, else computed again (and kept). */
static sats_t om_get(struct exch *x, uint16_t i, struct pos *p)
{
    px_t mark = x->is[i].mark;
    if (p->om_mark != mark) {
        p->om = om_compute(x, i, p, p->bq, p->bv, p->sq, p->sv);
        p->om_mark = mark;
    }
    return p->om;
}

/* om_get for the reads: computes a stale figure without keeping it. */
static sats_t om_now(const struct exch *x, uint16_t i, const struct pos *p)
{
    return p->om_mark == x->is[i].mark ? p->om : om_compute(x, i, p, p->bq, p->bv, p->sq, p->sv);
}

/* The order margin of account a in currency cur over its instruments with
 * orders, leaving out instrument `skip` (>= INSTRUMENTS_MAX: none). */
static sats_t acct_om(struct exch *x, uint32_t a, uint8_t cur, unsigned skip)
{
    uint64_t m = W(x, a, cur)->om_has;
    if (skip < INSTRUMENTS_MAX)
        m &= ~(UINT64_C(1) << skip);
    sats_t om = 0;
    for (; m; m &= m - 1) {
        uint16_t i = (uint16_t)__builtin_ctzll(m);
        om += om_get(x, i, P(x, a, i));
    }
    return om;
}

static sats_t acct_om_now(const struct exch *x, uint32_t a, uint8_t cur)
{
    sats_t om = 0;
    for (uint64_t m = WC(x, a, cur)->om_has; m; m &= m - 1) {
        uint16_t i = (uint16_t)__builtin_ctzll(m);
        om += om_now(x, i, PC(x, a, i));
    }
    return om;
}

static inline sats_t available(struct exch *x, uint32_t a, uint8_t cur)
{
    return available_with(x, a, cur, acct_om(x, a, cur, INSTRUMENTS_MAX));
}

/* The per-slot record follows every order event: what the order adds to
 * its side's aggregate is its leaves while it is working with a price. The
 * position's order margin goes stale; the wallet's om_has follows whether
 * the position has orders. */
static void order_track(struct exch *x, const struct order_view *o)
{
    if (o->slot == ENGINE_NIL)
        return;
    struct oslot *r = &x->os[o->slot];
    qty_t old_q = r->id == o->id ? r->leaves : 0;
    sats_t old_v = r->id == o->id ? r->sv : 0;
    qty_t new_q = o->working && o->leaves > 0 && o->price > 0 ? o->leaves : 0;
    if (r->id == o->id && new_q == old_q && (new_q == 0 || r->px == o->price))
        return;
    qty_t signed_q = o->side == SIDE_BUY ? new_q : -new_q;
    sats_t new_v = new_q ? value_memo(x, o->inst, signed_q, o->price) : 0;
    struct pos *p = P(x, o->account, o->inst);
    int had = p->bq || p->sq;
    if (o->side == SIDE_BUY) {
        p->bq += new_q - old_q;
        p->bv += new_v - old_v;
    } else {
        p->sq += new_q - old_q;
        p->sv += new_v - old_v;
    }
    if (x->cfg.spam_orders && o->account < x->naccts) {
        sats_t thr = x->cfg.spam_value[I(x, o->inst)->currency];
        int was = old_q > 0 && (old_v < 0 ? -old_v : old_v) < thr;
        int is = new_q > 0 && (new_v < 0 ? -new_v : new_v) < thr;
        x->small[o->account] += (uint32_t)(is - was);
    }
    r->id = o->id;
    r->leaves = new_q;
    r->px = o->price;
    r->sv = new_v;
    p->om_mark = -1;
    if (had != (p->bq || p->sq))
        W(x, o->account, I(x, o->inst)->currency)->om_has ^= UINT64_C(1) << o->inst;
}

/* The engine's events pass through here on their way out. */
static void on_event(void *ctx, const struct event *ev)
{
    struct exch *x = ctx;
    switch (ev->type) {
    case EV_NEW:
    case EV_AMENDED:
    case EV_RESTATED:
    case EV_CANCELED:
    case EV_TRIGGERED:
    case EV_FILL:
        order_track(x, &ev->order);
        break;
    default:
        break;
    }
    x->sink(x->sink_ctx, ev);
}

/* ---- booking a change of position (M2) ------------------------------------- */

/* Posts the isolated margin of a newly opened value v. */
static sats_t iso_post(const struct exch *x, uint16_t i, const struct pos *p, sats_t v)
{
    sats_t init = req(v, p->im), comm;
    must(mf_close_comm_reserve_quick(v, init, I(x, i)->taker_fee_e8, &comm), "isolated posComm");
    return init + comm;
}

static void iso_move(struct exch *x, uint32_t a, uint16_t i, sats_t delta)
{
    P(x, a, i)->iso += delta;
    W(x, a, I(x, i)->currency)->iso += delta;
}

/* Account a acquires dq contracts (signed) of instrument i for value v
 * (value(dq, px) for a fill; an exact transfer value otherwise) and pays
 * fee. Returns the PnL realised (before the fee). The engine's position is
 * the caller's. */
static sats_t book(struct exch *x, uint32_t a, uint16_t i, qty_t dq, sats_t v, sats_t fee)
{
    struct pos *p = P(x, a, i);
    const struct exch_instrument *in = I(x, i);
    sats_t realised = 0;
    if (fee) {
        *BAL(x, a, in->currency) -= fee;
        x->fees[in->currency] += fee;
        p->comm += fee;
    }
    p->cur_cost += v;
    qty_t old = p->qty;
    qty_t open_q = dq;
    sats_t open_v = v;
    if (old != 0 && (old > 0) != (dq > 0)) {
        qty_t closeq = qabs(dq) < qabs(old) ? qabs(dq) : qabs(old);
        sats_t share, vc;
        must(mf_cost_share(p->cost, old, closeq, &share), "cost share");
        vc = closeq == qabs(dq) ? v : (sats_t)((i128)v * closeq / qabs(dq));
        realised = -(share + vc);
        p->cost -= share;
        p->real_cost += share;
        p->real_gross += realised;
        *BAL(x, a, in->currency) += realised;
        if (p->iso) {
            sats_t rel = closeq == qabs(old) ? p->iso : (sats_t)((i128)p->iso * closeq / qabs(old));
            iso_move(x, a, i, -rel);
        }
        p->qty += dq > 0 ? closeq : -closeq;
        open_q = dq > 0 ? dq - closeq : dq + closeq;
        open_v = v - vc;
    }
    if (open_q != 0) {
        p->cost += open_v;
        p->qty += open_q;
        if (p->lev > 0 && a != EXCH_LIQUIDATOR)
            iso_move(x, a, i, iso_post(x, i, p, open_v));
    }
    if (p->qty == 0 && p->iso)
        iso_move(x, a, i, -p->iso);
    list_update(x, a, i);
    pos_refresh(x, a, i);
    p->om_mark = -1; /* the reducing part of its orders changed */
    emit_simple(x, EV_POSITION, a, i);
    return realised;
}

/* M4: the fee rate of one side of a fill. */
static inline rate_t fill_rate(const struct exch_instrument *in, const struct event *f)
{
    if (f->account == EXCH_LIQUIDATOR)
        return 0;
    return f->u.fill.maker && !f->u.fill.pays_taker ? in->maker_fee_e8 : in->taker_fee_e8;
}

static void on_fill(void *ctx, const struct event *m, const struct event *t)
{
    struct exch *x = ctx;
    uint16_t i = m->inst;
    const struct exch_instrument *in = I(x, i);
    qty_t q = m->u.fill.last_qty;
    qty_t dqm = m->order.side == SIDE_BUY ? q : -q;
    sats_t vm = value(x, i, dqm, m->u.fill.last_px);
    sats_t fm = 0, ft = 0;
    if (m->account != EXCH_LIQUIDATOR)
        must(mf_fee_quick(vm, fill_rate(in, m), &fm), "fee");
    if (t->account != EXCH_LIQUIDATOR)
        must(mf_fee_quick(-vm, fill_rate(in, t), &ft), "fee");
    book(x, m->account, i, dqm, vm, fm);
    book(x, t->account, i, -dqm, -vm, ft);
}

/* ---- the pre-trade check (M3) ------------------------------------------- */

static enum reject admit(void *ctx, const struct order_view *o)
{
    struct exch *x = ctx;
    if (o->account == EXCH_LIQUIDATOR || o->account + 1 == x->liq_owner)
        return REJ_NONE; /* the liquidation engine's orders are never refused for margin */
    uint16_t i = o->inst;
    if (x->is[i].settled)
        return REJ_INSTRUMENT_CLOSED;
    struct pos *p = P(x, o->account, i);
    px_t px = o->price;
    if (px == 0) {
        /* Market: the worse of mark and the best opposite price. */
        px_t mark = x->is[i].mark;
        px_t best = engine_best(x->eng, i, o->side == SIDE_BUY ? SIDE_SELL : SIDE_BUY);
        if (o->side == SIDE_BUY)
            px = mark > best ? mark : best;
        else
            px = mark > 0 && (best == 0 || mark < best) ? mark : best;
        if (px == 0)
            return REJ_NONE; /* nothing to trade against and nothing to value it at */
    }
    const struct oslot *r = o->slot != ENGINE_NIL ? &x->os[o->slot] : NULL;
    qty_t old_q = r && r->id == o->id ? r->leaves : 0;
    sats_t old_v = r && r->id == o->id ? r->sv : 0;
    qty_t nq = o->leaves;
    sats_t nv = value_memo(x, i, o->side == SIDE_BUY ? nq : -nq, px);
    qty_t bq = p->bq, sq = p->sq;
    sats_t bv = p->bv, sv = p->sv;
    if (o->side == SIDE_BUY) {
        bq += nq - old_q;
        bv += nv - old_v;
    } else {
        sq += nq - old_q;
        sv += nv - old_v;
    }
    /* Admitted when it does not raise the order margin (at the mark now:
     * a stop triggered by a mark move is judged at the new mark), or else
     * when it keeps within the risk limit and leaves available >= 0. Asked
     * in the other order, the first test needs the position's present
     * order margin only when the second fails; and the second is first
     * asked of an upper bound of the new order margin, which is cheap, and
     * decides for any account not near its limit. */
    const struct exch_instrument *in = I(x, i);
    sats_t limit = in->risk_limit + (sats_t)p->k * in->risk_step;
    int risk_ok = sabs(p->cost) + smax(sabs(bv), sabs(sv)) <= limit;
    sats_t om;
    if (risk_ok) {
        sats_t free = available_with(x, o->account, in->currency,
                                     acct_om(x, o->account, in->currency, i));
        if (om_bound(x, i, p, bq, bv, sq, sv, &om) && free - om >= 0) {
#ifdef PERPSIM_CHECKS
            if (om_compute(x, i, p, bq, bv, sq, sv) > om)
                fatal("order margin above its bound", MF_ERR_RANGE);
#endif
            return REJ_NONE;
        }
        om = om_compute(x, i, p, bq, bv, sq, sv);
        if (free - om >= 0)
            return REJ_NONE;
    } else {
        om = om_compute(x, i, p, bq, bv, sq, sv);
    }
    if (om <= om_get(x, i, p))
        return REJ_NONE;
    return risk_ok ? REJ_INSUFFICIENT_BALANCE : REJ_RISK_LIMIT_EXCEEDED;
}

/* ---- engine sub-commands -------------------------------------------------- */

static enum reject sub(struct exch *x, struct cmd *c)
{
    c->seq = x->cur->seq;
    c->ts = x->cur->ts;
    return engine_apply_within(x->eng, c);
}

static void cancel_orders(struct exch *x, uint32_t a, uint16_t i)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_CANCEL_ALL;
    c.account = a;
    c.inst = i;
    c.u.cancel_all.inst = i;
    c.u.cancel_all.reason = CXL_LIQUIDATION;
    sub(x, &c);
}

static void engine_pos_sync(struct exch *x, uint32_t a, uint16_t i)
{
    engine_position_set(x->eng, a, i, P(x, a, i)->qty);
}

/* ---- liquidation, insurance, ADL (M6) ------------------------------------ */

/* The price at which qty contracts are worth v, rounded to the tick toward
 * `up` (1) or down (0), clamped to the instrument's range; beyond the range
 * (no such positive price) the bound in that direction. Callers pass
 * up = (qty > 0): the price is the limit of closing qty without realising
 * below v - cost, i.e. with value(qty, px) >= v. Without a positive
 * solution that either holds at every price (the bound returned is then
 * right) or at none (px_for_value_none; the bound returned is not). */
static px_t px_for_value(const struct exch *x, uint16_t i, qty_t qty, sats_t v, int up)
{
    const struct engine_instrument *ei = &x->cfg.engine.instruments[i];
    px_t px, t;
    if (mf_avg_entry_px(&I(x, i)->contract, qty, v, &px) != MF_OK)
        return up ? ei->tick_px : ei->max_px;
    must(mf_px_to_tick(px, ei->tick_px, up ? MF_ROUND_UP : MF_ROUND_DOWN, &t), "tick");
    if (t < ei->tick_px)
        t = ei->tick_px;
    if (t > ei->max_px)
        t = ei->max_px;
    return t;
}

/* Whether no positive price has value(qty, px) >= v: value(qty, px) has
 * the sign of qty x multiplier at every price (formula.h), so when that is
 * negative and v is not, every price is short of v. (When it is positive
 * and v is not, every price reaches v.) */
static int px_for_value_none(const struct exch *x, uint16_t i, qty_t qty, sats_t v)
{
    return (qty < 0) != (I(x, i)->contract.multiplier < 0) && v >= 0;
}

static int64_t adl_score(const struct exch *x, uint32_t a, uint16_t i)
{
    const struct pos *p = PC(x, a, i);
    sats_t equity = p->lev > 0 ? p->iso + p->upnl
                               : cross_equity(x, a, I(x, i)->currency);
    if (equity < 1)
        equity = 1;
    /* The bankruptcy value is the mark value moved against the position by
     * its equity: the sign of "against" is the sign of value's slope. */
    sats_t bv = p->mv - equity;
    int64_t score;
    if (mf_adl_score(p->mv, p->cost, bv, &score) != MF_OK)
        return INT64_MIN;
    return score;
}

static int rank_cmp(const void *pa, const void *pb)
{
    const struct rank *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->account < b->account ? -1 : a->account > b->account;
}

static void adl(struct exch *x, uint16_t i)
{
    struct pos *lp = P(x, EXCH_LIQUIDATOR, i);
    if (lp->qty == 0)
        return;
    struct ist *s = &x->is[i];
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->n; k++) {
        uint32_t a = s->list[k];
        if (a == EXCH_LIQUIDATOR || (P(x, a, i)->qty > 0) == (lp->qty > 0))
            continue;
        x->rank[n].account = a;
        x->rank[n].score = adl_score(x, a, i);
        n++;
    }
    qsort(x->rank, n, sizeof(*x->rank), rank_cmp);
    uint8_t cur = I(x, i)->currency;
    for (uint32_t k = 0; k < n && lp->qty != 0; k++) {
        uint32_t a = x->rank[k].account;
        cancel_orders(x, a, i);
        struct pos *p = P(x, a, i);
        if (p->qty == 0)
            continue;
        qty_t take = qabs(p->qty) < qabs(lp->qty) ? qabs(p->qty) : qabs(lp->qty);
        sats_t share;
        must(mf_cost_share(lp->cost, lp->qty, take, &share), "adl share");
        qty_t dq = lp->qty > 0 ? -take : take; /* the liquidator's change */
        px_t px = px_for_value(x, i, -dq, share, lp->qty > 0);
        book(x, EXCH_LIQUIDATOR, i, dq, -share, 0);
        sats_t before = *BAL(x, a, cur);
        book(x, a, i, -dq, share, 0);
        engine_pos_sync(x, EXCH_LIQUIDATOR, i);
        engine_pos_sync(x, a, i);
        emit_money_cost(x, a, i, MK_DELEVERAGE, cur, *BAL(x, a, cur) - before, -dq, px, x->rank[k].score,
                        share);
    }
}

/* Sends the liquidation engine's limit order (as a sub-command of the
 * command being applied) for account a. */
static void send_limit(struct exch *x, uint32_t a, uint16_t i, uint8_t side, uint8_t tif,
                       uint16_t exec_inst, qty_t qty, px_t px)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_NEW_ORDER;
    c.account = a;
    c.inst = i;
    c.u.new_order.has = HAS_QTY | HAS_PRICE;
    c.u.new_order.side = side;
    c.u.new_order.ord_type = ORD_LIMIT;
    c.u.new_order.tif = tif;
    c.u.new_order.exec_inst = exec_inst;
    c.u.new_order.qty = qty;
    c.u.new_order.price = px;
    sub(x, &c);
}

/* The liquidator works its position in i: one IOC limit at the worst price
 * the fund can pay for (M6 c), then ADL for the rest (M6 d). */
static void work(struct exch *x, uint16_t i)
{
    struct pos *lp = P(x, EXCH_LIQUIDATOR, i);
    if (lp->qty == 0)
        return;
    const struct engine_instrument *ei = &x->cfg.engine.instruments[i];
    uint8_t cur = I(x, i)->currency;
    sats_t fund0 = *BAL(x, EXCH_LIQUIDATOR, cur);
    sats_t afford = fund0 > 0 ? fund0 : 0;
    int is_long = lp->qty > 0;
    px_t px = px_for_value(x, i, lp->qty, lp->cost - afford, is_long);
    /* A position taken over past its bankruptcy by more than the fund holds
     * (a cross account's negative equity shared onto a short quanto, or a
     * long inverse, can leave a cost no positive price closes within the
     * fund) has no price the fund can pay for: send nothing (px_for_value's
     * bound would be any price at all), ADL closes it at its cost. */
    int payable = !px_for_value_none(x, i, lp->qty, lp->cost - afford);
    while (payable && lp->qty != 0) {
        qty_t q = qabs(lp->qty);
        if (q > ei->max_order_qty)
            q = ei->max_order_qty - ei->max_order_qty % ei->lot_qty;
        qty_t before = lp->qty;
        send_limit(x, EXCH_LIQUIDATOR, i, is_long ? SIDE_SELL : SIDE_BUY, TIF_IOC, 0, q, px);
        if (lp->qty == before)
            break; /* nothing more to take within the price */
        if (qabs(lp->qty) > 0 && qabs(before) - qabs(lp->qty) < q)
            break; /* the order was not filled whole: the book is exhausted */
    }
    sats_t fund1 = *BAL(x, EXCH_LIQUIDATOR, cur);
    if (fund1 != fund0)
        emit_money(x, EXCH_LIQUIDATOR, i, MK_INSURANCE, cur, fund1 - fund0, 0, px, 0);
    adl(x, i);
}

/* Takes account a's position in i over at the value that costs the owner
 * exactly `loss` (M6 b). */
static void takeover(struct exch *x, uint32_t a, uint16_t i, sats_t loss)
{
    struct pos *p = P(x, a, i);
    qty_t q = p->qty;
    if (q == 0)
        return;
    uint8_t cur = I(x, i)->currency;
    sats_t v = p->cost - loss;
    px_t bpx = px_for_value(x, i, q, v, q > 0);
    sats_t before = *BAL(x, a, cur);
    book(x, a, i, -q, -v, 0);
    book(x, EXCH_LIQUIDATOR, i, q, v, 0);
    engine_pos_sync(x, a, i);
    engine_pos_sync(x, EXCH_LIQUIDATOR, i);
    emit_money(x, a, i, MK_LIQUIDATION, cur, *BAL(x, a, cur) - before, q, bpx, 0);
}

static int iso_below(const struct exch *x, uint32_t a, uint16_t i)
{
    const struct pos *p = PC(x, a, i);
    return p->qty != 0 && p->lev > 0 && p->iso + p->upnl < p->maint;
}

static int cross_below(const struct exch *x, uint32_t a, uint8_t cur)
{
    const struct wal *w = WC(x, a, cur);
    return w->cross_maint > 0 && cross_equity(x, a, cur) < w->cross_maint;
}

/* ---- risk-tier step-down (M6 a) --------------------------------------------- */

/* The lowest risk step whose limit holds the risk value v. */
static int32_t step_for(const struct exch *x, uint16_t i, sats_t v)
{
    const struct exch_instrument *in = I(x, i);
    int64_t k;
    must(mf_risk_step(in->risk_limit, in->risk_step, v, &k), "risk step");
    return k > RISK_STEPS_MAX ? RISK_STEPS_MAX : (int32_t)k;
}

/* Risk value of a position with its orders that could increase it, as the
 * pre-trade check measures it. */
static sats_t risk_value(const struct pos *p)
{
    return sabs(p->cost) + smax(sabs(p->bv), sabs(p->sv));
}

/* Lowers the risk step of a's position in i to k when k is lower: smaller
 * margin rates, the isolated margin stays posted. */
static void step_down(struct exch *x, uint32_t a, uint16_t i, int32_t k)
{
    struct pos *p = P(x, a, i);
    if (k >= p->k)
        return;
    pos_set_mode(x, i, p, p->lev, k);
    pos_refresh(x, a, i);
    emit_simple(x, EV_POSITION, a, i);
}

/* The equity backing a's position in i: its isolated margin and PnL, or the
 * account's whole cross equity. */
static sats_t backing(const struct exch *x, uint32_t a, uint16_t i)
{
    const struct pos *p = PC(x, a, i);
    return p->lev > 0 ? p->iso + p->upnl : cross_equity(x, a, I(x, i)->currency);
}

/* Sends a FillOrKill for the part of a's position in i above the limit of
 * step k, at the position's bankruptcy price, on the owner's behalf (no
 * margin check, ReduceOnly); on a fill the position steps down to the tier
 * of what is left. Returns 1 when it filled. */
static int reduce_to_step(struct exch *x, uint32_t a, uint16_t i, int32_t k)
{
    struct pos *p = P(x, a, i);
    const struct exch_instrument *in = I(x, i);
    const struct engine_instrument *ei = &x->cfg.engine.instruments[i];
    sats_t equity = backing(x, a, i);
    if (p->qty == 0 || equity <= 0)
        return 0;
    sats_t lim = in->risk_limit + (sats_t)k * in->risk_step, c = sabs(p->cost);
    qty_t q = qabs(p->qty);
    qty_t keep = c <= lim ? q : (qty_t)((i128)q * lim / c);
    keep -= keep % ei->lot_qty;
    qty_t dq = q - keep;
    if (dq <= 0 || dq > ei->max_order_qty)
        return 0;
    /* Bankruptcy: the position's value less the equity behind it. */
    px_t bpx = px_for_value(x, i, p->qty, p->mv - equity, p->qty > 0);
    qty_t before = p->qty;
    x->liq_owner = a + 1;
    send_limit(x, a, i, p->qty > 0 ? SIDE_SELL : SIDE_BUY, TIF_FOK, EXEC_REDUCE_ONLY, dq, bpx);
    x->liq_owner = 0;
    if (p->qty == before)
        return 0;
    step_down(x, a, i, step_for(x, i, sabs(p->cost)));
    return 1;
}

/* The engine's market_bound hook (BitMEX: a Market order fills until
 * done or until the bankruptcy price would be crossed): an
 * order that reduces a position stops at that position's bankruptcy price,
 * so closing into a thin book never takes more than the equity behind the
 * position (isolated: its margin). Orders that open or add were checked by
 * admit() and have no bound. */
static px_t market_bound(void *ctx, uint32_t a, uint16_t i, uint8_t side)
{
    struct exch *x = ctx;
    if (a == EXCH_LIQUIDATOR || a >= x->naccts || i >= x->ninst)
        return 0;
    const struct pos *p = PC(x, a, i);
    if (p->qty == 0 || (p->qty > 0) == (side == SIDE_BUY))
        return 0;
    return px_for_value(x, i, p->qty, p->mv - backing(x, a, i), p->qty > 0);
}

/* Liquidation of an isolated position (M6 in exchange.h): a position
 * above the lowest risk tier first drops to the tier of its position and
 * orders, then its orders are canceled and it drops to the tier of the
 * position, then FillOrKill orders reduce it a tier at a time; whatever is
 * still below maintenance is taken over at the bankruptcy price. */
/* EV_LIQUIDATING: what was found, before anything is done. */
static void emit_liquidating(struct exch *x, uint32_t a, uint16_t i, uint8_t cur, int cross, int end)
{
    struct event ev;
    ev_init(&ev, EV_LIQUIDATING, a, i);
    ev.u.liq.cross = (uint8_t)cross;
    ev.u.liq.end = (uint8_t)end;
    ev.u.liq.currency = cur;
    if (cross) {
        ev.u.liq.equity = cross_equity(x, a, cur);
        ev.u.liq.maint = WC(x, a, cur)->cross_maint;
    } else {
        const struct pos *p = PC(x, a, i);
        ev.u.liq.equity = p->iso + p->upnl;
        ev.u.liq.maint = p->maint;
        ev.u.liq.qty = p->qty;
        ev.u.liq.mark_px = x->is[i].mark;
        ev.u.liq.risk_limit = I(x, i)->risk_limit + (sats_t)p->k * I(x, i)->risk_step;
    }
    emit(x, &ev);
}

static void iso_steps(struct exch *x, uint32_t a, uint16_t i)
{
    struct pos *p = P(x, a, i);
    step_down(x, a, i, step_for(x, i, risk_value(p)));
    if (!iso_below(x, a, i))
        return;
    cancel_orders(x, a, i);
    step_down(x, a, i, step_for(x, i, sabs(p->cost)));
    while (iso_below(x, a, i) && p->k > 0 && reduce_to_step(x, a, i, p->k - 1))
        ;
    if (!iso_below(x, a, i))
        return;
    takeover(x, a, i, p->iso);
    work(x, i);
}

static void liquidate_iso(struct exch *x, uint32_t a, uint16_t i)
{
    if (!iso_below(x, a, i))
        return;
    emit_liquidating(x, a, i, I(x, i)->currency, 0, 0);
    iso_steps(x, a, i);
    emit_liquidating(x, a, i, I(x, i)->currency, 0, 1);
}

static void cross_steps(struct exch *x, uint32_t a, uint8_t cur)
{
    /* The same tiers as liquidate_iso, over every cross position. */
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->currency == cur && P(x, a, i)->lev == 0)
            step_down(x, a, i, step_for(x, i, risk_value(P(x, a, i))));
    if (!cross_below(x, a, cur))
        return;
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->currency == cur)
            cancel_orders(x, a, i);
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->currency == cur && P(x, a, i)->lev == 0)
            step_down(x, a, i, step_for(x, i, sabs(P(x, a, i)->cost)));
    for (uint16_t i = 0; i < x->ninst && cross_below(x, a, cur); i++) {
        struct pos *p = P(x, a, i);
        if (I(x, i)->currency != cur || p->lev != 0)
            continue;
        while (cross_below(x, a, cur) && p->k > 0 && reduce_to_step(x, a, i, p->k - 1))
            ;
    }
    if (!cross_below(x, a, cur))
        return;
    struct wal *w = W(x, a, cur);
    sats_t equity = cross_equity(x, a, cur), total = w->cross_maint, given = 0;
    uint16_t last = 0;
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->currency == cur && P(x, a, i)->qty != 0 && P(x, a, i)->lev == 0)
            last = i;
    /* Share the equity over the cross positions by maintenance; the last
     * takes the remainder so the shares sum exactly. */
    sats_t share[INSTRUMENTS_MAX] = {0};
    for (uint16_t i = 0; i < x->ninst; i++) {
        struct pos *p = P(x, a, i);
        if (I(x, i)->currency != cur || p->qty == 0 || p->lev != 0)
            continue;
        share[i] = i == last ? equity - given : (sats_t)((i128)equity * p->maint / total);
        given += share[i];
    }
    for (uint16_t i = 0; i < x->ninst; i++) {
        struct pos *p = P(x, a, i);
        if (I(x, i)->currency != cur || p->qty == 0 || p->lev != 0)
            continue;
        /* Owner's realised = upnl - share: loss = cost - (mv - share). */
        takeover(x, a, i, p->cost - (p->mv - share[i]));
    }
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->currency == cur)
            work(x, i);
}

static void liquidate_cross(struct exch *x, uint32_t a, uint8_t cur)
{
    if (!cross_below(x, a, cur))
        return;
    emit_liquidating(x, a, 0, cur, 1, 0);
    cross_steps(x, a, cur);
    emit_liquidating(x, a, 0, cur, 1, 1);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->account != b->account)
        return a->account < b->account ? -1 : 1;
    if (a->cross != b->cross)
        return a->cross < b->cross ? -1 : 1;
    return (a->which > b->which) - (a->which < b->which);
}

/* Adds account a to the candidates when its position in i (isolated) or
 * its cross account in cur is below maintenance; the liquidator never is. */
static void cand_check(struct exch *x, uint32_t a, uint16_t i, uint8_t cur)
{
    const struct pos *p = PC(x, a, i);
    if (a == EXCH_LIQUIDATOR || !(p->lev > 0 ? iso_below(x, a, i) : cross_below(x, a, cur)))
        return;
    struct cand *c = &x->cand[x->ncand++];
    c->account = a;
    c->cross = p->lev == 0;
    c->which = p->lev > 0 ? i : cur;
}

/* Liquidates the collected candidates in ascending account order (M6);
 * each is checked again first, as earlier ones may have changed things. */
static void liquidate_candidates(struct exch *x)
{
    if (x->ncand == 0)
        return;
    qsort(x->cand, x->ncand, sizeof(*x->cand), cand_cmp);
    uint32_t n = x->ncand;
    for (uint32_t k = 0; k < n; k++) {
        const struct cand *c = &x->cand[k];
        if (k > 0 && !cand_cmp(c, c - 1))
            continue;
        if (c->cross)
            liquidate_cross(x, c->account, (uint8_t)c->which);
        else
            liquidate_iso(x, c->account, c->which);
    }
}

/* Collects the accounts below maintenance among the positions of
 * instrument i (INST_ALL: every instrument) and liquidates them. */
static void liq_scan(struct exch *x, uint16_t only)
{
    x->ncand = 0;
    for (uint16_t i = 0; i < x->ninst; i++) {
        if (only != INST_ALL && i != only)
            continue;
        const struct ist *s = &x->is[i];
        uint8_t cur = I(x, i)->currency;
        for (uint32_t k = 0; k < s->n; k++)
            cand_check(x, s->list[k], i, cur);
    }
    liquidate_candidates(x);
}

/* Liquidates account a if a change of its own (leverage, risk step) left
 * its isolated position in i or its cross account below maintenance; no
 * other account's margin moved, so no other needs a look. */
static void liq_check_account(struct exch *x, uint32_t a, uint16_t i)
{
    uint8_t cur = I(x, i)->currency;
    x->ncand = 0;
    cand_check(x, a, i, cur);
    if (P(x, a, i)->lev > 0 && cross_below(x, a, cur) && a != EXCH_LIQUIDATOR) {
        struct cand *c = &x->cand[x->ncand++];
        c->account = a;
        c->cross = 1;
        c->which = cur;
    }
    liquidate_candidates(x);
}

/* ---- prices (M5) ---------------------------------------------------------- */

/* Re-margins every open position of i after a mark change, collecting the
 * ones now below maintenance (M6) in the same pass; returns how many. */
static uint32_t remargin(struct exch *x, uint16_t i)
{
    struct ist *s = &x->is[i];
    uint8_t cur = I(x, i)->currency;
    x->ncand = 0;
    for (uint32_t k = 0; k < s->n; k++) {
        uint32_t a = s->list[k];
        pos_remark(x, a, i);
        cand_check(x, a, i, cur);
    }
    return x->ncand; /* order margins follow the mark when asked for (om_get) */
}

static void audit_now(struct exch *x);

/* The engine's copy of a mark or index price (its triggers and pegs). */
static void price_to_engine(struct exch *x, uint16_t i, uint8_t source, px_t px)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_SET_PRICE;
    c.inst = i;
    c.u.set_price.source = source;
    c.u.set_price.price = px;
    sub(x, &c);
}

/* The mark from the index (a no-op when it has not moved, unless always:
 * the rates behind the margins changed). */
static void mark_from_index(struct exch *x, uint16_t i, int always)
{
    const struct exch_instrument *in = I(x, i);
    struct ist *s = &x->is[i];
    px_t index = x->index_px[in->index];
    if (index <= 0 || s->settled)
        return;
    px_t mark;
    if (in->perpetual) {
        ms_t until = s->next_funding - x->now;
        if (until < 0)
            until = 0;
        must(mf_perp_fair_px(index, s->rate, until, in->funding_interval_ms, &mark), "fair price");
    } else {
        ms_t t = in->expiry_ms - x->now;
        must(mf_futures_fair_px(index, s->basis_annual, t > 0 ? t : 0, &mark), "futures fair");
    }
    if (mark == s->mark && !always)
        return;
    if (mark != s->mark) {
        s->mark = mark;
        price_to_engine(x, i, SRC_MARK, mark);
    }
    uint32_t below = remargin(x, i);
    emit_simple(x, EV_INSTRUMENT, 0, i);
    if (below)
        liquidate_candidates(x);
    audit_now(x);
}

/* The average price of taking `notional` (settlement units) from one side
 * of the visible book, or 0 when the side is not deep enough. */
static px_t impact_px(struct exch *x, uint16_t i, enum side side, sats_t notional)
{
    enum { DEPTH = 64 };
    px_t px[DEPTH];
    qty_t sz[DEPTH];
    uint32_t n = engine_levels(x->eng, i, side, DEPTH, px, sz);
    qty_t q = 0;
    sats_t v = 0;
    for (uint32_t k = 0; k < n; k++) {
        sats_t lv = sabs(value(x, i, sz[k], px[k]));
        if (v + lv >= notional) {
            /* the part of this level still needed, rounded up to a contract */
            qty_t part = (qty_t)(((i128)(notional - v) * sz[k] + lv - 1) / lv);
            if (part < 1)
                part = 1;
            q += part;
            v += sabs(value(x, i, part, px[k]));
            px_t out;
            if (mf_avg_entry_px(&I(x, i)->contract, q,
                                I(x, i)->contract.kind == MF_INVERSE ? -v : v, &out) != MF_OK)
                return 0;
            return out;
        }
        q += sz[k];
        v += lv;
    }
    return 0;
}

static void sample_minute(struct exch *x, uint16_t i)
{
    const struct exch_instrument *in = I(x, i);
    struct ist *s = &x->is[i];
    px_t index = x->index_px[in->index];
    if (s->settled || index <= 0 || s->mark <= 0)
        return;
    px_t bid = impact_px(x, i, SIDE_BUY, in->impact_notional);
    px_t ask = impact_px(x, i, SIDE_SELL, in->impact_notional);
    if (in->perpetual) {
        rate_t basis, prem;
        ms_t until = s->next_funding - x->now;
        must(mf_funding_basis(s->rate, until > 0 ? until : 0, in->funding_interval_ms, &basis),
             "funding basis");
        /* A side without depth adds no premium: use the mark for it. */
        must(mf_premium_index(bid ? bid : s->mark, ask ? ask : s->mark, s->mark, index, basis,
                              &prem),
             "premium index");
        s->prem_sum += prem;
        s->prem_n++;
        rate_t p = (rate_t)(s->prem_sum / s->prem_n);
        must(mf_funding_rate(p, in->funding_interest_e8, in->im_e8, in->mm_e8, &s->indicative),
             "funding rate");
    } else {
        ms_t t = in->expiry_ms - x->now;
        if (bid && ask && t > 0 && mf_futures_basis_updatable(bid, ask, in->mm_e8))
            must(mf_futures_basis_rate(bid, ask, index, t, &s->basis_annual), "basis");
        if (t <= SETTLE_WINDOW_MS) {
            s->settle_sum += index;
            s->settle_n++;
        }
    }
}

/* ---- funding (M7) and settlement (M8) ------------------------------------- */

static void funding(struct exch *x, uint16_t i)
{
    const struct exch_instrument *in = I(x, i);
    struct ist *s = &x->is[i];
    uint8_t cur = in->currency;
    sats_t paid = 0, received = 0;
    rate_t rate = s->rate;
    if (s->mark > 0 && rate != 0) {
        for (uint32_t k = 0; k < s->n; k++) {
            uint32_t a = s->list[k];
            struct pos *p = P(x, a, i);
            sats_t pay;
            must(mf_funding_payment(&in->contract, p->qty, s->mark, rate, &pay), "funding");
            if (pay == 0)
                continue;
            *BAL(x, a, cur) -= pay;
            x->rounding[cur] += pay;
            p->comm += pay;
            if (p->lev > 0 && a != EXCH_LIQUIDATOR) {
                sats_t d = pay > p->iso ? p->iso : pay;
                iso_move(x, a, i, -d);
            }
            if (pay > 0)
                paid += pay;
            else
                received -= pay;
            emit_money(x, a, i, MK_FUNDING, cur, -pay, p->qty, s->mark, rate);
        }
    }
    /* The rate for the next interval: from the samples of the one ended. */
    rate_t p = s->prem_n ? (rate_t)(s->prem_sum / s->prem_n) : 0;
    int64_t n_samples = s->prem_n;
    must(mf_funding_rate(p, in->funding_interest_e8, in->im_e8, in->mm_e8, &s->rate),
         "funding rate");
    s->indicative = s->rate;
    s->prem_sum = 0;
    s->prem_n = 0;
    s->next_funding += in->funding_interval_ms;
    struct event ev;
    ev_init(&ev, EV_FUNDING, 0, i);
    ev.u.funding.mark_px = s->mark;
    ev.u.funding.rate_e8 = rate;
    ev.u.funding.next_rate_e8 = s->rate;
    ev.u.funding.paid = paid;
    ev.u.funding.received = received;
    ev.u.funding.premium_e8 = p;
    ev.u.funding.samples = n_samples;
    ev.u.funding.index_px = x->index_px[in->index];
    emit(x, &ev);
    for (uint32_t k = 0; k < s->n; k++)
        pos_remark(x, s->list[k], i);
    /* The instrument's new fundingTimestamp and rate: its row changes even
     * when the mark does not (a new rate of 0 leaves it at the index). */
    emit_simple(x, EV_INSTRUMENT, 0, i);
}

static void settle(struct exch *x, uint16_t i)
{
    const struct exch_instrument *in = I(x, i);
    struct ist *s = &x->is[i];
    uint8_t cur = in->currency;
    for (uint32_t a = 0; a < x->naccts; a++) {
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.type = CMD_CANCEL_ALL;
        c.account = a;
        c.u.cancel_all.inst = i;
        sub(x, &c);
    }
    px_t spx = s->settle_n ? (px_t)(s->settle_sum / s->settle_n) : s->mark;
    if (spx <= 0)
        spx = x->index_px[in->index];
    s->settled_px = spx;
    s->settled = 1;
    while (s->n > 0) {
        uint32_t a = s->list[s->n - 1];
        struct pos *p = P(x, a, i);
        qty_t q = p->qty;
        sats_t v = spx > 0 ? value(x, i, q, spx) : p->cost;
        sats_t fee = 0;
        if (a != EXCH_LIQUIDATOR)
            must(mf_fee(v, in->settle_fee_e8, &fee), "settlement fee");
        sats_t before = *BAL(x, a, cur);
        book(x, a, i, -q, -v, fee);
        /* value(q) of one position is rounded alone, so the settlement
         * values need not sum to zero; the rounding account takes the
         * residue (M9: wallets - open costs is what is conserved). */
        x->rounding[cur] -= v;
        engine_pos_sync(x, a, i);
        emit_money(x, a, i, MK_SETTLEMENT, cur, *BAL(x, a, cur) - before, q, spx,
                   in->settle_fee_e8);
    }
    emit_simple(x, EV_INSTRUMENT, 0, i);
}

static ms_t first_funding_after(ms_t t, ms_t interval)
{
    ms_t base = t - ((t % MS_PER_DAY) + MS_PER_DAY) % MS_PER_DAY + FUNDING_ANCHOR_MS - MS_PER_DAY;
    while (base <= t)
        base += interval;
    return base;
}

/* ---- the spam rule (exch_config.spam_orders) ---------------------------------- */

/* x->spam's bits. */
#define SPAM_MARKED 1
#define SPAM_EXEMPT 2 /* never reviewed (exch_spam_exempt) */

/* The day's review: marked with spam_orders small working orders or more,
 * cleared below. */
static void spam_review(struct exch *x)
{
    if (!x->cfg.spam_orders)
        return;
    for (uint32_t a = 1; a < x->acct_hi; a++)
        if (!(x->spam[a] & SPAM_EXEMPT))
            x->spam[a] = x->small[a] >= x->cfg.spam_orders ? SPAM_MARKED : 0;
}

/* A new order of a spam account worth less than the spam value: a resting
 * type made hidden (in *h, returned), a Post-Only one refused (NULL).
 * Otherwise c itself. */
static const struct cmd *spam_gate(struct exch *x, const struct cmd *c, struct cmd *h)
{
    const struct cmd_new_order *n = &c->u.new_order;
    if (!x->cfg.spam_orders || c->account >= x->naccts || !(x->spam[c->account] & SPAM_MARKED) ||
        c->inst >= x->ninst || !(n->has & HAS_QTY) || n->qty == 0 || n->qty == INT64_MIN)
        return c;
    /* Only an order that could rest (the engine refuses the rest, with
     * its own reason), with no displayQty or a valid one. */
    uint8_t t, tif;
    engine_order_defaults(n, &t, &tif);
    qty_t q = n->qty < 0 ? -n->qty : n->qty;
    qty_t lot = I(x, c->inst)->contract.lot_qty;
    if (!(t == ORD_LIMIT || t == ORD_STOP_LIMIT || t == ORD_LIMIT_IF_TOUCHED) || !(tif == TIF_GTC || tif == TIF_DAY) ||
        ((n->has & HAS_DISPLAY_QTY) && (n->display_qty < 0 || n->display_qty > q || (lot > 0 && n->display_qty % lot))))
        return c;
    px_t px = (n->has & HAS_PRICE) ? n->price : (n->has & HAS_STOP_PX) ? n->stop_px : x->is[c->inst].mark;
    sats_t v;
    if (px <= 0 || mf_value(&I(x, c->inst)->contract, q, px, &v) != MF_OK)
        return c; /* the engine refuses what cannot be valued */
    if ((v < 0 ? -v : v) >= x->cfg.spam_value[I(x, c->inst)->currency])
        return c;
    if (n->exec_inst & EXEC_POST_ONLY)
        return NULL;
    *h = *c;
    h->u.new_order.has |= HAS_DISPLAY_QTY;
    h->u.new_order.display_qty = 0;
    return h;
}

static enum reject cmd_spam(struct exch *x, const struct cmd *c)
{
    if (!x->cfg.spam_orders)
        return reject(x, c, REJ_UNKNOWN_COMMAND); /* the rule is off */
    if (c->account == EXCH_LIQUIDATOR || c->account >= x->naccts)
        return reject(x, c, REJ_UNKNOWN_ACCOUNT);
    if (c->u.spam > 1)
        return reject(x, c, REJ_INVALID_AMOUNT);
    x->spam[c->account] = (uint8_t)((x->spam[c->account] & SPAM_EXEMPT) | (c->u.spam ? SPAM_MARKED : 0));
    return REJ_NONE;
}

uint64_t exch_take_order_id(struct exch *x)
{
    return engine_take_order_id(x->eng);
}

int exch_spam(const struct exch *x, uint32_t a, uint32_t *small_orders)
{
    if (a == EXCH_LIQUIDATOR || a >= x->naccts)
        return -1;
    if (small_orders)
        *small_orders = x->small[a];
    return (x->spam[a] & SPAM_MARKED) != 0;
}

void exch_spam_exempt(struct exch *x, uint32_t a)
{
    if (a < x->naccts)
        x->spam[a] |= SPAM_EXEMPT;
}

static ms_t next_time_event(const struct exch *x)
{
    ms_t t = x->next_minute;
    for (uint16_t i = 0; i < x->ninst; i++) {
        const struct ist *s = &x->is[i];
        if (s->settled)
            continue;
        ms_t e = I(x, i)->perpetual ? s->next_funding : I(x, i)->expiry_ms;
        if (e < t)
            t = e;
    }
    return t;
}

ms_t exch_next_event(const struct exch *x)
{
    ms_t e = engine_next_deadline(x->eng);
    if (!x->started)
        return e;
    ms_t t = next_time_event(x);
    return e < t ? e : t;
}

static void time_start(struct exch *x, ms_t ts)
{
    x->started = 1;
    x->now = ts;
    x->next_minute = ts - ts % 60000 + 60000;
    for (uint16_t i = 0; i < x->ninst; i++)
        if (I(x, i)->perpetual)
            x->is[i].next_funding = first_funding_after(ts, I(x, i)->funding_interval_ms);
    x->next_event = next_time_event(x);
}

/* Runs funding, settlement and minute samples due up to ts, in time order. */
static void time_work(struct exch *x, ms_t ts)
{
    for (;;) {
        ms_t t = next_time_event(x);
        x->next_event = t;
        if (t > ts)
            break;
        x->now = t;
        int funded = 0;
        for (uint16_t i = 0; i < x->ninst; i++) {
            struct ist *s = &x->is[i];
            if (s->settled)
                continue;
            if (I(x, i)->perpetual && s->next_funding == t) {
                /* Paid on the mark of the funding instant, whose fair basis
                 * (rate x time until funding) is 0: the index's price, not
                 * the last minute's mark. */
                mark_from_index(x, i, 0);
                funding(x, i);
                funded = 1;
            } else if (!I(x, i)->perpetual && I(x, i)->expiry_ms == t) {
                settle(x, i);
            }
        }
        if (funded) {
            liq_scan(x, INST_ALL);
            audit_now(x);
        }
        if (x->next_minute == t) {
            /* The mark first, so that the premium sample's mark and the
             * fair basis it takes out of it are of the same moment. */
            for (uint16_t i = 0; i < x->ninst; i++) {
                mark_from_index(x, i, 0);
                sample_minute(x, i);
            }
            if (t % MS_PER_DAY == 0)
                spam_review(x);
            x->next_minute += 60000;
        }
    }
    x->now = ts;
}

/* ---- margin commands (M10) -------------------------------------------------- */

static enum reject cmd_money(struct exch *x, const struct cmd *c)
{
    uint8_t cur = c->u.money.currency;
    sats_t amt = c->u.money.amount;
    if (c->account >= x->naccts)
        return reject(x, c, REJ_UNKNOWN_ACCOUNT);
    if (cur >= x->cfg.currencies_count)
        return reject(x, c, REJ_INVALID_CURRENCY);
    /* 1e17 minor units: a billion XBT; keeps every sum far from overflow. */
    if (amt <= 0 || amt > EXCH_MONEY_MAX)
        return reject(x, c, REJ_INVALID_AMOUNT);
    struct wal *w = W(x, c->account, cur);
    if (c->type == CMD_DEPOSIT) {
        /* every account's deposits together too: the audit's totals */
        if (*BAL(x, c->account, cur) > EXCH_DEPOSITS_MAX - amt || x->dep[cur] > EXCH_DEPOSITS_MAX - amt)
            return reject(x, c, REJ_INVALID_AMOUNT);
        *BAL(x, c->account, cur) += amt;
        w->dep += amt;
        x->dep[cur] += amt;
        emit_money(x, c->account, 0, MK_DEPOSIT, cur, amt, 0, 0, 0);
    } else {
        struct exch_margin m;
        exch_margin(x, c->account, cur, &m);
        if (amt > m.withdrawable)
            return reject(x, c, REJ_INSUFFICIENT_WITHDRAWABLE);
        *BAL(x, c->account, cur) -= amt;
        w->wd += amt;
        x->wd[cur] += amt;
        emit_money(x, c->account, 0, MK_WITHDRAWAL, cur, -amt, 0, 0, 0);
    }
    return REJ_NONE;
}

/* The isolated margin a position needs at its leverage: posInit + posComm
 * + any unrealised loss (so isolating a losing position does not liquidate
 * it at once). */
static sats_t iso_needed(const struct exch *x, uint16_t i, const struct pos *p)
{
    if (p->qty == 0)
        return 0;
    return iso_post(x, i, p, p->cost) + (p->upnl < 0 ? -p->upnl : 0);
}

/* Applies a change of leverage / risk step to the position and its orders;
 * refuses when the account cannot afford it, restoring the two records it
 * touched (the position and its wallet) exactly. */
static enum reject reconfigure(struct exch *x, const struct cmd *c, rate_t lev, int32_t k)
{
    uint32_t a = c->account;
    uint16_t i = c->inst;
    struct pos *p = P(x, a, i);
    struct wal *w = W(x, a, I(x, i)->currency);
    struct pos psave = *p;
    struct wal wsave = *w;
    uint8_t cur = I(x, i)->currency;
    sats_t avail0 = available(x, a, cur);
    /* leave the current mode: no cross contribution, no isolated margin */
    if (p->lev == 0) {
        w->cross_upnl -= p->upnl;
        w->cross_pm -= p->pinit + p->pcomm;
        w->cross_maint -= p->maint;
    }
    iso_move(x, a, i, -p->iso);
    p->mv = p->upnl = p->pinit = p->pcomm = p->maint = 0;
    pos_set_mode(x, i, p, lev, k); /* pos_refresh below adds the cross contribution if cross */
    pos_refresh(x, a, i);
    if (lev > 0)
        iso_move(x, a, i, iso_needed(x, i, p));
    sats_t avail1 = available(x, a, cur);
    if (avail1 < 0 && avail1 < avail0) {
        *p = psave;
        *w = wsave;
        return reject(x, c, REJ_INSUFFICIENT_BALANCE);
    }
    emit_simple(x, EV_POSITION, a, i);
    liq_check_account(x, a, i);
    return REJ_NONE;
}

static enum reject cmd_position(struct exch *x, const struct cmd *c)
{
    if (c->account >= x->naccts || c->account == EXCH_LIQUIDATOR)
        return reject(x, c, REJ_UNKNOWN_ACCOUNT);
    if (c->inst >= x->ninst)
        return reject(x, c, REJ_UNKNOWN_SYMBOL);
    uint16_t i = c->inst;
    const struct exch_instrument *in = I(x, i);
    struct pos *p = P(x, c->account, i);
    if (x->is[i].settled)
        return reject(x, c, REJ_INSTRUMENT_CLOSED);
    switch (c->type) {
    case CMD_SET_LEVERAGE: {
        rate_t lev = c->u.leverage_e8;
        if (lev == 0)
            return reconfigure(x, c, 0, p->k);
        if (lev < MF_RATE_SCALE / 100 || lev > 100 * MF_RATE_SCALE)
            return reject(x, c, REJ_INVALID_LEVERAGE);
        rate_t im, mm, lim;
        must(mf_tier_rates(in->im_e8, in->mm_e8, p->k, &im, &mm), "tier");
        must(mf_im_from_leverage(lev, &lim), "leverage");
        if (lim < im)
            return reject(x, c, REJ_INVALID_LEVERAGE);
        return reconfigure(x, c, lev, p->k);
    }
    case CMD_SET_CROSS:
        return reconfigure(x, c, 0, p->k);
    case CMD_SET_RISK_LIMIT: {
        sats_t lim = c->u.risk_limit;
        if (lim < in->risk_limit || (lim - in->risk_limit) % in->risk_step != 0 ||
            (lim - in->risk_limit) / in->risk_step > RISK_STEPS_MAX)
            return reject(x, c, REJ_INVALID_RISK_LIMIT);
        int32_t k = (int32_t)((lim - in->risk_limit) / in->risk_step);
        if (sabs(p->cost) + smax(sabs(p->bv), sabs(p->sv)) > lim)
            return reject(x, c, REJ_INVALID_RISK_LIMIT);
        if (p->lev > 0) {
            rate_t im, mm, lim_im;
            must(mf_tier_rates(in->im_e8, in->mm_e8, k, &im, &mm), "tier");
            must(mf_im_from_leverage(p->lev, &lim_im), "leverage");
            if (lim_im < im)
                return reject(x, c, REJ_INVALID_LEVERAGE);
        }
        return reconfigure(x, c, p->lev, k);
    }
    case CMD_TRANSFER_MARGIN: {
        sats_t amt = c->u.transfer;
        if (p->lev == 0)
            return reject(x, c, REJ_NOT_ISOLATED);
        if (p->qty == 0)
            return reject(x, c, REJ_NO_POSITION);
        if (amt == 0 || amt > INT64_C(100000000000000000) || amt < -INT64_C(100000000000000000))
            return reject(x, c, REJ_INVALID_AMOUNT);
        if (amt > 0 && available(x, c->account, in->currency) < amt)
            return reject(x, c, REJ_INSUFFICIENT_BALANCE);
        if (amt < 0 && p->iso + amt < iso_needed(x, i, p))
            return reject(x, c, REJ_TRANSFER_TOO_LARGE);
        iso_move(x, c->account, i, amt);
        emit_money(x, c->account, i, MK_TRANSFER, in->currency, amt, p->qty, 0, 0);
        emit_simple(x, EV_POSITION, c->account, i);
        return REJ_NONE;
    }
    default:
        return reject(x, c, REJ_UNKNOWN_COMMAND);
    }
}

static enum reject cmd_index(struct exch *x, const struct cmd *c)
{
    uint16_t idx = c->u.set_index.index;
    px_t px = c->u.set_index.price;
    if (idx >= x->cfg.indices_count)
        return reject(x, c, REJ_UNKNOWN_SYMBOL);
    if (px <= 0 || px > INT64_C(100000000000000000))
        return reject(x, c, REJ_INVALID_PRICE);
    /* A price the positions cannot be valued at (an admin's 1e-8 under an
     * inverse contract) is refused, not applied: every open contract of
     * the instruments it marks, longs and shorts, and a largest order more,
     * must value within EXCH_DEPOSITS_MAX. O(open positions), as the
     * re-margining that follows. */
    for (uint16_t i = 0; i < x->ninst; i++) {
        if (I(x, i)->index != idx || x->is[i].settled)
            continue;
        qty_t oi = 0;
        for (uint32_t k = 0; k < x->is[i].n; k++) {
            qty_t q = PC(x, x->is[i].list[k], i)->qty;
            oi += q > 0 ? q : 0;
        }
        sats_t v;
        if (mf_value(&I(x, i)->contract, 2 * oi + x->cfg.engine.instruments[i].max_order_qty, px, &v) != MF_OK ||
            v > EXCH_DEPOSITS_MAX || v < -EXCH_DEPOSITS_MAX)
            return reject(x, c, REJ_INVALID_PRICE);
    }
    x->index_px[idx] = px;
    for (uint16_t i = 0; i < x->ninst; i++) {
        if (I(x, i)->index != idx || x->is[i].settled)
            continue;
        price_to_engine(x, i, SRC_INDEX, px);
        mark_from_index(x, i, 0);
    }
    return REJ_NONE;
}

/* M7: the rate the next funding pays, announced from outside (history's
 * data, an instructor) in place of the one the premium formed. The fair
 * price and every maintenance requirement (MM + the rate when paying) move
 * with it; the premium samples go on forming the rate after. */
static enum reject cmd_funding(struct exch *x, const struct cmd *c)
{
    uint16_t i = c->inst;
    if (i >= x->ninst)
        return reject(x, c, REJ_UNKNOWN_SYMBOL);
    if (x->is[i].settled)
        return reject(x, c, REJ_INSTRUMENT_CLOSED);
    rate_t r = c->u.set_funding.rate_e8, ind = c->u.set_funding.indicative_e8;
    if (!I(x, i)->perpetual || r < -FUNDING_RATE_MAX || r > FUNDING_RATE_MAX ||
        (c->u.set_funding.has_indicative && (ind < -FUNDING_RATE_MAX || ind > FUNDING_RATE_MAX)))
        return reject(x, c, REJ_INVALID_FUNDING);
    struct ist *s = &x->is[i];
    /* For the funding the sender meant: time may have passed it since
     * (a paced clock applies a command later than it was decided). */
    if (c->u.set_funding.for_ms != 0 && c->u.set_funding.for_ms != s->next_funding)
        return reject(x, c, REJ_INVALID_FUNDING);
    s->rate = r;
    s->indicative = c->u.set_funding.has_indicative ? ind : r;
    if (x->index_px[I(x, i)->index] > 0) {
        mark_from_index(x, i, 1);
    } else {
        /* No mark to move: the margins still take in the rate. */
        uint32_t below = remargin(x, i);
        emit_simple(x, EV_INSTRUMENT, 0, i);
        if (below)
            liquidate_candidates(x);
        audit_now(x);
    }
    return REJ_NONE;
}

/* ---- the audit (M9) ------------------------------------------------------- */

int exch_audit(const struct exch *x, struct exch_audit *out)
{
    memset(out, 0, sizeof(*out));
    out->ok = 1;
    /* One pass over the open positions: contracts per side per instrument,
     * unrealisedCost per currency. */
    sats_t open[CURRENCIES_MAX] = {0};
    for (uint16_t i = 0; i < x->ninst; i++) {
        sats_t cost = 0;
        qty_t lq = 0, sq = 0;
        for (uint32_t k = 0; k < x->is[i].n; k++) {
            const struct pos *p = PC(x, x->is[i].list[k], i);
            cost += p->cost;
            if (p->qty > 0)
                lq += p->qty;
            else
                sq -= p->qty;
        }
        open[I(x, i)->currency] -= cost;
        out->long_qty[i] = lq;
        out->short_qty[i] = sq;
    }
    for (uint8_t c = 0; c < x->cfg.currencies_count; c++) {
        sats_t sum = 0;
        const sats_t *bal = &x->bal[(size_t)c * x->naccts];
        for (uint32_t a = 0; a < x->acct_hi; a++)
            sum += bal[a];
        out->insurance[c] = BALC(x, EXCH_LIQUIDATOR, c);
        out->fees[c] = x->fees[c];
        out->rounding[c] = x->rounding[c];
        out->positions[c] = open[c];
        out->total[c] = sum + x->fees[c] + x->rounding[c] + open[c];
        out->expected[c] = x->dep[c] - x->wd[c];
        if (out->ok && out->total[c] != out->expected[c]) {
            out->ok = 0;
            snprintf(out->report, sizeof(out->report),
                     "currency %s: wallets %lld + fees %lld + rounding %lld + open positions %lld "
                     "= %lld, deposits - withdrawals = %lld, difference %lld",
                     x->cfg.currency[c], (long long)sum, (long long)x->fees[c],
                     (long long)x->rounding[c], (long long)open[c], (long long)out->total[c],
                     (long long)out->expected[c], (long long)(out->total[c] - out->expected[c]));
        }
    }
    for (uint16_t i = 0; i < x->ninst; i++) {
        if (out->ok && out->long_qty[i] != out->short_qty[i]) {
            out->ok = 0;
            snprintf(out->report, sizeof(out->report),
                     "instrument %s: long %lld contracts, short %lld",
                     x->cfg.engine.instruments[i].symbol, (long long)out->long_qty[i],
                     (long long)out->short_qty[i]);
        }
    }
    return out->ok;
}

static void default_fail(void *ctx, const struct cmd *c, const struct exch_audit *a)
{
    (void)ctx;
    fprintf(stderr,
            "perpsim: MONEY AUDIT FAILED after command seq %llu (type %d, account %u, ts %lld): "
            "%s. Stopping.\n",
            (unsigned long long)c->seq, c->type, c->account, (long long)c->ts, a->report);
    abort();
}

static void audit_now(struct exch *x)
{
    struct exch_audit a;
    if (!exch_audit(x, &a))
        x->on_fail(x->on_fail_ctx, x->cur, &a);
}

/* ---- the command entry ---------------------------------------------------- */

static int is_margin_cmd(uint8_t t)
{
    return t >= CMD_DEPOSIT && t <= CMD_TYPE_LAST;
}

enum reject exch_apply(struct exch *x, const struct cmd *c)
{
    x->cur = c;
    if (c->seq <= x->last_seq || c->ts < x->last_ts || (x->started && c->ts < x->now)) {
        enum reject r = reject(x, c, REJ_BAD_SEQUENCE);
        x->cur = &no_cmd;
        return r;
    }
    x->last_seq = c->seq;
    x->last_ts = c->ts;
    if (c->account >= x->acct_hi && c->account < x->naccts)
        x->acct_hi = c->account + 1;
    if (!x->started)
        time_start(x, c->ts);
    enum reject r;
    int timed = is_margin_cmd(c->type) || c->ts >= x->next_event;
    if (timed) {
        /* What is due first (funding, the minute, the spam review...),
         * then the command at its time. */
        struct cmd clk;
        memset(&clk, 0, sizeof(clk));
        clk.type = CMD_CLOCK;
        clk.seq = c->seq;
        clk.ts = c->ts;
        engine_apply(x->eng, &clk);
        time_work(x, c->ts);
    } else {
        x->now = c->ts;
    }
    if (!is_margin_cmd(c->type)) {
        struct cmd hidden;
        const struct cmd *ec = c->type == CMD_NEW_ORDER ? spam_gate(x, c, &hidden) : c;
        r = !ec ? reject(x, c, REJ_SPAM_POST_ONLY) : timed ? engine_apply_within(x->eng, ec) : engine_apply(x->eng, ec);
    } else {
        if (c->type == CMD_DEPOSIT || c->type == CMD_WITHDRAW)
            r = cmd_money(x, c);
        else if (c->type == CMD_SET_INDEX)
            r = cmd_index(x, c);
        else if (c->type == CMD_SET_FUNDING)
            r = cmd_funding(x, c);
        else if (c->type == CMD_SET_SPAM)
            r = cmd_spam(x, c);
        else
            r = cmd_position(x, c);
    }
#ifdef PERPSIM_CHECKS
    /* The money audit after every command; the full recomputation of every
     * cache (and the engine's own walk) every verify_every commands. */
    struct exch_audit a;
    if (!exch_audit(x, &a))
        x->on_fail(x->on_fail_ctx, x->cur, &a);
    if (++x->verify_n >= x->cfg.engine.verify_every) {
        x->verify_n = 0;
        const char *bad = exch_verify(x);
        if (bad) {
            a.ok = 0;
            snprintf(a.report, sizeof(a.report), "%s", bad);
            x->on_fail(x->on_fail_ctx, x->cur, &a);
        }
    }
#endif
    x->cur = &no_cmd;
    return r;
}

void exch_prefetch(const struct exch *x, const struct cmd *c, int stage)
{
    uint32_t slot = engine_prefetch(x->eng, c, stage);
    if (c->type != CMD_NEW_ORDER && c->type != CMD_CANCEL && c->type != CMD_AMEND)
        return;
    if (c->account >= x->naccts || c->inst >= x->ninst)
        return;
    if (stage == 0) {
        /* an order's margin reads the position's first line; a fill books
         * the other two */
        const char *p = (const char *)PC(x, c->account, c->inst);
        for (size_t k = 0; k < sizeof(struct pos); k += 64)
            __builtin_prefetch(p + k);
        uint8_t cur = I(x, c->inst)->currency;
        __builtin_prefetch(WC(x, c->account, cur));
        __builtin_prefetch(&x->bal[(size_t)cur * x->naccts + c->account]);
    } else if (slot != ENGINE_NIL) {
        __builtin_prefetch(&x->os[slot]);
    }
}

/* ---- reads ------------------------------------------------------------------ */

int exch_position_live(const struct exch *x, uint32_t a, uint16_t i)
{
    if (a >= x->naccts || i >= x->ninst)
        return 0;
    const struct pos *p = PC(x, a, i);
    return p->qty != 0 || p->bq != 0 || p->sq != 0;
}

int exch_position(const struct exch *x, uint32_t a, uint16_t i, struct exch_position *out)
{
    if (a >= x->naccts || i >= x->ninst)
        return -1;
    const struct pos *p = PC(x, a, i);
    const struct exch_instrument *in = I(x, i);
    memset(out, 0, sizeof(*out));
    out->qty = p->qty;
    out->current_cost = p->cur_cost;
    out->unrealised_cost = p->cost;
    out->realised_cost = p->real_cost;
    out->realised_gross_pnl = p->real_gross;
    out->comm = p->comm;
    out->mark_value = p->mv;
    out->unrealised_pnl = p->upnl;
    out->pos_init = p->pinit;
    out->pos_comm = p->pcomm;
    out->pos_margin = p->lev > 0 ? p->iso : p->pinit + p->pcomm;
    out->maint = p->maint;
    out->order_margin = om_now(x, i, p);
    out->open_buy_qty = p->bq;
    out->open_sell_qty = p->sq;
    out->leverage_e8 = p->lev;
    out->im_e8 = p->im;
    out->mm_e8 = p->mm;
    out->risk_limit = in->risk_limit + (sats_t)p->k * in->risk_step;
    out->mark_px = x->is[i].mark;
    if (p->qty == 0)
        return 0;
    if (mf_avg_entry_px(&in->contract, p->qty, p->cost, &out->avg_entry_px) != MF_OK)
        out->avg_entry_px = 0;
    /* Bankruptcy: where the margin backing the position is used up;
     * liquidation: where what is left equals maintenance at that price
     * (approximated by the maintenance now, as BitMEX's figures are). */
    sats_t backing = p->lev > 0 ? p->iso : cross_equity(x, a, in->currency) - p->upnl;
    out->bankrupt_px = px_for_value(x, i, p->qty, p->cost - backing, p->qty > 0);
    out->liq_px = px_for_value(x, i, p->qty, p->cost - backing + p->maint, p->qty > 0);
    return 0;
}

int exch_margin(const struct exch *x, uint32_t a, uint8_t cur, struct exch_margin *out)
{
    if (a >= x->naccts || cur >= x->cfg.currencies_count)
        return -1;
    const struct wal *w = WC(x, a, cur);
    memset(out, 0, sizeof(*out));
    sats_t bal = BALC(x, a, cur);
    out->wallet = bal;
    out->deposited = w->dep;
    out->withdrawn = w->wd;
    sats_t upnl = 0, maint = 0;
    for (uint16_t i = 0; i < x->ninst; i++) {
        if (I(x, i)->currency != cur)
            continue;
        const struct pos *p = PC(x, a, i);
        upnl += p->upnl;
        maint += p->maint;
    }
    out->unrealised_pnl = upnl;
    out->margin_balance = bal + upnl;
    sats_t om = acct_om_now(x, a, cur);
    out->order_margin = om;
    out->position_margin = w->iso + w->cross_pm;
    out->maint_margin = maint;
    out->available = available_with(x, a, cur, om);
    sats_t held = bal - w->iso - w->cross_pm - om;
    sats_t wd = out->available < held ? out->available : held;
    out->withdrawable = wd > 0 ? wd : 0;
    return 0;
}

void exch_instrument_state(const struct exch *x, uint16_t i, struct exch_instrument_state *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= x->ninst)
        return;
    const struct exch_instrument *in = I(x, i);
    const struct ist *s = &x->is[i];
    out->mark_px = s->mark;
    out->index_px = x->index_px[in->index];
    out->fair_basis_px = s->mark && out->index_px ? s->mark - out->index_px : 0;
    out->funding_rate_e8 = in->perpetual ? s->rate : 0;
    out->indicative_rate_e8 = in->perpetual ? s->indicative : 0;
    if (in->perpetual)
        mf_perp_fair_basis_rate(s->rate, in->funding_interval_ms, &out->fair_basis_rate_e8);
    else
        out->fair_basis_rate_e8 = s->basis_annual;
    out->next_funding_ms = in->perpetual ? s->next_funding : 0;
    out->premium_e8 = in->perpetual && s->prem_n ? (rate_t)(s->prem_sum / s->prem_n) : 0;
    out->premium_samples = in->perpetual ? s->prem_n : 0;
    out->settled = s->settled;
    out->settled_px = s->settled_px;
    for (uint32_t k = 0; k < s->n; k++) {
        qty_t q = PC(x, s->list[k], i)->qty;
        if (q > 0)
            out->open_interest += q;
    }
}

sats_t exch_insurance(const struct exch *x, uint8_t cur)
{
    return cur < x->cfg.currencies_count ? BALC(x, EXCH_LIQUIDATOR, cur) : 0;
}

void exch_fill_money(const struct exch *x, const struct event *f, struct exch_fill_money *out)
{
    const struct exch_instrument *in = &x->cfg.inst[f->inst];
    qty_t q = f->u.fill.last_qty;
    out->rate_e8 = fill_rate(in, f);
    out->cost = 0;
    out->comm = 0;
    if (mf_value(&in->contract, f->order.side == SIDE_BUY ? q : -q, f->u.fill.last_px, &out->cost) != MF_OK)
        out->cost = 0;
    if (out->rate_e8 && mf_fee_quick(out->cost, out->rate_e8, &out->comm) != MF_OK)
        out->comm = 0;
}

static inline uint64_t hmix(uint64_t h, uint64_t v)
{
    h ^= v + UINT64_C(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2);
    h ^= h >> 31;
    return h * UINT64_C(0xBF58476D1CE4E5B9);
}

uint64_t exch_hash(const struct exch *x)
{
    uint64_t h = hmix(engine_hash(x->eng), (uint64_t)x->now);
    for (uint8_t c = 0; c < x->cfg.currencies_count; c++) {
        h = hmix(h, (uint64_t)x->fees[c]);
        h = hmix(h, (uint64_t)x->rounding[c]);
        h = hmix(h, (uint64_t)x->dep[c]);
        h = hmix(h, (uint64_t)x->wd[c]);
        for (uint32_t a = 0; a < x->naccts; a++)
            h = hmix(h, (uint64_t)x->bal[(size_t)c * x->naccts + a]);
    }
    for (uint8_t c = 0; c < x->cfg.currencies_count; c++)
        for (uint32_t a = 0; a < x->naccts; a++) {
            const struct wal *w = &x->w[(size_t)c * x->naccts + a];
            h = hmix(h, (uint64_t)w->dep);
            h = hmix(h, (uint64_t)w->wd);
        }
    for (uint32_t a = 0; a < x->acct_hi; a++)
        if ((x->spam[a] & SPAM_MARKED) || x->small[a]) /* not the exempt bit: it follows the journaled account flag */
            h = hmix(hmix(hmix(h, a), x->spam[a] & SPAM_MARKED), x->small[a]);
    for (uint16_t i = 0; i < x->ninst; i++) {
        const struct ist *s = &x->is[i];
        h = hmix(h, (uint64_t)s->mark);
        h = hmix(h, (uint64_t)s->rate);
        h = hmix(h, (uint64_t)s->indicative);
        h = hmix(h, (uint64_t)s->next_funding);
        h = hmix(h, (uint64_t)s->prem_sum);
        h = hmix(h, (uint64_t)(s->prem_sum >> 64));
        h = hmix(h, (uint64_t)s->prem_n);
        h = hmix(h, (uint64_t)s->basis_annual);
        h = hmix(h, (uint64_t)s->settled);
        h = hmix(h, (uint64_t)s->settled_px);
        h = hmix(h, (uint64_t)s->settle_n);
        h = hmix(h, (uint64_t)s->settle_sum);
        h = hmix(h, (uint64_t)(s->settle_sum >> 64));
        for (uint32_t k = 0; k < s->n; k++)
            h = hmix(h, s->list[k]);
        for (uint32_t a = 0; a < x->naccts; a++) {
            const struct pos *p = PC(x, a, i);
            if (!p->qty && !p->cost && !p->iso && !p->lev && !p->k && !p->cur_cost && !p->comm)
                continue;
            h = hmix(h, a);
            h = hmix(h, (uint64_t)p->qty);
            h = hmix(h, (uint64_t)p->cost);
            h = hmix(h, (uint64_t)p->iso);
            h = hmix(h, (uint64_t)p->lev);
            h = hmix(h, (uint64_t)p->k);
            h = hmix(h, (uint64_t)p->cur_cost);
            h = hmix(h, (uint64_t)p->real_cost);
            h = hmix(h, (uint64_t)p->real_gross);
            h = hmix(h, (uint64_t)p->comm);
        }
    }
    for (uint16_t k = 0; k < x->cfg.indices_count; k++)
        h = hmix(h, (uint64_t)x->index_px[k]);
    return h;
}

rate_t exch_adl_percentile(const struct exch *x, uint32_t a, uint16_t i)
{
    if (a >= x->naccts || i >= x->ninst || PC(x, a, i)->qty == 0)
        return -1;
    const struct ist *s = &x->is[i];
    int is_long = PC(x, a, i)->qty > 0;
    int64_t mine = adl_score(x, a, i);
    int64_t n = 0, behind = 0;
    for (uint32_t k = 0; k < s->n; k++) {
        uint32_t b = s->list[k];
        if (b == EXCH_LIQUIDATOR || (PC(x, b, i)->qty > 0) != is_long)
            continue;
        n++;
        int64_t sc = adl_score(x, b, i);
        if (sc < mine || (sc == mine && b >= a))
            behind++;
    }
    return n ? (rate_t)((i128)behind * MF_RATE_SCALE / n) : -1;
}

const struct exch_config *exch_config(const struct exch *x)
{
    return &x->cfg;
}

struct engine *exch_engine(struct exch *x)
{
    return x->eng;
}

void exch_on_audit_fail(struct exch *x, exch_audit_fail_fn fn, void *ctx)
{
    x->on_fail = fn ? fn : default_fail;
    x->on_fail_ctx = ctx;
}

/* ---- verification ---------------------------------------------------------- */

const char *exch_verify(const struct exch *x)
{
    static _Thread_local char buf[300];
    struct exch_audit a;
    if (!exch_audit(x, &a)) {
        snprintf(buf, sizeof(buf), "%s", a.report);
        return buf;
    }
    const char *ebad = engine_verify(x->eng);
    if (ebad) {
        snprintf(buf, sizeof(buf), "engine: %s", ebad);
        return buf;
    }
    for (uint16_t i = 0; i < x->ninst; i++) {
        uint32_t n = 0;
        for (uint32_t acc = 0; acc < x->naccts; acc++) {
            const struct pos *p = PC(x, acc, i);
            if (p->qty != engine_position(x->eng, acc, i))
                return "a position differs from the engine's";
            if ((p->qty != 0) != (p->li != NIL))
                return "position list membership wrong";
            if (p->li != NIL && (p->li >= x->is[i].n || x->is[i].list[p->li] != acc))
                return "position list index wrong";
            n += p->qty != 0;
            if (p->bq < 0 || p->sq < 0)
                return "negative order aggregate";
            if (p->lev == 0 && p->iso != 0)
                return "a cross position holds isolated margin";
            if (p->qty == 0 && p->iso != 0)
                return "a flat position holds isolated margin";
            rate_t im, mm;
            rates_of(x, i, p, &im, &mm);
            if (im != p->im || mm != p->mm)
                return "cached margin rates differ from the leverage and risk step";
            if (p->om_mark == x->is[i].mark &&
                p->om != om_compute(x, i, p, p->bq, p->bv, p->sq, p->sv))
                return "a position's order margin differs from its orders";
        }
        if (n != x->is[i].n)
            return "position list count wrong";
    }
    for (uint32_t acc = 0; acc < x->naccts; acc++) {
        for (uint8_t c = 0; c < x->cfg.currencies_count && acc >= x->acct_hi; c++)
            if (BALC(x, acc, c) != 0)
                return "an account no command named holds money (the audit would miss it)";
        for (uint8_t c = 0; c < x->cfg.currencies_count; c++) {
            sats_t upnl = 0, pm = 0, mt = 0, iso = 0;
            uint64_t has = 0;
            for (uint16_t i = 0; i < x->ninst; i++) {
                if (I(x, i)->currency != c)
                    continue;
                const struct pos *p = PC(x, acc, i);
                if (p->lev == 0) {
                    upnl += p->upnl;
                    pm += p->pinit + p->pcomm;
                    mt += p->maint;
                }
                iso += p->iso;
                if (p->bq || p->sq)
                    has |= UINT64_C(1) << i;
            }
            const struct wal *w = WC(x, acc, c);
            if (w->cross_upnl != upnl || w->cross_pm != pm || w->cross_maint != mt)
                return "cached cross sums differ from the positions";
            if (w->iso != iso)
                return "cached isolated margin differs from the positions";
            if (w->om_has != has)
                return "the instruments with orders differ from the positions";
        }
    }
    /* Order aggregates from the engine's live orders. */
    size_t cells = (size_t)x->naccts * x->ninst;
    qty_t *q = calloc(cells * 2, sizeof(qty_t));
    uint32_t *small = calloc(x->naccts, sizeof(*small));
    if (!q || !small) {
        free(q);
        free(small);
        return NULL;
    }
    const struct engine_config *ec = engine_config(x->eng);
    uint32_t seen = 0, live = engine_orders_live(x->eng);
    for (uint32_t s = 0; s < ec->orders_max && seen < live; s++) {
        const struct oslot *r = &x->os[s];
        if (r->leaves == 0)
            continue;
        struct order_view v;
        if (!engine_order(x->eng, r->id, &v) || !v.working || v.leaves != r->leaves ||
            v.price != r->px) {
            free(q);
            free(small);
            return "an order's margin record differs from the engine's order";
        }
        q[((size_t)v.inst * x->naccts + v.account) * 2 + (v.side == SIDE_SELL)] += v.leaves;
        if (x->cfg.spam_orders && (r->sv < 0 ? -r->sv : r->sv) < x->cfg.spam_value[I(x, v.inst)->currency])
            small[v.account]++;
    }
    const char *bad = NULL;
    for (uint32_t a = 0; a < x->naccts && !bad; a++)
        if (small[a] != x->small[a])
            bad = "the count of small orders differs from the orders";
    free(small);
    for (size_t k = 0; k < cells && !bad; k++)
        if (q[k * 2] != x->p[k].bq || q[k * 2 + 1] != x->p[k].sq)
            bad = "order aggregates differ from the records";
    free(q);
    return bad;
}

/* ---- life -------------------------------------------------------------------- */

static const char *margin_config_error(const struct exch_config *cfg)
{
    if (cfg->currencies_count == 0 || cfg->currencies_count > CURRENCIES_MAX)
        return "currencies: 1 to 4";
    if (cfg->indices_count == 0 || cfg->indices_count > INDICES_MAX)
        return "indices: 1 to 16";
    if (cfg->engine.accounts_max < 2)
        return "accounts_max must be >= 2 (account 0 is the liquidator)";
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++) {
        const struct exch_instrument *in = &cfg->inst[i];
        const struct engine_instrument *ei = &cfg->engine.instruments[i];
        if (mf_contract_check(&in->contract) != MF_OK)
            return "an instrument's contract is invalid";
        if (in->contract.tick_px != ei->tick_px || in->contract.lot_qty != ei->lot_qty)
            return "an instrument's contract tick/lot differ from its engine tick/lot";
        if (in->currency >= cfg->currencies_count || in->index >= cfg->indices_count)
            return "an instrument names an unknown currency or index";
        if (in->im_e8 <= 0 || in->mm_e8 <= 0 || in->mm_e8 > in->im_e8 || in->im_e8 > MF_RATE_SCALE)
            return "an instrument's margins must be 0 < maint <= init <= 1";
        if (in->risk_limit <= 0 || in->risk_step <= 0)
            return "an instrument's risk limit and step must be > 0";
        if (in->perpetual && in->funding_interval_ms <= 0)
            return "a perpetual needs a funding interval";
        if (!in->perpetual && in->expiry_ms <= 0)
            return "a future needs an expiry";
        if (in->impact_notional <= 0)
            return "an instrument's impact notional must be > 0";
    }
    for (uint8_t c = 0; c < cfg->currencies_count; c++)
        if (cfg->insurance_initial[c] < 0)
            return "initial insurance fund must be >= 0";
    return NULL;
}

/* n zeroed records of size bytes from a cache-line boundary (each record
 * a whole number of lines, or a divisor of one), with the block to free in
 * *mem; NULL on overflow or out of memory. calloc's, so capacity never
 * touched costs no resident memory. */
static void *zalloc_lines(size_t n, size_t size, void **mem)
{
    if (n == 0)
        n = 1;
    if (n > (SIZE_MAX - 64) / size) {
        *mem = NULL;
        return NULL;
    }
    char *m = calloc(n * size + 64, 1);
    *mem = m;
    return m ? m + (64 - (uintptr_t)m % 64) % 64 : NULL;
}

struct exch *exch_create(const struct exch_config *cfg, engine_sink_fn sink, void *sink_ctx,
                         const char **err)
{
    const char *e = margin_config_error(cfg);
    if (e) {
        *err = e;
        return NULL;
    }
    struct exch *x = calloc(1, sizeof(*x));
    if (!x) {
        *err = "out of memory";
        return NULL;
    }
    x->cur = &no_cmd;
    x->cfg = *cfg;
    x->sink = sink;
    x->sink_ctx = sink_ctx;
    x->on_fail = default_fail;
    x->naccts = cfg->engine.accounts_max;
    x->acct_hi = 1; /* the liquidator */
    x->ninst = cfg->engine.instruments_count;
    x->w = zalloc_lines((size_t)x->naccts * CURRENCIES_MAX, sizeof(*x->w), &x->w_mem);
    x->bal = calloc((size_t)x->naccts * CURRENCIES_MAX, sizeof(*x->bal));
    x->p = zalloc_lines((size_t)x->naccts * (x->ninst ? x->ninst : 1), sizeof(*x->p), &x->p_mem);
    x->os = zalloc_lines(cfg->engine.orders_max, sizeof(*x->os), &x->os_mem);
    x->cand = calloc((size_t)x->naccts * (x->ninst ? x->ninst : 1), sizeof(*x->cand));
    x->rank = calloc(x->naccts, sizeof(*x->rank));
    x->small = calloc(x->naccts, sizeof(*x->small));
    x->spam = calloc(x->naccts, sizeof(*x->spam));
    int ok = x->w && x->bal && x->p && x->os && x->cand && x->rank && x->small && x->spam;
    for (uint16_t i = 0; ok && i < x->ninst; i++) {
        x->is[i].list = calloc(x->naccts, sizeof(uint32_t));
        ok = x->is[i].list != NULL;
        x->is[i].rate = cfg->inst[i].perpetual ? cfg->inst[i].funding_interest_e8 : 0;
        x->is[i].indicative = x->is[i].rate;
    }
    if (!ok) {
        exch_destroy(x);
        *err = "out of memory";
        return NULL;
    }
    for (uint16_t i = 0; i < x->ninst; i++)
        for (uint32_t a = 0; a < x->naccts; a++) {
            P(x, a, i)->li = NIL;
            pos_set_mode(x, i, P(x, a, i), 0, 0);
        }
    struct engine_hooks hooks = {.ctx = x, .admit = admit, .on_fill = on_fill,
                                 .market_bound = market_bound};
    x->eng = engine_create(&cfg->engine, on_event, x, &hooks, err);
    if (!x->eng) {
        exch_destroy(x);
        return NULL;
    }
    for (uint8_t c = 0; c < cfg->currencies_count; c++) {
        *BAL(x, EXCH_LIQUIDATOR, c) = W(x, EXCH_LIQUIDATOR, c)->dep = cfg->insurance_initial[c];
        x->dep[c] = cfg->insurance_initial[c];
    }
    return x;
}

void exch_destroy(struct exch *x)
{
    if (!x)
        return;
    if (x->eng)
        engine_destroy(x->eng);
    for (uint16_t i = 0; i < INSTRUMENTS_MAX; i++) {
        free(x->is[i].list);
    }
    free(x->w_mem);
    free(x->bal);
    free(x->p_mem);
    free(x->os_mem);
    free(x->cand);
    free(x->rank);
    free(x->small);
    free(x->spam);
    free(x);
}
