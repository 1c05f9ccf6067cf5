#include "hbone/headers.h"

#include <algorithm>
#include <charconv>
#include <random>

namespace hbone {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Visible ASCII plus space and tab: what may legally appear in these header values. Rejecting
// CTLs and bytes >= 0x80 here keeps them out of logs and metric labels.
bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c < 0x7f);
  });
}

// RFC 7230 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is invalid in traceparent
}

template <size_t N>
bool parse_hex(std::string_view s, std::array<uint8_t, N>& out) {
  if (s.size() != N * 2) return false;
  for (size_t i = 0; i < N; ++i) {
    const int hi = hex_value(s[2 * i]);
    const int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& a) {
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

void append_hex(std::string& out, const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xF]);
  }
}

std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || s[0] == '0') return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.back() == '.') h.remove_suffix(1);  // absolute FQDN
  size_t label_len = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const char c = h[i];
    if (c == '.') {
      if (label_len == 0 || h[i - 1] == '-') return false;
      label_len = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
    if (label_len == 0 && c == '-') return false;
    if (++label_len > 63) return false;
  }
  return label_len > 0 && h.back() != '-';
}

std::optional<boost::asio::ip::address> parse_ip_literal(std::string_view s, bool v6) {
  // Only hex digits, dots and colons: rules out zone ids ("%eth0"), spaces and signs before
  // the platform parser sees the text.
  if (s.empty() || s.size() > 45) return std::nullopt;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                    c == '.' || c == ':';
    if (!ok) return std::nullopt;
  }
  boost::system::error_code ec;
  const std::string text(s);
  if (v6) {
    auto a = boost::asio::ip::make_address_v6(text, ec);
    if (ec) return std::nullopt;
    if (a.is_v4_mapped()) {
      return boost::asio::ip::address(
          boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a));
    }
    return boost::asio::ip::address(a);
  }
  auto a = boost::asio::ip::make_address_v4(text, ec);
  if (ec) return std::nullopt;
  return boost::asio::ip::address(a);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// baggage

std::string format_baggage(const Baggage& b) {
  std::string out;
  auto add = [&](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    if (!out.empty()) out.push_back(',');
    out.append(key).append("=").append(value);
  };
  add("k8s.cluster.name", b.cluster_id);
  add("k8s.namespace.name", b.ns);
  if (!b.workload_type.empty() && !b.workload_name.empty()) {
    if (!out.empty()) out.push_back(',');
    out.append("k8s.").append(b.workload_type).append(".name=").append(b.workload_name);
  }
  add("service.name", b.service_name);
  add("service.version", b.service_version);
  add("cloud.region", b.region);
  add("cloud.availability_zone", b.zone);
  return out;
}

std::optional<Baggage> parse_baggage(std::string_view value) {
  if (value.size() > kMaxHeaderValueBytes || !printable(value)) return std::nullopt;
  Baggage b;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view member = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);

    // Properties (";k=v") carry nothing Istio uses.
    member = trim(member.substr(0, member.find(';')));
    if (member.empty()) continue;
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = trim(member.substr(0, eq));
    const std::string_view val = trim(member.substr(eq + 1));
    if (key.empty()) return std::nullopt;

    if (key == "k8s.cluster.name") {
      b.cluster_id = val;
    } else if (key == "k8s.namespace.name") {
      b.ns = val;
    } else if (key == "service.name") {
      b.service_name = val;
    } else if (key == "service.version") {
      b.service_version = val;
    } else if (key == "cloud.region") {
      b.region = val;
    } else if (key == "cloud.availability_zone") {
      b.zone = val;
    } else if (key.starts_with("k8s.") && key.ends_with(".name") && key.size() > 9) {
      // k8s.<type>.name: the workload kind and name.
      const std::string_view type = key.substr(4, key.size() - 9);
      if (type.find('.') == std::string_view::npos) {
        b.workload_type = type;
        b.workload_name = val;
      }
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// forwarded

std::string format_forwarded(std::string_view client_addr, std::string_view host) {
  std::string out;
  out.reserve(client_addr.size() + host.size() + 16);
  out.append("for=\"").append(client_addr).append("\"");
  if (!host.empty()) {
    out.append(";host=");
    if (is_token(host)) {
      out.append(host);
    } else {
      out.push_back('"');
      for (char c : host) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
      }
      out.push_back('"');
    }
  }
  return out;
}

std::optional<std::vector<ForwardedElement>> parse_forwarded(std::string_view value) {
  if (value.size() > kMaxHeaderValueBytes || !printable(value)) return std::nullopt;
  std::vector<ForwardedElement> out;
  ForwardedElement cur;
  bool seen_for = false, seen_by = false, seen_host = false, seen_proto = false;
  bool element_has_pair = false;
  size_t i = 0;
  const size_t n = value.size();
  auto skip_ows = [&] {
    while (i < n && is_ows(value[i])) ++i;
  };

  auto finish_element = [&] {
    out.push_back(std::move(cur));
    cur = ForwardedElement{};
    seen_for = seen_by = seen_host = seen_proto = false;
    element_has_pair = false;
  };

  skip_ows();
  if (i == n) return std::nullopt;  // empty header
  while (true) {
    // pair: token "=" value
    const size_t name_start = i;
    while (i < n && is_tchar(value[i])) ++i;
    const std::string_view name = value.substr(name_start, i - name_start);
    if (name.empty() || i == n || value[i] != '=') return std::nullopt;
    ++i;
    std::string v;
    if (i < n && value[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        const char c = value[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i == n) return std::nullopt;
          v.push_back(value[i++]);
        } else {
          v.push_back(c);
        }
      }
      if (!closed) return std::nullopt;
    } else {
      const size_t vs = i;
      while (i < n && is_tchar(value[i])) ++i;
      if (i == vs) return std::nullopt;
      v.assign(value.substr(vs, i - vs));
    }
    element_has_pair = true;

    auto set_once = [&](bool& seen, std::string& field) {
      if (seen) return false;
      seen = true;
      field = std::move(v);
      return true;
    };
    if (iequals(name, "for")) {
      if (!set_once(seen_for, cur.for_node)) return std::nullopt;
    } else if (iequals(name, "by")) {
      if (!set_once(seen_by, cur.by)) return std::nullopt;
    } else if (iequals(name, "host")) {
      if (!set_once(seen_host, cur.host)) return std::nullopt;
    } else if (iequals(name, "proto")) {
      if (!set_once(seen_proto, cur.proto)) return std::nullopt;
    }  // other extension parameters are ignored

    skip_ows();
    if (i == n) break;
    if (value[i] == ';') {
      ++i;
      skip_ows();
      continue;
    }
    if (value[i] == ',') {
      ++i;
      finish_element();
      skip_ows();
      if (i == n) return std::nullopt;  // trailing comma
      continue;
    }
    return std::nullopt;
  }
  if (element_has_pair) finish_element();
  return out;
}

// ---------------------------------------------------------------------------------------------
// traceparent

std::string TraceParent::to_string() const {
  std::string out;
  out.reserve(55);
  out.append("00-");
  append_hex(out, trace_id.data(), trace_id.size());
  out.push_back('-');
  append_hex(out, parent_id.data(), parent_id.size());
  out.push_back('-');
  append_hex(out, &flags, 1);
  return out;
}

TraceParent TraceParent::random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  TraceParent t;
  do {
    for (size_t i = 0; i < t.trace_id.size(); i += 8) {
      const uint64_t r = rng();
      for (size_t k = 0; k < 8; ++k) t.trace_id[i + k] = static_cast<uint8_t>(r >> (8 * k));
    }
  } while (all_zero(t.trace_id));
  do {
    const uint64_t r = rng();
    for (size_t k = 0; k < 8; ++k) t.parent_id[k] = static_cast<uint8_t>(r >> (8 * k));
  } while (all_zero(t.parent_id));
  return t;
}

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  if (v.size() != 55) return std::nullopt;
  if (v.substr(0, 3) != "00-" || v[35] != '-' || v[52] != '-') return std::nullopt;
  TraceParent t;
  std::array<uint8_t, 1> flags{};
  if (!parse_hex(v.substr(3, 32), t.trace_id) || !parse_hex(v.substr(36, 16), t.parent_id) ||
      !parse_hex(v.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (all_zero(t.trace_id) || all_zero(t.parent_id)) return std::nullopt;
  t.flags = flags[0];
  return t;
}

// ---------------------------------------------------------------------------------------------
// :authority

std::optional<Authority> parse_authority(std::string_view value, bool allow_hostname) {
  if (value.empty() || value.size() > kMaxAuthorityBytes) return std::nullopt;
  Authority a;
  std::string_view host, port;
  if (value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string_view::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      return std::nullopt;
    }
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
    auto ip = parse_ip_literal(host, /*v6=*/true);
    if (!ip) return std::nullopt;
    a.ip = *ip;
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // unbracketed IPv6
    if (auto ip = parse_ip_literal(host, /*v6=*/false)) {
      a.ip = *ip;
    } else {
      // Dotted-quad-looking text that failed to parse (e.g. "1.2.3.256") is junk, never a name.
      const bool numeric = std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.';
      });
      if (!allow_hostname || numeric || !valid_hostname(host)) return std::nullopt;
      a.hostname = host;
    }
  }
  auto p = parse_port(port);
  if (!p) return std::nullopt;
  a.port = *p;
  return a;
}

std::string format_authority(const boost::asio::ip::address& ip, uint16_t port) {
  std::string out;
  if (ip.is_v6()) {
    out.append("[").append(ip.to_string()).append("]");
  } else {
    out.append(ip.to_string());
  }
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

}  // namespace hbone
