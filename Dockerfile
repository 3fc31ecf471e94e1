# Multi-stage build of the DB-Forge gateway.
# Stage 1 compiles with the full Rust toolchain (protoc comes from a crate, no apt needed).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dbforge-server \
 && cp target/release/dbforge-server /usr/local/bin/dbforge-server

# Stage 2 is a slim runtime: the binary, CA certificates, and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/dbforge --create-home dbforge
COPY --from=builder /usr/local/bin/dbforge-server /usr/local/bin/dbforge-server
USER dbforge
ENV DBFORGE_LISTEN=0.0.0.0:50051 \
    DBFORGE_DATA_DIR=/var/lib/dbforge \
    DBFORGE_LOG_FORMAT=json
VOLUME ["/var/lib/dbforge"]
EXPOSE 50051
# grpc.health.v1.Health/Check on DBFORGE_LISTEN (loopback for 0.0.0.0), by the binary itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/dbforge-server", "--health-check"]
ENTRYPOINT ["/usr/local/bin/dbforge-server"]
