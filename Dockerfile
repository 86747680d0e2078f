# Builds both services into one image; docker-compose.yml runs either binary from it.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# The dependencies first, from the manifests alone (one line per workspace member) and stub
# sources: this layer, the slow one, is built again only when a manifest or Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
COPY crates/dtp-contract/Cargo.toml crates/dtp-contract/
COPY crates/dtp-engine/Cargo.toml crates/dtp-engine/
COPY crates/taskpilot-api/Cargo.toml crates/taskpilot-api/
COPY crates/service-postgres/Cargo.toml crates/service-postgres/
COPY crates/service-http/Cargo.toml crates/service-http/
COPY crates/service-process/Cargo.toml crates/service-process/
COPY crates/dtp-chaos/Cargo.toml crates/dtp-chaos/
COPY crates/dtp-bench/Cargo.toml crates/dtp-bench/
COPY crates/dtp-client/Cargo.toml crates/dtp-client/
COPY examples/custom-engine/Cargo.toml examples/custom-engine/
RUN for member in crates/* examples/custom-engine; do \
        mkdir -p "$member/src" && touch "$member/src/lib.rs"; \
    done \
    && echo 'fn main() {}' >crates/dtp-engine/src/main.rs \
    && echo 'fn main() {}' >crates/taskpilot-api/src/main.rs \
    && cargo build --release --locked --bin dtp-engine --bin taskpilot-api \
    && rm -rf crates/*/src examples/custom-engine/src

# Then the real sources. Their timestamps may be older than the stubs' builds: touched, so
# that cargo builds the workspace's own crates again.
COPY . .
RUN find crates examples -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin dtp-engine --bin taskpilot-api

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/dtp-engine /src/target/release/taskpilot-api /usr/local/bin/
USER nobody
CMD ["dtp-engine"]
