// Bodies in flight. A message body is not a string any more but a BodyReader the consumer pulls
// chunk by chunk, so a body crosses the waypoint as it arrives and a slow consumer stalls the
// producer (the codec reads from the peer only when the consumer asks: back-pressure, memory
// bounded per stream by one chunk plus the codec's window).
//   BodyReader: one body, pulled in order by one consumer at a time; next() returns data, then
//   one final chunk with end = true (and the trailers, if any), or an error. abort() tells the
//   producer the consumer is gone (an upstream response: reset that stream / close that
//   connection; a downstream request: the request is over).
//   StringBody: a body already in memory (local replies, tests).
//   ReplayBody: Envoy's router buffering for retries and mirrors. It keeps a copy of what the
//   downstream sent while the copy stays within the buffer limit (Envoy's
//   per_connection_buffer_limit_bytes, 1 MiB by default); each attempt reads it through its own
//   cursor() from the start. Past the limit the copy is dropped and replayable() turns false:
//   the request is neither retried nor mirrored any more, and the attempt in flight completes.
// Threading: every member on the one worker that serves the request; no locks.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "common/wakeup.h"
#include "waypoint/router/http_message.h"

namespace waypoint::http {

struct BodyChunk {
  std::string data;
  bool end = false;    // no more data after this chunk
  bool error = false;  // the body was cut short (peer reset, connection lost, aborted)
  std::string detail;
  router::HeaderList trailers;  // with end
};

class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual boost::asio::awaitable<BodyChunk> next() = 0;
  virtual void abort() = 0;
  // next() would complete without waiting on a peer (the data, end or error is at hand). A
  // writer uses it to send a message head together with the body's first bytes instead of one
  // write (one HBONE frame, one TLS record) each, without holding a head back while the peer
  // has sent no body yet. false when unsure.
  virtual bool ready() const { return false; }
  // Body bytes handed to the consumer so far (telemetry).
  uint64_t bytes() const { return bytes_; }
  bool finished() const { return finished_; }  // end or error was returned

 protected:
  // Implementations pass every chunk they return through here.
  BodyChunk&& account(BodyChunk&& c) {
    bytes_ += c.data.size();
    if (c.end || c.error) finished_ = true;
    return std::move(c);
  }

 private:
  uint64_t bytes_ = 0;
  bool finished_ = false;
};

class StringBody final : public BodyReader {
 public:
  explicit StringBody(std::string s, router::HeaderList trailers = {})
      : data_(std::move(s)), trailers_(std::move(trailers)) {}
  boost::asio::awaitable<BodyChunk> next() override;
  void abort() override {}
  bool ready() const override { return true; }

 private:
  std::string data_;
  router::HeaderList trailers_;
  bool sent_ = false;
};

// A wake-up between coroutines on one executor: wait() until the next notify(). A parked
// handler posted on notify (common::Wakeup), not a never-expiring timer: no timer-queue insert
// and cancel per wait on the data path.
class Signal {
 public:
  explicit Signal(boost::asio::any_io_executor ex) : wakeup_(std::move(ex)) {}
  boost::asio::awaitable<void> wait() { return wakeup_.wait(); }
  void notify() { wakeup_.notify(); }

 private:
  common::Wakeup wakeup_;
};

class ReplayBody : public std::enable_shared_from_this<ReplayBody> {
 public:
  ReplayBody(boost::asio::any_io_executor ex, std::shared_ptr<BodyReader> source, std::string initial, size_t limit);
  // A reader of the whole body from its first byte (one per attempt or mirror).
  std::shared_ptr<BodyReader> cursor();
  // The body can still be read again from its start (retries and mirrors allowed).
  bool replayable() const { return !overflowed_; }
  bool complete() const { return ended_; }
  // The downstream body failed (the client went away or reset its stream).
  bool source_failed() const { return failed_; }
  // Total body bytes taken from the downstream.
  uint64_t received() const { return base_ + kept_.size(); }
  bool empty_body() const { return ended_ && received() == 0 && trailers_.empty(); }
  // read_at(offset) would complete without waiting on the downstream.
  bool ready_at(uint64_t offset) const {
    return offset < base_ + kept_.size() || ended_ || failed_ || (!pulling_ && source_ && source_->ready());
  }
  // The request is over: a pull in progress is ended by aborting the source.
  void abort_source() {
    if (source_) source_->abort();
  }

 private:
  class Cursor;
  boost::asio::awaitable<BodyChunk> read_at(uint64_t& offset);
  std::shared_ptr<BodyReader> source_;
  // Bytes [base_, base_ + kept_.size()) are in memory: from 0 while replayable, else only the
  // latest chunk.
  std::string kept_;
  uint64_t base_ = 0;
  size_t limit_;
  bool overflowed_ = false;
  bool ended_ = false;
  bool failed_ = false;
  std::string error_;
  router::HeaderList trailers_;
  bool pulling_ = false;
  Signal pulled_;
};

}  // namespace waypoint::http
