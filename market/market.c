/*
 * market.c - the living market (market.h).
 */
#include "market/market.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YEAR_MS (365.25 * 24 * 3600 * 1000.0)
#define DAY_MS (24 * 3600 * 1000.0)

struct maker {
    uint32_t account;
    bool requote;
    px_t grid;         /* the ladder's price step, fixed at the first quote */
    double premium_bp; /* perpetuals: where the maker centers against the index */
    qty_t size;        /* contracts a level, fixed at the first quote */
};

struct noise_state {
    ms_t next; /* next arrival on this instrument */
};

struct directional {
    uint32_t account;
    uint16_t inst;
    bool levered;
    ms_t hold_until; /* 0: flat (or closing) */
};

struct path {
    ms_t *t;
    px_t *px;
    uint32_t n, at; /* at: the next point to take */
};

struct market {
    pthread_mutex_t lock;
    struct path path[INDICES_MAX];
    struct market_params p;
    const struct exch_config *cfg;
    uint64_t rng;
    bool started;
    ms_t next_index[INDICES_MAX];
    struct maker maker[INSTRUMENTS_MAX];
    struct noise_state noise_at[INSTRUMENTS_MAX];
    uint32_t noise_acct[MARKET_NOISE_MAX];
    uint32_t noise_rr;
    struct directional dir[MARKET_DIRECTIONAL_MAX];
    ms_t next_dir;
    ms_t next_maker; /* the makers look at their ladders every index_step_ms */
    bool resched;    /* a rate changed: draw the next times again at the next turn */
    struct market_stats st;
    /* accounts to make, in order: makers (none when agents_only), noise,
     * directional */
    uint32_t nmade;
};

/* ---- seeded draws ---------------------------------------------------------------- */

static uint64_t rnd(struct market *m)
{
    uint64_t z = (m->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double uniform(struct market *m) /* (0, 1) */
{
    return ((double)(rnd(m) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(struct market *m)
{
    return sqrt(-2 * log(uniform(m))) * cos(6.283185307179586 * uniform(m));
}

/* An exponential draw, at most a year: every gap it gives is cast to ms. */
static double exponential(struct market *m, double mean)
{
    double x = -mean * log(uniform(m));
    return x < 365.25 * 24 * 3600 * 1000.0 ? x : 365.25 * 24 * 3600 * 1000.0;
}

/* ---- life ---------------------------------------------------------------------- */

struct market *market_create(const struct market_params *p, const struct exch_config *cfg)
{
    if (market_params_check(p))
        return NULL;
    struct market *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->p = *p;
    m->cfg = cfg;
    m->rng = p->seed * UINT64_C(0x9E3779B97F4A7C15) + 0x5151;
    return m;
}

void market_destroy(struct market *m)
{
    if (!m)
        return;
    for (int k = 0; k < INDICES_MAX; k++) {
        free(m->path[k].t);
        free(m->path[k].px);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The makers: one per instrument, none in agents-only mode. */
static uint32_t makers(const struct market *m)
{
    return m->p.agents_only ? 0 : m->cfg->engine.instruments_count;
}

/* The k-th agent account: makers, noise, directional. */
static uint32_t agents(const struct market *m)
{
    return makers(m) + m->p.noise + m->p.directional;
}

uint32_t market_account_jobs(struct market *m, struct core_job **jobs, uint32_t max)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t nmk = makers(m);
    uint32_t n = agents(m);
    if (n > max)
        n = max;
    for (uint32_t k = 0; k < n; k++) {
        bool maker = k < nmk, noise = !maker && k < nmk + m->p.noise;
        uint32_t extra = maker ? 1 : 0; /* makers take the top risk limit */
        struct core_job *j = core_job_new(J_ACCOUNT, 0, m->cfg->currencies_count + extra);
        if (!j) {
            for (uint32_t i = 0; i < k; i++)
                core_job_free(jobs[i]);
            return 0;
        }
        for (int i = 0; i < KEY_ID_LEN; i++)
            j->key.id[i] = al[rnd(m) & 63];
        for (int i = 0; i < KEY_SECRET_LEN; i++)
            j->key.secret[i] = al[rnd(m) & 63];
        /* The agents trade through the sequencer, not the API: their keys
         * (drawn from the seed, so a replay makes the same) are disabled,
         * so nobody can sign as a maker. */
        j->key.perms = PERM_ORDER;
        j->key.enabled = false;
        j->account_flags = CORE_ACCOUNT_AGENT;
        for (uint8_t c = 0; c < m->cfg->currencies_count; c++) {
            /* XBt and USDt as minor units: makers 1,000 XBT / 50M USDT,
             * noise 20 XBT / 1M USDT, directional 0.5 XBT / 30k USDT. */
            bool usd = strcmp(m->cfg->currency[c], "USDt") == 0;
            sats_t unit = usd ? INT64_C(1000000) : INT64_C(100000000);
            double amount = maker ? (usd ? 50e6 : 1000) : noise ? (usd ? 1e6 : 20) : (usd ? 30000 : 0.5);
            j->cmds[c].type = CMD_DEPOSIT;
            j->cmds[c].u.money.currency = c;
            j->cmds[c].u.money.amount = (sats_t)(amount * (double)unit);
        }
        if (maker) {
            const struct exch_instrument *in = &m->cfg->inst[k];
            struct cmd *r = &j->cmds[m->cfg->currencies_count];
            r->type = CMD_SET_RISK_LIMIT;
            r->inst = (uint16_t)k;
            r->u.risk_limit = in->risk_limit + RISK_STEPS_MAX * in->risk_step;
        }
        jobs[k] = j;
    }
    return n;
}

void market_account_made(struct market *m, uint32_t k, uint32_t account)
{
    uint16_t ninst = m->cfg->engine.instruments_count;
    uint32_t nmk = makers(m);
    pthread_mutex_lock(&m->lock);
    if (k < nmk) {
        m->maker[k].account = account;
    } else if (k < nmk + m->p.noise) {
        m->noise_acct[k - nmk] = account;
    } else if (k < agents(m)) {
        struct directional *d = &m->dir[k - nmk - m->p.noise];
        d->account = account;
        d->inst = (uint16_t)((k - nmk - m->p.noise) % ninst);
    }
    m->nmade = k + 1 > m->nmade ? k + 1 : m->nmade;
    pthread_mutex_unlock(&m->lock);
}

int market_set_path(struct market *m, uint16_t k, const ms_t *t, const px_t *px, uint32_t n)
{
    /* Agents only: the history moves the indices, never the market. */
    if (k >= m->cfg->indices_count || !n || m->started || m->p.agents_only)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (px[i] <= 0 || (i && t[i] < t[i - 1]))
            return -1;
    struct path *p = &m->path[k];
    ms_t *tc = malloc(n * sizeof(*tc));
    px_t *pc = malloc(n * sizeof(*pc));
    if (!tc || !pc) {
        free(tc);
        free(pc);
        return -1;
    }
    memcpy(tc, t, n * sizeof(*tc));
    memcpy(pc, px, n * sizeof(*pc));
    free(p->t);
    free(p->px);
    *p = (struct path){tc, pc, n, 0};
    return 0;
}

/* The path's price due at t, if any point came due; moves past them. */
static bool path_step(struct path *p, ms_t t, px_t *px)
{
    bool due = false;
    while (p->at < p->n && p->t[p->at] <= t) {
        *px = p->px[p->at++];
        due = true;
    }
    return due;
}

/* ---- what a trader reads ---------------------------------------------------------- */

static bool live(const struct ord_rec *o)
{
    return o && (o->v.status == ST_NEW || o->v.status == ST_PARTIALLY_FILLED);
}

/* The index of instrument i now, and the mark/index ratio makers quote at. */
static px_t index_of(const struct core_view *v, uint16_t i, double *mark_ratio)
{
    struct exch_instrument_state st;
    cv_instrument(v, i, &st);
    *mark_ratio = st.index_px > 0 && st.mark_px > 0 ? (double)st.mark_px / (double)st.index_px : 1;
    return st.index_px;
}

/* ---- the agents ------------------------------------------------------------------------ */

static void index_step(struct market *m, uint16_t k, const struct core_view *v, struct core_batch *out)
{
    const struct exch_config *cfg = m->cfg;
    px_t px = 0;
    double ratio;
    for (uint16_t i = 0; i < cfg->engine.instruments_count && !px; i++)
        if (cfg->inst[i].index == k)
            px = index_of(v, i, &ratio);
    if (px <= 0)
        return;
    double dt = (double)m->p.index_step_ms / YEAR_MS;
    double r = -0.5 * m->p.vol * m->p.vol * dt + m->p.vol * sqrt(dt) * normal(m);
    double next = (double)px * exp(r);
    /* Jumps: a Poisson count per step (at most one: the steps are short),
     * down as often as up, exponential sizes. */
    if (uniform(m) < m->p.jumps_per_day * (double)m->p.index_step_ms / DAY_MS) {
        double size = exponential(m, m->p.jump_pct);
        if (size > 0.5)
            size = 0.5;
        next *= uniform(m) < 0.5 ? 1 - size : 1 + size;
        m->st.jumps++;
    }
    /* The perpetuals' premium: an Ornstein-Uhlenbeck walk in basis points
     * (mean 0, stationary deviation premium_bp, half-life an hour), so
     * that the premium index, and with it the funding prediction, moves. */
    double keep = exp(-(double)m->p.index_step_ms * 0.6931471805599453 / 3600000.0);
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (cfg->inst[i].index == k && cfg->inst[i].perpetual) {
            struct maker *mk = &m->maker[i];
            mk->premium_bp = mk->premium_bp * keep + m->p.premium_bp * sqrt(1 - keep * keep) * normal(m);
        }
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_SET_INDEX;
    c.u.set_index.index = k;
    c.u.set_index.price = next < 1 ? 1 : next > 1e16 ? (px_t)1e16 : (px_t)next;
    core_batch_push(out, &c);
    m->st.index_steps++;
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (cfg->inst[i].index == k)
            m->maker[i].requote = true;
}

static void clordid(char *out, uint16_t inst, bool buy, uint32_t level)
{
    snprintf(out, CLORDID_LEN_MAX + 1, "mm%u%c%u", inst, buy ? 'b' : 's', level);
}

/* The ladder sits on a fixed price grid (level_bp of the first price
 * quoted, a whole number of ticks): when the center moves by one grid step
 * only the far order of each side moves, to the near end, so a quiet
 * market costs a command or two per side, not one per level. Orders keep
 * their slot (clOrdID mm<inst><b|s><level>) and their place in the queue
 * while their price stays wanted. */
static void requote(struct market *m, uint16_t i, double center, const struct core_view *v,
                    struct core_batch *out)
{
    const struct engine_instrument *ei = &m->cfg->engine.instruments[i];
    struct maker *mk = &m->maker[i];
    if (!mk->grid) {
        double g = center * m->p.level_bp / 1e4 / (double)ei->tick_px;
        mk->grid = (g < 1 ? 1 : (px_t)(g + 0.5)) * ei->tick_px;
    }
    px_t grid = mk->grid;
    struct exch_position pos;
    cv_position(v, mk->account, i, &pos);
    double inv = (double)pos.qty / ((double)m->p.max_inventory_lots * (double)ei->lot_qty);
    if (inv > 1)
        inv = 1;
    if (inv < -1)
        inv = -1;
    center *= 1 - m->p.skew_bp * inv / 1e4;
    const struct store *st = cv_store(v);
    uint32_t n = m->p.levels;
    /* Commands in three groups, so that the maker never crosses itself (a
     * post-only order moved onto its own other side would be canceled):
     * first the orders moving away from the spread, then those moving
     * toward it, then the new ones. */
    struct cmd grp[3][2 * MARKET_LEVELS_MAX];
    uint32_t ng[3] = {0, 0, 0};
    /* Each side holds depth_impacts x the instrument's impact notional (so
     * that impact bid and ask, and the premium index, exist), at least
     * size_lots a level. */
    if (!mk->size) {
        const struct exch_instrument *in = &m->cfg->inst[i];
        sats_t v1 = 0;
        qty_t lots = m->p.size_lots;
        if (mf_value(&in->contract, ei->lot_qty, (px_t)center, &v1) == MF_OK && v1 != 0) {
            double need = m->p.depth_impacts * (double)in->impact_notional / n / (double)(v1 < 0 ? -v1 : v1);
            if (need > (double)lots)
                lots = (qty_t)ceil(need);
        }
        mk->size = lots * ei->lot_qty;
        if (mk->size > ei->max_order_qty) /* an order above maxOrderQty would be refused */
            mk->size = ei->max_order_qty - ei->max_order_qty % ei->lot_qty;
    }
    for (int side = 0; side < 2; side++) {
        bool buy = side == 0;
        double edge = center * (buy ? 1 - m->p.spread_bp / 2e4 : 1 + m->p.spread_bp / 2e4);
        px_t first = (px_t)(buy ? floor(edge / (double)grid) : ceil(edge / (double)grid)) * grid;
        px_t want[MARKET_LEVELS_MAX];
        bool covered[MARKET_LEVELS_MAX] = {false};
        for (uint32_t l = 0; l < n; l++)
            want[l] = buy ? first - (px_t)l * grid : first + (px_t)l * grid;
        const struct ord_rec *slot[MARKET_LEVELS_MAX];
        bool keep[MARKET_LEVELS_MAX] = {false};
        for (uint32_t l = 0; l < n; l++) {
            char id[CLORDID_LEN_MAX + 1];
            clordid(id, i, buy, l);
            slot[l] = store_order(st, store_find_clordid(st, mk->account, id));
            if (!live(slot[l]))
                continue;
            for (uint32_t w = 0; w < n; w++)
                if (!covered[w] && slot[l]->v.price == want[w]) {
                    covered[w] = keep[l] = true;
                    break;
                }
        }
        /* Each uncovered price, nearest first, takes a slot not kept: a live
         * one is amended to it, a dead one places a new order. */
        uint32_t next_slot = 0;
        for (uint32_t w = 0; w < n; w++) {
            if (covered[w] || want[w] <= 0 || want[w] > ei->max_px)
                continue;
            while (next_slot < n && keep[next_slot])
                next_slot++;
            if (next_slot == n)
                break;
            uint32_t l = next_slot++;
            struct cmd c;
            memset(&c, 0, sizeof(c));
            c.account = mk->account;
            c.inst = i;
            int g = 2;
            if (live(slot[l])) {
                c.type = CMD_AMEND;
                c.u.amend.ref.order_id = slot[l]->v.id;
                c.u.amend.has = AMD_PRICE;
                c.u.amend.price = want[w];
                g = (buy ? want[w] < slot[l]->v.price : want[w] > slot[l]->v.price) ? 0 : 1;
            } else {
                c.type = CMD_NEW_ORDER;
                c.u.new_order.has = HAS_QTY | HAS_PRICE;
                c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
                c.u.new_order.ord_type = ORD_LIMIT;
                c.u.new_order.qty = mk->size;
                c.u.new_order.price = want[w];
                c.u.new_order.exec_inst = EXEC_POST_ONLY;
                clordid(c.u.new_order.clordid, i, buy, l);
            }
            grp[g][ng[g]++] = c;
        }
    }
    for (int g = 0; g < 3; g++)
        for (uint32_t k = 0; k < ng[g]; k++) {
            core_batch_push(out, &grp[g][k]);
            m->st.maker_commands++;
        }
}

/* A heavy-tailed size: lots x Pareto(1.5) from 1, capped at 200 lots. */
static qty_t noise_size(struct market *m, qty_t lot)
{
    double x = pow(uniform(m), -1 / 1.5);
    if (x > 200)
        x = 200;
    return (qty_t)x * lot;
}

static void noise_order(struct market *m, uint16_t i, const struct core_view *v, struct core_batch *out)
{
    if (!m->p.noise)
        return;
    const struct engine_instrument *ei = &m->cfg->engine.instruments[i];
    uint32_t a = m->noise_acct[m->noise_rr++ % m->p.noise];
    if (!a)
        return;
    bool buy = uniform(m) < 0.5;
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_NEW_ORDER;
    c.account = a;
    c.inst = i;
    c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
    c.u.new_order.qty = noise_size(m, ei->lot_qty);
    c.u.new_order.has = HAS_QTY;
    if (uniform(m) < 0.3) {
        /* a limit order a few ticks inside or behind the best on its side */
        px_t best, px;
        qty_t sz;
        if (cv_levels(v, i, buy ? SIDE_BUY : SIDE_SELL, 1, &best, &sz) != 1)
            return;
        int64_t ticks = (int64_t)(uniform(m) * 10) - 3;
        px = best + (buy ? ticks : -ticks) * ei->tick_px;
        if (px <= 0 || px > ei->max_px)
            return;
        c.u.new_order.has |= HAS_PRICE;
        c.u.new_order.ord_type = ORD_LIMIT;
        c.u.new_order.price = px;
    } else {
        c.u.new_order.ord_type = ORD_MARKET;
    }
    core_batch_push(out, &c);
    m->st.noise_orders++;
}

static void directional_turn(struct market *m, ms_t t, const struct core_view *v, struct core_batch *out)
{
    for (uint32_t k = 0; k < m->p.directional; k++) {
        struct directional *d = &m->dir[k];
        if (!d->account)
            continue;
        const struct engine_instrument *ei = &m->cfg->engine.instruments[d->inst];
        const struct exch_instrument *in = &m->cfg->inst[d->inst];
        struct exch_position pos;
        cv_position(v, d->account, d->inst, &pos);
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.account = d->account;
        c.inst = d->inst;
        if (pos.qty != 0) {
            if (d->hold_until && t < d->hold_until)
                continue;
            /* Close: a Market order with execInst Close. */
            c.type = CMD_NEW_ORDER;
            c.u.new_order.side = pos.qty > 0 ? SIDE_SELL : SIDE_BUY;
            c.u.new_order.ord_type = ORD_MARKET;
            c.u.new_order.exec_inst = EXEC_CLOSE;
            core_batch_push(out, &c);
            d->hold_until = 0;
            m->st.directional_orders++;
            continue;
        }
        if (uniform(m) < 0.5)
            continue;
        if (!d->levered) {
            c.type = CMD_SET_LEVERAGE;
            c.u.leverage_e8 = (int64_t)(25 + (int64_t)(uniform(m) * 76)) * MF_RATE_SCALE;
            core_batch_push(out, &c);
            d->levered = true;
            memset(&c, 0, sizeof(c));
            c.account = d->account;
            c.inst = d->inst;
        }
        /* Most of the available margin at that leverage. */
        struct exch_margin mg;
        cv_margin(v, d->account, in->currency, &mg);
        struct exch_instrument_state st;
        cv_instrument(v, d->inst, &st);
        sats_t v1 = 0;
        if (st.mark_px <= 0 || mg.available <= 0 ||
            mf_value(&in->contract, ei->lot_qty, st.mark_px, &v1) != MF_OK || v1 == 0)
            continue;
        double lev = pos.leverage_e8 > 0 ? (double)pos.leverage_e8 / MF_RATE_SCALE : 25;
        double lots = (double)mg.available * 0.6 * lev / (double)(v1 < 0 ? -v1 : v1);
        if (lots < 1)
            continue;
        if (lots > 1e6)
            lots = 1e6;
        c.type = CMD_NEW_ORDER;
        c.u.new_order.side = uniform(m) < 0.5 ? SIDE_BUY : SIDE_SELL;
        c.u.new_order.ord_type = ORD_MARKET;
        c.u.new_order.has = HAS_QTY;
        c.u.new_order.qty = (qty_t)lots * ei->lot_qty;
        core_batch_push(out, &c);
        d->hold_until = t + (ms_t)exponential(m, 4.0 * (double)m->p.directional_every_ms);
        m->st.directional_orders++;
    }
}

/* ---- the timer ------------------------------------------------------------------------ */

static bool noise_idle(const struct market *m)
{
    return m->p.noise_per_min <= 0 || !m->p.noise;
}

/* In agents-only mode no feed or maker wakes the timer (their times are
 * INT64_MAX), and traders with nothing to do must not either: their far
 * arrivals (noise_gap's, or a turn of no directional trader) would be
 * times next() keeps giving for nothing. The default mode counts them as
 * it always did, so its draws stay the same. */
static ms_t next_locked(struct market *m)
{
    if (!m->started || m->resched)
        return 0; /* now: the makers quote at once, or new rates apply */
    bool only = m->p.agents_only;
    ms_t t = m->next_maker;
    if ((!only || m->p.directional) && m->next_dir < t)
        t = m->next_dir;
    for (uint16_t k = 0; k < m->cfg->indices_count; k++)
        if (m->next_index[k] < t)
            t = m->next_index[k];
    bool noise = !only || !noise_idle(m);
    for (uint16_t i = 0; i < m->cfg->engine.instruments_count; i++)
        if (m->maker[i].requote)
            return 0;
        else if (noise && m->noise_at[i].next < t)
            t = m->noise_at[i].next;
    return t;
}

static ms_t timer_next(void *ctx)
{
    struct market *m = ctx;
    pthread_mutex_lock(&m->lock);
    ms_t t = m->nmade >= agents(m) ? next_locked(m) : INT64_MAX;
    pthread_mutex_unlock(&m->lock);
    return t;
}

static ms_t noise_gap(struct market *m)
{
    if (noise_idle(m))
        return INT64_MAX / 4;
    return 1 + (ms_t)exponential(m, 60000.0 / m->p.noise_per_min);
}

static void timer_fire(void *ctx, ms_t t, const struct core_view *v, struct core_batch *out)
{
    struct market *m = ctx;
    const struct exch_config *cfg = m->cfg;
    pthread_mutex_lock(&m->lock);
    /* Agents only: no index step and no maker ever comes due. */
    bool only = m->p.agents_only;
    if (!m->started) {
        m->started = true;
        for (uint16_t k = 0; k < cfg->indices_count; k++) /* a path: its due points now */
            m->next_index[k] = only ? INT64_MAX : m->path[k].n ? t : t + m->p.index_step_ms;
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++) {
            m->maker[i].requote = !only;
            m->noise_at[i].next = t + 500 + noise_gap(m) / 4;
        }
        m->next_dir = t + (ms_t)exponential(m, (double)m->p.directional_every_ms);
        m->next_maker = only ? INT64_MAX : t;
    }
    if (m->next_maker <= t) {
        /* Fills took some orders, a post-only one may have been canceled:
         * the makers look at their whole ladders, moved or not. */
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
            m->maker[i].requote = true;
        m->next_maker += m->p.index_step_ms;
        if (m->next_maker <= t)
            m->next_maker = t + m->p.index_step_ms;
    }
    if (m->resched) {
        /* New rates take effect now: the next arrivals drawn again. */
        m->resched = false;
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
            m->noise_at[i].next = t + noise_gap(m);
        m->next_dir = t + 1 + (ms_t)exponential(m, (double)m->p.directional_every_ms);
        for (uint16_t k = 0; k < cfg->indices_count; k++)
            if (!m->path[k].n && !only)
                m->next_index[k] = t + m->p.index_step_ms;
        m->next_maker = only ? INT64_MAX : t;
    }
    for (uint16_t k = 0; k < cfg->indices_count; k++) {
        if (m->next_index[k] > t)
            continue;
        struct path *p = &m->path[k];
        if (p->n) {
            px_t px;
            if (path_step(p, t, &px)) {
                struct cmd c;
                memset(&c, 0, sizeof(c));
                c.type = CMD_SET_INDEX;
                c.u.set_index.index = k;
                c.u.set_index.price = px;
                core_batch_push(out, &c);
                m->st.index_steps++;
                for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
                    if (cfg->inst[i].index == k)
                        m->maker[i].requote = true;
            }
            m->next_index[k] = p->at < p->n ? p->t[p->at] : INT64_MAX;
            continue;
        }
        index_step(m, k, v, out);
        m->next_index[k] += m->p.index_step_ms;
        if (m->next_index[k] <= t) /* a long pause of a running clock: no catch-up */
            m->next_index[k] = t + m->p.index_step_ms;
    }
    /* Makers quote around the index just stepped (the mark/index ratio of
     * now), or around the mark when there is none. */
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++) {
        if (!m->maker[i].requote)
            continue;
        m->maker[i].requote = false;
        if (!m->maker[i].account) /* none (agents only): due no more */
            continue;
        double ratio;
        px_t idx = index_of(v, i, &ratio);
        for (uint32_t b = 0; b < out->n; b++)
            if (out->cmds[b].type == CMD_SET_INDEX && out->cmds[b].u.set_index.index == cfg->inst[i].index)
                idx = out->cmds[b].u.set_index.price;
        if (idx > 0)
            requote(m, i, (double)idx * ratio * (1 + m->maker[i].premium_bp / 1e4), v, out);
    }
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (m->noise_at[i].next <= t) {
            noise_order(m, i, v, out);
            m->noise_at[i].next += noise_gap(m);
            if (m->noise_at[i].next <= t)
                m->noise_at[i].next = t + noise_gap(m);
        }
    if (m->next_dir <= t) {
        directional_turn(m, t, v, out);
        m->next_dir = t + 1 + (ms_t)exponential(m, (double)m->p.directional_every_ms);
    }
    pthread_mutex_unlock(&m->lock);
}

/* A restore took the exchange back to t: every next time is drawn again
 * from t (the makers look at their ladders at once), a path is taken from
 * its start again (its points due by t at once). An agent whose account
 * the restore undid (a checkpoint from before the market made it) stops:
 * its number may be a student's next. */
static void timer_rewound(void *ctx, ms_t t, const struct core_view *v)
{
    struct market *m = ctx;
    pthread_mutex_lock(&m->lock);
    for (uint16_t i = 0; i < INSTRUMENTS_MAX; i++)
        if (m->maker[i].account && !cv_account_exists(v, m->maker[i].account))
            m->maker[i].account = 0;
    for (uint32_t k = 0; k < MARKET_NOISE_MAX; k++)
        if (m->noise_acct[k] && !cv_account_exists(v, m->noise_acct[k]))
            m->noise_acct[k] = 0;
    for (uint32_t d = 0; d < MARKET_DIRECTIONAL_MAX; d++)
        if (m->dir[d].account && !cv_account_exists(v, m->dir[d].account))
            m->dir[d].account = 0;
    if (m->started) {
        m->resched = true;
        for (uint16_t k = 0; k < m->cfg->indices_count; k++)
            if (m->path[k].n) {
                m->path[k].at = 0;
                m->next_index[k] = t;
            }
        for (uint32_t d = 0; d < MARKET_DIRECTIONAL_MAX; d++)
            if (m->dir[d].hold_until > t)
                m->dir[d].hold_until = t;
    }
    pthread_mutex_unlock(&m->lock);
}

struct core_timer market_timer(struct market *m)
{
    return (struct core_timer){timer_next, timer_fire, m, timer_rewound};
}

void market_params_get(struct market *m, struct market_params *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->p;
    pthread_mutex_unlock(&m->lock);
}

const char *market_params_set(struct market *m, const struct market_params *p)
{
    const char *e = market_params_check(p);
    if (e)
        return e;
    pthread_mutex_lock(&m->lock);
    if (p->noise != m->p.noise || p->directional != m->p.directional || p->seed != m->p.seed) {
        pthread_mutex_unlock(&m->lock);
        return "noise, directional and seed are fixed at start";
    }
    if (p->agents_only != m->p.agents_only) {
        /* the agents' accounts (makers or none) were made for the mode */
        pthread_mutex_unlock(&m->lock);
        return "agentsOnly is fixed at start";
    }
    if (p->noise_per_min != m->p.noise_per_min || p->directional_every_ms != m->p.directional_every_ms ||
        p->index_step_ms != m->p.index_step_ms)
        m->resched = m->started;
    /* Fewer levels leave the makers' outer orders where they are; a new
     * level width takes a new grid. */
    for (uint16_t i = 0; i < m->cfg->engine.instruments_count; i++) {
        if (p->level_bp != m->p.level_bp)
            m->maker[i].grid = 0;
        if (p->size_lots != m->p.size_lots || p->depth_impacts != m->p.depth_impacts ||
            p->levels != m->p.levels)
            m->maker[i].size = 0; /* new orders take the new size */
    }
    m->p = *p;
    for (uint16_t i = 0; i < m->cfg->engine.instruments_count; i++)
        m->maker[i].requote = !p->agents_only; /* no makers: nothing to requote */
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

void market_stats(struct market *m, struct market_stats *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->st;
    pthread_mutex_unlock(&m->lock);
}

struct market *market_start(struct core *c, const struct market_params *p, char *err, size_t errcap)
{
    return market_start_paths(c, p, NULL, NULL, NULL, err, errcap);
}

struct market *market_start_paths(struct core *c, const struct market_params *p, const ms_t *const *path_t,
                                  const px_t *const *path_px, const uint32_t *path_n, char *err,
                                  size_t errcap)
{
    const char *e = market_params_check(p);
    if (e) {
        snprintf(err, errcap, "market: %s", e);
        return NULL;
    }
    struct market *m = market_create(p, core_exch_config(c));
    if (!m) {
        snprintf(err, errcap, "market: out of memory");
        return NULL;
    }
    for (uint16_t k = 0; path_n && k < m->cfg->indices_count; k++)
        if (path_n[k] && p->agents_only) {
            snprintf(err, errcap, "market: agents only moves no index: no path (index %s)", m->cfg->index[k]);
            market_destroy(m);
            return NULL;
        } else if (path_n[k] && market_set_path(m, k, path_t[k], path_px[k], path_n[k]) != 0) {
            snprintf(err, errcap, "market: the path of index %s is not valid", m->cfg->index[k]);
            market_destroy(m);
            return NULL;
        }
    struct core_job *jobs[INSTRUMENTS_MAX + MARKET_NOISE_MAX + MARKET_DIRECTIONAL_MAX];
    uint32_t n = market_account_jobs(m, jobs, sizeof(jobs) / sizeof(jobs[0]));
    bool ok = n == agents(m);
    for (uint32_t k = 0; k < n; k++) {
        /* Recovered from a journal: the agents' accounts are there (their
         * keys are drawn from the seed, so the same); the agents take them
         * back, with their orders and positions, which they read from the
         * state as they go. */
        struct key_rec had;
        if (ok && core_key_get(c, jobs[k]->key.id, &had)) {
            market_account_made(m, k, had.account);
            core_job_free(jobs[k]);
            continue;
        }
        if (ok) {
            core_run(c, jobs[k]);
            ok = jobs[k]->status == REJ_NONE;
            for (uint32_t i = 0; ok && i < jobs[k]->n; i++)
                ok = jobs[k]->rej[i] == REJ_NONE;
            if (ok)
                market_account_made(m, k, jobs[k]->account);
        }
        core_job_free(jobs[k]);
    }
    if (!ok) {
        snprintf(err, errcap, "market: the agents' accounts could not be made (%u needed: raise accounts_max?)",
                 agents(m));
        market_destroy(m);
        return NULL;
    }
    struct core_timer t = market_timer(m);
    core_set_timer(c, &t);
    return m;
}

void market_stop(struct core *c, struct market *m)
{
    if (!m)
        return;
    core_set_timer(c, NULL);
    market_destroy(m);
}
