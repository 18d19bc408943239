# syntax=docker/dockerfile:1
#
# The secretgate image the Helm chart runs (charts/secretgate, image.repository), for those
# who build with Docker:
#   docker build -t ghcr.io/secretgate/secretgate:0.1.0 .
# CI builds the same image without Docker: image/build.sh (README, "Building the image").
# Both make the same tree, from the same files, with the same config:
#   /secretgate (static), /etc/passwd, /etc/group, /etc/nsswitch.conf (image/rootfs/etc/),
#   /etc/ssl/certs/ca-certificates.crt (Debian's); user 65532:65532, entrypoint
#   ["/secretgate"], cmd ["serve"], ports 8443 and 9090. No shell, no package manager.
# (Docker makes one layer per COPY where image/build.sh makes one layer.)
#
# Built from the committed Cargo.lock (--locked), so the image has exactly the
# dependencies CI tested.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole source tree: Cargo.toml declares benches and tests, and cargo refuses a
# manifest whose targets are missing even when building only the binary. .dockerignore
# keeps build output, certificates and git history out.
COPY . .
# Static, as in image/build.sh: glibc with crt-static (libc6-dev's static libraries); the
# explicit --target keeps build scripts and proc-macros dynamic. Cache mounts keep the
# registry and the target directory between builds; the binary is copied out because a
# cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin secretgate --target x86_64-unknown-linux-gnu \
    && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/secretgate /out/secretgate

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --chmod=0644 image/rootfs/etc/passwd image/rootfs/etc/group image/rootfs/etc/nsswitch.conf /etc/
COPY --from=build /out/secretgate /secretgate
# nonroot's UID and GID (image/rootfs/etc/passwd), numeric so runAsNonRoot can verify them.
USER 65532:65532
# 8443: HTTPS webhooks; 9090: /metrics, /healthz, /readyz (plain HTTP).
EXPOSE 8443 9090
ENTRYPOINT ["/secretgate"]
CMD ["serve"]
# image/build.sh fills version and revision from Cargo.toml and git; here:
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="secretgate" \
      org.opencontainers.image.source="https://github.com/secretgate/secretgate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
