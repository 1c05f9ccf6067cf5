// ambient-cni: node agent (serve), its CLI (add / remove / list), and — whenever CNI_COMMAND is
// set — the chained CNI plugin a container runtime executes (cni/plugin.h). See cni/agent.h
// for what the agent does and cni/control.h for how the CLI and the plugin talk to it.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cni/agent.h"
#include "cni/cni_install.h"
#include "cni/control.h"
#include "cni/kube_metadata.h"
#include "cni/plugin.h"
#include "common/admin/log.h"
#include "proto/zds_wire.h"

namespace {

constexpr const char* kVersion = AMBIENT_VERSION;

constexpr const char* kUsage = R"(usage:
  ambient-cni serve [--socket PATH] [--ctl PATH] [--state-dir DIR] [--mark N] [--no-dns] [--no-ipv6]
                    [--log-level LEVEL] [--metadata FILE | --metadata-source kube
                     [--kubeconfig PATH] [--node-name NODE]]
                    [--cni-bin-dir DIR --cni-conf-dir DIR [--cni-exclude-namespaces NS,...]
                     [--cni-agent-socket PATH] [--cni-plugin-binary PATH] [--cni-keep-on-exit]]
  ambient-cni add --netns PATH --uid UID --name NAME --namespace NS --service-account SA
                  [--socket PATH | --ctl PATH]
  ambient-cni remove --uid UID [--socket PATH | --ctl PATH]
  ambient-cni list [--json] [--socket PATH | --ctl PATH]

  --socket     ZDS socket ztunnel connects to (INPOD_UDS; default /var/run/ztunnel/ztunnel.sock)
  --ctl        control socket of the agent (default: <socket>.ctl)
  --state-dir  where the agent keeps pods.json (default /var/run/ambient-cni)
  --mark       ztunnel's PACKET_MARK the in-pod rules exempt (default 1337)
  --metadata   JSON file with namespace/pod labels for the CNI plugin's capture decision
               (cni/pod_metadata.h); without it no pod added by the plugin is ambient
  --metadata-source  static (--metadata FILE, the default) or kube: namespace and pod labels
               from the Kubernetes API (in-cluster service account, or --kubeconfig PATH),
               pods of --node-name only (default: $NODE_NAME); label changes re-classify
               the pods the plugin ADDed (cni/kube_metadata.h)
  --cni-bin-dir, --cni-conf-dir
               install the plugin: copy ambient-cni-plugin (static; found beside this binary,
               else this binary; or --cni-plugin-binary) to DIR/ambient-cni and chain it into the
               first conflist of the conf dir; both are removed again at exit unless
               --cni-keep-on-exit. --cni-agent-socket: the control socket path as the host
               sees it (default: --ctl). --cni-exclude-namespaces: never captured.
  ambient-cni --version

With CNI_COMMAND set, ambient-cni is the chained CNI plugin (spec 1.0.0; config on stdin).
)";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "ambient-cni: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

// --key value / --key=value / bare flags (value "1").
struct Args {
  std::string cmd;
  std::map<std::string, std::string> kv;
  std::string error;

  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  bool has(const std::string& k) const { return kv.count(k) != 0; }
};

Args parse(int argc, char** argv) {
  static const std::vector<std::string> kFlags = {"no-dns", "no-ipv6", "json", "help", "cni-keep-on-exit"};
  Args a;
  if (argc < 2) {
    a.error = "missing command";
    return a;
  }
  a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.error = "unexpected argument '" + s + "'";
      return a;
    }
    s = s.substr(2);
    if (auto eq = s.find('='); eq != std::string::npos) {
      a.kv[s.substr(0, eq)] = s.substr(eq + 1);
      continue;
    }
    if (std::find(kFlags.begin(), kFlags.end(), s) != kFlags.end()) {
      a.kv[s] = "1";
      continue;
    }
    if (i + 1 >= argc) {
      a.error = "--" + s + " needs a value";
      return a;
    }
    a.kv[s] = argv[++i];
  }
  return a;
}

std::string ctl_path(const Args& a) {
  if (a.has("ctl")) return a.get("ctl");
  return cni::default_ctl_path(a.get("socket", cni::kDefaultZdsSocket));
}

int serve(const Args& a) {
  if (auto st = common::log::init(a.get("log-level", "info"), common::log::Format::Plain, "cni"); !st.ok()) {
    return usage_error(st.error());
  }
  cni::AgentOptions o;
  o.zds_socket = a.get("socket", cni::kDefaultZdsSocket);
  o.ctl_socket = ctl_path(a);
  o.state_dir = a.get("state-dir", "/var/run/ambient-cni");
  o.rules.dns_capture = !a.has("no-dns");
  o.rules.ipv6 = !a.has("no-ipv6");
  if (a.has("mark")) {
    char* end = nullptr;
    errno = 0;
    const unsigned long m = std::strtoul(a.get("mark").c_str(), &end, 0);
    if (errno != 0 || end == nullptr || *end != '\0' || m == 0 || m > 0xffffffffUL) {
      return usage_error("bad --mark '" + a.get("mark") + "'");
    }
    o.rules.mark = static_cast<unsigned>(m);
  }
  const std::string source = a.get("metadata-source", "static");
  std::shared_ptr<cni::KubeMetadataSource> kube;
  if (source == "kube") {
    if (a.has("metadata")) return usage_error("--metadata FILE is for --metadata-source static");
    const char* env_node = std::getenv("NODE_NAME");
    cni::KubeMetadataOptions ko;
    ko.node_name = a.get("node-name", env_node != nullptr ? env_node : "");
    if (ko.node_name.empty()) return usage_error("--metadata-source kube needs --node-name or NODE_NAME");
    auto cfg =
        a.has("kubeconfig") ? common::kube::load_kubeconfig(a.get("kubeconfig")) : common::kube::in_cluster_config();
    if (!cfg.ok()) {
      std::fprintf(stderr, "ambient-cni: %s\n", cfg.error().c_str());
      return 1;
    }
    ko.config = std::move(*cfg);
    ko.config.user_agent = "ambient-cni";
    auto started = cni::KubeMetadataSource::start(std::move(ko));
    if (!started.ok()) {
      std::fprintf(stderr, "ambient-cni: %s\n", started.error().c_str());
      return 1;
    }
    kube = *started;
    o.metadata = kube;
  } else if (source == "static") {
    if (a.has("kubeconfig") || a.has("node-name"))
      return usage_error("--kubeconfig/--node-name need --metadata-source kube");
    if (a.has("metadata")) o.metadata = std::make_shared<cni::StaticMetadataSource>(a.get("metadata"));
  } else {
    return usage_error("--metadata-source: '" + source + "' is not static or kube");
  }
  const bool install = a.has("cni-bin-dir") || a.has("cni-conf-dir");
  cni::CniInstallOptions inst;
  if (install) {
    if (a.get("cni-bin-dir").empty() || a.get("cni-conf-dir").empty()) {
      return usage_error("--cni-bin-dir and --cni-conf-dir go together");
    }
    inst.bin_dir = a.get("cni-bin-dir");
    inst.conf_dir = a.get("cni-conf-dir");
    inst.agent_socket = a.get("cni-agent-socket", o.ctl_socket);
    // The static plugin built beside us (see plugin_main.cc) runs on any host; ourselves only
    // where the host has our shared libraries.
    if (a.has("cni-plugin-binary")) {
      inst.plugin_binary = a.get("cni-plugin-binary");
    } else {
      char self[4096];
      const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
      if (n > 0) {
        std::string dir(self, static_cast<std::size_t>(n));
        dir = dir.substr(0, dir.rfind('/'));
        if (::access((dir + "/ambient-cni-plugin").c_str(), X_OK) == 0)
          inst.plugin_binary = dir + "/ambient-cni-plugin";
      }
    }
    const std::string ex = a.get("cni-exclude-namespaces");
    for (std::size_t pos = 0; pos < ex.size();) {
      std::size_t end = ex.find(',', pos);
      if (end == std::string::npos) end = ex.size();
      if (end > pos) inst.exclude_namespaces.push_back(ex.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  boost::asio::io_context io;
  cni::Agent agent(io, o);
  if (auto st = agent.start(); !st.ok()) {
    std::fprintf(stderr, "ambient-cni: %s\n", st.error().c_str());
    return 1;
  }
  // The plugin goes in only once the agent answers on its control socket.
  if (install) {
    auto path = cni::install_cni(inst);
    if (!path.ok()) {
      std::fprintf(stderr, "ambient-cni: installing the CNI plugin: %s\n", path.error().c_str());
      agent.stop();
      return 1;
    }
    std::fprintf(stderr, "ambient-cni: plugin installed in %s and chained into %s\n", inst.bin_dir.c_str(),
                 path->c_str());
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    agent.stop();
    io.stop();
  });
  io.run();
  if (kube) kube->stop();
  if (install && !a.has("cni-keep-on-exit")) {
    // Uninstall: without the agent the plugin would fail every pod on the node (fail closed).
    if (auto st = cni::uninstall_cni(inst); !st.ok()) {
      std::fprintf(stderr, "ambient-cni: removing the CNI plugin: %s\n", st.error().c_str());
      return 1;
    }
  }
  return 0;
}

// CNI plugin mode: one invocation by the container runtime.
int plugin_main() {
  return cni::run_plugin_invocation([](const std::string& ctl, const nlohmann::json& req, int fd) {
    return cni::ctl_call(ctl, req, fd, std::chrono::seconds(25));
  });
}

// Prints the agent's reply; returns the exit code.
int finish(const std::string& what, const common::Result<nlohmann::json>& r) {
  if (!r.ok()) {
    std::fprintf(stderr, "ambient-cni: %s failed: %s\n", what.c_str(), r.error().c_str());
    return 1;
  }
  if (!r->value("ok", false)) {
    std::fprintf(stderr, "ambient-cni: %s failed: %s\n", what.c_str(),
                 r->value("error", std::string("unknown error")).c_str());
    return 1;
  }
  return 0;
}

int add(const Args& a) {
  for (const char* k : {"netns", "uid", "name", "namespace", "service-account"}) {
    if (a.get(k).empty()) return usage_error(std::string("add: --") + k + " is required");
  }
  const std::string path = a.get("netns");
  zds::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    std::fprintf(stderr, "ambient-cni: add failed: cannot open netns %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  if (auto st = zds::check_netns_fd(fd.get()); !st.ok()) {
    std::fprintf(stderr, "ambient-cni: add failed: %s: %s\n", path.c_str(), st.error().c_str());
    return 1;
  }
  nlohmann::json req = {{"op", "add"},
                        {"uid", a.get("uid")},
                        {"name", a.get("name")},
                        {"namespace", a.get("namespace")},
                        {"service_account", a.get("service-account")},
                        {"netns", path}};
  const int rc = finish("add " + a.get("uid"), cni::ctl_call(ctl_path(a), req, fd.get()));
  if (rc == 0) {
    std::printf("added pod %s (%s/%s, sa %s) netns %s\n", a.get("uid").c_str(), a.get("namespace").c_str(),
                a.get("name").c_str(), a.get("service-account").c_str(), path.c_str());
  }
  return rc;
}

int remove(const Args& a) {
  if (a.get("uid").empty()) return usage_error("remove: --uid is required");
  const int rc =
      finish("remove " + a.get("uid"), cni::ctl_call(ctl_path(a), {{"op", "remove"}, {"uid", a.get("uid")}}));
  if (rc == 0) std::printf("removed pod %s\n", a.get("uid").c_str());
  return rc;
}

int list(const Args& a) {
  auto r = cni::ctl_call(ctl_path(a), {{"op", "list"}});
  if (const int rc = finish("list", r); rc != 0) return rc;
  if (a.has("json")) {
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  std::printf("%-38s %-20s %-16s %-20s %s\n", "UID", "NAME", "NAMESPACE", "SERVICE_ACCOUNT", "NETNS");
  for (const auto& p : (*r)["pods"]) {
    std::printf("%-38s %-20s %-16s %-20s %s\n", p.value("uid", "").c_str(), p.value("name", "").c_str(),
                p.value("namespace", "").c_str(), p.value("service_account", "").c_str(), p.value("netns", "").c_str());
  }
  std::fprintf(stderr, "%zu pods, %d ztunnel(s) connected\n", (*r)["pods"].size(), r->value("ztunnels", 0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("CNI_COMMAND") != nullptr) return plugin_main();
  if (argc >= 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "version") == 0)) {
    std::printf("ambient-cni %s\n", kVersion);
    return 0;
  }
  Args a = parse(argc, argv);
  if (a.cmd == "-h" || a.cmd == "--help" || a.cmd == "help" || a.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!a.error.empty()) return usage_error(a.error);
  if (a.cmd == "serve") return serve(a);
  if (a.cmd == "add") return add(a);
  if (a.cmd == "remove") return remove(a);
  if (a.cmd == "list") return list(a);
  return usage_error("unknown command '" + a.cmd + "'");
}
