/*
 * render.c - BitMEX's models as JSON, as its API specification defines them:
 * Order, Execution, Position, Margin, Wallet, Instrument, Trade. Field
 * names and types are BitMEX's; money is integer minor units, prices are
 * JSON numbers, times ISO-8601 with milliseconds.
 */
#include "api/srv_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/names.h"
#include "api/timefmt.h"

/* ---- names and ids ---------------------------------------------------------- */

const char *sym(const struct exch_config *cfg, uint16_t inst)
{
    return cfg->engine.instruments[inst].symbol;
}

int currency_find(const struct exch_config *cfg, const char *name)
{
    if (!name)
        return -1;
    for (uint8_t c = 0; c < cfg->currencies_count; c++)
        if (strcasecmp(cfg->currency[c], name) == 0)
            return c;
    return -1;
}

/* A GUID-shaped text for a dense id: the first group tells the kind. */
void id_format(char out[37], uint32_t tag, uint64_t id)
{
    snprintf(out, 37, "%08" PRIx32 "-%04x-%04x-%04x-%012" PRIx64, tag,
             (unsigned)((id >> 48) & 0xffff), 0u, 0u, id & UINT64_C(0xffffffffffff));
}

bool id_parse(const char *text, uint32_t tag, uint64_t *id)
{
    if (!text || strlen(text) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !isxdigit((unsigned char)text[i]))
            return false;
    }
    char buf[37];
    id_format(buf, tag, 0);
    if (strncasecmp(text, buf, 8) != 0 || strncmp(text + 19, "0000-", 5) != 0 ||
        strncmp(text + 14, "0000", 4) != 0)
        return false;
    uint64_t hi = strtoull(text + 9, NULL, 16) & 0xffff;
    uint64_t lo = strtoull(text + 24, NULL, 16);
    *id = hi << 48 | lo;
    return *id != 0;
}

double px_num(px_t px)
{
    return (double)px / (double)PX_SCALE;
}

void add_time(cJSON *o, const char *name, ms_t ms)
{
    char b[TF_ISO_BUF];
    if (ms > 0 && tf_format_ms(ms, b, sizeof(b)) == TF_OK)
        cJSON_AddStringToObject(o, name, b);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_px(cJSON *o, const char *name, px_t px)
{
    if (px > 0)
        cJSON_AddNumberToObject(o, name, px_num(px));
    else
        cJSON_AddNullToObject(o, name);
}

static void add_int(cJSON *o, const char *name, int64_t v)
{
    cJSON_AddNumberToObject(o, name, (double)v);
}

static void add_rate(cJSON *o, const char *name, rate_t r)
{
    cJSON_AddNumberToObject(o, name, (double)r / (double)MF_RATE_SCALE);
}

static void add_id(cJSON *o, const char *name, uint32_t tag, uint64_t id)
{
    char b[37];
    id_format(b, tag, id);
    cJSON_AddStringToObject(o, name, b);
}

static const struct exch_instrument *inst_cfg(const struct exch_config *cfg, uint16_t i)
{
    return &cfg->inst[i];
}

static const char *settl_currency(const struct exch_config *cfg, uint16_t i)
{
    return cfg->currency[inst_cfg(cfg, i)->currency];
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* A future's month code and year at the end of a symbol: "Z26". */
static bool month_code_at(const char *y, size_t n)
{
    return n >= 3 && strchr("FGHJKMNQUVXZ", y[n - 3]) && isdigit((unsigned char)y[n - 2]) &&
           isdigit((unsigned char)y[n - 1]);
}

/* Underlying and quote currency of an instrument, from its symbol, index and
 * kind (nothing in the config names them):
 *  - the underlying is the index's name without '.' (or without ".B", as
 *    BitMEX names its indices: .BXBT, .BETH, .BSOL) when the symbol starts
 *    with it; else the symbol less a known quote suffix (and a future's
 *    month code); else its first three letters;
 *  - the quote is what follows the underlying, less a future's month code
 *    (XBTUSD -> USD, XBTUSDT -> USDT, SOLUSDTZ26 -> USDT); when nothing does
 *    (XBTZ26) it is USD for inverse and quanto contracts and the settlement
 *    currency for linear ones. */
static void names_of(const struct exch_config *cfg, uint16_t i, char *u, size_t ucap, char *q, size_t qcap)
{
    const char *y = sym(cfg, i);
    size_t n = strlen(y);
    bool future = !inst_cfg(cfg, i)->perpetual;
    size_t body = future && month_code_at(y, n) && n > 3 ? n - 3 : n; /* without the month code */
    const char *ix = cfg->index[inst_cfg(cfg, i)->index];
    if (*ix == '.')
        ix++;
    size_t ul = 0;
    if (*ix && starts_with(y, ix) && strlen(ix) <= body)
        ul = strlen(ix);
    else if (ix[0] == 'B' && ix[1] && starts_with(y, ix + 1) && strlen(ix + 1) <= body)
        ul = strlen(ix + 1);
    static const char *const quotes[] = {"USDT", "USDC", "USD", "EUR", "XBT", NULL};
    for (int k = 0; !ul && quotes[k]; k++) {
        size_t ql = strlen(quotes[k]);
        if (body > ql && strncasecmp(y + body - ql, quotes[k], ql) == 0)
            ul = body - ql;
    }
    if (!ul && future && body < n)
        ul = body;
    if (!ul)
        ul = n < 3 ? n : 3;
    snprintf(u, ucap, "%.*s", (int)ul, y);
    if (body > ul) {
        snprintf(q, qcap, "%.*s", (int)(body - ul), y + ul);
    } else if (inst_cfg(cfg, i)->contract.kind == MF_LINEAR) {
        snprintf(q, qcap, "%s", cfg->currency[inst_cfg(cfg, i)->currency]);
        for (char *p = q; *p; p++)
            *p = (char)toupper((unsigned char)*p); /* USDt -> USDT, XBt -> XBT */
    } else {
        snprintf(q, qcap, "USD");
    }
}

static void quote_of(const struct exch_config *cfg, uint16_t i, char *out, size_t cap)
{
    char u[SYMBOL_LEN_MAX + 1];
    names_of(cfg, i, u, sizeof(u), out, cap);
}

static void underlying_of(const struct exch_config *cfg, uint16_t i, char *out, size_t cap)
{
    char q[SYMBOL_LEN_MAX + 1];
    names_of(cfg, i, out, cap, q, sizeof(q));
}

static double currency_scale(const struct exch_config *cfg, uint8_t cur)
{
    return strcmp(cfg->currency[cur], "USDt") == 0 ? 1e6 : 1e8;
}

/* homeNotional (underlying units, + for long) and foreignNotional (quote
 * units, - for long) of a signed quantity at px, as BitMEX shows them
 * (inverse: a long 100 has foreignNotional -100). */
void notional(const struct exch_config *cfg, uint16_t i, qty_t q, px_t px, double *home, double *foreign)
{
    sats_t v = 0;
    *home = *foreign = 0;
    if (!q || px <= 0 || mf_value(&inst_cfg(cfg, i)->contract, q, px, &v) != MF_OK)
        return;
    double av = (double)(v < 0 ? -v : v), sign = q > 0 ? 1.0 : -1.0;
    const struct mf_contract *c = &inst_cfg(cfg, i)->contract;
    double scale = currency_scale(cfg, inst_cfg(cfg, i)->currency);
    if (c->kind == MF_INVERSE) {
        *home = sign * av / scale;
        *foreign = -(double)q;
    } else if (c->kind == MF_LINEAR) {
        *home = sign * av / scale / px_num(px);
        *foreign = -sign * av / scale;
    } else {
        *home = sign * av / scale;
        *foreign = -(double)q * px_num(px);
    }
}

/* ---- Order ------------------------------------------------------------------------- */

static const char *cancel_text(uint8_t reason)
{
    switch (reason) {
    case CXL_USER: return "Canceled: Canceled via API.";
    case CXL_CANCEL_ALL: return "Canceled: Canceled via API.";
    case CXL_DEAD_MAN: return "Canceled: Canceled via cancelAllAfter.";
    case CXL_DAY_EXPIRY: return "Canceled: Order expired (timeInForce Day).";
    case CXL_POST_ONLY: return "Canceled: Order had execInst of ParticipateDoNotInitiate";
    case CXL_IOC: return "Canceled: Order had timeInForce of ImmediateOrCancel";
    case CXL_FOK: return "Canceled: Order had timeInForce of FillOrKill";
    case CXL_MARKET: return "Canceled: Market order could not fill further.";
    case CXL_SELF_TRADE: return "Canceled: Self trade prevented.";
    case CXL_REDUCE_ONLY: return "Canceled: Order had execInst of ReduceOnly or Close and no position to reduce.";
    case CXL_OCO: return "Canceled: Other order of the OCO group filled.";
    case CXL_TRIGGER_REJECTED: return "Canceled: Triggered order rejected: insufficient available balance.";
    case CXL_LIQUIDATION: return "Canceled: Canceled by the liquidation engine.";
    default: return "Canceled";
    }
}

static void order_fields(const struct exch_config *cfg, cJSON *o, const struct order_view *v,
                         const char *clordid, const char *clordlinkid)
{
    char b[160];
    cJSON_AddStringToObject(o, "clOrdID", clordid);
    cJSON_AddStringToObject(o, "clOrdLinkID", clordlinkid);
    add_int(o, "account", v->account);
    cJSON_AddStringToObject(o, "symbol", sym(cfg, v->inst));
    cJSON_AddStringToObject(o, "side", name_of(&names_side, v->side));
    cJSON_AddNullToObject(o, "simpleOrderQty");
    add_int(o, "orderQty", v->qty);
    add_px(o, "price", v->price);
    if (v->display_qty >= 0)
        add_int(o, "displayQty", v->display_qty);
    else
        cJSON_AddNullToObject(o, "displayQty");
    add_px(o, "stopPx", v->stop_px);
    if (v->peg_type != PEG_NONE)
        cJSON_AddNumberToObject(o, "pegOffsetValue", px_num(v->peg_offset_px));
    else
        cJSON_AddNullToObject(o, "pegOffsetValue");
    cJSON_AddStringToObject(o, "pegPriceType", name_of(&names_peg, v->peg_type));
    quote_of(cfg, v->inst, b, sizeof(b));
    cJSON_AddStringToObject(o, "currency", b);
    cJSON_AddStringToObject(o, "settlCurrency", settl_currency(cfg, v->inst));
    cJSON_AddStringToObject(o, "ordType", name_of(&names_ord_type, v->ord_type));
    cJSON_AddStringToObject(o, "timeInForce", name_of(&names_tif, v->tif));
    name_format_set(&names_exec_inst, v->exec_inst, b, sizeof(b));
    cJSON_AddStringToObject(o, "execInst", b);
    cJSON_AddStringToObject(o, "contingencyType", name_of(&names_contingency, v->contingency));
    cJSON_AddStringToObject(o, "exDestination", "XBME");
    cJSON_AddStringToObject(o, "ordStatus", name_of(&names_ord_status, v->status));
    cJSON_AddStringToObject(o, "triggered", v->triggered ? "StopOrderTriggered" : "");
    cJSON_AddBoolToObject(o, "workingIndicator", v->working != 0);
}

/* ordRejReason: "" unless rejected (the reject's message). */
static const char *rej_reason(uint8_t rej)
{
    int status;
    return rej == REJ_NONE ? "" : reject_message((enum reject)rej, &status);
}

cJSON *render_order(const struct exch_config *cfg, const struct ord_rec *r)
{
    cJSON *o = cJSON_CreateObject();
    add_id(o, "orderID", ID_ORDER, r->v.id);
    order_fields(cfg, o, &r->v, r->clordid, r->clordlinkid);
    cJSON_AddStringToObject(o, "ordRejReason", rej_reason(r->v.status == ST_REJECTED ? r->rej_reason : REJ_NONE));
    cJSON_AddNullToObject(o, "simpleLeavesQty");
    add_int(o, "leavesQty", r->v.leaves);
    cJSON_AddNullToObject(o, "simpleCumQty");
    add_int(o, "cumQty", r->v.cum);
    if (r->v.cum > 0)
        cJSON_AddNumberToObject(o, "avgPx", px_num((px_t)(r->fill_px_qty / r->v.cum)));
    else
        cJSON_AddNullToObject(o, "avgPx");
    cJSON_AddStringToObject(o, "multiLegReportingType", "SingleSecurity");
    const char *user = r->text ? r->text : "";
    char text[TEXT_LEN_MAX + 160];
    if (!*user)
        user = r->v.account == EXCH_LIQUIDATOR ? "Liquidation" : "Submitted via API.";
    if (r->v.status == ST_CANCELED)
        snprintf(text, sizeof(text), "%s\n%s", cancel_text(r->cancel_reason), user);
    else
        snprintf(text, sizeof(text), "%s", user);
    cJSON_AddStringToObject(o, "text", text);
    add_time(o, "transactTime", r->updated_ms);
    add_time(o, "timestamp", r->updated_ms);
    return o;
}

/* ---- Execution ------------------------------------------------------------------------- */

cJSON *render_exec(const struct core_view *v, const struct exe_rec *e)
{
    return render_exec_st(cv_config(v), cv_store(v), e);
}

cJSON *render_exec_st(const struct exch_config *cfg, const struct store *st, const struct exe_rec *e)
{
    cJSON *o = cJSON_CreateObject();
    add_id(o, "execID", ID_EXEC, e->exec_id);
    if (e->order_id)
        add_id(o, "orderID", ID_ORDER, e->order_id);
    else
        cJSON_AddStringToObject(o, "orderID", "00000000-0000-0000-0000-000000000000");
    const struct ord_rec *r = e->order_id ? store_order(st, e->order_id) : NULL;
    order_fields(cfg, o, &e->v, r ? r->clordid : "", r ? r->clordlinkid : "");
    add_int(o, "lastQty", e->last_qty);
    add_px(o, "lastPx", e->last_px);
    cJSON_AddStringToObject(o, "lastLiquidityInd", name_of(&names_liquidity, e->liq));
    cJSON_AddStringToObject(o, "execType", name_of(&names_exec_type, e->type));
    cJSON_AddStringToObject(o, "ordRejReason", rej_reason(e->type == EX_REJECTED ? e->reason : REJ_NONE));
    add_int(o, "leavesQty", e->v.leaves);
    add_int(o, "cumQty", e->type == EX_TRADE || e->order_id ? e->v.cum : e->last_qty);
    if (e->avg_px > 0)
        cJSON_AddNumberToObject(o, "avgPx", px_num(e->avg_px));
    else if (!e->order_id && e->last_px > 0)
        cJSON_AddNumberToObject(o, "avgPx", px_num(e->last_px));
    else
        cJSON_AddNullToObject(o, "avgPx");
    if (e->type == EX_TRADE || e->type >= EX_FUNDING)
        add_rate(o, "commission", e->commission_e8);
    else
        cJSON_AddNullToObject(o, "commission");
    cJSON_AddStringToObject(o, "tradePublishIndicator", e->type == EX_TRADE ? "PublishTrade" : "");
    cJSON_AddStringToObject(o, "multiLegReportingType", "SingleSecurity");
    const char *user = r && r->text ? r->text : "";
    if (e->type == EX_FUNDING)
        user = "Funding";
    else if (e->type == EX_SETTLEMENT)
        user = "Settlement";
    else if (e->type == EX_LIQUIDATION)
        user = "Liquidation: position taken over at the bankruptcy price";
    else if (e->type == EX_BANKRUPTCY)
        user = "Deleverage: position closed at the bankrupt counterparty's price";
    else if (e->type == EX_CANCELED)
        user = cancel_text(e->reason);
    else if (!*user)
        user = "Submitted via API.";
    cJSON_AddStringToObject(o, "text", user);
    if (e->trd_match_id)
        add_id(o, "trdMatchID", ID_TRADE, e->trd_match_id);
    else if (e->type == EX_LIQUIDATION || e->type == EX_BANKRUPTCY || e->type == EX_SETTLEMENT)
        add_id(o, "trdMatchID", ID_CLOSE, e->exec_id); /* a transfer of contracts: its own id */
    else
        cJSON_AddStringToObject(o, "trdMatchID", "00000000-0000-0000-0000-000000000000");
    add_int(o, "execCost", e->exec_cost);
    add_int(o, "execComm", e->exec_comm);
    double home = 0, foreign = 0;
    if (e->last_qty)
        notional(cfg, e->v.inst, e->v.side == SIDE_SELL ? -e->last_qty : e->last_qty, e->last_px, &home,
                 &foreign);
    cJSON_AddNumberToObject(o, "homeNotional", home);
    cJSON_AddNumberToObject(o, "foreignNotional", foreign);
    add_time(o, "transactTime", e->ts);
    add_time(o, "timestamp", e->ts);
    return o;
}

/* ---- Position, Margin, Wallet ------------------------------------------------------------- */

cJSON *render_position(const struct exch_config *cfg, uint32_t account, uint16_t inst,
                       const struct exch_position *p, rate_t adl_e8, ms_t now)
{
    char b[16];
    cJSON *o = cJSON_CreateObject();
    add_int(o, "account", account);
    cJSON_AddStringToObject(o, "symbol", sym(cfg, inst));
    cJSON_AddStringToObject(o, "currency", settl_currency(cfg, inst));
    underlying_of(cfg, inst, b, sizeof(b));
    cJSON_AddStringToObject(o, "underlying", b);
    quote_of(cfg, inst, b, sizeof(b));
    cJSON_AddStringToObject(o, "quoteCurrency", b);
    add_rate(o, "commission", inst_cfg(cfg, inst)->taker_fee_e8);
    add_rate(o, "initMarginReq", p->im_e8);
    add_rate(o, "maintMarginReq", p->mm_e8);
    add_int(o, "riskLimit", p->risk_limit);
    if (p->leverage_e8 > 0)
        add_rate(o, "leverage", p->leverage_e8);
    else
        cJSON_AddNumberToObject(o, "leverage", p->im_e8 > 0 ? (double)MF_RATE_SCALE / (double)p->im_e8 : 100);
    cJSON_AddBoolToObject(o, "crossMargin", p->leverage_e8 == 0);
    if (p->qty)
        add_rate(o, "deleveragePercentile", adl_e8);
    else
        cJSON_AddNullToObject(o, "deleveragePercentile");
    add_int(o, "rebalancedPnl", 0);
    add_int(o, "prevRealisedPnl", 0);
    add_int(o, "openingQty", 0);
    add_int(o, "openOrderBuyQty", p->open_buy_qty);
    add_int(o, "openOrderSellQty", p->open_sell_qty);
    add_int(o, "currentQty", p->qty);
    add_int(o, "currentCost", p->current_cost);
    add_int(o, "currentComm", p->comm);
    add_int(o, "realisedCost", p->realised_cost);
    add_int(o, "unrealisedCost", p->unrealised_cost);
    cJSON_AddBoolToObject(o, "isOpen", p->qty != 0);
    add_px(o, "markPrice", p->mark_px);
    add_int(o, "markValue", p->mark_value);
    add_int(o, "riskValue", (p->mark_value < 0 ? -p->mark_value : p->mark_value));
    double home = 0, foreign = 0;
    notional(cfg, inst, p->qty, p->mark_px, &home, &foreign);
    cJSON_AddNumberToObject(o, "homeNotional", home);
    cJSON_AddNumberToObject(o, "foreignNotional", foreign);
    cJSON_AddStringToObject(o, "posState", "");
    add_int(o, "posCost", p->unrealised_cost);
    add_int(o, "posInit", p->pos_init);
    add_int(o, "posComm", p->pos_comm);
    add_int(o, "posMargin", p->pos_margin);
    add_int(o, "posMaint", p->maint);
    add_int(o, "initMargin", p->order_margin);
    add_int(o, "maintMargin", p->pos_margin);
    add_int(o, "realisedGrossPnl", p->realised_gross_pnl);
    add_int(o, "realisedPnl", p->realised_gross_pnl - p->comm);
    add_int(o, "unrealisedGrossPnl", p->unrealised_pnl);
    add_int(o, "unrealisedPnl", p->unrealised_pnl);
    double cost = (double)(p->unrealised_cost < 0 ? -p->unrealised_cost : p->unrealised_cost);
    double pcnt = cost > 0 ? (double)p->unrealised_pnl / cost : 0;
    cJSON_AddNumberToObject(o, "unrealisedPnlPcnt", (double)(int64_t)(pcnt * 10000) / 10000);
    double roe = p->pos_margin > 0 ? (double)p->unrealised_pnl / (double)p->pos_margin : 0;
    cJSON_AddNumberToObject(o, "unrealisedRoePcnt", (double)(int64_t)(roe * 10000) / 10000);
    add_px(o, "avgCostPrice", p->avg_entry_px);
    add_px(o, "avgEntryPrice", p->avg_entry_px);
    add_px(o, "breakEvenPrice", p->avg_entry_px);
    add_px(o, "marginCallPrice", p->liq_px);
    add_px(o, "liquidationPrice", p->liq_px);
    add_px(o, "bankruptPrice", p->bankrupt_px);
    add_px(o, "lastPrice", p->mark_px);
    add_int(o, "lastValue", p->mark_value);
    add_time(o, "timestamp", now);
    return o;
}

cJSON *render_margin(const struct exch_config *cfg, uint32_t account, uint8_t cur, const struct exch_margin *m,
                     ms_t now)
{
    cJSON *o = cJSON_CreateObject();
    add_int(o, "account", account);
    cJSON_AddStringToObject(o, "currency", cfg->currency[cur]);
    add_int(o, "riskLimit", INT64_C(1000000000000));
    cJSON_AddStringToObject(o, "state", "");
    add_int(o, "amount", m->wallet);
    add_int(o, "prevRealisedPnl", 0);
    add_int(o, "grossComm", 0);
    add_int(o, "grossOpenCost", 0);
    add_int(o, "grossOpenPremium", 0);
    add_int(o, "grossExecCost", 0);
    add_int(o, "grossMarkValue", 0);
    add_int(o, "riskValue", 0);
    add_int(o, "initMargin", m->order_margin);
    add_int(o, "maintMargin", m->position_margin);
    add_int(o, "targetExcessMargin", 0);
    add_int(o, "realisedPnl", m->wallet - m->deposited + m->withdrawn);
    add_int(o, "unrealisedPnl", m->unrealised_pnl);
    add_int(o, "walletBalance", m->wallet);
    add_int(o, "marginBalance", m->margin_balance);
    double used = m->margin_balance > 0
                      ? (double)(m->order_margin + m->position_margin) / (double)m->margin_balance
                      : 0;
    cJSON_AddNumberToObject(o, "marginUsedPcnt", (double)(int64_t)(used * 10000) / 10000);
    cJSON_AddNumberToObject(o, "marginLeverage", 0);
    add_int(o, "excessMargin", m->available);
    add_int(o, "availableMargin", m->available);
    add_int(o, "withdrawableMargin", m->withdrawable);
    add_int(o, "maintMarginReq", m->maint_margin);
    add_int(o, "makerFeeDiscount", 0);
    add_int(o, "takerFeeDiscount", 0);
    add_time(o, "timestamp", now);
    return o;
}

cJSON *render_wallet(const struct exch_config *cfg, uint32_t account, uint8_t cur, const struct exch_margin *m,
                     ms_t now)
{
    cJSON *o = cJSON_CreateObject();
    add_int(o, "account", account);
    cJSON_AddStringToObject(o, "currency", cfg->currency[cur]);
    add_int(o, "deposited", m->deposited);
    add_int(o, "withdrawn", m->withdrawn);
    add_int(o, "transferIn", 0);
    add_int(o, "transferOut", 0);
    add_int(o, "amount", m->wallet);
    add_int(o, "pendingCredit", 0);
    add_int(o, "pendingDebit", 0);
    add_int(o, "confirmedDebit", 0);
    add_time(o, "timestamp", now);
    return o;
}

/* ---- Instrument ------------------------------------------------------------------------------- */

cJSON *render_index(const struct core_view *v, uint16_t index, ms_t now)
{
    const struct exch_config *cfg = cv_config(v);
    cJSON *o = cJSON_CreateObject();
    const char *name = cfg->index[index];
    cJSON_AddStringToObject(o, "symbol", name);
    cJSON_AddStringToObject(o, "rootSymbol", name[0] == '.' ? name + 1 : name);
    cJSON_AddStringToObject(o, "state", "Unlisted");
    cJSON_AddStringToObject(o, "typ", "MRCXXX");
    px_t px = 0;
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (inst_cfg(cfg, i)->index == index) {
            struct exch_instrument_state st;
            cv_instrument(v, i, &st);
            px = st.index_px;
            break;
        }
    add_px(o, "lastPrice", px);
    add_px(o, "markPrice", px);
    add_time(o, "timestamp", now);
    return o;
}

cJSON *render_instrument(const struct core_view *v, uint16_t i, ms_t now)
{
    struct exch_instrument_state st;
    cv_instrument(v, i, &st);
    px_t bid = 0, ask = 0;
    qty_t sz;
    if (cv_levels(v, i, SIDE_BUY, 1, &bid, &sz) == 0)
        bid = 0;
    if (cv_levels(v, i, SIDE_SELL, 1, &ask, &sz) == 0)
        ask = 0;
    return render_instrument_st(cv_config(v), cv_store(v), &st, bid, ask, i, now);
}

cJSON *render_instrument_st(const struct exch_config *cfg, const struct store *store,
                            const struct exch_instrument_state *stp, px_t bid, px_t ask, uint16_t i,
                            ms_t now)
{
    const struct exch_instrument *in = inst_cfg(cfg, i);
    const struct engine_instrument *ei = &cfg->engine.instruments[i];
    const struct exch_instrument_state st = *stp;
    char b[32], u[16], qc[16];
    underlying_of(cfg, i, u, sizeof(u));
    quote_of(cfg, i, qc, sizeof(qc));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", ei->symbol);
    cJSON_AddStringToObject(o, "rootSymbol", u);
    cJSON_AddStringToObject(o, "state", st.settled ? "Settled" : "Open");
    cJSON_AddStringToObject(o, "typ", in->perpetual ? "FFWCSX" : "FFCCSX");
    /* listing and front: a perpetual from when the exchange opened; a
     * quarterly future as BitMEX lists one, about six months before its
     * expiry, and front month for its last quarter. */
    ms_t opened = store ? store_opened(store) : 0;
    add_time(o, "listing", in->perpetual ? opened : in->expiry_ms - INT64_C(182) * 86400000);
    add_time(o, "front", in->perpetual ? opened : in->expiry_ms - INT64_C(91) * 86400000);
    if (in->perpetual) {
        cJSON_AddNullToObject(o, "expiry");
        cJSON_AddNullToObject(o, "settle");
    } else {
        add_time(o, "expiry", in->expiry_ms);
        add_time(o, "settle", in->expiry_ms);
    }
    bool inverse = in->contract.kind == MF_INVERSE, quanto = in->contract.kind == MF_QUANTO;
    /* Inverse and quanto contracts count in the quote currency (USD), linear
     * ones in the underlying. */
    cJSON_AddStringToObject(o, "positionCurrency", inverse || quanto ? qc : u);
    cJSON_AddStringToObject(o, "underlying", u);
    cJSON_AddStringToObject(o, "quoteCurrency", qc);
    snprintf(b, sizeof(b), "%s=", u);
    cJSON_AddStringToObject(o, "underlyingSymbol", b);
    cJSON_AddStringToObject(o, "reference", "BMEX");
    cJSON_AddStringToObject(o, "referenceSymbol", cfg->index[in->index]);
    add_int(o, "maxOrderQty", ei->max_order_qty);
    add_px(o, "maxPrice", ei->max_px);
    add_int(o, "lotSize", ei->lot_qty);
    cJSON_AddNumberToObject(o, "tickSize", px_num(ei->tick_px));
    add_int(o, "multiplier", in->contract.multiplier);
    cJSON_AddStringToObject(o, "settlCurrency", settl_currency(cfg, i));
    if (in->contract.kind == MF_LINEAR) {
        double scale = currency_scale(cfg, in->currency);
        cJSON_AddNumberToObject(o, "underlyingToPositionMultiplier",
                                scale / (double)in->contract.multiplier);
        cJSON_AddNullToObject(o, "underlyingToSettleMultiplier");
        cJSON_AddNumberToObject(o, "quoteToSettleMultiplier", scale);
    } else {
        cJSON_AddNullToObject(o, "underlyingToPositionMultiplier");
        if (inverse)
            add_int(o, "underlyingToSettleMultiplier", in->contract.multiplier);
        else
            cJSON_AddNullToObject(o, "underlyingToSettleMultiplier");
        cJSON_AddNullToObject(o, "quoteToSettleMultiplier");
    }
    cJSON_AddBoolToObject(o, "isQuanto", quanto);
    cJSON_AddBoolToObject(o, "isInverse", inverse);
    add_rate(o, "initMargin", in->im_e8);
    add_rate(o, "maintMargin", in->mm_e8);
    add_int(o, "riskLimit", in->risk_limit);
    add_int(o, "riskStep", in->risk_step);
    cJSON_AddBoolToObject(o, "taxed", true);
    cJSON_AddBoolToObject(o, "deleverage", true);
    add_rate(o, "makerFee", in->maker_fee_e8);
    add_rate(o, "takerFee", in->taker_fee_e8);
    add_rate(o, "settlementFee", in->settle_fee_e8);
    if (in->perpetual) {
        add_time(o, "fundingTimestamp", st.next_funding_ms);
        add_time(o, "fundingInterval", 946684800000 + in->funding_interval_ms); /* 2000-01-01 + interval */
        add_rate(o, "fundingRate", st.funding_rate_e8);
        add_rate(o, "indicativeFundingRate", st.indicative_rate_e8);
    } else {
        cJSON_AddNullToObject(o, "fundingTimestamp");
        cJSON_AddNullToObject(o, "fundingInterval");
        cJSON_AddNullToObject(o, "fundingRate");
        cJSON_AddNullToObject(o, "indicativeFundingRate");
    }
    /* 24 h statistics from the 1-hour buckets, the last price from trades. */
    uint32_t nb = 0;
    const struct bin_rec *bins = store_bins(store, i, BIN_1H, &nb);
    px_t hi = 0, lo = 0, prev24 = 0;
    qty_t vol24 = 0;
    sats_t turn24 = 0;
    i128 pq = 0;
    ms_t from = now - 24 * 3600000;
    for (uint32_t k = nb; k-- > 0;) {
        const struct bin_rec *bn = &bins[k];
        if (bn->start_ms + 3600000 <= from)
            break;
        if (!hi || bn->high > hi)
            hi = bn->high;
        if (!lo || bn->low < lo)
            lo = bn->low;
        vol24 += bn->volume;
        turn24 += bn->turnover;
        pq += bn->px_qty;
        prev24 = bn->open;
    }
    uint8_t tick = 0;
    px_t last = store_last_px(store, i, &tick);
    add_px(o, "prevClosePrice", prev24 ? prev24 : last);
    qty_t total_vol = 0;
    for (uint32_t k = 0; k < nb; k++)
        total_vol += bins[k].volume;
    add_int(o, "totalVolume", total_vol);
    add_int(o, "volume", nb ? bins[nb - 1].volume : 0);
    add_int(o, "volume24h", vol24);
    add_int(o, "turnover24h", turn24);
    double home24 = 0, foreign24 = 0;
    if (vol24 > 0 && pq > 0) {
        px_t vwap = (px_t)(pq / vol24);
        notional(cfg, i, vol24, vwap, &home24, &foreign24);
        cJSON_AddNumberToObject(o, "homeNotional24h", home24 < 0 ? -home24 : home24);
        cJSON_AddNumberToObject(o, "foreignNotional24h", foreign24 < 0 ? -foreign24 : foreign24);
        add_px(o, "vwap", vwap);
    } else {
        cJSON_AddNumberToObject(o, "homeNotional24h", 0);
        cJSON_AddNumberToObject(o, "foreignNotional24h", 0);
        add_px(o, "vwap", last);
    }
    add_px(o, "prevPrice24h", prev24 ? prev24 : last);
    add_px(o, "highPrice", hi);
    add_px(o, "lowPrice", lo);
    add_px(o, "lastPrice", last);
    add_px(o, "lastPriceProtected", last);
    cJSON_AddStringToObject(o, "lastTickDirection", name_of(&names_tick, tick & 3u));
    cJSON_AddNumberToObject(o, "lastChangePcnt",
                            prev24 && last ? (double)(int64_t)((px_num(last) / px_num(prev24) - 1) * 10000) / 10000 : 0);
    add_px(o, "bidPrice", bid);
    add_px(o, "midPrice", bid && ask ? (bid + ask) / 2 : 0);
    add_px(o, "askPrice", ask);
    cJSON_AddBoolToObject(o, "hasLiquidity", bid && ask);
    add_int(o, "openInterest", st.open_interest);
    cJSON_AddStringToObject(o, "fairMethod", in->perpetual ? "FundingRate" : "ImpactMidPrice");
    add_rate(o, "fairBasisRate", st.fair_basis_rate_e8);
    cJSON_AddNumberToObject(o, "fairBasis", px_num(st.fair_basis_px));
    add_px(o, "fairPrice", st.mark_px);
    cJSON_AddStringToObject(o, "markMethod", "FairPrice");
    add_px(o, "markPrice", st.mark_px);
    add_px(o, "indicativeSettlePrice", st.index_px);
    add_px(o, "settledPrice", st.settled ? st.settled_px : 0);
    add_time(o, "timestamp", now);
    return o;
}

cJSON *render_trade(const struct exch_config *cfg, uint16_t inst, const struct trade_rec *t)
{
    cJSON *o = cJSON_CreateObject();
    add_time(o, "timestamp", t->ts);
    cJSON_AddStringToObject(o, "symbol", sym(cfg, inst));
    cJSON_AddStringToObject(o, "side", name_of(&names_side, t->side));
    add_int(o, "size", t->size);
    add_px(o, "price", t->px);
    cJSON_AddStringToObject(o, "tickDirection", name_of(&names_tick, t->tick_dir & 3u));
    add_id(o, "trdMatchID", ID_TRADE, t->trade_id);
    add_int(o, "grossValue", t->gross);
    double home = 0, foreign = 0;
    notional(cfg, inst, t->size, t->px, &home, &foreign);
    cJSON_AddNumberToObject(o, "homeNotional", home < 0 ? -home : home);
    cJSON_AddNumberToObject(o, "foreignNotional", foreign < 0 ? -foreign : foreign);
    cJSON_AddStringToObject(o, "trdType", "Regular");
    return o;
}

/* ---- public tables' rows ---------------------------------------------------------------------- */

cJSON *render_bin(const struct exch_config *cfg, uint16_t inst, const struct bin_rec *bins, uint32_t nb,
                  ms_t start, ms_t width)
{
    /* The last stored bucket starting at or before `start`. */
    uint32_t lo = 0, hi = nb;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (bins[mid].start_ms <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct bin_rec *b = &bins[lo - 1];
    bool real = b->start_ms == start;
    cJSON *o = cJSON_CreateObject();
    add_time(o, "timestamp", start + width);
    cJSON_AddStringToObject(o, "symbol", sym(cfg, inst));
    px_t open = real ? b->open : b->close;
    cJSON_AddNumberToObject(o, "open", px_num(open));
    cJSON_AddNumberToObject(o, "high", px_num(real ? b->high : b->close));
    cJSON_AddNumberToObject(o, "low", px_num(real ? b->low : b->close));
    cJSON_AddNumberToObject(o, "close", px_num(b->close));
    cJSON_AddNumberToObject(o, "trades", real ? (double)b->trades : 0);
    cJSON_AddNumberToObject(o, "volume", real ? (double)b->volume : 0);
    if (real && b->volume > 0)
        cJSON_AddNumberToObject(o, "vwap", px_num((px_t)(b->px_qty / b->volume)));
    else
        cJSON_AddNullToObject(o, "vwap");
    cJSON_AddNumberToObject(o, "lastSize", real ? (double)b->last_size : 0);
    cJSON_AddNumberToObject(o, "turnover", real ? (double)b->turnover : 0);
    double home = 0, foreign = 0;
    if (real && b->volume > 0)
        notional(cfg, inst, b->volume, (px_t)(b->px_qty / b->volume), &home, &foreign);
    cJSON_AddNumberToObject(o, "homeNotional", home < 0 ? -home : home);
    cJSON_AddNumberToObject(o, "foreignNotional", foreign < 0 ? -foreign : foreign);
    return o;
}

cJSON *render_funding(const struct exch_config *cfg, const struct funding_rec *f)
{
    cJSON *row = cJSON_CreateObject();
    add_time(row, "timestamp", f->ts);
    cJSON_AddStringToObject(row, "symbol", sym(cfg, f->inst));
    add_time(row, "fundingInterval",
         946684800000 + cfg->inst[f->inst].funding_interval_ms);
    double rate = (double)f->rate_e8 / (double)MF_RATE_SCALE;
    cJSON_AddNumberToObject(row, "fundingRate", rate);
    ms_t iv = cfg->inst[f->inst].funding_interval_ms;
    cJSON_AddNumberToObject(row, "fundingRateDaily", iv ? rate * (double)MS_PER_DAY / (double)iv : 0);
    return row;
}

cJSON *render_insurance(const struct exch_config *cfg, const struct insurance_rec *f)
{
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "currency", cfg->currency[f->currency]);
    add_time(row, "timestamp", f->ts);
    cJSON_AddNumberToObject(row, "walletBalance", (double)f->balance);
    return row;
}

cJSON *render_settlement(const struct exch_config *cfg, const struct settle_rec *f)
{
    cJSON *row = cJSON_CreateObject();
    add_time(row, "timestamp", f->ts);
    cJSON_AddStringToObject(row, "symbol", sym(cfg, f->inst));
    cJSON_AddStringToObject(row, "settlementType", "Settlement");
    cJSON_AddNumberToObject(row, "settledPrice", px_num(f->px));
    cJSON_AddNullToObject(row, "optionStrikePrice");
    cJSON_AddNullToObject(row, "optionUnderlyingPrice");
    cJSON_AddNumberToObject(row, "bankrupt", 0);
    cJSON_AddNumberToObject(row, "taxBase", 0);
    cJSON_AddNumberToObject(row, "taxRate", 0);
    return row;
}

cJSON *render_liquidation(const struct exch_config *cfg, const struct ord_rec *rec)
{
    cJSON *row = cJSON_CreateObject();
    char id[37];
    id_format(id, ID_ORDER, rec->v.id);
    cJSON_AddStringToObject(row, "orderID", id);
    cJSON_AddStringToObject(row, "symbol", sym(cfg, rec->v.inst));
    cJSON_AddStringToObject(row, "side",
                name_of(&names_side, rec->v.side == SIDE_SELL ? SIDE_SELL : SIDE_BUY));
    cJSON_AddNumberToObject(row, "price", px_num(rec->v.price));
    cJSON_AddNumberToObject(row, "leavesQty", (double)rec->v.leaves);
    cJSON_AddNumberToObject(row, "orderQty", (double)rec->v.qty);
    cJSON_AddNumberToObject(row, "cumQty", (double)rec->v.cum);
    add_time(row, "timestamp", rec->created_ms);
    return row;
}

cJSON *render_transact(const struct exch_config *cfg, const struct wallet_rec *w)
{
    cJSON *o = cJSON_CreateObject();
    char id[37];
    id_format(id, ID_TRANSACT, w->id);
    cJSON_AddStringToObject(o, "transactID", id);
    cJSON_AddNumberToObject(o, "account", w->account);
    cJSON_AddStringToObject(o, "currency", cfg->currency[w->currency]);
    cJSON_AddStringToObject(o, "network", "");
    const char *t = name_of(&names_money_kind, w->kind);
    if (w->kind == MK_FUNDING || w->kind == MK_SETTLEMENT || w->kind == MK_LIQUIDATION ||
        w->kind == MK_DELEVERAGE)
        t = "RealisedPNL";
    cJSON_AddStringToObject(o, "transactType", t);
    cJSON_AddNumberToObject(o, "amount", (double)w->amount);
    cJSON_AddNumberToObject(o, "fee", 0);
    cJSON_AddStringToObject(o, "transactStatus", "Completed");
    cJSON_AddStringToObject(o, "address", w->kind == MK_TRANSFER || w->kind >= MK_FUNDING ? sym(cfg, w->inst) : "");
    cJSON_AddStringToObject(o, "tx", "");
    cJSON_AddStringToObject(o, "text", name_of(&names_money_kind, w->kind));
    add_time(o, "transactTime", w->ts);
    add_time(o, "timestamp", w->ts);
    cJSON_AddNumberToObject(o, "walletBalance", (double)w->balance);
    cJSON_AddNullToObject(o, "marginBalance");
    return o;
}

/* ---- engine rejects in BitMEX's words ------------------------------------------------------------ */

const char *reject_message(enum reject r, int *status)
{
    *status = 400;
    switch (r) {
    case REJ_UNKNOWN_SYMBOL: return "Invalid symbol";
    case REJ_UNKNOWN_ACCOUNT: return "Invalid account";
    case REJ_INVALID_SIDE: return "Invalid side";
    case REJ_INVALID_QTY: return "Invalid orderQty";
    case REJ_QTY_TOO_LARGE: return "Invalid orderQty: above maxOrderQty";
    case REJ_INVALID_PRICE: return "Invalid price";
    case REJ_PRICE_TICK: return "Invalid price tickSize";
    case REJ_INVALID_STOP_PX: return "Invalid stopPx for ordType";
    case REJ_STOP_PX_TICK: return "Invalid stopPx tickSize";
    case REJ_INVALID_DISPLAY_QTY: return "Invalid displayQty";
    case REJ_UNSUPPORTED_ORD_TYPE: return "Unsupported ordType";
    case REJ_UNSUPPORTED_TIF: return "Unsupported timeInForce";
    case REJ_INVALID_EXEC_INST: return "Invalid execInst";
    case REJ_ALL_OR_NONE: return "Unsupported execInst: AllOrNone";
    case REJ_INVALID_PEG: return "Invalid pegPriceType for ordType";
    case REJ_PEG_NO_REFERENCE: return "Invalid pegPriceType: no price to peg to";
    case REJ_INVALID_PEG_OFFSET: return "Invalid pegOffsetValue";
    case REJ_INVALID_CONTINGENCY: return "Unsupported contingencyType";
    case REJ_INVALID_CLORDID: return "Invalid clOrdID";
    case REJ_DUPLICATE_CLORDID: return "Duplicate clOrdID";
    case REJ_NOT_FOUND: *status = 404; return "Not Found";
    case REJ_ORDER_TERMINAL: return "Invalid ordStatus";
    case REJ_AMEND_UNCHANGED: return "Invalid amend: orderQty, leavesQty, price, stopPx unchanged";
    case REJ_AMEND_BOTH_QTY: return "Invalid amend: give only one of orderQty and leavesQty";
    case REJ_AMEND_NOT_ALLOWED: return "Invalid amend: field not amendable for this order";
    case REJ_TOO_MANY_OPEN_ORDERS: return "Too many open orders";
    case REJ_TOO_MANY_STOP_ORDERS: return "Too many open stop orders";
    case REJ_POOL_FULL: *status = 503; return "Service unavailable";
    case REJ_INSUFFICIENT_BALANCE: return "Account has insufficient Available Balance";
    case REJ_INVALID_TIMEOUT: return "Invalid timeout";
    case REJ_INVALID_CURRENCY: return "Invalid currency";
    case REJ_INVALID_AMOUNT: return "Invalid amount";
    case REJ_INSUFFICIENT_WITHDRAWABLE: return "Insufficient withdrawable balance";
    case REJ_INVALID_LEVERAGE: return "Invalid leverage";
    case REJ_INVALID_RISK_LIMIT: return "Invalid riskLimit";
    case REJ_RISK_LIMIT_EXCEEDED: return "Position and orders would exceed the risk limit";
    case REJ_NOT_ISOLATED: return "Position is not isolated";
    case REJ_NO_POSITION: return "No open position";
    case REJ_TRANSFER_TOO_LARGE: return "Transfer would leave the position below its initial margin";
    case REJ_INSTRUMENT_CLOSED: return "Instrument expired";
    case REJ_LIQUIDATION_IN_PROGRESS: return "Account is in liquidation";
    case REJ_INVALID_FUNDING: return "Invalid funding rate";
    case REJ_TOO_MANY_CONTINGENT: return "Too many contingent orders";
    case REJ_SPAM_POST_ONLY: return "Spam account: a Post-Only order below the minimum value is rejected";
    default: *status = 500; return "Server Error";
    }
}
