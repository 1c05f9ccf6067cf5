#include "controlplane/serve.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/admin/log.h"
#include "common/identity/certs.h"
#include "common/identity/local_ca.h"
#include "common/model/local_config_writer.h"
#include "common/model/xds/xds_resources.h"
#include "controlplane/atomic_file.h"
#include "controlplane/ca_service.h"
#include "controlplane/cached_loader.h"
#include "controlplane/dir_notify.h"
#include "controlplane/jwks_resolver.h"
#include "controlplane/dir_watch.h"
#include "controlplane/incremental_compiler.h"
#include "controlplane/tokens.h"
#include "controlplane/waypoint_compiler.h"

namespace controlplane {
namespace {

using common::make_error;
namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> cp_log() {
  static const std::shared_ptr<spdlog::logger> lg = common::log::logger("controlplane");
  return lg;
}

// The serving certificate's lifetime; re-issued on every start.
constexpr std::chrono::hours kServerCertTtl{24 * 365};

common::Result<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct ListenAddress {
  std::string host;  // without brackets
  std::string port;
};

common::Result<ListenAddress> parse_listen(const std::string& listen) {
  ListenAddress a;
  std::string port;
  if (!listen.empty() && listen[0] == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return make_error("--listen '" + listen + "': expected [ipv6]:port");
    }
    a.host = listen.substr(1, close - 1);
    a.port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || listen.find(':') != colon) {
      return make_error("--listen '" + listen + "': expected host:port (IPv6 as [addr]:port)");
    }
    a.host = listen.substr(0, colon);
    a.port = listen.substr(colon + 1);
  }
  if (a.host.empty()) return make_error("--listen '" + listen + "': no host");
  if (a.port.empty() || a.port.size() > 5 || a.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(a.port) > 65535) {
    return make_error("--listen '" + listen + "': bad port");
  }
  return a;
}

std::string join_host_port(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string identity_key(const std::string& node, const std::string& uri) { return node + '\n' + uri; }

// The namespace of a SPIFFE identity "spiffe://<td>/ns/<ns>/sa/<sa>" ("" when not one).
std::string namespace_of_identity(const std::string& uri) {
  const auto at = uri.find("/ns/");
  if (at == std::string::npos) return "";
  const auto end = uri.find('/', at + 4);
  return end == std::string::npos ? "" : uri.substr(at + 4, end - at - 4);
}

// Appends to `out` every name whose resource differs between `before` and `after` (merge walk
// of the two sorted maps; O(both)).
void diff_names(const XdsResourceMap& before, const XdsResourceMap& after, std::vector<std::string>& out) {
  auto a = after.begin();
  auto b = before.begin();
  while (a != after.end() || b != before.end()) {
    const int c = a == after.end() ? 1 : b == before.end() ? -1 : a->first.compare(b->first);
    if (c < 0) {
      out.push_back(a->first);
      ++a;
    } else if (c > 0) {
      out.push_back(b->first);
      ++b;
    } else {
      if (a->second.version != b->second.version) out.push_back(a->first);
      ++a;
      ++b;
    }
  }
}

}  // namespace

struct ControlPlaneServer::Impl {
  ServeOptions opt;
  std::vector<std::string> exclude;
  std::shared_ptr<const TokenAuthenticator> tokens;
  std::unique_ptr<AdsServer> ads;
  std::unique_ptr<grpc::Service> ca_service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  int port = 0;
  std::string root_pem;

  // Recompile state; poll_mu serialises poll_now() with the watcher.
  std::mutex poll_mu;
  CachedLoader loader;
  DirFingerprint prev;
  bool have_prev = false;
  std::string last_error;
  std::set<std::string> last_findings;
  std::string last_yaml;
  uint64_t generation = 0;
  // The compiled mesh, per namespace (incremental_compiler.h), and per namespace what is
  // served from it: an edit converts and swaps only the namespaces it touched.
  std::unique_ptr<IncrementalCompiler> inc;
  struct Shard {
    std::shared_ptr<const Partition> part;  // what the maps were made from
    std::shared_ptr<const XdsResourceMap> addresses, authorizations;
    std::shared_ptr<const std::set<std::string>> identities;  // identity_key()s of its workloads
  };
  std::map<std::string, Shard> shards;
  WaypointCompileResult waypoints;  // the last waypoint compile (per-proxy Envoy resources)
  bool waypoints_present = false;   // the last waypoint compile had waypoint Gateways
  double compile_ms = 0;

  // identity_key()s per namespace, for the CA (read by gRPC threads).
  using IdentityIndex = std::map<std::string, std::shared_ptr<const std::set<std::string>>>;
  mutable std::mutex index_mu;
  std::shared_ptr<const IdentityIndex> identities = std::make_shared<IdentityIndex>();

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  bool stopped = false;
  std::unique_ptr<DirNotifier> notifier;  // created before, and outlives, the watcher thread
  std::thread watcher;

  bool poll();
  bool poll_source();
  std::string last_mesh;  // summary of the last mesh config logged
  // Logs the mesh config (ConfigMap istio-system/istio) when what it holds changed.
  void note_mesh(const ResourceSet& objects);
  bool own_jwks = false;         // the resolver was made here (not handed in by a test)
  uint64_t jwks_generation = 0;  // the resolver's generation the last waypoint compile saw
  uint64_t jwks_now() const { return opt.compile.jwks ? opt.compile.jwks->generation() : 0; }
  uint64_t source_generation = 0;
  bool source_compiled = false;
  // Publishes the partitions of `touched` (every one when `full`); `extra` are the findings
  // from outside the partitions (parse errors, waypoint compile, the source).
  void publish(bool full, const std::vector<std::string>& touched, Diagnostics extra, double parse_ms,
               size_t parsed_files);
  bool identity_on_node(const std::string& node, const std::string& uri) const {
    std::shared_ptr<const IdentityIndex> ids;
    {
      std::lock_guard<std::mutex> l(index_mu);
      ids = identities;
    }
    auto it = ids->find(namespace_of_identity(uri));
    return it != ids->end() && it->second->count(identity_key(node, uri)) > 0;
  }
  void stop();
};

bool ControlPlaneServer::Impl::poll() {
  std::lock_guard<std::mutex> l(poll_mu);
  if (opt.source) return poll_source();
  auto fp = fingerprint(opt.dir, exclude);
  if (!fp) {
    // The directory may come back (a demo recreating it); keep serving the last state and
    // say so once.
    if (fp.error() != last_error) cp_log()->error("{}; still serving the last good state", fp.error());
    last_error = fp.error();
    have_prev = false;
    return false;
  }
  last_error.clear();
  // New or changed remote JWKS: only the waypoint compile reads them.
  const bool jwks_changed = jwks_now() != jwks_generation;
  if (have_prev && *fp == prev && !jwks_changed) return false;
  const auto t0 = std::chrono::steady_clock::now();
  const CachedLoader::Change change = loader.refresh(*fp, opt.compile.root_namespace);
  const double parse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  const IncrementalCompiler::Update update = inc->update(loader, change);
  Diagnostics extra;
  loader.file_diagnostics(extra);
  // The waypoint compile (waypoint_compiler.h) reads the whole mesh; it runs only when there
  // are waypoints, or when its inputs beyond pods/services/policies (L7 objects, Gateways)
  // changed. Without waypoint Gateways its result has no resources, only findings about L7
  // objects, which then stay as of the last run.
  const bool have_waypoints = loader.has_waypoint_gateways();
  if (update.full || change.l7 || have_waypoints || waypoints_present || jwks_changed) {
    Diagnostics ignored;  // duplicates: reported by the partitions
    jwks_generation = jwks_now();  // read first: keys arriving during the compile trigger another
    ResourceSet all = loader.all(ignored);
    note_mesh(all);
    const auto compiled_at = std::chrono::steady_clock::now();
    waypoints = compile_waypoints(all, opt.compile);
    if (opt.compile.jwks) opt.compile.jwks->forget_unused_since(compiled_at);
    waypoints_present = have_waypoints;
  }
  extra.insert(extra.end(), waypoints.diagnostics.begin(), waypoints.diagnostics.end());
  compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  prev = std::move(*fp);
  have_prev = true;
  publish(update.full, update.touched, std::move(extra), parse_ms, loader.parsed_last());
  return true;
}

// The same steps as poll() with the objects from opt.source (caller holds poll_mu).
bool ControlPlaneServer::Impl::poll_source() {
  const auto t0 = std::chrono::steady_clock::now();
  Diagnostics diags;
  uint64_t gen = 0;
  ResourceSet objects = opt.source->snapshot(diags, gen);
  if (source_compiled && gen == source_generation && jwks_now() == jwks_generation) return false;
  jwks_generation = jwks_now();
  const double parse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  // A source hands over a whole snapshot: compiled in full, published per namespace (only
  // namespaces whose resources changed reach the streams).
  CompiledState st = compile(objects, opt.compile);
  note_mesh(objects);
  opt.source->annotate(st.config);
  const auto compiled_at = std::chrono::steady_clock::now();
  waypoints = compile_waypoints(objects, opt.compile, &st.config);
  if (opt.compile.jwks) opt.compile.jwks->forget_unused_since(compiled_at);
  diags.insert(diags.end(), waypoints.diagnostics.begin(), waypoints.diagnostics.end());
  if (opt.on_attachments) opt.on_attachments(std::make_shared<const GatewayAttachments>(waypoints.attachments));
  inc->assign(std::move(st));
  compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  source_generation = gen;
  source_compiled = true;
  publish(true, {}, std::move(diags), parse_ms, objects.size());
  return true;
}

void ControlPlaneServer::Impl::note_mesh(const ResourceSet& objects) {
  std::string s;
  if (!objects.mesh) {
    s = "none (no ConfigMap istio-system/istio)";
  } else {
    const MeshConfigObject& m = *objects.mesh;
    s = "from " + m.file + " " + m.object + ": extension providers [";
    for (size_t i = 0; i < m.extension_providers.size(); ++i) s += (i ? ", " : "") + m.extension_providers[i].name;
    s += "], default tracing providers [";
    for (size_t i = 0; i < m.default_tracing_providers.size(); ++i) s += (i ? ", " : "") + m.default_tracing_providers[i];
    s += "]";
  }
  if (s == last_mesh) return;
  // The first "none" is not news.
  if (!last_mesh.empty() || objects.mesh) cp_log()->info("mesh config {}", s);
  last_mesh = std::move(s);
}

void ControlPlaneServer::Impl::publish(bool full, const std::vector<std::string>& touched, Diagnostics extra,
                                       double parse_ms, size_t parsed_files) {
  const auto t0 = std::chrono::steady_clock::now();
  // Findings: only those not reported by the previous compile, so an edit elsewhere does not
  // repeat every standing warning of a large directory.
  const Diagnostics compiled = inc->diagnostics();
  std::set<std::string> findings;
  // One logger handle outside the switch: clang-14's ASan reports a (false) stack-use-after-
  // scope for a shared_ptr temporary destroyed inside a switch case.
  const std::shared_ptr<spdlog::logger> lg = cp_log();
  size_t errors = 0, warnings = 0;
  for (const Diagnostics* list : {static_cast<const Diagnostics*>(&extra), &compiled}) {
    for (const auto& d : *list) {
      errors += d.severity == Severity::Error;
      warnings += d.severity == Severity::Warning;
      if (opt.quiet && d.severity == Severity::Info) continue;
      std::string line = d.to_string();
      if (!last_findings.count(line)) {
        const auto level = d.severity == Severity::Error     ? spdlog::level::err
                           : d.severity == Severity::Warning ? spdlog::level::warn
                                                             : spdlog::level::info;
        lg->log(level, "{}", line);
      }
      findings.insert(std::move(line));
    }
  }
  last_findings = std::move(findings);

  // Per touched namespace: convert (unchanged objects keep their bytes), diff against what is
  // served, replace the shard. Untouched shards are shared with the previous state.
  const auto& parts = inc->partitions();
  std::vector<std::string> names;
  if (full) {
    for (const auto& kv : shards) names.push_back(kv.first);
    for (const auto& kv : parts) names.push_back(kv.first);
  } else {
    names = touched;
  }
  std::vector<std::string> changed_addresses, changed_authorizations;
  static const auto kEmpty = std::make_shared<const XdsResourceMap>();
  for (const auto& ns : names) {
    auto p = parts.find(ns);
    auto sh = shards.find(ns);
    if (p == parts.end()) {
      if (sh == shards.end()) continue;
      diff_names(*sh->second.addresses, *kEmpty, changed_addresses);
      diff_names(*sh->second.authorizations, *kEmpty, changed_authorizations);
      shards.erase(sh);
      continue;
    }
    if (sh != shards.end() && sh->second.part == p->second) continue;  // already published
    XdsResources res = sh != shards.end()
                           ? to_xds_resources(p->second->config, sh->second.part->config, *sh->second.addresses)
                           : to_xds_resources(p->second->config);
    Shard next;
    next.part = p->second;
    const XdsResourceMap& old_addresses = sh != shards.end() ? *sh->second.addresses : *kEmpty;
    const XdsResourceMap& old_authorizations = sh != shards.end() ? *sh->second.authorizations : *kEmpty;
    const size_t a0 = changed_addresses.size(), z0 = changed_authorizations.size();
    diff_names(old_addresses, res.addresses, changed_addresses);
    diff_names(old_authorizations, res.authorizations, changed_authorizations);
    next.addresses = sh != shards.end() && changed_addresses.size() == a0
                         ? sh->second.addresses
                         : std::make_shared<const XdsResourceMap>(std::move(res.addresses));
    next.authorizations = sh != shards.end() && changed_authorizations.size() == z0
                              ? sh->second.authorizations
                              : std::make_shared<const XdsResourceMap>(std::move(res.authorizations));
    auto ids = std::make_shared<std::set<std::string>>();
    for (const auto& w : p->second->config.workloads) {
      if (!w.node.empty()) ids->insert(identity_key(w.node, w.identity().uri()));
    }
    next.identities = std::move(ids);
    shards[ns] = std::move(next);
  }

  auto next = std::make_shared<ServedState>();
  next->version = std::to_string(++generation);
  // Both istio types are served from the shards; the unsharded maps stay empty.
  next->types.emplace(std::string(kAddressTypeUrl), kEmpty);
  next->types.emplace(std::string(kAuthorizationTypeUrl), kEmpty);
  auto& address_shards = next->shards[std::string(kAddressTypeUrl)];
  auto& authorization_shards = next->shards[std::string(kAuthorizationTypeUrl)];
  address_shards.reserve(shards.size());
  authorization_shards.reserve(shards.size());
  auto ids = std::make_shared<IdentityIndex>();
  size_t workloads = 0, services = 0, policies = 0;
  for (const auto& [ns, sh] : shards) {
    address_shards.push_back(sh.addresses);
    authorization_shards.push_back(sh.authorizations);
    ids->emplace(ns, sh.identities);
    workloads += sh.part->config.workloads.size();
    services += sh.part->config.services.size();
    policies += sh.part->config.policies.size();
  }
  next->changed.emplace(std::string(kAddressTypeUrl), std::move(changed_addresses));
  next->changed.emplace(std::string(kAuthorizationTypeUrl), std::move(changed_authorizations));
  // Waypoints: Envoy resources per waypoint proxy (waypoint_compiler.h); the shared maps stay
  // empty so the types are known to every stream.
  for (std::string_view t :
       {kRouteConfigurationTypeUrl, kClusterTypeUrl, kClusterLoadAssignmentTypeUrl, kListenerTypeUrl})
    next->types.emplace(std::string(t), kEmpty);
  for (const auto& [proxy, res] : waypoints.by_proxy) {
    auto& m = next->per_proxy[proxy];
    m.emplace(std::string(kRouteConfigurationTypeUrl), std::shared_ptr<const XdsResourceMap>(res, &res->routes));
    m.emplace(std::string(kClusterTypeUrl), std::shared_ptr<const XdsResourceMap>(res, &res->clusters));
    m.emplace(std::string(kClusterLoadAssignmentTypeUrl), std::shared_ptr<const XdsResourceMap>(res, &res->endpoints));
    m.emplace(std::string(kListenerTypeUrl), std::shared_ptr<const XdsResourceMap>(res, &res->listeners));
  }
  {
    std::lock_guard<std::mutex> l(index_mu);
    identities = std::move(ids);
  }
  ads->set_state(std::move(next));

  if (!opt.out.empty()) {  // O(mesh): the file is whole
    std::string yaml = to_local_xds_yaml(
        inc->merged(), "Generated by `controlplane serve --dir " + opt.dir +
                           "`; do not edit.\nFormat: ztunnel LOCAL_XDS_PATH (workloads, services, policies).");
    if (yaml != last_yaml) {
      if (auto w = write_file_atomically(opt.out, yaml); !w) {
        cp_log()->error("{}", w.error());
      } else {
        last_yaml = std::move(yaml);
      }
    }
  }
  const double publish_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  cp_log()->info(
      "compiled {} workloads, {} services, {} policies from {} ({} errors, {} warnings; {} files parsed in {:.1f} ms, "
      "compiled in {:.1f} ms ({}), published in {:.1f} ms) version {}",
      workloads, services, policies, opt.dir, errors, warnings, parsed_files, parse_ms, compile_ms,
      full ? std::string("full") : std::to_string(touched.size()) + " namespaces", publish_ms, generation);
}

void ControlPlaneServer::Impl::stop() {
  {
    std::lock_guard<std::mutex> l(stop_mu);
    if (stopped) return;
    stopped = stopping = true;
  }
  stop_cv.notify_all();
  if (notifier) notifier->wake();
  if (opt.source) opt.source->stop();
  if (own_jwks) opt.compile.jwks->stop();
  if (watcher.joinable()) watcher.join();
  if (ads) ads->shutdown();
  if (server) {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server->Wait();
  }
}

common::Result<std::unique_ptr<ControlPlaneServer>> ControlPlaneServer::start(const ServeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  ServeOptions& opt = impl->opt;
  if (opt.dir.empty() && !opt.source) return make_error("--dir (or --kube / --kubeconfig) is required");
  if (opt.tokens.empty() && !opt.token_reviewer) {
    return make_error("--tokens FILE (or --token-review) is required (no anonymous access)");
  }
  if (opt.max_cert_ttl.count() <= 0) return make_error("--max-cert-ttl must be positive");
  auto listen = parse_listen(opt.listen);
  if (!listen) return make_error(listen.error());
  if (!opt.out.empty()) impl->exclude.push_back(opt.out);

  // ---- tokens ----
  auto tokens = opt.tokens.empty() ? TokenAuthenticator::parse("tokens: []") : TokenAuthenticator::load(opt.tokens);
  if (!tokens) return make_error(tokens.error());
  if (tokens->size() == 0 && !opt.token_reviewer) {
    return make_error("tokens file " + opt.tokens + ": no tokens (no anonymous access)");
  }
  if (opt.token_reviewer) tokens->set_reviewer(opt.token_reviewer);
  impl->tokens = std::make_shared<const TokenAuthenticator>(std::move(*tokens));
  TrustedNodeAccounts trusted;
  for (const auto& a : opt.trusted_node_accounts) {
    const auto slash = a.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == a.size() || a.find('/', slash + 1) != std::string::npos) {
      return make_error("--trusted-node-accounts: '" + a + "' is not <namespace>/<serviceaccount>");
    }
    trusted.accounts.push_back(a);
  }

  // ---- CA and the serving certificate ----
  const fs::path ca_dir = opt.cacerts;
  const bool existed = fs::exists(ca_dir / "ca-cert.pem");
  auto ca = common::LocalCa::create(ca_dir, opt.compile.trust_domain);
  if (!ca) return make_error("--cacerts " + opt.cacerts + ": " + ca.error());
  if (!existed) cp_log()->info("created a new CA in {}", fs::absolute(ca_dir).string());
  impl->root_pem = ca->roots_pem();
  const std::string ca_chain = ca->cert_chain_pem();
  auto ca_cert = read_file(ca_dir / "ca-cert.pem");
  if (!ca_cert) return make_error("--cacerts: " + ca_cert.error());
  auto ca_key = read_file(ca_dir / "ca-key.pem");
  if (!ca_key) return make_error("--cacerts: " + ca_key.error());
  std::vector<std::string> dns{"localhost", "istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local"};
  std::vector<std::string> ips{"127.0.0.1", "::1"};
  if (auto ip = ztunnel::parse_ip(listen->host)) {
    if (!ip->is_unspecified() && !ip->is_loopback()) ips.push_back(ip->to_string());
  } else if (std::find(dns.begin(), dns.end(), listen->host) == dns.end()) {
    dns.push_back(listen->host);
  }
  auto cert = common::certs::issue_server_cert(common::certs::CaMaterial{*ca_cert, *ca_key}, dns, ips,
                                               std::chrono::duration_cast<std::chrono::seconds>(kServerCertTtl));
  if (!cert) return make_error("issuing the server certificate: " + cert.error());

  // ---- the mesh, before the port opens ----
  if (!opt.compile.jwks) {
    JwksResolverOptions jo;
    if (opt.jwks_refresh.count() <= 0) return make_error("--jwks-refresh must be positive");
    jo.refresh_interval = opt.jwks_refresh;
    if (!opt.jwks_ca_file.empty()) {
      auto pem = read_file(opt.jwks_ca_file);
      if (!pem) return make_error("--jwks-ca: " + pem.error());
      jo.fetch.extra_ca_pem = std::move(*pem);
    }
    opt.compile.jwks = std::make_shared<JwksResolver>(std::move(jo));
    impl->own_jwks = true;
  }
  impl->ads = std::make_unique<AdsServer>(impl->tokens);
  impl->inc = std::make_unique<IncrementalCompiler>(opt.compile);
  if (opt.source) {
    opt.dir = opt.source->describe();  // for log lines
  } else if (auto first = fingerprint(opt.dir, impl->exclude); !first) {
    return make_error("--dir: " + first.error());
  }
  impl->poll();

  Impl* self = impl.get();
  CaServiceOptions ca_opts;
  ca_opts.trust_domain = opt.compile.trust_domain;
  ca_opts.trusted = trusted;
  ca_opts.max_ttl = opt.max_cert_ttl;
  ca_opts.default_ttl = std::min(ca_opts.default_ttl, opt.max_cert_ttl);
  impl->ca_service =
      make_ca_service(std::move(*ca), impl->tokens, ca_opts, [self](const std::string& node, const common::Identity& id) {
        return self->identity_on_node(node, id.uri());
      });

  // ---- gRPC server ----
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({cert->key_pem, cert->cert_pem + ca_chain});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opt.listen, grpc::SslServerCredentials(ssl), &port);
  // An initial sync of a large mesh is one message of tens of MB.
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  // Clients ping every 30 s even on idle connections (as ztunnel does): allow it rather than
  // answering with GOAWAY too_many_pings.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC sets SO_REUSEPORT by default: a second control plane on the same port would start
  // "fine" and split the clients. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(impl->ads->service());
  builder.RegisterService(impl->ca_service.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server || port == 0) {
    impl->stop();
    return make_error("cannot listen on " + opt.listen);
  }
  impl->port = port;
  impl->address = join_host_port(listen->host, port);

  if (opt.source) {
    impl->watcher = std::thread([self] {
      uint64_t seen = 0;
      for (;;) {
        seen = self->opt.source->wait_change(seen, std::chrono::seconds(5));
        {
          std::lock_guard<std::mutex> l(self->stop_mu);
          if (self->stopping) return;
        }
        self->poll();
      }
    });
    return std::unique_ptr<ControlPlaneServer>(new ControlPlaneServer(std::move(impl)));
  }
  impl->notifier = std::make_unique<DirNotifier>(opt.dir);
  // Keys arriving wake the watcher at once (the poll interval is the fallback). stop() joins
  // the resolver before the notifier goes.
  if (impl->own_jwks) opt.compile.jwks->set_listener([self] { self->notifier->wake(); });
  impl->watcher = std::thread([self] {
    auto stopping = [self] {
      std::lock_guard<std::mutex> l(self->stop_mu);
      return self->stopping;
    };
    for (;;) {
      // Woken early by inotify; the poll interval is the fallback (see dir_notify.h).
      self->notifier->wait(self->opt.poll_interval);
      if (stopping()) return;
      if (!self->notifier->active()) self->notifier->rearm();
      self->poll();
    }
  });
  return std::unique_ptr<ControlPlaneServer>(new ControlPlaneServer(std::move(impl)));
}

ControlPlaneServer::ControlPlaneServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlPlaneServer::~ControlPlaneServer() { impl_->stop(); }
const std::string& ControlPlaneServer::address() const { return impl_->address; }
int ControlPlaneServer::port() const { return impl_->port; }
const std::string& ControlPlaneServer::root_cert_pem() const { return impl_->root_pem; }
AdsServer& ControlPlaneServer::ads() { return *impl_->ads; }
bool ControlPlaneServer::identity_on_node(const std::string& node, const std::string& identity_uri) const {
  return impl_->identity_on_node(node, identity_uri);
}
bool ControlPlaneServer::poll_now() { return impl_->poll(); }
void ControlPlaneServer::stop() { impl_->stop(); }

int run_serve(const ServeOptions& options, const std::atomic<bool>& stop_flag) {
  // Tests and scripts wait for lines on a pipe: flush per line.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* env = std::getenv("RUST_LOG");
  std::string filter = env && *env && common::log::validate_filter(env) ? env : "info";
  (void)common::log::init(filter, common::log::Format::Plain, "controlplane");
  auto server = ControlPlaneServer::start(options);
  if (!server) {
    cp_log()->error("{}", server.error());
    return 1;
  }
  cp_log()->info("serving on {} (delta ADS + Istio CA, TLS; clients verify with {}/root-cert.pem)",
              (*server)->address(), options.cacerts);
  cp_log()->flush();
  while (!stop_flag.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  cp_log()->info("shutting down");
  (*server)->stop();
  cp_log()->info("stopped");
  return 0;
}

}  // namespace controlplane
