#!/usr/bin/env bash
# deploy/k8s and deploy/k8s-overlays/s3-postgres, offline (issue #14, #13): renders the kustomization with kubectl, validates it with
# kubernetes-validate --strict (schemas ship in the PyPI package, installed by scripts/setup.sh
# into target/py), and checks it against the binary with scripts/check-k8s.py (env names, flags,
# ports, probes, selectors, non-root read-only pod, grace period > delay + drain). Then makes sure
# both checks can fail: a misspelt field and an unknown IMGBIND_ variable must each be refused.
# Needs kubectl (on this machine kind) and a release build. A few seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

BIN="$IMGBIND_ROOT/target/release/imgbind"
PY="$IMGBIND_ROOT/target/py/bin"
[[ -x "$BIN" ]] || { log k8s "no $BIN: run scripts/build.sh"; exit 1; }
[[ -x "$PY/kubernetes-validate" ]] || { log k8s "no kubernetes-validate: run scripts/setup.sh"; exit 1; }
command -v kubectl >/dev/null || { log k8s "no kubectl on PATH (deploy/k8s cannot be rendered)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 scripts/containerfile.py deploy/Containerfile >"$work/image.json"
# The base, and the overlay for hosted images on S3 + PostgreSQL.
for kustomization in deploy/k8s deploy/k8s-overlays/s3-postgres; do
  kubectl kustomize "$kustomization" >"$work/overlay.yaml"
  "$PY/kubernetes-validate" --strict --quiet - <"$work/overlay.yaml"
  log k8s "$kustomization: kubernetes-validate --strict: $(grep -c '^kind:' "$work/overlay.yaml") objects pass"
  "$PY/python" scripts/check-k8s.py "$BIN" "$work/image.json" <"$work/overlay.yaml"
done
grep -q 'secretKeyRef' "$work/overlay.yaml" || { log k8s "FAIL: the overlay sets no Secret-backed env"; exit 1; }
kubectl kustomize deploy/k8s >"$work/rendered.yaml"

# Each check must be able to fail.
sed 's/readinessProbe:/readinesProbe:/' "$work/rendered.yaml" >"$work/misspelt.yaml"
if "$PY/kubernetes-validate" --strict --quiet - <"$work/misspelt.yaml" >/dev/null 2>&1; then
  log k8s "FAIL: kubernetes-validate accepted a misspelt field"
  exit 1
fi
sed 's/IMGBIND_SHUTDOWN_DELAY/IMGBIND_SHUTDOWN_DELAYS/' "$work/rendered.yaml" >"$work/unknown-env.yaml"
if "$PY/python" scripts/check-k8s.py "$BIN" "$work/image.json" <"$work/unknown-env.yaml" >"$work/out" 2>&1; then
  log k8s "FAIL: check-k8s accepted an env name imgbind does not know"
  exit 1
fi
grep -q 'IMGBIND_SHUTDOWN_DELAYS is not a variable' "$work/out" || { cat "$work/out" >&2; exit 1; }
sed 's/containerPort: 8790/containerPort: 8791/' "$work/rendered.yaml" >"$work/port.yaml"
if "$PY/python" scripts/check-k8s.py "$BIN" "$work/image.json" <"$work/port.yaml" >/dev/null 2>&1; then
  log k8s "FAIL: check-k8s accepted a container port the server does not listen on"
  exit 1
fi
log k8s "ok (a misspelt field, an unknown variable and a wrong port are each refused)"
