/*
 * test_backtest.c - history replayed into the real book (history/driver.h)
 * with a user trading in it, through the core as `perpsim backtest` runs
 * it: a stepped clock, the driver as the core's timer, the user's orders
 * as order jobs between advances.
 *
 *  - queue position: a user's order joining a level behind historical size
 *    fills only after that much has traded at that price; size added
 *    behind it and taken away again does not delay it; size cancelled
 *    ahead of it moves it up;
 *  - an order at a new best price fills at the next opposite trade through
 *    it, at its own price;
 *  - Tardis incremental_book_L2: the same queue, built from a snapshot and
 *    level updates; a snapshot's missing levels go;
 *  - the money audit is exact after every run; the same data and orders
 *    give the same state hash and report, byte for byte.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "history/driver.h"
#include "history/report.h"

#define DAY "2024-01-15D"
/* 2024-01-15T00:00:00Z */
#define T0 INT64_C(1705276800000)
#define PX(x) ((px_t)((x) * 100000000.0))

struct bt {
    struct tclock {
        ms_t t;
    } clk;
    struct core *core;
    struct history *h;
    struct report *rep;
    uint32_t user;
    uint16_t xbt;
    qty_t filled;      /* the user's contracts filled */
    uint64_t prints;   /* public trades */
    px_t last_print_px;
    uint64_t rejects;  /* commands refused, anyone's */
    px_t last_fill_px;
    ms_t last_fill_ms;
    /* the last funding of XBTUSD, and the user's payment at it */
    uint32_t fundings;
    int64_t funding_rate;
    px_t funding_mark;
    sats_t user_funding;
};

static ms_t tclock_now(void *ctx)
{
    return ((struct tclock *)ctx)->t;
}

static void on_record(void *ctx, const struct core_record *r)
{
    struct bt *b = ctx;
    for (uint32_t i = 0; i < r->nev; i++) {
        const struct event *e = &r->ev[i].ev;
        if (e->type == EV_TRADE) {
            b->prints++;
            b->last_print_px = e->u.trade.px;
        }
        if (e->type == EV_REJECTED)
            b->rejects++;
        if (e->type == EV_FUNDING && e->inst == b->xbt) {
            b->fundings++;
            b->funding_rate = e->u.funding.rate_e8;
            b->funding_mark = e->u.funding.mark_px;
        }
        if (e->type == EV_MONEY && e->u.money.kind == MK_FUNDING && b->user && e->account == b->user)
            b->user_funding += e->u.money.amount;
        if (e->type == EV_FILL && b->user && e->account == b->user) {
            b->filled += e->u.fill.last_qty;
            b->last_fill_px = e->u.fill.last_px;
            b->last_fill_ms = r->ts;
        }
    }
}

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
    static char path[8][128];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

static void bt_start(struct bt *b, const char *const *paths, uint32_t n)
{
    memset(b, 0, sizeof(*b));
    struct hsource_opts so = {.strict = true, .from_us = 0, .to_us = INT64_MAX, .report = NULL};
    char err[256];
    struct hsource *src = hsource_open(paths, n, &so, err, sizeof(err));
    ck_assert_msg(src != NULL, "%s", err);
    struct core_config cfg;
    core_config_default(&cfg, T0);
    b->clk.t = T0;
    cfg.clock = (struct core_clock){tclock_now, &b->clk, NULL};
    b->core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(b->core != NULL, "%s", err);
    const struct exch_config *xc = core_exch_config(b->core);
    for (uint16_t k = 0; k < xc->engine.instruments_count; k++)
        if (strcmp(xc->engine.instruments[k].symbol, "XBTUSD") == 0)
            b->xbt = k;
    struct history_params hp;
    history_params_default(&hp);
    b->h = history_create(src, xc, &hp);
    b->rep = report_create(xc);
    ck_assert_int_eq(history_attach(b->h, b->core), 0);
    ck_assert_int_eq(report_attach(b->rep, b->core), 0);
    ck_assert_int_eq(core_subscribe(b->core, on_record, b, true), 0);
    ck_assert_msg(history_start(b->h, b->core, err, sizeof(err)) == 0, "%s", err);
    report_name(b->rep, b->core, history_account(b->h), "history");
    /* The user: an account with 10 XBT. */
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 1);
    memcpy(j->key.id, "userKeyForTheBacktest000", KEY_ID_LEN);
    memset(j->key.secret, 's', KEY_SECRET_LEN);
    j->key.perms = PERM_ORDER;
    j->key.enabled = true;
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = INT64_C(1000000000);
    core_run(b->core, j);
    ck_assert_int_eq(j->status, REJ_NONE);
    b->user = j->account;
    core_job_free(j);
}

/* Data time to t0 + ms. */
static void bt_to(struct bt *b, ms_t ms)
{
    struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
    j->advance_to = T0 + ms;
    core_run(b->core, j);
    b->clk.t = T0 + ms;
    core_job_free(j);
    ck_assert_msg(history_error(b->h) == NULL, "%s", history_error(b->h));
}

static void bt_limit(struct bt *b, uint8_t side, double px, qty_t qty)
{
    struct core_job *j = core_job_new(J_ORDERS, b->user, 1);
    struct cmd *c = &j->cmds[0];
    c->type = CMD_NEW_ORDER;
    c->account = b->user;
    c->inst = b->xbt;
    c->u.new_order.has = HAS_QTY | HAS_PRICE;
    c->u.new_order.side = side;
    c->u.new_order.ord_type = ORD_LIMIT;
    c->u.new_order.qty = qty;
    c->u.new_order.price = PX(px);
    core_run(b->core, j);
    ck_assert_int_eq(j->rej[0], REJ_NONE);
    core_job_free(j);
}

static void bt_audit(struct bt *b)
{
    struct core_summary s;
    core_summarize(b->core, &s);
    ck_assert_msg(s.audit_ok, "%s", s.audit_report);
}

static void bt_stop(struct bt *b)
{
    core_shutdown(b->core);
    history_stop(b->core, b->h);
    core_destroy(b->core);
    report_destroy(b->rep);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/perpsim-bt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char trade_head[] =
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional,trdType\n";
static const char quote_head[] = "timestamp,symbol,bidSize,bidPrice,askPrice,askSize\n";

/* A BitMEX trade row (the columns the replay does not use are plausible). */
static void trade(char *buf, size_t cap, const char *ts, const char *side, int size, const char *px)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, DAY "%s,XBTUSD,%s,%d,%s,ZeroMinusTick,00000000-0000-0000-0000-000000000000,0,0,0,Regular\n",
             ts, side, size, px);
}

static void quote(char *buf, size_t cap, const char *ts, int bs, const char *bp, const char *ap, int as)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, DAY "%s,XBTUSD,%d,%s,%s,%d\n", ts, bs, bp, ap, as);
}

/* Behind 1,000 of history at 42000: 600 and 400 trade (all ahead of it),
 * nothing for the user; then a historical 300 arrives behind it and a
 * 300 sell takes the user's 200 first. */
START_TEST(queue_behind_history)
{
    char t[4096] = "", q[4096] = "";
    strcat(t, trade_head);
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42000.5", 1000);
    trade(t, sizeof(t), "00:00:02.000000000", "Sell", 600, "42000");
    quote(q, sizeof(q), "00:00:02.000000000", 400, "42000", "42000.5", 1000);
    trade(t, sizeof(t), "00:00:03.000000000", "Sell", 400, "42000");
    quote(q, sizeof(q), "00:00:03.000000000", 300, "42000", "42000.5", 1000);
    trade(t, sizeof(t), "00:00:04.000000000", "Sell", 300, "42000");
    strcat(q, DAY "00:00:04.000000000,XBTUSD,,,42000.5,1000\n"); /* no bid */
    const char *paths[] = {write_file("trade.csv", t), write_file("quote.csv", q)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1000);
    bt_limit(&b, SIDE_BUY, 42000, 200);
    bt_to(&b, 2500);
    ck_assert_int_eq(b.filled, 0);
    bt_to(&b, 3500);
    ck_assert_int_eq(b.filled, 0); /* exactly the size ahead of it traded */
    bt_to(&b, 5000);
    ck_assert_int_eq(b.filled, 200);
    ck_assert_int_eq(b.last_fill_px, PX(42000));
    ck_assert_int_eq(b.last_fill_ms, T0 + 4000);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

/* Size added behind the user and cancelled again does not delay it; size
 * cancelled while all of it is ahead moves the user up. */
START_TEST(queue_cancels_from_the_back)
{
    char t[4096] = "", q[4096] = "";
    strcat(t, trade_head);
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42000.5", 1000);
    quote(q, sizeof(q), "00:00:02.000000000", 1500, "42000", "42000.5", 1000); /* 500 behind the user */
    quote(q, sizeof(q), "00:00:03.000000000", 1000, "42000", "42000.5", 1000); /* ...gone again */
    quote(q, sizeof(q), "00:00:04.000000000", 400, "42000", "42000.5", 1000);  /* 600 of it ahead gone */
    trade(t, sizeof(t), "00:00:05.000000000", "Sell", 400, "42000");            /* 400 of 400 ahead */
    trade(t, sizeof(t), "00:00:06.000000000", "Sell", 200, "42000");            /* the user's */
    const char *paths[] = {write_file("trade.csv", t), write_file("quote.csv", q)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1000);
    bt_limit(&b, SIDE_BUY, 42000, 200);
    bt_to(&b, 5500);
    ck_assert_int_eq(b.filled, 0);
    bt_to(&b, 7000);
    ck_assert_int_eq(b.filled, 200);
    ck_assert_int_eq(b.last_fill_ms, T0 + 6000);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

/* A bid inside the spread is the best: the next sell trade at the old bid
 * takes it first, at the user's price. */
START_TEST(new_best_price)
{
    char t[4096] = "", q[4096] = "";
    strcat(t, trade_head);
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42001", 1000);
    trade(t, sizeof(t), "00:00:02.000000000", "Buy", 100, "42001"); /* the other side: not the user */
    trade(t, sizeof(t), "00:00:03.000000000", "Sell", 100, "42000");
    const char *paths[] = {write_file("trade.csv", t), write_file("quote.csv", q)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1000);
    bt_limit(&b, SIDE_BUY, 42000.5, 100);
    bt_to(&b, 2500);
    ck_assert_int_eq(b.filled, 0);
    bt_to(&b, 3500);
    ck_assert_int_eq(b.filled, 100);
    ck_assert_int_eq(b.last_fill_px, PX(42000.5));
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

/* Tardis: the book from a snapshot and level updates; a second snapshot
 * drops what it does not name. */
START_TEST(tardis_book_queue)
{
    const char *book =
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,bid,42000.0,1000\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,bid,41999.5,5000\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,ask,42000.5,1000\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,ask,42001.0,3000\n"
        "bitmex,XBTUSD,1705276802000000,1705276802001000,false,bid,42000.0,700\n"
        "bitmex,XBTUSD,1705276803000000,1705276803001000,false,bid,42000.0,1200\n";
    const char *trades =
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "bitmex,XBTUSD,1705276804000000,1705276804001000,a1,sell,42000.0,700\n"
        "bitmex,XBTUSD,1705276805000000,1705276805001000,a2,sell,42000.0,300\n";
    const char *paths[] = {write_file("book.csv", book), write_file("trades.csv", trades)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1000);
    {
        const struct core_view *v = core_view_begin(b.core);
        px_t px[4];
        qty_t sz[4];
        ck_assert_uint_eq(cv_levels(v, b.xbt, SIDE_BUY, 4, px, sz), 2);
        ck_assert_int_eq(px[0], PX(42000));
        ck_assert_int_eq(sz[0], 1000);
        ck_assert_int_eq(sz[1], 5000);
        core_view_end(v);
    }
    bt_limit(&b, SIDE_BUY, 42000, 200); /* behind 1000; 300 of it cancelled at 2 s */
    bt_to(&b, 4500);                    /* 500 joined behind at 3 s; 700 traded */
    ck_assert_int_eq(b.filled, 0);
    bt_to(&b, 6000); /* 300: the user's 200 first, then 100 of the 500 behind */
    ck_assert_int_eq(b.filled, 200);
    ck_assert_int_eq(b.last_fill_ms, T0 + 5000);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

/* The visible book of one side, best first, as "px:size px:size". */
static void book_side(struct bt *b, uint8_t side, char *out, size_t cap)
{
    const struct core_view *v = core_view_begin(b->core);
    px_t px[16];
    qty_t sz[16];
    uint32_t n = cv_levels(v, b->xbt, (enum side)side, 16, px, sz);
    core_view_end(v);
    out[0] = '\0';
    for (uint32_t k = 0; k < n; k++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.1f:%lld", k ? " " : "", (double)px[k] / 1e8, (long long)sz[k]);
    }
}

/* A trade at the history's own best bid (the quote and trade streams out of
 * step): the stale bid goes, the print happens at the trade's price; the
 * next quote gives exactly its sizes (a refused add once placed a level
 * twice), and no command of the driver's is refused along the way. */
START_TEST(trade_through_own_stale_bid)
{
    char t[4096] = "", q[4096] = "";
    strcat(t, trade_head);
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42001", 1000);
    trade(t, sizeof(t), "00:00:01.000000000", "Buy", 100, "42000");
    quote(q, sizeof(q), "00:00:02.000000000", 1000, "41999.5", "42000", 700);
    const char *paths[] = {write_file("trade.csv", t), write_file("quote.csv", q)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1500);
    ck_assert_uint_eq(b.prints, 1);
    ck_assert_int_eq(b.last_print_px, PX(42000));
    bt_to(&b, 3000);
    char bids[256], asks[256];
    book_side(&b, SIDE_BUY, bids, sizeof(bids));
    book_side(&b, SIDE_SELL, asks, sizeof(asks));
    ck_assert_str_eq(bids, "41999.5:1000");
    ck_assert_str_eq(asks, "42000.0:700");
    /* One: the cut of the shortfall's remainder, which the trade took whole. */
    ck_assert_uint_eq(b.rejects, 1);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

/* A quote moving both sides cuts each old level once and adds each new one
 * once: no refused command (a cut sent twice is refused the second time). */
START_TEST(quotes_cut_once)
{
    char q[8192] = "";
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42001", 1000);
    quote(q, sizeof(q), "00:00:01.000000000", 600, "42000", "42001", 400);
    quote(q, sizeof(q), "00:00:02.000000000", 800, "41999.5", "42000.5", 900);
    quote(q, sizeof(q), "00:00:03.000000000", 200, "41999.5", "42000.5", 100);
    quote(q, sizeof(q), "00:00:04.000000000", 500, "42000", "42001", 500);
    const char *paths[] = {write_file("quote.csv", q)};
    struct bt b;
    bt_start(&b, paths, 1);
    bt_to(&b, 5000);
    char bids[256], asks[256];
    book_side(&b, SIDE_BUY, bids, sizeof(bids));
    book_side(&b, SIDE_SELL, asks, sizeof(asks));
    ck_assert_str_eq(bids, "42000.0:500");
    ck_assert_str_eq(asks, "42001.0:500");
    ck_assert_uint_eq(b.rejects, 0);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

static char *run_report(const char *const *paths, uint32_t n, struct core_state *st)
{
    struct bt b;
    bt_start(&b, paths, n);
    bt_to(&b, 1000);
    bt_limit(&b, SIDE_BUY, 42000, 300);
    bt_limit(&b, SIDE_SELL, 42001, 100);
    bt_to(&b, 10 * 60 * 1000);
    bt_audit(&b);
    char *json = report_json(b.rep, b.core);
    core_state(b.core, st);
    bt_stop(&b);
    return json;
}

START_TEST(deterministic_report)
{
    char t[16384] = "", q[16384] = "";
    strcat(t, trade_head);
    strcat(q, quote_head);
    quote(q, sizeof(q), "00:00:00.000000000", 1000, "42000", "42001", 1000);
    for (int s = 2; s < 60; s += 3) {
        char ts[32];
        snprintf(ts, sizeof(ts), "00:00:%02d.000000000", s);
        trade(t, sizeof(t), ts, s % 2 ? "Sell" : "Buy", 100 * (1 + s % 4), s % 2 ? "42000" : "42001");
        quote(q, sizeof(q), ts, 1000, "42000", "42001", 1000);
    }
    const char *paths[] = {write_file("trade.csv", t), write_file("quote.csv", q)};
    struct core_state a, b;
    char *ja = run_report(paths, 2, &a), *jb = run_report(paths, 2, &b);
    ck_assert_ptr_nonnull(ja);
    ck_assert_str_eq(ja, jb);
    ck_assert(a.hash == b.hash && a.seq == b.seq);
    /* The user traded and the history account is its counterparty. */
    ck_assert_ptr_nonnull(strstr(ja, "\"name\":\"history\""));
    /* Bought 300 behind 1,000 (filled at 23 s and 29 s), sold 100 behind
     * 1,000 (filled at 26 s): long 200. */
    ck_assert_ptr_nonnull(strstr(ja, "\"positions\":{\"XBTUSD\":200}"));
    free(ja);
    free(jb);
}
END_TEST

/* The data's funding rate is the one paid: a Tardis derivative_ticker
 * names the 04:00 funding with 0.05% (the formula would give 0.01%, the
 * interest alone, over a book without premium); a later row naming 12:00
 * is for another funding and changes nothing. The user's long pays
 * 0.05% of its value at the mark, to the satoshi. */
START_TEST(funding_rate_from_the_data)
{
    const char *ticker =
        "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,"
        "open_interest,last_price,index_price,mark_price\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,1705291200000000,0.0005,0.0002,1,42000,42000.0,42000\n"
        "bitmex,XBTUSD,1705280400000000,1705280400001000,1705320000000000,0.0009,,1,42000,42000.0,42000\n";
    const char *book =
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,bid,41999.5,5000\n"
        "bitmex,XBTUSD,1705276800000000,1705276800001000,true,ask,42000.5,5000\n";
    const char *paths[] = {write_file("ticker.csv", ticker), write_file("book.csv", book)};
    struct bt b;
    bt_start(&b, paths, 2);
    bt_to(&b, 1000);
    {
        const struct core_view *v = core_view_begin(b.core);
        struct exch_instrument_state st;
        cv_instrument(v, b.xbt, &st);
        core_view_end(v);
        ck_assert_int_eq(st.funding_rate_e8, 50000);
        ck_assert_int_eq(st.indicative_rate_e8, 20000);
        ck_assert_int_eq(st.next_funding_ms, INT64_C(1705291200000));
    }
    bt_limit(&b, SIDE_BUY, 42000.5, 1000); /* takes 1,000 of history's ask */
    ck_assert_int_eq(b.filled, 1000);
    bt_to(&b, 4 * 3600 * 1000 + 1000);
    ck_assert_uint_eq(b.fundings, 1);
    ck_assert_int_eq(b.funding_rate, 50000);
    const struct exch_config *xc = core_exch_config(b.core);
    sats_t pay;
    ck_assert_int_eq(mf_funding_payment(&xc->inst[b.xbt].contract, 1000, b.funding_mark, 50000, &pay), MF_OK);
    ck_assert(pay > 0);
    ck_assert_int_eq(b.user_funding, -pay);
    struct history_stats hs;
    history_stats(b.h, &hs);
    ck_assert_uint_eq(hs.funding_rates, 1);
    ck_assert_uint_eq(hs.funding_other_time, 1);
    bt_audit(&b);
    bt_stop(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backtest");
    TCase *tc = tcase_create("driver");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, queue_behind_history);
    tcase_add_test(tc, queue_cancels_from_the_back);
    tcase_add_test(tc, new_best_price);
    tcase_add_test(tc, tardis_book_queue);
    tcase_add_test(tc, deterministic_report);
    tcase_add_test(tc, trade_through_own_stale_bid);
    tcase_add_test(tc, quotes_cut_once);
    tcase_add_test(tc, funding_rate_from_the_data);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
