# syntax=docker/dockerfile:1
#
# The secretgate image the Helm chart runs (charts/secretgate, image.repository):
#   docker build -t ghcr.io/secretgate/secretgate:0.1.0 .
#
# Built from the committed Cargo.lock (--locked), so the image has exactly the
# dependencies CI tested. The runtime image is distroless: glibc and CA roots, no shell, no
# package manager, running as the non-root user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole source tree: Cargo.toml declares benches and tests, and cargo refuses a
# manifest whose targets are missing even when building only the binary. .dockerignore
# keeps build output, certificates and git history out.
COPY . .
# Cache mounts keep the registry and the target directory between builds; the binary is
# copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin secretgate \
    && install -D -m 0755 target/release/secretgate /out/secretgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/secretgate /secretgate
# nonroot's UID and GID, numeric so runAsNonRoot can verify them.
USER 65532:65532
# 8443: HTTPS webhooks; 9090: /metrics, /healthz, /readyz (plain HTTP).
EXPOSE 8443 9090
ENTRYPOINT ["/secretgate"]
CMD ["serve"]
