#!/usr/bin/env bash
# Runs both services against the local Postgres (databases are created on start): the DTP
# engine on :8080 and TaskPilot on :8081, with authentication on. Credentials are made on the
# first run and kept under target/dev/: the engine's service tokens and a TaskPilot admin key,
# printed below. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
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
            curl -H "Authorization: Bearer $(cat "$key_file")" localhost:8081/api/tasks
EOF_INFO

trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT INT TERM
./target/debug/dtp-engine &
./target/debug/taskpilot-api &
wait -n
