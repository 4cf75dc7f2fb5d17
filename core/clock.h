/*
 * clock.h - where engine time comes from.
 *
 * Time is an input: nothing in engine/, margin/ or core/ reads a clock of
 * the machine. The sequencer asks its clock source for the time of each
 * command and never lets engine time go back (a source that steps back is
 * held at the last time given). Today's source is the wall clock (api/
 * supplies it); tests use a source they step by hand; the market issue
 * adds accelerated and stepped time behind the same interface.
 */
#ifndef PERPSIM_CORE_CLOCK_H
#define PERPSIM_CORE_CLOCK_H

#include "engine/units.h"

struct core_clock {
    /* Engine time in milliseconds since the epoch. Called by the thread
     * applying a command, under the state lock. */
    ms_t (*now)(void *ctx);
    void *ctx;
    /* Optional: a restore took engine time back to t (core.h,
     * Checkpoints); the source gives t from now on, or later. */
    void (*rewind)(void *ctx, ms_t t);
};

#endif
