/*
 * report.c - a backtest's report from the change stream (report.h).
 */
#include "history/report.h"

#include <inttypes.h>
#include <pthread.h>
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

/* A plotted series: one point per second of data time at most (the last
 * value of the second), so a day is at most 86,400 points whatever the
 * rows; the plot draws each pixel column's low and high. */
struct pts {
    ms_t *t;
    int64_t *v;
    uint32_t n, cap;
};

enum series_kind { S_PRICE, S_MARK, S_EQUITY, S_POSITION };

struct series {
    uint8_t kind;          /* enum series_kind */
    uint32_t account;      /* S_EQUITY, S_POSITION */
    uint16_t key;          /* the instrument, or the currency (S_EQUITY) */
    struct pts p;
};

#define SERIES_MAX 64

struct report {
    const struct exch_config *cfg;
    /* Names and series change under a read view (report_name), which
     * keeps the consumer out but not other readers (report_json,
     * report_svg): they share this too. */
    pthread_mutex_t names;
    struct series series[SERIES_MAX];
    uint32_t nseries;
    bool traded[INSTRUMENTS_MAX]; /* instruments the plotted accounts traded */
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
    if (r) {
        r->cfg = cfg;
        pthread_mutex_init(&r->names, NULL);
    }
    return r;
}

void report_destroy(struct report *r)
{
    if (!r)
        return;
    for (uint32_t k = 0; k < r->nseries; k++) {
        free(r->series[k].p.t);
        free(r->series[k].p.v);
    }
    free(r->a);
    free(r->pos);
    free(r->name);
    pthread_mutex_destroy(&r->names);
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

void report_name(struct report *r, struct core *c, uint32_t account, const char *name)
{
    /* a view: the consumer (under the state's write lock) is not running */
    const struct core_view *v = core_view_begin(c);
    pthread_mutex_lock(&r->names);
    if (account >= r->nnames) {
        uint32_t n = account + 1;
        void *p = realloc(r->name, (size_t)n * sizeof(*r->name));
        if (!p) {
            pthread_mutex_unlock(&r->names);
            core_view_end(v);
            return;
        }
        r->name = p;
        memset(r->name + r->nnames, 0, (size_t)(n - r->nnames) * sizeof(*r->name));
        r->nnames = n;
    }
    snprintf(r->name[account], sizeof(r->name[account]), "%s", name);
    /* A named account is not plotted: the series it made before its name
     * (its account's first deposit) go. */
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->nseries; i++) {
        struct series *x = &r->series[i];
        if ((x->kind == S_EQUITY || x->kind == S_POSITION) && x->account == account) {
            free(x->p.t);
            free(x->p.v);
            continue;
        }
        r->series[k++] = *x;
    }
    r->nseries = k;
    pthread_mutex_unlock(&r->names);
    core_view_end(v);
}

static void pts_add(struct pts *p, ms_t t, int64_t v)
{
    if (p->n && p->t[p->n - 1] / 1000 == t / 1000) {
        p->t[p->n - 1] = t;
        p->v[p->n - 1] = v;
        return;
    }
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 256;
        ms_t *nt = realloc(p->t, cap * sizeof(*nt));
        if (nt)
            p->t = nt;
        int64_t *nv = realloc(p->v, cap * sizeof(*nv));
        if (nv)
            p->v = nv;
        if (!nt || !nv)
            return; /* the plot loses points, the report nothing */
        p->cap = cap;
    }
    p->t[p->n] = t;
    p->v[p->n] = v;
    p->n++;
}

/* The series of (kind, account, key), made on first use; NULL past
 * SERIES_MAX (the plot shows the first ones). */
static struct series *series(struct report *r, uint8_t kind, uint32_t account, uint16_t key)
{
    for (uint32_t k = 0; k < r->nseries; k++) {
        struct series *x = &r->series[k];
        if (x->kind == kind && x->account == account && x->key == key)
            return x;
    }
    if (r->nseries == SERIES_MAX)
        return NULL;
    struct series *x = &r->series[r->nseries++];
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->account = account;
    x->key = key;
    return x;
}

/* Accounts whose figures are plotted: the traders, not the history or the
 * liquidator (accounts given a name). */
static bool plotted(const struct report *r, uint32_t account)
{
    return account != EXCH_LIQUIDATOR && !(account < r->nnames && r->name[account][0]);
}

static void sample(struct report *r, uint8_t kind, uint32_t account, uint16_t key, ms_t t, int64_t v)
{
    struct series *x = series(r, kind, account, key);
    if (x)
        pts_add(&x->p, t, v);
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
            if (plotted(r, e->account))
                r->traded[e->inst] = true;
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
            if (plotted(r, e->account) && (re->x.pos.qty != 0 || r->traded[e->inst]))
                sample(r, S_POSITION, e->account, e->inst, rec->ts, re->x.pos.qty);
            break;
        case EV_TRADE:
            sample(r, S_PRICE, 0, e->inst, rec->ts, e->u.trade.px);
            break;
        case EV_INSTRUMENT:
            if (re->x.inst.mark_px > 0)
                sample(r, S_MARK, 0, e->inst, rec->ts, re->x.inst.mark_px);
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
            if (plotted(r, e->account))
                sample(r, S_EQUITY, e->account, e->reason, rec->ts, net);
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

/* The end of report_json and report_svg: the locks they took released,
 * the text (NULL when memory ran out). */
static char *done(struct report *r, const struct core_view *v, struct sbuf *b)
{
    pthread_mutex_unlock(&r->names);
    core_view_end(v);
    if (b->bad) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

char *report_json(struct report *r, struct core *c)
{
    struct core_state st;
    core_state(c, &st);
    const struct core_view *v = core_view_begin(c);
    pthread_mutex_lock(&r->names);
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
    return done(r, v, &b);
}

/* ---- the plot ------------------------------------------------------------- */

#define PLOT_W 960
#define PANEL_H 200
#define PAD_L 110
#define PAD_R 20
#define PAD_T 34
#define PANEL_GAP 46

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

struct panel {
    const char *title;
    uint8_t kinds[2];
    uint32_t nkinds;
    double scale; /* a value's units per axis unit (prices: 1e8) */
    bool steps;   /* a step line (positions) */
};

static bool shows(const struct report *r, const struct panel *pn, const struct series *x, bool any_traded)
{
    bool kind = false;
    for (uint32_t k = 0; k < pn->nkinds; k++)
        kind |= x->kind == pn->kinds[k];
    if (!kind || x->p.n == 0)
        return false;
    if (x->kind == S_PRICE || x->kind == S_MARK)
        return !any_traded || r->traded[x->key];
    return true;
}

static void series_label(const struct report *r, const struct series *x, char *out, size_t cap)
{
    const char *sym = x->key < r->cfg->engine.instruments_count ? r->cfg->engine.instruments[x->key].symbol : "?";
    switch (x->kind) {
    case S_PRICE: snprintf(out, cap, "%s last", sym); break;
    case S_MARK: snprintf(out, cap, "%s mark", sym); break;
    case S_EQUITY:
        snprintf(out, cap, "account %" PRIu32 " %s", x->account,
                 x->key < r->cfg->currencies_count ? r->cfg->currency[x->key] : "?");
        break;
    default: snprintf(out, cap, "account %" PRIu32 " %s", x->account, sym); break;
    }
}

static void panel_svg(struct sbuf *b, const struct report *r, const struct panel *pn, int y0, ms_t t0, ms_t t1,
                      bool any_traded)
{
    const int w = PLOT_W - PAD_L - PAD_R, h = PANEL_H;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (uint32_t k = 0; k < r->nseries; k++) {
        const struct series *x = &r->series[k];
        if (!shows(r, pn, x, any_traded))
            continue;
        for (uint32_t i = 0; i < x->p.n; i++) {
            lo = x->p.v[i] < lo ? x->p.v[i] : lo;
            hi = x->p.v[i] > hi ? x->p.v[i] : hi;
        }
    }
    put(b, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", PAD_L, y0 - 10, pn->title);
    put(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", PAD_L, y0, w, h);
    if (lo > hi) {
        put(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#666\">no data</text>\n", PAD_L + 10, y0 + h / 2);
        return;
    }
    if (lo == hi) {
        lo -= 1;
        hi += 1;
    }
    for (int g = 0; g <= 4; g++) {
        double v = (double)lo + (double)(hi - lo) * g / 4.0;
        double y = y0 + h - (double)h * g / 4.0;
        put(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", PAD_L, y, PAD_L + w, y);
        put(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.*f</text>\n", PAD_L - 6, y + 4,
            pn->scale > 1 ? 2 : 0, v / pn->scale);
    }
    uint32_t legend = 0;
    for (uint32_t k = 0; k < r->nseries; k++) {
        const struct series *x = &r->series[k];
        if (!shows(r, pn, x, any_traded))
            continue;
        const char *col = palette[legend % (sizeof(palette) / sizeof(palette[0]))];
        put(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.3\" points=\"", col);
        double py = 0;
        uint32_t i = 0;
        while (i < x->p.n) {
            /* One pixel column: its points' low and high, in their order,
             * then its last value (a step line's level from there). */
            int colx = (int)((double)w * (double)(x->p.t[i] - t0) / (double)(t1 - t0));
            uint32_t j = i, ilo = i, ihi = i;
            while (j < x->p.n && (int)((double)w * (double)(x->p.t[j] - t0) / (double)(t1 - t0)) == colx) {
                if (x->p.v[j] < x->p.v[ilo])
                    ilo = j;
                if (x->p.v[j] > x->p.v[ihi])
                    ihi = j;
                j++;
            }
            uint32_t pick[3] = {ilo < ihi ? ilo : ihi, ilo < ihi ? ihi : ilo, j - 1};
            for (int q = 0; q < 3; q++) {
                if (q > 0 && pick[q] == pick[q - 1])
                    continue;
                double ptx = PAD_L + (double)w * (double)(x->p.t[pick[q]] - t0) / (double)(t1 - t0);
                double y = y0 + h - (double)h * (double)(x->p.v[pick[q]] - lo) / (double)(hi - lo);
                if (pn->steps && (i > 0 || q > 0))
                    put(b, "%.1f,%.1f ", ptx, py);
                put(b, "%.1f,%.1f ", ptx, y);
                py = y;
            }
            i = j;
        }
        /* a step line's (or a lone point's) last value holds to the end */
        if (pn->steps || x->p.n == 1)
            put(b, "%d,%.1f", PAD_L + w, py);
        put(b, "\"/>\n");
        char label[64];
        series_label(r, x, label, sizeof(label));
        put(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"%s\">%s</text>\n", PAD_L + 8 + 170 * (int)(legend % 4),
            y0 + 14 + 13 * (int)(legend / 4), col, label);
        legend++;
    }
}

char *report_svg(struct report *r, struct core *c)
{
    const struct core_view *v = core_view_begin(c);
    pthread_mutex_lock(&r->names);
    ms_t t0 = r->first_ms, t1 = r->last_ms > r->first_ms ? r->last_ms : r->first_ms + 1;
    bool any_traded = false;
    for (uint16_t k = 0; k < INSTRUMENTS_MAX; k++)
        any_traded |= r->traded[k];
    static const struct panel panels[] = {
        {"Price (last trade and mark)", {S_PRICE, S_MARK}, 2, 1e8, false},
        {"Equity: margin balance net of deposits (minor units: XBt, USDt)", {S_EQUITY}, 1, 1, false},
        {"Position (contracts)", {S_POSITION}, 1, 1, true},
    };
    const int np = (int)(sizeof(panels) / sizeof(panels[0]));
    const int height = PAD_T + np * (PANEL_H + PANEL_GAP) + 10;
    struct sbuf b = {0};
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
        PLOT_W, height, PLOT_W, height);
    char a[TF_ISO_BUF] = "", z[TF_ISO_BUF] = "";
    tf_format_ms(t0, a, sizeof(a));
    tf_format_ms(t1, z, sizeof(z));
    put(&b, "<text x=\"%d\" y=\"18\" font-size=\"13\">perpsim backtest, %s to %s (data time)</text>\n",
        PAD_L, a, z);
    for (int k = 0; k < np; k++) {
        int y0 = PAD_T + 20 + k * (PANEL_H + PANEL_GAP);
        panel_svg(&b, r, &panels[k], y0, t0, t1, any_traded);
        put(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", PAD_L, y0 + PANEL_H + 14, a);
        put(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", PLOT_W - PAD_R,
            y0 + PANEL_H + 14, z);
    }
    put(&b, "</svg>\n");
    return done(r, v, &b);
}
