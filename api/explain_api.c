/*
 * explain_api.c - the teaching tables (core/explain.h), as the web page and
 * anyone else reads them.
 *
 * GET /explain/v1/liquidation: each liquidation step by step.
 *   ?execID=<the owner's Liquidation execution, or an ADL close>  that one
 *   ?count=N&start=K  the newest N (1..100, default 20) from the K-th newest
 *   &symbol=XBTUSD    only that instrument's
 *
 * GET /explain/v1/funding?symbol=XBTUSD[&count=N&start=K]: a perpetual's
 * next funding as it forms (countdown, the premium mean so far, the
 * indicative rate) and its newest N fundings (1..20, default 5), each with
 * BitMEX's formula filled in and every position's payment.
 *
 * Every figure is the exchange's own (minor units for money, prices as
 * prices), with the rule that made it; nothing is recomputed here.
 */
#include "api/srv_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/explain.h"

#define EXPLAIN_COUNT_MAX 100

static double px_of(px_t p)
{
    return (double)p / (double)PX_SCALE;
}

static const char *side_name(uint8_t s)
{
    return s == SIDE_SELL ? "Sell" : "Buy";
}

static const char *trigger_name(uint8_t kind)
{
    switch (kind) {
    case CMD_SET_INDEX: return "index";
    case CMD_CLOCK: return "clock";
    case CMD_SET_FUNDING: return "fundingRate";
    case CMD_SET_LEVERAGE: return "leverage";
    case CMD_SET_RISK_LIMIT: return "riskLimit";
    default: return "other";
    }
}

static const char *trigger_text(uint8_t kind)
{
    switch (kind) {
    case CMD_SET_INDEX: return "the index moved: every mark from it moved and positions were re-margined (M5)";
    case CMD_CLOCK: return "engine time moved: the mark's basis decayed at a minute, or funding was paid (M5, M7)";
    case CMD_SET_FUNDING: return "a funding rate was announced: the fair price and maintenance followed (M7)";
    default: return "the account's own command changed its margin";
    }
}

static void idstr(cJSON *o, const char *name, uint32_t tag, uint64_t id)
{
    char b[37];
    id_format(b, tag, id);
    cJSON_AddStringToObject(o, name, b);
}

static void money(cJSON *o, const char *name, sats_t v)
{
    cJSON_AddNumberToObject(o, name, (double)v);
}

static cJSON *step_json(const struct exch_config *cfg, const struct liq_step *s, uint32_t rank)
{
    cJSON *o = cJSON_CreateObject();
    const char *symbol = s->inst < cfg->engine.instruments_count ? sym(cfg, s->inst) : "";
    char why[200];
    switch (s->kind) {
    case LS_CANCELED:
        cJSON_AddStringToObject(o, "step", "orderCanceled");
        idstr(o, "orderID", ID_ORDER, s->id);
        cJSON_AddStringToObject(o, "symbol", symbol);
        cJSON_AddStringToObject(o, "side", side_name(s->side));
        cJSON_AddNumberToObject(o, "leavesQty", (double)s->qty);
        if (s->px)
            cJSON_AddNumberToObject(o, "price", px_of(s->px));
        cJSON_AddStringToObject(o, "why", "open orders hold margin: canceled by the liquidation engine (M6 a)");
        break;
    case LS_RISK_STEP:
        cJSON_AddStringToObject(o, "step", "riskLimitDown");
        cJSON_AddStringToObject(o, "symbol", symbol);
        money(o, "fromRiskLimit", s->amount);
        money(o, "toRiskLimit", s->balance);
        cJSON_AddNumberToObject(o, "currentQty", (double)s->qty);
        cJSON_AddStringToObject(o, "why", "a lower risk limit has lower margin rates: the position steps down first (M6 a)");
        break;
    case LS_REDUCED:
        cJSON_AddStringToObject(o, "step", "reduced");
        cJSON_AddStringToObject(o, "symbol", symbol);
        cJSON_AddStringToObject(o, "side", side_name(s->side));
        cJSON_AddNumberToObject(o, "qty", (double)s->qty);
        cJSON_AddNumberToObject(o, "price", px_of(s->px));
        if (s->limit_px)
            cJSON_AddNumberToObject(o, "limitPrice", px_of(s->limit_px));
        cJSON_AddStringToObject(o, "why", "a FillOrKill ReduceOnly order limited at the step's bankruptcy price, "
                                          "filled at or better than it, sold the part above the next lower risk "
                                          "step (M6 a)");
        break;
    case LS_TAKEOVER:
        cJSON_AddStringToObject(o, "step", "takeover");
        idstr(o, "execID", ID_EXEC, s->id);
        cJSON_AddStringToObject(o, "symbol", symbol);
        cJSON_AddNumberToObject(o, "qty", (double)s->qty);
        cJSON_AddNumberToObject(o, "bankruptPrice", px_of(s->px));
        money(o, "walletChange", s->amount);
        money(o, "walletBalance", s->balance);
        snprintf(why, sizeof(why), "the liquidator took the position over at its bankruptcy price: the owner lost "
                                   "exactly the margin backing it (M6 b)");
        cJSON_AddStringToObject(o, "why", why);
        break;
    case LS_LIQUIDATOR:
        cJSON_AddStringToObject(o, "step", "liquidatorFill");
        cJSON_AddStringToObject(o, "symbol", symbol);
        cJSON_AddStringToObject(o, "side", side_name(s->side));
        cJSON_AddNumberToObject(o, "qty", (double)s->qty);
        cJSON_AddNumberToObject(o, "price", px_of(s->px));
        cJSON_AddStringToObject(o, "why", "the liquidator's ImmediateOrCancel order closed the position in the book: "
                                          "better than bankruptcy credits the insurance fund, worse draws on it (M6 c)");
        break;
    case LS_INSURANCE:
        cJSON_AddStringToObject(o, "step", "insuranceFund");
        money(o, "change", s->amount);
        money(o, "balance", s->balance);
        cJSON_AddStringToObject(o, "why", s->amount >= 0 ? "closed better than the bankruptcy price: the fund gained"
                                                         : "closed worse than the bankruptcy price: the fund paid");
        break;
    case LS_DELEVERAGE:
        cJSON_AddStringToObject(o, "step", "deleverage");
        idstr(o, "execID", ID_EXEC, s->id);
        cJSON_AddNumberToObject(o, "account", (double)s->account);
        cJSON_AddStringToObject(o, "symbol", symbol);
        cJSON_AddStringToObject(o, "side", side_name(s->side));
        cJSON_AddNumberToObject(o, "qty", (double)s->qty);
        cJSON_AddNumberToObject(o, "price", px_of(s->px));
        money(o, "walletChange", s->amount);
        cJSON_AddNumberToObject(o, "rank", (double)rank);
        cJSON_AddNumberToObject(o, "score", (double)s->score_e8 / 1e8);
        cJSON_AddStringToObject(o, "why", "what the book could not take was auto-deleveraged: the opposite side's "
                                          "positions ranked by score (PNL% x effective leverage when in profit, "
                                          "PNL% / effective leverage when not), highest first, each closed at the "
                                          "bankruptcy price (M6 d)");
        break;
    default:
        break;
    }
    return o;
}

static cJSON *liq_json(const struct exch_config *cfg, const struct liq_explain *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)x->id);
    cJSON_AddNumberToObject(o, "seq", (double)x->seq);
    add_time(o, "timestamp", x->ts);
    cJSON_AddNumberToObject(o, "account", (double)x->account);
    cJSON_AddStringToObject(o, "symbol", x->inst < cfg->engine.instruments_count ? sym(cfg, x->inst) : "");
    cJSON_AddStringToObject(o, "marginMode", x->cross ? "cross" : "isolated");
    cJSON_AddStringToObject(o, "currency", x->currency < cfg->currencies_count ? cfg->currency[x->currency] : "");
    cJSON *t = cJSON_AddObjectToObject(o, "trigger");
    cJSON_AddStringToObject(t, "command", trigger_name(x->cmd_kind));
    cJSON_AddStringToObject(t, "why", trigger_text(x->cmd_kind));
    cJSON_AddNumberToObject(t, "markPriceBefore", px_of(x->mark_before));
    cJSON_AddNumberToObject(t, "markPrice", px_of(x->mark_after));
    cJSON_AddNumberToObject(t, "indexPrice", px_of(x->index_px));
    cJSON *c = cJSON_AddObjectToObject(o, "check");
    money(c, "equity", x->equity);
    money(c, "maintMargin", x->maint);
    money(c, "shortfall", x->maint - x->equity);
    cJSON_AddStringToObject(c, "rule", x->cross ? "cross equity (wallet - isolated margins + cross unrealised PnL) "
                                                  "< the cross positions' maintenance margin (M6)"
                                                : "isolated margin + unrealised PnL < maintenance margin (M6)");
    cJSON *ps = cJSON_AddObjectToObject(o, "position");
    cJSON_AddNumberToObject(ps, "currentQty", (double)x->qty);
    if (x->avg_entry_px)
        cJSON_AddNumberToObject(ps, "avgEntryPrice", px_of(x->avg_entry_px));
    if (x->liq_px)
        cJSON_AddNumberToObject(ps, "liquidationPrice", px_of(x->liq_px));
    if (x->bankrupt_px)
        cJSON_AddNumberToObject(ps, "bankruptPrice", px_of(x->bankrupt_px));
    if (x->pos_mark_px)
        cJSON_AddNumberToObject(ps, "markPrice", px_of(x->pos_mark_px));
    money(ps, "maintMargin", x->pos_maint);
    money(ps, "posMargin", x->pos_margin);
    money(ps, "unrealisedPnl", x->upnl);
    money(ps, "riskLimit", x->risk_limit);
    if (x->takeover_exec)
        idstr(o, "execID", ID_EXEC, x->takeover_exec);
    cJSON_AddNumberToObject(o, "ordersCanceled", (double)x->canceled);
    cJSON_AddNumberToObject(o, "ordersCanceledQty", (double)x->canceled_qty);
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    /* The deleverage steps come in each instrument's ADL queue's order (a
     * cross liquidation works one instrument after another). */
    uint32_t rank = 0;
    uint16_t rank_inst = UINT16_MAX;
    for (uint32_t k = 0; k < x->nsteps; k++) {
        const struct liq_step *st = &x->steps[k];
        if (st->kind == LS_DELEVERAGE) {
            rank = st->inst == rank_inst ? rank + 1 : 1;
            rank_inst = st->inst;
        }
        cJSON_AddItemToArray(steps, step_json(cfg, st, rank));
    }
    if (x->canceled > EXPLAIN_CANCELS_MAX)
        cJSON_AddNumberToObject(o, "canceledNotListed", (double)(x->canceled - EXPLAIN_CANCELS_MAX));
    if (x->dropped)
        cJSON_AddNumberToObject(o, "stepsNotShown", (double)x->dropped);
    cJSON *f = cJSON_AddObjectToObject(o, "insuranceFund");
    money(f, "before", x->fund_before);
    money(f, "after", x->fund_after);
    money(f, "change", x->fund_after - x->fund_before);
    return o;
}

void explain_liquidation(struct req *r)
{
    const struct exch_config *cfg = r->s->x;
    static const char *const known[] = {"execID", "count", "start", "symbol", NULL};
    if (!only_known(r, r->params, known))
        return;
    const char *exec = NULL, *symbol = NULL;
    int64_t count = 20, start = 0;
    enum prm_get ge = prm_str(r->params, "execID", &exec);
    enum prm_get gy = prm_str(r->params, "symbol", &symbol);
    enum prm_get gc = prm_int(r->params, "count", &count);
    enum prm_get gs = prm_int(r->params, "start", &start);
    uint64_t exec_id = 0;
    if ((ge != PRM_ABSENT && (ge != PRM_FOUND || !id_parse(exec, ID_EXEC, &exec_id))) ||
        (gc != PRM_ABSENT && (gc != PRM_FOUND || count < 1 || count > EXPLAIN_COUNT_MAX)) ||
        (gs != PRM_ABSENT && (gs != PRM_FOUND || start < 0 || start > 1000000))) {
        reply_error(r, 400, "ValidationError",
                    "Invalid execID, count (1 to %d) or start", EXPLAIN_COUNT_MAX);
        return;
    }
    int inst = -1;
    if (gy != PRM_ABSENT && (gy != PRM_FOUND || (inst = exch_config_find(cfg, symbol)) < 0)) {
        reply_error(r, 400, "ValidationError", "Invalid symbol");
        return;
    }
    /* Copied under the view, rendered after it. */
    uint32_t want = ge == PRM_FOUND ? 1 : (uint32_t)count;
    struct liq_explain *v = malloc(want * sizeof(*v));
    const struct liq_explain **ptr = malloc(EXPLAIN_KEEP * sizeof(*ptr));
    if (!v || !ptr) {
        free(v);
        free(ptr);
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    uint32_t n = 0;
    const struct core_view *view = core_view_begin(r->s->core);
    const struct explain *ex = store_explain(cv_store(view));
    if (ge == PRM_FOUND) {
        const struct liq_explain *x = explain_by_exec(ex, exec_id);
        if (x)
            v[n++] = *x;
    } else {
        uint32_t got = explain_list(ex, 0, EXPLAIN_KEEP, ptr);
        got = got < EXPLAIN_KEEP ? got : EXPLAIN_KEEP;
        for (uint32_t k = 0, seen = 0; k < got && n < (uint32_t)count; k++) {
            if (inst >= 0 && ptr[k]->inst != inst)
                continue;
            if (seen++ >= (uint64_t)start)
                v[n++] = *ptr[k];
        }
    }
    core_view_end(view);
    free(ptr);
    if (ge == PRM_FOUND && n == 0) {
        free(v);
        reply_error(r, 404, "NotFound", "No liquidation with that execID (the newest 1024 are kept)");
        return;
    }
    cJSON *out = ge == PRM_FOUND ? liq_json(cfg, &v[0]) : cJSON_CreateArray();
    if (ge != PRM_FOUND)
        for (uint32_t k = 0; k < n; k++)
            cJSON_AddItemToArray(out, liq_json(cfg, &v[k]));
    free(v);
    reply_json(r, 200, out);
}

/* ---- funding ------------------------------------------------------------------------------- */

#define FUNDING_COUNT_MAX 20

/* A rate as a percentage, exact (1e-8 is 0.000001%): 0.010000%. */
static void pct(char *b, size_t cap, rate_t r)
{
    uint64_t a = r < 0 ? 0 - (uint64_t)r : (uint64_t)r;
    snprintf(b, cap, "%s%" PRIu64 ".%06" PRIu64 "%%", r < 0 ? "-" : "", a / 1000000, a % 1000000);
}

/* F = P + clamp(I - P, -0.05%, +0.05%), capped at 0.75 x (IM - MM), with
 * the numbers: {"premiumIndex","interestRate","clampedDifference","cap",
 * "fundingRate","formula"}. */
static cJSON *rate_formula(const struct exch_instrument *in, rate_t p, rate_t f)
{
    rate_t d = in->funding_interest_e8 - p;
    rate_t dc = d > MF_FUNDING_CLAMP_E8 ? MF_FUNDING_CLAMP_E8 : d < -MF_FUNDING_CLAMP_E8 ? -MF_FUNDING_CLAMP_E8 : d;
    rate_t cap = (in->im_e8 - in->mm_e8) * 3 / 4;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "premiumIndex", (double)p / 1e8);
    cJSON_AddNumberToObject(o, "interestRate", (double)in->funding_interest_e8 / 1e8);
    cJSON_AddNumberToObject(o, "clampedDifference", (double)dc / 1e8);
    cJSON_AddNumberToObject(o, "cap", (double)cap / 1e8);
    cJSON_AddNumberToObject(o, "fundingRate", (double)f / 1e8);
    char sp[32], si[32], sd[32], sf[32], sc[32], sim[32], smm[32], text[640];
    pct(sp, sizeof(sp), p);
    pct(si, sizeof(si), in->funding_interest_e8);
    pct(sd, sizeof(sd), dc);
    pct(sf, sizeof(sf), f);
    pct(sc, sizeof(sc), cap);
    pct(sim, sizeof(sim), in->im_e8);
    pct(smm, sizeof(smm), in->mm_e8);
    snprintf(text, sizeof(text),
             "F = P + clamp(I - P, -0.05%%, 0.05%%) = %s + clamp(%s - %s, -0.05%%, 0.05%%) = %s + %s; "
             "|F| <= 0.75 x (IM - MM) = 0.75 x (%s - %s) = %s; F = %s",
             sp, si, sp, sp, sd, sim, smm, sc, sf);
    cJSON_AddStringToObject(o, "formula", text);
    return o;
}

static cJSON *funding_json(const struct exch_config *cfg, const struct fund_explain *f)
{
    const struct exch_instrument *in = &cfg->inst[f->inst];
    cJSON *o = cJSON_CreateObject();
    add_time(o, "timestamp", f->ts);
    cJSON_AddStringToObject(o, "symbol", sym(cfg, f->inst));
    cJSON_AddNumberToObject(o, "fundingRate", (double)f->rate_e8 / 1e8);
    cJSON_AddNumberToObject(o, "markPrice", px_of(f->mark_px));
    cJSON_AddNumberToObject(o, "indexPrice", px_of(f->index_px));
    static const char *const origins[] = {"opening", "premium", "announced"};
    cJSON_AddStringToObject(o, "rateFrom", origins[f->origin <= FO_ANNOUNCED ? f->origin : 0]);
    if (f->origin == FO_PREMIUM) {
        cJSON *h = rate_formula(in, f->formed_premium_e8, f->rate_e8);
        add_time(h, "formedAt", f->formed_ms);
        cJSON_AddNumberToObject(h, "samples", (double)f->formed_samples);
        cJSON_AddItemToObject(o, "rate", h);
    }
    cJSON_AddStringToObject(o, "why",
                            f->origin == FO_PREMIUM    ? "the rate formed at the previous funding from that interval's "
                                                         "mean premium index, one sample a minute (M7)"
                            : f->origin == FO_ANNOUNCED ? "the rate was announced (an instructor's, or a backtest's "
                                                          "data), in place of the one the premium formed"
                                                        : "the opening rate: the interest rate I, no premium yet");
    cJSON_AddStringToObject(o, "payment", f->rate_e8 >= 0 ? "longs pay shorts: payment = value at the mark x rate, "
                                                            "payer rounded up, receiver down"
                                                          : "shorts pay longs: payment = value at the mark x |rate|, "
                                                            "payer rounded up, receiver down");
    cJSON *ps = cJSON_AddArrayToObject(o, "payments");
    for (uint32_t k = 0; k < f->listed; k++) {
        const struct fund_payment *p = &f->payments[k];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "account", p->account);
        cJSON_AddNumberToObject(x, "currentQty", (double)p->qty);
        sats_t v = 0;
        if (mf_value(&in->contract, p->qty, f->mark_px, &v) == MF_OK)
            money(x, "markValue", v);
        money(x, "walletChange", p->amount);
        if (p->exec)
            idstr(x, "execID", ID_EXEC, p->exec);
        cJSON_AddItemToArray(ps, x);
    }
    cJSON_AddNumberToObject(o, "paymentsCount", f->npayments);
    money(o, "paid", f->paid);
    money(o, "received", f->received);
    money(o, "rounding", f->paid - f->received);
    cJSON_AddStringToObject(o, "currency", cfg->currency[in->currency]);
    cJSON *n = rate_formula(in, f->premium_e8, f->next_rate_e8);
    cJSON_AddNumberToObject(n, "samples", (double)f->samples);
    cJSON_AddItemToObject(o, "nextRate", n);
    return o;
}

void explain_funding(struct req *r)
{
    const struct exch_config *cfg = r->s->x;
    static const char *const known[] = {"symbol", "count", "start", NULL};
    if (!only_known(r, r->params, known))
        return;
    const char *symbol = NULL;
    int64_t count = 5, start = 0;
    enum prm_get gy = prm_str(r->params, "symbol", &symbol);
    enum prm_get gc = prm_int(r->params, "count", &count);
    enum prm_get gs = prm_int(r->params, "start", &start);
    int inst = gy == PRM_FOUND ? exch_config_find(cfg, symbol) : -1;
    if (inst < 0 || !cfg->inst[inst].perpetual) {
        reply_error(r, 400, "ValidationError", gy == PRM_ABSENT ? "'symbol' is a required arg."
                                                                : "Invalid symbol: funding is a perpetual's");
        return;
    }
    if ((gc != PRM_ABSENT && (gc != PRM_FOUND || count < 1 || count > FUNDING_COUNT_MAX)) ||
        (gs != PRM_ABSENT && (gs != PRM_FOUND || start < 0 || start > EXPLAIN_FUNDING_KEEP))) {
        reply_error(r, 400, "ValidationError", "Invalid count (1 to %d) or start", FUNDING_COUNT_MAX);
        return;
    }
    /* Copied under the view (payments too), rendered after it. */
    struct fund_explain v[FUNDING_COUNT_MAX];
    const struct fund_explain *ptr[FUNDING_COUNT_MAX];
    struct exch_instrument_state st;
    bool oom = false;
    const struct core_view *view = core_view_begin(r->s->core);
    uint32_t kept = explain_fundings(store_explain(cv_store(view)), (uint16_t)inst, (uint32_t)start,
                                     (uint32_t)count, ptr);
    uint32_t n = kept > (uint64_t)start ? kept - (uint32_t)start : 0;
    n = n < (uint32_t)count ? n : (uint32_t)count;
    for (uint32_t k = 0; k < n; k++) {
        v[k] = *ptr[k];
        v[k].payments = v[k].listed ? malloc(v[k].listed * sizeof(*v[k].payments)) : NULL;
        if (v[k].listed && !v[k].payments) {
            v[k].listed = 0;
            oom = true;
        } else if (v[k].listed) {
            memcpy(v[k].payments, ptr[k]->payments, v[k].listed * sizeof(*v[k].payments));
        }
    }
    cv_instrument(view, (uint16_t)inst, &st);
    ms_t now = cv_now(view);
    core_view_end(view);
    if (oom) {
        for (uint32_t k = 0; k < n; k++)
            free(v[k].payments);
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    const struct exch_instrument *in = &cfg->inst[inst];
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "symbol", sym(cfg, (uint16_t)inst));
    add_time(out, "timestamp", now);
    cJSON *nx = cJSON_AddObjectToObject(out, "next");
    add_time(nx, "fundingTimestamp", st.next_funding_ms);
    cJSON_AddNumberToObject(nx, "msUntil", (double)(st.next_funding_ms > now ? st.next_funding_ms - now : 0));
    cJSON_AddNumberToObject(nx, "fundingInterval", (double)in->funding_interval_ms / 3600000.0);
    cJSON_AddNumberToObject(nx, "fundingRate", (double)st.funding_rate_e8 / 1e8);
    cJSON_AddNumberToObject(nx, "markPrice", px_of(st.mark_px));
    cJSON_AddNumberToObject(nx, "indexPrice", px_of(st.index_px));
    /* The formula on the samples so far (none yet: P = 0); the exchange's
     * indicative rate differs from it only until the next minute's sample,
     * after a funding (the rate just formed) or an announcement. */
    rate_t formed = 0;
    if (mf_funding_rate(st.premium_e8, in->funding_interest_e8, in->im_e8, in->mm_e8, &formed) != MF_OK)
        formed = st.indicative_rate_e8;
    cJSON *ind = rate_formula(in, st.premium_e8, formed);
    cJSON_AddNumberToObject(ind, "samples", (double)st.premium_samples);
    cJSON_AddNumberToObject(ind, "indicativeFundingRate", (double)st.indicative_rate_e8 / 1e8);
    cJSON_AddStringToObject(ind, "why",
                            formed == st.indicative_rate_e8
                                ? "the indicative rate: the formula on the premium samples of this interval so far; "
                                  "at the funding it becomes the next interval's rate"
                                : "the formula on the premium samples of this interval so far; the indicative rate "
                                  "shown on the instrument is still the one formed at the funding or announced, until "
                                  "the next minute's sample");
    cJSON_AddItemToObject(nx, "indicative", ind);
    cJSON_AddNumberToObject(out, "fundingsKept", kept);
    cJSON *fs = cJSON_AddArrayToObject(out, "fundings");
    for (uint32_t k = 0; k < n; k++) {
        cJSON_AddItemToArray(fs, funding_json(cfg, &v[k]));
        free(v[k].payments);
    }
    reply_json(r, 200, out);
}
