/*
 * bitidx.h - a hierarchical bit set over [0, n): set, clear, and "next set
 * bit at or after i" / "previous set bit at or before i" in O(levels), with
 * levels = ceil(log64 n) (4 for 2^24). The book uses one per side over its
 * price ladder to find the next best level when one empties, without
 * scanning empty ticks.
 *
 * Invariant: bit j of level d+1 is set iff word j of level d is nonzero.
 */
#ifndef PERPSIM_BITIDX_H
#define PERPSIM_BITIDX_H

#include <stdint.h>

#define BITIDX_DEPTH_MAX 6 /* 64^6 > 2^32 */

struct bitidx {
    uint32_t n;
    uint32_t depth;
    uint32_t words[BITIDX_DEPTH_MAX];
    uint64_t *lv[BITIDX_DEPTH_MAX];
};

int bitidx_init(struct bitidx *b, uint32_t n); /* 0, or -1 without memory */
void bitidx_free(struct bitidx *b);
void bitidx_set(struct bitidx *b, uint32_t i);
void bitidx_clear(struct bitidx *b, uint32_t i);
int bitidx_test(const struct bitidx *b, uint32_t i);
int64_t bitidx_next(const struct bitidx *b, uint32_t i); /* -1 when none */
int64_t bitidx_prev(const struct bitidx *b, uint32_t i); /* -1 when none */

#endif
