#!/usr/bin/env bash
# The test command: every crate's unit and integration tests against the Postgres server at
# TEST_DATABASE_URL; when that is unset, the one on 127.0.0.1:5432 if user postgres gets in
# without a password, else a private cluster in target/test-postgres started here and stopped
# on exit (see scripts/prerequisites.sh). Arguments go to `cargo test` (e.g. `-p taskpilot-api`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/prerequisites.sh
. scripts/prerequisites.sh
trap private_postgres_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_build_packages
if [ -z "${TEST_DATABASE_URL:-}" ] && ! postgres_answers_on_5432; then
    # Test databases are thrown away: durability buys nothing there.
    private_postgres_start target/test-postgres "set TEST_DATABASE_URL" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PRIVATE_POSTGRES_PORT/postgres"
fi
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
# Every crate, unless the arguments name packages (`--workspace` would override them).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p?* | --package | --package=*) scope=() ;;
    esac
done
cargo test "${scope[@]}" --all-features --locked "$@"
