# TaskPilot + DTP. Every recipe is a plain command; see README "Recipes" for the equivalents.

# Run both services (DTP :8080, TaskPilot :8081) against Postgres on 127.0.0.1:5432, or a
# private cluster under target/ when that one does not let user postgres in (scripts/dev.sh).
dev:
    bash scripts/dev.sh

# Run every test, against TEST_DATABASE_URL, 127.0.0.1:5432 or a private cluster (scripts/test.sh).
test *ARGS:
    bash scripts/test.sh {{ARGS}}

# Format the code.
fmt:
    cargo fmt --all

# Lint; warnings are errors.
lint:
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Start the system with Docker Compose.
up:
    docker compose up --build -d

# Stop it.
down:
    docker compose down

# Fault injection: engines killed with SIGKILL and Postgres restarted while tasks drain.
chaos *ARGS:
    cargo build --release --bins
    target/release/dtp-chaos chaos --restart-postgres {{ARGS}}

# Control-plane soak: concurrent clients create, bind, poll and cancel for a minute.
soak *ARGS:
    cargo build --release --bins
    target/release/dtp-chaos soak {{ARGS}}

# Fuzz both services against their OpenAPI descriptions (schemathesis; examples per operation).
fuzz-api EXAMPLES="100":
    cargo build --bins
    bash scripts/api-fuzz.sh {{EXAMPLES}}

# Benchmarks against release builds on fresh databases (see bench/RESULTS.md); `--smoke` for a short pass.
bench *ARGS:
    cargo build --release --bins
    test -x bench/peers/node_modules/.bin/node || (cd bench/peers && npm ci --no-audit --no-fund)
    target/release/dtp-bench {{ARGS}}
