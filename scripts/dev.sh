#!/usr/bin/env bash
# Runs both services against the local Postgres (databases are created on start):
# the DTP engine on :8080 and TaskPilot on :8081. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin dtp-engine --bin taskpilot-api
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT INT TERM
./target/debug/dtp-engine &
./target/debug/taskpilot-api &
wait -n
