// ztunnel/traffic_metrics: the exposition a scrape sees, compared family by family with a
// table of upstream ztunnel's TCP metrics (src/proxy/metrics.rs; facts §7.1): name, type and
// label set. Dashboards and Kiali query these by name and label.
#include "ztunnel/proxy/traffic_metrics.h"

#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/admin/metrics.h"
#include "ztunnel/proxy/connection_result.h"

using namespace ztunnel;

namespace {

const std::set<std::string> kIstioTcpLabels = {
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_service",
    "destination_service_namespace",
    "destination_service_name",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "source_region",
    "source_zone",
    "destination_region",
    "destination_zone",
};

const std::set<std::string> kOnDemandDnsLabels = {
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "hostname",
};

const std::set<std::string> kLocalityLabels = {"source_region", "source_zone", "destination_region",
                                               "destination_zone"};

std::set<std::string> without(std::set<std::string> s, const std::set<std::string>& drop) {
  for (const auto& d : drop) s.erase(d);
  return s;
}

struct Family {
  std::string type;
  std::set<std::set<std::string>> label_sets;  // every label set its samples carry
};

// Upstream's table. The locality labels are an optional set upstream: present once a workload
// (or the peer's identity) is known, absent otherwise; the test below records both kinds.
const std::map<std::string, Family> kUpstream = {
    {"istio_tcp_connections_opened_total", {"counter", {kIstioTcpLabels, without(kIstioTcpLabels, kLocalityLabels)}}},
    {"istio_tcp_connections_closed_total", {"counter", {kIstioTcpLabels, without(kIstioTcpLabels, kLocalityLabels)}}},
    {"istio_tcp_connections_failed_total", {"counter", {kIstioTcpLabels, without(kIstioTcpLabels, kLocalityLabels)}}},
    {"istio_tcp_received_bytes_total", {"counter", {kIstioTcpLabels, without(kIstioTcpLabels, kLocalityLabels)}}},
    {"istio_tcp_sent_bytes_total", {"counter", {kIstioTcpLabels, without(kIstioTcpLabels, kLocalityLabels)}}},
    {"istio_tcp_sockets_open", {"gauge", {{"reporter"}}}},
    {"istio_on_demand_dns_total", {"counter", {kOnDemandDnsLabels}}},
};

// Parses Prometheus text: family -> (TYPE, label sets of its samples).
std::map<std::string, Family> parse_exposition(const std::string& text) {
  std::map<std::string, Family> out;
  std::istringstream in(text);
  const std::regex type_re(R"(^# TYPE (\S+) (\S+)$)");
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} \S+$)");
  const std::regex label_re(R"(([a-zA-Z_][a-zA-Z0-9_]*)=\"(?:[^\"\\]|\\.)*\")");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, type_re)) {
      out[m[1]].type = m[2];
      continue;
    }
    if (std::regex_match(line, m, sample_re)) {
      std::string labels = m[2];
      std::set<std::string> names;
      for (std::sregex_iterator it(labels.begin(), labels.end(), label_re), end; it != end; ++it) {
        names.insert((*it)[1]);
      }
      out[m[1]].label_sets.insert(std::move(names));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("TCP metric names, types and label sets match upstream's table", "[traffic_metrics]") {
  common::metrics::Registry reg;
  TrafficMetrics metrics(reg);
  ConnectionParties p;
  p.reporter = "destination";
  {
    ConnectionResult ok(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    ok.established();
    ok.record(std::nullopt, 5, 6);
  }
  {
    ConnectionResult denied(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    denied.record(ProxyError{ProxyErrorKind::PolicyDenied, "no"});
  }
  // The same with the destination workload known: the locality labels appear.
  Workload dst;
  dst.uid = "dst";
  p.dst = &dst;
  {
    ConnectionResult ok(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    ok.established();
    ok.record(std::nullopt, 5, 6);
  }
  {
    ConnectionResult denied(metrics, p, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    denied.record(ProxyError{ProxyErrorKind::PolicyDenied, "no"});
  }
  metrics.on_demand_dns(nullptr, "api.example.com");
  auto got = parse_exposition(reg.render());
  for (const auto& [name, want] : kUpstream) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got[name].type == want.type);
    CHECK(got[name].label_sets == want.label_sets);
  }
}

TEST_CASE("region and zone labels come from each workload's locality; unknown when missing", "[traffic_metrics]") {
  common::metrics::Registry reg;
  TrafficMetrics metrics(reg);
  Workload src;
  src.uid = "src";
  src.name = "client";
  src.ns = "default";
  src.locality = {"us-east1", "us-east1-b", "rack1"};
  Workload dst;
  dst.uid = "dst";
  dst.name = "server";
  dst.ns = "default";
  dst.locality = {"eu-west4", "", ""};  // a region without a zone
  ConnectionParties p;
  p.reporter = "source";
  p.src = &src;
  p.dst = &dst;
  {
    ConnectionResult c(metrics, p, "outbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    c.established();
    c.record(std::nullopt, 1, 2);
  }
  const std::string text = reg.render();
  std::istringstream in(text);
  std::string opened;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("istio_tcp_connections_opened_total{", 0) == 0) opened = line;
  }
  INFO(text);
  REQUIRE(!opened.empty());
  CHECK_THAT(opened, Catch::Contains("source_region=\"us-east1\""));
  CHECK_THAT(opened, Catch::Contains("source_zone=\"us-east1-b\""));
  CHECK_THAT(opened, Catch::Contains("destination_region=\"eu-west4\""));
  CHECK_THAT(opened, Catch::Contains("destination_zone=\"unknown\""));
  CHECK_THAT(opened, !Catch::Contains("rack1"));  // subzone is not a label upstream

  // Only the peer's identity known (inbound from an unknown workload): present, "unknown".
  ConnectionParties peer;
  peer.reporter = "destination";
  peer.src_identity = common::Identity("cluster.local", "default", "client");
  auto labels = istio_tcp_labels(peer, ResponseFlag::None);
  REQUIRE(labels.size() == kIstioTcpLabels.size());
  for (size_t i = labels.size() - 4; i < labels.size(); ++i) CHECK(labels[i] == "unknown");

  // Nothing known on either side: upstream leaves the four labels out of the sample.
  ConnectionParties none;
  none.reporter = "destination";
  labels = istio_tcp_labels(none, ResponseFlag::None);
  REQUIRE(labels.size() == kIstioTcpLabels.size());
  for (size_t i = labels.size() - 4; i < labels.size(); ++i) CHECK(labels[i].empty());
  {
    ConnectionResult c(metrics, none, "inbound", "1.1.1.1:1", "2.2.2.2:2", "", std::chrono::steady_clock::now());
    c.established();
    c.record(std::nullopt, 1, 2);
  }
  std::istringstream again(reg.render());
  int with = 0, without_locality = 0;
  for (std::string line; std::getline(again, line);) {
    if (line.rfind("istio_tcp_connections_opened_total{", 0) != 0) continue;
    (line.find("region") != std::string::npos ? with : without_locality)++;
    CHECK(line.find("=\"\"") == std::string::npos);  // omitted, not rendered empty
  }
  CHECK(with == 1);
  CHECK(without_locality == 1);
}

TEST_CASE("istio_on_demand_dns_total: the source workload's labels and the hostname", "[traffic_metrics]") {
  common::metrics::Registry reg;
  TrafficMetrics metrics(reg);
  Workload src;
  src.uid = "src";
  src.name = "client-7d9f";
  src.workload_name = "client";
  src.ns = "apps";
  src.service_account = "client-sa";
  src.trust_domain = "cluster.local";
  src.canonical_name = "client";
  src.canonical_revision = "v2";
  src.cluster_id = "Kubernetes";
  metrics.on_demand_dns(&src, "api.example.com");
  metrics.on_demand_dns(&src, "api.example.com");
  const std::string text = reg.render();
  INFO(text);
  CHECK_THAT(text,
             Catch::Contains("istio_on_demand_dns_total{source_workload=\"client\",source_canonical_service=\"client\","
                             "source_canonical_revision=\"v2\",source_workload_namespace=\"apps\","
                             "source_principal=\"spiffe://cluster.local/ns/apps/sa/client-sa\",source_app=\"client\","
                             "source_version=\"v2\",source_cluster=\"Kubernetes\",hostname=\"api.example.com\"} 2"));
}
