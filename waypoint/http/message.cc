#include "waypoint/http/message.h"

namespace waypoint::http {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
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
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" || n == "te" ||
         n == "trailer" || n == "upgrade" || n == "proxy-authenticate" || n == "proxy-authorization";
}

}  // namespace waypoint::http
