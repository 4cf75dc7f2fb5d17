#!/usr/bin/env bash
# run.sh PERPSIM_BINARY - the end-to-end suite with real, unmodified clients.
#
# Starts perpsim on an ephemeral port with a random admin token and rate
# limits off, installs ccxt 4.5.82, bitmex-realtime-api 1.5.5 and ws into
# tests/e2e/node_modules from package-lock.json when they are not there yet,
# then runs
#   1. ccxt_e2e.mjs      - ccxt's bitmex class through every unified method
#   2. python_client.py  - a plain requests client signing as BitMEX documents
#   3. ws_e2e.mjs        - the realtime WebSocket with BitMEX's official adapter
#                          and ccxt pro, every table checked against REST after
#                          a seeded storm of orders, amends, cancels, index
#                          moves and a liquidation
#   4. ws_abuse.mjs      - the WebSocket protocol message by message with the
#                          raw ws package: acks, partials, errors, auth,
#                          heartbeats, and oversized, binary and flooding clients
#   5. ccxt_backtest.mjs - ccxt driving a stepped backtest on history (a server
#                          of its own: perpsim backtest --serve): fills, the
#                          data's funding and a liquidation, to the satoshi
#   6. web_page.mjs      - the web page (web/dist, built by tools/build-web.sh)
#                          in Debian's Chromium driven by playwright-core: the
#                          market, order entry signed in the browser, a
#                          restore (a server of its own, market on); then
#                          bench/bench_web.mjs --small (bundle, first paint,
#                          frames: that it runs, not its figures)
#   7. GET /admin/v1/audit, which must say {"ok":true}
# and finally stops the server with SIGTERM, which must exit 0.
# Exit status 0 only when all of it passed. E2E_KEEP_GOING=1 makes every
# client run every step instead of stopping at its first failure.
set -uo pipefail

die() { echo "e2e: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 PERPSIM_BINARY"
BIN=$(realpath "$1") || die "no such binary: $1"
[ -x "$BIN" ] || die "not executable: $BIN"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

command -v node >/dev/null && command -v npm >/dev/null \
    || die "node and npm are required for the ccxt and WebSocket suites; run tools/install-deps.sh"
command -v python3 >/dev/null || die "python3 is required; run tools/install-deps.sh"
python3 -c 'import requests' 2>/dev/null \
    || die "the Python module 'requests' is missing; run tools/install-deps.sh (it installs python3-requests)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/perpsim-e2e.XXXXXX") || die "mktemp failed"
LOG="$WORK/server.log"
SERVER_PID=""

stop_server() {   # SIGTERM, then wait up to 10 s; sets SERVER_RC
    SERVER_RC=""
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "e2e: perpsim did not stop within 10 s of SIGTERM; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_RC=$?
    SERVER_PID=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
    echo "---- perpsim output (last 40 lines) ----" >&2
    tail -n 40 "$LOG" >&2
    echo "----------------------------------------" >&2
}

# ------------------------------------------------------------ node packages
# node_modules lives in tests/e2e (not committed). Install from the lock
# file only when the pinned packages are not all there; the lock keeps two
# runs (say two build directories tested at once) from installing over each
# other.
WANT_PKGS="ccxt@4.5.82 bitmex-realtime-api@1.5.5 playwright-core@1.65.2 ws@8.21.0"
installed_pkgs() {   # "name@version ..." of what node_modules holds
    (cd "$HERE" && node -e '
        const out = [];
        for (const spec of process.argv.slice(1)) {
            const name = spec.slice(0, spec.lastIndexOf("@"));
            let v = "missing";
            try { v = require("./node_modules/" + name + "/package.json").version; } catch {}
            out.push(name + "@" + v);
        }
        console.log(out.join(" "));' $WANT_PKGS 2>/dev/null)
}
if [ "$(installed_pkgs)" != "$WANT_PKGS" ]; then
    (
        flock -w 600 9 || die "timed out waiting for $HERE/.npm.lock"
        if [ "$(installed_pkgs)" != "$WANT_PKGS" ]; then
            echo "e2e: installing $WANT_PKGS (npm ci in tests/e2e)"
            cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1 \
                || { cat "$WORK/npm.log" >&2; die "npm ci failed"; }
        fi
    ) 9>"$HERE/.npm.lock" || exit 1
    got=$(installed_pkgs)
    [ "$got" = "$WANT_PKGS" ] || die "tests/e2e/node_modules holds $got, want $WANT_PKGS"
fi

# ------------------------------------------------------------ server
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$BIN" --listen 127.0.0.1:0 --admin-token "$TOKEN" --no-demo --no-market --rate-limit off >"$LOG" 2>&1 &
SERVER_PID=$!

PORT=""
for _ in $(seq 200); do   # up to 20 s for the "listening on" line
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$LOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { show_log; die "perpsim exited during start-up"; }
    sleep 0.1
done
[ -n "$PORT" ] || { show_log; die "perpsim printed no 'listening on http://127.0.0.1:PORT' line in 20 s"; }
URL="http://127.0.0.1:$PORT"

# it answers when GET /api/v1/instrument?symbol=XBTUSD is 200
probe='fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))'
up=""
for _ in $(seq 100); do
    if node -e "$probe" "$URL/api/v1/instrument?symbol=XBTUSD"; then up=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$up" ] || { show_log; die "perpsim at $URL does not answer GET /api/v1/instrument?symbol=XBTUSD"; }
echo "e2e: perpsim $BIN listening at $URL"

export PERPSIM_URL="$URL" PERPSIM_ADMIN_TOKEN="$TOKEN"
status=0

# ------------------------------------------------------------ clients
echo "== ccxt"
(cd "$HERE" && node ccxt_e2e.mjs) || { status=1; echo "e2e: ccxt suite FAILED"; }

echo "== python requests client"
python3 "$HERE/python_client.py" || { status=1; echo "e2e: Python client FAILED"; }

echo "== websocket: official adapter and ccxt pro against REST"
(cd "$HERE" && node ws_e2e.mjs) || { status=1; echo "e2e: WebSocket suite FAILED"; }

echo "== websocket: protocol and abuse (raw ws)"
(cd "$HERE" && node ws_abuse.mjs) || { status=1; echo "e2e: WebSocket abuse suite FAILED"; }

echo "== ccxt driving a stepped backtest (its own perpsim backtest --serve)"
(cd "$HERE" && PERPSIM_BIN="$BIN" node ccxt_backtest.mjs) || { status=1; echo "e2e: ccxt backtest FAILED"; }

echo "== the web page in Chromium (its own perpsim, market on)"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    status=1; echo "e2e: no Chromium at ${CHROMIUM:-/usr/bin/chromium}: run tools/install-deps.sh"
elif ! "$HERE/../../tools/build-web.sh"; then
    status=1; echo "e2e: the web page did not build"
else
    (cd "$HERE" && PERPSIM_BIN="$BIN" node web_page.mjs) || { status=1; echo "e2e: web page FAILED"; }
    echo "== the web page's benchmark, small mode (bench/bench_web.mjs)"
    node "$HERE/../../bench/bench_web.mjs" --small --bin "$BIN" || { status=1; echo "e2e: bench_web FAILED"; }
fi

# ------------------------------------------------------------ audit
echo "== money audit"
audit='fetch(process.argv[1], {headers: {Authorization: "Bearer " + process.argv[2]}})
  .then(async r => { const t = await r.text(); console.log("GET /admin/v1/audit -> " + r.status + " " + t.slice(0, 400));
                     let j; try { j = JSON.parse(t); } catch { process.exit(1); }
                     process.exit(r.ok && j.ok === true ? 0 : 1); }, e => { console.log(String(e)); process.exit(1); })'
node -e "$audit" "$URL/admin/v1/audit" "$TOKEN" || { status=1; echo "e2e: the money audit FAILED"; }

# ------------------------------------------------------------ shutdown
kill -0 "$SERVER_PID" 2>/dev/null || { status=1; echo "e2e: perpsim died during the run"; }
stop_server
if [ -n "$SERVER_RC" ] && [ "$SERVER_RC" -ne 0 ]; then
    status=1
    echo "e2e: perpsim exited with status $SERVER_RC on SIGTERM (want 0)"
fi
[ "$status" -eq 0 ] || show_log
if [ "$status" -eq 0 ]; then echo "e2e: PASS"; else echo "e2e: FAIL"; fi
exit "$status"
