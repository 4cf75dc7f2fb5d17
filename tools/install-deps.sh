#!/usr/bin/env bash
# Installs the Debian packages perpsim needs, only those missing.
# Runs as root, or through sudo when it is there. Safe to run again.
set -euo pipefail
pkgs=(gcc meson ninja-build pkg-config libmicrohttpd-dev libcjson-dev libssl-dev check python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "perpsim: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
