// /config_dump pieces rendered as upstream ztunnel serialises them (ztunnel/state/admin_dump.h).
#include "ztunnel/state/admin_dump.h"

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include "common/identity/certs.h"
#include "common/identity/local_ca.h"

using nlohmann::json;

namespace {

// Independent decoder (OpenSSL's EVP base64), so the encoder is not checked against itself.
std::string openssl_base64_decode(const std::string& b64) {
  std::string out(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  if (n < 0) return "<invalid>";
  size_t pad = 0;
  if (!b64.empty() && b64.back() == '=') pad = (b64.size() > 1 && b64[b64.size() - 2] == '=') ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

TEST_CASE("base64_encode follows RFC 4648 and round-trips through OpenSSL", "[admin_dump]") {
  // RFC 4648 §10 test vectors.
  CHECK(ztunnel::base64_encode("") == "");
  CHECK(ztunnel::base64_encode("f") == "Zg==");
  CHECK(ztunnel::base64_encode("fo") == "Zm8=");
  CHECK(ztunnel::base64_encode("foo") == "Zm9v");
  CHECK(ztunnel::base64_encode("foob") == "Zm9vYg==");
  CHECK(ztunnel::base64_encode("fooba") == "Zm9vYmE=");
  CHECK(ztunnel::base64_encode("foobar") == "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes += static_cast<char>((i * 37) & 0xff);
  for (size_t len : {size_t{1}, size_t{2}, size_t{3}, size_t{997}, size_t{1000}}) {
    CHECK(openssl_base64_decode(ztunnel::base64_encode(bytes.substr(0, len))) == bytes.substr(0, len));
  }
}

TEST_CASE("decimal_serial converts hex serials as istioctl parses them (base 10)", "[admin_dump]") {
  CHECK(ztunnel::decimal_serial("FF") == "255");
  CHECK(ztunnel::decimal_serial("0a") == "10");
  CHECK(ztunnel::decimal_serial("DEADBEEF") == std::to_string(0xDEADBEEFull));
  CHECK(ztunnel::decimal_serial("FFFFFFFFFFFFFFFF") == std::to_string(0xFFFFFFFFFFFFFFFFull));
  CHECK(ztunnel::decimal_serial("") == "");
  CHECK(ztunnel::decimal_serial("12:34") == "");
  CHECK(ztunnel::decimal_serial("xyz") == "");
}

TEST_CASE("certificates_json: base64 PEM, decimal serial, upstream states", "[admin_dump]") {
  auto ca = common::LocalCa::generate("cluster.local");
  REQUIRE(ca);
  common::Identity id("cluster.local", "ns", "sa");
  auto kc = common::certs::generate_key_and_csr(id);
  REQUIRE(kc);
  auto pems = ca->sign(kc->csr_pem, id, std::chrono::hours(1));
  REQUIRE(pems);
  auto leaf = common::certs::inspect_pem(pems->front());
  REQUIRE(leaf);

  common::CertInfo ok{
      id, "Available", "", {{pems->front(), leaf->serial_hex, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"}}, {}};
  common::CertInfo failed{common::Identity("cluster.local", "ns", "other"), "Unavailable", "CA refused", {}, {}};
  common::CertInfo expired{common::Identity("cluster.local", "ns", "old"), "Unavailable", "", {}, {}};
  json j = ztunnel::certificates_json({ok, failed, expired});
  REQUIRE(j.size() == 3);
  const json& c = j[0]["certChain"][0];
  CHECK(j[0]["identity"] == id.uri());
  CHECK(j[0]["state"] == "Available");
  CHECK(openssl_base64_decode(c["pem"].get<std::string>()) == pems->front());
  const std::string serial = c["serialNumber"];
  REQUIRE_FALSE(serial.empty());
  CHECK(serial.find_first_not_of("0123456789") == std::string::npos);
  CHECK(serial == ztunnel::decimal_serial(leaf->serial_hex));
  CHECK(j[0]["rootCerts"].is_array());
  CHECK(j[1]["state"] == "Unavailable: CA refused");
  CHECK(j[2]["state"].get<std::string>().rfind("Unavailable: ", 0) == 0);
}

TEST_CASE("version_json is upstream's BuildInfo object", "[admin_dump]") {
  json v = ztunnel::version_json("1.24.0");
  for (const char* k : {"version", "gitRevision", "rustVersion", "buildProfile", "buildStatus", "gitTag",
                        "istioVersion", "cryptoProvider"}) {
    INFO(k);
    CHECK(v[k].is_string());
  }
  CHECK(v["istioVersion"] == "1.24.0");
  CHECK_FALSE(v["version"].get<std::string>().empty());
}

TEST_CASE("connections_json splits inbound and outbound with upstream's field names", "[admin_dump]") {
  std::vector<ztunnel::ConnectionView> conns{
      {true, "10.0.0.1:40000", "10.0.0.2:80", "10.0.0.2:80", "HBONE"},
      {false, "10.0.0.2:41000", "10.96.0.1:80", "10.0.0.9:15008", "HBONE"},
      {false, "10.0.0.2:41001", "1.1.1.1:443", "1.1.1.1:443", "TCP"},
  };
  json j = ztunnel::connections_json(conns);
  REQUIRE(j["inbound"].size() == 1);
  REQUIRE(j["outbound"].size() == 2);
  CHECK(j["inbound"][0] == json{{"src", "10.0.0.1:40000"},
                                {"originalDst", "10.0.0.2:80"},
                                {"actualDst", "10.0.0.2:80"},
                                {"protocol", "HBONE"}});
  CHECK(j["outbound"][0]["actualDst"] == "10.0.0.9:15008");
  CHECK(j["outbound"][1]["protocol"] == "TCP");
  CHECK(ztunnel::connections_json({}) == json{{"inbound", json::array()}, {"outbound", json::array()}});
}
