#!/usr/bin/env bash
# The test command: every crate's unit and integration tests against the local Postgres
# at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo test --workspace --all-features --locked "$@"
