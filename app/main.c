/*
 * main.c - the perpsim program.
 *
 * Today perpsim is its matching engine: the REST server (api/), the margin
 * core (margin/) and load shedding (loadshed/) are being built on top of it.
 * Until the server lands, `perpsim` runs a short, fixed session through the
 * engine and prints what happened the way a trader reads it: orders,
 * executions with BitMEX's execType names, trades and the orderBookL2 view.
 * It is deterministic: same binary, same output.
 */
#include "engine/engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const side_names[] = {"", "Buy", "Sell"};
static const char *const ord_type_names[] = {"", "Limit", "Market", "Stop", "StopLimit",
                                             "MarketIfTouched", "LimitIfTouched", "Pegged"};
static const char *const status_names[] = {"New", "PartiallyFilled", "Filled", "Canceled", "Rejected"};

static void print_px(px_t px)
{
    printf("%" PRId64 ".%02" PRId64, px / PX_SCALE, (px % PX_SCALE) / (PX_SCALE / 100));
}

static void sink(void *ctx, const struct event *ev)
{
    (void)ctx;
    const struct order_view *o = &ev->order;
    switch (ev->type) {
    case EV_NEW:
    case EV_CANCELED:
    case EV_TRIGGERED:
    case EV_AMENDED:
    case EV_RESTATED: {
        static const char *const exec[] = {[EV_NEW] = "New", [EV_CANCELED] = "Canceled",
                                           [EV_TRIGGERED] = "TriggeredOrActivatedBySystem",
                                           [EV_AMENDED] = "Replaced", [EV_RESTATED] = "Restated"};
        printf("  %-28s order %" PRIu64 " account %u %s %s %" PRId64 " @ ", exec[ev->type], o->id,
               o->account, side_names[o->side], ord_type_names[o->ord_type], o->qty);
        print_px(o->price);
        printf(" -> %s", status_names[o->status]);
        if (ev->type == EV_CANCELED)
            printf(" (%s)", engine_cancel_name((enum cancel_reason)ev->reason));
        printf("\n");
        break;
    }
    case EV_REJECTED:
        printf("  %-28s %s\n", "Rejected", engine_reject_name((enum reject)ev->reason));
        break;
    case EV_FILL:
        printf("  %-28s order %" PRIu64 " %s %" PRId64 " @ ", "Trade", o->id,
               ev->u.fill.maker ? "AddedLiquidity  " : "RemovedLiquidity", ev->u.fill.last_qty);
        print_px(ev->u.fill.last_px);
        printf(" leaves %" PRId64 "\n", o->leaves);
        break;
    case EV_TRADE:
        printf("  %-28s %s %" PRId64 " @ ", "public trade", side_names[ev->u.trade.taker_side], ev->u.trade.qty);
        print_px(ev->u.trade.px);
        printf("\n");
        break;
    case EV_LEVEL:
        printf("  %-28s %s ", "orderBookL2", side_names[ev->u.level.side]);
        print_px(ev->u.level.px);
        printf(" size %" PRId64 " -> %" PRId64 "\n", ev->u.level.size_before, ev->u.level.size);
        break;
    case EV_PRICE:
        printf("  %-28s ", ev->u.price.source == SRC_MARK ? "markPrice" : "indexPrice");
        print_px(ev->u.price.price);
        printf("\n");
        break;
    default:
        break;
    }
}

static struct cmd order(uint64_t seq, uint32_t account, uint8_t side, qty_t qty, px_t price_usd)
{
    struct cmd c;
    memset(&c, 0, sizeof(c));
    c.type = CMD_NEW_ORDER;
    c.seq = seq;
    c.ts = INT64_C(1767225600000) + (int64_t)seq; /* 2026-01-01T00:00:00Z + seq ms */
    c.account = account;
    c.u.new_order.side = side;
    c.u.new_order.qty = qty;
    c.u.new_order.has = HAS_QTY;
    if (price_usd) {
        c.u.new_order.has |= HAS_PRICE;
        c.u.new_order.price = price_usd * PX_SCALE;
    }
    return c;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: perpsim\n  Runs a fixed demonstration session through the matching engine.\n"
               "  The BitMEX REST server is not built yet (see README.md, 'Status').\n");
        return 0;
    }
    struct engine_config cfg = {.orders_max = 1024, .accounts_max = 8, .stops_max = 64,
                                .open_orders_max = 200, .stop_orders_max = 10, .instruments_count = 1};
    strcpy(cfg.instruments[0].symbol, "XBTUSD");
    cfg.instruments[0].tick_px = PX_SCALE / 2;
    cfg.instruments[0].max_px = 1000000 * PX_SCALE;
    cfg.instruments[0].lot_qty = 1;
    cfg.instruments[0].max_order_qty = 10000000;
    const char *err = NULL;
    struct engine *e = engine_create(&cfg, sink, NULL, NULL, &err);
    if (!e) {
        fprintf(stderr, "perpsim: %s\n", err);
        return 1;
    }
    printf("perpsim %s: matching engine demonstration on XBTUSD (the REST server is not built yet)\n\n",
           "0.1.0");
    struct step {
        const char *what;
        struct cmd c;
    } steps[] = {
        {"account 1 offers 100 @ 50000", order(1, 1, SIDE_SELL, 100, 50000)},
        {"account 2 offers 300 @ 50001", order(2, 2, SIDE_SELL, 300, 50001)},
        {"account 3 bids 150 @ 49999", order(3, 3, SIDE_BUY, 150, 49999)},
        {"account 4 buys 250 at market: sweeps two levels", order(4, 4, SIDE_BUY, 250, 0)},
        {"account 4 sells 400 @ 49990: fills the bid, rests the rest", order(5, 4, SIDE_SELL, 400, 49990)},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        printf("%s\n", steps[i].what);
        engine_apply(e, &steps[i].c);
    }
    px_t px[8];
    qty_t size[8];
    printf("\norderBookL2 XBTUSD now:\n");
    uint32_t n = engine_levels(e, 0, SIDE_SELL, 8, px, size);
    for (uint32_t i = n; i-- > 0;) {
        printf("  Sell %8" PRId64 " @ ", size[i]);
        print_px(px[i]);
        printf("\n");
    }
    n = engine_levels(e, 0, SIDE_BUY, 8, px, size);
    for (uint32_t i = 0; i < n; i++) {
        printf("  Buy  %8" PRId64 " @ ", size[i]);
        print_px(px[i]);
        printf("\n");
    }
    printf("\nstate hash %016" PRIx64 ", invariants: %s\n", engine_hash(e),
           engine_verify(e) ? engine_verify(e) : "all hold");
    engine_destroy(e);
    return 0;
}
