#!/usr/bin/env bash
# Checks the image image/build.sh wrote:
#   1. image/check.py: config (user, entrypoint, cmd, ports, labels), the layers' exact
#      contents (no shell, no package manager), size under 15 MB compressed,
#      reproducibility, and the binary run from the layers in a chroot as 65532
#      (--version, serve, DNS and /etc/hosts lookups). Needs root.
#   2. README's push command for real: `skopeo copy oci-archive:…` into a registry on
#      loopback (Debian's docker-registry, plain HTTP), then `skopeo inspect` must report
#      the manifest digest of image/digest and the config's user.
# Needs: python3 >= 3.11, skopeo, docker-registry (apt-get install skopeo docker-registry).
#
# Usage: bash image/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

out="${CARGO_TARGET_DIR:-target}/image"
archive="$out/secretgate-oci.tar"
python3 image/check.py "$archive"

for tool in skopeo /usr/bin/docker-registry; do
  if ! command -v "$tool" >/dev/null; then
    echo "image check: FAIL $tool is missing (apt-get install skopeo docker-registry)" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
  secret: image-check-only
YAML
/usr/bin/docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

version="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$out/summary.json")"
ref="docker://127.0.0.1:$port/secretgate:$version"
# The archive's blobs are pushed as they are (no conversion), so the registry's manifest
# digest is the one image/oci.py computed.
skopeo copy --quiet --dest-tls-verify=false "oci-archive:$archive" "$ref" || {
  cat "$work/registry.log" >&2
  exit 1
}
pushed="$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "$ref")"
want="$(cat "$out/digest")"
if [ "$pushed" != "$want" ]; then
  echo "image check: FAIL the registry reports $pushed after skopeo copy, image/digest says $want" >&2
  exit 1
fi
echo "image check: ok   skopeo copy oci-archive:… docker://…: the registry serves manifest $pushed"
user="$(skopeo inspect --tls-verify=false --config "$ref" | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["User"])')"
if [ "$user" != "65532:65532" ]; then
  echo "image check: FAIL the pushed config's user is $user" >&2
  exit 1
fi
echo "image check: ok   the pushed image's config says user $user"
