#include "ztunnel/state/admin_dump.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>

#include <cctype>
#include <memory>

#include "common/admin/build_info.h"

namespace ztunnel {

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n =
        (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (rest == 2) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string decimal_serial(std::string_view hex) {
  if (hex.empty()) return {};
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return {};
  }
  std::string h(hex);
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, h.c_str()) == 0 || raw == nullptr) return {};
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(raw, &BN_free);
  char* dec = BN_bn2dec(bn.get());
  if (dec == nullptr) return {};
  std::string out(dec);
  OPENSSL_free(dec);
  return out;
}

nlohmann::json certificates_json(const std::vector<common::CertInfo>& infos) {
  using nlohmann::json;
  auto details = [](const std::vector<common::CertDetails>& v) {
    json a = json::array();
    for (const auto& d : v) {
      a.push_back({{"pem", base64_encode(d.pem)},
                   {"serialNumber", decimal_serial(d.serial_number)},
                   {"validFrom", d.valid_from},
                   {"expirationTime", d.expiration_time}});
    }
    return a;
  };
  json out = json::array();
  for (const auto& i : infos) {
    // Upstream spells a failed identity "Unavailable: <error>" (istioctl matches the prefix).
    std::string state = i.state;
    if (state == "Unavailable") state += ": " + (i.error.empty() ? std::string("certificate expired") : i.error);
    json c = {{"identity", i.identity.uri()},
              {"state", state},
              {"certChain", details(i.cert_chain)},
              {"rootCerts", details(i.root_certs)}};
    if (!i.error.empty()) c["error"] = i.error;
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json version_json(std::string_view istio_version) {
  const auto& b = common::build_info();
  return {{"version", b.version},
          {"gitRevision", b.git_revision},
          {"rustVersion", b.compiler},
          {"buildProfile", b.build_profile},
          {"buildStatus", b.build_status},
          {"gitTag", b.version},
          {"istioVersion", std::string(istio_version)},
          {"cryptoProvider", b.crypto_provider}};
}

nlohmann::json connections_json(const std::vector<ConnectionView>& conns) {
  using nlohmann::json;
  json in = json::array(), out = json::array();
  for (const auto& c : conns) {
    json j = {{"src", c.src}, {"originalDst", c.original_dst}, {"actualDst", c.actual_dst}, {"protocol", c.protocol}};
    (c.inbound ? in : out).push_back(std::move(j));
  }
  return {{"inbound", std::move(in)}, {"outbound", std::move(out)}};
}

}  // namespace ztunnel
