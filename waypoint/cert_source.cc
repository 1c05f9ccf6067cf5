#include "waypoint/cert_source.h"

#include "common/ca/cert_source.h"

namespace waypoint {

common::Result<std::unique_ptr<common::CertProvider>> make_cert_provider(const Config& cfg,
                                                                         boost::asio::io_context& control) {
  // Never impersonating: the waypoint asks only for its own identity. Its CA channel is not
  // marked (the waypoint runs outside capture).
  return common::ca::make_cert_provider(common::ca::cert_source_settings(cfg), control);
}

}  // namespace waypoint
