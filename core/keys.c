/*
 * keys.c - the API key table (keys.h).
 */
#include "core/keys.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

void keys_init(struct keys *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
}

void keys_destroy(struct keys *t)
{
    free(t->v);
    pthread_mutex_destroy(&t->lock);
}

static int find(const struct keys *t, const char *id)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].id, id) == 0)
            return (int)i;
    return -1;
}

int keys_add(struct keys *t, const struct key_rec *k)
{
    int rc = -1;
    pthread_mutex_lock(&t->lock);
    if (find(t, k->id) >= 0)
        goto out;
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 16;
        struct key_rec *p = realloc(t->v, nc * sizeof(*p));
        if (!p)
            goto out;
        t->v = p;
        t->cap = nc;
    }
    t->v[t->n++] = *k;
    rc = 0;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

bool keys_get(struct keys *t, const char *id, struct key_rec *out)
{
    pthread_mutex_lock(&t->lock);
    int i = find(t, id);
    if (i >= 0)
        *out = t->v[i];
    pthread_mutex_unlock(&t->lock);
    return i >= 0;
}

int keys_list(struct keys *t, uint32_t account, struct key_rec *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 0; i < t->n && n < max; i++)
        if (t->v[i].account == account)
            out[n++] = t->v[i];
    pthread_mutex_unlock(&t->lock);
    return n;
}

uint64_t keys_hash(struct keys *t, uint64_t h)
{
    pthread_mutex_lock(&t->lock);
    h = hash_u64(h, t->n);
    for (uint32_t i = 0; i < t->n; i++) {
        const struct key_rec *k = &t->v[i];
        h = hash_str(h, k->id);
        h = hash_str(h, k->secret);
        h = hash_u64(h, k->account);
        h = hash_u64(h, k->perms);
        h = hash_u64(h, k->enabled);
        h = hash_u64(h, k->ncidr);
        for (uint8_t c = 0; c < k->ncidr; c++)
            h = hash_u64(h, (uint64_t)k->cidr_addr[c] << 8 | k->cidr_bits[c]);
        h = hash_u64(h, (uint64_t)k->created_ms);
    }
    pthread_mutex_unlock(&t->lock);
    return h;
}

void keys_swap(struct keys *a, struct keys *b)
{
    if (a == b)
        return;
    /* Always the lower address first: no two swaps deadlock. */
    struct keys *first = a < b ? a : b, *second = a < b ? b : a;
    pthread_mutex_lock(&first->lock);
    pthread_mutex_lock(&second->lock);
    struct key_rec *v = a->v;
    uint32_t n = a->n, cap = a->cap;
    a->v = b->v;
    a->n = b->n;
    a->cap = b->cap;
    b->v = v;
    b->n = n;
    b->cap = cap;
    pthread_mutex_unlock(&second->lock);
    pthread_mutex_unlock(&first->lock);
}
