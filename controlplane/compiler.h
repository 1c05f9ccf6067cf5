// Compiler: a ResourceSet (Kubernetes-style objects) -> the ztunnel config model
// (ztunnel::LocalConfig: Workloads, Services, Authorizations), computed as istiod's ambient
// index does. This is the one place that gives the objects meaning, so the `compile` command
// (file output) and a later xDS server (delta pushes) share it: the server keeps the last
// CompiledState and diffs the next one against it by resource key.
//
// Rules, in brief (details at each step in compiler.cc):
// - Enrolment: a pod is captured (protocol HBONE) when its namespace is labelled
//   istio.io/dataplane-mode=ambient or the pod itself says ambient, unless the pod says none or
//   uses the host network. Every other pod is still a workload (protocol TCP) so ztunnel can
//   route to it and count it as a service endpoint.
// - Workload uid "<clusterId>//Pod/<ns>/<name>" (WorkloadEntry:
//   "<clusterId>/networking.istio.io/WorkloadEntry/<ns>/<name>"); canonical name/revision from
//   service.istio.io/canonical-*, app.kubernetes.io/*, app/version labels, else the workload
//   name / "latest".
// - Services: hostname <name>.<ns>.svc.<clusterDomain>, VIPs from clusterIP(s), ports
//   port -> targetPort (0 for a named targetPort); each selected workload gets
//   services["<ns>/<hostname>"] = {port: resolved targetPort}.
// - Waypoints: Gateways of class istio-waypoint; the address is the IP of a pod labelled
//   gateway.networking.k8s.io/gateway-name=<gateway> (else the Gateway's status address).
//   istio.io/use-waypoint (label or annotation; "none" opts out) on a pod/WorkloadEntry or
//   Service, else on its Namespace, selects one; istio.io/use-waypoint-namespace names another
//   namespace; the Gateway's istio.io/waypoint-for (service by default, workload, all, none)
//   decides what it may serve.
// - AuthorizationPolicy: see authz_policy.h; selector policies are listed on every matching
//   workload of the policy's namespace (any namespace for the root namespace).
//
// Output order is deterministic (workloads by uid, services and policies by key), so equal
// input gives byte-identical files and a watcher can skip rewrites.
// Threading: pure functions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "controlplane/diagnostics.h"
#include "controlplane/k8s_resources.h"
#include "common/model/local_config.h"

namespace controlplane {

class JwksResolver;  // jwks_resolver.h

struct CompileOptions {
  std::string cluster_domain = "cluster.local";
  std::string cluster_id = "Kubernetes";
  std::string trust_domain = "cluster.local";
  std::string root_namespace = "istio-system";
  // Network of every workload and VIP ("" = default network). Must not contain '/': it is the
  // first part of "network/ip" keys.
  std::string network;
  // Fetches and caches jwksUri / OpenID-discovered JWKS for RequestAuthentication
  // (jwks_resolver.h); null = http(s) jwksUri and discovery are Errors (`compile` one-shot).
  std::shared_ptr<JwksResolver> jwks;
};

struct CompiledState {
  ztunnel::LocalConfig config;
  Diagnostics diagnostics;  // loader findings first, then the compiler's
};

CompiledState compile(const ResourceSet& resources, const CompileOptions& options);

// A pod's own locality label, which overrides its Node's (istiod's registry override):
// `topology.istio.io/locality` (or the older `istio-locality`), "region.zone.subzone" with dots
// because a label value cannot hold '/'. Empty when the pod has neither.
ztunnel::Locality pod_locality_label(const Labels& labels);

// load_directory() + compile(). Fails only when `dir` cannot be listed. `exclude`: files of
// `dir` not to read (the output file when it lives in the input directory).
common::Result<CompiledState> compile_directory(const std::string& dir, const CompileOptions& options,
                                                const std::vector<std::string>& exclude = {});

}  // namespace controlplane
