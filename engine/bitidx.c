/*
 * bitidx.c - see bitidx.h. Level 0 holds one bit per element; each higher
 * level one bit per word of the level below, up to a single word.
 */
#include "engine/bitidx.h"

#include <stdlib.h>

int bitidx_init(struct bitidx *b, uint32_t n)
{
    *b = (struct bitidx){.n = n};
    uint64_t count = n ? n : 1;
    do {
        uint64_t words = (count + 63) / 64;
        b->words[b->depth] = (uint32_t)words;
        b->lv[b->depth] = calloc(words, sizeof(uint64_t));
        if (!b->lv[b->depth]) {
            bitidx_free(b);
            return -1;
        }
        b->depth++;
        count = words;
    } while (count > 1 && b->depth < BITIDX_DEPTH_MAX);
    return 0;
}

void bitidx_free(struct bitidx *b)
{
    for (uint32_t d = 0; d < BITIDX_DEPTH_MAX; d++) {
        free(b->lv[d]);
        b->lv[d] = NULL;
    }
    b->depth = 0;
}

void bitidx_set(struct bitidx *b, uint32_t i)
{
    uint64_t pos = i;
    for (uint32_t d = 0; d < b->depth; d++) {
        uint64_t w = pos >> 6;
        uint64_t was = b->lv[d][w];
        b->lv[d][w] = was | (UINT64_C(1) << (pos & 63));
        if (was)
            return; /* the levels above already know this word is nonzero */
        pos = w;
    }
}

void bitidx_clear(struct bitidx *b, uint32_t i)
{
    uint64_t pos = i;
    for (uint32_t d = 0; d < b->depth; d++) {
        uint64_t w = pos >> 6;
        b->lv[d][w] &= ~(UINT64_C(1) << (pos & 63));
        if (b->lv[d][w])
            return;
        pos = w;
    }
}

int bitidx_test(const struct bitidx *b, uint32_t i)
{
    return (int)((b->lv[0][i >> 6] >> (i & 63)) & 1);
}

int64_t bitidx_next(const struct bitidx *b, uint32_t i)
{
    if (i >= b->n)
        return -1;
    uint32_t d = 0;
    uint64_t pos = i;
    for (;;) {
        uint64_t w = pos >> 6;
        if (w >= b->words[d])
            return -1;
        uint64_t m = b->lv[d][w] & (~UINT64_C(0) << (pos & 63));
        if (m) {
            pos = (w << 6) | (uint64_t)__builtin_ctzll(m);
            break;
        }
        if (++d == b->depth)
            return -1;
        pos = w + 1;
    }
    while (d > 0) {
        d--;
        pos = (pos << 6) | (uint64_t)__builtin_ctzll(b->lv[d][pos]);
    }
    return (int64_t)pos;
}

int64_t bitidx_prev(const struct bitidx *b, uint32_t i)
{
    if (b->n == 0)
        return -1;
    if (i >= b->n)
        i = b->n - 1;
    uint32_t d = 0;
    uint64_t pos = i;
    for (;;) {
        uint64_t w = pos >> 6;
        uint64_t m = b->lv[d][w] & (~UINT64_C(0) >> (63 - (pos & 63)));
        if (m) {
            pos = (w << 6) | (uint64_t)(63 - __builtin_clzll(m));
            break;
        }
        if (w == 0 || ++d == b->depth)
            return -1;
        pos = w - 1;
    }
    while (d > 0) {
        d--;
        pos = (pos << 6) | (uint64_t)(63 - __builtin_clzll(b->lv[d][pos]));
    }
    return (int64_t)pos;
}
