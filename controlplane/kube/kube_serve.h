// `controlplane serve --kube | --kubeconfig PATH`: connects to the Kubernetes API
// (kube_config.h), waits for the first list of every watched kind (kube_source.h), starts the
// waypoint deployer (waypoint_deployer.h) and then runs the same server as `serve --dir`
// (serve.h) with the API as its object source; with --token-review, callers' bearer tokens not
// in --tokens are checked by TokenReview (token_review.h).
//
// Threading: called once from main; returns when `stop_flag` is set (exit code).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "controlplane/kube/waypoint_deployer.h"
#include "controlplane/serve.h"

namespace controlplane::kube {

struct KubeServeOptions {
  bool in_cluster = false;  // --kube
  std::string kubeconfig;   // --kubeconfig PATH (wins over --kube)
  bool deploy_waypoints = true;
  bool token_review = false;  // --token-review: callers' tokens via TokenReview
  std::vector<std::string> token_audiences{"istio-ca"};
  size_t list_page_size = 500;  // --kube-list-page-size (0 = unpaged lists)
  WaypointDeployerOptions waypoints;
};

int run_serve_kube(ServeOptions serve, KubeServeOptions kube, const std::atomic<bool>& stop_flag);

}  // namespace controlplane::kube
