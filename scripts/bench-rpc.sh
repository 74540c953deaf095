#!/usr/bin/env bash
# The component-RPC benchmark: weaver's cross-process component call against a
# raw Unix-socket floor and a tonic gRPC echo, pinned to CPU 0 and unpinned.
# Builds what it needs, then runs target/release/rpc-bench with the given
# arguments (see `rpc-bench --help`). Needs taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benches are a workspace of their own (benches/), outside `cargo test
# --workspace`; built into the same target directory, rpc-bench finds
# `weaver` and `echo` next to itself.
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p weaver-cli
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" --bin rpc-bench --bin echo
exec "$target/release/rpc-bench" "$@"
