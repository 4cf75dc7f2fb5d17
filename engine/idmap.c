/*
 * idmap.c - the indexes into the order pool: order id -> slot (direct by
 * id, with a hashed overflow; see idmap_find), and (account, clOrdID) ->
 * slot. The hashed tables are open addressing with linear probing over a
 * power-of-two table of slots (load <= 1/2); the key is read from the order
 * itself, so an entry costs 4 bytes. Removal shifts later entries back
 * (no tombstones), so probe lengths never grow with churn.
 */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

int slotmap_init(struct slotmap *m, uint32_t entries_max)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)entries_max * 2)
        cap <<= 1;
    m->tab = calloc(cap, sizeof(uint32_t)); /* 0 = empty */
    if (!m->tab)
        return -1;
    m->mask = (uint32_t)(cap - 1);
    return 0;
}

void slotmap_free(struct slotmap *m)
{
    free(m->tab);
    m->tab = NULL;
}

static inline uint32_t hash_id(uint64_t id, uint32_t mask)
{
    return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

/* FNV-1a over the account and the string. */
static uint32_t hash_clord(uint32_t account, const char *s, uint32_t mask)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (int i = 0; i < 4; i++) {
        h ^= (account >> (8 * i)) & 0xff;
        h *= UINT64_C(0x100000001b3);
    }
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return (uint32_t)(h ^ (h >> 32)) & mask;
}

static void map_insert(struct slotmap *m, uint32_t home, uint32_t slot)
{
    uint32_t i = home;
    while (m->tab[i] != 0)
        i = (i + 1) & m->mask;
    m->tab[i] = slot + 1;
}

/* Backward-shift deletion: after emptying position i, move back any later
 * entry of the run whose home is not cyclically within (i, j]. */
static void map_delete_at(const struct engine *e, struct slotmap *m, uint32_t i, int is_clord)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        uint32_t s = m->tab[j];
        if (s == 0)
            break;
        const struct order *o = &e->orders[s - 1];
        uint32_t home = is_clord ? hash_clord(o->account, e->strs[o->clord], m->mask)
                                 : hash_id(o->id, m->mask);
        int inside = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (inside)
            continue;
        m->tab[i] = s;
        i = j;
    }
    m->tab[i] = 0;
}

/* The id index. An order's place is tab[id & mask] of e->ids: ids come in
 * sequence, so inserting touches the cache lines of the last few orders,
 * and finding costs one access besides the order itself. The place is taken
 * only when the order issued mask + 1 ids earlier is still live (at most
 * one in two places is ever in use); the new id then goes to e->ids_over, a
 * hashed table as for clOrdIDs, which is looked at only when it is not
 * empty. */
uint32_t idmap_find(const struct engine *e, uint64_t id)
{
    uint32_t s = e->ids.tab[id & e->ids.mask];
    if (s != 0) {
        /* The caller reads the whole order next: ask for its last cache
         * line now, in parallel with the first (an order spans two). */
        __builtin_prefetch((const char *)&e->orders[s] - 1);
        if (e->orders[s - 1].id == id)
            return s - 1;
    }
    if (e->ids_over_n == 0)
        return ENGINE_NIL;
    const struct slotmap *m = &e->ids_over;
    for (uint32_t i = hash_id(id, m->mask);; i = (i + 1) & m->mask) {
        s = m->tab[i];
        if (s == 0)
            return ENGINE_NIL;
        if (e->orders[s - 1].id == id)
            return s - 1;
    }
}

void idmap_insert(struct engine *e, uint32_t slot)
{
    uint64_t id = e->orders[slot].id;
    uint32_t *place = &e->ids.tab[id & e->ids.mask];
    if (*place == 0) {
        *place = slot + 1;
        return;
    }
    map_insert(&e->ids_over, hash_id(id, e->ids_over.mask), slot);
    e->ids_over_n++;
}

void idmap_remove(struct engine *e, uint32_t slot)
{
    uint64_t id = e->orders[slot].id;
    uint32_t *place = &e->ids.tab[id & e->ids.mask];
    if (*place == slot + 1) {
        *place = 0;
        return;
    }
    struct slotmap *m = &e->ids_over;
    uint32_t i = hash_id(id, m->mask);
    while (m->tab[i] != slot + 1)
        i = (i + 1) & m->mask;
    map_delete_at(e, m, i, 0);
    e->ids_over_n--;
}

uint32_t clomap_find(const struct engine *e, uint32_t account, const char *clordid)
{
    const struct slotmap *m = &e->clords;
    for (uint32_t i = hash_clord(account, clordid, m->mask);; i = (i + 1) & m->mask) {
        uint32_t s = m->tab[i];
        if (s == 0)
            return ENGINE_NIL;
        const struct order *o = &e->orders[s - 1];
        if (o->account == account && strcmp(e->strs[o->clord], clordid) == 0)
            return s - 1;
    }
}

void clomap_insert(struct engine *e, uint32_t slot)
{
    const struct order *o = &e->orders[slot];
    map_insert(&e->clords, hash_clord(o->account, e->strs[o->clord], e->clords.mask), slot);
}

void clomap_remove(struct engine *e, uint32_t slot)
{
    struct slotmap *m = &e->clords;
    const struct order *o = &e->orders[slot];
    uint32_t i = hash_clord(o->account, e->strs[o->clord], m->mask);
    while (m->tab[i] != slot + 1)
        i = (i + 1) & m->mask;
    map_delete_at(e, m, i, 1);
}
