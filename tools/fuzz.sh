#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer and runs each for a while
# from its checked-in corpus (tests/fuzz/corpus/NAME/). A crash, a leak or
# a failed round trip stops the run: the input is kept as OUT/crash-NAME-*
# and the script exits 1 naming it (make it a regular test, fix it).
#
#   tools/fuzz.sh [--seconds S] [--out DIR] [NAME ...]
#   make test runs every harness for 15 s; a long run is
#   tools/fuzz.sh --seconds 3600
# New inputs that reach new code go to OUT/corpus-NAME, never into the
# checked-in corpus (merge them by hand when they are worth keeping).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
seconds=15
out="$here/build-fuzz"
names=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
    esac
done
[ ${#names[@]} -gt 0 ] || names=(request auth numbers journal config wsmsg)
command -v clang >/dev/null || { echo "fuzz: clang is missing (tools/install-deps.sh installs it)"; exit 1; }
mkdir -p "$out"
cflags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -I"$here" $(pkg-config --cflags libcjson openssl))
declare -A srcs=(
    [request]="api/params.c api/query.c api/timefmt.c api/json.c"
    [auth]="api/auth.c"
    [numbers]="api/params.c api/timefmt.c"
    [journal]="core/record.c"
    [wsmsg]="api/wsmsg.c api/feed_tables.c api/json.c margin/config.c margin/formula.c"
    [config]="app/config.c market/params.c core/config.c api/timefmt.c loadshed/loadshed.c margin/config.c margin/exchange.c margin/formula.c engine/bitidx.c engine/book.c engine/engine.c engine/idmap.c engine/stops.c"
)
declare -A libs=(
    [request]="$(pkg-config --libs libcjson) -lm"
    [auth]="$(pkg-config --libs openssl)"
    [numbers]="$(pkg-config --libs libcjson) -lm"
    [journal]=""
    [config]="$(pkg-config --libs libcjson) -lm -lpthread"
    [wsmsg]="$(pkg-config --libs libcjson) -lwslay -lm"
)
status=0
for n in "${names[@]}"; do
    bin="$out/fuzz_$n"
    # shellcheck disable=SC2086
    (cd "$here" && clang "${cflags[@]}" "tests/fuzz/fuzz_$n.c" ${srcs[$n]} -o "$bin" ${libs[$n]})
    mkdir -p "$out/corpus-$n"
    [ -d "$here/tests/fuzz/corpus/$n" ] || { echo "fuzz $n: no corpus in tests/fuzz/corpus/$n"; status=1; continue; }
    log="$out/fuzz_$n.log"
    if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/crash-$n-" "$out/corpus-$n" "$here/tests/fuzz/corpus/$n" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz $n: ok, $runs inputs in ${seconds} s"
    else
        echo "fuzz $n: FAILED (see $log; the input is $out/crash-$n-*)"
        tail -30 "$log"
        status=1
    fi
done
exit $status
