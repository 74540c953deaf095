#!/usr/bin/env bash
# Log query throughput: `weaver multi logs` filtering against `grep -c`.
# Extra arguments go to logs-bench (the number of entries, default 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
# The benches are a workspace of their own (benches/), outside `cargo test
# --workspace`.
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --manifest-path benches/Cargo.toml --target-dir "$target" --bin logs-bench
exec "$target/release/logs-bench" "$@"
