// `controlplane serve`: a small istiod for single-host meshes and tests. One gRPC server over
// TLS carries the delta ADS service (ads_server.h) and the Istio CA service (ca_service.h),
// both authenticated by a static token file (tokens.h); the mesh comes from a directory of
// Kubernetes-style YAML that is watched and recompiled on change.
//
// Startup: the CA is loaded from (or created in) `cacerts`; a serving certificate is issued
// from it (DNS localhost, istiod.istio-system.svc, istiod.istio-system.svc.cluster.local; IP
// 127.0.0.1, ::1 and the listen host when it is an IP), so clients verify the server with
// <cacerts>/root-cert.pem. The directory is compiled once before the port opens, so the first
// client already gets the full mesh.
//
// Watching: a thread checks the directory fingerprint as soon as inotify reports a change
// (dir_notify.h) and at the latest every `poll_interval`; on a change it
// re-parses only the changed files (CachedLoader), recompiles only the namespaces they touch
// (IncrementalCompiler), logs the findings that are new, converts those namespaces to xDS
// resources, swaps the served state with per-namespace shards and the list of changed names
// (streams then push their deltas), updates the node/identity index the CA uses for
// impersonation, and rewrites `out` if set (O(mesh): the file is whole).
//
// Threading: start() returns a running server; address(), ads(), poll_now() and stop() may be
// called from any thread. stop() is idempotent and also run by the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "controlplane/ads_server.h"
#include "controlplane/compiler.h"
#include "controlplane/kube/object_source.h"
#include "controlplane/tokens.h"

namespace controlplane {

struct GatewayAttachments;  // gateway_attachment.h

struct ServeOptions {
  std::string dir;                       // manifests (required unless `source` is set)
  // Objects from elsewhere instead of `dir` (the Kubernetes API: kube/kube_source.h); the same
  // compiler and publishing apply.
  std::shared_ptr<ObjectSource> source;
  std::string listen = "127.0.0.1:15012";  // host:port; port 0 = any free port
  std::string cacerts = "cacerts";       // CA directory; created when absent
  std::string tokens;                    // tokens file (required unless token_reviewer is set)
  TokenAuthenticator::Reviewer token_reviewer;  // tokens not in the file (kube/token_review.h)
  std::vector<std::string> trusted_node_accounts{"istio-system/ztunnel"};
  std::chrono::seconds max_cert_ttl{std::chrono::hours(2160)};
  std::string out;                       // also write LOCAL_XDS_PATH here ("" = no)
  bool quiet = false;                    // hide Info findings
  CompileOptions compile;
  std::chrono::milliseconds poll_interval{200};
  // Called (watcher thread) after each compile of a `source` snapshot with its Gateway API
  // attachment, for the status writer (kube/waypoint_deployer.h); unset = nobody listens.
  std::function<void(std::shared_ptr<const GatewayAttachments>)> on_attachments;
  // RequestAuthentication jwksUri http(s) and OpenID discovery (jwks_resolver.h): the server
  // creates the resolver unless compile.jwks is already set (tests).
  std::chrono::milliseconds jwks_refresh{std::chrono::minutes(20)};
  std::string jwks_ca_file;  // --jwks-ca: PEM trusted besides the system roots
};

class ControlPlaneServer {
 public:
  // Loads tokens and CA, compiles the directory, starts listening. Errors name the file or
  // setting at fault.
  static common::Result<std::unique_ptr<ControlPlaneServer>> start(const ServeOptions& options);
  ~ControlPlaneServer();
  ControlPlaneServer(const ControlPlaneServer&) = delete;
  ControlPlaneServer& operator=(const ControlPlaneServer&) = delete;

  // "host:port" actually listened on (the real port when the option said 0).
  const std::string& address() const;
  int port() const;
  // PEM of <cacerts>/root-cert.pem: what clients verify the server with.
  const std::string& root_cert_pem() const;

  AdsServer& ads();

  // Whether a pod or WorkloadEntry running as `identity_uri` is on `node` in the current
  // compiled state (what the CA checks for impersonation). Thread-safe.
  bool identity_on_node(const std::string& node, const std::string& identity_uri) const;

  // Checks the directory now (as the watcher does every poll_interval) and recompiles when it
  // changed. True when a new state was published. Serialised with the watcher.
  bool poll_now();

  // Ends streams, shuts the gRPC server down (short deadline), stops the watcher. Idempotent.
  void stop();

 private:
  struct Impl;
  explicit ControlPlaneServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The `serve` command: start(), print "serving on <addr>", run until `stop_flag` is set
// (SIGTERM/SIGINT in main), shut down. Returns the exit code (0, or 1 on a startup error).
int run_serve(const ServeOptions& options, const std::atomic<bool>& stop_flag);

}  // namespace controlplane
