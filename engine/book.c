/*
 * book.c - one instrument's price levels: a ladder from tick index to level
 * slot, one hierarchical bit set per side marking the ticks that hold a
 * level, the cached best tick per side, and each level's FIFO of orders.
 *
 * Invariants (checked by engine_verify): a tick's bit is set iff its ladder
 * entry is a level; a level's queue is non-empty, its count and visible sum
 * match its orders; best[] is the highest bid tick / lowest ask tick.
 * Levels come from a pool with as many slots as orders (a level always holds
 * at least one order), so taking one cannot fail.
 */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

int book_init(struct book *b, px_t tick_px, px_t max_px)
{
    memset(b, 0, sizeof(*b));
    b->tick_px = tick_px;
    b->ticks = (uint32_t)(max_px / tick_px + 1);
    b->best[0] = b->best[1] = -1;
    b->ladder = malloc((size_t)b->ticks * sizeof(uint32_t));
    if (!b->ladder)
        return -1;
    memset(b->ladder, 0xff, (size_t)b->ticks * sizeof(uint32_t));
    if (bitidx_init(&b->bits[0], b->ticks) || bitidx_init(&b->bits[1], b->ticks))
        return -1;
    return 0;
}

void book_free(struct book *b)
{
    free(b->ladder);
    b->ladder = NULL;
    bitidx_free(&b->bits[0]);
    bitidx_free(&b->bits[1]);
}

uint32_t book_best_level(const struct engine *e, const struct book *b, int six)
{
    (void)e;
    return b->best[six] < 0 ? ENGINE_NIL : b->ladder[b->best[six]];
}

uint32_t book_level_at(const struct book *b, px_t px)
{
    return b->ladder[px / b->tick_px];
}

uint32_t book_next_level(const struct engine *e, const struct book *b, const struct level *l)
{
    (void)e;
    uint32_t tick = (uint32_t)(l->px / b->tick_px);
    int64_t t;
    if (l->side == SIDE_BUY)
        t = tick == 0 ? -1 : bitidx_prev(&b->bits[0], tick - 1);
    else
        t = bitidx_next(&b->bits[1], tick + 1);
    return t < 0 ? ENGINE_NIL : b->ladder[t];
}

static void queue_push(struct engine *e, struct level *l, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    o->next = ENGINE_NIL;
    o->prev = l->tail;
    if (l->tail != ENGINE_NIL)
        e->orders[l->tail].next = slot;
    else
        l->head = slot;
    l->tail = slot;
}

static void queue_pop(struct engine *e, struct level *l, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    if (o->prev != ENGINE_NIL)
        e->orders[o->prev].next = o->next;
    else
        l->head = o->next;
    if (o->next != ENGINE_NIL)
        e->orders[o->next].prev = o->prev;
    else
        l->tail = o->prev;
}

uint32_t book_append(struct engine *e, struct book *b, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    uint32_t tick = (uint32_t)(o->price / b->tick_px);
    int six = side_ix(o->side);
    uint32_t ls = b->ladder[tick];
    if (ls == ENGINE_NIL) {
        if (e->free_level != ENGINE_NIL) {
            ls = e->free_level;
            e->free_level = e->levels[ls].head; /* the free list runs through head */
        } else {
            ls = e->levels_hw++;
        }
        e->levels_used++;
        struct level *l = &e->levels[ls];
        *l = (struct level){.px = o->price, .head = ENGINE_NIL, .tail = ENGINE_NIL, .side = o->side};
        b->ladder[tick] = ls;
        bitidx_set(&b->bits[six], tick);
        if (b->best[six] < 0 || (six == 0 ? (int64_t)tick > b->best[0] : (int64_t)tick < b->best[1]))
            b->best[six] = tick;
    }
    struct level *l = &e->levels[ls];
    queue_push(e, l, slot);
    l->count++;
    l->visible += o->shown;
    return ls;
}

void book_unlink(struct engine *e, struct book *b, uint32_t slot)
{
    struct order *o = &e->orders[slot];
    uint32_t tick = (uint32_t)(o->price / b->tick_px);
    int six = side_ix(o->side);
    uint32_t ls = b->ladder[tick];
    struct level *l = &e->levels[ls];
    queue_pop(e, l, slot);
    l->count--;
    l->visible -= o->shown;
    if (l->count > 0)
        return;
    l->head = e->free_level;
    e->free_level = ls;
    e->levels_used--;
    b->ladder[tick] = ENGINE_NIL;
    bitidx_clear(&b->bits[six], tick);
    if (b->best[six] == (int64_t)tick)
        b->best[six] = six == 0 ? (tick == 0 ? -1 : bitidx_prev(&b->bits[0], tick - 1))
                                : bitidx_next(&b->bits[1], tick + 1);
}

void book_to_tail(struct engine *e, struct book *b, uint32_t slot)
{
    struct level *l = &e->levels[book_level_at(b, e->orders[slot].price)];
    if (l->tail == slot)
        return;
    queue_pop(e, l, slot);
    queue_push(e, l, slot);
}
