/*
 * test_market.c - the living market (market/market.h) on a stepped clock,
 * through the core as the server runs it: the agents' accounts made by
 * account commands, the market as the core's timer, time moved by advance
 * jobs.
 *
 *  - alive within 5 s: XBTUSD has >= 10 levels a side, trades printed, a
 *    last price, bid and ask; the money audit exact with the agents' money;
 *  - a simulated day at the defaults: the index moved, fundings paid, at
 *    least one liquidation, the audit exact;
 *  - the same seed and the same steps give the same state hash at every
 *    step; another seed another;
 *  - agents only (a backtest's market): against an index the test set and
 *    a book the test placed, 30 minutes without one index command from
 *    the market, no maker account, noise orders placed, the audit exact;
 *    with no trader at all the timer is never due (INT64_MAX).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "market/market.h"

#define T0 INT64_C(1797985800000) /* 2026-12-23T00:30:00Z */

struct tclock {
    ms_t t;
};

static ms_t tclock_now(void *ctx)
{
    return ((struct tclock *)ctx)->t;
}

struct sim {
    struct tclock clk;
    struct core *core;
    struct market *m;
    uint64_t liquidations, fundings;
    uint64_t set_index, accounts; /* CMD_SET_INDEX and CC_ACCOUNT commands */
};

static void count(void *ctx, const struct core_record *r)
{
    struct sim *s = ctx;
    s->set_index += r->cmd->type == CC_EXCH && r->cmd->x.type == CMD_SET_INDEX;
    s->accounts += r->cmd->type == CC_ACCOUNT;
    for (uint32_t i = 0; i < r->nev; i++) {
        const struct event *e = &r->ev[i].ev;
        s->liquidations += e->type == EV_MONEY && e->u.money.kind == MK_LIQUIDATION;
        s->fundings += e->type == EV_FUNDING;
    }
}

/* The core on the stepped clock, counted, no market yet. */
static void sim_open(struct sim *s)
{
    memset(s, 0, sizeof(*s));
    s->clk.t = T0;
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch.engine.verify_every = 1000;
    cfg.clock = (struct core_clock){tclock_now, &s->clk, NULL};
    char err[128];
    s->core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(s->core != NULL, "core_create: %s", err);
    ck_assert_int_eq(core_subscribe(s->core, count, s, false), 0);
}

static void sim_market(struct sim *s, const struct market_params *p)
{
    char err[128];
    s->m = market_start(s->core, p, err, sizeof(err));
    ck_assert_msg(s->m != NULL, "%s", err);
}

static void sim_start(struct sim *s, uint64_t seed)
{
    sim_open(s);
    struct market_params p;
    market_params_default(&p);
    p.seed = seed;
    sim_market(s, &p);
}

static void sim_advance(struct sim *s, ms_t ms)
{
    struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
    const struct core_view *v = core_view_begin(s->core);
    j->advance_to = cv_now(v) + ms;
    core_view_end(v);
    core_run(s->core, j);
    s->clk.t = j->ts;
    core_job_free(j);
}

static void sim_stop(struct sim *s)
{
    market_stop(s->core, s->m);
    core_destroy(s->core);
}

static void audit_exact(struct sim *s)
{
    const struct core_view *v = core_view_begin(s->core);
    struct exch_audit a;
    int ok = cv_audit(v, &a);
    core_view_end(v);
    ck_assert_msg(ok, "audit: %s", a.report);
}

START_TEST(alive_within_five_seconds)
{
    static struct sim s;
    sim_start(&s, 1);
    sim_advance(&s, 5000);
    const struct core_view *v = core_view_begin(s.core);
    px_t px[32];
    qty_t sz[32];
    uint32_t bids = cv_levels(v, 0, SIDE_BUY, 32, px, sz), asks = cv_levels(v, 0, SIDE_SELL, 32, px, sz);
    uint32_t ntr = 0;
    store_trades(cv_store(v), 0, &ntr);
    uint8_t tick;
    px_t last = store_last_px(cv_store(v), 0, &tick);
    struct exch_instrument_state st;
    cv_instrument(v, 0, &st);
    core_view_end(v);
    printf("market: after 5 s, XBTUSD %u bids, %u asks, %u trades, last %.1f, index %.1f\n", bids, asks,
           ntr, (double)last / PX_SCALE, (double)st.index_px / PX_SCALE);
    ck_assert_uint_ge(bids, 10);
    ck_assert_uint_ge(asks, 10);
    ck_assert_uint_gt(ntr, 0);
    ck_assert_int_gt(last, 0);
    audit_exact(&s);
    sim_stop(&s);
}
END_TEST

START_TEST(a_simulated_day)
{
    static struct sim s;
    sim_start(&s, 1);
    const struct core_view *v = core_view_begin(s.core);
    struct exch_instrument_state st0, st1;
    cv_instrument(v, 0, &st0);
    core_view_end(v);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    rate_t ind_min = INT64_MAX, ind_max = INT64_MIN;
    for (int h = 0; h < 24; h++) {
        sim_advance(&s, 3600 * 1000);
        struct exch_instrument_state st;
        v = core_view_begin(s.core);
        cv_instrument(v, 0, &st);
        core_view_end(v);
        if (st.indicative_rate_e8 < ind_min)
            ind_min = st.indicative_rate_e8;
        if (st.indicative_rate_e8 > ind_max)
            ind_max = st.indicative_rate_e8;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    struct core_state cs;
    core_state(s.core, &cs);
    v = core_view_begin(s.core);
    cv_instrument(v, 0, &st1);
    uint32_t nf = 0;
    store_funding(cv_store(v), &nf);
    core_view_end(v);
    struct market_stats ms;
    market_stats(s.m, &ms);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("market: a simulated day in %.2f s (%llu commands): index %.1f -> %.1f, %llu jumps, %llu "
           "fundings, %llu liquidations, maker %llu, noise %llu, directional %llu\n",
           secs, (unsigned long long)cs.seq, (double)st0.index_px / PX_SCALE, (double)st1.index_px / PX_SCALE,
           (unsigned long long)ms.jumps, (unsigned long long)s.fundings, (unsigned long long)s.liquidations,
           (unsigned long long)ms.maker_commands, (unsigned long long)ms.noise_orders,
           (unsigned long long)ms.directional_orders);
    printf("market: XBTUSD's indicative funding rate ranged %.4f%% to %.4f%% over the day\n",
           (double)ind_min / 1e6, (double)ind_max / 1e6);
    ck_assert_int_ne(st0.index_px, st1.index_px);
    ck_assert_int_lt(ind_min, ind_max); /* the prediction moves with the premium */
    ck_assert_uint_eq(nf, 9); /* 04:00, 12:00, 20:00 for each of the three perpetuals */
    ck_assert_uint_gt(s.liquidations, 0);
    audit_exact(&s);
    sim_stop(&s);
}
END_TEST

START_TEST(same_seed_same_market)
{
    static struct sim a, b, c;
    sim_start(&a, 7);
    sim_start(&b, 7);
    sim_start(&c, 8);
    ms_t steps[] = {0, 1000, 4000, 60000, 3600 * 1000};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        sim_advance(&a, steps[k]);
        sim_advance(&b, steps[k]);
        sim_advance(&c, steps[k]);
        struct core_state sa, sb, sc;
        core_state(a.core, &sa);
        core_state(b.core, &sb);
        core_state(c.core, &sc);
        ck_assert_msg(sa.seq == sb.seq && sa.hash == sb.hash && sa.time == sb.time,
                      "step %zu: %llu/%016llx vs %llu/%016llx", k, (unsigned long long)sa.seq,
                      (unsigned long long)sa.hash, (unsigned long long)sb.seq, (unsigned long long)sb.hash);
        if (k >= 2)
            ck_assert(sc.hash != sa.hash);
    }
    sim_stop(&a);
    sim_stop(&b);
    sim_stop(&c);
}
END_TEST

/* Rates set at run time take effect at once: noise off stops the noise
 * traders, back on restarts them (an arrival drawn at rate 0 used to be
 * decades away). */
START_TEST(rates_at_run_time)
{
    static struct sim s;
    sim_start(&s, 3);
    sim_advance(&s, 60000);
    struct market_params p;
    struct market_stats a, b, c;
    market_params_get(s.m, &p);
    p.noise_per_min = 0;
    ck_assert_ptr_null(market_params_set(s.m, &p));
    sim_advance(&s, 1000);
    market_stats(s.m, &a);
    sim_advance(&s, 600000);
    market_stats(s.m, &b);
    ck_assert_uint_eq(a.noise_orders, b.noise_orders);
    p.noise_per_min = 30;
    ck_assert_ptr_null(market_params_set(s.m, &p));
    sim_advance(&s, 120000);
    market_stats(s.m, &c);
    ck_assert_uint_gt(c.noise_orders, b.noise_orders + 20);
    p.noise_per_min = 1e-9; /* out of range: refused, nothing changed */
    ck_assert_ptr_nonnull(market_params_set(s.m, &p));
    sim_stop(&s);
}
END_TEST

/* ---- agents only ---------------------------------------------------------------- */

static void set_index(struct sim *s, uint16_t k, px_t px)
{
    struct core_job *j = core_job_new(J_INDEX, 0, 1);
    j->cmds[0].type = CMD_SET_INDEX;
    j->cmds[0].u.set_index.index = k;
    j->cmds[0].u.set_index.price = px;
    core_run(s->core, j);
    ck_assert_int_eq(j->rej[0], REJ_NONE);
    core_job_free(j);
}

/* A test account, 1,000 XBT and 50M USDT, its key fixed. */
static uint32_t test_account(struct sim *s)
{
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 2);
    memset(j->key.id, 'T', KEY_ID_LEN);
    memset(j->key.secret, 's', KEY_SECRET_LEN);
    j->key.perms = PERM_ORDER;
    j->key.enabled = true;
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = INT64_C(100000000000);
    j->cmds[1].type = CMD_DEPOSIT;
    j->cmds[1].u.money.currency = 1;
    j->cmds[1].u.money.amount = INT64_C(50000000000000);
    core_run(s->core, j);
    ck_assert_int_eq(j->status, REJ_NONE);
    uint32_t a = j->account;
    core_job_free(j);
    return a;
}

/* XBTUSD: levels bids and asks of qty contracts around center, $1 apart,
 * the nearest $1 away. */
static void rest_book(struct sim *s, uint32_t a, px_t center, uint32_t levels, qty_t qty)
{
    struct core_job *j = core_job_new(J_ORDERS, a, 2 * levels);
    for (uint32_t k = 0; k < 2 * levels; k++) {
        struct cmd *c = &j->cmds[k];
        bool buy = k < levels;
        px_t off = (px_t)(k % levels + 1) * PX_SCALE;
        c->type = CMD_NEW_ORDER;
        c->account = a;
        c->inst = 0;
        c->u.new_order.has = HAS_QTY | HAS_PRICE;
        c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
        c->u.new_order.ord_type = ORD_LIMIT;
        c->u.new_order.qty = qty;
        c->u.new_order.price = buy ? center - off : center + off;
    }
    core_run(s->core, j);
    for (uint32_t k = 0; k < 2 * levels; k++)
        ck_assert_msg(j->rej[k] == REJ_NONE, "resting order %u: reject %d", k, (int)j->rej[k]);
    core_job_free(j);
}

static px_t index_px(struct sim *s, uint16_t inst)
{
    const struct core_view *v = core_view_begin(s->core);
    struct exch_instrument_state st;
    cv_instrument(v, inst, &st);
    core_view_end(v);
    return st.index_px;
}

/* The history drives the index and gives the book, the market only its
 * noise and directional traders: the index stays where the test set it,
 * no account is a maker's, the noise traders trade against the test's
 * book, and every satoshi is accounted for. With no trader at all the
 * timer is never due: next() is INT64_MAX, not a time that never comes
 * (a stepped advance or the engine's poll would spin on it). */
START_TEST(agents_only)
{
    static struct sim s;
    sim_open(&s);
    const px_t px = 61234 * PX_SCALE + PX_SCALE / 2; /* 61,234.5 */
    set_index(&s, 0, px);
    uint32_t a = test_account(&s);
    rest_book(&s, a, 61234 * PX_SCALE, 40, 50000);
    const px_t eth = index_px(&s, 1); /* the config's .BETH, never moved */
    struct market_params p;
    market_params_default(&p);
    p.seed = 11;
    p.agents_only = true;
    ck_assert_ptr_null(market_params_check(&p));
    /* An index path is refused: the market moves no index. */
    ms_t pt[1] = {T0};
    px_t ppx[1] = {px};
    const ms_t *pts[INDICES_MAX] = {pt};
    const px_t *ppxs[INDICES_MAX] = {ppx};
    uint32_t pn[INDICES_MAX] = {1};
    char err[128];
    ck_assert_ptr_null(market_start_paths(s.core, &p, pts, ppxs, pn, err, sizeof(err)));
    printf("market: agents only with a path: %s\n", err);
    s.set_index = s.accounts = 0;
    sim_market(&s, &p);
    ck_assert_uint_eq(s.accounts, p.noise + p.directional); /* no maker */
    ck_assert_int_eq(market_set_path(s.m, 0, pt, ppx, 1), -1);
    sim_advance(&s, 30 * 60 * 1000);
    struct market_stats ms;
    market_stats(s.m, &ms);
    const struct core_view *v = core_view_begin(s.core);
    uint32_t ntr = 0;
    store_trades(cv_store(v), 0, &ntr);
    core_view_end(v);
    printf("market: agents only, 30 min: %llu index commands, %llu index steps, maker %llu, noise %llu, "
           "directional %llu, %u XBTUSD trades, %llu liquidations\n",
           (unsigned long long)s.set_index, (unsigned long long)ms.index_steps,
           (unsigned long long)ms.maker_commands, (unsigned long long)ms.noise_orders,
           (unsigned long long)ms.directional_orders, ntr, (unsigned long long)s.liquidations);
    ck_assert_uint_eq(s.set_index, 0);
    ck_assert_int_eq(index_px(&s, 0), px);
    ck_assert_int_eq(index_px(&s, 1), eth);
    ck_assert_uint_eq(ms.index_steps, 0);
    ck_assert_uint_eq(ms.jumps, 0);
    ck_assert_uint_eq(ms.maker_commands, 0);
    ck_assert_uint_gt(ms.noise_orders, 0);
    ck_assert_uint_gt(ntr, 0);
    ck_assert_uint_eq(s.accounts, p.noise + p.directional);
    audit_exact(&s);
    /* The mode is fixed at start. */
    struct market_params q;
    market_params_get(s.m, &q);
    ck_assert(q.agents_only);
    q.agents_only = false;
    const char *e = market_params_set(s.m, &q);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(strstr(e, "agentsOnly"));
    sim_stop(&s);

    /* No trader at all: never due, and time still moves. */
    sim_open(&s);
    set_index(&s, 0, px);
    p.noise = p.directional = 0;
    s.set_index = s.accounts = 0;
    sim_market(&s, &p);
    ck_assert_uint_eq(s.accounts, 0);
    sim_advance(&s, 1000); /* the market's first turn */
    struct core_timer t = market_timer(s.m);
    ck_assert_int_eq(t.next(t.ctx), INT64_MAX);
    sim_advance(&s, 3600 * 1000);
    ck_assert_int_eq(t.next(t.ctx), INT64_MAX);
    ck_assert_uint_eq(s.set_index, 0);
    ck_assert_int_eq(index_px(&s, 0), px);
    sim_stop(&s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("market");
    TCase *tc = tcase_create("market");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, alive_within_five_seconds);
    tcase_add_test(tc, same_seed_same_market);
    tcase_add_test(tc, a_simulated_day);
    tcase_add_test(tc, rates_at_run_time);
    suite_add_tcase(su, tc);
    TCase *ao = tcase_create("agents_only");
    tcase_set_timeout(ao, 900);
    tcase_add_test(ao, agents_only);
    suite_add_tcase(su, ao);
    SRunner *r = srunner_create(su);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
