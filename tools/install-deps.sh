#!/usr/bin/env bash
# Installs the Debian packages perpsim needs, only those missing.
# Runs as root, or through sudo when it is there. Safe to run again.
#   build:      gcc meson ninja pkg-config + libmicrohttpd, wslay, cJSON, OpenSSL, xxHash, zlib, Check
#   tests:      libcurl (the HTTP client of the integration tests and the load
#               generator), Node.js + npm (ccxt end to end), python3 + requests
#               (the plain signing client), Chromium (the web page's browser test)
#   fuzzers:    clang and its libFuzzer runtime (libclang-rt-14-dev, Debian 12)
#   benchmarks: gnuplot (the load-shedding sweep's PNG)
set -euo pipefail
pkgs=(gcc meson ninja-build pkg-config libmicrohttpd-dev libwslay-dev libcjson-dev libssl-dev libxxhash-dev zlib1g-dev check python3
      clang libclang-rt-14-dev
      libcurl4-openssl-dev gnuplot-nox chromium fonts-liberation)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from Debian or from NodeSource (whose nodejs package
# carries npm): ask for the commands, not for a package name.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The Python client needs requests in the python3 that is first on PATH;
# Debian's package serves /usr/bin/python3.
if ! python3 -c 'import requests' 2>/dev/null; then
    dpkg-query -W -f='${Status}' python3-requests 2>/dev/null | grep -q "install ok installed" \
        || missing+=(python3-requests)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "perpsim: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
