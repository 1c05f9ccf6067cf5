// ByteQueue: a FIFO of bytes stored in fixed blocks. Appending never moves bytes already
// queued, so a span returned by front() stays valid across later appends until consume()
// passes it — this is what lets an async write to a socket run straight out of the queue while
// the HTTP/2 session keeps appending. Empty queues hold no memory (idle tunnels cost nothing).
// Single-threaded: owned by one connection's worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>

namespace hbone {

class ByteQueue {
 public:
  // Blocks are sized to what is being written (at least `min_block`), so a 1 KiB request does
  // not pin 64 KiB, and are left uninitialised (no memset of memory about to be overwritten).
  explicit ByteQueue(size_t min_block = 4 * 1024) : min_block_(min_block) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  void append(const uint8_t* data, size_t n) {
    while (n > 0) {
      auto span = prepare(n);
      size_t take = span.size() < n ? span.size() : n;
      std::memcpy(span.data(), data, take);
      commit(take);
      data += take;
      n -= take;
    }
  }

  // Writable space at the tail (at most `want` bytes, at least 1 when want > 0).
  std::span<uint8_t> prepare(size_t want) {
    if (blocks_.empty() || blocks_.back().end == blocks_.back().cap) {
      size_t cap = want > min_block_ ? want : min_block_;
      blocks_.push_back(Block{std::unique_ptr<uint8_t[]>(new uint8_t[cap]), cap, 0, 0});
    }
    Block& b = blocks_.back();
    size_t room = b.cap - b.end;
    return {b.data.get() + b.end, want < room ? want : room};
  }
  void commit(size_t n) {
    if (n == 0) return;
    blocks_.back().end += n;
    size_ += n;
  }

  // Contiguous readable bytes at the head (may be less than size()).
  std::span<const uint8_t> front() const {
    if (blocks_.empty()) return {};
    const Block& b = blocks_.front();
    return {b.data.get() + b.begin, b.end - b.begin};
  }

  // Copies up to n bytes from the head into out and consumes them; returns bytes copied.
  size_t take(uint8_t* out, size_t n) {
    size_t done = 0;
    while (done < n && !empty()) {
      auto f = front();
      size_t k = f.size() < n - done ? f.size() : n - done;
      std::memcpy(out + done, f.data(), k);
      consume(k);
      done += k;
    }
    return done;
  }

  void consume(size_t n) {
    while (n > 0 && !blocks_.empty()) {
      Block& b = blocks_.front();
      size_t avail = b.end - b.begin;
      size_t k = n < avail ? n : avail;
      b.begin += k;
      size_ -= k;
      n -= k;
      if (b.begin == b.end && (blocks_.size() > 1 || b.end == b.cap || size_ == 0)) blocks_.pop_front();
    }
  }

  void clear() {
    blocks_.clear();
    size_ = 0;
  }

 private:
  struct Block {
    std::unique_ptr<uint8_t[]> data;
    size_t cap, begin, end;
  };
  std::deque<Block> blocks_;
  size_t size_ = 0;
  size_t min_block_;
};

}  // namespace hbone
