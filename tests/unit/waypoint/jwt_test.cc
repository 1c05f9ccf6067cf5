// RequestAuthentication at the waypoint (waypoint/authz/jwt.h): tokens signed in the test with
// keys OpenSSL generates here (RSA 2048 for RS256, P-256 for ES256), published as a JWKS the
// converter-side parser reads. Checks Envoy's jwt_authn outcomes: valid -> principal iss/sub
// and claims as istio_authn metadata, token stripped (or forwarded), payload header; bad
// signature / expired / not yet valid / wrong audience / unknown issuer / malformed -> 401 with
// Envoy's message; no token -> allowed without a principal, which an ALLOW on
// requestPrincipals then denies with 403 (authz_filter).
#include <catch2/catch.hpp>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "waypoint/authz/authz_filter.h"
#include "waypoint/authz/jwt.h"
#include "waypoint/authz/rbac_model.h"

using namespace waypoint;
using namespace waypoint::authz;

namespace {

struct Key {
  std::shared_ptr<EVP_PKEY> pkey;
  bool ec = false;
  std::string kid;
};

std::string bn_bytes(const EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

Key make_rsa(std::string kid) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  REQUIRE(k);
  return {std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free), false, std::move(kid)};
}

Key make_ec(std::string kid) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  REQUIRE(k);
  return {std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free), true, std::move(kid)};
}

nlohmann::json jwk(const Key& k) {
  if (!k.ec) {
    return {{"kty", "RSA"},
            {"kid", k.kid},
            {"alg", "RS256"},
            {"n", base64url_encode(bn_bytes(k.pkey.get(), OSSL_PKEY_PARAM_RSA_N))},
            {"e", base64url_encode(bn_bytes(k.pkey.get(), OSSL_PKEY_PARAM_RSA_E))}};
  }
  unsigned char pub[65];
  size_t len = 0;
  REQUIRE(EVP_PKEY_get_octet_string_param(k.pkey.get(), OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len) == 1);
  REQUIRE(len == 65);
  const std::string p(reinterpret_cast<char*>(pub), len);
  return {{"kty", "EC"},
          {"kid", k.kid},
          {"crv", "P-256"},
          {"x", base64url_encode(p.substr(1, 32))},
          {"y", base64url_encode(p.substr(33, 32))}};
}

std::string jwks(std::initializer_list<const Key*> keys) {
  nlohmann::json doc = {{"keys", nlohmann::json::array()}};
  for (const Key* k : keys) doc["keys"].push_back(jwk(*k));
  return doc.dump();
}

std::string sign(const Key& k, const nlohmann::json& payload, std::string kid = "") {
  nlohmann::json header = {{"alg", k.ec ? "ES256" : "RS256"}, {"typ", "JWT"}};
  if (!kid.empty()) header["kid"] = kid;
  const std::string input = base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, k.pkey.get()) == 1);
  size_t len = 0;
  REQUIRE(EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(md);
  if (k.ec) {  // DER -> JOSE r || s
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    REQUIRE(es);
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data() + 32), 32);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + base64url_encode(sig);
}

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

JwtProvider provider(const std::string& issuer, const std::string& doc) {
  JwtProvider p;
  p.name = issuer;
  p.issuer = issuer;
  auto keys = parse_jwks(doc);
  INFO((keys.ok() ? "" : keys.error()));
  REQUIRE(keys.ok());
  p.keys = std::move(*keys);
  return p;
}

router::HttpRequest bearer(const std::string& token, std::string path = "/") {
  router::HttpRequest r;
  r.method = "GET";
  r.path = std::move(path);
  r.authority = "calculate";
  if (!token.empty()) r.headers.add("authorization", "Bearer " + token);
  return r;
}

const MetaValue* meta(const AuthnOutcome& o, std::string_view key) {
  return o.metadata.get(key);
}

}  // namespace

TEST_CASE("JWT: RS256 and ES256 tokens verify against an inline JWKS; the principal is iss/sub") {
  const Key rsa = make_rsa("r1"), ec = make_ec("e1");
  JwtConfig cfg;
  cfg.providers.push_back(provider("https://issuer.example", jwks({&rsa, &ec})));
  cfg.providers[0].audiences = {"calc"};
  for (const Key* k : {&rsa, &ec}) {
    auto req = bearer(sign(*k,
                           {{"iss", "https://issuer.example"},
                            {"sub", "alice"},
                            {"aud", {"other", "calc"}},
                            {"azp", "web"},
                            {"groups", {"admins"}},
                            {"exp", now() + 600}},
                           k->kid));
    auto o = authenticate(cfg, req, now());
    INFO((k->ec ? "ES256" : "RS256") << " " << o.message);
    REQUIRE_FALSE(o.rejected);
    REQUIRE(o.authenticated);
    REQUIRE(meta(o, "request.auth.principal"));
    CHECK(meta(o, "request.auth.principal")->str == "https://issuer.example/alice");
    REQUIRE(meta(o, "request.auth.presenter"));
    CHECK(meta(o, "request.auth.presenter")->str == "web");
    REQUIRE(meta(o, "request.auth.claims"));
    REQUIRE(meta(o, "request.auth.claims")->get("groups"));
    CHECK(meta(o, "request.auth.claims")->get("groups")->list.at(0).str == "admins");
    CHECK_FALSE(req.headers.contains("authorization"));  // stripped: forwardOriginalToken false
  }
}

TEST_CASE("JWT: bad signature, expiry, nbf, audience, issuer and form are 401 with Envoy's message") {
  const Key rsa = make_rsa("r1"), other = make_rsa("r2"), ec = make_ec("e1");
  JwtConfig cfg;
  cfg.providers.push_back(provider("iss-a", jwks({&rsa, &ec})));
  cfg.providers[0].audiences = {"calc"};
  const nlohmann::json good = {{"iss", "iss-a"}, {"sub", "bob"}, {"aud", "calc"}, {"exp", now() + 600}};
  auto reject = [&](const std::string& token) {
    auto req = bearer(token);
    auto o = authenticate(cfg, req, now());
    CHECK_FALSE(o.authenticated);
    REQUIRE(o.rejected);
    return o.message;
  };
  CHECK(reject(sign(other, good)) == "Jwt verification fails");  // a key not in the JWKS
  {
    std::string t = sign(rsa, good);
    auto dot = t.find('.');
    auto tampered = good;
    tampered["sub"] = "mallory";
    t = t.substr(0, dot) + "." + base64url_encode(tampered.dump()) + t.substr(t.rfind('.'));
    CHECK(reject(t) == "Jwt verification fails");
  }
  auto expired = good;
  expired["exp"] = now() - 3600;
  CHECK(reject(sign(ec, expired)) == "Jwt is expired");
  auto future = good;
  future["nbf"] = now() + 3600;
  CHECK(reject(sign(rsa, future)) == "Jwt is not yet valid");
  auto aud = good;
  aud["aud"] = "someone-else";
  CHECK(reject(sign(rsa, aud)) == "Audiences in Jwt are not allowed");
  auto iss = good;
  iss["iss"] = "iss-b";
  CHECK(reject(sign(rsa, iss)) == "Jwt issuer is not configured");
  CHECK(reject("not-a-jwt").starts_with("Jwt is not in the form"));
  CHECK(reject(sign(rsa, good, "r2")) == "Jwt verification fails");  // kid names a key we do not have

  // Within the clock skew (60 s) an expired token still passes.
  auto skew = good;
  skew["exp"] = now() - 30;
  auto req = bearer(sign(rsa, skew));
  CHECK(authenticate(cfg, req, now()).authenticated);
}

TEST_CASE("JWT: token locations, forwarding and the payload header") {
  const Key ec = make_ec("e1");
  JwtConfig cfg;
  cfg.providers.push_back(provider("iss-a", jwks({&ec})));
  auto& p = cfg.providers[0];
  p.from_headers = {{"x-jwt", "Token "}};
  p.from_params = {"jwt"};
  p.payload_header = "x-jwt-payload";
  const nlohmann::json payload = {{"iss", "iss-a"}, {"sub", "carol"}};
  const std::string token = sign(ec, payload);

  router::HttpRequest h = bearer("");
  h.headers.add("x-jwt", "Token " + token);
  auto o = authenticate(cfg, h, now());
  REQUIRE(o.authenticated);
  CHECK_FALSE(h.headers.contains("x-jwt"));
  REQUIRE(h.headers.get("x-jwt-payload"));
  CHECK(base64url_decode(*h.headers.get("x-jwt-payload")) == payload.dump());

  // The default location is not used when locations are configured.
  router::HttpRequest def = bearer(token);
  auto od = authenticate(cfg, def, now());
  CHECK_FALSE(od.authenticated);
  CHECK_FALSE(od.rejected);

  router::HttpRequest q = bearer("", "/calc?a=1&jwt=" + token + "&b=2");
  REQUIRE(authenticate(cfg, q, now()).authenticated);
  CHECK(q.path == "/calc?a=1&b=2");

  p.forward = true;
  router::HttpRequest f = bearer("");
  f.headers.add("x-jwt", "Token " + token);
  REQUIRE(authenticate(cfg, f, now()).authenticated);
  CHECK(f.headers.contains("x-jwt"));
}

TEST_CASE("JWT + RBAC: valid token allowed, invalid 401, missing 403 under requestPrincipals [*]") {
  const Key rsa = make_rsa("r1");
  auto jwt_cfg = std::make_shared<JwtConfig>();
  jwt_cfg->providers.push_back(provider("iss-a", jwks({&rsa})));
  // ALLOW from requestPrincipals ["*"]: metadata istio_authn [request.auth.principal] present.
  auto rbac = std::make_shared<RbacFilters>();
  Rbac allow;
  Policy pol;
  pol.name = "ns[demo]-policy[require-jwt]-rule[0]";
  pol.permissions.emplace_back();  // any
  Principal pr;
  pr.kind = Principal::Kind::Metadata;
  pr.metadata.filter = "istio_authn";
  pr.metadata.path = {"request.auth.principal"};
  pr.metadata.value.kind = ValueMatch::Kind::String;
  pr.metadata.value.string.kind = StringMatcher::Kind::Regex;
  pr.metadata.value.string.regex = *Regex::compile(".+");
  pol.principals.push_back(pr);
  allow.policies.push_back(pol);
  rbac->allow = allow;
  VirtualHost vh;
  vh.filters.jwt = jwt_cfg;
  vh.filters.rbac = rbac;
  Downstream down;

  auto good = bearer(sign(rsa, {{"iss", "iss-a"}, {"sub", "dave"}, {"exp", now() + 60}}));
  CHECK_FALSE(run_filters(vh, nullptr, good, down).denied);

  auto bad = bearer(sign(make_rsa("x"), {{"iss", "iss-a"}, {"sub", "dave"}}));
  auto ob = run_filters(vh, nullptr, bad, down);
  CHECK(ob.denied);
  CHECK(ob.status == 401);
  CHECK(ob.body == "Jwt verification fails");

  auto missing = bearer("");
  auto om = run_filters(vh, nullptr, missing, down);
  CHECK(om.denied);
  CHECK(om.status == 403);
  CHECK(om.body == "RBAC: access denied");
  CHECK(om.flag == "RBAC");
}

TEST_CASE("JWKS parsing refuses documents without a usable key") {
  CHECK_FALSE(parse_jwks("{").ok());
  CHECK_FALSE(parse_jwks(R"({"keys": []})").ok());
  CHECK_FALSE(parse_jwks(R"({"keys": [{"kty": "oct", "k": "AAAA"}]})").ok());
  CHECK_FALSE(parse_jwks(R"({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]})").ok());
  CHECK(base64url_decode("A") == std::nullopt);
  CHECK(base64url_decode("YWJj") == std::string("abc"));
  CHECK(base64url_encode("abcd") == "YWJjZA");
}
