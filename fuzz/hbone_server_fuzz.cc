// libFuzzer target: arbitrary bytes from an HBONE peer after the TLS layer, i.e. the HTTP/2
// frames our server session and CONNECT handling must survive (malformed frames, floods,
// resets, window abuse, header bombs). The client preface is prepended so the fuzzer spends its
// time on frames. Each accepted CONNECT is answered (200 or 401 by authority) and echoed.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "hbone/connection.h"
#include "hbone/headers.h"

namespace asio = boost::asio;

namespace {
asio::awaitable<void> echo(std::shared_ptr<hbone::Stream> s) {
  auto auth = hbone::parse_authority(s->request().authority);
  if (!auth) {
    s->respond(400);
    co_return;
  }
  if (auth->port == 401) {
    s->respond(401);
    co_return;
  }
  s->respond(200);
  while (co_await s->wait_readable()) {
    auto d = s->readable();
    std::vector<uint8_t> copy(d.begin(), d.end());
    s->consume(copy.size());
    if (!co_await s->write(copy)) co_return;
  }
  s->shutdown_write();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  asio::io_context io;
  hbone::Settings settings;
  auto conn = std::make_shared<hbone::Connection>(io.get_executor(), hbone::Role::Server, settings);
  auto st = conn->start([&io](std::shared_ptr<hbone::Stream> s) { asio::co_spawn(io, echo(std::move(s)), asio::detached); });
  if (!st) return 0;
  static const uint8_t kMagic[] = {'P', 'R', 'I', ' ', '*', ' ', 'H', 'T', 'T', 'P', '/', '2', '.',
                                   '0', '\r', '\n', '\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n'};
  conn->feed(kMagic, sizeof(kMagic));
  // Split the input at varying sizes so frame boundaries fall everywhere.
  size_t off = 0;
  while (off < size && conn->is_open()) {
    size_t n = 1 + (data[off] % 97) * 7;
    if (n > size - off) n = size - off;
    conn->feed(data + off, n);
    off += n;
    io.poll();
  }
  conn->close("fuzz input done");
  io.restart();
  io.poll();
  return 0;
}
