// Fuzzes the admin/stats/readiness HTTP/1.1 request parser (common/admin/http_admin.h), which reads
// bytes from any local process (admin) or the whole cluster network (stats, readiness).
// Checks invariants rather than just "no crash": consumed bytes lie inside the input, errors
// carry a 4xx/5xx status, a complete request re-parses identically from a prefix of exactly
// `consumed` bytes, and feeding the input in two pieces never completes earlier with a
// different request. The grammar is Beast's request_parser; the admin rules on top are ours.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/admin/http_admin.h"

using common::http::Limits;
using common::http::parse_request;
using common::http::ParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Limits lim;
  lim.max_header_bytes = 1024;  // small limits reach the limit paths quickly
  lim.max_body_bytes = 512;

  auto r = parse_request(in, lim);
  switch (r.status) {
    case ParseStatus::Incomplete:
      break;
    case ParseStatus::Error:
      if (r.error_status < 400 || r.error_status > 599) std::abort();
      break;
    case ParseStatus::Complete: {
      if (r.consumed == 0 || r.consumed > size) std::abort();
      auto again = parse_request(in.substr(0, r.consumed), lim);
      if (again.status != ParseStatus::Complete || again.consumed != r.consumed ||
          again.request.path != r.request.path || again.request.body != r.request.body) {
        std::abort();
      }
      // Exercise the accessors on parsed data.
      (void)r.request.query_param("level");
      (void)r.request.header("content-length");
      auto out =
          common::http::serialize_response(common::http::Response::text(200, r.request.body), r.keep_alive, false);
      if (out.size() < r.request.body.size()) std::abort();
      break;
    }
  }

  // Split feeding: a strict prefix must never yield a complete request longer than itself.
  if (size > 1) {
    size_t cut = data[0] % size;
    auto p = parse_request(in.substr(0, cut), lim);
    if (p.status == ParseStatus::Complete && p.consumed > cut) std::abort();
  }
  return 0;
}
