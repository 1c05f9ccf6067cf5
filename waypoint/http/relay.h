// relay(): copies bytes both ways between two AnyStreams until both directions ended, carrying
// half-close (EOF -> shutdown_write on the other side). Used after a 101 Switching Protocols
// (WebSocket and other upgrades) and for plain TCP service ports (L4 proxying). Bytes a codec
// had already read past the last message (`pending_*`) are written first. A read or write
// error aborts both streams, which ends the other direction too.
// Back-pressure: one buffer per direction; nothing more is read until it was written.
// Threading: both streams on the caller's executor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>

#include "waypoint/http/any_stream.h"

namespace waypoint::http {

struct RelayResult {
  uint64_t a_to_b = 0;
  uint64_t b_to_a = 0;
};

boost::asio::awaitable<RelayResult> relay(AnyStream& a, AnyStream& b, std::string pending_a_to_b = {},
                                          std::string pending_b_to_a = {});

}  // namespace waypoint::http
