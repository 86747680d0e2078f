#!/usr/bin/env bash
# Fuzzes both running services against their own OpenAPI descriptions with schemathesis:
# no 5xx, every answer conforms to the spec. Starts the engine and TaskPilot on spare
# ports against throwaway databases, and removes them afterwards.
# Usage: scripts/api-fuzz.sh [examples-per-operation]   (BIN_DIR=target/debug by default)
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-${API_FUZZ_EXAMPLES:-50}}"
BIN_DIR="${BIN_DIR:-target/debug}"
PG="${PG_SERVER_URL:-postgres://postgres@127.0.0.1:5432}"
DTP_PORT=18180
WEB_PORT=18181
RUN_DIR="$(mktemp -d)"
DTP_DB="api_fuzz_dtp_$$"
WEB_DB="api_fuzz_web_$$"

python3 -m schemathesis.cli --version >/dev/null 2>&1 ||
    python3 -m pip install --quiet --root-user-action=ignore 'schemathesis==4.32.5'

cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DTP_DB WITH (FORCE)" -c "DROP DATABASE IF EXISTS $WEB_DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

# An external type for the worker API, and an HTTP type whose target refuses connections.
cat >"$RUN_DIR/types.toml" <<'TYPES'
[types.fuzz-external]
kind = "external"
[types.fuzz-http]
kind = "http"
url = "http://127.0.0.1:9/fuzz"
TYPES
# Both services run with authentication on: an admin token for the fuzzer at DTP, a
# submitter token for TaskPilot, and a TaskPilot admin key made on its database.
secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
export DTP_FUZZ_TOKEN="$(secret)" DTP_FUZZ_TASKPILOT_TOKEN="$(secret)"
cat >"$RUN_DIR/tokens.toml" <<'TOKENS'
[tokens.fuzz]
secret_env = "DTP_FUZZ_TOKEN"
role = "admin"
[tokens.taskpilot]
secret_env = "DTP_FUZZ_TASKPILOT_TOKEN"
role = "submitter"
TOKENS
WEB_KEY="$(TASKPILOT_DATABASE_URL="$PG/$WEB_DB" "$BIN_DIR/taskpilot-api" keys create --tenant fuzz --scopes admin)"

# Long-polls capped at 200 ms (the description says so), so that fuzzing them does not wait.
DTP_DATABASE_URL="$PG/$DTP_DB" DTP_HTTP_ADDR="127.0.0.1:$DTP_PORT" DTP_TASK_TYPES_FILE="$RUN_DIR/types.toml" \
    DTP_LEASE_MAX_WAIT_MS=200 DTP_API_TOKENS_FILE="$RUN_DIR/tokens.toml" \
    "$BIN_DIR/dtp-engine" >"$RUN_DIR/dtp.log" 2>&1 &
TASKPILOT_DATABASE_URL="$PG/$WEB_DB" TASKPILOT_HTTP_ADDR="127.0.0.1:$WEB_PORT" \
    TASKPILOT_SCHEDULER_URL="http://127.0.0.1:$DTP_PORT" TASKPILOT_SCHEDULER_TOKEN="$DTP_FUZZ_TASKPILOT_TOKEN" \
    "$BIN_DIR/taskpilot-api" >"$RUN_DIR/taskpilot.log" 2>&1 &

for port in $DTP_PORT $WEB_PORT; do
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || {
        echo "api-fuzz: service on :$port did not become ready; logs in $RUN_DIR" >&2
        exit 1
    }
done

# The event streams (Server-Sent Events) stay open until their task finishes or the client
# leaves, which a fuzzer cannot judge; their tests are in the TaskPilot suite.
status=0
for port in $DTP_PORT $WEB_PORT; do
    if [ "$port" = "$DTP_PORT" ]; then credential="$DTP_FUZZ_TOKEN"; else credential="$WEB_KEY"; fi
    echo "== schemathesis against :$port ($EXAMPLES examples per operation)"
    curl -fsS -H "Authorization: Bearer $credential" "http://127.0.0.1:$port/openapi.json" >"$RUN_DIR/spec-$port.json"
    python3 -m schemathesis.cli --config-file scripts/schemathesis.toml run "$RUN_DIR/spec-$port.json" \
        --url "http://127.0.0.1:$port" \
        --header "Authorization: Bearer $credential" \
        --checks all \
        --max-examples "$EXAMPLES" \
        --exclude-path /docs \
        --exclude-path /metrics \
        --exclude-path /api/events \
        --exclude-path '/api/tasks/{id}/events' \
        --seed "${API_FUZZ_SEED:-1}" \
        --no-color || status=1
done
[ "$status" = 0 ] || echo "api-fuzz: failures above; service logs in $RUN_DIR" >&2
exit "$status"
