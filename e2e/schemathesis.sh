#!/usr/bin/env bash
# Contract fuzzing: schemathesis tests every operation of the running server
# against the server's own /openapi.json, in two passes:
#
#   1. with a real access token on the operations that require one, every
#      phase and check, bounded by schemathesis.toml;
#   2. with no credentials at all, the examples and coverage phases only: the
#      protected operations must then answer their documented 401.
#
# Reads GATEHOUSE_URL, E2E_USERNAME, E2E_PASSWORD and E2E_OUTPUT (set by
# run.sh); E2E_SEED picks another seed than the fixed one CI uses.
set -euo pipefail
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
SCHEMATHESIS=$E2E_DIR/.venv/bin/schemathesis
# Schemathesis and Hypothesis keep caches (.schemathesis, .hypothesis) in the
# current directory: a scratch one keeps them out of the work tree, and each
# run independent of the last.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e-schemathesis.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

seed=${E2E_SEED:-1}
token_response=$(curl -fsS -X POST "$GATEHOUSE_URL/token" \
    --data-urlencode "username=$E2E_USERNAME" --data-urlencode "password=$E2E_PASSWORD")
E2E_TOKEN=$(printf '%s' "$token_response" |
    "$E2E_DIR/.venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
export E2E_TOKEN

echo "-- pass 1 of 2: with a real access token"
"$SCHEMATHESIS" --no-color --config-file "$E2E_DIR/schemathesis.toml" run \
    --seed "$seed" \
    --report junit --report-dir "$E2E_OUTPUT/schemathesis" \
    --report-junit-path "$E2E_OUTPUT/schemathesis/with-token.xml" \
    "$GATEHOUSE_URL/openapi.json"

echo "-- pass 2 of 2: without credentials"
# /dev/null: not schemathesis.toml, which would add the token.
"$SCHEMATHESIS" --no-color --config-file /dev/null run \
    --seed "$seed" --phases examples,coverage --max-examples 20 \
    --workers 2 --request-timeout 10 \
    --report junit --report-dir "$E2E_OUTPUT/schemathesis" \
    --report-junit-path "$E2E_OUTPUT/schemathesis/without-credentials.xml" \
    "$GATEHOUSE_URL/openapi.json"
