/*
 * warm.h - keeps the CPUs from going idle for a short window after each
 * request, so the next request's wake-ups land on running CPUs.
 *
 * Why: on a virtual machine an idle vCPU halts, and waking a thread on a
 * halted vCPU goes through the hypervisor. On the 2-vCPU machines perpsim is
 * measured on, one such wake-up costs ~35 us, and an unloaded round trip
 * has two (client -> server thread, reply -> client): measured there, a
 * trivial GET went from p50 96 us to 68 us and a signed order from 137 us
 * to 93 us with the CPUs kept busy. Linux guests can do the same in the
 * kernel (cpuidle-haltpoll); this does it from user space, only while
 * requests flow.
 *
 * How: one thread per online CPU (at most WARM_THREADS_MAX) at SCHED_IDLE,
 * the lowest scheduling class, so any runnable thread of any process
 * preempts it at once and it only ever uses time the CPU would have spent
 * idle. Each spins while the last request is less than the window old,
 * then sleeps on a condition variable until the next request. The request
 * path pays one clock read, one store and one load (warm_touch).
 */
#ifndef PERPSIM_API_WARM_H
#define PERPSIM_API_WARM_H

#include <stdint.h>

#define WARM_THREADS_MAX 16u

struct warm;

/* Starts the threads; NULL when window_ns <= 0 (off) or nothing could
 * start (then the server simply runs without). */
struct warm *warm_start(int64_t window_ns);

/* A request arrived: keep the CPUs busy for the window from now. NULL-safe. */
void warm_touch(struct warm *w);

/* Stops and joins the threads, frees w. NULL-safe. */
void warm_stop(struct warm *w);

#endif
