#include "waypoint/ratelimit/rls_codec.h"

#include "waypoint/wire/proto_wire.h"

namespace waypoint::ratelimit {
namespace {

using common::make_error;

using wire::Len;
using wire::put_bytes;
using wire::put_uint;
using wire::Reader;
using wire::Varint;

bool header_value(std::string_view msg, std::pair<std::string, std::string>& out, std::string& err) {
  Reader r{msg, 0, {}};
  bool raw_seen = false;
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    std::string_view s;
    if (f == 1 || f == 2 || f == 3) {
      if (!r.expect(wt, Len, "HeaderValue") || !r.bytes(s)) break;
      if (f == 1) out.first = std::string(s);
      if (f == 2 && !raw_seen) out.second = std::string(s);
      if (f == 3) out.second = std::string(s), raw_seen = true;
    } else if (!r.skip(wt)) {
      break;
    }
  }
  err = r.err;
  return r.err.empty();
}

bool int_field(Reader& r, uint32_t wt, uint64_t& v, const char* what) {
  return r.expect(wt, Varint, what) && r.varint(v);
}

bool descriptor_status(std::string_view msg, RlsDescriptorStatus& out, std::string& err) {
  Reader r{msg, 0, {}};
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    uint64_t v = 0;
    std::string_view s;
    if (f == 1) {
      if (!int_field(r, wt, v, "DescriptorStatus.code")) break;
      out.code = static_cast<uint32_t>(v);
    } else if (f == 2) {
      if (!r.expect(wt, Len, "DescriptorStatus.current_limit") || !r.bytes(s)) break;
      Reader l{s, 0, {}};
      while (!l.done()) {
        uint32_t lf = 0, lwt = 0;
        if (!l.tag(lf, lwt)) break;
        uint64_t lv = 0;
        if (lf == 1) {
          if (!int_field(l, lwt, lv, "RateLimit.requests_per_unit")) break;
          out.requests_per_unit = static_cast<uint32_t>(lv);
        } else if (lf == 2) {
          if (!int_field(l, lwt, lv, "RateLimit.unit")) break;
          out.unit = static_cast<uint32_t>(lv);
        } else if (!l.skip(lwt)) {
          break;
        }
      }
      if (!l.err.empty()) return err = "current_limit: " + l.err, false;
    } else if (f == 3) {
      if (!int_field(r, wt, v, "DescriptorStatus.limit_remaining")) break;
      out.limit_remaining = static_cast<uint32_t>(v);
    } else if (f == 4) {
      if (!r.expect(wt, Len, "DescriptorStatus.duration_until_reset") || !r.bytes(s)) break;
      Reader d{s, 0, {}};
      while (!d.done()) {
        uint32_t df = 0, dwt = 0;
        if (!d.tag(df, dwt)) break;
        uint64_t dv = 0;
        if (df == 1) {
          if (!int_field(d, dwt, dv, "Duration.seconds")) break;
          out.reset_seconds = static_cast<int64_t>(dv);
        } else if (!d.skip(dwt)) {
          break;
        }
      }
      if (!d.err.empty()) return err = "duration_until_reset: " + d.err, false;
    } else if (!r.skip(wt)) {
      break;
    }
  }
  err = r.err;
  return r.err.empty();
}

}  // namespace

std::string encode_request(const RlsRequest& req) {
  std::string out;
  if (!req.domain.empty()) put_bytes(out, 1, req.domain);
  for (const auto& d : req.descriptors) {
    std::string desc;
    for (const auto& [k, v] : d) {
      std::string entry;
      put_bytes(entry, 1, k);
      put_bytes(entry, 2, v);
      put_bytes(desc, 1, entry);
    }
    put_bytes(out, 2, desc);
  }
  put_uint(out, 3, req.hits_addend);
  return out;
}

std::string encode_response(const RlsResponse& resp) {
  std::string out;
  put_uint(out, 1, resp.overall_code);
  for (const auto& s : resp.statuses) {
    std::string m;
    put_uint(m, 1, s.code);
    if (s.requests_per_unit || s.unit) {
      std::string l;
      put_uint(l, 1, s.requests_per_unit);
      put_uint(l, 2, s.unit);
      put_bytes(m, 2, l);
    }
    put_uint(m, 3, s.limit_remaining);
    if (s.reset_seconds > 0) {
      std::string d;
      put_uint(d, 1, static_cast<uint64_t>(s.reset_seconds));
      put_bytes(m, 4, d);
    }
    put_bytes(out, 2, m);
  }
  for (int f = 3; f <= 4; ++f) {
    for (const auto& [k, v] : f == 3 ? resp.response_headers_to_add : resp.request_headers_to_add) {
      std::string h;
      put_bytes(h, 1, k);
      put_bytes(h, 2, v);
      put_bytes(out, static_cast<uint32_t>(f), h);
    }
  }
  return out;
}

common::Result<RlsResponse> decode_response(std::string_view bytes) {
  RlsResponse out;
  Reader r{bytes, 0, {}};
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    uint64_t v = 0;
    std::string_view s;
    std::string err;
    if (f == 1) {
      if (!int_field(r, wt, v, "overall_code")) break;
      out.overall_code = static_cast<uint32_t>(v);
    } else if (f == 2) {
      if (!r.expect(wt, Len, "statuses") || !r.bytes(s)) break;
      RlsDescriptorStatus st;
      if (!descriptor_status(s, st, err)) return make_error("RateLimitResponse.statuses: " + err);
      out.statuses.push_back(st);
    } else if (f == 3 || f == 4) {
      if (!r.expect(wt, Len, "headers") || !r.bytes(s)) break;
      std::pair<std::string, std::string> h;
      if (!header_value(s, h, err))
        return make_error(std::string("RateLimitResponse.") +
                          (f == 3 ? "response_headers_to_add: " : "request_headers_to_add: ") + err);
      (f == 3 ? out.response_headers_to_add : out.request_headers_to_add).push_back(std::move(h));
    } else if (!r.skip(wt)) {
      break;
    }
  }
  if (!r.err.empty()) return make_error("RateLimitResponse: " + r.err);
  return out;
}

std::string grpc_frame(std::string_view message) {
  std::string out;
  out.reserve(5 + message.size());
  out += '\0';
  const auto n = static_cast<uint32_t>(message.size());
  out += static_cast<char>((n >> 24) & 0xff);
  out += static_cast<char>((n >> 16) & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  out += static_cast<char>(n & 0xff);
  out.append(message);
  return out;
}

common::Result<std::string_view> grpc_unframe(std::string_view body) {
  if (body.size() < 5) return make_error("gRPC message: shorter than its 5-byte prefix");
  if (body[0] != '\0') return make_error("gRPC message: compressed (none was offered)");
  const uint32_t n = (uint32_t{static_cast<uint8_t>(body[1])} << 24) | (uint32_t{static_cast<uint8_t>(body[2])} << 16) |
                     (uint32_t{static_cast<uint8_t>(body[3])} << 8) | uint32_t{static_cast<uint8_t>(body[4])};
  if (n != body.size() - 5) return make_error("gRPC message: length prefix does not match the body");
  return body.substr(5);
}

}  // namespace waypoint::ratelimit
