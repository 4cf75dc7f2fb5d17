/*
 * keys.h - the API key table: part of the exchange state.
 *
 * A key is made only by a command in the one sequence (CC_KEY, core.h),
 * which carries the whole key, secret included, so that replaying the
 * sequence rebuilds the table exactly (api/ draws the key's random bytes
 * before it submits the command). The sequencer adds keys holding the
 * state lock for writing; the HTTP threads look keys up on every signed
 * request, so the table has a mutex of its own and a lookup never waits
 * for a command being applied.
 */
#ifndef PERPSIM_CORE_KEYS_H
#define PERPSIM_CORE_KEYS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/units.h"

#define KEY_ID_LEN 24
#define KEY_SECRET_LEN 48
#define KEY_CIDRS_MAX 4

enum perm { PERM_ORDER = 1u << 0, PERM_CANCEL = 1u << 1, PERM_WITHDRAW = 1u << 2 };

struct key_rec {
    char id[KEY_ID_LEN + 1];
    char secret[KEY_SECRET_LEN + 1];
    uint32_t account;
    uint32_t perms;      /* enum perm; reading is always allowed */
    bool enabled;
    uint8_t ncidr;
    uint32_t cidr_addr[KEY_CIDRS_MAX]; /* IPv4, host order */
    uint8_t cidr_bits[KEY_CIDRS_MAX];
    ms_t created_ms;
};

struct keys {
    pthread_mutex_t lock;
    struct key_rec *v;
    uint32_t n, cap;
};

void keys_init(struct keys *t);
void keys_destroy(struct keys *t);
/* Adds k (the sequencer, applying CC_KEY). -1 when memory is gone or the
 * id is taken; the table is then unchanged. */
int keys_add(struct keys *t, const struct key_rec *k);
bool keys_get(struct keys *t, const char *id, struct key_rec *out);
/* The account's keys, oldest first, at most max. */
int keys_list(struct keys *t, uint32_t account, struct key_rec *out, int max);
/* Exchanges the two tables' keys (a restore puts the rebuilt ones in
 * place; readers of either see one table or the other, whole). */
void keys_swap(struct keys *a, struct keys *b);
/* Folds every key, in the order made, into h (the state hash). */
uint64_t keys_hash(struct keys *t, uint64_t h);

#endif
