/*
 * accept.h - the HTTP listener: one listening socket and an acceptor thread
 * that hands each new connection to the HTTP thread (a single-threaded
 * libmicrohttpd daemon) holding the fewest open connections.
 *
 * Why: libmicrohttpd's own thread pool lets whichever worker wakes first
 * accept a burst of connections (up to ten at a time, and again), so a
 * client's keep-alive connections could all land on one thread and stay
 * there for their life: the same benchmark measured 16-18k or 33-39k
 * signed orders/s by chance. Here the spread is decided once per
 * connection, by count, and does not depend on which thread is awake.
 *
 * The acceptor also keeps the connection caps (per client address and in
 * all): past them a new connection is closed at once, counted in
 * acceptor_refused(). It counts a connection from its hand-off until its
 * daemon says it closed (acceptor_closed, by descriptor); a hand-off the
 * daemon refuses is uncounted at once.
 */
#ifndef PERPSIM_API_ACCEPT_H
#define PERPSIM_API_ACCEPT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Daemon;
struct acceptor;

#define ACCEPT_THREADS_MAX 64

/* Binds and listens on addr (port 0: any free port); no thread yet. NULL
 * with a message in err when the address cannot be had. */
struct acceptor *acceptor_open(const struct sockaddr_in *addr, unsigned threads, unsigned max_per_ip,
                               unsigned max_total, char *err, size_t errcap);
uint16_t acceptor_port(const struct acceptor *a);

/* Starts accepting, handing connections to d[0..threads-1] (daemons made
 * with MHD_USE_NO_LISTEN_SOCKET). 0 on success. */
int acceptor_run(struct acceptor *a, struct MHD_Daemon *const *d);

/* From a daemon's connection notifier, in the daemon's thread: the
 * connection on descriptor fd is closing (called before the daemon closes
 * fd). A connection a daemon drops without notice (one it cannot set up)
 * is given back when accept4 hands out its descriptor again. */
void acceptor_closed(struct acceptor *a, int fd);

/* Connections open on thread k now; connections refused at the caps. */
uint64_t acceptor_thread_connections(const struct acceptor *a, unsigned k);
uint64_t acceptor_refused(const struct acceptor *a);

/* Stops accepting and closes the listening socket (the daemons go on with
 * the connections they have); then, once the daemons are stopped, free. */
void acceptor_stop(struct acceptor *a);
void acceptor_free(struct acceptor *a);

#endif
