#!/usr/bin/env bash
# Runs both services (databases are created on start): the DTP engine on :8080 and TaskPilot
# on :8081, with authentication on. Their Postgres: DTP_DATABASE_URL and
# TASKPILOT_DATABASE_URL when set; else the server on 127.0.0.1:5432 if user postgres gets in
# without a password; else a private cluster in target/dev-postgres, started here (the
# server package is installed first when the user may; see scripts/prerequisites.sh).
# Credentials are made on the first run and kept under target/dev/: the engine's service
# tokens and a TaskPilot admin key, printed below. Ctrl-C stops everything started here; when
# one service exits, the other is stopped and the exit named.
set -euo pipefail
cd "$(dirname "$0")/.."
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
    echo "dev.sh: needs bash 5.1 or later (this is $BASH_VERSION)" >&2
    exit 1
fi
# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh

cleanup() {
    local running
    running="$(jobs -p)"
    [ -z "$running" ] || kill $running 2>/dev/null || true
    wait 2>/dev/null || true
    private_postgres_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_build_packages
database="as DTP_DATABASE_URL and TASKPILOT_DATABASE_URL say (unset: localhost:5432)"
if [ -z "${DTP_DATABASE_URL:-}" ] && [ -z "${TASKPILOT_DATABASE_URL:-}" ]; then
    if postgres_answers_on_5432; then
        database="127.0.0.1:5432"
    else
        private_postgres_start target/dev-postgres "set DTP_DATABASE_URL and TASKPILOT_DATABASE_URL"
        export DTP_DATABASE_URL="postgres://postgres@127.0.0.1:$PRIVATE_POSTGRES_PORT/dtp"
        export TASKPILOT_DATABASE_URL="postgres://postgres@127.0.0.1:$PRIVATE_POSTGRES_PORT/webdb"
        database="127.0.0.1:$PRIVATE_POSTGRES_PORT (private, in $PRIVATE_POSTGRES_DIR)"
    fi
fi
cargo build --bin dtp-engine --bin taskpilot-api

DEV_DIR=target/dev
mkdir -p "$DEV_DIR"
if [ ! -f "$DEV_DIR/secrets.env" ]; then
    secret() { python3 -c 'import secrets; print(secrets.token_hex(32))' 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    umask 077
    {
        echo "DTP_DEV_TASKPILOT_TOKEN=$(secret)"
        echo "DTP_DEV_ADMIN_TOKEN=$(secret)"
        echo "DTP_DEV_WORKER_TOKEN=$(secret)"
    } >"$DEV_DIR/secrets.env"
fi
set -a
# shellcheck source=/dev/null
. "$DEV_DIR/secrets.env"
set +a
cat >"$DEV_DIR/dtp-tokens.toml" <<'TOKENS'
[tokens.taskpilot]
secret_env = "DTP_DEV_TASKPILOT_TOKEN"
role = "submitter"
[tokens.admin]
secret_env = "DTP_DEV_ADMIN_TOKEN"
role = "admin"
[tokens.workers]
secret_env = "DTP_DEV_WORKER_TOKEN"
role = "worker"
TOKENS
export DTP_API_TOKENS_FILE="$DEV_DIR/dtp-tokens.toml"
export TASKPILOT_SCHEDULER_TOKEN="$DTP_DEV_TASKPILOT_TOKEN"

# A TaskPilot admin key of tenant `dev`, made again if its database no longer has it.
key_file="$DEV_DIR/taskpilot-key"
if [ ! -s "$key_file" ] ||
    ! ./target/debug/taskpilot-api keys list --tenant dev 2>/dev/null | grep -q "^$(cut -d_ -f2 "$key_file")"; then
    ./target/debug/taskpilot-api keys create --tenant dev --scopes admin --name dev >"$key_file"
fi

cat <<EOF_INFO
DTP engine  http://localhost:8080   (token: Authorization: Bearer \$DTP_DEV_ADMIN_TOKEN, in $DEV_DIR/secrets.env)
TaskPilot   http://localhost:8081   API key: $(cat "$key_file")
Dashboard   http://localhost:8081/ui
            curl -H "Authorization: Bearer $(cat "$key_file")" localhost:8081/api/tasks
Postgres    $database
EOF_INFO

declare -A service_names
./target/debug/dtp-engine &
service_names[$!]=dtp-engine
./target/debug/taskpilot-api &
service_names[$!]=taskpilot-api
status=0
wait -n -p ended "${!service_names[@]}" || status=$?
ended_name="${service_names[$ended]}"
unset "service_names[$ended]"
how="status $status"
((status <= 128)) || how="$how (SIG$(kill -l $((status - 128))))"
echo "dev.sh: $ended_name exited with $how; stopping ${service_names[*]}" >&2
exit "$status"
