#!/usr/bin/env bash
# The dashboard's browser tests: starts the DTP engine and TaskPilot on free ports against
# fresh databases (dropped afterwards), makes an admin and a read-only key, and runs
# tests/browser in Debian's chromium (headless) through playwright-core. Screenshots of every
# page at 1280 and 390 px land in $SCREENSHOT_DIR (default target/ui-screenshots).
# Postgres as scripts/test.sh finds it. Needs chromium and Node; builds the binaries (BIN_DIR,
# default target/debug) and runs `npm ci` in tests/browser when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="${BIN_DIR:-target/debug}"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$PWD/target/ui-screenshots}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh
if [ -z "${TEST_DATABASE_URL:-}" ] && ! postgres_answers_on_5432; then
    private_postgres_start target/test-postgres "set TEST_DATABASE_URL" -c fsync=off
    TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PRIVATE_POSTGRES_PORT/postgres"
fi
server="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server="${server%/*}"

[ -x "$CHROMIUM" ] || { echo "browser-test.sh: $CHROMIUM not found: install Debian's chromium (apt-get install chromium)" >&2; exit 1; }
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund)
[ -x "$BIN_DIR/taskpilot-api" ] || cargo build --bin dtp-engine --bin taskpilot-api

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
suffix="$$_$(date +%s)"
dtp_db="browser_dtp_$suffix"
web_db="browser_web_$suffix"
dtp_port="$(free_port)"
web_port="$(free_port)"
work="$(mktemp -d)"
rm -rf "$SCREENSHOT_DIR" && mkdir -p "$SCREENSHOT_DIR"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$server/postgres" -qAtc "DROP DATABASE IF EXISTS $dtp_db WITH (FORCE)" >/dev/null 2>&1 || true
    psql "$server/postgres" -qAtc "DROP DATABASE IF EXISTS $web_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
    private_postgres_stop
}
trap cleanup EXIT

token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$work/tokens.toml" <<'TOKENS'
[tokens.taskpilot]
secret_env = "BROWSER_TASKPILOT_TOKEN"
role = "submitter"
TOKENS

export BROWSER_TASKPILOT_TOKEN="$token"
DTP_DATABASE_URL="$server/$dtp_db" DTP_HTTP_ADDR="127.0.0.1:$dtp_port" DTP_API_TOKENS_FILE="$work/tokens.toml" \
    RUST_LOG=warn "$BIN_DIR/dtp-engine" >"$work/dtp.log" 2>&1 &
pids+=($!)
export TASKPILOT_DATABASE_URL="$server/$web_db"
# Made before TaskPilot starts (the command brings the database up), so its key cache has them.
ADMIN_KEY="$("$BIN_DIR/taskpilot-api" keys create --tenant browser --scopes admin --name browser-admin)"
READ_KEY="$("$BIN_DIR/taskpilot-api" keys create --tenant browser --scopes tasks:read --name browser-reader)"
export ADMIN_KEY READ_KEY
TASKPILOT_HTTP_ADDR="127.0.0.1:$web_port" TASKPILOT_SCHEDULER_URL="http://127.0.0.1:$dtp_port" \
    TASKPILOT_SCHEDULER_TOKEN="$token" RUST_LOG=warn "$BIN_DIR/taskpilot-api" >"$work/taskpilot.log" 2>&1 &
pids+=($!)

answers() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; }
for _ in $(seq 1 100); do
    answers "http://127.0.0.1:$dtp_port/healthz" && answers "http://127.0.0.1:$web_port/healthz" && break
    sleep 0.2
done
if ! answers "http://127.0.0.1:$web_port/healthz"; then
    echo "browser-test.sh: the services did not start" >&2
    cat "$work/dtp.log" "$work/taskpilot.log" >&2
    exit 1
fi


export TASKPILOT_URL="http://127.0.0.1:$web_port"
status=0
(cd tests/browser && npm test) || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- dtp-engine log" >&2; tail -50 "$work/dtp.log" >&2
    echo "--- taskpilot-api log" >&2; tail -50 "$work/taskpilot.log" >&2
fi
echo "screenshots: $SCREENSHOT_DIR"
exit "$status"
