#!/usr/bin/env bash
# How fast `weaver multi dashboard` serves the deployment page of a
# 9-process hello deployment (4 replicas per group), on release binaries.
# Extra arguments go to dashboard-bench (the number of fetches, default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p weaver-cli -p hello
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" --bin dashboard-bench
exec "$target/release/dashboard-bench" "$@"
