#include "waypoint/authz/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace waypoint::authz {
namespace {

using common::make_error;
using json = nlohmann::json;

constexpr int kMaxJsonDepth = 32;
constexpr size_t kMaxTokenBytes = 64 * 1024;

std::shared_ptr<evp_pkey_st> own(EVP_PKEY* k) {
  return std::shared_ptr<evp_pkey_st>(k, EVP_PKEY_free);
}

std::optional<std::string> string_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

MetaValue to_meta(const json& j, int depth) {
  MetaValue v;
  if (depth > kMaxJsonDepth) return v;
  switch (j.type()) {
    case json::value_t::string:
      v.kind = MetaValue::Kind::String;
      v.str = j.get<std::string>();
      break;
    case json::value_t::boolean:
      v.kind = MetaValue::Kind::Bool;
      v.boolean = j.get<bool>();
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      v.kind = MetaValue::Kind::Number;
      v.str = j.dump();
      break;
    case json::value_t::array:
      v.kind = MetaValue::Kind::List;
      for (const auto& e : j) v.list.push_back(to_meta(e, depth + 1));
      break;
    case json::value_t::object:
      v.kind = MetaValue::Kind::Object;
      for (auto it = j.begin(); it != j.end(); ++it)
        v.object.push_back(MetaMember{it.key(), to_meta(it.value(), depth + 1)});
      break;
    default:
      break;
  }
  return v;
}

std::optional<std::string> decode_field(const json& j, const char* key) {
  auto s = string_field(j, key);
  if (!s) return std::nullopt;
  return base64url_decode(*s);
}

std::shared_ptr<evp_pkey_st> rsa_key(const std::string& n, const std::string& e) {
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  if (bn_n && bn_e && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1 && (params = OSSL_PARAM_BLD_to_param(bld)) &&
      EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return pkey ? own(pkey) : nullptr;
}

std::shared_ptr<evp_pkey_st> ec_key(const std::string& x, const std::string& y) {
  if (x.size() != 32 || y.size() != 32) return nullptr;
  std::string point = "\x04" + x + y;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("prime256v1"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  return pkey ? own(pkey) : nullptr;
}

// JOSE ES256 signatures are r || s (32 bytes each); OpenSSL verifies DER.
std::optional<std::string> es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + 32), 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool verify_signature(const JwtKey& k, std::string_view input, std::string_view sig) {
  std::string der;
  if (k.ec) {
    auto d = es256_to_der(sig);
    if (!d) return false;
    der = std::move(*d);
    sig = der;
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, k.key.get()) == 1 &&
            EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

std::optional<int64_t> int_claim(const MetaValue& payload, std::string_view key, bool& bad) {
  const MetaValue* v = payload.get(key);
  if (!v) return std::nullopt;
  if (v->kind != MetaValue::Kind::Number) {
    bad = true;
    return std::nullopt;
  }
  // Numbers keep their JSON text; exp/nbf are integers (fractions are truncated).
  int64_t out = 0;
  const std::string& s = v->str;
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && s[i] == '-') neg = true, ++i;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (out > (INT64_MAX - 9) / 10) {
      out = INT64_MAX;
      break;
    }
    out = out * 10 + (s[i] - '0');
  }
  return neg ? -out : out;
}

// The token at one location, if the request carries one there.
std::optional<std::string> from_header(const router::HttpRequest& r, const JwtHeaderLocation& loc) {
  auto v = r.headers.get(loc.name);
  if (!v) return std::nullopt;
  std::string_view s = *v;
  if (!loc.prefix.empty()) {
    if (s.size() < loc.prefix.size()) return std::nullopt;
    for (size_t i = 0; i < loc.prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(loc.prefix[i])))
        return std::nullopt;
    s.remove_prefix(loc.prefix.size());
  }
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  return std::string(s);
}

std::optional<std::string> from_param(const router::HttpRequest& r, const std::string& name) {
  std::string_view q = r.query();
  while (!q.empty()) {
    const auto amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    const auto eq = kv.find('=');
    if (kv.substr(0, eq) == name && eq != std::string_view::npos && eq + 1 < kv.size())
      return std::string(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

void remove_param(router::HttpRequest& r, const std::string& name) {
  const auto qpos = r.path.find('?');
  if (qpos == std::string::npos) return;
  std::string_view q = std::string_view(r.path).substr(qpos + 1);
  std::string kept;
  while (true) {
    const auto amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    if (kv.substr(0, kv.find('=')) != name) {
      if (!kept.empty()) kept += '&';
      kept += kv;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  r.path = r.path.substr(0, qpos) + (kept.empty() ? "" : "?" + kept);
}

struct Found {
  std::string token;
  const JwtHeaderLocation* header = nullptr;  // else a query parameter
  std::string param;
};

const JwtHeaderLocation kBearer{"authorization", "Bearer "};

std::vector<Found> tokens_for(const JwtProvider& p, const router::HttpRequest& r) {
  std::vector<Found> out;
  if (p.from_headers.empty() && p.from_params.empty()) {
    if (auto t = from_header(r, kBearer)) out.push_back({*t, &kBearer, ""});
    if (auto t = from_param(r, "access_token")) out.push_back({*t, nullptr, "access_token"});
    return out;
  }
  for (const auto& h : p.from_headers)
    if (auto t = from_header(r, h)) out.push_back({*t, &h, ""});
  for (const auto& name : p.from_params)
    if (auto t = from_param(r, name)) out.push_back({*t, nullptr, name});
  return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character carries no full byte
  return out;
}

std::string base64url_encode(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

common::Result<std::vector<JwtKey>> parse_jwks(std::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return make_error("JWKS is not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) return make_error("JWKS has no 'keys' array");
  std::vector<JwtKey> out;
  for (const auto& k : *keys) {
    if (!k.is_object()) continue;
    JwtKey key;
    key.kid = string_field(k, "kid").value_or("");
    key.alg = string_field(k, "alg").value_or("");
    const std::string kty = string_field(k, "kty").value_or("");
    if (kty == "RSA" && (key.alg.empty() || key.alg == "RS256")) {
      auto n = decode_field(k, "n");
      auto e = decode_field(k, "e");
      if (!n || !e || n->empty() || e->empty()) continue;
      key.key = rsa_key(*n, *e);
    } else if (kty == "EC" && string_field(k, "crv").value_or("") == "P-256" &&
               (key.alg.empty() || key.alg == "ES256")) {
      auto x = decode_field(k, "x");
      auto y = decode_field(k, "y");
      if (!x || !y) continue;
      key.ec = true;
      key.key = ec_key(*x, *y);
    }
    if (key.key) out.push_back(std::move(key));
  }
  if (out.empty()) return make_error("JWKS holds no usable RS256 (RSA) or ES256 (EC P-256) key");
  return out;
}

common::Result<DecodedJwt> decode_jwt(std::string_view token) {
  static const std::string kForm = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
  if (token.size() > kMaxTokenBytes) return make_error(kForm);
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) return make_error(kForm);
  DecodedJwt out;
  auto header = base64url_decode(token.substr(0, d1));
  auto payload = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header || !payload || !sig) return make_error("Jwt header, payload or signature is not base64url");
  const json h = json::parse(*header, nullptr, false);
  if (h.is_discarded() || !h.is_object()) return make_error("Jwt header is an invalid JSON");
  const json p = json::parse(*payload, nullptr, false);
  if (p.is_discarded() || !p.is_object()) return make_error("Jwt payload is an invalid JSON");
  out.alg = string_field(h, "alg").value_or("");
  out.kid = string_field(h, "kid").value_or("");
  out.issuer = string_field(p, "iss").value_or("");
  out.payload_json = std::move(*payload);
  out.payload_b64 = std::string(token.substr(d1 + 1, d2 - d1 - 1));
  out.signing_input = std::string(token.substr(0, d2));
  out.signature = std::move(*sig);
  out.payload = to_meta(p, 0);
  return out;
}

common::Status verify_jwt(const DecodedJwt& jwt, const JwtProvider& provider, int64_t now_s) {
  if (jwt.alg != "RS256" && jwt.alg != "ES256") return make_error("Jwt verification fails");
  bool verified = false;
  for (const auto& k : provider.keys) {
    if (!jwt.kid.empty() && !k.kid.empty() && k.kid != jwt.kid) continue;
    if (k.ec != (jwt.alg == "ES256")) continue;
    if (verify_signature(k, jwt.signing_input, jwt.signature)) {
      verified = true;
      break;
    }
  }
  if (!verified) return make_error("Jwt verification fails");
  bool bad = false;
  const auto exp = int_claim(jwt.payload, "exp", bad);
  const auto nbf = int_claim(jwt.payload, "nbf", bad);
  if (bad) return make_error("Jwt verification fails");
  const int64_t skew = provider.clock_skew_s;
  if (exp && now_s > *exp + skew) return make_error("Jwt is expired");
  if (nbf && now_s + skew < *nbf) return make_error("Jwt is not yet valid");
  if (!provider.audiences.empty()) {
    std::vector<std::string> auds;
    if (const MetaValue* a = jwt.payload.get("aud")) {
      if (a->kind == MetaValue::Kind::String) auds.push_back(a->str);
      for (const auto& e : a->list)
        if (e.kind == MetaValue::Kind::String) auds.push_back(e.str);
    }
    bool hit = false;
    for (const auto& want : provider.audiences) hit |= std::find(auds.begin(), auds.end(), want) != auds.end();
    if (!hit) return make_error("Audiences in Jwt are not allowed");
  }
  return common::ok_status();
}

AuthnOutcome authenticate(const JwtConfig& config, router::HttpRequest& request, int64_t now_s) {
  AuthnOutcome out;
  for (const auto& p : config.providers) {
    for (const auto& f : tokens_for(p, request)) {
      auto jwt = decode_jwt(f.token);
      if (!jwt) {
        out.rejected = true;
        out.message = jwt.error();
        return out;
      }
      // The token belongs to the provider of its issuer (Istio: one provider per issuer).
      const JwtProvider* owner = nullptr;
      for (const auto& q : config.providers)
        if (q.issuer == jwt->issuer) owner = owner ? owner : &q;
      if (!owner) {
        out.rejected = true;
        out.message = "Jwt issuer is not configured";
        return out;
      }
      if (owner != &p) continue;  // the owner's own locations will find it
      if (auto st = verify_jwt(*jwt, p, now_s); !st) {
        out.rejected = true;
        out.message = st.error();
        return out;
      }
      if (out.authenticated) continue;  // first verified token wins
      out.authenticated = true;
      MetaValue& m = out.metadata;
      m.kind = MetaValue::Kind::Object;
      const MetaValue* sub = jwt->payload.get("sub");
      MetaValue principal;
      principal.kind = MetaValue::Kind::String;
      principal.str = jwt->issuer + "/" + (sub && sub->kind == MetaValue::Kind::String ? sub->str : "");
      m.object.push_back(MetaMember{"request.auth.principal", std::move(principal)});
      if (const MetaValue* aud = jwt->payload.get("aud"))
        m.object.push_back(MetaMember{"request.auth.audiences", *aud});
      if (const MetaValue* azp = jwt->payload.get("azp"))
        m.object.push_back(MetaMember{"request.auth.presenter", *azp});
      m.object.push_back(MetaMember{"request.auth.claims", jwt->payload});
      if (!p.forward) {
        if (f.header) {
          request.headers.remove(f.header->name);
        } else {
          remove_param(request, f.param);
        }
      }
      if (!p.payload_header.empty()) request.headers.set(p.payload_header, base64url_encode(jwt->payload_json));
    }
  }
  return out;
}

}  // namespace waypoint::authz
