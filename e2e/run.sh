#!/usr/bin/env bash
# The end-to-end suite: real clients that nobody here wrote, against the real
# release binary.
#
# Starts `gatehouse serve` on a free loopback port with a temporary SQLite
# database and one user (alice, as `gatehouse demo` makes her, with a random
# password), runs every check against it, and stops it by its PID. A failed
# check prints what the server logged meanwhile; the whole log and the Swagger
# UI screenshot are left in e2e/output/.
#
#   bash e2e/run.sh                        # everything (installs what is missing)
#   bash e2e/run.sh swagger_ui curl        # only the checks whose names contain a word
#
# GATEHOUSE_BIN=path uses a built binary instead of `cargo build --release`.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$E2E_DIR")
OUTPUT=${E2E_OUTPUT:-$E2E_DIR/output}

# --- what the clients need -------------------------------------------------
if ! command -v chromium >/dev/null || ! command -v curl >/dev/null ||
    ! cmp -s "$E2E_DIR/package-lock.json" "$E2E_DIR/node_modules/.e2e-installed-lock.json" ||
    ! cmp -s "$E2E_DIR/requirements.txt" "$E2E_DIR/.venv/requirements.installed"; then
    echo "== e2e: installing the clients (e2e/setup.sh)"
    bash "$E2E_DIR/setup.sh"
fi

if [ -z "${GATEHOUSE_BIN:-}" ]; then
    echo "== e2e: cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin gatehouse)
    GATEHOUSE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/gatehouse
fi

# --- a fresh server ----------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e.XXXXXX")
SERVER_LOG=$WORK/server.log
SERVER_PID=
mkdir -p "$OUTPUT"
OUTPUT=$(cd "$OUTPUT" && pwd)
# Only what an earlier run left: E2E_OUTPUT may name a folder with other files.
rm -rf "$OUTPUT/server.log" "$OUTPUT/swagger-ui-authorized.png" "$OUTPUT/schemathesis"

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # Graceful shutdown finishes requests in flight; give it five seconds.
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
cleanup() {
    stop_server
    [ -f "$SERVER_LOG" ] && cp "$SERVER_LOG" "$OUTPUT/server.log"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

export GATEHOUSE_BCRYPT_COST=4
export DATABASE_URL="sqlite://$WORK/gatehouse.db"
SECRET_KEY_ENV=$("$GATEHOUSE_BIN" gen-secret)
export SECRET_KEY_ENV
export GATEHOUSE_AUDIENCE=gatehouse-e2e
# tower_http at debug logs each request's method, path, status and latency
# (never headers or bodies), so a failed check shows what the server saw.
export RUST_LOG=${RUST_LOG:-info,tower_http=debug}
E2E_USERNAME=alice
E2E_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')

printf '%s\n' "$E2E_PASSWORD" | "$GATEHOUSE_BIN" user add "$E2E_USERNAME" \
    --email alice@example.com --full-name "Alice Wonderson" --password-stdin >/dev/null

# The port is found free, then bound by the server; another process could take
# it in between, so a server that exits at once is tried again on a new port.
for attempt in 1 2 3; do
    PORT=$(free_port)
    BASE_URL="http://127.0.0.1:$PORT"
    NO_COLOR=1 GATEHOUSE_BIND="127.0.0.1:$PORT" GATEHOUSE_ISSUER="$BASE_URL" \
        "$GATEHOUSE_BIN" serve >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    ready=
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null --max-time 1 "$BASE_URL/readyz" 2>/dev/null; then
            ready=1
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ready" ] && break
    stop_server
    echo "e2e: the server did not become ready on port $PORT (attempt $attempt)" >&2
done
if [ -z "$ready" ]; then
    echo "e2e: could not start gatehouse; its log:" >&2
    cat "$SERVER_LOG" >&2
    exit 1
fi
echo "== e2e: gatehouse (pid $SERVER_PID) at $BASE_URL, database in $WORK"

# What every check reads. The secret goes only to the JWT check's process
# environment, never to output.
export GATEHOUSE_URL=$BASE_URL E2E_USERNAME E2E_PASSWORD
export E2E_ISSUER=$BASE_URL E2E_AUDIENCE=$GATEHOUSE_AUDIENCE E2E_OUTPUT=$OUTPUT
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
# Hypothesis and Python keep their caches out of the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY=$WORK/hypothesis
export PYTHONDONTWRITEBYTECODE=1

# --- the checks --------------------------------------------------------------
# The plugins that schemathesis installs into pytest are not used by these
# tests, and loading them costs seconds per run.
PYTEST=("$E2E_DIR/.venv/bin/python" -m pytest -p no:cacheprovider -p no:schemathesis
    -p no:hypothesispytest -p no:anyio -v --tb=short --color=no)
passed=()
failed=()

# run_check NAME SECONDS COMMAND...: runs one check with a time limit; on
# failure prints what the server logged while it ran.
run_check() {
    local name=$1 limit=$2
    shift 2
    if ((${#FILTERS[@]})); then
        local wanted= word
        for word in "${FILTERS[@]}"; do [[ $name == *"$word"* ]] && wanted=1; done
        [ -n "$wanted" ] || return 0
    fi
    echo
    echo "== e2e check: $name"
    local log_from started=$SECONDS status=0
    log_from=$(($(wc -l <"$SERVER_LOG") + 1))
    (cd "$E2E_DIR" && timeout --kill-after=10 "$limit" "$@") || status=$?
    if ((status == 0)); then
        passed+=("$name")
        echo "-- ok: $name ($((SECONDS - started)) s)"
    else
        failed+=("$name")
        ((status == 124)) && echo "-- timed out after $limit s"
        echo "-- FAILED: $name ($((SECONDS - started)) s); the server's log meanwhile:"
        tail -n "+$log_from" "$SERVER_LOG" | tail -n 300 | sed 's/^/   server| /'
        (($(wc -l <"$SERVER_LOG") >= log_from)) || echo "   (nothing)"
        kill -0 "$SERVER_PID" 2>/dev/null || echo "   (the server is no longer running)"
    fi
}
FILTERS=("$@")

run_check swagger_ui_in_chromium_logs_in_and_calls_users_me 240 \
    node --test --test-reporter=spec swagger_ui.test.mjs
run_check python_oauth2_clients_get_tokens_and_see_invalid_grant 120 \
    "${PYTEST[@]}" test_oauth2_clients.py
run_check pyjwt_verifies_the_access_token_independently 120 \
    "${PYTEST[@]}" test_jwt_pyjwt.py
run_check readme_curl_walkthrough_runs_verbatim 120 \
    "${PYTEST[@]}" test_readme_curl.py
run_check schemathesis_finds_no_5xx_and_no_schema_violations 420 \
    ./schemathesis.sh

stop_server
echo
echo "== e2e: server log and screenshots in $OUTPUT"
for name in "${failed[@]}"; do echo "FAILED: $name"; done
echo "e2e: ${#passed[@]} passed, ${#failed[@]} failed"
((${#failed[@]} == 0 && ${#passed[@]} > 0))
