/*
 * test_replay.c - the sequencer's promises (core/core.h, core/record.h):
 *
 *  - determinism: a seeded random command stream (accounts and keys made
 *    along the way, orders with texts, fills, cancels, leverage, index
 *    moves that set off liquidations, funding, deposits and withdrawals,
 *    clock ticks) applied twice, each time to a fresh core, gives the same
 *    state hash and byte-identical change-stream records; another seed
 *    gives another hash;
 *  - every event carries the figures its consumers read: after each job,
 *    the last position event of each position equals the position read
 *    from the state, the last instrument event the instrument's state, and
 *    the fills' execComm add up to exactly what the fee account took;
 *  - after-lock consumers get every record once, in sequence order, while
 *    two threads submit jobs through the queue and the engine thread and
 *    the submitters both apply them (loadshed rule 5a).
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/xorshift.h"
#include "core/core.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define ACCOUNTS_MAX 160
#define RECENT 1024

/* ---- a clock the test steps ---------------------------------------------- */

struct tclock {
    _Atomic ms_t t; /* stepped by the test thread, read by whoever applies */
};

static ms_t tclock_now(void *ctx)
{
    return atomic_load(&((struct tclock *)ctx)->t);
}

/* ---- the stream ------------------------------------------------------------ */


/* What the consumers saw. */
struct seen {
    struct rbuf bytes;       /* every record's encoding, in order */
    uint64_t records, last_seq, out_of_order;
    uint64_t fills, liquidations, deleverages, fundings, accounts, keys, texts, rejects;
    /* since the last reset: what the job's records say */
    bool pos_seen[ACCOUNTS_MAX][INSTRUMENTS_MAX];
    struct exch_position pos[ACCOUNTS_MAX][INSTRUMENTS_MAX];
    bool inst_seen[INSTRUMENTS_MAX];
    struct exch_instrument_state inst[INSTRUMENTS_MAX];
    sats_t comm[CURRENCIES_MAX];
    /* over the whole run: every position and margin as the records left it
     * (what a feed rebuilt from the stream alone shows) */
    bool mpos_seen[ACCOUNTS_MAX][INSTRUMENTS_MAX];
    struct exch_position mpos[ACCOUNTS_MAX][INSTRUMENTS_MAX];
    bool mmargin_seen[ACCOUNTS_MAX][CURRENCIES_MAX];
    struct exch_margin mmargin[ACCOUNTS_MAX][CURRENCIES_MAX];
    const struct exch_config *cfg;
};

static void consume(void *ctx, const struct core_record *r)
{
    struct seen *s = ctx;
    core_record_encode(r, &s->bytes);
    s->records++;
    if (r->seq != s->last_seq + 1)
        s->out_of_order++;
    s->last_seq = r->seq;
    s->accounts += r->cmd->type == CC_ACCOUNT && r->result == 0;
    s->keys += r->cmd->type == CC_KEY && r->result == 0;
    s->texts += r->cmd->type == CC_EXCH && r->cmd->text != NULL;
    s->rejects += r->result != 0;
    for (uint32_t i = 0; i < r->nev; i++) {
        const struct rec_event *re = &r->ev[i];
        const struct event *e = &re->ev;
        switch (e->type) {
        case EV_FILL:
            s->fills++;
            s->comm[s->cfg->inst[e->inst].currency] += re->x.fill.comm;
            break;
        case EV_MONEY:
            s->liquidations += e->u.money.kind == MK_LIQUIDATION;
            s->deleverages += e->u.money.kind == MK_DELEVERAGE;
            break;
        case EV_FUNDING:
            s->fundings++;
            break;
        case EV_POSITION:
            if (e->account < ACCOUNTS_MAX) {
                s->pos_seen[e->account][e->inst] = true;
                s->pos[e->account][e->inst] = re->x.pos;
                s->mpos_seen[e->account][e->inst] = true;
                s->mpos[e->account][e->inst] = re->x.pos;
            }
            break;
        case EV_MARGIN:
            if (e->account < ACCOUNTS_MAX && e->reason < CURRENCIES_MAX) {
                s->mmargin_seen[e->account][e->reason] = true;
                s->mmargin[e->account][e->reason] = re->x.margin;
            }
            break;
        case EV_INSTRUMENT:
            s->inst_seen[e->inst] = true;
            s->inst[e->inst] = re->x.inst;
            break;
        default:
            break;
        }
    }
}

static void seen_reset_job(struct seen *s)
{
    memset(s->pos_seen, 0, sizeof(s->pos_seen));
    memset(s->inst_seen, 0, sizeof(s->inst_seen));
    memset(s->comm, 0, sizeof(s->comm));
}

/* ck_assert writes to Check's pipe on every call, pass or fail: the
 * figures are compared with a plain test and fail through ck_abort_msg. */
#define SAME(f)                                                                                  \
    do {                                                                                         \
        if (a->f != b->f)                                                                        \
            ck_abort_msg("%s: event %lld, state %lld (%s)", #f, (long long)a->f, (long long)b->f, \
                         what);                                                                  \
    } while (0)

static void same_position(const struct exch_position *a, const struct exch_position *b, const char *what)
{
    SAME(qty); SAME(current_cost); SAME(unrealised_cost); SAME(realised_cost);
    SAME(realised_gross_pnl); SAME(comm); SAME(mark_value); SAME(unrealised_pnl);
    SAME(pos_margin); SAME(pos_init); SAME(pos_comm); SAME(maint); SAME(order_margin);
    SAME(open_buy_qty); SAME(open_sell_qty); SAME(leverage_e8); SAME(im_e8); SAME(mm_e8);
    SAME(risk_limit); SAME(avg_entry_px); SAME(liq_px); SAME(bankrupt_px); SAME(mark_px);
}

static void same_instrument(const struct exch_instrument_state *a, const struct exch_instrument_state *b,
                            const char *what)
{
    SAME(mark_px); SAME(index_px); SAME(fair_basis_px); SAME(funding_rate_e8);
    SAME(indicative_rate_e8); SAME(fair_basis_rate_e8); SAME(next_funding_ms); SAME(settled);
    SAME(settled_px); SAME(open_interest);
}

static void same_margin(const struct exch_margin *a, const struct exch_margin *b, const char *what)
{
    SAME(wallet); SAME(deposited); SAME(withdrawn); SAME(unrealised_pnl); SAME(margin_balance);
    SAME(order_margin); SAME(position_margin); SAME(maint_margin); SAME(available);
    SAME(withdrawable);
}

/* The figures the job's records carried are the state's after the job. */
static void check_figures(struct core *core, struct seen *s, const sats_t *fees_before)
{
    const struct core_view *v = core_view_begin(core);
    const struct exch_config *cfg = cv_config(v);
    for (uint32_t a = 0; a < ACCOUNTS_MAX; a++)
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
            if (s->pos_seen[a][i]) {
                struct exch_position p;
                cv_position(v, a, i, &p);
                same_position(&s->pos[a][i], &p, "position event vs state");
            }
    for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
        if (s->inst_seen[i]) {
            struct exch_instrument_state st;
            cv_instrument(v, i, &st);
            same_instrument(&s->inst[i], &st, "instrument event vs state");
        }
    /* Every position and margin, rebuilt from the records alone since
     * command 1, is the state's: an open position or a wallet with money
     * has had its events, and the last one holds (mark moves included). */
    for (uint32_t a = 1; a < ACCOUNTS_MAX; a++) {
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++) {
            struct exch_position p;
            if (cv_position(v, a, i, &p) != 0)
                continue;
            if (p.qty != 0 && !s->mpos_seen[a][i])
                ck_abort_msg("account %u instrument %u: open, never in a record", a, i);
            if (s->mpos_seen[a][i]) {
                /* a flat position without orders shows the mark of now:
                 * the instrument's last event carries it */
                struct exch_position q = s->mpos[a][i];
                if (q.qty == 0 && q.open_buy_qty == 0 && q.open_sell_qty == 0)
                    q.mark_px = p.mark_px;
                same_position(&q, &p, "position rebuilt from the stream vs state");
            }
        }
        for (uint8_t c = 0; c < cfg->currencies_count; c++) {
            struct exch_margin m;
            if (cv_margin(v, a, c, &m) != 0)
                continue;
            if (m.wallet != 0 && !s->mmargin_seen[a][c])
                ck_abort_msg("account %u currency %u: money, never in a record", a, c);
            if (s->mmargin_seen[a][c]) {
                same_margin(&s->mmargin[a][c], &m, "margin rebuilt from the stream vs state");
            }
        }
    }
    struct exch_audit au;
    cv_audit(v, &au);
    for (uint8_t c = 0; c < cfg->currencies_count; c++)
        ck_assert_msg(au.fees[c] - fees_before[c] == s->comm[c],
                      "currency %u: the fee account took %lld, the fills' execComm say %lld", c,
                      (long long)(au.fees[c] - fees_before[c]), (long long)s->comm[c]);
    core_view_end(v);
}

struct run {
    struct tclock clk;
    struct core *core;
    struct seen seen;
    struct rng rng;
    bool check;              /* check figures after every job */
    uint32_t accounts;       /* made so far: 1 .. accounts */
    uint64_t recent_id[RECENT];
    uint32_t recent_acct[RECENT];
    uint32_t nrecent;
    px_t index[2];
};

static void fees_now(struct core *core, sats_t *out)
{
    const struct core_view *v = core_view_begin(core);
    struct exch_audit au;
    cv_audit(v, &au);
    memcpy(out, au.fees, sizeof(au.fees));
    core_view_end(v);
}

static void apply_job(struct run *R, struct core_job *j)
{
    sats_t fees[CURRENCIES_MAX];
    if (R->check) {
        fees_now(R->core, fees);
        seen_reset_job(&R->seen);
    }
    core_run(R->core, j);
    if (R->check)
        check_figures(R->core, &R->seen, fees);
}

static void random_key(struct rng *g, struct key_rec *k)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < KEY_ID_LEN; i++)
        k->id[i] = al[rnd(g) % 62];
    for (int i = 0; i < KEY_SECRET_LEN; i++)
        k->secret[i] = al[rnd(g) % 62];
    k->perms = PERM_ORDER;
    k->enabled = true;
}

static void new_account(struct run *R, bool maker)
{
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 2);
    ck_assert_ptr_nonnull(j);
    random_key(&R->rng, &j->key);
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = maker ? INT64_C(10000000000) : range(&R->rng, 1000000, 100000000);
    j->cmds[1].type = CMD_DEPOSIT;
    j->cmds[1].u.money.currency = 1;
    j->cmds[1].u.money.amount = maker ? INT64_C(5000000000000) : range(&R->rng, 1000000000, 50000000000);
    apply_job(R, j);
    if (j->status == REJ_NONE)
        R->accounts = j->account;
    core_job_free(j);
}

static enum reject one(struct run *R, enum job_kind kind, const struct cmd *c, const char *text)
{
    struct core_job *j = core_job_new(kind, c->account, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0] = *c;
    if (text)
        j->texts[0] = strdup(text);
    if (c->type == CMD_AMEND)
        j->target[0] = c->u.amend.ref.order_id;
    else if (c->type == CMD_CANCEL)
        j->target[0] = c->u.cancel.order_id;
    apply_job(R, j);
    enum reject rej = j->rej[0];
    if (c->type == CMD_NEW_ORDER && j->rows[0].v.id && c->account) {
        R->recent_id[R->nrecent % RECENT] = j->rows[0].v.id;
        R->recent_acct[R->nrecent % RECENT] = c->account;
        R->nrecent++;
    }
    core_job_free(j);
    return rej;
}

static px_t to_tick(px_t px, px_t tick)
{
    px -= px % tick;
    return px < tick ? tick : px;
}

static void setup(struct run *R, uint64_t seed)
{
    memset(R, 0, sizeof(*R));
    R->rng.s = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    R->clk.t = T0;
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.exch.engine.accounts_max = ACCOUNTS_MAX;
    cfg.exch.engine.orders_max = 1u << 14;
    cfg.exch.engine.stops_max = 1024;
    cfg.exch.engine.open_orders_max = 50;
    cfg.exch.engine.verify_every = 97;
    cfg.exch.insurance_initial[0] = 2000000;    /* 0.02 XBT: runs dry in a crash */
    cfg.exch.insurance_initial[1] = 1000000000; /* 1,000 USDT */
    for (uint16_t i = 0; i < cfg.exch.engine.instruments_count; i++) {
        sats_t unit = cfg.exch.inst[i].currency == 0 ? INT64_C(100000000) : INT64_C(50000000000);
        cfg.exch.inst[i].risk_limit = unit;
        cfg.exch.inst[i].risk_step = unit;
    }
    R->index[0] = 50000 * PX_SCALE;
    R->index[1] = 3000 * PX_SCALE;
    cfg.index_px[0] = R->index[0];
    cfg.index_px[1] = R->index[1];
    cfg.clock = (struct core_clock){tclock_now, &R->clk, NULL};
    char err[128];
    R->core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(R->core != NULL, "core_create: %s", err);
    R->seen.cfg = core_exch_config(R->core);
    ck_assert_int_eq(core_subscribe(R->core, consume, &R->seen, false), 0);
}

static void stream(struct run *R, uint32_t commands)
{
    struct rng *g = &R->rng;
    const struct exch_config *cfg = core_exch_config(R->core);
    for (uint32_t a = 0; a < 40; a++)
        new_account(R, a < 8);
    for (uint32_t a = 9; a <= R->accounts; a++)
        for (uint16_t i = 0; i < cfg->engine.instruments_count; i++)
            if (range(g, 0, 2) == 0) {
                struct cmd l = {.type = CMD_SET_LEVERAGE, .account = a, .inst = i};
                l.u.leverage_e8 = range(g, 10, 100) * MF_RATE_SCALE;
                one(R, J_POSITION, &l, NULL);
            }
    for (uint32_t k = 0; k < commands; k++) {
        R->clk.t += range(g, 20, 2400);
        if (range(g, 0, 999) == 0)
            R->clk.t += range(g, 1, 3) * 3600000; /* a quiet hour or three */
        uint32_t a = (uint32_t)range(g, 1, R->accounts);
        uint16_t inst = (uint16_t)range(g, 0, cfg->engine.instruments_count - 1);
        const struct engine_instrument *ei = &cfg->engine.instruments[inst];
        struct exch_instrument_state is;
        const struct core_view *v = core_view_begin(R->core);
        cv_instrument(v, inst, &is);
        core_view_end(v);
        px_t mark = is.mark_px ? is.mark_px : R->index[cfg->inst[inst].index];
        int roll = (int)range(g, 0, 999);
        struct cmd c;
        memset(&c, 0, sizeof(c));
        c.account = a;
        c.inst = inst;
        if (roll < 30) {
            int idx = (int)range(g, 0, 1);
            int64_t bp = range(g, -30, 30);
            if (range(g, 0, 29) == 0)
                bp = range(g, 300, 1500) * (range(g, 0, 2) ? -1 : 1);
            px_t lo = 20000 * PX_SCALE / (idx ? 10 : 1), hi = 90000 * PX_SCALE / (idx ? 10 : 1);
            px_t next = R->index[idx] + (px_t)((i128)R->index[idx] * bp / 10000);
            R->index[idx] = next < lo ? lo : next > hi ? hi : next;
            c.type = CMD_SET_INDEX;
            c.account = 0;
            c.inst = 0;
            c.u.set_index.index = (uint16_t)idx;
            c.u.set_index.price = R->index[idx];
            one(R, J_INDEX, &c, NULL);
            continue;
        }
        if (roll < 480 || a <= 8) {
            int buy = (int)range(g, 0, 1);
            int64_t off_bp = a <= 8 ? range(g, 2, 80) : range(g, -40, 60);
            px_t px = mark + (px_t)((i128)mark * off_bp / 10000) * (buy ? -1 : 1);
            c.type = CMD_NEW_ORDER;
            c.u.new_order.has = HAS_QTY | HAS_PRICE;
            c.u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * range(g, 1, a <= 8 ? 200 : 60);
            c.u.new_order.price = to_tick(px > 0 ? px : ei->tick_px, ei->tick_px);
            if (range(g, 0, 9) == 0)
                c.u.new_order.tif = TIF_IOC;
            if (range(g, 0, 7) == 0)
                snprintf(c.u.new_order.clordid, sizeof(c.u.new_order.clordid), "c%u", k);
            char text[32];
            snprintf(text, sizeof(text), "bot %u says %u", a, (unsigned)range(g, 0, 5));
            one(R, J_ORDERS, &c, range(g, 0, 3) == 0 ? text : NULL);
        } else if (roll < 640) {
            c.type = CMD_NEW_ORDER;
            c.u.new_order.has = HAS_QTY;
            c.u.new_order.side = range(g, 0, 1) ? SIDE_BUY : SIDE_SELL;
            c.u.new_order.qty = ei->lot_qty * range(g, 1, 80);
            one(R, J_ORDERS, &c, NULL);
        } else if (roll < 860) {
            if (!R->nrecent)
                continue;
            uint32_t r = (uint32_t)range(g, 0, (R->nrecent < RECENT ? R->nrecent : RECENT) - 1);
            c.account = R->recent_acct[r];
            if (range(g, 0, 3) == 0) {
                c.type = CMD_AMEND;
                c.u.amend.ref.order_id = R->recent_id[r];
                c.u.amend.has = AMD_LEAVES;
                c.u.amend.leaves = ei->lot_qty * range(g, 1, 20);
            } else {
                c.type = CMD_CANCEL;
                c.u.cancel.order_id = R->recent_id[r];
            }
            one(R, J_ORDERS, &c, NULL);
        } else if (roll < 880) {
            c.type = CMD_SET_LEVERAGE;
            c.u.leverage_e8 = range(g, 0, 3) == 0 ? 0 : range(g, 1, 10000) * (MF_RATE_SCALE / 100);
            one(R, J_POSITION, &c, NULL);
        } else if (roll < 910) {
            c.type = range(g, 0, 1) ? CMD_DEPOSIT : CMD_WITHDRAW;
            c.u.money.currency = (uint8_t)range(g, 0, 1);
            c.u.money.amount = range(g, 1, c.u.money.currency ? 10000000000 : 20000000);
            one(R, J_MONEY, &c, NULL);
        } else if (roll < 920) {
            c.type = CMD_CANCEL_ALL;
            c.u.cancel_all.inst = inst;
            one(R, J_CANCEL_ALL, &c, NULL);
        } else if (roll < 925) {
            if (R->accounts + 1 < ACCOUNTS_MAX)
                new_account(R, false);
        } else {
            core_tick(R->core);
        }
    }
}

static void teardown(struct run *R)
{
    core_destroy(R->core);
    rbuf_free(&R->seen.bytes);
}

/* ---- tests ------------------------------------------------------------------ */

static uint32_t commands(void)
{
    const char *n = getenv("PERPSIM_REPLAY_COMMANDS");
    return n ? (uint32_t)strtoul(n, NULL, 10) : 12000;
}

START_TEST(same_stream_same_hash_and_bytes)
{
    static struct run A, B;
    setup(&A, 7);
    setup(&B, 7);
    A.check = true;
    stream(&A, commands());
    stream(&B, commands());
    struct core_state sa, sb;
    core_state(A.core, &sa);
    core_state(B.core, &sb);
    printf("core_replay: %llu records, %zu bytes, seq %llu, hash %016llx; fills %llu, liquidations %llu, "
           "deleverages %llu, fundings %llu, accounts %llu, keys %llu, texts %llu, rejects %llu\n",
           (unsigned long long)A.seen.records, A.seen.bytes.len, (unsigned long long)sa.seq,
           (unsigned long long)sa.hash, (unsigned long long)A.seen.fills,
           (unsigned long long)A.seen.liquidations, (unsigned long long)A.seen.deleverages,
           (unsigned long long)A.seen.fundings, (unsigned long long)A.seen.accounts,
           (unsigned long long)A.seen.keys, (unsigned long long)A.seen.texts,
           (unsigned long long)A.seen.rejects);
    /* The stream exercised what it is for. */
    ck_assert_uint_gt(A.seen.fills, 1000);
    ck_assert_uint_gt(A.seen.liquidations, 0);
    ck_assert_uint_gt(A.seen.fundings, 0);
    ck_assert_uint_gt(A.seen.accounts, 40);
    ck_assert_uint_eq(A.seen.keys, A.seen.accounts);
    ck_assert_uint_gt(A.seen.texts, 100);
    ck_assert_uint_gt(A.seen.rejects, 0);
    /* Every record once, in order, starting with the config. */
    ck_assert_uint_eq(A.seen.out_of_order, 0);
    ck_assert_uint_eq(A.seen.records, sa.seq);
    ck_assert(A.seen.bytes.len > 29 && A.seen.bytes.p[4] == 1 && A.seen.bytes.p[28] == CC_CONFIG);
    /* Same commands, same state, same bytes. */
    ck_assert_uint_eq(sa.seq, sb.seq);
    ck_assert_int_eq(sa.time, sb.time);
    ck_assert_msg(sa.hash == sb.hash, "hash %016llx vs %016llx", (unsigned long long)sa.hash,
                  (unsigned long long)sb.hash);
    ck_assert(!A.seen.bytes.bad && !B.seen.bytes.bad);
    ck_assert_uint_eq(A.seen.bytes.len, B.seen.bytes.len);
    ck_assert(memcmp(A.seen.bytes.p, B.seen.bytes.p, A.seen.bytes.len) == 0);
    teardown(&A);
    teardown(&B);
}
END_TEST

START_TEST(another_seed_another_hash)
{
    static struct run A, B;
    setup(&A, 7);
    setup(&B, 8);
    stream(&A, 2000);
    stream(&B, 2000);
    struct core_state sa, sb;
    core_state(A.core, &sa);
    core_state(B.core, &sb);
    ck_assert(sa.hash != sb.hash);
    ck_assert(A.seen.bytes.len != B.seen.bytes.len ||
              memcmp(A.seen.bytes.p, B.seen.bytes.p, A.seen.bytes.len) != 0);
    teardown(&A);
    teardown(&B);
}
END_TEST

/* One key more, or one order text different, changes the hash: the keys
 * and the read model are in it, not just the engine. */
START_TEST(hash_covers_keys_and_texts)
{
    static struct run A, B;
    setup(&A, 3);
    setup(&B, 3);
    new_account(&A, true);
    new_account(&B, true);
    struct core_state sa, sb;
    core_state(A.core, &sa);
    core_state(B.core, &sb);
    ck_assert(sa.hash == sb.hash);
    /* A: a key with another secret; B: the same key as A's would be. */
    struct core_job *ja = core_job_new(J_ACCOUNT, 0, 0), *jb = core_job_new(J_ACCOUNT, 0, 0);
    struct rng g = {5};
    random_key(&g, &ja->key);
    jb->key = ja->key;
    jb->key.secret[0] = jb->key.secret[0] == 'A' ? 'B' : 'A';
    core_run(A.core, ja);
    core_run(B.core, jb);
    ck_assert_int_eq(ja->status, REJ_NONE);
    ck_assert_int_eq(jb->status, REJ_NONE);
    core_state(A.core, &sa);
    core_state(B.core, &sb);
    ck_assert(sa.seq == sb.seq && sa.hash != sb.hash);
    /* The same key id again is refused before any command: no account
     * without a key, nothing changed, not even the sequence. */
    struct core_state s0, s1;
    core_state(A.core, &s0);
    struct core_job *jc = core_job_new(J_ACCOUNT, 0, 0);
    jc->key = ja->key;
    core_run(A.core, jc);
    ck_assert_int_eq(jc->status, REJ_CORE_BAD_KEY);
    core_state(A.core, &s1);
    ck_assert(s1.seq == s0.seq && s1.hash == s0.hash);
    ck_assert(!core_account_exists(A.core, ja->account + 1));
    /* The same order with another text: the read model differs, so does
     * the hash. */
    struct cmd o = {.type = CMD_NEW_ORDER, .account = 1, .inst = 0};
    o.u.new_order.has = HAS_QTY | HAS_PRICE;
    o.u.new_order.side = SIDE_BUY;
    o.u.new_order.qty = 100;
    o.u.new_order.price = 40000 * PX_SCALE;
    one(&A, J_ORDERS, &o, "hello");
    one(&B, J_ORDERS, &o, "hello");
    core_state(A.core, &sa);
    core_state(B.core, &sb);
    ck_assert(sa.seq == sb.seq && sa.hash != sb.hash); /* the keys still differ */
    static struct run C, D;
    setup(&C, 3);
    setup(&D, 3);
    new_account(&C, true);
    new_account(&D, true);
    one(&C, J_ORDERS, &o, "hello");
    one(&D, J_ORDERS, &o, "world");
    core_state(C.core, &sa);
    core_state(D.core, &sb);
    ck_assert(sa.seq == sb.seq && sa.hash != sb.hash);
    teardown(&C);
    teardown(&D);
    core_job_free(ja);
    core_job_free(jb);
    core_job_free(jc);
    teardown(&A);
    teardown(&B);
}
END_TEST

/* ---- after-lock delivery under concurrent submitters --------------------------- */

struct submitter {
    struct core *core;
    uint32_t account;
    int n;
    atomic_int done_count;
};

static void job_done(struct core_job *j)
{
    atomic_int *flag = j->ctx;
    atomic_store(flag, 1);
}

static void *submit_loop(void *arg)
{
    struct submitter *s = arg;
    for (int k = 0; k < s->n; k++) {
        struct core_job *j = core_job_new(J_ORDERS, s->account, 1);
        atomic_int flag = 0;
        j->done = job_done;
        j->ctx = &flag;
        j->cmds[0].type = CMD_NEW_ORDER;
        j->cmds[0].inst = 0;
        j->cmds[0].u.new_order.has = HAS_QTY | HAS_PRICE;
        /* Crossing prices: the two submitters trade with each other. */
        j->cmds[0].u.new_order.side = k % 2 ? SIDE_BUY : SIDE_SELL;
        j->cmds[0].u.new_order.qty = 100;
        j->cmds[0].u.new_order.price = (k % 2 ? 50010 : 49990) * PX_SCALE;
        enum ls_result res = core_submit(s->core, j, LS_KIND_NEW_ORDER, true);
        ck_assert_int_eq(res, LS_ACCEPTED);
        while (!atomic_load(&flag))
            sched_yield();
        if (j->rej[0] == REJ_NONE)
            atomic_fetch_add(&s->done_count, 1);
        core_job_free(j);
    }
    return NULL;
}

START_TEST(after_lock_order_under_threads)
{
    static struct run A;
    setup(&A, 11);
    new_account(&A, true);
    new_account(&A, true);
    ck_assert_int_eq(core_start(A.core), 0);
    struct submitter s[2] = {{A.core, 1, 3000, 0}, {A.core, 2, 3000, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, submit_loop, &s[i]);
    for (int i = 0; i < 50; i++) {
        A.clk.t += 10;
        core_tick(A.core);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&s[0].done_count) + atomic_load(&s[1].done_count), 6000);
    core_shutdown(A.core);
    struct core_state st;
    core_state(A.core, &st);
    /* The engine thread's own clock ticks are records too. */
    ck_assert_uint_eq(A.seen.out_of_order, 0);
    ck_assert_uint_eq(A.seen.records, st.seq);
    ck_assert_uint_eq(A.seen.last_seq, st.seq);
    teardown(&A);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("core_replay");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, same_stream_same_hash_and_bytes);
    tcase_add_test(tc, another_seed_another_hash);
    tcase_add_test(tc, hash_covers_keys_and_texts);
    tcase_add_test(tc, after_lock_order_under_threads);
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
