// DestinationRule traffic policy without sockets: the consistent-hash tables (ring, maglev),
// the request hash, the outlier detector's arithmetic and state machine, the circuit
// breaker's counts, and the priority/ejection/panic-aware endpoint choice over runtimes
// built from a config snapshot. The xxHash64 vectors come from the system libxxhash.
#include <catch2/catch.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/admin/metrics.h"
#include "waypoint/upstream/circuit_breaker.h"
#include "waypoint/upstream/cluster_state.h"
#include "waypoint/upstream/hash_ring.h"
#include "waypoint/upstream/load_balancer.h"
#include "waypoint/upstream/outlier.h"
#include "waypoint/upstream/request_hash.h"

using namespace waypoint;
using namespace waypoint::upstream;

TEST_CASE("xxhash64 matches the reference implementation", "[waypoint][hash]") {
  CHECK(xxhash64("") == 0xef46db3751d8e999ULL);
  CHECK(xxhash64("abc") == 0x44bc2cf5ad770999ULL);
  CHECK(xxhash64("10.0.0.1:8080_17") == 0xadaea2deb9eb2077ULL);
  CHECK(xxhash64("The quick brown fox jumps over the lazy dog, twice over!") == 0x0709fb4a3913333dULL);
  CHECK(xxhash64("hello", 1) == 0x23dd71cb04d0a1b2ULL);
}

namespace {
std::vector<std::string> kKeys = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};
std::vector<HashHost> hosts_of(size_t n, std::vector<uint32_t> weights = {}) {
  std::vector<HashHost> h;
  for (size_t i = 0; i < n; ++i) h.push_back({kKeys[i], weights.empty() ? 1u : weights[i]});
  return h;
}
}  // namespace

TEST_CASE("ring hash: at least min_size points, sticky keys, even spread, weights", "[waypoint][hash]") {
  auto ring = HashRing::build(hosts_of(3), 1024);
  CHECK(ring.size() >= 1024);
  std::map<size_t, int> count;
  for (int k = 0; k < 3000; ++k) {
    const uint64_t h = xxhash64("user-" + std::to_string(k));
    auto a = ring.lookup(h);
    REQUIRE(a);
    CHECK(*a == *ring.lookup(h));  // same key, same host
    ++count[*a];
  }
  REQUIRE(count.size() == 3);
  for (auto& [host, n] : count) {
    INFO("host " << host << " got " << n);
    CHECK(n > 600);  // 1000 each ideally
    CHECK(n < 1400);
  }
  auto weighted = HashRing::build(hosts_of(2, {3, 1}), 1024);
  int first = 0;
  for (int k = 0; k < 2000; ++k) first += *weighted.lookup(xxhash64("k" + std::to_string(k))) == 0 ? 1 : 0;
  CHECK(first > 1200);  // 1500 ideally
  CHECK(first < 1800);
}

TEST_CASE("ring hash: an unusable host loses only its own keys", "[waypoint][hash]") {
  auto ring = HashRing::build(hosts_of(3), 1024);
  int moved = 0, owned_by_1 = 0;
  for (int k = 0; k < 1000; ++k) {
    const uint64_t h = xxhash64("s" + std::to_string(k));
    const size_t before = *ring.lookup(h);
    const size_t after = *ring.lookup(h, [](size_t i) { return i != 1; });
    CHECK(after != 1);
    if (before == 1) {
      ++owned_by_1;
    } else {
      CHECK(after == before);
    }
    moved += before != after ? 1 : 0;
  }
  CHECK(moved == owned_by_1);
  CHECK_FALSE(ring.lookup(1, [](size_t) { return false; }));
  CHECK_FALSE(HashRing::build({}, 1024).lookup(1));
}

TEST_CASE("maglev: table of the configured size, even shares, weights, minimal disruption", "[waypoint][hash]") {
  auto t = MaglevTable::build(hosts_of(3), 65537);
  CHECK(t.size() == 65537);
  auto shares = t.shares(3);
  for (size_t s : shares) {
    CHECK(s > 65537 / 3 - 200);
    CHECK(s < 65537 / 3 + 200);
  }
  auto w = MaglevTable::build(hosts_of(2, {2, 1}), 65537);
  auto ws = w.shares(2);
  CHECK(ws[0] > ws[1] * 3 / 2);
  // Rebuilt without host 2: keys of hosts 0 and 1 mostly stay where they were.
  auto fewer = MaglevTable::build(hosts_of(2), 65537);
  int stayed = 0, total = 0;
  for (int k = 0; k < 2000; ++k) {
    const uint64_t h = xxhash64("m" + std::to_string(k));
    const size_t before = *t.lookup(h);
    if (before == 2) continue;
    ++total;
    stayed += *fewer.lookup(h) == before ? 1 : 0;
  }
  CHECK(stayed * 100 > total * 80);
  // Unusable host: never returned while another exists.
  for (int k = 0; k < 200; ++k) CHECK(*t.lookup(xxhash64(std::to_string(k)), [](size_t i) { return i == 2; }) == 2);
}

namespace {
router::HttpRequest req_with(std::vector<std::pair<std::string, std::string>> headers, std::string path = "/") {
  router::HttpRequest r;
  r.method = "GET";
  r.path = std::move(path);
  r.authority = "calc";
  for (auto& [k, v] : headers) r.headers.add(k, v);
  return r;
}
HashPolicy policy(HashPolicy::Kind k, std::string name = "", bool terminal = false) {
  HashPolicy p;
  p.kind = k;
  p.name = std::move(name);
  p.terminal = terminal;
  return p;
}
}  // namespace

TEST_CASE("request hash: header, cookie, source ip, query parameter, terminal", "[waypoint][hash]") {
  std::vector<HashPolicy> header = {policy(HashPolicy::Kind::Header, "x-user")};
  auto a = compute_request_hash(header, req_with({{"x-user", "alice"}}), "", 1);
  auto b = compute_request_hash(header, req_with({{"x-user", "alice"}}), "", 2);
  auto c = compute_request_hash(header, req_with({{"x-user", "bob"}}), "", 1);
  REQUIRE(a.hash);
  CHECK(*a.hash == *b.hash);
  CHECK(*a.hash != *c.hash);
  CHECK_FALSE(compute_request_hash(header, req_with({}), "", 1).hash);

  std::vector<HashPolicy> ip = {policy(HashPolicy::Kind::SourceIp)};
  CHECK(*compute_request_hash(ip, req_with({}), "10.1.2.3:5555", 0).hash ==
        *compute_request_hash(ip, req_with({}), "10.1.2.3:6666", 0).hash);
  CHECK(*compute_request_hash(ip, req_with({}), "[fd00::1]:5555", 0).hash ==
        *compute_request_hash(ip, req_with({}), "fd00::1", 0).hash);

  std::vector<HashPolicy> q = {policy(HashPolicy::Kind::QueryParameter, "user")};
  CHECK(*compute_request_hash(q, req_with({}, "/p?a=1&user=carol"), "", 0).hash == xxhash64("carol"));
  CHECK_FALSE(compute_request_hash(q, req_with({}, "/p?a=1"), "", 0).hash);

  // Terminal: the first policy that yields a hash ends the list; combination otherwise.
  std::vector<HashPolicy> two = {policy(HashPolicy::Kind::Header, "x-a", true),
                                 policy(HashPolicy::Kind::Header, "x-b")};
  auto only_a = compute_request_hash(two, req_with({{"x-a", "1"}, {"x-b", "2"}}), "", 0);
  CHECK(*only_a.hash == xxhash64("1"));
  auto only_b = compute_request_hash(two, req_with({{"x-b", "2"}}), "", 0);
  CHECK(*only_b.hash == xxhash64("2"));
  two[0].terminal = false;
  auto both = compute_request_hash(two, req_with({{"x-a", "1"}, {"x-b", "2"}}), "", 0);
  CHECK(*both.hash != xxhash64("1"));
  // A terminal policy that yields nothing does not end the walk.
  std::vector<HashPolicy> then_ip = {policy(HashPolicy::Kind::Header, "x-user", true),
                                     policy(HashPolicy::Kind::SourceIp)};
  CHECK(*compute_request_hash(then_ip, req_with({}), "10.1.2.3", 0).hash == xxhash64("10.1.2.3"));
}

TEST_CASE("request hash: cookie present is hashed, absent with ttl is generated as Envoy's Set-Cookie",
          "[waypoint][hash]") {
  HashPolicy p = policy(HashPolicy::Kind::Cookie, "session");
  std::vector<HashPolicy> no_ttl = {p};
  CHECK_FALSE(compute_request_hash(no_ttl, req_with({}), "", 0).hash);
  auto present = compute_request_hash(no_ttl, req_with({{"cookie", "a=1; session=\"xyz\"; b=2"}}), "", 0);
  CHECK(*present.hash == xxhash64("xyz"));
  CHECK(present.set_cookie.empty());
  // Quoted or not, the same value; a cookie whose name only starts with ours is not it.
  CHECK(*compute_request_hash(no_ttl, req_with({{"cookie", "session=xyz"}}), "", 0).hash == xxhash64("xyz"));
  CHECK_FALSE(compute_request_hash(no_ttl, req_with({{"cookie", "sessionid=xyz"}}), "", 0).hash);
  p.cookie_ttl = Duration(3600000);
  p.cookie_path = "/";
  std::vector<HashPolicy> ttl = {p};
  auto gen = compute_request_hash(ttl, req_with({}), "10.0.0.9:1", 42);
  REQUIRE(gen.hash);
  REQUIRE(gen.set_cookie.starts_with("session=\""));
  CHECK(gen.set_cookie.ends_with("\"; Max-Age=3600; Path=/; HttpOnly"));
  const std::string value = gen.set_cookie.substr(9, 16);
  CHECK(*gen.hash == xxhash64(value));
  // The client sends it back: same hash, no new cookie.
  auto back = compute_request_hash(ttl, req_with({{"cookie", gen.set_cookie.substr(0, 26)}}), "10.0.0.9:1", 7);
  CHECK(back.set_cookie.empty());
  CHECK(*back.hash == *gen.hash);
}

TEST_CASE("outlier arithmetic: Envoy's max_ejection_percent rule and the ejection time", "[waypoint][outlier]") {
  CHECK(ejection_allowed(0, 2, 50));
  CHECK_FALSE(ejection_allowed(1, 2, 50));
  CHECK_FALSE(ejection_allowed(0, 5, 10));  // fewer than 10 hosts eject nothing at 10 %
  CHECK(ejection_allowed(0, 10, 10));
  CHECK_FALSE(ejection_allowed(1, 10, 10));
  CHECK(ejection_allowed(0, 1, 100));
  CHECK_FALSE(ejection_allowed(0, 0, 100));
  OutlierDetection od;
  od.base_ejection_time = Duration(30000);
  CHECK(ejection_time(od, 1) == Duration(30000));
  CHECK(ejection_time(od, 3) == Duration(90000));
  CHECK(ejection_time(od, 50) == Duration(300000));  // max_ejection_time
  od.max_ejection_time = Duration(1000);
  CHECK(ejection_time(od, 5) == Duration(30000));  // a cap below the base is the base
  CHECK(outlier_code(AttemptResult::ConnectFailed, 0) == 503);
  CHECK(outlier_code(AttemptResult::Timeout, 0) == 504);
  CHECK(outlier_code(AttemptResult::Reset, 0) == 503);
  CHECK(outlier_code(AttemptResult::Response, 500) == 500);
}

TEST_CASE("outlier detector: consecutive 5xx eject, success resets, gateway enforcing, sweep, growth",
          "[waypoint][outlier]") {
  common::metrics::Registry reg;
  ClusterMetrics metrics(reg);
  const ClusterStats stats = metrics.stats_for("c");
  OutlierDetection od;
  od.consecutive_5xx = 3;
  od.consecutive_gateway_failure = 2;
  od.enforcing_consecutive_gateway_failure = 0;
  od.base_ejection_time = Duration(1000);
  od.max_ejection_percent = 100;
  HostOutlier h;
  OutlierCounters counters;
  bool ej = false;
  // Two 500s, a 200, two 500s: no ejection (the success reset the count).
  for (uint16_t code : {500, 500, 200, 500, 500}) report(h, counters, od, code, 2, 0, 0, &stats, ej);
  CHECK_FALSE(h.ejected.load());
  CHECK(report(h, counters, od, 500, 2, 10, 0, &stats, ej) == Detected::Consecutive5xx);
  CHECK(ej);
  CHECK(h.ejected.load());
  CHECK(counters.active.load() == 1);
  CHECK(stats.ejections_active->value() == 1);
  CHECK(stats.ejections_enforced_total->value() == 1);
  HostOutlier* hosts[] = {&h};
  // The sweep before the time is up keeps it out; after, it is back.
  CHECK(sweep(hosts, counters, od, 500, &stats) == 0);
  CHECK(h.ejected.load());
  CHECK(sweep(hosts, counters, od, 1010, &stats) == 1);
  CHECK_FALSE(h.ejected.load());
  CHECK(counters.active.load() == 0);
  // Ejected again at once: twice the base time now.
  for (int i = 0; i < 3; ++i) report(h, counters, od, 503, 2, 2000, 0, &stats, ej);
  CHECK(h.ejected.load());
  CHECK(h.multiplier.load() == 2);
  CHECK(sweep(hosts, counters, od, 3500, &stats) == 0);
  CHECK(sweep(hosts, counters, od, 4000, &stats) == 1);
  // Healthy sweeps decay the multiplier.
  sweep(hosts, counters, od, 5000, &stats);
  sweep(hosts, counters, od, 6000, &stats);
  CHECK(h.multiplier.load() == 0);
  // Gateway failures are detected but not enforced at enforcing 0 (the 503s above were
  // gateway failures too: one detection already).
  CHECK(stats.ejections_detected_gateway->value() == 1);
  od.consecutive_5xx = 100;
  HostOutlier g;
  report(g, counters, od, 502, 2, 0, 0, &stats, ej);
  CHECK(report(g, counters, od, 504, 2, 0, 0, &stats, ej) == Detected::ConsecutiveGateway);
  CHECK_FALSE(ej);
  CHECK_FALSE(g.ejected.load());
  CHECK(stats.ejections_detected_gateway->value() == 2);
  od.enforcing_consecutive_gateway_failure = 100;
  report(g, counters, od, 502, 2, 0, 0, &stats, ej);
  report(g, counters, od, 503, 2, 0, 0, &stats, ej);
  CHECK(g.ejected.load());
  CHECK(stats.ejections_enforced_gateway->value() == 1);
}

TEST_CASE("outlier detector: max_ejection_percent stops the second ejection", "[waypoint][outlier]") {
  OutlierDetection od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 50;
  HostOutlier a, b;
  OutlierCounters counters;
  bool ej = false;
  report(a, counters, od, 500, 2, 0, 0, nullptr, ej);
  CHECK(ej);
  report(b, counters, od, 500, 2, 0, 0, nullptr, ej);
  CHECK_FALSE(ej);
  CHECK_FALSE(b.ejected.load());
  CHECK(counters.active.load() == 1);
}

TEST_CASE("circuit breaker: counts up to the limit, overflow counters, release", "[waypoint][breaker]") {
  common::metrics::Registry reg;
  ClusterMetrics metrics(reg);
  const ClusterStats stats = metrics.stats_for("outbound|80||calc");
  CircuitBreaker cb(&stats);
  CircuitBreakerThresholds t;
  t.max_pending_requests = 2;
  t.max_retries = 0;
  using K = CircuitBreaker::Kind;
  CHECK(cb.try_acquire(K::Pending, t));
  CHECK(cb.try_acquire(K::Pending, t));
  CHECK(stats.remaining_pending->value() == 0);
  CHECK_FALSE(cb.try_acquire(K::Pending, t));
  CHECK(stats.rq_pending_overflow->value() == 1);
  CHECK_FALSE(cb.try_acquire(K::Pending, t, false));  // a re-check does not count again
  CHECK(stats.rq_pending_overflow->value() == 1);
  cb.release(K::Pending, t);
  CHECK(cb.count(K::Pending) == 1);
  CHECK(cb.try_acquire(K::Pending, t));
  CHECK_FALSE(cb.try_acquire(K::Retries, t));
  CHECK(stats.rq_retry_overflow->value() == 1);
  const std::string text = reg.render();
  CHECK(text.find("envoy_cluster_upstream_rq_pending_overflow{cluster_name=\"outbound|80||calc\"} 1") !=
        std::string::npos);
  CHECK(text.find("envoy_cluster_upstream_rq_retry_overflow{cluster_name=\"outbound|80||calc\"} 1") !=
        std::string::npos);
  {
    auto owner = std::make_shared<int>(0);
    BreakerHold hold(owner, &cb, K::Requests, t);
    CHECK(cb.count(K::Requests) == 0);  // a hold only releases; acquiring is try_acquire's
  }
  CHECK(cb.count(K::Requests) == 0);
}

namespace {

Endpoint ep(std::string ip, uint32_t priority = 0) {
  Endpoint e;
  e.address = std::move(ip);
  e.port = 80;
  e.priority = priority;
  return e;
}

ConfigSnapshot snapshot_with(std::vector<Endpoint> eps, LbPolicy lb = LbPolicy::RoundRobin, uint32_t panic = 50) {
  ConfigSnapshot snap;
  auto c = std::make_shared<Cluster>();
  c->name = "c";
  c->policy.lb_policy = lb;
  c->policy.healthy_panic_threshold_percent = panic;
  OutlierDetection od;
  od.max_ejection_percent = 100;
  c->policy.outlier_detection = od;
  ClusterLoadAssignment cla;
  cla.cluster_name = "c";
  cla.endpoints = std::move(eps);
  c->load_assignment = std::move(cla);
  c->discovery = Cluster::Discovery::Static;
  snap.clusters["c"] = c;
  return snap;
}

std::map<std::string, int> picks(LoadBalancer& lb, const ClusterRuntime& rt, int n, std::optional<uint64_t> hash = {}) {
  router::Random random(7);
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) {
    const Endpoint* e = lb.pick(rt, random, hash);
    ++out[e ? e->address : "none"];
  }
  return out;
}

}  // namespace

TEST_CASE("priorities: local first, spill-over with the overprovisioning factor, failover", "[waypoint][lb]") {
  auto snap = snapshot_with({ep("10.0.0.1"), ep("10.0.0.2"), ep("10.1.0.1", 1)});
  auto rts = build_runtimes(snap, nullptr, nullptr);
  const ClusterRuntime& rt = *rts->find("c");
  REQUIRE(rt.priorities.size() == 2);
  LoadBalancer lb;
  auto all_local = picks(lb, rt, 300);
  CHECK(all_local.count("10.1.0.1") == 0);
  // One of two local hosts ejected: priority 0 is 70 % healthy (50 % x 1.4), the rest spills.
  rt.hosts[0]->ejected = true;
  auto spill = picks(lb, rt, 1000);
  CHECK(spill.count("10.0.0.1") == 0);
  CHECK(spill["10.0.0.2"] > 500);
  CHECK(spill["10.1.0.1"] > 100);
  // Both local hosts gone: everything fails over.
  rt.hosts[1]->ejected = true;
  auto failover = picks(lb, rt, 200);
  CHECK(failover["10.1.0.1"] == 200);
}

TEST_CASE("panic threshold: too few usable hosts -> all hosts; threshold 0 -> no host", "[waypoint][lb]") {
  {
    auto snap = snapshot_with({ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3")});
    auto rts = build_runtimes(snap, nullptr, nullptr);
    const ClusterRuntime& rt = *rts->find("c");
    rt.hosts[0]->ejected = true;
    LoadBalancer lb;
    CHECK(picks(lb, rt, 300).count("10.0.0.1") == 0);  // 67 % x 1.4 healthy: no panic
    rt.hosts[1]->ejected = true;
    rt.hosts[2]->ejected = true;
    auto p = picks(lb, rt, 300);  // nothing usable: panic over all three
    CHECK(p.size() == 3);
  }
  {
    auto snap = snapshot_with({ep("10.0.0.1"), ep("10.0.0.2")}, LbPolicy::RoundRobin, 0);
    auto rts = build_runtimes(snap, nullptr, nullptr);
    const ClusterRuntime& rt = *rts->find("c");
    rt.hosts[0]->ejected = true;
    rt.hosts[1]->ejected = true;
    LoadBalancer lb;
    CHECK(picks(lb, rt, 10)["none"] == 10);
  }
}

TEST_CASE("hash LB: sticky per key, moves off an ejected host and comes back", "[waypoint][lb]") {
  for (LbPolicy policy : {LbPolicy::RingHash, LbPolicy::Maglev}) {
    auto snap = snapshot_with({ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3")}, policy, 0);
    auto rts = build_runtimes(snap, nullptr, nullptr);
    const ClusterRuntime& rt = *rts->find("c");
    LoadBalancer lb;
    std::set<std::string> seen;
    for (int k = 0; k < 60; ++k) {
      const uint64_t h = xxhash64("user" + std::to_string(k));
      auto p = picks(lb, rt, 20, h);
      REQUIRE(p.size() == 1);  // sticky
      seen.insert(p.begin()->first);
    }
    CHECK(seen.size() == 3);  // spread
    const uint64_t h = xxhash64("user1");
    const std::string home = picks(lb, rt, 1, h).begin()->first;
    size_t idx = home == "10.0.0.1" ? 0 : home == "10.0.0.2" ? 1 : 2;
    rt.hosts[idx]->ejected = true;
    auto away = picks(lb, rt, 20, h);
    REQUIRE(away.size() == 1);
    CHECK(away.begin()->first != home);
    rt.hosts[idx]->ejected = false;
    CHECK(picks(lb, rt, 1, h).begin()->first == home);
  }
}

TEST_CASE("runtimes: state and tables survive a snapshot with the same hosts, removed hosts drop out",
          "[waypoint][lb]") {
  auto snap = snapshot_with({ep("10.0.0.1"), ep("10.0.0.2")}, LbPolicy::RingHash);
  auto first = build_runtimes(snap, nullptr, nullptr);
  first->find("c")->hosts[0]->ejected = true;
  first->find("c")->state->outlier.active = 1;
  auto second = build_runtimes(snap, first.get(), nullptr);
  CHECK(second->find("c")->state == first->find("c")->state);
  CHECK(second->find("c")->hosts[0]->ejected.load());
  CHECK(second->find("c")->priorities[0].ring.size() == first->find("c")->priorities[0].ring.size());
  auto smaller = snapshot_with({ep("10.0.0.2")}, LbPolicy::RingHash);
  auto third = build_runtimes(smaller, second.get(), nullptr);
  CHECK(third->find("c")->hosts.size() == 1);
  CHECK(third->find("c")->state->outlier.active.load() == 0);
  CHECK(first->find("c")->hosts[0]->removed.load());
}

namespace {

std::map<std::string, int> picks_at(LoadBalancer& lb, const ClusterRuntime& rt, int n, int64_t now_ms,
                                    uint64_t seed = 7) {
  router::Random random(seed);
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) {
    const Endpoint* e = lb.pick(rt, random, std::nullopt, {}, now_ms);
    ++out[e ? e->address : "none"];
  }
  return out;
}

ConfigSnapshot slow_start_snapshot(std::vector<Endpoint> eps, LbPolicy policy) {
  auto snap = snapshot_with(std::move(eps), policy);
  auto c = std::make_shared<Cluster>(*snap.clusters["c"]);
  c->policy.slow_start_window = Duration(10000);
  snap.clusters["c"] = c;
  return snap;
}

Endpoint in_locality(std::string ip, std::string zone, uint32_t weight) {
  Endpoint e = ep(std::move(ip));
  e.locality = {"r1", std::move(zone), ""};
  e.locality_weight = weight;
  return e;
}

}  // namespace

TEST_CASE("slow start factor: Envoy's formula, 10 % floor, 1 s minimum age, only new hosts", "[waypoint][lb]") {
  ClusterPolicy p;
  p.lb_policy = LbPolicy::RoundRobin;
  CHECK(slow_start_factor(p, 0, 500) == 1.0);  // no window
  p.slow_start_window = Duration(10000);
  CHECK(slow_start_factor(p, kNotNew, 500) == 1.0);
  CHECK(slow_start_factor(p, 0, 0) == Approx(0.1));     // max(age, 1 s) / 10 s = 0.1
  CHECK(slow_start_factor(p, 0, 500) == Approx(0.1));
  CHECK(slow_start_factor(p, 0, 5000) == Approx(0.5));
  CHECK(slow_start_factor(p, 0, 9999) == Approx(0.9999));
  CHECK(slow_start_factor(p, 0, 10000) == 1.0);  // out of the window
  p.slow_start_window = Duration(100000);
  CHECK(slow_start_factor(p, 0, 2000) == Approx(0.1));  // 0.02 lifted to the 10 % floor
  p.lb_policy = LbPolicy::Random;
  CHECK(slow_start_factor(p, 0, 2000) == 1.0);  // RANDOM has no slow start
}

TEST_CASE("slow start: a host added later ramps up with an injected clock; the first hosts never warm",
          "[waypoint][lb]") {
  for (LbPolicy policy : {LbPolicy::RoundRobin, LbPolicy::LeastRequest}) {
    INFO("policy " << static_cast<int>(policy));
    auto two = slow_start_snapshot({ep("10.0.0.1"), ep("10.0.0.2")}, policy);
    auto first = build_runtimes(two, nullptr, nullptr, 0);
    CHECK_FALSE(first->find("c")->any_new);  // the cluster's first endpoints are its baseline
    auto three = slow_start_snapshot({ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3")}, policy);
    auto second = build_runtimes(three, first.get(), nullptr, 100000);
    const ClusterRuntime& rt = *second->find("c");
    REQUIRE(rt.any_new);
    CHECK(rt.joined_ms[2] == 100000);
    CHECK(rt.joined_ms[0] == kNotNew);
    LoadBalancer lb;
    // 1 s in: weight 0.1 of 2.1 -> about 48 of 1000; 5 s: 0.5 of 2.5 -> 200; after the window: 333.
    const int early = picks_at(lb, rt, 1000, 101000)["10.0.0.3"];
    const int mid = picks_at(lb, rt, 1000, 105000)["10.0.0.3"];
    const int late = picks_at(lb, rt, 1000, 111000)["10.0.0.3"];
    INFO("early " << early << " mid " << mid << " late " << late);
    CHECK(early > 10);
    CHECK(early < 100);
    CHECK(mid > 140);
    CHECK(mid < 260);
    CHECK(late > 280);
    CHECK(late < 390);
    // The next snapshot keeps the join time (same hosts): still ramping, not restarted.
    auto third = build_runtimes(three, second.get(), nullptr, 103000);
    CHECK(third->find("c")->joined_ms[2] == 100000);
    // A host that leaves and comes back is new again.
    auto back_to_two = build_runtimes(two, third.get(), nullptr, 120000);
    auto again = build_runtimes(three, back_to_two.get(), nullptr, 130000);
    CHECK(again->find("c")->joined_ms[2] == 130000);
    // /config_dump shows the warming host and its factor.
    const auto dump = dump_runtimes(*again, 131000);
    REQUIRE(dump.size() == 1);
    CHECK(dump[0]["slowStartWindowMs"] == 10000);
    CHECK(dump[0]["hosts"][2]["warming"] == true);
    CHECK(dump[0]["hosts"][2]["slowStartWeightFactor"].get<double>() == Approx(0.1));
    CHECK(dump[0]["hosts"][0]["warming"] == false);
  }
}

TEST_CASE("locality weights: an 80/20 split, scaled by each locality's availability", "[waypoint][lb]") {
  auto snap = snapshot_with({in_locality("10.0.0.1", "a", 80), in_locality("10.0.0.2", "a", 80),
                             in_locality("10.0.1.1", "b", 20), in_locality("10.0.1.2", "b", 20)});
  {
    auto c = std::make_shared<Cluster>(*snap.clusters["c"]);
    c->policy.locality_weighted_lb = true;
    snap.clusters["c"] = c;
  }
  auto rts = build_runtimes(snap, nullptr, nullptr, 0);
  const ClusterRuntime& rt = *rts->find("c");
  REQUIRE(rt.priorities[0].localities.size() == 2);
  LoadBalancer lb;
  auto p = picks_at(lb, rt, 10000, 0);
  const int a = p["10.0.0.1"] + p["10.0.0.2"];
  // Binomial(10000, 0.8): sd 40, so +-200 is five sd.
  CHECK(a > 7800);
  CHECK(a < 8200);
  CHECK(p["10.0.0.1"] > 3500);  // round robin inside the locality
  CHECK(p["10.0.0.2"] > 3500);
  // Half of zone a ejected: availability min(1, 1.4 x 1/2) = 0.7, so 56 against 20 (73.7 %).
  rt.hosts[0]->ejected = true;
  auto q = picks_at(lb, rt, 10000, 0);
  CHECK(q.count("10.0.0.1") == 0);
  CHECK(q["10.0.0.2"] > 7170);
  CHECK(q["10.0.0.2"] < 7570);
  // Without locality_weighted_lb the weights are ignored: an even split.
  auto plain = snapshot_with({in_locality("10.0.0.1", "a", 80), in_locality("10.0.1.1", "b", 20)});
  auto prt = build_runtimes(plain, nullptr, nullptr, 0);
  CHECK(prt->find("c")->priorities[0].localities.empty());
  auto even = picks_at(lb, *prt->find("c"), 1000, 0);
  CHECK(even["10.0.0.1"] == 500);
}
