/*
 * stops.c - binary heaps of untriggered stop orders. An "up" heap holds
 * orders that fire when their reference price rises to stop_px (buy Stop,
 * sell MarketIfTouched): a min-heap, so its top fires first. A "down" heap
 * is the mirror image. Ties break on order id so the layout is a pure
 * function of the command history. Each order keeps its heap position in
 * aux, so cancel and amend are O(log n).
 */
#include "engine/engine_int.h"

#include <stdlib.h>

int sheap_init(struct sheap *h, uint32_t cap, int up)
{
    h->a = malloc((size_t)(cap ? cap : 1) * sizeof(uint32_t));
    h->n = 0;
    h->cap = cap;
    h->up = (uint8_t)up;
    return h->a ? 0 : -1;
}

void sheap_free(struct sheap *h)
{
    free(h->a);
    h->a = NULL;
}

/* Does a come out before b? */
static inline int before(const struct sheap *h, const struct order *a, const struct order *b)
{
    if (a->stop_px != b->stop_px)
        return h->up ? a->stop_px < b->stop_px : a->stop_px > b->stop_px;
    return a->id < b->id;
}

static void place(struct sheap *h, struct order *orders, uint32_t pos, uint32_t slot)
{
    h->a[pos] = slot;
    orders[slot].aux = pos;
}

static void sift_up(struct sheap *h, struct order *orders, uint32_t pos)
{
    uint32_t slot = h->a[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!before(h, &orders[slot], &orders[h->a[parent]]))
            break;
        place(h, orders, pos, h->a[parent]);
        pos = parent;
    }
    place(h, orders, pos, slot);
}

static void sift_down(struct sheap *h, struct order *orders, uint32_t pos)
{
    uint32_t slot = h->a[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h, &orders[h->a[c + 1]], &orders[h->a[c]]))
            c++;
        if (!before(h, &orders[h->a[c]], &orders[slot]))
            break;
        place(h, orders, pos, h->a[c]);
        pos = c;
    }
    place(h, orders, pos, slot);
}

void sheap_push(struct sheap *h, struct order *orders, uint32_t slot)
{
    /* The caller checked the instrument's stop count against stops_max. */
    place(h, orders, h->n++, slot);
    sift_up(h, orders, h->n - 1);
}

void sheap_remove(struct sheap *h, struct order *orders, uint32_t slot)
{
    uint32_t pos = orders[slot].aux;
    uint32_t last = h->a[--h->n];
    if (pos == h->n)
        return;
    place(h, orders, pos, last);
    sift_up(h, orders, pos);
    sift_down(h, orders, orders[last].aux);
}

void sheap_rekey(struct sheap *h, struct order *orders, uint32_t slot)
{
    uint32_t pos = orders[slot].aux;
    sift_up(h, orders, pos);
    sift_down(h, orders, orders[slot].aux);
}
