#!/usr/bin/env bash
# Installs the peers the proxy benchmark compares against: nginx (the peer
# proxy) and wrk (the load generator), from Debian packages. Idempotent: a
# tool already on PATH is left alone, and apt-get runs only when one is missing.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "nginx and wrk already installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

echo "installing: ${missing[*]}"
$sudo apt-get update
# nginx-light is not in every release; plain nginx is.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
# The package's service is not wanted: the benchmark runs its own instance.
if command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
fi
command -v nginx >/dev/null && command -v wrk >/dev/null
echo "installed: ${missing[*]}"
