/*
 * clock.h - the engine clock's sources (core/clock.h is the interface):
 *
 *   real          engine time runs at 1x: the wall clock, or the wall clock
 *                 offset to a chosen start (--start-time)
 *   accelerated   engine time runs at speed x the wall clock's rate from
 *                 where it was when the mode was set
 *   stepped       engine time moves only when told (clock_set_stepped, the
 *                 admin API's advance)
 *
 * A change of mode continues from the engine time of the moment (the
 * caller passes it), so engine time never jumps back; the sequencer holds
 * it where it is in any case. The source is read by whichever thread
 * applies a command and set by the admin API: a mutex keeps it whole.
 */
#ifndef PERPSIM_API_CLOCK_H
#define PERPSIM_API_CLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/clock.h"

enum clock_mode { CLOCK_REAL = 0, CLOCK_ACCELERATED, CLOCK_STEPPED };

#define CLOCK_SPEED_MAX 1000000

/* Readers (every signed request, every command) take no lock: a sequence
 * counter, odd while a writer (under the mutex) changes the fields; a
 * reader that sees it change reads again. */
struct clocksrc {
    pthread_mutex_t lock;
    atomic_uint gen;
    _Atomic int mode;        /* enum clock_mode */
    _Atomic int64_t speed;   /* accelerated: engine ms per wall ms (1 for real) */
    _Atomic int64_t wall0;   /* the wall time of the anchor */
    _Atomic int64_t engine0; /* the engine time at the anchor; stepped: the time */
    ms_t (*wall)(void);      /* the wall clock (tests may give their own) */
};

/* Starts in mode at engine time start_ms (0: the wall clock's now). */
void clocksrc_init(struct clocksrc *c, ms_t (*wall)(void), enum clock_mode mode, int64_t speed,
                   ms_t start_ms);
void clocksrc_destroy(struct clocksrc *c);
/* The interface the core reads. */
struct core_clock clocksrc_iface(struct clocksrc *c);
ms_t clocksrc_now(struct clocksrc *c);
/* Sets the mode (speed for accelerated, 1..CLOCK_SPEED_MAX), continuing
 * from engine time `from` (the sequencer's now, which may be ahead of the
 * source's). -1 for a bad speed. */
int clocksrc_set_mode(struct clocksrc *c, enum clock_mode mode, int64_t speed, ms_t from);
void clocksrc_get(struct clocksrc *c, enum clock_mode *mode, int64_t *speed);
/* Stepped: the time is now t (later only; earlier is ignored). */
void clocksrc_set_stepped(struct clocksrc *c, ms_t t);
/* A restore (core.h, Checkpoints) took the exchange back to time t: a
 * stepped clock stands at t, an accelerated one runs on from t; the real
 * clock cannot go back (the exchange goes on at the wall clock's now). */
void clocksrc_rewind(struct clocksrc *c, ms_t t);
const char *clock_mode_name(enum clock_mode m);
/* "real", "stepped", "accelerated:N" (N 1..CLOCK_SPEED_MAX). -1 if not. */
int clock_mode_parse(const char *text, enum clock_mode *mode, int64_t *speed);

#endif
