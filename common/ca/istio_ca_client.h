// IstioCaClient: the CertProvider that asks an Istio CA (istiod, or our control plane) for
// workload certificates over gRPC: istio.v1.auth.IstioCertificateService/CreateCertificate
// (ztunnel-facts §5). Per fetch: a fresh ECDSA P-256 key and CSR (keys are never reused),
// validity_duration = the configured TTL, and in shared (node) mode the metadata Struct
// {"ImpersonatedIdentity": <spiffe id>} so the CA issues for a workload on our node rather than
// for our own service account. The answer is accepted only if its leaf carries exactly the
// requested identity (common::make_credentials).
//
// Not its job: retries, backoff and rotation (SecretManager does those). A failed call answers
// an error naming the gRPC status ("CA: PERMISSION_DENIED: ...").
//
// Threading: construct, fetch() and destroy on the control thread (the thread running
// `control`). Calls use gRPC's callback API, so no thread of ours ever blocks; gRPC's threads
// only post the result back to `control`, where `done` runs. At most max_in_flight calls are
// outstanding; further fetches wait in FIFO order. Destruction cancels outstanding calls and
// guarantees no `done` runs afterwards; it waits (milliseconds, at most 5 s) for gRPC to finish
// the cancelled calls' callbacks, so the channel is never released on a gRPC thread (see the
// .cc). `control` must outlive the client.
// This header does not include gRPC (pimpl), so it can be included anywhere.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "common/identity/cert_provider.h"
#include "common/grpc/channel.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace common::ca {

struct IstioCaClientOptions {
  // Requested certificate lifetime (SECRET_TTL); sent as validity_duration in seconds. The CA
  // may cap it; 0 asks for the CA's default.
  std::chrono::seconds ttl{std::chrono::hours(24)};
  // Shared (node) mode: ask for another workload's identity via "ImpersonatedIdentity".
  bool impersonate = true;
  // Concurrent CreateCertificate calls (upstream: 8).
  size_t max_in_flight = 8;
  // Deadline of one call.
  std::chrono::seconds timeout{10};
};

class IstioCaClient : public CertProvider {
 public:
  using Options = IstioCaClientOptions;

  // Builds the channel once. If that fails (bad address, unreadable root), every fetch()
  // answers that error.
  IstioCaClient(boost::asio::io_context& control, grpcx::GrpcEndpoint endpoint, Options options = {});
  ~IstioCaClient() override;
  IstioCaClient(const IstioCaClient&) = delete;
  IstioCaClient& operator=(const IstioCaClient&) = delete;

  using CertProvider::fetch;
  // Queued fetches start by priority (RealTime, Warmup, Background), in arrival order within one.
  void fetch(const Identity& id, Done done, FetchPriority priority) override;

  // Calls outstanding / fetches waiting for a slot (diagnostics and tests).
  size_t in_flight() const;
  size_t queued() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace common::ca
