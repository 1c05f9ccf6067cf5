// GrpcEndpoint and make_channel(): how ztunnel reaches an Istio control-plane service (the xDS
// server or the CA) the way upstream does (ztunnel-facts §4.1-4.2, §5): TLS verified against a
// configured root (a file, "SYSTEM" for the system store, or inline PEM) with the SAN checked
// against the URL host or an alternate hostname; every call carries
// `authorization: Bearer <token>`, `clusterid: <id>` and any extra headers.
//
// The token is re-read on every call (projected service-account tokens rotate on disk).
// Channel arguments: HTTP/2 keepalive 30 s / 10 s timeout, reconnect backoff handled by the
// caller, no message size limit on receive (an initial xDS sync of a large mesh is tens of MB).
//
// Threading: make_channel() and add_call_metadata() are thread-safe (no shared state).
// Only .cc files include gRPC; this header forward-declares what it needs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace common::grpcx {

struct GrpcEndpoint {
  // "https://host:port" (TLS) or "http://host:port" (plaintext; tests only). A bare
  // "host:port" means https.
  std::string address;
  // Root of trust for the server certificate: a PEM file path, "SYSTEM", or inline PEM text.
  std::string root_ca;
  // SAN to verify instead of the URL host (ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME).
  std::optional<std::string> alt_hostname;
  // AUTH_TOKEN: a file path (anything starting with '/' or '.') re-read per call, else the
  // token itself; empty = no authorization header.
  std::string auth_token;
  std::string cluster_id;  // "clusterid" metadata; empty = not sent
  std::vector<std::pair<std::string, std::string>> extra_headers;  // lower-cased names
  // SO_MARK for the channel's sockets (PACKET_MARK), so a ztunnel in a captured pod is not
  // redirected to itself; 0 = unmarked.
  uint32_t packet_mark = 0;
};

struct ParsedAddress {
  bool tls = true;
  std::string host;     // without brackets
  std::string target;   // "host:port" as gRPC wants it (IPv6 in brackets)
};
Result<ParsedAddress> parse_address(const std::string& address);

// Reads a root CA setting: file content, "" for SYSTEM (gRPC's default roots), or the PEM.
Result<std::string> load_root_pem(const std::string& root_ca);

// Builds the channel. Fails on a malformed address or an unreadable root file, naming which.
Result<std::shared_ptr<grpc::Channel>> make_channel(const GrpcEndpoint& ep);

// Adds the per-call metadata. Fails when the token file cannot be read.
Status add_call_metadata(grpc::ClientContext& ctx, const GrpcEndpoint& ep);

// Reads the token (file or literal) without the trailing newline.
Result<std::string> read_token(const std::string& auth_token);

}  // namespace common::grpcx
