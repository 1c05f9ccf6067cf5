#include "common/identity/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include <cstring>

#include "common/identity/crl.h"
#include "common/identity/ossl.h"

namespace common::tls {
namespace {

constexpr const char* kCipherSuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
constexpr const char* kGroups = "X25519:P-256";
// ALPN wire format: length-prefixed protocol names. HBONE speaks HTTP/2 only.
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

// Per-context settings the verify callback needs, hung on the SSL_CTX as ex_data.
struct CtxInfo {
  bool server = false;
  std::string trust_domain;  // server: the trust domain clients must belong to
};

void free_ctx_info(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<CtxInfo*>(ptr);
}
void free_string(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

struct ExIndexes {
  int ctx_info = -1;   // SSL_CTX -> CtxInfo* (owned)
  int expected = -1;   // SSL -> const std::vector<Identity>* (borrowed)
  int failure = -1;    // SSL -> std::string* (owned): why verification failed
};

const ExIndexes& ex_indexes() {
  static const ExIndexes idx = [] {
    ExIndexes i;
    i.ctx_info = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ctx_info);
    i.expected = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    i.failure = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_string);
    return i;
  }();
  return idx;
}

void set_failure(SSL* ssl, std::string reason) {
  const int idx = ex_indexes().failure;
  if (auto* s = static_cast<std::string*>(SSL_get_ex_data(ssl, idx))) {
    *s = std::move(reason);
    return;
  }
  auto* s = new std::string(std::move(reason));
  if (SSL_set_ex_data(ssl, idx, s) != 1) delete s;
}

std::string join_uris(const std::vector<std::string>& uris) {
  std::string out = "[";
  for (size_t i = 0; i < uris.size(); ++i) {
    if (i) out += ", ";
    out += uris[i];
  }
  return out + "]";
}

// Server side: the client's first SPIFFE identity must be in our trust domain. The first one
// is also what peer_identity() reports, so the identity authorized is the one checked here.
bool check_client_leaf(SSL* ssl, const CtxInfo& info, X509* leaf) {
  for (const std::string& uri : ossl::uri_sans(leaf)) {
    auto id = Identity::parse(uri);
    if (!id) continue;
    if (id->trust_domain() != info.trust_domain) {
      set_failure(ssl, "peer trust domain '" + id->trust_domain() + "' != '" + info.trust_domain +
                           "'");
      return false;
    }
    return true;
  }
  set_failure(ssl, "peer certificate has no SPIFFE URI SAN");
  return false;
}

// Client side: some URI SAN of the server must be one of the identities we expect there, and
// the server must have agreed to h2 (EncryptedExtensions precede the Certificate in TLS 1.3, so
// the ALPN result is known here and a server ignoring ALPN fails the handshake).
bool check_server_leaf(SSL* ssl, X509* leaf) {
  const unsigned char* proto = nullptr;
  unsigned int proto_len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &proto_len);
  if (proto_len != 2 || std::memcmp(proto, "h2", 2) != 0) {
    set_failure(ssl, "server did not negotiate ALPN h2");
    return false;
  }
  const auto* expected =
      static_cast<const std::vector<Identity>*>(SSL_get_ex_data(ssl, ex_indexes().expected));
  if (expected == nullptr || expected->empty()) {
    set_failure(ssl, "no expected server identities set");
    return false;
  }
  const std::vector<std::string> sans = ossl::uri_sans(leaf);
  for (const std::string& san : sans) {
    for (const Identity& want : *expected) {
      if (san == want.uri()) return true;
    }
  }
  std::vector<std::string> want;
  want.reserve(expected->size());
  for (const Identity& id : *expected) want.push_back(id.uri());
  set_failure(ssl, "server identities " + join_uris(sans) + " not in expected " + join_uris(want));
  return false;
}

int verify_callback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  const int depth = X509_STORE_CTX_get_error_depth(store);
  if (preverify_ok != 1) {
    // OpenSSL's chain verdict (untrusted issuer, expired, wrong EKU, ...): keep its words.
    const int err = X509_STORE_CTX_get_error(store);
    set_failure(ssl, "certificate verify failed at depth " + std::to_string(depth) + ": " +
                         X509_verify_cert_error_string(err));
    return 0;
  }
  const auto* info =
      static_cast<const CtxInfo*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_indexes().ctx_info));
  // CRL_PATH: every certificate below the trust anchor, leaf included, against its issuer's CRL.
  if (auto crls = installed_crls()) {
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(store);
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    X509* issuer = chain != nullptr && depth + 1 < sk_X509_num(chain) ? sk_X509_value(chain, depth + 1) : nullptr;
    if (issuer != nullptr && crls->revoked(cert, issuer)) {
      set_failure(ssl, "certificate at depth " + std::to_string(depth) + " is revoked (CRL_PATH)");
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
      detail::report_crl_rejection(info != nullptr && info->server);
      return 0;
    }
  }
  if (depth != 0) return 1;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  if (info == nullptr || leaf == nullptr) {
    set_failure(ssl, "internal: TLS context without SPIFFE settings");
    return 0;
  }
  const bool ok = info->server ? check_client_leaf(ssl, *info, leaf) : check_server_leaf(ssl, leaf);
  if (!ok) X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return ok ? 1 : 0;
}

// Server: refuse a ClientHello without ALPN (OpenSSL skips the ALPN select callback entirely
// when the extension is absent, so this is the only place to catch it).
int client_hello_callback(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) != 1) {
    set_failure(ssl, "client offered no ALPN");
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

// Server: pick h2 or fail with no_application_protocol.
int alpn_select_callback(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof(kAlpnH2), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    set_failure(ssl, "client did not offer ALPN h2");
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

Result<CtxPtr> make_ctx(const Credentials& creds, bool server) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return ossl::error("SSL_CTX_new");
  SSL_CTX* c = ctx.get();

  if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(c, kCipherSuites) != 1 ||
      SSL_CTX_set1_groups_list(c, kGroups) != 1) {
    return ossl::error("configuring TLS 1.3 parameters");
  }
  // No resumption in either direction: every connection re-proves its identity, and tickets
  // would otherwise be sent after every server handshake for nothing.
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (server && SSL_CTX_set_num_tickets(c, 0) != 1) return ossl::error("SSL_CTX_set_num_tickets");
  // Keep buffers allocated between records: freeing and reallocating them per read costs
  // throughput on long-lived tunnels.
  SSL_CTX_clear_mode(c, SSL_MODE_RELEASE_BUFFERS);

  // Own chain: leaf first, then intermediates.
  auto chain = ossl::parse_pem_certs(creds.cert_chain_pem);
  if (!chain) return make_error("certificate chain: " + chain.error());
  if (SSL_CTX_use_certificate(c, chain->front().get()) != 1) {
    return ossl::error("loading leaf certificate");
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(c, (*chain)[i].get()) != 1) {
      return ossl::error("loading intermediate certificate");
    }
  }
  auto key = ossl::parse_pem_key(creds.key_pem);
  if (!key) return make_error("private key: " + key.error());
  if (SSL_CTX_use_PrivateKey(c, key->get()) != 1 || SSL_CTX_check_private_key(c) != 1) {
    return ossl::error("private key does not match the certificate");
  }

  // Roots: the only trust anchors (no system store).
  auto roots = ossl::parse_pem_certs(creds.roots_pem);
  if (!roots) return make_error("roots: " + roots.error());
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  for (auto& r : *roots) {
    if (X509_STORE_add_cert(store, r.get()) != 1) {
      // A duplicate root is harmless; anything else is not.
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) return ossl::error("adding root");
      ERR_clear_error();
    }
  }
  // EKU: clients must be clientAuth, servers serverAuth (the peer's role, not ours).
  if (SSL_CTX_set_purpose(c, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) != 1) {
    return ossl::error("setting verify purpose");
  }

  auto* info = new CtxInfo{server, creds.identity.trust_domain()};
  if (SSL_CTX_set_ex_data(c, ex_indexes().ctx_info, info) != 1) {
    delete info;
    return ossl::error("SSL_CTX_set_ex_data");
  }

  if (server) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_callback);
    SSL_CTX_set_client_hello_cb(c, client_hello_callback, nullptr);
    SSL_CTX_set_alpn_select_cb(c, alpn_select_callback, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verify_callback);
    // Note: SSL_CTX_set_alpn_protos returns 0 on success.
    if (SSL_CTX_set_alpn_protos(c, kAlpnH2, sizeof(kAlpnH2)) != 0) {
      return ossl::error("setting ALPN");
    }
  }
  return ctx;
}

}  // namespace

void CtxDeleter::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

Result<CtxPtr> make_server_ctx(const Credentials& creds) { return make_ctx(creds, true); }
Result<CtxPtr> make_client_ctx(const Credentials& creds) { return make_ctx(creds, false); }

void set_expected_identities(SSL* ssl, const std::vector<Identity>* expected) {
  SSL_set_ex_data(ssl, ex_indexes().expected,
                  const_cast<void*>(static_cast<const void*>(expected)));
}

std::optional<Identity> peer_identity(SSL* ssl) {
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) return std::nullopt;
  for (const std::string& uri : ossl::uri_sans(leaf)) {
    if (auto id = Identity::parse(uri)) return id;
  }
  return std::nullopt;
}

std::string verify_failure(SSL* ssl) {
  const auto* s = static_cast<const std::string*>(SSL_get_ex_data(ssl, ex_indexes().failure));
  return s != nullptr ? *s : std::string();
}

std::string drain_openssl_errors() { return ossl::drain_errors(); }

}  // namespace common::tls
