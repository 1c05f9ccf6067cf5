#include "cni/zds_server.h"

#include <unistd.h>

#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <spdlog/spdlog.h>

#include "common/admin/log.h"

namespace cni {

namespace asio = boost::asio;
// Boost 1.81 has no local::seq_packet_protocol; AF_UNIX + the generic protocol is the same.
using seqpacket = asio::generic::seq_packet_protocol;

namespace {

struct Item {
  std::string what;  // "AddWorkload <uid>", for logs and errors
  std::string bytes;
  std::shared_ptr<zds::UniqueFd> fd;  // kept open until the packet is sent
  ZdsServer::Done done;
};

}  // namespace

struct Conn {
  Conn(asio::io_context& io, std::uint64_t id, seqpacket::socket s)
      : id(id), sock(std::move(s)), timer(io) {}
  std::uint64_t id;
  seqpacket::socket sock;
  asio::steady_timer timer;  // ack deadline of the request in flight
  std::deque<Item> queue;    // front() is in flight when in_flight
  bool in_flight = false;
  bool hello_done = false;
  bool closed = false;
};

struct ZdsServer::Impl : std::enable_shared_from_this<ZdsServer::Impl> {
  Impl(asio::io_context& io, Options o, SnapshotFn s)
      : io(io), opts(std::move(o)), snapshot(std::move(s)), acceptor(io) {}

  asio::io_context& io;
  Options opts;
  SnapshotFn snapshot;
  asio::basic_socket_acceptor<seqpacket> acceptor;
  std::map<std::uint64_t, std::shared_ptr<Conn>> conns;  // ordered by id: last = newest
  std::uint64_t next_id = 1;
  bool stopped = false;
  std::shared_ptr<spdlog::logger> log = common::log::logger("cni");

  void complete(Done done, common::Status st) {
    if (!done) return;
    asio::post(io, [done = std::move(done), st = std::move(st)]() mutable { done(std::move(st)); });
  }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](const boost::system::error_code& ec,
                                                      seqpacket::socket s) {
      if (self->stopped) return;
      if (ec) {
        self->log->warn("zds: accept failed: {}", ec.message());
      } else {
        auto c = std::make_shared<Conn>(self->io, self->next_id++, std::move(s));
        self->conns[c->id] = c;
        self->log->info("zds: ztunnel connection #{} accepted, waiting for hello", c->id);
        self->read(c);
      }
      self->accept();
    });
  }

  void close(const std::shared_ptr<Conn>& c, const std::string& reason) {
    if (c->closed) return;
    c->closed = true;
    boost::system::error_code ignored;
    c->sock.close(ignored);
    c->timer.cancel();
    conns.erase(c->id);
    log->info("zds: ztunnel connection #{} closed: {}", c->id, reason);
    for (auto& item : c->queue) {
      complete(std::move(item.done),
               common::make_error("ztunnel connection lost before ack of " + item.what + ": " + reason));
    }
    c->queue.clear();
  }

  void read(const std::shared_ptr<Conn>& c) {
    c->sock.async_wait(seqpacket::socket::wait_read,
                       [self = shared_from_this(), c](const boost::system::error_code& ec) {
                         if (c->closed) return;
                         if (ec) {
                           self->close(c, ec.message());
                           return;
                         }
                         self->on_readable(c);
                       });
  }

  void on_readable(const std::shared_ptr<Conn>& c) {
    auto r = zds::recv_packet(c->sock.native_handle());
    if (!r.ok()) {
      close(c, r.error());
      return;
    }
    if (r->outcome == zds::RecvOutcome::WouldBlock) return read(c);
    if (r->outcome == zds::RecvOutcome::Closed) return close(c, "closed by ztunnel");
    // Any fds ztunnel might send are closed with the packet: the protocol has none this way.
    const std::string& bytes = r->packet.bytes;

    if (!c->hello_done) {
      auto v = zds::decode_hello(bytes);
      if (!v.ok()) return close(c, "bad hello: " + v.error());
      if (*v != zds::kVersionV1) {
        log->warn("zds: ztunnel #{} speaks version {}, continuing as V1", c->id, *v);
      }
      c->hello_done = true;
      auto pods = snapshot ? snapshot() : std::vector<SnapshotEntry>{};
      log->info("zds: ztunnel #{} said hello; replaying {} pods", c->id, pods.size());
      for (auto& p : pods) {
        enqueue(c, "AddWorkload " + p.uid,
                zds::encode_request({zds::RequestKind::Add, p.uid, p.info}), p.netns,
                [log = log, uid = p.uid, id = c->id](common::Status st) {
                  if (!st.ok()) log->warn("zds: replay of {} to ztunnel #{} failed: {}", uid, id, st.error());
                });
      }
      enqueue(c, "SnapshotSent", zds::encode_request({zds::RequestKind::SnapshotSent, "", {}}), nullptr,
              [log = log, id = c->id](common::Status st) {
                if (st.ok()) log->info("zds: ztunnel #{} acked the snapshot", id);
              });
      return read(c);
    }

    if (!c->in_flight) return close(c, "unexpected message from ztunnel (no request pending)");
    auto ack = zds::decode_ack(bytes);
    if (!ack.ok()) return close(c, "bad response: " + ack.error());
    Item item = std::move(c->queue.front());
    c->queue.pop_front();
    c->in_flight = false;
    c->timer.cancel();
    if (ack->empty()) {
      complete(std::move(item.done), common::ok_status());
    } else {
      complete(std::move(item.done), common::make_error("ztunnel rejected " + item.what + ": " + *ack));
    }
    pump(c);
    read(c);
  }

  void enqueue(const std::shared_ptr<Conn>& c, std::string what, std::string bytes,
               std::shared_ptr<zds::UniqueFd> fd, Done done) {
    if (c->closed) {
      complete(std::move(done), common::make_error("ztunnel connection lost before " + what));
      return;
    }
    c->queue.push_back(Item{std::move(what), std::move(bytes), std::move(fd), std::move(done)});
    pump(c);
  }

  // Sends the head of the queue when nothing is in flight (lockstep).
  void pump(const std::shared_ptr<Conn>& c) {
    if (c->closed || c->in_flight || c->queue.empty()) return;
    Item& item = c->queue.front();
    std::vector<int> fds;
    if (item.fd) {
      if (!item.fd->valid()) {
        Item bad = std::move(item);
        c->queue.pop_front();
        complete(std::move(bad.done), common::make_error(bad.what + ": netns fd is closed"));
        return pump(c);
      }
      fds.push_back(item.fd->get());
    }
    auto sent = zds::send_packet(c->sock.native_handle(), item.bytes, fds);
    if (!sent.ok()) return close(c, "send failed: " + sent.error());
    if (!*sent) {
      // The peer's queue is full (it is not reading): retry when writable.
      c->sock.async_wait(seqpacket::socket::wait_write,
                         [self = shared_from_this(), c](const boost::system::error_code& ec) {
                           if (c->closed) return;
                           if (ec) return self->close(c, ec.message());
                           self->pump(c);
                         });
      return;
    }
    c->in_flight = true;
    c->timer.expires_after(opts.ack_timeout);
    c->timer.async_wait([self = shared_from_this(), c, what = item.what](const boost::system::error_code& ec) {
      if (ec || c->closed || !c->in_flight) return;
      self->close(c, "no ack for " + what + " within " + std::to_string(self->opts.ack_timeout.count()) + " ms");
    });
  }

  std::shared_ptr<Conn> newest() const {
    for (auto it = conns.rbegin(); it != conns.rend(); ++it) {
      if (it->second->hello_done && !it->second->closed) return it->second;
    }
    return nullptr;
  }
};

ZdsServer::ZdsServer(asio::io_context& io, Options opts, SnapshotFn snapshot)
    : impl_(std::make_shared<Impl>(io, std::move(opts), std::move(snapshot))) {}

ZdsServer::~ZdsServer() { stop(); }

common::Status ZdsServer::listen() {
  auto& a = impl_->acceptor;
  const std::string& path = impl_->opts.socket_path;
  boost::system::error_code ec;
  seqpacket::endpoint ep;
  try {
    ep = seqpacket::endpoint(asio::local::stream_protocol::endpoint(path));
  } catch (const std::exception& e) {
    return common::make_error("bad socket path " + path + ": " + e.what());
  }
  // A socket file left by a previous run would make bind fail; replace it unless a live agent
  // still answers on it.
  if (zds::seqpacket_socket_in_use(path)) {
    return common::make_error("another node agent is already listening on " + path);
  }
  ::unlink(path.c_str());
  a.open(ep.protocol(), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(16, ec);
  if (ec) return common::make_error("cannot listen on " + path + ": " + ec.message());
  impl_->accept();
  return common::ok_status();
}

void ZdsServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  auto conns = impl_->conns;
  for (auto& [id, c] : conns) impl_->close(c, "agent stopping");
}

void ZdsServer::add(const std::string& uid, const zds::WorkloadInfo& info,
                    std::shared_ptr<zds::UniqueFd> netns, Done done) {
  auto c = impl_->newest();
  if (!c) {
    impl_->complete(std::move(done), common::make_error("no ztunnel connection"));
    return;
  }
  impl_->log->info("zds: AddWorkload {} -> ztunnel #{}", uid, c->id);
  impl_->enqueue(c, "AddWorkload " + uid, zds::encode_request({zds::RequestKind::Add, uid, info}),
                 std::move(netns), std::move(done));
}

void ZdsServer::del(const std::string& uid, Done done) {
  std::vector<std::shared_ptr<Conn>> targets;
  for (auto& [id, c] : impl_->conns) {
    if (c->hello_done && !c->closed) targets.push_back(c);
  }
  if (targets.empty()) {
    impl_->complete(std::move(done), common::ok_status());
    return;
  }
  // Joins the per-connection acks: the first error wins, `done` runs once all answered.
  struct Join {
    std::size_t pending;
    std::string first_error;
    Done done;
  };
  auto join = std::make_shared<Join>(Join{targets.size(), {}, std::move(done)});
  const std::string bytes = zds::encode_request({zds::RequestKind::Del, uid, {}});
  for (auto& c : targets) {
    impl_->log->info("zds: DelWorkload {} -> ztunnel #{}", uid, c->id);
    impl_->enqueue(c, "DelWorkload " + uid, bytes, nullptr, [join](common::Status st) {
      if (!st.ok() && join->first_error.empty()) join->first_error = st.error();
      if (--join->pending == 0 && join->done) {
        join->done(join->first_error.empty() ? common::ok_status() : common::Status(common::make_error(join->first_error)));
      }
    });
  }
}

std::size_t ZdsServer::connected() const {
  std::size_t n = 0;
  for (auto& [id, c] : impl_->conns) n += (c->hello_done && !c->closed) ? 1 : 0;
  return n;
}

}  // namespace cni
