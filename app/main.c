/*
 * main.c - the perpsim program: a BitMEX-compatible exchange on
 * http://127.0.0.1:8080 (api/server.h), configured from defaults, then an
 * optional JSON config file, then the command line, in that order.
 */
#define _GNU_SOURCE
#include "api/server.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include "api/auth.h"
#include "api/timefmt.h"
#include "app/hugepages.h"
#include "app/backtest.h"
#include "app/config.h"
#include "app/replay.h"

static const char usage[] =
    "usage: perpsim [options]\n"
    "\n"
    "A BitMEX-compatible exchange emulator: REST under /api/v1, the testnet\n"
    "admin API under /admin/v1, Prometheus metrics under /metrics.\n"
    "\n"
    "  --config FILE          JSON config (see README: listen, adminToken, rateLimit,\n"
    "                         loadShed, indices, instruments, defaultInstruments, demo)\n"
    "  --listen HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 = any free)\n"
    "  --admin-token TOKEN    bearer token of the admin API (else $PERPSIM_ADMIN_TOKEN,\n"
    "                         else the config, else a random one printed at start)\n"
    "  --admin-remote         let non-loopback clients use the admin API\n"
    "  --rate-limit PROFILE   default (300/5 min signed, 150 unsigned), 2021\n"
    "                         (120/min + 10/s on order routes) or off (backtests)\n"
    "  --ban-errors N         ban a client after N 4xx/5xx in the ban window (0 = off)\n"
    "  --http-max-per-ip N    connections from one address (default 3000)\n"
    "  --http-idle-s N, --http-header-s N, --http-body-s N  a connection between\n"
    "                         requests is closed after N s (90), a request's headers\n"
    "                         must arrive within N s of its first line (30), its body\n"
    "                         within N s (60)\n"
    "  --max-expires-ahead S  api-expires at most S seconds ahead of the exchange's\n"
    "                         time (default 172800, two days; 0 = no bound)\n"
    "  --latency-cap-ms N     worst queue wait a write may meet before 503 (default 3000)\n"
    "  --queue-depth N        a fixed write-queue depth instead of the latency cap\n"
    "  --engine-delay-us N    every write takes at least N us in the engine (demonstrations)\n"
    "  --http-threads N       HTTP worker threads (default 2)\n"
    "  --warm-us N            keep the CPUs awake N us after each request with idle-priority\n"
    "                         spinners: no hypervisor wake-ups on a VM (default 1000, 0 = off)\n"
    "  --engine-thread-only   every write goes through the engine thread (by default a\n"
    "                         single write on an idle engine runs on its HTTP thread)\n"
    "  --keep-orders N        terminal orders the read model keeps, oldest dropped first;\n"
    "                         live orders are always kept (default 1000000, 0 = all)\n"
    "  --keep-executions N    executions kept, all accounts together (default 1000000,\n"
    "                         0 = all)\n"
    "  --keep-trades N        public trades kept per instrument (default 1000000, 0 = all)\n"
    "  --clock MODE           the engine clock: real (default), stepped (time moves only\n"
    "                         when POST /admin/v1/clock/advance says) or accelerated:N\n"
    "                         (N x real time)\n"
    "  --start-time ISO       engine time at start (default now); api-expires is checked\n"
    "                         against engine time, which GET /api/v1 gives\n"
    "  --seed N               draw API keys from seed N: the same keys every run, for\n"
    "                         reproducible backtests (predictable: not for shared servers)\n"
    "  --index-csv FILE       the market's indices replay FILE's timestamp,symbol,price\n"
    "                         rows (ISO or Unix ms times) instead of their random walks\n"
    "  --no-market            no living market: no index walk, no makers or traders\n"
    "                         (an empty exchange on frozen indices, as tests need)\n"
    "  --no-websocket         no realtime WebSocket at /realtime\n"
    "  --web-dir DIR          the web page's built files, served at / (default: web/dist\n"
    "                         of the source tree, which `make run` builds; \"\": none)\n"
    "  --ws-max-per-ip N      WebSocket connections from one address (default 2000)\n"
    "  --ws-max-subs N        topics per WebSocket connection (default 256)\n"
    "  --ws-msgs-per-s N      client messages per second per connection (default 50)\n"
    "  --ws-send-buffer-kib N bytes waiting for a slow reader before it is closed\n"
    "                         with 1008 (default 8192 KiB)\n"
    "  --no-demo              do not create the demo account\n"
    "  --quiet                print only the listening line\n"
    "  --help                 this text\n";

/* The journal's options (one string is kept under C's 4,095 bytes). */
static const char usage_data[] =
    "  --data-dir DIR         keep the exchange in DIR: every command journaled before\n"
    "                         its reply; on start the journal there is recovered (its\n"
    "                         config is the exchange's). Without it nothing is kept\n"
    "  --fsync POLICY         batch (default: each group of writes synced before their\n"
    "                         replies), interval:MS (synced every MS ms) or off; every\n"
    "                         policy survives a process crash (docs/journal.md)\n"
    "  --start-from-last-good recover past a corrupt journal: up to its last good\n"
    "                         command, the rest set aside (renamed, never deleted)\n"
    "  --journal-segment-mb N a new journal segment past N MiB (default 64)\n"
    "\n"
    "       perpsim replay --data-dir DIR [--to-seq N]   (re-apply a journal, print its hash)\n"
    "       perpsim backtest --data FILE... [--report FILE]  (history replayed into the book)\n";


static ms_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (ms_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}


static void random_token(char *out, size_t cap)
{
    char id[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
    auth_generate_key(id, secret);
    snprintf(out, cap, "%s", secret);
}

int main(int argc, char **argv)
{
    hugepages_reexec(argv);
    if (argc > 1 && strcmp(argv[1], "replay") == 0)
        return replay_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backtest") == 0) {
        bool serve = false;
        for (int i = 2; i < argc; i++)
            serve |= strcmp(argv[i], "--serve") == 0;
        if (!serve)
            return backtest_main(argc - 1, argv + 1);
        /* `perpsim backtest --serve --data FILE... [--strict] [--report F]
         * [server options]` is the server with --history FILE... */
        static char **args; /* the process's to its end */
        args = calloc((size_t)argc + 1, sizeof(*args));
        if (!args)
            return perpsim_fail("%s", "out of memory");
        int n = 0;
        args[n++] = argv[0];
        for (int i = 2; i < argc; i++) {
            const char *a = argv[i];
            if (strcmp(a, "--serve") == 0)
                continue;
            if (strcmp(a, "--speed") == 0 && i + 1 < argc) {
                /* --speed N: the clock runs at N x from the first row */
                static char clk[48];
                char *end = NULL;
                long long sp = strtoll(argv[i + 1], &end, 10);
                if (end == argv[i + 1] || *end || sp < 1 || sp > 1000000)
                    return perpsim_fail("backtest --serve: --speed wants N, 1..1000000 (the clock runs at N x; "
                                "without --speed it is stepped: POST /admin/v1/clock/advance moves it), got %s",
                                argv[i + 1]);
                snprintf(clk, sizeof(clk), "accelerated:%lld", sp);
                args[n++] = "--clock";
                args[n++] = clk;
                i++;
                continue;
            }
            args[n++] = strcmp(a, "--data") == 0     ? "--history"
                        : strcmp(a, "--strict") == 0 ? "--history-strict"
                        : strcmp(a, "--report") == 0 ? "--history-report"
                        : strcmp(a, "--plot") == 0   ? "--history-plot"
                        : strcmp(a, "--from") == 0   ? "--history-from"
                        : strcmp(a, "--to") == 0     ? "--history-to"
                                                     : argv[i];
        }
        argc = n;
        argv = args;
    }
    struct srv_config cfg;
    /* The start time first: the default future expires at the quarter end
     * after it. A served backtest starts at its first row. */
    ms_t start_ms = 0;
    char herr[1024];
    ms_t hist_ms = 0;
    struct served *served = served_open(argc, argv, &hist_ms, herr, sizeof(herr));
    if (!served && herr[0])
        return perpsim_fail("%s", herr);
    if (served)
        start_ms = hist_ms;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--start-time") == 0) {
            const char *v = argv[i + 1];
            if (tf_parse_time(v, strlen(v), &start_ms) != TF_OK || start_ms <= 0)
                return perpsim_fail("--start-time wants an ISO 8601 time after 1970, got %s", v);
        }
    srv_config_default(&cfg, start_ms);
    snprintf(cfg.web_dir, sizeof(cfg.web_dir), "%s", PERPSIM_WEB_DIR);
    bool demo = true, token_set = false, market_on = served == NULL;
    if (served) {
        cfg.clock_mode = CLOCK_STEPPED;
        cfg.start_ms = start_ms;
        /* As `perpsim backtest` (docs/backtest.md): the history account
         * holds the whole book. */
        cfg.core.exch.engine.open_orders_max = 100000;
        cfg.core.exch.spam_orders = 0; /* the history's small orders are the book, not spam */
        cfg.core.exch.engine.verify_every = 1000;
        cfg.attach = served_attach;
        cfg.attach_ctx = served;
        cfg.report = served_report_fn;
    }
    const char *token_source = "the --admin-token flag";
    const char *data_dir = NULL;
    /* The config file first, so flags override it wherever they appear. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return perpsim_fail("%s needs a value", argv[i]);
            struct config_effects fx = {demo, token_set, market_on};
            if (config_load(&cfg, argv[i + 1], &fx))
                return 2;
            demo = fx.demo;
            token_set = fx.token_set;
            market_on = fx.market_on;
            if (token_set)
                token_source = "the config file";
        }
    const char *env = getenv("PERPSIM_ADMIN_TOKEN");
    if (env && *env) {
        snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", env);
        token_set = true;
        token_source = "the environment variable PERPSIM_ADMIN_TOKEN";
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            fputs(usage_data, stdout);
            return 0;
        } else if (strcmp(a, "--no-demo") == 0) {
            demo = false;
        } else if (strcmp(a, "--no-market") == 0) {
            market_on = false;
        } else if (strcmp(a, "--quiet") == 0) {
            cfg.quiet = true;
        } else if (strcmp(a, "--no-websocket") == 0) {
            cfg.websocket = false;
        } else if (strcmp(a, "--admin-remote") == 0) {
            cfg.admin_remote = true;
        } else if (strcmp(a, "--engine-thread-only") == 0) {
            cfg.core.engine_thread_only = true;
        } else if (strcmp(a, "--start-from-last-good") == 0) {
            cfg.journal.last_good = true;
        } else if (!v) {
            return perpsim_fail("unknown option or missing value: %s (see --help)", a);
        } else if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strcmp(a, "--listen") == 0) {
            if (config_listen(&cfg, v))
                return perpsim_fail("--listen wants HOST:PORT, got %s", v);
            i++;
        } else if (strcmp(a, "--data-dir") == 0) {
            if (strlen(v) >= sizeof(cfg.journal.dir))
                return perpsim_fail("--data-dir: the path is too long: %s", v);
            data_dir = v;
            snprintf(cfg.journal.dir, sizeof(cfg.journal.dir), "%s", v);
            i++;
        } else if (strcmp(a, "--fsync") == 0) {
            if (journal_parse_fsync(v, &cfg.journal.fsync, &cfg.journal.interval_ms) != 0)
                return perpsim_fail("--fsync wants batch, interval:MS (1..60000) or off, got %s", v);
            i++;
        } else if (strcmp(a, "--journal-segment-mb") == 0) {
            if (parse_long(v, 1, 65536, &n))
                return perpsim_fail("--journal-segment-mb wants 1..65536, got %s", v);
            cfg.journal.segment_bytes = (uint64_t)n << 20;
            i++;
        } else if (strcmp(a, "--admin-token") == 0) {
            snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", v);
            token_set = true;
            token_source = "the --admin-token flag";
            i++;
        } else if (strcmp(a, "--rate-limit") == 0) {
            if (config_rate_profile(v, &cfg.rate_limit))
                return perpsim_fail("--rate-limit wants default, 2021 or off, got %s", v);
            i++;
        } else if (strcmp(a, "--ban-errors") == 0) {
            if (parse_long(v, 0, 1000000, &n))
                return perpsim_fail("--ban-errors wants a count, got %s", v);
            cfg.ban_errors = (int32_t)n;
            i++;
        } else if (strcmp(a, "--latency-cap-ms") == 0) {
            if (parse_long(v, 1, 3600000, &n))
                return perpsim_fail("--latency-cap-ms wants 1..3600000, got %s", v);
            cfg.core.ls.mode = LS_LATENCY_CAP;
            cfg.core.ls.latency_cap_ns = (int64_t)n * 1000000;
            i++;
        } else if (strcmp(a, "--queue-depth") == 0) {
            if (parse_long(v, 0, (long)cfg.core.ls.capacity, &n))
                return perpsim_fail("--queue-depth wants 0..65536, got %s", v);
            cfg.core.ls.mode = LS_FIXED;
            cfg.core.ls.fixed_depth = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--engine-delay-us") == 0) {
            if (parse_long(v, 0, 10000000, &n))
                return perpsim_fail("--engine-delay-us wants 0..10000000, got %s", v);
            cfg.core.engine_delay_ns = (int64_t)n * 1000;
            i++;
        } else if (strcmp(a, "--warm-us") == 0) {
            if (parse_long(v, 0, 1000000, &n))
                return perpsim_fail("--warm-us wants 0..1000000, got %s", v);
            cfg.warm_ns = (int64_t)n * 1000;
            i++;
        } else if (strcmp(a, "--keep-orders") == 0 || strcmp(a, "--keep-executions") == 0 ||
                   strcmp(a, "--keep-trades") == 0) {
            if (parse_long(v, 0, (long)STORE_KEEP_MAX, &n))
                return perpsim_fail("%s wants 0..1000000000 (0 = keep all)", a);
            if (strcmp(a, "--keep-orders") == 0)
                cfg.core.limits.orders = (uint32_t)n;
            else if (strcmp(a, "--keep-executions") == 0)
                cfg.core.limits.execs = (uint32_t)n;
            else
                cfg.core.limits.trades = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--clock") == 0) {
            if (clock_mode_parse(v, &cfg.clock_mode, &cfg.clock_speed) != 0)
                return perpsim_fail("--clock wants real, stepped or accelerated:N (N 1..1000000), got %s", v);
            i++;
        } else if (strcmp(a, "--web-dir") == 0) {
            if (strlen(v) >= sizeof(cfg.web_dir))
                return perpsim_fail("--web-dir: the path is too long: %s", v);
            snprintf(cfg.web_dir, sizeof(cfg.web_dir), "%s", v);
            cfg.web_required = v[0] != '\0';
            i++;
        } else if (strcmp(a, "--index-csv") == 0) {
            if (strlen(v) >= sizeof(cfg.index_csv))
                return perpsim_fail("--index-csv: the path is too long: %s", v);
            snprintf(cfg.index_csv, sizeof(cfg.index_csv), "%s", v);
            i++;
        } else if (strcmp(a, "--start-time") == 0) {
            i++; /* read above */
        } else if (strcmp(a, "--history") == 0) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                i++; /* read above */
        } else if (strcmp(a, "--history-strict") == 0) {
        } else if (strcmp(a, "--history-report") == 0 || strcmp(a, "--history-plot") == 0 ||
                   strcmp(a, "--history-from") == 0 || strcmp(a, "--history-to") == 0) {
            i++; /* read above */
        } else if (strcmp(a, "--seed") == 0) {
            char *end = NULL;
            unsigned long long sd = strtoull(v, &end, 10);
            if (end == v || *end || sd == 0)
                return perpsim_fail("--seed wants a whole number > 0, got %s", v);
            cfg.seed = sd;
            i++;
        } else if (strcmp(a, "--ws-max-per-ip") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return perpsim_fail("--ws-max-per-ip wants 1..100000, got %s", v);
            cfg.ws.max_per_ip = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-max-subs") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return perpsim_fail("--ws-max-subs wants 1..100000, got %s", v);
            cfg.ws.max_subs = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-msgs-per-s") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return perpsim_fail("--ws-msgs-per-s wants 1..100000, got %s", v);
            cfg.ws.msgs_per_s = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ws-send-buffer-kib") == 0) {
            if (parse_long(v, 16, 1048576, &n))
                return perpsim_fail("--ws-send-buffer-kib wants 16..1048576, got %s", v);
            cfg.ws.send_buf = (size_t)n << 10;
            i++;
        } else if (strcmp(a, "--http-max-per-ip") == 0 || strcmp(a, "--http-idle-s") == 0 ||
                   strcmp(a, "--http-header-s") == 0 || strcmp(a, "--http-body-s") == 0) {
            if (parse_long(v, 1, 100000, &n))
                return perpsim_fail("%s wants 1..100000", a);
            if (strcmp(a, "--http-max-per-ip") == 0)
                cfg.http_max_per_ip = (unsigned)n;
            else if (strcmp(a, "--http-idle-s") == 0)
                cfg.http_idle_s = (unsigned)n;
            else if (strcmp(a, "--http-header-s") == 0)
                cfg.http_header_s = (unsigned)n;
            else
                cfg.http_body_s = (unsigned)n;
            i++;
        } else if (strcmp(a, "--max-expires-ahead") == 0) {
            if (parse_long(v, 0, 315360000, &n))
                return perpsim_fail("--max-expires-ahead wants seconds 0..315360000 (0 = no bound), got %s", v);
            cfg.max_expires_ahead_s = n;
            i++;
        } else if (strcmp(a, "--http-threads") == 0) {
            if (parse_long(v, 1, 64, &n))
                return perpsim_fail("--http-threads wants 1..64, got %s", v);
            cfg.http_threads = (unsigned)n;
            i++;
        } else {
            return perpsim_fail("unknown option %s (see --help)", a);
        }
    }
    if (!token_set) {
        random_token(cfg.admin_token, sizeof(cfg.admin_token));
        token_source = "generated at start (set PERPSIM_ADMIN_TOKEN to choose it)";
    }
    if (served && (cfg.clock_mode == CLOCK_REAL || market_on))
        return perpsim_fail("%s", "--history replays on a stepped or accelerated clock without the market: "
                          "drop --clock real and --market");
    if (data_dir && mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return perpsim_fail("cannot create the data directory %s", data_dir);

    /* Signals are taken by sigwait below; every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256];
    struct srv *s = srv_start(&cfg, err, sizeof(err));
    if (!s)
        return perpsim_fail("%s", err);
    unsigned port = srv_port(s);
    const struct journal_report *rec = srv_recovery(s);
    if (rec && served) {
        srv_stop(s);
        served_free(served);
        return perpsim_fail("%s", "--history journals into a new --data-dir (resuming a served backtest is not supported)");
    }
    if (rec) {
        /* Always printed, --quiet or not: what the exchange came back as. */
        struct core_summary sum;
        core_summarize(srv_core(s), &sum);
        printf("perpsim: recovered %" PRIu64 " commands from %s (%u segment(s))\n", rec->commands, data_dir,
               rec->segments);
        replay_print_summary(stdout, &sum);
        replay_print_cut(stdout, rec);
        fflush(stdout);
        if (!sum.audit_ok) {
            srv_stop(s);
            return perpsim_fail("%s", "the recovered state fails the money audit: stopping");
        }
    }
    if (!cfg.quiet) {
        printf("perpsim 0.1.0: a BitMEX-compatible exchange emulator\n");
        printf("  REST API     http://%s:%u/api/v1   (sign requests as BitMEX documents)\n", cfg.host, port);
        printf("  admin API    http://%s:%u/admin/v1 (Authorization: Bearer <token>)\n", cfg.host, port);
        printf("  admin token  from %s%s%s\n", token_source, token_set ? "" : ": ",
               token_set ? "" : cfg.admin_token);
        printf("  metrics      http://%s:%u/metrics\n", cfg.host, port);
        printf("  instruments ");
        for (uint16_t i = 0; i < cfg.core.exch.engine.instruments_count; i++)
            printf(" %s", cfg.core.exch.engine.instruments[i].symbol);
        printf("\n  rate limits  %s; write queue: %s\n",
               cfg.rate_limit == RLP_OFF ? "off" : cfg.rate_limit == RLP_2021 ? "BitMEX 2021 profile" : "BitMEX 2019 profile",
               cfg.core.ls.mode == LS_FIXED ? "fixed depth" : "latency cap");
        if (cfg.clock_mode != CLOCK_REAL || cfg.start_ms) {
            char ts[TF_ISO_BUF];
            tf_format_ms(cfg.start_ms ? cfg.start_ms : wall_now_ms(), ts, sizeof(ts));
            if (cfg.clock_mode == CLOCK_ACCELERATED)
                printf("  clock        accelerated %" PRId64 "x from %s\n", cfg.clock_speed, ts);
            else
                printf("  clock        %s from %s%s\n", clock_mode_name(cfg.clock_mode), ts,
                       cfg.clock_mode == CLOCK_STEPPED ? " (POST /admin/v1/clock/advance moves it)" : "");
        }
        if (data_dir)
            printf("  data dir     %s (journal, --fsync %s)\n", data_dir, journal_fsync_name(cfg.journal.fsync));
        struct key_rec demo_key;
        if (demo && rec) {
            /* The demo account came back with the rest. */
            if (core_keys_list(srv_core(s), 1, &demo_key, 1) == 1)
                printf("  demo account 1: apiKey %s apiSecret %s\n", demo_key.id, demo_key.secret);
        } else if (demo) {
            sats_t dep[CURRENCIES_MAX] = {INT64_C(1000000000), INT64_C(100000000000)};
            uint32_t account;
            char key[AUTH_KEY_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1];
            int made = srv_create_account(s, dep, &account, key, secret);
            /* Printed once the journal has it: a key shown is a key kept. */
            core_wait_durable(srv_core(s), core_seq(srv_core(s)));
            if (made == 0)
                printf("  demo account %u (10 XBT, 100,000 USDT): apiKey %s apiSecret %s\n", account, key,
                       secret);
        }
        printf("  new accounts: curl -X POST -H 'Authorization: Bearer <token>' -d "
               "'{\"deposits\":{\"XBt\":100000000}}' http://%s:%u/admin/v1/accounts\n", cfg.host, port);
    }
    if (cfg.index_csv[0] && !market_on) {
        srv_stop(s);
        return perpsim_fail("%s", "--index-csv replays the market's indices: it needs the market (drop --no-market)");
    }
    /* The history after the demo account, which keeps number 1. */
    if (served) {
        if (served_start(served, srv_core(s), err, sizeof(err)) != 0) {
            srv_stop(s);
            served_free(served);
            return perpsim_fail("%s", err);
        }
        if (!cfg.quiet)
            printf("  history      replayed into the book as the clock advances "
                   "(POST /admin/v1/clock/advance; GET /admin/v1/report)\n");
    }
    /* The living market after the demo account, which keeps number 1. */
    if (market_on) {
        if (srv_market_start(s, err, sizeof(err)) != 0) {
            srv_stop(s);
            return perpsim_fail("%s", err);
        }
        if (!cfg.quiet)
            printf("  market       a maker on every instrument, %u noise and %u directional traders, "
                   "the indices walking (GET /admin/v1/market; --no-market: an empty exchange)\n",
                   cfg.market.noise, cfg.market.directional);
    }
    if (!cfg.quiet && cfg.websocket)
        printf("  realtime     ws://%s:%u/realtime (BitMEX's WebSocket tables)\n", cfg.host, port);
    if (!cfg.quiet && cfg.web_dir[0]) {
        uint32_t files;
        const char *why = srv_web(s, &files);
        if (why)
            printf("  web page     not served: %s (make run builds it)\n", why);
        else
            printf("  web page     http://%s:%u/ (the market, your orders, liquidations and funding explained)\n",
                   cfg.host, port);
    }
    printf("listening on http://%s:%u\n", cfg.host, port);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    if (!cfg.quiet)
        printf("perpsim: stopping (signal %d)\n", sig);
    if (served)
        served_finish(served, srv_core(s));
    srv_stop(s);
    served_free(served);
    return 0;
}
