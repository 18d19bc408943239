#!/usr/bin/env bash
# Hardening smoke runs for CI (called from .ci/run after `cargo test`, which already ran
# tests/hostile.rs, tests/lifecycle.rs, tests/redaction.rs and the proptest fuzz
# properties of tests/fuzz_regressions.rs over fuzz/checks.rs).
#
# - soak smoke: 20 s of mixed load on the debug binary; fails on any failed request, any
#   unexpected status, or RSS growth above 16 MiB after warm-up (bench/soak.py --smoke).
# - fuzz smoke: cargo-fuzz on every target. Off by default: installing cargo-fuzz and
#   building the instrumented targets took ~2 + ~10 minutes on 2 shared cores (see
#   SECURITY.md), more than CI's budget; the same properties run in `cargo test` through
#   proptest. HARDENING_FUZZ=1 (or a number of seconds) turns it on.
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

fuzz="${HARDENING_FUZZ:-0}"
if [ "$fuzz" != "0" ]; then
  seconds=20
  [ "$fuzz" -gt 1 ] 2>/dev/null && seconds="$fuzz"
  echo "== fuzz smoke (${seconds} s per target)"
  bash fuzz/smoke.sh "$seconds"
else
  echo "== fuzz smoke: covered by the proptest run in cargo test (HARDENING_FUZZ=1 for cargo-fuzz)"
fi
