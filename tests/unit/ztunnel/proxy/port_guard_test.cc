// PortGuard: which destination ports inbound traffic may never target, per proxy mode.
#include <catch2/catch.hpp>

#include "common/admin/metrics.h"
#include "ztunnel/proxy/port_guard.h"

using ztunnel::PortGuard;

TEST_CASE("port_of_address parses host:port forms") {
  CHECK(ztunnel::port_of_address("localhost:15000") == 15000);
  CHECK(ztunnel::port_of_address("[::]:15020") == 15020);
  CHECK(ztunnel::port_of_address("0.0.0.0:9") == 9);
  CHECK(ztunnel::port_of_address("nohost") == 0);
  CHECK(ztunnel::port_of_address("x:") == 0);
  CHECK(ztunnel::port_of_address("x:70000") == 0);
  CHECK(ztunnel::port_of_address("x:12a") == 0);
}

TEST_CASE("dedicated mode refuses every ztunnel listener, including configured ones") {
  ztunnel::Config c;
  c.proxy_mode = ztunnel::ProxyMode::Dedicated;
  c.stats_addr = "[::]:19020";
  PortGuard g(c, nullptr);
  for (uint16_t p : {15000, 15001, 15006, 15008, 15020, 15021, 15053, 19020}) {
    INFO(p);
    CHECK(g.refused(p));
  }
  for (uint16_t p : {80, 8080, 15009, 15007, 9000}) {
    INFO(p);
    CHECK_FALSE(g.refused(p));
  }
}

TEST_CASE("shared mode refuses the listeners ztunnel has in the pod's netns only") {
  ztunnel::Config c;
  c.proxy_mode = ztunnel::ProxyMode::Shared;
  PortGuard g(c, nullptr);
  for (uint16_t p : {15001, 15006, 15008, 15053}) CHECK(g.refused(p));
  // Admin, stats and readiness live in ztunnel's own netns: a pod's app may use these.
  for (uint16_t p : {15000, 15020, 15021}) CHECK_FALSE(g.refused(p));
}

TEST_CASE("refusals are counted by listener and port") {
  ztunnel::Config c;
  c.proxy_mode = ztunnel::ProxyMode::Dedicated;
  common::metrics::Registry r;
  PortGuard g(c, &r);
  g.count(PortGuard::Listener::InboundHbone, 15020);
  g.count(PortGuard::Listener::InboundHbone, 15020);
  g.count(PortGuard::Listener::InboundPlaintext, 15000);
  auto text = r.render();
  CHECK(text.find("istio_inbound_self_target_rejections_total{listener=\"inbound_hbone\",port=\"15020\"} 2") !=
        std::string::npos);
  CHECK(text.find("istio_inbound_self_target_rejections_total{listener=\"inbound_plaintext\",port=\"15000\"} 1") !=
        std::string::npos);
}
