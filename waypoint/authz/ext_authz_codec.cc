#include "waypoint/authz/ext_authz_codec.h"

#include "waypoint/wire/proto_wire.h"

namespace waypoint::authz {
namespace {

using common::make_error;

using wire::put_bytes;
using wire::put_str;
using wire::put_uint;
using wire::put_varint;
using wire::Reader;
using wire::Varint;

std::string peer(const CheckPeer& p) {
  std::string out;
  if (!p.address.empty()) {
    std::string sa, addr;
    put_str(sa, 2, p.address);
    put_uint(sa, 3, p.port);
    put_bytes(addr, 1, sa);
    put_bytes(out, 1, addr);
  }
  put_str(out, 4, p.principal);
  return out;
}

// HeaderValueOption -> CheckHeader. `append` (BoolValue) wins over append_action, as Envoy.
bool header_option(std::string_view msg, CheckHeader& out, std::string& err) {
  Reader r{msg, 0, {}};
  std::optional<bool> append;
  uint64_t action = 0;
  bool raw_seen = false;
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    std::string_view s;
    if (f == 1) {
      if (!r.len(wt, s, "header")) break;
      Reader h{s, 0, {}};
      while (!h.done()) {
        uint32_t hf = 0, hwt = 0;
        if (!h.tag(hf, hwt)) break;
        std::string_view v;
        if (hf == 1 || hf == 2 || hf == 3) {
          if (!h.len(hwt, v, "HeaderValue")) break;
          if (hf == 1) out.key = std::string(v);
          if (hf == 2 && !raw_seen) out.value = std::string(v);
          if (hf == 3) out.value = std::string(v), raw_seen = true;
        } else if (!h.skip(hwt)) {
          break;
        }
      }
      if (!h.err.empty()) return err = "header: " + h.err, false;
    } else if (f == 2) {
      if (!r.len(wt, s, "append")) break;
      Reader b{s, 0, {}};
      bool value = false;
      while (!b.done()) {
        uint32_t bf = 0, bwt = 0;
        if (!b.tag(bf, bwt)) break;
        uint64_t v = 0;
        if (bf == 1) {
          if (!b.num(bwt, v, "BoolValue.value")) break;
          value = v != 0;
        } else if (!b.skip(bwt)) {
          break;
        }
      }
      if (!b.err.empty()) return err = "append: " + b.err, false;
      append = value;
    } else if (f == 3) {
      if (!r.num(wt, action, "append_action")) break;
    } else if (!r.skip(wt)) {
      break;
    }
  }
  if (!r.err.empty()) return err = r.err, false;
  if (append) {
    out.mode = *append ? CheckHeader::Mode::Append : CheckHeader::Mode::Set;
  } else {
    // APPEND_IF_EXISTS_OR_ADD 0 is also "not set": ext_authz then overwrites (append defaults
    // to false in its messages); ADD_IF_ABSENT 1; OVERWRITE_IF_EXISTS(_OR_ADD) 2, 3.
    out.mode = action == 1 ? CheckHeader::Mode::AddIfAbsent : CheckHeader::Mode::Set;
  }
  if (out.key.empty()) return err = "header: empty key", false;
  return true;
}

std::string encode_header(const CheckHeader& h) {
  std::string hv, out;
  put_str(hv, 1, h.key);
  put_str(hv, 2, h.value);
  put_bytes(out, 1, hv);
  if (h.mode == CheckHeader::Mode::Append) {
    std::string b;
    put_uint(b, 1, 1);
    put_bytes(out, 2, b);
  } else if (h.mode == CheckHeader::Mode::AddIfAbsent) {
    put_uint(out, 3, 1);
  }
  return out;
}

bool denied(std::string_view msg, CheckResponse& out, std::string& err) {
  Reader r{msg, 0, {}};
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    std::string_view s;
    if (f == 1) {
      if (!r.len(wt, s, "status")) break;
      Reader st{s, 0, {}};
      while (!st.done()) {
        uint32_t sf = 0, swt = 0;
        if (!st.tag(sf, swt)) break;
        uint64_t v = 0;
        if (sf == 1) {
          if (!st.num(swt, v, "HttpStatus.code")) break;
          out.denied_status = static_cast<uint32_t>(v);
        } else if (!st.skip(swt)) {
          break;
        }
      }
      if (!st.err.empty()) return err = "status: " + st.err, false;
    } else if (f == 2) {
      if (!r.len(wt, s, "headers")) break;
      CheckHeader h;
      std::string e;
      if (!header_option(s, h, e)) return err = "headers: " + e, false;
      out.headers.push_back(std::move(h));
    } else if (f == 3) {
      if (!r.len(wt, s, "body")) break;
      out.denied_body = std::string(s);
    } else if (!r.skip(wt)) {
      break;
    }
  }
  err = r.err;
  return r.err.empty();
}

bool ok(std::string_view msg, CheckResponse& out, std::string& err) {
  Reader r{msg, 0, {}};
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    std::string_view s;
    if (f == 2 || f == 6) {
      if (!r.len(wt, s, f == 2 ? "headers" : "response_headers_to_add")) break;
      CheckHeader h;
      std::string e;
      if (!header_option(s, h, e))
        return err = std::string(f == 2 ? "headers: " : "response_headers_to_add: ") + e, false;
      (f == 2 ? out.headers : out.response_headers_to_add).push_back(std::move(h));
    } else if (f == 5) {
      if (!r.len(wt, s, "headers_to_remove")) break;
      out.headers_to_remove.emplace_back(s);
    } else if (!r.skip(wt)) {
      break;
    }
  }
  err = r.err;
  return r.err.empty();
}

}  // namespace

std::string encode_check_request(const CheckRequest& req) {
  std::string http;
  put_str(http, 1, req.id);
  put_str(http, 2, req.method);
  for (const auto& [k, v] : req.headers) {
    std::string entry;
    put_bytes(entry, 1, k);
    put_bytes(entry, 2, v);
    put_bytes(http, 3, entry);
  }
  put_str(http, 4, req.path);
  put_str(http, 5, req.host);
  put_str(http, 6, req.scheme);
  put_str(http, 10, req.protocol);
  std::string request, attrs, out;
  put_bytes(request, 2, http);
  put_bytes(attrs, 1, peer(req.source));
  put_bytes(attrs, 2, peer(req.destination));
  put_bytes(attrs, 4, request);
  put_bytes(out, 1, attrs);
  return out;
}

std::string encode_check_response(const CheckResponse& r) {
  std::string out, status;
  if (r.grpc_code < 0) {
    put_varint(status, (uint64_t{1} << 3) | Varint);
    put_varint(status, static_cast<uint64_t>(static_cast<int64_t>(r.grpc_code)));  // int32: sign-extended
  } else {
    put_uint(status, 1, static_cast<uint64_t>(r.grpc_code));
  }
  put_str(status, 2, r.grpc_message);
  put_bytes(out, 1, status);
  if (r.http == CheckResponse::Http::Denied) {
    std::string d, st;
    put_uint(st, 1, r.denied_status);
    put_bytes(d, 1, st);
    for (const auto& h : r.headers) put_bytes(d, 2, encode_header(h));
    put_str(d, 3, r.denied_body);
    put_bytes(out, 2, d);
  } else if (r.http == CheckResponse::Http::Ok) {
    std::string o;
    for (const auto& h : r.headers) put_bytes(o, 2, encode_header(h));
    for (const auto& h : r.headers_to_remove) put_bytes(o, 5, h);
    for (const auto& h : r.response_headers_to_add) put_bytes(o, 6, encode_header(h));
    put_bytes(out, 3, o);
  }
  return out;
}

common::Result<CheckResponse> decode_check_response(std::string_view bytes) {
  CheckResponse out;
  Reader r{bytes, 0, {}};
  while (!r.done()) {
    uint32_t f = 0, wt = 0;
    if (!r.tag(f, wt)) break;
    std::string_view s;
    std::string err;
    if (f == 1) {
      if (!r.len(wt, s, "status")) break;
      Reader st{s, 0, {}};
      while (!st.done()) {
        uint32_t sf = 0, swt = 0;
        if (!st.tag(sf, swt)) break;
        uint64_t v = 0;
        std::string_view m;
        if (sf == 1) {
          if (!st.num(swt, v, "Status.code")) break;
          out.grpc_code = static_cast<int32_t>(static_cast<uint32_t>(v));
        } else if (sf == 2) {
          if (!st.len(swt, m, "Status.message")) break;
          out.grpc_message = std::string(m);
        } else if (!st.skip(swt)) {
          break;
        }
      }
      if (!st.err.empty()) return make_error("CheckResponse.status: " + st.err);
    } else if (f == 2 || f == 3) {
      if (!r.len(wt, s, "http_response")) break;
      // A oneof: the last one on the wire wins, as protobuf merges.
      out.http = f == 2 ? CheckResponse::Http::Denied : CheckResponse::Http::Ok;
      out.headers.clear();
      out.headers_to_remove.clear();
      out.response_headers_to_add.clear();
      out.denied_status = 0;
      out.denied_body.clear();
      if (!(f == 2 ? denied(s, out, err) : ok(s, out, err)))
        return make_error(std::string(f == 2 ? "CheckResponse.denied_response: " : "CheckResponse.ok_response: ") +
                          err);
    } else if (!r.skip(wt)) {
      break;
    }
  }
  if (!r.err.empty()) return make_error("CheckResponse: " + r.err);
  return out;
}

}  // namespace waypoint::authz
