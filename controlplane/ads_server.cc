#include "controlplane/ads_server.h"
#include "controlplane/waypoint_compiler.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "common/admin/log.h"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"
#include "istio/workload/workload.pb.h"
#include <google/protobuf/any.pb.h>

namespace controlplane {

namespace ds = envoy::service::discovery::v3;

std::shared_ptr<const ServedState> ServedState::from(XdsResources resources, std::string version) {
  auto s = std::make_shared<ServedState>();
  s->version = std::move(version);
  s->types.emplace(std::string(kAddressTypeUrl),
                   std::make_shared<const XdsResourceMap>(std::move(resources.addresses)));
  s->types.emplace(std::string(kAuthorizationTypeUrl),
                   std::make_shared<const XdsResourceMap>(std::move(resources.authorizations)));
  return s;
}

namespace {

std::shared_ptr<spdlog::logger> ads_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("ads");
  return lg;
}

using Entry = std::pair<const std::string, XdsResource>;

// The maps a type is served from (ServedState::types plus its shards).
std::vector<const XdsResourceMap*> maps_of(const ServedState& st, std::string_view type_url) {
  std::vector<const XdsResourceMap*> out;
  if (auto it = st.types.find(type_url); it != st.types.end() && it->second) out.push_back(it->second.get());
  if (auto it = st.shards.find(type_url); it != st.shards.end()) {
    for (const auto& m : it->second) {
      if (m && !m->empty()) out.push_back(m.get());
    }
  }
  return out;
}

const XdsResource* find_in(const std::vector<const XdsResourceMap*>& maps, std::string_view name) {
  for (const auto* m : maps) {
    if (auto it = m->find(name); it != m->end()) return &it->second;
  }
  return nullptr;
}

// Every entry of `maps`, sorted by name (one map is already sorted; shards are merged).
std::vector<const Entry*> sorted_entries(const std::vector<const XdsResourceMap*>& maps) {
  std::vector<const Entry*> out;
  size_t n = 0;
  for (const auto* m : maps) n += m->size();
  out.reserve(n);
  for (const auto* m : maps) {
    for (const auto& kv : *m) out.push_back(&kv);
  }
  if (maps.size() > 1) {
    std::sort(out.begin(), out.end(), [](const Entry* a, const Entry* b) { return a->first < b->first; });
  }
  return out;
}

// "type.googleapis.com/istio.workload.Address" -> "istio.workload.Address" for log lines.
std::string short_type(std::string_view type_url) {
  const auto slash = type_url.rfind('/');
  return std::string(slash == std::string_view::npos ? type_url : type_url.substr(slash + 1));
}

// "network/ip" alias key (XDS_ON_DEMAND lookups, ztunnel-facts §4.1) in canonical form, or
// nullopt when `name` is not one. A workload uid or a service key never ends in an IP.
std::optional<std::string> alias_key(std::string_view name) {
  const auto slash = name.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string ip(name.substr(slash + 1));
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, ip.c_str(), buf) == 1) {
    ::inet_ntop(AF_INET, buf, text, sizeof text);
  } else if (::inet_pton(AF_INET6, ip.c_str(), buf) == 1) {
    ::inet_ntop(AF_INET6, buf, text, sizeof text);
  } else {
    return std::nullopt;
  }
  return std::string(name.substr(0, slash)) + "/" + text;
}

std::optional<std::string> alias_of_bytes(const std::string& network, const std::string& bytes) {
  char text[INET6_ADDRSTRLEN];
  if (bytes.size() == 4) {
    ::inet_ntop(AF_INET, bytes.data(), text, sizeof text);
  } else if (bytes.size() == 16) {
    ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  } else {
    return std::nullopt;
  }
  return network + "/" + text;
}

// Alias key -> names of the Address resources that own that address (workloads by their
// addresses, services by their VIPs), built from one state's Address resources. A VIP also
// brings the service's endpoint workloads (those whose `services` name it): a client that
// demanded a VIP must be able to pick a backend without another round trip.
using AliasIndex = std::map<std::string, std::vector<std::string>, std::less<>>;

std::shared_ptr<const AliasIndex> build_alias_index(const ServedState& state) {
  auto idx = std::make_shared<AliasIndex>();
  std::map<std::string, std::vector<std::string>, std::less<>> endpoints;  // service key -> workloads
  std::vector<std::pair<std::string, std::string>> vips;                   // (alias, service name)
  google::protobuf::Any any;
  istio::workload::Address addr;
  for (const auto* m : maps_of(state, kAddressTypeUrl)) {
    for (const auto& [name, res] : *m) {
      if (!any.ParseFromString(res.any) || !addr.ParseFromString(any.value())) continue;
      if (addr.has_workload()) {
        for (const auto& b : addr.workload().addresses()) {
          if (auto k = alias_of_bytes(addr.workload().network(), b)) (*idx)[*k].push_back(name);
        }
        for (const auto& [svc, ports] : addr.workload().services()) endpoints[svc].push_back(name);
      } else if (addr.has_service()) {
        for (const auto& na : addr.service().addresses()) {
          if (auto k = alias_of_bytes(na.network(), na.address())) {
            (*idx)[*k].push_back(name);
            vips.emplace_back(*k, name);
          }
        }
      }
    }
  }
  for (const auto& [alias, svc] : vips) {
    auto e = endpoints.find(svc);  // a service's resource name is its key, namespace/hostname
    if (e == endpoints.end()) continue;
    auto& owners = (*idx)[alias];
    owners.insert(owners.end(), e->second.begin(), e->second.end());
  }
  return idx;
}

// What one stream knows about one type.
struct TypeState {
  bool known_type = true;   // false: not served here; answered once, empty
  bool wildcard = false;
  std::set<std::string, std::less<>> names;         // explicit subscriptions
  std::map<std::string, std::string, std::less<>> have;  // name -> version the client has
  std::set<std::string, std::less<>> told_absent;   // subscribed names reported as absent
  // Real names sent because an alias ("network/ip") in `names` resolved to them.
  std::set<std::string, std::less<>> via_alias;
  bool owe_response = false;                        // first request, or a subscription change
  // Wildcard: the sequence number of the state that `have` equals (0: none).
  uint64_t synced = 0;
};

// Hand-off between a stream's reader thread, the state publisher and its handler thread.
struct StreamSignal {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ds::DeltaDiscoveryRequest> requests;
  bool reader_done = false;
  bool state_changed = false;
  bool stop = false;
};

struct StreamEntry {
  std::shared_ptr<StreamSignal> signal;
  ConnectedClient info;
};

}  // namespace

class AdsServer::Impl final : public ds::AggregatedDiscoveryService::Service {
 public:
  Impl(std::shared_ptr<const TokenAuthenticator> tokens, std::shared_ptr<const ServedState> initial)
      : tokens_(std::move(tokens)), state_(initial ? std::move(initial) : ServedState::from({}, "0")) {}

  grpc::Status DeltaAggregatedResources(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<ds::DeltaDiscoveryResponse, ds::DeltaDiscoveryRequest>* stream) override;

  void set_state(std::shared_ptr<const ServedState> next);
  std::shared_ptr<const ServedState> state() const {
    std::lock_guard<std::mutex> l(mu_);
    return state_;
  }
  std::pair<std::shared_ptr<const ServedState>, uint64_t> snapshot() const {
    std::lock_guard<std::mutex> l(mu_);
    return {state_, seq_};
  }
  // The names of `type_url` that changed after state `from` up to state `to`; false when the
  // recent history does not cover that range for the type (then compare everything).
  bool changed_since(uint64_t from, uint64_t to, std::string_view type_url, std::set<std::string>& names) const;
  // The alias index of `state`: cached for the current state (built once per publish, and only
  // when a stream has an alias to resolve); an older state gets a fresh, uncached one.
  std::shared_ptr<const AliasIndex> alias_index(const ServedState& state) const {
    std::shared_ptr<const ServedState> current = this->state();
    if (current.get() != &state) return build_alias_index(state);
    std::lock_guard<std::mutex> l(alias_mu_);
    if (alias_state_ != current) {
      alias_index_ = build_alias_index(*current);
      alias_state_ = std::move(current);
    }
    return alias_index_;
  }
  std::vector<ConnectedClient> clients() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<ConnectedClient> out;
    out.reserve(streams_.size());
    for (const auto& kv : streams_) out.push_back(kv.second.info);
    return out;
  }
  AdsStats stats() const {
    AdsStats s;
    s.streams = streams_total_.load();
    s.rejected = rejected_.load();
    s.responses = responses_.load();
    s.resources_sent = resources_sent_.load();
    s.acks = acks_.load();
    s.nacks = nacks_.load();
    return s;
  }
  void shutdown();

 private:
  using Stream = grpc::ServerReaderWriter<ds::DeltaDiscoveryResponse, ds::DeltaDiscoveryRequest>;

  // Everything the handler thread of one stream owns.
  struct Session {
    uint64_t id = 0;
    std::string node_id;
    std::map<std::string, TypeState, std::less<>> types;
    uint64_t nonce_counter = 0;
  };

  void handle_request(Session& s, ds::DeltaDiscoveryRequest& req);
  // Builds and writes the response for one type when there is something to say. False when
  // the stream is broken.
  bool respond(Session& s, const std::string& type_url, TypeState& ts, const ServedState& state, uint64_t seq,
               Stream* stream);
  void update_info(uint64_t id, const std::function<void(ConnectedClient&)>& fn) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = streams_.find(id);
    if (it != streams_.end()) fn(it->second.info);
  }

  const std::shared_ptr<const TokenAuthenticator> tokens_;

  mutable std::mutex mu_;
  std::shared_ptr<const ServedState> state_;
  uint64_t seq_ = 1;  // of state_
  // The changed-name lists of the last kHistory states, by sequence number (ascending).
  static constexpr size_t kHistory = 32;
  std::deque<std::pair<uint64_t, std::map<std::string, std::vector<std::string>, std::less<>>>> history_;
  std::map<uint64_t, StreamEntry> streams_;
  bool shutting_down_ = false;
  uint64_t next_id_ = 1;

  mutable std::mutex alias_mu_;
  mutable std::shared_ptr<const ServedState> alias_state_;
  mutable std::shared_ptr<const AliasIndex> alias_index_;

  std::atomic<uint64_t> streams_total_{0}, rejected_{0}, responses_{0}, resources_sent_{0}, acks_{0}, nacks_{0};
};

grpc::Status AdsServer::Impl::DeltaAggregatedResources(grpc::ServerContext* ctx, Stream* stream) {
  // ---- authenticate ----
  std::optional<Caller> caller;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    caller = tokens_->authenticate(std::string_view(it->second.data(), it->second.size()));
  }
  if (!caller) {
    ++rejected_;
    ads_log()->warn("rejected xDS stream from {}: missing or unknown bearer token", ctx->peer());
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or unknown bearer token");
  }

  auto signal = std::make_shared<StreamSignal>();
  Session session;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shutting_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
    session.id = next_id_++;
    StreamEntry e;
    e.signal = signal;
    e.info.stream_id = session.id;
    e.info.peer = ctx->peer();
    e.info.caller = caller->ns + "/" + caller->service_account;
    e.info.connected_at = std::chrono::system_clock::now();
    streams_.emplace(session.id, std::move(e));
  }
  ++streams_total_;

  // ---- reader: requests into the queue until the client half-closes or the call ends ----
  std::thread reader([stream, signal] {
    ds::DeltaDiscoveryRequest req;
    while (stream->Read(&req)) {
      std::lock_guard<std::mutex> l(signal->mu);
      signal->requests.push_back(std::move(req));
      req = ds::DeltaDiscoveryRequest();
      signal->cv.notify_one();
    }
    std::lock_guard<std::mutex> l(signal->mu);
    signal->reader_done = true;
    signal->cv.notify_one();
  });

  // ---- writer: apply requests, answer, push on state changes ----
  grpc::Status result = grpc::Status::OK;
  bool stream_ok = true;
  while (stream_ok) {
    std::deque<ds::DeltaDiscoveryRequest> batch;
    bool state_changed = false, reader_done = false, stop = false;
    {
      std::unique_lock<std::mutex> l(signal->mu);
      signal->cv.wait(l, [&] {
        return !signal->requests.empty() || signal->state_changed || signal->reader_done || signal->stop;
      });
      batch.swap(signal->requests);
      state_changed = std::exchange(signal->state_changed, false);
      reader_done = signal->reader_done;
      stop = signal->stop;
    }
    if (stop) {
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
      break;
    }
    for (auto& req : batch) handle_request(session, req);
    if (!batch.empty() || state_changed) {
      const auto [state, seq] = snapshot();
      for (auto& [type_url, ts] : session.types) {
        if (!state_changed && !ts.owe_response) continue;
        if (!respond(session, type_url, ts, *state, seq, stream)) {
          stream_ok = false;
          break;
        }
      }
    }
    if (reader_done) break;
  }

  // The reader may still be blocked in Read() (we are leaving on shutdown or a failed write):
  // cancelling the call releases it.
  bool reader_finished;
  {
    std::lock_guard<std::mutex> l(signal->mu);
    reader_finished = signal->reader_done;
  }
  if (!reader_finished) ctx->TryCancel();
  reader.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    streams_.erase(session.id);
  }
  ads_log()->info("xDS stream {} closed: node {} ({})", session.id, session.node_id.empty() ? "?" : session.node_id,
              ctx->peer());
  return result;
}

void AdsServer::Impl::handle_request(Session& s, ds::DeltaDiscoveryRequest& req) {
  if (req.has_node() && s.node_id.empty()) {
    s.node_id = req.node().id();
    std::string meta;
    if (req.node().has_metadata()) {
      (void)google::protobuf::util::MessageToJsonString(req.node().metadata(), &meta);
    }
    ads_log()->info("xDS client connected: stream {} node {} metadata {}", s.id, s.node_id, meta.empty() ? "{}" : meta);
    update_info(s.id, [&](ConnectedClient& c) {
      c.node_id = s.node_id;
      c.node_metadata = meta;
    });
  }
  const std::string& type_url = req.type_url();
  if (type_url.empty()) {
    ads_log()->warn("request without type_url from {} ignored", s.node_id);
    return;
  }

  // ---- ACK / NACK ----
  if (!req.response_nonce().empty()) {
    if (req.has_error_detail()) {
      ++nacks_;
      ads_log()->warn("NACK from {} for {} nonce {}: {}", s.node_id.empty() ? "?" : s.node_id, type_url,
                  req.response_nonce(), req.error_detail().message());
      update_info(s.id, [](ConnectedClient& c) { ++c.nacks; });
    } else {
      ++acks_;
    }
  }

  auto [it, first] = s.types.try_emplace(type_url);
  TypeState& ts = it->second;
  if (first) {
    const auto state = this->state();
    ts.known_type = state->types.count(type_url) > 0;
    if (!ts.known_type) ads_log()->warn("{} subscribed to unknown type {}; answering empty", s.node_id, type_url);
    ts.owe_response = true;
    // Delta xDS: an empty subscribe list on the first request of a type means wildcard.
    if (req.resource_names_subscribe().empty()) ts.wildcard = true;
    for (const auto& [name, version] : req.initial_resource_versions()) ts.have.emplace(name, version);
    update_info(s.id, [&](ConnectedClient& c) { c.types.push_back(type_url); });
  }
  bool changed = false;
  for (const auto& name : req.resource_names_subscribe()) {
    if (name == "*") {
      changed |= !ts.wildcard;
      ts.wildcard = true;
    } else {
      if (ts.names.insert(name).second) {
        changed = true;
        ts.told_absent.erase(name);
      }
    }
  }
  for (const auto& name : req.resource_names_unsubscribe()) {
    if (name == "*") {
      changed |= ts.wildcard;
      ts.wildcard = false;
    } else if (ts.names.erase(name) > 0) {
      changed = true;
      // The client drops an unsubscribed resource itself; forget it so a later subscribe
      // sends it again.
      if (!ts.wildcard) ts.have.erase(name);
      ts.told_absent.erase(name);
    }
  }
  if (first && !ts.wildcard && type_url == kAddressTypeUrl) {
    // An on-demand client reconnecting: what it holds beyond its explicit names came from
    // aliases. Keep those versions, so respond() resends only what changed and removes what
    // no alias covers any more (an alias is re-resolved, the client's copy may be stale).
    for (const auto& kv : ts.have) {
      if (!ts.names.count(kv.first)) ts.via_alias.insert(kv.first);
    }
  }
  if (!ts.wildcard) {
    // Out of a wildcard (or seeded with names it did not subscribe to): keep only what the
    // explicit subscription covers.
    for (auto h = ts.have.begin(); h != ts.have.end();) {
      h = ts.names.count(h->first) || ts.via_alias.count(h->first) ? std::next(h) : ts.have.erase(h);
    }
  }
  if (changed) ts.owe_response = true;
}

bool AdsServer::Impl::changed_since(uint64_t from, uint64_t to, std::string_view type_url,
                                    std::set<std::string>& names) const {
  std::lock_guard<std::mutex> l(mu_);
  if (from == to) return true;
  if (from > to || history_.empty() || history_.front().first > from + 1 || history_.back().first < to) return false;
  for (const auto& [seq, changed] : history_) {
    if (seq <= from || seq > to) continue;
    auto it = changed.find(type_url);
    if (it == changed.end()) return false;
    names.insert(it->second.begin(), it->second.end());
  }
  return true;
}

bool AdsServer::Impl::respond(Session& s, const std::string& type_url, TypeState& ts, const ServedState& state,
                              uint64_t seq, Stream* stream) {
  std::vector<const XdsResourceMap*> maps = maps_of(state, type_url);
  bool per_proxy = false;
  if (!state.per_proxy.empty()) {  // waypoints: their own Envoy resources (waypoint_compiler.h)
    if (auto p = state.per_proxy.find(proxy_key_of_node(s.node_id)); p != state.per_proxy.end()) {
      if (auto it = p->second.find(type_url); it != p->second.end() && it->second) {
        maps = {it->second.get()};
        per_proxy = true;
      }
    }
  }

  std::vector<const Entry*> updated;
  std::vector<std::string> removed;
  std::set<std::string> changed;
  if (ts.wildcard && !per_proxy && ts.synced != 0 && !ts.owe_response &&
      changed_since(ts.synced, seq, type_url, changed)) {
    // Up to date with an earlier state whose successors list their changes: O(change).
    for (const auto& name : changed) {
      const XdsResource* r = find_in(maps, name);
      auto h = ts.have.find(name);
      if (r != nullptr) {
        if (h == ts.have.end() || h->second != r->version) {
          // The entry itself (its name must outlive this call): find it again in its map.
          for (const auto* m : maps) {
            if (auto it = m->find(name); it != m->end()) {
              updated.push_back(&*it);
              break;
            }
          }
        }
      } else if (h != ts.have.end()) {
        removed.push_back(name);
      }
    }
  } else if (ts.wildcard) {
    // Merge walk of two sorted sequences: O(resources + have).
    const std::vector<const Entry*> all = sorted_entries(maps);
    auto r = all.begin();
    auto h = ts.have.begin();
    while (r != all.end() || h != ts.have.end()) {
      if (h == ts.have.end() || (r != all.end() && (*r)->first < h->first)) {
        updated.push_back(*r);
        ++r;
      } else if (r == all.end() || h->first < (*r)->first) {
        removed.push_back(h->first);
        ++h;
      } else {
        if ((*r)->second.version != h->second) updated.push_back(*r);
        ++r;
        ++h;
      }
    }
  } else {
    auto find_entry = [&](std::string_view name) -> const Entry* {
      for (const auto* m : maps) {
        if (auto it = m->find(name); it != m->end()) return &*it;
      }
      return nullptr;
    };
    std::set<std::string, std::less<>> queued;  // an alias and a direct name may share a resource
    auto send_if_stale = [&](const Entry* r) {
      auto h = ts.have.find(r->first);
      if ((h == ts.have.end() || h->second != r->second.version) && queued.insert(r->first).second) {
        updated.push_back(r);
      }
    };
    std::set<std::string, std::less<>> covered;  // real names the aliases resolve to now
    std::shared_ptr<const AliasIndex> aliases;
    for (const auto& name : ts.names) {
      if (const Entry* r = find_entry(name)) {
        send_if_stale(r);
        continue;
      }
      std::optional<std::string> key;
      if (type_url == kAddressTypeUrl) key = alias_key(name);
      if (key) {
        if (!aliases) aliases = alias_index(state);
        auto a = aliases->find(*key);
        if (a != aliases->end() && !a->second.empty()) {
          // Answered by the owners under their real names; the alias itself is never a name
          // the client holds (istiod does the same).
          for (const auto& owner : a->second) {
            covered.insert(owner);
            if (const Entry* r = find_entry(owner)) send_if_stale(r);
          }
          ts.told_absent.erase(name);
          continue;
        }
      }
      auto h = ts.have.find(name);
      if (h != ts.have.end() || !ts.told_absent.count(name)) removed.push_back(name);
    }
    // Resources an alias no longer resolves to (deleted, or the address moved): removed,
    // unless still subscribed by their own name.
    for (const auto& owner : ts.via_alias) {
      if (!covered.count(owner) && !ts.names.count(owner) && ts.have.count(owner)) removed.push_back(owner);
    }
    ts.via_alias = std::move(covered);
  }
  // After this call the client has exactly this state's resources of the type (wildcard).
  ts.synced = ts.wildcard && !per_proxy ? seq : 0;
  if (updated.empty() && removed.empty() && !ts.owe_response) return true;

  ds::DeltaDiscoveryResponse resp;
  resp.set_type_url(type_url);
  resp.set_system_version_info(state.version);
  resp.set_nonce(std::to_string(s.id) + "-" + std::to_string(++s.nonce_counter));
  resp.mutable_resources()->Reserve(static_cast<int>(updated.size()));
  for (const auto* kv : updated) {
    ds::Resource* res = resp.add_resources();
    res->set_name(kv->first);
    res->set_version(kv->second.version);
    if (!res->mutable_resource()->ParseFromString(kv->second.any)) {
      ads_log()->error("internal: resource {} of {} does not parse as Any", kv->first, type_url);
    }
  }
  for (const auto& name : removed) resp.add_removed_resources(name);

  // What is sent counts as what the client has from now on (see header: NACKs do not resend).
  for (const auto* kv : updated) {
    ts.have.insert_or_assign(kv->first, kv->second.version);
    ts.told_absent.erase(kv->first);
  }
  for (const auto& name : removed) {
    ts.have.erase(name);
    if (!ts.wildcard) ts.told_absent.insert(name);
  }
  ts.owe_response = false;

  ads_log()->debug("send {} to {}: {} updated, {} removed, nonce {}", short_type(type_url), s.node_id, updated.size(),
               removed.size(), resp.nonce());
  grpc::WriteOptions opts;
  if (!stream->Write(resp, opts)) return false;
  ++responses_;
  resources_sent_ += updated.size();
  update_info(s.id, [](ConnectedClient& c) { ++c.responses; });
  return true;
}

void AdsServer::Impl::set_state(std::shared_ptr<const ServedState> next) {
  if (!next) return;
  std::shared_ptr<const ServedState> prev;
  std::vector<std::pair<std::shared_ptr<StreamSignal>, std::vector<std::string>>> targets;
  {
    std::lock_guard<std::mutex> l(mu_);
    prev = std::exchange(state_, next);
    history_.emplace_back(++seq_, next->changed);
    while (history_.size() > kHistory) history_.pop_front();
    for (const auto& kv : streams_) targets.emplace_back(kv.second.signal, kv.second.info.types);
  }
  // Summary per type of what changed between the two states (each stream computes its own
  // exact delta; this is for the log).
  std::set<std::string> type_urls;
  for (const auto& kv : prev->types) type_urls.insert(kv.first);
  for (const auto& kv : next->types) type_urls.insert(kv.first);
  for (const auto& type_url : type_urls) {
    const auto before_maps = maps_of(*prev, type_url);
    const auto after_maps = maps_of(*next, type_url);
    if (before_maps == after_maps) continue;
    size_t updated = 0, removed = 0;
    if (auto ch = next->changed.find(type_url); ch != next->changed.end()) {
      for (const auto& name : ch->second) {
        const XdsResource* a = find_in(after_maps, name);
        const XdsResource* b = find_in(before_maps, name);
        if (a == nullptr) {
          removed += b != nullptr;
        } else {
          updated += b == nullptr || a->version != b->version;
        }
      }
    } else {
      // Merge walk of the two sorted sequences: linear, where a find() per name cost
      // n log n long string compares at 60k resources.
      const auto after = sorted_entries(after_maps);
      const auto before = sorted_entries(before_maps);
      auto a = after.begin();
      auto b = before.begin();
      while (a != after.end() || b != before.end()) {
        const int c = a == after.end() ? 1 : b == before.end() ? -1 : (*a)->first.compare((*b)->first);
        if (c < 0) {
          ++updated;
          ++a;
        } else if (c > 0) {
          ++removed;
          ++b;
        } else {
          updated += (*a)->second.version != (*b)->second.version;
          ++a;
          ++b;
        }
      }
    }
    if (updated == 0 && removed == 0) continue;
    size_t clients = 0;
    for (const auto& t : targets) {
      for (const auto& u : t.second) clients += u == type_url;
    }
    // With nobody subscribed (startup) this is not a push worth an info line.
    ads_log()->log(clients > 0 ? spdlog::level::info : spdlog::level::debug, "push {}: {} updated, {} removed to {} clients",
                   short_type(type_url), updated, removed, clients);
  }
  for (auto& t : targets) {
    std::lock_guard<std::mutex> l(t.first->mu);
    t.first->state_changed = true;
    t.first->cv.notify_one();
  }
}

void AdsServer::Impl::shutdown() {
  std::vector<std::shared_ptr<StreamSignal>> signals;
  {
    std::lock_guard<std::mutex> l(mu_);
    shutting_down_ = true;
    for (const auto& kv : streams_) signals.push_back(kv.second.signal);
  }
  for (auto& sig : signals) {
    std::lock_guard<std::mutex> l(sig->mu);
    sig->stop = true;
    sig->cv.notify_one();
  }
}

AdsServer::AdsServer(std::shared_ptr<const TokenAuthenticator> tokens, std::shared_ptr<const ServedState> initial)
    : impl_(std::make_unique<Impl>(std::move(tokens), std::move(initial))) {}
AdsServer::~AdsServer() = default;

grpc::Service* AdsServer::service() { return impl_.get(); }
void AdsServer::set_state(std::shared_ptr<const ServedState> state) { impl_->set_state(std::move(state)); }
std::shared_ptr<const ServedState> AdsServer::state() const { return impl_->state(); }
std::vector<ConnectedClient> AdsServer::clients() const { return impl_->clients(); }
AdsStats AdsServer::stats() const { return impl_->stats(); }
void AdsServer::shutdown() { impl_->shutdown(); }

}  // namespace controlplane
