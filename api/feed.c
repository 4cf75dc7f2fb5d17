/*
 * feed.c - the realtime feed's tables and messages (feed.h).
 */
#include "api/feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/json.h"
#include "api/l2id.h"
#include "api/names.h"
#include "api/srv_int.h"
#include "api/timefmt.h"
#include "core/store.h"

/* ---- the feed's state ---------------------------------------------------------------------------- */

#define TOP25 25
#define TOP10 10
#define TRADES_PARTIAL 100
#define EXECS_PARTIAL 100
#define TRANSACTS_PARTIAL 100
#define BINS_PARTIAL 24
#define BINS_PER_STEP_MAX 1440 /* closed bins sent for one record (a long clock jump) */
/* The feed's read model keeps fewer closed rows than REST's: partials show
 * recent rows; every live order is kept whatever the limit. */
#define FEED_KEEP_ORDERS 20000u
#define FEED_KEEP_EXECS 200000u
#define FEED_KEEP_TRADES 2000u

struct lvl {
    px_t px;
    qty_t size;
};

struct book_side {
    struct lvl *v; /* bids: best (highest) first; asks: best (lowest) first */
    uint32_t n, cap;
};

struct top {
    struct lvl v[TOP25];
    uint32_t n;
};

struct quote {
    bool valid;
    px_t bid, ask;
    qty_t bid_size, ask_size;
};

struct finst {
    struct book_side side[2]; /* [0] buys, [1] sells */
    struct top top25[2], top10[2];
    struct quote quote;
    struct exch_instrument_state st;
};

_Static_assert(INSTRUMENTS_MAX <= 64 && CURRENCIES_MAX <= 8,
               "the position and margin lists pack (account << 6 | inst) and (account << 3 | currency)");

struct facct {
    struct exch_position pos[INSTRUMENTS_MAX];
    struct exch_margin margin[CURRENCIES_MAX];
    uint64_t pos_seen;      /* instruments with a position event */
    uint64_t pos_gen[INSTRUMENTS_MAX]; /* record in which the position was listed */
    uint64_t margin_gen[CURRENCIES_MAX];
};

/* A message being built: rows for (table, inst, account) with one action. */
struct pend {
    int table, inst;
    uint32_t account;
    const char *action;
    cJSON *rows;
};

struct feed {
    const struct exch_config *cfg;
    uint16_t ninst;
    uint32_t accounts_max;
    struct store *st;
    struct finst inst[INSTRUMENTS_MAX];
    struct facct **acct;
    uint32_t *made;       /* accounts with a struct in acct, in order made */
    uint32_t nmade, cap_made;
    uint64_t seq;
    ms_t now;
    uint64_t gen; /* records applied, the stamp of the one being applied */
    uint64_t execs_done;
    uint32_t wallet_done, funding_done, insurance_done, settle_done;
    ms_t bin_start[BIN_COUNT]; /* the bin in progress at the last record */
    /* per record */
    feed_want_fn want;
    feed_emit_fn emit;
    void *ctx;
    struct pend *pend;
    uint32_t npend, cap_pend;
    uint64_t *ids;       /* orders the record touched, in first-event order */
    uint8_t *fresh;      /* ... whether each was new in it (EV_NEW) */
    uint32_t nids, cap_ids, cap_fresh;
    struct seen_id { uint64_t id, gen; uint32_t at; } *seen; /* ids listed in this record */
    uint32_t cap_seen;   /* a power of two, >= 2 x nids */
    uint32_t *pos_list;  /* (account << 6 | inst) of position events, first-listed order */
    uint32_t npos, cap_pos;
    uint32_t *mar_list;  /* (account << 3 | currency) */
    uint32_t nmar, cap_mar;
};

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) {
        fprintf(stderr, "perpsim: out of memory in the realtime feed: stopping\n");
        abort();
    }
    *cap = nc;
    return q;
}

struct feed *feed_create(const struct exch_config *cfg, uint32_t accounts_max)
{
    if (accounts_max > (UINT32_C(1) << 26))
        return NULL; /* the packed lists hold account numbers below 2^26 */
    struct feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cfg = cfg;
    f->ninst = cfg->engine.instruments_count;
    f->accounts_max = accounts_max;
    f->st = store_create(cfg, accounts_max,
                         (struct store_limits){FEED_KEEP_ORDERS, FEED_KEEP_EXECS, FEED_KEEP_TRADES, false});
    f->acct = calloc(accounts_max, sizeof(*f->acct));
    if (!f->st || !f->acct) {
        feed_destroy(f);
        return NULL;
    }
    return f;
}

void feed_destroy(struct feed *f)
{
    if (!f)
        return;
    if (f->st)
        store_destroy(f->st);
    if (f->acct)
        for (uint32_t a = 0; a < f->accounts_max; a++)
            free(f->acct[a]);
    free(f->acct);
    for (uint16_t i = 0; i < INSTRUMENTS_MAX; i++)
        for (int s = 0; s < 2; s++)
            free(f->inst[i].side[s].v);
    for (uint32_t k = 0; k < f->npend; k++)
        cJSON_Delete(f->pend[k].rows);
    free(f->pend);
    free(f->ids);
    free(f->fresh);
    free(f->seen);
    free(f->pos_list);
    free(f->mar_list);
    free(f->made);
    free(f);
}

uint64_t feed_seq(const struct feed *f) { return f->seq; }
ms_t feed_now(const struct feed *f) { return f->now; }

static struct facct *acct_of(struct feed *f, uint32_t a)
{
    if (a >= f->accounts_max)
        return NULL;
    if (!f->acct[a]) {
        f->acct[a] = calloc(1, sizeof(*f->acct[a]));
        if (!f->acct[a]) {
            fprintf(stderr, "perpsim: out of memory in the realtime feed: stopping\n");
            abort();
        }
        f->made = grow(f->made, &f->cap_made, f->nmade + 1, sizeof(*f->made));
        f->made[f->nmade++] = a;
    }
    return f->acct[a];
}

/* ---- the book ------------------------------------------------------------------------------------ */

static int side_ix(uint8_t side) { return side == SIDE_SELL ? 1 : 0; }

/* Index of px in the side, or where it goes; *found when there. */
static uint32_t book_find(const struct book_side *b, int s, px_t px, bool *found)
{
    uint32_t lo = 0, hi = b->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        px_t m = b->v[mid].px;
        bool before = s == 0 ? m > px : m < px; /* m is better than px */
        if (before)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < b->n && b->v[lo].px == px;
    return lo;
}

static void book_set(struct book_side *b, int s, px_t px, qty_t size)
{
    bool found;
    uint32_t at = book_find(b, s, px, &found);
    if (size == 0) {
        if (found) {
            if (at + 1 < b->n)
                memmove(&b->v[at], &b->v[at + 1], (size_t)(b->n - at - 1) * sizeof(b->v[0]));
            b->n--;
        }
        return;
    }
    if (found) {
        b->v[at].size = size;
        return;
    }
    b->v = grow(b->v, &b->cap, b->n + 1, sizeof(b->v[0]));
    if (at < b->n)
        memmove(&b->v[at + 1], &b->v[at], (size_t)(b->n - at) * sizeof(b->v[0]));
    b->v[at] = (struct lvl){px, size};
    b->n++;
}

static int64_t level_id(const struct feed *f, uint16_t i, px_t px)
{
    const struct engine_instrument *ei = &f->cfg->engine.instruments[i];
    int64_t id = 0;
    l2_id_from_price(L2_SYMBOL_IDX_BASE + i, px, l2_formula_tick_px(ei->symbol, ei->tick_px), &id);
    return id;
}

static cJSON *l2_row(const struct feed *f, uint16_t i, int s, px_t px, qty_t size, bool with_size,
                     const char *ts)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", f->cfg->engine.instruments[i].symbol);
    cJSON_AddNumberToObject(o, "id", (double)level_id(f, i, px));
    cJSON_AddStringToObject(o, "side", name_of(&names_side, s ? SIDE_SELL : SIDE_BUY));
    if (with_size)
        cJSON_AddNumberToObject(o, "size", (double)size);
    cJSON_AddNumberToObject(o, "price", px_num(px));
    cJSON_AddStringToObject(o, "timestamp", ts);
    return o;
}

static void top_of(const struct book_side *b, uint32_t depth, struct top *out)
{
    out->n = b->n < depth ? b->n : depth;
    if (out->n)
        memcpy(out->v, b->v, out->n * sizeof(out->v[0]));
}

static cJSON *book10_row(const struct feed *f, uint16_t i, const char *ts)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", f->cfg->engine.instruments[i].symbol);
    for (int s = 0; s < 2; s++) {
        cJSON *a = cJSON_AddArrayToObject(o, s ? "asks" : "bids");
        const struct top *t = &f->inst[i].top10[s];
        for (uint32_t k = 0; k < t->n; k++) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(px_num(t->v[k].px)));
            cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)t->v[k].size));
            cJSON_AddItemToArray(a, pair);
        }
    }
    cJSON_AddStringToObject(o, "timestamp", ts);
    return o;
}

static cJSON *quote_row(const struct feed *f, uint16_t i, const struct quote *q, const char *ts)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "timestamp", ts);
    cJSON_AddStringToObject(o, "symbol", f->cfg->engine.instruments[i].symbol);
    if (q->bid) {
        cJSON_AddNumberToObject(o, "bidSize", (double)q->bid_size);
        cJSON_AddNumberToObject(o, "bidPrice", px_num(q->bid));
    } else {
        cJSON_AddNullToObject(o, "bidSize");
        cJSON_AddNullToObject(o, "bidPrice");
    }
    if (q->ask) {
        cJSON_AddNumberToObject(o, "askPrice", px_num(q->ask));
        cJSON_AddNumberToObject(o, "askSize", (double)q->ask_size);
    } else {
        cJSON_AddNullToObject(o, "askPrice");
        cJSON_AddNullToObject(o, "askSize");
    }
    return o;
}

static struct quote quote_now(const struct finst *fi)
{
    struct quote q = {true, 0, 0, 0, 0};
    if (fi->side[0].n) {
        q.bid = fi->side[0].v[0].px;
        q.bid_size = fi->side[0].v[0].size;
    }
    if (fi->side[1].n) {
        q.ask = fi->side[1].v[0].px;
        q.ask_size = fi->side[1].v[0].size;
    }
    return q;
}

/* ---- messages ---------------------------------------------------------------------------------------- */

static bool wants(struct feed *f, int table, int inst, uint32_t account)
{
    return f->want(f->ctx, table, inst, account);
}

/* The rows to append to for (table, inst, account, action): the message
 * being built for that topic when its action is the same, else a new one. */
static cJSON *rows_for(struct feed *f, int table, int inst, uint32_t account, const char *action)
{
    for (uint32_t k = f->npend; k-- > 0;) {
        struct pend *p = &f->pend[k];
        if (p->table == table && p->inst == inst && p->account == account) {
            if (strcmp(p->action, action) == 0)
                return p->rows;
            break;
        }
    }
    f->pend = grow(f->pend, &f->cap_pend, f->npend + 1, sizeof(*f->pend));
    struct pend *p = &f->pend[f->npend++];
    *p = (struct pend){table, inst, account, action, cJSON_CreateArray()};
    return p->rows;
}

static void add_row(struct feed *f, int table, int inst, uint32_t account, const char *action,
                    cJSON *row)
{
    cJSON_AddItemToArray(rows_for(f, table, inst, account, action), row);
}

/* Appends text to a growable buffer. */
struct tbuf {
    char *p;
    size_t len, cap;
};

static void tb_add(struct tbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            fprintf(stderr, "perpsim: out of memory in the realtime feed: stopping\n");
            abort();
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void tb_str(struct tbuf *b, const char *s) { tb_add(b, s, strlen(s)); }

/* {"table":T,"action":A,<extra>"data":ROWS} */
static char *message(int table, const char *action, const char *extra, const cJSON *rows, size_t *len)
{
    struct tbuf b = {0};
    tb_str(&b, "{\"table\":\"");
    tb_str(&b, ft_info(table)->name);
    tb_str(&b, "\",\"action\":\"");
    tb_str(&b, action);
    tb_str(&b, "\",");
    if (extra)
        tb_str(&b, extra);
    tb_str(&b, "\"data\":");
    char *data = json_print(rows);
    if (!data) {
        fprintf(stderr, "perpsim: out of memory in the realtime feed: stopping\n");
        abort();
    }
    tb_str(&b, data);
    free(data);
    tb_str(&b, "}");
    *len = b.len;
    return b.p;
}

static void flush(struct feed *f)
{
    for (uint32_t k = 0; k < f->npend; k++) {
        struct pend *p = &f->pend[k];
        if (cJSON_GetArraySize(p->rows) > 0) {
            size_t len;
            char *m = message(p->table, p->action, NULL, p->rows, &len);
            f->emit(f->ctx, p->table, p->inst, p->account, m, len);
        }
        cJSON_Delete(p->rows);
    }
    f->npend = 0;
}

/* ---- applying a record ---------------------------------------------------------------------------- */

static bool order_event(uint8_t t)
{
    return t == EV_NEW || t == EV_AMENDED || t == EV_RESTATED || t == EV_CANCELED ||
           t == EV_TRIGGERED || t == EV_FILL;
}

static bool is_open(const struct order_view *v)
{
    return v->status == ST_NEW || v->status == ST_PARTIALLY_FILLED;
}

/* Bins that closed before this record's time, from the state before it. */
static void close_bins(struct feed *f, ms_t ts)
{
    for (int b = 0; b < BIN_COUNT; b++) {
        ms_t w = store_bin_ms((enum bin_size)b);
        ms_t cur = ts - ts % w;
        if (f->bin_start[b] == 0 || f->bin_start[b] > cur) {
            f->bin_start[b] = cur;
            continue;
        }
        if (cur - f->bin_start[b] > (ms_t)BINS_PER_STEP_MAX * w)
            f->bin_start[b] = cur - (ms_t)BINS_PER_STEP_MAX * w;
        for (; f->bin_start[b] < cur; f->bin_start[b] += w) {
            ms_t start = f->bin_start[b];
            char end[TF_ISO_BUF];
            tf_format_ms(start + w, end, sizeof(end));
            for (uint16_t i = 0; i < f->ninst; i++) {
                if (wants(f, FT_TRADEBIN1M + b, i, 0)) {
                    uint32_t nb = 0;
                    const struct bin_rec *bins = store_bins(f->st, i, (enum bin_size)b, &nb);
                    cJSON *row = render_bin(f->cfg, i, bins, nb, start, w);
                    if (row)
                        add_row(f, FT_TRADEBIN1M + b, i, 0, "insert", row);
                }
                const struct quote *q = &f->inst[i].quote;
                if (q->valid && wants(f, FT_QUOTEBIN1M + b, i, 0))
                    add_row(f, FT_QUOTEBIN1M + b, i, 0, "insert", quote_row(f, i, q, end));
            }
        }
    }
}

static uint32_t id_slot(const struct feed *f, uint64_t id)
{
    uint64_t h = id * UINT64_C(0x9E3779B97F4A7C15);
    uint32_t mask = f->cap_seen - 1, k = (uint32_t)(h >> 32) & mask;
    while (f->seen[k].gen == f->gen && f->seen[k].id != id)
        k = (k + 1) & mask;
    return k;
}

/* Lists an order the record touched, once (a sweep touches its taker
 * with every maker it meets); remembers whether it was new in it. */
static void list_order(struct feed *f, uint64_t id, bool is_new)
{
    if (2 * (f->nids + 1) > f->cap_seen) {
        uint32_t nc = f->cap_seen ? f->cap_seen * 2 : 64;
        free(f->seen);
        f->seen = calloc(nc, sizeof(*f->seen));
        if (!f->seen) {
            fprintf(stderr, "perpsim: out of memory in the realtime feed: stopping\n");
            abort();
        }
        f->cap_seen = nc;
        for (uint32_t k = 0; k < f->nids; k++) {
            uint32_t at = id_slot(f, f->ids[k]);
            f->seen[at] = (struct seen_id){f->ids[k], f->gen, k};
        }
    }
    uint32_t at = id_slot(f, id);
    if (f->seen[at].gen == f->gen) {
        f->fresh[f->seen[at].at] |= is_new;
        return;
    }
    f->seen[at] = (struct seen_id){id, f->gen, f->nids};
    f->ids = grow(f->ids, &f->cap_ids, f->nids + 1, sizeof(*f->ids));
    f->fresh = grow(f->fresh, &f->cap_fresh, f->nids + 1, sizeof(*f->fresh));
    f->ids[f->nids] = id;
    f->fresh[f->nids] = is_new;
    f->nids++;
}

static void emit_orders(struct feed *f)
{
    for (uint32_t k = 0; k < f->nids; k++) {
        uint64_t id = f->ids[k];
        const struct ord_rec *o = store_order(f->st, id);
        if (!o)
            continue;
        bool fresh = f->fresh[k];
        uint32_t a = o->v.account;
        if (a == EXCH_LIQUIDATOR) {
            if (!wants(f, FT_LIQUIDATION, o->v.inst, 0))
                continue;
            if (fresh) {
                /* an immediate-or-cancel takeover order comes and goes in
                 * one record: shown as it was sent, then gone */
                cJSON *row = render_liquidation(f->cfg, o);
                cJSON_ReplaceItemInObjectCaseSensitive(row, "leavesQty", cJSON_CreateNumber((double)o->v.qty));
                add_row(f, FT_LIQUIDATION, o->v.inst, 0, "insert", row);
            }
            if (!is_open(&o->v)) {
                cJSON *row = cJSON_CreateObject();
                char oid[37];
                id_format(oid, ID_ORDER, o->v.id);
                cJSON_AddStringToObject(row, "orderID", oid);
                cJSON_AddStringToObject(row, "symbol", sym(f->cfg, o->v.inst));
                add_row(f, FT_LIQUIDATION, o->v.inst, 0, "delete", row);
            } else {
                if (!fresh)
                    add_row(f, FT_LIQUIDATION, o->v.inst, 0, "update", render_liquidation(f->cfg, o));
            }
            continue;
        }
        if (wants(f, FT_ORDER, o->v.inst, a))
            add_row(f, FT_ORDER, o->v.inst, a, fresh ? "insert" : "update", render_order(f->cfg, o));
    }
}

static cJSON *position_row(const struct feed *f, uint32_t a, uint16_t i, const struct exch_position *p,
                           ms_t ts)
{
    /* The ADL rank is not in the stream: left out of the feed's rows. */
    cJSON *o = render_position(f->cfg, a, i, p, 0, ts);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "deleveragePercentile");
    return o;
}

void feed_apply(struct feed *f, const struct core_record *r, feed_want_fn want, feed_emit_fn emit,
                void *ctx)
{
    f->want = want;
    f->emit = emit;
    f->ctx = ctx;
    f->gen++;
    f->seq = r->seq;
    f->now = r->ts;
    f->nids = f->npos = f->nmar = 0;
    char ts[TF_ISO_BUF];
    tf_format_ms(r->ts, ts, sizeof(ts));

    close_bins(f, r->ts);
    store_apply(f->st, r);

    uint64_t book_moved = 0, inst_moved = 0, mark_moved = 0;
    uint32_t ntrades[INSTRUMENTS_MAX] = {0};
    for (uint32_t k = 0; k < r->nev; k++) {
        const struct rec_event *re = &r->ev[k];
        const struct event *e = &re->ev;
        if (order_event(e->type) || store_rejected_new(r, e))
            list_order(f, e->order.id, e->type == EV_NEW || e->type == EV_REJECTED);
        switch (e->type) {
        case EV_LEVEL: {
            if (e->inst >= f->ninst)
                break;
            int s = side_ix(e->u.level.side);
            book_set(&f->inst[e->inst].side[s], s, e->u.level.px, e->u.level.size);
            book_moved |= UINT64_C(1) << e->inst;
            if (wants(f, FT_ORDERBOOKL2, e->inst, 0)) {
                const char *action = e->u.level.size == 0          ? "delete"
                                     : e->u.level.size_before == 0 ? "insert"
                                                                   : "update";
                add_row(f, FT_ORDERBOOKL2, e->inst, 0, action,
                        l2_row(f, e->inst, s, e->u.level.px, e->u.level.size, e->u.level.size != 0, ts));
            }
            break;
        }
        case EV_TRADE:
            if (e->inst < f->ninst) {
                ntrades[e->inst]++;
                inst_moved |= UINT64_C(1) << e->inst;
            }
            break;
        case EV_INSTRUMENT:
            if (e->inst < f->ninst) {
                if (re->x.inst.mark_px != f->inst[e->inst].st.mark_px)
                    mark_moved |= UINT64_C(1) << e->inst;
                f->inst[e->inst].st = re->x.inst;
                inst_moved |= UINT64_C(1) << e->inst;
            }
            break;
        case EV_POSITION: {
            struct facct *fa = acct_of(f, e->account);
            if (!fa || e->inst >= INSTRUMENTS_MAX || e->account == EXCH_LIQUIDATOR)
                break;
            fa->pos[e->inst] = re->x.pos;
            if (fa->pos_gen[e->inst] != f->gen) {
                fa->pos_gen[e->inst] = f->gen;
                f->pos_list = grow(f->pos_list, &f->cap_pos, f->npos + 1, sizeof(*f->pos_list));
                f->pos_list[f->npos++] = e->account << 6 | e->inst;
            }
            break;
        }
        case EV_MARGIN: {
            struct facct *fa = acct_of(f, e->account);
            if (!fa || e->reason >= CURRENCIES_MAX || e->account == EXCH_LIQUIDATOR)
                break;
            fa->margin[e->reason] = re->x.margin;
            if (fa->margin_gen[e->reason] != f->gen) {
                fa->margin_gen[e->reason] = f->gen;
                f->mar_list = grow(f->mar_list, &f->cap_mar, f->nmar + 1, sizeof(*f->mar_list));
                f->mar_list[f->nmar++] = e->account << 3 | e->reason;
            }
            break;
        }
        default:
            break;
        }
    }

    /* The books' derived tables: top 25, top 10, the quote. */
    for (uint16_t i = 0; i < f->ninst; i++) {
        if (!(book_moved >> i & 1))
            continue;
        struct finst *fi = &f->inst[i];
        bool w25 = wants(f, FT_ORDERBOOKL2_25, i, 0);
        for (int s = 0; s < 2; s++) {
            struct top now;
            top_of(&fi->side[s], TOP25, &now);
            const struct top *was = &fi->top25[s];
            if (w25) {
                for (uint32_t a = 0; a < was->n; a++) {
                    bool kept = false;
                    for (uint32_t b = 0; b < now.n && !kept; b++)
                        kept = now.v[b].px == was->v[a].px;
                    if (!kept)
                        add_row(f, FT_ORDERBOOKL2_25, i, 0, "delete",
                                l2_row(f, i, s, was->v[a].px, 0, false, ts));
                }
                for (uint32_t b = 0; b < now.n; b++) {
                    bool had = false, same = false;
                    for (uint32_t a = 0; a < was->n && !had; a++)
                        if (was->v[a].px == now.v[b].px) {
                            had = true;
                            same = was->v[a].size == now.v[b].size;
                        }
                    if (!had)
                        add_row(f, FT_ORDERBOOKL2_25, i, 0, "insert",
                                l2_row(f, i, s, now.v[b].px, now.v[b].size, true, ts));
                    else if (!same)
                        add_row(f, FT_ORDERBOOKL2_25, i, 0, "update",
                                l2_row(f, i, s, now.v[b].px, now.v[b].size, true, ts));
                }
            }
            fi->top25[s] = now;
        }
        bool ten_moved = false;
        for (int s = 0; s < 2; s++) {
            struct top now;
            top_of(&fi->side[s], TOP10, &now);
            if (now.n != fi->top10[s].n || (now.n && memcmp(now.v, fi->top10[s].v, now.n * sizeof(now.v[0])) != 0))
                ten_moved = true;
            fi->top10[s] = now;
        }
        if (ten_moved && wants(f, FT_ORDERBOOK10, i, 0))
            add_row(f, FT_ORDERBOOK10, i, 0, "update", book10_row(f, i, ts));
        struct quote q = quote_now(fi);
        if (!fi->quote.valid || q.bid != fi->quote.bid || q.ask != fi->quote.ask ||
            q.bid_size != fi->quote.bid_size || q.ask_size != fi->quote.ask_size) {
            if (!fi->quote.valid || q.bid != fi->quote.bid || q.ask != fi->quote.ask)
                inst_moved |= UINT64_C(1) << i;
            fi->quote = q;
            if (wants(f, FT_QUOTE, i, 0))
                add_row(f, FT_QUOTE, i, 0, "insert", quote_row(f, i, &q, ts));
        }
    }

    /* Trades, then the instruments they and the other events moved. */
    for (uint16_t i = 0; i < f->ninst; i++) {
        if (ntrades[i] && wants(f, FT_TRADE, i, 0)) {
            uint32_t n = 0;
            const struct trade_rec *t = store_trades(f->st, i, &n);
            uint32_t from = n > ntrades[i] ? n - ntrades[i] : 0;
            for (uint32_t k = from; k < n; k++)
                add_row(f, FT_TRADE, i, 0, "insert", render_trade(f->cfg, i, &t[k]));
        }
        if ((inst_moved >> i & 1) && wants(f, FT_INSTRUMENT, i, 0)) {
            const struct finst *fi = &f->inst[i];
            add_row(f, FT_INSTRUMENT, i, 0, "update",
                    render_instrument_st(f->cfg, f->st, &fi->st, fi->quote.bid, fi->quote.ask, i, r->ts));
        }
    }

    emit_orders(f);

    /* Executions, wallet rows, funding, insurance, settlements: the rows
     * the read model made from this record. */
    uint64_t total = store_execs_total(f->st);
    for (uint64_t x = f->execs_done; x < total; x++) {
        const struct exe_rec *e = store_exec(f->st, (uint32_t)x);
        if (!e || e->v.account == EXCH_LIQUIDATOR)
            continue;
        if (wants(f, FT_EXECUTION, e->v.inst, e->v.account))
            add_row(f, FT_EXECUTION, e->v.inst, e->v.account, "insert", render_exec_st(f->cfg, f->st, e));
    }
    f->execs_done = total;
    uint32_t nw = store_wallet_count(f->st);
    for (; f->wallet_done < nw; f->wallet_done++) {
        const struct wallet_rec *w = store_wallet(f->st, f->wallet_done);
        if (w->account != EXCH_LIQUIDATOR && wants(f, FT_TRANSACT, FT_ALL, w->account))
            add_row(f, FT_TRANSACT, FT_ALL, w->account, "insert", render_transact(f->cfg, w));
    }
    uint32_t n = 0;
    const struct funding_rec *fr = store_funding(f->st, &n);
    for (; f->funding_done < n; f->funding_done++) {
        const struct funding_rec *x = &fr[f->funding_done];
        if (wants(f, FT_FUNDING, x->inst, 0))
            add_row(f, FT_FUNDING, x->inst, 0, "insert", render_funding(f->cfg, x));
    }
    const struct insurance_rec *ir = store_insurance(f->st, &n);
    for (; f->insurance_done < n; f->insurance_done++)
        if (wants(f, FT_INSURANCE, FT_ALL, 0))
            add_row(f, FT_INSURANCE, FT_ALL, 0, "insert", render_insurance(f->cfg, &ir[f->insurance_done]));
    const struct settle_rec *sr = store_settlements(f->st, &n);
    for (; f->settle_done < n; f->settle_done++) {
        const struct settle_rec *x = &sr[f->settle_done];
        if (wants(f, FT_SETTLEMENT, x->inst, 0))
            add_row(f, FT_SETTLEMENT, x->inst, 0, "insert", render_settlement(f->cfg, x));
    }

    /* A flat position without orders has no event of its own when the
     * mark moves; it shows the new mark (as REST does). */
    if (mark_moved)
        for (uint32_t m = 0; m < f->nmade; m++) {
            uint32_t a = f->made[m];
            struct facct *fa = f->acct[a];
            for (uint16_t i = 0; i < f->ninst; i++) {
                struct exch_position *p = &fa->pos[i];
                if (!(mark_moved >> i & 1) || !(fa->pos_seen >> i & 1) || fa->pos_gen[i] == f->gen ||
                    p->qty || p->open_buy_qty || p->open_sell_qty)
                    continue;
                p->mark_px = f->inst[i].st.mark_px;
                if (wants(f, FT_POSITION, i, a))
                    add_row(f, FT_POSITION, i, a, "update", position_row(f, a, i, p, r->ts));
            }
        }
    /* Positions and margins as the record left them. */
    for (uint32_t k = 0; k < f->npos; k++) {
        uint32_t a = f->pos_list[k] >> 6;
        uint16_t i = (uint16_t)(f->pos_list[k] & 63);
        struct facct *fa = f->acct[a];
        bool fresh = !(fa->pos_seen >> i & 1);
        fa->pos_seen |= UINT64_C(1) << i;
        if (wants(f, FT_POSITION, i, a))
            add_row(f, FT_POSITION, i, a, fresh ? "insert" : "update",
                    position_row(f, a, i, &fa->pos[i], r->ts));
    }
    for (uint32_t k = 0; k < f->nmar; k++) {
        uint32_t a = f->mar_list[k] >> 3;
        uint8_t c = (uint8_t)(f->mar_list[k] & 7);
        const struct exch_margin *m = &f->acct[a]->margin[c];
        if (wants(f, FT_MARGIN, FT_ALL, a))
            add_row(f, FT_MARGIN, FT_ALL, a, "update", render_margin(f->cfg, a, c, m, r->ts));
        if (wants(f, FT_WALLET, FT_ALL, a))
            add_row(f, FT_WALLET, FT_ALL, a, "update", render_wallet(f->cfg, a, c, m, r->ts));
    }
    flush(f);
}

/* ---- partials -------------------------------------------------------------------------------------- */

static void partial_rows(struct feed *f, int table, int inst, uint32_t account, cJSON *rows)
{
    char ts[TF_ISO_BUF];
    tf_format_ms(f->now, ts, sizeof(ts));
    uint16_t lo = inst == FT_ALL ? 0 : (uint16_t)inst;
    uint16_t hi = inst == FT_ALL ? f->ninst : (uint16_t)(inst + 1);
    struct facct *fa = account && account < f->accounts_max ? f->acct[account] : NULL;
    switch (table) {
    case FT_ORDERBOOKL2:
    case FT_ORDERBOOKL2_25:
        for (uint16_t i = lo; i < hi; i++) {
            const struct finst *fi = &f->inst[i];
            uint32_t ns = fi->side[1].n, nb = fi->side[0].n;
            if (table == FT_ORDERBOOKL2_25) {
                ns = fi->top25[1].n;
                nb = fi->top25[0].n;
            }
            for (uint32_t k = ns; k-- > 0;) /* sells high to low, then buys */
                cJSON_AddItemToArray(rows, l2_row(f, i, 1, fi->side[1].v[k].px, fi->side[1].v[k].size, true, ts));
            for (uint32_t k = 0; k < nb; k++)
                cJSON_AddItemToArray(rows, l2_row(f, i, 0, fi->side[0].v[k].px, fi->side[0].v[k].size, true, ts));
        }
        break;
    case FT_ORDERBOOK10:
        for (uint16_t i = lo; i < hi; i++)
            cJSON_AddItemToArray(rows, book10_row(f, i, ts));
        break;
    case FT_QUOTE:
        for (uint16_t i = lo; i < hi; i++)
            if (f->inst[i].quote.valid)
                cJSON_AddItemToArray(rows, quote_row(f, i, &f->inst[i].quote, ts));
        break;
    case FT_TRADE:
        for (uint16_t i = lo; i < hi; i++) {
            uint32_t n = 0;
            const struct trade_rec *t = store_trades(f->st, i, &n);
            for (uint32_t k = n > TRADES_PARTIAL ? n - TRADES_PARTIAL : 0; k < n; k++)
                cJSON_AddItemToArray(rows, render_trade(f->cfg, i, &t[k]));
        }
        break;
    case FT_TRADEBIN1M: case FT_TRADEBIN5M: case FT_TRADEBIN1H: case FT_TRADEBIN1D: {
        int b = table - FT_TRADEBIN1M;
        ms_t w = store_bin_ms((enum bin_size)b);
        for (uint16_t i = lo; i < hi; i++) {
            uint32_t nb = 0;
            const struct bin_rec *bins = store_bins(f->st, i, (enum bin_size)b, &nb);
            for (int k = BINS_PARTIAL; k >= 1; k--) {
                ms_t start = f->bin_start[b] - (ms_t)k * w;
                cJSON *row = start >= 0 ? render_bin(f->cfg, i, bins, nb, start, w) : NULL;
                if (row)
                    cJSON_AddItemToArray(rows, row);
            }
        }
        break;
    }
    case FT_INSTRUMENT:
        for (uint16_t i = lo; i < hi; i++) {
            const struct finst *fi = &f->inst[i];
            cJSON_AddItemToArray(rows, render_instrument_st(f->cfg, f->st, &fi->st, fi->quote.bid,
                                                            fi->quote.ask, i, f->now));
        }
        break;
    case FT_FUNDING: {
        uint32_t n = 0;
        const struct funding_rec *fr = store_funding(f->st, &n);
        for (uint16_t i = lo; i < hi; i++)
            for (uint32_t k = n; k-- > 0;)
                if (fr[k].inst == i) {
                    cJSON_AddItemToArray(rows, render_funding(f->cfg, &fr[k]));
                    break;
                }
        break;
    }
    case FT_LIQUIDATION: {
        const struct idx_vec *lv = store_liquidations(f->st);
        for (uint32_t k = 0; k < lv->n; k++) {
            const struct ord_rec *o = store_order(f->st, lv->v[k]);
            if (o && is_open(&o->v) && o->v.inst >= lo && o->v.inst < hi)
                cJSON_AddItemToArray(rows, render_liquidation(f->cfg, o));
        }
        break;
    }
    case FT_INSURANCE: {
        uint32_t n = 0;
        const struct insurance_rec *ir = store_insurance(f->st, &n);
        for (uint8_t c = 0; c < f->cfg->currencies_count; c++)
            for (uint32_t k = n; k-- > 0;)
                if (ir[k].currency == c) {
                    cJSON_AddItemToArray(rows, render_insurance(f->cfg, &ir[k]));
                    break;
                }
        break;
    }
    case FT_SETTLEMENT: {
        uint32_t n = 0;
        const struct settle_rec *sr = store_settlements(f->st, &n);
        for (uint32_t k = 0; k < n; k++)
            if (sr[k].inst >= lo && sr[k].inst < hi)
                cJSON_AddItemToArray(rows, render_settlement(f->cfg, &sr[k]));
        break;
    }
    case FT_ORDER: {
        const struct idx_vec *ov = store_account_orders(f->st, account);
        for (uint32_t k = 0; k < ov->n; k++) {
            const struct ord_rec *o = store_order(f->st, ov->v[k]);
            if (o && is_open(&o->v) && o->v.inst >= lo && o->v.inst < hi)
                cJSON_AddItemToArray(rows, render_order(f->cfg, o));
        }
        break;
    }
    case FT_EXECUTION: {
        const struct idx_vec *ev = store_account_execs(f->st, account);
        uint32_t shown = 0, from = ev->n;
        while (from > 0 && shown < EXECS_PARTIAL) {
            const struct exe_rec *e = store_exec(f->st, ev->v[from - 1]);
            from--;
            if (e && e->v.inst >= lo && e->v.inst < hi)
                shown++;
        }
        for (uint32_t k = from; k < ev->n; k++) {
            const struct exe_rec *e = store_exec(f->st, ev->v[k]);
            if (e && e->v.inst >= lo && e->v.inst < hi)
                cJSON_AddItemToArray(rows, render_exec_st(f->cfg, f->st, e));
        }
        break;
    }
    case FT_POSITION:
        if (fa)
            for (uint16_t i = lo; i < hi; i++)
                if (fa->pos_seen >> i & 1)
                    cJSON_AddItemToArray(rows, position_row(f, account, i, &fa->pos[i], f->now));
        break;
    case FT_MARGIN:
    case FT_WALLET:
        for (uint8_t c = 0; c < f->cfg->currencies_count; c++) {
            struct exch_margin zero = {0};
            const struct exch_margin *m = fa ? &fa->margin[c] : &zero;
            cJSON_AddItemToArray(rows, table == FT_MARGIN ? render_margin(f->cfg, account, c, m, f->now)
                                                          : render_wallet(f->cfg, account, c, m, f->now));
        }
        break;
    case FT_TRANSACT: {
        const struct idx_vec *wv = store_account_wallet(f->st, account);
        for (uint32_t k = wv->n > TRANSACTS_PARTIAL ? wv->n - TRANSACTS_PARTIAL : 0; k < wv->n; k++)
            cJSON_AddItemToArray(rows, render_transact(f->cfg, store_wallet(f->st, wv->v[k])));
        break;
    }
    default: /* announcement, connected, chat, notifications, account, affiliate: none here */
        break;
    }
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* BitMEX's type of a field from its name and JSON value. */
static const char *type_of(const cJSON *v)
{
    const char *n = v->string;
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsArray(v))
        return "";
    if (strcmp(n, "timestamp") == 0 || ends_with(n, "Time") || strcmp(n, "listing") == 0 ||
        strcmp(n, "front") == 0 || strcmp(n, "expiry") == 0 || strcmp(n, "settle") == 0 ||
        strcmp(n, "fundingTimestamp") == 0)
        return "timestamp";
    if (strcmp(n, "fundingInterval") == 0)
        return "timespan";
    if (ends_with(n, "ID") && strcmp(n, "clOrdID") != 0)
        return "guid";
    if (strcmp(n, "text") == 0 || strcmp(n, "clOrdID") == 0 || strcmp(n, "address") == 0 ||
        strcmp(n, "tx") == 0 || strcmp(n, "network") == 0)
        return "string";
    if (cJSON_IsString(v))
        return "symbol";
    if (ends_with(n, "Px") || ends_with(n, "Price") || strcmp(n, "price") == 0 || ends_with(n, "Notional") ||
        ends_with(n, "Notional24h") || ends_with(n, "Pcnt") || ends_with(n, "Rate") || ends_with(n, "Fee") ||
        strcmp(n, "commission") == 0 || strcmp(n, "leverage") == 0 || strcmp(n, "open") == 0 ||
        strcmp(n, "high") == 0 || strcmp(n, "low") == 0 || strcmp(n, "close") == 0 || strcmp(n, "vwap") == 0 ||
        strcmp(n, "fairBasis") == 0 || strcmp(n, "tickSize") == 0 || ends_with(n, "Margin") ||
        ends_with(n, "MarginReq") || ends_with(n, "Multiplier") || strcmp(n, "fundingRateDaily") == 0 ||
        strcmp(n, "deleveragePercentile") == 0 || strcmp(n, "pegOffsetValue") == 0)
        return cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble &&
                       (ends_with(n, "Margin") || ends_with(n, "Multiplier"))
                   ? "long"
                   : "float";
    return "long";
}

/* The table's declared types, and every other field its rows carry. */
static void types_text(struct tbuf *x, const char *declared, const cJSON *rows)
{
    cJSON *t = cJSON_Parse(declared);
    const cJSON *row, *v;
    cJSON_ArrayForEach(row, rows)
        cJSON_ArrayForEach(v, row)
            if (!cJSON_GetObjectItemCaseSensitive(t, v->string))
                cJSON_AddStringToObject(t, v->string, type_of(v));
    char *p = json_print(t);
    tb_str(x, p ? p : declared);
    free(p);
    cJSON_Delete(t);
}

char *feed_partial(struct feed *f, int table, int inst, uint32_t account, size_t *len)
{
    const struct ft_def *d = ft_def(table);
    cJSON *rows = cJSON_CreateArray();
    partial_rows(f, table, inst, account, rows);
    struct tbuf x = {0};
    tb_str(&x, "\"keys\":");
    tb_str(&x, d->keys);
    tb_str(&x, ",\"types\":");
    types_text(&x, d->types, rows);
    tb_str(&x, ",\"foreignKeys\":");
    tb_str(&x, d->foreign);
    tb_str(&x, ",\"attributes\":");
    tb_str(&x, d->attrs);
    tb_str(&x, ",\"filter\":{");
    char b[64];
    if (d->info.priv) {
        snprintf(b, sizeof(b), "\"account\":%u", account);
        tb_str(&x, b);
    }
    if (inst != FT_ALL) {
        if (d->info.priv)
            tb_str(&x, ",");
        tb_str(&x, "\"symbol\":\"");
        tb_str(&x, f->cfg->engine.instruments[inst].symbol);
        tb_str(&x, "\"");
    }
    tb_str(&x, "},");
    char *m = message(table, "partial", x.p, rows, len);
    cJSON_Delete(rows);
    free(x.p);
    return m;
}
