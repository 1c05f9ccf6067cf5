// libFuzzer target: the waypoint's inner HTTP/2 ingress (h2c inside the CONNECT tunnel) — the
// sniffer over the first bytes, then nghttp2 server framing, header validation and our
// conversion of each complete request into the data path's request model, and the response
// path (headers, body, trailers) for every request that arrives. The input is prefixed with
// the connection preface so most runs reach the frame layer.
// Invariants checked: request header names are lower case, no pseudo-header or connection-
// specific header leaks into the header list, bodies stay within the limit.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "waypoint/http/h2_session.h"
#include "waypoint/http/sniff.h"

namespace wh = waypoint::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  (void)wh::sniff(raw);
  std::string input(wh::kH2Preface);
  input.append(raw);
  if (wh::sniff(input) != wh::Sniffed::Http2) std::abort();

  boost::asio::io_context io;
  wh::H2Session::Options o;
  o.max_body = 64 * 1024;
  auto handler = [](std::shared_ptr<wh::H2Session> s, int32_t id, wh::Request req) {
    for (const auto& f : req.head.headers.fields()) {
      if (f.name.empty() || f.name[0] == ':') std::abort();
      for (char c : f.name) {
        if (c >= 'A' && c <= 'Z') std::abort();
      }
      if (f.name == "connection" || f.name == "transfer-encoding" || f.name == "host") std::abort();
    }
    if (req.body.size() > 64 * 1024) std::abort();
    wh::Response r;
    r.status = 200;
    r.headers.add("content-type", "application/grpc");
    r.body = req.body;
    r.trailers.add("grpc-status", "0");
    s->respond(id, r, req.head.method == "HEAD");
  };
  // A socket that is not connected: the session's writes fail, which ends it, as a peer that
  // vanished would.
  auto session = wh::H2Session::server(wh::AnyStream(boost::asio::ip::tcp::socket(io)), o, handler);
  // Split in two feeds so frames straddling reads are exercised.
  const size_t half = input.size() / 2;
  session->feed(std::string_view(input).substr(0, half));
  session->feed(std::string_view(input).substr(half));
  io.poll();
  session->close();
  io.poll();
  return 0;
}
