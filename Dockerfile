# syntax=docker/dockerfile:1.7
# Minute: one image, one binary; the container's command is its role
# (`docker run minute auth`, `... gateway`; no command = all-in-one).

ARG RUST_VERSION=1.95

# ---- dependency layer, cached apart from the source (cargo-chef) ----
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.71 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# Line tables stay in target/ for local backtraces; the image keeps symbols, not DWARF.
RUN cargo build --release --locked --bin minute \
 && install -D -m 0755 target/release/minute /out/minute \
 && strip --strip-debug /out/minute \
 && install -d -m 0755 /out/data

# ---- runtime: no shell, no package manager, non-root ----
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/minute /usr/local/bin/minute
COPY --from=builder --chown=65532:65532 /out/data /data
ENV MINUTE_DATA_DIR=/data \
    PORT=8080 \
    LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
# The binary probes its own /healthz: the image has no shell or curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["minute", "healthcheck"]
ENTRYPOINT ["minute"]
CMD ["all"]
