/*
 * clock.c - the engine clock's sources (clock.h).
 */
#include "api/clock.h"

#include <stdlib.h>
#include <string.h>

static ms_t now_locked(const struct clocksrc *c)
{
    if (c->mode == CLOCK_STEPPED)
        return c->engine0;
    ms_t dw = c->wall() - c->wall0;
    if (dw < 0)
        dw = 0;
    return c->engine0 + dw * c->speed;
}

void clocksrc_init(struct clocksrc *c, ms_t (*wall)(void), enum clock_mode mode, int64_t speed,
                   ms_t start_ms)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->wall = wall;
    c->mode = mode;
    c->speed = mode == CLOCK_ACCELERATED ? speed : 1;
    c->wall0 = wall();
    c->engine0 = start_ms ? start_ms : c->wall0;
}

void clocksrc_destroy(struct clocksrc *c)
{
    pthread_mutex_destroy(&c->lock);
}

ms_t clocksrc_now(struct clocksrc *c)
{
    pthread_mutex_lock(&c->lock);
    ms_t t = now_locked(c);
    pthread_mutex_unlock(&c->lock);
    return t;
}

static ms_t iface_now(void *ctx)
{
    return clocksrc_now(ctx);
}

struct core_clock clocksrc_iface(struct clocksrc *c)
{
    return (struct core_clock){iface_now, c};
}

int clocksrc_set_mode(struct clocksrc *c, enum clock_mode mode, int64_t speed, ms_t from)
{
    if (mode == CLOCK_ACCELERATED && (speed < 1 || speed > CLOCK_SPEED_MAX))
        return -1;
    pthread_mutex_lock(&c->lock);
    ms_t t = now_locked(c);
    if (from > t)
        t = from;
    c->mode = mode;
    c->speed = mode == CLOCK_ACCELERATED ? speed : 1;
    c->wall0 = c->wall();
    c->engine0 = t;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void clocksrc_get(struct clocksrc *c, enum clock_mode *mode, int64_t *speed)
{
    pthread_mutex_lock(&c->lock);
    *mode = c->mode;
    *speed = c->speed;
    pthread_mutex_unlock(&c->lock);
}

void clocksrc_set_stepped(struct clocksrc *c, ms_t t)
{
    pthread_mutex_lock(&c->lock);
    if (c->mode == CLOCK_STEPPED && t > c->engine0)
        c->engine0 = t;
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
