/*
 * clock.c - the engine clock's sources (clock.h).
 */
#include "api/clock.h"

#include <stdlib.h>
#include <string.h>

/* The time from the fields read once (stepped: the time; else the anchor
 * moved on at speed). */
static ms_t time_of(int mode, int64_t speed, ms_t wall0, ms_t engine0, ms_t wall)
{
    if (mode == CLOCK_STEPPED)
        return engine0;
    ms_t dw = wall - wall0;
    if (dw < 0)
        dw = 0;
    return engine0 + dw * speed;
}

static void read_fields(struct clocksrc *c, int *mode, int64_t *speed, ms_t *wall0, ms_t *engine0)
{
    for (;;) {
        unsigned g = atomic_load_explicit(&c->gen, memory_order_acquire);
        if (g & 1)
            continue; /* a writer is in the middle */
        *mode = atomic_load_explicit(&c->mode, memory_order_relaxed);
        *speed = atomic_load_explicit(&c->speed, memory_order_relaxed);
        *wall0 = atomic_load_explicit(&c->wall0, memory_order_relaxed);
        *engine0 = atomic_load_explicit(&c->engine0, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->gen, memory_order_relaxed) == g)
            return;
    }
}

/* Writers hold the mutex. */
static void write_begin(struct clocksrc *c)
{
    atomic_fetch_add_explicit(&c->gen, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(struct clocksrc *c)
{
    atomic_fetch_add_explicit(&c->gen, 1, memory_order_release);
}

void clocksrc_init(struct clocksrc *c, ms_t (*wall)(void), enum clock_mode mode, int64_t speed,
                   ms_t start_ms)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->wall = wall;
    ms_t w = wall();
    atomic_init(&c->gen, 0);
    atomic_init(&c->mode, (int)mode);
    atomic_init(&c->speed, mode == CLOCK_ACCELERATED ? speed : 1);
    atomic_init(&c->wall0, w);
    atomic_init(&c->engine0, start_ms ? start_ms : w);
}

void clocksrc_destroy(struct clocksrc *c)
{
    pthread_mutex_destroy(&c->lock);
}

ms_t clocksrc_now(struct clocksrc *c)
{
    int mode;
    int64_t speed;
    ms_t wall0, engine0;
    read_fields(c, &mode, &speed, &wall0, &engine0);
    return time_of(mode, speed, wall0, engine0, mode == CLOCK_STEPPED ? 0 : c->wall());
}

static ms_t iface_now(void *ctx)
{
    return clocksrc_now(ctx);
}

static void iface_rewind(void *ctx, ms_t t)
{
    clocksrc_rewind(ctx, t);
}

struct core_clock clocksrc_iface(struct clocksrc *c)
{
    return (struct core_clock){iface_now, c, iface_rewind};
}

void clocksrc_rewind(struct clocksrc *c, ms_t t)
{
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->mode) != CLOCK_REAL) {
        write_begin(c);
        atomic_store_explicit(&c->wall0, c->wall(), memory_order_relaxed);
        atomic_store_explicit(&c->engine0, t, memory_order_relaxed);
        write_end(c);
    }
    pthread_mutex_unlock(&c->lock);
}

int clocksrc_set_mode(struct clocksrc *c, enum clock_mode mode, int64_t speed, ms_t from)
{
    if (mode == CLOCK_ACCELERATED && (speed < 1 || speed > CLOCK_SPEED_MAX))
        return -1;
    pthread_mutex_lock(&c->lock);
    ms_t t = clocksrc_now(c), w = c->wall();
    if (from > t)
        t = from;
    write_begin(c);
    atomic_store_explicit(&c->mode, (int)mode, memory_order_relaxed);
    atomic_store_explicit(&c->speed, mode == CLOCK_ACCELERATED ? speed : 1, memory_order_relaxed);
    atomic_store_explicit(&c->wall0, w, memory_order_relaxed);
    atomic_store_explicit(&c->engine0, t, memory_order_relaxed);
    write_end(c);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void clocksrc_get(struct clocksrc *c, enum clock_mode *mode, int64_t *speed)
{
    int m;
    ms_t w0, e0;
    read_fields(c, &m, speed, &w0, &e0);
    *mode = (enum clock_mode)m;
}

void clocksrc_set_stepped(struct clocksrc *c, ms_t t)
{
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->mode) == CLOCK_STEPPED && t > atomic_load(&c->engine0)) {
        write_begin(c);
        atomic_store_explicit(&c->engine0, t, memory_order_relaxed);
        write_end(c);
    }
    pthread_mutex_unlock(&c->lock);
}

const char *clock_mode_name(enum clock_mode m)
{
    switch (m) {
    case CLOCK_ACCELERATED: return "accelerated";
    case CLOCK_STEPPED: return "stepped";
    default: return "real";
    }
}

int clock_mode_parse(const char *text, enum clock_mode *mode, int64_t *speed)
{
    if (!text)
        return -1;
    if (strcmp(text, "real") == 0) {
        *mode = CLOCK_REAL;
        *speed = 1;
        return 0;
    }
    if (strcmp(text, "stepped") == 0) {
        *mode = CLOCK_STEPPED;
        *speed = 1;
        return 0;
    }
    if (strncmp(text, "accelerated:", 12) == 0) {
        char *end = NULL;
        long long n = strtoll(text + 12, &end, 10);
        if (end == text + 12 || *end || n < 1 || n > CLOCK_SPEED_MAX)
            return -1;
        *mode = CLOCK_ACCELERATED;
        *speed = n;
        return 0;
    }
    return -1;
}
