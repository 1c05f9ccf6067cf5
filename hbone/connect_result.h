// ConnectResult<T>: the result of an HBONE client dial or CONNECT, which on failure also says
// at which stage it failed (TCP connect, TLS handshake, HTTP/2 set-up, the CONNECT stream).
// Callers map the stage to their own vocabulary (ztunnel's response flags) instead of parsing
// the message. It is a common::Result<T>, so code that only needs ok()/value()/error() is
// unchanged.
// Invariant: stage() is meaningful only when !ok(); an error built without one is a TCP-stage
// failure (the first thing a dial does).
// Threading: a plain value type.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace hbone {

enum class ConnectStage : uint8_t {
  Tcp,      // socket, bind or TCP connect
  Tls,      // TLS handshake (including the peer's SPIFFE identity check) or its timeout
  Http2,    // ALPN h2 not selected, or the HTTP/2 session did not start
  Connect,  // the CONNECT stream was refused or reset, or the pool gave up on the connection
};

std::string_view to_string(ConnectStage s);

template <typename T>
class [[nodiscard]] ConnectResult : public common::Result<T> {
 public:
  using common::Result<T>::Result;
  ConnectResult(common::Error e, ConnectStage stage) : common::Result<T>(std::move(e)), stage_(stage) {}
  // A stream-level result (Connection::open) keeps its value, or fails at the CONNECT stage.
  ConnectResult(common::Result<T> r)  // NOLINT(google-explicit-constructor)
      : common::Result<T>(std::move(r)), stage_(ConnectStage::Connect) {}

  ConnectStage stage() const { return stage_; }

 private:
  ConnectStage stage_ = ConnectStage::Tcp;
};

inline std::string_view to_string(ConnectStage s) {
  switch (s) {
    case ConnectStage::Tcp:
      return "tcp";
    case ConnectStage::Tls:
      return "tls";
    case ConnectStage::Http2:
      return "http2";
    case ConnectStage::Connect:
      return "connect";
  }
  return "unknown";
}

}  // namespace hbone
