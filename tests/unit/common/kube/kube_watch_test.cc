// The Kubernetes list+watch state machine (common/kube/watch_state.h) and kubeconfig
// loading (kube_config.h): pure logic, driven with JSON in the shapes the API server sends.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/kube/kube_config.h"
#include "common/kube/watch_state.h"
#include "temp_dir.h"

using common::kube::KubeConfig;
using common::kube::ResourceKind;
using common::kube::WatchState;
using Outcome = common::kube::WatchState::Outcome;
using nlohmann::json;

namespace {

ResourceKind pods() {
  return {"", "v1", "pods", "Pod", true};
}

std::string pod_json(const std::string& name, const std::string& rv, const std::string& ip = "10.0.0.1") {
  return json{{"metadata",
               {{"name", name},
                {"namespace", "demo"},
                {"resourceVersion", rv},
                {"managedFields", json::array({{{"manager", "kubectl"}}})}}},
              {"status", {{"podIP", ip}}}}
      .dump();
}

std::string event(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}";
}

std::string list_of(const std::string& rv, const std::vector<std::string>& items) {
  std::string s = R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":")" + rv + R"("},"items":[)";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
  return s + "]}";
}

}  // namespace

TEST_CASE("list: items get kind/apiVersion, lose managedFields; the list's version is the watch start") {
  WatchState st(pods());
  REQUIRE_FALSE(st.listed());
  REQUIRE(st.apply_list(list_of("100", {pod_json("a", "90"), pod_json("b", "95")})));
  CHECK(st.listed());
  CHECK(st.resource_version() == "100");
  REQUIRE(st.objects().size() == 2);
  const json a = json::parse(st.objects().at("demo/a").json);
  CHECK(a["kind"] == "Pod");
  CHECK(a["apiVersion"] == "v1");
  CHECK_FALSE(a["metadata"].contains("managedFields"));
  CHECK(st.objects().at("demo/a").resource_version == "90");
  CHECK(st.watch_target(300) == "/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=100&timeoutSeconds=300");
}

TEST_CASE("list: a bad list names the field and leaves the state as it was") {
  WatchState st(pods());
  REQUIRE(st.apply_list(list_of("100", {pod_json("a", "90")})));
  auto r = st.apply_list(R"({"items":[]})");
  REQUIRE_FALSE(r);
  CHECK(r.error().find("metadata.resourceVersion") != std::string::npos);
  auto r2 = st.apply_list(list_of("120", {R"({"metadata":{"name":"x"}})"}));
  REQUIRE_FALSE(r2);
  CHECK(r2.error().find("items[0].metadata.namespace") != std::string::npos);
  CHECK(st.objects().size() == 1);
  CHECK(st.resource_version() == "100");
}

TEST_CASE("watch: ADDED / MODIFIED / DELETED change objects and advance the version") {
  WatchState st(pods());
  REQUIRE(st.apply_list(list_of("100", {pod_json("a", "90")})));
  const auto c0 = st.changes();
  CHECK(st.apply_event(event("ADDED", pod_json("b", "101"))).outcome == Outcome::Changed);
  CHECK(st.resource_version() == "101");
  CHECK(st.apply_event(event("MODIFIED", pod_json("a", "102", "10.0.0.9"))).outcome == Outcome::Changed);
  CHECK(json::parse(st.objects().at("demo/a").json)["status"]["podIP"] == "10.0.0.9");
  CHECK(st.apply_event(event("DELETED", pod_json("b", "103"))).outcome == Outcome::Changed);
  CHECK(st.objects().count("demo/b") == 0);
  CHECK(st.resource_version() == "103");
  CHECK(st.changes() == c0 + 3);
  // Deleting what is not there changes nothing (but the version still moves).
  CHECK(st.apply_event(event("DELETED", pod_json("zz", "104"))).outcome == Outcome::Unchanged);
  CHECK(st.resource_version() == "104");
}

TEST_CASE("watch: BOOKMARK only advances the version") {
  WatchState st(pods());
  REQUIRE(st.apply_list(list_of("100", {pod_json("a", "90")})));
  const auto c0 = st.changes();
  auto r = st.apply_event(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"250"}}})");
  CHECK(r.outcome == Outcome::Unchanged);
  CHECK(st.resource_version() == "250");
  CHECK(st.changes() == c0);
  CHECK(st.objects().size() == 1);
}

TEST_CASE("watch: ERROR 410 is Gone (re-list), other errors and junk are Errors") {
  WatchState st(pods());
  REQUIRE(st.apply_list(list_of("100", {})));
  auto gone = st.apply_event(
      R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 5 (100)","reason":"Expired","code":410}})j");
  CHECK(gone.outcome == Outcome::Gone);
  CHECK(gone.message.find("too old resource version") != std::string::npos);
  auto err = st.apply_event(R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd down"}})");
  CHECK(err.outcome == Outcome::Error);
  CHECK(err.message.find("500") != std::string::npos);
  CHECK(st.apply_event("not json").outcome == Outcome::Error);
  auto unknown = st.apply_event(event("SOMETHING", pod_json("a", "1")));
  CHECK(unknown.outcome == Outcome::Error);
  CHECK(unknown.message.find("type") != std::string::npos);
  auto noname = st.apply_event(event("ADDED", R"({"metadata":{"namespace":"demo"}})"));
  CHECK(noname.outcome == Outcome::Error);
  CHECK(noname.message.find("object.metadata.name") != std::string::npos);
}

TEST_CASE("re-list after 410: objects deleted while away disappear, new ones appear") {
  WatchState st(pods());
  REQUIRE(st.apply_list(list_of("100", {pod_json("a", "90"), pod_json("b", "95")})));
  st.require_list();
  CHECK_FALSE(st.listed());
  REQUIRE(st.apply_list(list_of("300", {pod_json("a", "90"), pod_json("c", "280")})));
  CHECK(st.objects().count("demo/b") == 0);
  CHECK(st.objects().count("demo/c") == 1);
  CHECK(st.resource_version() == "300");
}

TEST_CASE("cluster-scoped kinds are keyed by name; paths per group") {
  ResourceKind ns{"", "v1", "namespaces", "Namespace", false};
  WatchState st(ns);
  REQUIRE(st.apply_list(R"({"metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"demo"}}]})"));
  CHECK(st.objects().count("demo") == 1);
  ResourceKind vs{"networking.istio.io", "v1", "virtualservices", "VirtualService", true};
  CHECK(vs.collection_path() == "/apis/networking.istio.io/v1/virtualservices");
  CHECK(vs.namespace_path("demo") == "/apis/networking.istio.io/v1/namespaces/demo/virtualservices");
  CHECK(vs.api_version() == "networking.istio.io/v1");
}

TEST_CASE("one namespace and a field selector: list and watch that collection only (the mesh config ConfigMap)") {
  ResourceKind cm{"", "v1", "configmaps", "ConfigMap", true};
  WatchState st(cm, "fieldSelector=metadata.name%3Distio", "istio-system");
  CHECK(st.path() == "/api/v1/namespaces/istio-system/configmaps");
  REQUIRE(st.apply_list(R"({"metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"istio","namespace":"istio-system"}}]})"));
  CHECK(st.objects().count("istio-system/istio") == 1);
  CHECK(st.watch_target(60) ==
        "/api/v1/namespaces/istio-system/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=5&timeoutSeconds=60"
        "&fieldSelector=metadata.name%3Distio");
  CHECK(WatchState(cm).path() == "/api/v1/configmaps");
}

TEST_CASE("server URLs") {
  KubeConfig c;
  REQUIRE(common::kube::parse_server_url("https://10.96.0.1", c));
  CHECK(c.host == "10.96.0.1");
  CHECK(c.port == "443");
  REQUIRE(common::kube::parse_server_url("http://[fd00::1]:8080/", c));
  CHECK(c.scheme == "http");
  CHECK(c.host == "fd00::1");
  CHECK(c.port == "8080");
  CHECK(c.url() == "http://[fd00::1]:8080");
  CHECK_FALSE(common::kube::parse_server_url("ftp://x", c));
  CHECK_FALSE(common::kube::parse_server_url("https://x:99999", c));
  CHECK_FALSE(common::kube::parse_server_url("https://x/prefix", c));
}

TEST_CASE("kubeconfig: current context, inline data, relative files; errors name the field") {
  testutil::TempDir dir("kubeconfig");
  const std::string d = dir.path();
  std::ofstream(d + "/ca.pem") << "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n";
  std::ofstream(d + "/config") << R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: {server: "https://a.example:6443", certificate-authority-data: "aGVsbG8="}
- name: two
  cluster: {server: "https://127.0.0.1:7443", certificate-authority: ca.pem}
users:
- name: u
  user: {token: abc}
contexts:
- name: a
  context: {cluster: one, user: u}
- name: b
  context: {cluster: two, user: u}
)";
  auto c = common::kube::load_kubeconfig(d + "/config");
  REQUIRE(c);
  CHECK(c->host == "127.0.0.1");
  CHECK(c->port == "7443");
  CHECK(c->ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
  CHECK(c->token == "abc");

  std::ofstream(d + "/bad") << R"(current-context: a
clusters:
- name: one
  cluster: {server: "https://a:1", certificate-authority-data: "!!notbase64"}
contexts:
- name: a
  context: {cluster: one}
)";
  auto bad = common::kube::load_kubeconfig(d + "/bad");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("certificate-authority-data") != std::string::npos);
  std::ofstream(d + "/noctx") << "current-context: zz\ncontexts: []\n";
  auto noctx = common::kube::load_kubeconfig(d + "/noctx");
  REQUIRE_FALSE(noctx);
  CHECK(noctx.error().find("no context 'zz'") != std::string::npos);
}
