/*
 * explain.c - liquidations step by step, from the change stream (explain.h).
 */
#include "core/explain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* What an explanation needs of a position, as last shown. */
struct pos_seen {
    qty_t qty;
    px_t avg_entry_px, liq_px, bankrupt_px, mark_px;
    sats_t maint, pos_margin, upnl, risk_limit;
};

struct explain {
    const struct exch_config *cfg;
    uint32_t naccts;
    uint16_t ninst;
    struct pos_seen *pos;             /* [account * ninst + inst] */
    uint32_t *liqs;                   /* [account]: liquidations */
    px_t mark[INSTRUMENTS_MAX], index[INSTRUMENTS_MAX];
    sats_t fund[CURRENCIES_MAX];      /* the liquidator's wallet: the insurance fund */
    struct liq_explain *ring[EXPLAIN_KEEP];
    uint64_t total;                   /* liquidations ever */
    struct fund_explain *fring[EXPLAIN_FUNDING_KEEP];
    uint64_t ftotal;                  /* fundings ever */
    /* each instrument's last funding, by value (its entry may be gone) */
    struct fund_last { bool have; ms_t ts; rate_t next_rate, premium; int64_t samples; } lastf[INSTRUMENTS_MAX];
    /* the record's Funding payments not yet claimed by their EV_FUNDING */
    struct { uint16_t inst; struct fund_payment p; } *pend;
    uint32_t npend, cap_pend;
};

struct explain *explain_create(const struct exch_config *cfg, uint32_t accounts_max)
{
    struct explain *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = cfg;
    e->naccts = accounts_max;
    e->ninst = cfg->engine.instruments_count;
    e->pos = calloc((size_t)accounts_max * (e->ninst ? e->ninst : 1), sizeof(*e->pos));
    e->liqs = calloc(accounts_max ? accounts_max : 1, sizeof(*e->liqs));
    if (!e->pos || !e->liqs) {
        free(e->pos);
        free(e->liqs);
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
    for (uint32_t k = 0; k < EXPLAIN_KEEP; k++)
        free(e->ring[k]);
    for (uint32_t k = 0; k < EXPLAIN_FUNDING_KEEP; k++)
        if (e->fring[k]) {
            free(e->fring[k]->payments);
            free(e->fring[k]);
        }
    free(e->pend);
    free(e->liqs);
    free(e->pos);
    free(e);
}

static struct pos_seen *seen(struct explain *e, uint32_t a, uint16_t i)
{
    return a < e->naccts && i < e->ninst ? &e->pos[(size_t)a * e->ninst + i] : NULL;
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
    uint32_t at = (uint32_t)(e->total % EXPLAIN_KEEP);
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

static void take_position(struct liq_explain *x, const struct pos_seen *p)
{
    x->qty = p->qty;
    x->avg_entry_px = p->avg_entry_px;
    x->liq_px = p->liq_px;
    x->bankrupt_px = p->bankrupt_px;
    x->pos_mark_px = p->mark_px;
    x->pos_maint = p->maint;
    x->pos_margin = p->pos_margin;
    x->upnl = p->upnl;
    if (!x->risk_limit)
        x->risk_limit = p->risk_limit;
}

/* The liquidation is over: its instrument (a cross one without a
 * takeover: its first step's, else its first open position's) and the
 * figures as they are now. */
static void finish(struct explain *e, struct liq_explain *x, const struct pos_seen *found, const px_t *mark0)
{
    if (x->inst == UINT16_MAX) {
        for (uint32_t k = 0; k < x->nsteps && x->inst == UINT16_MAX; k++)
            if (x->steps[k].kind != LS_INSURANCE)
                x->inst = x->steps[k].inst;
        for (uint16_t i = 0; i < e->ninst && x->inst == UINT16_MAX; i++)
            if (e->cfg->inst[i].currency == x->currency && found[i].qty != 0)
                x->inst = i;
        if (x->inst == UINT16_MAX)
            x->inst = 0;
        if (x->inst < e->ninst)
            take_position(x, &found[x->inst]);
    }
    if (x->inst < INSTRUMENTS_MAX) {
        x->mark_before = mark0[x->inst];
        x->mark_after = e->mark[x->inst];
        x->index_px = e->index[x->inst];
    }
    x->fund_after = x->currency < CURRENCIES_MAX ? e->fund[x->currency] : 0;
}

static qty_t qabs(qty_t q)
{
    return q < 0 ? -q : q;
}

/* A Funding payment, kept until its instrument's EV_FUNDING. */
static void fund_pay(struct explain *e, const struct event *ev, uint64_t exec)
{
    if (e->npend == e->cap_pend) {
        uint32_t nc = e->cap_pend ? e->cap_pend * 2 : 64;
        void *p = realloc(e->pend, (size_t)nc * sizeof(*e->pend));
        if (!p)
            return; /* the payment is counted by no one: the table is a view, the wallet has it */
        e->pend = p;
        e->cap_pend = nc;
    }
    e->pend[e->npend].inst = ev->inst;
    e->pend[e->npend++].p = (struct fund_payment){ev->account, ev->u.money.qty, ev->u.money.amount, exec};
}

/* A funding: its entry, with the payments of its instrument before it. */
static void fund_done(struct explain *e, const struct core_record *r, const struct event *ev)
{
    uint16_t i = ev->inst;
    struct fund_explain *f = calloc(1, sizeof(*f));
    uint32_t n = 0;
    for (uint32_t k = 0; k < e->npend; k++)
        n += e->pend[k].inst == i;
    uint32_t listed = n < EXPLAIN_PAYMENTS_MAX ? n : EXPLAIN_PAYMENTS_MAX;
    if (f && listed && !(f->payments = malloc((size_t)listed * sizeof(*f->payments)))) {
        free(f);
        f = NULL;
    }
    if (f) {
        const struct ev_funding *u = &ev->u.funding;
        f->id = e->ftotal + 1;
        f->seq = r->seq;
        f->ts = ev->ts;
        f->inst = i;
        f->mark_px = u->mark_px;
        f->index_px = u->index_px;
        f->rate_e8 = u->rate_e8;
        bool prev = i < INSTRUMENTS_MAX && e->lastf[i].have;
        if (prev && e->lastf[i].next_rate == u->rate_e8) {
            f->origin = FO_PREMIUM;
            f->formed_ms = e->lastf[i].ts;
            f->formed_premium_e8 = e->lastf[i].premium;
            f->formed_samples = e->lastf[i].samples;
        } else {
            f->origin = prev || (i < e->ninst && u->rate_e8 != e->cfg->inst[i].funding_interest_e8) ? FO_ANNOUNCED
                                                                                                   : FO_OPENING;
        }
        f->next_rate_e8 = u->next_rate_e8;
        f->premium_e8 = u->premium_e8;
        f->samples = u->samples;
        f->paid = u->paid;
        f->received = u->received;
        f->npayments = n;
        for (uint32_t k = 0; k < e->npend && f->listed < listed; k++)
            if (e->pend[k].inst == i)
                f->payments[f->listed++] = e->pend[k].p;
        struct fund_explain **slot = &e->fring[e->ftotal % EXPLAIN_FUNDING_KEEP];
        if (*slot) {
            free((*slot)->payments);
            free(*slot);
        }
        *slot = f;
        e->ftotal++;
    }
    if (i < INSTRUMENTS_MAX) /* kept even when the entry could not be */
        e->lastf[i] = (struct fund_last){true, ev->ts, ev->u.funding.next_rate_e8, ev->u.funding.premium_e8,
                                            ev->u.funding.samples};
    uint32_t m = 0; /* the other instruments' payments wait for theirs */
    for (uint32_t k = 0; k < e->npend; k++)
        if (e->pend[k].inst != i)
            e->pend[m++] = e->pend[k];
    e->npend = m;
}

void explain_record(struct explain *e, const struct core_record *r, const uint64_t *exec_ids)
{
    e->npend = 0;
    const struct core_cmd *c = r->cmd;
    px_t mark0[INSTRUMENTS_MAX];
    memcpy(mark0, e->mark, sizeof(mark0));
    struct liq_explain *cur = NULL;
    /* cross: the owner's positions when found */
    struct pos_seen found[INSTRUMENTS_MAX];
    for (uint32_t k = 0; k < r->nev; k++) {
        const struct rec_event *re = &r->ev[k];
        const struct event *ev = &re->ev;
        switch (ev->type) {
        case EV_LIQUIDATING: {
            if (ev->u.liq.end) {
                if (cur && ev->account == cur->account)
                    finish(e, cur, found, mark0);
                cur = NULL;
                break;
            }
            if (ev->account < e->naccts)
                e->liqs[ev->account]++;
            cur = begin(e);
            if (!cur)
                break;
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
            memset(found, 0, (size_t)e->ninst * sizeof(found[0]));
            for (uint16_t i = 0; i < e->ninst; i++) {
                const struct pos_seen *p = seen(e, ev->account, i);
                if (p)
                    found[i] = *p;
            }
            cur->inst = cur->cross ? UINT16_MAX : ev->inst;
            if (!cur->cross && ev->inst < e->ninst)
                take_position(cur, &found[ev->inst]);
            break;
        }
        case EV_CANCELED:
            if (cur && ev->order.account == cur->account && ev->reason == CXL_LIQUIDATION) {
                cur->canceled++;
                cur->canceled_qty += ev->order.qty - ev->order.cum;
                if (cur->canceled <= EXPLAIN_CANCELS_MAX)
                    step(cur, &(struct liq_step){LS_CANCELED, ev->order.side, ev->order.inst, cur->account,
                                                 ev->order.id, ev->order.qty - ev->order.cum, ev->order.price, 0, 0,
                                                 0, 0});
            }
            break;
        case EV_POSITION: {
            struct pos_seen *p = seen(e, ev->account, ev->inst);
            if (!p)
                break;
            const struct exch_position *np = &re->x.pos;
            if (cur && ev->account == cur->account && p->risk_limit > np->risk_limit && np->risk_limit > 0)
                step(cur, &(struct liq_step){LS_RISK_STEP, 0, ev->inst, cur->account, 0, qabs(np->qty), 0, 0,
                                             p->risk_limit, np->risk_limit, 0});
            *p = (struct pos_seen){np->qty, np->avg_entry_px, np->liq_px, np->bankrupt_px, np->mark_px, np->maint,
                                   np->pos_margin, np->unrealised_pnl, np->risk_limit};
            break;
        }
        case EV_FILL:
            /* The owner's fills inside its liquidation are its FillOrKill
             * ReduceOnly reductions (its other orders are canceled first). */
            if (cur && ev->order.account == cur->account)
                step(cur, &(struct liq_step){LS_REDUCED, ev->order.side, ev->order.inst, cur->account, ev->order.id,
                                             ev->u.fill.last_qty, ev->u.fill.last_px, ev->order.price, 0, 0, 0});
            else if (cur && ev->order.account == EXCH_LIQUIDATOR)
                step(cur, &(struct liq_step){LS_LIQUIDATOR, ev->order.side, ev->order.inst, EXCH_LIQUIDATOR,
                                             ev->order.id, ev->u.fill.last_qty, ev->u.fill.last_px, 0, 0, 0, 0});
            break;
        case EV_MONEY: {
            const struct ev_money *m = &ev->u.money;
            if (ev->account == EXCH_LIQUIDATOR && m->currency < CURRENCIES_MAX)
                e->fund[m->currency] = m->balance;
            if (m->kind == MK_FUNDING)
                fund_pay(e, ev, exec_ids ? exec_ids[k] : 0);
            if (!cur)
                break;
            uint64_t exec = exec_ids ? exec_ids[k] : 0;
            if (m->kind == MK_LIQUIDATION && ev->account == cur->account) {
                if (cur->inst == UINT16_MAX && ev->inst < e->ninst) {
                    cur->inst = ev->inst;
                    take_position(cur, &found[ev->inst]);
                }
                if (!cur->takeover_exec)
                    cur->takeover_exec = exec;
                step(cur, &(struct liq_step){LS_TAKEOVER, m->qty > 0 ? SIDE_SELL : SIDE_BUY, ev->inst, cur->account,
                                             exec, qabs(m->qty), m->px, 0, m->amount, m->balance, 0});
            } else if (m->kind == MK_INSURANCE && m->currency == cur->currency) {
                step(cur, &(struct liq_step){LS_INSURANCE, 0, ev->inst, EXCH_LIQUIDATOR, 0, 0, 0, 0, m->amount,
                                             m->balance, 0});
            } else if (m->kind == MK_DELEVERAGE && ev->account != cur->account) {
                step(cur, &(struct liq_step){LS_DELEVERAGE, m->qty < 0 ? SIDE_SELL : SIDE_BUY, ev->inst, ev->account,
                                             exec, qabs(m->qty), m->px, 0, m->amount, m->balance, m->rate_e8});
            }
            break;
        }
        case EV_FUNDING:
            fund_done(e, r, ev);
            break;
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
    if (cur) /* margin/ always ends what it began: never here */
        finish(e, cur, found, mark0);
}

uint32_t explain_list(const struct explain *e, uint32_t skip, uint32_t max, const struct liq_explain **out)
{
    if (!e)
        return 0;
    uint64_t kept = e->total < EXPLAIN_KEEP ? e->total : EXPLAIN_KEEP;
    uint32_t n = 0;
    for (uint64_t k = skip; k < kept && n < max; k++) {
        const struct liq_explain *x = e->ring[(e->total - 1 - k) % EXPLAIN_KEEP];
        if (x)
            out[n++] = x;
    }
    return (uint32_t)kept;
}

const struct liq_explain *explain_by_exec(const struct explain *e, uint64_t exec_id)
{
    if (!e || !exec_id)
        return NULL;
    uint64_t kept = e->total < EXPLAIN_KEEP ? e->total : EXPLAIN_KEEP;
    for (uint64_t k = 0; k < kept; k++) {
        const struct liq_explain *x = e->ring[(e->total - 1 - k) % EXPLAIN_KEEP];
        if (!x)
            continue;
        if (x->takeover_exec == exec_id)
            return x;
        for (uint32_t s = 0; s < x->nsteps; s++)
            if (x->steps[s].kind == LS_DELEVERAGE && x->steps[s].id == exec_id)
                return x;
    }
    return NULL;
}

uint32_t explain_fundings(const struct explain *e, uint16_t inst, uint32_t skip, uint32_t max,
                          const struct fund_explain **out)
{
    if (!e)
        return 0;
    uint64_t kept = e->ftotal < EXPLAIN_FUNDING_KEEP ? e->ftotal : EXPLAIN_FUNDING_KEEP;
    uint32_t n = 0, of = 0;
    for (uint64_t k = 0; k < kept; k++) {
        const struct fund_explain *f = e->fring[(e->ftotal - 1 - k) % EXPLAIN_FUNDING_KEEP];
        if (!f || f->inst != inst)
            continue;
        if (of >= skip && n < max)
            out[n++] = f;
        of++;
    }
    return of;
}

uint32_t explain_liquidations_of(const struct explain *e, uint32_t account)
{
    return e && account < e->naccts ? e->liqs[account] : 0;
}
