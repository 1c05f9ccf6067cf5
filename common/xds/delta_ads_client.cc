#include "common/xds/delta_ads_client.h"

#include <google/protobuf/struct.pb.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#ifdef __GLIBC__
#endif

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/admin/log.h"
#include "common/admin/metrics.h"
#include "common/resident_trim.h"
#include "envoy/service/discovery/v3/discovery.grpc.pb.h"

namespace common::xds {

namespace {

namespace dv3 = envoy::service::discovery::v3;

constexpr int kInvalidArgument = 3;  // google.rpc.Code.INVALID_ARGUMENT
constexpr size_t kTrimAfterBytes = 1 << 20;

void json_to_value(const nlohmann::json& j, google::protobuf::Value* v);

void json_to_struct(const nlohmann::json& j, google::protobuf::Struct* s) {
  for (auto it = j.begin(); it != j.end(); ++it) json_to_value(it.value(), &(*s->mutable_fields())[it.key()]);
}

void json_to_value(const nlohmann::json& j, google::protobuf::Value* v) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      v->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case nlohmann::json::value_t::boolean:
      v->set_bool_value(j.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      v->set_number_value(j.get<double>());
      break;
    case nlohmann::json::value_t::string:
      v->set_string_value(j.get<std::string>());
      break;
    case nlohmann::json::value_t::array:
      for (const auto& e : j) json_to_value(e, v->mutable_list_value()->add_values());
      if (j.empty()) v->mutable_list_value();
      break;
    case nlohmann::json::value_t::object:
      json_to_struct(j, v->mutable_struct_value());
      break;
    case nlohmann::json::value_t::binary:
      v->set_null_value(google::protobuf::NULL_VALUE);  // never produced by JSON parsing
      break;
  }
}

// How one stream attempt ended.
struct StreamEnd {
  bool stopped = false;       // cancelled by stop(); not a termination worth counting
  bool got_response = false;  // resets the backoff
  std::string reason;         // metric label
  std::string detail;         // for logs and status
};

}  // namespace

struct DeltaAdsClient::Impl {
  Impl(DeltaAdsOptions o, metrics::Registry& registry)
      : opts(std::move(o)),
        terminations(registry.counter("istio_xds_connection_terminations_total",
                                      "The total number of completed connections to the xDS server", {"reason"})),
        messages(registry.counter("istio_xds_message_total", "Total number of xDS messages received, by type URL",
                                  {"url"})),
        message_bytes(registry.counter("istio_xds_message_bytes_total",
                                       "Total size in bytes of xDS messages received, by type URL", {"url"})),
        rng(std::random_device{}()) {
    st.address = opts.endpoint.address;
    for (const auto& [type, handler] : opts.types) {
      (void)handler;
      st.resources[type] = 0;
      versions[type];
    }
  }

  DeltaAdsOptions opts;
  metrics::CounterFamily& terminations;
  metrics::CounterFamily& messages;
  metrics::CounterFamily& message_bytes;
  std::shared_ptr<spdlog::logger> log = common::log::logger("xds");

  // Shared with stop()/status() callers.
  mutable std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool stopping = false;
  grpc::ClientContext* live_ctx = nullptr;  // the stream to cancel on stop()
  // The live stream, for subscribe() from other threads (null while disconnected).
  grpc::ClientReaderWriter<dv3::DeltaDiscoveryRequest, dv3::DeltaDiscoveryResponse>* live_stream = nullptr;
  // On-demand types -> names subscribed so far (re-sent in every initial request).
  std::map<std::string, std::set<std::string>> demanded;
  // Serializes writes: the client thread's initial requests and ACKs, and subscribe().
  std::mutex write_mu;
  DeltaAdsStatus st;
  std::thread thread;

  // Client thread only.
  std::map<std::string, std::map<std::string, std::string>> versions;  // type -> name -> version
  std::set<std::string> types_seen;
  bool synced_fired = false;
  std::mt19937_64 rng;

  TypeHandler* handler_for(const std::string& type) const {
    for (const auto& [t, h] : opts.types) {
      if (t == type) return h;
    }
    return nullptr;
  }

  dv3::DeltaDiscoveryRequest initial_request(const std::string& type) {
    dv3::DeltaDiscoveryRequest req;
    req.mutable_node()->set_id(opts.node.id);
    json_to_struct(opts.node.metadata, req.mutable_node()->mutable_metadata());
    req.set_type_url(type);
    if (std::find(opts.on_demand_types.begin(), opts.on_demand_types.end(), type) != opts.on_demand_types.end()) {
      req.add_resource_names_subscribe("*");
      req.add_resource_names_unsubscribe("*");
      std::lock_guard<std::mutex> l(mu);
      for (const auto& n : demanded[type]) req.add_resource_names_subscribe(n);
    }
    auto it = versions.find(type);
    if (it != versions.end()) {
      auto& irv = *req.mutable_initial_resource_versions();
      for (const auto& [name, version] : it->second) irv[name] = version;
    }
    return req;
  }

  // Applies one response and builds its ACK or NACK.
  dv3::DeltaDiscoveryRequest process(const dv3::DeltaDiscoveryResponse& resp) {
    const std::string& type = resp.type_url();
    dv3::DeltaDiscoveryRequest reply;
    reply.set_type_url(type);
    reply.set_response_nonce(resp.nonce());

    std::vector<ResourceError> errors;
    TypeHandler* handler = handler_for(type);
    if (handler == nullptr) {
      errors.push_back({"", "type URL '" + type + "' is not subscribed"});
    } else {
      std::vector<Resource> updated;
      updated.reserve(static_cast<size_t>(resp.resources_size()));
      for (const auto& r : resp.resources()) {
        if (!r.has_resource()) {
          errors.push_back({r.name(), "resource has no body"});
          continue;
        }
        if (r.resource().type_url() != type) {
          errors.push_back({r.name(), "resource type '" + r.resource().type_url() +
                                          "' does not match the response type '" + type + "'"});
          continue;
        }
        updated.push_back(Resource{r.name(), r.version(), r.resource().type_url(), r.resource().value()});
      }
      std::vector<std::string> removed(resp.removed_resources().begin(), resp.removed_resources().end());
      for (const auto& rn : resp.removed_resource_names()) removed.push_back(rn.name());

      std::vector<ResourceError> rejected = handler->apply(updated, removed);
      std::set<std::string, std::less<>> rejected_names;
      for (const auto& e : rejected) rejected_names.insert(e.name);
      auto& vm = versions[type];
      for (const auto& u : updated) {
        if (!rejected_names.count(u.name)) vm[std::string(u.name)] = std::string(u.version);
      }
      for (const auto& n : removed) vm.erase(n);
      errors.insert(errors.end(), std::make_move_iterator(rejected.begin()), std::make_move_iterator(rejected.end()));
    }
    for (const auto& re : resp.resource_errors()) {
      log->debug("xDS server reports an error for {} ({}): {}", re.resource_name().name(), type,
                 re.error_detail().message());
    }

    std::string nack;
    if (!errors.empty()) {
      for (const auto& e : errors) {
        if (!nack.empty()) nack += "; ";
        nack += (e.name.empty() ? std::string("<response>") : e.name) + ": " + e.message;
      }
      reply.mutable_error_detail()->set_code(kInvalidArgument);
      reply.mutable_error_detail()->set_message(nack);
      log->warn("xDS NACK for {} (nonce {}): {}", type, resp.nonce(), nack);
    } else {
      log->debug("xDS ACK for {} (nonce {}): {} updated, {} removed", type, resp.nonce(), resp.resources_size(),
                 resp.removed_resources_size() + resp.removed_resource_names_size());
    }

    messages.get({type})->inc();
    message_bytes.get({type})->inc(resp.ByteSizeLong());

    bool fire_synced = false;
    if (handler != nullptr) types_seen.insert(type);
    if (!synced_fired && types_seen.size() == opts.types.size()) {
      synced_fired = true;
      fire_synced = true;
    }
    {
      std::lock_guard<std::mutex> l(mu);
      ++st.responses;
      if (handler != nullptr) st.resources[type] = versions[type].size();
      if (!nack.empty()) st.last_nack = type + ": " + nack;
      if (fire_synced) st.synced = true;
    }
    if (fire_synced) {
      log->info("xDS synced: first response of every subscribed type processed");
      if (opts.on_synced) opts.on_synced();
    }
    return reply;
  }

  void set_connected(bool connected, const std::string& reason) {
    {
      std::lock_guard<std::mutex> l(mu);
      st.connected = connected;
      if (connected) {
        ++st.connects;
      } else {
        st.last_disconnect = reason;
      }
    }
    if (opts.on_connection) opts.on_connection(connected, reason);
  }

  StreamEnd run_stream() {
    StreamEnd end;
    auto channel = common::grpcx::make_channel(opts.endpoint);
    if (!channel) {
      end.reason = "ConnectionError";
      end.detail = channel.error();
      return end;
    }
    auto stub = dv3::AggregatedDiscoveryService::NewStub(channel.value());
    grpc::ClientContext ctx;
    if (auto s = common::grpcx::add_call_metadata(ctx, opts.endpoint); !s) {
      end.reason = "ConnectionError";
      end.detail = s.error();
      return end;
    }
    {
      std::lock_guard<std::mutex> l(mu);
      if (stopping) {
        end.stopped = true;
        return end;
      }
      live_ctx = &ctx;
    }
    // Unregisters before ctx is destroyed (declared after it, so destroyed first).
    struct Unregister {
      Impl* self;
      ~Unregister() {
        std::lock_guard<std::mutex> l(self->mu);
        self->live_ctx = nullptr;
      }
    } unregister{this};

    auto stream = stub->DeltaAggregatedResources(&ctx);
    bool ok = true;
    {
      // Under write_mu while registering: a subscribe() that finds the stream registered
      // writes after the initial requests, and one that did not is in `demanded` already.
      std::lock_guard<std::mutex> w(write_mu);
      for (const auto& [type, handler] : opts.types) {
        (void)handler;
        if (!stream->Write(initial_request(type))) {
          ok = false;
          break;
        }
      }
      std::lock_guard<std::mutex> l(mu);
      if (ok) live_stream = stream.get();
    }
    struct UnregisterStream {
      Impl* self;
      ~UnregisterStream() {
        std::lock_guard<std::mutex> w(self->write_mu);
        std::lock_guard<std::mutex> l(self->mu);
        self->live_stream = nullptr;
      }
    } unregister_stream{this};
    bool connected = false;
    if (ok) {
      connected = true;
      log->info("xDS stream to {} established", opts.endpoint.address);
      set_connected(true, "");
    }
    while (ok) {
      // A fresh message per response: Clear() would keep every repeated element allocated for
      // reuse, pinning the largest response (the initial sync) for the stream's life.
      size_t bytes = 0;
      bool write_ok = false;
      {
        dv3::DeltaDiscoveryResponse resp;
        if (!stream->Read(&resp)) break;
        end.got_response = true;
        bytes = resp.ByteSizeLong();
        dv3::DeltaDiscoveryRequest reply = process(resp);
        std::lock_guard<std::mutex> w(write_mu);
        write_ok = stream->Write(reply);
      }
      // After a large response, give its freed pages back now rather than at the next periodic
      // trim, so RSS reflects the state kept, not the transient parse.
      if (bytes >= kTrimAfterBytes) common::release_free_heap();
      if (!write_ok) break;
    }
    {
      std::lock_guard<std::mutex> w(write_mu);
      std::lock_guard<std::mutex> l(mu);
      live_stream = nullptr;
    }
    const grpc::Status status = stream->Finish();
    {
      std::lock_guard<std::mutex> l(mu);
      end.stopped = stopping;
    }
    if (status.ok()) {
      end.reason = "Complete";
      end.detail = "stream closed by the server";
    } else {
      end.detail = "gRPC status " + std::to_string(static_cast<int>(status.error_code())) + ": " +
                   status.error_message();
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        end.reason = end.got_response ? "Reconnect" : "ConnectionError";
      } else {
        end.reason = "Error";
      }
    }
    if (connected) set_connected(false, end.stopped ? std::string("stopped") : end.detail);
    return end;
  }

  void run() {
    std::chrono::milliseconds backoff = opts.initial_backoff;
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (stopping) return;
      }
      StreamEnd end = run_stream();
      if (end.stopped) return;
      terminations.get({end.reason})->inc();
      if (end.got_response) backoff = opts.initial_backoff;
      // Jitter: wait a uniformly random time in [backoff/2, backoff] so many proxies restarted
      // together do not reconnect in lockstep.
      const auto half = std::max<int64_t>(backoff.count() / 2, 1);
      std::uniform_int_distribution<int64_t> dist(half, std::max<int64_t>(backoff.count(), half));
      const std::chrono::milliseconds delay(dist(rng));
      log->warn("xDS stream to {} ended ({}: {}); reconnecting in {} ms", opts.endpoint.address, end.reason,
                end.detail, delay.count());
      {
        std::lock_guard<std::mutex> l(mu);
        st.last_disconnect = end.reason + ": " + end.detail;
      }
      backoff = std::min(backoff * 2, opts.max_backoff);
      std::unique_lock<std::mutex> l(mu);
      if (cv.wait_for(l, delay, [this] { return stopping; })) return;
    }
  }
};

DeltaAdsClient::DeltaAdsClient(DeltaAdsOptions options, common::metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

DeltaAdsClient::~DeltaAdsClient() { stop(); }

void DeltaAdsClient::start() {
  std::lock_guard<std::mutex> l(impl_->mu);
  if (impl_->started || impl_->stopping) return;
  impl_->started = true;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void DeltaAdsClient::stop() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stopping = true;
    if (impl_->live_ctx != nullptr) impl_->live_ctx->TryCancel();
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable() && impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
}

void DeltaAdsClient::subscribe(const std::string& type_url, const std::vector<std::string>& names) {
  dv3::DeltaDiscoveryRequest req;
  req.set_type_url(type_url);
  std::lock_guard<std::mutex> w(impl_->write_mu);
  grpc::ClientReaderWriter<dv3::DeltaDiscoveryRequest, dv3::DeltaDiscoveryResponse>* stream = nullptr;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    auto& set = impl_->demanded[type_url];
    for (const auto& n : names) {
      if (set.insert(n).second) req.add_resource_names_subscribe(n);
    }
    stream = impl_->live_stream;
  }
  if (req.resource_names_subscribe_size() == 0 || stream == nullptr) return;
  impl_->log->debug("xDS on-demand subscribe {}: {} names", type_url, req.resource_names_subscribe_size());
  // A failed write means the stream is ending; the reconnect's initial request carries the names.
  (void)stream->Write(req);
}

DeltaAdsStatus DeltaAdsClient::status() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->st;
}

}  // namespace common::xds
