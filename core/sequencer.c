/*
 * sequencer.c - the one sequence of commands (core.h): state, lock, clock,
 * jobs, the engine thread and the change stream's consumers.
 */
#define _GNU_SOURCE
#include "core/core.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"

#define CONSUMERS_MAX 8
#define REBUILDERS_MAX 4
#define ADVANCE_STOPS_PER_LOCK 256

struct consumer {
    core_consumer_fn fn;
    void *ctx;
    bool in_lock;
    bool owner;     /* after-lock, takes the copy: frees it with core_record_release */
};

/* A record copied for the after-lock consumers: the record, its command,
 * its events and its text in one block. */
struct owned_rec {
    struct owned_rec *next;
    struct core_record r;
    struct core_cmd cmd;
    struct rec_event ev[];
};

struct core_view {
    struct core *c;
};

struct core {
    struct core_config cfg;
    pthread_rwlock_t lock;
    struct exch *x;
    struct store *st;
    struct keys keys;
    struct keys *kp;          /* where CC_KEY adds: &keys, or a rebuild's own */
    struct keys keys_ever;    /* every key made, restores or not (core_key_known) */
    uint64_t seq;
    ms_t now;
    _Atomic uint32_t next_account;
    /* the record being built: the events of the command being applied */
    struct rec_event *ev;
    uint32_t nev, cap_ev;
    struct touched *touched;  /* close_positions' accounts */
    uint32_t ntouched, cap_touched;
    uint32_t *touch_slot;     /* per account: its entry in touched + 1, 0 = none */
    px_t mark_px[INSTRUMENTS_MAX]; /* each instrument's mark as the records last gave it */
    /* consumers; the read model is cons[0] */
    struct consumer cons[CONSUMERS_MAX];
    int ncons;
    bool any_after;
    /* records waiting for the after-lock consumers, in sequence order */
    pthread_mutex_t pend_lock;
    struct owned_rec *pend_head, *pend_tail;
    pthread_mutex_t deliver_lock;
    /* the engine thread */
    pthread_t engine;
    bool started;
    atomic_bool opened;        /* command 1 and the initial prices applied */
    atomic_bool ticking;       /* idle clock ticks on (core_set_ticking) */
    struct core_timer timer;   /* under the write lock; next == NULL: none */
    atomic_bool has_timer;
    atomic_int timer_inflight; /* the timer's jobs submitted and not yet done */
    struct core_batch batch;   /* the timer's commands */
    struct cmd *poll;          /* timer_poll's copy of them, submitted after the lock */
    uint32_t cap_poll;
    pthread_mutex_t hash_lock; /* engine_hash sorts a scratch buffer of the engine's */
    struct ls_queue *q;
    atomic_uint_fast64_t commands;
    /* the durability gate (core_gate): replies and after-lock deliveries
     * wait until the journal has the command */
    bool gated;
    _Atomic uint64_t durable;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cv;    /* durable moved (core_wait_durable) */
    struct core_job *waiting;  /* done() held back, linked by gate_next */
    void (*commit)(void *ctx); /* after each whole job (core_set_commit) */
    void *commit_ctx;
    struct core_view view;
    /* checkpoints (core.h): taken, and the restores applied (seq order),
     * which a rebuild's path through the journal jumps along */
    struct core_checkpoint *cps;
    uint32_t ncps, cap_cps;
    struct restore_jump { uint64_t seq, target; } *jumps;
    uint32_t njumps, cap_jumps;
    core_history_fn history;
    void *history_ctx;
    struct core_rebuilder rbs[REBUILDERS_MAX];
    int nrbs;
    bool no_restore;
    bool rebuilding;          /* records go to the read model and the rebuilders only */
    uint32_t rb_next_account; /* the rebuild's next account (next_account stays the state's) */
};

/* ---- jobs ---------------------------------------------------------------------- */

/* One allocation for the job and its per-command arrays (a new order is
 * n = 1; six callocs per order showed in the profile). run_job replaces rows
 * by a separate array only for a cancel-all; core_job_free frees that one. */
static size_t align_up(size_t n)
{
    return (n + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
}

struct core_job *core_job_new(enum job_kind kind, uint32_t account, uint32_t n)
{
    size_t at_cmds = align_up(sizeof(struct core_job));
    size_t at_rows = at_cmds + align_up((size_t)n * sizeof(struct cmd));
    size_t at_texts = at_rows + align_up((size_t)n * sizeof(struct ord_rec));
    size_t at_target = at_texts + align_up((size_t)n * sizeof(char *));
    size_t at_rej = at_target + align_up((size_t)n * sizeof(uint64_t));
    size_t size = at_rej + align_up((size_t)n * sizeof(enum reject));
    char *block = calloc(1, size);
    if (!block)
        return NULL;
    struct core_job *j = (struct core_job *)(void *)block;
    j->kind = kind;
    j->account = account;
    j->n = n;
    if (n) {
        j->cmds = (struct cmd *)(void *)(block + at_cmds);
        j->rows = (struct ord_rec *)(void *)(block + at_rows);
        j->texts = (char **)(void *)(block + at_texts);
        j->target = (uint64_t *)(void *)(block + at_target);
        j->rej = (enum reject *)(void *)(block + at_rej);
    }
    j->rows_inline = j->rows;
    for (uint32_t i = 0; i < n; i++)
        j->cmds[i].account = account;
    return j;
}

void core_job_free(struct core_job *j)
{
    if (!j)
        return;
    free(j->cp);
    for (uint32_t i = 0; i < j->n; i++)
        free(j->texts[i]);
    if (j->rows != j->rows_inline)
        free(j->rows);
    free(j);
}

/* ---- the change stream ------------------------------------------------------------ */

/* Room for one more element in a growing array of the change stream's
 * (*cap elements of elem bytes at p, n in use); returns the array. A record cannot be
 * dropped in part: out of memory stops the engine, loudly. */
static void *room_for_one(void *p, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return p;
    uint32_t nc = *cap ? *cap * 2 : 16;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) {
        fprintf(stderr, "perpsim: out of memory for the change stream: stopping\n");
        abort();
    }
    *cap = nc;
    return q;
}

/* Room for n elements (the contents are not kept). */
static void *room_for_n(void *p, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n <= *cap)
        return p;
    free(p);
    uint32_t nc = n < 16 ? 16 : n;
    void *q = malloc((size_t)nc * elem);
    if (!q) {
        fprintf(stderr, "perpsim: out of memory for the timer's commands: stopping\n");
        abort();
    }
    *cap = nc;
    return q;
}

/* The margin core's sink: every event of the command being applied, with
 * the figures its consumers need, read now, at the moment of the event. */
static void sink(void *ctx, const struct event *ev)
{
    struct core *c = ctx;
    c->ev = room_for_one(c->ev, &c->cap_ev, c->nev, sizeof(*c->ev));
    struct rec_event *re = &c->ev[c->nev++];
    memset(&re->x, 0, sizeof(re->x));
    re->ev = *ev;
    const struct exch_config *cfg = &c->cfg.exch;
    switch (ev->type) {
    case EV_POSITION:
        exch_position(c->x, ev->account, ev->inst, &re->x.pos);
        break;
    case EV_INSTRUMENT:
        exch_instrument_state(c->x, ev->inst, &re->x.inst);
        break;
    case EV_FILL: {
        struct exch_fill_money m;
        exch_fill_money(c->x, ev, &m);
        re->x.fill.rate_e8 = m.rate_e8;
        re->x.fill.cost = m.cost;
        re->x.fill.comm = m.comm;
        break;
    }
    case EV_MONEY: {
        /* A liquidation, deleverage or settlement changes the account's
         * position at the event's price: its execCost. margin/ gives the
         * position closed for a liquidation or settlement (a long's is
         * > 0, closed by a sell), the change itself for a deleverage,
         * whose execCost is what margin/ booked: its share of the bankrupt
         * position's cost (the price, rounded to the tick, is within one
         * tick's value of it). */
        const struct ev_money *m = &ev->u.money;
        if (m->kind == MK_DELEVERAGE && ev->account != EXCH_LIQUIDATOR) {
            re->x.cost = m->cost;
        } else if ((m->kind == MK_LIQUIDATION || m->kind == MK_SETTLEMENT) && ev->account != EXCH_LIQUIDATOR) {
            if (mf_value(&cfg->inst[ev->inst].contract, -m->qty, m->px, &re->x.cost) != MF_OK)
                re->x.cost = 0;
        }
        break;
    }
    default:
        break;
    }
}

/* The account an event touches (its order's, its wallet's, its
 * position's), or UINT32_MAX. Deposits, withdrawals and the insurance fund
 * move a wallet and so every cross position's figures too. */
static uint32_t touched_account(const struct event *e)
{
    switch (e->type) {
    case EV_NEW: case EV_AMENDED: case EV_RESTATED: case EV_CANCELED: case EV_TRIGGERED:
    case EV_FILL:
        return e->order.account;
    case EV_MONEY: case EV_POSITION:
        return e->account;
    default:
        return UINT32_MAX;
    }
}

/* Order events and money moves change positions' figures (order margin,
 * open order quantities, commissions, and through the account's cross
 * equity every cross position's liquidation price) without a position
 * event of their own. At the end of the command, each position of a
 * touched account that is open or had an event in the command gets one
 * more position event with its figures now, unless its last position event
 * already came after everything that touched the account: the record ends
 * with every such position as it is. A mark change touches every account
 * with an open position or open orders in that instrument (at the
 * instrument event; a flat one without orders shows only the new mark), and
 * counts as touching each touched account's positions (their equity).
 * Then each touched account gets one EV_MARGIN per currency its events or
 * mark moves touched (an order's or a position's instrument's settlement
 * currency, a wallet move's currency): its money as it is. */
struct touched {
    uint32_t account;
    uint32_t last_touch;           /* the last event touching it (or a later mark change) */
    uint64_t had;                  /* instruments with an event of it */
    uint32_t curs;                 /* currencies whose money moved (bit per currency) */
    uint32_t last_pos[INSTRUMENTS_MAX]; /* its last position event per instrument, + 1 */
};

static struct touched *touch(struct core *c, uint32_t a)
{
    uint32_t slot = c->touch_slot[a];
    if (slot)
        return &c->touched[slot - 1];
    c->touched = room_for_one(c->touched, &c->cap_touched, c->ntouched, sizeof(*c->touched));
    struct touched *t = &c->touched[c->ntouched++];
    memset(t, 0, sizeof(*t));
    t->account = a;
    c->touch_slot[a] = c->ntouched;
    return t;
}

static void close_positions(struct core *c)
{
    uint32_t n = c->nev;
    uint16_t ninst = c->cfg.exch.engine.instruments_count;
    uint32_t accounts = atomic_load(&c->next_account);
    const struct engine *eng = exch_engine(c->x);
    uint32_t last_mark = 0;
    c->ntouched = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct event *e = &c->ev[k].ev;
        if (e->type == EV_INSTRUMENT && e->inst < INSTRUMENTS_MAX) {
            last_mark = k;
            px_t mark = c->ev[k].x.inst.mark_px;
            if (mark != c->mark_px[e->inst]) {
                c->mark_px[e->inst] = mark;
                for (uint32_t a = 1; a < accounts; a++)
                    if (exch_position_live(c->x, a, e->inst)) {
                        struct touched *t = touch(c, a);
                        t->last_touch = k;
                        t->had |= UINT64_C(1) << e->inst;
                        t->curs |= 1u << c->cfg.exch.inst[e->inst].currency;
                    }
            }
            continue;
        }
        uint32_t a = touched_account(e);
        if (a >= c->cfg.exch.engine.accounts_max)
            continue;
        struct touched *t = touch(c, a);
        t->last_touch = k;
        if (e->type == EV_MONEY)
            t->curs |= 1u << e->u.money.currency;
        else if (e->inst < c->cfg.exch.engine.instruments_count)
            t->curs |= 1u << c->cfg.exch.inst[e->inst].currency;
        bool wallet_only = e->type == EV_MONEY &&
                           (e->u.money.kind == MK_DEPOSIT || e->u.money.kind == MK_WITHDRAWAL ||
                            e->u.money.kind == MK_INSURANCE);
        if (e->inst < INSTRUMENTS_MAX && !wallet_only) {
            t->had |= UINT64_C(1) << e->inst;
            if (e->type == EV_POSITION)
                t->last_pos[e->inst] = k + 1;
        }
    }
    for (uint32_t m = 0; m < c->ntouched; m++) {
        struct touched *t = &c->touched[m];
        uint32_t touch_at = last_mark > t->last_touch ? last_mark : t->last_touch;
        for (uint16_t i = 0; i < ninst; i++) {
            if (t->last_pos[i] && t->last_pos[i] - 1 >= touch_at)
                continue; /* its last position event came after everything */
            if (!(t->had >> i & 1) && engine_position(eng, t->account, i) == 0)
                continue;
            struct event pe;
            memset(&pe, 0, sizeof(pe));
            pe.type = EV_POSITION;
            pe.account = t->account;
            pe.inst = i;
            pe.seq = c->ev[0].ev.seq;
            pe.ts = c->ev[0].ev.ts;
            sink(c, &pe);
        }
    }
    for (uint32_t m = 0; m < c->ntouched; m++) {
        uint32_t a = c->touched[m].account;
        c->touch_slot[a] = 0;
        for (uint8_t cur = 0; cur < c->cfg.exch.currencies_count; cur++) {
            if (!(c->touched[m].curs >> cur & 1))
                continue;
            c->ev = room_for_one(c->ev, &c->cap_ev, c->nev, sizeof(*c->ev));
            struct rec_event *re = &c->ev[c->nev];
            memset(re, 0, sizeof(*re));
            if (exch_margin(c->x, a, cur, &re->x.margin) != 0)
                continue;
            re->ev.type = EV_MARGIN;
            re->ev.account = a;
            re->ev.reason = cur;
            re->ev.inst = UINT16_MAX;
            re->ev.seq = c->ev[0].ev.seq;
            re->ev.ts = c->ev[0].ev.ts;
            c->nev++;
        }
    }
}

/* A fill or a transfer of contracts changes an instrument's open interest
 * (its state, as EV_INSTRUMENT carries it) without an instrument event:
 * at the end of the command each such instrument gets one, unless one came
 * after its last fill. */
static void close_instruments(struct core *c)
{
    uint32_t n = c->nev;
    uint64_t done = 0; /* instruments closed by this pass (INSTRUMENTS_MAX <= 64) */
    for (uint32_t k = n; k-- > 0;) {
        const struct event *e = &c->ev[k].ev;
        uint16_t i = e->inst;
        if (i >= 64 || (done >> i & 1))
            continue;
        if (e->type == EV_INSTRUMENT) {
            done |= UINT64_C(1) << i; /* already as it is now */
            continue;
        }
        bool moves = e->type == EV_FILL ||
                     (e->type == EV_MONEY && (e->u.money.kind == MK_LIQUIDATION ||
                                              e->u.money.kind == MK_DELEVERAGE ||
                                              e->u.money.kind == MK_SETTLEMENT));
        if (!moves)
            continue;
        done |= UINT64_C(1) << i;
        struct event ie;
        memset(&ie, 0, sizeof(ie));
        ie.type = EV_INSTRUMENT;
        ie.inst = i;
        ie.seq = e->seq;
        ie.ts = e->ts;
        sink(c, &ie);
    }
}

/* Copies r for the after-lock consumers (state lock held for writing, so
 * the queue is in sequence order). */
static void queue_copy(struct core *c, const struct core_record *r)
{
    size_t tl = r->cmd->text ? strlen(r->cmd->text) + 1 : 0;
    size_t evb = (size_t)r->nev * sizeof(struct rec_event);
    struct owned_rec *o = malloc(sizeof(*o) + evb + tl);
    if (!o) {
        fprintf(stderr, "perpsim: out of memory for the change stream: stopping\n");
        abort();
    }
    o->next = NULL;
    o->cmd = *r->cmd;
    if (evb)
        memcpy(o->ev, r->ev, evb);
    if (tl) {
        char *t = (char *)o->ev + evb;
        memcpy(t, r->cmd->text, tl);
        o->cmd.text = t;
    }
    o->r = *r;
    o->r.cmd = &o->cmd;
    o->r.ev = o->ev;
    pthread_mutex_lock(&c->pend_lock);
    if (c->pend_tail)
        c->pend_tail->next = o;
    else
        c->pend_head = o;
    c->pend_tail = o;
    pthread_mutex_unlock(&c->pend_lock);
}

/* The queued records a consumer may have now (pend_lock held): all of
 * them, or behind the gate those the journal has. */
static struct owned_rec *take_deliverable(struct core *c)
{
    struct owned_rec *h = c->pend_head;
    if (!c->gated) {
        c->pend_head = c->pend_tail = NULL;
        return h;
    }
    uint64_t d = atomic_load(&c->durable);
    if (!h || h->r.seq > d)
        return NULL;
    struct owned_rec *last = h;
    while (last->next && last->next->r.seq <= d)
        last = last->next;
    c->pend_head = last->next;
    if (!c->pend_head)
        c->pend_tail = NULL;
    last->next = NULL;
    return h;
}

/* Hands the queued records to the after-lock consumers, in order, outside
 * the state lock. One thread delivers at a time; a thread that finds
 * another delivering leaves its records to it (the deliverer looks again
 * after letting go, so none is stranded). */
static void deliver(struct core *c)
{
    if (!c->any_after)
        return;
    for (;;) {
        if (pthread_mutex_trylock(&c->deliver_lock) != 0)
            return;
        for (;;) {
            pthread_mutex_lock(&c->pend_lock);
            struct owned_rec *h = take_deliverable(c);
            pthread_mutex_unlock(&c->pend_lock);
            if (!h)
                break;
            while (h) {
                struct owned_rec *next = h->next;
                int owner = -1;
                for (int k = 0; k < c->ncons; k++)
                    if (c->cons[k].owner)
                        owner = k;
                    else if (!c->cons[k].in_lock)
                        c->cons[k].fn(c->cons[k].ctx, &h->r);
                if (owner >= 0)
                    c->cons[owner].fn(c->cons[owner].ctx, &h->r); /* last: it keeps the copy */
                else
                    free(h);
                h = next;
            }
        }
        pthread_mutex_unlock(&c->deliver_lock);
        pthread_mutex_lock(&c->pend_lock);
        bool more = c->pend_head != NULL &&
                    (!c->gated || c->pend_head->r.seq <= atomic_load(&c->durable));
        pthread_mutex_unlock(&c->pend_lock);
        if (!more)
            return;
    }
}

/* Applies one command now (state lock held for writing): its sequence
 * number, its time, the command, its record to the consumers. */
static int32_t apply_now(struct core *c, struct core_cmd *cc);

static int32_t apply(struct core *c, struct core_cmd *cc)
{
    ms_t now = c->cfg.clock.now(c->cfg.clock.ctx);
    if (now > c->now)
        c->now = now;
    return apply_now(c, cc);
}

/* The next account number: the state's, or a rebuild's (which readers
 * without the state lock do not see until it is in place). */
static uint32_t accounts_made(const struct core *c)
{
    return c->rebuilding ? c->rb_next_account : atomic_load(&c->next_account);
}

/* A new order refused: its EV_REJECTED carries the order as it was asked
 * (ordType and timeInForce derived as the engine does) and the next
 * Rejected id, so the read models keep it (store.h). Not for a command
 * that names no instrument or comes out of sequence. */
static void name_rejected(struct core *c, const struct cmd *x, int32_t res)
{
    if (!c->cfg.limits.keep_rejected || res == REJ_BAD_SEQUENCE || res == REJ_UNKNOWN_COMMAND ||
        res == REJ_UNKNOWN_SYMBOL || res == REJ_UNKNOWN_ACCOUNT || res >= REJ_COUNT ||
        x->inst >= c->cfg.exch.engine.instruments_count)
        return;
    /* The command's own: a refusal emits one EV_REJECTED of its account,
     * and changes nothing, so it is the record's last event. */
    struct event *ev = c->nev ? &c->ev[c->nev - 1].ev : NULL;
    if (!ev || ev->type != EV_REJECTED || ev->account != x->account || ev->order.id)
        return;
    const struct cmd_new_order *n = &x->u.new_order;
    struct order_view *v = &ev->order;
    memset(v, 0, sizeof(*v));
    v->id = exch_take_order_id(c->x);
    v->slot = ENGINE_NIL;
    v->account = x->account;
    v->inst = x->inst;
    v->side = n->side != SIDE_NONE ? n->side : n->qty < 0 ? SIDE_SELL : SIDE_BUY;
    engine_order_defaults(n, &v->ord_type, &v->tif);
    v->peg_type = n->peg_type;
    v->contingency = n->contingency;
    v->exec_inst = n->exec_inst;
    v->status = ST_REJECTED;
    v->qty = !(n->has & HAS_QTY) ? 0 : n->qty == INT64_MIN ? INT64_MAX : n->qty < 0 ? -n->qty : n->qty;
    v->display_qty = (n->has & HAS_DISPLAY_QTY) ? n->display_qty : -1;
    v->price = (n->has & HAS_PRICE) ? n->price : 0;
    v->stop_px = (n->has & HAS_STOP_PX) ? n->stop_px : 0;
    v->peg_offset_px = (n->has & HAS_PEG_OFFSET) ? n->peg_offset_px : 0;
    memcpy(ev->u.ids.clordid, n->clordid, sizeof(ev->u.ids.clordid));
    memcpy(ev->u.ids.clordlinkid, n->clordlinkid, sizeof(ev->u.ids.clordlinkid));
}

/* Applies cc at engine time c->now. */
static int32_t apply_now(struct core *c, struct core_cmd *cc)
{
    cc->seq = ++c->seq;
    cc->ts = c->now;
    c->nev = 0;
    int32_t res = REJ_NONE;
    switch (cc->type) {
    case CC_EXCH:
        cc->x.seq = cc->seq;
        cc->x.ts = cc->ts;
        /* An account not made (or undone by a restore: a request signed
         * with its key during the rebuild) changes nothing. */
        if (cc->x.account != EXCH_LIQUIDATOR && cc->x.account >= accounts_made(c)) {
            res = REJ_UNKNOWN_ACCOUNT;
            break;
        }
        res = exch_apply(c->x, &cc->x);
        if (res != REJ_NONE && cc->x.type == CMD_NEW_ORDER)
            name_rejected(c, &cc->x, res);
        close_positions(c);
        close_instruments(c);
        break;
    case CC_ACCOUNT: {
        uint32_t a = accounts_made(c);
        if (a >= c->cfg.exch.engine.accounts_max) {
            res = REJ_CORE_ACCOUNTS_FULL;
            break;
        }
        cc->account = a;
        if (cc->account_flags & (CORE_ACCOUNT_NO_ROWS | CORE_ACCOUNT_AGENT))
            exch_spam_exempt(c->x, a); /* an agent's ladder is liquidity, not spam */
        if (c->rebuilding)
            c->rb_next_account = a + 1;
        else
            atomic_store(&c->next_account, a + 1);
        break;
    }
    case CC_KEY:
        cc->key.created_ms = cc->ts;
        if (cc->key.ncidr > KEY_CIDRS_MAX || cc->key.account == 0 || cc->key.account >= accounts_made(c) ||
            keys_add(c->kp, &cc->key) != 0)
            res = REJ_CORE_BAD_KEY;
        else if (!c->rebuilding)
            keys_add(&c->keys_ever, &cc->key); /* taken once already when a restore undid it */
        break;
    default: /* CC_CONFIG: the state was made from it by core_create;
              * CC_CHECKPOINT, CC_RESTORE: their callers' */
        break;
    }
    struct core_record r = {cc->seq, cc->ts, cc, res, c->nev, c->ev};
    if (c->rebuilding) {
        /* A restore's rebuild: the fresh read model and the rebuilders'
         * own state see it; nobody else (it is not a new command). */
        c->cons[0].fn(c->cons[0].ctx, &r);
        for (int k = 0; k < c->nrbs; k++)
            c->rbs[k].record(c->rbs[k].ctx, &r);
        return res;
    }
    for (int k = 0; k < c->ncons; k++)
        if (c->cons[k].in_lock)
            c->cons[k].fn(c->cons[k].ctx, &r);
    if (c->any_after)
        queue_copy(c, &r);
    atomic_fetch_add(&c->commands, 1);
    return res;
}

static int32_t apply_exch(struct core *c, struct cmd *x, const char *text)
{
    struct core_cmd cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_EXCH;
    cc.x = *x;
    cc.text = text;
    int32_t res = apply(c, &cc);
    *x = cc.x;
    return res;
}

/* The job's own new order and canceled orders, from the record just made. */
static uint64_t new_order_of(const struct core *c, uint32_t account)
{
    for (uint32_t k = 0; k < c->nev; k++)
        if (c->ev[k].ev.type == EV_NEW && c->ev[k].ev.order.account == account)
            return c->ev[k].ev.order.id;
    return 0;
}

static uint64_t rejected_order_of(const struct core *c)
{
    const struct event *ev = c->nev ? &c->ev[c->nev - 1].ev : NULL; /* name_rejected's */
    return ev && ev->type == EV_REJECTED ? ev->order.id : 0;
}

static void canceled_rows(struct core *c, struct core_job *j)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < c->nev; k++)
        n += c->ev[k].ev.type == EV_CANCELED && c->ev[k].ev.order.account == j->account;
    if (!n)
        return;
    struct ord_rec *rows = malloc(n * sizeof(*rows));
    if (!rows)
        return;
    uint32_t m = 0;
    for (uint32_t k = 0; k < c->nev; k++) {
        const struct event *e = &c->ev[k].ev;
        if (e->type != EV_CANCELED || e->order.account != j->account)
            continue;
        const struct ord_rec *o = store_order(c->st, e->order.id);
        if (o)
            rows[m++] = *o;
    }
    if (j->rows != j->rows_inline)
        free(j->rows);
    j->rows = rows;
    j->nrows = m;
}

static void run_account(struct core *c, struct core_job *j)
{
    /* Refused before any command when the key cannot be made: an account
     * is never left without its key. */
    struct key_rec taken;
    if (!j->key.id[0] || j->key.ncidr > KEY_CIDRS_MAX || keys_get(c->kp, j->key.id, &taken)) {
        j->status = REJ_CORE_BAD_KEY;
        return;
    }
    struct core_cmd cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_ACCOUNT;
    cc.account_flags = j->account_flags;
    j->status = apply(c, &cc);
    if (j->status != REJ_NONE)
        return;
    j->account = cc.account;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_KEY;
    cc.key = j->key;
    cc.key.account = j->account;
    j->status = apply(c, &cc);
    if (j->status != REJ_NONE)
        return;
    j->key = cc.key;
    for (uint32_t i = 0; i < j->n; i++) {
        j->cmds[i].account = j->account;
        j->rej[i] = (enum reject)apply_exch(c, &j->cmds[i], NULL);
        if (j->cmds[i].type == CMD_DEPOSIT || j->cmds[i].type == CMD_WITHDRAW)
            exch_margin(c->x, j->account, j->cmds[i].u.money.currency, &j->margin);
    }
}

void core_batch_push(struct core_batch *b, const struct cmd *x)
{
    b->cmds = room_for_one(b->cmds, &b->cap, b->n, sizeof(*b->cmds));
    b->cmds[b->n++] = *x;
}

/* A whole job applied (state lock held for writing). */
static void commit(struct core *c)
{
    if (c->commit)
        c->commit(c->commit_ctx);
}

/* The timer's turn at engine time t (state lock held for writing): what it
 * decides, applied in order. */
static void timer_step(struct core *c, ms_t t)
{
    if (t > c->now)
        c->now = t;
    c->batch.n = 0;
    c->timer.fire(c->timer.ctx, c->now, &c->view, &c->batch);
    for (uint32_t i = 0; i < c->batch.n; i++)
        apply_exch(c, &c->batch.cmds[i], NULL);
}

void core_set_timer(struct core *c, const struct core_timer *t)
{
    pthread_rwlock_wrlock(&c->lock);
    if (t)
        c->timer = *t;
    else
        memset(&c->timer, 0, sizeof(c->timer));
    atomic_store(&c->has_timer, t != NULL);
    pthread_rwlock_unlock(&c->lock);
}

static ms_t pair_next(void *ctx)
{
    const struct core_timer_pair *p = ctx;
    ms_t a = p->a.next(p->a.ctx), b = p->b.next(p->b.ctx);
    return a <= b ? a : b;
}

static void pair_fire(void *ctx, ms_t t, const struct core_view *v, struct core_batch *out)
{
    const struct core_timer_pair *p = ctx;
    if (p->a.next(p->a.ctx) <= p->b.next(p->b.ctx))
        p->a.fire(p->a.ctx, t, v, out);
    else
        p->b.fire(p->b.ctx, t, v, out);
}

static void pair_rewound(void *ctx, ms_t t, const struct core_view *v)
{
    const struct core_timer_pair *p = ctx;
    if (p->a.rewound)
        p->a.rewound(p->a.ctx, t, v);
    if (p->b.rewound)
        p->b.rewound(p->b.ctx, t, v);
}

struct core_timer core_timer_pair(struct core_timer_pair *p)
{
    return (struct core_timer){pair_next, pair_fire, p, pair_rewound};
}

/* Engine time to j->advance_to through each time something is due, a clock
 * command at each (its time set here: the clock source's may lag behind,
 * and the sequencer never lets time go back). */
static void run_advance(struct core *c, struct core_job *j)
{
    ms_t to = j->advance_to;
    for (uint32_t stops = 1;; stops++) {
        ms_t t = exch_next_event(c->x);
        ms_t tt = c->timer.next ? c->timer.next(c->timer.ctx) : INT64_MAX;
        if (tt < c->now)
            tt = c->now; /* due already: now */
        /* Done, and nothing else of the timer due now (a backtest's agents
         * take their turn at the last row's time too). */
        if (j->until_done && tt > c->now && j->until_done(j->until_ctx)) {
            to = c->now;
            break;
        }
        if (tt <= t && tt <= j->advance_to) {
            timer_step(c, tt);
            if (c->batch.n == 0 && t <= c->now) {
                struct cmd x;
                memset(&x, 0, sizeof(x));
                x.type = CMD_CLOCK;
                apply_exch(c, &x, NULL);
            }
        } else {
            if (t > j->advance_to)
                break;
            /* Due already (engine time ran ahead of it): now. */
            if (t > c->now)
                c->now = t;
            struct cmd x;
            memset(&x, 0, sizeof(x));
            x.type = CMD_CLOCK;
            apply_exch(c, &x, NULL);
            if (exch_next_event(c->x) <= c->now)
                break; /* nothing moved on: never loop in place */
        }
        /* A long advance (a simulated day is 1,440 stops) lets readers in
         * between its commands, as between any two: the job keeps the
         * write queue's turn, so no other write comes in between. */
        if (stops % ADVANCE_STOPS_PER_LOCK == 0) {
            commit(c); /* each stop is a whole state: the journal may have them */
            pthread_rwlock_unlock(&c->lock);
            deliver(c);
            pthread_rwlock_wrlock(&c->lock);
        }
    }
    if (to > c->now)
        c->now = to;
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_CLOCK;
    apply_exch(c, &x, NULL);
}

/* ---- checkpoints and restores (core.h) ---------------------------------------------- */

static uint64_t state_hash(struct core *c);
static void audit_fail(void *ctx, const struct cmd *c, const struct exch_audit *a);

static const struct core_checkpoint *find_checkpoint(const struct core *c, const char *name)
{
    for (uint32_t i = 0; i < c->ncps; i++)
        if (strcmp(c->cps[i].name, name) == 0)
            return &c->cps[i];
    return NULL;
}

/* A checkpoint command applied (live or replayed): kept, with its hash. */
static void note_checkpoint(struct core *c, const struct core_cmd *cc, struct core_checkpoint *out)
{
    struct core_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    snprintf(cp.name, sizeof(cp.name), "%s", cc->text ? cc->text : "");
    cp.seq = cc->seq;
    cp.time = cc->ts;
    cp.hash = state_hash(c);
    c->cps = room_for_one(c->cps, &c->cap_cps, c->ncps, sizeof(*c->cps));
    c->cps[c->ncps++] = cp;
    if (out)
        *out = cp;
}

/* A rebuild's path through the journal: the commands whose state the
 * checkpoint is, as ranges of sequence numbers in order. A range after the
 * first starts with a restore, whose state the range before it ends in. */
struct span {
    uint64_t lo, hi;
};

struct walk {
    struct core *c;
    struct span *sp;
    uint32_t n, k;
};

/* The path to command `to`: from the last restore at or before it back to
 * its checkpoint, and so on back to command 1. */
static struct span *path_to(const struct core *c, uint64_t to, uint32_t *n)
{
    struct span *sp = malloc((c->njumps + 1) * sizeof(*sp));
    if (!sp)
        return NULL;
    uint32_t m = 0, j = c->njumps;
    uint64_t hi = to;
    for (;;) {
        while (j > 0 && c->jumps[j - 1].seq > hi)
            j--;
        if (j == 0) {
            sp[m++] = (struct span){1, hi};
            break;
        }
        sp[m++] = (struct span){c->jumps[j - 1].seq, hi};
        hi = c->jumps[j - 1].target;
        j--;
    }
    for (uint32_t a = 0, b = m - 1; a < b; a++, b--) {
        struct span t = sp[a];
        sp[a] = sp[b];
        sp[b] = t;
    }
    *n = m;
    return sp;
}

static int walk_one(void *ctx, const struct core_cmd *in, char *err, size_t errcap)
{
    struct walk *w = ctx;
    struct core *c = w->c;
    while (w->k < w->n && in->seq > w->sp[w->k].hi)
        w->k++;
    if (w->k == w->n || in->seq < w->sp[w->k].lo)
        return 0; /* not on the path: undone by a restore on it */
    struct core_cmd cc = *in;
    if (w->k > 0 && in->seq == w->sp[w->k].lo) {
        /* An earlier restore: the state is its checkpoint's already. */
        if (in->type != CC_RESTORE || in->target_seq != c->seq) {
            snprintf(err, errcap, "command %" PRIu64 " is not the restore the path expects", in->seq);
            return -1;
        }
        c->seq = in->seq - 1;
    } else if (in->seq != c->seq + 1 || in->type == CC_RESTORE) {
        snprintf(err, errcap, "command %" PRIu64 " where %" PRIu64 " was next", in->seq, c->seq + 1);
        return -1;
    }
    if (cc.type == CC_CONFIG) {
        cc.config = &c->cfg.exch;
        cc.limits = &c->cfg.limits;
    }
    c->now = in->ts;
    apply_now(c, &cc);
    if (in->type == CC_ACCOUNT && cc.account != in->account) {
        snprintf(err, errcap, "command %" PRIu64 " made account %u, the journal says %u", in->seq, cc.account,
                 in->account);
        return -1;
    }
    return 0;
}

/* The state of checkpoint `to` (its hash `hash`; its time want_ts unless
 * 0) rebuilt from the journal in place of the current one (state lock held
 * for writing). The rebuilders are told of restore_seq. -1 with a message,
 * the state as it was. */
static int rebuild(struct core *c, uint64_t to, uint64_t hash, ms_t want_ts, uint64_t restore_seq, char *err,
                   size_t errcap)
{
    const char *e = NULL;
    struct exch *x = exch_create(&c->cfg.exch, sink, c, &e);
    if (!x) {
        snprintf(err, errcap, "exchange config: %s", e ? e : "?");
        return -1;
    }
    exch_on_audit_fail(x, audit_fail, c);
    struct store *st = store_create(exch_config(x), c->cfg.exch.engine.accounts_max, c->cfg.limits);
    uint32_t nsp = 0;
    struct span *sp = st && store_explain_on(st) == 0 ? path_to(c, to, &nsp) : NULL;
    if (!sp) {
        store_destroy(st);
        exch_destroy(x);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    struct keys keys;
    keys_init(&keys);
    struct exch *old_x = c->x;
    struct store *old_st = c->st;
    uint64_t old_seq = c->seq;
    ms_t old_now = c->now;
    px_t old_mark[INSTRUMENTS_MAX];
    memcpy(old_mark, c->mark_px, sizeof(old_mark));
    c->x = x;
    c->st = st;
    c->cons[0].ctx = st;
    c->kp = &keys;
    c->rb_next_account = 1;
    c->seq = 0;
    c->now = 0;
    memset(c->mark_px, 0, sizeof(c->mark_px));
    c->rebuilding = true;
    for (int k = 0; k < c->nrbs; k++)
        c->rbs[k].begin(c->rbs[k].ctx, restore_seq);
    struct walk w = {c, sp, nsp, 0};
    int rc = c->history(c->history_ctx, to, walk_one, &w, err, errcap);
    if (rc == 0 && c->seq != to) {
        snprintf(err, errcap, "the journal ends at command %" PRIu64 ", before the checkpoint's %" PRIu64, c->seq,
                 to);
        rc = -1;
    }
    if (rc == 0) {
        uint64_t h = state_hash(c);
        if (h != hash) {
            snprintf(err, errcap, "the rebuilt state's hash is %016" PRIx64 ", the checkpoint's %016" PRIx64, h,
                     hash);
            rc = -1;
        }
    }
    if (rc == 0 && want_ts && c->now != want_ts) {
        snprintf(err, errcap, "the checkpoint's time is %" PRId64 ", the restore's %" PRId64, c->now, want_ts);
        rc = -1;
    }
    c->rebuilding = false;
    free(sp);
    for (int k = 0; k < c->nrbs; k++)
        c->rbs[k].end(c->rbs[k].ctx, rc == 0);
    if (rc != 0) {
        c->x = old_x;
        c->st = old_st;
        c->cons[0].ctx = old_st;
        c->kp = &c->keys;
        c->seq = old_seq;
        c->now = old_now;
        memcpy(c->mark_px, old_mark, sizeof(old_mark));
        store_destroy(st);
        exch_destroy(x);
        keys_destroy(&keys);
        return -1;
    }
    keys_swap(&c->keys, &keys);
    c->kp = &c->keys;
    atomic_store(&c->next_account, c->rb_next_account);
    keys_destroy(&keys);
    store_destroy(old_st);
    exch_destroy(old_x);
    return 0;
}

/* The restore's own command, at restore_seq, on the rebuilt state: the
 * sequence goes on, at the checkpoint's time. */
static void apply_restore(struct core *c, const char *name, uint64_t target, uint64_t hash, uint64_t restore_seq)
{
    struct core_cmd cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_RESTORE;
    cc.text = name;
    cc.target_seq = target;
    cc.target_hash = hash;
    c->seq = restore_seq - 1;
    apply_now(c, &cc);
    c->jumps = room_for_one(c->jumps, &c->cap_jumps, c->njumps, sizeof(*c->jumps));
    c->jumps[c->njumps++] = (struct restore_jump){cc.seq, target};
}

static void run_checkpoint(struct core *c, struct core_job *j)
{
    /* Refused before any command: only checkpoints that can be restored
     * are in the sequence. */
    if (c->no_restore)
        j->status = REJ_CORE_NO_RESTORE;
    else if (!c->history)
        j->status = REJ_CORE_NO_JOURNAL;
    else if (find_checkpoint(c, j->cp->name))
        j->status = REJ_CORE_CHECKPOINT_TAKEN;
    else if (c->ncps >= CORE_CHECKPOINTS_MAX)
        j->status = REJ_CORE_CHECKPOINTS_FULL;
    if (j->status != REJ_NONE)
        return;
    struct core_cmd cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_CHECKPOINT;
    cc.text = j->cp->name;
    apply(c, &cc);
    note_checkpoint(c, &cc, j->cp);
}

static void run_restore(struct core *c, struct core_job *j)
{
    const struct core_checkpoint *cp = find_checkpoint(c, j->cp->name);
    if (!cp)
        j->status = REJ_CORE_NO_CHECKPOINT;
    else if (c->no_restore)
        j->status = REJ_CORE_NO_RESTORE;
    else if (!c->history)
        j->status = REJ_CORE_NO_JOURNAL;
    else if (c->gated && cp->seq > atomic_load(&c->durable))
        j->status = REJ_CORE_NOT_DURABLE;
    if (j->status != REJ_NONE)
        return;
    struct core_checkpoint want = *cp;
    uint64_t restore_seq = c->seq + 1;
    char err[512];
    if (rebuild(c, want.seq, want.hash, 0, restore_seq, err, sizeof(err)) != 0) {
        fprintf(stderr, "perpsim: restoring checkpoint %s (command %" PRIu64 ") failed: %s; nothing changed\n",
                want.name, want.seq, err);
        j->status = REJ_CORE_RESTORE_FAILED;
        return;
    }
    apply_restore(c, want.name, want.seq, want.hash, restore_seq);
    if (c->cfg.clock.rewind)
        c->cfg.clock.rewind(c->cfg.clock.ctx, c->now);
    if (c->timer.rewound)
        c->timer.rewound(c->timer.ctx, c->now, &c->view);
    *j->cp = want;
    j->cp->restore_seq = restore_seq;
}

int core_checkpoints(struct core *c, struct core_checkpoint *out, int max)
{
    pthread_rwlock_rdlock(&c->lock);
    int n = (int)c->ncps;
    for (int i = 0; i < n && i < max; i++)
        out[i] = c->cps[i];
    pthread_rwlock_unlock(&c->lock);
    return n;
}

void core_set_history(struct core *c, core_history_fn fn, void *ctx)
{
    pthread_rwlock_wrlock(&c->lock);
    c->history = fn;
    c->history_ctx = ctx;
    pthread_rwlock_unlock(&c->lock);
}

bool core_has_history(struct core *c)
{
    pthread_rwlock_rdlock(&c->lock);
    bool h = c->history != NULL;
    pthread_rwlock_unlock(&c->lock);
    return h;
}

int core_add_rebuilder(struct core *c, const struct core_rebuilder *rb)
{
    if (c->nrbs >= REBUILDERS_MAX || atomic_load(&c->opened))
        return -1;
    c->rbs[c->nrbs++] = *rb;
    return 0;
}

void core_forbid_restore(struct core *c)
{
    pthread_rwlock_wrlock(&c->lock);
    c->no_restore = true;
    pthread_rwlock_unlock(&c->lock);
}

static void run_job(struct core *c, struct core_job *j)
{
    pthread_rwlock_wrlock(&c->lock);
    if (j->kind == J_ACCOUNT) {
        run_account(c, j);
    } else if (j->kind == J_ADVANCE) {
        run_advance(c, j);
    } else if (j->kind == J_CHECKPOINT) {
        run_checkpoint(c, j);
    } else if (j->kind == J_RESTORE) {
        run_restore(c, j);
    } else {
        for (uint32_t i = 0; i < j->n; i++) {
            struct cmd *x = &j->cmds[i];
            j->rej[i] = (enum reject)apply_exch(c, x, j->texts[i]);
            if (j->kind == J_ORDERS) {
                /* A refused order's row is its Rejected one (never another
                 * new order in the record: a liquidation's, say). */
                uint64_t show = x->type != CMD_NEW_ORDER ? j->target[i]
                                : j->rej[i] != REJ_NONE  ? rejected_order_of(c)
                                                         : new_order_of(c, j->account);
                const struct ord_rec *o = store_order(c->st, show);
                if (o)
                    j->rows[i] = *o;
            }
            if (j->kind == J_CANCEL_ALL)
                canceled_rows(c, j);
            if (j->kind == J_POSITION)
                exch_position(c->x, j->account, x->inst, &j->pos);
            if (j->kind == J_MONEY && (x->type == CMD_DEPOSIT || x->type == CMD_WITHDRAW))
                exch_margin(c->x, x->account, x->u.money.currency, &j->margin);
        }
    }
    j->ts = c->now;
    j->seq = c->seq;
    commit(c);
    pthread_rwlock_unlock(&c->lock);
    deliver(c);
}

static void open_sequence(struct core *c);

/* The job's completion, unless the gate holds it until the journal has
 * its last command (a job without done() is its caller's at once: core_run
 * at start-up, tests). */
static void finish(struct core *c, struct core_job *j)
{
    if (!j->done)
        return;
    if (c->gated) {
        pthread_mutex_lock(&c->gate_lock);
        if (j->seq > atomic_load(&c->durable)) {
            j->gate_next = c->waiting;
            c->waiting = j;
            pthread_mutex_unlock(&c->gate_lock);
            return;
        }
        pthread_mutex_unlock(&c->gate_lock);
    }
    j->done(j);
}

void core_run(struct core *c, struct core_job *j)
{
    if (!atomic_load(&c->opened))
        open_sequence(c);
    run_job(c, j);
    finish(c, j);
}

static void clock_tick(struct core *c)
{
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_CLOCK;
    pthread_rwlock_wrlock(&c->lock);
    apply_exch(c, &x, NULL);
    commit(c);
    pthread_rwlock_unlock(&c->lock);
    deliver(c);
}

void core_set_ticking(struct core *c, bool on)
{
    atomic_store(&c->ticking, on);
}

void core_tick(struct core *c)
{
    if (!atomic_load(&c->opened))
        open_sequence(c);
    clock_tick(c);
}

/* ---- the engine thread and rule 5a ----------------------------------------------- */

/* Writes a submitting thread serves after its own, from the queue, before
 * it hands the rest to the engine thread: its own reply waits for them. */
#define SERVE_MORE_MAX 8u

/* Loadshed rule 5a: the queue handed job j back; serve it here, then the
 * single writes queued behind it meanwhile, up to SERVE_MORE_MAX. */
static void serve_here(struct core *c, struct core_job *j)
{
    unsigned more = 0;
    struct ls_entry next;
    for (;;) {
        int64_t t0 = ls_now_ns();
        bool costless = j->kind == J_RESTORE || j->kind == J_CHECKPOINT; /* as engine_main says */
        run_job(c, j);
        int64_t t1 = ls_now_ns();
        finish(c, j);
        if (!ls_run_done(c->q, costless ? 0 : t1 - t0, more < SERVE_MORE_MAX, &next))
            return;
        j = next.item;
        more++;
    }
}

enum ls_result core_submit(struct core *c, struct core_job *j, enum ls_kind kind, bool exempt)
{
    /* On an idle engine a single write runs here, in its place in the one
     * sequence (loadshed rule 5a). Cancel-all, account and multi-order
     * bulk jobs, whose size has no small bound, and the demonstration
     * delay stay on the engine thread so a submitting thread never stalls
     * its other work for long. */
    bool run_now = false;
    int64_t t0 = ls_now_ns();
    bool here = !c->cfg.engine_thread_only && !j->engine_thread && c->cfg.engine_delay_ns == 0 && j->n == 1 &&
                j->kind != J_CANCEL_ALL && j->kind != J_ACCOUNT && j->kind != J_ADVANCE;
    enum ls_result res = here ? ls_submit_run(c->q, j, kind, exempt, t0, &run_now)
                              : ls_submit(c->q, j, kind, exempt, t0);
    if (res == LS_ACCEPTED && run_now)
        serve_here(c, j);
    return res;
}

/* The demonstration delay: waits until the queue's clock reads `until`,
 * sleeping all but the last 0.1 ms (the core stays free for the HTTP
 * threads), then spinning, so the service time is the one asked for. */
static void delay_until(int64_t until)
{
    int64_t ns = until - ls_now_ns();
    if (ns > 200000) {
        struct timespec ts = {(time_t)((ns - 100000) / 1000000000), (long)((ns - 100000) % 1000000000)};
        nanosleep(&ts, NULL);
    }
    while (ls_now_ns() < until)
        ;
}

/* A timer job's completion: one fewer in flight. */
static void timer_job_done(struct core_job *j)
{
    struct core *c = j->ctx;
    core_job_free(j);
    atomic_fetch_sub(&c->timer_inflight, 1);
}

/* One of the timer's commands as a job of its own in the write queue, as a
 * user's write would be: an index move exempt (a feed, not a client), the
 * rest not (under overload the agents are shed like anyone). */
static void submit_timer_cmd(struct core *c, const struct cmd *x)
{
    enum job_kind jk = J_ORDERS;
    enum ls_kind lk = LS_KIND_OTHER;
    bool exempt = false;
    switch (x->type) {
    case CMD_NEW_ORDER: lk = LS_KIND_NEW_ORDER; break;
    case CMD_AMEND: lk = LS_KIND_AMEND; break;
    case CMD_CANCEL: lk = LS_KIND_CANCEL; exempt = true; break;
    case CMD_SET_INDEX: case CMD_SET_FUNDING: jk = J_INDEX; exempt = true; break;
    case CMD_SET_LEVERAGE: case CMD_SET_CROSS: case CMD_SET_RISK_LIMIT: case CMD_TRANSFER_MARGIN:
        jk = J_POSITION;
        lk = LS_KIND_POSITION;
        break;
    default: break;
    }
    struct core_job *j = core_job_new(jk, x->account, 1);
    if (!j)
        return; /* an agent's order lost to memory: as a client's would be */
    j->cmds[0] = *x;
    j->target[0] = x->type == CMD_AMEND ? x->u.amend.ref.order_id : x->type == CMD_CANCEL ? x->u.cancel.order_id : 0;
    j->done = timer_job_done;
    j->ctx = c;
    atomic_fetch_add(&c->timer_inflight, 1);
    if (core_submit(c, j, lk, exempt) != LS_ACCEPTED) {
        core_job_free(j);
        atomic_fetch_sub(&c->timer_inflight, 1);
    }
}

/* A running clock: the timer's turn, when due by the clock's now. Its
 * commands go through the write queue as jobs,
 * behind the users' writes already there (a stepped advance, itself a job
 * holding the queue's turn, applies them in place instead, which is what
 * makes a stepped run repeat command for command). */
static uint32_t timer_poll(struct core *c)
{
    /* One turn's commands in flight at a time: the timer decides again
     * only once its last decisions are applied, so it never decides from
     * a state without them, and never fills the queue (the engine thread,
     * the queue's only consumer, must never wait on it). */
    if (atomic_load(&c->timer_inflight) > 0)
        return 0;
    uint32_t n = 0;
    pthread_rwlock_wrlock(&c->lock);
    if (c->timer.next) {
        ms_t now = c->cfg.clock.now(c->cfg.clock.ctx);
        ms_t tt = c->timer.next(c->timer.ctx);
        if (tt <= now || tt <= c->now) {
            /* Decided at the clock's time; engine time moves only with the
             * commands, as they are applied. */
            c->batch.n = 0;
            c->timer.fire(c->timer.ctx, now > c->now ? now : c->now, &c->view, &c->batch);
            n = c->batch.n;
            c->poll = room_for_n(c->poll, &c->cap_poll, n, sizeof(*c->poll));
            if (n)
                memcpy(c->poll, c->batch.cmds, n * sizeof(*c->poll));
        }
    }
    pthread_rwlock_unlock(&c->lock);
    for (uint32_t i = 0; i < n; i++)
        submit_timer_cmd(c, &c->poll[i]);
    return n;
}

static void *engine_main(void *arg)
{
    struct core *c = arg;
    /* One write at a time: a write taken out of the queue no longer counts
     * toward its depth, so taking a batch would let another full queue in
     * behind it and double the worst wait the latency cap promises. */
    struct ls_entry batch[1];
    int64_t tick_ns = (int64_t)c->cfg.tick_ms * 1000000;
    int64_t last_cmd_ns = ls_now_ns(), last_poll_ns = 0;
    /* The timer acted at its last turn, so more of it may be due already
     * (history at N x real time): its next turn comes at once, after the
     * writes queued meanwhile, instead of at the next poll. */
    bool timer_hot = false;
    for (;;) {
        size_t n = 0;
        int64_t wait_ns = atomic_load(&c->has_timer) && tick_ns > (int64_t)CORE_TIMER_POLL_MS * 1000000
                              ? (int64_t)CORE_TIMER_POLL_MS * 1000000
                              : tick_ns;
        if (timer_hot)
            wait_ns = 0;
        enum ls_take_result t = ls_take(c->q, batch, 1, wait_ns, &n);
        if (t == LS_TAKE_CLOSED)
            break;
        int64_t now = ls_now_ns();
        if (atomic_load(&c->ticking) && now - last_cmd_ns >= tick_ns) {
            clock_tick(c);
            last_cmd_ns = now;
        }
        if (atomic_load(&c->has_timer) && atomic_load(&c->ticking) &&
            (timer_hot || now - last_poll_ns >= (int64_t)CORE_TIMER_POLL_MS * 1000000)) {
            timer_hot = timer_poll(c) > 0;
            last_poll_ns = now;
        } else if (!atomic_load(&c->ticking) || !atomic_load(&c->has_timer)) {
            timer_hot = false;
        }
        for (size_t i = 0; i < n; i++) {
            struct core_job *j = batch[i].item;
            int64_t t0 = ls_now_ns();
            uint64_t seq0 = c->seq;
            run_job(c, j);
            /* --engine-delay-us: every write takes at least that long, its
             * own work included, so the service time is known and steady
             * (a checked build's invariant walk grows with the state). */
            if (c->cfg.engine_delay_ns > 0)
                delay_until(t0 + c->cfg.engine_delay_ns);
            int64_t t1 = ls_now_ns();
            /* An advance (thousands of clock stops) or an account job is
             * not a write the queue's estimate should learn from: it
             * counts as the mean of its commands. */
            int64_t service = t1 - t0;
            if ((j->kind == J_ADVANCE || j->kind == J_ACCOUNT) && c->seq > seq0 + 1)
                service /= (int64_t)(c->seq - seq0);
            /* A restore's rebuild (a replay) or a checkpoint's hash is not a
             * write's cost either: it counts as none. */
            if (j->kind == J_RESTORE || j->kind == J_CHECKPOINT)
                service = 0;
            ls_done(c->q, 1, service);
            last_cmd_ns = t1;
            bool timer_job = j->done == timer_job_done;
            finish(c, j);
            /* The timer's last command applied: its next turn now rather
             * than at the next poll, so a timer behind the clock (history
             * at N x) catches up at the engine's pace, each turn still
             * behind the writes already queued. */
            if (timer_job && atomic_load(&c->timer_inflight) == 0 && atomic_load(&c->ticking)) {
                timer_hot = timer_poll(c) > 0;
                last_poll_ns = ls_now_ns();
            }
        }
    }
    return NULL;
}

/* ---- life ------------------------------------------------------------------------------ */

static void audit_fail(void *ctx, const struct cmd *c, const struct exch_audit *a)
{
    (void)ctx;
    fprintf(stderr,
            "perpsim: MONEY AUDIT FAILED after command seq %" PRIu64 " type %u account %u: %s\n"
            "perpsim: stopping the engine.\n",
            c->seq, c->type, c->account, a->report);
    fflush(stderr);
    abort();
}

static void store_consumer(void *ctx, const struct core_record *r)
{
    store_apply(ctx, r);
}

struct core *core_create(const struct core_config *cfg, char *err, size_t errcap)
{
    if (!cfg->clock.now) {
        snprintf(err, errcap, "no clock source");
        return NULL;
    }
    struct core *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (c->cfg.tick_ms <= 0)
        c->cfg.tick_ms = CORE_TICK_MS;
    c->view.c = c;
    atomic_init(&c->next_account, 1);
    atomic_init(&c->ticking, true);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers first: a stream of reads must not starve the engine. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&c->pend_lock, NULL);
    pthread_mutex_init(&c->deliver_lock, NULL);
    pthread_mutex_init(&c->hash_lock, NULL);
    pthread_mutex_init(&c->gate_lock, NULL);
    pthread_cond_init(&c->gate_cv, NULL);
    keys_init(&c->keys);
    keys_init(&c->keys_ever);
    c->kp = &c->keys;
    const char *e = NULL;
    c->x = exch_create(&c->cfg.exch, sink, c, &e);
    if (!c->x) {
        snprintf(err, errcap, "exchange config: %s", e ? e : "?");
        goto fail;
    }
    exch_on_audit_fail(c->x, audit_fail, c);
    c->st = store_create(exch_config(c->x), c->cfg.exch.engine.accounts_max, c->cfg.limits);
    if (!c->st || store_explain_on(c->st) != 0) {
        snprintf(err, errcap, "out of memory for the read model");
        goto fail;
    }
    c->touch_slot = calloc(c->cfg.exch.engine.accounts_max, sizeof(*c->touch_slot));
    if (!c->touch_slot) {
        snprintf(err, errcap, "out of memory for the accounts");
        goto fail;
    }
    c->cons[c->ncons++] = (struct consumer){store_consumer, c->st, true, false};
    if (ls_create(&c->cfg.ls, &c->q) != LS_OK) {
        snprintf(err, errcap, "write queue config");
        goto fail;
    }
    return c;
fail:
    core_destroy(c);
    return NULL;
}

/* Applies command 1 (the config the state was made from) and the initial
 * index prices, once, so that every consumer sees the sequence from its
 * start. */
static void open_sequence(struct core *c)
{
    pthread_rwlock_wrlock(&c->lock);
    if (atomic_load(&c->opened)) {
        pthread_rwlock_unlock(&c->lock);
        return;
    }
    atomic_store(&c->opened, true);
    struct core_cmd cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = CC_CONFIG;
    cc.config = &c->cfg.exch;
    cc.limits = &c->cfg.limits;
    apply(c, &cc);
    /* Initial index prices: marks exist before the first order. */
    for (uint16_t i = 0; i < c->cfg.exch.indices_count; i++) {
        if (c->cfg.index_px[i] <= 0)
            continue;
        struct cmd x;
        memset(&x, 0, sizeof(x));
        x.type = CMD_SET_INDEX;
        x.u.set_index.index = i;
        x.u.set_index.price = c->cfg.index_px[i];
        apply_exch(c, &x, NULL);
    }
    commit(c);
    pthread_rwlock_unlock(&c->lock);
    deliver(c);
}

int core_subscribe(struct core *c, core_consumer_fn fn, void *ctx, bool in_lock)
{
    if (atomic_load(&c->opened) || c->ncons == CONSUMERS_MAX)
        return -1;
    c->cons[c->ncons++] = (struct consumer){fn, ctx, in_lock, false};
    if (!in_lock)
        c->any_after = true;
    return 0;
}

int core_subscribe_owner(struct core *c, core_consumer_fn fn, void *ctx)
{
    if (atomic_load(&c->opened) || c->ncons == CONSUMERS_MAX)
        return -1;
    for (int k = 0; k < c->ncons; k++)
        if (c->cons[k].owner)
            return -1;
    c->cons[c->ncons++] = (struct consumer){fn, ctx, false, true};
    c->any_after = true;
    return 0;
}

void core_record_release(const struct core_record *r)
{
    if (r)
        free((char *)r - offsetof(struct owned_rec, r));
}

int core_start(struct core *c)
{
    open_sequence(c);
    if (c->started)
        return 0;
    if (pthread_create(&c->engine, NULL, engine_main, c) != 0)
        return -1;
    c->started = true;
    return 0;
}

void core_shutdown(struct core *c)
{
    if (!c->q)
        return;
    ls_shutdown(c->q);
    if (c->started) {
        pthread_join(c->engine, NULL);
        c->started = false;
    }
}

void core_destroy(struct core *c)
{
    if (!c)
        return;
    core_shutdown(c);
    if (c->gated && c->waiting) {
        /* The journal stopped before it had these (it closes after the
         * engine, so only a failed one does): their replies say so. */
        fprintf(stderr, "perpsim: replies held for a journal that stopped: released\n");
        core_durable(c, UINT64_MAX);
    }
    deliver(c);
    while (c->pend_head) {
        struct owned_rec *n = c->pend_head->next;
        free(c->pend_head);
        c->pend_head = n;
    }
    if (c->q)
        ls_destroy(c->q);
    store_destroy(c->st);
    exch_destroy(c->x);
    keys_destroy(&c->keys);
    keys_destroy(&c->keys_ever);
    free(c->cps);
    free(c->jumps);
    free(c->ev);
    free(c->touched);
    free(c->touch_slot);
    free(c->batch.cmds);
    free(c->poll);
    pthread_rwlock_destroy(&c->lock);
    pthread_mutex_destroy(&c->pend_lock);
    pthread_mutex_destroy(&c->deliver_lock);
    pthread_mutex_destroy(&c->hash_lock);
    pthread_mutex_destroy(&c->gate_lock);
    pthread_cond_destroy(&c->gate_cv);
    free(c);
}

/* ---- reads ---------------------------------------------------------------------------- */

struct ls_queue *core_queue(struct core *c)
{
    return c->q;
}

const struct exch_config *core_exch_config(const struct core *c)
{
    return &c->cfg.exch;
}

uint64_t core_commands(const struct core *c)
{
    return (uint64_t)atomic_load(&((struct core *)(uintptr_t)c)->commands);
}

bool core_key_get(struct core *c, const char *id, struct key_rec *out)
{
    return keys_get(&c->keys, id, out);
}

int core_keys_list(struct core *c, uint32_t account, struct key_rec *out, int max)
{
    return keys_list(&c->keys, account, out, max);
}

bool core_key_known(struct core *c, const char *id)
{
    struct key_rec k;
    return keys_get(&c->keys_ever, id, &k);
}

bool core_account_exists(const struct core *c, uint32_t account)
{
    return account > 0 && account < atomic_load(&((struct core *)(uintptr_t)c)->next_account);
}

const struct core_view *core_view_begin(struct core *c)
{
    pthread_rwlock_rdlock(&c->lock);
    return &c->view;
}

void core_view_end(const struct core_view *v)
{
    pthread_rwlock_unlock(&v->c->lock);
}

const struct exch_config *cv_config(const struct core_view *v)
{
    return &v->c->cfg.exch;
}

const struct store *cv_store(const struct core_view *v)
{
    return v->c->st;
}

bool cv_account_exists(const struct core_view *v, uint32_t account)
{
    return core_account_exists(v->c, account);
}

uint32_t cv_accounts_end(const struct core_view *v)
{
    return atomic_load(&((struct core *)(uintptr_t)v->c)->next_account);
}

uint64_t cv_seq(const struct core_view *v)
{
    return v->c->seq;
}

ms_t cv_now(const struct core_view *v)
{
    return v->c->now;
}

int cv_position(const struct core_view *v, uint32_t account, uint16_t inst, struct exch_position *out)
{
    return exch_position(v->c->x, account, inst, out);
}

int cv_margin(const struct core_view *v, uint32_t account, uint8_t cur, struct exch_margin *out)
{
    return exch_margin(v->c->x, account, cur, out);
}

void cv_instrument(const struct core_view *v, uint16_t inst, struct exch_instrument_state *out)
{
    exch_instrument_state(v->c->x, inst, out);
}

rate_t cv_adl(const struct core_view *v, uint32_t account, uint16_t inst)
{
    return exch_adl_percentile(v->c->x, account, inst);
}

int cv_spam(const struct core_view *v, uint32_t account, uint32_t *small_orders)
{
    return exch_spam(v->c->x, account, small_orders);
}

uint32_t cv_levels(const struct core_view *v, uint16_t inst, enum side side, uint32_t max, px_t *px,
                   qty_t *size)
{
    return engine_levels(exch_engine(v->c->x), inst, side, max, px, size);
}

int cv_audit(const struct core_view *v, struct exch_audit *out)
{
    return exch_audit(v->c->x, out);
}

/* The state hash (the state lock held): what core_state gives. The
 * sequence number is not in it: a restored checkpoint hashes as it did. */
static uint64_t state_hash(struct core *c)
{
    /* The hash lock excludes another hasher (engine_hash sorts a scratch
     * buffer the engine owns). */
    pthread_mutex_lock(&c->hash_lock);
    uint64_t h = hash_u64(HASH_SEED, exch_hash(c->x));
    h = keys_hash(c->kp, h);
    h = store_hash(c->st, h);
    h = hash_u64(h, accounts_made(c));
    h = hash_u64(h, (uint64_t)c->now);
    pthread_mutex_unlock(&c->hash_lock);
    return h;
}

void core_state(struct core *c, struct core_state *out)
{
    /* Readers exclude the writer; the hash lock excludes another hasher
     * (engine_hash sorts a scratch buffer the engine owns). */
    pthread_rwlock_rdlock(&c->lock);
    out->hash = state_hash(c);
    out->seq = c->seq;
    out->time = c->now;
    pthread_rwlock_unlock(&c->lock);
}

/* ---- the durability gate and replay ------------------------------------------------ */

void core_gate(struct core *c)
{
    if (!atomic_load(&c->opened))
        c->gated = true;
}

void core_set_commit(struct core *c, void (*fn)(void *ctx), void *ctx)
{
    if (atomic_load(&c->opened))
        return;
    c->commit = fn;
    c->commit_ctx = ctx;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = (*(struct core_job *const *)a)->seq, y = (*(struct core_job *const *)b)->seq;
    return x < y ? -1 : x > y;
}

void core_durable(struct core *c, uint64_t seq)
{
    struct core_job *stack[64], **due = stack;
    size_t n = 0, cap = 64;
    pthread_mutex_lock(&c->gate_lock);
    if (seq > atomic_load(&c->durable)) {
        atomic_store(&c->durable, seq);
        pthread_cond_broadcast(&c->gate_cv);
    }
    for (struct core_job **p = &c->waiting; *p;) {
        struct core_job *j = *p;
        if (j->seq > seq) {
            p = &j->gate_next;
            continue;
        }
        *p = j->gate_next;
        if (n == cap) {
            struct core_job **m = malloc(2 * cap * sizeof(*m));
            if (!m) {
                /* Out of memory: complete these now, out of order. */
                pthread_mutex_unlock(&c->gate_lock);
                for (size_t i = 0; i < n; i++)
                    due[i]->done(due[i]);
                n = 0;
                pthread_mutex_lock(&c->gate_lock);
                p = &c->waiting;
                continue;
            }
            memcpy(m, due, n * sizeof(*m));
            if (due != stack)
                free(due);
            due = m;
            cap *= 2;
        }
        due[n++] = j;
    }
    pthread_mutex_unlock(&c->gate_lock);
    /* Replies in sequence order (the list is newest first). */
    qsort(due, n, sizeof(*due), by_seq);
    for (size_t i = 0; i < n; i++)
        due[i]->done(due[i]);
    if (due != stack)
        free(due);
    deliver(c);
}

uint64_t core_seq(struct core *c)
{
    pthread_rwlock_rdlock(&c->lock);
    uint64_t s = c->seq;
    pthread_rwlock_unlock(&c->lock);
    return s;
}

int core_replay(struct core *c, const struct core_cmd *in, int32_t *result, char *err, size_t errcap)
{
    pthread_rwlock_wrlock(&c->lock);
    int rc = -1;
    if (in->seq != c->seq + 1) {
        snprintf(err, errcap, "command %" PRIu64 " where %" PRIu64 " was next", in->seq, c->seq + 1);
        goto out;
    }
    if (in->type == CC_RESTORE) {
        /* Rebuilt from the journal as when it was applied, then checked:
         * the checkpoint's hash, and its time the restore's. */
        if (!c->history) {
            snprintf(err, errcap, "command %" PRIu64 " restores a checkpoint: its replay needs the journal", in->seq);
            goto out;
        }
        char e2[512];
        if (rebuild(c, in->target_seq, in->target_hash, in->ts, in->seq, e2, sizeof(e2)) != 0) {
            snprintf(err, errcap, "command %" PRIu64 " restores checkpoint %s (command %" PRIu64 "): %s", in->seq,
                     in->text, in->target_seq, e2);
            goto out;
        }
        apply_restore(c, in->text, in->target_seq, in->target_hash, in->seq);
        if (result)
            *result = REJ_NONE;
        if (c->gated)
            atomic_store(&c->durable, in->seq);
        rc = 0;
        goto out;
    }
    if (in->ts < c->now) {
        snprintf(err, errcap, "command %" PRIu64 " at time %" PRId64 ", before the previous one's %" PRId64,
                 in->seq, in->ts, c->now);
        goto out;
    }
    if ((in->type == CC_CONFIG) != (in->seq == 1)) {
        snprintf(err, errcap, "command %" PRIu64 ": the config is command 1 and only it", in->seq);
        goto out;
    }
    struct core_cmd cc = *in;
    c->now = in->ts;
    if (cc.type == CC_CONFIG) {
        cc.config = &c->cfg.exch;
        cc.limits = &c->cfg.limits;
        atomic_store(&c->opened, true);
    }
    int32_t res = apply_now(c, &cc);
    if (in->type == CC_CHECKPOINT)
        note_checkpoint(c, &cc, NULL);
    if (in->type == CC_ACCOUNT && res == REJ_NONE && cc.account != in->account) {
        snprintf(err, errcap, "command %" PRIu64 " made account %u, the journal says %u", in->seq, cc.account,
                 in->account);
        goto out;
    }
    if (result)
        *result = res;
    /* A replayed command is on disk already: behind a gate, its record
     * goes to the after-lock consumers now (none is held for the whole
     * replay). */
    if (c->gated)
        atomic_store(&c->durable, cc.seq);
    rc = 0;
out:
    pthread_rwlock_unlock(&c->lock);
    if (rc == 0)
        deliver(c);
    return rc;
}

void core_wait_durable(struct core *c, uint64_t seq)
{
    if (!c->gated || atomic_load(&c->durable) >= seq)
        return;
    pthread_mutex_lock(&c->gate_lock);
    while (atomic_load(&c->durable) < seq)
        pthread_cond_wait(&c->gate_cv, &c->gate_lock);
    pthread_mutex_unlock(&c->gate_lock);
}

void core_summarize(struct core *c, struct core_summary *out)
{
    memset(out, 0, sizeof(*out));
    core_state(c, &out->state);
    pthread_rwlock_rdlock(&c->lock);
    out->orders = store_orders_count(c->st);
    out->executions = store_execs_total(c->st);
    out->accounts = atomic_load(&c->next_account) - 1;
    struct exch_audit a;
    out->audit_ok = exch_audit(c->x, &a) != 0;
    snprintf(out->audit_report, sizeof(out->audit_report), "%s", a.report);
    pthread_rwlock_unlock(&c->lock);
}
