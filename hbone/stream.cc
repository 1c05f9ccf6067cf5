#include "hbone/stream.h"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "hbone/connection.h"

namespace hbone {
namespace asio = boost::asio;

Stream::Stream(std::shared_ptr<Connection> conn, int32_t id)
    : conn_(std::move(conn)), id_(id), read_signal_(conn_->executor()), write_signal_(conn_->executor()) {}

Stream::~Stream() {
  if (accounted_ != 0) conn_->account(-static_cast<int64_t>(accounted_));
}

void Stream::sync_accounting() {
  const size_t now = buffered();
  if (now == accounted_) return;
  conn_->account(static_cast<int64_t>(now) - static_cast<int64_t>(accounted_));
  accounted_ = now;
}

asio::any_io_executor Stream::executor() { return conn_->executor(); }

// All state is re-checked by the waiter after waking, so spurious wake-ups are harmless.
void Stream::wake_readers() { read_signal_.notify(); }
void Stream::wake_writers() { write_signal_.notify(); }

void Stream::respond(int status, const std::vector<Header>& headers) {
  if (responded_ || closed_) return;
  responded_ = true;
  status_ = status;
  conn_->submit_response(*this, status, headers);
  // A non-2xx response is headers-only with END_STREAM (as upstream); the client resets the
  // stream once it has read the status.
  if (status < 200 || status >= 300) write_shutdown_ = true;
  conn_->flush_soon();
}

asio::awaitable<bool> Stream::wait_readable() {
  for (;;) {
    if (!recv_.empty()) co_return true;
    if (remote_eof_ || failed_ || closed_) co_return false;
    co_await read_signal_.wait();
  }
}

void Stream::consume(size_t n) {
  recv_.consume(n);
  sync_accounting();
  if (!closed_) conn_->consume(id_, n);
}

namespace {
// Bytes a stream may queue before its writers wait for the session to frame them.
constexpr size_t kSendQueueLimit = 256 * 1024;
}  // namespace

Stream::WriteState Stream::write_state() const {
  if (failed_ || closed_ || write_shutdown_) return WriteState::Closed;
  if (conn_->read_paused() || send_.size() >= kSendQueueLimit) return WriteState::Full;
  return WriteState::Ready;
}

asio::awaitable<bool> Stream::wait_writable() {
  const size_t limit = kSendQueueLimit;
  for (;;) {
    if (failed_ || closed_ || write_shutdown_) co_return false;
    if (conn_->read_paused()) {
      // The overload manager stopped this connection: take nothing more from the app until
      // it resumes (polled; a paused connection is rare and short-lived).
      asio::steady_timer poll(executor(), std::chrono::milliseconds(50));
      co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (send_.size() < limit) co_return true;
    co_await write_signal_.wait();
  }
}

void Stream::commit_write(size_t n) {
  if (n == 0) return;
  send_.commit(n);
  sync_accounting();
  conn_->resume(id_);
  conn_->flush_soon();
}

asio::awaitable<bool> Stream::write(std::span<const uint8_t> data) {
  while (!data.empty()) {
    if (!co_await wait_writable()) co_return false;
    auto room = send_.prepare(data.size());
    std::memcpy(room.data(), data.data(), room.size());
    commit_write(room.size());
    data = data.subspan(room.size());
  }
  co_return true;
}

void Stream::shutdown_write() {
  if (write_shutdown_ || closed_) return;
  write_shutdown_ = true;
  conn_->resume(id_);
  conn_->flush_soon();
}

void Stream::reset(uint32_t h2_error) {
  if (closed_) return;
  conn_->submit_reset(id_, h2_error);
  fail("reset locally");
  conn_->flush();
}

size_t Stream::on_data(const uint8_t* data, size_t n) {
  size_t direct = 0;
  if (sink_ != nullptr && sink_->is_open() && recv_.empty()) {
    // Errors (peer gone, reset) are left to the relay: it finds them on its own write of
    // the queued remainder and reports them there.
    ssize_t w = ::send(sink_->native_handle(), data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      direct = static_cast<size_t>(w);
      direct_bytes_ += direct;
    }
  }
  if (direct < n) {
    recv_.append(data + direct, n - direct);
    sync_accounting();
    wake_readers();
  }
  return direct;
}

void Stream::on_remote_eof() {
  remote_eof_ = true;
  wake_readers();
}

void Stream::on_response(int status) {
  status_ = status;
  wake_readers();
}

void Stream::on_close(uint32_t h2_error) {
  closed_ = true;
  if (h2_error != 0 && !failed_) {
    failed_ = true;
    failure_ = "stream reset by peer (h2 error " + std::to_string(h2_error) + ")";
  } else if (!remote_eof_ && !failed_) {
    failed_ = true;
    failure_ = "stream closed before end of data";
  }
  send_.clear();
  sync_accounting();
  wake_readers();
  wake_writers();
}

void Stream::fail(std::string why) {
  if (!failed_) {
    failed_ = true;
    failure_ = std::move(why);
  }
  wake_readers();
  wake_writers();
}

size_t Stream::frame_out(uint8_t* out, size_t max) {
  size_t n = send_.take(out, max);
  sync_accounting();
  if (send_.size() < 128 * 1024) wake_writers();
  return n;
}

asio::awaitable<bool> Stream::wait_response() {
  for (;;) {
    if (status_ >= 200) co_return status_ < 300;
    if (failed_ || closed_) co_return false;
    co_await read_signal_.wait();
  }
}

}  // namespace hbone
