// Unit tests of the CNI plugin pieces that need no root: network config and CNI_ARGS parsing,
// the capture decision, the static metadata file, conflist chaining, and whole plugin
// invocations (ADD/DEL/CHECK/STATUS/VERSION) against a fake agent that records its requests.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cni/cni_install.h"
#include "cni/plugin.h"
#include "cni/pod_metadata.h"

namespace {

using json = nlohmann::json;

std::string conf(const std::string& extra = "") {
  return R"({"cniVersion":"1.0.0","name":"podnet","type":"ambient-cni","agentSocket":"/tmp/x.ctl",)"
         R"("excludeNamespaces":["kube-system"],"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],)"
         R"("ips":[{"address":"10.88.0.5/16"}]})" +
         extra + "}";
}

std::map<std::string, std::string> env(const std::string& cmd, const std::string& args) {
  return {{"CNI_COMMAND", cmd},
          {"CNI_CONTAINERID", "c0ffee"},
          {"CNI_NETNS", "/proc/self/ns/net"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_ARGS", args}};
}

const std::string kPodArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-0;K8S_POD_UID=u-1";

struct FakeAgent {
  std::vector<json> requests;
  std::vector<int> fds;
  common::Result<json> reply = json{{"ok", true}, {"captured", true}, {"reason", "namespace label"}};
  cni::AgentCall call() {
    return [this](const std::string&, const json& req, int fd) -> common::Result<json> {
      requests.push_back(req);
      fds.push_back(fd);
      return reply;
    };
  }
};

}  // namespace

TEST_CASE("cni plugin: config parsing", "[cni][plugin]") {
  cni::PluginError e{};
  auto c = cni::parse_plugin_config(conf(), &e);
  REQUIRE(c.ok());
  CHECK(c->cni_version == "1.0.0");
  CHECK(c->agent_socket == "/tmp/x.ctl");
  CHECK(c->exclude_namespaces == std::vector<std::string>{"kube-system"});
  CHECK(c->prev_result["ips"][0]["address"] == "10.88.0.5/16");

  CHECK_FALSE(cni::parse_plugin_config("{nope", &e).ok());
  CHECK(e.code == 6);
  CHECK_FALSE(cni::parse_plugin_config(R"({"cniVersion":"9.9.9"})", &e).ok());
  CHECK(e.code == 1);
  CHECK_FALSE(cni::parse_plugin_config(R"({"name":"x"})", &e).ok());
  CHECK(e.code == 7);
  CHECK(e.details.find("cniVersion") != std::string::npos);
  CHECK_FALSE(cni::parse_plugin_config(R"({"cniVersion":"1.0.0","excludeNamespaces":"kube-system"})", &e).ok());
  CHECK(e.code == 7);
  CHECK(e.details.find("excludeNamespaces") != std::string::npos);
}

TEST_CASE("cni plugin: CNI_ARGS", "[cni][plugin]") {
  auto a = cni::parse_cni_args(kPodArgs + ";BROKEN;=x;EMPTY=");
  CHECK(a["K8S_POD_NAMESPACE"] == "demo");
  CHECK(a["K8S_POD_NAME"] == "web-0");
  CHECK(a["K8S_POD_UID"] == "u-1");
  CHECK(a.count("BROKEN") == 0);
  CHECK(a["EMPTY"].empty());
  CHECK(cni::parse_cni_args("").empty());
}

TEST_CASE("cni plugin: capture decision", "[cni][plugin]") {
  cni::PodMetadata m;
  m.ns = "demo";
  CHECK_FALSE(cni::decide_capture(m).capture);
  m.namespace_labels["istio.io/dataplane-mode"] = "ambient";
  CHECK(cni::decide_capture(m).capture);
  m.pod_labels["istio.io/dataplane-mode"] = "none";
  CHECK_FALSE(cni::decide_capture(m).capture);
  m.pod_labels.clear();
  m.pod_labels["gateway.networking.k8s.io/gateway-name"] = "waypoint";
  CHECK_FALSE(cni::decide_capture(m).capture);
  m.pod_labels.clear();
  m.host_network = true;
  CHECK_FALSE(cni::decide_capture(m).capture);
  cni::PodMetadata p;
  p.pod_labels["istio.io/dataplane-mode"] = "ambient";  // pod label alone enrols
  CHECK(cni::decide_capture(p).capture);
}

TEST_CASE("cni plugin: static metadata file", "[cni][plugin]") {
  auto d = cni::StaticMetadataSource::parse(
      R"({"namespaces":{"demo":{"istio.io/dataplane-mode":"ambient"}},)"
      R"("pods":{"demo/web-0":{"labels":{"app":"web"},"serviceAccountName":"web","uid":"u-9"}}})");
  REQUIRE(d.ok());
  CHECK(d->pods["demo/web-0"].service_account == "web");
  CHECK(d->pods["demo/web-0"].uid == "u-9");
  auto bad = cni::StaticMetadataSource::parse(R"({"pods":{"demo/web-0":{"serviceAcount":"web"}}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("pods.demo/web-0: unknown key 'serviceAcount'") != std::string::npos);
  CHECK_FALSE(cni::StaticMetadataSource::parse(R"({"pods":{"web-0":{}}})").ok());
  CHECK_FALSE(cni::StaticMetadataSource::parse(R"({"namespaces":{"demo":{"a":1}}})").ok());

  char tmpl[] = "/tmp/cni-meta-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string path = std::string(tmpl) + "/m.json";
  std::ofstream(path) << R"({"namespaces":{"demo":{"istio.io/dataplane-mode":"ambient"}}})";
  cni::StaticMetadataSource src(path);
  auto m = src.lookup("demo", "web-1");
  REQUIRE(m.ok());
  CHECK(m->service_account == "default");
  CHECK(cni::decide_capture(*m).capture);
  // An edit (size changes) is picked up; a bad edit keeps the last good data.
  std::ofstream(path, std::ios::trunc) << R"({"namespaces":{}})";
  CHECK_FALSE(cni::decide_capture(*src.lookup("demo", "web-1")).capture);
  std::ofstream(path, std::ios::trunc) << R"({"namespaces":[1,2,3,4,5,6,7,8]})";
  CHECK(src.lookup("demo", "web-1").ok());
  cni::StaticMetadataSource missing(std::string(tmpl) + "/none.json");
  CHECK_FALSE(missing.lookup("demo", "x").ok());
  std::filesystem::remove_all(tmpl);
}

TEST_CASE("cni plugin: VERSION and bad commands", "[cni][plugin]") {
  FakeAgent agent;
  auto v = cni::run_plugin({{"CNI_COMMAND", "VERSION"}}, R"({"cniVersion":"1.0.0"})", agent.call());
  CHECK(v.exit_code == 0);
  auto j = json::parse(v.out);
  CHECK(j["supportedVersions"].size() == 5);
  auto bad = cni::run_plugin({{"CNI_COMMAND", "FROB"}}, conf(), agent.call());
  CHECK(bad.exit_code == 1);
  CHECK(json::parse(bad.out)["code"] == 4);
  auto e = env("ADD", kPodArgs);
  e.erase("CNI_NETNS");
  auto no_netns = cni::run_plugin(e, conf(), agent.call());
  CHECK(json::parse(no_netns.out)["code"] == 4);
  CHECK(json::parse(no_netns.out)["msg"] == "CNI_NETNS is not set");
  CHECK(agent.requests.empty());
}

TEST_CASE("cni plugin: ADD hands the netns to the agent and passes prevResult through", "[cni][plugin]") {
  FakeAgent agent;
  auto r = cni::run_plugin(env("ADD", kPodArgs), conf(), agent.call());
  REQUIRE(r.exit_code == 0);
  auto out = json::parse(r.out);
  CHECK(out["cniVersion"] == "1.0.0");
  CHECK(out["ips"][0]["address"] == "10.88.0.5/16");
  REQUIRE(agent.requests.size() == 1);
  CHECK(agent.requests[0]["op"] == "cni-add");
  CHECK(agent.requests[0]["namespace"] == "demo");
  CHECK(agent.requests[0]["uid"] == "u-1");
  CHECK(agent.requests[0]["container_id"] == "c0ffee");
  CHECK(agent.fds[0] >= 0);
}

TEST_CASE("cni plugin: ADD skips excluded namespaces and non-pods", "[cni][plugin]") {
  FakeAgent agent;
  auto r = cni::run_plugin(env("ADD", "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns"), conf(), agent.call());
  CHECK(r.exit_code == 0);
  CHECK(json::parse(r.out)["ips"][0]["address"] == "10.88.0.5/16");
  auto r2 = cni::run_plugin(env("ADD", ""), conf(), agent.call());
  CHECK(r2.exit_code == 0);
  CHECK(agent.requests.empty());
}

TEST_CASE("cni plugin: ADD fails closed", "[cni][plugin]") {
  FakeAgent agent;
  agent.reply = common::make_error("cannot reach the ambient-cni agent");
  auto r = cni::run_plugin(env("ADD", kPodArgs), conf(), agent.call());
  CHECK(r.exit_code == 1);
  CHECK(json::parse(r.out)["code"] == 11);
  agent.reply = json{{"ok", false}, {"error", "no ztunnel connection"}};
  auto r2 = cni::run_plugin(env("ADD", kPodArgs), conf(), agent.call());
  CHECK(r2.exit_code == 1);
  auto e = json::parse(r2.out);
  CHECK(e["code"] == 100);
  CHECK(e["details"] == "no ztunnel connection");
  auto e2 = env("ADD", kPodArgs);
  e2["CNI_NETNS"] = "/nonexistent/netns";
  auto r3 = cni::run_plugin(e2, conf(), agent.call());
  CHECK(json::parse(r3.out)["code"] == 5);
}

TEST_CASE("cni plugin: DEL is idempotent, CHECK reports drift, STATUS asks the agent", "[cni][plugin]") {
  FakeAgent agent;
  agent.reply = common::make_error("agent down");
  auto del = cni::run_plugin(env("DEL", kPodArgs), conf(), agent.call());
  CHECK(del.exit_code == 0);
  CHECK(del.out.empty());
  auto e = env("DEL", "");
  e.erase("CNI_NETNS");  // DEL may come without a netns
  CHECK(cni::run_plugin(e, conf(), agent.call()).exit_code == 0);
  CHECK(agent.requests.back()["op"] == "cni-del");

  auto status = cni::run_plugin({{"CNI_COMMAND", "STATUS"}}, conf(), agent.call());
  CHECK(json::parse(status.out)["code"] == 50);

  agent.reply = json{{"ok", false}, {"error", "in-pod rules drifted: IPv4 nat ISTIO_OUTPUT has 0 rules, want 6"}};
  auto check = cni::run_plugin(env("CHECK", kPodArgs), conf(), agent.call());
  CHECK(check.exit_code == 1);
  CHECK(json::parse(check.out)["details"].get<std::string>().find("drifted") != std::string::npos);
  agent.reply = json{{"ok", true}, {"captured", true}};
  CHECK(cni::run_plugin(env("CHECK", kPodArgs), conf(), agent.call()).exit_code == 0);
  CHECK(agent.requests.back()["op"] == "cni-check");
}

TEST_CASE("cni install: chaining into a conflist", "[cni][install]") {
  cni::CniInstallOptions o;
  o.agent_socket = "/var/run/ztunnel/ztunnel.sock.ctl";
  o.exclude_namespaces = {"kube-system"};
  const json entry = cni::plugin_entry(o);
  json list = json::parse(R"({"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"},{"type":"portmap"}]})");
  auto c = cni::chain_plugin(list, entry);
  REQUIRE(c.ok());
  REQUIRE((*c)["plugins"].size() == 3);
  CHECK((*c)["plugins"][2]["type"] == "ambient-cni");
  // Idempotent: chaining again replaces our entry.
  auto again = cni::chain_plugin(*c, entry);
  REQUIRE(again.ok());
  CHECK((*again)["plugins"].size() == 3);
  CHECK(cni::unchain_plugin(*again) == list);
  // A single-plugin .conf becomes a list.
  auto single = cni::chain_plugin(json::parse(R"({"cniVersion":"0.4.0","name":"n","type":"flannel"})"), entry);
  REQUIRE(single.ok());
  CHECK((*single)["plugins"][0]["type"] == "flannel");
  CHECK((*single)["cniVersion"] == "0.4.0");
  CHECK_FALSE(cni::chain_plugin(json::parse(R"({"plugins":{}})"), entry).ok());

  char tmpl[] = "/tmp/cni-inst-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  std::filesystem::create_directories(dir + "/bin");
  std::filesystem::create_directories(dir + "/net.d");
  o.bin_dir = dir + "/bin";
  o.conf_dir = dir + "/net.d";
  CHECK_FALSE(cni::install_cni(o).ok());  // no primary CNI config yet
  std::ofstream(dir + "/net.d/10-bridge.conflist") << list.dump();
  std::ofstream(dir + "/net.d/99-other.conflist") << list.dump();
  auto path = cni::install_cni(o);
  REQUIRE(path.ok());
  CHECK(*path == dir + "/net.d/10-bridge.conflist");
  CHECK(::access((dir + "/bin/ambient-cni").c_str(), X_OK) == 0);
  std::ifstream in(*path);
  json written = json::parse(in);
  CHECK(written["plugins"].back()["agentSocket"] == "/var/run/ztunnel/ztunnel.sock.ctl");
  REQUIRE(cni::uninstall_cni(o).ok());
  std::ifstream in2(*path);
  CHECK(json::parse(in2) == list);
  CHECK(::access((dir + "/bin/ambient-cni").c_str(), F_OK) != 0);
  std::filesystem::remove_all(dir);
}
