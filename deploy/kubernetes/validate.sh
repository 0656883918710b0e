#!/usr/bin/env bash
# Validates every manifest of deploy/kubernetes/ against the Kubernetes JSON
# schemas, offline: kubernetes-validate (PyPI) bundles the schemas of each
# Kubernetes version. --strict rejects unknown fields (a misspelled key).
#   deploy/kubernetes/validate.sh            # Kubernetes 1.30.0
#   K8S_VERSION=1.33.0 deploy/kubernetes/validate.sh
# The first run creates deploy/kubernetes/.venv and installs the validator
# (needs PyPI); later runs need no network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

validator_version=1.37.0
k8s_version=${K8S_VERSION:-1.30.0}
venv=$here/.venv

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip show kubernetes-validate 2>/dev/null | grep -qx "Version: $validator_version"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$validator_version"
fi

shopt -s nullglob
manifests=(*.yaml *.yml)
[ ${#manifests[@]} -gt 0 ] || { echo "validate: no manifest in $here" >&2; exit 1; }
"$venv/bin/kubernetes-validate" --strict --kubernetes-version "$k8s_version" "${manifests[@]}"
