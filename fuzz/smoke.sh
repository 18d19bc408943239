#!/usr/bin/env bash
# fuzz/smoke.sh [SECONDS]: runs every cargo-fuzz target for SECONDS each (default 20)
# on stable Rust (--sanitizer none), seeding corpora from the recorded fixtures, and
# prints one line per target with libFuzzer's run count. Exits non-zero on any crash;
# the crashing input is in fuzz/artifacts/TARGET/ (add it to tests/fuzz_regressions.rs).
#
# Long run (documented in SECURITY.md): fuzz/smoke.sh 3600, or one target with
#   cargo fuzz run --sanitizer none admission_review -- -max_total_time=3600
# With AddressSanitizer (nightly features on stable, slower, long first build):
#   RUSTC_BOOTSTRAP=1 cargo fuzz run admission_review
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
fixtures="../../shared/fixtures/admission"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Seeds: whole reviews, the secret values and pods inside them, some image references.
python3 - "$fixtures" <<'PY'
import base64, json, pathlib, sys
fixtures = pathlib.Path(sys.argv[1])
corpus = pathlib.Path("corpus")
for t in ("admission_review", "secret_parsers", "registry", "pod_mutate"):
    (corpus / t).mkdir(parents=True, exist_ok=True)
for i, f in enumerate(sorted(fixtures.glob("*.json"))):
    if f.name.startswith("response-"):
        continue
    body = f.read_bytes()
    (corpus / "admission_review" / f.stem).write_bytes(body)
    obj = json.loads(body).get("request", {}).get("object") or {}
    if obj.get("kind") == "Pod":
        (corpus / "pod_mutate" / f.stem).write_text(json.dumps(obj))
        for j, c in enumerate(obj.get("spec", {}).get("containers", [])):
            (corpus / "registry" / f"{f.stem}-{j}").write_text(c.get("image", "") + "\nghcr.io")
    for k, v in (obj.get("data") or {}).items():
        try:
            (corpus / "secret_parsers" / f"{f.stem}-{k}").write_bytes(base64.b64decode(v))
        except ValueError:
            pass
PY

status=0
for target in admission_review secret_parsers registry pod_mutate; do
  log="$(mktemp)"
  if cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    runs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)"
    echo "fuzz $target: ok, ${runs:-see log}"
  else
    echo "fuzz $target: FAILED" >&2
    tail -40 "$log" >&2
    status=1
  fi
  rm -f "$log"
done
exit "$status"
