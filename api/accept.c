/*
 * accept.c - the HTTP listener and its acceptor thread (accept.h).
 */
#define _GNU_SOURCE /* accept4 */
#include "api/accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections per client address: chained buckets, a node while the count
 * is above zero. */
#define IP_BUCKETS 4096

struct ip_node {
    struct ip_node *next;
    uint32_t ip4;
    unsigned count;
};

struct acceptor {
    int fd;                /* the listening socket */
    int wake;              /* eventfd: stop */
    uint16_t port;
    unsigned threads;
    unsigned max_per_ip, max_total;
    struct MHD_Daemon *d[ACCEPT_THREADS_MAX];
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;  /* ips, open */
    struct ip_node *ips[IP_BUCKETS];
    unsigned open;         /* every thread's */
    _Atomic uint64_t load[ACCEPT_THREADS_MAX];
    _Atomic uint64_t refused;
};

/* Whether MHD_add_connection reached the daemon's notifier in this thread
 * (it calls it at once for a connection it takes, in the caller's thread or
 * later in its own). */
static _Thread_local bool tl_started;

static unsigned ip_bucket(uint32_t ip4)
{
    return (unsigned)((ip4 * UINT32_C(2654435761)) >> 20) % IP_BUCKETS;
}

/* Takes a place for ip4 on thread k, under the caps; false when full. */
static bool take(struct acceptor *a, uint32_t ip4, unsigned *k)
{
    pthread_mutex_lock(&a->lock);
    struct ip_node **b = &a->ips[ip_bucket(ip4)], *n = *b;
    while (n && n->ip4 != ip4)
        n = n->next;
    bool ok = a->open < a->max_total && (!n || n->count < a->max_per_ip);
    if (ok && !n) {
        n = calloc(1, sizeof(*n));
        if (n) {
            n->ip4 = ip4;
            n->next = *b;
            *b = n;
        } else {
            ok = false;
        }
    }
    if (ok) {
        n->count++;
        a->open++;
        unsigned best = 0;
        for (unsigned t = 1; t < a->threads; t++)
            if (atomic_load(&a->load[t]) < atomic_load(&a->load[best]))
                best = t;
        atomic_fetch_add(&a->load[best], 1);
        *k = best;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

static void give_back(struct acceptor *a, unsigned k, uint32_t ip4)
{
    pthread_mutex_lock(&a->lock);
    struct ip_node **p = &a->ips[ip_bucket(ip4)];
    while (*p && (*p)->ip4 != ip4)
        p = &(*p)->next;
    if (*p && --(*p)->count == 0) {
        struct ip_node *dead = *p;
        *p = dead->next;
        free(dead);
    }
    if (a->open)
        a->open--;
    if (k < a->threads && atomic_load(&a->load[k]))
        atomic_fetch_sub(&a->load[k], 1);
    pthread_mutex_unlock(&a->lock);
}

void acceptor_started(void)
{
    tl_started = true;
}

void acceptor_closed(struct acceptor *a, unsigned k, uint32_t ip4)
{
    if (a)
        give_back(a, k, ip4);
}

static void hand_off(struct acceptor *a, int c, const struct sockaddr_in *peer)
{
    uint32_t ip4 = peer->sin_addr.s_addr;
    unsigned k;
    if (!take(a, ip4, &k)) {
        close(c);
        atomic_fetch_add(&a->refused, 1);
        return;
    }
    tl_started = false;
    if (MHD_add_connection(a->d[k], c, (const struct sockaddr *)peer, sizeof(*peer)) != MHD_YES &&
        !tl_started)
        give_back(a, k, ip4); /* the daemon closed it without a word */
}

static void *accept_main(void *arg)
{
    struct acceptor *a = arg;
    struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = a->wake, .events = POLLIN}};
    int timeout = -1;
    for (;;) {
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        timeout = -1;
        for (;;) {
            struct sockaddr_in peer;
            socklen_t len = sizeof(peer);
            int c = accept4(a->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) {
                /* Out of descriptors: try again shortly, not in a spin. */
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    timeout = 10;
                break;
            }
            if (len != sizeof(peer) || peer.sin_family != AF_INET) {
                close(c);
                continue;
            }
            hand_off(a, c, &peer);
        }
    }
    return NULL;
}

struct acceptor *acceptor_open(const struct sockaddr_in *addr, unsigned threads, unsigned max_per_ip,
                               unsigned max_total, char *err, size_t errcap)
{
    if (threads == 0 || threads > ACCEPT_THREADS_MAX) {
        snprintf(err, errcap, "HTTP threads must be 1..%d", ACCEPT_THREADS_MAX);
        return NULL;
    }
    struct acceptor *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    a->threads = threads;
    a->max_per_ip = max_per_ip ? max_per_ip : UINT32_MAX;
    a->max_total = max_total ? max_total : UINT32_MAX;
    a->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    char host[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr->sin_addr, host, sizeof(host));
    if (a->wake < 0 || a->fd < 0 || setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(a->fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 || listen(a->fd, 1024) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%u: %s", host, ntohs(addr->sin_port), strerror(errno));
        goto fail;
    }
    struct sockaddr_in got;
    socklen_t len = sizeof(got);
    if (getsockname(a->fd, (struct sockaddr *)&got, &len) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%u: %s", host, ntohs(addr->sin_port), strerror(errno));
        goto fail;
    }
    a->port = ntohs(got.sin_port);
    pthread_mutex_init(&a->lock, NULL);
    return a;
fail:
    if (a->fd >= 0)
        close(a->fd);
    if (a->wake >= 0)
        close(a->wake);
    free(a);
    return NULL;
}

uint16_t acceptor_port(const struct acceptor *a)
{
    return a->port;
}

int acceptor_run(struct acceptor *a, struct MHD_Daemon *const *d)
{
    for (unsigned k = 0; k < a->threads; k++)
        a->d[k] = d[k];
    if (pthread_create(&a->thread, NULL, accept_main, a) != 0)
        return -1;
    a->running = true;
    return 0;
}

uint64_t acceptor_thread_connections(const struct acceptor *a, unsigned k)
{
    return k < a->threads ? atomic_load(&a->load[k]) : 0;
}

uint64_t acceptor_refused(const struct acceptor *a)
{
    return atomic_load(&a->refused);
}

void acceptor_stop(struct acceptor *a)
{
    if (!a)
        return;
    if (a->running) {
        uint64_t one = 1;
        if (write(a->wake, &one, sizeof(one)) < 0) {
            /* an eventfd counter cannot be full here */
        }
        pthread_join(a->thread, NULL);
        a->running = false;
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    close(a->wake);
    for (unsigned b = 0; b < IP_BUCKETS; b++)
        while (a->ips[b]) {
            struct ip_node *n = a->ips[b];
            a->ips[b] = n->next;
            free(n);
        }
    pthread_mutex_destroy(&a->lock);
    free(a);
}
