// DNS proxy I/O: UDP/TCP servers, upstream forwarding, metrics. Behaviour and bounds are
// described in dns_proxy.h; naming rules in dns_resolve.h.
#include "ztunnel/dns/proxy.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <random>
#include <system_error>
#include <unordered_set>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/net/socket_options.h"
#include "ztunnel/dns/message.h"

namespace ztunnel::dns {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// Back-off after an accept error such as EMFILE, so a full fd table is not a busy loop.
constexpr auto kAcceptErrorBackoff = std::chrono::milliseconds(100);

enum class Transport : uint8_t { Udp, Tcp };

std::string_view protocol_label(Transport t) {
  return t == Transport::Udp ? "udp" : "tcp";
}

std::string or_unknown(const std::string& s) {
  return s.empty() ? "unknown" : s;
}

std::string normalize_domain(std::string d) {
  while (!d.empty() && d.back() == '.') d.pop_back();
  for (char& c : d) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return d;
}

// A reply from upstream belongs to our try when it is a response with our id to the same
// question (case-insensitive name). Anything else is ignored: late replies to an earlier try,
// or spoofing attempts.
bool matches_request(std::span<const uint8_t> reply, uint16_t id, const Question& q) {
  auto h = parse_header(reply);
  if (!h || !h->qr() || h->id != id) return false;
  if (h->qdcount == 0) return h->rcode() != Rcode::NoError;  // e.g. FORMERR without question
  if (h->qdcount != 1) return false;
  size_t end = 0;
  auto name = read_name(reply, kHeaderSize, end);
  if (!name || end + 4 > reply.size()) return false;
  const uint16_t qtype = static_cast<uint16_t>((reply[end] << 8) | reply[end + 1]);
  const uint16_t qclass = static_cast<uint16_t>((reply[end + 2] << 8) | reply[end + 3]);
  return *name == q.name && qtype == q.qtype && qclass == q.qclass;
}

// Upstream said "not me": try the next server, keeping this reply as a last resort.
bool retryable(std::span<const uint8_t> reply) {
  auto h = parse_header(reply);
  if (!h) return true;
  const Rcode r = h->rcode();
  return r == Rcode::ServFail || r == Rcode::Refused || r == Rcode::NotImp;
}

void set_id(std::vector<uint8_t>& msg, uint16_t id) {
  msg[0] = static_cast<uint8_t>(id >> 8);
  msg[1] = static_cast<uint8_t>(id & 0xFF);
}

void log_exception(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("dns: unexpected exception: {}", ex.what());
  } catch (...) {
    spdlog::error("dns: unexpected exception");
  }
}

}  // namespace

DnsMetrics::DnsMetrics(common::metrics::Registry& r)
    : requests(r.counter(
          "istio_dns_requests_total", "Total number of DNS requests (unstable)",
          {"request_query_type", "request_protocol", "source_canonical_service", "source_canonical_revision"})),
      upstream_requests(r.counter(
          "istio_dns_upstream_requests_total", "Total number of DNS requests forwarded to upstream (unstable)",
          {"request_query_type", "request_protocol", "source_canonical_service", "source_canonical_revision"})),
      upstream_failures(r.counter(
          "istio_dns_upstream_failures_total",
          "Total number of DNS requests that failed to forward upstream (unstable)",
          {"request_query_type", "request_protocol", "source_canonical_service", "source_canonical_revision"})),
      upstream_duration(r.histogram(
          "istio_dns_upstream_request_duration_seconds",
          "Total time in seconds Istio takes to get DNS response from upstream (unstable)",
          {"request_query_type", "request_protocol", "source_canonical_service", "source_canonical_revision"},
          {0.0005, 0.001, 0.01, 0.1, 1, 5})) {}

// All mutable state; touched only on the sockets' executor (one thread).
struct DnsProxy::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(DnsProxyInputs inputs)
      : in(std::move(inputs)),
        ex(in.udp.is_open() ? in.udp.get_executor() : in.tcp.get_executor()),
        rng(std::random_device{}()) {
    ctx.client_ns = in.client.ns;
    ctx.client_network = in.client.network;
    ctx.cluster_domain = normalize_domain(in.cluster_domain);
    ctx.preferred_namespace = in.preferred_namespace;
    canonical_service = or_unknown(in.client.canonical_service);
    canonical_revision = or_unknown(in.client.canonical_revision);
  }

  DnsProxyInputs in;
  asio::any_io_executor ex;
  ResolveContext ctx;
  std::string canonical_service, canonical_revision;
  std::mt19937_64 rng;
  bool stopped = false;
  size_t inflight = 0;
  size_t tcp_connections = 0;
  std::unordered_set<tcp::socket*> tcp_clients;  // live client connections, closed by stop()
  std::shared_ptr<const HostnameIndex> index;    // for the last snapshot seen

  // RAII counter for in-flight forwards / live connections (coroutines may end anywhere).
  struct CountGuard {
    size_t& n;
    explicit CountGuard(size_t& c) : n(c) { ++n; }
    ~CountGuard() { --n; }
    CountGuard(const CountGuard&) = delete;
    CountGuard& operator=(const CountGuard&) = delete;
  };

  common::metrics::Counter* counter(common::metrics::CounterFamily& f, uint16_t qtype, Transport t) {
    return f.get({query_type_label(qtype), protocol_label(t), canonical_service, canonical_revision});
  }

  // What to do with one query: answer now (response set), forward (forward = true, query
  // set), or drop (neither).
  struct Decision {
    std::optional<std::vector<uint8_t>> response;
    bool forward = false;
    Query query;
  };

  static size_t max_reply(const Query& q, Transport t) {
    if (t == Transport::Tcp) return kMaxTcpMessage;
    return q.edns_udp_size ? *q.edns_udp_size : kClassicUdpPayload;
  }

  std::vector<uint8_t> error_reply(const Query& q, Rcode rcode, Transport t) {
    ResponseOptions o;
    o.rcode = rcode;
    o.max_size = max_reply(q, t);
    o.include_opt = q.edns_udp_size.has_value();
    return build_response(q, {}, o);
  }

  Decision decide(std::span<const uint8_t> packet, Transport t) {
    Decision d;
    auto parsed = parse_query(packet);
    if (!parsed) {
      spdlog::debug("dns: malformed {} query: {}", protocol_label(t), parsed.error());
      d.response = build_error_from_raw(packet, Rcode::FormErr);
      return d;
    }
    d.query = std::move(*parsed);
    const Query& q = d.query;
    counter(in.metrics->requests, q.question.qtype, t)->inc();
    if (q.header.opcode() != 0) {
      d.response = error_reply(q, Rcode::NotImp, t);
      return d;
    }
    SnapshotConstSharedPtr snap = in.snapshot();
    if (snap) {
      if (!index || index->snapshot_ptr() != snap) index = HostnameIndex::shared_index(snap);
      if (auto local = resolve_local(*index, ctx, q.question, rng())) {
        ResponseOptions o;
        o.authoritative = true;
        o.max_size = max_reply(q, t);
        o.include_opt = q.edns_udp_size.has_value();
        d.response = build_response(q, local->answers, o);
        spdlog::debug("dns: {} {} answered locally ({} records)", q.question.name, query_type_label(q.question.qtype),
                      local->answers.size());
        return d;
      }
    }
    d.forward = true;
    return d;
  }

  // ---- upstream ----

  // Opens `s` for `ep`'s family and marks it with PACKET_MARK (so the in-pod rules let the
  // proxy's own query out uncaptured). False when either fails (a failed mark is logged).
  template <typename Socket>
  bool open_upstream(Socket& s, const typename Socket::endpoint_type& ep) {
    boost::system::error_code ec;
    s.open(ep.protocol(), ec);
    if (ec) return false;
    if (in.mark) {
      if (auto st = common::net::sockopt::set_mark(s.native_handle(), *in.mark); !st) {
        spdlog::warn("dns: upstream socket: {}", st.error());
        return false;
      }
    }
    return true;
  }

  asio::awaitable<std::optional<std::vector<uint8_t>>> try_udp(const SocketAddr& server,
                                                               const std::vector<uint8_t>& req, uint16_t id,
                                                               const Question& q) {
    udp::socket s(ex);
    const udp::endpoint ep(server.ip, server.port);
    if (!open_upstream(s, ep)) co_return std::nullopt;
    boost::system::error_code ec;
    // Connected: the kernel drops datagrams from anyone but the server.
    s.connect(ep, ec);
    if (ec) co_return std::nullopt;
    auto [sec, sent] = co_await s.async_send(asio::buffer(req), kUseTuple);
    if (sec) co_return std::nullopt;
    std::vector<uint8_t> buf(kMaxTcpMessage);
    asio::steady_timer deadline(ex);
    deadline.expires_after(in.upstream_timeout);
    for (;;) {
      auto r = co_await (s.async_receive(asio::buffer(buf), kUseTuple) || deadline.async_wait(kUseTuple));
      if (r.index() == 1) co_return std::nullopt;  // timed out
      auto [rec, n] = std::get<0>(r);
      if (rec) co_return std::nullopt;  // e.g. ECONNREFUSED from an ICMP port unreachable
      if (matches_request(std::span<const uint8_t>(buf.data(), n), id, q)) {
        buf.resize(n);
        co_return buf;
      }
    }
  }

  asio::awaitable<std::optional<std::vector<uint8_t>>> try_tcp(const SocketAddr& server,
                                                               const std::vector<uint8_t>& req, uint16_t id,
                                                               const Question& q) {
    tcp::socket s(ex);
    const tcp::endpoint ep(server.ip, server.port);
    if (!open_upstream(s, ep)) co_return std::nullopt;
    asio::steady_timer deadline(ex);
    deadline.expires_after(in.upstream_timeout);
    auto c = co_await (s.async_connect(ep, kUseTuple) || deadline.async_wait(kUseTuple));
    if (c.index() == 1 || std::get<0>(std::get<0>(c))) co_return std::nullopt;

    const std::array<uint8_t, 2> len{static_cast<uint8_t>(req.size() >> 8), static_cast<uint8_t>(req.size() & 0xFF)};
    const std::array<asio::const_buffer, 2> out{asio::buffer(len), asio::buffer(req)};
    auto w = co_await (asio::async_write(s, out, kUseTuple) || deadline.async_wait(kUseTuple));
    if (w.index() == 1 || std::get<0>(std::get<0>(w))) co_return std::nullopt;

    // A TCP upstream may send replies to nothing else, but stay strict anyway: read one
    // message and check it.
    std::array<uint8_t, 2> rlen{};
    auto r1 = co_await (asio::async_read(s, asio::buffer(rlen), kUseTuple) || deadline.async_wait(kUseTuple));
    if (r1.index() == 1 || std::get<0>(std::get<0>(r1))) co_return std::nullopt;
    std::vector<uint8_t> buf((static_cast<size_t>(rlen[0]) << 8) | rlen[1]);
    auto r2 = co_await (asio::async_read(s, asio::buffer(buf), kUseTuple) || deadline.async_wait(kUseTuple));
    if (r2.index() == 1 || std::get<0>(std::get<0>(r2))) co_return std::nullopt;
    if (!matches_request(buf, id, q)) co_return std::nullopt;
    co_return buf;
  }

  // Tries every upstream `attempts` times in order. Returns the reply with the client's id
  // restored, or nullopt when no server gave a usable one. Records the upstream metrics.
  asio::awaitable<std::optional<std::vector<uint8_t>>> forward(std::vector<uint8_t> req, const Query& q, Transport t) {
    counter(in.metrics->upstream_requests, q.question.qtype, t)->inc();
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::vector<uint8_t>> fallback;  // a SERVFAIL/REFUSED reply, if that is all we get
    std::optional<std::vector<uint8_t>> answer;
    for (unsigned round = 0; round < in.attempts && !answer && !stopped; ++round) {
      for (const SocketAddr& server : in.upstreams) {
        // Fresh id per try (RFC 5452): only this try's reply can match.
        const auto id = static_cast<uint16_t>(rng() & 0xFFFF);
        set_id(req, id);
        // (Not a conditional expression: GCC 12 miscompiles co_await inside ?:.)
        std::optional<std::vector<uint8_t>> reply;
        if (t == Transport::Udp) {
          reply = co_await try_udp(server, req, id, q.question);
        } else {
          reply = co_await try_tcp(server, req, id, q.question);
        }
        if (!reply) {
          spdlog::debug("dns: upstream {} ({}) gave no usable reply for {}", server.to_string(), protocol_label(t),
                        q.question.name);
          continue;
        }
        if (retryable(*reply)) {
          fallback = std::move(reply);
          continue;
        }
        answer = std::move(reply);
        break;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    in.metrics->upstream_duration
        .get({query_type_label(q.question.qtype), protocol_label(t), canonical_service, canonical_revision})
        ->observe(secs);
    if (!answer) answer = std::move(fallback);
    if (!answer) {
      counter(in.metrics->upstream_failures, q.question.qtype, t)->inc();
      co_return std::nullopt;
    }
    set_id(*answer, q.header.id);
    co_return answer;
  }

  // ---- UDP server ----

  void send_udp(const std::vector<uint8_t>& msg, const udp::endpoint& to) {
    if (!in.udp.is_open()) return;
    boost::system::error_code ec;
    // Non-blocking: if the socket buffer is full the reply is dropped and the client retries,
    // which beats queueing unbounded replies.
    in.udp.send_to(asio::buffer(msg), to, 0, ec);
    if (ec) spdlog::debug("dns: udp reply to {}: {}", to.address().to_string(), ec.message());
  }

  asio::awaitable<void> forward_udp(std::vector<uint8_t> req, Query q, udp::endpoint from) {
    auto self = shared_from_this();
    CountGuard g(inflight);
    auto reply = co_await forward(std::move(req), q, Transport::Udp);
    if (stopped) co_return;
    send_udp(reply ? *reply : error_reply(q, Rcode::ServFail, Transport::Udp), from);
  }

  asio::awaitable<void> udp_loop() {
    auto self = shared_from_this();
    // Queries longer than this are cut by the kernel and then fail to parse (FORMERR).
    std::vector<uint8_t> buf(kMaxUdpPayload);
    udp::endpoint from;
    while (!stopped) {
      auto [ec, n] = co_await in.udp.async_receive_from(asio::buffer(buf), from, kUseTuple);
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted || !in.udp.is_open()) break;
        continue;  // e.g. ECONNREFUSED reported for an earlier reply
      }
      const std::span<const uint8_t> packet(buf.data(), n);
      Decision d = decide(packet, Transport::Udp);
      if (d.response) {
        send_udp(*d.response, from);
      } else if (d.forward) {
        if (inflight >= in.max_inflight) {
          spdlog::debug("dns: too many queries in flight; SERVFAIL for {}", d.query.question.name);
          send_udp(error_reply(d.query, Rcode::ServFail, Transport::Udp), from);
          continue;
        }
        asio::co_spawn(ex, forward_udp(std::vector<uint8_t>(packet.begin(), packet.end()), std::move(d.query), from),
                       log_exception);
      }
    }
  }

  // ---- TCP server ----

  asio::awaitable<void> tcp_connection(tcp::socket sock) {
    auto self = shared_from_this();
    CountGuard live(tcp_connections);
    tcp_clients.insert(&sock);
    struct Unregister {
      Impl& impl;
      tcp::socket* s;
      ~Unregister() { impl.tcp_clients.erase(s); }
    } unregister{*this, &sock};

    asio::steady_timer deadline(ex);
    std::vector<uint8_t> buf;
    while (!stopped) {
      // One deadline covers reading a whole message: a client that trickles bytes is idle too.
      deadline.expires_after(in.tcp_idle_timeout);
      std::array<uint8_t, 2> len{};
      auto r1 = co_await (asio::async_read(sock, asio::buffer(len), kUseTuple) || deadline.async_wait(kUseTuple));
      if (r1.index() == 1 || std::get<0>(std::get<0>(r1))) break;
      const size_t n = (static_cast<size_t>(len[0]) << 8) | len[1];
      if (n == 0) break;
      buf.resize(n);
      auto r2 = co_await (asio::async_read(sock, asio::buffer(buf), kUseTuple) || deadline.async_wait(kUseTuple));
      if (r2.index() == 1 || std::get<0>(std::get<0>(r2))) break;

      Decision d = decide(buf, Transport::Tcp);
      std::optional<std::vector<uint8_t>> reply = std::move(d.response);
      if (d.forward) {
        if (inflight >= in.max_inflight) {
          reply = error_reply(d.query, Rcode::ServFail, Transport::Tcp);
        } else {
          CountGuard g(inflight);
          reply = co_await forward(buf, d.query, Transport::Tcp);
          if (!reply) reply = error_reply(d.query, Rcode::ServFail, Transport::Tcp);
        }
      }
      if (!reply || stopped) break;  // undecodable garbage (not even a header): hang up

      const std::array<uint8_t, 2> rlen{static_cast<uint8_t>(reply->size() >> 8),
                                        static_cast<uint8_t>(reply->size() & 0xFF)};
      const std::array<asio::const_buffer, 2> out{asio::buffer(rlen), asio::buffer(*reply)};
      deadline.expires_after(in.tcp_idle_timeout);
      auto w = co_await (asio::async_write(sock, out, kUseTuple) || deadline.async_wait(kUseTuple));
      if (w.index() == 1 || std::get<0>(std::get<0>(w))) break;
    }
    boost::system::error_code ignored;
    sock.close(ignored);
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    asio::steady_timer backoff(ex);
    while (!stopped) {
      auto [ec, sock] = co_await in.tcp.async_accept(kUseTuple);
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted || !in.tcp.is_open()) break;
        spdlog::warn("dns: accept: {}", ec.message());
        backoff.expires_after(kAcceptErrorBackoff);
        co_await backoff.async_wait(kUseTuple);
        continue;
      }
      if (tcp_connections >= in.max_tcp_connections) {
        spdlog::debug("dns: too many TCP connections; closing a new one");
        boost::system::error_code ignored;
        sock.close(ignored);
        continue;
      }
      asio::co_spawn(ex, tcp_connection(std::move(sock)), log_exception);
    }
  }

  void start() {
    if (in.udp.is_open()) {
      boost::system::error_code ec;
      in.udp.non_blocking(true, ec);
      asio::co_spawn(ex, udp_loop(), log_exception);
    }
    if (in.tcp.is_open()) asio::co_spawn(ex, accept_loop(), log_exception);
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    boost::system::error_code ignored;
    in.udp.close(ignored);
    in.tcp.close(ignored);
    for (tcp::socket* s : tcp_clients) s->close(ignored);
  }
};

common::Result<std::unique_ptr<DnsProxy>> DnsProxy::create(DnsProxyInputs inputs) {
  if (inputs.metrics == nullptr) return common::make_error("dns proxy: metrics not set");
  if (!inputs.snapshot) return common::make_error("dns proxy: snapshot source not set");
  if (inputs.upstreams.empty()) return common::make_error("dns proxy: no upstream resolvers");
  if (!inputs.udp.is_open() && !inputs.tcp.is_open()) {
    return common::make_error("dns proxy: neither a UDP socket nor a TCP acceptor given");
  }
  if (inputs.attempts == 0) inputs.attempts = 1;
  if (inputs.max_inflight == 0) inputs.max_inflight = 1;
  std::optional<udp::endpoint> udp_ep;
  std::optional<tcp::endpoint> tcp_ep;
  boost::system::error_code ec;
  if (inputs.udp.is_open()) {
    auto ep = inputs.udp.local_endpoint(ec);
    if (ec) return common::make_error("dns proxy: udp socket: " + ec.message());
    udp_ep = ep;
  }
  if (inputs.tcp.is_open()) {
    auto ep = inputs.tcp.local_endpoint(ec);
    if (ec) return common::make_error("dns proxy: tcp acceptor: " + ec.message());
    tcp_ep = ep;
  }
  auto p = std::make_unique<DnsProxy>(PrivateTag{}, std::make_shared<Impl>(std::move(inputs)));
  p->udp_endpoint_ = udp_ep;
  p->tcp_endpoint_ = tcp_ep;
  return p;
}

DnsProxy::DnsProxy(PrivateTag, std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

DnsProxy::~DnsProxy() {
  stop();
}

void DnsProxy::start() {
  asio::post(impl_->ex, [impl = impl_] { impl->start(); });
}

void DnsProxy::stop() {
  asio::post(impl_->ex, [impl = impl_] { impl->stop(); });
}

}  // namespace ztunnel::dns
