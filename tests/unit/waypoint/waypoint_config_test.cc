// waypoint::Config from a waypoint pod's environment: identity, node id, defaults, and errors
// that name the variable at fault.
#include <catch2/catch.hpp>
#include <map>

#include "waypoint/config.h"

namespace {

common::env::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::map<std::string, std::string> pod() {
  return {{"POD_NAME", "waypoint-7d9f"},
          {"POD_NAMESPACE", "calc"},
          {"SERVICE_ACCOUNT", "waypoint"},
          {"INSTANCE_IP", "10.244.1.7"},
          {"LOCAL_CA_DIR", "/tmp/ca"}};
}

}  // namespace

TEST_CASE("waypoint identity and node id follow Istio's forms") {
  auto c = waypoint::load_config(env_of(pod()), 4);
  REQUIRE(c.ok());
  CHECK(c->identity().uri() == "spiffe://cluster.local/ns/calc/sa/waypoint");
  CHECK(c->node_id() == "waypoint~10.244.1.7~waypoint-7d9f.calc~calc.svc.cluster.local");
  CHECK(c->hbone_port == 15008);
  CHECK(!c->ca_address.has_value());  // LOCAL_CA_DIR without CA_ADDRESS: local CA
  CHECK(c->xds_address == "https://localhost:15012");
  CHECK(c->worker_threads == 2);
}

TEST_CASE("TRUST_DOMAIN and XDS_ADDRESS are honoured") {
  auto vars = pod();
  vars["TRUST_DOMAIN"] = "example.org";
  vars["XDS_ADDRESS"] = "istiod.istio-system.svc:15012";
  auto c = waypoint::load_config(env_of(vars), 4);
  REQUIRE(c.ok());
  CHECK(c->identity().uri() == "spiffe://example.org/ns/calc/sa/waypoint");
  CHECK(c->xds_address == "https://istiod.istio-system.svc:15012");
}

TEST_CASE("configuration errors name the variable") {
  auto missing = pod();
  missing.erase("SERVICE_ACCOUNT");
  auto c = waypoint::load_config(env_of(missing), 4);
  REQUIRE(!c.ok());
  CHECK(c.error().find("SERVICE_ACCOUNT") != std::string::npos);

  auto bad_port = pod();
  bad_port["HBONE_PORT"] = "70000";
  c = waypoint::load_config(env_of(bad_port), 4);
  REQUIRE(!c.ok());
  CHECK(c.error().find("HBONE_PORT") != std::string::npos);

  auto public_admin = pod();
  public_admin["ADMIN_ADDR"] = "0.0.0.0:15000";
  c = waypoint::load_config(env_of(public_admin), 4);
  REQUIRE(!c.ok());
  CHECK(c.error().find("ADMIN_ADDR") != std::string::npos);

  auto slash = pod();
  slash["POD_NAMESPACE"] = "a/b";
  c = waypoint::load_config(env_of(slash), 4);
  REQUIRE(!c.ok());
  CHECK(c.error().find("POD_NAMESPACE") != std::string::npos);
}
