// Where the Kubernetes API server is and how to authenticate to it: the in-cluster service
// account (KUBERNETES_SERVICE_HOST/PORT, token and CA under
// /var/run/secrets/kubernetes.io/serviceaccount) or a kubeconfig file (current context:
// server, certificate-authority[-data], insecure-skip-tls-verify, token / tokenFile,
// client-certificate[-data] + client-key[-data]).
//
// Threading: plain values. Invariant: `host` has no brackets; `scheme` is "https" or "http".
#pragma once

#include <string>

#include "common/result.h"

namespace common::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string scheme = "https";
  std::string host;
  std::string port = "443";
  std::string ca_pem;  // empty: the system's roots
  bool insecure = false;
  std::string token;       // static bearer token
  std::string token_file;  // re-read per request (projected tokens rotate); wins over `token`
  std::string client_cert_pem;
  std::string client_key_pem;
  // Sent as User-Agent; the API server's audit log (and the test server) tell clients by it.
  std::string user_agent = "ambient";

  std::string url() const;  // "https://host:port" (IPv6 in brackets)
};

// Splits "https://host[:port]" into `cfg`; the port defaults to 443 / 80.
common::Status parse_server_url(const std::string& url, KubeConfig& cfg);

// The in-cluster service account; `sa_dir` holds token, ca.crt.
common::Result<KubeConfig> in_cluster_config(const std::string& sa_dir = kServiceAccountDir);

// The current context of a kubeconfig file. Relative file references are resolved against the
// file's directory, as kubectl does.
common::Result<KubeConfig> load_kubeconfig(const std::string& path);

}  // namespace common::kube
