// status.listeners of a Gateway and status.parents of a route (controlplane/kube/route_status.h)
// from what the compile decided, checked as JSON; the writes against an API server are in
// tests/25-kube-controlplane.
#include "controlplane/kube/route_status.h"

#include <catch2/catch.hpp>

using controlplane::GatewayAttachments;
using controlplane::RouteAttachment;
using controlplane::kube::gateway_listener_status;
using controlplane::kube::route_status_patch;
using nlohmann::json;

namespace {

json gateway() {
  return json::parse(R"({
    "metadata": {"name": "web", "namespace": "shop", "generation": 4},
    "spec": {"gatewayClassName": "istio", "listeners": [
      {"name": "http", "port": 80, "protocol": "HTTP"},
      {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "cert"}]},
       "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}]}},
      {"name": "far", "port": 8443, "protocol": "HTTPS",
       "tls": {"certificateRefs": [{"name": "cert", "namespace": "other"}]}}]}})");
}

const json* cond(const json& conditions, const std::string& type) {
  for (const auto& c : conditions)
    if (c["type"] == type) return &c;
  return nullptr;
}

json route() {
  return json::parse(R"({
    "metadata": {"name": "r", "namespace": "shop", "generation": 7},
    "spec": {"parentRefs": [{"name": "web", "sectionName": "http"}, {"name": "web", "sectionName": "nope"}]},
    "status": {"parents": [{"parentRef": {"name": "other"}, "controllerName": "example.com/ctl",
                            "conditions": [{"type": "Accepted", "status": "True"}]}]}})");
}

}  // namespace

TEST_CASE("listener status: counts from the compile, conditions, certificate refs") {
  const std::map<std::string, uint32_t> counts{{"http", 1}, {"https", 0}};
  json ls = gateway_listener_status(gateway(), &counts, {}, "2026-12-07T10:00:00Z");
  REQUIRE(ls.size() == 3);
  CHECK(ls[0]["name"] == "http");
  CHECK(ls[0]["attachedRoutes"] == 1);
  CHECK(ls[1]["attachedRoutes"] == 0);
  CHECK(ls[2]["attachedRoutes"] == 0);  // no entry: 0
  CHECK(ls[0]["supportedKinds"] == json::parse(R"([{"group":"gateway.networking.k8s.io","kind":"HTTPRoute"},
                                                   {"group":"gateway.networking.k8s.io","kind":"GRPCRoute"}])"));
  // allowedRoutes.kinds narrows them.
  CHECK(ls[1]["supportedKinds"] == json::parse(R"([{"group":"gateway.networking.k8s.io","kind":"HTTPRoute"}])"));
  for (const char* t : {"Accepted", "Programmed", "ResolvedRefs"}) {
    REQUIRE(cond(ls[0]["conditions"], t));
    CHECK((*cond(ls[0]["conditions"], t))["status"] == "True");
    CHECK((*cond(ls[0]["conditions"], t))["observedGeneration"] == 4);
  }
  CHECK((*cond(ls[0]["conditions"], "Conflicted"))["status"] == "False");
  // Another namespace: InvalidCertificateRef, not programmed.
  const json& far = *cond(ls[2]["conditions"], "ResolvedRefs");
  CHECK(far["status"] == "False");
  CHECK(far["reason"] == "InvalidCertificateRef");
  CHECK((*cond(ls[2]["conditions"], "Programmed"))["status"] == "False");
  CHECK((*cond(ls[1]["conditions"], "ResolvedRefs"))["status"] == "True");

  // A missing Secret: InvalidCertificateRef on that listener.
  json missing = gateway_listener_status(gateway(), &counts, {"shop/cert"}, "2026-12-07T10:00:00Z");
  CHECK((*cond(missing[1]["conditions"], "ResolvedRefs"))["reason"] == "InvalidCertificateRef");
  CHECK((*cond(missing[1]["conditions"], "ResolvedRefs"))["message"].get<std::string>().find("not found") !=
        std::string::npos);

  // lastTransitionTime stays while a status stays; moves when it changes.
  json g = gateway();
  g["status"]["listeners"] = ls;
  json again = gateway_listener_status(g, &counts, {"shop/cert"}, "2026-12-07T11:00:00Z");
  CHECK(again[0] == ls[0]);
  CHECK((*cond(again[1]["conditions"], "ResolvedRefs"))["lastTransitionTime"] == "2026-12-07T11:00:00Z");
  CHECK((*cond(again[1]["conditions"], "Accepted"))["lastTransitionTime"] == "2026-12-07T10:00:00Z");
}

TEST_CASE("a waypoint's listeners carry the routes bound through its Services") {
  json wp = json::parse(R"({"metadata": {"name": "waypoint", "namespace": "ns", "generation": 2},
    "spec": {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})");
  const std::map<std::string, uint32_t> counts{{"*", 3}};
  json ls = gateway_listener_status(wp, &counts, {}, "t");
  REQUIRE(ls.size() == 1);
  CHECK(ls[0]["name"] == "mesh");
  CHECK(ls[0]["attachedRoutes"] == 3);
  CHECK(ls[0]["supportedKinds"].size() == 2);
}

TEST_CASE("route status: one parent per parentRef of ours, others kept, written only on change") {
  RouteAttachment att;
  att.parents = {{0, true, "Accepted", "Route was valid"}, {1, false, "NoMatchingParent", "no listener named 'nope'"}};
  att.backends_resolved = false;
  att.backend_message = "Service shop/gone not found";
  auto patch = route_status_patch(route(), att, "2026-12-07T10:00:00Z");
  REQUIRE(patch);
  const json& ps = (*patch)["status"]["parents"];
  REQUIRE(ps.size() == 3);
  CHECK(ps[0]["controllerName"] == "example.com/ctl");  // another controller's entry survives
  CHECK(ps[1]["controllerName"] == "istio.io/gateway-controller");
  CHECK(ps[1]["parentRef"] == json::parse(R"({"name": "web", "sectionName": "http"})"));  // as given
  CHECK((*cond(ps[1]["conditions"], "Accepted"))["status"] == "True");
  CHECK((*cond(ps[1]["conditions"], "Accepted"))["observedGeneration"] == 7);
  CHECK((*cond(ps[2]["conditions"], "Accepted"))["status"] == "False");
  CHECK((*cond(ps[2]["conditions"], "Accepted"))["reason"] == "NoMatchingParent");
  CHECK((*cond(ps[2]["conditions"], "ResolvedRefs"))["reason"] == "BackendNotFound");
  CHECK((*cond(ps[2]["conditions"], "ResolvedRefs"))["message"] == "Service shop/gone not found");

  // Applied: the same verdict later is no write.
  json r = route();
  r["status"] = (*patch)["status"];
  CHECK_FALSE(route_status_patch(r, att, "2026-12-07T12:00:00Z"));
  // The backend appears: only ResolvedRefs changes (and its lastTransitionTime).
  att.backends_resolved = true;
  auto fixed = route_status_patch(r, att, "2026-12-07T12:00:00Z");
  REQUIRE(fixed);
  const json& c1 = (*fixed)["status"]["parents"][1]["conditions"];
  CHECK((*cond(c1, "ResolvedRefs"))["status"] == "True");
  CHECK((*cond(c1, "ResolvedRefs"))["lastTransitionTime"] == "2026-12-07T12:00:00Z");
  CHECK((*cond(c1, "Accepted"))["lastTransitionTime"] == "2026-12-07T10:00:00Z");
}

TEST_CASE("route status: entries of ours for parentRefs removed or no longer attached go, others stay") {
  RouteAttachment att;
  att.parents = {{0, true, "Accepted", "Route was valid"}, {1, false, "NoMatchingParent", "no listener named 'nope'"}};
  auto first = route_status_patch(route(), att, "2026-12-07T10:00:00Z");
  REQUIRE(first);
  json r = route();
  r["status"] = (*first)["status"];
  REQUIRE(r["status"]["parents"].size() == 3);

  // The second parentRef was removed from the spec: the compile reports only the first.
  r["spec"]["parentRefs"].erase(1);
  att.parents = {{0, true, "Accepted", "Route was valid"}};
  auto one = route_status_patch(r, att, "2026-12-07T11:00:00Z");
  REQUIRE(one);
  const json& ps = (*one)["status"]["parents"];
  REQUIRE(ps.size() == 2);
  CHECK(ps[0]["controllerName"] == "example.com/ctl");
  CHECK(ps[1]["parentRef"] == json::parse(R"({"name": "web", "sectionName": "http"})"));
  CHECK((*cond(ps[1]["conditions"], "Accepted"))["lastTransitionTime"] == "2026-12-07T10:00:00Z");  // unchanged

  // No parentRef of ours left (or the route left out of the compile: an empty attachment, as the
  // status writer uses then): only the other controller's entry remains.
  r["status"] = (*one)["status"];
  r["spec"]["parentRefs"] = json::parse(R"([{"name": "other", "group": "example.com", "kind": "Thing"}])");
  auto none = route_status_patch(r, RouteAttachment{}, "2026-12-07T12:00:00Z");
  REQUIRE(none);
  REQUIRE((*none)["status"]["parents"].size() == 1);
  CHECK((*none)["status"]["parents"][0]["controllerName"] == "example.com/ctl");
  r["status"] = (*none)["status"];
  CHECK_FALSE(route_status_patch(r, RouteAttachment{}, "2026-12-07T13:00:00Z"));  // nothing more to remove
}
