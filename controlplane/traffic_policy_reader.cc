// DestinationRule trafficPolicy YAML -> DrTrafficPolicy (traffic_policy.h). Every key Istio
// defines is known here; those the waypoint does not implement are refused naming the field,
// so a policy never silently means less than the user wrote.
#include <algorithm>

#include "controlplane/waypoint_loader.h"

namespace controlplane {

using yaml::fail;
using yaml::index;
using yaml::join;
using yaml::Reader;

namespace {

uint64_t duration_field(Reader& r, const YAML::Node& map, const std::string& path, const char* key) {
  const std::string p = join(path, key);
  return parse_duration_ms(r.str(Reader::child(map, key), p), p);
}

int32_t int_field(Reader& r, const YAML::Node& map, const std::string& path, const char* key, uint64_t max) {
  return static_cast<int32_t>(r.integer(Reader::child(map, key), join(path, key), 0, max));
}

// Istio's locality strings: "region", "region/zone", "region/zone/subzone", '*' wildcards.
const std::string& locality_string(const std::string& s, const std::string& path) {
  if (s.empty()) fail(path, "empty locality");
  if (std::count(s.begin(), s.end(), '/') > 2) fail(path, "expected 'region/zone/subzone', got '" + s + "'");
  return s;
}

DrConsistentHash consistent_hash(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path,
                      {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName", "ringHash", "maglev",
                       "minimumRingSize"});
  DrConsistentHash h;
  int keys = 0;
  if (Reader::present(n, "httpHeaderName")) {
    ++keys;
    h.key = DrConsistentHash::Key::Header;
    h.name = r.str(Reader::child(n, "httpHeaderName"), join(path, "httpHeaderName"));
    if (h.name.empty()) fail(join(path, "httpHeaderName"), "empty header name");
    std::transform(h.name.begin(), h.name.end(), h.name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  if (Reader::present(n, "httpCookie")) {
    ++keys;
    const std::string cp = join(path, "httpCookie");
    const YAML::Node c = Reader::child(n, "httpCookie");
    r.expect_strict_map(c, cp, {"name", "path", "ttl", "attributes"});
    h.key = DrConsistentHash::Key::Cookie;
    r.opt_str(c, cp, "name", h.name);
    if (h.name.empty()) fail(join(cp, "name"), "missing required field");
    r.opt_str(c, cp, "path", h.cookie_path);
    if (Reader::present(c, "ttl")) h.cookie_ttl_ms = duration_field(r, c, cp, "ttl");
    if (Reader::present(c, "attributes"))
      fail(join(cp, "attributes"), "cookie attributes are not implemented by the waypoint");
  }
  if (Reader::present(n, "useSourceIp")) {
    if (r.boolean(Reader::child(n, "useSourceIp"), join(path, "useSourceIp"))) {
      ++keys;
      h.key = DrConsistentHash::Key::SourceIp;
    }
  }
  if (Reader::present(n, "httpQueryParameterName")) {
    ++keys;
    h.key = DrConsistentHash::Key::QueryParameter;
    h.name = r.str(Reader::child(n, "httpQueryParameterName"), join(path, "httpQueryParameterName"));
    if (h.name.empty()) fail(join(path, "httpQueryParameterName"), "empty parameter name");
  }
  if (keys != 1)
    fail(path, "exactly one of httpHeaderName, httpCookie, useSourceIp: true, httpQueryParameterName is required");
  if (Reader::present(n, "ringHash") && Reader::present(n, "maglev"))
    fail(join(path, "maglev"), "ringHash and maglev are exclusive");
  if (Reader::present(n, "ringHash")) {
    const std::string p = join(path, "ringHash");
    const YAML::Node x = Reader::child(n, "ringHash");
    r.expect_strict_map(x, p, {"minimumRingSize"});
    h.table = DrConsistentHash::Table::RingHash;
    if (Reader::present(x, "minimumRingSize"))
      h.table_size = r.integer(Reader::child(x, "minimumRingSize"), join(p, "minimumRingSize"), 0, 8'388'608);
  }
  if (Reader::present(n, "maglev")) {
    const std::string p = join(path, "maglev");
    const YAML::Node x = Reader::child(n, "maglev");
    r.expect_strict_map(x, p, {"tableSize"});
    h.table = DrConsistentHash::Table::Maglev;
    if (Reader::present(x, "tableSize")) {
      // Envoy requires a prime table size (it NACKs others); check here so the waypoint never sees one.
      h.table_size = r.integer(Reader::child(x, "tableSize"), join(p, "tableSize"), 0, 5'000'011);
      auto prime = [](uint64_t v) {
        if (v < 2) return false;
        for (uint64_t d = 2; d * d <= v; ++d) {
          if (v % d == 0) return false;
        }
        return true;
      };
      if (h.table_size != 0 && !prime(h.table_size)) fail(join(p, "tableSize"), "must be a prime number");
    }
  }
  if (Reader::present(n, "minimumRingSize")) {
    if (h.table == DrConsistentHash::Table::Maglev)
      fail(join(path, "minimumRingSize"), "minimumRingSize applies to ring hash, not maglev");
    h.minimum_ring_size = r.integer(Reader::child(n, "minimumRingSize"), join(path, "minimumRingSize"), 0, 8'388'608);
  }
  return h;
}

DrLocalityLb locality_lb(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"enabled", "distribute", "failover", "failoverPriority"});
  DrLocalityLb l;
  if (Reader::present(n, "enabled")) l.enabled = r.boolean(Reader::child(n, "enabled"), join(path, "enabled"));
  r.read_list(n, path, "distribute", [&](const YAML::Node& d, const std::string& dp) {
    r.expect_strict_map(d, dp, {"from", "to"});
    DrLocalityLb::Distribute one;
    r.opt_str(d, dp, "from", one.from);
    locality_string(one.from, join(dp, "from"));
    if (!Reader::present(d, "to")) fail(join(dp, "to"), "missing required field");
    const YAML::Node to = Reader::child(d, "to");
    r.expect_map(to, join(dp, "to"));
    uint64_t total = 0;
    for (const auto& kv : to) {
      const std::string loc = r.str(kv.first, join(dp, "to"));
      const std::string kp = join(dp, "to") + "[" + loc + "]";
      locality_string(loc, kp);
      const uint64_t w = r.integer(kv.second, kp, 0, 100);
      total += w;
      one.to[loc] = static_cast<uint32_t>(w);
    }
    if (total != 100) fail(join(dp, "to"), "weights must sum to 100 (got " + std::to_string(total) + ")");
    l.distribute.push_back(std::move(one));
  });
  r.read_list(n, path, "failover", [&](const YAML::Node& f, const std::string& fp) {
    r.expect_strict_map(f, fp, {"from", "to"});
    DrLocalityLb::Failover one;
    r.opt_str(f, fp, "from", one.from);
    r.opt_str(f, fp, "to", one.to);
    if (one.from.empty()) fail(join(fp, "from"), "missing required field");
    if (one.to.empty()) fail(join(fp, "to"), "missing required field");
    if (one.from == one.to) fail(join(fp, "to"), "must differ from 'from'");
    if (one.from.find('/') != std::string::npos || one.to.find('/') != std::string::npos ||
        one.from.find('*') != std::string::npos || one.to.find('*') != std::string::npos)
      fail(fp, "failover is between regions: no '/' or '*'");
    l.failover.push_back(std::move(one));
  });
  if (Reader::present(n, "failoverPriority"))
    l.failover_priority = r.str_list(Reader::child(n, "failoverPriority"), join(path, "failoverPriority"));
  for (size_t i = 0; i < l.failover_priority.size(); ++i) {
    const std::string& s = l.failover_priority[i];
    if (s.empty() || s.front() == '=' || std::count(s.begin(), s.end(), '=') > 1)
      fail(index(join(path, "failoverPriority"), i), "expected 'label' or 'label=value', got '" + s + "'");
  }
  if (!l.distribute.empty() && !l.failover.empty())
    fail(join(path, "failover"), "distribute and failover are exclusive");
  return l;
}

DrLoadBalancer load_balancer(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(
      n, path, {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup", "zoneAwareLbSetting"});
  DrLoadBalancer lb;
  if (Reader::present(n, "simple")) {
    const std::string p = join(path, "simple");
    lb.simple = r.str(Reader::child(n, "simple"), p);
    if (lb.simple == "PASSTHROUGH")
      fail(p, "PASSTHROUGH (ORIGINAL_DST to the caller's address) is not implemented by the waypoint");
    if (lb.simple == "UNSPECIFIED") lb.simple.clear();
    if (!lb.simple.empty() && lb.simple != "ROUND_ROBIN" && lb.simple != "LEAST_REQUEST" && lb.simple != "LEAST_CONN" &&
        lb.simple != "RANDOM")
      fail(p, "unknown value '" + lb.simple + "' (ROUND_ROBIN, LEAST_REQUEST, RANDOM)");
  }
  if (Reader::present(n, "consistentHash")) {
    if (Reader::present(n, "simple")) fail(join(path, "consistentHash"), "simple and consistentHash are exclusive");
    lb.consistent_hash = consistent_hash(r, Reader::child(n, "consistentHash"), join(path, "consistentHash"));
  }
  if (Reader::present(n, "localityLbSetting"))
    lb.locality = locality_lb(r, Reader::child(n, "localityLbSetting"), join(path, "localityLbSetting"));
  if (Reader::present(n, "warmupDurationSecs")) lb.warmup_ms = duration_field(r, n, path, "warmupDurationSecs");
  if (Reader::present(n, "warmup")) {
    const std::string p = join(path, "warmup");
    const YAML::Node w = Reader::child(n, "warmup");
    r.expect_strict_map(w, p, {"duration", "minimumPercent", "aggression"});
    if (lb.warmup_ms) fail(p, "warmup and warmupDurationSecs are exclusive");
    if (Reader::present(w, "minimumPercent") || Reader::present(w, "aggression"))
      fail(join(p, Reader::present(w, "aggression") ? "aggression" : "minimumPercent"),
           "not implemented by the waypoint (only warmup.duration)");
    if (!Reader::present(w, "duration")) fail(join(p, "duration"), "missing required field");
    lb.warmup_ms = duration_field(r, w, p, "duration");
  }
  if (Reader::present(n, "zoneAwareLbSetting"))
    fail(join(path, "zoneAwareLbSetting"), "zone-aware load balancing is not implemented by the waypoint");
  if (lb.warmup_ms && lb.consistent_hash)
    fail(join(path, "warmupDurationSecs"), "warmup applies to ROUND_ROBIN / LEAST_REQUEST, not consistentHash");
  if (lb.warmup_ms && lb.simple == "RANDOM")
    fail(join(path, "warmupDurationSecs"), "warmup applies to ROUND_ROBIN / LEAST_REQUEST, not RANDOM");
  return lb;
}

DrConnectionPool connection_pool(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"tcp", "http"});
  DrConnectionPool cp;
  constexpr uint64_t kMaxInt32 = 2147483647;
  if (Reader::present(n, "tcp")) {
    const std::string p = join(path, "tcp");
    const YAML::Node t = Reader::child(n, "tcp");
    r.expect_strict_map(t, p,
                        {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout"});
    if (Reader::present(t, "maxConnections")) cp.max_connections = int_field(r, t, p, "maxConnections", kMaxInt32);
    if (Reader::present(t, "connectTimeout")) {
      cp.connect_timeout_ms = duration_field(r, t, p, "connectTimeout");
      if (*cp.connect_timeout_ms == 0) fail(join(p, "connectTimeout"), "must be > 0");
    }
    if (Reader::present(t, "tcpKeepalive")) {
      const std::string kp = join(p, "tcpKeepalive");
      const YAML::Node k = Reader::child(t, "tcpKeepalive");
      r.expect_strict_map(k, kp, {"probes", "time", "interval"});
      DrTcpKeepalive ka;
      if (Reader::present(k, "probes"))
        ka.probes = static_cast<uint32_t>(r.integer(Reader::child(k, "probes"), join(kp, "probes"), 0, 4294967295u));
      // Envoy carries these in whole seconds (UInt32Value).
      constexpr uint64_t kMaxMs = 4294967295ull * 1000;
      if (Reader::present(k, "time")) ka.time_ms = duration_field(r, k, kp, "time");
      if (ka.time_ms && *ka.time_ms > kMaxMs) fail(join(kp, "time"), "out of range");
      if (Reader::present(k, "interval")) ka.interval_ms = duration_field(r, k, kp, "interval");
      if (ka.interval_ms && *ka.interval_ms > kMaxMs) fail(join(kp, "interval"), "out of range");
      cp.tcp_keepalive = ka;
    }
    if (Reader::present(t, "maxConnectionDuration"))
      fail(join(p, "maxConnectionDuration"), "not implemented by the waypoint");
    if (Reader::present(t, "idleTimeout")) cp.tcp_idle_timeout_ms = duration_field(r, t, p, "idleTimeout");
  }
  if (Reader::present(n, "http")) {
    const std::string p = join(path, "http");
    const YAML::Node h = Reader::child(n, "http");
    r.expect_strict_map(
        h, p,
        {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries", "idleTimeout",
         "h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams", "http2KeepAlive"});
    if (Reader::present(h, "http1MaxPendingRequests"))
      cp.http1_max_pending_requests = int_field(r, h, p, "http1MaxPendingRequests", kMaxInt32);
    if (Reader::present(h, "http2MaxRequests"))
      cp.http2_max_requests = int_field(r, h, p, "http2MaxRequests", kMaxInt32);
    if (Reader::present(h, "maxRequestsPerConnection"))
      cp.max_requests_per_connection = int_field(r, h, p, "maxRequestsPerConnection", kMaxInt32);
    if (Reader::present(h, "maxRetries")) cp.max_retries = int_field(r, h, p, "maxRetries", kMaxInt32);
    if (Reader::present(h, "idleTimeout")) cp.http_idle_timeout_ms = duration_field(r, h, p, "idleTimeout");
    if (Reader::present(h, "h2UpgradePolicy")) {
      cp.h2_upgrade_policy = r.str(Reader::child(h, "h2UpgradePolicy"), join(p, "h2UpgradePolicy"));
      if (cp.h2_upgrade_policy != "DEFAULT" && cp.h2_upgrade_policy != "DO_NOT_UPGRADE" &&
          cp.h2_upgrade_policy != "UPGRADE")
        fail(join(p, "h2UpgradePolicy"), "unknown value '" + cp.h2_upgrade_policy + "'");
    }
    if (Reader::present(h, "useClientProtocol"))
      cp.use_client_protocol = r.boolean(Reader::child(h, "useClientProtocol"), join(p, "useClientProtocol"));
    if (Reader::present(h, "maxConcurrentStreams"))
      cp.max_concurrent_streams = int_field(r, h, p, "maxConcurrentStreams", kMaxInt32);
    if (Reader::present(h, "http2KeepAlive")) fail(join(p, "http2KeepAlive"), "not implemented by the waypoint");
  }
  return cp;
}

DrOutlierDetection outlier_detection(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(
      n, path,
      {"consecutiveErrors", "consecutive5xxErrors", "consecutiveGatewayErrors", "interval", "baseEjectionTime",
       "maxEjectionPercent", "minHealthPercent", "splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures"});
  DrOutlierDetection o;
  if (Reader::present(n, "consecutiveErrors"))
    fail(join(path, "consecutiveErrors"), "deprecated and ignored by istiod; use consecutive5xxErrors");
  if (Reader::present(n, "consecutive5xxErrors"))
    o.consecutive_5xx_errors = static_cast<uint32_t>(
        r.integer(Reader::child(n, "consecutive5xxErrors"), join(path, "consecutive5xxErrors"), 0, 4294967295u));
  if (Reader::present(n, "consecutiveGatewayErrors"))
    o.consecutive_gateway_errors = static_cast<uint32_t>(r.integer(
        Reader::child(n, "consecutiveGatewayErrors"), join(path, "consecutiveGatewayErrors"), 0, 4294967295u));
  if (Reader::present(n, "interval")) {
    o.interval_ms = duration_field(r, n, path, "interval");
    if (*o.interval_ms == 0) fail(join(path, "interval"), "must be > 0");
  }
  if (Reader::present(n, "baseEjectionTime")) {
    o.base_ejection_time_ms = duration_field(r, n, path, "baseEjectionTime");
    if (*o.base_ejection_time_ms == 0) fail(join(path, "baseEjectionTime"), "must be > 0");
  }
  if (Reader::present(n, "maxEjectionPercent"))
    o.max_ejection_percent = int_field(r, n, path, "maxEjectionPercent", 100);
  if (Reader::present(n, "minHealthPercent")) o.min_health_percent = int_field(r, n, path, "minHealthPercent", 100);
  if (Reader::present(n, "splitExternalLocalOriginErrors") &&
      r.boolean(Reader::child(n, "splitExternalLocalOriginErrors"), join(path, "splitExternalLocalOriginErrors")))
    fail(join(path, "splitExternalLocalOriginErrors"),
         "local-origin error tracking is not implemented by the waypoint (connect failures count as 5xx)");
  if (Reader::present(n, "consecutiveLocalOriginFailures"))
    r.integer(Reader::child(n, "consecutiveLocalOriginFailures"), join(path, "consecutiveLocalOriginFailures"), 0,
              4294967295u);  // ignored without splitExternalLocalOriginErrors, as istiod does
  return o;
}

std::string tls_mode(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path,
                      {"mode", "clientCertificate", "privateKey", "caCertificates", "credentialName", "subjectAltNames",
                       "sni", "insecureSkipVerify", "caCrl"});
  std::string mode = "DISABLE";
  r.opt_str(n, path, "mode", mode);
  if (mode == "SIMPLE" || mode == "MUTUAL")
    fail(join(path, "mode"),
         mode + " (TLS to the application inside the HBONE tunnel) is not implemented by the waypoint");
  if (mode != "DISABLE" && mode != "ISTIO_MUTUAL") fail(join(path, "mode"), "unknown value '" + mode + "'");
  // Inside HBONE the tunnel already is mutual TLS: DISABLE and ISTIO_MUTUAL change nothing, so
  // the certificate fields they would ignore are refused rather than silently dropped.
  for (const char* k : {"clientCertificate", "privateKey", "caCertificates", "credentialName", "subjectAltNames", "sni",
                        "insecureSkipVerify", "caCrl"}) {
    if (Reader::present(n, k))
      fail(join(path, k), "only meaningful with SIMPLE/MUTUAL, which the waypoint does not implement");
  }
  return mode;
}

DrPolicyComponents components(Reader& r, const YAML::Node& n, const std::string& path) {
  DrPolicyComponents c;
  if (Reader::present(n, "loadBalancer"))
    c.load_balancer = load_balancer(r, Reader::child(n, "loadBalancer"), join(path, "loadBalancer"));
  if (Reader::present(n, "connectionPool"))
    c.connection_pool = connection_pool(r, Reader::child(n, "connectionPool"), join(path, "connectionPool"));
  if (Reader::present(n, "outlierDetection"))
    c.outlier_detection = outlier_detection(r, Reader::child(n, "outlierDetection"), join(path, "outlierDetection"));
  if (Reader::present(n, "tls")) c.tls_mode = tls_mode(r, Reader::child(n, "tls"), join(path, "tls"));
  return c;
}

}  // namespace

DrTrafficPolicy read_traffic_policy(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path,
                      {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel",
                       "proxyProtocol", "retryBudget"});
  if (Reader::present(n, "tunnel")) fail(join(path, "tunnel"), "not implemented by the waypoint");
  if (Reader::present(n, "proxyProtocol")) fail(join(path, "proxyProtocol"), "not implemented by the waypoint");
  if (Reader::present(n, "retryBudget")) fail(join(path, "retryBudget"), "not implemented by the waypoint");
  DrTrafficPolicy tp;
  tp.base = components(r, n, path);
  r.read_list(n, path, "portLevelSettings", [&](const YAML::Node& pl, const std::string& pp) {
    r.expect_strict_map(pl, pp, {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"});
    if (!Reader::present(pl, "port")) fail(join(pp, "port"), "missing required field");
    const YAML::Node port = Reader::child(pl, "port");
    r.expect_strict_map(port, join(pp, "port"), {"number"});
    const uint16_t number = r.port(Reader::child(port, "number"), join(join(pp, "port"), "number"));
    for (const auto& [other, unused] : tp.port_level) {
      if (other == number) fail(join(join(pp, "port"), "number"), "duplicate port " + std::to_string(number));
    }
    tp.port_level.emplace_back(number, components(r, pl, pp));
  });
  return tp;
}

}  // namespace controlplane
