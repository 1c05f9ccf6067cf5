// The control-plane settings ztunnel and the waypoint read from the environment alike (upstream
// ztunnel's names and rules), so both accept the same values: where the CA is (CA_ADDRESS, or
// LOCAL_CA_DIR, which replaces the remote CA unless CA_ADDRESS is also set), the roots and token
// for the CA and xDS channels, the SAN overrides, and the certificate lifetime.
// Header-only: the reader fills the fields of each proxy's Config that carry the same names.
// Threading: pure functions of the lookup; call while loading config.
#pragma once

#include <optional>
#include <string>

#include "common/env.h"
#include "common/result.h"

namespace common::env {

// Upstream rule for XDS_ADDRESS / CA_ADDRESS: "" disables, a scheme-less address gets https://.
inline std::optional<std::string> control_plane_uri(std::string v) {
  if (v.empty()) return std::nullopt;
  if (v.find("://") == std::string::npos) v = "https://" + v;
  return v;
}

// Reads LOCAL_CA_DIR, CA_ADDRESS (default `default_ca`; none when `no_remote_ca`, or when
// LOCAL_CA_DIR is set and CA_ADDRESS is not), XDS_ROOT_CA, CA_ROOT_CA, AUTH_TOKEN,
// ALT_XDS_HOSTNAME, ALT_CA_HOSTNAME and SECRET_TTL (must be positive) into `c`.
template <typename Config>
Status read_control_plane(const EnvLookup& e, const std::string& default_ca, bool no_remote_ca, Config& c) {
  if (auto v = e("LOCAL_CA_DIR"); v && !v->empty()) c.local_ca_dir = *v;
  if (no_remote_ca || (c.local_ca_dir && !e("CA_ADDRESS"))) {
    c.ca_address = std::nullopt;
  } else {
    c.ca_address = control_plane_uri(get_string(e, "CA_ADDRESS", default_ca));
  }
  c.xds_root_ca = get_string(e, "XDS_ROOT_CA", c.xds_root_ca);
  c.ca_root_ca = get_string(e, "CA_ROOT_CA", c.ca_root_ca);
  c.auth_token = get_string(e, "AUTH_TOKEN", c.auth_token);
  if (auto v = e("ALT_XDS_HOSTNAME"); v && !v->empty()) c.alt_xds_hostname = *v;
  if (auto v = e("ALT_CA_HOSTNAME"); v && !v->empty()) c.alt_ca_hostname = *v;
  auto ttl = get_duration(e, "SECRET_TTL", c.secret_ttl);
  if (!ttl) return make_error(ttl.error());
  if (ttl->count() <= 0) return make_error(invalid_var("SECRET_TTL", *e("SECRET_TTL"), "must be positive"));
  c.secret_ttl = *ttl;
  return ok_status();
}

}  // namespace common::env
