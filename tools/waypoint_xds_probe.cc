// waypoint-xds-probe: runs the waypoint's xDS config source (waypoint/config_source.h) on its
// own, for interop tests against independent xDS servers (tests/65-waypoint-xds). It is the
// waypoint binary's configuration half without a data path: what it prints is exactly what the
// waypoint would install.
//
// Environment (the waypoint's names): XDS_ADDRESS, XDS_ROOT_CA, AUTH_TOKEN, INSTANCE_IP,
// POD_NAME, POD_NAMESPACE, PROXY_TYPE (router = subscribe as an ingress gateway). Argument: seconds to run (default 30; SIGTERM/SIGINT end it early).
// Output, one line each, flushed:
//   NODE <node id>
//   SYNCED                                  (first response of every type applied)
//   SNAPSHOT <json>                         (every publication: routes with their route names
//                                            and clusters, clusters, endpoints, workload count)
//   NACK <text>                             (each new NACK the client sent)
//   STATUS <json>                           (at exit)
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <variant>

#include "common/admin/metrics.h"
#include "waypoint/config_source.h"
#include "common/state/snapshot.h"

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

nlohmann::json summarize(const waypoint::ConfigSnapshot& s) {
  nlohmann::json j;
  j["version"] = s.version;
  nlohmann::json routes = nlohmann::json::object();
  for (const auto& [name, rc] : s.routes) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& vh : rc->virtual_hosts) {
      for (const auto& r : vh.routes) {
        nlohmann::json e;
        e["name"] = r.name;
        if (const auto* a = std::get_if<waypoint::RouteAction>(&r.action)) {
          if (!a->cluster.empty()) e["cluster"] = a->cluster;
          for (const auto& w : a->weighted_clusters) e["weighted"][w.name] = w.weight;
          e["timeoutMs"] = a->timeout.count();
        } else if (std::holds_alternative<waypoint::RedirectAction>(r.action)) {
          e["redirect"] = true;
        } else {
          e["directResponse"] = std::get<waypoint::DirectResponseAction>(r.action).status;
        }
        if (r.filters.fault && r.filters.fault->abort) e["abort"] = r.filters.fault->abort->http_status;
        // Which per-filter configs apply (route or its virtual host): RequestAuthentication and
        // rate limits from the controlplane show up here.
        if (r.filters.jwt || vh.filters.jwt) e["jwt"] = true;
        if (r.filters.local_ratelimit || vh.filters.local_ratelimit) e["localRateLimit"] = true;
        list.push_back(std::move(e));
      }
    }
    routes[name] = std::move(list);
  }
  j["routes"] = std::move(routes);
  nlohmann::json clusters = nlohmann::json::array();
  for (const auto& [name, c] : s.clusters) clusters.push_back(name);
  j["clusters"] = std::move(clusters);
  nlohmann::json eps = nlohmann::json::object();
  for (const auto& [name, cla] : s.endpoints) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : cla->endpoints) list.push_back(e.address + ":" + std::to_string(e.port));
    eps[name] = std::move(list);
  }
  j["endpoints"] = std::move(eps);
  j["workloads"] = s.workloads ? s.workloads->workloads().size() : 0;
  j["services"] = s.workloads ? s.workloads->services().size() : 0;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 30;
  waypoint::XdsConfigOptions o;
  o.endpoint.address = env("XDS_ADDRESS");
  o.endpoint.root_ca = env("XDS_ROOT_CA");
  o.endpoint.auth_token = env("AUTH_TOKEN");
  o.instance_ip = env("INSTANCE_IP");
  o.pod_name = env("POD_NAME");
  o.pod_namespace = env("POD_NAMESPACE");
  if (!env("PROXY_TYPE").empty()) o.proxy_type = env("PROXY_TYPE");  // router: an ingress gateway's view
  if (o.endpoint.address.empty()) {
    std::cerr << "XDS_ADDRESS is required\n";
    return 2;
  }
  std::cout << "NODE " << waypoint::waypoint_node_id(o) << std::endl;

  boost::asio::io_context control;
  common::metrics::Registry registry;
  auto source = waypoint::make_xds_config_source(
      o, registry, control,
      [](waypoint::ConfigSnapshotPtr s) { std::cout << "SNAPSHOT " << summarize(*s).dump() << std::endl; },
      [] { std::cout << "SYNCED" << std::endl; });
  source->start();

  std::string last_nack;
  boost::asio::steady_timer tick(control);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::function<void()> poll = [&] {
    const auto st = source->status();
    const std::string nack = st.value("lastNack", "");
    if (!nack.empty() && nack != last_nack) std::cout << "NACK " << nack << std::endl;
    last_nack = nack;
    if (std::chrono::steady_clock::now() >= deadline) {
      control.stop();
      return;
    }
    tick.expires_after(std::chrono::milliseconds(50));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) poll();
    });
  };
  poll();
  boost::asio::signal_set signals(control, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int) { control.stop(); });
  control.run();
  std::cout << "STATUS " << source->status().dump() << std::endl;
  source->stop();
  return 0;
}
