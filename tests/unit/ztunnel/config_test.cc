// ztunnel/config.h: upstream names and defaults, validation, errors naming the variable.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "ztunnel/config.h"

using ztunnel::Config;
using ztunnel::load_config;
using ztunnel::ProxyMode;
using namespace std::chrono_literals;

namespace {

common::env::EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view n) -> std::optional<std::string> {
    auto it = vars.find(std::string(n));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Config must_load(std::map<std::string, std::string> vars, size_t cores = 8) {
  auto r = load_config(fake(std::move(vars)), cores);
  INFO((r.ok() ? std::string("ok") : r.error()));
  REQUIRE(r.ok());
  return r.value();
}

std::string load_error(std::map<std::string, std::string> vars) {
  auto r = load_config(fake(std::move(vars)), 8);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

}  // namespace

TEST_CASE("defaults match upstream", "[config]") {
  Config c = must_load({});
  CHECK(c.proxy_mode == ProxyMode::Shared);
  CHECK_FALSE(c.workload_info);
  CHECK(c.xds_address.value() == "https://localhost:15012");
  CHECK(c.ca_address.value() == "https://localhost:15012");
  CHECK(c.secret_ttl == 24h);
  CHECK(c.trust_domain == "cluster.local");
  CHECK(c.cluster_id == "Kubernetes");
  CHECK(c.cluster_domain == "cluster.local");
  CHECK(c.network.empty());
  CHECK(c.worker_threads == 2);
  CHECK(c.termination_deadline == 5s);
  CHECK(c.pool_max_streams_per_connection == 100);
  CHECK(c.pool_unused_release_timeout == 5min);
  CHECK(c.http2_stream_window_size == 4u * 1024 * 1024);
  CHECK(c.http2_connection_window_size == 16u * 1024 * 1024);
  CHECK(c.http2_frame_size == 1024u * 1024);
  CHECK(c.packet_mark == 1337);
  CHECK(c.inpod_uds == "/var/run/ztunnel/ztunnel.sock");
  CHECK(c.inpod_port_reuse);
  CHECK_FALSE(c.enable_orig_src.has_value());
  CHECK(c.ipv6_enabled);
  CHECK(c.keepalive_enabled);
  CHECK(c.keepalive_time == 180s);
  CHECK(c.keepalive_interval == 180s);
  CHECK(c.keepalive_retries == 9);
  CHECK(c.enable_response_baggage);
  CHECK_FALSE(c.authz_policy_info_logging);
  CHECK(c.log_format == common::log::Format::Plain);
  CHECK(c.log_level == "info");
  CHECK(c.admin_addr == "localhost:15000");
  CHECK(c.stats_addr == "[::]:15020");
  CHECK(c.readiness_addr == "[::]:15021");
  CHECK(ztunnel::kOutboundPort == 15001);
  CHECK(ztunnel::kInboundPlaintextPort == 15006);
  CHECK(ztunnel::kInboundHbonePort == 15008);
  CHECK(ztunnel::kDnsPort == 15053);
}

TEST_CASE("explicit values are read", "[config]") {
  Config c = must_load({{"PROXY_MODE", "dedicated"},
                        {"PROXY_WORKLOAD_INFO", "ns1/pod-a/sa1"},
                        {"XDS_ADDRESS", "istiod.example:15012"},
                        {"CA_ADDRESS", "https://ca.example:15012"},
                        {"LOCAL_CA_DIR", "/etc/cacerts"},
                        {"SECRET_TTL", "1h30m"},
                        {"TRUST_DOMAIN", "td.example"},
                        {"ISTIO_META_CLUSTER_ID", "c2"},
                        {"NETWORK", "net1"},
                        {"NODE_NAME", "node-1"},
                        {"POD_NAME", "zt-1"},
                        {"POD_NAMESPACE", "istio-system"},
                        {"INSTANCE_IP", "10.0.0.9"},
                        {"ZTUNNEL_WORKER_THREADS", "50%"},
                        {"CONNECTION_TERMINATION_DEADLINE", "30s"},
                        {"POOL_MAX_STREAMS_PER_CONNECTION", "250"},
                        {"POOL_UNUSED_RELEASE_TIMEOUT", "10s"},
                        {"HTTP2_STREAM_WINDOW_SIZE", "65535"},
                        {"HTTP2_FRAME_SIZE", "16384"},
                        {"PACKET_MARK", "7"},
                        {"INPOD_PORT_REUSE", "false"},
                        {"ENABLE_ORIG_SRC", "true"},
                        {"KEEPALIVE_TIME", "60s"},
                        {"KEEPALIVE_RETRIES", "3"},
                        {"ENABLE_RESPONSE_BAGGAGE", "0"},
                        {"LOG_FORMAT", "json"},
                        {"RUST_LOG", "access=off,debug"},
                        {"AUTHZ_POLICY_INFO_LOGGING", "true"},
                        {"ADMIN_ADDR", "[::1]:25000"},
                        {"STATS_ADDR", "127.0.0.1:0"}});
  CHECK(c.proxy_mode == ProxyMode::Dedicated);
  REQUIRE(c.workload_info);
  CHECK(c.workload_info->ns == "ns1");
  CHECK(c.workload_info->name == "pod-a");
  CHECK(c.workload_info->service_account == "sa1");
  CHECK(c.xds_address.value() == "https://istiod.example:15012");  // scheme added
  CHECK(c.ca_address.value() == "https://ca.example:15012");
  CHECK(c.local_ca_dir.value() == "/etc/cacerts");
  CHECK(c.secret_ttl == 90min);
  CHECK(c.trust_domain == "td.example");
  CHECK(c.cluster_id == "c2");
  CHECK(c.network == "net1");
  CHECK(c.node_name == "node-1");
  CHECK(c.instance_ip == "10.0.0.9");
  CHECK(c.worker_threads == 4);
  CHECK(c.termination_deadline == 30s);
  CHECK(c.pool_max_streams_per_connection == 250);
  CHECK(c.pool_unused_release_timeout == 10s);
  CHECK(c.http2_stream_window_size == 65535);
  CHECK(c.http2_frame_size == 16384);
  CHECK(c.packet_mark == 7);
  CHECK_FALSE(c.inpod_port_reuse);
  CHECK(c.enable_orig_src.value());
  CHECK(c.keepalive_time == 60s);
  CHECK(c.keepalive_retries == 3);
  CHECK_FALSE(c.enable_response_baggage);
  CHECK(c.log_format == common::log::Format::Json);
  CHECK(c.log_level == "access=off,debug");
  CHECK(c.authz_policy_info_logging);
  CHECK(c.admin_addr == "[::1]:25000");
  CHECK(c.stats_addr == "127.0.0.1:0");
}

TEST_CASE("packet mark default per mode as upstream: 1337 shared, none dedicated; PACKET_MARK wins", "[config]") {
  CHECK(must_load({{"PROXY_MODE", "shared"}}).packet_mark == 1337);
  Config d = must_load({{"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "a/b/c"}});
  CHECK(d.packet_mark == 0);
  CHECK(d.to_json()["packetMark"].is_null());  // upstream's None
  CHECK(
      must_load({{"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "a/b/c"}, {"PACKET_MARK", "1337"}}).packet_mark ==
      1337);
  CHECK(must_load({{"PROXY_MODE", "shared"}, {"PACKET_MARK", "0"}}).packet_mark == 0);
}

TEST_CASE("xDS and CA address rules", "[config]") {
  CHECK(must_load({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}).xds_address.value() ==
        "https://istiod.istio-system.svc:15012");
  CHECK_FALSE(must_load({{"XDS_ADDRESS", ""}}).xds_address.has_value());
  CHECK_FALSE(must_load({{"CA_ADDRESS", ""}}).ca_address.has_value());
  CHECK_FALSE(must_load({{"FAKE_CA", "true"}}).ca_address.has_value());
  CHECK(must_load({{"CLUSTER_ID", "a"}, {"ISTIO_META_CLUSTER_ID", "b"}}).cluster_id == "b");
  CHECK(must_load({{"CLUSTER_ID", "a"}}).cluster_id == "a");
  CHECK(must_load({{"FAKE_CA", "true"}}).fake_ca);
  CHECK(must_load({{"ISTIO_META_DNS_CAPTURE", "True"}}).dns_proxy);
  CHECK_FALSE(must_load({{"ISTIO_META_DNS_CAPTURE", "yes"}}).dns_proxy);
  CHECK_FALSE(must_load({{"ISTIO_META_DNS_CAPTURE", "false"}}).dns_proxy);
}

TEST_CASE("termination deadline from the grace period", "[config]") {
  CHECK(must_load({{"TERMINATION_GRACE_PERIOD_SECONDS", "30"}}).termination_deadline == 25s);
  CHECK(must_load({{"TERMINATION_GRACE_PERIOD_SECONDS", "10"}}).termination_deadline == 9s);
  CHECK(must_load({{"TERMINATION_GRACE_PERIOD_SECONDS", "1"}}).termination_deadline == 1s);
  CHECK(must_load({{"TERMINATION_GRACE_PERIOD_SECONDS", "0"}}).termination_deadline == 1s);
  // The explicit deadline wins.
  CHECK(must_load({{"TERMINATION_GRACE_PERIOD_SECONDS", "30"}, {"CONNECTION_TERMINATION_DEADLINE", "2s"}})
            .termination_deadline == 2s);
  CHECK(ztunnel::deadline_from_grace_period(11) == 6s);
}

TEST_CASE("worker threads use the core count and ZTUNNEL_CPU_LIMIT", "[config]") {
  CHECK(must_load({}, 16).worker_threads == 4);
  CHECK(must_load({{"ZTUNNEL_WORKER_THREADS", "0"}}, 6).worker_threads == 6);
  CHECK(must_load({{"ZTUNNEL_CPU_LIMIT", "40"}}, 6).worker_threads == 10);
  CHECK_THAT(load_error({{"ZTUNNEL_CPU_LIMIT", "x"}}), Catch::Contains("ZTUNNEL_CPU_LIMIT"));
}

TEST_CASE("validation errors name the variable", "[config]") {
  struct Case {
    std::map<std::string, std::string> vars;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{{"PROXY_MODE", "sidecar"}}, "PROXY_MODE"},
      {{{"PROXY_MODE", "dedicated"}}, "PROXY_WORKLOAD_INFO"},
      {{{"PROXY_WORKLOAD_INFO", "ns/name"}}, "PROXY_WORKLOAD_INFO"},
      {{{"PROXY_WORKLOAD_INFO", "ns//sa"}}, "PROXY_WORKLOAD_INFO"},
      {{{"LOCAL_XDS_PATH", "/a.yaml"}, {"LOCAL_XDS", "workloads: []"}}, "mutually exclusive"},
      {{{"SECRET_TTL", "forever"}}, "SECRET_TTL"},
      {{{"SECRET_TTL", "0s"}}, "SECRET_TTL"},
      {{{"ZTUNNEL_WORKER_THREADS", "many"}}, "ZTUNNEL_WORKER_THREADS"},
      {{{"CONNECTION_TERMINATION_DEADLINE", "soon"}}, "CONNECTION_TERMINATION_DEADLINE"},
      {{{"TERMINATION_GRACE_PERIOD_SECONDS", "-1"}}, "TERMINATION_GRACE_PERIOD_SECONDS"},
      {{{"POOL_MAX_STREAMS_PER_CONNECTION", "0"}}, "POOL_MAX_STREAMS_PER_CONNECTION"},
      {{{"POOL_UNUSED_RELEASE_TIMEOUT", "5 minutes"}}, "POOL_UNUSED_RELEASE_TIMEOUT"},
      {{{"HTTP2_STREAM_WINDOW_SIZE", "4294967296"}}, "HTTP2_STREAM_WINDOW_SIZE"},
      {{{"HTTP2_CONNECTION_WINDOW_SIZE", "big"}}, "HTTP2_CONNECTION_WINDOW_SIZE"},
      {{{"HTTP2_FRAME_SIZE", "100"}}, "HTTP2_FRAME_SIZE"},
      {{{"PACKET_MARK", "0x539"}}, "PACKET_MARK"},
      {{{"INPOD_PORT_REUSE", "yes"}}, "INPOD_PORT_REUSE"},
      {{{"ENABLE_ORIG_SRC", "auto"}}, "ENABLE_ORIG_SRC"},
      {{{"IPV6_ENABLED", "no"}}, "IPV6_ENABLED"},
      {{{"KEEPALIVE_ENABLED", "on"}}, "KEEPALIVE_ENABLED"},
      {{{"KEEPALIVE_TIME", "1y"}}, "KEEPALIVE_TIME"},
      {{{"KEEPALIVE_RETRIES", "-3"}}, "KEEPALIVE_RETRIES"},
      {{{"ENABLE_RESPONSE_BAGGAGE", "nope"}}, "ENABLE_RESPONSE_BAGGAGE"},
      {{{"LOG_FORMAT", "xml"}}, "LOG_FORMAT"},
      {{{"RUST_LOG", "chatty"}}, "RUST_LOG"},
      {{{"AUTHZ_POLICY_INFO_LOGGING", "2"}}, "AUTHZ_POLICY_INFO_LOGGING"},
      {{{"FAKE_CA", "sure"}}, "FAKE_CA"},
      {{{"ADMIN_ADDR", "0.0.0.0:15000"}}, "ADMIN_ADDR"},
      {{{"ADMIN_ADDR", "10.1.2.3:15000"}}, "ADMIN_ADDR"},
      {{{"ADMIN_ADDR", "localhost"}}, "ADMIN_ADDR"},
      {{{"STATS_ADDR", "nowhere"}}, "STATS_ADDR"},
      {{{"READINESS_ADDR", "[::]:99999"}}, "READINESS_ADDR"},
  };
  for (const auto& c : cases) {
    auto err = load_error(c.vars);
    INFO(err);
    CHECK_THAT(err, Catch::Contains(c.needle));
  }
}

TEST_CASE("IPV6_ENABLED=false binds stats and readiness on IPv4", "[config]") {
  Config c = must_load({{"IPV6_ENABLED", "false"}});
  CHECK(c.stats_addr == "0.0.0.0:15020");
  CHECK(c.readiness_addr == "0.0.0.0:15021");
}

TEST_CASE("to_json gives the config_dump section without inline secrets", "[config]") {
  Config c = must_load({{"LOCAL_XDS", "workloads: []"},
                        {"XDS_ROOT_CA", "-----BEGIN CERTIFICATE-----\nabc"},
                        {"PROXY_MODE", "dedicated"},
                        {"PROXY_WORKLOAD_INFO", "ns/n/sa"}});
  nlohmann::json j = c.to_json();
  CHECK(j["proxyMode"] == "Dedicated");
  CHECK(j["proxyWorkloadInformation"]["serviceAccount"] == "sa");
  CHECK(j["localXdsConfig"]["Static"] == "<inline LOCAL_XDS>");
  CHECK(j["xdsRootCert"]["Static"] == "<inline PEM>");
  CHECK(j["selfTerminationDeadline"] == nlohmann::json{{"secs", 5}, {"nanos", 0}});
  CHECK(j["secretTtl"]["secs"] == 86400);
  CHECK(j["packetMark"].is_null());  // dedicated mode: no mark by default, as upstream
  CHECK(j["numWorkerThreads"] == 2);
  CHECK(j["adminAddr"] == "localhost:15000");
  CHECK(j["socketConfig"]["keepaliveRetries"] == 9);
  CHECK(j.dump().find("workloads: []") == std::string::npos);
}

namespace {
// A mesh config file in a fresh temporary directory (removed with the object).
struct MeshFile {
  std::string dir, path;
  explicit MeshFile(const std::string& text) {
    char tmpl[] = "/tmp/zt-mesh.XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/mesh";
    std::ofstream(path) << text;
  }
  ~MeshFile() {
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
  }
};
}  // namespace

TEST_CASE("ProxyConfig: mesh file defaultConfig, PROXY_CONFIG over it, env over both", "[config]") {
  MeshFile mesh(R"(
defaultConfig:
  discoveryAddress: istiod-canary.istio-system.svc:15012
  proxyAdminPort: 15100
  statsPort: 15120
  concurrency: 3
  drainDuration: 45s
  proxyMetadata:
    DNS_CAPTURE: "false"
    CLUSTER_ID: from-mesh
    FOO: mesh
trustDomain: cluster.local
)");
  auto load = [&](std::map<std::string, std::string> vars) {
    auto r = load_config(fake(std::move(vars)), 8, mesh.path);
    INFO((r.ok() ? std::string("ok") : r.error()));
    REQUIRE(r.ok());
    return r.value();
  };
  Config c = load({});
  CHECK(c.xds_address.value() == "https://istiod-canary.istio-system.svc:15012");
  CHECK(c.ca_address.value() == "https://localhost:15012");  // discoveryAddress is xDS only
  CHECK(c.admin_addr == "localhost:15100");
  CHECK(c.stats_addr == "[::]:15120");
  CHECK(c.worker_threads == 3);
  CHECK_FALSE(c.dns_proxy);
  CHECK(c.cluster_id == "from-mesh");

  // PROXY_CONFIG (JSON is YAML) replaces fields and merges metadata key by key.
  c = load({{"PROXY_CONFIG", R"({"concurrency": 5, "proxyMetadata": {"FOO": "env-pc", "DNS_CAPTURE": "true"}})"}});
  CHECK(c.worker_threads == 5);
  CHECK(c.dns_proxy);
  CHECK(c.proxy_config_metadata.at("FOO") == "env-pc");
  CHECK(c.proxy_config_metadata.at("CLUSTER_ID") == "from-mesh");
  CHECK(c.admin_addr == "localhost:15100");

  // Environment variables win over any ProxyConfig.
  c = load({{"XDS_ADDRESS", "https://other:15012"},
            {"ZTUNNEL_WORKER_THREADS", "1"},
            {"ISTIO_META_CLUSTER_ID", "from-env"},
            {"ISTIO_META_DNS_CAPTURE", "TRUE"}});
  CHECK(c.xds_address.value() == "https://other:15012");
  CHECK(c.worker_threads == 1);
  CHECK(c.cluster_id == "from-env");
  CHECK(c.dns_proxy);

  // Node metadata sent over xDS: proxyMetadata entries plus ISTIO_META_ variables, env winning.
  ztunnel::apply_env_families(c, {{"ISTIO_META_FOO", "env"}, {"ISTIO_META_BAR", "b"}});
  std::map<std::string, std::string> sent(c.istio_meta.begin(), c.istio_meta.end());
  CHECK(sent.at("FOO") == "env");
  CHECK(sent.at("BAR") == "b");
  CHECK(sent.at("CLUSTER_ID") == "from-mesh");
}

TEST_CASE("ProxyConfig errors name the source and field", "[config]") {
  MeshFile bad("defaultConfig:\n  proxyAdminPort: seventy\n");
  auto r = load_config(fake({}), 8, bad.path);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains(bad.path) && Catch::Contains("defaultConfig.proxyAdminPort"));
  MeshFile broken("defaultConfig: [unclosed\n");
  r = load_config(fake({}), 8, broken.path);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("not valid YAML"));
  CHECK_THAT(load_error({{"PROXY_CONFIG", "statsPort: 70000"}}),
             Catch::Contains("PROXY_CONFIG") && Catch::Contains("statsPort"));
  CHECK_THAT(load_error({{"PROXY_CONFIG", "proxyMetadata: [a]"}}), Catch::Contains("proxyMetadata"));
  // A missing file is normal: no ConfigMap mounted.
  CHECK(load_config(fake({}), 8, "/nonexistent/mesh").ok());
}

TEST_CASE("worker threads: concurrency, then CPU limit, then max(25%, request, 2)", "[config]") {
  CHECK(must_load({{"ZTUNNEL_RESOURCE_CPU_LIMIT", "3"}}, 16).worker_threads == 3);
  CHECK(must_load({{"ZTUNNEL_RESOURCE_CPU_REQUEST", "6"}}, 16).worker_threads == 6);
  CHECK(must_load({{"ZTUNNEL_RESOURCE_CPU_REQUEST", "1"}}, 16).worker_threads == 4);
  CHECK(must_load({{"ZTUNNEL_RESOURCE_CPU_REQUEST", "1"}}, 2).worker_threads == 2);
  CHECK(must_load({{"PROXY_CONFIG", "concurrency: 7"}, {"ZTUNNEL_RESOURCE_CPU_LIMIT", "3"}}, 16).worker_threads == 7);
  CHECK(must_load({{"PROXY_CONFIG", "concurrency: 0"}, {"ZTUNNEL_RESOURCE_CPU_LIMIT", "3"}}, 16).worker_threads == 3);
  CHECK_THAT(load_error({{"ZTUNNEL_RESOURCE_CPU_LIMIT", "500m"}}), Catch::Contains("ZTUNNEL_RESOURCE_CPU_LIMIT"));
}

TEST_CASE("DNS proxy address, preferred namespace, on-demand xDS", "[config]") {
  CHECK(must_load({}).dns_proxy_addr == "localhost:15053");
  CHECK(must_load({{"ISTIO_META_DNS_PROXY_ADDR", "127.0.0.1:15054"}}).dns_proxy_addr == "127.0.0.1:15054");
  CHECK(must_load({{"PROXY_CONFIG", "proxyMetadata: {DNS_PROXY_ADDR: '[::1]:53'}"}}).dns_proxy_addr == "[::1]:53");
  CHECK_THAT(load_error({{"ISTIO_META_DNS_PROXY_ADDR", "nope"}}), Catch::Contains("ISTIO_META_DNS_PROXY_ADDR"));
  CHECK(must_load({{"PREFERED_SERVICE_NAMESPACE", "shared"}}).prefered_service_namespace == "shared");
  CHECK_THAT(load_error({{"XDS_ON_DEMAND", "true"}}), Catch::Contains("DNS proxy"));
  CHECK(must_load({{"XDS_ON_DEMAND", "true"}, {"ISTIO_META_DNS_CAPTURE", "false"}}).xds_on_demand);
  CHECK(must_load({{"XDS_ON_DEMAND", "false"}}).to_json()["xdsOnDemand"] == false);
}
