/*
 * ref_engine.h - the naive reference matching engine (tests only).
 *
 * A second, deliberately simple implementation of the semantics written in
 * engine/engine.h ("THE RULES"), used by test_diff.c to check the fast engine
 * event by event. It shares the engine's public types (struct cmd,
 * struct event, the enums) and none of its code.
 *
 * Model: one plain array of live orders in ascending id; each resting order
 * carries the "queue time" at which it joined its level; best prices, queue
 * heads and visible level sizes are found by linear scans. O(live orders)
 * per step; clarity over speed.
 *
 * Scope: everything in engine.h except the margin hooks (hooks must be NULL;
 * no admit, no market bound, no on_fill). Stops, trailing stops and pegs are
 * covered (rules 8 and 9). Readings of rules that engine.h leaves open are
 * written as "READING:" comments in ref_engine.c.
 */
#ifndef PERPSIM_TESTS_REF_ENGINE_H
#define PERPSIM_TESTS_REF_ENGINE_H

#include <stdint.h>

#include "engine/engine.h"

struct ref_engine;

/* Returns NULL when the config is unusable or memory cannot be had. hooks
 * must be NULL (the reference has no margin core). */
struct ref_engine *ref_create(const struct engine_config *cfg, engine_sink_fn sink, void *sink_ctx,
                              const struct engine_hooks *hooks);
void ref_destroy(struct ref_engine *r);

/* Same contract as engine_apply(). */
enum reject ref_apply(struct ref_engine *r, const struct cmd *c);

/* Reads, mirroring engine.h's, plus what the random generator needs. */
uint32_t ref_orders_live(const struct ref_engine *r);
/* The i-th live order in ascending id (0 <= i < ref_orders_live()); clordid
 * and linkid point into the reference (valid until the next ref_apply). */
int ref_live_at(const struct ref_engine *r, uint32_t i, struct order_view *out, const char **clordid,
                const char **linkid);
int ref_order(const struct ref_engine *r, uint64_t order_id, struct order_view *out);
uint64_t ref_next_order_id(const struct ref_engine *r);
qty_t ref_position(const struct ref_engine *r, uint32_t account, uint16_t inst);
px_t ref_price(const struct ref_engine *r, uint16_t inst, enum price_source src);
px_t ref_best(const struct ref_engine *r, uint16_t inst, enum side side);
uint32_t ref_levels(const struct ref_engine *r, uint16_t inst, enum side side, uint32_t max, px_t *px,
                    qty_t *size);
/* Working (non-stop) and untriggered stop orders of one account and instrument. */
uint32_t ref_open_orders(const struct ref_engine *r, uint32_t account, uint16_t inst);
uint32_t ref_stop_orders(const struct ref_engine *r, uint32_t account, uint16_t inst);

#endif
