#include "common/ca/istio_ca_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <array>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "common/identity/certs.h"
#include "istio/v1/auth/ca.grpc.pb.h"

namespace common::ca {

namespace {

using istio::v1::auth::IstioCertificateRequest;
using istio::v1::auth::IstioCertificateResponse;
using istio::v1::auth::IstioCertificateService;

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

// How gRPC's threads reach the control io_context. The client's destructor closes it (io =
// nullptr) under the mutex, so a completion arriving after destruction never posts to an
// io_context that may already be gone. `callbacks` counts gRPC completion callbacks that have
// not finished yet (see the destructor for why it waits for them).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  boost::asio::io_context* io = nullptr;
  size_t callbacks = 0;
};

// One CreateCertificate call. gRPC requires ctx/req/resp to live until the completion
// callback runs; the callback's capture owns a reference, as does the client's active set.
struct Call {
  Call(Identity i, std::string key, CertProvider::Done d)
      : id(std::move(i)), key_pem(std::move(key)), done(std::move(d)) {}
  grpc::ClientContext ctx;
  IstioCertificateRequest req;
  IstioCertificateResponse resp;
  Identity id;
  std::string key_pem;
  CertProvider::Done done;  // touched only on the control thread
};

struct Pending {
  Identity id;
  CertProvider::Done done;
};

}  // namespace

struct IstioCaClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(boost::asio::io_context& control, grpcx::GrpcEndpoint endpoint, Options options)
      : io(control), ep(std::move(endpoint)), opts(options), gate(std::make_shared<Gate>()) {
    gate->io = &io;
    if (opts.max_in_flight == 0) opts.max_in_flight = 1;
    auto ch = grpcx::make_channel(ep);
    if (!ch) {
      channel_error = "CA " + ep.address + ": " + ch.error();
      spdlog::error("{}", channel_error);
      return;
    }
    channel = std::move(ch.value());
    stub = IstioCertificateService::NewStub(channel);
  }

  // Control thread. Cancels what is outstanding and drops every `done` here, on the control
  // thread (their captures belong to it), so nothing reaches a caller afterwards.
  //
  // Then it waits (briefly: the calls are cancelled) for gRPC's completion callbacks to finish.
  // Why: a ClientContext holds a reference to its Channel, and a callback whose result can no
  // longer be posted drops its call on the gRPC thread. If that were the channel's last
  // reference, the channel would be destroyed on the thread of gRPC's callback completion queue,
  // which then tries to join itself on shutdown (a known gRPC hazard: double free / crash).
  // Waiting here keeps our own reference alive until every callback is done with its call.
  void shutdown() {
    closed = true;
    {
      std::lock_guard<std::mutex> lock(gate->mu);
      gate->io = nullptr;
    }
    for (const auto& call : active) {
      call->ctx.TryCancel();
      call->done = nullptr;
    }
    active.clear();
    for (auto& q : queues) q.clear();
    std::unique_lock<std::mutex> lock(gate->mu);
    if (!gate->cv.wait_for(lock, std::chrono::seconds(5), [this] { return gate->callbacks == 0; })) {
      // Never expected; keeping the channel forever is better than the crash described above.
      spdlog::warn("CA client: {} cancelled calls did not complete; leaking the channel", gate->callbacks);
      new std::shared_ptr<grpc::Channel>(channel);  // NOLINT: deliberate leak
    }
  }

  void fetch(const Identity& id, Done done, FetchPriority priority) {
    if (!stub) {
      done(make_error(channel_error));
      return;
    }
    queues[static_cast<size_t>(priority)].push_back(Pending{id, std::move(done)});
    pump();
  }

  size_t queued() const {
    size_t n = 0;
    for (const auto& q : queues) n += q.size();
    return n;
  }

  // Starts queued fetches while slots are free. start() never calls a `done` itself, so the
  // loop is not re-entered from inside.
  void pump() {
    for (auto& q : queues) {  // highest priority first
      while (!closed && active.size() < opts.max_in_flight && !q.empty()) {
        Pending p = std::move(q.front());
        q.pop_front();
        start(std::move(p));
      }
    }
  }

  // A local failure before the call goes out: answered through the io_context rather than
  // inline, so pump()'s loop never runs a caller's callback in the middle.
  void fail_later(Done done, std::string error) {
    std::weak_ptr<Impl> weak = shared_from_this();
    boost::asio::post(io, [weak, done = std::move(done), error = std::move(error)]() {
      auto self = weak.lock();
      if (!self || self->closed) return;
      done(make_error(error));
    });
  }

  void start(Pending p) {
    auto kc = certs::generate_key_and_csr(p.id);
    if (!kc) {
      fail_later(std::move(p.done), "CA: generating key and CSR for " + p.id.uri() + ": " + kc.error());
      return;
    }
    auto call = std::make_shared<Call>(p.id, std::move(kc->key_pem), std::move(p.done));
    if (auto st = grpcx::add_call_metadata(call->ctx, ep); !st) {
      fail_later(std::move(call->done), "CA: " + st.error());
      return;
    }
    call->ctx.set_deadline(std::chrono::system_clock::now() + opts.timeout);
    call->req.set_csr(std::move(kc->csr_pem));
    call->req.set_validity_duration(static_cast<int64_t>(opts.ttl.count()));
    if (opts.impersonate) {
      (*call->req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(p.id.uri());
    }
    active.insert(call);
    spdlog::debug("CA: requesting certificate for {} ({} in flight)", p.id.uri(), active.size());

    std::weak_ptr<Impl> weak = shared_from_this();
    std::shared_ptr<Gate> g = gate;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      ++g->callbacks;
    }
    // Runs on a gRPC thread: only hand the result to the control thread. The call reference
    // leaves the closure inside the body (moved into the posted handler, or dropped while the
    // destructor still holds the channel), never when gRPC destroys the closure afterwards.
    auto callback = [call, weak, g](grpc::Status status) mutable {
      std::shared_ptr<Call> mine = std::move(call);
      std::lock_guard<std::mutex> lock(g->mu);
      if (g->io != nullptr) {
        boost::asio::post(*g->io, [mine = std::move(mine), weak, status = std::move(status)]() {
          if (auto self = weak.lock()) self->finish(mine, status);
        });
      }
      mine.reset();
      --g->callbacks;
      g->cv.notify_all();
    };
    stub->async()->CreateCertificate(&call->ctx, &call->req, &call->resp, std::move(callback));
  }

  // Control thread: one call completed.
  void finish(const std::shared_ptr<Call>& call, const grpc::Status& status) {
    if (active.erase(call) == 0 || closed) return;
    Done done = std::move(call->done);
    Result<tls::Credentials> result = make_error("CA: no answer");
    if (!status.ok()) {
      result = make_error(std::string("CA: ") + code_name(status.error_code()) + ": " + status.error_message());
    } else {
      std::vector<std::string> chain(call->resp.cert_chain().begin(), call->resp.cert_chain().end());
      result = make_credentials(call->id, std::move(call->key_pem), chain, "");
    }
    // Free the slot before answering: `done` is the last thing touching this object, so the
    // caller may even destroy the client from inside it.
    pump();
    if (done) done(std::move(result));
  }

  boost::asio::io_context& io;
  grpcx::GrpcEndpoint ep;
  Options opts;
  std::shared_ptr<Gate> gate;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<IstioCertificateService::Stub> stub;
  std::string channel_error;
  bool closed = false;
  std::array<std::deque<Pending>, 3> queues;  // by FetchPriority
  std::set<std::shared_ptr<Call>> active;
};

IstioCaClient::IstioCaClient(boost::asio::io_context& control, grpcx::GrpcEndpoint endpoint, Options options)
    : impl_(std::make_shared<Impl>(control, std::move(endpoint), options)) {}

IstioCaClient::~IstioCaClient() { impl_->shutdown(); }

void IstioCaClient::fetch(const Identity& id, Done done, FetchPriority priority) {
  impl_->fetch(id, std::move(done), priority);
}

size_t IstioCaClient::in_flight() const { return impl_->active.size(); }
size_t IstioCaClient::queued() const { return impl_->queued(); }

}  // namespace common::ca
