#!/usr/bin/env bash
# Installs what `scripts/test.sh` needs beyond cargo: promtool (Debian package
# `prometheus`), which the integration test `promtool` runs against a live
# deployment's Prometheus text, and a headless browser (Debian package
# `chromium`), which the `dashboard` tests point at `weaver multi dashboard`.
# Idempotent: apt-get runs only for what is missing from PATH.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

install_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        echo "chromium already installed"
        return
    fi
    echo "installing: chromium (for the dashboard tests)"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
    command -v chromium >/dev/null
    echo "installed: $(chromium --version 2>/dev/null | head -n 1)"
}

install_chromium

if command -v promtool >/dev/null 2>&1; then
    echo "promtool already installed"
    exit 0
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
