#!/usr/bin/env bash
# Installs what `scripts/test.sh` needs beyond cargo: promtool (Debian package
# `prometheus`), which the integration test `promtool` runs against a live
# deployment's Prometheus text. Idempotent: apt-get runs only when promtool is
# missing from PATH.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool already installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

echo "installing: prometheus (for promtool)"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus
# The package's Prometheus server is not wanted: the tests only run promtool.
if command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
echo "installed: prometheus (promtool $(promtool --version 2>&1 | head -n 1))"
