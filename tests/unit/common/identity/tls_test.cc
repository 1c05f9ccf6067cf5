// Real TLS handshakes between our client and server contexts, in memory over a BIO pair, plus
// hand-built misbehaving peers (no certificate, TLS 1.2 only, no ALPN).
#include "common/identity/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"
#include "common/identity/certs.h"
#include "common/identity/crl.h"
#include "common/identity/ossl.h"

using common::Identity;
using common::LocalCa;
using common::LocalCaProvider;
namespace tls = common::tls;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

const Identity kAlice("cluster.local", "default", "alice");
const Identity kBob("cluster.local", "default", "bob");
const Identity kCarol("cluster.local", "default", "carol");

// One side of the exchange: handshake, then the client sends "ping" and the server answers
// "pong". A side fails on any fatal TLS error (including an alert from the peer).
struct Side {
  SSL* ssl;
  bool client;
  int phase = 0;  // 0 handshake, 1 first message, 2 second message, 3 done
  bool failed = false;
  std::string error;

  bool finished() const { return failed || phase == 3; }

  void step() {
    if (finished()) return;
    ERR_clear_error();
    char buf[16];
    const bool writing = (phase == 1) == client;
    int r;
    if (phase == 0) {
      r = SSL_do_handshake(ssl);
    } else if (writing) {
      r = SSL_write(ssl, client ? "ping" : "pong", 4);
    } else {
      r = SSL_read(ssl, buf, sizeof(buf));
    }
    if (r > 0) {
      if (phase != 0 && !writing && std::string(buf, r) != (client ? "pong" : "ping")) {
        failed = true;
        error = "unexpected payload";
        return;
      }
      ++phase;
      return;
    }
    const int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    failed = true;
    error = tls::drain_openssl_errors();
  }
};

struct Outcome {
  bool client_ok = false;
  bool server_ok = false;
  std::string client_error, server_error;       // OpenSSL errors
  std::string client_failure, server_failure;   // verify_failure()
  std::optional<Identity> client_saw, server_saw;  // peer_identity()
  std::string client_alpn, server_alpn;
  std::string version, cipher;
};

std::string alpn_of(SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

Outcome handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx,
                  const std::vector<Identity>* expected,
                  const std::function<void(SSL*)>& tweak_client = {},
                  const std::function<void(SSL* client, SSL* server)>& after = {}) {
  SslPtr c(SSL_new(client_ctx), SSL_free);
  SslPtr s(SSL_new(server_ctx), SSL_free);
  REQUIRE(c);
  REQUIRE(s);
  BIO* cb = nullptr;
  BIO* sb = nullptr;
  REQUIRE(BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
  SSL_set_bio(c.get(), cb, cb);
  SSL_set_bio(s.get(), sb, sb);
  SSL_set_connect_state(c.get());
  SSL_set_accept_state(s.get());
  if (expected != nullptr) tls::set_expected_identities(c.get(), expected);
  if (tweak_client) tweak_client(c.get());

  Side client{c.get(), true, 0, false, {}};
  Side server{s.get(), false, 0, false, {}};
  for (int i = 0; i < 200 && !(client.finished() && server.finished()); ++i) {
    client.step();
    server.step();
  }
  Outcome o;
  o.client_ok = client.phase == 3;
  o.server_ok = server.phase == 3;
  o.client_error = client.error;
  o.server_error = server.error;
  o.client_failure = tls::verify_failure(c.get());
  o.server_failure = tls::verify_failure(s.get());
  o.client_saw = tls::peer_identity(c.get());
  o.server_saw = tls::peer_identity(s.get());
  o.client_alpn = alpn_of(c.get());
  o.server_alpn = alpn_of(s.get());
  o.version = SSL_get_version(c.get());
  o.cipher = SSL_get_cipher_name(c.get());
  if (after) after(c.get(), s.get());
  return o;
}

// One CA and helpers to mint credentials and contexts from it.
struct Pki {
  Pki() : provider(LocalCa::generate("cluster.local").value(), 1h) {}
  tls::Credentials creds(const Identity& id) { return provider.issue(id).value(); }
  tls::CtxPtr server(const Identity& id) {
    auto r = tls::make_server_ctx(creds(id));
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r);
    return std::move(r).value();
  }
  tls::CtxPtr client(const Identity& id) {
    auto r = tls::make_client_ctx(creds(id));
    INFO((r.ok() ? std::string() : r.error()));
    REQUIRE(r);
    return std::move(r).value();
  }
  LocalCaProvider provider;
};

// A bare client context: TLS `version` only, ALPN h2, trusting `roots_pem`, optionally
// presenting `creds` — what a foreign or broken peer might look like.
tls::CtxPtr raw_client(int version, const std::string& roots_pem,
                       const tls::Credentials* creds) {
  tls::CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  REQUIRE(ctx);
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);
  static const unsigned char h2[] = {2, 'h', '2'};
  REQUIRE(SSL_CTX_set_alpn_protos(ctx.get(), h2, sizeof(h2)) == 0);
  BIO* rb = BIO_new_mem_buf(roots_pem.data(), static_cast<int>(roots_pem.size()));
  X509* root = PEM_read_bio_X509(rb, nullptr, nullptr, nullptr);
  BIO_free(rb);
  REQUIRE(root != nullptr);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), root);
  X509_free(root);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (creds != nullptr) {
    BIO* cbio = BIO_new_mem_buf(creds->cert_chain_pem.data(),
                                static_cast<int>(creds->cert_chain_pem.size()));
    X509* leaf = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
    REQUIRE(leaf != nullptr);
    // The chain attaches to the current certificate: set the leaf first.
    REQUIRE(SSL_CTX_use_certificate(ctx.get(), leaf) == 1);
    while (X509* extra = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr)) {
      SSL_CTX_add0_chain_cert(ctx.get(), extra);
    }
    BIO_free(cbio);
    BIO* kbio = BIO_new_mem_buf(creds->key_pem.data(), static_cast<int>(creds->key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
    BIO_free(kbio);
    REQUIRE(key != nullptr);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx.get(), key) == 1);
    X509_free(leaf);
    EVP_PKEY_free(key);
  }
  ERR_clear_error();
  return ctx;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("mTLS handshake succeeds and both sides learn the peer identity", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = pki.client(kAlice);
  const std::vector<Identity> expected{kCarol, kBob};
  auto o = handshake(client.get(), server.get(), &expected);
  INFO("client: " << o.client_error << " / " << o.client_failure);
  INFO("server: " << o.server_error << " / " << o.server_failure);
  REQUIRE(o.client_ok);
  REQUIRE(o.server_ok);
  REQUIRE(o.server_saw);
  CHECK(*o.server_saw == kAlice);
  REQUIRE(o.client_saw);
  CHECK(*o.client_saw == kBob);
  CHECK(o.client_alpn == "h2");
  CHECK(o.server_alpn == "h2");
  CHECK(o.version == "TLSv1.3");
  CHECK((o.cipher == "TLS_AES_256_GCM_SHA384" || o.cipher == "TLS_AES_128_GCM_SHA256"));
  CHECK(o.client_failure.empty());
  CHECK(o.server_failure.empty());
}

TEST_CASE("server refuses a client from another trust domain", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = pki.client(Identity("evil.example", "default", "alice"));
  const std::vector<Identity> expected{kBob};
  auto o = handshake(client.get(), server.get(), &expected);
  CHECK_FALSE(o.server_ok);
  CHECK_FALSE(o.client_ok);  // the client sees the alert
  CHECK(o.server_failure == "peer trust domain 'evil.example' != 'cluster.local'");
}

TEST_CASE("client refuses a server that is not an expected identity", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = pki.client(kAlice);
  const std::vector<Identity> expected{kCarol};
  auto o = handshake(client.get(), server.get(), &expected);
  CHECK_FALSE(o.client_ok);
  CHECK_FALSE(o.server_ok);
  CHECK(o.client_failure.find("server identities [" + kBob.uri() + "] not in expected [" +
                              kCarol.uri() + "]") != std::string::npos);
}

TEST_CASE("client with no expected identities refuses every server", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = pki.client(kAlice);
  auto o = handshake(client.get(), server.get(), nullptr);
  CHECK_FALSE(o.client_ok);
  CHECK(o.client_failure == "no expected server identities set");
  const std::vector<Identity> none;
  auto o2 = handshake(client.get(), server.get(), &none);
  CHECK_FALSE(o2.client_ok);
}

TEST_CASE("server refuses a client without certificate", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = raw_client(TLS1_3_VERSION, pki.provider.ca().roots_pem(), nullptr);
  auto o = handshake(client.get(), server.get(), nullptr);
  CHECK_FALSE(o.server_ok);
  CHECK_FALSE(o.client_ok);
  CHECK(o.server_error.find("certificate") != std::string::npos);
}

TEST_CASE("server refuses a TLS 1.2 client", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  const auto creds = pki.creds(kAlice);
  auto client = raw_client(TLS1_2_VERSION, pki.provider.ca().roots_pem(), &creds);
  auto o = handshake(client.get(), server.get(), nullptr);
  CHECK_FALSE(o.server_ok);
  CHECK_FALSE(o.client_ok);
  INFO(o.server_error);
  CHECK(o.server_error.find("unsupported protocol") != std::string::npos);
}

TEST_CASE("the raw TLS 1.3 client with a certificate is accepted (control)", "[tls]") {
  // Guards the refusal tests above: the same hand-built client passes when it is correct.
  Pki pki;
  auto server = pki.server(kBob);
  const auto creds = pki.creds(kAlice);
  auto client = raw_client(TLS1_3_VERSION, pki.provider.ca().roots_pem(), &creds);
  auto o = handshake(client.get(), server.get(), nullptr);
  INFO(o.server_error << " / " << o.server_failure);
  CHECK(o.server_ok);
  CHECK(o.client_ok);
}

TEST_CASE("server refuses a client without ALPN h2", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  auto client = pki.client(kAlice);
  const std::vector<Identity> expected{kBob};

  SECTION("no ALPN extension at all") {
    auto o = handshake(client.get(), server.get(), &expected,
                       [](SSL* ssl) { SSL_set_alpn_protos(ssl, nullptr, 0); });
    CHECK_FALSE(o.server_ok);
    CHECK_FALSE(o.client_ok);
    CHECK(o.server_failure == "client offered no ALPN");
    CHECK(o.client_error.find("no application protocol") != std::string::npos);
  }
  SECTION("ALPN without h2") {
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    auto o = handshake(client.get(), server.get(), &expected, [](SSL* ssl) {
      SSL_set_alpn_protos(ssl, http11, sizeof(http11));
    });
    CHECK_FALSE(o.server_ok);
    CHECK(o.server_failure == "client did not offer ALPN h2");
  }
}

TEST_CASE("client refuses a server that does not negotiate h2", "[tls]") {
  Pki pki;
  auto server = pki.server(kBob);
  SSL_CTX_set_alpn_select_cb(server.get(), nullptr, nullptr);
  SSL_CTX_set_client_hello_cb(server.get(), nullptr, nullptr);
  auto client = pki.client(kAlice);
  const std::vector<Identity> expected{kBob};
  auto o = handshake(client.get(), server.get(), &expected);
  CHECK_FALSE(o.client_ok);
  CHECK(o.client_failure == "server did not negotiate ALPN h2");
}

TEST_CASE("a peer from an unknown CA is refused with OpenSSL's reason", "[tls]") {
  Pki ours;
  Pki theirs;
  auto server = ours.server(kBob);
  auto client = theirs.client(kAlice);
  const std::vector<Identity> expected{kBob};
  auto o = handshake(client.get(), server.get(), &expected);
  CHECK_FALSE(o.client_ok);
  CHECK_FALSE(o.server_ok);
  // The client checks the server's chain first and rejects it.
  CHECK(o.client_failure.find("certificate verify failed at depth") != std::string::npos);
}

TEST_CASE("contexts reject broken credentials", "[tls]") {
  Pki pki;
  auto good = pki.creds(kAlice);
  auto other = pki.creds(kBob);
  auto mismatched = good;
  mismatched.key_pem = other.key_pem;
  CHECK_FALSE(tls::make_server_ctx(mismatched));
  auto no_roots = good;
  no_roots.roots_pem = "";
  CHECK_FALSE(tls::make_client_ctx(no_roots));
  auto no_chain = good;
  no_chain.cert_chain_pem = "junk";
  CHECK_FALSE(tls::make_client_ctx(no_chain));
  ERR_clear_error();
}

TEST_CASE("certificates from scripts/make-cacerts.sh and issue-cert.sh interoperate",
          "[tls][scripts]") {
  const fs::path scripts = fs::path(AMBIENT_SOURCE_DIR) / "scripts";
  REQUIRE(fs::exists(scripts / "make-cacerts.sh"));
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() / ("tls_test-" + std::to_string(::getpid()) +
                                                    "-" + std::to_string(rd()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};

  const std::string sh = "bash '" + (scripts / "make-cacerts.sh").string() + "' '" +
                         (dir / "cacerts").string() + "' cluster.local 2>/dev/null && bash '" +
                         (scripts / "issue-cert.sh").string() + "' '" +
                         (dir / "cacerts").string() + "' " + kBob.uri() + " '" +
                         (dir / "bob").string() + "' 2>/dev/null";
  REQUIRE(std::system(sh.c_str()) == 0);

  // Server: files from issue-cert.sh. Client: our LocalCa reading the same cacerts layout.
  tls::Credentials bob{kBob, slurp(dir / "bob" / "chain.pem"), slurp(dir / "bob" / "key.pem"),
                       slurp(dir / "bob" / "root.pem"), {}, {}};
  auto server = tls::make_server_ctx(bob);
  INFO((server.ok() ? std::string() : server.error()));
  REQUIRE(server);
  auto ca = LocalCa::load(dir / "cacerts");
  INFO((ca.ok() ? std::string() : ca.error()));
  REQUIRE(ca);
  LocalCaProvider provider(std::move(ca).value(), 1h);
  auto client = tls::make_client_ctx(provider.issue(kAlice).value());
  REQUIRE(client);
  const std::vector<Identity> expected{kBob};
  auto o = handshake(client->get(), server->get(), &expected);
  INFO(o.client_error << " / " << o.client_failure << " | " << o.server_error << " / "
                      << o.server_failure);
  CHECK(o.client_ok);
  CHECK(o.server_ok);
  REQUIRE(o.client_saw);
  CHECK(*o.client_saw == kBob);
}

// Hand-made leaves (directly through the internal OpenSSL helpers) for what LocalCa would
// never issue: wrong EKU, expired, forged SAN.
namespace {

struct Forge {
  Forge() : root(common::certs::make_root_ca("cluster.local", "Forge Root", 24h).value()) {}

  struct Leaf {
    std::string uri;                  // SAN URI (may contain NUL)
    const char* eku = "serverAuth,clientAuth";
    std::chrono::seconds backdate{60};
    std::chrono::seconds ttl{3600};
  };

  tls::Credentials creds(const Identity& id, const Leaf& l) {
    auto key = common::ossl::generate_p256().value();
    auto ca_cert = common::ossl::parse_pem_certs(root.cert_pem).value();
    auto ca_key = common::ossl::parse_pem_key(root.key_pem).value();
    auto san = common::ossl::uri_general_names(l.uri);
    common::ossl::CertSpec spec;
    spec.public_key = key.get();
    spec.issuer = ca_cert.front().get();
    spec.issuer_key = ca_key.get();
    spec.backdate = l.backdate;
    spec.ttl = l.ttl;
    spec.san = san.get();
    spec.eku = l.eku;
    auto leaf = common::ossl::issue_cert(spec);
    REQUIRE(leaf);
    return tls::Credentials{id, common::ossl::to_pem(leaf->get()),
                            common::ossl::key_to_pkcs8_pem(key.get()), root.cert_pem, {}, {}};
  }
  tls::CtxPtr server(const Identity& id, const Leaf& l) {
    return std::move(tls::make_server_ctx(creds(id, l))).value();
  }
  tls::CtxPtr client(const Identity& id, const Leaf& l) {
    return std::move(tls::make_client_ctx(creds(id, l))).value();
  }

  common::certs::CaMaterial root;
};

}  // namespace

TEST_CASE("forged peers: EKU, expiry and NUL in the SAN", "[tls]") {
  Forge f;
  const std::vector<Identity> expected{kBob};
  const Forge::Leaf good_bob{kBob.uri()};
  const Forge::Leaf good_alice{kAlice.uri()};

  SECTION("control: forged but well-formed leaves work") {
    auto o = handshake(f.client(kAlice, good_alice).get(), f.server(kBob, good_bob).get(),
                       &expected);
    CHECK(o.client_ok);
    CHECK(o.server_ok);
  }
  SECTION("client certificate without clientAuth") {
    Forge::Leaf l{kAlice.uri()};
    l.eku = "serverAuth";
    auto o = handshake(f.client(kAlice, l).get(), f.server(kBob, good_bob).get(), &expected);
    CHECK_FALSE(o.server_ok);
    INFO(o.server_failure << " / " << o.server_error);
    CHECK(o.server_failure.find("unsuitable certificate purpose") != std::string::npos);
  }
  SECTION("server certificate without serverAuth") {
    Forge::Leaf l{kBob.uri()};
    l.eku = "clientAuth";
    auto o = handshake(f.client(kAlice, good_alice).get(), f.server(kBob, l).get(), &expected);
    CHECK_FALSE(o.client_ok);
    INFO(o.client_failure << " / " << o.client_error);
    CHECK(o.client_failure.find("unsuitable certificate purpose") != std::string::npos);
  }
  SECTION("expired client certificate") {
    Forge::Leaf l{kAlice.uri()};
    l.backdate = 7200s;
    l.ttl = -3600s;
    auto o = handshake(f.client(kAlice, l).get(), f.server(kBob, good_bob).get(), &expected);
    CHECK_FALSE(o.server_ok);
    CHECK(o.server_failure.find("expired") != std::string::npos);
  }
  SECTION("URI SAN with an embedded NUL is not an identity") {
    Forge::Leaf l{std::string(kAlice.uri()) + std::string("\0.evil", 6)};
    auto o = handshake(f.client(kAlice, l).get(), f.server(kBob, good_bob).get(), &expected);
    CHECK_FALSE(o.server_ok);
    CHECK(o.server_failure == "peer certificate has no SPIFFE URI SAN");
  }
  SECTION("server SAN with a NUL does not match the expected identity") {
    Forge::Leaf l{std::string(kBob.uri()) + std::string("\0", 1)};
    auto o = handshake(f.client(kAlice, good_alice).get(), f.server(kBob, l).get(), &expected);
    CHECK_FALSE(o.client_ok);
    CHECK(o.client_failure.find("not in expected") != std::string::npos);
  }
}

// ---- CRL_PATH: revoked peers are refused on both sides ------------------------------------------

namespace {

// A CRL issued by the CA in `dir` (ca-cert.pem / ca-key.pem, or `signer_key_pem` to forge one),
// revoking the leaf of `chain_pem`.
std::string make_crl(const fs::path& dir, const std::string& chain_pem, const std::string& signer_key_pem = {}) {
  auto ca = common::ossl::parse_pem_certs(slurp(dir / "ca-cert.pem"));
  REQUIRE(ca);
  auto key = common::ossl::parse_pem_key(signer_key_pem.empty() ? slurp(dir / "ca-key.pem") : signer_key_pem);
  REQUIRE(key);
  auto leaf = common::ossl::parse_pem_certs(chain_pem);
  REQUIRE(leaf);
  X509_CRL* crl = X509_CRL_new();
  REQUIRE(crl != nullptr);
  REQUIRE(X509_CRL_set_version(crl, 1) == 1);
  REQUIRE(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->front().get())) == 1);
  ASN1_TIME* now = ASN1_TIME_set(nullptr, ::time(nullptr));
  REQUIRE(X509_CRL_set1_lastUpdate(crl, now) == 1);
  ASN1_TIME_free(now);
  X509_REVOKED* r = X509_REVOKED_new();
  REQUIRE(X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(leaf->front().get())) == 1);
  ASN1_TIME* when = ASN1_TIME_set(nullptr, ::time(nullptr));
  X509_REVOKED_set_revocationDate(r, when);
  ASN1_TIME_free(when);
  REQUIRE(X509_CRL_add0_revoked(crl, r) == 1);
  X509_CRL_sort(crl);
  REQUIRE(X509_CRL_sign(crl, key->get(), EVP_sha256()) > 0);
  BIO* b = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_X509_CRL(b, crl) == 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  X509_CRL_free(crl);
  return pem;
}

struct CrlGuard {
  ~CrlGuard() {
    tls::install_crls(nullptr);
    tls::set_crl_rejection_hook({});
  }
};

}  // namespace

TEST_CASE("CRL_PATH: a revoked peer is refused on either side and counted; others pass", "[tls][crl]") {
  CrlGuard guard;
  char tmpl[] = "/tmp/crl-test.XXXXXX";
  const fs::path dir = ::mkdtemp(tmpl);
  auto ca = LocalCa::create(dir / "ca", "cluster.local");
  REQUIRE(ca);
  LocalCaProvider provider(ca.value(), 1h);
  auto alice = provider.issue(kAlice).value();
  auto bob = provider.issue(kBob).value();
  auto carol = provider.issue(kCarol).value();
  auto ctx = [](const tls::Credentials& c, bool server) {
    auto r = server ? tls::make_server_ctx(c) : tls::make_client_ctx(c);
    REQUIRE(r);
    return std::move(r).value();
  };
  int rejected_as_server = 0, rejected_as_client = 0;
  tls::set_crl_rejection_hook([&](bool server) { ++(server ? rejected_as_server : rejected_as_client); });

  // One CRL file revoking alice and carol (two CRL blocks, as a bundle).
  auto set = tls::CrlSet::parse_pem(make_crl(dir / "ca", alice.cert_chain_pem) +
                                    make_crl(dir / "ca", carol.cert_chain_pem));
  INFO((set.ok() ? std::string() : set.error()));
  REQUIRE(set);
  CHECK(set.value()->size() == 2);
  tls::install_crls(set.value());

  const std::vector<Identity> want_bob{kBob}, want_carol{kCarol};
  // Revoked client: the server refuses it.
  auto o = handshake(ctx(alice, false).get(), ctx(bob, true).get(), &want_bob);
  CHECK_FALSE(o.server_ok);
  CHECK_THAT(o.server_failure, Catch::Contains("revoked"));
  CHECK(rejected_as_server == 1);
  // Revoked server: the client refuses it.
  o = handshake(ctx(bob, false).get(), ctx(carol, true).get(), &want_carol);
  CHECK_FALSE(o.client_ok);
  CHECK_THAT(o.client_failure, Catch::Contains("revoked"));
  CHECK(rejected_as_client == 1);
  // Not listed: fine.
  o = handshake(ctx(bob, false).get(), ctx(bob, true).get(), &want_bob);
  CHECK(o.client_ok);
  CHECK(o.server_ok);

  // A CRL with the right issuer name but another key is not the issuer's: ignored.
  auto other = LocalCa::create(dir / "other", "cluster.local");
  REQUIRE(other);
  auto forged = tls::CrlSet::parse_pem(make_crl(dir / "ca", alice.cert_chain_pem, slurp(dir / "other" / "ca-key.pem")));
  REQUIRE(forged);
  tls::install_crls(forged.value());
  o = handshake(ctx(alice, false).get(), ctx(bob, true).get(), &want_bob);
  CHECK(o.server_ok);
  CHECK(o.client_ok);

  // Checking off again: alice passes.
  tls::install_crls(nullptr);
  o = handshake(ctx(alice, false).get(), ctx(bob, true).get(), &want_bob);
  CHECK(o.server_ok);
  fs::remove_all(dir);
}

TEST_CASE("CRL reload: peer_chain_revoked re-checks a connection that is already up", "[tls][crl]") {
  CrlGuard guard;
  char tmpl[] = "/tmp/crl-live.XXXXXX";
  const fs::path dir = ::mkdtemp(tmpl);
  auto ca = LocalCa::create(dir / "ca", "cluster.local");
  REQUIRE(ca);
  LocalCaProvider provider(ca.value(), 1h);
  auto alice = provider.issue(kAlice).value();
  auto bob = provider.issue(kBob).value();
  auto client_ctx = tls::make_client_ctx(alice);
  auto server_ctx = tls::make_server_ctx(bob);
  REQUIRE(client_ctx);
  REQUIRE(server_ctx);
  auto revoking_alice = tls::CrlSet::parse_pem(make_crl(dir / "ca", alice.cert_chain_pem));
  auto revoking_bob = tls::CrlSet::parse_pem(make_crl(dir / "ca", bob.cert_chain_pem));
  REQUIRE(revoking_alice);
  REQUIRE(revoking_bob);
  const std::vector<Identity> want_bob{kBob};
  bool checked = false;
  // The handshake runs with no CRLs; the updates arrive while the connection is up.
  auto o = handshake(client_ctx.value().get(), server_ctx.value().get(), &want_bob, {}, [&](SSL* c, SSL* s) {
    CHECK_FALSE(tls::peer_chain_revoked(s));  // no CRLs installed
    tls::install_crls(revoking_alice.value());
    CHECK(tls::peer_chain_revoked(s));        // the server's peer (alice) is now revoked
    CHECK_FALSE(tls::peer_chain_revoked(c));  // the client's peer (bob) is not
    tls::install_crls(revoking_bob.value());
    CHECK_FALSE(tls::peer_chain_revoked(s));
    CHECK(tls::peer_chain_revoked(c));
    tls::install_crls(nullptr);
    CHECK_FALSE(tls::peer_chain_revoked(c));
    checked = true;
  });
  CHECK(o.client_ok);
  CHECK(o.server_ok);
  CHECK(checked);
  CHECK_FALSE(tls::peer_chain_revoked(nullptr));
  fs::remove_all(dir);
}

TEST_CASE("CRL PEM parsing errors", "[tls][crl]") {
  CHECK_FALSE(tls::CrlSet::parse_pem(""));
  CHECK_FALSE(tls::CrlSet::parse_pem("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"));
  CHECK_THAT(tls::CrlSet::parse_pem("just text").error(), Catch::Contains("no X509 CRL"));
}
