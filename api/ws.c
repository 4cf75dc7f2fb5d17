/*
 * ws.c - the realtime WebSocket (ws.h): the upgrade, the connections, the
 * protocol, and the fan-out of the feed's messages.
 */
#include "api/ws.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "api/feed.h"
#include "api/json.h"
#include "api/params.h"
#include "api/srv_int.h"
#include "api/timefmt.h"
#include "api/wsmsg.h"

#define WS_VERSION "perpsim-0.1.0"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define EPOLL_BATCH 64
#define TICK_MS 250

void ws_config_default(struct ws_config *c)
{
    c->max_conns = 20000;
    c->max_per_ip = 2000;
    c->max_subs = 256;
    c->msgs_per_s = 50;
    c->send_buf = 8u << 20;
    c->max_msg = 64u << 10;
    c->ping_ms = 30000;
    c->idle_ms = 90000;
}

/* A message shared by every connection it goes to: one whole text frame
 * (header and payload, as wslay's frame layer writes it), framed once
 * however many connections send it. */
struct msg {
    int refs;
    size_t len;
    unsigned char frame[];
};

struct framer {
    unsigned char *p;
    size_t len, cap;
};

static ssize_t framer_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    struct framer *f = user;
    if (f->len + len > f->cap) {
        fprintf(stderr, "perpsim: WebSocket framing overflow: stopping\n");
        abort();
    }
    memcpy(f->p + f->len, data, len);
    f->len += len;
    return (ssize_t)len;
}

static struct msg *msg_new(const char *text, size_t len)
{
    struct msg *m = malloc(sizeof(*m) + len + 14);
    if (!m) {
        fprintf(stderr, "perpsim: out of memory in the WebSocket: stopping\n");
        abort();
    }
    static const struct wslay_frame_callbacks cbs = {framer_send, NULL, NULL};
    struct framer f = {m->frame, 0, len + 14};
    wslay_frame_context_ptr fc;
    if (wslay_frame_context_init(&fc, &cbs, &f) != 0) {
        fprintf(stderr, "perpsim: out of memory in the WebSocket: stopping\n");
        abort();
    }
    struct wslay_frame_iocb io = {1, WSLAY_RSV_NONE, WSLAY_TEXT_FRAME, len, 0, (const uint8_t *)text, len};
    size_t sent = 0;
    while (sent < len || f.len == 0) {
        ssize_t n = wslay_frame_send(fc, &io);
        if (n < 0) {
            fprintf(stderr, "perpsim: WebSocket framing failed (%zd): stopping\n", n);
            abort();
        }
        sent += (size_t)n;
        io.data += n;
        io.data_length -= (size_t)n;
        if (len == 0)
            break;
    }
    wslay_frame_context_free(fc);
    m->refs = 1;
    m->len = f.len;
    return m;
}

static void msg_put(struct msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

struct outq {
    struct msg **v;
    uint32_t head, n, cap;
    size_t bytes;       /* of the frames queued, the first's written part included */
    size_t off;         /* bytes of v[head] already written */
};

struct topic_sub {
    bool all;       /* table without a symbol filter */
    uint64_t insts; /* table:SYMBOL for these instruments */
};

struct conn {
    uint64_t id;
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    wslay_event_context_ptr ctx;
    char *extra;        /* bytes libmicrohttpd read past the handshake */
    size_t extra_len, extra_off;
    uint32_t ip4;
    char ip[64];
    bool authed;
    struct key_rec key;
    struct topic_sub sub[FT_COUNT];
    uint32_t nsubs;
    struct outq q;      /* whole frames; q.off bytes of the first are written */
    bool dirty;         /* in w->dirty: has frames to write this turn */
    ms_t last_rx, ping_at;
    double tokens;      /* client messages allowed now */
    ms_t tokens_at, limited_at;
    uint32_t over;      /* messages refused in the current second */
    bool closing;       /* closing: no new message is queued */
    bool close_pending; /* the close frame goes out after the queue */
    bool wr_shut;       /* close frame sent and the write side shut */
    bool draining;      /* wslay is done: what the client still sends is read and dropped */
    uint16_t close_code;
    char close_reason[124];
    ms_t close_deadline;
    bool dead;
    bool want_out;      /* EPOLLOUT registered */
    char *subscribe;    /* ?subscribe= of the upgrade, done after the welcome */
    uint32_t slot;      /* index in w->conns */
    struct ws *w;
};

/* A connection waiting for the WebSocket thread (made on an HTTP thread). */
struct pending {
    struct pending *next;
    struct conn *c;
};

/* A completion for a connection (cancelAllAfter's reply). */
struct reply {
    struct reply *next;
    uint64_t conn_id;
    char *text;
};

struct cvec {
    struct conn **v;
    uint32_t n, cap;
};

struct ws {
    struct srv *s;
    struct ws_config cfg;
    struct feed *feed;
    pthread_t th;
    bool started;
    int ep, efd;
    pthread_mutex_t lock; /* the queues below */
    const struct core_record **recs; /* the core's copies, kept (core_subscribe_owner) */
    uint32_t nrecs, cap_recs;
    const struct core_record **work; /* the thread's turn: swapped with recs */
    uint32_t cap_work;
    struct pending *pend;
    struct reply *replies;
    bool stopping, stopped;
    /* the WebSocket thread's own */
    struct cvec conns;
    struct cvec pub[FT_COUNT][INSTRUMENTS_MAX + 1]; /* [0]: no symbol filter */
    struct cvec *acct;   /* authenticated connections per account */
    uint32_t accounts_max;
    uint64_t next_id;
    /* per IP (shared with the HTTP threads, under lock) */
    struct ipcount { uint32_t ip4; char ip[64]; uint32_t n; } *ips;
    uint32_t nips, cap_ips;
    uint32_t open; /* connections admitted and not yet closed */
    ms_t drop_at;  /* the last websocketDrops draw */
    struct cvec dirty;   /* connections with frames to write */
    struct conn **grave; /* closed this turn, freed at its end */
    uint32_t ngrave, cap_grave;
    /* metrics */
    /* restores (core.h, Checkpoints): the feed rebuilt by the applying
     * thread (under the state lock), then the ones ready for their
     * restore's record, in order (under lock) */
    struct feed *building;
    uint64_t building_seq;
    struct ready_feed { struct ready_feed *next; uint64_t seq; struct feed *f; } *ready;
    atomic_bool sleeping; /* the thread is in (or about to enter) epoll_wait */
    atomic_uint_fast64_t m_conns, m_open, m_subs, m_msgs, m_bytes, m_in, m_drops, m_refused;
};

/* ---- small helpers --------------------------------------------------------------------------- */

/* Milliseconds on the monotonic clock: idle, ping, close and message-rate
 * timers do not jump with the wall clock. */
static ms_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *grow(void *p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    uint32_t nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) {
        fprintf(stderr, "perpsim: out of memory in the WebSocket: stopping\n");
        abort();
    }
    *cap = nc;
    return q;
}

static void cvec_add(struct cvec *v, struct conn *c)
{
    v->v = grow(v->v, &v->cap, v->n + 1, sizeof(*v->v));
    v->v[v->n++] = c;
}

static void cvec_del(struct cvec *v, struct conn *c)
{
    for (uint32_t k = 0; k < v->n; k++)
        if (v->v[k] == c) {
            v->v[k] = v->v[--v->n];
            return;
        }
}

static void wake(struct ws *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof(one));
    (void)n;
}

/* ---- the change stream: queued by the applying thread, applied here --------------------------- */

static void on_record(void *ctx, const struct core_record *r)
{
    struct ws *w = ctx;
    pthread_mutex_lock(&w->lock);
    if (w->stopped) {
        pthread_mutex_unlock(&w->lock);
        core_record_release(r);
        return;
    }
    w->recs = grow(w->recs, &w->cap_recs, w->nrecs + 1, sizeof(*w->recs));
    w->recs[w->nrecs++] = r;
    pthread_mutex_unlock(&w->lock);
    /* Wake the thread only when it sleeps and someone is connected: with
     * no connection the records wait for its next tick (or a new
     * connection, which applies them before its partials), and a busy
     * thread finds them on its next turn: no system call per command. */
    if (atomic_load_explicit(&w->m_open, memory_order_relaxed) > 0 &&
        atomic_exchange_explicit(&w->sleeping, false, memory_order_acq_rel))
        wake(w);
}

/* ---- sending ------------------------------------------------------------------------------------- */

static void close_with(struct ws *w, struct conn *c, uint16_t code, const char *reason, bool drop);
static void conn_close(struct ws *w, struct conn *c, uint16_t code, const char *reason)
{
    close_with(w, c, code, reason, false);
}

static void q_pop(struct outq *q)
{
    struct msg *m = q->v[q->head];
    q->bytes -= m->len - q->off;
    q->off = 0;
    q->head = (q->head + 1) % q->cap;
    q->n--;
    msg_put(m);
}

/* Writes queued frames with one writev per call; false on a socket error.
 * *full: the socket took less than offered. */
static bool write_frames(struct conn *c, bool *full)
{
    struct iovec iov[256];
    *full = false;
    while (c->q.n) {
        int n = 0;
        for (uint32_t k = 0; k < c->q.n && n < 256; k++, n++) {
            struct msg *m = c->q.v[(c->q.head + k) % c->q.cap];
            size_t off = k == 0 ? c->q.off : 0;
            iov[n].iov_base = m->frame + off;
            iov[n].iov_len = m->len - off;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w;
        do
            w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                *full = true;
                return true;
            }
            return false;
        }
        size_t left = (size_t)w;
        while (left && c->q.n) {
            struct msg *m = c->q.v[c->q.head];
            size_t rest = m->len - c->q.off;
            if (left < rest) {
                c->q.off += left;
                c->q.bytes -= left;
                left = 0;
                break;
            }
            left -= rest;
            c->q.bytes -= rest;
            c->q.off = m->len;
            q_pop(&c->q);
        }
        if (c->q.n && c->q.off) {
            *full = true; /* the socket took part of a frame */
            return true;
        }
    }
    return true;
}

static void update_events(struct ws *w, struct conn *c, bool out)
{
    if (c->dead || c->draining || out == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Sends what c has: wslay's control frames (pong, ping, close) and the
 * queued frames, never one inside the other: wslay writes only when no
 * queued frame is half written, the queue only when wslay has nothing
 * pending. */
static void pump(struct ws *w, struct conn *c)
{
    if (c->dead || c->draining)
        return;
    bool full = false;
    for (int guard = 0; guard < 8 && !full; guard++) {
        if (c->q.off == 0 && wslay_event_want_write(c->ctx)) {
            if (wslay_event_send(c->ctx) != 0) {
                conn_close(w, c, 0, NULL);
                return;
            }
            if (wslay_event_want_write(c->ctx)) {
                full = true; /* wslay's frame waits for room */
                break;
            }
        }
        if (c->q.n && !write_frames(c, &full)) {
            conn_close(w, c, 0, NULL);
            return;
        }
        if (c->close_pending && c->q.n == 0) {
            c->close_pending = false;
            wslay_event_queue_close(c->ctx, c->close_code, (const uint8_t *)c->close_reason,
                                    strlen(c->close_reason));
            continue;
        }
        if (!wslay_event_want_write(c->ctx))
            break;
    }
    if (c->closing && !c->wr_shut && !c->close_pending && wslay_event_get_close_sent(c->ctx) &&
        !wslay_event_want_write(c->ctx) && c->q.n == 0) {
        /* the close frame is out: FIN after it, and go on reading until
         * the client's close (closing with its data unread would reset
         * the connection before the client reads the close frame) */
        c->wr_shut = true;
        shutdown(c->fd, SHUT_WR);
    }
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx) && c->q.n == 0 &&
        !c->close_pending) {
        if (wslay_event_get_close_received(c->ctx)) {
            conn_close(w, c, 0, NULL); /* both closes exchanged */
            return;
        }
        /* wslay closed on its own (a message over the limit, a protocol
         * error): its close frame is out; drain until the client's FIN so
         * the close frame is read, not reset away */
        if (!c->wr_shut) {
            c->wr_shut = true;
            shutdown(c->fd, SHUT_WR);
        }
        if (!c->draining) {
            c->draining = true;
            c->closing = true;
            c->close_deadline = mono_ms() + 2000;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
            c->want_out = false;
        }
        return;
    }
    update_events(w, c, full);
}

/* Reads and drops what a closing client still sends; true at its end. */
static bool drain(struct conn *c)
{
    char buf[16384];
    for (int k = 0; k < 64; k++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
    return false;
}

/* Queues a shared message for c (a reference taken); c is written at the
 * end of the loop's turn, with everything else queued for it. */
static void send_msg(struct ws *w, struct conn *c, struct msg *m)
{
    if (c->dead || c->closing)
        return;
    if (c->q.bytes + m->len > w->cfg.send_buf && c->q.n > 0) {
        atomic_fetch_add(&w->m_drops, 1);
        char reason[96];
        snprintf(reason, sizeof(reason), "slow reader: more than %zu bytes waiting to be sent",
                 w->cfg.send_buf);
        close_with(w, c, 1008, reason, true);
        return;
    }
    if (c->q.n + 1 > c->q.cap) {
        uint32_t nc = c->q.cap ? c->q.cap * 2 : 8;
        struct msg **v = malloc(nc * sizeof(*v));
        if (!v) {
            fprintf(stderr, "perpsim: out of memory in the WebSocket: stopping\n");
            abort();
        }
        for (uint32_t k = 0; k < c->q.n; k++)
            v[k] = c->q.v[(c->q.head + k) % c->q.cap];
        free(c->q.v);
        c->q.v = v;
        c->q.head = 0;
        c->q.cap = nc;
    }
    m->refs++;
    c->q.v[(c->q.head + c->q.n) % c->q.cap] = m;
    c->q.n++;
    c->q.bytes += m->len;
    if (!c->dirty) {
        c->dirty = true;
        cvec_add(&w->dirty, c);
    }
    atomic_fetch_add(&w->m_msgs, 1);
    atomic_fetch_add(&w->m_bytes, m->len);
}

static void send_text(struct ws *w, struct conn *c, const char *text, size_t len)
{
    struct msg *m = msg_new(text, len);
    send_msg(w, c, m);
    msg_put(m);
}

static void send_json(struct ws *w, struct conn *c, cJSON *o)
{
    char *t = json_print(o);
    cJSON_Delete(o);
    if (!t)
        return;
    send_text(w, c, t, strlen(t));
    free(t);
}

/* {"status":N,"error":E,"meta":{...},"request":REQ} */
static void send_error(struct ws *w, struct conn *c, int status, const char *error, const cJSON *request,
                       cJSON *meta)
{
    send_json(w, c, ws_error_json(status, error, request, meta));
}

/* ---- the feed's fan-out ----------------------------------------------------------------------------- */

static bool sub_matches(const struct conn *c, int table, int inst)
{
    const struct topic_sub *s = &c->sub[table];
    return s->all || (inst >= 0 && (s->insts >> inst & 1));
}

static bool want(void *ctx, int table, int inst, uint32_t account)
{
    struct ws *w = ctx;
    if (ft_info(table)->priv) {
        if (account >= w->accounts_max)
            return false;
        const struct cvec *v = &w->acct[account];
        for (uint32_t k = 0; k < v->n; k++)
            if (sub_matches(v->v[k], table, inst))
                return true;
        return false;
    }
    if (w->pub[table][0].n)
        return true;
    return inst >= 0 && w->pub[table][inst + 1].n;
}

static void emit(void *ctx, int table, int inst, uint32_t account, char *text, size_t len)
{
    struct ws *w = ctx;
    struct msg *m = msg_new(text, len);
    free(text);
    if (ft_info(table)->priv) {
        struct cvec *v = &w->acct[account];
        for (uint32_t k = 0; k < v->n; k++)
            if (sub_matches(v->v[k], table, inst))
                send_msg(w, v->v[k], m);
    } else {
        struct cvec *v = &w->pub[table][0];
        for (uint32_t k = 0; k < v->n; k++)
            send_msg(w, v->v[k], m);
        if (inst >= 0) {
            v = &w->pub[table][inst + 1];
            for (uint32_t k = 0; k < v->n; k++)
                if (!v->v[k]->sub[table].all)
                    send_msg(w, v->v[k], m);
        }
    }
    msg_put(m);
}

/* ---- subscriptions ------------------------------------------------------------------------------ */

static void sub_add(struct ws *w, struct conn *c, int table, int inst)
{
    struct topic_sub *s = &c->sub[table];
    if (inst == FT_ALL)
        s->all = true;
    else
        s->insts |= UINT64_C(1) << inst;
    c->nsubs++;
    atomic_fetch_add(&w->m_subs, 1);
    if (!ft_info(table)->priv)
        cvec_add(&w->pub[table][inst == FT_ALL ? 0 : inst + 1], c);
}

static void sub_del(struct ws *w, struct conn *c, int table, int inst)
{
    struct topic_sub *s = &c->sub[table];
    if (inst == FT_ALL)
        s->all = false;
    else
        s->insts &= ~(UINT64_C(1) << inst);
    c->nsubs--;
    atomic_fetch_sub(&w->m_subs, 1);
    if (!ft_info(table)->priv)
        cvec_del(&w->pub[table][inst == FT_ALL ? 0 : inst + 1], c);
}

static const char *const locked_note =
    "Account-locked tables include the following: account,affiliate,execution,margin,order,position,"
    "privateNotifications,transact,wallet";

/* One topic of a subscribe or unsubscribe: its ack and partial, or its error. */
static void topic_op(struct ws *w, struct conn *c, const char *topic, bool subscribe, const cJSON *request)
{
    char msg[160];
    struct ws_topic t;
    if (ws_topic_read(topic, w->s->x, &t, msg, sizeof(msg)) != 0) {
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    int table = t.table, inst = t.inst;
    if (ft_info(table)->priv && !c->authed) {
        cJSON *meta = cJSON_CreateObject();
        cJSON_AddStringToObject(meta, "note", locked_note);
        send_error(w, c, 401,
                   "User requested an account-locked subscription but no authorization was provided.",
                   request, meta);
        return;
    }
    const struct topic_sub *s = &c->sub[table];
    bool has = inst == FT_ALL ? s->all : (s->insts >> inst & 1) != 0;
    if (subscribe && has) {
        snprintf(msg, sizeof(msg), "You are already subscribed to this topic: %.60s", topic);
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    if (!subscribe && !has) {
        snprintf(msg, sizeof(msg), "You are not subscribed to this topic: %.60s", topic);
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    if (subscribe && c->nsubs >= w->cfg.max_subs) {
        snprintf(msg, sizeof(msg), "Too many subscriptions: at most %u per connection", w->cfg.max_subs);
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    cJSON *ack = cJSON_CreateObject();
    cJSON_AddBoolToObject(ack, "success", true);
    cJSON_AddStringToObject(ack, subscribe ? "subscribe" : "unsubscribe", t.canon);
    cJSON_AddItemToObject(ack, "request", cJSON_Duplicate(request, true));
    send_json(w, c, ack);
    if (!subscribe) {
        sub_del(w, c, table, inst);
        return;
    }
    size_t len;
    char *p = feed_partial(w->feed, table, inst, c->authed ? c->key.account : 0, &len);
    send_text(w, c, p, len);
    free(p);
    sub_add(w, c, table, inst);
}

static void topics_op(struct ws *w, struct conn *c, const cJSON *args, bool subscribe, const cJSON *request)
{
    if (cJSON_IsString(args)) {
        topic_op(w, c, args->valuestring, subscribe, request);
        return;
    }
    if (!cJSON_IsArray(args) || cJSON_GetArraySize(args) == 0) {
        send_error(w, c, 400, "Invalid args: a topic or an array of topics is required", request, NULL);
        return;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, args)
    {
        if (!cJSON_IsString(a)) {
            send_error(w, c, 400, "Invalid args: every topic must be a string", request, NULL);
            continue;
        }
        topic_op(w, c, a->valuestring, subscribe, request);
    }
}

/* ---- authentication ----------------------------------------------------------------------------- */

static bool ip_allowed_for(const struct key_rec *k, uint32_t ip4)
{
    if (!k->ncidr)
        return true;
    for (int i = 0; i < k->ncidr; i++) {
        uint32_t bits = k->cidr_bits[i];
        uint32_t mask = bits == 0 ? 0 : ~UINT32_C(0) << (32 - bits);
        if (ip4 && (ip4 & mask) == (k->cidr_addr[i] & mask))
            return true;
    }
    return false;
}

/* Checks key, expires (seconds, or milliseconds when it is that large)
 * and the signature of "GET/realtime" + expires. 0 and *key, or the
 * status with a message. */
static int ws_auth(struct srv *s, const char *key_id, const char *expires, const char *sig, uint32_t ip4,
                   struct key_rec *key, char *msg, size_t cap)
{
    ms_t now = clocksrc_now(&s->clk);
    if (!key_id || !expires || !sig) {
        snprintf(msg, cap, "Missing api-key, api-expires or api-signature.");
        return 401;
    }
    /* expires: 1..19 digits (nothing else); milliseconds when over 10^11 */
    size_t nd = strlen(expires);
    bool digits = nd >= 1 && nd <= 19;
    for (size_t i = 0; digits && i < nd; i++)
        digits = expires[i] >= '0' && expires[i] <= '9';
    i128 e = 0;
    for (size_t i = 0; digits && i < nd; i++)
        e = e * 10 + (expires[i] - '0');
    if (!digits || e <= 0 || e > INT64_MAX) {
        snprintf(msg, cap, "api-expires must be a number of seconds (or milliseconds) since the epoch.");
        return 400;
    }
    i128 exp_ms = e > INT64_C(100000000000) ? e : e * 1000; /* ccxt sends milliseconds */
    if (exp_ms + s->auth.skew_ms < (i128)now) {
        if (auth_format_error(AUTH_EXPIRED, now, msg, cap) < 0)
            snprintf(msg, cap, "This request has expired.");
        return auth_http_status(AUTH_EXPIRED);
    }
    struct auth_policy pol = srv_auth_policy(s, now);
    if (pol.max_future_s > 0 && exp_ms > (i128)now + (i128)pol.max_future_s * 1000) {
        if (auth_format_error(AUTH_EXPIRES_TOO_FAR, now, msg, cap) < 0)
            snprintf(msg, cap, "api-expires is too far in the future.");
        return auth_http_status(AUTH_EXPIRES_TOO_FAR);
    }
    if (!core_key_get(s->core, key_id, key)) {
        snprintf(msg, cap, "Invalid API Key.");
        return 401;
    }
    char want[AUTH_SIG_HEX_LEN + 1], got[AUTH_SIG_HEX_LEN + 1];
    size_t ns = strlen(sig);
    for (size_t i = 0; i < AUTH_SIG_HEX_LEN && i < ns; i++) /* hex in either case, as REST */
        got[i] = (char)(sig[i] >= 'A' && sig[i] <= 'F' ? sig[i] - 'A' + 'a' : sig[i]);
    got[AUTH_SIG_HEX_LEN] = 0;
    struct auth_request ar = {"GET", "/realtime", 9, NULL, 0};
    if (ns != AUTH_SIG_HEX_LEN ||
        auth_sign_text(key->secret, strlen(key->secret), &ar, expires, nd, want) != AUTH_E_OK ||
        CRYPTO_memcmp(want, got, AUTH_SIG_HEX_LEN) != 0) {
        snprintf(msg, cap, "Signature not valid.");
        return 401;
    }
    if (!key->enabled) {
        snprintf(msg, cap, "This key is disabled.");
        return 403;
    }
    if (!ip_allowed_for(key, ip4)) {
        snprintf(msg, cap, "Access Denied");
        return 403;
    }
    return 0;
}

static void set_auth(struct ws *w, struct conn *c, const struct key_rec *k)
{
    if (c->authed && c->key.account == k->account) {
        c->key = *k; /* the same account again (a refreshed signature): its topics go on */
        return;
    }
    if (c->authed) {
        /* private topics of the old account end with it */
        for (int t = 0; t < FT_COUNT; t++)
            if (ft_info(t)->priv) {
                uint32_t n = (c->sub[t].all ? 1u : 0u) + (uint32_t)__builtin_popcountll(c->sub[t].insts);
                c->nsubs -= n;
                atomic_fetch_sub(&w->m_subs, n);
                c->sub[t] = (struct topic_sub){0};
            }
        cvec_del(&w->acct[c->key.account], c);
    }
    c->authed = true;
    c->key = *k;
    if (k->account < w->accounts_max)
        cvec_add(&w->acct[k->account], c);
}

static void op_auth(struct ws *w, struct conn *c, const cJSON *args, const cJSON *request)
{
    const char *key_id, *sig;
    char expires[WS_EXPIRES_LEN], msg[200];
    if (ws_auth_args(args, &key_id, expires, &sig, msg, sizeof(msg)) != 0) {
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    struct key_rec k;
    int st = ws_auth(w->s, key_id, expires, sig, c->ip4, &k, msg, sizeof(msg));
    if (st) {
        send_error(w, c, st, msg, request, NULL);
        return;
    }
    set_auth(w, c, &k);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddItemToObject(o, "request", cJSON_Duplicate(request, true));
    send_json(w, c, o);
}

/* ---- cancelAllAfter ------------------------------------------------------------------------------- */

struct caa {
    struct ws *w;
    uint64_t conn_id;
    cJSON *request;
};

static void caa_done(struct core_job *j)
{
    struct caa *x = j->ctx;
    cJSON *o;
    if (j->rej[0] != REJ_NONE) {
        int status = 400;
        const char *m = reject_message(j->rej[0], &status);
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "error", m);
        cJSON_AddItemToObject(o, "meta", cJSON_CreateObject());
    } else {
        o = cJSON_CreateObject();
        add_time(o, "now", j->ts);
        if (j->cmds[0].u.cancel_after_ms > 0)
            add_time(o, "cancelTime", j->ts + j->cmds[0].u.cancel_after_ms);
        else
            cJSON_AddNumberToObject(o, "cancelTime", 0);
    }
    cJSON_AddItemToObject(o, "request", x->request);
    struct reply *rp = malloc(sizeof(*rp));
    char *t = json_print(o);
    cJSON_Delete(o);
    if (rp && t) {
        rp->conn_id = x->conn_id;
        rp->text = t;
        pthread_mutex_lock(&x->w->lock);
        rp->next = x->w->replies;
        x->w->replies = rp;
        pthread_mutex_unlock(&x->w->lock);
        wake(x->w);
    } else {
        free(rp);
        free(t);
    }
    free(x);
    core_job_free(j);
}

static void op_cancel_after(struct ws *w, struct conn *c, const cJSON *args, const cJSON *request)
{
    if (!c->authed) {
        send_error(w, c, 401, "Authentication required: send authKeyExpires first.", request, NULL);
        return;
    }
    if (!(c->key.perms & (PERM_ORDER | PERM_CANCEL))) {
        send_error(w, c, 403, "This key does not have the order permission.", request, NULL);
        return;
    }
    int64_t after_ms;
    char msg[128];
    if (ws_after_args(args, &after_ms, msg, sizeof(msg)) != 0) {
        send_error(w, c, 400, msg, request, NULL);
        return;
    }
    struct srv *s = w->s;
    if (s->rl) {
        struct rl_request q = {c->key.id, true, true, true, rl_cost_single()};
        struct rl_status st;
        if (rl_charge(s->rl, &q, wall_ms(), &st) == RL_REFUSED) {
            rl_format_429(st.retry_after_s, msg, sizeof(msg));
            send_error(w, c, 429, msg, request, NULL);
            return;
        }
    }
    struct core_job *j = core_job_new(J_CANCEL_AFTER, c->key.account, 1);
    struct caa *x = malloc(sizeof(*x));
    if (!j || !x) {
        core_job_free(j);
        free(x);
        send_error(w, c, 500, "Server Error", request, NULL);
        return;
    }
    j->cmds[0].type = CMD_CANCEL_ALL_AFTER;
    j->cmds[0].u.cancel_after_ms = after_ms;
    *x = (struct caa){w, c->id, cJSON_Duplicate(request, true)};
    j->done = caa_done;
    j->ctx = x;
    j->engine_thread = true; /* the WebSocket thread applies no one's writes */
    /* Not exempt: an exempt write waits for room in a full queue, and this
     * thread serves every socket; a full queue answers 503 instead. */
    if (core_submit(s->core, j, LS_KIND_CANCEL_AFTER, false) != LS_ACCEPTED) {
        cJSON_Delete(x->request);
        free(x);
        core_job_free(j);
        send_error(w, c, 503, "The system is currently overloaded. Please try again later.", request, NULL);
    }
}

/* ---- client messages -------------------------------------------------------------------------------- */

static const char *const unrecognized =
    "Unrecognized request. See the docs or send 'help' for more details.";

/* The message budget: false when this one is over it. */
static bool budget(struct ws *w, struct conn *c, ms_t now)
{
    double rate = w->cfg.msgs_per_s, burst = 2.0 * rate;
    c->tokens += (double)(now - c->tokens_at) * rate / 1000.0;
    if (c->tokens > burst)
        c->tokens = burst;
    c->tokens_at = now;
    if (c->tokens >= 1) {
        c->tokens -= 1;
        return true;
    }
    return false;
}

static void on_text(struct ws *w, struct conn *c, const char *text, size_t len)
{
    atomic_fetch_add(&w->m_in, 1);
    ms_t now = mono_ms();
    if (!budget(w, c, now)) {
        if (now - c->limited_at >= 1000) {
            c->limited_at = now;
            c->over = 0;
            cJSON *meta = cJSON_CreateObject();
            cJSON_AddNumberToObject(meta, "retryAfter", 1);
            cJSON_AddNumberToObject(meta, "limit", w->cfg.msgs_per_s);
            send_error(w, c, 429, "Rate limit exceeded, retry in 1 seconds.", NULL, meta);
        } else if (++c->over > 10 * w->cfg.msgs_per_s) {
            conn_close(w, c, 1008, "message rate limit exceeded");
        }
        return;
    }
    cJSON *req;
    enum ws_op op = ws_msg_read(text, len, &req);
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
    switch (op) {
    case WS_OP_SUBSCRIBE:
    case WS_OP_UNSUBSCRIBE: topics_op(w, c, args, op == WS_OP_SUBSCRIBE, req); break;
    case WS_OP_AUTH: op_auth(w, c, args, req); break;
    case WS_OP_AUTHKEY: send_error(w, c, 400, "authKey (nonce) is not supported: use authKeyExpires", req, NULL); break;
    case WS_OP_CANCEL_AFTER: op_cancel_after(w, c, args, req); break;
    case WS_OP_PING: send_text(w, c, "pong", 4); break;
    case WS_OP_HELP: {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "info", "See the docs for the table names and the ops.");
        const char *ops[] = {"authKeyExpires", "cancelAllAfter", "subscribe", "unsubscribe", "ping"};
        cJSON_AddItemToObject(h, "ops", cJSON_CreateStringArray(ops, 5));
        cJSON *pub = cJSON_CreateArray(), *priv = cJSON_CreateArray();
        for (int t = 0; t < FT_COUNT; t++)
            cJSON_AddItemToArray(ft_info(t)->priv ? priv : pub, cJSON_CreateString(ft_info(t)->name));
        cJSON *subj = cJSON_AddObjectToObject(h, "subscriptionSubjects");
        cJSON_AddItemToObject(subj, "public", pub);
        cJSON_AddItemToObject(subj, "authenticationRequired", priv);
        send_json(w, c, h);
        break;
    }
    case WS_OP_MALFORMED: send_error(w, c, 400, unrecognized, NULL, NULL); break;
    case WS_OP_UNKNOWN: send_error(w, c, 400, unrecognized, req, NULL); break;
    }
    cJSON_Delete(req);
}

/* ---- wslay callbacks ---------------------------------------------------------------------------------- */

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct conn *c = user;
    if (c->extra_off < c->extra_len) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len)
            n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        c->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t n;
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                           : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    c->last_rx = mono_ms();
    c->ping_at = 0;
    return n;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    struct conn *c = user;
    ssize_t n;
    do
        n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK
                                                                           : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return n;
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    struct conn *c = user;
    struct ws *w = c->w;
    if (c->closing || c->dead)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME && !json_utf8_valid((const char *)arg->msg, arg->msg_length))
        conn_close(w, c, 1007, "text frames must be UTF-8");
    else if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(w, c, (const char *)arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        conn_close(w, c, 1003, "binary frames are not accepted: send JSON text");
    /* ping: wslay queues the pong; pong and close need nothing here */
}

/* ---- connections ---------------------------------------------------------------------------------------- */

static void conn_free(struct ws *w, struct conn *c)
{
    for (uint32_t k = 0; k < c->q.n; k++)
        msg_put(c->q.v[(c->q.head + k) % c->q.cap]);
    free(c->q.v);
    if (c->ctx)
        wslay_event_context_free(c->ctx);
    free(c->extra);
    free(c->subscribe);
    (void)w;
    free(c);
}

static void ip_release(struct ws *w, const struct conn *c)
{
    pthread_mutex_lock(&w->lock);
    for (uint32_t k = 0; k < w->nips; k++)
        if (strcmp(w->ips[k].ip, c->ip) == 0) {
            if (--w->ips[k].n == 0)
                w->ips[k] = w->ips[--w->nips];
            break;
        }
    w->open--;
    pthread_mutex_unlock(&w->lock);
}

/* Ends c: with a close frame when code is set (after what is queued,
 * unless drop), then c lingers until the client's close or a second
 * passes; at once without a code. */
static void close_with(struct ws *w, struct conn *c, uint16_t code, const char *reason, bool drop)
{
    if (c->dead)
        return;
    if (code) {
        if (c->closing)
            return;
        c->closing = true;
        c->close_pending = true;
        c->close_code = code;
        snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "");
        c->close_deadline = mono_ms() + 2000;
        if (drop) {
            /* a frame half written is finished first: the stream stays whole */
            uint32_t keep = c->q.off ? 1 : 0;
            while (c->q.n > keep) {
                uint32_t last = (c->q.head + c->q.n - 1) % c->q.cap;
                c->q.bytes -= c->q.v[last]->len;
                msg_put(c->q.v[last]);
                c->q.n--;
            }
        }
        if (!c->dirty) {
            c->dirty = true;
            cvec_add(&w->dirty, c);
        }
        return;
    }
    c->dead = true;
    for (int t = 0; t < FT_COUNT; t++) {
        if (c->sub[t].all)
            sub_del(w, c, t, FT_ALL);
        for (int i = 0; i < INSTRUMENTS_MAX; i++)
            if (c->sub[t].insts >> i & 1)
                sub_del(w, c, t, i);
    }
    if (c->authed && c->key.account < w->accounts_max)
        cvec_del(&w->acct[c->key.account], c);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
    ip_release(w, c);
    atomic_fetch_sub(&w->m_open, 1);
    /* freed at the end of the loop's turn: events of this turn may name it */
    uint32_t slot = c->slot;
    w->conns.v[slot] = w->conns.v[--w->conns.n];
    w->conns.v[slot]->slot = slot;
    c->slot = UINT32_MAX;
}

static void bury(struct conn *c)
{
    struct ws *w = c->w;
    w->grave = grow(w->grave, &w->cap_grave, w->ngrave + 1, sizeof(*w->grave));
    w->grave[w->ngrave++] = c;
}

static void welcome(struct ws *w, struct conn *c)
{
    char ts[TF_ISO_BUF], buf[320];
    tf_format_ms(clocksrc_now(&w->s->clk), ts, sizeof(ts));
    uint32_t remaining = w->cfg.max_per_ip;
    pthread_mutex_lock(&w->lock);
    for (uint32_t k = 0; k < w->nips; k++)
        if (strcmp(w->ips[k].ip, c->ip) == 0)
            remaining = w->cfg.max_per_ip > w->ips[k].n ? w->cfg.max_per_ip - w->ips[k].n : 0;
    pthread_mutex_unlock(&w->lock);
    int n = snprintf(buf, sizeof(buf),
                     "{\"info\":\"Welcome to the BitMEX Realtime API.\",\"version\":\"" WS_VERSION "\",\"timestamp\":\"%s\",\"docs\":\"/api/explorer\",\"heartbeatEnabled\":false,"
                     "\"limit\":{\"remaining\":%u}}",
                     ts, remaining);
    send_text(w, c, buf, (size_t)n);
}

static void conn_start(struct ws *w, struct conn *c)
{
    c->w = w;
    static const struct wslay_event_callbacks cbs = {cb_recv, cb_send, NULL, NULL, NULL, NULL, cb_msg};
    if (wslay_event_context_server_init(&c->ctx, &cbs, c) != 0) {
        MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
        ip_release(w, c);
        conn_free(w, c);
        return;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, w->cfg.max_msg);
    /* Frames go out as soon as they are written (each turn's are already
     * one writev): no Nagle wait for the client's delayed acknowledgement. */
    int one = 1, zero = 0;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
    c->w = w;
    c->id = ++w->next_id;
    c->last_rx = c->tokens_at = mono_ms();
    c->tokens = 2.0 * w->cfg.msgs_per_s;
    c->slot = w->conns.n;
    cvec_add(&w->conns, c);
    atomic_fetch_add(&w->m_conns, 1);
    atomic_fetch_add(&w->m_open, 1);
    if (c->authed && c->key.account < w->accounts_max)
        cvec_add(&w->acct[c->key.account], c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev);
    welcome(w, c);
    if (c->subscribe) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", "subscribe");
        cJSON *args = cJSON_AddArrayToObject(req, "args");
        for (char *save = NULL, *t = strtok_r(c->subscribe, ",", &save); t; t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(args, cJSON_CreateString(t));
        topics_op(w, c, args, true, req);
        cJSON_Delete(req);
    }
    /* bytes that came with the handshake */
    if (c->extra_len && wslay_event_recv(c->ctx) != 0)
        conn_close(w, c, 0, NULL);
    pump(w, c);
    if (c->dead)
        bury(c);
}

/* ---- the thread ------------------------------------------------------------------------------------------ */

/* A restore's record: its rebuilt feed takes the old one's place, and
 * every connection is closed (1012, service restart) so that its client
 * reconnects to partials of the tables as they now are. */
static void restored(struct ws *w, const struct core_record *r)
{
    pthread_mutex_lock(&w->lock);
    struct ready_feed **pp = &w->ready, *rf = NULL;
    while (*pp && (*pp)->seq != r->seq)
        pp = &(*pp)->next;
    if (*pp) {
        rf = *pp;
        *pp = rf->next;
    }
    pthread_mutex_unlock(&w->lock);
    if (rf) {
        feed_destroy(w->feed);
        w->feed = rf->f;
        free(rf);
    } else {
        fprintf(stderr, "perpsim: the WebSocket feed was not rebuilt for the restore at command %" PRIu64
                        ": its tables are as before it\n", r->seq);
    }
    char reason[120];
    snprintf(reason, sizeof(reason), "restored to checkpoint %s: reconnect", r->cmd->text ? r->cmd->text : "");
    for (uint32_t k = w->conns.n; k-- > 0;) {
        struct conn *c = w->conns.v[k];
        if (!c->closing && !c->dead)
            conn_close(w, c, 1012, reason);
    }
}

static void apply_records(struct ws *w, const struct core_record **v, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        if (v[k]->cmd->type == CC_RESTORE && v[k]->result == 0)
            restored(w, v[k]);
        feed_apply(w->feed, v[k], want, emit, w);
        core_record_release(v[k]);
    }
}

static bool want_none(void *ctx, int table, int inst, uint32_t account)
{
    (void)ctx, (void)table, (void)inst, (void)account;
    return false;
}

static void rb_begin(void *ctx, uint64_t restore_seq)
{
    struct ws *w = ctx;
    feed_destroy(w->building);
    w->building = feed_create(w->s->x, w->accounts_max);
    w->building_seq = restore_seq;
}

static void rb_record(void *ctx, const struct core_record *r)
{
    struct ws *w = ctx;
    if (w->building)
        feed_apply(w->building, r, want_none, emit, w);
}

static void rb_end(void *ctx, bool ok)
{
    struct ws *w = ctx;
    struct ready_feed *rf = ok && w->building ? malloc(sizeof(*rf)) : NULL;
    if (!rf) {
        feed_destroy(w->building);
        w->building = NULL;
        return;
    }
    *rf = (struct ready_feed){NULL, w->building_seq, w->building};
    w->building = NULL;
    pthread_mutex_lock(&w->lock);
    struct ready_feed **pp = &w->ready;
    while (*pp)
        pp = &(*pp)->next;
    *pp = rf;
    pthread_mutex_unlock(&w->lock);
}

static void timers(struct ws *w, ms_t now)
{
    bool drops = now - w->drop_at >= 1000;
    if (drops)
        w->drop_at = now;
    for (uint32_t k = w->conns.n; k-- > 0;) {
        struct conn *c = w->conns.v[k];
        if (drops && faults_ws_drop(w->s->faults)) {
            conn_close(w, c, 0, NULL); /* no close frame: the fault */
            bury(c);
            continue;
        }
        if (c->closing) {
            if (now >= c->close_deadline) {
                conn_close(w, c, 0, NULL);
                bury(c);
            }
            continue;
        }
        if (now - c->last_rx >= (ms_t)w->cfg.idle_ms) {
            conn_close(w, c, 1001, "idle: no frame from the client for too long");
            continue;
        }
        if (now - c->last_rx >= (ms_t)w->cfg.ping_ms && !c->ping_at) {
            struct wslay_event_msg pm = {WSLAY_PING, (const uint8_t *)"perpsim", 7};
            wslay_event_queue_msg(c->ctx, &pm);
            c->ping_at = now;
            pump(w, c);
            if (c->dead)
                bury(c);
        }
    }
}

static void *run(void *arg)
{
    struct ws *w = arg;
    struct epoll_event evs[EPOLL_BATCH];
    ms_t next_tick = mono_ms() + TICK_MS;
    for (;;) {
        atomic_store_explicit(&w->sleeping, true, memory_order_seq_cst);
        pthread_mutex_lock(&w->lock);
        bool ready = w->nrecs && atomic_load_explicit(&w->m_open, memory_order_relaxed) > 0;
        pthread_mutex_unlock(&w->lock);
        int n = epoll_wait(w->ep, evs, EPOLL_BATCH, ready ? 0 : TICK_MS);
        atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.ptr == NULL) {
                uint64_t v;
                ssize_t r = read(w->efd, &v, sizeof(v));
                (void)r;
                continue;
            }
            struct conn *c = evs[k].data.ptr;
            if (c->dead)
                continue;
            if (c->draining) {
                if (drain(c)) {
                    conn_close(w, c, 0, NULL);
                    bury(c);
                }
                continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (!wslay_event_want_read(c->ctx)) {
                    /* wslay reads no more (a close received, a message over
                     * the limit, a protocol error): what comes is read and
                     * dropped, so a full input buffer cannot spin the loop */
                    if (!c->closing) {
                        c->closing = true;
                        c->close_deadline = mono_ms() + 2000;
                    }
                    if (drain(c)) {
                        conn_close(w, c, 0, NULL);
                        bury(c);
                        continue;
                    }
                } else if (wslay_event_recv(c->ctx) != 0) {
                    conn_close(w, c, 0, NULL);
                    bury(c);
                    continue;
                }
            }
            pump(w, c);
            if (c->dead)
                bury(c);
        }
        pthread_mutex_lock(&w->lock);
        const struct core_record **recs = w->recs;
        uint32_t nrecs = w->nrecs, cap = w->cap_recs;
        w->recs = w->work; /* the emptied array of the last turn takes the next records */
        w->cap_recs = w->cap_work;
        w->nrecs = 0;
        w->work = recs;
        w->cap_work = cap;
        struct pending *pend = w->pend;
        w->pend = NULL;
        struct reply *reps = w->replies;
        w->replies = NULL;
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        /* new connections first: each gets its partials at the feed's
         * record before this turn's records, then their deltas */
        for (struct pending *p = pend, *next; p; p = next) {
            next = p->next;
            conn_start(w, p->c);
            free(p);
        }
        apply_records(w, recs, nrecs);
        for (struct reply *r = reps, *next; r; r = next) {
            next = r->next;
            for (uint32_t k = 0; k < w->conns.n; k++)
                if (w->conns.v[k]->id == r->conn_id) {
                    send_text(w, w->conns.v[k], r->text, strlen(r->text));
                    break;
                }
            free(r->text);
            free(r);
        }
        /* every connection with something to write, one writev each */
        for (uint32_t k = 0; k < w->dirty.n; k++) {
            struct conn *c = w->dirty.v[k];
            c->dirty = false;
            if (c->dead)
                continue;
            pump(w, c);
            if (c->dead)
                bury(c);
        }
        w->dirty.n = 0;
        ms_t now = mono_ms();
        if (now >= next_tick) {
            timers(w, now);
            next_tick = now + TICK_MS;
        }
        for (uint32_t k = 0; k < w->ngrave; k++)
            conn_free(w, w->grave[k]);
        w->ngrave = 0;
        if (stop) {
            for (uint32_t k = w->conns.n; k-- > 0;) {
                struct conn *c = w->conns.v[k];
                conn_close(w, c, 0, NULL);
                conn_free(w, c);
            }
            break;
        }
    }
    return NULL;
}

struct ws *ws_create(struct srv *s, const struct ws_config *cfg)
{
    struct ws *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->s = s;
    w->cfg = *cfg;
    w->accounts_max = s->x->engine.accounts_max;
    w->ep = -1;
    w->efd = -1;
    pthread_mutex_init(&w->lock, NULL);
    w->feed = feed_create(s->x, w->accounts_max);
    w->acct = calloc(w->accounts_max, sizeof(*w->acct));
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!w->feed || !w->acct || w->ep < 0 || w->efd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev) != 0)
        goto fail;
    if (core_subscribe_owner(s->core, on_record, w) != 0)
        goto fail;
    struct core_rebuilder rb = {rb_begin, rb_record, rb_end, w};
    if (core_add_rebuilder(s->core, &rb) != 0 || pthread_create(&w->th, NULL, run, w) != 0) {
        /* the core has the consumer now: keep w (records are dropped) */
        pthread_mutex_lock(&w->lock);
        w->stopped = true;
        pthread_mutex_unlock(&w->lock);
        fprintf(stderr, "perpsim: cannot start the WebSocket thread\n");
        return NULL;
    }
    w->started = true;
    return w;
fail:
    ws_destroy(w);
    return NULL;
}

void ws_stop(struct ws *w)
{
    if (!w || !w->started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    wake(w);
    pthread_join(w->th, NULL);
    w->started = false;
    pthread_mutex_lock(&w->lock);
    w->stopped = true;
    struct pending *pend = w->pend;
    w->pend = NULL;
    pthread_mutex_unlock(&w->lock);
    for (struct pending *p = pend, *next; p; p = next) {
        next = p->next;
        MHD_upgrade_action(p->c->urh, MHD_UPGRADE_ACTION_CLOSE);
        conn_free(w, p->c);
        free(p);
    }
}

void ws_destroy(struct ws *w)
{
    if (!w)
        return;
    ws_stop(w);
    for (uint32_t k = 0; k < w->nrecs; k++)
        core_record_release(w->recs[k]);
    free(w->recs);
    free(w->work);
    for (struct reply *r = w->replies, *next; r; r = next) {
        next = r->next;
        free(r->text);
        free(r);
    }
    feed_destroy(w->feed);
    feed_destroy(w->building);
    for (struct ready_feed *rf = w->ready, *next; rf; rf = next) {
        next = rf->next;
        feed_destroy(rf->f);
        free(rf);
    }
    if (w->acct)
        for (uint32_t a = 0; a < w->accounts_max; a++)
            free(w->acct[a].v);
    free(w->acct);
    for (int t = 0; t < FT_COUNT; t++)
        for (int i = 0; i <= INSTRUMENTS_MAX; i++)
            free(w->pub[t][i].v);
    free(w->conns.v);
    free(w->dirty.v);
    free(w->grave);
    free(w->ips);
    if (w->ep >= 0)
        close(w->ep);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* ---- the HTTP side ------------------------------------------------------------------------------------- */

static void upgraded(void *cls, struct MHD_Connection *connection, void *con_cls, const char *extra_in,
                     size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)cls;
    (void)connection;
    struct req *r = con_cls;
    struct conn *c = r->ws_conn;
    r->ws_conn = NULL;
    struct ws *w = r->s->ws;
    c->fd = sock;
    c->urh = urh;
    if (extra_in_size) {
        c->extra = malloc(extra_in_size);
        if (c->extra) {
            memcpy(c->extra, extra_in, extra_in_size);
            c->extra_len = extra_in_size;
        }
    }
    struct pending *p = malloc(sizeof(*p));
    pthread_mutex_lock(&w->lock);
    bool ok = p && !w->stopping;
    if (ok) {
        p->c = c;
        p->next = w->pend;
        w->pend = p;
    }
    pthread_mutex_unlock(&w->lock);
    if (!ok) {
        free(p);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        ip_release(w, c);
        conn_free(w, c);
        return;
    }
    wake(w);
}

static bool has_token(const char *value, const char *token)
{
    if (!value)
        return false;
    size_t n = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, token, n) == 0)
            return true;
        p = e;
    }
    return false;
}

static const char *str_param(const cJSON *p, const char *name)
{
    const char *v = NULL;
    return prm_str(p, name, &v) == PRM_FOUND ? v : NULL;
}

void ws_request(struct req *r)
{
    struct srv *s = r->s;
    struct ws *w = s->ws;
    const char *up = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Upgrade");
    const char *conn_h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Connection");
    const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *ver = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (!w) {
        reply_error(r, 404, "HTTPError", "The WebSocket is off (--no-websocket)");
        return;
    }
    if (strcmp(r->method, "GET") != 0 || !has_token(up, "websocket") || !has_token(conn_h, "upgrade") ||
        !key) {
        reply_error(r, 400, "HTTPError", "This is the WebSocket endpoint: connect with a WebSocket client");
        return;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        reply_error(r, 426, "HTTPError", "Sec-WebSocket-Version 13 is required");
        return;
    }
    /* authentication on the upgrade: the query's or the headers' */
    const char *kq = str_param(r->params, "api-key"), *eq = str_param(r->params, "api-expires"),
               *sq = str_param(r->params, "api-signature");
    if (!kq && !eq && !sq) {
        kq = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-key");
        eq = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-expires");
        sq = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "api-signature");
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    c->fd = -1;
    c->ip4 = r->client_ip4;
    snprintf(c->ip, sizeof(c->ip), "%s", r->client_ip);
    if (kq || eq || sq) {
        char msg[200];
        int st = ws_auth(s, kq, eq, sq, r->client_ip4, &c->key, msg, sizeof(msg));
        if (st) {
            free(c);
            reply_error(r, st, "HTTPError", "%s", msg);
            return;
        }
        c->authed = true;
    }
    const char *sub = str_param(r->params, "subscribe");
    if (sub && !(c->subscribe = strdup(sub))) {
        free(c);
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    /* limits: all connections, and per address */
    pthread_mutex_lock(&w->lock);
    uint32_t k = 0;
    while (k < w->nips && strcmp(w->ips[k].ip, c->ip) != 0)
        k++;
    bool full = w->open >= w->cfg.max_conns || (k < w->nips && w->ips[k].n >= w->cfg.max_per_ip) ||
                w->stopping;
    if (!full) {
        if (k == w->nips) {
            w->ips = grow(w->ips, &w->cap_ips, w->nips + 1, sizeof(*w->ips));
            w->ips[w->nips] = (struct ipcount){c->ip4, "", 0};
            snprintf(w->ips[w->nips].ip, sizeof(w->ips[w->nips].ip), "%s", c->ip);
            w->nips++;
        }
        w->ips[k].n++;
        w->open++;
    }
    pthread_mutex_unlock(&w->lock);
    if (full) {
        atomic_fetch_add(&w->m_refused, 1);
        free(c->subscribe);
        free(c);
        snprintf(r->retry_after, sizeof(r->retry_after), "5");
        reply_error(r, 429, "HTTPError", "Too many WebSocket connections from this address (at most %u).",
                    w->cfg.max_per_ip);
        return;
    }
    /* the handshake's answer */
    unsigned char digest[SHA_DIGEST_LENGTH];
    char in[128];
    snprintf(in, sizeof(in), "%.60s" WS_GUID, key);
    SHA1((const unsigned char *)in, strlen(in), digest);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
    struct MHD_Response *resp = MHD_create_response_for_upgrade(upgraded, NULL);
    if (!resp) {
        ip_release(w, c);
        free(c->subscribe);
        free(c);
        reply_error(r, 500, "HTTPError", "Server Error");
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    r->ws_conn = c;
    r->upgrade = resp;
    r->status = 101;
    r->state = RS_READY;
}

/* A request that ends without its upgrade (the client went away). */
void ws_request_done(struct req *r)
{
    if (!r->ws_conn)
        return;
    struct ws *w = r->s->ws;
    if (w)
        ip_release(w, r->ws_conn);
    free(r->ws_conn->subscribe);
    free(r->ws_conn);
    r->ws_conn = NULL;
}

size_t ws_metrics(struct ws *w, char *buf, size_t cap)
{
    if (!w)
        return 0;
    int n = snprintf(buf, cap,
                     "# HELP perpsim_ws_connections_total WebSocket connections opened.\n"
                     "# TYPE perpsim_ws_connections_total counter\n"
                     "perpsim_ws_connections_total %" PRIu64 "\n"
                     "# HELP perpsim_ws_connections_open WebSocket connections open now.\n"
                     "# TYPE perpsim_ws_connections_open gauge\n"
                     "perpsim_ws_connections_open %" PRIu64 "\n"
                     "# HELP perpsim_ws_subscriptions Topics subscribed now, all connections.\n"
                     "# TYPE perpsim_ws_subscriptions gauge\n"
                     "perpsim_ws_subscriptions %" PRIu64 "\n"
                     "# HELP perpsim_ws_messages_out_total Messages queued to clients.\n"
                     "# TYPE perpsim_ws_messages_out_total counter\n"
                     "perpsim_ws_messages_out_total %" PRIu64 "\n"
                     "# HELP perpsim_ws_bytes_out_total Bytes of messages queued to clients.\n"
                     "# TYPE perpsim_ws_bytes_out_total counter\n"
                     "perpsim_ws_bytes_out_total %" PRIu64 "\n"
                     "# HELP perpsim_ws_messages_in_total Messages from clients.\n"
                     "# TYPE perpsim_ws_messages_in_total counter\n"
                     "perpsim_ws_messages_in_total %" PRIu64 "\n"
                     "# HELP perpsim_ws_slow_drops_total Connections closed for not reading.\n"
                     "# TYPE perpsim_ws_slow_drops_total counter\n"
                     "perpsim_ws_slow_drops_total %" PRIu64 "\n"
                     "# HELP perpsim_ws_refused_total Upgrades refused by the connection limits.\n"
                     "# TYPE perpsim_ws_refused_total counter\n"
                     "perpsim_ws_refused_total %" PRIu64 "\n",
                     (uint64_t)atomic_load(&w->m_conns), (uint64_t)atomic_load(&w->m_open),
                     (uint64_t)atomic_load(&w->m_subs), (uint64_t)atomic_load(&w->m_msgs),
                     (uint64_t)atomic_load(&w->m_bytes), (uint64_t)atomic_load(&w->m_in),
                     (uint64_t)atomic_load(&w->m_drops), (uint64_t)atomic_load(&w->m_refused));
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}
