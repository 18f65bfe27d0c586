#!/usr/bin/env bash
# Resident memory of an idle `hallpass serve` on the memory store: starts the binary (default
# the release build; build it with `cargo build --release`), waits IDLE_SECS (3) seconds,
# prints its VmRSS and stops it. Usage: benches/idle_rss.sh [path/to/hallpass]
set -euo pipefail
bin="${1:-target/release/hallpass}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
env -u REDIS_URL -u REDIS_CLUSTER_URLS HALLPASS_BIND=127.0.0.1:0 HALLPASS_KEYS_DIR="$dir" \
  RUST_LOG=warn "$bin" serve >"$dir/out" 2>&1 &
pid=$!
sleep "${IDLE_SECS:-3}"
grep VmRSS "/proc/$pid/status"
kill "$pid"
wait "$pid" 2>/dev/null || true
