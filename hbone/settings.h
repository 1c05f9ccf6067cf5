// HTTP/2 and tunnel settings for HBONE connections. Defaults mirror upstream ztunnel
// (stream window 4 MiB, connection window 16 MiB = 4x stream to avoid cross-stream deadlock,
// frame 1 MiB, server advertises 200 concurrent streams, client pools up to 100 per connection,
// header lists 64 KiB server / 16 KiB client, PING every 10 s with a 20 s timeout).
// Plain value type; copied into each connection at creation.
#pragma once

#include <chrono>
#include <cstdint>

namespace hbone {

struct Settings {
  uint32_t stream_window = 4u << 20;
  uint32_t connection_window = 16u << 20;
  uint32_t max_frame_size = 1u << 20;
  uint32_t max_concurrent_streams = 200;  // advertised by servers
  uint32_t max_header_list = 64u << 10;   // enforced on decoded headers we receive
  std::chrono::milliseconds ping_interval{10'000};
  std::chrono::milliseconds ping_timeout{20'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  // Server role, after TLS: the client preface + SETTINGS, and then every CONNECT header block
  // (HEADERS through its last CONTINUATION), must arrive within these (same bound as the TLS
  // handshake); a peer that trickles them is closed. See hbone/connection_limits.cc.
  std::chrono::milliseconds preface_timeout{10'000};
  std::chrono::milliseconds connect_headers_timeout{10'000};
  // Bytes one stream may have queued for sending before its writer waits (back-pressure).
  uint32_t stream_send_buffer = 256u << 10;
  // Abuse limits (answered with GOAWAY on that connection only).
  uint32_t reset_burst = 200;          // RST_STREAM received: token bucket burst...
  uint32_t reset_rate_per_s = 50;      // ...and refill rate
  uint32_t max_continuations = 8;      // CONTINUATION frames per header block
  uint32_t max_outbound_ack = 1000;    // queued SETTINGS/PING acks the peer does not read
  uint32_t max_glitches = 100;         // protocol glitches (invalid frames, error resets) per 10 s

  static Settings client_defaults() {
    Settings s;
    s.max_concurrent_streams = 100;
    s.max_header_list = 16u << 10;
    return s;
  }
};

}  // namespace hbone
