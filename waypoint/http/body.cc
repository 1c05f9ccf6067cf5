#include "waypoint/http/body.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace waypoint::http {

namespace asio = boost::asio;

asio::awaitable<BodyChunk> StringBody::next() {
  BodyChunk c;
  if (!sent_) {
    sent_ = true;
    c.data = std::move(data_);
  }
  c.end = true;
  c.trailers = std::move(trailers_);
  co_return account(std::move(c));
}

class ReplayBody::Cursor final : public BodyReader {
 public:
  explicit Cursor(std::shared_ptr<ReplayBody> body) : body_(std::move(body)) {}
  asio::awaitable<BodyChunk> next() override {
    if (aborted_) {
      BodyChunk c;
      c.error = true;
      c.detail = "aborted";
      co_return account(std::move(c));
    }
    auto keep = body_;
    co_return account(co_await keep->read_at(offset_));
  }
  // An attempt that ends early only stops reading; the source stays for the others.
  void abort() override { aborted_ = true; }
  bool ready() const override { return aborted_ || body_->ready_at(offset_); }

 private:
  std::shared_ptr<ReplayBody> body_;
  uint64_t offset_ = 0;
  bool aborted_ = false;
};

ReplayBody::ReplayBody(asio::any_io_executor ex, std::shared_ptr<BodyReader> source, std::string initial, size_t limit)
    : source_(std::move(source)), kept_(std::move(initial)), limit_(limit), pulled_(ex) {
  if (!source_) ended_ = true;
  if (kept_.size() > limit_) overflowed_ = true;
}

std::shared_ptr<BodyReader> ReplayBody::cursor() {
  return std::make_shared<Cursor>(shared_from_this());
}

asio::awaitable<BodyChunk> ReplayBody::read_at(uint64_t& offset) {
  for (;;) {
    BodyChunk c;
    if (offset < base_) {
      // This reader fell behind a body that is no longer kept (only a superseded attempt can).
      c.error = true;
      c.detail = "request body no longer buffered (over the buffer limit)";
      co_return c;
    }
    const uint64_t have_end = base_ + kept_.size();
    if (offset < have_end) {
      const size_t from = static_cast<size_t>(offset - base_);
      const size_t n = std::min<size_t>(kept_.size() - from, 64 * 1024);
      c.data.assign(kept_, from, n);
      offset += n;
      co_return c;
    }
    if (ended_ || failed_) {
      c.end = ended_;
      c.error = failed_;
      c.detail = error_;
      if (ended_) c.trailers = trailers_;
      co_return c;
    }
    if (pulling_) {
      // Another reader is already waiting on the downstream: share what it gets.
      co_await pulled_.wait();
      continue;
    }
    pulling_ = true;
    auto keep = shared_from_this();
    BodyChunk got = co_await source_->next();
    pulling_ = false;
    if (!got.data.empty()) {
      if (!overflowed_ && kept_.size() + got.data.size() > limit_) overflowed_ = true;
      if (overflowed_) {
        base_ += kept_.size();
        kept_ = std::move(got.data);
      } else {
        kept_.append(got.data);
      }
    }
    if (got.error) {
      failed_ = true;
      error_ = got.detail.empty() ? "downstream request body cut short" : got.detail;
    } else if (got.end) {
      ended_ = true;
      trailers_ = std::move(got.trailers);
    }
    pulled_.notify();
  }
}

}  // namespace waypoint::http
