// Hand-written protobuf wire encoding for the few messages the waypoint's data path exchanges with
// side services (the rate limit service's ShouldRateLimit, ext_authz's Check): the data path
// links no protobuf library (waypoint/CMakeLists.txt), so each codec writes and reads its
// fields with these primitives. Field numbers live in the codecs, next to their messages.
//
// Threading: stateless functions and a Reader used by one thread for one message.
// Invariants: every read is bounds-checked and never reads past `in`; the first failure is kept
// in `err` and every later call returns false. proto3 defaults (empty string, 0) are not written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace waypoint::wire {

enum WireType : uint32_t { Varint = 0, Fixed64 = 1, Len = 2, Fixed32 = 5 };

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

inline void put_tag(std::string& out, uint32_t field, WireType wt) {
  put_varint(out, (uint64_t{field} << 3) | wt);
}

// A length-delimited field (string, bytes, embedded message), written even when empty.
inline void put_bytes(std::string& out, uint32_t field, std::string_view v) {
  put_tag(out, field, Len);
  put_varint(out, v.size());
  out.append(v);
}

// A proto3 string: absent when empty.
inline void put_str(std::string& out, uint32_t field, std::string_view v) {
  if (!v.empty()) put_bytes(out, field, v);
}

// A proto3 integer: absent when 0.
inline void put_uint(std::string& out, uint32_t field, uint64_t v) {
  if (v == 0) return;
  put_tag(out, field, Varint);
  put_varint(out, v);
}

// Reads one message's fields.
struct Reader {
  std::string_view in;
  size_t pos = 0;
  std::string err;

  bool done() const { return pos >= in.size() || !err.empty(); }
  bool fail(std::string m) {
    if (err.empty()) err = std::move(m);
    return false;
  }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= in.size()) return fail("truncated varint");
      const auto b = static_cast<uint8_t>(in[pos++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return true;
    }
    return fail("varint longer than 10 bytes");
  }
  bool tag(uint32_t& field, uint32_t& wt) {
    uint64_t t = 0;
    if (!varint(t)) return false;
    if ((t >> 3) == 0 || (t >> 3) > 0x1fffffff) return fail("invalid field number");
    field = static_cast<uint32_t>(t >> 3);
    wt = static_cast<uint32_t>(t & 7);
    return true;
  }
  bool bytes(std::string_view& v) {
    uint64_t n = 0;
    if (!varint(n)) return false;
    if (n > in.size() - pos) return fail("length-delimited field runs past the end");
    v = in.substr(pos, static_cast<size_t>(n));
    pos += static_cast<size_t>(n);
    return true;
  }
  bool skip(uint32_t wt) {
    uint64_t v = 0;
    std::string_view s;
    switch (wt) {
      case Varint:
        return varint(v);
      case Fixed64:
        if (in.size() - pos < 8) return fail("truncated fixed64");
        pos += 8;
        return true;
      case Len:
        return bytes(s);
      case Fixed32:
        if (in.size() - pos < 4) return fail("truncated fixed32");
        pos += 4;
        return true;
      default:
        return fail("unsupported wire type " + std::to_string(wt));
    }
  }
  bool expect(uint32_t wt, uint32_t want, const char* what) {
    if (wt != want) return fail(std::string(what) + ": wrong wire type " + std::to_string(wt));
    return true;
  }
  // A length-delimited field / a varint field, after checking its wire type.
  bool len(uint32_t wt, std::string_view& s, const char* what) { return expect(wt, Len, what) && bytes(s); }
  bool num(uint32_t wt, uint64_t& v, const char* what) { return expect(wt, Varint, what) && varint(v); }
};

}  // namespace waypoint::wire
