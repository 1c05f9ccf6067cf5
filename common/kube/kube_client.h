// KubeClient: HTTP/1.1 to the Kubernetes API server (TLS with OpenSSL, or plain HTTP for a
// kubeconfig that says http://), one connection per call, bearer token or client certificate.
// `request` is a whole request/response; `stream_lines` is a watch: the body arrives chunked
// and each complete line (one JSON watch event) is handed over as it arrives.
//
// Beast and Asio stay in kube_client.cc: this header is included by the source and deployer.
//
// Threading: a KubeClient is immutable after construction and may be used from several threads
// at once (each call has its own connection). A Cancel may be triggered from any thread: it
// shuts down the socket the call it was given to is blocked on, and every later call with it
// fails at once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/kube/kube_config.h"
#include "common/result.h"

namespace common::kube {

class Cancel {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Registers the socket a call blocks on (-1 when it ends). False when already cancelled.
  bool attach(int fd);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  int fd_ = -1;
};

struct KubeResponse {
  int status = 0;
  std::string body;
};

class KubeClient {
 public:
  explicit KubeClient(KubeConfig cfg);
  ~KubeClient();

  const KubeConfig& config() const { return cfg_; }

  // One request; `body` is sent with `content_type` when non-empty. Errors are transport
  // failures only (an HTTP error status is a response).
  common::Result<KubeResponse> request(std::string_view method, const std::string& target, const std::string& body = {},
                                       std::string_view content_type = "application/json",
                                       std::chrono::seconds timeout = std::chrono::seconds(30),
                                       Cancel* cancel = nullptr) const;

  // GET `target`; while the status is 200, calls `on_line` per line of the body until it
  // returns false, the body ends, nothing arrives for `idle`, or `cancel` fires. A non-200
  // response is returned whole (its body is the Status object) without calling `on_line`.
  common::Result<KubeResponse> stream_lines(const std::string& target,
                                            const std::function<bool(std::string_view)>& on_line,
                                            std::chrono::seconds idle, Cancel* cancel) const;

 private:
  struct Tls;
  KubeConfig cfg_;
  std::unique_ptr<Tls> tls_;  // null for http://
  std::string tls_error_;     // why the TLS context could not be built (reported per call)
};

// Percent-encodes a query parameter value (label selectors contain '=' and ',').
std::string url_encode(std::string_view v);

}  // namespace common::kube
