// controlplane/incremental_compiler: the per-namespace recompile after an edit must give
// exactly what a full compile of the directory gives. Random edit sequences over a small mesh
// that has every cross-namespace feature (waypoints in another namespace, root-namespace
// policies, namespace labels, duplicates across files, named ports, WorkloadEntries).
#include <random>
#include <set>

#include "common/model/xds/xds_resources.h"
#include "controlplane/cached_loader.h"
#include "controlplane/incremental_compiler.h"
#include "fixture.h"

using namespace cptest;

namespace {

struct Gen {
  std::mt19937 rng;
  explicit Gen(uint32_t seed) : rng(seed) {}
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool coin(int percent) { return pick(100) < percent; }
  std::string ns() {
    static const char* kNs[] = {"ns-a", "ns-b", "ns-c", "wp", "istio-system"};
    return kNs[pick(coin(10) ? 5 : 4)];
  }

  std::string pod() {
    const std::string n = ns();
    std::string labels = "    app: a" + std::to_string(pick(3)) + "\n    version: v" + std::to_string(pick(3)) + "\n";
    if (coin(10)) labels += "    istio.io/dataplane-mode: none\n";
    if (coin(25)) {
      labels += "    istio.io/use-waypoint: wp" + std::to_string(pick(2)) + "\n";
      if (coin(60)) labels += "    istio.io/use-waypoint-namespace: wp\n";
    }
    if (coin(n == "wp" ? 50 : 5))
      labels += "    gateway.networking.k8s.io/gateway-name: wp" + std::to_string(pick(2)) + "\n";
    std::string ip = coin(90) ? "10.1." + std::to_string(pick(4)) + "." + std::to_string(1 + pick(12)) : "";
    return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p" + std::to_string(pick(8)) + "\n  namespace: " + n +
           "\n  labels:\n" + labels + "spec:\n  serviceAccountName: sa" + std::to_string(pick(2)) +
           "\n  nodeName: node-" + std::to_string(pick(2)) +
           "\n  containers:\n  - name: c\n    ports:\n    - name: web\n      containerPort: " +
           std::to_string(8000 + pick(3)) + "\nstatus:\n  phase: Running\n" +
           (ip.empty() ? "" : "  podIP: " + ip + "\n");
  }
  std::string workload_entry() {
    return "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: we" + std::to_string(pick(3)) +
           "\n  namespace: " + ns() + "\nspec:\n  address: 10.2.0." + std::to_string(1 + pick(5)) +
           "\n  labels:\n    app: a" + std::to_string(pick(3)) + "\n  ports:\n    web: 9000\n";
  }
  std::string service() {
    std::string target = coin(30) ? "web" : std::to_string(8080 + pick(2));
    std::string extra = coin(15) ? "  labels:\n    istio.io/use-waypoint: wp" + std::to_string(pick(2)) + "\n" : "";
    return "apiVersion: v1\nkind: Service\nmetadata:\n  name: s" + std::to_string(pick(5)) + "\n  namespace: " + ns() +
           "\n" + extra + "spec:\n  clusterIP: 172.20.0." + std::to_string(1 + pick(8)) + "\n  selector:\n    app: a" +
           std::to_string(pick(3)) + "\n  ports:\n  - name: http\n    port: " + std::to_string(80 + pick(3)) +
           "\n    targetPort: " + target + "\n";
  }
  std::string policy() {
    std::string sel = coin(70) ? "  selector:\n    matchLabels:\n      app: a" + std::to_string(pick(3)) + "\n" : "";
    return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: pol" +
           std::to_string(pick(4)) + "\n  namespace: " + (coin(30) ? std::string("istio-system") : ns()) + "\nspec:\n" +
           sel + "  action: " + (coin(50) ? "ALLOW" : "DENY") +
           "\n  rules:\n  - to:\n    - operation:\n        ports: [\"" + std::to_string(80 + pick(3)) + "\"]\n";
  }
  std::string namespace_obj() {
    static const char* kNs[] = {"ns-a", "ns-b", "ns-c", "wp"};
    std::string labels = coin(70) ? "    istio.io/dataplane-mode: ambient\n" : "";
    if (coin(30)) labels += "    istio.io/use-waypoint: wp" + std::to_string(pick(2)) + "\n";
    if (coin(30)) labels += "    istio.io/use-waypoint-namespace: wp\n";
    return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + std::string(kNs[pick(4)]) +
           (labels.empty() ? "\n" : "\n  labels:\n" + labels);
  }
  std::string gateway() {
    return "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: wp" + std::to_string(pick(2)) +
           "\n  namespace: wp\n  labels:\n    istio.io/waypoint-for: " + (coin(50) ? "all" : "service") +
           "\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n  - name: mesh\n    port: 15008\n"
           "    protocol: HBONE\n";
  }
  std::string object() {
    const int k = pick(100);
    if (k < 35) return pod();
    if (k < 50) return service();
    if (k < 65) return policy();
    if (k < 75) return workload_entry();
    if (k < 90) return namespace_obj();
    return gateway();
  }
};

void write(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  fs::rename(tmp, p);  // a new inode: the fingerprint sees every rewrite
}

// Names whose resource differs between the two maps (for a readable failure).
std::vector<std::string> differing(const ztunnel::XdsResourceMap& a, const ztunnel::XdsResourceMap& b) {
  std::vector<std::string> out;
  for (const auto& [name, r] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second != r) out.push_back(name);
  }
  for (const auto& [name, r] : b) {
    if (!a.count(name)) out.push_back(name);
  }
  return out;
}

std::set<std::string> lines(const Diagnostics& d) {
  std::set<std::string> out;
  // Duplicate addresses across namespaces are found only by a full compile (documented).
  for (const auto& x : d) {
    if (x.message.find("is also used by") == std::string::npos) out.insert(x.to_string());
  }
  return out;
}

}  // namespace

TEST_CASE("incremental compile equals a full compile after every random edit", "[controlplane]") {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    TempDir dir;
    Gen g(seed);
    CompileOptions opt;
    // Start: a few files of several objects each.
    for (int f = 0; f < 6; ++f) {
      std::string text;
      for (int i = 0; i < 6; ++i) text += (i ? "---\n" : "") + g.object();
      write(fs::path(dir.path()) / ("base-" + std::to_string(f) + ".yaml"), text);
    }
    write(fs::path(dir.path()) / "ns.yaml",
          "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-a\n  labels:\n    istio.io/dataplane-mode: ambient\n"
          "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-b\n  labels:\n"
          "    istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: wp0\n    istio.io/use-waypoint-namespace: "
          "wp\n");
    CachedLoader loader;
    IncrementalCompiler inc(opt);
    size_t incremental_steps = 0;
    for (int step = 0; step < 60; ++step) {
      if (step > 0) {
        const fs::path p =
            fs::path(dir.path()) / ((g.coin(30) ? "base-" : "edit-") + std::to_string(g.pick(6)) + ".yaml");
        if (g.coin(20)) {
          fs::remove(p);
        } else {
          std::string text;
          const int n = 1 + g.pick(3);
          for (int i = 0; i < n; ++i) text += (i ? "---\n" : "") + g.object();
          write(p, text);
        }
      }
      auto fp = fingerprint(dir.path());
      REQUIRE(fp.ok());
      const auto change = loader.refresh(*fp, opt.root_namespace);
      const auto update = inc.update(loader, change);
      incremental_steps += !update.full;

      Diagnostics ref_diags;
      auto ref_objects = load_directory(dir.path(), ref_diags);
      REQUIRE(ref_objects.ok());
      CompiledState ref = compile(*ref_objects, opt);
      ref_diags.insert(ref_diags.end(), ref.diagnostics.begin(), ref.diagnostics.end());

      INFO("seed " << seed << " step " << step << (update.full ? " (full)" : " (incremental)"));
      const ztunnel::LocalConfig got = inc.merged();
      CHECK(got.workloads == ref.config.workloads);
      const auto want_res = ztunnel::to_xds_resources(ref.config);
      const auto got_res = ztunnel::to_xds_resources(got);
      CHECK(differing(got_res.addresses, want_res.addresses) == std::vector<std::string>{});
      CHECK(differing(got_res.authorizations, want_res.authorizations) == std::vector<std::string>{});
      Diagnostics got_diags;
      loader.file_diagnostics(got_diags);
      const Diagnostics part = inc.diagnostics();
      got_diags.insert(got_diags.end(), part.begin(), part.end());
      CHECK(lines(got_diags) == lines(ref_diags));
    }
    // The sequence must actually exercise the incremental path, not only the fallback.
    CHECK(incremental_steps > 20);
  }
}

TEST_CASE("incremental compile: an edit in one namespace recompiles only that namespace", "[controlplane]") {
  TempDir dir;
  write(fs::path(dir.path()) / "a.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    istio.io/dataplane-mode: ambient\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n  labels:\n    app: x\nstatus:\n"
        "  podIP: 10.0.0.1\n");
  write(fs::path(dir.path()) / "b.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: q\n  namespace: b\n  labels:\n    app: x\nstatus:\n"
        "  podIP: 10.0.0.2\n");
  CachedLoader loader;
  IncrementalCompiler inc(CompileOptions{});
  auto fp = fingerprint(dir.path());
  REQUIRE(fp.ok());
  CHECK(inc.update(loader, loader.refresh(*fp, "istio-system")).full);
  const auto a_before = inc.partitions().at("a");

  write(fs::path(dir.path()) / "b.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: b\nspec:\n  clusterIP: 172.20.0.1\n"
        "  selector:\n    app: x\n  ports:\n  - port: 80\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: q\n  namespace: b\n  labels:\n    app: x\nstatus:\n"
        "  podIP: 10.0.0.2\n");
  fp = fingerprint(dir.path());
  REQUIRE(fp.ok());
  const auto u = inc.update(loader, loader.refresh(*fp, "istio-system"));
  CHECK_FALSE(u.full);
  CHECK(u.touched == std::vector<std::string>{"b"});
  CHECK(inc.partitions().at("a") == a_before);  // the same object: not recompiled
  const auto* q = workload(inc.partitions().at("b")->config, "b", "q");
  REQUIRE(q);
  CHECK(q->services.count("b/s.b.svc.cluster.local") == 1);

  // A Gateway is context (waypoints are used across namespaces): everything is recompiled.
  write(fs::path(dir.path()) / "gw.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: wp\n  namespace: b\nspec:\n"
        "  gatewayClassName: istio-waypoint\n  listeners:\n  - name: mesh\n    port: 15008\n    protocol: HBONE\n");
  fp = fingerprint(dir.path());
  REQUIRE(fp.ok());
  CHECK(inc.update(loader, loader.refresh(*fp, "istio-system")).full);

  // Removing a namespace's last file removes its partition.
  fs::remove(fs::path(dir.path()) / "a.yaml");
  fp = fingerprint(dir.path());
  REQUIRE(fp.ok());
  const auto gone = inc.update(loader, loader.refresh(*fp, "istio-system"));
  CHECK_FALSE(gone.full);
  CHECK(inc.partitions().count("a") == 0);
}
