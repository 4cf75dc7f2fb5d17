#!/usr/bin/env bash
# Builds the web page: web/ -> web/dist, which perpsim serves at /.
# npm ci when node_modules does not match package-lock.json, then a Vite
# build when a source is newer than the last build. Safe to run again (and
# from two builds at once: a lock file serializes them).
set -euo pipefail
cd "$(dirname "$0")/../web"
command -v npm >/dev/null || { echo "build-web: npm is missing: run tools/install-deps.sh" >&2; exit 1; }
exec 9>.build.lock
flock -w 600 9 || { echo "build-web: timed out waiting for web/.build.lock" >&2; exit 1; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "build-web: npm ci in web/"
    npm ci --no-audit --no-fund --loglevel=error
fi
# dist/.built is written after a whole build: an interrupted one is redone.
srcs=(index.html src vite.config.js package.json package-lock.json)
[ -d public ] && srcs+=(public)
if [ ! -f dist/.built ] || [ -n "$(find "${srcs[@]}" -newer dist/.built -print -quit)" ]; then
    echo "build-web: vite build (web/dist)"
    rm -f dist/.built
    npx --no-install vite build --logLevel warn
    touch dist/.built
fi
