/*
 * explain.c - liquidations step by step, from the change stream (explain.h).
 */
#include "core/explain.h"

#include <stdlib.h>
#include <string.h>

#define EXPLAIN_RING 1024 /* kept: the newest */

/* What a liquidation's explanation needs of a position, as last shown. */
struct pos_seen {
    struct exch_position p;
};

struct explain {
    const struct exch_config *cfg;
    uint32_t naccts;
    struct pos_seen *pos;             /* [account * INSTRUMENTS_MAX + inst] */
    px_t mark[INSTRUMENTS_MAX], index[INSTRUMENTS_MAX];
    sats_t fund[CURRENCIES_MAX];      /* the liquidator's wallet: the insurance fund */
    struct liq_explain *ring[EXPLAIN_RING];
    uint64_t total;                   /* liquidations ever */
};

struct explain *explain_create(const struct exch_config *cfg, uint32_t accounts_max)
{
    struct explain *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = cfg;
    e->naccts = accounts_max;
    e->pos = calloc((size_t)accounts_max * INSTRUMENTS_MAX, sizeof(*e->pos));
    if (!e->pos) {
        free(e);
        return NULL;
    }
    for (uint8_t c = 0; c < cfg->currencies_count && c < CURRENCIES_MAX; c++)
        e->fund[c] = cfg->insurance_initial[c];
    return e;
}

void explain_destroy(struct explain *e)
{
    if (!e)
        return;
    for (uint32_t k = 0; k < EXPLAIN_RING; k++)
        free(e->ring[k]);
    free(e->pos);
    free(e);
}

static struct pos_seen *seen(struct explain *e, uint32_t a, uint16_t i)
{
    return a < e->naccts && i < INSTRUMENTS_MAX ? &e->pos[(size_t)a * INSTRUMENTS_MAX + i] : NULL;
}

static void step(struct liq_explain *x, const struct liq_step *s)
{
    if (x->nsteps < EXPLAIN_STEPS_MAX)
        x->steps[x->nsteps++] = *s;
    else
        x->dropped++;
}

/* A new liquidation in the ring (the oldest dropped when full). */
static struct liq_explain *begin(struct explain *e)
{
    uint32_t at = (uint32_t)(e->total % EXPLAIN_RING);
    struct liq_explain *x = e->ring[at];
    if (!x) {
        x = malloc(sizeof(*x));
        if (!x)
            return NULL; /* the explanation is lost, never the exchange */
        e->ring[at] = x;
    }
    memset(x, 0, sizeof(*x) - sizeof(x->steps));
    x->id = ++e->total;
    return x;
}

void explain_record(struct explain *e, const struct core_record *r, const uint64_t *exec_ids)
{
    const struct core_cmd *c = r->cmd;
    px_t mark0[INSTRUMENTS_MAX];
    memcpy(mark0, e->mark, sizeof(mark0));
    struct liq_explain *cur = NULL;
    struct liq_explain *made[EXPLAIN_STEPS_MAX];
    uint32_t nmade = 0;
    /* cross: the owner's positions when found, for the first takeover's */
    struct exch_position found[INSTRUMENTS_MAX];
    for (uint32_t k = 0; k < r->nev; k++) {
        const struct rec_event *re = &r->ev[k];
        const struct event *ev = &re->ev;
        switch (ev->type) {
        case EV_LIQUIDATING: {
            cur = begin(e);
            if (!cur)
                break;
            if (nmade < EXPLAIN_STEPS_MAX)
                made[nmade++] = cur;
            cur->seq = r->seq;
            cur->ts = r->ts;
            cur->cmd_kind = c->type == CC_EXCH ? c->x.type : 0;
            cur->account = ev->account;
            cur->cross = ev->u.liq.cross;
            cur->currency = ev->u.liq.currency;
            cur->equity = ev->u.liq.equity;
            cur->maint = ev->u.liq.maint;
            cur->risk_limit = ev->u.liq.risk_limit;
            cur->fund_before = cur->currency < CURRENCIES_MAX ? e->fund[cur->currency] : 0;
            cur->inst = ev->inst;
            if (cur->cross) {
                cur->inst = UINT16_MAX; /* the first takeover's */
                for (uint16_t i = 0; i < INSTRUMENTS_MAX; i++) {
                    const struct pos_seen *p = seen(e, ev->account, i);
                    if (p)
                        found[i] = p->p;
                }
            } else {
                const struct pos_seen *p = seen(e, ev->account, ev->inst);
                if (p)
                    cur->before = p->p;
            }
            break;
        }
        case EV_CANCELED:
            if (cur && ev->order.account == cur->account && ev->reason == CXL_LIQUIDATION)
                step(cur, &(struct liq_step){LS_CANCELED, ev->order.side, ev->order.inst, cur->account, ev->order.id,
                                             ev->order.qty - ev->order.cum, ev->order.price, 0, 0});
            break;
        case EV_POSITION: {
            struct pos_seen *p = seen(e, ev->account, ev->inst);
            if (!p)
                break;
            if (cur && ev->account == cur->account && p->p.risk_limit > re->x.pos.risk_limit &&
                re->x.pos.risk_limit > 0)
                step(cur, &(struct liq_step){LS_RISK_STEP, 0, ev->inst, cur->account, 0, re->x.pos.qty, 0,
                                             p->p.risk_limit, re->x.pos.risk_limit});
            p->p = re->x.pos;
            break;
        }
        case EV_FILL:
            if (cur && ev->order.account == cur->account)
                step(cur, &(struct liq_step){LS_REDUCED, ev->order.side, ev->order.inst, cur->account, ev->order.id,
                                             ev->u.fill.last_qty, ev->u.fill.last_px, 0, 0});
            else if (cur && ev->order.account == EXCH_LIQUIDATOR)
                step(cur, &(struct liq_step){LS_LIQUIDATOR, ev->order.side, ev->order.inst, EXCH_LIQUIDATOR,
                                             ev->order.id, ev->u.fill.last_qty, ev->u.fill.last_px, 0, 0});
            break;
        case EV_MONEY: {
            const struct ev_money *m = &ev->u.money;
            if (ev->account == EXCH_LIQUIDATOR && m->currency < CURRENCIES_MAX)
                e->fund[m->currency] = m->balance;
            if (!cur)
                break;
            uint64_t exec = exec_ids ? exec_ids[k] : 0;
            if (m->kind == MK_LIQUIDATION && ev->account == cur->account) {
                if (cur->inst == UINT16_MAX && ev->inst < INSTRUMENTS_MAX) {
                    cur->inst = ev->inst;
                    cur->before = found[ev->inst];
                }
                step(cur, &(struct liq_step){LS_TAKEOVER, m->qty > 0 ? SIDE_SELL : SIDE_BUY, ev->inst, cur->account,
                                             exec, m->qty, m->px, m->amount, m->balance});
            } else if (m->kind == MK_INSURANCE && m->currency == cur->currency) {
                step(cur, &(struct liq_step){LS_INSURANCE, 0, ev->inst, EXCH_LIQUIDATOR, 0, 0, 0, m->amount,
                                             m->balance});
            } else if (m->kind == MK_DELEVERAGE && ev->account != cur->account) {
                step(cur, &(struct liq_step){LS_DELEVERAGE, m->qty < 0 ? SIDE_SELL : SIDE_BUY, ev->inst, ev->account,
                                             exec, m->qty, m->px, m->amount, m->balance});
            }
            break;
        }
        case EV_INSTRUMENT:
            if (ev->inst < INSTRUMENTS_MAX) {
                e->mark[ev->inst] = re->x.inst.mark_px;
                e->index[ev->inst] = re->x.inst.index_px;
            }
            break;
        default:
            break;
        }
    }
    for (uint32_t k = 0; k < nmade; k++) {
        struct liq_explain *x = made[k];
        if (x->inst == UINT16_MAX)
            x->inst = 0; /* a cross liquidation undone by its steps alone: no takeover */
        x->mark_before = mark0[x->inst];
        x->mark_after = e->mark[x->inst];
        x->index_px = e->index[x->inst];
        x->fund_after = x->currency < CURRENCIES_MAX ? e->fund[x->currency] : 0;
    }
}

uint32_t explain_list(const struct explain *e, uint32_t skip, uint32_t max, const struct liq_explain **out)
{
    uint64_t kept = e->total < EXPLAIN_RING ? e->total : EXPLAIN_RING;
    uint32_t n = 0;
    for (uint64_t k = skip; k < kept && n < max; k++) {
        const struct liq_explain *x = e->ring[(e->total - 1 - k) % EXPLAIN_RING];
        if (x)
            out[n++] = x;
    }
    return (uint32_t)kept;
}

const struct liq_explain *explain_by_exec(const struct explain *e, uint64_t exec_id)
{
    if (!exec_id)
        return NULL;
    uint64_t kept = e->total < EXPLAIN_RING ? e->total : EXPLAIN_RING;
    for (uint64_t k = 0; k < kept; k++) {
        const struct liq_explain *x = e->ring[(e->total - 1 - k) % EXPLAIN_RING];
        for (uint32_t s = 0; x && s < x->nsteps; s++)
            if ((x->steps[s].kind == LS_TAKEOVER || x->steps[s].kind == LS_DELEVERAGE) && x->steps[s].id == exec_id)
                return x;
    }
    return NULL;
}
