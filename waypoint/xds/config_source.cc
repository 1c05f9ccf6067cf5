// make_xds_config_source(): see waypoint/config_source.h.
#include "waypoint/config_source.h"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <variant>

#include "common/admin/log.h"
#include "common/xds/delta_ads_client.h"
#include "waypoint/xds/convert.h"
#include "waypoint/xds/listener_convert.h"
#include "common/state/snapshot.h"
#include "common/model/xds/xds_convert.h"

namespace waypoint {
namespace {

common::xds::Node make_node(const XdsConfigOptions& o) {
  common::xds::NodeInputs in;
  in.proxy_type = o.proxy_type;
  in.instance_ip = o.instance_ip;
  in.pod_name = o.pod_name;
  in.pod_namespace = o.pod_namespace;
  in.node_name = o.node_name;
  in.istio_meta = o.istio_meta;
  in.istio_meta_json = o.istio_meta_json;
  return common::xds::build_node(in);
}

class XdsConfigSource final : public ConfigSource {
 public:
  XdsConfigSource(const XdsConfigOptions& o, common::metrics::Registry& registry, boost::asio::io_context& control,
                  std::function<void(ConfigSnapshotPtr)> on_snapshot, std::function<void()> on_synced)
      : control_(control), on_snapshot_(std::move(on_snapshot)), on_synced_(std::move(on_synced)) {
    common::xds::DeltaAdsOptions opts;
    opts.endpoint = o.endpoint;
    opts.node = make_node(o);
    node_id_ = opts.node.id;
    // Clusters before their endpoints and routes, as Envoy orders its subscriptions.
    opts.types = {{std::string(xds::kClusterTypeUrl), &clusters_},
                  {std::string(xds::kClusterLoadAssignmentTypeUrl), &endpoints_},
                  {std::string(xds::kRouteConfigurationTypeUrl), &routes_},
                  {std::string(ztunnel::kAddressTypeUrl), &addresses_}};
    // The ingress role's ports (docs/ingress.md); a waypoint has none to ask for.
    if (o.proxy_type == "router") opts.types.push_back({std::string(xds::kListenerTypeUrl), &listeners_});
    opts.on_synced = [this] { first_sync(); };
    client_ = std::make_unique<common::xds::DeltaAdsClient>(std::move(opts), registry);
  }
  ~XdsConfigSource() override { stop(); }

  void start() override { client_->start(); }
  void stop() override { client_->stop(); }

  nlohmann::json status() const override {
    const common::xds::DeltaAdsStatus st = client_->status();
    nlohmann::json j;
    j["address"] = st.address;
    j["nodeId"] = node_id_;
    j["connected"] = st.connected;
    j["synced"] = st.synced;
    j["connects"] = st.connects;
    j["responses"] = st.responses;
    j["resources"] = {{"routes", n_routes_.load()},
                      {"clusters", n_clusters_.load()},
                      {"endpoints", n_endpoints_.load()},
                      {"listeners", n_listeners_.load()},
                      {"workloads", n_workloads_.load()},
                      {"services", n_services_.load()}};
    j["lastNack"] = st.last_nack;
    j["lastDisconnect"] = st.last_disconnect;
    return j;
  }

 private:
  // One handler per Envoy type: parse + validate + convert each resource; a rejected name keeps
  // its previous value (the xDS client keeps its previous version too).
  template <typename T, common::Result<T> (*Parse)(std::string_view, std::string_view)>
  class EnvoyHandler final : public common::xds::TypeHandler {
   public:
    explicit EnvoyHandler(XdsConfigSource& s) : s_(s) {}
    std::vector<common::xds::ResourceError> apply(const std::vector<common::xds::Resource>& updated,
                                                  const std::vector<std::string>& removed) override {
      std::vector<common::xds::ResourceError> errors;
      for (const auto& r : updated) {
        auto v = Parse(r.name, r.value);
        if (!v) {
          errors.push_back({std::string(r.name), v.error()});
          continue;
        }
        items[std::string(r.name)] = std::make_shared<const T>(std::move(*v));
      }
      for (const auto& n : removed) items.erase(n);
      s_.applied();
      return errors;
    }
    std::map<std::string, std::shared_ptr<const T>, std::less<>> items;

   private:
    XdsConfigSource& s_;
  };

  class AddressHandler final : public common::xds::TypeHandler {
   public:
    explicit AddressHandler(XdsConfigSource& s) : s_(s) {}
    std::vector<common::xds::ResourceError> apply(const std::vector<common::xds::Resource>& updated,
                                                  const std::vector<std::string>& removed) override {
      std::vector<common::xds::ResourceError> errors;
      for (const auto& r : updated) {
        auto v = ztunnel::parse_address_resource(r.name, r.value);
        if (!v) {
          errors.push_back({std::string(r.name), v.error()});
          continue;
        }
        const std::string name(r.name);
        if (auto* w = std::get_if<ztunnel::Workload>(&v.value())) {
          for (auto& ip : w->addresses) ip = ztunnel::canonical_ip(ip);
          services.erase(name);
          workloads[name] = std::make_shared<const ztunnel::Workload>(std::move(*w));
        } else {
          auto& svc = std::get<ztunnel::Service>(v.value());
          for (auto& vip : svc.vips) vip.ip = ztunnel::canonical_ip(vip.ip);
          workloads.erase(name);
          services[name] = std::make_shared<const ztunnel::Service>(std::move(svc));
        }
      }
      for (const auto& n : removed) {
        workloads.erase(n);
        services.erase(n);
      }
      s_.applied();
      return errors;
    }
    std::map<std::string, ztunnel::WorkloadPtr> workloads;
    std::map<std::string, ztunnel::ServicePtr> services;

   private:
    XdsConfigSource& s_;
  };

  // xDS thread: after any handler applied a response.
  void applied() {
    n_routes_ = routes_.items.size();
    n_clusters_ = clusters_.items.size();
    n_endpoints_ = endpoints_.items.size();
    n_listeners_ = listeners_.items.size();
    n_workloads_ = addresses_.workloads.size();
    n_services_ = addresses_.services.size();
    if (synced_) publish();
  }

  void first_sync() {
    synced_ = true;
    publish();
    boost::asio::post(control_, [cb = on_synced_] {
      if (cb) cb();
    });
  }

  // Pointer copies: unchanged resources are shared with the previous snapshot.
  void publish() {
    auto snap = std::make_shared<ConfigSnapshot>();
    snap->version = ++version_;
    snap->routes = routes_.items;
    snap->clusters = clusters_.items;
    snap->endpoints = endpoints_.items;
    snap->listeners = listeners_.items;
    std::vector<ztunnel::WorkloadPtr> ws;
    ws.reserve(addresses_.workloads.size());
    for (const auto& [n, w] : addresses_.workloads) ws.push_back(w);
    std::vector<ztunnel::ServicePtr> ss;
    ss.reserve(addresses_.services.size());
    for (const auto& [n, s] : addresses_.services) ss.push_back(s);
    snap->workloads = ztunnel::Snapshot::build_shared(std::move(ws), std::move(ss), {}, version_, /*prepared=*/true);
    common::log::logger("xds")->debug("waypoint config {}: {} routes, {} clusters, {} endpoint sets", version_,
                                      snap->routes.size(), snap->clusters.size(), snap->endpoints.size());
    boost::asio::post(control_, [cb = on_snapshot_, s = ConfigSnapshotPtr(std::move(snap))] {
      if (cb) cb(s);
    });
  }

  boost::asio::io_context& control_;
  std::function<void(ConfigSnapshotPtr)> on_snapshot_;
  std::function<void()> on_synced_;
  std::string node_id_;

  // xDS thread only.
  EnvoyHandler<RouteConfig, &xds::parse_route_configuration> routes_{*this};
  EnvoyHandler<Cluster, &xds::parse_cluster> clusters_{*this};
  EnvoyHandler<ClusterLoadAssignment, &xds::parse_load_assignment> endpoints_{*this};
  EnvoyHandler<GatewayListener, &xds::parse_listener> listeners_{*this};
  AddressHandler addresses_{*this};
  bool synced_ = false;
  uint64_t version_ = 0;

  std::atomic<size_t> n_routes_{0}, n_clusters_{0}, n_endpoints_{0}, n_listeners_{0}, n_workloads_{0}, n_services_{0};
  // Last member: destroyed (and so stopped) before the handlers it calls.
  std::unique_ptr<common::xds::DeltaAdsClient> client_;
};

}  // namespace

std::string waypoint_node_id(const XdsConfigOptions& options) {
  return make_node(options).id;
}

std::unique_ptr<ConfigSource> make_xds_config_source(const XdsConfigOptions& options,
                                                     common::metrics::Registry& registry,
                                                     boost::asio::io_context& control,
                                                     std::function<void(ConfigSnapshotPtr)> on_snapshot,
                                                     std::function<void()> on_synced) {
  return std::make_unique<XdsConfigSource>(options, registry, control, std::move(on_snapshot), std::move(on_synced));
}

}  // namespace waypoint
