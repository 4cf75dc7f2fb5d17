/*
 * report.c - a backtest's report from the change stream (report.h).
 */
#include "history/report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/timefmt.h"

#define NAME_MAX_LEN 15

struct acct {
    bool seen;
    uint64_t trades;
    qty_t volume;
    sats_t notional, fees_paid, rebates, funding_paid, funding_received;
    uint64_t liquidations, deleverages;
    sats_t wallet, deposited, withdrawn, unrealised, margin_balance;
    sats_t peak, max_drawdown;
    bool has_peak;
};

struct report {
    const struct exch_config *cfg;
    struct acct *a;       /* [account * CURRENCIES_MAX + currency] */
    uint32_t naccounts;   /* accounts with room in a */
    qty_t *pos;           /* [account * INSTRUMENTS_MAX + inst] */
    char (*name)[NAME_MAX_LEN + 1];
    uint32_t nnames;
    ms_t first_ms, last_ms;
    uint64_t seq;
};

struct report *report_create(const struct exch_config *cfg)
{
    struct report *r = calloc(1, sizeof(*r));
    if (r)
        r->cfg = cfg;
    return r;
}

void report_destroy(struct report *r)
{
    if (!r)
        return;
    free(r->a);
    free(r->pos);
    free(r->name);
    free(r);
}

static void room(struct report *r, uint32_t account)
{
    if (account < r->naccounts)
        return;
    uint32_t n = r->naccounts ? r->naccounts : 64;
    while (n <= account)
        n *= 2;
    struct acct *a = realloc(r->a, (size_t)n * CURRENCIES_MAX * sizeof(*a));
    qty_t *pos = realloc(r->pos, (size_t)n * INSTRUMENTS_MAX * sizeof(*pos));
    if (!a || !pos) {
        fprintf(stderr, "perpsim: report: out of memory\n");
        abort();
    }
    memset(a + (size_t)r->naccounts * CURRENCIES_MAX, 0,
           (size_t)(n - r->naccounts) * CURRENCIES_MAX * sizeof(*a));
    memset(pos + (size_t)r->naccounts * INSTRUMENTS_MAX, 0,
           (size_t)(n - r->naccounts) * INSTRUMENTS_MAX * sizeof(*pos));
    r->a = a;
    r->pos = pos;
    r->naccounts = n;
}

static struct acct *acct(struct report *r, uint32_t account, uint8_t cur)
{
    room(r, account);
    struct acct *a = &r->a[(size_t)account * CURRENCIES_MAX + (cur < CURRENCIES_MAX ? cur : 0)];
    a->seen = true;
    return a;
}

void report_name(struct report *r, uint32_t account, const char *name)
{
    if (account >= r->nnames) {
        uint32_t n = account + 1;
        void *p = realloc(r->name, (size_t)n * sizeof(*r->name));
        if (!p)
            return;
        r->name = p;
        memset(r->name + r->nnames, 0, (size_t)(n - r->nnames) * sizeof(*r->name));
        r->nnames = n;
    }
    snprintf(r->name[account], sizeof(r->name[account]), "%s", name);
}

static void consume(void *ctx, const struct core_record *rec)
{
    struct report *r = ctx;
    if (!r->first_ms)
        r->first_ms = rec->ts;
    r->last_ms = rec->ts;
    r->seq = rec->seq;
    for (uint32_t k = 0; k < rec->nev; k++) {
        const struct rec_event *re = &rec->ev[k];
        const struct event *e = &re->ev;
        switch (e->type) {
        case EV_FILL: {
            if (e->account == EXCH_LIQUIDATOR)
                break;
            struct acct *a = acct(r, e->account, r->cfg->inst[e->inst].currency);
            a->trades++;
            a->volume += e->u.fill.last_qty;
            a->notional += re->x.fill.cost < 0 ? -re->x.fill.cost : re->x.fill.cost;
            if (re->x.fill.comm >= 0)
                a->fees_paid += re->x.fill.comm;
            else
                a->rebates -= re->x.fill.comm;
            break;
        }
        case EV_MONEY: {
            struct acct *a = acct(r, e->account, e->u.money.currency);
            switch (e->u.money.kind) {
            case MK_FUNDING:
                if (e->u.money.amount < 0)
                    a->funding_paid -= e->u.money.amount;
                else
                    a->funding_received += e->u.money.amount;
                break;
            case MK_LIQUIDATION:
                a->liquidations++;
                break;
            case MK_DELEVERAGE:
                a->deleverages++;
                break;
            default:
                break;
            }
            break;
        }
        case EV_POSITION:
            room(r, e->account);
            r->pos[(size_t)e->account * INSTRUMENTS_MAX + e->inst] = re->x.pos.qty;
            break;
        case EV_MARGIN: {
            struct acct *a = acct(r, e->account, e->reason);
            const struct exch_margin *m = &re->x.margin;
            a->wallet = m->wallet;
            a->deposited = m->deposited;
            a->withdrawn = m->withdrawn;
            a->unrealised = m->unrealised_pnl;
            a->margin_balance = m->margin_balance;
            /* Deposits and withdrawals are not gains or losses: the high
             * moves with them. */
            sats_t net = m->margin_balance - m->deposited + m->withdrawn;
            if (!a->has_peak || net > a->peak) {
                a->peak = net;
                a->has_peak = true;
            }
            if (a->peak - net > a->max_drawdown)
                a->max_drawdown = a->peak - net;
            break;
        }
        default:
            break;
        }
    }
}

int report_attach(struct report *r, struct core *c)
{
    return core_subscribe(c, consume, r, true);
}

struct sbuf {
    char *p;
    size_t len, cap;
    bool bad;
};

static void put(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->bad = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->bad = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static void put_time(struct sbuf *b, const char *key, ms_t t)
{
    char iso[TF_ISO_BUF];
    if (tf_format_ms(t, iso, sizeof(iso)) != TF_OK)
        snprintf(iso, sizeof(iso), "%s", "");
    put(b, "\"%s\":\"%s\"", key, iso);
}

char *report_json(struct report *r, struct core *c)
{
    struct core_state st;
    core_state(c, &st);
    const struct core_view *v = core_view_begin(c);
    struct sbuf b = {0};
    put(&b, "{\"seq\":%" PRIu64 ",", st.seq);
    put_time(&b, "from", r->first_ms);
    put(&b, ",");
    put_time(&b, "to", r->last_ms);
    put(&b, ",\"stateHash\":\"%016" PRIx64 "\",\"accounts\":[", st.hash);
    bool first = true;
    for (uint32_t acc = 0; acc < r->naccounts; acc++) {
        for (uint8_t cur = 0; cur < r->cfg->currencies_count; cur++) {
            const struct acct *a = &r->a[(size_t)acc * CURRENCIES_MAX + cur];
            if (!a->seen || (a->trades == 0 && a->wallet == 0 && a->funding_paid == 0 && a->funding_received == 0))
                continue;
            sats_t realised = a->wallet - a->deposited + a->withdrawn + a->fees_paid - a->rebates -
                              a->funding_received + a->funding_paid;
            put(&b, "%s{\"account\":%" PRIu32 ",\"name\":\"%s\",\"currency\":\"%s\"", first ? "" : ",", acc,
                acc < r->nnames && r->name[acc][0] ? r->name[acc] : acc == EXCH_LIQUIDATOR ? "liquidator" : "",
                r->cfg->currency[cur]);
            put(&b,
                ",\"trades\":%" PRIu64 ",\"volume\":%" PRId64 ",\"notional\":%" PRId64 ",\"feesPaid\":%" PRId64
                ",\"rebates\":%" PRId64 ",\"fundingPaid\":%" PRId64 ",\"fundingReceived\":%" PRId64
                ",\"liquidations\":%" PRIu64 ",\"deleverages\":%" PRIu64,
                a->trades, a->volume, a->notional, a->fees_paid, a->rebates, a->funding_paid, a->funding_received,
                a->liquidations, a->deleverages);
            put(&b,
                ",\"realisedPnl\":%" PRId64 ",\"unrealisedPnl\":%" PRId64 ",\"walletBalance\":%" PRId64
                ",\"marginBalance\":%" PRId64 ",\"deposited\":%" PRId64 ",\"withdrawn\":%" PRId64
                ",\"maxDrawdown\":%" PRId64 ",\"positions\":{",
                realised, a->unrealised, a->wallet, a->margin_balance, a->deposited, a->withdrawn, a->max_drawdown);
            bool pf = true;
            for (uint16_t k = 0; k < r->cfg->engine.instruments_count; k++) {
                if (r->cfg->inst[k].currency != cur)
                    continue;
                qty_t q = r->pos[(size_t)acc * INSTRUMENTS_MAX + k];
                if (q == 0)
                    continue;
                put(&b, "%s\"%s\":%" PRId64, pf ? "" : ",", r->cfg->engine.instruments[k].symbol, q);
                pf = false;
            }
            put(&b, "}}");
            first = false;
        }
    }
    put(&b, "]}");
    core_view_end(v);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
