# syntax=docker/dockerfile:1
# Build stage: a release binary.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY proto ./proto
RUN cargo build --release --locked --bin sallyport

# Runtime stage: the binary alone, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sallyport --create-home sallyport
COPY --from=build /src/target/release/sallyport /usr/local/bin/sallyport
USER 10001:10001
WORKDIR /var/lib/sallyport
ENV SALLYPORT_DATA_DIR=/var/lib/sallyport \
    SALLYPORT_SERVER__LISTEN=0.0.0.0:8443
VOLUME ["/var/lib/sallyport"]
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS --cacert /var/lib/sallyport/dev-ca/ca.pem https://localhost:8443/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/sallyport"]
CMD ["serve"]
