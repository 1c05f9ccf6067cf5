#include "common/identity/local_ca.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/identity/certs.h"
#include "common/identity/ossl.h"

namespace common {

namespace fs = std::filesystem;

struct LocalCa::State {
  ossl::X509Ptr ca_cert;
  ossl::PkeyPtr ca_key;
  std::vector<std::string> chain;  // PEMs returned after the leaf: ca-cert ... root
  std::string roots_pem;
  std::string chain_pem;
};

namespace {

constexpr std::chrono::seconds kRootTtl = std::chrono::hours(24 * 365 * 10);
constexpr std::chrono::seconds kIntermediateTtl = std::chrono::hours(24 * 365 * 5);
constexpr std::chrono::seconds kMaxBackdate{60};

using StorePtr = std::unique_ptr<X509_STORE, ossl::Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, ossl::Free<X509_STORE_CTX_free>>;
using CertStackPtr = std::unique_ptr<STACK_OF(X509), decltype([](STACK_OF(X509) * s) {
                                       sk_X509_free(s);  // borrowed certs: free the stack only
                                     })>;

Result<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_file(const fs::path& p, std::string_view data, bool secret) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) return make_error("cannot write " + p.string());
  out << data;
  out.close();
  if (!out) return make_error("cannot write " + p.string());
  if (secret) {
    std::error_code ec;
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace,
                    ec);
    if (ec) return make_error("chmod " + p.string() + ": " + ec.message());
  }
  return ok_status();
}

bool same_cert(X509* a, X509* b) { return X509_cmp(a, b) == 0; }

}  // namespace

Result<LocalCa> LocalCa::from_pems(std::string ca_cert_pem, std::string ca_key_pem,
                                   std::string root_pem, std::string chain_pem) {
  auto ca_certs = ossl::parse_pem_certs(ca_cert_pem);
  if (!ca_certs) return make_error("ca-cert.pem: " + ca_certs.error());
  auto key = ossl::parse_pem_key(ca_key_pem);
  if (!key) return make_error("ca-key.pem: " + key.error());
  auto roots = ossl::parse_pem_certs(root_pem);
  if (!roots) return make_error("root-cert.pem: " + roots.error());
  X509* ca = ca_certs->front().get();
  if (X509_check_private_key(ca, key->get()) != 1) {
    return ossl::error("ca-key.pem does not match ca-cert.pem");
  }
  if (X509_check_ca(ca) == 0) return make_error("ca-cert.pem is not a CA certificate");

  // cert-chain.pem is optional (a self-signed ca-cert needs none); when absent the chain is
  // ca-cert alone. Either way it must end at a root, which is appended when missing.
  std::vector<ossl::X509Ptr> chain;
  if (!chain_pem.empty()) {
    auto parsed = ossl::parse_pem_certs(chain_pem);
    if (!parsed) return make_error("cert-chain.pem: " + parsed.error());
    chain = std::move(parsed).value();
    if (!same_cert(chain.front().get(), ca)) {
      return make_error("cert-chain.pem does not start with ca-cert.pem");
    }
  } else {
    chain.push_back(std::move(ca_certs->front()));
    ca_certs = ossl::parse_pem_certs(ca_cert_pem);  // keep our own copy of ca-cert
    if (!ca_certs) return make_error("ca-cert.pem: " + ca_certs.error());
    ca = ca_certs->front().get();
  }
  X509* root = roots->front().get();
  const bool ends_at_root = same_cert(chain.back().get(), root);

  // The chain must verify against the roots, or every leaf we sign would be useless.
  StorePtr store(X509_STORE_new());
  CertStackPtr untrusted(sk_X509_new_null());
  StoreCtxPtr vctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !vctx) return ossl::error("allocating verify context");
  for (auto& r : *roots) X509_STORE_add_cert(store.get(), r.get());
  ERR_clear_error();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  if (X509_STORE_CTX_init(vctx.get(), store.get(), ca, untrusted.get()) != 1) {
    return ossl::error("X509_STORE_CTX_init");
  }
  if (X509_verify_cert(vctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(vctx.get());
    ERR_clear_error();
    return make_error(std::string("ca-cert.pem does not verify against root-cert.pem: ") +
                      X509_verify_cert_error_string(err));
  }

  auto state = std::make_shared<State>();
  for (auto& c : chain) state->chain.push_back(ossl::to_pem(c.get()));
  if (!ends_at_root) state->chain.push_back(ossl::to_pem(root));
  state->ca_cert = std::move(ca_certs->front());
  state->ca_key = std::move(key).value();
  state->roots_pem = std::move(root_pem);
  for (const auto& pem : state->chain) state->chain_pem += pem;
  return LocalCa(std::move(state));
}

Result<LocalCa> LocalCa::load(const fs::path& dir) {
  auto ca_cert = read_file(dir / "ca-cert.pem");
  if (!ca_cert) return Error{ca_cert.error()};
  auto ca_key = read_file(dir / "ca-key.pem");
  if (!ca_key) return Error{ca_key.error()};
  auto root = read_file(dir / "root-cert.pem");
  if (!root) return Error{root.error()};
  std::string chain;
  if (fs::exists(dir / "cert-chain.pem")) {
    auto c = read_file(dir / "cert-chain.pem");
    if (!c) return Error{c.error()};
    chain = std::move(c).value();
  }
  auto ca = from_pems(std::move(ca_cert).value(), std::move(ca_key).value(),
                      std::move(root).value(), std::move(chain));
  if (!ca) return make_error(dir.string() + ": " + ca.error());
  return ca;
}

Result<LocalCa> LocalCa::generate(std::string_view trust_domain) {
  auto root = certs::make_root_ca(trust_domain, "Root CA", kRootTtl);
  if (!root) return Error{root.error()};
  auto inter = certs::make_intermediate_ca(*root, trust_domain, "Intermediate CA",
                                           kIntermediateTtl);
  if (!inter) return Error{inter.error()};
  std::string chain = inter->cert_pem + root->cert_pem;
  return from_pems(inter->cert_pem, inter->key_pem, root->cert_pem, std::move(chain));
}

Result<LocalCa> LocalCa::create(const fs::path& dir, std::string_view trust_domain) {
  if (fs::exists(dir / "ca-cert.pem")) return load(dir);
  auto root = certs::make_root_ca(trust_domain, "Root CA", kRootTtl);
  if (!root) return Error{root.error()};
  auto inter = certs::make_intermediate_ca(*root, trust_domain, "Intermediate CA",
                                           kIntermediateTtl);
  if (!inter) return Error{inter.error()};
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("creating " + dir.string() + ": " + ec.message());
  // The key first and ca-cert.pem last: ca-cert.pem's presence is what marks the layout done.
  for (const auto& [name, data, secret] :
       {std::tuple<const char*, std::string, bool>{"ca-key.pem", inter->key_pem, true},
        {"root-cert.pem", root->cert_pem, false},
        {"cert-chain.pem", inter->cert_pem + root->cert_pem, false},
        {"ca-cert.pem", inter->cert_pem, false}}) {
    if (auto st = write_file(dir / name, data, secret); !st) return Error{st.error()};
  }
  return load(dir);
}

Result<std::vector<std::string>> LocalCa::sign(std::string_view csr_pem, const Identity& id,
                                               std::chrono::seconds ttl) const {
  if (ttl.count() <= 0) return make_error("ttl must be positive");
  auto req = ossl::parse_pem_csr(csr_pem);
  if (!req) return Error{req.error()};
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req->get());
  if (pub == nullptr || X509_REQ_verify(req->get(), pub) != 1) {
    return ossl::error("CSR signature does not verify");
  }
  bool critical = false;
  ossl::GeneralNamesPtr san = ossl::csr_san(req->get(), &critical);
  const std::vector<std::string> uris = ossl::uri_sans(san.get());
  const int entries = san ? sk_GENERAL_NAME_num(san.get()) : 0;
  if (entries != 1 || uris.size() != 1 || uris.front() != id.uri()) {
    std::string got;
    for (const auto& u : uris) got += (got.empty() ? "" : ", ") + u;
    return make_error("CSR subjectAltName [" + got + "] is not exactly " + id.uri());
  }

  // Never outlive the signing CA.
  const auto now = std::chrono::system_clock::now();
  const auto ca_not_after = ossl::to_time_point(X509_get0_notAfter(state_->ca_cert.get()));
  const auto max_ttl = std::chrono::duration_cast<std::chrono::seconds>(ca_not_after - now);
  if (max_ttl.count() <= 0) return make_error("signing CA has expired");

  ossl::GeneralNamesPtr leaf_san = ossl::uri_general_names(id.uri());
  if (!leaf_san) return ossl::error("building SAN");
  ossl::CertSpec spec;
  spec.public_key = pub;
  spec.issuer = state_->ca_cert.get();
  spec.issuer_key = state_->ca_key.get();
  spec.ttl = std::min(ttl, max_ttl);
  spec.backdate = std::min(kMaxBackdate, ttl / 4);
  spec.san = leaf_san.get();
  auto leaf = ossl::issue_cert(spec);
  if (!leaf) return Error{leaf.error()};

  std::vector<std::string> out;
  out.reserve(1 + state_->chain.size());
  out.push_back(ossl::to_pem(leaf->get()));
  out.insert(out.end(), state_->chain.begin(), state_->chain.end());
  return out;
}

const std::string& LocalCa::roots_pem() const { return state_->roots_pem; }
const std::string& LocalCa::cert_chain_pem() const { return state_->chain_pem; }

}  // namespace common
