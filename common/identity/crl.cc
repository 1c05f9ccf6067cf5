#include "common/identity/crl.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <vector>

#include "common/identity/ossl.h"

namespace common::tls {

using CrlPtr = std::unique_ptr<X509_CRL, ossl::Free<X509_CRL_free>>;

struct CrlSet::Impl {
  std::vector<CrlPtr> crls;
};

CrlSet::CrlSet() : impl_(std::make_unique<Impl>()) {}
CrlSet::~CrlSet() = default;

size_t CrlSet::size() const { return impl_->crls.size(); }

Result<std::shared_ptr<const CrlSet>> CrlSet::parse_pem(std::string_view pem) {
  std::shared_ptr<CrlSet> set(new CrlSet());
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl::error("BIO_new_mem_buf");
  for (size_t i = 0;; ++i) {
    ERR_clear_error();
    X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
    if (crl == nullptr) {
      // End of input is PEM_R_NO_START_LINE; anything else is a broken block.
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;
      }
      return ossl::error("X509 CRL block " + std::to_string(i + 1) + " does not parse");
    }
    set->impl_->crls.emplace_back(crl);
  }
  if (set->impl_->crls.empty()) return make_error("no X509 CRL block in the PEM data");
  return std::shared_ptr<const CrlSet>(std::move(set));
}

bool CrlSet::revoked(X509* cert, X509* issuer) const {
  if (cert == nullptr || issuer == nullptr) return false;
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
  for (const auto& crl : impl_->crls) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_issuer_name(cert)) != 0) continue;
    if (issuer_key == nullptr || X509_CRL_verify(crl.get(), issuer_key) != 1) {
      ERR_clear_error();
      continue;  // not signed by this issuer: it says nothing about this certificate
    }
    X509_REVOKED* entry = nullptr;
    // 1 = listed; 2 = listed with reason removeFromCRL (delta CRLs), i.e. not revoked.
    if (X509_CRL_get0_by_serial(crl.get(), &entry, X509_get0_serialNumber(cert)) == 1) return true;
  }
  return false;
}

namespace {
std::atomic<std::shared_ptr<const CrlSet>>& current() {
  static std::atomic<std::shared_ptr<const CrlSet>> set;
  return set;
}
std::function<void(bool)>& hook() {
  static std::function<void(bool)> h;
  return h;
}
}  // namespace

void install_crls(std::shared_ptr<const CrlSet> crls) { current().store(std::move(crls)); }
std::shared_ptr<const CrlSet> installed_crls() { return current().load(); }

bool peer_chain_revoked(SSL* ssl) {
  auto crls = installed_crls();
  if (!crls || ssl == nullptr) return false;
  // The chain the handshake verified, leaf first, trust anchor last: the same pairs the verify
  // callback checked (certificate, its issuer), now against the current CRLs.
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  const int n = chain != nullptr ? sk_X509_num(chain) : 0;
  for (int i = 0; i + 1 < n; ++i) {
    if (crls->revoked(sk_X509_value(chain, i), sk_X509_value(chain, i + 1))) return true;
  }
  return false;
}
void set_crl_rejection_hook(std::function<void(bool server)> h) { hook() = std::move(h); }

namespace detail {
void report_crl_rejection(bool server) {
  if (hook()) hook()(server);
}
}  // namespace detail

}  // namespace common::tls
