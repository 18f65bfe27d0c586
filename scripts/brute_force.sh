#!/usr/bin/env bash
# Usage: scripts/brute_force.sh <hallpass binary> — 100 wrong Basic passwords, then the right one.
# Prints how many were checked (401) and refused (429), the answer to the right password, and
# the throttled counters of /metrics. Needs curl and bc; starts its own server on the memory store.
set -u
BIN=$1; PORT=3917; DIR=$(mktemp -d)
HALLPASS_BIND=127.0.0.1:$PORT HALLPASS_ISSUER=http://127.0.0.1:$PORT HALLPASS_KEYS_DIR=$DIR "$BIN" serve >/dev/null 2>&1 &
PID=$!; trap 'kill $PID; rm -rf $DIR' EXIT
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
curl -s -o /dev/null -H 'content-type: application/json' -d '{"username":"victim","password":"correct horse battery"}' http://127.0.0.1:$PORT/api/users
start=$(date +%s.%N)
codes=$(for i in $(seq 100); do curl -s -o /dev/null -w '%{http_code}\n' -u victim:wrong$i http://127.0.0.1:$PORT/api/users/me; done | sort | uniq -c | tr '\n' ' ')
end=$(date +%s.%N)
right=$(curl -s -D - -o /dev/null -u 'victim:correct horse battery' http://127.0.0.1:$PORT/api/users/me | grep -iE '^HTTP|^retry-after' | tr -d '\r' | tr '\n' ' ')
echo "100 wrong passwords in $(echo "$end - $start" | bc) s: $codes"
echo "then the right one: $right"
curl -s http://127.0.0.1:$PORT/metrics | grep '^hallpass_throttled'
