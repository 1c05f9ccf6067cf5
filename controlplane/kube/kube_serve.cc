#include "controlplane/kube/kube_serve.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/admin/log.h"
#include "controlplane/kube/kube_source.h"
#include "controlplane/kube/token_review.h"

namespace controlplane::kube {

int run_serve_kube(ServeOptions serve, KubeServeOptions kube, const std::atomic<bool>& stop_flag) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* env = std::getenv("RUST_LOG");
  const std::string filter = env && *env && common::log::validate_filter(env) ? env : "info";
  (void)common::log::init(filter, common::log::Format::Plain, "controlplane");
  auto lg = common::log::logger("controlplane");

  auto cfg = kube.kubeconfig.empty() ? in_cluster_config() : load_kubeconfig(kube.kubeconfig);
  if (!cfg) {
    lg->error("{}", cfg.error());
    return 1;
  }
  KubeSourceOptions so;
  so.config = std::move(*cfg);
  so.config.user_agent = "ambient-controlplane";
  so.list_page_size = kube.list_page_size;
  lg->info("watching the Kubernetes API at {}", so.config.url());
  auto source = KubeSource::start(std::move(so));
  if (!source) {
    lg->error("{}", source.error());
    return 1;
  }
  std::unique_ptr<WaypointDeployer> deployer;
  if (kube.deploy_waypoints) {
    if (kube.waypoints.identity.empty()) {
      const char* pod = std::getenv("POD_NAME");
      char host[256] = {};
      if (pod && *pod) {
        kube.waypoints.identity = pod;
      } else if (gethostname(host, sizeof host - 1) == 0) {
        kube.waypoints.identity = host;
      } else {
        kube.waypoints.identity = "controlplane";
      }
    }
    kube.waypoints.trust_domain = serve.compile.trust_domain;
    kube.waypoints.cluster_id = serve.compile.cluster_id;
    kube.waypoints.root_cert_file = serve.cacerts + "/root-cert.pem";
    deployer = WaypointDeployer::start(*source, kube.waypoints);
  }
  serve.source = *source;
  if (deployer) {
    WaypointDeployer* d = deployer.get();
    serve.on_attachments = [d](std::shared_ptr<const GatewayAttachments> a) { d->set_attachments(std::move(a)); };
  }
  if (kube.token_review) {
    auto reviewer = std::make_shared<TokenReviewer>(std::shared_ptr<const KubeClient>(*source, &(*source)->client()),
                                                    kube.token_audiences);
    serve.token_reviewer = [reviewer](std::string_view token) { return reviewer->review(token); };
  }
  const int rc = run_serve(serve, stop_flag);
  (*source)->stop();
  if (deployer) deployer->stop();
  return rc;
}

}  // namespace controlplane::kube
