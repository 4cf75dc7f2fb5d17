/*
 * test_journal.c - the journal's promises (journal/journal.h) and the
 * command codec it writes (core/record.h: core_cmd_encode/_decode):
 *
 *  - codec: every kind of command (the config, each engine/margin command
 *    type with its strings and a text, a new account, a key with CIDRs)
 *    encodes, decodes and encodes again to the same bytes; every strict
 *    prefix and every encoding with one byte more is refused; random
 *    bytes and random one-byte mutations never read outside the input
 *    (the sanitized build checks) and what decodes re-encodes stably;
 *  - end to end: a seeded workload on a real core writing its journal
 *    (fsync batch, interval and off; tiny segments so that many are
 *    written), replies and after-lock records held until the journal has
 *    them, then the directory replayed into a fresh core gives the same
 *    state hash and sequence number, the report counts every command, and
 *    a restart on the directory goes on writing where it stopped;
 *  - corruption, each on a copy of one small-segment journal: a torn last
 *    frame is cut (and kept beside the segment) when the journal opens for
 *    writing; a flipped byte in a frame with good frames after it, a
 *    missing segment and a bad segment header stop the read naming the
 *    file and offset, and with last_good the read stops at the last good
 *    command and the rest is set aside (renamed, never deleted).
 *
 * The "regressions" case: bugs this test found, each failing before its
 * fix (last_good past a missing segment, a text past TEXT_LEN_MAX, a
 * damaged command 1 taken for a new exchange, a flipped header byte taken
 * for a torn write).
 * PERPSIM_JOURNAL_COMMANDS sets the end-to-end workload's size (2000).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/xorshift.h"
#include "core/core.h"
#include "journal/journal.h"

#define T0 INT64_C(1795221000000) /* 2026-11-21T00:30:00Z */
#define ACCOUNTS_MAX 64
#define RECENT 512
#define SEG_HEADER 32u   /* journal.h: a segment's header */
#define FRAME_HEADER 12u /* journal.h: u32 length, u64 XXH3-64 */
#define DIRCAP 128  /* a directory of ours (mkdtemp under /tmp) */
#define PATHCAP 512 /* a file in it */

/* ---- small things ------------------------------------------------------------- */


static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct tclock {
    _Atomic ms_t t;
};

static ms_t tclock_now(void *ctx)
{
    return atomic_load(&((struct tclock *)ctx)->t);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmpdir(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/perpsim-journal-XXXXXX");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp: %s", strerror(errno));
}

static unsigned char *read_all(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(sz > 0 ? (size_t)sz : 1);
    ck_assert_ptr_nonnull(p);
    if (sz > 0)
        ck_assert_uint_eq(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static void write_all_file(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* Copies the files of DIR/journal to a new temporary directory. */
static void copy_journal(const char *src, char *dst, size_t cap)
{
    make_tmpdir(dst, cap);
    char from[PATHCAP], to[PATHCAP];
    snprintf(to, sizeof(to), "%s/journal", dst);
    ck_assert_int_eq(mkdir(to, 0755), 0);
    snprintf(from, sizeof(from), "%s/journal", src);
    DIR *d = opendir(from);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(from, sizeof(from), "%s/journal/%s", src, e->d_name);
        snprintf(to, sizeof(to), "%s/journal/%s", dst, e->d_name);
        size_t n;
        unsigned char *p = read_all(from, &n);
        ck_assert_ptr_nonnull(p);
        write_all_file(to, p, n);
        free(p);
    }
    closedir(d);
}

/* ---- the journal's files, as journal.h describes them ------------------------------ */

static void seg_file(char *out, size_t cap, const char *dir, uint64_t first)
{
    snprintf(out, cap, "%s/journal/%020" PRIu64 ".journal", dir, first);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define SEGS_MAX 4096

/* The segments' first command numbers, ascending. */
static uint32_t list_segs(const char *dir, uint64_t *out)
{
    char path[PATHCAP];
    snprintf(path, sizeof(path), "%s/journal", dir);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    uint32_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 20 + 8 || strcmp(e->d_name + 20, ".journal") != 0)
            continue;
        ck_assert_uint_lt(n, SEGS_MAX);
        out[n++] = strtoull(e->d_name, NULL, 10);
    }
    closedir(d);
    qsort(out, n, sizeof(*out), cmp_u64);
    return n;
}

/* Files in DIR/journal whose name contains part. */
static uint32_t count_files(const char *dir, const char *part)
{
    char path[PATHCAP];
    snprintf(path, sizeof(path), "%s/journal", dir);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    uint32_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

struct frame {
    uint64_t off;
    uint32_t len;
    uint64_t seq;
};

/* A well-formed segment's frames (the layout of journal.h). */
static uint32_t seg_frames(const char *path, struct frame *out, uint32_t max)
{
    size_t n;
    unsigned char *p = read_all(path, &n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(n, SEG_HEADER);
    ck_assert(memcmp(p, "PSJOURN1", 8) == 0);
    uint32_t k = 0;
    size_t off = SEG_HEADER;
    while (off < n) {
        ck_assert_uint_ge(n - off, FRAME_HEADER + 17);
        uint32_t len = 0;
        uint64_t seq = 0;
        for (int i = 0; i < 4; i++)
            len |= (uint32_t)p[off + (size_t)i] << (8 * i);
        for (int i = 0; i < 8; i++)
            seq |= (uint64_t)p[off + FRAME_HEADER + (size_t)i] << (8 * i);
        ck_assert_uint_le(len, n - off - FRAME_HEADER);
        ck_assert_uint_lt(k, max);
        out[k++] = (struct frame){off, len, seq};
        off += FRAME_HEADER + len;
    }
    free(p);
    return k;
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void cut_file(const char *path, uint64_t size)
{
    ck_assert_int_eq(truncate(path, (off_t)size), 0);
}

/* ---- reading ---------------------------------------------------------------------- */

struct counted {
    uint64_t n, last_seq, out_of_order;
    uint64_t by_type[8];
    ms_t last_ts;
    bool ts_back;
};

static int count_cmd(void *ctx, const struct core_cmd *cc, char *err, size_t errcap)
{
    (void)err;
    (void)errcap;
    struct counted *c = ctx;
    if (cc->seq != c->last_seq + 1)
        c->out_of_order++;
    if (cc->ts < c->last_ts)
        c->ts_back = true;
    c->last_seq = cc->seq;
    c->last_ts = cc->ts;
    c->by_type[cc->type < 8 ? cc->type : 0]++;
    c->n++;
    return 0;
}

struct prog {
    uint64_t calls, last_bytes, total;
};

static void on_progress(void *ctx, uint64_t bytes, uint64_t total, const struct core_cmd *last)
{
    (void)last;
    struct prog *p = ctx;
    p->calls++;
    p->last_bytes = bytes;
    p->total = total;
}

static ms_t no_clock(void *ctx)
{
    (void)ctx;
    return 0;
}

/* A core made from DIR's command 1 (journal_first), not started. */
static struct core *core_from_journal(const char *dir, struct tclock *clk)
{
    struct core_cmd_buf *first = malloc(sizeof(*first));
    ck_assert_ptr_nonnull(first);
    char err[1024];
    int have = journal_first(dir, first, err, sizeof(err));
    ck_assert_msg(have == 1, "journal_first %s: %d %s", dir, have, have < 0 ? err : "");
    ck_assert_int_eq(first->cmd.type, CC_CONFIG);
    ck_assert_uint_eq(first->cmd.seq, 1);
    struct core_config cfg;
    core_config_default(&cfg, 0);
    cfg.exch = *first->cmd.config;
    cfg.limits = *first->cmd.limits;
    /* not part of the exchange (nor of the journal): how often a checked
     * build walks its invariants */
    cfg.exch.engine.verify_every = 97;
    cfg.clock = clk ? (struct core_clock){tclock_now, clk, NULL} : (struct core_clock){no_clock, NULL, NULL};
    free(first);
    struct core *c = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(c != NULL, "core_create: %s", err);
    return c;
}

/* DIR replayed into a fresh core: its state and the report. */
static int replay_dir(const char *dir, uint64_t to_seq, bool last_good, struct core_state *st,
                      struct journal_report *rep, char *err, size_t errcap)
{
    struct core *c = core_from_journal(dir, NULL);
    struct prog p = {0};
    int rc = journal_replay(dir, c, to_seq, last_good, on_progress, &p, rep, err, errcap);
    if (rc == 0) {
        ck_assert_uint_ge(p.calls, 1); /* at least the final one */
        ck_assert_uint_eq(p.last_bytes, p.total);
    }
    core_state(c, st);
    struct core_summary sum;
    core_summarize(c, &sum);
    ck_assert_msg(sum.audit_ok, "replayed state fails its audit: %s", sum.audit_report);
    core_destroy(c);
    return rc;
}

/* ---- codec ---------------------------------------------------------------------- */

static void fill_id(char *s, size_t len, const char *prefix, uint32_t k)
{
    char t[128];
    snprintf(t, sizeof(t), "%s%u-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", prefix, k);
    memcpy(s, t, len);
    s[len] = '\0';
}

/* The commands the codec is checked with; storage in *texts. */
#define CODEC_MAX 64
struct codec_set {
    struct core_cmd cmd[CODEC_MAX];
    uint32_t n;
    struct core_config cfg;
    char text[CODEC_MAX][TEXT_LEN_MAX + 1];
};

static void codec_commands(struct codec_set *s)
{
    memset(s, 0, sizeof(*s));
    core_config_default(&s->cfg, T0);
    s->cfg.exch.engine.stp = STP_CANCEL_TAKER;
    s->cfg.exch.insurance_initial[0] = 123456789;
    s->cfg.exch.insurance_initial[1] = -5; /* any value round-trips */
    s->cfg.limits = (struct store_limits){11, 22, 33, true};
    struct core_cmd *c = &s->cmd[s->n++];
    c->type = CC_CONFIG;
    c->seq = 1;
    c->ts = T0;
    c->config = &s->cfg.exch;
    c->limits = &s->cfg.limits;
    /* The default store limits too. */
    static struct core_config dflt;
    core_config_default(&dflt, T0);
    c = &s->cmd[s->n++];
    c->type = CC_CONFIG;
    c->seq = 1;
    c->ts = T0 + 1;
    c->config = &dflt.exch;
    c->limits = &dflt.limits;
    for (uint8_t t = CMD_NEW_ORDER; t <= CMD_TYPE_LAST; t++) {
        for (int variant = 0; variant < 2; variant++) {
            c = &s->cmd[s->n];
            c->type = CC_EXCH;
            c->seq = UINT64_C(0x0102030405060708) + s->n;
            c->ts = T0 + 1000 * s->n;
            struct cmd *x = &c->x;
            x->type = t;
            x->seq = c->seq;
            x->ts = c->ts;
            x->account = 0x01020304u + t;
            x->inst = (uint16_t)(0x0a0b + t);
            switch (t) {
            case CMD_NEW_ORDER: {
                struct cmd_new_order *o = &x->u.new_order;
                o->has = HAS_QTY | HAS_PRICE | HAS_STOP_PX | HAS_DISPLAY_QTY | HAS_PEG_OFFSET;
                o->side = SIDE_SELL;
                o->ord_type = ORD_STOP_LIMIT;
                o->tif = TIF_DAY;
                o->peg_type = PEG_TRAILING_STOP;
                o->contingency = CONT_OCO;
                o->exec_inst = EXEC_REDUCE_ONLY | EXEC_LAST_PRICE | EXEC_ALL_OR_NONE;
                o->qty = -INT64_C(123456789012);
                o->display_qty = INT64_C(4200);
                o->price = INT64_C(6543210000000);
                o->stop_px = INT64_C(6500000000000);
                o->peg_offset_px = -INT64_C(250000000);
                if (variant)
                    fill_id(o->clordid, CLORDID_LEN_MAX, "cl", s->n); /* 36 characters: the most */
                else
                    snprintf(o->clordid, sizeof(o->clordid), "my-order-%u", s->n);
                snprintf(o->clordlinkid, sizeof(o->clordlinkid), "%s", variant ? "" : "link-7");
                break;
            }
            case CMD_AMEND: {
                struct cmd_amend *a = &x->u.amend;
                a->ref.order_id = variant ? 0 : UINT64_C(0xdeadbeefcafe);
                snprintf(a->ref.clordid, sizeof(a->ref.clordid), "%s", variant ? "by-clordid" : "");
                a->has = AMD_QTY | AMD_LEAVES | AMD_PRICE | AMD_STOP_PX | AMD_PEG_OFFSET | AMD_NEW_CLORDID;
                a->qty = 700;
                a->leaves = 300;
                a->price = INT64_C(5000050000000);
                a->stop_px = INT64_C(4900000000000);
                a->peg_offset_px = INT64_C(150000000);
                fill_id(a->new_clordid, variant ? CLORDID_LEN_MAX : 10, "new", s->n);
                break;
            }
            case CMD_CANCEL:
                x->u.cancel.order_id = variant ? 0 : 987654321;
                snprintf(x->u.cancel.clordid, sizeof(x->u.cancel.clordid), "%s", variant ? "gone-1" : "");
                break;
            case CMD_CANCEL_ALL:
                x->u.cancel_all.inst = variant ? INST_ALL : 1;
                x->u.cancel_all.side = variant ? SIDE_NONE : SIDE_BUY;
                x->u.cancel_all.reason = variant ? CXL_LIQUIDATION : 0;
                break;
            case CMD_CANCEL_ALL_AFTER:
                x->u.cancel_after_ms = variant ? 0 : 60000;
                break;
            case CMD_SET_PRICE:
                x->u.set_price.source = variant ? SRC_INDEX : SRC_MARK;
                x->u.set_price.price = INT64_C(5012345678901);
                break;
            case CMD_DEPOSIT:
            case CMD_WITHDRAW:
                x->u.money.currency = (uint8_t)(variant + 1);
                x->u.money.amount = INT64_C(98765432109876);
                break;
            case CMD_SET_LEVERAGE:
                x->u.leverage_e8 = variant ? 0 : INT64_C(2500000000);
                break;
            case CMD_SET_RISK_LIMIT:
                x->u.risk_limit = INT64_C(30000000000);
                break;
            case CMD_TRANSFER_MARGIN:
                x->u.transfer = variant ? -INT64_C(1234567) : INT64_C(7654321);
                break;
            case CMD_SET_INDEX:
                x->u.set_index.index = (uint16_t)(variant + 1);
                x->u.set_index.price = INT64_C(301234560000);
                break;
            case CMD_SET_FUNDING:
                x->u.set_funding.rate_e8 = variant ? -INT64_C(37500) : INT64_C(10000);
                x->u.set_funding.indicative_e8 = variant ? 0 : -INT64_C(2500);
                x->u.set_funding.has_indicative = (uint8_t)!variant;
                x->u.set_funding.for_ms = variant ? 0 : INT64_C(1705291200000);
                break;
            case CMD_SET_SPAM:
                x->u.spam = (uint8_t)!variant;
                break;
            default: /* CMD_CLOCK, CMD_SET_CROSS: no arguments */
                break;
            }
            if (variant == 0) {
                snprintf(s->text[s->n], sizeof(s->text[s->n]), "text of command %u: \"quoted\", ünïcode", s->n);
                c->text = s->text[s->n];
            } else if (t == CMD_NEW_ORDER) {
                memset(s->text[s->n], 'x', TEXT_LEN_MAX); /* the longest text api/ takes */
                s->text[s->n][TEXT_LEN_MAX] = '\0';
                c->text = s->text[s->n];
            }
            s->n++;
        }
    }
    c = &s->cmd[s->n++];
    c->type = CC_ACCOUNT;
    c->seq = 77;
    c->ts = T0 + 5;
    c->account = 0x00abcdefu;
    c = &s->cmd[s->n++]; /* one with flags: the history's, no rows kept */
    c->type = CC_ACCOUNT;
    c->seq = 77;
    c->ts = T0 + 5;
    c->account = 0x00abcdf0u;
    c->account_flags = CORE_ACCOUNT_NO_ROWS;
    for (uint8_t ncidr = 0; ncidr <= KEY_CIDRS_MAX; ncidr += 2) {
        c = &s->cmd[s->n++];
        c->type = CC_KEY;
        c->seq = 78 + ncidr;
        c->ts = T0 + 6;
        fill_id(c->key.id, KEY_ID_LEN, "K", ncidr);
        fill_id(c->key.secret, KEY_SECRET_LEN, "secret-", ncidr);
        memset(c->key.secret + 20, 'S', KEY_SECRET_LEN - 20);
        c->key.account = 0x00abcdefu;
        c->key.perms = PERM_ORDER | PERM_CANCEL | PERM_WITHDRAW;
        c->key.enabled = ncidr != 2;
        c->key.ncidr = ncidr;
        for (uint8_t i = 0; i < ncidr && i < KEY_CIDRS_MAX; i++) {
            c->key.cidr_addr[i] = 0xc0a80000u + 0x101u * i;
            c->key.cidr_bits[i] = (uint8_t)(16 + 4 * i);
        }
        c->key.created_ms = T0 + 6;
    }
    c = &s->cmd[s->n++];
    c->type = CC_CHECKPOINT;
    c->seq = 90;
    c->ts = T0 + 7;
    c->text = "before-shock";
    c = &s->cmd[s->n++]; /* the longest name */
    c->type = CC_RESTORE;
    c->seq = 91;
    c->ts = T0 + 7;
    memset(s->text[s->n - 1], 'n', CHECKPOINT_NAME_MAX);
    s->text[s->n - 1][CHECKPOINT_NAME_MAX] = '\0';
    c->text = s->text[s->n - 1];
    c->target_seq = 90;
    c->target_hash = UINT64_C(0xfedcba9876543210);
    ck_assert_uint_le(s->n, CODEC_MAX);
}

/* Decodes p[0..n) from a copy of exactly n bytes (the sanitizer sees a read
 * past it). */
static int decode_exact(const unsigned char *p, size_t n, struct core_cmd_buf *out)
{
    unsigned char *q = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(q);
    if (n)
        memcpy(q, p, n);
    int rc = core_cmd_decode(q, n, out);
    free(q);
    return rc;
}

/* What decodes encodes to bytes that decode to the same bytes again. */
static void stable(const struct core_cmd_buf *b)
{
    struct rbuf e1 = {0}, e2 = {0};
    core_cmd_encode(&b->cmd, &e1);
    ck_assert(!e1.bad);
    struct core_cmd_buf *b2 = malloc(sizeof(*b2));
    ck_assert_ptr_nonnull(b2);
    ck_assert_int_eq(decode_exact(e1.p, e1.len, b2), 0);
    core_cmd_encode(&b2->cmd, &e2);
    ck_assert_uint_eq(e1.len, e2.len);
    ck_assert(memcmp(e1.p, e2.p, e1.len) == 0);
    free(b2);
    rbuf_free(&e1);
    rbuf_free(&e2);
}

START_TEST(codec_round_trip)
{
    static struct codec_set s;
    codec_commands(&s);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    ck_assert_ptr_nonnull(b);
    uint32_t types_seen = 0, kinds_seen = 0;
    for (uint32_t k = 0; k < s.n; k++) {
        const struct core_cmd *c = &s.cmd[k];
        struct rbuf e1 = {0}, e2 = {0};
        core_cmd_encode(c, &e1);
        ck_assert(!e1.bad);
        ck_assert_int_eq(decode_exact(e1.p, e1.len, b), 0);
        /* The fields come back. */
        ck_assert_uint_eq(b->cmd.type, c->type);
        ck_assert_uint_eq(b->cmd.seq, c->seq);
        ck_assert_int_eq(b->cmd.ts, c->ts);
        kinds_seen |= 1u << c->type;
        switch (c->type) {
        case CC_CONFIG:
            ck_assert_ptr_eq(b->cmd.config, &b->config);
            ck_assert_ptr_eq(b->cmd.limits, &b->limits);
            ck_assert_uint_eq(b->limits.orders, c->limits->orders);
            ck_assert_uint_eq(b->limits.execs, c->limits->execs);
            ck_assert_uint_eq(b->limits.trades, c->limits->trades);
            ck_assert_uint_eq(b->config.engine.instruments_count, c->config->engine.instruments_count);
            ck_assert_uint_ge(b->config.engine.instruments_count, 2);
            for (uint16_t i = 0; i < c->config->engine.instruments_count; i++) {
                ck_assert_str_eq(b->config.engine.instruments[i].symbol, c->config->engine.instruments[i].symbol);
                ck_assert_int_eq(b->config.inst[i].expiry_ms, c->config->inst[i].expiry_ms);
                ck_assert_int_eq(b->config.inst[i].taker_fee_e8, c->config->inst[i].taker_fee_e8);
                ck_assert_int_eq(b->config.inst[i].contract.multiplier, c->config->inst[i].contract.multiplier);
            }
            ck_assert_int_eq(b->config.engine.stp, c->config->engine.stp);
            ck_assert_uint_eq(b->config.currencies_count, c->config->currencies_count);
            for (uint8_t i = 0; i < c->config->currencies_count; i++) {
                ck_assert_str_eq(b->config.currency[i], c->config->currency[i]);
                ck_assert_int_eq(b->config.insurance_initial[i], c->config->insurance_initial[i]);
                ck_assert_int_eq(b->config.spam_value[i], c->config->spam_value[i]);
            }
            ck_assert_uint_eq(b->config.spam_orders, c->config->spam_orders);
            ck_assert_int_eq(b->limits.keep_rejected, c->limits->keep_rejected);
            ck_assert_uint_eq(b->config.indices_count, c->config->indices_count);
            for (uint16_t i = 0; i < c->config->indices_count; i++)
                ck_assert_str_eq(b->config.index[i], c->config->index[i]);
            break;
        case CC_EXCH:
            types_seen |= 1u << c->x.type;
            ck_assert_uint_eq(b->cmd.x.type, c->x.type);
            ck_assert_uint_eq(b->cmd.x.seq, c->x.seq);
            ck_assert_int_eq(b->cmd.x.ts, c->x.ts);
            ck_assert_uint_eq(b->cmd.x.account, c->x.account);
            ck_assert_uint_eq(b->cmd.x.inst, c->x.inst);
            if (c->text && c->text[0]) {
                ck_assert_ptr_eq(b->cmd.text, b->text);
                ck_assert_str_eq(b->cmd.text, c->text);
            } else {
                ck_assert(b->cmd.text == NULL || b->cmd.text[0] == '\0');
            }
            if (c->x.type == CMD_NEW_ORDER) {
                const struct cmd_new_order *o = &c->x.u.new_order, *d = &b->cmd.x.u.new_order;
                ck_assert_str_eq(d->clordid, o->clordid);
                ck_assert_str_eq(d->clordlinkid, o->clordlinkid);
                ck_assert_int_eq(d->qty, o->qty);
                ck_assert_int_eq(d->peg_offset_px, o->peg_offset_px);
                ck_assert_uint_eq(d->exec_inst, o->exec_inst);
                ck_assert_uint_eq(d->has, o->has);
            } else if (c->x.type == CMD_AMEND) {
                ck_assert_str_eq(b->cmd.x.u.amend.ref.clordid, c->x.u.amend.ref.clordid);
                ck_assert_str_eq(b->cmd.x.u.amend.new_clordid, c->x.u.amend.new_clordid);
                ck_assert_uint_eq(b->cmd.x.u.amend.ref.order_id, c->x.u.amend.ref.order_id);
            } else if (c->x.type == CMD_CANCEL) {
                ck_assert_str_eq(b->cmd.x.u.cancel.clordid, c->x.u.cancel.clordid);
            }
            break;
        case CC_ACCOUNT:
            ck_assert_uint_eq(b->cmd.account, c->account);
            ck_assert_uint_eq(b->cmd.account_flags, c->account_flags);
            break;
        case CC_CHECKPOINT:
        case CC_RESTORE:
            ck_assert_str_eq(b->cmd.text, c->text);
            ck_assert_uint_eq(b->cmd.target_seq, c->target_seq);
            ck_assert(b->cmd.target_hash == c->target_hash);
            break;
        case CC_KEY:
            ck_assert_str_eq(b->cmd.key.id, c->key.id);
            ck_assert_str_eq(b->cmd.key.secret, c->key.secret);
            ck_assert_uint_eq(b->cmd.key.account, c->key.account);
            ck_assert_uint_eq(b->cmd.key.perms, c->key.perms);
            ck_assert(b->cmd.key.enabled == c->key.enabled);
            ck_assert_uint_eq(b->cmd.key.ncidr, c->key.ncidr);
            for (uint8_t i = 0; i < c->key.ncidr; i++) {
                ck_assert_uint_eq(b->cmd.key.cidr_addr[i], c->key.cidr_addr[i]);
                ck_assert_uint_eq(b->cmd.key.cidr_bits[i], c->key.cidr_bits[i]);
            }
            ck_assert_int_eq(b->cmd.key.created_ms, c->key.created_ms);
            break;
        default:
            ck_abort_msg("unknown kind %u", c->type);
        }
        /* Encoded again: the same bytes. */
        core_cmd_encode(&b->cmd, &e2);
        ck_assert(!e2.bad);
        ck_assert_msg(e1.len == e2.len && memcmp(e1.p, e2.p, e1.len) == 0,
                      "command %u (kind %u, type %u): %zu bytes, re-encoded %zu bytes differ", k, c->type,
                      c->type == CC_EXCH ? c->x.type : 0, e1.len, e2.len);
        /* Every strict prefix is refused, and one byte more. Except an
         * account's without its flags byte: that is the account of a
         * journal from before flags (a record's length is framed, so the
         * byte cannot be lost unnoticed). */
        /* Likewise a config without the spam rule: a journal from before it. */
        size_t spam_bytes = 0; /* the flags byte and the spam rule's fields */
        if (c->type == CC_CONFIG && (c->config->spam_orders || c->limits->keep_rejected))
            spam_bytes = 1 + (c->config->spam_orders ? 4 + 8 * (size_t)c->config->currencies_count : 0);
        for (size_t len = 0; len < e1.len; len++) {
            bool old_account = c->type == CC_ACCOUNT && c->account_flags && len == e1.len - 1;
            bool old_config = spam_bytes && len == e1.len - spam_bytes;
            ck_assert_msg(decode_exact(e1.p, len, b) == (old_account || old_config ? 0 : -1),
                          "command %u: a prefix of %zu of %zu bytes decoded", k, len, e1.len);
        }
        for (int extra = 0; extra < 256; extra += 85) {
            unsigned char byte = (unsigned char)extra;
            struct rbuf e3 = {0};
            rbuf_put(&e3, e1.p, e1.len);
            rbuf_put(&e3, &byte, 1);
            ck_assert_msg(decode_exact(e3.p, e3.len, b) == -1, "command %u: one byte more decoded", k);
            rbuf_free(&e3);
        }
        rbuf_free(&e1);
        rbuf_free(&e2);
    }
    /* Every kind and every command type was there. */
    ck_assert_uint_eq(kinds_seen, (1u << CC_CONFIG) | (1u << CC_EXCH) | (1u << CC_ACCOUNT) | (1u << CC_KEY) | (1u << CC_CHECKPOINT) | (1u << CC_RESTORE));
    for (uint8_t t = CMD_NEW_ORDER; t <= CMD_TYPE_LAST; t++)
        ck_assert_msg(types_seen & (1u << t), "command type %u not covered", t);
    /* An unknown kind and an unknown command type are refused. */
    struct rbuf e = {0};
    core_cmd_encode(&s.cmd[2], &e); /* a CC_EXCH */
    e.p[16] = 0;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    e.p[16] = CC_KEY + 1;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    e.p[16] = CC_EXCH;
    e.p[17] = CMD_TYPE_LAST + 1;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    e.p[17] = 0;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    rbuf_free(&e);
    /* An account's flags: absent (a journal from before flags), known,
     * then zero or unknown (refused: the encoder writes neither). */
    struct core_cmd acct = {.type = CC_ACCOUNT, .seq = 5, .ts = T0, .account = 3};
    core_cmd_encode(&acct, &e);
    ck_assert_int_eq(decode_exact(e.p, e.len, b), 0);
    ck_assert_uint_eq(b->cmd.account_flags, 0);
    unsigned char fl = CORE_ACCOUNT_NO_ROWS;
    rbuf_put(&e, &fl, 1);
    ck_assert_int_eq(decode_exact(e.p, e.len, b), 0);
    ck_assert_uint_eq(b->cmd.account_flags, CORE_ACCOUNT_NO_ROWS);
    e.p[e.len - 1] = CORE_ACCOUNT_AGENT;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), 0);
    ck_assert_uint_eq(b->cmd.account_flags, CORE_ACCOUNT_AGENT);
    e.p[e.len - 1] = 0;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    e.p[e.len - 1] = 0x80;
    ck_assert_int_eq(decode_exact(e.p, e.len, b), -1);
    rbuf_free(&e);
    /* What the fuzzer (tests/fuzz/fuzz_journal.c) found decoding to
     * something that encodes differently: a key's enabled byte other than
     * 0 or 1, a string with a NUL inside. Both are damage: refused. */
    struct core_cmd k;
    memset(&k, 0, sizeof(k));
    k.type = CC_KEY;
    k.seq = 7;
    snprintf(k.key.id, sizeof(k.key.id), "abc");
    snprintf(k.key.secret, sizeof(k.key.secret), "def");
    k.key.enabled = true;
    struct rbuf e2 = {0};
    core_cmd_encode(&k, &e2);
    ck_assert_int_eq(decode_exact(e2.p, e2.len, b), 0);
    size_t at_enabled = 17 + 2 + 3 + 2 + 3 + 4 + 4; /* seq ts type, id, secret, account, perms */
    ck_assert_uint_eq(e2.p[at_enabled], 1);
    e2.p[at_enabled] = 2;
    ck_assert_int_eq(decode_exact(e2.p, e2.len, b), -1);
    e2.p[at_enabled] = 1;
    e2.p[17 + 2 + 1] = 0; /* "a\0c" */
    ck_assert_int_eq(decode_exact(e2.p, e2.len, b), -1);
    rbuf_free(&e2);
    free(b);
}
END_TEST

START_TEST(codec_never_reads_outside)
{
    static struct codec_set s;
    codec_commands(&s);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    ck_assert_ptr_nonnull(b);
    struct rng g = {UINT64_C(0x9E3779B97F4A7C15)};
    unsigned char buf[301];
    uint64_t decoded = 0;
    /* Random bytes, lengths 0..300. */
    for (int i = 0; i < 100000; i++) {
        size_t n = (size_t)range(&g, 0, 300);
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)rnd(&g);
        if (decode_exact(buf, n, b) == 0) {
            decoded++;
            stable(b);
        }
    }
    /* Random bytes past a plausible head (a known kind and command type),
     * to get deeper than the type byte. */
    for (int i = 0; i < 100000; i++) {
        size_t n = (size_t)range(&g, 0, 300);
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)rnd(&g);
        if (n > 16)
            buf[16] = (unsigned char)range(&g, CC_CONFIG, CC_KEY);
        if (n > 17)
            buf[17] = (unsigned char)range(&g, CMD_NEW_ORDER, CMD_TYPE_LAST);
        /* short strings now and then, so that some get through */
        for (size_t k = 18; k + 1 < n; k += (size_t)range(&g, 1, 40))
            if (range(&g, 0, 3) == 0)
                buf[k + 1] = 0;
        if (decode_exact(buf, n, b) == 0) {
            decoded++;
            stable(b);
        }
    }
    /* One byte of a valid encoding changed. */
    uint64_t mutants = 0, mutants_ok = 0;
    for (uint32_t k = 0; k < s.n; k++) {
        struct rbuf e = {0};
        core_cmd_encode(&s.cmd[k], &e);
        for (size_t at = 0; at < e.len; at++) {
            unsigned char orig = e.p[at];
            for (int v = 0; v < 6; v++) {
                unsigned char nb = v == 0 ? 0 : v == 1 ? 0xff : v == 2 ? (unsigned char)(orig + 1)
                                                                       : (unsigned char)rnd(&g);
                if (nb == orig)
                    continue;
                e.p[at] = nb;
                mutants++;
                if (decode_exact(e.p, e.len, b) == 0) {
                    mutants_ok++;
                    stable(b);
                }
            }
            e.p[at] = orig;
        }
        rbuf_free(&e);
    }
    printf("codec: %" PRIu64 " random inputs decoded; %" PRIu64 " of %" PRIu64 " one-byte mutants decoded\n",
           decoded, mutants_ok, mutants);
    /* A changed number still decodes: the mutations reached past the head. */
    ck_assert_uint_gt(mutants_ok, mutants / 4);
    free(b);
}
END_TEST

/* ---- an exchange writing its journal ---------------------------------------------- */

struct ex {
    char dir[DIRCAP];
    struct tclock clk;
    struct core *core;
    struct journal *j;
    struct rng rng;
    uint32_t accounts;
    uint64_t recent_id[RECENT];
    uint32_t recent_acct[RECENT];
    char recent_cl[RECENT][CLORDID_LEN_MAX + 1];
    uint32_t nrecent;
    px_t index[2];
    uint64_t texts, amends, cancels, fills;
    /* the after-lock consumer: records only once the journal has them */
    _Atomic uint64_t delivered, delivered_out_of_order, delivered_early, last_delivered;
    _Atomic uint64_t durable_floor; /* replayed commands: durable before journal_stats says so */
    /* submitted jobs: replies only once the journal has them */
    _Atomic uint64_t replies, replies_early;
};

static uint64_t durable_now(struct ex *e)
{
    struct journal_stats st;
    journal_stats(e->j, &st);
    uint64_t f = atomic_load(&e->durable_floor);
    return st.durable_seq > f ? st.durable_seq : f;
}

static void after_lock(void *ctx, const struct core_record *r)
{
    struct ex *e = ctx;
    if (r->seq != atomic_load(&e->last_delivered) + 1)
        atomic_fetch_add(&e->delivered_out_of_order, 1);
    atomic_store(&e->last_delivered, r->seq);
    if (r->seq > durable_now(e))
        atomic_fetch_add(&e->delivered_early, 1);
    atomic_fetch_add(&e->delivered, 1);
    if (r->cmd->type == CC_EXCH)
        for (uint32_t i = 0; i < r->nev; i++)
            if (r->ev[i].ev.type == EV_TRADE)
                e->fills++;
}

static void ex_config(struct core_config *cfg, struct ex *e)
{
    core_config_default(cfg, T0);
    cfg->exch.engine.accounts_max = ACCOUNTS_MAX;
    cfg->exch.engine.orders_max = 1u << 13;
    cfg->exch.engine.stops_max = 256;
    cfg->exch.engine.open_orders_max = 50;
    cfg->exch.engine.verify_every = 97;
    cfg->index_px[0] = e->index[0];
    cfg->index_px[1] = e->index[1];
    cfg->clock = (struct core_clock){tclock_now, &e->clk, NULL};
}

/* A new exchange on a new journal in e->dir (journal_start with no
 * replay). */
static void ex_open_new(struct ex *e, const char *dir, enum jr_fsync fs, uint64_t segment_bytes, uint64_t seed)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    e->rng.s = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    e->clk.t = T0;
    e->index[0] = 50000 * PX_SCALE;
    e->index[1] = 3000 * PX_SCALE;
    char err[1024];
    struct core_cmd_buf *first = malloc(sizeof(*first));
    ck_assert_int_eq(journal_first(dir, first, err, sizeof(err)), 0); /* none yet */
    free(first);
    struct journal_config jc;
    memset(&jc, 0, sizeof(jc));
    snprintf(jc.dir, sizeof(jc.dir), "%s", dir);
    jc.fsync = fs;
    jc.interval_ms = 5;
    jc.segment_bytes = segment_bytes;
    e->j = journal_create(&jc, err, sizeof(err));
    ck_assert_msg(e->j != NULL, "journal_create: %s", err);
    /* One server per data directory. */
    ck_assert_ptr_null(journal_create(&jc, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    struct core_config cfg;
    ex_config(&cfg, e);
    e->core = core_create(&cfg, err, sizeof(err));
    ck_assert_msg(e->core != NULL, "core_create: %s", err);
    core_set_ticking(e->core, false);
    ck_assert_int_eq(core_subscribe(e->core, after_lock, e, false), 0);
    ck_assert_int_eq(journal_attach(e->j, e->core), 0);
    ck_assert_msg(journal_start(e->j, NULL, err, sizeof(err)) == 0, "journal_start: %s", err);
}

/* An exchange recovered from its journal in dir: replayed, then started. */
static void ex_open_existing(struct ex *e, const char *dir, enum jr_fsync fs, uint64_t segment_bytes,
                             uint64_t seed, bool last_good, struct journal_report *rep)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    e->rng.s = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    e->clk.t = T0;
    char err[1024];
    struct journal_config jc;
    memset(&jc, 0, sizeof(jc));
    snprintf(jc.dir, sizeof(jc.dir), "%s", dir);
    jc.fsync = fs;
    jc.interval_ms = 5;
    jc.segment_bytes = segment_bytes;
    jc.last_good = last_good;
    e->j = journal_create(&jc, err, sizeof(err));
    ck_assert_msg(e->j != NULL, "journal_create: %s", err);
    e->core = core_from_journal(dir, &e->clk);
    core_set_ticking(e->core, false);
    ck_assert_int_eq(core_subscribe(e->core, after_lock, e, false), 0);
    ck_assert_int_eq(journal_attach(e->j, e->core), 0);
    /* What the replay applies is on disk: its records may go as it goes. */
    atomic_store(&e->durable_floor, UINT64_MAX);
    int rc = journal_replay(dir, e->core, 0, last_good, NULL, NULL, rep, err, sizeof(err));
    ck_assert_msg(rc == 0, "journal_replay: %s", err);
    ck_assert_uint_gt(rep->commands, 0);
    /* What the replay applied is on disk: delivered by journal_start at the
     * latest (the after-lock consumer checks the order). */
    ck_assert_uint_le(atomic_load(&e->delivered), rep->commands);
    atomic_store(&e->durable_floor, rep->last_seq);
    ck_assert_msg(journal_start(e->j, rep, err, sizeof(err)) == 0, "journal_start: %s", err);
    ck_assert_uint_eq(atomic_load(&e->delivered), rep->commands);
    e->clk.t = rep->last_ts;
    /* Where the workload left its indices and accounts. */
    const struct core_view *v = core_view_begin(e->core);
    struct exch_instrument_state is;
    for (uint16_t k = 0; k < cv_config(v)->engine.instruments_count; k++) {
        cv_instrument(v, k, &is);
        if (cv_config(v)->inst[k].index < 2 && is.index_px > 0)
            e->index[cv_config(v)->inst[k].index] = is.index_px;
    }
    core_view_end(v);
    while (core_account_exists(e->core, e->accounts + 1))
        e->accounts++;
}

/* Stops the exchange: the engine, then the journal (every write on disk).
 * The state it stopped in. */
static void ex_close_stats(struct ex *e, struct core_state *st, struct journal_stats *js)
{
    core_shutdown(e->core);
    journal_close(e->j);
    core_state(e->core, st);
    journal_stats(e->j, js);
    ck_assert_uint_eq(js->durable_seq, st->seq);
    /* Every record delivered, in order, none before the journal had it. */
    ck_assert_uint_eq(atomic_load(&e->delivered_out_of_order), 0);
    ck_assert_uint_eq(atomic_load(&e->delivered_early), 0);
    ck_assert_uint_eq(atomic_load(&e->last_delivered), st->seq);
    ck_assert_uint_eq(atomic_load(&e->replies_early), 0);
    core_destroy(e->core);
    journal_destroy(e->j);
    e->core = NULL;
    e->j = NULL;
}

static void ex_close(struct ex *e, struct core_state *st)
{
    struct journal_stats js;
    ex_close_stats(e, st, &js);
}

static void random_key(struct rng *g, struct key_rec *k)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < KEY_ID_LEN; i++)
        k->id[i] = al[rnd(g) % 62];
    for (int i = 0; i < KEY_SECRET_LEN; i++)
        k->secret[i] = al[rnd(g) % 62];
    k->perms = PERM_ORDER | PERM_CANCEL;
    k->enabled = true;
    k->ncidr = (uint8_t)range(g, 0, 2);
    for (uint8_t i = 0; i < k->ncidr; i++) {
        k->cidr_addr[i] = (uint32_t)rnd(g) & 0xffffff00u;
        k->cidr_bits[i] = 24;
    }
}

static void new_account(struct ex *e, bool maker)
{
    struct core_job *j = core_job_new(J_ACCOUNT, 0, 2);
    ck_assert_ptr_nonnull(j);
    random_key(&e->rng, &j->key);
    j->cmds[0].type = CMD_DEPOSIT;
    j->cmds[0].u.money.currency = 0;
    j->cmds[0].u.money.amount = maker ? INT64_C(10000000000) : range(&e->rng, 10000000, 100000000);
    j->cmds[1].type = CMD_DEPOSIT;
    j->cmds[1].u.money.currency = 1;
    j->cmds[1].u.money.amount = maker ? INT64_C(5000000000000) : range(&e->rng, 1000000000, 50000000000);
    core_run(e->core, j);
    ck_assert_int_eq(j->status, REJ_NONE);
    e->accounts = j->account;
    core_job_free(j);
}

static px_t to_tick(px_t px, px_t tick)
{
    px -= px % tick;
    return px < tick ? tick : px;
}

/* One command of the workload into c (and its text); kind of job. */
static enum job_kind next_cmd(struct ex *e, struct cmd *c, char *text, size_t textcap, uint32_t k)
{
    struct rng *g = &e->rng;
    const struct exch_config *cfg = core_exch_config(e->core);
    text[0] = '\0';
    uint32_t a = (uint32_t)range(g, 1, e->accounts);
    uint16_t inst = (uint16_t)range(g, 0, cfg->engine.instruments_count - 1);
    const struct engine_instrument *ei = &cfg->engine.instruments[inst];
    struct exch_instrument_state is;
    const struct core_view *v = core_view_begin(e->core);
    cv_instrument(v, inst, &is);
    core_view_end(v);
    px_t mark = is.mark_px ? is.mark_px : e->index[cfg->inst[inst].index];
    int roll = (int)range(g, 0, 999);
    memset(c, 0, sizeof(*c));
    c->account = a;
    c->inst = inst;
    if (roll < 20) {
        int idx = (int)range(g, 0, 1);
        int64_t bp = range(g, -20, 20);
        e->index[idx] += (px_t)((i128)e->index[idx] * bp / 10000);
        c->type = CMD_SET_INDEX;
        c->account = 0;
        c->inst = 0;
        c->u.set_index.index = (uint16_t)idx;
        c->u.set_index.price = e->index[idx];
        return J_INDEX;
    }
    if (roll < 560) {
        int buy = (int)range(g, 0, 1);
        int64_t off_bp = a <= 4 ? range(g, 2, 60) : range(g, -30, 50); /* takers cross */
        px_t px = mark + (px_t)((i128)mark * off_bp / 10000) * (buy ? -1 : 1);
        c->type = CMD_NEW_ORDER;
        c->u.new_order.has = HAS_QTY | HAS_PRICE;
        c->u.new_order.side = buy ? SIDE_BUY : SIDE_SELL;
        c->u.new_order.qty = ei->lot_qty * range(g, 1, a <= 4 ? 100 : 30);
        c->u.new_order.price = to_tick(px > 0 ? px : ei->tick_px, ei->tick_px);
        if (range(g, 0, 9) == 0)
            c->u.new_order.tif = TIF_IOC;
        if (range(g, 0, 2) == 0)
            snprintf(c->u.new_order.clordid, sizeof(c->u.new_order.clordid), "o%u-%u", k,
                     (unsigned)range(g, 0, 99999));
        if (range(g, 0, 2) == 0) {
            snprintf(text, textcap, "bot %u says %u", a, (unsigned)range(g, 0, 999));
            e->texts++;
        }
        return J_ORDERS;
    }
    if (roll < 640) {
        c->type = CMD_NEW_ORDER;
        c->u.new_order.has = HAS_QTY;
        c->u.new_order.side = range(g, 0, 1) ? SIDE_BUY : SIDE_SELL;
        c->u.new_order.qty = ei->lot_qty * range(g, 1, 20);
        return J_ORDERS;
    }
    if (roll < 900 && e->nrecent) {
        uint32_t r = (uint32_t)range(g, 0, (e->nrecent < RECENT ? e->nrecent : RECENT) - 1);
        c->account = e->recent_acct[r];
        bool by_cl = e->recent_cl[r][0] && range(g, 0, 1);
        if (range(g, 0, 2) == 0) {
            c->type = CMD_AMEND;
            if (by_cl)
                snprintf(c->u.amend.ref.clordid, sizeof(c->u.amend.ref.clordid), "%s", e->recent_cl[r]);
            else
                c->u.amend.ref.order_id = e->recent_id[r];
            if (range(g, 0, 1)) {
                c->u.amend.has = AMD_LEAVES;
                c->u.amend.leaves = ei->lot_qty * range(g, 1, 20);
            } else {
                c->u.amend.has = AMD_PRICE;
                c->u.amend.price = to_tick(mark + (px_t)((i128)mark * range(g, -40, 40) / 10000), ei->tick_px);
            }
            e->amends++;
        } else {
            c->type = CMD_CANCEL;
            if (by_cl)
                snprintf(c->u.cancel.clordid, sizeof(c->u.cancel.clordid), "%s", e->recent_cl[r]);
            else
                c->u.cancel.order_id = e->recent_id[r];
            e->cancels++;
        }
        return J_ORDERS;
    }
    if (roll < 920) {
        c->type = CMD_SET_LEVERAGE;
        c->u.leverage_e8 = range(g, 0, 3) == 0 ? 0 : range(g, 1, 10000) * (MF_RATE_SCALE / 100);
        return J_POSITION;
    }
    if (roll < 950) {
        c->type = range(g, 0, 1) ? CMD_DEPOSIT : CMD_WITHDRAW;
        c->u.money.currency = (uint8_t)range(g, 0, 1);
        c->u.money.amount = range(g, 1, c->u.money.currency ? 10000000000 : 20000000);
        return J_MONEY;
    }
    if (roll < 965) {
        c->type = CMD_CANCEL_ALL;
        c->u.cancel_all.inst = inst;
        return J_CANCEL_ALL;
    }
    if (roll < 975) {
        c->type = CMD_CANCEL_ALL_AFTER;
        c->u.cancel_after_ms = range(g, 0, 1) ? 0 : range(g, 1000, 120000);
        return J_CANCEL_AFTER;
    }
    if (roll < 985) {
        c->type = CMD_TRANSFER_MARGIN;
        c->u.transfer = range(g, 1, 1000000);
        return J_POSITION;
    }
    c->type = CMD_CLOCK;
    return J_ORDERS;
}

/* A timer acting every minute (as the market's agents do): an index move. */
struct minute_timer {
    ms_t next;
    px_t px;
    uint32_t fired;
};

static ms_t mt_next(void *ctx)
{
    return ((struct minute_timer *)ctx)->next;
}

static void mt_fire(void *ctx, ms_t t, const struct core_view *v, struct core_batch *out)
{
    (void)v;
    struct minute_timer *m = ctx;
    m->px += (m->fired % 3 == 0 ? -1 : 1) * 5 * PX_SCALE;
    struct cmd x;
    memset(&x, 0, sizeof(x));
    x.type = CMD_SET_INDEX;
    x.u.set_index.index = 0;
    x.u.set_index.price = m->px;
    core_batch_push(out, &x);
    m->next = t + 60000;
    m->fired++;
}

static void remember(struct ex *e, const struct cmd *c, const struct core_job *j)
{
    if (c->type == CMD_NEW_ORDER && j->rows[0].v.id) {
        uint32_t r = e->nrecent % RECENT;
        e->recent_id[r] = j->rows[0].v.id;
        e->recent_acct[r] = c->account;
        snprintf(e->recent_cl[r], sizeof(e->recent_cl[r]), "%s", c->u.new_order.clordid);
        e->nrecent++;
    }
}

static struct core_job *job_for(enum job_kind kind, const struct cmd *c, const char *text)
{
    struct core_job *j = core_job_new(kind, c->account, 1);
    ck_assert_ptr_nonnull(j);
    j->cmds[0] = *c;
    if (text[0])
        j->texts[0] = strdup(text);
    if (c->type == CMD_AMEND)
        j->target[0] = c->u.amend.ref.order_id;
    else if (c->type == CMD_CANCEL)
        j->target[0] = c->u.cancel.order_id;
    return j;
}

/* The workload on the calling thread (core_run: jobs without done() are
 * the caller's at once; the journal's writer catches up behind). */
static void run_workload(struct ex *e, uint32_t commands, uint32_t accounts)
{
    for (uint32_t a = 0; a < accounts; a++)
        new_account(e, a < 4);
    for (uint32_t k = 0; k < commands; k++) {
        e->clk.t += range(&e->rng, 1, 1500);
        struct cmd c;
        char text[64];
        enum job_kind kind = next_cmd(e, &c, text, sizeof(text), k);
        if (c.type == CMD_CLOCK) {
            core_tick(e->core);
            continue;
        }
        struct core_job *j = job_for(kind, &c, text);
        core_run(e->core, j);
        remember(e, &c, j);
        core_job_free(j);
        /* now and then the writer catches up (else one batch may take
         * everything, and a segment with it: rolls come after a write) */
        if (k % 64 == 63) {
            uint64_t seq = core_seq(e->core);
            core_wait_durable(e->core, seq);
            ck_assert_uint_ge(durable_now(e), seq);
        }
    }
    /* A stepped jump of hours with a timer acting every minute: one
     * J_ADVANCE job of hundreds of commands, which the core commits to the
     * journal in parts (ADVANCE_STOPS_PER_LOCK) while it goes on. */
    struct minute_timer mt = {e->clk.t + 60000, e->index[0], 0};
    struct core_timer t = {mt_next, mt_fire, &mt, NULL};
    core_set_timer(e->core, &t);
    struct core_job *j = core_job_new(J_ADVANCE, 0, 0);
    ck_assert_ptr_nonnull(j);
    uint64_t seq0 = core_seq(e->core);
    /* the stepped clock moves after the advance (its stops would jump to
     * the clock's time otherwise) */
    j->advance_to = e->clk.t + 6 * 3600000;
    core_run(e->core, j);
    ck_assert_int_eq(j->ts, j->advance_to);
    e->clk.t = j->ts;
    core_job_free(j);
    core_set_timer(e->core, NULL);
    e->index[0] = mt.px;
    ck_assert_uint_ge(mt.fired, 300);
    ck_assert_uint_ge(core_seq(e->core) - seq0, 300);
}

static void reply_done(struct core_job *j)
{
    struct ex *e = j->ctx;
    if (j->seq > durable_now(e))
        atomic_fetch_add(&e->replies_early, 1);
    atomic_fetch_add(&e->replies, 1);
}

/* The workload through the write queue and the engine thread (rule 5a
 * too), a window of jobs in flight: each reply must wait for the journal. */
static void submit_workload(struct ex *e, uint32_t commands)
{
    ck_assert_int_eq(core_start(e->core), 0);
    enum { WINDOW = 24 };
    struct core_job *w[WINDOW];
    uint64_t want = atomic_load(&e->replies);
    for (uint32_t k = 0; k < commands;) {
        uint32_t n = 0;
        for (; n < WINDOW && k < commands; k++) {
            e->clk.t += range(&e->rng, 1, 500);
            struct cmd c;
            char text[64];
            enum job_kind kind = next_cmd(e, &c, text, sizeof(text), 1000000 + k);
            if (c.type == CMD_CLOCK)
                continue;
            struct core_job *j = job_for(kind, &c, text);
            j->done = reply_done;
            j->ctx = e;
            enum ls_kind lk = c.type == CMD_NEW_ORDER ? LS_KIND_NEW_ORDER
                              : c.type == CMD_AMEND   ? LS_KIND_AMEND
                              : c.type == CMD_CANCEL  ? LS_KIND_CANCEL
                                                      : LS_KIND_OTHER;
            ck_assert_int_eq(core_submit(e->core, j, lk, true), LS_ACCEPTED);
            w[n++] = j;
            want++;
        }
        double t0 = mono_s();
        while (atomic_load(&e->replies) < want) {
            ck_assert_msg(mono_s() - t0 < 30, "replies stuck: %llu of %llu",
                          (unsigned long long)atomic_load(&e->replies), (unsigned long long)want);
            sched_yield();
        }
        for (uint32_t i = 0; i < n; i++) {
            ck_assert_uint_le(w[i]->seq, durable_now(e));
            remember(e, &w[i]->cmds[0], w[i]);
            core_job_free(w[i]);
        }
    }
}

/* ---- end to end ------------------------------------------------------------------ */

static void end_to_end(enum jr_fsync fs, uint64_t segment_bytes, uint32_t commands, uint64_t seed)
{
    char dir[DIRCAP];
    make_tmpdir(dir, sizeof(dir));
    static struct ex e;
    double t0 = mono_s();
    ex_open_new(&e, dir, fs, segment_bytes, seed);
    run_workload(&e, commands, 16);
    submit_workload(&e, commands / 4);
    struct core_state live;
    struct journal_stats js;
    uint64_t fills = e.fills, texts = e.texts, amends = e.amends, cancels = e.cancels;
    ex_close_stats(&e, &live, &js);
    double t1 = mono_s();
    /* The workload did what it is for. */
    ck_assert_uint_gt(fills, 50);
    ck_assert_uint_gt(texts, 50);
    ck_assert_uint_gt(amends, 20);
    ck_assert_uint_gt(cancels, 20);
    ck_assert_uint_gt(live.seq, commands);

    uint64_t segs[SEGS_MAX];
    uint32_t nseg = list_segs(dir, segs);
    ck_assert_uint_ge(nseg, 1);
    ck_assert_uint_eq(segs[0], 1);
    /* Key secrets are in it: the journal's folder and files are the
     * owner's alone. */
    {
        char p[PATHCAP];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/journal", dir);
        ck_assert_int_eq(stat(p, &sb), 0);
        ck_assert_msg((sb.st_mode & 0077) == 0, "%s has mode %o", p, (unsigned)(sb.st_mode & 0777));
        snprintf(p, sizeof(p), "%s/journal/%020" PRIu64 ".journal", dir, segs[0]);
        ck_assert_int_eq(stat(p, &sb), 0);
        ck_assert_msg((sb.st_mode & 0077) == 0, "%s has mode %o", p, (unsigned)(sb.st_mode & 0777));
    }
    if (segment_bytes && segment_bytes < 65536)
        ck_assert_uint_ge(nseg, 8);
    /* Segments follow each other: each is named by its first command, and
     * only the last may be a bare header (opened by a roll at the end). */
    uint64_t next = 1;
    for (uint32_t i = 0; i < nseg; i++) {
        char path[PATHCAP];
        seg_file(path, sizeof(path), dir, segs[i]);
        static struct frame fr[65536];
        uint32_t nf = seg_frames(path, fr, 65536);
        ck_assert_uint_eq(segs[i], next);
        for (uint32_t f = 0; f < nf; f++)
            ck_assert_uint_eq(fr[f].seq, next + f);
        next += nf;
        if (nf == 0)
            ck_assert_uint_eq(i, nseg - 1);
    }
    ck_assert_uint_eq(next - 1, live.seq);
    /* What the writer did, by policy: every command written once; batch
     * syncs every batch (and each new segment's header); off syncs only
     * segments (a header when made, the body when closed). */
    ck_assert_uint_eq(js.records, live.seq);
    ck_assert_uint_eq(js.durable_seq, live.seq);
    ck_assert_uint_ge(js.batches, 1);
    ck_assert_uint_le(js.batches, js.records);
    ck_assert_uint_ge(js.max_batch, 1);
    if (fs == JR_FSYNC_BATCH)
        ck_assert_uint_ge(js.syncs, js.batches + nseg);
    else if (fs == JR_FSYNC_OFF)
        ck_assert_uint_le(js.syncs, 2 * (uint64_t)nseg + 1);
    /* group commit: the core_run workload does not wait for the writer */
    ck_assert_uint_lt(js.batches, js.records);

    /* Every command read, in order, the report counting each. */
    struct counted cnt = {0};
    struct journal_report rep;
    char err[1024];
    ck_assert_msg(journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_uint_eq(cnt.n, live.seq);
    ck_assert_uint_eq(cnt.out_of_order, 0);
    ck_assert(!cnt.ts_back);
    ck_assert_uint_eq(cnt.by_type[CC_CONFIG], 1);
    ck_assert_uint_eq(cnt.by_type[CC_ACCOUNT], cnt.by_type[CC_KEY]);
    ck_assert_uint_ge(cnt.by_type[CC_ACCOUNT], 16);
    ck_assert_uint_eq(rep.commands, live.seq);
    ck_assert_uint_eq(rep.last_seq, live.seq);
    ck_assert_int_eq(rep.last_ts, live.time);
    ck_assert(!rep.cut);
    ck_assert_uint_eq(rep.set_aside, 0);
    ck_assert_uint_eq(rep.segments, nseg);
    uint64_t total = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        char path[PATHCAP];
        seg_file(path, sizeof(path), dir, segs[i]);
        total += file_size(path);
    }
    ck_assert_uint_eq(js.bytes, total - (uint64_t)nseg * SEG_HEADER);
    ck_assert_uint_eq(rep.bytes, total - (uint64_t)nseg * SEG_HEADER);
    /* up to a sequence number */
    struct counted part = {0};
    uint64_t mid = live.seq / 2;
    ck_assert_int_eq(journal_read(dir, mid, false, count_cmd, &part, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(part.n, mid);
    ck_assert_uint_eq(rep.commands, mid);
    ck_assert_uint_eq(rep.last_seq, mid);

    /* Replayed into a fresh core: the same state. */
    struct core_state back;
    ck_assert_msg(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)) == 0, "replay: %s", err);
    double t2 = mono_s();
    ck_assert_uint_eq(rep.commands, live.seq);
    ck_assert_uint_eq(back.seq, live.seq);
    ck_assert_int_eq(back.time, live.time);
    ck_assert_msg(back.hash == live.hash, "replayed hash %016llx, live %016llx", (unsigned long long)back.hash,
                  (unsigned long long)live.hash);

    /* A restart on the directory: replayed (not written again), a new
     * segment after the last command, more commands, then the whole
     * directory replays to the restarted exchange's state. */
    static struct ex r;
    struct journal_report rrep;
    ex_open_existing(&r, dir, fs, segment_bytes, seed + 1, false, &rrep);
    ck_assert_uint_eq(rrep.commands, live.seq);
    struct core_state mid_st;
    core_state(r.core, &mid_st);
    ck_assert(mid_st.hash == live.hash && mid_st.seq == live.seq);
    char path[PATHCAP];
    seg_file(path, sizeof(path), dir, live.seq + 1);
    ck_assert_msg(exists(path), "no new segment %s", path);
    run_workload(&r, commands / 4, 2);
    struct core_state live2;
    ex_close(&r, &live2);
    ck_assert_uint_gt(live2.seq, live.seq);
    ck_assert_msg(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)) == 0, "replay: %s", err);
    ck_assert_uint_eq(rep.commands, live2.seq);
    ck_assert_uint_eq(back.seq, live2.seq);
    ck_assert_msg(back.hash == live2.hash, "replayed hash %016llx, live %016llx", (unsigned long long)back.hash,
                  (unsigned long long)live2.hash);
    /* and up to the first run's end: that state */
    ck_assert_int_eq(replay_dir(dir, live.seq, false, &back, &rep, err, sizeof(err)), 0);
    ck_assert(back.hash == live.hash && back.seq == live.seq);
    printf("journal %s: %llu commands, %u segments, %llu bytes; written in %.2f s, replayed in %.2f s\n",
           journal_fsync_name(fs), (unsigned long long)live.seq, nseg, (unsigned long long)total, t1 - t0,
           t2 - t1);
    rm_rf(dir);
}

static uint32_t e2e_commands(void)
{
    const char *n = getenv("PERPSIM_JOURNAL_COMMANDS");
    return n ? (uint32_t)strtoul(n, NULL, 10) : 2000;
}

START_TEST(e2e_fsync_batch)
{
    end_to_end(JR_FSYNC_BATCH, 0, e2e_commands(), 1);
}
END_TEST

START_TEST(e2e_fsync_off)
{
    end_to_end(JR_FSYNC_OFF, 0, e2e_commands(), 2);
}
END_TEST

START_TEST(e2e_fsync_interval)
{
    end_to_end(JR_FSYNC_INTERVAL, 0, e2e_commands() / 2, 3);
}
END_TEST

START_TEST(e2e_small_segments_batch)
{
    end_to_end(JR_FSYNC_BATCH, 4096, e2e_commands(), 4);
}
END_TEST

START_TEST(e2e_small_segments_off)
{
    end_to_end(JR_FSYNC_OFF, 4096, e2e_commands(), 5);
}
END_TEST

START_TEST(parse_fsync)
{
    enum jr_fsync m;
    int ms = 0;
    ck_assert_int_eq(journal_parse_fsync("batch", &m, &ms), 0);
    ck_assert_int_eq(m, JR_FSYNC_BATCH);
    ck_assert_int_eq(journal_parse_fsync("off", &m, &ms), 0);
    ck_assert_int_eq(m, JR_FSYNC_OFF);
    ck_assert_int_eq(journal_parse_fsync("interval:250", &m, &ms), 0);
    ck_assert_int_eq(m, JR_FSYNC_INTERVAL);
    ck_assert_int_eq(ms, 250);
    ck_assert_int_eq(journal_parse_fsync("interval:60000", &m, &ms), 0);
    ck_assert_int_eq(journal_parse_fsync("interval:60001", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("interval:0", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("interval:", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("interval:1x", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("interval:99999999999999999999", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("Batch", &m, &ms), -1);
    ck_assert_int_eq(journal_parse_fsync("", &m, &ms), -1);
    /* no journal yet: a new exchange */
    char dir[DIRCAP];
    make_tmpdir(dir, sizeof(dir));
    struct core_cmd_buf *b = malloc(sizeof(*b));
    char err[256];
    ck_assert_int_eq(journal_first(dir, b, err, sizeof(err)), 0);
    struct journal_report rep;
    ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(rep.commands, 0);
    free(b);
    rm_rf(dir);
}
END_TEST

/* ---- corruption, each on a copy of one journal ---------------------------------------- */

static char base_dir[DIRCAP];
static struct core_state base_state;
static uint64_t base_segs[SEGS_MAX];
static uint32_t base_nseg;

static void base_setup(void)
{
    make_tmpdir(base_dir, sizeof(base_dir));
    static struct ex e;
    ex_open_new(&e, base_dir, JR_FSYNC_OFF, 4096, 42);
    run_workload(&e, e2e_commands() / 2, 12);
    ex_close(&e, &base_state);
    base_nseg = list_segs(base_dir, base_segs);
    /* A bare header last (a roll at the close) is what a crash before the
     * roll would not have left: gone, the journal ends with frames. */
    char path[PATHCAP];
    seg_file(path, sizeof(path), base_dir, base_segs[base_nseg - 1]);
    if (file_size(path) == SEG_HEADER) {
        unlink(path);
        base_nseg--;
    }
    ck_assert_uint_ge(base_nseg, 6);
}

static void base_teardown(void)
{
    rm_rf(base_dir);
}

/* A segment's path in dir, by its index in the base journal. */
static void seg_at(char *out, size_t cap, const char *dir, uint32_t i)
{
    seg_file(out, cap, dir, base_segs[i]);
}

/* What a restart on a damaged journal makes of it: recovered with
 * last_good as given, a new segment started, one more command written, and
 * the directory then reads back whole (no cut) with the commands kept. */
static void restart_and_check(const char *dir, bool last_good, uint64_t expect_commands)
{
    static struct ex r;
    struct journal_report rep;
    ex_open_existing(&r, dir, JR_FSYNC_OFF, 4096, 99, last_good, &rep);
    ck_assert_uint_eq(rep.commands, expect_commands);
    struct core_state st;
    core_tick(r.core);
    ex_close(&r, &st);
    ck_assert_uint_eq(st.seq, expect_commands + 1);
    struct counted cnt = {0};
    char err[1024];
    ck_assert_msg(journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err)) == 0,
                  "after the restart: %s", err);
    ck_assert(!rep.cut);
    ck_assert_uint_eq(rep.commands, expect_commands + 1);
    ck_assert_uint_eq(cnt.out_of_order, 0);
    struct core_state back;
    ck_assert_int_eq(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)), 0);
    ck_assert(back.hash == st.hash && back.seq == st.seq);
}

/* (a) The last frame of the last segment cut short: a write the crash cut
 * short. Read: 0, cut at the frame's start. Opened for writing: the file
 * cut there, its tail kept in <segment>.cut-<offset>. */
START_TEST(torn_tail_is_cut_and_kept)
{
    char dir[DIRCAP], last[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    seg_at(last, sizeof(last), dir, base_nseg - 1);
    static struct frame fr[65536];
    uint32_t nf = seg_frames(last, fr, 65536);
    ck_assert_uint_ge(nf, 1);
    struct frame f = fr[nf - 1];
    ck_assert_uint_eq(f.seq, base_state.seq);
    size_t full_n;
    unsigned char *full = read_all(last, &full_n);
    ck_assert_uint_eq(full_n, f.off + FRAME_HEADER + f.len);
    /* Cut at several places inside the last frame, longest first. */
    const uint64_t at[] = {f.off + FRAME_HEADER + f.len - 1, f.off + FRAME_HEADER + f.len / 2,
                           f.off + FRAME_HEADER + 3, f.off + FRAME_HEADER, f.off + 5, f.off + 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        cut_file(last, at[i]);
        struct journal_report rep;
        struct counted cnt = {0};
        int rc = journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err));
        ck_assert_msg(rc == 0, "cut at %llu: %s", (unsigned long long)at[i], err);
        ck_assert_msg(rep.cut, "cut at %llu: not reported", (unsigned long long)at[i]);
        ck_assert_str_eq(rep.cut_file, last);
        ck_assert_uint_eq(rep.cut_offset, f.off);
        ck_assert(rep.cut_reason[0]);
        ck_assert_uint_eq(rep.commands, f.seq - 1);
        ck_assert_uint_eq(rep.last_seq, f.seq - 1);
        ck_assert_uint_eq(cnt.n, f.seq - 1);
        ck_assert_str_eq(rep.end_file, last);
        ck_assert_uint_eq(rep.end_offset, f.off);
        ck_assert_uint_eq(rep.set_aside, 0);
    }
    /* Cut exactly at the frame's start: nothing torn. */
    cut_file(last, f.off);
    struct journal_report rep;
    ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert(!rep.cut);
    ck_assert_uint_eq(rep.commands, f.seq - 1);
    /* Torn in the middle of its payload, then recovered by a restart. */
    uint64_t torn = f.off + FRAME_HEADER + f.len / 2;
    write_all_file(last, full, torn);
    struct core_state back;
    ck_assert_int_eq(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)), 0);
    ck_assert(rep.cut);
    ck_assert_uint_eq(back.seq, f.seq - 1);
    restart_and_check(dir, false, f.seq - 1);
    /* The segment cut at the frame's start, the torn bytes kept beside it. */
    if (f.seq != base_segs[base_nseg - 1]) /* else the now empty segment was made anew */
        ck_assert_uint_eq(file_size(last), f.off);
    char keep[PATHCAP + 32];
    snprintf(keep, sizeof(keep), "%s.cut-%llu", last, (unsigned long long)f.off);
    size_t kn;
    unsigned char *kept = read_all(keep, &kn);
    ck_assert_msg(kept != NULL, "the cut tail is not kept in %s", keep);
    ck_assert_uint_eq(kn, torn - f.off);
    ck_assert(memcmp(kept, full + f.off, kn) == 0);
    free(kept);
    free(full);
    rm_rf(dir);
}
END_TEST

/* (b) A flipped byte in a frame of an early segment, good frames after it:
 * a corruption, refused naming the file and offset; with last_good, read
 * up to the command before it and the rest set aside. */
START_TEST(flipped_frame_byte_is_refused)
{
    char dir[DIRCAP], path[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    uint32_t si = 1;
    seg_at(path, sizeof(path), dir, si);
    static struct frame fr[65536];
    uint32_t nf = seg_frames(path, fr, 65536);
    ck_assert_uint_ge(nf, 3);
    struct frame f = fr[nf / 2];
    /* The length, the checksum, the sequence number, the payload. */
    const uint64_t where[] = {f.off + 1, f.off + 6, f.off + FRAME_HEADER + 2, f.off + FRAME_HEADER + f.len / 2,
                              f.off + FRAME_HEADER + f.len - 1};
    char offs[64];
    snprintf(offs, sizeof(offs), "offset %llu", (unsigned long long)f.off);
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        flip_byte(path, where[i]);
        struct journal_report rep;
        struct counted cnt = {0};
        err[0] = '\0';
        int rc = journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err));
        ck_assert_msg(rc == -1, "byte %llu flipped: read returned %d", (unsigned long long)where[i], rc);
        ck_assert_msg(strstr(err, path) && strstr(err, offs), "the error names no file and offset: %s", err);
        ck_assert_uint_eq(cnt.n, f.seq - 1); /* what came before was read */
        /* The replay refuses too, and journal_first still finds the config. */
        struct core_state back;
        ck_assert_int_eq(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)), -1);
        /* With last_good: up to the command before, the rest set aside. */
        memset(&cnt, 0, sizeof(cnt));
        rc = journal_read(dir, 0, true, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err));
        ck_assert_msg(rc == 0, "last_good: %s", err);
        ck_assert(rep.cut);
        ck_assert_str_eq(rep.cut_file, path);
        ck_assert_uint_eq(rep.cut_offset, f.off);
        ck_assert_uint_eq(rep.commands, f.seq - 1);
        ck_assert_uint_eq(cnt.n, f.seq - 1);
        ck_assert_uint_eq(rep.set_aside, base_nseg - si - 1);
        flip_byte(path, where[i]);
    }
    /* Restored: whole again. */
    struct journal_report rep;
    ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(rep.commands, base_state.seq);
    /* A flipped byte in the middle of the last segment, good frames after
     * it: no torn write either. */
    char lastp[PATHCAP];
    seg_at(lastp, sizeof(lastp), dir, base_nseg - 1);
    uint32_t nl = seg_frames(lastp, fr, 65536);
    if (nl >= 2) {
        flip_byte(lastp, fr[0].off + FRAME_HEADER + fr[0].len / 2);
        ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), -1);
        ck_assert_ptr_nonnull(strstr(err, lastp));
        flip_byte(lastp, fr[0].off + FRAME_HEADER + fr[0].len / 2);
    }
    /* Replayed with last_good: the state the journal had at that command. */
    flip_byte(path, f.off + FRAME_HEADER + f.len / 2);
    struct core_state good, upto;
    ck_assert_int_eq(replay_dir(dir, 0, true, &good, &rep, err, sizeof(err)), 0);
    ck_assert_int_eq(replay_dir(base_dir, f.seq - 1, false, &upto, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(good.seq, f.seq - 1);
    ck_assert(good.hash == upto.hash);
    /* Started from the last good command: the damaged segment cut at the
     * bad frame (its tail kept), every later segment renamed, none deleted. */
    restart_and_check(dir, true, f.seq - 1);
    ck_assert_uint_eq(file_size(path), f.off);
    char keep[PATHCAP + 32];
    snprintf(keep, sizeof(keep), "%s.cut-%llu", path, (unsigned long long)f.off);
    ck_assert(exists(keep));
    ck_assert_uint_eq(count_files(dir, ".set-aside"), base_nseg - si - 1);
    for (uint32_t i = si + 1; i < base_nseg; i++) {
        char p[PATHCAP], a[PATHCAP + 16];
        seg_at(p, sizeof(p), dir, i);
        snprintf(a, sizeof(a), "%s.set-aside", p);
        ck_assert_msg(exists(a), "%s not set aside", p);
        ck_assert_msg(!exists(p), "%s still there", p);
    }
    rm_rf(dir);
}
END_TEST

/* (c) A segment missing in the middle: refused naming where; with
 * last_good, read up to the command before it. */
START_TEST(missing_segment_is_refused)
{
    char dir[DIRCAP], gone[PATHCAP], after[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    uint32_t si = base_nseg / 2;
    seg_at(gone, sizeof(gone), dir, si);
    seg_at(after, sizeof(after), dir, si + 1);
    ck_assert_int_eq(unlink(gone), 0);
    struct journal_report rep;
    struct counted cnt = {0};
    int rc = journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err));
    ck_assert_int_eq(rc, -1);
    /* The file after the gap and the command the gap starts after. */
    char before[64];
    snprintf(before, sizeof(before), "ended at %llu", (unsigned long long)(base_segs[si] - 1));
    ck_assert_msg(strstr(err, after) && strstr(err, "missing") && strstr(err, before),
                  "the error does not say which segment is missing: %s", err);
    ck_assert_uint_eq(cnt.n, base_segs[si] - 1);
    struct core_state back;
    ck_assert_int_eq(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)), -1);
    /* With last_good: the commands before it. */
    memset(&cnt, 0, sizeof(cnt));
    ck_assert_int_eq(journal_read(dir, 0, true, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert(rep.cut);
    ck_assert_uint_eq(rep.commands, base_segs[si] - 1);
    ck_assert_uint_eq(cnt.n, base_segs[si] - 1);
    ck_assert_str_eq(rep.cut_file, after);
    ck_assert_uint_eq(rep.cut_offset, 0);
    ck_assert_uint_eq(rep.set_aside, base_nseg - 1 - si);
    ck_assert_int_eq(replay_dir(dir, 0, true, &back, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(back.seq, base_segs[si] - 1);
    /* The first segment missing: there is no config to start from. */
    char dir2[DIRCAP], first[PATHCAP];
    copy_journal(base_dir, dir2, sizeof(dir2));
    seg_at(first, sizeof(first), dir2, 0);
    ck_assert_int_eq(unlink(first), 0);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    ck_assert_int_eq(journal_first(dir2, b, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing"));
    free(b);
    ck_assert_int_eq(journal_read(dir2, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing"));
    rm_rf(dir2);
    rm_rf(dir);
}
END_TEST

/* (d) A segment's header damaged: refused naming the file and offset 0
 * (journal.h: "a bad header" stops the read), for an early segment and for
 * the last one (its frames are good frames after it). */
START_TEST(bad_segment_header_is_refused)
{
    char dir[DIRCAP], path[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    struct journal_report rep;
    const uint32_t which[] = {1, base_nseg - 1};
    /* magic, version, header length, first command, checksum */
    const uint64_t bytes[] = {2, 8, 12, 16, 23, 24, 31};
    for (size_t w = 0; w < 2; w++) {
        uint32_t si = which[w];
        seg_at(path, sizeof(path), dir, si);
        char offs[PATHCAP + 32];
        snprintf(offs, sizeof(offs), "%s offset 0", path);
        for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
            flip_byte(path, bytes[i]);
            struct counted cnt = {0};
            int rc = journal_read(dir, 0, false, count_cmd, &cnt, NULL, NULL, &rep, err, sizeof(err));
            ck_assert_msg(rc == -1, "segment %u header byte %llu flipped: read returned %d (cut %d)", si,
                          (unsigned long long)bytes[i], rc, rep.cut);
            ck_assert_msg(strstr(err, offs) != NULL, "the error does not name %s: %s", offs, err);
            ck_assert_uint_eq(cnt.n, base_segs[si] - 1);
            /* last_good: the commands before the segment */
            ck_assert_int_eq(journal_read(dir, 0, true, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
            ck_assert(rep.cut);
            ck_assert_str_eq(rep.cut_file, path);
            ck_assert_uint_eq(rep.cut_offset, 0);
            ck_assert_uint_eq(rep.commands, base_segs[si] - 1);
            ck_assert_uint_eq(rep.set_aside, base_nseg - si - 1);
            flip_byte(path, bytes[i]);
        }
    }
    /* The first segment's header: journal_first refuses it too. */
    seg_at(path, sizeof(path), dir, 0);
    flip_byte(path, 3);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    ck_assert_int_eq(journal_first(dir, b, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
    flip_byte(path, 3);
    ck_assert_int_eq(journal_first(dir, b, err, sizeof(err)), 1);
    free(b);
    /* Started from the last good command past an early bad header. */
    seg_at(path, sizeof(path), dir, 2);
    flip_byte(path, 5);
    restart_and_check(dir, true, base_segs[2] - 1);
    /* The bad segment itself (nothing good in it) and every later one. */
    ck_assert_uint_eq(count_files(dir, ".set-aside"), base_nseg - 2);
    rm_rf(dir);
}
END_TEST

/* A header cut short in the last segment, nothing after it (a crash while
 * a segment was being made): journal.c makes that segment anew. */
START_TEST(header_cut_short_at_the_end)
{
    char dir[DIRCAP], path[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    /* A bare header at the end: what a restart opens. */
    static struct ex r;
    struct journal_report rep;
    ex_open_existing(&r, dir, JR_FSYNC_OFF, 4096, 7, false, &rep);
    struct core_state st;
    ex_close(&r, &st);
    ck_assert_uint_eq(st.seq, base_state.seq);
    seg_file(path, sizeof(path), dir, base_state.seq + 1);
    ck_assert_uint_eq(file_size(path), SEG_HEADER);
    ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert(!rep.cut);
    ck_assert_uint_eq(rep.commands, base_state.seq);
    /* The header cut short. */
    cut_file(path, 10);
    ck_assert_int_eq(journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err)), 0);
    ck_assert(rep.cut);
    ck_assert_str_eq(rep.cut_file, path);
    ck_assert_uint_eq(rep.cut_offset, 0);
    ck_assert_uint_eq(rep.commands, base_state.seq);
    restart_and_check(dir, false, base_state.seq);
    rm_rf(dir);
}
END_TEST

/* ---- regressions: each failed before its fix (each comment tells the bug as it was) --- */

/* Started from the last good command past a missing segment, then
 * restarted: journal_start cuts the segment after the gap to 0 bytes
 * (cut_offset 0) but leaves it under its name, so the next read finds a
 * gap again ("a segment is missing") and a roll onto that name would fail
 * O_EXCL and abort. */
START_TEST(known_last_good_past_missing_segment)
{
    char dir[DIRCAP], gone[PATHCAP];
    copy_journal(base_dir, dir, sizeof(dir));
    uint32_t si = base_nseg / 2;
    seg_at(gone, sizeof(gone), dir, si);
    ck_assert_int_eq(unlink(gone), 0);
    restart_and_check(dir, true, base_segs[si] - 1);
    rm_rf(dir);
}
END_TEST

/* An order text longer than TEXT_LEN_MAX given to the core (api/ keeps
 * texts to 255; the core itself takes any): the store keeps 255 bytes,
 * core_cmd_encode writes them all, core_cmd_decode refuses more than 255,
 * and the replay takes the acknowledged command for a write cut short. */
START_TEST(known_long_text)
{
    char dir[DIRCAP], err[1024];
    make_tmpdir(dir, sizeof(dir));
    static struct ex e;
    ex_open_new(&e, dir, JR_FSYNC_OFF, 0, 3);
    new_account(&e, true);
    struct cmd o = {.type = CMD_NEW_ORDER, .account = 1, .inst = 0};
    o.u.new_order.has = HAS_QTY | HAS_PRICE;
    o.u.new_order.side = SIDE_BUY;
    o.u.new_order.qty = 100;
    o.u.new_order.price = 40000 * PX_SCALE;
    char text[301];
    memset(text, 'y', 300);
    text[300] = '\0';
    struct core_job *j = job_for(J_ORDERS, &o, text);
    core_run(e.core, j);
    core_job_free(j);
    struct core_state live, back;
    ex_close(&e, &live);
    struct journal_report rep;
    int rc = replay_dir(dir, 0, false, &back, &rep, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_msg(!rep.cut, "the order was cut: %s", rep.cut_reason);
    ck_assert(back.seq == live.seq && back.hash == live.hash);
    rm_rf(dir);
}
END_TEST

/* journal.h: journal_first returns -1 "when it cannot be read"; with
 * command 1 damaged and thousands of good commands after it, it returns 0
 * (a new exchange) instead. */
START_TEST(known_first_damaged)
{
    char dir[DIRCAP], path[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    seg_at(path, sizeof(path), dir, 0);
    static struct frame fr[65536];
    seg_frames(path, fr, 65536);
    flip_byte(path, fr[0].off + FRAME_HEADER + fr[0].len / 2);
    struct core_cmd_buf *b = malloc(sizeof(*b));
    ck_assert_ptr_nonnull(b);
    int rc = journal_first(dir, b, err, sizeof(err));
    free(b);
    ck_assert_int_eq(rc, -1);
    rm_rf(dir);
}
END_TEST

/* journal.h: "a bad header" stops a read; a bare last segment header with
 * a byte flipped (not cut short) is cut as a write cut short instead. */
START_TEST(known_bare_last_header_flipped)
{
    char dir[DIRCAP], path[PATHCAP], err[1024];
    copy_journal(base_dir, dir, sizeof(dir));
    static struct ex r;
    struct journal_report rep;
    struct core_state st;
    ex_open_existing(&r, dir, JR_FSYNC_OFF, 4096, 7, false, &rep);
    ex_close(&r, &st);
    seg_file(path, sizeof(path), dir, base_state.seq + 1);
    ck_assert_uint_eq(file_size(path), SEG_HEADER);
    flip_byte(path, 3);
    int rc = journal_read(dir, 0, false, NULL, NULL, NULL, NULL, &rep, err, sizeof(err));
    ck_assert_msg(rc == -1, "read returned %d, cut %d: %s", rc, rep.cut, rep.cut_reason);
    rm_rf(dir);
}
END_TEST

/* ---- checkpoints and restores (core.h) ---------------------------------------------- */

/* A rebuilder, as the WebSocket feed is one: what it was told. */
struct rb_log {
    uint64_t begins, ends_ok, ends_bad, records, last_seq, restore_seq;
    bool out_of_order;
};

static void rbl_begin(void *ctx, uint64_t restore_seq)
{
    struct rb_log *l = ctx;
    l->begins++;
    l->last_seq = 0;
    l->restore_seq = restore_seq;
}

static void rbl_record(void *ctx, const struct core_record *r)
{
    struct rb_log *l = ctx;
    if (r->seq <= l->last_seq && r->cmd->type != CC_RESTORE)
        l->out_of_order = true;
    l->last_seq = r->seq;
    l->records++;
}

static void rbl_end(void *ctx, bool ok)
{
    struct rb_log *l = ctx;
    if (ok)
        l->ends_ok++;
    else
        l->ends_bad++;
}

/* A checkpoint or restore job run now: its status, the checkpoint in *out. */
static int32_t cp_job(struct core *c, enum job_kind kind, const char *name, struct core_checkpoint *out)
{
    struct core_job *j = core_job_new(kind, 0, 0);
    ck_assert_ptr_nonnull(j);
    j->cp = calloc(1, sizeof(*j->cp));
    ck_assert_ptr_nonnull(j->cp);
    snprintf(j->cp->name, sizeof(j->cp->name), "%s", name);
    core_run(c, j);
    int32_t st = j->status;
    /* As the API answers a checkpoint: once the journal has it (a restore
     * of one not yet on disk is refused, REJ_CORE_NOT_DURABLE). */
    if (kind == J_CHECKPOINT && st == REJ_NONE)
        core_wait_durable(c, j->cp->seq);
    if (out)
        *out = *j->cp;
    core_job_free(j);
    return st;
}

static struct core_state state_of(struct core *c)
{
    struct core_state st;
    core_state(c, &st);
    return st;
}

/* After a restore the workload's memory of accounts is the state's. */
static void ex_resync(struct ex *e)
{
    e->accounts = 0;
    while (core_account_exists(e->core, e->accounts + 1))
        e->accounts++;
    e->nrecent = 0;
}

/* Checkpoints taken, restored in turn (through each other's paths), the
 * state hash each had; recovery and a replay of the journal give the
 * state the run ended in; what cannot be restored changes nothing. */
START_TEST(checkpoints_restore_and_replay)
{
    char dir[DIRCAP];
    make_tmpdir(dir, sizeof(dir));
    static struct ex e;
    ex_open_new(&e, dir, JR_FSYNC_BATCH, 8192, 7);
    run_workload(&e, 300, 8);
    struct core_checkpoint a, b, got;
    ck_assert_int_eq(cp_job(e.core, J_CHECKPOINT, "a", &a), REJ_NONE);
    struct core_state s = state_of(e.core);
    ck_assert(a.hash == s.hash);
    ck_assert_uint_eq(a.seq, s.seq);
    ck_assert_int_eq(a.time, s.time);
    ck_assert_int_eq(cp_job(e.core, J_CHECKPOINT, "a", NULL), REJ_CORE_CHECKPOINT_TAKEN);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "nope", NULL), REJ_CORE_NO_CHECKPOINT);
    ck_assert_uint_eq(state_of(e.core).seq, a.seq); /* refusals are no commands */
    uint32_t accounts_a = e.accounts;
    /* On: more accounts (their keys), orders, fills, hours of time. */
    run_workload(&e, 300, 3);
    ck_assert_uint_gt(e.accounts, accounts_a);
    struct key_rec later;
    ck_assert(core_keys_list(e.core, e.accounts, &later, 1) == 1);
    struct core_state s1 = state_of(e.core);
    ck_assert(s1.hash != a.hash);
    ck_assert_int_eq(cp_job(e.core, J_CHECKPOINT, "b", &b), REJ_NONE);
    ck_assert(b.hash == s1.hash);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "a", &got), REJ_NONE);
    s = state_of(e.core);
    ck_assert_uint_eq(got.restore_seq, b.seq + 1);
    ck_assert_uint_eq(s.seq, b.seq + 1); /* the sequence goes on */
    ck_assert(s.hash == a.hash);         /* the state is a's */
    ck_assert_int_eq(s.time, a.time);
    struct key_rec k;
    ck_assert(!core_key_get(e.core, later.id, &k)); /* made after a: gone */
    ck_assert(!core_account_exists(e.core, accounts_a + 1));
    ck_assert(core_key_known(e.core, later.id)); /* but never to be issued again */
    /* A command for an account the restore undid (signed with its key just
     * before) changes nothing. */
    e.clk.t = a.time; /* the test's clock has no rewind of its own */
    struct core_job *dep = core_job_new(J_MONEY, accounts_a + 1, 1);
    ck_assert_ptr_nonnull(dep);
    dep->cmds[0].type = CMD_DEPOSIT;
    dep->cmds[0].u.money.amount = 12345;
    core_run(e.core, dep);
    ck_assert_int_eq(dep->rej[0], REJ_UNKNOWN_ACCOUNT);
    core_job_free(dep);
    ck_assert(state_of(e.core).hash == a.hash);
    struct core_summary sum;
    core_summarize(e.core, &sum);
    ck_assert_msg(sum.audit_ok, "%s", sum.audit_report);
    /* On from a: a different future, then back to b (its path runs
     * through the commands a's restore undid), then to a again. */
    e.clk.t = a.time;
    ex_resync(&e);
    run_workload(&e, 200, 2);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "b", &got), REJ_NONE);
    ck_assert(state_of(e.core).hash == b.hash);
    ck_assert(core_key_get(e.core, later.id, &k)); /* b's keys are back */
    e.clk.t = b.time;
    ex_resync(&e);
    run_workload(&e, 100, 1);
    ck_assert_int_eq(cp_job(e.core, J_CHECKPOINT, "c", NULL), REJ_NONE);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "a", NULL), REJ_NONE);
    ck_assert(state_of(e.core).hash == a.hash);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "c", NULL), REJ_NONE);
    e.clk.t = state_of(e.core).time;
    ex_resync(&e);
    run_workload(&e, 100, 1);
    struct core_checkpoint list[8];
    ck_assert_int_eq(core_checkpoints(e.core, list, 8), 3);
    ck_assert_str_eq(list[0].name, "a");
    ck_assert_str_eq(list[2].name, "c");
    struct core_state end;
    ex_close(&e, &end);
    /* A replay of the journal meets each restore and rebuilds it (checking
     * each checkpoint's hash): the state the run ended in. */
    char err[1024];
    struct journal_report rep;
    struct core_state back;
    ck_assert_msg(replay_dir(dir, 0, false, &back, &rep, err, sizeof(err)) == 0, "%s", err);
    ck_assert(back.hash == end.hash && back.seq == end.seq);
    /* Recovery too, with the checkpoints listed and restorable again; a
     * rebuilder (the feed's kind) is told each rebuild. */
    ex_open_existing(&e, dir, JR_FSYNC_BATCH, 8192, 7, false, &rep);
    ck_assert(state_of(e.core).hash == end.hash);
    ck_assert_int_eq(core_checkpoints(e.core, list, 8), 3);
    ck_assert(list[1].hash == b.hash && list[1].seq == b.seq);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "b", NULL), REJ_NONE);
    ck_assert(state_of(e.core).hash == b.hash);
    ex_close(&e, &end);
    /* What cannot rebuild changes nothing: the journal's first segment
     * gone (a restore reads from command 1), the restore refused, the
     * state as it was. */
    ex_open_existing(&e, dir, JR_FSYNC_BATCH, 8192, 7, false, &rep);
    s = state_of(e.core);
    uint64_t segs[4096];
    ck_assert_uint_ge(list_segs(dir, segs), 2);
    char p0[PATHCAP], moved[PATHCAP + 8];
    seg_file(p0, sizeof(p0), dir, segs[0]);
    snprintf(moved, sizeof(moved), "%s.away", p0);
    ck_assert_int_eq(rename(p0, moved), 0);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "a", NULL), REJ_CORE_RESTORE_FAILED);
    struct core_state s2 = state_of(e.core);
    ck_assert(s2.hash == s.hash && s2.seq == s.seq);
    ck_assert_int_eq(rename(moved, p0), 0);
    ex_close(&e, &end);
    rm_rf(dir);
}
END_TEST

/* A rebuilder sees each rebuild's records in order and is told it ended;
 * without a journal, checkpoints are refused; a backtest's core refuses
 * restores. */
START_TEST(checkpoint_refusals_and_rebuilders)
{
    struct tclock clk = {T0};
    struct core_config cfg;
    core_config_default(&cfg, T0);
    cfg.clock = (struct core_clock){tclock_now, &clk, NULL};
    char err[256];
    struct core *c = core_create(&cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cp_job(c, J_CHECKPOINT, "x", NULL), REJ_CORE_NO_JOURNAL);
    ck_assert_int_eq(cp_job(c, J_RESTORE, "x", NULL), REJ_CORE_NO_CHECKPOINT);
    core_destroy(c);

    char dir[DIRCAP];
    make_tmpdir(dir, sizeof(dir));
    static struct ex e;
    memset(&e, 0, sizeof(e));
    struct rb_log log = {0};
    /* ex_open_new with a rebuilder added before the sequence opens */
    snprintf(e.dir, sizeof(e.dir), "%s", dir);
    e.rng.s = 11;
    e.clk.t = T0;
    e.index[0] = 50000 * PX_SCALE;
    e.index[1] = 3000 * PX_SCALE;
    struct journal_config jc;
    memset(&jc, 0, sizeof(jc));
    snprintf(jc.dir, sizeof(jc.dir), "%s", dir);
    jc.fsync = JR_FSYNC_OFF;
    e.j = journal_create(&jc, err, sizeof(err));
    ck_assert_ptr_nonnull(e.j);
    ex_config(&cfg, &e);
    e.core = core_create(&cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(e.core);
    core_set_ticking(e.core, false);
    struct core_rebuilder rb = {rbl_begin, rbl_record, rbl_end, &log};
    ck_assert_int_eq(core_add_rebuilder(e.core, &rb), 0);
    ck_assert_int_eq(core_subscribe(e.core, after_lock, &e, false), 0);
    ck_assert_int_eq(journal_attach(e.j, e.core), 0);
    ck_assert_int_eq(journal_start(e.j, NULL, err, sizeof(err)), 0);
    run_workload(&e, 100, 4);
    ck_assert_int_eq(core_add_rebuilder(e.core, &rb), -1); /* too late: the sequence is open */
    struct core_checkpoint a, got;
    ck_assert_int_eq(cp_job(e.core, J_CHECKPOINT, "a", &a), REJ_NONE);
    run_workload(&e, 100, 1);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "a", &got), REJ_NONE);
    ck_assert_uint_eq(log.begins, 1);
    ck_assert_uint_eq(log.ends_ok, 1);
    ck_assert_uint_eq(log.ends_bad, 0);
    ck_assert(!log.out_of_order);
    ck_assert_uint_eq(log.records, a.seq); /* commands 1 to a, each once */
    ck_assert_uint_eq(log.last_seq, a.seq);
    ck_assert_uint_eq(log.restore_seq, got.restore_seq);
    /* A backtest's exchange: restores refused, nothing changed. */
    core_forbid_restore(e.core);
    struct core_state s = state_of(e.core);
    ck_assert_int_eq(cp_job(e.core, J_RESTORE, "a", NULL), REJ_CORE_NO_RESTORE);
    ck_assert(state_of(e.core).hash == s.hash && state_of(e.core).seq == s.seq);
    ck_assert_uint_eq(log.begins, 1);
    struct core_state end;
    ex_close(&e, &end);
    rm_rf(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("journal");
    TCase *codec = tcase_create("codec");
    tcase_set_timeout(codec, 300);
    tcase_add_test(codec, codec_round_trip);
    tcase_add_test(codec, codec_never_reads_outside);
    suite_add_tcase(s, codec);
    TCase *e2e = tcase_create("end_to_end");
    tcase_set_timeout(e2e, 300);
    tcase_add_test(e2e, parse_fsync);
    tcase_add_test(e2e, e2e_fsync_batch);
    tcase_add_test(e2e, e2e_fsync_off);
    tcase_add_test(e2e, e2e_fsync_interval);
    tcase_add_test(e2e, e2e_small_segments_batch);
    tcase_add_test(e2e, e2e_small_segments_off);
    suite_add_tcase(s, e2e);
    TCase *bad = tcase_create("corruption");
    tcase_set_timeout(bad, 300);
    tcase_add_unchecked_fixture(bad, base_setup, base_teardown);
    tcase_add_test(bad, torn_tail_is_cut_and_kept);
    tcase_add_test(bad, flipped_frame_byte_is_refused);
    tcase_add_test(bad, missing_segment_is_refused);
    tcase_add_test(bad, bad_segment_header_is_refused);
    tcase_add_test(bad, header_cut_short_at_the_end);
    suite_add_tcase(s, bad);
    TCase *known = tcase_create("regressions");
    tcase_set_timeout(known, 300);
    tcase_add_unchecked_fixture(known, base_setup, base_teardown);
    tcase_add_test(known, known_last_good_past_missing_segment);
    tcase_add_test(known, known_long_text);
    tcase_add_test(known, known_first_damaged);
    tcase_add_test(known, known_bare_last_header_flipped);
    suite_add_tcase(s, known);
    TCase *cps = tcase_create("checkpoints");
    tcase_set_timeout(cps, 300);
    tcase_add_test(cps, checkpoints_restore_and_replay);
    tcase_add_test(cps, checkpoint_refusals_and_rebuilders);
    suite_add_tcase(s, cps);
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
