#include "controlplane/ca_service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>
#include <vector>

#include "common/identity/certs.h"
#include "istio/v1/auth/ca.grpc.pb.h"

namespace controlplane {

namespace {

using istio::v1::auth::IstioCertificateRequest;
using istio::v1::auth::IstioCertificateResponse;

constexpr char kImpersonatedIdentity[] = "ImpersonatedIdentity";

std::string describe(const Caller& c) {
  return c.ns + "/" + c.service_account + (c.node.empty() ? std::string(" (no node)") : " (node " + c.node + ")");
}

class CaService final : public istio::v1::auth::IstioCertificateService::Service {
 public:
  CaService(common::LocalCa ca, std::shared_ptr<const TokenAuthenticator> tokens, CaServiceOptions options,
            IdentityOnNode identity_on_node)
      : ca_(std::move(ca)),
        tokens_(std::move(tokens)),
        options_(std::move(options)),
        identity_on_node_(std::move(identity_on_node)) {}

  grpc::Status CreateCertificate(grpc::ServerContext* ctx, const IstioCertificateRequest* req,
                                 IstioCertificateResponse* resp) override {
    // --- who is asking
    std::optional<Caller> caller;
    const auto& md = ctx->client_metadata();
    if (auto it = md.find("authorization"); it != md.end() && tokens_) {
      caller = tokens_->authenticate(std::string_view(it->second.data(), it->second.size()));
    }
    if (!caller) {
      spdlog::info("CA: refused CreateCertificate from {}: unknown or missing bearer token", ctx->peer());
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or missing bearer token");
    }
    const std::string who = describe(*caller);

    // --- what it asks for: exactly one SPIFFE URI SAN in a CSR that verifies
    auto csr = common::certs::inspect_csr(req->csr());
    if (!csr) return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, "?", "CSR does not parse: " + csr.error());
    if (!csr->signature_ok) return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, "?", "CSR signature does not verify");
    if (csr->uri_sans.size() != 1) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, "?",
                    "CSR must carry exactly one URI SAN, has " + std::to_string(csr->uri_sans.size()));
    }
    auto requested = common::Identity::parse(csr->uri_sans.front());
    if (!requested) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, csr->uri_sans.front(),
                    "CSR URI SAN is not a SPIFFE identity spiffe://<td>/ns/<ns>/sa/<sa>");
    }
    const std::string& id = requested->uri();

    // --- may the caller have it
    std::string impersonated;
    if (req->has_metadata()) {
      const auto& fields = req->metadata().fields();
      if (auto it = fields.find(kImpersonatedIdentity); it != fields.end()) {
        if (it->second.kind_case() != google::protobuf::Value::kStringValue) {
          return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, id, "metadata ImpersonatedIdentity must be a string");
        }
        impersonated = it->second.string_value();
      }
    }
    if (requested->trust_domain() != options_.trust_domain) {
      return refuse(grpc::StatusCode::PERMISSION_DENIED, who, id,
                    "trust domain " + requested->trust_domain() + " is not " + options_.trust_domain);
    }
    if (!impersonated.empty()) {
      auto imp = common::Identity::parse(impersonated);
      if (!imp) {
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, who, impersonated,
                      "ImpersonatedIdentity is not a SPIFFE identity");
      }
      if (!options_.trusted.contains(*caller)) {
        return refuse(grpc::StatusCode::PERMISSION_DENIED, who, impersonated,
                      "caller " + who + " is not a trusted node account and cannot impersonate " + impersonated);
      }
      if (caller->node.empty()) {
        return refuse(grpc::StatusCode::PERMISSION_DENIED, who, impersonated,
                      "caller " + who + " names no node, so it cannot impersonate " + impersonated);
      }
      if (!(*imp == *requested)) {
        return refuse(grpc::StatusCode::PERMISSION_DENIED, who, impersonated,
                      "CSR identity " + id + " differs from ImpersonatedIdentity " + impersonated);
      }
      if (!identity_on_node_ || !identity_on_node_(caller->node, *imp)) {
        return refuse(grpc::StatusCode::PERMISSION_DENIED, who, impersonated,
                      "caller " + who + " may not impersonate " + impersonated + ": no workload with that identity runs on node " +
                          caller->node);
      }
    } else {
      const common::Identity own(options_.trust_domain, caller->ns, caller->service_account);
      if (!(own == *requested)) {
        return refuse(grpc::StatusCode::PERMISSION_DENIED, who, id,
                      "caller " + who + " may only request its own identity " + own.uri() + ", not " + id);
      }
    }

    // --- sign
    std::chrono::seconds ttl(req->validity_duration());
    if (ttl.count() <= 0) ttl = options_.default_ttl;
    if (ttl > options_.max_ttl) ttl = options_.max_ttl;
    auto chain = ca_.sign(req->csr(), *requested, ttl);
    if (!chain) {
      // The CSR was checked above; what LocalCa still refuses is about the CSR (e.g. a second,
      // non-URI SAN) unless the CA itself is unusable.
      const bool csr_problem = chain.error().rfind("CSR", 0) == 0;
      return refuse(csr_problem ? grpc::StatusCode::INVALID_ARGUMENT : grpc::StatusCode::INTERNAL, who, id,
                    "signing failed: " + chain.error());
    }
    for (auto& pem : *chain) resp->add_cert_chain(std::move(pem));
    spdlog::info("CA: issued {} to {}{}, ttl {}s", id, who, impersonated.empty() ? "" : " (impersonated)", ttl.count());
    return grpc::Status::OK;
  }

 private:
  static grpc::Status refuse(grpc::StatusCode code, const std::string& who, const std::string& id,
                             const std::string& reason) {
    spdlog::info("CA: refused {} for {}: {}", id, who, reason);
    return grpc::Status(code, reason);
  }

  const common::LocalCa ca_;
  const std::shared_ptr<const TokenAuthenticator> tokens_;
  const CaServiceOptions options_;
  const IdentityOnNode identity_on_node_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_ca_service(common::LocalCa ca, std::shared_ptr<const TokenAuthenticator> tokens,
                                               CaServiceOptions options, IdentityOnNode identity_on_node) {
  return std::make_unique<CaService>(std::move(ca), std::move(tokens), std::move(options),
                                     std::move(identity_on_node));
}

}  // namespace controlplane
