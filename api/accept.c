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

/* What the acceptor handed out on a descriptor, until its daemon says it
 * closed it; a descriptor accept4 gives again while still marked was closed
 * by the daemon without a word (a connection it could not set up). */
struct handed {
    uint32_t ip4;
    uint16_t k;
    bool live;
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
    pthread_mutex_t lock;  /* ips, open, fds */
    struct ip_node *ips[IP_BUCKETS];
    unsigned open;         /* every thread's */
    struct handed *fds;    /* by descriptor */
    size_t nfds;
    _Atomic bool stop;
    _Atomic uint64_t load[ACCEPT_THREADS_MAX];
    _Atomic uint64_t refused;
};

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

/* Under the lock. */
static void give_back_locked(struct acceptor *a, unsigned k, uint32_t ip4)
{
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
}

/* Under the lock: what descriptor fd held, given back if still marked. */
static void release_fd_locked(struct acceptor *a, int fd)
{
    if (fd < 0 || (size_t)fd >= a->nfds || !a->fds[fd].live)
        return;
    a->fds[fd].live = false;
    give_back_locked(a, a->fds[fd].k, a->fds[fd].ip4);
}

void acceptor_closed(struct acceptor *a, int fd)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    release_fd_locked(a, fd);
    pthread_mutex_unlock(&a->lock);
}

/* Marks fd as handed to thread k for ip4; false when no room to mark it. */
static bool mark_fd(struct acceptor *a, int fd, unsigned k, uint32_t ip4)
{
    pthread_mutex_lock(&a->lock);
    release_fd_locked(a, fd); /* a connection the daemon dropped unannounced */
    bool ok = true;
    if ((size_t)fd >= a->nfds) {
        size_t n = a->nfds ? a->nfds : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        struct handed *m = realloc(a->fds, n * sizeof(*m));
        if (m) {
            memset(m + a->nfds, 0, (n - a->nfds) * sizeof(*m));
            a->fds = m;
            a->nfds = n;
        } else {
            ok = false;
        }
    }
    if (ok)
        a->fds[fd] = (struct handed){ip4, (uint16_t)k, true};
    else
        give_back_locked(a, k, ip4);
    pthread_mutex_unlock(&a->lock);
    return ok;
}

static void hand_off(struct acceptor *a, int c, const struct sockaddr_in *peer)
{
    uint32_t ip4 = peer->sin_addr.s_addr;
    unsigned k;
    if (!take(a, ip4, &k) || !mark_fd(a, c, k, ip4)) {
        close(c);
        atomic_fetch_add(&a->refused, 1);
        return;
    }
    /* MHD_NO: the daemon refused it and closed it, with no notice. */
    if (MHD_add_connection(a->d[k], c, (const struct sockaddr *)peer, sizeof(*peer)) != MHD_YES) {
        acceptor_closed(a, c);
        atomic_fetch_add(&a->refused, 1);
    }
}

static void *accept_main(void *arg)
{
    struct acceptor *a = arg;
    struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = a->wake, .events = POLLIN}};
    bool rest = false;
    while (!atomic_load(&a->stop)) {
        /* Resting (out of descriptors, or poll failing): only the stop is
         * watched for 10 ms; the listening socket stays readable meanwhile. */
        int n = rest ? poll(&p[1], 1, 10) : poll(p, 2, -1);
        rest = false;
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "perpsim: accepting connections: poll: %s\n", strerror(errno));
            rest = true;
            continue;
        }
        for (;;) {
            if (atomic_load(&a->stop))
                break;
            struct sockaddr_in peer;
            socklen_t len = sizeof(peer);
            int c = accept4(a->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    rest = true;
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
    pthread_setname_np(a->thread, "http-accept");
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
        atomic_store(&a->stop, true);
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
    free(a->fds);
    free(a);
}
