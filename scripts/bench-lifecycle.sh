#!/usr/bin/env bash
# Deploy-to-first-response and ctrl-c-to-last-process-gone of hello under
# `weaver multi deploy`, on release binaries. Extra arguments go to
# lifecycle-bench (the number of runs, default 7).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benches are a workspace of their own (benches/), outside `cargo test
# --workspace`; built into the same target directory, lifecycle-bench finds
# `weaver` and `hello` next to itself.
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p weaver-cli -p hello
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" --bin lifecycle-bench
exec "$target/release/lifecycle-bench" "$@"
