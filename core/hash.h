/*
 * hash.h - the 64-bit folding hash behind the state hash (core_hash):
 * equal inputs in equal order give equal values; not for security.
 */
#ifndef PERPSIM_CORE_HASH_H
#define PERPSIM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_SEED UINT64_C(0x6a09e667f3bcc909)

static inline uint64_t hash_u64(uint64_t h, uint64_t v)
{
    h ^= v + UINT64_C(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    h ^= h >> 29;
    return h;
}

static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    h = hash_u64(h, n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, b + i, n - i < 8 ? n - i : 8);
        h = hash_u64(h, w);
    }
    return h;
}

static inline uint64_t hash_str(uint64_t h, const char *s)
{
    return hash_bytes(h, s, strlen(s));
}

#endif
