#!/usr/bin/env bash
# Builds secretgate's container image with no Docker daemon:
#   1. a static release binary: the glibc target with crt-static, linked against Debian's
#      libc6-dev static libraries (no musl target to fetch; glibc 2.36 has the NSS "files"
#      and "dns" modules inside libc, so name lookups work from a static binary);
#   2. an OCI image layout and oci-archive from image/oci.py (Python's standard library).
#
# Output (under $CARGO_TARGET_DIR, default target/):
#   image/secretgate-oci.tar   oci-archive: skopeo copy oci-archive:… docker://REGISTRY/…
#   image/layout/              the same as an OCI image layout directory
#   image/digest               the manifest digest a registry reports after the push
#   image/secretgate           the binary that is in the image
# Then run image/check.sh. Needs: cargo, gcc, libc6-dev, python3 >= 3.11, ca-certificates.
#
# Usage: bash image/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/image"
triple="x86_64-unknown-linux-gnu"

# The explicit --target keeps RUSTFLAGS off build scripts and proc-macros, which must stay
# dynamic (a static proc-macro cannot be loaded by rustc). Symbols are stripped: the
# image is meant to be small, and panics still print their messages.
echo "image: cargo build --release (static, $triple)" >&2
start=$(date +%s)
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked --bin secretgate --target "$triple"
echo "image: release build took $(($(date +%s) - start)) s" >&2

binary="$target_dir/$triple/release/secretgate"
# A dynamic binary would not start in an image with no libc: refuse it here already.
if readelf -l "$binary" | grep -q 'INTERP'; then
  echo "error: $binary has a program interpreter (it is not static)" >&2
  exit 1
fi

mkdir -p "$out"
install -m 0755 "$binary" "$out/secretgate"
python3 image/oci.py --binary "$out/secretgate" --out "$out"
