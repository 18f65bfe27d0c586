#!/usr/bin/env bash
# End-to-end tests: the generated SDKs (Python and TypeScript) and the browser tests
# (Playwright + Debian's Chromium) against live Hallpass and beer-locker servers.
#
# 1. Installs what is missing: Debian's chromium (apt), the pinned Python packages
#    (tests/e2e/requirements.txt, into target/e2e/venv) and the pinned npm packages
#    (tests/e2e/package-lock.json, `npm ci`). Never downloads a browser of its own.
# 2. Builds the release binaries once, picks free loopback ports, starts Hallpass (memory
#    store, fresh keys, the beer locker registered as a resource server) and the beer locker
#    trusting it, and waits for /readyz and /healthz.
# 3. Generates both SDKs into tests/e2e/generated/ (git-ignored: generated at test time from
#    openapi/openapi.yaml and the running beer locker's /openapi.yaml, so they never drift).
# 4. Runs pytest (tests/e2e/test_*.py: SDKs, browser, schemathesis against both live specs with
#    openapi/schemathesis.toml) and `node --test` (the compiled tests/e2e/ts/*.test.ts).
#
# Screenshots of every page the browser tests visit go to target/e2e-screenshots/; server
# logs to target/e2e/logs/. The last line is `e2e: N passed, N failed`; the exit code is
# non-zero on any failure. Works as root on a fresh Debian machine with no standard input.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
E2E=$ROOT/tests/e2e
WORK=$ROOT/target/e2e
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
export E2E_SCREENSHOTS=$ROOT/target/e2e-screenshots
mkdir -p "$WORK/logs" "$WORK/reports"
rm -rf "$E2E_SCREENSHOTS" "$WORK/reports"/* && mkdir -p "$E2E_SCREENSHOTS"
say() { echo "e2e: $*"; }
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }
KEYS=
PIDS=()
SUMMARY=
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$KEYS" ] && rm -rf "$KEYS"
  # A step before the tests failed (set -e): still close with the line CI reads.
  if [ -z "$SUMMARY" ]; then
    tail -n 20 "$WORK/logs/"*.log 2>/dev/null || true
    echo "e2e: 0 passed, 1 failed"
    rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

# --- 1. Tools --------------------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
VENV=$WORK/venv
if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$(stamp "$E2E/requirements.txt")" ]; then
  say "installing the Python packages (tests/e2e/requirements.txt)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$E2E/requirements.txt"
  stamp "$E2E/requirements.txt" >"$VENV/.stamp"
fi
export PATH=$VENV/bin:$PATH
if [ "$(cat "$E2E/node_modules/.stamp" 2>/dev/null)" != "$(stamp "$E2E/package-lock.json")" ]; then
  say "installing the npm packages (tests/e2e/package-lock.json)"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
  stamp "$E2E/package-lock.json" >"$E2E/node_modules/.stamp"
fi

# --- 2. Servers ------------------------------------------------------------------------
cargo build --release --locked --bins
# Five free loopback ports: Hallpass, the beer locker, the single-page app's origin, a
# second origin no client allows, and one the tests do not use (kept free). The issuer URL
# and the allowed origins must be known before the servers start, hence chosen here.
read -r HP_PORT BL_PORT SPA_PORT OTHER_PORT _ < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
export E2E_HALLPASS=http://127.0.0.1:$HP_PORT
export E2E_LOCKER=http://127.0.0.1:$BL_PORT
export E2E_SPA_ORIGIN=http://127.0.0.1:$SPA_PORT
export E2E_OTHER_ORIGIN=http://127.0.0.1:$OTHER_PORT
KEYS=$(mktemp -d)
# RFC 8707: Hallpass registers the beer locker at its e2e address (the development registry
# knows only its default one, http://127.0.0.1:4000), so its tokens carry that `aud`.
RESOURCES=$WORK/resources.json
cat >"$RESOURCES" <<EOF
{"resources": [{"resource": "$E2E_LOCKER", "name": "Beer locker", "scopes": ["beers:read", "beers:write"]}]}
EOF

# The memory store (REDIS_URL and REDIS_CLUSTER_URLS unset), and rate limits out of the way
# of the tests and of schemathesis (which sends many requests from one address, with
# credentials that are not a client's).
env -u REDIS_URL -u REDIS_CLUSTER_URLS NO_COLOR=1 \
  HALLPASS_ISSUER="$E2E_HALLPASS" HALLPASS_BIND="127.0.0.1:$HP_PORT" HALLPASS_KEYS_DIR="$KEYS" \
  HALLPASS_RESOURCES="$RESOURCES" \
  HALLPASS_RATE_LIMIT_REGISTRATION=100000 HALLPASS_RATE_LIMIT_SIGN_IN=10000 \
  HALLPASS_RATE_LIMIT_SIGN_IN_IP=100000 HALLPASS_RATE_LIMIT_SIGN_IN_ACCOUNT=100000 \
  HALLPASS_RATE_LIMIT_CLIENT_AUTH=100000 \
  "$BIN/hallpass" >"$WORK/logs/hallpass.log" 2>&1 &
PIDS+=($!)
wait_up() {
  python3 - "$1" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"e2e: {sys.argv[1]} did not answer 200 within 30 s")
    time.sleep(0.1)
EOF
}
wait_up "$E2E_HALLPASS/readyz"
DOCS_CLIENT_ID=$(python3 "$E2E/docs_client.py")
env -u REDIS_URL -u REDIS_CLUSTER_URLS NO_COLOR=1 \
  BEER_LOCKER_ISSUER="$E2E_HALLPASS" BEER_LOCKER_BIND="127.0.0.1:$BL_PORT" \
  BEER_LOCKER_CORS_ORIGINS="$E2E_SPA_ORIGIN" BEER_LOCKER_DOCS_CLIENT_ID="$DOCS_CLIENT_ID" \
  "$BIN/beer-locker" >"$WORK/logs/beer-locker.log" 2>&1 &
PIDS+=($!)
wait_up "$E2E_LOCKER/healthz"
say "Hallpass at $E2E_HALLPASS, beer locker at $E2E_LOCKER"

# --- 3. SDKs ---------------------------------------------------------------------------
GEN=$E2E/generated
rm -rf "$GEN" && mkdir -p "$GEN/py" "$GEN/ts"
python3 -c "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())" \
  "$E2E_LOCKER/openapi.yaml" >"$GEN/beer-locker.yaml"
openapi-python-client generate --path openapi/openapi.yaml --meta none \
  --output-path "$GEN/py/hallpass_client" >"$WORK/logs/sdk-py-hallpass.log" 2>&1
openapi-python-client generate --path "$GEN/beer-locker.yaml" --meta none \
  --output-path "$GEN/py/beer_locker_client" >"$WORK/logs/sdk-py-beer-locker.log" 2>&1
for log in "$WORK"/logs/sdk-py-*.log; do
  say "$(basename "$log" .log): $(grep -c '^WARNING' "$log" || true) generator warnings (log: target/e2e/logs/)"
  if grep -q "Failure to process schema\|Unable to parse" "$log"; then
    say "openapi-python-client dropped part of the spec ($(basename "$log")):"
    grep -A2 "Failure to process schema\|Unable to parse" "$log" | sed 's/^/  /'
  fi
done
(cd "$E2E" && npx openapi-ts -s -i ../../openapi/openapi.yaml -o generated/ts/hallpass &&
  npx openapi-ts -s -i ./generated/beer-locker.yaml -o generated/ts/beer-locker &&
  npx tsc -p tsconfig.json)

# --- 4. Tests --------------------------------------------------------------------------
status=0
(cd "$E2E" && PYTHONPATH="$GEN/py" python3 -m pytest -p no:cacheprovider -q \
  --junitxml="$WORK/reports/pytest.xml" .) || status=1
(cd "$E2E" && node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$WORK/reports/node.xml" \
  "$GEN"/ts-build/ts/*.test.js) || status=1

SUMMARY=done
python3 - "$status" "$WORK/reports/pytest.xml" "$WORK/reports/node.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
passed = failed = 0
for path in sys.argv[2:]:
    try:
        cases = ET.parse(path).getroot().iter("testcase")
    except (OSError, ET.ParseError):
        failed += 1  # the runner died before writing its report
        continue
    for case in cases:
        if case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
if sys.argv[1] != "0" and failed == 0:
    failed = 1  # a runner failed outside any test case
print(f"e2e: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
EOF
