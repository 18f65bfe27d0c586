#!/usr/bin/env bash
# password_flood.sh: the server's memory under a flood of wrong passwords (issue 8, item 1).
#
# Starts the release server on the memory store (keys in a temporary directory), registers the
# user `victim`, records idle RSS, then sends REQUESTS (500) requests with wrong HTTP Basic
# passwords, CONCURRENCY (32) at a time:
#     curl -u victim:wrongN http://127.0.0.1:PORT/api/users/me
# and prints the answers by status, the peak RSS during the flood (sampled every 0.1 s), RSS
# right after and SETTLE (10) seconds later. Run by hand, never in CI:
#
#     cargo build --release --bin hallpass
#     benches/password_flood.sh                      # target/release/hallpass
#     benches/password_flood.sh /path/to/other/hallpass
#
# Environment: PORT (default 18471), REQUESTS, CONCURRENCY, SETTLE. Needs curl, xargs, Linux /proc.
set -euo pipefail

BIN=${1:-target/release/hallpass}
PORT=${PORT:-18471}
REQUESTS=${REQUESTS:-500}
CONCURRENCY=${CONCURRENCY:-32}
SETTLE=${SETTLE:-10}
BASE="http://127.0.0.1:$PORT"

[ -x "$BIN" ] || { echo "no executable at $BIN (cargo build --release --bin hallpass)" >&2; exit 1; }
WORK=$(mktemp -d)
SERVER_PID=
SAMPLER_PID=
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
mb() { echo "$(( $1 / 1024 )) MB"; }

env -u REDIS_URL HALLPASS_BIND="127.0.0.1:$PORT" HALLPASS_ISSUER="$BASE" \
    HALLPASS_KEYS_DIR="$WORK/keys" RUST_LOG=warn "$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -fs -o /dev/null "$BASE/healthz" && break
    sleep 0.1
done
curl -fs -o /dev/null "$BASE/healthz" || { cat "$WORK/server.log" >&2; exit 1; }

status=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"username":"victim","password":"correct horse battery staple"}' "$BASE/api/users")
[ "$status" = 201 ] || { echo "registering victim: HTTP $status" >&2; exit 1; }
# One right password, so the first hash after start is not the one we measure.
curl -fs -o /dev/null -u 'victim:correct horse battery staple' "$BASE/api/users/me"
sleep 1

idle=$(rss_kb)
echo "$idle" >"$WORK/peak"
(
    while :; do
        now=$(rss_kb 2>/dev/null) || exit 0
        [ "$now" -gt "$(cat "$WORK/peak")" ] && echo "$now" >"$WORK/peak"
        sleep 0.1
    done
) &
SAMPLER_PID=$!

start=$(date +%s.%N)
seq "$REQUESTS" | xargs -P"$CONCURRENCY" -I{} \
    curl -s -o /dev/null -w '%{http_code}\n' -u 'victim:wrong{}' "$BASE/api/users/me" \
    >"$WORK/codes"
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
after=$(rss_kb)
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
peak=$(cat "$WORK/peak")
sleep "$SETTLE"
settled=$(rss_kb)

echo "binary:          $BIN"
echo "requests:        $REQUESTS wrong passwords, $CONCURRENCY at a time, in $elapsed s"
echo "answers:         $(sort "$WORK/codes" | uniq -c | awk '{printf "%s x HTTP %s  ", $1, $2}')"
echo "RSS idle:        $(mb "$idle")"
echo "RSS peak:        $(mb "$peak")"
echo "RSS right after: $(mb "$after")"
echo "RSS ${SETTLE} s later: $(mb "$settled")"
