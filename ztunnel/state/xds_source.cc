#include "ztunnel/state/xds_source.h"

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

#include "common/admin/log.h"
#include "common/xds/delta_ads_client.h"
#include "common/model/xds/xds_convert.h"

namespace ztunnel {

common::xds::Node make_xds_node(const Config& cfg) {
  common::xds::NodeInputs in;
  in.proxy_type = "ztunnel";
  in.instance_ip = cfg.instance_ip;
  in.pod_name = cfg.pod_name;
  in.pod_namespace = cfg.pod_namespace;
  in.node_name = cfg.node_name;
  in.istio_meta = cfg.istio_meta;
  in.istio_meta_json = cfg.istio_meta_json;
  return common::xds::build_node(in);
}

struct XdsSource::Impl {
  Impl(boost::asio::io_context& c, std::function<void(SnapshotConstSharedPtr)> snap_cb, std::function<void()> sync_cb)
      : control(c), on_snapshot(std::move(snap_cb)), on_synced(std::move(sync_cb)) {}

  class AddressHandler : public common::xds::TypeHandler {
   public:
    explicit AddressHandler(Impl& s) : s_(s) {}
    std::vector<common::xds::ResourceError> apply(const std::vector<common::xds::Resource>& updated,
                                                  const std::vector<std::string>& removed) override {
      std::vector<common::xds::ResourceError> errors;
      for (const auto& r : updated) {
        auto v = parse_address_resource(r.name, r.value);
        if (!v) {
          errors.push_back({std::string(r.name), v.error()});
          continue;
        }
        const std::string name(r.name);
        // A name could switch kind between versions; never keep both. Objects are stored
        // already canonical and shared with every snapshot built from them.
        if (auto* w = std::get_if<Workload>(&v.value())) {
          for (auto& ip : w->addresses) ip = canonical_ip(ip);
          s_.services.erase(name);
          auto ptr = std::make_shared<const Workload>(std::move(*w));
          WorkloadPtr& slot = s_.workloads[name];
          s_.note_change(name, slot, ptr);
          slot = std::move(ptr);
        } else {
          auto& svc = std::get<Service>(v.value());
          for (auto& vip : svc.vips) vip.ip = canonical_ip(vip.ip);
          s_.remove_workload(name);
          s_.services[name] = std::make_shared<const Service>(std::move(svc));
        }
      }
      for (const auto& n : removed) {
        s_.remove_workload(n);
        s_.services.erase(n);
      }
      s_.applied();
      if (s_.on_demand) s_.on_demand->answered(s_.last, removed);
      return errors;
    }

   private:
    Impl& s_;
  };

  class AuthorizationHandler : public common::xds::TypeHandler {
   public:
    explicit AuthorizationHandler(Impl& s) : s_(s) {}
    std::vector<common::xds::ResourceError> apply(const std::vector<common::xds::Resource>& updated,
                                                  const std::vector<std::string>& removed) override {
      std::vector<common::xds::ResourceError> errors;
      for (const auto& r : updated) {
        auto a = parse_authorization_resource(r.name, r.value);
        if (!a) {
          errors.push_back({std::string(r.name), a.error()});
          continue;
        }
        s_.policies[std::string(r.name)] = std::make_shared<const Authorization>(std::move(a.value()));
      }
      for (const auto& n : removed) s_.policies.erase(n);
      s_.applied();
      return errors;
    }

   private:
    Impl& s_;
  };

  // Client thread: after a handler applied a response.
  void applied() {
    n_workloads = workloads.size();
    n_services = services.size();
    n_policies = policies.size();
    if (synced) publish();
  }

  // Client thread: the first response of both types has been applied.
  void first_sync() {
    synced = true;
    publish();
    boost::asio::post(control, [cb = on_synced] {
      if (cb) cb();
    });
  }

  void remove_workload(const std::string& name) {
    auto it = workloads.find(name);
    if (it == workloads.end()) return;
    note_change(name, it->second, nullptr);
    workloads.erase(it);
  }

  // Remembers old -> new for the next incremental snapshot; repeated changes of one name
  // before a publish collapse to (first old, last new).
  void note_change(const std::string& name, const WorkloadPtr& old_w, const WorkloadPtr& new_w) {
    if (!last) return;  // the first snapshot is built from scratch anyway
    auto [it, inserted] = pending.try_emplace(name, old_w, new_w);
    if (!inserted) it->second.second = new_w;
  }

  // Pointer copies only: the new snapshot shares every unchanged object with the previous one,
  // and (after the first) its workload indexes too, updated for the names that changed.
  void publish() {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<WorkloadPtr> ws;
    ws.reserve(workloads.size());
    for (const auto& [name, w] : workloads) ws.push_back(w);
    std::vector<ServicePtr> ss;
    ss.reserve(services.size());
    for (const auto& [name, s] : services) ss.push_back(s);
    std::vector<AuthorizationPtr> ps;
    ps.reserve(policies.size());
    for (const auto& [name, p] : policies) ps.push_back(p);
    std::vector<std::pair<WorkloadPtr, WorkloadPtr>> changes;
    changes.reserve(pending.size());
    for (auto& [name, change] : pending) {
      if (change.first != change.second) changes.push_back(std::move(change));
    }
    pending.clear();
    // A large delta (the initial sync, a resync) is cheaper to index from scratch.
    const bool incremental = last && changes.size() < workloads.size() / 4;
    SnapshotConstSharedPtr snap =
        incremental ? Snapshot::update(*last, std::move(ws), std::move(ss), std::move(ps), changes, ++version)
                    : Snapshot::build_shared(std::move(ws), std::move(ss), std::move(ps), ++version,
                                             /*prepared=*/true);
    last = snap;
    common::log::logger("xds")->debug("xDS snapshot {}: {} workloads, {} services, {} policies, built in {:.1f} ms", version,
                  workloads.size(), services.size(), policies.size(),
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    boost::asio::post(control, [cb = on_snapshot, snap = std::move(snap)] {
      if (cb) cb(snap);
    });
  }

  boost::asio::io_context& control;
  std::function<void(SnapshotConstSharedPtr)> on_snapshot;
  std::function<void()> on_synced;

  // Client thread only.
  std::map<std::string, WorkloadPtr> workloads;  // by resource name (= uid)
  std::map<std::string, ServicePtr> services;    // by resource name (= namespace/hostname)
  std::map<std::string, AuthorizationPtr> policies;
  bool synced = false;
  uint64_t version = 0;
  // Workload changes since the last publish, by name: (old, new).
  std::map<std::string, std::pair<WorkloadPtr, WorkloadPtr>> pending;
  SnapshotConstSharedPtr last;  // the last published snapshot (the base of the next update)

  // For status() from other threads.
  std::atomic<size_t> n_workloads{0}, n_services{0}, n_policies{0};

  std::shared_ptr<OnDemand> on_demand;  // XDS_ON_DEMAND=true only
  // What a posted on-demand subscription may use: cleared by stop() (posted tasks can outlive us).
  struct Link {
    std::mutex mu;
    common::xds::DeltaAdsClient* client = nullptr;
  };
  std::shared_ptr<Link> link = std::make_shared<Link>();

  AddressHandler address_handler{*this};
  AuthorizationHandler authz_handler{*this};
  // Last member: destroyed (and therefore stopped) before the handlers and maps it uses.
  std::unique_ptr<common::xds::DeltaAdsClient> client;
};

XdsSource::XdsSource(const Config& cfg, common::metrics::Registry& registry, boost::asio::io_context& control,
                     std::function<void(SnapshotConstSharedPtr)> on_snapshot, std::function<void()> on_synced)
    : impl_(std::make_unique<Impl>(control, std::move(on_snapshot), std::move(on_synced))) {
  common::xds::DeltaAdsOptions opts;
  opts.endpoint.address = cfg.xds_address.value_or("");
  opts.endpoint.root_ca = cfg.xds_root_ca;
  opts.endpoint.alt_hostname = cfg.alt_xds_hostname;
  opts.endpoint.auth_token = cfg.auth_token;
  opts.endpoint.cluster_id = cfg.cluster_id;
  opts.endpoint.extra_headers = cfg.xds_headers;
  opts.endpoint.packet_mark = cfg.packet_mark;
  opts.node = make_xds_node(cfg);
  opts.types = {{std::string(kAddressTypeUrl), &impl_->address_handler},
                {std::string(kAuthorizationTypeUrl), &impl_->authz_handler}};
  opts.on_synced = [impl = impl_.get()] { impl->first_sync(); };
  if (cfg.xds_on_demand) {
    opts.on_demand_types = {std::string(kAddressTypeUrl)};
    // Workers never write to the stream themselves: the subscription is posted to the control
    // thread.
    impl_->on_demand = std::make_shared<OnDemand>([&control, link = impl_->link](const std::string& key) {
      boost::asio::post(control, [link, key] {
        std::lock_guard<std::mutex> l(link->mu);
        if (link->client) link->client->subscribe(std::string(kAddressTypeUrl), {key});
      });
    });
  }
  impl_->client = std::make_unique<common::xds::DeltaAdsClient>(std::move(opts), registry);
  impl_->link->client = impl_->client.get();
}

XdsSource::~XdsSource() { stop(); }

void XdsSource::start() { impl_->client->start(); }

void XdsSource::stop() {
  impl_->client->stop();
  std::lock_guard<std::mutex> l(impl_->link->mu);
  impl_->link->client = nullptr;
}

std::shared_ptr<OnDemand> XdsSource::on_demand() const {
  return impl_->on_demand;
}

nlohmann::json XdsSource::status() const {
  const common::xds::DeltaAdsStatus st = impl_->client->status();
  nlohmann::json j;
  j["address"] = st.address;
  j["connected"] = st.connected;
  j["synced"] = st.synced;
  j["connects"] = st.connects;
  j["responses"] = st.responses;
  j["resources"] = {{"workloads", impl_->n_workloads.load()},
                    {"services", impl_->n_services.load()},
                    {"policies", impl_->n_policies.load()}};
  nlohmann::json per_type = nlohmann::json::object();
  for (const auto& [type, n] : st.resources) per_type[type] = n;
  j["acceptedByType"] = std::move(per_type);
  j["lastNack"] = st.last_nack;
  j["lastDisconnect"] = st.last_disconnect;
  if (impl_->on_demand) {
    j["onDemand"] = {{"pending", impl_->on_demand->pending()}, {"absent", impl_->on_demand->absent()}};
  }
  return j;
}

}  // namespace ztunnel
