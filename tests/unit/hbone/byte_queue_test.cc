// ByteQueue: FIFO order against a reference under random appends, prepares, consumes and
// takes; spans that stay valid across appends.
#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <random>
#include <vector>

#include "hbone/byte_queue.h"

namespace {

std::vector<uint8_t> drain(hbone::ByteQueue& q) {
  std::vector<uint8_t> out(q.size());
  REQUIRE(q.take(out.data(), out.size()) == out.size());
  return out;
}

}  // namespace

TEST_CASE("ByteQueue keeps FIFO order under random appends, prepares and consumes") {
  std::mt19937 rng(12345);
  hbone::ByteQueue q;
  std::deque<uint8_t> ref;
  uint8_t next = 0;
  std::vector<uint8_t> buf;
  for (int round = 0; round < 3000; ++round) {
    switch (rng() % 4) {
      case 0: {  // append
        size_t n = rng() % 70000;
        buf.resize(n);
        for (auto& b : buf) b = next++;
        q.append(buf.data(), n);
        ref.insert(ref.end(), buf.begin(), buf.end());
        break;
      }
      case 1: {  // prepare + partial commit, as a socket read does
        size_t want = 1 + rng() % 300000;
        auto span = q.prepare(want);
        REQUIRE(!span.empty());
        REQUIRE(span.size() <= want);
        size_t n = rng() % (span.size() + 1);
        for (size_t i = 0; i < n; ++i) span[i] = next++;
        ref.insert(ref.end(), span.begin(), span.begin() + static_cast<ptrdiff_t>(n));
        q.commit(n);
        break;
      }
      case 2: {  // consume from front()
        auto f = q.front();
        size_t n = f.empty() ? 0 : rng() % (f.size() + 1);
        REQUIRE(std::equal(f.begin(), f.begin() + static_cast<ptrdiff_t>(n), ref.begin()));
        q.consume(n);
        ref.erase(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(n));
        break;
      }
      default: {  // take across blocks
        size_t n = rng() % 100000;
        buf.resize(n);
        size_t got = q.take(buf.data(), n);
        REQUIRE(got == std::min(n, ref.size()));
        REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(got), ref.begin()));
        ref.erase(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(got));
      }
    }
    REQUIRE(q.size() == ref.size());
    REQUIRE(q.empty() == ref.empty());
  }
  auto rest = drain(q);
  REQUIRE(std::equal(rest.begin(), rest.end(), ref.begin(), ref.end()));
}

TEST_CASE("ByteQueue: a front() span stays valid while more is appended") {
  hbone::ByteQueue q;
  std::vector<uint8_t> a(3000, 0xAA), b(500000, 0xBB);
  q.append(a.data(), a.size());
  auto f = q.front();
  const uint8_t* where = f.data();
  q.append(b.data(), b.size());  // several new blocks
  REQUIRE(q.front().data() == where);
  REQUIRE(std::all_of(f.begin(), f.end(), [](uint8_t x) { return x == 0xAA; }));
  q.consume(f.size());
  REQUIRE(q.size() == b.size());
}
