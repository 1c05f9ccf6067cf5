#include "cni/plugin.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cni {

namespace {

constexpr int kErrIncompatibleVersion = 1;
constexpr int kErrInvalidEnv = 4;
constexpr int kErrIo = 5;
constexpr int kErrDecode = 6;
constexpr int kErrInvalidConfig = 7;
constexpr int kErrTryAgain = 11;
constexpr int kErrNotAvailable = 50;
constexpr int kErrCapture = 100;

const std::string kLatest = "1.1.0";

// Owns the netns fd for the duration of the call (plugin.cc stays free of other libraries:
// it is linked into the static ambient-cni-plugin).
struct OwnedFd {
  int fd;
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string get(const std::map<std::string, std::string>& env, const std::string& k) {
  auto it = env.find(k);
  return it == env.end() ? std::string() : it->second;
}

PluginOutcome error_out(const std::string& version, const PluginError& e, std::string log = {}) {
  nlohmann::json j = {{"cniVersion", version.empty() ? kLatest : version}, {"code", e.code}, {"msg", e.msg}};
  if (!e.details.empty()) j["details"] = e.details;
  if (!log.empty()) log += "\n";
  log += "ambient-cni: " + e.msg + (e.details.empty() ? "" : ": " + e.details);
  return PluginOutcome{1, j.dump(), log};
}

// ADD's result: the previous plugin's result unchanged (we add no interface or address).
PluginOutcome pass_through(const PluginConfig& cfg, std::string log) {
  nlohmann::json r = cfg.prev_result;
  if (r.is_null())
    r = nlohmann::json{
        {"interfaces", nlohmann::json::array()}, {"ips", nlohmann::json::array()}, {"dns", nlohmann::json::object()}};
  r["cniVersion"] = cfg.cni_version;
  return PluginOutcome{0, r.dump(), std::move(log)};
}

}  // namespace

common::Result<PluginConfig> parse_plugin_config(const std::string& text, PluginError* err) {
  auto fail = [&](int code, const std::string& msg, const std::string& details = {}) {
    if (err) *err = PluginError{code, msg, details};
    return common::make_error(msg + (details.empty() ? "" : ": " + details));
  };
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail(kErrDecode, "cannot decode the network configuration", "stdin is not JSON");
  if (!j.is_object()) return fail(kErrDecode, "cannot decode the network configuration", "stdin is not a JSON object");
  PluginConfig c;
  if (!j.contains("cniVersion") || !j["cniVersion"].is_string()) {
    return fail(kErrInvalidConfig, "invalid network configuration", "cniVersion: missing or not a string");
  }
  c.cni_version = j["cniVersion"];
  const auto& versions = supported_cni_versions();
  if (std::find(versions.begin(), versions.end(), c.cni_version) == versions.end()) {
    return fail(kErrIncompatibleVersion, "incompatible CNI version",
                "cniVersion " + c.cni_version + " is not one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  }
  if (j.contains("name")) {
    if (!j["name"].is_string()) return fail(kErrInvalidConfig, "invalid network configuration", "name: not a string");
    c.name = j["name"];
  }
  if (j.contains("agentSocket")) {
    if (!j["agentSocket"].is_string() || j["agentSocket"].get<std::string>().empty()) {
      return fail(kErrInvalidConfig, "invalid network configuration", "agentSocket: must be a non-empty string");
    }
    c.agent_socket = j["agentSocket"];
  }
  if (j.contains("excludeNamespaces")) {
    const auto& e = j["excludeNamespaces"];
    if (!e.is_array())
      return fail(kErrInvalidConfig, "invalid network configuration", "excludeNamespaces: must be a list");
    for (const auto& n : e) {
      if (!n.is_string()) {
        return fail(kErrInvalidConfig, "invalid network configuration", "excludeNamespaces: entries must be strings");
      }
      c.exclude_namespaces.push_back(n);
    }
  }
  if (j.contains("prevResult")) {
    if (!j["prevResult"].is_object())
      return fail(kErrInvalidConfig, "invalid network configuration", "prevResult: not an object");
    c.prev_result = j["prevResult"];
  }
  return c;
}

std::map<std::string, std::string> parse_cni_args(const std::string& args) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos <= args.size()) {
    std::size_t end = args.find(';', pos);
    if (end == std::string::npos) end = args.size();
    const std::string kv = args.substr(pos, end - pos);
    if (auto eq = kv.find('='); eq != std::string::npos && eq > 0) out[kv.substr(0, eq)] = kv.substr(eq + 1);
    pos = end + 1;
  }
  return out;
}

PluginOutcome run_plugin(const std::map<std::string, std::string>& env, const std::string& input,
                         const AgentCall& agent) {
  const std::string cmd = get(env, "CNI_COMMAND");
  if (cmd == "VERSION") {
    nlohmann::json j = {{"cniVersion", kLatest}, {"supportedVersions", supported_cni_versions()}};
    return PluginOutcome{0, j.dump(), {}};
  }
  PluginError perr{};
  auto cfg = parse_plugin_config(input, &perr);
  if (!cfg.ok()) return error_out({}, perr);
  const std::string& ver = cfg->cni_version;

  if (cmd == "STATUS") {
    auto r = agent(cfg->agent_socket, {{"op", "list"}}, -1);
    if (!r.ok()) return error_out(ver, {kErrNotAvailable, "the ambient-cni node agent is not available", r.error()});
    return PluginOutcome{0, {}, {}};
  }
  if (cmd == "GC") return PluginOutcome{0, {}, {}};
  if (cmd != "ADD" && cmd != "DEL" && cmd != "CHECK") {
    return error_out(
        ver, {kErrInvalidEnv, "invalid CNI_COMMAND", "'" + cmd + "' is not ADD, DEL, CHECK, STATUS, GC or VERSION"});
  }
  const std::string container = get(env, "CNI_CONTAINERID");
  const std::string netns = get(env, "CNI_NETNS");
  if (container.empty()) return error_out(ver, {kErrInvalidEnv, "CNI_CONTAINERID is not set", ""});
  if (get(env, "CNI_IFNAME").empty()) return error_out(ver, {kErrInvalidEnv, "CNI_IFNAME is not set", ""});
  if (cmd != "DEL" && netns.empty()) return error_out(ver, {kErrInvalidEnv, "CNI_NETNS is not set", ""});

  const auto args = parse_cni_args(get(env, "CNI_ARGS"));
  auto arg = [&](const char* k) {
    auto it = args.find(k);
    return it == args.end() ? std::string() : it->second;
  };
  const std::string ns = arg("K8S_POD_NAMESPACE");
  const std::string name = arg("K8S_POD_NAME");
  const std::string uid = arg("K8S_POD_UID");
  const bool is_pod = !ns.empty() && !name.empty();
  const bool excluded =
      std::find(cfg->exclude_namespaces.begin(), cfg->exclude_namespaces.end(), ns) != cfg->exclude_namespaces.end();

  if (cmd == "DEL") {
    // Idempotent: the sandbox may never have been captured, or the agent may be gone (it
    // replays and prunes its own state when it comes back).
    auto r =
        agent(cfg->agent_socket,
              {{"op", "cni-del"}, {"container_id", container}, {"uid", uid}, {"namespace", ns}, {"name", name}}, -1);
    if (!r.ok()) return PluginOutcome{0, {}, "ambient-cni: DEL: agent unreachable (" + r.error() + "); nothing to do"};
    if (!r->value("ok", false)) {
      return error_out(ver,
                       {kErrCapture, "removing the pod from the mesh failed", r->value("error", std::string("?"))});
    }
    return PluginOutcome{0, {}, {}};
  }

  if (!is_pod) {
    if (cmd == "ADD")
      return pass_through(*cfg, "ambient-cni: not a Kubernetes pod (no K8S_POD_NAMESPACE/NAME); skipped");
    return PluginOutcome{0, {}, {}};
  }
  if (excluded) {
    if (cmd == "ADD") return pass_through(*cfg, "ambient-cni: namespace " + ns + " is excluded; skipped");
    return PluginOutcome{0, {}, {}};
  }

  OwnedFd fd{::open(netns.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0)
    return error_out(ver, {kErrIo, "cannot open the pod's network namespace", netns + ": " + std::strerror(errno)});

  const nlohmann::json req = {{"op", cmd == "ADD" ? "cni-add" : "cni-check"},
                              {"container_id", container},
                              {"uid", uid},
                              {"namespace", ns},
                              {"name", name},
                              {"netns", netns}};
  auto r = agent(cfg->agent_socket, req, fd.fd);
  if (!r.ok()) return error_out(ver, {kErrTryAgain, "the ambient-cni node agent is not available", r.error()});
  if (!r->value("ok", false)) {
    const std::string what =
        cmd == "ADD" ? "adding the pod to the ambient mesh failed" : "the pod's ambient capture is not intact";
    return error_out(ver, {kErrCapture, what, r->value("error", std::string("?"))});
  }
  std::string log = "ambient-cni: " + ns + "/" + name + ": " + r->value("reason", std::string()) +
                    (r->value("captured", false) ? " (captured)" : " (not captured)");
  if (cmd == "ADD") return pass_through(*cfg, std::move(log));
  return PluginOutcome{0, {}, std::move(log)};
}

int run_plugin_invocation(const AgentCall& agent) {
  std::map<std::string, std::string> env;
  for (const char* k : {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"}) {
    if (const char* v = std::getenv(k)) env[k] = v;
  }
  std::string input;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    input.append(buf, static_cast<std::size_t>(n));
    if (input.size() > (1u << 20)) break;  // a network config is a few KiB
  }
  const PluginOutcome r = run_plugin(env, input, agent);
  if (!r.log.empty()) std::fprintf(stderr, "%s\n", r.log.c_str());
  if (!r.out.empty()) std::fprintf(stdout, "%s\n", r.out.c_str());
  std::fflush(stdout);
  return r.exit_code;
}

}  // namespace cni
