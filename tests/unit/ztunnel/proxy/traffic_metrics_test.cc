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
};

struct Family {
  std::string type;
  std::set<std::string> labels;
};

// Upstream's table. (source/destination region and zone are optional upstream and not ours.)
const std::map<std::string, Family> kUpstream = {
    {"istio_tcp_connections_opened_total", {"counter", kIstioTcpLabels}},
    {"istio_tcp_connections_closed_total", {"counter", kIstioTcpLabels}},
    {"istio_tcp_connections_failed_total", {"counter", kIstioTcpLabels}},
    {"istio_tcp_received_bytes_total", {"counter", kIstioTcpLabels}},
    {"istio_tcp_sent_bytes_total", {"counter", kIstioTcpLabels}},
    {"istio_tcp_sockets_open", {"gauge", {"reporter"}}},
};

// Parses Prometheus text: family -> (TYPE, label names of its samples).
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
      auto& fam = out[m[1]];
      for (std::sregex_iterator it(labels.begin(), labels.end(), label_re), end; it != end; ++it) {
        fam.labels.insert((*it)[1]);
      }
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
  auto got = parse_exposition(reg.render());
  for (const auto& [name, want] : kUpstream) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got[name].type == want.type);
    CHECK(got[name].labels == want.labels);
  }
}
