#!/usr/bin/env bash
# The component-RPC benchmark: weaver's cross-process component call against a
# raw Unix-socket floor and a tonic gRPC echo, pinned to CPU 0 and unpinned.
# Builds what it needs, then runs target/release/rpc-bench with the given
# arguments (see `rpc-bench --help`). Needs taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p weaver-cli -p weaver-integration --bins
exec target/release/rpc-bench "$@"
