/*
 * xorshift.h - the tests' seeded generator (xorshift64*): the same seed,
 * the same stream, on any build. Header-only; each test keeps its own
 * state.
 */
#ifndef PERPSIM_TESTS_XORSHIFT_H
#define PERPSIM_TESTS_XORSHIFT_H

#include <stdint.h>

struct rng {
    uint64_t s; /* never 0 */
};

static inline uint64_t rnd(struct rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * UINT64_C(2685821657736338717);
}

/* lo..hi inclusive. */
static inline int64_t range(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(r) % (uint64_t)(hi - lo + 1));
}

#endif
