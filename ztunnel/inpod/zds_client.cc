#include "ztunnel/inpod/zds_client.h"

#include <atomic>
#include <exception>

#include <boost/asio/io_context.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "common/admin/log.h"

namespace ztunnel {

namespace asio = boost::asio;
// Boost 1.81 has no local::seq_packet_protocol: the generic protocol with AF_UNIX is the same
// socket (the endpoint is built from a local endpoint, which carries the sockaddr_un).
using seqpacket = asio::generic::seq_packet_protocol;

// All state lives here, owned by a shared_ptr so that completion handlers can hold it alive
// (they check `generation` to ignore results from a connection that was already closed).
struct ZdsClient::Impl : std::enable_shared_from_this<ZdsClient::Impl> {
  Impl(asio::io_context& io, ZdsHandler& h, ZdsClientOptions o)
      : io(io), handler(h), opts(std::move(o)), sock(io), timer(io), backoff(opts.initial_backoff) {}

  asio::io_context& io;
  ZdsHandler& handler;
  ZdsClientOptions opts;
  seqpacket::socket sock;
  asio::steady_timer timer;
  std::chrono::milliseconds backoff;
  std::atomic<bool> stopped{false};  // set by stop() from any thread; checked by every callback
  bool connected = false;
  std::uint64_t generation = 0;  // bumped on every close; stale completions compare it
  std::atomic<bool> snapshot_seen{false};
  std::atomic<std::uint64_t> connection_count{0};

  // Per-connection state, reset on close.
  bool conn_snapshot_done = false;
  std::set<std::string> mentioned;

  std::shared_ptr<spdlog::logger> log = common::log::logger("inpod");

  // ---- connection management ---------------------------------------------------------------

  void connect() {
    if (stopped) return;
    sock = seqpacket::socket(io);
    const auto gen = generation;
    seqpacket::endpoint ep;
    try {
      ep = seqpacket::endpoint(asio::local::stream_protocol::endpoint(opts.socket_path));
    } catch (const std::exception& e) {  // path longer than sun_path: a config error
      log->error("zds: bad socket path '{}': {}", opts.socket_path, e.what());
      schedule_reconnect();
      return;
    }
    sock.async_connect(ep,
                       [self = shared_from_this(), gen](const boost::system::error_code& ec) {
                         self->on_connect(gen, ec);
                       });
  }

  void on_connect(std::uint64_t gen, const boost::system::error_code& ec) {
    if (stopped || gen != generation) return;
    if (ec) {
      // A warning, as upstream's: a ztunnel that never reaches its node agent is why it stays
      // not ready; the doubling backoff (to max_backoff) keeps the log quiet.
      log->warn("zds: connect to {} failed: {}; retrying in {} ms", opts.socket_path, ec.message(),
                backoff.count());
      boost::system::error_code ignored;
      sock.close(ignored);
      schedule_reconnect();
      return;
    }
    // The hello is 2 bytes on a fresh socket: it cannot block in practice, but a full buffer is
    // handled like any other send.
    send(zds::encode_hello(), [self = shared_from_this()] {
      self->connected = true;
      self->connection_count.fetch_add(1);
      self->log->info("zds: connected to node agent at {}", self->opts.socket_path);
      if (self->opts.on_connection) self->opts.on_connection(true, "");
      self->read();
    });
  }

  void schedule_reconnect() {
    if (stopped) return;
    timer.expires_after(backoff);
    backoff = std::min(backoff * 2, opts.max_backoff);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->connect();
    });
  }

  // Ends the current connection (if any) and forgets its per-connection state.
  void close(const std::string& reason) {
    ++generation;
    boost::system::error_code ignored;
    sock.close(ignored);
    mentioned.clear();
    conn_snapshot_done = false;
    if (connected) {
      connected = false;
      if (opts.on_connection) opts.on_connection(false, reason);
    }
  }

  void close_and_retry(const std::string& reason) {
    close(reason);
    schedule_reconnect();
  }

  void protocol_error(const std::string& what) {
    log->error("zds: protocol error from node agent: {}; closing the connection and reconnecting",
               what);
    // Best effort: tell the agent why (it is waiting for an ack); never wait for it.
    if (sock.is_open()) {
      (void)zds::send_packet(sock.native_handle(), zds::encode_ack("protocol error: " + what));
    }
    close_and_retry("protocol error: " + what);
  }

  // ---- I/O -------------------------------------------------------------------------------------

  // Sends one packet, waiting for writability if the socket buffer is full, then runs `next`.
  void send(std::string bytes, std::function<void()> next) {
    auto r = zds::send_packet(sock.native_handle(), bytes);
    if (!r.ok()) {
      log->warn("zds: send failed: {}", r.error());
      close_and_retry("send failed: " + r.error());
      return;
    }
    if (*r) {
      next();
      return;
    }
    const auto gen = generation;
    sock.async_wait(seqpacket::socket::wait_write,
                    [self = shared_from_this(), gen, bytes = std::move(bytes),
                     next = std::move(next)](const boost::system::error_code& ec) mutable {
                      if (self->stopped || gen != self->generation) return;
                      if (ec) {
                        self->close_and_retry("wait for write: " + ec.message());
                        return;
                      }
                      self->send(std::move(bytes), std::move(next));
                    });
  }

  void read() {
    const auto gen = generation;
    sock.async_wait(seqpacket::socket::wait_read,
                    [self = shared_from_this(), gen](const boost::system::error_code& ec) {
                      if (self->stopped || gen != self->generation) return;
                      if (ec) {
                        self->close_and_retry("wait for read: " + ec.message());
                        return;
                      }
                      self->on_readable();
                    });
  }

  void on_readable() {
    auto r = zds::recv_packet(sock.native_handle());
    if (!r.ok()) {
      protocol_error(r.error());
      return;
    }
    switch (r->outcome) {
      case zds::RecvOutcome::WouldBlock: read(); return;
      case zds::RecvOutcome::Closed:
        log->info("zds: node agent closed the connection; reconnecting");
        close_and_retry("closed by peer");
        return;
      case zds::RecvOutcome::Packet: break;
    }
    handle(std::move(r->packet));
  }

  // ---- requests --------------------------------------------------------------------------------

  void handle(zds::Packet packet) {
    if (stopped) return;
    auto req = zds::decode_request(packet.bytes);
    if (!req.ok()) {
      protocol_error(req.error());
      return;
    }
    const zds::RequestKind kind = req->kind;
    if (kind == zds::RequestKind::Add) {
      if (packet.fds.size() != 1) {
        protocol_error("AddWorkload for uid '" + req->uid + "' must carry exactly one fd, got " +
                       std::to_string(packet.fds.size()));
        return;
      }
      if (auto st = zds::check_netns_fd(packet.fds[0].get()); !st.ok()) {
        protocol_error("AddWorkload for uid '" + req->uid + "': " + st.error());
        return;
      }
    } else if (!packet.fds.empty()) {
      protocol_error(std::string(zds::to_string(kind)) + " must not carry fds, got " +
                     std::to_string(packet.fds.size()));  // the fds close with `packet`
      return;
    }
    // A valid request: this connection works, so the next outage starts from a short backoff.
    backoff = opts.initial_backoff;

    std::string ack_error;
    try {
      ack_error = dispatch(*req, packet);
    } catch (const std::exception& e) {
      log->error("zds: handler threw on {} {}: {}", zds::to_string(kind), req->uid, e.what());
      ack_error = std::string("internal error: ") + e.what();
    } catch (...) {
      log->error("zds: handler threw on {} {}", zds::to_string(kind), req->uid);
      ack_error = "internal error";
    }
    if (!ack_error.empty()) {
      log->warn("zds: {} {} failed: {}", zds::to_string(kind), req->uid, ack_error);
    }
    send(zds::encode_ack(ack_error), [self = shared_from_this()] { self->read(); });
  }

  // Runs one validated request; returns the Ack error text ("" = success).
  std::string dispatch(const zds::Request& req, zds::Packet& packet) {
    switch (req.kind) {
      case zds::RequestKind::Add: {
        if (req.uid.empty()) return "AddWorkload without a uid";
        mentioned.insert(req.uid);
        log->info("zds: add workload {} ({}/{} sa={})", req.uid, req.info.ns, req.info.name,
                  req.info.service_account);
        auto st = handler.add_workload(req.uid, req.info, std::move(packet.fds[0]));
        return st.ok() ? std::string() : st.error();
      }
      case zds::RequestKind::Keep:
        if (conn_snapshot_done) return "KeepWorkload is only valid before SnapshotSent";
        if (req.uid.empty()) return "KeepWorkload without a uid";
        mentioned.insert(req.uid);
        handler.keep_workload(req.uid);
        return {};
      case zds::RequestKind::Del:
        if (req.uid.empty()) return "DelWorkload without a uid";
        mentioned.erase(req.uid);
        log->info("zds: delete workload {}", req.uid);
        handler.del_workload(req.uid);
        return {};
      case zds::RequestKind::SnapshotSent:
        if (conn_snapshot_done) return "duplicate SnapshotSent";
        conn_snapshot_done = true;
        log->info("zds: snapshot received ({} workloads)", mentioned.size());
        handler.snapshot_done(mentioned);
        snapshot_seen.store(true);
        return {};
    }
    return "unknown request";
  }
};

ZdsClient::ZdsClient(asio::io_context& io, ZdsHandler& handler, ZdsClientOptions options)
    : impl_(std::make_shared<Impl>(io, handler, std::move(options))) {}

ZdsClient::~ZdsClient() { stop(); }

void ZdsClient::start() {
  asio::post(impl_->io, [self = impl_] { self->connect(); });
}

void ZdsClient::stop() {
  if (impl_->stopped.exchange(true)) return;
  // The socket and timer belong to the io thread: close there. From another thread the close
  // is posted; every pending callback already sees `stopped` and does nothing.
  auto close_all = [self = impl_] {
    self->timer.cancel();
    self->close("stopped");
  };
  if (impl_->io.get_executor().running_in_this_thread()) {
    close_all();
  } else {
    asio::post(impl_->io, close_all);
  }
}

bool ZdsClient::snapshot_received() const { return impl_->snapshot_seen.load(); }
std::uint64_t ZdsClient::connections() const { return impl_->connection_count.load(); }

}  // namespace ztunnel
