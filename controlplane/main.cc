// controlplane: a small control plane for single-host meshes.
//
//   controlplane compile --dir DIR [--out FILE] [--watch] [--cluster-domain cluster.local]
//                        [--cluster-id Kubernetes] [--trust-domain cluster.local]
//                        [--root-namespace istio-system] [--network NAME] [--quiet]
//   controlplane serve --dir DIR --tokens FILE [--listen 127.0.0.1:15012] [--cacerts DIR]
//                      [--trusted-node-accounts istio-system/ztunnel[,...]]
//                      [--max-cert-ttl 2160h] [--out FILE] [compile options]
//
// Compiles the Kubernetes-style YAML in DIR into upstream ztunnel's LOCAL_XDS_PATH format and
// writes it to FILE (atomically) or stdout. With --watch it polls DIR every 500 ms and rewrites
// FILE whenever the compiled result changes: a file-based control plane until the xDS server
// exists. Findings about the input go to stderr; invalid objects are reported and left out,
// and the command still succeeds (exit 0). Exit 1: DIR unreadable or FILE not writable;
// exit 2: bad usage.
//
// `serve` runs the delta ADS server and the Istio CA over TLS on one port (serve.h), watching
// DIR; SIGTERM/SIGINT shut it down cleanly (exit 0).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/admin/build_info.h"
#include "controlplane/compiler.h"
#include "controlplane/dir_watch.h"
#include "common/model/local_config_writer.h"
#include "controlplane/atomic_file.h"
#include "controlplane/kube/kube_serve.h"
#include "controlplane/serve.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

struct Args {
  bool serve = false;
  std::string dir;
  std::string out;
  bool watch = false;
  bool quiet = false;
  controlplane::CompileOptions options;
  // serve only
  controlplane::ServeOptions serve_options;
  controlplane::kube::KubeServeOptions kube;
};

// "2160h", "90m", "3600s", "1h30m"; a bare number is seconds.
bool parse_duration(std::string_view text, std::chrono::seconds& out) {
  if (text.empty()) return false;
  long long total = 0;
  size_t i = 0;
  while (i < text.size()) {
    long long n = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i++] - '0');
      if (++digits > 9) return false;
    }
    if (digits == 0) return false;
    long long unit = 1;
    if (i < text.size()) {
      switch (text[i++]) {
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        default: return false;
      }
    } else if (total != 0) {
      return false;  // "1h30": unit missing
    }
    total += n * unit;
  }
  out = std::chrono::seconds(total);
  return true;
}

void usage(FILE* f) {
  std::fputs(
      "usage: controlplane compile --dir DIR [--out FILE] [--watch] [compile options]\n"
      "       controlplane serve (--dir DIR | --kube | --kubeconfig PATH) --tokens FILE [--listen 127.0.0.1:15012]\n"
      "                          [--cacerts DIR] [--trusted-node-accounts istio-system/ztunnel[,..]]\n"
      "                          [--max-cert-ttl 2160h] [--out FILE] [--jwks-ca FILE] [--jwks-refresh 20m]\n"
      "                          [compile options]\n"
      "compile options: [--cluster-domain cluster.local] [--cluster-id Kubernetes]\n"
      "                 [--trust-domain cluster.local] [--root-namespace istio-system]\n"
      "                 [--network NAME] [--quiet]\n"
      "\n"
      "Compiles the Kubernetes-style YAML files in DIR (Namespace, Pod, WorkloadEntry, Service,\n"
      "ServiceAccount, waypoint Gateway, AuthorizationPolicy) into ztunnel's LOCAL_XDS_PATH\n"
      "format, written atomically to FILE (default: stdout). --watch (needs --out) recompiles\n"
      "whenever DIR changes (polled every 500 ms). Findings go to stderr; --quiet hides the\n"
      "informational ones.\n"
      "\n"
      "serve: delta ADS server (istio.workload.Address, istio.security.Authorization) and Istio\n"
      "CA on one TLS port, authenticated by the bearer tokens of FILE. The CA lives in --cacerts\n"
      "(default ./cacerts, created when absent); clients verify the server with its\n"
      "root-cert.pem. DIR is polled every 200 ms; changes are pushed as deltas. --out also\n"
      "writes the LOCAL_XDS_PATH file on every change. RequestAuthentication jwksUri http(s)://\n"
      "(and OpenID discovery from the issuer) are fetched in the background, refreshed every\n"
      "--jwks-refresh, https verified with the system roots plus --jwks-ca.\n"
      "\n"
      "serve --kube (in-cluster service account) or --kubeconfig PATH: list+watch the Kubernetes API\n"
      "instead of DIR, and deploy a waypoint for every Gateway of class istio-waypoint:\n"
      "  [--waypoint-image IMAGE] [--waypoint-xds-address HOST:PORT] [--no-waypoint-deployments]\n"
      "  [--leader-elect [--lease-namespace NS] [--lease-identity ID]]\n"
      "  [--kube-list-page-size N]: objects per list page (default 500, 0 = unpaged)\n"
      "  [--token-review [--token-audience istio-ca]]: callers' bearer tokens not in --tokens are\n"
      "  checked with a Kubernetes TokenReview (then --tokens is optional)\n",
      f);
}

// Returns 0 when parsed, else the exit code to use.
int parse_args(int argc, char** argv, Args& a) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string_view cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return -1;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("controlplane %s (%s)\n", common::build_info().version.c_str(),
                common::build_info().git_revision.c_str());
    return -1;
  }
  a.serve = cmd == "serve";
  if (cmd != "compile" && !a.serve) {
    std::fprintf(stderr, "controlplane: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "controlplane: %s needs a value\n", argv[i]);
        return false;
      }
      out = argv[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--dir") {
      ok = value(a.dir);
    } else if (arg == "--out") {
      ok = value(a.out);
    } else if (arg == "--cluster-domain") {
      ok = value(a.options.cluster_domain);
    } else if (arg == "--cluster-id") {
      ok = value(a.options.cluster_id);
    } else if (arg == "--trust-domain") {
      ok = value(a.options.trust_domain);
    } else if (arg == "--root-namespace") {
      ok = value(a.options.root_namespace);
    } else if (arg == "--network") {
      ok = value(a.options.network);
    } else if (a.serve && arg == "--listen") {
      ok = value(a.serve_options.listen);
    } else if (a.serve && arg == "--cacerts") {
      ok = value(a.serve_options.cacerts);
    } else if (a.serve && arg == "--tokens") {
      ok = value(a.serve_options.tokens);
    } else if (a.serve && arg == "--trusted-node-accounts") {
      std::string list;
      ok = value(list);
      a.serve_options.trusted_node_accounts.clear();
      size_t start = 0;
      while (ok && start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) a.serve_options.trusted_node_accounts.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (a.serve && arg == "--max-cert-ttl") {
      std::string v;
      ok = value(v) && parse_duration(v, a.serve_options.max_cert_ttl) && a.serve_options.max_cert_ttl.count() > 0;
      if (!ok) std::fprintf(stderr, "controlplane: --max-cert-ttl: bad duration '%s' (e.g. 2160h)\n", v.c_str());
    } else if (a.serve && arg == "--jwks-ca") {
      ok = value(a.serve_options.jwks_ca_file);
    } else if (a.serve && arg == "--jwks-refresh") {
      std::string v;
      std::chrono::seconds d{0};
      ok = value(v) && parse_duration(v, d) && d.count() > 0;
      if (!ok) std::fprintf(stderr, "controlplane: --jwks-refresh: bad duration '%s' (e.g. 20m)\n", v.c_str());
      a.serve_options.jwks_refresh = d;
    } else if (a.serve && arg == "--kube") {
      a.kube.in_cluster = true;
    } else if (a.serve && arg == "--kubeconfig") {
      ok = value(a.kube.kubeconfig);
    } else if (a.serve && arg == "--no-waypoint-deployments") {
      a.kube.deploy_waypoints = false;
    } else if (a.serve && arg == "--waypoint-image") {
      ok = value(a.kube.waypoints.image);
    } else if (a.serve && arg == "--waypoint-xds-address") {
      ok = value(a.kube.waypoints.xds_address);
    } else if (a.serve && arg == "--kube-list-page-size") {
      std::string v;
      ok = value(v);
      if (ok) {
        char* end = nullptr;
        unsigned long n = std::strtoul(v.c_str(), &end, 10);
        ok = !v.empty() && *end == '\0' && n <= 100000;
        if (!ok) std::fprintf(stderr, "controlplane: --kube-list-page-size wants a number of objects (0..100000)\n");
        a.kube.list_page_size = n;
      }
    } else if (a.serve && arg == "--token-review") {
      a.kube.token_review = true;
    } else if (a.serve && arg == "--token-audience") {
      std::string v;
      ok = value(v);
      a.kube.token_audiences = {v};
    } else if (a.serve && arg == "--leader-elect") {
      a.kube.waypoints.leader_elect = true;
    } else if (a.serve && arg == "--lease-namespace") {
      ok = value(a.kube.waypoints.lease_namespace);
    } else if (a.serve && arg == "--lease-identity") {
      ok = value(a.kube.waypoints.identity);
    } else if (!a.serve && arg == "--watch") {
      a.watch = true;
    } else if (arg == "--quiet") {
      a.quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return -1;
    } else {
      std::fprintf(stderr, "controlplane: unknown option '%s'\n", argv[i]);
      ok = false;
    }
    if (!ok) {
      usage(stderr);
      return 2;
    }
  }
  const bool kube = a.kube.in_cluster || !a.kube.kubeconfig.empty();
  if (a.dir.empty() && !kube) {
    std::fputs(a.serve ? "controlplane: --dir, --kube or --kubeconfig is required\n" : "controlplane: --dir is required\n",
               stderr);
    return 2;
  }
  if (!a.dir.empty() && kube) {
    std::fputs("controlplane: --dir and --kube/--kubeconfig are exclusive\n", stderr);
    return 2;
  }
  if (a.serve && a.serve_options.tokens.empty() && !a.kube.token_review) {
    std::fputs("controlplane: serve needs --tokens FILE or --token-review (no anonymous access)\n", stderr);
    return 2;
  }
  if (a.kube.token_review && !kube) {
    std::fputs("controlplane: --token-review needs --kube or --kubeconfig\n", stderr);
    return 2;
  }
  if (a.watch && a.out.empty()) {
    std::fputs("controlplane: --watch needs --out FILE\n", stderr);
    return 2;
  }
  if (a.options.network.find('/') != std::string::npos) {
    std::fputs("controlplane: --network must not contain '/'\n", stderr);
    return 2;
  }
  for (const std::string* v :
       {&a.options.cluster_domain, &a.options.cluster_id, &a.options.trust_domain, &a.options.root_namespace}) {
    if (v->empty()) {
      std::fputs("controlplane: option values must not be empty\n", stderr);
      return 2;
    }
  }
  return 0;
}

// One compile-and-publish. `last` holds the bytes last written, so an unchanged result is not
// rewritten (a watching ztunnel would otherwise reload for nothing). Returns false on a fatal
// error (directory unreadable, output not writable).
bool compile_once(const Args& a, std::string& last) {
  const std::vector<std::string> exclude = a.out.empty() ? std::vector<std::string>{} : std::vector<std::string>{a.out};
  auto state = controlplane::compile_directory(a.dir, a.options, exclude);
  if (!state) {
    std::fprintf(stderr, "controlplane: %s\n", state.error().c_str());
    return false;
  }
  for (const auto& d : state->diagnostics) {
    if (a.quiet && d.severity == controlplane::Severity::Info) continue;
    std::fprintf(stderr, "%s\n", d.to_string().c_str());
  }
  const auto& cfg = state->config;
  const std::string yaml = ztunnel::to_local_xds_yaml(
      cfg, "Generated by `controlplane compile --dir " + a.dir +
               "`; do not edit.\nFormat: ztunnel LOCAL_XDS_PATH (workloads, services, policies).");
  const size_t errors = controlplane::count(state->diagnostics, controlplane::Severity::Error);
  const size_t warnings = controlplane::count(state->diagnostics, controlplane::Severity::Warning);
  std::string where = a.out.empty() ? "stdout" : a.out;
  if (a.out.empty()) {
    std::fwrite(yaml.data(), 1, yaml.size(), stdout);
    std::fflush(stdout);
  } else if (yaml != last) {
    auto st = controlplane::write_file_atomically(a.out, yaml);
    if (!st) {
      std::fprintf(stderr, "controlplane: %s\n", st.error().c_str());
      return false;
    }
  } else {
    where += " (unchanged)";
  }
  last = yaml;
  std::fprintf(stderr,
               "controlplane: compiled %zu workloads, %zu services, %zu policies from %s "
               "(%zu errors, %zu warnings) -> %s\n",
               cfg.workloads.size(), cfg.services.size(), cfg.policies.size(), a.dir.c_str(), errors, warnings,
               where.c_str());
  return true;
}

int watch(const Args& a) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const std::vector<std::string> exclude{a.out};
  std::string last;
  controlplane::DirFingerprint prev;
  bool have_prev = false;
  std::string last_error;
  while (!g_stop.load()) {
    auto fp = controlplane::fingerprint(a.dir, exclude);
    if (!fp) {
      // The directory may be recreated (e.g. a demo replacing it); keep polling, say it once.
      if (fp.error() != last_error) std::fprintf(stderr, "controlplane: %s\n", fp.error().c_str());
      last_error = fp.error();
      have_prev = false;
    } else if (!have_prev || *fp != prev) {
      last_error.clear();
      prev = std::move(*fp);
      have_prev = true;
      if (!compile_once(a, last)) {
        // Output not writable: retry on the next change rather than exit, but make sure the
        // next poll tries again even without a change.
        have_prev = false;
      }
    }
    for (int i = 0; i < 5 && !g_stop.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::fputs("controlplane: stopped\n", stderr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const int rc = parse_args(argc, argv, a);
  if (rc == -1) return 0;
  if (rc != 0) return rc;
  if (a.serve) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    controlplane::ServeOptions so = a.serve_options;
    so.dir = a.dir;
    so.out = a.out;
    so.quiet = a.quiet;
    so.compile = a.options;
    if (a.kube.in_cluster || !a.kube.kubeconfig.empty()) return controlplane::kube::run_serve_kube(so, a.kube, g_stop);
    return controlplane::run_serve(so, g_stop);
  }
  if (a.watch) return watch(a);
  std::string last;
  return compile_once(a, last) ? 0 : 1;
}
