# Build stage: the logwarden binary with librdkafka built in (rdkafka's bundled build).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin logwarden && strip target/release/logwarden

# Runtime stage: a small Debian with only the shared libraries the binary links.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/logwarden logwarden \
    && mkdir -p /var/lib/logwarden/archive && chown -R logwarden /var/lib/logwarden
COPY --from=build /src/target/release/logwarden /usr/local/bin/logwarden
USER logwarden
# No MALLOC_* variables here: logwarden tunes glibc malloc itself at start
# (src/malloc.rs), and leaves it alone when the environment tunes it.
WORKDIR /var/lib/logwarden
ENTRYPOINT ["/usr/local/bin/logwarden"]
CMD ["--help"]
