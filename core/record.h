/*
 * record.h - the commands of the one sequence and the change-stream
 * record each of them leaves.
 *
 * Every change of the exchange's state is a command (struct core_cmd) that
 * the sequencer numbers, stamps with engine time and applies: the config at
 * start, engine and margin commands (orders and their texts, cancels,
 * positions, deposits and withdrawals, index prices, clock ticks), new
 * accounts and new API keys. Replaying the commands in order on a fresh
 * state rebuilds everything, the read model and the keys included.
 *
 * Applying a command yields exactly one record: the command, its sequence
 * number and time, its result, and the ordered events it produced. Events
 * carry the figures a consumer needs, so that no consumer reads the live
 * state to learn what a command did:
 *   EV_POSITION    the position's figures after the change (exch_position)
 *   EV_INSTRUMENT  the instrument's state after it (mark, fair basis,
 *                  funding and indicative rates, settlement)
 *   EV_FILL        the fee rate, execCost and execComm of that side
 *   EV_MONEY       of a liquidation, deleverage or settlement: execCost of
 *                  the position change at the event's price
 *   EV_MARGIN      the core's own: an account's money in one currency
 *                  (exch_margin; account in ev.account, currency in
 *                  ev.reason), after the closing position events
 * The rest of each event is the engine's or margin core's own (engine.h).
 * The sequencer closes each command's record with one more EV_POSITION for
 * every position of an account the command touched (its orders, fills,
 * wallet or positions) whose figures moved after its last position event,
 * and one more EV_INSTRUMENT for every instrument whose open interest a
 * fill or a transfer of contracts moved after its last instrument event:
 * a record ends with everything it touched as it is. A mark move touches
 * every account with an open position in that instrument (its mark
 * value, unrealised PnL and, through cross equity, its liquidation
 * price move). After the positions, each touched account gets one
 * EV_MARGIN per currency that moved with its money as it is.
 *
 * core_record_encode() gives a record's canonical bytes: every field
 * written explicitly, little-endian, no padding, so equal records give
 * byte-identical encodings on any build. It is what the determinism tests
 * compare and what the journal will write.
 */
#ifndef PERPSIM_CORE_RECORD_H
#define PERPSIM_CORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/keys.h"
#include "margin/exchange.h"

#define TEXT_LEN_MAX 255

/* The core's own event type, after the engine's and margin's (enum
 * ev_type): an account's margin in one currency. */
#define EV_MARGIN 100

enum core_cmd_type {
    CC_CONFIG = 1, /* the exchange's config: always command 1 */
    CC_EXCH,       /* an engine or margin command (struct cmd), with an order's text */
    CC_ACCOUNT,    /* a new account: the next account number */
    CC_KEY,        /* a new API key (the whole key, secret included) */
    CC_CHECKPOINT, /* a named point to rewind to (text: the name); changes nothing */
    CC_RESTORE,    /* the whole exchange back to a checkpoint (core.h, Checkpoints) */
};

#define CHECKPOINT_NAME_MAX 64

/* What a new account is (CC_ACCOUNT), journaled with it. */
enum core_account_flag {
    /* The read model keeps no order or execution rows of the account (its
     * trades still print, its money and positions are kept): a backtest's
     * history account, whose millions of book orders no one can read (its
     * key is disabled). Journaled, so a replay keeps the same rows. */
    CORE_ACCOUNT_NO_ROWS = 1u << 0,
    /* One of the living market's agents: its ladders are liquidity, so the
     * spam review leaves it alone, and the class table lists it apart. */
    CORE_ACCOUNT_AGENT = 1u << 1,
};
#define CORE_ACCOUNT_FLAGS (CORE_ACCOUNT_NO_ROWS | CORE_ACCOUNT_AGENT)

/* Rejects of the core's own commands, after margin's (enum reject). */
#define REJ_CORE_ACCOUNTS_FULL 200 /* CC_ACCOUNT: accounts_max reached */
#define REJ_CORE_BAD_KEY 201       /* CC_KEY: id taken, unknown account */
#define REJ_CORE_CHECKPOINT_TAKEN 202  /* CC_CHECKPOINT: a checkpoint has that name */
#define REJ_CORE_CHECKPOINTS_FULL 203  /* CC_CHECKPOINT: CORE_CHECKPOINTS_MAX made */

/* The rows the read model keeps (store.h); part of the exchange's config. */
struct store_limits {
    uint32_t orders; /* terminal orders kept (live ones are always kept) */
    uint32_t execs;  /* executions kept, all accounts together */
    uint32_t trades; /* public trades kept per instrument */
    /* A refused new order gets an id and is kept, Rejected (store.h);
     * off in journals from before it, as they ran. */
    bool keep_rejected;
};

struct core_cmd {
    uint8_t type;           /* enum core_cmd_type */
    uint64_t seq;           /* set by the sequencer */
    ms_t ts;                /* set by the sequencer */
    struct cmd x;           /* CC_EXCH (its seq and ts are the command's) */
    const char *text;       /* CC_EXCH: the order's text ("" or NULL: none);
                             * CC_CHECKPOINT, CC_RESTORE: the checkpoint's name */
    uint32_t account;       /* CC_ACCOUNT: the account made (set when applied) */
    uint8_t account_flags;  /* CC_ACCOUNT: enum core_account_flag */
    struct key_rec key;     /* CC_KEY: created_ms is set when applied */
    const struct exch_config *config; /* CC_CONFIG */
    const struct store_limits *limits; /* CC_CONFIG: the rows the read model keeps */
    /* CC_RESTORE: the checkpoint's command, and the state hash it had (the
     * rebuilt state must give it: a replay checks) */
    uint64_t target_seq, target_hash;
};

struct rec_fill {
    rate_t rate_e8;         /* the fee rate charged (0 for the liquidator) */
    sats_t cost, comm;      /* execCost (signed value of the fill), execComm */
};

struct rec_event {
    struct event ev;
    union {
        struct exch_position pos;          /* EV_POSITION */
        struct exch_instrument_state inst; /* EV_INSTRUMENT */
        struct rec_fill fill;              /* EV_FILL */
        sats_t cost;                       /* EV_MONEY liquidation, deleverage, settlement */
        struct exch_margin margin;         /* EV_MARGIN */
    } x;
};

struct core_record {
    uint64_t seq;
    ms_t ts;
    const struct core_cmd *cmd;
    int32_t result;         /* REJ_NONE (0) or the reject reason */
    uint32_t nev;
    const struct rec_event *ev;
};

/* A growable byte buffer. */
struct rbuf {
    unsigned char *p;
    size_t len, cap;
    bool bad;               /* out of memory */
};

void rbuf_free(struct rbuf *b);
/* Appends n bytes (bad set when memory is gone). */
void rbuf_put(struct rbuf *b, const void *p, size_t n);
/* Appends the record's canonical encoding: a u32 length of what follows,
 * then the fields. */
void core_record_encode(const struct core_record *r, struct rbuf *out);

/* A command's canonical bytes, as the journal keeps them: its sequence
 * number, its time, its type and its arguments (the order's text, the
 * whole config of command 1, a key with its secret). */
void core_cmd_encode(const struct core_cmd *c, struct rbuf *out);

/* A decoded command and the storage its pointers point into. */
struct core_cmd_buf {
    struct core_cmd cmd;
    struct exch_config config;
    struct store_limits limits;
    char text[TEXT_LEN_MAX + 1];
};
/* Decodes exactly n bytes of core_cmd_encode's output into out (its
 * pointers into out itself). -1 when the bytes are not one whole command
 * (short, too long, an unknown type, a string past its field): never a
 * read outside p[0..n). */
int core_cmd_decode(const void *p, size_t n, struct core_cmd_buf *out);

#endif
