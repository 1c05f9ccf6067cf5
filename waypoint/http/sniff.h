// Inner-protocol sniffing for service ports whose protocol Istio does not know (Envoy's
// http_inspector, and the AUTO codec of an HTTP chain): the first bytes a client sends inside
// the CONNECT tunnel say whether it speaks HTTP/2 with prior knowledge (the 24-byte connection
// preface), HTTP/1.x (a request line `METHOD SP target SP HTTP/1.d CRLF`), or something else
// (relayed at L4 when the port has a TCP chain).
// Pure function over the bytes seen so far; the caller reads more while it says NeedMore and
// hands every byte read to the chosen codec or relay (nothing is consumed here).
#pragma once

#include <cstddef>
#include <string_view>

namespace waypoint::http {

enum class Sniffed : unsigned char { NeedMore, Http2, Http1, Other };

// The HTTP/2 client connection preface (RFC 9113 §3.4).
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// A request line longer than this without its CRLF is not taken for HTTP/1.x (http_inspector
// gives up after its 64 KiB buffer; a request line of 8 KiB is already Beast's default limit).
inline constexpr size_t kSniffMaxLine = 8192;

Sniffed sniff(std::string_view bytes);

}  // namespace waypoint::http
