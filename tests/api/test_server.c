/*
 * test_server.c - the server starts and stops cleanly, again and again,
 * with clients on it: a read answered, a signed order in flight while the
 * stop begins, an idle keep-alive connection, and a connection that sends
 * half a request. The stop must not depend on MHD_quiesce_daemon, which
 * raced with libmicrohttpd's polling thread and aborted a run ("Failed to
 * remove listen FD from epoll set").
 *
 * PERPSIM_STARTSTOP_LOOPS sets the rounds (default 25; run once with 200
 * to show the race is gone).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/server.h"

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        ck_assert_int_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until the reply's head and body are in (Content-Length) or 5 s. */
static void read_reply(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ck_assert_msg(poll(&p, 1, 5000) == 1, "no reply within 5 s: %.*s", (int)n, buf);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        ck_assert_int_gt(r, 0);
        n += (size_t)r;
        buf[n] = 0;
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end && cl && (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10) <= n)
            return;
    }
}

static void signed_order(int fd, const char *key, const char *secret)
{
    const char *path = "/api/v1/order";
    const char *body = "{\"symbol\":\"XBTUSD\",\"side\":\"Buy\",\"orderQty\":100,\"price\":59000}";
    int64_t expires = (int64_t)time(NULL) + 60;
    struct auth_request rq = {"POST", path, strlen(path), body, strlen(body)};
    char sig[AUTH_SIG_HEX_LEN + 1];
    ck_assert_int_eq(auth_sign(secret, strlen(secret), &rq, expires, sig), AUTH_E_OK);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "api-key: %s\r\napi-expires: %lld\r\napi-signature: %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, key, (long long)expires, sig, strlen(body), body);
    send_all(fd, req, (size_t)n);
}

START_TEST(start_stop_with_clients)
{
    const char *e = getenv("PERPSIM_STARTSTOP_LOOPS");
    int loops = e ? atoi(e) : 25;
    for (int k = 0; k < loops; k++) {
        struct srv_config cfg;
        srv_config_default(&cfg, 0);
        cfg.port = 0;
        cfg.quiet = true;
        cfg.rate_limit = RLP_OFF;
        cfg.warm_ns = 0;
        snprintf(cfg.admin_token, sizeof(cfg.admin_token), "t");
        char err[256];
        struct srv *s = srv_start(&cfg, err, sizeof(err));
        ck_assert_msg(s != NULL, "round %d: srv_start: %s", k, err);
        uint16_t port = srv_port(s);
        sats_t dep[CURRENCIES_MAX] = {100000000, 0};
        uint32_t account;
        char key[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1];
        ck_assert_int_eq(srv_create_account(s, dep, &account, key, secret), 0);
        ck_assert_uint_eq(account, 1);

        /* A read, answered, on a keep-alive connection left open. */
        int idle = dial(port);
        const char get[] = "GET /api/v1/instrument?symbol=XBTUSD HTTP/1.1\r\nHost: x\r\n\r\n";
        send_all(idle, get, sizeof(get) - 1);
        char buf[65536];
        read_reply(idle, buf, sizeof(buf));
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "round %d: %.80s", k, buf);
        /* A signed order answered, then another in flight as the stop begins. */
        int w = dial(port);
        signed_order(w, key, secret);
        read_reply(w, buf, sizeof(buf));
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "round %d: %.200s", k, buf);
        signed_order(w, key, secret);
        /* Half a request. */
        int half = dial(port);
        send_all(half, "POST /api/v1/order HTTP/1.1\r\nHost: x\r\nContent-Le", 48);
        if (k % 2) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL); /* every other round, the stop comes a little later */
        }
        srv_stop(s);
        close(idle);
        close(w);
        close(half);
    }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("api_server");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, start_stop_with_clients);
    suite_add_tcase(su, tc);
    SRunner *r = srunner_create(su);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
