/*
 * warm.c - SCHED_IDLE spinners that keep the CPUs awake for a window after
 * each request; the rules are in warm.h.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "api/warm.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct warm {
    int64_t window_ns;
    unsigned n;
    pthread_t th[WARM_THREADS_MAX];
    _Atomic int64_t last_ns; /* the last request's arrival */
    _Atomic unsigned sleepers; /* threads waiting on wake, or about to */
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool hot(struct warm *w)
{
    return now_ns() - atomic_load(&w->last_ns) < w->window_ns;
}

static void *spinner(void *arg)
{
    struct warm *w = arg;
    struct sched_param p = {0};
    /* Never spin at normal priority: that would compete with the server. */
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &p) != 0)
        return NULL;
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop)) {
        if (hot(w)) {
            pthread_mutex_unlock(&w->mu);
            while (!atomic_load_explicit(&w->stop, memory_order_relaxed) && hot(w))
                for (int i = 0; i < 32; i++)
                    __asm__ __volatile__("" ::: "memory");
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* Dekker with warm_touch (both sequentially consistent): either the
         * toucher sees this sleeper and broadcasts under mu (so after this
         * thread waits), or this re-check sees its request. Each sleeper
         * counts itself, so one waking up cannot hide another still asleep. */
        atomic_fetch_add(&w->sleepers, 1);
        if (!hot(w) && !atomic_load(&w->stop))
            pthread_cond_wait(&w->wake, &w->mu);
        atomic_fetch_sub(&w->sleepers, 1);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct warm *warm_start(int64_t window_ns)
{
    if (window_ns <= 0)
        return NULL;
    struct warm *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->window_ns = window_ns;
    atomic_init(&w->last_ns, now_ns() - window_ns);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = cpus < 1 ? 1u : cpus > (long)WARM_THREADS_MAX ? WARM_THREADS_MAX : (unsigned)cpus;
    while (w->n < want && pthread_create(&w->th[w->n], NULL, spinner, w) == 0)
        w->n++;
    if (w->n == 0) {
        warm_stop(w);
        return NULL;
    }
    return w;
}

void warm_touch(struct warm *w)
{
    if (!w)
        return;
    atomic_store(&w->last_ns, now_ns());
    if (atomic_load(&w->sleepers) > 0) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->wake);
        pthread_mutex_unlock(&w->mu);
    }
}

void warm_stop(struct warm *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n; i++)
        pthread_join(w->th[i], NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
