// Connection deadlines after TLS and the overload manager's per-connection actions. Kept apart
// from connection.cc (framing and I/O) because these are policies layered on top of it.
//
// Deadlines (server role): one timer per connection, armed only while something is pending
// (the preface until the peer's first SETTINGS; a CONNECT header block until its END_HEADERS);
// when it fires it re-arms itself for whatever is still pending, so a busy connection costs
// at most one timer wake-up per deadline period and an idle one none.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/connection.h"
#include "hbone/connection_stats.h"
#include "hbone/overload.h"

namespace hbone {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string Connection::peer_name() {
  if (!tls_) return "-";
  boost::system::error_code ec;
  auto ep = tls_->socket().remote_endpoint(ec);
  if (ec) return "-";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void Connection::start_deadlines() {
  if (role_ != Role::Server || !tls_) return;
  started_at_ = Clock::now();
  arm_deadline(started_at_ + settings_.preface_timeout);
}

void Connection::header_block_started(int32_t stream_id) {
  // Header blocks are contiguous on the wire (RFC 9113 §4.3): at most one is in progress.
  header_block_at_ = Clock::now();
  header_block_stream_ = stream_id;
  if (tls_) arm_deadline(header_block_at_ + settings_.connect_headers_timeout);
}

void Connection::header_block_done(int32_t stream_id) {
  if (stream_id != header_block_stream_) return;
  header_block_at_ = {};
  header_block_stream_ = 0;
}

void Connection::arm_deadline(Clock::time_point at) {
  if (deadline_armed_ || dead_) return;  // the armed timer re-arms itself for what is pending
  deadline_armed_ = true;
  deadline_timer_.expires_at(at);
  deadline_timer_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    auto c = w.lock();
    if (!c) return;
    c->deadline_armed_ = false;
    if (!ec && !c->dead_) c->check_deadlines();
  });
}

void Connection::check_deadlines() {
  const auto now = Clock::now();
  if (!preface_done_) {
    const auto due = started_at_ + settings_.preface_timeout;
    if (now < due) return arm_deadline(due);
    ConnectionStats::bump(connection_stats().timeouts[ConnectionStats::kPreface]);
    return abuse_close(ConnectionStats::kSlowPreface, "client preface timeout");
  }
  if (header_block_at_ != Clock::time_point{}) {
    const auto due = header_block_at_ + settings_.connect_headers_timeout;
    if (now < due) return arm_deadline(due);
    ConnectionStats::bump(connection_stats().timeouts[ConnectionStats::kConnectHeaders]);
    return abuse_close(ConnectionStats::kSlowHeaders, "CONNECT header block timeout");
  }
}

void Connection::abuse_close(int reason, const std::string& why) {
  if (dead_) return;
  ConnectionStats::bump(connection_stats().abuse_closes[reason]);
  spdlog::info("closing HBONE connection from {}: {}", peer_name(), why);
  close_reason_ = why;
  if (session_ != nullptr) {
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
    flush();  // best effort: the GOAWAY goes out if the socket takes it now
  }
  close(why);
}

void Connection::account(int64_t delta) {
  overload().account(held_, delta);
  held_ = static_cast<uint64_t>(static_cast<int64_t>(held_) + delta);
}

asio::awaitable<void> Connection::wait_while_overloaded() {
  auto self = shared_from_this();
  auto& o = overload();
  read_paused_ = true;
  ConnectionStats::bump(connection_stats().overload_actions[ConnectionStats::kStopReading]);
  spdlog::warn("overload: stop reading HBONE connection {} holding {} bytes ({} buffered of budget {})", peer_name(),
               held_, o.buffered(), o.budget());
  asio::steady_timer tick(exec_);
  uint64_t last_held = held_;
  auto last_change = Clock::now();
  while (!dead_ && !o.should_resume(held_)) {
    if (held_ != last_held) {
      last_held = held_;
      last_change = Clock::now();
    } else if (Clock::now() - last_change >= kStalledPauseLimit) {
      ConnectionStats::bump(connection_stats().overload_actions[ConnectionStats::kCloseConnection]);
      spdlog::warn("overload: close HBONE connection {} holding {} bytes, nothing drained for {} s", peer_name(), held_,
                   kStalledPauseLimit.count());
      close("stalled while over the buffer budget");
      break;
    }
    // Not reading means not seeing the peer's FIN or RST: ask the kernel instead, so a peer
    // that left does not keep its bytes (and this connection) until the drain deadline.
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (tls_ && ::getsockopt(tls_->socket().native_handle(), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        ti.tcpi_state != TCP_ESTABLISHED) {
      close("peer closed while reading was paused");
      break;
    }
    if (o.should_shed(held_)) shed_largest_stream();
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  read_paused_ = false;
  if (dead_) co_return;
  ConnectionStats::bump(connection_stats().overload_actions[ConnectionStats::kResumeReading]);
  spdlog::info("overload: resume reading HBONE connection {} holding {} bytes ({} buffered of budget {})", peer_name(),
               held_, o.buffered(), o.budget());
}

void Connection::shed_largest_stream() {
  Stream* largest = nullptr;
  size_t most = 0;
  for (auto& [id, s] : streams_) {
    if (s->failed() || s->closed()) continue;  // already going; its bytes are freed with it
    size_t h = s->buffered();
    if (h > most) {
      most = h;
      largest = s.get();
    }
  }
  if (largest == nullptr) return;
  ConnectionStats::bump(connection_stats().overload_actions[ConnectionStats::kResetStream]);
  spdlog::warn("overload: reset HBONE stream {} of {} holding {} bytes (connection {}, {} buffered of budget {})",
               largest->id(), peer_name(), most, held_, overload().buffered(), overload().budget());
  largest->reset(NGHTTP2_ENHANCE_YOUR_CALM);
}

}  // namespace hbone
