#!/usr/bin/env bash
# Proxy benchmark: weaver-proxy vs nginx over the same two backends, and vs one
# backend hit directly, measured with wrk. Runs unpinned, then pinned (wrk on
# CPU 1, backends and proxy on CPU 0; the targets are judged on this run, where
# the load generator does not compete with what it measures). Extra arguments go
# to both runs, e.g.
#   scripts/bench-proxy.sh --runs 5
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-bench-deps.sh
# The benches are a workspace of their own (benches/), outside `cargo test
# --workspace`.
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" --bin proxy-bench
"$target/release/proxy-bench" "$@"
echo
"$target/release/proxy-bench" --pin "$@"
