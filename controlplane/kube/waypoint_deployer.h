// WaypointDeployer: what istiod's gateway controllers do for the Gateways they manage: class
// istio-waypoint (a waypoint) and class istio (an ingress gateway). For each such Gateway it
// applies (JSON merge patch, or create when absent) a ServiceAccount, a Deployment running the
// waypoint binary (PROXY_TYPE=router for an ingress) and a Service, owned by the Gateway
// (ownerReferences, so the cluster's garbage collector also removes them); what they hold is
// controlplane/kube/gateway_objects.h. The Gateway's status gets `addresses` (the cluster IP of
// a waypoint; a load balancer's ingress for an ingress) and `Accepted`/`Programmed` conditions,
// written only when they change. Managed objects whose Gateway is gone are deleted (they are
// found by the gateway.istio.io/managed label, so this also works across controlplane restarts).
//
// Like istiod, it also publishes the mesh root certificate as ConfigMap `istio-ca-root-cert`
// (key root-cert.pem) in every namespace, which the waypoint (and ztunnel) mount to verify the
// control plane.
//
// Leader election (leader_elect): writes happen only while this replica holds the
// coordination.k8s.io/v1 Lease `lease_namespace/lease_name` (15 s lease, renewed every 2 s,
// taken over when its renewTime is older than its duration; updates carry the Lease's
// resourceVersion, so two replicas never both win).
//
// Threading: one thread; the source's change listener and a 30 s resync wake it.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "controlplane/gateway_attachment.h"
#include "controlplane/kube/kube_source.h"

namespace controlplane::kube {

struct WaypointDeployerOptions {
  std::string image = "localhost/ambient:latest";
  std::string image_pull_policy = "IfNotPresent";
  std::string xds_address = "istiod.istio-system.svc:15012";  // host:port the waypoint dials
  std::string trust_domain = "cluster.local";
  std::string cluster_id = "Kubernetes";
  bool leader_elect = false;
  std::string lease_namespace = "istio-system";
  std::string lease_name = "ambient-controlplane-waypoints";
  std::string identity;        // this replica (POD_NAME, else the host name)
  std::string root_cert_file;  // PEM published as istio-ca-root-cert ("" = do not publish)
};

class WaypointDeployer {
 public:
  static std::unique_ptr<WaypointDeployer> start(std::shared_ptr<KubeSource> source, WaypointDeployerOptions options);
  ~WaypointDeployer();
  void stop();
  // The latest compile's Gateway API attachment (gateway_attachment.h): from then on Gateways
  // also get status.listeners and routes status.parents (route_status.h). Any thread.
  void set_attachments(std::shared_ptr<const GatewayAttachments> attachments);

 private:
  struct Impl;
  explicit WaypointDeployer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace controlplane::kube
