/*
 * core.h - the sequencer: the one place where a command gets its sequence
 * number and engine time, is applied, and leaves a record of what changed.
 *
 * The core owns the exchange state (the margin core and its engine, the
 * read model, the API keys, the accounts made), the state lock, the
 * sequence number, the clock (an input, clock.h), the bounded write queue
 * it takes jobs from, and the list of consumers of the change stream.
 * It includes no HTTP, JSON or TLS header: api/ submits jobs and reads
 * views; a WebSocket message, an admin call, a market agent or a replay
 * submits the same way.
 *
 * Jobs. A job is one or more commands from one client. core_submit() hands
 * it to the write queue (loadshed/), which admits or refuses it (503);
 * the engine thread applies admitted jobs one at a time in arrival order,
 * holding the state lock for writing for one job. On an idle engine a
 * single write runs on the submitting thread instead, in its place in the
 * one sequence (loadshed rule 5a): no wake-up of the engine thread and none
 * back. Either way, when the job's results are written the applying thread
 * calls j->done(j) exactly once, outside the state lock; the job belongs to
 * its submitter again from that call on.
 *
 * The change stream. Each applied command yields one record (record.h):
 * its sequence number, time, the command, its result and its ordered
 * events, carrying the figures a consumer needs. Consumers receive whole
 * records in sequence order. An in-lock consumer (the read model) applies
 * each record before the state lock is released, so readers see it with
 * the state it describes. An after-lock consumer (WebSocket, journal,
 * metrics) gets a copy after the lock is released: deliveries never hold
 * the state lock, keep sequence order even when two threads apply commands
 * one after the other, and must not block (queue the work and return): the
 * engine never waits for a socket or a slow reader. The applying thread
 * delivers before it calls the job's done(), unless another thread is
 * delivering at that moment, which then delivers its record too, perhaps
 * after done(): a consumer whose work must come before the reply (a
 * journal's write) needs a barrier of its own (the sequence number it has
 * finished).
 *
 * Time. Each command's time is the clock source's, never going back. When
 * no write arrives for tick_ms the engine thread applies a clock command so
 * timers (dead man's switch, funding, marks, settlement) run (unless
 * ticking is off: a stepped clock). A J_ADVANCE job moves time to a target
 * through every time something is due, so a stepped clock's jump of hours
 * runs each funding, expiry and minute sample at its own time.
 */
#ifndef PERPSIM_CORE_CORE_H
#define PERPSIM_CORE_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/keys.h"
#include "core/record.h"
#include "core/store.h"
#include "loadshed/loadshed.h"
#include "margin/exchange.h"

#define CORE_TICK_MS 200

struct core_config {
    struct exch_config exch;
    px_t index_px[INDICES_MAX]; /* initial index prices, 0 = none */
    struct ls_config ls;        /* the write queue */
    int64_t engine_delay_ns;    /* demonstration: least service time per write */
    bool engine_thread_only;    /* no write runs on its submitter's thread (rule 5a) */
    ms_t tick_ms;               /* clock command after this long without a write */
    struct core_clock clock;    /* engine time; must be set */
    struct store_limits limits; /* rows the read model keeps (store.h); 0 = unbounded */
};

/* The default market (exch_config_default with the future expiring at the
 * quarter end after now_ms), .BXBT 60000 and .BETH 3000, the default write
 * queue, a clock tick every CORE_TICK_MS, the read model's default limits
 * (STORE_KEEP_ORDERS, _EXECS, _TRADES). The clock is left unset. */
void core_config_default(struct core_config *c, ms_t now_ms);

/* ---- jobs ---------------------------------------------------------------- */

enum job_kind {
    J_ORDERS,     /* new orders, amends, cancels: one reply row per command */
    J_CANCEL_ALL,
    J_CANCEL_AFTER,
    J_POSITION,   /* leverage, isolate, risk limit, transfer: the position after */
    J_MONEY,      /* deposits / withdrawals: the wallet after */
    J_INDEX,      /* admin: set an index price */
    J_ACCOUNT,    /* admin: a new account with a key, then its deposits (cmds) */
    J_ADVANCE,    /* admin: move engine time to advance_to, stopping at each time
                   * something is due (exch_next_event): funding, settlement,
                   * minute samples, Day expiry, dead man's switches, each at
                   * its own time, in time order; a clock command at each stop */
    J_CHECKPOINT, /* admin: a checkpoint named cp->name (Checkpoints, below) */
    J_RESTORE,    /* admin: the exchange back to the checkpoint named cp->name */
};

struct core_job {
    enum job_kind kind;
    uint32_t account;         /* J_ACCOUNT: set by the sequencer */
    uint32_t n;               /* commands */
    struct cmd *cmds;
    char **texts;             /* per command: the order's text or NULL (freed with the job) */
    uint64_t *target;         /* per command: the order the reply shows (amend/cancel) */
    struct key_rec key;       /* J_ACCOUNT: the key to make (its account is set when made) */
    uint8_t account_flags;    /* J_ACCOUNT: enum core_account_flag */
    ms_t advance_to;          /* J_ADVANCE: the engine time to reach */
    /* J_ADVANCE, optional: stop short of advance_to, at the engine time
     * reached, once until_done(until_ctx) says so (asked at each stop,
     * after the timer's next time: a backtest ends at its data's last row) */
    bool (*until_done)(void *until_ctx);
    void *until_ctx;
    /* results, written before done() is called */
    int32_t status;           /* J_ACCOUNT: REJ_NONE or REJ_CORE_ACCOUNTS_FULL / _BAD_KEY
                               * (a key that cannot be made refuses the job before
                               * any command: no account is left without its key) */
    enum reject *rej;
    struct ord_rec *rows;     /* J_ORDERS: n rows (v.id 0 = none); J_CANCEL_ALL: nrows */
    struct ord_rec *rows_inline; /* the n rows allocated with the job */
    uint32_t nrows;
    struct exch_position pos;
    struct exch_margin margin;
    ms_t ts;                  /* engine time of the last command */
    uint64_t seq;             /* sequence number of the last command */
    bool engine_thread;       /* set by the submitter: never applied on its own thread
                               * (an event loop that must not run other clients' writes) */
    /* completion: called once, by the applying thread, outside the lock */
    void (*done)(struct core_job *j);
    void *ctx;
    struct core_job *gate_next; /* the core's: held behind the gate (core_gate) */
    /* J_CHECKPOINT, J_RESTORE: the name in, the checkpoint out (malloc'd
     * by the submitter, freed with the job); status REJ_NONE or REJ_CORE_* */
    struct core_checkpoint *cp;
};

struct core_job *core_job_new(enum job_kind kind, uint32_t account, uint32_t n);
void core_job_free(struct core_job *j);

/* ---- the core ------------------------------------------------------------- */

struct core;

/* Makes the state from the config; applies nothing yet and does not start
 * the engine thread. NULL with a message in err. The sequence opens (command
 * 1, CC_CONFIG, then the initial index prices) at the first of core_start,
 * core_run and core_tick, after the consumers have subscribed. */
struct core *core_create(const struct core_config *cfg, char *err, size_t errcap);
/* Starts the engine thread (the write queue is served from then on). */
int core_start(struct core *c);
/* Stops the engine thread after it has finished every queued job, then
 * frees everything. Jobs submitted after the stop began are refused. */
void core_destroy(struct core *c);
/* Stops taking jobs: the engine thread finishes what is queued and exits.
 * core_destroy does this first; a server calls it before its own stop. */
void core_shutdown(struct core *c);

typedef void (*core_consumer_fn)(void *ctx, const struct core_record *r);
/* Registers a consumer of the change stream, before the sequence opens, so
 * that it sees every record from command 1. The read model is the first
 * in-lock consumer, always. -1 when full or too late. */
int core_subscribe(struct core *c, core_consumer_fn fn, void *ctx, bool in_lock);
/* An after-lock consumer that keeps the record it is handed (no copy of
 * its own on the applying thread): it is called after the other after-lock
 * consumers and frees each record with core_record_release(), from any
 * thread, whenever it is done with it (before or after core_destroy). At
 * most one; -1 when there is one already, or when full or too late. */
int core_subscribe_owner(struct core *c, core_consumer_fn fn, void *ctx);
void core_record_release(const struct core_record *r);

/* Submits a job to the write queue (kind and exempt as loadshed.h); after
 * core_start.
 * LS_ACCEPTED: done() will be called (perhaps before this returns);
 * otherwise it will not, and the job is still the caller's. */
enum ls_result core_submit(struct core *c, struct core_job *j, enum ls_kind kind, bool exempt);
/* Applies a job now on the calling thread, in its place in the sequence,
 * bypassing the queue (start-up, tests, replay); calls done() if set. */
void core_run(struct core *c, struct core_job *j);
/* Applies a clock command now (tests; the engine thread ticks by itself). */
void core_tick(struct core *c);
/* Whether the engine thread applies a clock command after tick_ms without
 * a write (on by default). A stepped clock turns it off: its time moves
 * only when told, and idle ticks would only add commands. */
void core_set_ticking(struct core *c, bool on);

struct ls_queue *core_queue(struct core *c);
const struct exch_config *core_exch_config(const struct core *c);
uint64_t core_commands(const struct core *c); /* commands applied */

struct core_view;

/* A timer: something that acts at engine times of its own (the market
 * simulator). The thread applying commands asks next() when it wants to
 * act (INT64_MAX: not yet) and, once engine time reaches that, calls
 * fire() with the time and a view of the state (the state lock held for
 * writing: read only through the view); each command fire() puts in the
 * batch becomes a command in the one sequence, as a user's would be. With
 * a running clock the engine thread looks every CORE_TIMER_POLL_MS and
 * submits each command as a job of its own to the write queue, behind the
 * writes already there (index moves exempt, the rest shed under overload
 * like anyone's). A stepped advance, itself a job holding the queue's
 * turn, stops at every timer time and applies them there, in order: a
 * stepped run repeats command for command. */
#define CORE_TIMER_POLL_MS 20
struct core_batch {
    struct cmd *cmds;
    uint32_t n, cap;
};
/* Appends a copy of x (aborts when memory is gone). */
void core_batch_push(struct core_batch *b, const struct cmd *x);
struct core_timer {
    ms_t (*next)(void *ctx);
    void (*fire)(void *ctx, ms_t t, const struct core_view *v, struct core_batch *out);
    void *ctx;
    /* Optional: a restore took the exchange back to time t (Checkpoints):
     * the timer plans from t again, reading the state it finds (v: the
     * restored state, the state lock held for writing). */
    void (*rewound)(void *ctx, ms_t t, const struct core_view *v);
};
/* Sets the timer (NULL: none); any time, from any thread. */
void core_set_timer(struct core *c, const struct core_timer *t);
/* Two timers as one (a backtest's history and the market's agents): next()
 * is the earlier of theirs, fire() gives the turn to the one due first (a
 * when both are), one at a time, so each decides from a state with the
 * other's commands applied. The pair lives as long as the timer is set. */
struct core_timer_pair {
    struct core_timer a, b;
};
struct core_timer core_timer_pair(struct core_timer_pair *p);

/* Keys and accounts: readable at any time without the state lock. */
bool core_key_get(struct core *c, const char *id, struct key_rec *out);
int core_keys_list(struct core *c, uint32_t account, struct key_rec *out, int max);
bool core_account_exists(const struct core *c, uint32_t account);
/* Whether a key with this id was ever made, a restore's undoing or not (a
 * seeded key generator must not issue it again). */
bool core_key_known(struct core *c, const char *id);

/* ---- durability: the journal's gate, and replay ----------------------------- */

/* Turns the gate on (before the sequence opens; a journal does it): from
 * then on a job's done() and the after-lock consumers' records wait until
 * core_durable() has been told a sequence number at or past the job's
 * last command. An in-lock consumer (the journal's writer) sees every
 * record at once; nothing a client can see (a reply, a WebSocket row)
 * leaves before the journal has it. A job without done() (core_run at
 * start-up) is its caller's at once. */
void core_gate(struct core *c);
/* fn(ctx) after the last command of every job, under the state lock (and
 * at each stop batch of a long advance): the journal writes whole jobs, so
 * a crash never leaves half of one (an account without its key) on disk.
 * Before the sequence opens. */
void core_set_commit(struct core *c, void (*fn)(void *ctx), void *ctx);
/* The journal has every command up to seq: the replies waiting for them
 * are sent (done() called here, in sequence order) and their records
 * delivered. From the journal's thread. */
void core_durable(struct core *c, uint64_t seq);
/* The sequence number of the last command applied. */
uint64_t core_seq(struct core *c);

/* Applies a command read back from a journal, at its own sequence number
 * and time, on a core made from its config (command 1) and not started:
 * every consumer sees its record as when it was first applied. The
 * command's result in *result. -1 with a message in err when the command
 * cannot be the next (its number is not the next, its time goes back, an
 * account number differs): the journal does not belong to this state. */
int core_replay(struct core *c, const struct core_cmd *cc, int32_t *result, char *err, size_t errcap);

/* ---- checkpoints: rewinding the whole exchange ------------------------------ */

/* A checkpoint is a command (CC_CHECKPOINT) that changes nothing and names
 * the state after it; its state hash is kept with it. A restore is a
 * command too (CC_RESTORE, journaled like any): it rebuilds the state of
 * the checkpoint by replaying, from the journal, the commands that made it
 * (command 1 to the checkpoint, through any earlier restore's jumps) into
 * a fresh state, checks that state's hash against the checkpoint's, and
 * puts it in place of the current one: engine, margin, wallets, keys,
 * accounts, read model, engine time (the clock is told, and the timer).
 * Nothing is destroyed: the commands after the checkpoint stay in the
 * journal, and a checkpoint taken after it can be restored in turn. The
 * sequence number goes on (the restore is the next command); the state
 * hash (core_state) is the checkpoint's. A replay of the journal meets the
 * restore and rebuilds the same way, so recovery gives the same state.
 * Checkpoints need the journal (core_set_history); a restore is refused
 * when a consumer cannot follow one (core_forbid_restore). */
#define CORE_CHECKPOINTS_MAX 1000
#define REJ_CORE_NO_CHECKPOINT 204   /* J_RESTORE: no checkpoint has that name */
#define REJ_CORE_NO_JOURNAL 205      /* checkpoints need the journal */
#define REJ_CORE_NOT_DURABLE 206     /* J_RESTORE: the checkpoint is not on disk yet */
#define REJ_CORE_NO_RESTORE 207      /* J_RESTORE: forbidden here (core_forbid_restore) */
#define REJ_CORE_RESTORE_FAILED 208  /* J_RESTORE: the journal could not rebuild it (logged) */

struct core_checkpoint {
    char name[CHECKPOINT_NAME_MAX + 1];
    uint64_t seq;    /* the checkpoint's command */
    ms_t time;       /* engine time then */
    uint64_t hash;   /* the state hash then */
    uint64_t restore_seq; /* J_RESTORE: the restore's own command */
};

/* The checkpoints taken, oldest first, at most max; how many there are. */
int core_checkpoints(struct core *c, struct core_checkpoint *out, int max);

/* The journal, read back: fn calls each(each_ctx, cmd) for commands 1 to
 * to_seq in order, and returns 0, or -1 with a message. */
typedef int (*core_each_cmd_fn)(void *each_ctx, const struct core_cmd *cc, char *err, size_t errcap);
typedef int (*core_history_fn)(void *ctx, uint64_t to_seq, core_each_cmd_fn each, void *each_ctx,
                               char *err, size_t errcap);
/* Sets (or with NULL clears) where a restore reads the commands. */
void core_set_history(struct core *c, core_history_fn fn, void *ctx);
bool core_has_history(struct core *c);

/* A consumer with state of its own built from the records (the WebSocket
 * feed's tables) follows a restore: begin(restore_seq) under the state
 * lock, then record() for each record the rebuild replays (into state of
 * its own, not sent anywhere), then end(ok); when ok, the restore's own
 * record reaches the consumer later, in sequence, where it puts the
 * rebuilt state in place. Before the sequence opens. */
struct core_rebuilder {
    void (*begin)(void *ctx, uint64_t restore_seq);
    void (*record)(void *ctx, const struct core_record *r);
    void (*end)(void *ctx, bool ok);
    void *ctx;
};
int core_add_rebuilder(struct core *c, const struct core_rebuilder *rb);
/* Restores are refused from now on (a backtest: its data cannot rewind). */
void core_forbid_restore(struct core *c);

/* ---- views: reads of the state between two commands ------------------------ */

/* A view holds the state lock for reading from begin to end: keep it short,
 * copy what you need and render after core_view_end(). */
struct core_view;
const struct core_view *core_view_begin(struct core *c);
void core_view_end(const struct core_view *v);

const struct exch_config *cv_config(const struct core_view *v);
const struct store *cv_store(const struct core_view *v);
uint64_t cv_seq(const struct core_view *v);
bool cv_account_exists(const struct core_view *v, uint32_t account);
uint32_t cv_accounts_end(const struct core_view *v); /* accounts are 1 .. this - 1 */
ms_t cv_now(const struct core_view *v);
int cv_position(const struct core_view *v, uint32_t account, uint16_t inst, struct exch_position *out);
int cv_margin(const struct core_view *v, uint32_t account, uint8_t cur, struct exch_margin *out);
void cv_instrument(const struct core_view *v, uint16_t inst, struct exch_instrument_state *out);
rate_t cv_adl(const struct core_view *v, uint32_t account, uint16_t inst);
int cv_spam(const struct core_view *v, uint32_t account, uint32_t *small_orders); /* exch_spam */
uint32_t cv_levels(const struct core_view *v, uint16_t inst, enum side side, uint32_t max, px_t *px,
                   qty_t *size);
int cv_audit(const struct core_view *v, struct exch_audit *out);

/* The state hash of the whole exchange: engine, margin (wallets,
 * positions, instruments), keys, accounts, the read model's counters and
 * engine time, with the sequence number it was taken at (not in the hash:
 * a restored checkpoint hashes as it did). Equal command sequences give
 * equal hashes. */
struct core_state {
    uint64_t seq;
    ms_t time;
    uint64_t hash;
};
void core_state(struct core *c, struct core_state *out);

/* What a recovery or a replay prints: the state, its size and its audit. */
struct core_summary {
    struct core_state state;
    uint64_t orders;        /* orders ever placed (store_orders_count) */
    uint64_t executions;    /* executions ever made */
    uint32_t accounts;      /* accounts made */
    bool audit_ok;
    char audit_report[256]; /* the first mismatch when not ok */
};
void core_summarize(struct core *c, struct core_summary *out);
/* Waits until the journal has every command up to seq (at once when there
 * is no gate): start-up's own commands (the demo account) before their
 * keys are printed. */
void core_wait_durable(struct core *c, uint64_t seq);

#endif
