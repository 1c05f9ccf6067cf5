#include "common/identity/certs.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <ctime>

#include "common/identity/ossl.h"

namespace common::certs {
namespace {

using ossl::BioPtr;
using ossl::PkeyPtr;
using ossl::X509Ptr;

struct ExtStackFree {
  void operator()(STACK_OF(X509_EXTENSION) * s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};
using ExtStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtStackFree>;
using NamePtr = std::unique_ptr<X509_NAME, ossl::Free<X509_NAME_free>>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

CertSummary summarize(X509* cert) {
  CertSummary s;
  s.pem = ossl::to_pem(cert);
  s.serial_hex = ossl::serial_hex(cert);
  s.not_before = ossl::to_time_point(X509_get0_notBefore(cert));
  s.not_after = ossl::to_time_point(X509_get0_notAfter(cert));
  s.uri_sans = ossl::uri_sans(cert);
  s.self_signed = X509_check_issued(cert, cert) == X509_V_OK;
  return s;
}

Result<NamePtr> make_name(std::string_view organization, std::string_view common_name) {
  NamePtr name(X509_NAME_new());
  if (!name) return ossl::error("X509_NAME_new");
  const std::string o(organization), cn(common_name);
  if ((!o.empty() && X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                                reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0) != 1) ||
      (!cn.empty() && X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1)) {
    return ossl::error("building subject name");
  }
  return name;
}

}  // namespace

Result<std::string> generate_key_pem() {
  auto key = ossl::generate_p256();
  if (!key) return Error{key.error()};
  std::string pem = ossl::key_to_pkcs8_pem(key->get());
  if (pem.empty()) return ossl::error("encoding PKCS#8 key");
  return pem;
}

Result<std::string> make_csr(std::string_view key_pem, const Identity& id) {
  auto key = ossl::parse_pem_key(key_pem);
  if (!key) return Error{key.error()};
  ossl::X509ReqPtr req(X509_REQ_new());
  if (!req) return ossl::error("X509_REQ_new");
  // Version 1 (value 0); the subject stays empty: the identity lives only in the SAN.
  if (X509_REQ_set_version(req.get(), 0) != 1 || X509_REQ_set_pubkey(req.get(), key->get()) != 1) {
    return ossl::error("building CSR");
  }
  ossl::GeneralNamesPtr san = ossl::uri_general_names(id.uri());
  if (!san) return ossl::error("building SAN");
  ExtStackPtr exts(sk_X509_EXTENSION_new_null());
  X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, /*crit=*/1, san.get());
  if (!exts || ext == nullptr || sk_X509_EXTENSION_push(exts.get(), ext) == 0) {
    X509_EXTENSION_free(ext);
    return ossl::error("building CSR extensions");
  }
  if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) return ossl::error("adding extensions");
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) return ossl::error("signing CSR");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return ossl::error("encoding CSR");
  return bio_string(bio.get());
}

Result<KeyAndCsr> generate_key_and_csr(const Identity& id) {
  auto key = generate_key_pem();
  if (!key) return Error{key.error()};
  auto csr = make_csr(*key, id);
  if (!csr) return Error{csr.error()};
  return KeyAndCsr{std::move(key).value(), std::move(csr).value()};
}

Result<CsrSummary> inspect_csr(std::string_view csr_pem) {
  auto req = ossl::parse_pem_csr(csr_pem);
  if (!req) return Error{req.error()};
  CsrSummary s;
  bool critical = false;
  ossl::GeneralNamesPtr san = ossl::csr_san(req->get(), &critical);
  s.uri_sans = ossl::uri_sans(san.get());
  s.san_critical = critical;
  s.subject_empty = X509_NAME_entry_count(X509_REQ_get_subject_name(req->get())) == 0;
  EVP_PKEY* key = X509_REQ_get0_pubkey(req->get());
  if (key != nullptr) {
    s.signature_ok = X509_REQ_verify(req->get(), key) == 1;
    const char* type = EVP_PKEY_get0_type_name(key);
    s.key_type = type != nullptr ? type : "";
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) s.curve.assign(group, len);
  }
  s.signature_algorithm = OBJ_nid2ln(X509_REQ_get_signature_nid(req->get()));
  ERR_clear_error();
  return s;
}

Result<std::vector<std::string>> split_pem_chain(std::string_view pem) {
  auto certs = ossl::parse_pem_certs(pem);
  if (!certs) return Error{certs.error()};
  std::vector<std::string> out;
  out.reserve(certs->size());
  for (auto& c : *certs) out.push_back(ossl::to_pem(c.get()));
  return out;
}

Result<std::vector<CertSummary>> inspect_pem_chain(std::string_view pem) {
  auto certs = ossl::parse_pem_certs(pem);
  if (!certs) return Error{certs.error()};
  std::vector<CertSummary> out;
  out.reserve(certs->size());
  for (auto& c : *certs) out.push_back(summarize(c.get()));
  return out;
}

Result<CertSummary> inspect_pem(std::string_view pem) {
  auto certs = ossl::parse_pem_certs(pem);
  if (!certs) return Error{certs.error()};
  return summarize(certs->front().get());
}

std::vector<std::string> uri_sans_from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!cert) return {};
  auto out = ossl::uri_sans(cert.get());
  ERR_clear_error();
  return out;
}

std::string to_rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

namespace {

// A new P-256 CA key and its certificate, signed by (issuer, issuer_key), or self-signed when
// both are null.
Result<CaMaterial> issue_ca(std::string_view organization, std::string_view common_name, X509* issuer,
                            EVP_PKEY* issuer_key, std::chrono::seconds ttl) {
  auto key = ossl::generate_p256();
  if (!key) return Error{key.error()};
  auto name = make_name(organization, common_name);
  if (!name) return Error{name.error()};
  ossl::CertSpec spec;
  spec.public_key = key->get();
  spec.subject = name->get();
  spec.issuer = issuer;
  spec.issuer_key = issuer_key ? issuer_key : key->get();
  spec.backdate = std::chrono::seconds(60);
  spec.ttl = ttl;
  spec.ca = true;
  auto cert = ossl::issue_cert(spec);
  if (!cert) return Error{cert.error()};
  return CaMaterial{ossl::to_pem(cert->get()), ossl::key_to_pkcs8_pem(key->get())};
}

}  // namespace

Result<CaMaterial> make_root_ca(std::string_view organization, std::string_view common_name, std::chrono::seconds ttl) {
  return issue_ca(organization, common_name, nullptr, nullptr, ttl);
}

Result<CaMaterial> make_intermediate_ca(const CaMaterial& parent, std::string_view organization,
                                        std::string_view common_name, std::chrono::seconds ttl) {
  auto parent_certs = ossl::parse_pem_certs(parent.cert_pem);
  if (!parent_certs) return Error{parent_certs.error()};
  auto parent_key = ossl::parse_pem_key(parent.key_pem);
  if (!parent_key) return Error{parent_key.error()};
  return issue_ca(organization, common_name, parent_certs->front().get(), parent_key->get(), ttl);
}

Result<CertAndKey> issue_server_cert(const CaMaterial& ca, const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses, std::chrono::seconds ttl) {
  if (dns_names.empty() && ip_addresses.empty()) {
    return make_error("server certificate: at least one DNS name or IP address is required");
  }
  ossl::GeneralNamesPtr san(GENERAL_NAMES_new());
  if (!san) return ossl::error("GENERAL_NAMES_new");
  for (const std::string& dns : dns_names) {
    if (dns.empty() || dns.find_first_of(" \t\r\n", 0) != std::string::npos || dns.find('\0') != std::string::npos) {
      return make_error("server certificate: bad DNS name '" + dns + "'");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gn == nullptr || ia5 == nullptr || ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(ia5);
      return ossl::error("building DNS SAN");
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(san.get(), gn) == 0) {
      GENERAL_NAME_free(gn);
      return ossl::error("building DNS SAN");
    }
  }
  for (const std::string& ip : ip_addresses) {
    // a2i_IPADDRESS parses dotted IPv4 and textual IPv6 into the 4/16 octets X.509 wants.
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr || ip.find('\0') != std::string::npos) {
      ASN1_OCTET_STRING_free(octets);
      ERR_clear_error();
      return make_error("server certificate: bad IP address '" + ip + "'");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_OCTET_STRING_free(octets);
      return ossl::error("GENERAL_NAME_new");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, octets);
    if (sk_GENERAL_NAME_push(san.get(), gn) == 0) {
      GENERAL_NAME_free(gn);
      return ossl::error("building IP SAN");
    }
  }
  auto ca_certs = ossl::parse_pem_certs(ca.cert_pem);
  if (!ca_certs) return Error{ca_certs.error()};
  auto ca_key = ossl::parse_pem_key(ca.key_pem);
  if (!ca_key) return Error{ca_key.error()};
  auto key = ossl::generate_p256();
  if (!key) return Error{key.error()};
  ossl::CertSpec spec;
  spec.public_key = key->get();
  spec.issuer = ca_certs->front().get();
  spec.issuer_key = ca_key->get();
  spec.backdate = std::chrono::seconds(60);
  spec.ttl = ttl;
  spec.san = san.get();
  auto cert = ossl::issue_cert(spec);
  if (!cert) return Error{cert.error()};
  return CertAndKey{ossl::to_pem(cert->get()), ossl::key_to_pkcs8_pem(key->get())};
}

}  // namespace common::certs
