#!/usr/bin/env bash
# Hardening smoke runs for CI (called from .ci/run after `cargo test`, which already ran
# tests/hostile.rs, tests/lifecycle.rs, tests/redaction.rs and the proptest fuzz
# properties of tests/fuzz_regressions.rs over fuzz/checks.rs).
#
# - soak smoke: 20 s of mixed load on the debug binary; fails on any request without an
#   answer, any unexpected status, or RSS growth above 16 MiB after warm-up
#   (bench/soak.py --smoke).
# - fuzz smoke: cargo-fuzz (libFuzzer, --sanitizer none on stable) runs every target for
#   20 s, seeded from the recorded fixtures; any crash fails CI. On an idle 2-core machine
#   installing cargo-fuzz took 50 s and building the instrumented targets 8 min (see
#   SECURITY.md). HARDENING_FUZZ=N runs N seconds per target; HARDENING_FUZZ=0 skips it
#   (the same properties still run in `cargo test` through proptest).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v h2load >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq nghttp2-client >/dev/null
fi
binary="${CARGO_TARGET_DIR:-target}/debug/secretgate"
[ -x "$binary" ] || cargo build --locked

echo "== soak smoke (20 s, RSS growth bound)"
python3 bench/soak.py --smoke --binary "$binary" --out "${CARGO_TARGET_DIR:-target}/soak-smoke.json"

seconds="${HARDENING_FUZZ:-20}"
if [ "$seconds" != "0" ]; then
  echo "== fuzz smoke (${seconds} s per target)"
  bash fuzz/smoke.sh "$seconds"
else
  echo "== fuzz smoke skipped (HARDENING_FUZZ=0); the proptest run in cargo test covers the same properties"
fi
