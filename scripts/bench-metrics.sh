#!/usr/bin/env bash
# The metrics benchmarks: metrics-bench (ns per counter/histogram update,
# uncontended and 2 threads on one counter), then rpc-bench's component
# calls with method metrics on (`weaver`) and off (`weaver-off`, which sets
# the bench-only WEAVER_METHOD_METRICS=off), beside the raw-socket floor,
# pinned and unpinned. Arguments go to rpc-bench (see `rpc-bench --help`);
# METRICS_RUNS sets metrics-bench's runs (default 7). Needs taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p weaver-cli
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" \
    --bin metrics-bench --bin rpc-bench --bin echo
"$target/release/metrics-bench" "${METRICS_RUNS:-7}"
exec "$target/release/rpc-bench" --only weaver,weaver-off,raw "$@"
