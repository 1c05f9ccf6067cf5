#include "common/identity/ossl.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstring>
#include <ctime>

namespace common::ossl {

std::string drain_errors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Error error(std::string_view what) {
  std::string msg(what);
  std::string detail = drain_errors();
  if (!detail.empty()) msg += ": " + detail;
  return make_error(std::move(msg));
}

namespace {

BioPtr mem_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// True when the error on top of the queue only says "no more PEM blocks".
bool only_end_of_pem() {
  const unsigned long e = ERR_peek_last_error();
  return e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
}

Status add_conf_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (ext == nullptr) return error(std::string("building extension ") + OBJ_nid2sn(nid));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return error("adding extension");
  return ok_status();
}

}  // namespace

Result<std::vector<X509Ptr>> parse_pem_certs(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = mem_bio(pem);
  if (!bio) return error("BIO_new_mem_buf");
  std::vector<X509Ptr> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  if (!only_end_of_pem()) return error("parsing PEM certificate");
  ERR_clear_error();
  if (out.empty()) return make_error("no certificate in PEM");
  return out;
}

Result<PkeyPtr> parse_pem_key(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = mem_bio(pem);
  if (!bio) return error("BIO_new_mem_buf");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return error("parsing PEM private key");
  return key;
}

Result<X509ReqPtr> parse_pem_csr(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = mem_bio(pem);
  if (!bio) return error("BIO_new_mem_buf");
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return error("parsing PEM certificate request");
  return req;
}

GeneralNamesPtr csr_san(X509_REQ* req, bool* critical) {
  *critical = false;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  if (exts == nullptr) return nullptr;
  int crit = 0;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, &crit, nullptr)));
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  *critical = names != nullptr && crit == 1;
  return names;
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_string(bio.get());
}

std::string key_to_pkcs8_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return {};
  }
  return bio_string(bio.get());
}

std::vector<std::string> uri_sans(const GENERAL_NAMES* names) {
  std::vector<std::string> out;
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names, i);
    if (gen == nullptr || gen->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gen->d.uniformResourceIdentifier;
    if (s == nullptr || ASN1_STRING_type(s) != V_ASN1_IA5STRING) continue;
    const unsigned char* data = ASN1_STRING_get0_data(s);
    const int len = ASN1_STRING_length(s);
    if (data == nullptr || len <= 0) continue;
    if (std::memchr(data, '\0', static_cast<size_t>(len)) != nullptr) continue;
    out.emplace_back(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  }
  return out;
}

std::vector<std::string> uri_sans(const X509* cert) {
  // crit == -2 (several SAN extensions) yields null: an ambiguous certificate has no identity.
  int crit = 0;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
  return uri_sans(names.get());
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string serial_hex(const X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return {};
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

GeneralNamesPtr uri_general_names(std::string_view uri) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return nullptr;
  GENERAL_NAME* gen = GENERAL_NAME_new();
  ASN1_IA5STRING* s = ASN1_IA5STRING_new();
  if (gen == nullptr || s == nullptr ||
      ASN1_STRING_set(s, uri.data(), static_cast<int>(uri.size())) != 1) {
    GENERAL_NAME_free(gen);
    ASN1_IA5STRING_free(s);
    return nullptr;
  }
  GENERAL_NAME_set0_value(gen, GEN_URI, s);
  if (sk_GENERAL_NAME_push(names.get(), gen) == 0) {
    GENERAL_NAME_free(gen);
    return nullptr;
  }
  return names;
}

Result<PkeyPtr> generate_p256() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return error("generating EC P-256 key");
  return key;
}

Result<X509Ptr> issue_cert(const CertSpec& spec) {
  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (!cert) return error("X509_new");
  X509* issuer = spec.issuer != nullptr ? spec.issuer : cert.get();

  // Serial: 16 random bytes with the top bit cleared (positive, at most 20 octets encoded).
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return error("RAND_bytes");
  raw[0] &= 0x7f;
  raw[0] |= 0x01;  // never zero, never shortened to fewer octets
  BignumPtr bn(BN_bin2bn(raw, sizeof(raw), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return error("setting serial");
  }

  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return error("X509_set_version");
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -static_cast<long>(spec.backdate.count())) ==
          nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(spec.ttl.count())) ==
          nullptr) {
    return error("setting validity");
  }
  if (spec.subject != nullptr && X509_set_subject_name(cert.get(), spec.subject) != 1) {
    return error("setting subject");
  }
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1) {
    return error("setting issuer");
  }
  if (X509_set_pubkey(cert.get(), spec.public_key) != 1) return error("setting public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert.get(), nullptr, nullptr, 0);
  Status st = add_conf_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (st) st = add_conf_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (spec.ca) {
    if (st) st = add_conf_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    if (st) st = add_conf_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    if (st) st = add_conf_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    if (st) {
      st = add_conf_ext(cert.get(), &ctx, NID_key_usage,
                        "critical,digitalSignature,keyEncipherment");
    }
    if (st && spec.eku != nullptr) st = add_conf_ext(cert.get(), &ctx, NID_ext_key_usage, spec.eku);
  }
  if (!st) return Error{st.error()};
  if (spec.san != nullptr &&
      X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, const_cast<GENERAL_NAMES*>(spec.san), 1,
                        X509V3_ADD_DEFAULT) != 1) {
    return error("adding subjectAltName");
  }
  if (X509_sign(cert.get(), spec.issuer_key, EVP_sha256()) <= 0) return error("signing");
  return cert;
}

}  // namespace common::ossl
