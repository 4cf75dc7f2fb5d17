/*
 * test_store.c - the read model's limits (core/store.h), driven through the
 * core's API (jobs in, views out) with tiny limits:
 *
 *  - terminal orders beyond the limit are dropped, oldest to become
 *    terminal first, from store_order, the clOrdID map (whose clOrdID can
 *    then be used again) and the account's order list; live orders stay
 *    however old, and their clOrdIDs keep working;
 *  - a command's reply still finds every order the command made terminal
 *    (a cancel-all of more orders than the limit), and the next record
 *    trims them;
 *  - executions: the newest N of the stream are kept, the account lists
 *    hold exactly those and every index they hold resolves;
 *  - trades: the newest N per instrument, contiguous, in order, with the
 *    last price and tick direction right, while the buckets count all;
 *  - liquidation orders leave store_liquidations when dropped;
 *  - the state hash depends on the records only, not on the limits;
 *  - 200,000 orders with limits of 1,000: the rows and the room allocated
 *    stop growing (counted by store_stats, not RSS), and everything read
 *    back is the newest.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define XBTUSD 0
#define PX(x) ((px_t)((x) * (double)PX_SCALE))

/* ---- a core with a clock the test steps ------------------------------------- */

struct env {
    ms_t t;
    struct core *core;
    uint32_t nkeys;
};

static ms_t env_now(void *ctx)
{
    return ((struct env *)ctx)->t;
}

static struct env *env_new(uint32_t orders, uint32_t execs, uint32_t trades)
{
    struct env *E = calloc(1, sizeof(*E));
    ck_assert_ptr_nonnull(E);
    E->t = T0;
    struct core_config cfg;
    core_config_default(&cfg, T0);
    ck_assert_uint_eq(cfg.limits.orders, STORE_KEEP_ORDERS);
    ck_assert_uint_eq(cfg.limits.execs, STORE_KEEP_EXECS);
    ck_assert_uint_eq(cfg.limits.trades, STORE_KEEP_TRADES);
    cfg.exch.engine.accounts_max = 16;
    cfg.exch.engine.orders_max = 4096;
    cfg.exch.engine.stops_max = 64;
    cfg.exch.engine.verify_every = 1000;
    cfg.limits = (struct store_limits){orders, execs, trades, true};
    cfg.clock = (struct core_clock){env_now, E, NULL};
    char err[128];
    E->core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(E->core != NULL, "core_create: %s", err);
    return E;
}

static void env_free(struct env *E)
{
    core_destroy(E->core);
    free(E);
}

/* A new account with 10 XBT (or `xbt` satoshis) and 100,000 USDT. */
static uint32_t account(struct env *E, sats_t xbt)
{
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 2);
    ck_assert_ptr_nonnull(j);
    uint32_t k = ++E->nkeys;
    snprintf(j->key.id, sizeof(j->key.id), "storetestkey%012u", k);
    snprintf(j->key.secret, sizeof(j->key.secret), "storetestsecret%033u", k);
    j->key.perms = PERM_ORDER;
    j->key.enabled = true;
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = xbt ? xbt : INT64_C(1000000000);
    j->cmds[1].type = CMD_DEPOSIT;
    j->cmds[1].u.money.currency = 1;
    j->cmds[1].u.money.amount = INT64_C(100000000000);
    E->t++;
    core_run(E->core, j);
    ck_assert_int_eq(j->status, REJ_NONE);
    uint32_t a = j->account;
    core_job_free(j);
    return a;
}

/* A limit order (IOC when ioc); the reply row's order (id 0: none). */
static struct ord_rec order(struct env *E, uint32_t acct, int side, qty_t qty, px_t px, bool ioc,
                            const char *clordid)
{
    struct core_job *j = core_job_new(J_ORDERS, acct, 1);
    ck_assert_ptr_nonnull(j);
    struct cmd *c = &j->cmds[0];
    c->type = CMD_NEW_ORDER;
    c->inst = XBTUSD;
    c->u.new_order.has = HAS_QTY | HAS_PRICE;
    c->u.new_order.side = (uint8_t)side;
    c->u.new_order.ord_type = ORD_LIMIT;
    c->u.new_order.tif = ioc ? TIF_IOC : TIF_GTC;
    c->u.new_order.qty = qty;
    c->u.new_order.price = px;
    if (clordid)
        snprintf(c->u.new_order.clordid, sizeof(c->u.new_order.clordid), "%s", clordid);
    E->t++;
    core_run(E->core, j);
    ck_assert_msg(j->rej[0] == REJ_NONE, "order rejected: %d", (int)j->rej[0]);
    struct ord_rec r = j->rows[0];
    core_job_free(j);
    ck_assert_uint_ne(r.v.id, 0);
    return r;
}

static void cancel(struct env *E, uint32_t acct, uint64_t id)
{
    struct core_job *j = core_job_new(J_ORDERS, acct, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0].type = CMD_CANCEL;
    j->cmds[0].u.cancel.order_id = id;
    j->target[0] = id;
    E->t++;
    core_run(E->core, j);
    ck_assert_int_eq(j->rej[0], REJ_NONE);
    ck_assert_uint_eq(j->rows[0].v.id, id);
    ck_assert_uint_eq(j->rows[0].v.status, ST_CANCELED);
    core_job_free(j);
}

/* A trade of qty at px: the maker rests, the taker crosses with IOC. */
static void trade(struct env *E, uint32_t maker, uint32_t taker, int maker_side, qty_t qty, px_t px,
                  const char *mk_cl, const char *tk_cl)
{
    struct ord_rec m = order(E, maker, maker_side, qty, px, false, mk_cl);
    ck_assert_uint_eq(m.v.status, ST_NEW);
    struct ord_rec t = order(E, taker, maker_side == SIDE_BUY ? SIDE_SELL : SIDE_BUY, qty, px, true, tk_cl);
    ck_assert_uint_eq(t.v.status, ST_FILLED);
}

static void stats(struct env *E, struct store_stats *st)
{
    const struct core_view *v = core_view_begin(E->core);
    store_stats(cv_store(v), st);
    core_view_end(v);
}

/* The account's order list: its entries that resolve (into ids, at most
 * cap) and the count of those that do not (orders dropped since). Each
 * resolving entry is the account's order, ids strictly ascending. */
static uint32_t listed_orders(const struct store *s, uint32_t acct, uint64_t *ids, uint32_t cap,
                              uint32_t *stale)
{
    const struct idx_vec *l = store_account_orders(s, acct);
    uint32_t n = 0;
    uint64_t last = 0;
    *stale = 0;
    for (uint32_t k = 0; k < l->n; k++) {
        ck_assert_uint_gt(l->v[k], last);
        last = l->v[k];
        const struct ord_rec *r = store_order(s, l->v[k]);
        if (!r) {
            (*stale)++;
            continue;
        }
        ck_assert_uint_eq(r->v.id, l->v[k]);
        ck_assert_uint_eq(r->v.account, acct);
        if (n < cap)
            ids[n] = r->v.id;
        n++;
    }
    return n;
}

/* ---- orders ------------------------------------------------------------------- */

START_TEST(terminal_orders_dropped_oldest_first)
{
    struct env *E = env_new(3, 0, 0);
    uint32_t a = account(E, 0);
    uint64_t live = order(E, a, SIDE_BUY, 100, PX(30000), false, "live").v.id;
    uint64_t t[6];
    char cl[16];
    for (int k = 1; k <= 5; k++) {
        snprintf(cl, sizeof(cl), "t%d", k);
        t[k] = order(E, a, SIDE_BUY, 100, PX(30000) + k * PX(0.5), false, cl).v.id;
    }
    /* Terminal in the order 3, 1, 5, 2, 4: 3 and 1 go, 5, 2, 4 stay. */
    static const int seq[] = {3, 1, 5, 2, 4};
    for (int k = 0; k < 5; k++)
        cancel(E, a, t[seq[k]]);

    const struct core_view *v = core_view_begin(E->core);
    const struct store *s = cv_store(v);
    ck_assert_ptr_null(store_order(s, t[3]));
    ck_assert_ptr_null(store_order(s, t[1]));
    static const int kept[] = {2, 4, 5};
    for (int i = 0; i < 3; i++) {
        const struct ord_rec *r = store_order(s, t[kept[i]]);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->v.status, ST_CANCELED);
    }
    const struct ord_rec *lr = store_order(s, live);
    ck_assert_ptr_nonnull(lr);
    ck_assert_uint_eq(lr->v.status, ST_NEW);
    ck_assert_str_eq(lr->clordid, "live");
    /* clOrdIDs: the dropped ones are free, the kept and live ones found. */
    ck_assert_uint_eq(store_find_clordid(s, a, "t3"), 0);
    ck_assert_uint_eq(store_find_clordid(s, a, "t1"), 0);
    ck_assert_uint_eq(store_find_clordid(s, a, "t2"), t[2]);
    ck_assert_uint_eq(store_find_clordid(s, a, "t4"), t[4]);
    ck_assert_uint_eq(store_find_clordid(s, a, "t5"), t[5]);
    ck_assert_uint_eq(store_find_clordid(s, a, "live"), live);
    /* The account's list: exactly the kept ones, ascending. */
    uint64_t ids[8];
    uint32_t stale;
    uint32_t n = listed_orders(s, a, ids, 8, &stale);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(ids[0], live);
    ck_assert_uint_eq(ids[1], t[2]);
    ck_assert_uint_eq(ids[2], t[4]);
    ck_assert_uint_eq(ids[3], t[5]);
    ck_assert_uint_le(stale, n);
    struct store_stats st;
    store_stats(s, &st);
    ck_assert_uint_eq(st.orders, 4);
    ck_assert_uint_eq(st.orders_terminal, 3);
    ck_assert_uint_eq(st.orders_dropped, 2);
    ck_assert_uint_eq(st.clordids, 4);
    ck_assert_uint_eq(store_orders_count(s), t[5]);
    core_view_end(v);

    /* A dropped order's clOrdID can be used again. */
    uint64_t again = order(E, a, SIDE_BUY, 100, PX(29000), false, "t3").v.id;
    v = core_view_begin(E->core);
    ck_assert_uint_eq(store_find_clordid(cv_store(v), a, "t3"), again);
    core_view_end(v);

    /* Fifty more orders made and canceled: the live ones stay, however
     * old; the terminal ones kept are the last three. */
    uint64_t last[50];
    for (int k = 0; k < 50; k++) {
        snprintf(cl, sizeof(cl), "m%d", k);
        last[k] = order(E, a, SIDE_SELL, 100, PX(90000) + k * PX(0.5), false, cl).v.id;
        cancel(E, a, last[k]);
    }
    v = core_view_begin(E->core);
    s = cv_store(v);
    ck_assert_ptr_nonnull(store_order(s, live));
    ck_assert_ptr_nonnull(store_order(s, again));
    ck_assert_uint_eq(store_find_clordid(s, a, "live"), live);
    ck_assert_uint_eq(store_find_clordid(s, a, "t3"), again);
    for (int k = 2; k <= 5; k++)
        ck_assert_ptr_null(store_order(s, t[k]));
    ck_assert_uint_eq(store_find_clordid(s, a, "t5"), 0);
    ck_assert_uint_eq(store_find_clordid(s, a, "m46"), 0);
    for (int k = 0; k < 47; k++)
        ck_assert_ptr_null(store_order(s, last[k]));
    for (int k = 47; k < 50; k++) {
        ck_assert_ptr_nonnull(store_order(s, last[k]));
        snprintf(cl, sizeof(cl), "m%d", k);
        ck_assert_uint_eq(store_find_clordid(s, a, cl), last[k]);
    }
    n = listed_orders(s, a, ids, 8, &stale);
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(ids[0], live);
    ck_assert_uint_eq(ids[1], again);
    ck_assert_uint_eq(ids[2], last[47]);
    ck_assert_uint_eq(ids[4], last[49]);
    ck_assert_uint_le(stale, n);
    store_stats(s, &st);
    ck_assert_uint_eq(st.orders, 5);
    ck_assert_uint_eq(st.orders_terminal, 3);
    ck_assert_uint_eq(st.clordids, 5);
    core_view_end(v);
    env_free(E);
}
END_TEST

/* An amend that renames an order: the old clOrdID finds nothing, the new
 * one finds it until it is dropped; the map holds no entry for either
 * afterwards. */
START_TEST(renamed_order_clordid)
{
    struct env *E = env_new(1, 0, 0);
    uint32_t a = account(E, 0);
    uint64_t id = order(E, a, SIDE_BUY, 100, PX(30000), false, "old").v.id;
    struct core_job *j = core_job_new(J_ORDERS, a, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0].type = CMD_AMEND;
    j->cmds[0].u.amend.ref.order_id = id;
    j->cmds[0].u.amend.has = AMD_NEW_CLORDID;
    snprintf(j->cmds[0].u.amend.new_clordid, sizeof(j->cmds[0].u.amend.new_clordid), "new");
    j->target[0] = id;
    E->t++;
    core_run(E->core, j);
    ck_assert_int_eq(j->rej[0], REJ_NONE);
    core_job_free(j);
    const struct core_view *v = core_view_begin(E->core);
    ck_assert_uint_eq(store_find_clordid(cv_store(v), a, "old"), 0);
    ck_assert_uint_eq(store_find_clordid(cv_store(v), a, "new"), id);
    struct store_stats st;
    store_stats(cv_store(v), &st);
    ck_assert_uint_eq(st.clordids, 1);
    core_view_end(v);
    cancel(E, a, id);
    cancel(E, a, order(E, a, SIDE_BUY, 100, PX(30000), false, NULL).v.id);
    v = core_view_begin(E->core);
    ck_assert_ptr_null(store_order(cv_store(v), id));
    ck_assert_uint_eq(store_find_clordid(cv_store(v), a, "new"), 0);
    store_stats(cv_store(v), &st);
    ck_assert_uint_eq(st.clordids, 0);
    ck_assert_uint_eq(st.orders, 1);
    core_view_end(v);
    env_free(E);
}
END_TEST

START_TEST(reply_keeps_what_its_record_made_terminal)
{
    struct env *E = env_new(2, 0, 0);
    uint32_t a = account(E, 0);
    uint64_t id[5];
    for (int k = 0; k < 5; k++)
        id[k] = order(E, a, SIDE_BUY, 100, PX(30000) + k * PX(0.5), false, NULL).v.id;
    struct core_job *j = core_job_new(J_CANCEL_ALL, a, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0].type = CMD_CANCEL_ALL;
    j->cmds[0].u.cancel_all.inst = INST_ALL;
    E->t++;
    core_run(E->core, j);
    /* Five canceled by one record: the reply has all five... */
    ck_assert_uint_eq(j->nrows, 5);
    for (uint32_t k = 0; k < j->nrows; k++)
        ck_assert_uint_eq(j->rows[k].v.status, ST_CANCELED);
    core_job_free(j);
    struct store_stats st;
    stats(E, &st);
    ck_assert_uint_eq(st.orders_terminal, 5);
    /* ...and the next record (a clock tick) trims them to the limit. */
    E->t += 10;
    core_tick(E->core);
    stats(E, &st);
    ck_assert_uint_eq(st.orders_terminal, 2);
    ck_assert_uint_eq(st.orders_dropped, 3);
    const struct core_view *v = core_view_begin(E->core);
    uint32_t kept = 0;
    for (int k = 0; k < 5; k++)
        kept += store_order(cv_store(v), id[k]) != NULL;
    ck_assert_uint_eq(kept, 2);
    core_view_end(v);
    env_free(E);
}
END_TEST

START_TEST(liquidation_orders_leave_the_list)
{
    struct env *E = env_new(2, 0, 0);
    uint32_t mm = account(E, 0), weak = account(E, 300000); /* 0.003 XBT */
    /* weak buys 5,000 contracts (about 0.083 XBT) at 60,000 on 1% margin. */
    trade(E, mm, weak, SIDE_SELL, 5000, PX(60000), NULL, NULL);
    /* The index falls 5%: weak is liquidated; the liquidator's order
     * finds no bids (IOC) and ends canceled or filled: terminal. */
    struct core_job *j = core_job_new(J_INDEX, 0, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0].type = CMD_SET_INDEX;
    j->cmds[0].u.set_index.index = 0;
    j->cmds[0].u.set_index.price = PX(57000);
    E->t++;
    core_run(E->core, j);
    core_job_free(j);
    const struct core_view *v = core_view_begin(E->core);
    const struct idx_vec *lv = store_liquidations(cv_store(v));
    ck_assert_uint_ge(lv->n, 1);
    uint32_t nliq = lv->n;
    uint64_t first = lv->v[0];
    const struct ord_rec *r = store_order(cv_store(v), first);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->v.account, EXCH_LIQUIDATOR);
    core_view_end(v);
    /* More terminal orders than the limit: the liquidation orders go. */
    for (uint32_t k = 0; k < nliq + 3; k++)
        cancel(E, mm, order(E, mm, SIDE_SELL, 100, PX(90000), false, NULL).v.id);
    v = core_view_begin(E->core);
    lv = store_liquidations(cv_store(v));
    ck_assert_ptr_null(store_order(cv_store(v), first));
    for (uint32_t k = 0; k < lv->n; k++)
        ck_assert_ptr_null(store_order(cv_store(v), lv->v[k]));
    ck_assert_uint_eq(lv->n, 0);
    core_view_end(v);
    env_free(E);
}
END_TEST

/* ---- executions ------------------------------------------------------------------ */

START_TEST(executions_keep_the_newest)
{
    struct env *E = env_new(0, 10, 0);
    uint32_t a = account(E, 0), b = account(E, 0);
    /* Each trade: a's New; b's New, a's Trade, b's Trade: 4 executions. */
    for (int k = 0; k < 8; k++)
        trade(E, a, b, k % 2 ? SIDE_BUY : SIDE_SELL, 100, PX(60000), NULL, NULL);
    const struct core_view *v = core_view_begin(E->core);
    const struct store *s = cv_store(v);
    struct store_stats st;
    store_stats(s, &st);
    uint64_t total = st.execs + st.execs_dropped;
    ck_assert_uint_eq(total, 32);
    ck_assert_uint_eq(st.execs, 10);
    ck_assert_uint_eq(st.execs_dropped, 22);
    /* The lists hold exactly the kept ones, each index resolving, and
     * between them the exec ids total-9 .. total. */
    bool seen[11] = {false};
    uint32_t listed = 0;
    uint32_t accts[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const struct idx_vec *l = store_account_execs(s, accts[i]);
        uint64_t prev = 0;
        for (uint32_t k = 0; k < l->n; k++) {
            const struct exe_rec *e = store_exec(s, l->v[k]);
            ck_assert_ptr_nonnull(e);
            ck_assert_uint_eq(e->exec_id, (uint64_t)l->v[k] + 1);
            ck_assert_uint_eq(e->v.account, accts[i]);
            ck_assert_uint_gt(e->exec_id, prev);
            prev = e->exec_id;
            ck_assert_uint_gt(e->exec_id, total - 10);
            ck_assert_uint_le(e->exec_id, total);
            ck_assert(!seen[e->exec_id - (total - 10)]);
            seen[e->exec_id - (total - 10)] = true;
        }
        listed += l->n;
    }
    ck_assert_uint_eq(listed, 10);
    /* The oldest kept, the newest, and one dropped. */
    ck_assert_ptr_nonnull(store_exec(s, (uint32_t)(total - 10)));
    ck_assert_ptr_nonnull(store_exec(s, (uint32_t)(total - 1)));
    ck_assert_ptr_null(store_exec(s, (uint32_t)(total - 11)));
    ck_assert_ptr_null(store_exec(s, 0));
    ck_assert_ptr_null(store_exec(s, (uint32_t)total));
    const struct exe_rec *newest = store_exec(s, (uint32_t)(total - 1));
    ck_assert_uint_eq(newest->type, EX_TRADE);
    ck_assert_uint_eq(newest->v.account, b);
    core_view_end(v);
    env_free(E);
}
END_TEST

/* An account made with CORE_ACCOUNT_NO_ROWS (a backtest's history): its
 * orders and executions leave no rows, its trades with others print and
 * the others' rows are whole; its position and money are kept. */
START_TEST(an_account_without_rows)
{
    struct env *E = env_new(0, 0, 0);
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 1);
    ck_assert_ptr_nonnull(j);
    snprintf(j->key.id, sizeof(j->key.id), "storetestnorows000000000");
    snprintf(j->key.secret, sizeof(j->key.secret), "%048d", 7);
    j->key.perms = PERM_ORDER;
    j->account_flags = CORE_ACCOUNT_NO_ROWS;
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = INT64_C(1000000000);
    E->t++;
    core_run(E->core, j);
    ck_assert_int_eq(j->status, REJ_NONE);
    uint32_t h = j->account;
    core_job_free(j);
    uint32_t u = account(E, 0);
    /* h rests 300 (and cancels another), u takes 100 of it */
    for (int k = 0; k < 2; k++) {
        j = core_job_new(J_ORDERS, h, 1);
        j->cmds[0].type = CMD_NEW_ORDER;
        j->cmds[0].inst = XBTUSD;
        j->cmds[0].u.new_order.has = HAS_QTY | HAS_PRICE;
        j->cmds[0].u.new_order.side = SIDE_SELL;
        j->cmds[0].u.new_order.ord_type = ORD_LIMIT;
        j->cmds[0].u.new_order.qty = 300;
        j->cmds[0].u.new_order.price = PX(60000 + k);
        E->t++;
        core_run(E->core, j);
        ck_assert_int_eq(j->rej[0], REJ_NONE);
        core_job_free(j);
    }
    struct ord_rec t = order(E, u, SIDE_BUY, 100, PX(60000), true, NULL);
    ck_assert_uint_eq(t.v.status, ST_FILLED);
    const struct core_view *v = core_view_begin(E->core);
    const struct store *s = cv_store(v);
    ck_assert_uint_eq(store_account_orders(s, h)->n, 0);
    ck_assert_uint_eq(store_account_execs(s, h)->n, 0);
    ck_assert_ptr_null(store_order(s, 1)); /* h's two */
    ck_assert_ptr_null(store_order(s, 2));
    ck_assert_ptr_nonnull(store_order(s, t.v.id));
    const struct idx_vec *ue = store_account_execs(s, u);
    ck_assert_uint_eq(ue->n, 2); /* New, Trade */
    ck_assert_uint_eq(store_exec(s, ue->v[1])->type, EX_TRADE);
    ck_assert_uint_eq(store_exec(s, ue->v[1])->last_qty, 100);
    uint32_t n = 0;
    const struct trade_rec *tr = store_trades(s, XBTUSD, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tr[0].size, 100);
    struct exch_position p;
    ck_assert_int_eq(cv_position(v, h, XBTUSD, &p), 0);
    ck_assert_int_eq(p.qty, -100);
    core_view_end(v);
    env_free(E);
}
END_TEST

/* ---- trades -------------------------------------------------------------------- */

START_TEST(trades_keep_the_newest_contiguous)
{
    struct env *E = env_new(0, 0, 5);
    uint32_t a = account(E, 0), b = account(E, 0);
    /* Twelve trades at 60000 + k ticks, alternate sides. */
    for (int k = 0; k < 12; k++)
        trade(E, a, b, k % 2 ? SIDE_BUY : SIDE_SELL, 100, PX(60000) + k * PX(0.5), NULL, NULL);
    const struct core_view *v = core_view_begin(E->core);
    const struct store *s = cv_store(v);
    uint32_t n;
    const struct trade_rec *tr = store_trades(s, XBTUSD, &n);
    ck_assert_uint_eq(n, 5);
    for (uint32_t k = 0; k < n; k++) {
        ck_assert_int_eq(tr[k].px, PX(60000) + (px_t)(7 + k) * PX(0.5));
        ck_assert_uint_eq(tr[k].tick_dir, 0); /* PlusTick */
        if (k)
            ck_assert_uint_gt(tr[k].trade_id, tr[k - 1].trade_id);
    }
    uint8_t tick = 9;
    ck_assert_int_eq(store_last_px(s, XBTUSD, &tick), PX(60000) + 11 * PX(0.5));
    ck_assert_uint_eq(tick, 0);
    /* The buckets count every trade, dropped ones too. */
    uint32_t nb;
    const struct bin_rec *bins = store_bins(s, XBTUSD, BIN_1D, &nb);
    int64_t count = 0;
    for (uint32_t k = 0; k < nb; k++)
        count += bins[k].trades;
    ck_assert_int_eq(count, 12);
    struct store_stats st;
    store_stats(s, &st);
    ck_assert_uint_eq(st.trades, 5);
    ck_assert_uint_eq(st.trades_dropped, 7);
    store_trades(s, 1, &n);
    ck_assert_uint_eq(n, 0);
    core_view_end(v);
    env_free(E);
}
END_TEST

/* ---- the state hash ------------------------------------------------------------- */

static uint64_t run_for_hash(uint32_t orders, uint32_t execs, uint32_t trades, int extra)
{
    struct env *E = env_new(orders, execs, trades);
    uint32_t a = account(E, 0), b = account(E, 0);
    for (int k = 0; k < 20 + extra; k++) {
        trade(E, a, b, k % 2 ? SIDE_BUY : SIDE_SELL, 100, PX(60000) + (k % 3) * PX(0.5), NULL, NULL);
        cancel(E, a, order(E, a, SIDE_BUY, 100, PX(30000), false, NULL).v.id);
    }
    struct core_state cs;
    core_state(E->core, &cs);
    env_free(E);
    return cs.hash;
}

START_TEST(hash_depends_on_records_not_limits)
{
    uint64_t h1 = run_for_hash(3, 7, 4, 0);
    ck_assert_uint_eq(run_for_hash(3, 7, 4, 0), h1);
    ck_assert_uint_eq(run_for_hash(0, 0, 0, 0), h1);
    ck_assert_uint_eq(run_for_hash(1, 1, 1, 0), h1);
    ck_assert_uint_ne(run_for_hash(3, 7, 4, 1), h1);
}
END_TEST

/* ---- a long run: bounded --------------------------------------------------------- */

#define LONG_PAIRS 100000 /* 200,000 orders, 100,000 trades, 400,001 executions */
#define LONG_LIMIT 1000

static px_t long_px(int k)
{
    return PX(60000) + (px_t)(k % 7) * PX(0.5);
}

START_TEST(long_run_stays_bounded)
{
    struct env *E = env_new(LONG_LIMIT, LONG_LIMIT, LONG_LIMIT);
    uint32_t a = account(E, 0), b = account(E, 0);
    uint64_t live = order(E, a, SIDE_BUY, 100, PX(30000), false, "live").v.id;
    struct store_stats half, st;
    char mk[24], tk[24];
    for (int k = 0; k < LONG_PAIRS; k++) {
        snprintf(mk, sizeof(mk), "a%d", k);
        snprintf(tk, sizeof(tk), "b%d", k);
        trade(E, a, b, k % 2 ? SIDE_BUY : SIDE_SELL, 100, long_px(k), mk, tk);
        if (k == LONG_PAIRS / 2 - 1)
            stats(E, &half);
    }
    stats(E, &st);
    /* Rows: the limits, plus the one live order. */
    ck_assert_uint_eq(st.orders, LONG_LIMIT + 1);
    ck_assert_uint_eq(st.orders_terminal, LONG_LIMIT);
    ck_assert_uint_eq(st.orders_dropped, 2 * LONG_PAIRS - LONG_LIMIT);
    ck_assert_uint_eq(st.execs, LONG_LIMIT);
    ck_assert_uint_eq(st.execs_dropped, 4 * LONG_PAIRS + 1 - LONG_LIMIT);
    ck_assert_uint_eq(st.trades, LONG_LIMIT);
    ck_assert_uint_eq(st.clordids, LONG_LIMIT + 1);
    /* Lists: the kept executions, the kept orders and at most as many
     * entries of dropped ones. */
    ck_assert_uint_le(st.list_entries, LONG_LIMIT + 2 * 2 * (LONG_LIMIT + 1));
    /* Room: nothing grew in the second half, and it is a few hundred kB
     * (one row of each table costs 176 to 240 bytes: 200,000 orders
     * kept would be over 40 MB). */
    ck_assert_uint_eq(st.bytes, half.bytes);
    ck_assert_uint_lt(st.bytes, 2u << 20);

    const struct core_view *v = core_view_begin(E->core);
    const struct store *s = cv_store(v);
    /* The live order, however old. */
    const struct ord_rec *r = store_order(s, live);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->v.status, ST_NEW);
    ck_assert_uint_eq(store_find_clordid(s, a, "live"), live);
    /* The newest orders are found by clOrdID, the old ones are gone. */
    snprintf(mk, sizeof(mk), "a%d", LONG_PAIRS - 1);
    uint64_t newest = store_find_clordid(s, a, mk);
    ck_assert_uint_ne(newest, 0);
    ck_assert_ptr_nonnull(store_order(s, newest));
    snprintf(tk, sizeof(tk), "b%d", LONG_PAIRS - LONG_LIMIT / 2);
    ck_assert_uint_ne(store_find_clordid(s, b, tk), 0);
    snprintf(tk, sizeof(tk), "b%d", LONG_PAIRS - LONG_LIMIT / 2 - 1);
    ck_assert_uint_eq(store_find_clordid(s, b, tk), 0);
    ck_assert_uint_eq(store_find_clordid(s, a, "a0"), 0);
    ck_assert_ptr_null(store_order(s, live + 1));
    /* Each account's list: its kept orders (a: the live one and 500). */
    static uint64_t ids[2 * LONG_LIMIT];
    uint32_t stale;
    uint32_t n = listed_orders(s, a, ids, 2 * LONG_LIMIT, &stale);
    ck_assert_uint_eq(n, LONG_LIMIT / 2 + 1);
    ck_assert_uint_eq(ids[0], live);
    ck_assert_uint_eq(ids[n - 1], newest);
    ck_assert_uint_le(stale, n);
    n = listed_orders(s, b, ids, 2 * LONG_LIMIT, &stale);
    ck_assert_uint_eq(n, LONG_LIMIT / 2);
    ck_assert_uint_le(stale, n);
    /* Trades: the last 1,000, in order, contiguous. */
    uint32_t nt;
    const struct trade_rec *tr = store_trades(s, XBTUSD, &nt);
    ck_assert_uint_eq(nt, LONG_LIMIT);
    for (uint32_t k = 0; k < nt; k++) {
        ck_assert_int_eq(tr[k].px, long_px(LONG_PAIRS - LONG_LIMIT + (int)k));
        if (k)
            ck_assert_uint_eq(tr[k].trade_id, tr[k - 1].trade_id + 1);
    }
    /* Executions: the lists between them hold the last 1,000. */
    uint64_t total = st.execs + st.execs_dropped, listed = 0;
    uint32_t accts[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        const struct idx_vec *l = store_account_execs(s, accts[i]);
        for (uint32_t k = 0; k < l->n; k++) {
            const struct exe_rec *e = store_exec(s, l->v[k]);
            ck_assert_ptr_nonnull(e);
            ck_assert_uint_gt(e->exec_id, total - LONG_LIMIT);
        }
        listed += l->n;
    }
    ck_assert_uint_eq(listed, LONG_LIMIT);
    core_view_end(v);
    env_free(E);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("core_store");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, terminal_orders_dropped_oldest_first);
    tcase_add_test(tc, renamed_order_clordid);
    tcase_add_test(tc, reply_keeps_what_its_record_made_terminal);
    tcase_add_test(tc, liquidation_orders_leave_the_list);
    tcase_add_test(tc, executions_keep_the_newest);
    tcase_add_test(tc, an_account_without_rows);
    tcase_add_test(tc, trades_keep_the_newest_contiguous);
    tcase_add_test(tc, hash_depends_on_records_not_limits);
    tcase_add_test(tc, long_run_stays_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
