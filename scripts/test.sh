#!/usr/bin/env bash
# The test command: installs the test's system packages (promtool, chromium), then runs
# the workspace's tests. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --workspace "$@"
