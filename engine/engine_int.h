/*
 * engine_int.h - the engine's private structures, shared by its .c files.
 *
 * Memory model: every live order is a slot in one pool (struct order), linked
 * by uint32_t indexes, never by pointers, and never malloc'd per order.
 * A slot is on exactly one of: the free list; a level's FIFO queue (resting);
 * a stop heap or the instrument's special-stop list (untriggered); or no
 * structure while it is being processed as an incoming order. Every live
 * order is also on its (account, instrument) list and in the id index.
 *
 * Book model: per instrument a ladder maps tick index -> level slot; a
 * hierarchical bit set per side says which ticks hold a level, so the next
 * best level is found in O(log64 ticks). A level holds a FIFO of orders and
 * the sum of their visible quantities (what orderBookL2 shows).
 */
#ifndef PERPSIM_ENGINE_INT_H
#define PERPSIM_ENGINE_INT_H

#include "engine/bitidx.h"
#include "engine/engine.h"

#include <stdint.h>

/* Where a live order is. */
enum where { WH_NONE = 0, WH_BOOK, WH_STOPS, WH_FIRING };

/* flags */
#define OF_TRIGGERED 0x01u
#define OF_WORKING 0x02u
#define OF_WHERE_SHIFT 2
#define OF_WHERE_MASK 0x0cu
#define OF_CLOSE_ALL 0x10u /* Close without orderQty: the whole position */

/* One order: 112 bytes; with the id index's 8 bytes a resting order costs
 * 120 (clOrdID strings, when given, live in the string pool). */
struct order {
    uint64_t id;
    px_t price;         /* 0 when none */
    px_t stop_px;       /* 0 when none */
    px_t peg_offset_px;
    qty_t qty;          /* orderQty */
    qty_t leaves;       /* leavesQty; cumQty = qty - leaves while live */
    qty_t display;      /* displayQty, -1 when not given */
    qty_t shown;        /* the visible part now resting: leaves, slice, or 0 */
    uint32_t prev, next;   /* level FIFO / special-stop list / free list */
    uint32_t aprev, anext; /* (account, instrument) list */
    uint32_t aux;          /* position in a stop heap */
    uint32_t account;
    uint32_t clord;        /* string slot of clOrdID or ENGINE_NIL */
    uint32_t link;         /* string slot of clOrdLinkID or ENGINE_NIL */
    uint16_t inst;
    uint16_t exec_inst;
    uint8_t side, ord_type, tif, peg_type, contingency, status, flags;
};

struct level {
    px_t px;
    qty_t visible;   /* sum of shown over the queue */
    uint32_t head, tail;
    uint32_t count;  /* orders in the queue */
    uint8_t side;
};

/* A binary heap of untriggered stops keyed by (stop_px, id); "up" heaps are
 * min-heaps (fire when the reference rises to stop_px), "down" max-heaps. */
struct sheap {
    uint32_t *a;
    uint32_t n, cap;
    uint8_t up;
};

struct book {
    px_t tick_px;
    uint32_t ticks;      /* max_px / tick_px + 1 */
    uint32_t *ladder;    /* tick -> level slot or ENGINE_NIL */
    struct bitidx bits[2]; /* [0] bids, [1] asks */
    int64_t best[2];     /* best tick per side, -1 when empty */
};

struct inst_state {
    struct book book;
    px_t prices[SRC_COUNT];  /* mark, last, index; 0 = never set */
    struct sheap heaps[SRC_COUNT][2]; /* [source][0 = fires up, 1 = fires down] */
    uint32_t special_head;   /* trailing and LastWithinMark stops */
    uint32_t stops;          /* untriggered stops in this instrument */
};

/* Per account per instrument. */
struct acct_inst {
    qty_t pos;
    uint32_t head;           /* list of the account's live orders here */
    uint32_t open_count;     /* working orders */
    uint32_t stop_count;     /* untriggered stops */
    uint32_t ro_count;       /* live ReduceOnly/Close orders: enforcement skips 0 */
    uint8_t touched;         /* position changed in this matching step */
    uint16_t cont_count;     /* live orders with a contingency (OCO): ENGINE_CONTINGENT_MAX */
};

struct account {
    ms_t deadline;           /* cancel-all-after, 0 = disarmed */
    uint32_t heap_pos;
};

/* Open addressing, linear probing; the table holds order slot + 1 (0 =
 * empty, so a fresh calloc'd table costs no resident memory until used);
 * the key is read from the order. Capacity: a power of two >= 2 * entries. */
struct slotmap {
    uint32_t *tab;
    uint32_t mask;
};

struct idslot {
    uint64_t id;
    uint32_t slot;
};

#define STR_SLOT_LEN 40 /* CLORDID_LEN_MAX + NUL, rounded up */

struct engine {
    struct engine_config cfg;
    engine_sink_fn sink;
    void *sink_ctx;
    struct engine_hooks hooks;

    /* Pools hand out never-used slots from a high-water mark before reusing
     * freed ones, so untouched capacity costs no resident memory. */
    struct order *orders;
    uint32_t verify_n; /* commands since the last engine_verify (checked builds) */
    uint32_t free_order, orders_hw;
    uint32_t live;

    struct level *levels; /* orders_max slots: a level holds >= 1 order */
    uint32_t free_level, levels_hw;
    uint32_t levels_used;

    char (*strs)[STR_SLOT_LEN];
    uint32_t free_str, strs_hw;
    uint32_t strs_used;

    /* order id -> slot (idmap.c): ids are issued in sequence, so id & mask
     * is a direct index (consecutive ids share cache lines); an id whose
     * place still holds an order issued 2^k ids earlier goes to the
     * hashed overflow table instead. */
    struct slotmap ids;
    struct slotmap ids_over;
    uint32_t ids_over_n;    /* entries in ids_over */
    struct slotmap clords;  /* (account, clOrdID) -> slot */

    struct inst_state *inst;
    struct acct_inst *ai;   /* [account * instruments_count + inst] */
    struct account *acct;
    uint32_t *dm_heap;      /* accounts with an armed dead man's switch */
    uint32_t dm_count;

    uint64_t next_order_id, next_trade_id;
    uint64_t last_seq;
    ms_t last_ts;
    ms_t day_end;           /* next 00:00 UTC; 0 before the first command */

    /* per-command state */
    uint64_t cur_seq;
    ms_t cur_ts;
    uint64_t dirty_insts;   /* instruments whose triggers must be checked */
    uint32_t *touched;      /* acct_inst indexes whose position changed */
    uint32_t touched_n;
    /* Collection buffers, each sized to the most it can hold: */
    struct idslot *acct_buf; /* an account's orders (all instruments) */
    struct idslot *grp_buf;  /* one (account, instrument)'s orders */
    struct idslot *fire_buf; /* stops fired in one trigger round */
    struct idslot *day_buf;  /* live Day orders */
};

static inline uint32_t of_where(const struct order *o)
{
    return (o->flags & OF_WHERE_MASK) >> OF_WHERE_SHIFT;
}

static inline void of_set_where(struct order *o, uint32_t w)
{
    o->flags = (uint8_t)((o->flags & ~OF_WHERE_MASK) | (w << OF_WHERE_SHIFT));
}

static inline int side_ix(uint8_t side) { return side == SIDE_SELL; }
static inline uint8_t side_opp(uint8_t side) { return side == SIDE_BUY ? SIDE_SELL : SIDE_BUY; }

/* idmap.c */
int slotmap_init(struct slotmap *m, uint32_t entries_max);
void slotmap_free(struct slotmap *m);
uint32_t idmap_find(const struct engine *e, uint64_t id);
void idmap_insert(struct engine *e, uint32_t slot);
void idmap_remove(struct engine *e, uint32_t slot);
uint32_t clomap_find(const struct engine *e, uint32_t account, const char *clordid);
void clomap_insert(struct engine *e, uint32_t slot);
void clomap_remove(struct engine *e, uint32_t slot);

/* book.c */
int book_init(struct book *b, px_t tick_px, px_t max_px);
void book_free(struct book *b);
uint32_t book_best_level(const struct engine *e, const struct book *b, int six);
uint32_t book_next_level(const struct engine *e, const struct book *b, const struct level *l);
uint32_t book_level_at(const struct book *b, px_t px);
uint32_t book_append(struct engine *e, struct book *b, uint32_t slot);
void book_unlink(struct engine *e, struct book *b, uint32_t slot);
void book_to_tail(struct engine *e, struct book *b, uint32_t slot);

/* stops.c */
int sheap_init(struct sheap *h, uint32_t cap, int up);
void sheap_free(struct sheap *h);
void sheap_push(struct sheap *h, struct order *orders, uint32_t slot);
void sheap_remove(struct sheap *h, struct order *orders, uint32_t slot);
void sheap_rekey(struct sheap *h, struct order *orders, uint32_t slot);
static inline uint32_t sheap_top(const struct sheap *h) { return h->n ? h->a[0] : ENGINE_NIL; }

#endif
