// controlplane/resource_versions: xDS resource names and versions, deltas between two compiles.
#include "controlplane/resource_versions.h"

#include "fixture.h"

using namespace cptest;

TEST_CASE("resource versions: stable across recompiles, deltas name exactly what changed", "[controlplane]") {
  TempDir dir;
  for (const auto& e : fs::directory_iterator(examples_k8s())) {
    fs::copy_file(e.path(), fs::path(dir.path()) / e.path().filename());
  }
  auto compile_versions = [&] {
    auto state = compile_directory(dir.path(), CompileOptions{});
    REQUIRE(state.ok());
    return resource_versions(state->config);
  };
  const auto v0 = compile_versions();
  CHECK(v0.addresses.size() == 4);  // 3 workloads + 1 service
  CHECK(v0.addresses.count("Kubernetes//Pod/demo/web-1") == 1);
  CHECK(v0.addresses.count("demo/web.demo.svc.cluster.local") == 1);
  CHECK(v0.authorizations.count("demo/deny-client") == 1);
  CHECK(v0.addresses.at("Kubernetes//Pod/demo/web-1").size() == 16);

  const auto same = compile_versions();
  CHECK(diff(v0.addresses, same.addresses).empty());
  CHECK(diff(v0.authorizations, same.authorizations).empty());

  // web-2 changes IP; the policy file goes away.
  std::ifstream in(dir.file("pods.yaml"));
  std::stringstream buf;
  buf << in.rdbuf();
  std::string pods = buf.str();
  const auto at = pods.find("10.99.1.12");
  REQUIRE(at != std::string::npos);
  pods.replace(at, 10, "10.99.1.42");
  dir.write("pods.yaml", pods);
  fs::remove(dir.file("authz-deny-client.yaml"));

  const auto v1 = compile_versions();
  const auto addr = diff(v0.addresses, v1.addresses);
  CHECK(addr.updated == std::vector<std::string>{"Kubernetes//Pod/demo/web-2"});
  CHECK(addr.removed.empty());
  const auto authz = diff(v0.authorizations, v1.authorizations);
  CHECK(authz.updated.empty());
  CHECK(authz.removed == std::vector<std::string>{"demo/deny-client"});
}
