#include "waypoint/upstream/request_hash.h"

#include <cstdio>

#include "waypoint/upstream/hash_ring.h"

namespace waypoint::upstream {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view strip_port(std::string_view addr) {
  if (!addr.empty() && addr.front() == '[') {
    auto close = addr.find(']');
    return close == std::string_view::npos ? addr : addr.substr(1, close - 1);
  }
  // IPv4 "a.b.c.d:port"; a bare IPv6 address has several colons and no port.
  auto colon = addr.find(':');
  if (colon != std::string_view::npos && addr.find(':', colon + 1) == std::string_view::npos)
    return addr.substr(0, colon);
  return addr;
}

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = part.find('=');
    std::string_view k = part.substr(0, eq);
    if (k != name) continue;
    return std::string(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> cookie_value(const router::HttpRequest& req, std::string_view name) {
  for (const auto& f : req.headers.fields()) {
    if (f.name != "cookie") continue;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view pair = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      auto eq = pair.find('=');
      if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
      std::string_view v = trim(pair.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
  }
  return std::nullopt;
}

RequestHash compute_request_hash(std::span<const HashPolicy> policies, const router::HttpRequest& req,
                                 std::string_view source_ip, uint64_t random) {
  RequestHash out;
  for (const auto& p : policies) {
    std::optional<uint64_t> h;
    switch (p.kind) {
      case HashPolicy::Kind::Header:
        if (auto v = req.header_joined(p.name)) h = xxhash64(*v);
        break;
      case HashPolicy::Kind::Cookie:
        if (auto v = cookie_value(req, p.name)) {
          h = xxhash64(*v);
        } else if (p.cookie_ttl && out.set_cookie.empty()) {
          std::string seed = std::string(source_ip) + "/" + std::to_string(random);
          char hex[17];
          std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(xxhash64(seed)));
          const std::string value = hex;
          out.set_cookie = p.name + "=\"" + value + "\"";
          const auto secs = std::chrono::duration_cast<std::chrono::seconds>(*p.cookie_ttl).count();
          if (secs > 0) out.set_cookie += "; Max-Age=" + std::to_string(secs);
          if (!p.cookie_path.empty()) out.set_cookie += "; Path=" + p.cookie_path;
          out.set_cookie += "; HttpOnly";
          h = xxhash64(value);
        }
        break;
      case HashPolicy::Kind::SourceIp:
        if (!source_ip.empty()) h = xxhash64(strip_port(source_ip));
        break;
      case HashPolicy::Kind::QueryParameter:
        if (auto v = query_value(req.query(), p.name)) h = xxhash64(*v);
        break;
    }
    if (h) out.hash = out.hash ? (((*out.hash << 1) | (*out.hash >> 63)) ^ *h) : *h;
    if (p.terminal && out.hash) break;
  }
  return out;
}

}  // namespace waypoint::upstream
