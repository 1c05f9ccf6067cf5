// Interop: an independent HBONE client (python3-h2 and Python's ssl, tests/unit/waypoint/
// hbone_http1_client.py) talks to the waypoint as a client node's ztunnel would — mTLS 1.3,
// ALPN h2, CONNECT to the service VIP:port — and sends HTTP/1.1 requests inside the tunnel,
// parsed on its side by its own code. The waypoint routes them by header to real backends over
// its own HBONE leg. Needs /usr/bin/python3 with python3-h2 (scripts/install-deps.sh); fails,
// never skips, without it.
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/unit/temp_dir.h"
#include "tests/unit/waypoint/external_client.h"
#include "tests/unit/waypoint/fixture.h"

using namespace wptest;
using namespace waypoint;

namespace {

void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream f(p);
  f << s;
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("python3-h2 HBONE client: CONNECT to the VIP, HTTP/1.1 keep-alive requests routed by header") {
  Fixture f;
  Route dog = Fixture::route_to("v2");
  HeaderMatcher hm;
  hm.name = "version";
  StringMatcher sm;
  sm.kind = StringMatcher::Kind::Exact;
  sm.value = "dog";
  hm.spec = sm;
  dog.match.headers.push_back(hm);
  f.set_routes({dog, Fixture::route_to("v1")});

  testutil::TempDir dir("wp-interop");
  auto creds = f.ca.issue(f.client_id);
  REQUIRE(creds.ok());
  const std::filesystem::path d = dir.path();
  write_file(d / "cert.pem", creds.value().cert_chain_pem);
  write_file(d / "key.pem", creds.value().key_pem);
  write_file(d / "ca.pem", creds.value().roots_pem);
  const auto script = std::filesystem::path(AMBIENT_SOURCE_DIR) / "tests" / "unit" / "waypoint" / "hbone_http1_client.py";
  REQUIRE(std::filesystem::exists(script));
  const std::string cmd = "/usr/bin/python3 " + script.string() + " 127.0.0.1 " + std::to_string(f.proxy->port()) +
                          " " + (d / "cert.pem").string() + " " + (d / "key.pem").string() + " " +
                          (d / "ca.pem").string() + " " + vip_authority() + " " + f.waypoint_id.uri() +
                          " 'GET /a' 'GET /b version:dog' 'GET /c' 2>&1";

  int status = 0;
  // The backends and the destination ztunnel run on this thread's io_context meanwhile.
  const std::string output = run_client(f, cmd, status);
  INFO(output);
  CHECK(status == 0);
  CHECK(output.find("PEER " + f.waypoint_id.uri()) != std::string::npos);
  CHECK(output.find("CONNECT 200") != std::string::npos);
  const auto a = output.find("RESPONSE 200 v1");
  const auto b = output.find("RESPONSE 200 v2");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  CHECK(a < b);
  CHECK(output.find("RESPONSE 200 v1", b) != std::string::npos);
  CHECK(output.find("HEADER x-backend: v2") != std::string::npos);
  CHECK(f.v1.requests == 2);
  CHECK(f.v2.requests == 1);
  REQUIRE(!f.v2.seen.empty());
  CHECK(std::string(f.v2.seen[0].headers.get("user-agent").value_or("")) == "python-h2-interop");
}
