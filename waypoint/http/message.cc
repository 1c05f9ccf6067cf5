#include "waypoint/http/message.h"

#include <algorithm>

namespace waypoint::http {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const auto& [k, v] : entries_) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string> HeaderMap::joined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& [k, v] : entries_) {
    if (k != name) continue;
    if (out) {
      out->push_back(',');
      out->append(v);
    } else {
      out = v;
    }
  }
  return out;
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

void HeaderMap::add(std::string_view name, std::string_view value) { entries_.emplace_back(lower(name), value); }

void HeaderMap::remove(std::string_view name) {
  std::erase_if(entries_, [&](const Entry& e) { return e.first == name; });
}

std::string_view to_string(Protocol p) {
  switch (p) {
    case Protocol::Http10:
      return "HTTP/1.0";
    case Protocol::Http11:
      return "HTTP/1.1";
    case Protocol::Http2:
      return "HTTP/2";
  }
  return "HTTP/1.1";
}

bool is_hop_by_hop(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" ||
         n == "te" || n == "trailer" || n == "upgrade" || n == "proxy-authenticate" || n == "proxy-authorization";
}

}  // namespace waypoint::http
