/*
 * test_feed.c - the realtime feed rebuilds what REST shows, at every
 * sequence number.
 *
 * A core with the feed as an after-lock consumer (as the server has it)
 * takes a seeded stream of orders, amends, cancels, market orders and index
 * moves from several accounts, some of which are liquidated. A client that
 * took the partials after a few hundred commands applies every message the
 * feed emits, as a WebSocket client would; after every job its tables must
 * equal the REST views of the same moment: orderBookL2 (every level: id,
 * side, price, size), orderBookL2_25 and orderBook10 (the top levels), each
 * account's open orders, positions and margins. The messages are also
 * checked for what the clients need: every delta row carries its symbol and
 * every key, update and delete name a row the client has, insert does not.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/feed.h"
#include "api/l2id.h"
#include "core/core.h"

#define T0 INT64_C(1795221000000)
/* ck_assert writes to Check's pipe on every call: the comparisons made
 * after every command use a plain test and fail through ck_abort_msg. */
#define CHECK(cond, ...)                     \
    do {                                     \
        if (!(cond))                         \
            ck_abort_msg(__VA_ARGS__);       \
    } while (0)
#define ACCOUNTS 24
#define ROWS_MAX 4096

static _Atomic ms_t now_ms = T0;
static ms_t clock_now(void *ctx)
{
    (void)ctx;
    return now_ms;
}

static uint64_t rng_s;
static int64_t pick(int64_t lo, int64_t hi)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return lo + (int64_t)(rng_s % (uint64_t)(hi - lo + 1));
}

/* ---- the client: tables kept from the messages ------------------------------------- */

/* A table of rows keyed by the partial's keys: a JSON object per row. */
struct table {
    bool have;        /* partial received */
    cJSON *rows[ROWS_MAX];
    int n;
    char keys[4][16];
    int nkeys;
};

struct client {
    struct table l2[2], l2_25[2];
    cJSON *book10[2];
    struct table order[ACCOUNTS + 1], position[ACCOUNTS + 1], margin[ACCOUNTS + 1];
    uint64_t messages, rows, liquidation_msgs;
};

static struct client C;
static struct feed *F;
static const struct exch_config *CFG;

static bool same_key(const struct table *t, const cJSON *a, const cJSON *b)
{
    for (int k = 0; k < t->nkeys; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, t->keys[k]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, t->keys[k]);
        if (!x || !y || !cJSON_Compare(x, y, true))
            return false;
    }
    return true;
}

static int find_row(const struct table *t, const cJSON *row)
{
    for (int i = 0; i < t->n; i++)
        if (same_key(t, t->rows[i], row))
            return i;
    return -1;
}

static void apply_msg(struct table *t, const cJSON *m, const char *what)
{
    const char *action = cJSON_GetObjectItemCaseSensitive(m, "action")->valuestring;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(m, "data");
    CHECK(cJSON_IsArray(data), "%s: data is not an array", what);
    if (strcmp(action, "partial") == 0) {
        for (int i = 0; i < t->n; i++)
            cJSON_Delete(t->rows[i]);
        t->n = 0;
        t->nkeys = 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(m, "keys"))
            snprintf(t->keys[t->nkeys++], sizeof(t->keys[0]), "%s", k->valuestring);
        CHECK(cJSON_GetObjectItemCaseSensitive(m, "types") &&
                          cJSON_GetObjectItemCaseSensitive(m, "filter") &&
                          cJSON_GetObjectItemCaseSensitive(m, "attributes") &&
                          cJSON_GetObjectItemCaseSensitive(m, "foreignKeys"),
                      "%s: partial without types, filter, attributes or foreignKeys", what);
        t->have = true;
    }
    if (!t->have)
        return; /* deltas before the partial are dropped, as clients do */
    const cJSON *row;
    cJSON_ArrayForEach(row, data)
    {
        C.rows++;
        for (int k = 0; k < t->nkeys; k++)
            CHECK(cJSON_GetObjectItemCaseSensitive(row, t->keys[k]) != NULL, "%s %s: row without key %s",
                          what, action, t->keys[k]);
        int at = find_row(t, row);
        if (strcmp(action, "partial") == 0 || strcmp(action, "insert") == 0) {
            CHECK(at < 0, "%s %s: the row is there already", what, action);
            CHECK(t->n < ROWS_MAX, "too many rows");
            t->rows[t->n++] = cJSON_Duplicate(row, true);
        } else if (strcmp(action, "update") == 0) {
            CHECK(at >= 0, "%s: update for a missing row", what);
            const cJSON *f;
            cJSON_ArrayForEach(f, row)
            {
                cJSON *copy = cJSON_Duplicate(f, true);
                if (!cJSON_ReplaceItemInObjectCaseSensitive(t->rows[at], f->string, copy))
                    cJSON_AddItemToObject(t->rows[at], f->string, copy);
            }
        } else {
            CHECK(strcmp(action, "delete") == 0, "%s: action %s", what, action);
            CHECK(at >= 0, "%s: delete of a missing row", what);
            cJSON_Delete(t->rows[at]);
            t->rows[at] = t->rows[--t->n];
        }
    }
}

static void take(const char *text, size_t len, int table, int inst, uint32_t account)
{
    cJSON *m = cJSON_ParseWithLength(text, len);
    CHECK(m != NULL, "not JSON: %.200s", text);
    C.messages++;
    const char *name = cJSON_GetObjectItemCaseSensitive(m, "table")->valuestring;
    CHECK(strcmp(name, ft_info(table)->name) == 0, "table %s for %s", name, ft_info(table)->name);
    const cJSON *row;
    if (ft_info(table)->symbol)
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(m, "data"))
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(row, "symbol")),
                          "%s: a row without its symbol", name);
    switch (table) {
    case FT_ORDERBOOKL2:
        apply_msg(&C.l2[inst], m, name);
        cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(m, "data"))
            CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, "price")), "L2 row without price");
        break;
    case FT_ORDERBOOKL2_25:
        apply_msg(&C.l2_25[inst], m, name);
        break;
    case FT_ORDERBOOK10: {
        const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "data"), 0);
        cJSON_Delete(C.book10[inst]);
        C.book10[inst] = cJSON_Duplicate(d, true);
        break;
    }
    case FT_ORDER:
        apply_msg(&C.order[account], m, name);
        break;
    case FT_POSITION:
        apply_msg(&C.position[account], m, name);
        break;
    case FT_MARGIN:
        apply_msg(&C.margin[account], m, name);
        break;
    case FT_LIQUIDATION:
        C.liquidation_msgs++;
        break;
    default:
        break;
    }
    cJSON_Delete(m);
}

static bool subscribed; /* the client has taken its partials */

static bool want(void *ctx, int table, int inst, uint32_t account)
{
    (void)ctx;
    (void)inst;
    (void)table;
    return subscribed && account <= ACCOUNTS;
}

static void emit(void *ctx, int table, int inst, uint32_t account, char *msg, size_t len)
{
    (void)ctx;
    if (inst < 2 && account <= ACCOUNTS)
        take(msg, len, table, inst < 0 ? 0 : inst, account);
    free(msg);
}

static void consume(void *ctx, const struct core_record *r)
{
    (void)ctx;
    feed_apply(F, r, want, emit, NULL);
}

static void partial(int table, int inst, uint32_t account)
{
    size_t len;
    char *p = feed_partial(F, table, inst, account, &len);
    take(p, len, table, inst < 0 ? 0 : inst, account);
    free(p);
}

/* ---- the REST views compared ----------------------------------------------------------------- */

static double num(const cJSON *row, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
    CHECK(v != NULL, "row without %s", name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void check_book(struct core *core, uint16_t i)
{
    static px_t px[2][4096];
    static qty_t sz[2][4096];
    const struct core_view *v = core_view_begin(core);
    uint32_t n[2];
    n[0] = cv_levels(v, i, SIDE_BUY, 4096, px[0], sz[0]);
    n[1] = cv_levels(v, i, SIDE_SELL, 4096, px[1], sz[1]);
    core_view_end(v);
    const struct engine_instrument *ei = &CFG->engine.instruments[i];
    px_t ftick = l2_formula_tick_px(ei->symbol, ei->tick_px);
    CHECK(C.l2[i].n == (int)(n[0] + n[1]), "the client has %d levels, REST %u", C.l2[i].n, n[0] + n[1]);
    int in25 = 0;
    for (int s = 0; s < 2; s++)
        for (uint32_t k = 0; k < n[s]; k++) {
            int64_t id;
            l2_id_from_price(L2_SYMBOL_IDX_BASE + i, px[s][k], ftick, &id);
            cJSON *probe = cJSON_CreateObject();
            cJSON_AddStringToObject(probe, "symbol", ei->symbol);
            cJSON_AddNumberToObject(probe, "id", (double)id);
            cJSON_AddStringToObject(probe, "side", s ? "Sell" : "Buy");
            int at = find_row(&C.l2[i], probe);
            CHECK(at >= 0, "level %s %lld missing from the client's book", s ? "Sell" : "Buy",
                          (long long)px[s][k]);
            CHECK(num(C.l2[i].rows[at], "size") == (double)sz[s][k], "level size %g, REST %lld",
                          num(C.l2[i].rows[at], "size"), (long long)sz[s][k]);
            CHECK(num(C.l2[i].rows[at], "price") == (double)px[s][k] / PX_SCALE, "num(C.l2[i].rows[at], \"price\") == (double)px[s][k] / PX_SCALE");
            if (k < 25) {
                in25++;
                int at25 = find_row(&C.l2_25[i], probe);
                CHECK(at25 >= 0, "top-25 level missing");
                CHECK(num(C.l2_25[i].rows[at25], "size") == (double)sz[s][k], "num(C.l2_25[i].rows[at25], \"size\") == (double)sz[s][k]");
            }
            if (k < 10) {
                const cJSON *pair = cJSON_GetArrayItem(
                    cJSON_GetObjectItemCaseSensitive(C.book10[i], s ? "asks" : "bids"), (int)k);
                CHECK(pair && cJSON_GetArrayItem(pair, 0)->valuedouble == (double)px[s][k] / PX_SCALE &&
                                  cJSON_GetArrayItem(pair, 1)->valuedouble == (double)sz[s][k],
                              "orderBook10 level %u differs", k);
            }
            cJSON_Delete(probe);
        }
    CHECK(C.l2_25[i].n == in25, "top 25: the client has %d levels, REST %d", C.l2_25[i].n, in25);
}

static void check_account(struct core *core, uint32_t a)
{
    const struct core_view *v = core_view_begin(core);
    const struct store *st = cv_store(v);
    const struct idx_vec *ov = store_account_orders(st, a);
    int open = 0;
    for (uint32_t k = 0; k < ov->n; k++) {
        const struct ord_rec *o = store_order(st, ov->v[k]);
        if (!o || (o->v.status != ST_NEW && o->v.status != ST_PARTIALLY_FILLED))
            continue;
        open++;
        bool found = false;
        for (int r = 0; r < C.order[a].n && !found; r++) {
            const cJSON *row = C.order[a].rows[r];
            char id[37];
            snprintf(id, sizeof(id), "%s", cJSON_GetObjectItemCaseSensitive(row, "orderID")->valuestring);
            uint64_t oid = strtoull(id + 24, NULL, 16); /* the id's last 12 hex digits */
            if (oid != o->v.id)
                continue;
            found = true;
            CHECK(num(row, "leavesQty") == (double)o->v.leaves, "order %llu leavesQty %g, REST %lld",
                          (unsigned long long)o->v.id, num(row, "leavesQty"), (long long)o->v.leaves);
            CHECK(num(row, "cumQty") == (double)o->v.cum, "num(row, \"cumQty\") == (double)o->v.cum");
        }
        CHECK(found, "account %u: open order %llu not in the client's order table", a,
                      (unsigned long long)o->v.id);
    }
    int client_open = 0;
    for (int r = 0; r < C.order[a].n; r++) {
        const char *s = cJSON_GetObjectItemCaseSensitive(C.order[a].rows[r], "ordStatus")->valuestring;
        client_open += strcmp(s, "New") == 0 || strcmp(s, "PartiallyFilled") == 0;
    }
    CHECK(client_open == open, "account %u: the client has %d open orders, REST %d", a, client_open, open);
    for (uint16_t i = 0; i < CFG->engine.instruments_count; i++) {
        struct exch_position p;
        cv_position(v, a, i, &p);
        const cJSON *row = NULL;
        for (int r = 0; r < C.position[a].n; r++)
            if (strcmp(cJSON_GetObjectItemCaseSensitive(C.position[a].rows[r], "symbol")->valuestring,
                       CFG->engine.instruments[i].symbol) == 0)
                row = C.position[a].rows[r];
        if (!row) {
            CHECK(p.qty == 0 && p.open_buy_qty == 0 && p.open_sell_qty == 0,
                          "account %u %s: a live position the client has no row of", a,
                          CFG->engine.instruments[i].symbol);
            continue;
        }
        CHECK(num(row, "currentQty") == (double)p.qty, "num(row, \"currentQty\") == (double)p.qty");
        CHECK(num(row, "unrealisedPnl") == (double)p.unrealised_pnl, "num(row, \"unrealisedPnl\") == (double)p.unrealised_pnl");
        CHECK(num(row, "maintMargin") == (double)p.pos_margin, "num(row, \"maintMargin\") == (double)p.pos_margin");
        CHECK(num(row, "initMargin") == (double)p.order_margin, "num(row, \"initMargin\") == (double)p.order_margin");
        CHECK(num(row, "markPrice") == (double)p.mark_px / PX_SCALE, "num(row, \"markPrice\") == (double)p.mark_px / PX_SCALE");
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(row, "liquidationPrice");
        CHECK(p.liq_px ? lp->valuedouble == (double)p.liq_px / PX_SCALE : cJSON_IsNull(lp), "p.liq_px ? lp->valuedouble == (double)p.liq_px / PX_SCALE : cJSON_IsNull(lp)");
    }
    for (uint8_t c = 0; c < CFG->currencies_count; c++) {
        struct exch_margin m;
        cv_margin(v, a, c, &m);
        const cJSON *row = NULL;
        for (int r = 0; r < C.margin[a].n; r++)
            if (strcmp(cJSON_GetObjectItemCaseSensitive(C.margin[a].rows[r], "currency")->valuestring,
                       CFG->currency[c]) == 0)
                row = C.margin[a].rows[r];
        CHECK(row != NULL, "account %u: no margin row for %s", a, CFG->currency[c]);
        CHECK(num(row, "walletBalance") == (double)m.wallet, "num(row, \"walletBalance\") == (double)m.wallet");
        CHECK(num(row, "marginBalance") == (double)m.margin_balance, "account %u marginBalance %g, REST %lld",
                      a, num(row, "marginBalance"), (long long)m.margin_balance);
        CHECK(num(row, "availableMargin") == (double)m.available, "num(row, \"availableMargin\") == (double)m.available");
        CHECK(num(row, "unrealisedPnl") == (double)m.unrealised_pnl, "num(row, \"unrealisedPnl\") == (double)m.unrealised_pnl");
    }
    core_view_end(v);
}

/* ---- the stream --------------------------------------------------------------------------------- */

static uint64_t one(struct core *core, enum job_kind kind, const struct cmd *c)
{
    struct core_job *j = core_job_new(kind, c->account, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0] = *c;
    if (c->type == CMD_CANCEL)
        j->target[0] = c->u.cancel.order_id;
    if (c->type == CMD_AMEND)
        j->target[0] = c->u.amend.ref.order_id;
    core_run(core, j);
    uint64_t id = kind == J_ORDERS && c->type == CMD_NEW_ORDER ? j->rows[0].v.id : 0;
    core_job_free(j);
    return id;
}

START_TEST(feed_equals_rest_at_every_command)
{
    rng_s = 0x5eed1234abcdULL;
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch.engine.accounts_max = 64;
    cfg.exch.engine.orders_max = 1u << 14;
    cfg.exch.engine.stops_max = 256;
    cfg.index_px[0] = 50000 * PX_SCALE;
    cfg.clock = (struct core_clock){clock_now, NULL, NULL};
    char err[128];
    struct core *core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(core != NULL, "%s", err);
    CFG = core_exch_config(core);
    F = feed_create(CFG, cfg.exch.engine.accounts_max);
    ck_assert_ptr_nonnull(F);
    ck_assert_int_eq(core_subscribe(core, consume, NULL, false), 0);
    memset(&C, 0, sizeof(C));
    subscribed = false;
    for (uint32_t a = 1; a <= ACCOUNTS; a++) {
        struct core_job *j = core_job_new(J_ACCOUNT, 0, 1);
        snprintf(j->key.id, sizeof(j->key.id), "key%020u", a);
        snprintf(j->key.secret, sizeof(j->key.secret), "secret%040u", a);
        j->key.perms = PERM_ORDER;
        j->key.enabled = true;
        j->cmds[0].type = CMD_DEPOSIT;
        j->cmds[0].u.money.currency = 0;
        j->cmds[0].u.money.amount = a <= 4 ? INT64_C(50000000000) : pick(2000000, 40000000);
        core_run(core, j);
        ck_assert_int_eq(j->status, REJ_NONE);
        core_job_free(j);
    }
    px_t index = 50000 * PX_SCALE;
    uint64_t recent[256] = {0};
    uint32_t recent_acct[256] = {0}, nrecent = 0;
    const struct engine_instrument *ei = &CFG->engine.instruments[0];
    for (int k = 0; k < 3000; k++) {
        now_ms += pick(50, 3000);
        if (k == 300) { /* the client arrives: partials, then deltas */
            subscribed = true;
            for (uint16_t i = 0; i < 2; i++) {
                partial(FT_ORDERBOOKL2, i, 0);
                partial(FT_ORDERBOOKL2_25, i, 0);
                partial(FT_ORDERBOOK10, i, 0);
            }
            for (uint32_t a = 1; a <= ACCOUNTS; a++) {
                partial(FT_ORDER, FT_ALL, a);
                partial(FT_POSITION, FT_ALL, a);
                partial(FT_MARGIN, FT_ALL, a);
            }
        }
        if (k == 1500) { /* account 5 buys at 50x, then the index falls 8%: liquidated */
            struct cmd l = {.type = CMD_SET_LEVERAGE, .account = 5, .inst = 0};
            l.u.leverage_e8 = 50 * MF_RATE_SCALE;
            one(core, J_POSITION, &l);
            struct cmd b = {.type = CMD_NEW_ORDER, .account = 5, .inst = 0};
            b.u.new_order.has = HAS_QTY;
            b.u.new_order.side = SIDE_BUY;
            b.u.new_order.qty = ei->lot_qty * 20;
            one(core, J_ORDERS, &b);
            index -= index / 12;
            struct cmd x = {.type = CMD_SET_INDEX};
            x.u.set_index.price = index;
            one(core, J_INDEX, &x);
        }
        if (k == 2000) { /* one order sweeps 100 resting ones: listed once in its message */
            for (int m = 0; m < 100; m++) {
                struct cmd q = {.type = CMD_NEW_ORDER, .account = 1, .inst = 0};
                q.u.new_order.has = HAS_QTY | HAS_PRICE;
                q.u.new_order.side = SIDE_SELL;
                q.u.new_order.qty = ei->lot_qty;
                q.u.new_order.price = index + index / 20 + (px_t)m * ei->tick_px;
                q.u.new_order.price -= q.u.new_order.price % ei->tick_px;
                one(core, J_ORDERS, &q);
            }
            struct cmd t = {.type = CMD_NEW_ORDER, .account = 2, .inst = 0};
            t.u.new_order.has = HAS_QTY | HAS_PRICE;
            t.u.new_order.side = SIDE_BUY;
            t.u.new_order.qty = ei->lot_qty * 3000;
            t.u.new_order.price = index + index / 20 + 100 * ei->tick_px;
            t.u.new_order.price -= t.u.new_order.price % ei->tick_px;
            t.u.new_order.tif = TIF_IOC;
            uint64_t before = C.rows;
            one(core, J_ORDERS, &t);
            ck_assert_uint_gt(C.rows - before, 200); /* it met the 100 (a level and an order row each) */
        }
        uint32_t a = (uint32_t)pick(1, ACCOUNTS);
        int roll = (int)pick(0, 99);
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.account = a;
        if (roll < 4) {
            index += (px_t)((i128)index * (pick(0, 4) ? pick(-150, 140) : pick(-600, 560)) / 10000);
            c.type = CMD_SET_INDEX;
            c.account = 0;
            c.u.set_index.index = 0;
            c.u.set_index.price = index;
            one(core, J_INDEX, &c);
        } else if (roll < 12) {
            c.type = CMD_SET_LEVERAGE;
            c.u.leverage_e8 = pick(0, 1) ? 0 : pick(2, 50) * MF_RATE_SCALE;
            one(core, J_POSITION, &c);
        } else if (roll < 70) {
            bool buy = pick(0, 1);
            px_t px = index + (px_t)((i128)index * pick(a <= 4 ? 2 : -30, 60) / 10000) * (buy ? -1 : 1);
            px -= px % ei->tick_px;
            c.type = CMD_NEW_ORDER;
            c.u.new_order.has = HAS_QTY | HAS_PRICE;
            c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * pick(1, a <= 4 ? 300 : 80);
            c.u.new_order.price = px;
            uint64_t id = one(core, J_ORDERS, &c);
            if (id) {
                recent[nrecent % 256] = id;
                recent_acct[nrecent % 256] = a;
                nrecent++;
            }
        } else if (roll < 80) {
            c.type = CMD_NEW_ORDER;
            c.u.new_order.has = HAS_QTY;
            c.u.new_order.side = pick(0, 1) ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * pick(1, 100);
            one(core, J_ORDERS, &c);
        } else if (nrecent) {
            uint32_t r = (uint32_t)pick(0, (nrecent < 256 ? nrecent : 256) - 1);
            c.account = recent_acct[r];
            if (pick(0, 2) == 0) {
                c.type = CMD_AMEND;
                c.u.amend.ref.order_id = recent[r];
                c.u.amend.has = AMD_LEAVES;
                c.u.amend.leaves = ei->lot_qty * pick(1, 50);
            } else {
                c.type = CMD_CANCEL;
                c.u.cancel.order_id = recent[r];
            }
            one(core, J_ORDERS, &c);
        }
        if (subscribed) {
            check_book(core, 0);
            for (uint32_t x = 1; x <= ACCOUNTS; x++)
                check_account(core, x);
        }
    }
    struct core_state s;
    core_state(core, &s);
    ck_assert_uint_eq(feed_seq(F), s.seq);
    printf("feed: %llu messages, %llu rows, %d levels at the end, %llu liquidation messages\n",
           (unsigned long long)C.messages, (unsigned long long)C.rows, C.l2[0].n,
           (unsigned long long)C.liquidation_msgs);
    ck_assert_uint_gt(C.rows, 10000);
    ck_assert_uint_gt(C.liquidation_msgs, 0); /* someone was liquidated while the client watched */
    ck_assert_int_gt(C.l2[0].n, 10);
    core_destroy(core);
    feed_destroy(F);
    for (int i = 0; i < 2; i++) {
        for (int r = 0; r < C.l2[i].n; r++)
            cJSON_Delete(C.l2[i].rows[r]);
        for (int r = 0; r < C.l2_25[i].n; r++)
            cJSON_Delete(C.l2_25[i].rows[r]);
        cJSON_Delete(C.book10[i]);
    }
    for (int a = 0; a <= ACCOUNTS; a++) {
        struct table *ts[] = {&C.order[a], &C.position[a], &C.margin[a]};
        for (int t = 0; t < 3; t++)
            for (int r = 0; r < ts[t]->n; r++)
                cJSON_Delete(ts[t]->rows[r]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("feed");
    TCase *tc = tcase_create("feed");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, feed_equals_rest_at_every_command);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
