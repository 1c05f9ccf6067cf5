#include "common/grpc/channel.h"
#include "common/grpc/socket_mark.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>

namespace common::grpcx {

namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool looks_like_path(const std::string& s) { return !s.empty() && (s[0] == '/' || s[0] == '.'); }

}  // namespace

Result<ParsedAddress> parse_address(const std::string& address) {
  ParsedAddress out;
  std::string rest = address;
  if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    out.tls = false;
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return make_error("address '" + address + "': scheme must be https:// or http://");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty()) return make_error("address '" + address + "': no host");
  std::string port;
  if (rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return make_error("address '" + address + "': unterminated '['");
    out.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return make_error("address '" + address + "': junk after ']'");
      port = rest.substr(close + 2);
    }
  } else {
    auto colon = rest.rfind(':');
    if (colon != std::string::npos) {
      out.host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    } else {
      out.host = rest;
    }
  }
  if (out.host.empty()) return make_error("address '" + address + "': no host");
  if (port.empty()) port = out.tls ? "443" : "80";
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoul(port) > 65535 ||
      std::stoul(port) == 0) {
    return make_error("address '" + address + "': bad port '" + port + "'");
  }
  bool v6 = out.host.find(':') != std::string::npos;
  out.target = (v6 ? "[" + out.host + "]" : out.host) + ":" + port;
  return out;
}

Result<std::string> load_root_pem(const std::string& root_ca) {
  if (root_ca == "SYSTEM") return std::string();
  if (root_ca.find("-----BEGIN") != std::string::npos) return root_ca;
  auto pem = read_file(root_ca);
  if (!pem) return make_error("root certificate " + pem.error());
  if (pem.value().find("-----BEGIN CERTIFICATE") == std::string::npos) {
    return make_error("root certificate " + root_ca + ": no PEM certificate in it");
  }
  return pem;
}

Result<std::string> read_token(const std::string& auth_token) {
  if (!looks_like_path(auth_token)) return auth_token;
  auto t = read_file(auth_token);
  if (!t) return make_error("AUTH_TOKEN: " + t.error());
  std::string s = std::move(t.value());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::shared_ptr<grpc::Channel>> make_channel(const GrpcEndpoint& ep) {
  auto addr = parse_address(ep.address);
  if (!addr) return make_error(addr.error());
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1);
  // Each of our channels is its own connection: the xDS stream and CA calls never queue
  // behind each other, as with upstream's separate clients.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  set_socket_mark(args, ep.packet_mark);
  // Retries are scheduled by the callers (xDS backoff, certificate retry); the channel's own
  // reconnect backoff (default up to 120 s) must not stretch them once the server is back.
  // gRPC core uses the "min reconnect backoff" as the deadline of one connection attempt (TCP,
  // TLS and HTTP/2 setup): 5 s, upstream ztunnel's control-plane connect timeout.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5'000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5'000);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (addr.value().tls) {
    auto roots = load_root_pem(ep.root_ca);
    if (!roots) return make_error(roots.error());
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = roots.value();
    creds = grpc::SslCredentials(opts);
    if (ep.alt_hostname && !ep.alt_hostname->empty()) args.SetSslTargetNameOverride(*ep.alt_hostname);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(addr.value().target, creds, args);
}

Status add_call_metadata(grpc::ClientContext& ctx, const GrpcEndpoint& ep) {
  if (!ep.auth_token.empty()) {
    auto tok = read_token(ep.auth_token);
    if (!tok) return make_error(tok.error());
    if (!tok.value().empty()) ctx.AddMetadata("authorization", "Bearer " + tok.value());
  }
  if (!ep.cluster_id.empty()) ctx.AddMetadata("clusterid", ep.cluster_id);
  for (const auto& [k, v] : ep.extra_headers) ctx.AddMetadata(k, v);
  return ok_status();
}

}  // namespace common::grpcx
