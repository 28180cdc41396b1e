# gemgate: build with the Rust image, run on distroless (no shell, non-root).
# Mount your keys at /app/keys and keep /app/data on a volume; override any
# setting with GEMGATE_<SECTION>__<FIELD> environment variables.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY examples ./examples
COPY bench ./bench
COPY static ./static
RUN cargo build --release --locked --bin gemgate \
    && mkdir -p /out/data /out/keys /out/policies \
    && cp target/release/gemgate /out/gemgate
COPY config.toml /out/config.toml
COPY keys/README.md /out/keys/README.md
COPY policies /out/policies

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build --chown=65532:65532 /out/ /app/
ENV GEMGATE_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/app/gemgate", "health", "--url", "http://127.0.0.1:8080/healthz"]
USER 65532:65532
ENTRYPOINT ["/app/gemgate"]
CMD ["serve", "--config", "/app/config.toml"]
