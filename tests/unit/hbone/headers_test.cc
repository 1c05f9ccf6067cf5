#include <catch2/catch.hpp>

#include <set>

#include "hbone/headers.h"

using namespace hbone;

TEST_CASE("baggage round trip", "[headers][baggage]") {
  Baggage b;
  b.cluster_id = "Kubernetes";
  b.ns = "shop";
  b.workload_type = "deployment";
  b.workload_name = "cart";
  b.service_name = "cart";
  b.service_version = "v1";
  b.region = "eu-west";
  b.zone = "eu-west-1a";
  const std::string s = format_baggage(b);
  CHECK(s ==
        "k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=cart,"
        "service.name=cart,service.version=v1,cloud.region=eu-west,"
        "cloud.availability_zone=eu-west-1a");
  auto parsed = parse_baggage(s);
  REQUIRE(parsed);
  CHECK(*parsed == b);
}

TEST_CASE("baggage only carries present keys", "[headers][baggage]") {
  Baggage b;
  b.ns = "ns";
  b.workload_type = "pod";  // no name: the pair is omitted
  CHECK(format_baggage(b) == "k8s.namespace.name=ns");
  CHECK(format_baggage(Baggage{}).empty());
}

TEST_CASE("baggage parsing is tolerant of whitespace, properties and unknown keys",
          "[headers][baggage]") {
  auto b = parse_baggage(" k8s.namespace.name = ns1 ;prop=1, other=x,, k8s.job.name=j ,");
  REQUIRE(b);
  CHECK(b->ns == "ns1");
  CHECK(b->workload_type == "job");
  CHECK(b->workload_name == "j");
  CHECK(parse_baggage("")->ns.empty());
}

TEST_CASE("malformed baggage is rejected", "[headers][baggage]") {
  CHECK_FALSE(parse_baggage("novalue"));
  CHECK_FALSE(parse_baggage("=v"));
  CHECK_FALSE(parse_baggage("k8s.namespace.name=a\x01"));
  CHECK_FALSE(parse_baggage("k8s.namespace.name=\xc3\xa9"));
  CHECK_FALSE(parse_baggage(std::string(kMaxHeaderValueBytes + 1, 'a')));
}

TEST_CASE("forwarded format matches upstream", "[headers][forwarded]") {
  CHECK(format_forwarded("10.0.0.1:1234") == "for=\"10.0.0.1:1234\"");
  CHECK(format_forwarded("[fd00::1]:80", "cart.shop.svc.cluster.local") ==
        "for=\"[fd00::1]:80\";host=cart.shop.svc.cluster.local");
  CHECK(format_forwarded("1.2.3.4:5", "a b\"c") == "for=\"1.2.3.4:5\";host=\"a b\\\"c\"");
}

TEST_CASE("forwarded parsing", "[headers][forwarded]") {
  auto f = parse_forwarded("for=\"10.0.0.1:1234\";host=cart.shop.svc.cluster.local");
  REQUIRE(f);
  REQUIRE(f->size() == 1);
  CHECK((*f)[0].for_node == "10.0.0.1:1234");
  CHECK((*f)[0].host == "cart.shop.svc.cluster.local");

  auto multi = parse_forwarded("For=192.0.2.60;Proto=http;By=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"");
  REQUIRE(multi);
  REQUIRE(multi->size() == 2);
  CHECK((*multi)[0].for_node == "192.0.2.60");
  CHECK((*multi)[0].proto == "http");
  CHECK((*multi)[0].by == "203.0.113.43");
  CHECK((*multi)[1].for_node == "[2001:db8:cafe::17]:4711");

  auto escaped = parse_forwarded("for=\"a\\\"b\";ext=1");
  REQUIRE(escaped);
  CHECK((*escaped)[0].for_node == "a\"b");

  // Round trip of what we send.
  auto rt = parse_forwarded(format_forwarded("[::1]:9", "h o s t"));
  REQUIRE(rt);
  CHECK((*rt)[0].host == "h o s t");
}

TEST_CASE("malformed forwarded is rejected", "[headers][forwarded]") {
  for (const char* bad : {"", "for", "for=", "for=\"unterminated", "for=a;", "for=a,", "=a",
                          "for=a b", "for=a;for=b", "for=\"x\\", "for=a;;host=b", "for=[::1]"}) {
    INFO(bad);
    CHECK_FALSE(parse_forwarded(bad));
  }
  CHECK_FALSE(parse_forwarded(std::string(kMaxHeaderValueBytes + 1, 'a')));
}

TEST_CASE("traceparent", "[headers][traceparent]") {
  const std::string v = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto t = parse_traceparent(v);
  REQUIRE(t);
  CHECK(t->trace_id[0] == 0x0a);
  CHECK(t->parent_id[7] == 0x31);
  CHECK(t->flags == 1);
  CHECK(t->to_string() == v);

  auto r = TraceParent::random();
  const std::string rs = r.to_string();
  CHECK(rs.size() == 55);
  CHECK(rs.ends_with("-00"));
  auto back = parse_traceparent(rs);
  REQUIRE(back);
  CHECK(*back == r);
  CHECK(TraceParent::random().to_string() != TraceParent::random().to_string());
}

TEST_CASE("malformed traceparent is rejected", "[headers][traceparent]") {
  for (const std::string& bad : {
           std::string(""),
           std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0"),     // 54
           std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-011"),   // 56
           std::string("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),    // version
           std::string("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),    // upper
           std::string("00-00000000000000000000000000000000-b7ad6b7169203331-01"),    // zero id
           std::string("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"),    // zero parent
           std::string("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),    // separator
           std::string("00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"),    // non-hex
       }) {
    INFO(bad);
    CHECK_FALSE(parse_traceparent(bad));
  }
}

TEST_CASE("authority parsing", "[headers][authority]") {
  auto v4 = parse_authority("10.0.0.1:8080");
  REQUIRE(v4);
  REQUIRE(v4->is_ip());
  CHECK(v4->ip->to_string() == "10.0.0.1");
  CHECK(v4->port == 8080);

  auto v6 = parse_authority("[fd00::1]:443");
  REQUIRE(v6);
  CHECK(v6->ip->is_v6());
  CHECK(v6->port == 443);

  auto mapped = parse_authority("[::ffff:10.0.0.1]:80");
  REQUIRE(mapped);
  CHECK(mapped->ip->is_v4());

  CHECK(parse_authority("1.2.3.4:65535")->port == 65535);

  CHECK_FALSE(parse_authority("cart.shop.svc.cluster.local:80"));
  auto host = parse_authority("cart.shop.svc.cluster.local:80", /*allow_hostname=*/true);
  REQUIRE(host);
  CHECK_FALSE(host->is_ip());
  CHECK(host->hostname == "cart.shop.svc.cluster.local");
  CHECK(host->port == 80);

  CHECK(format_authority(*v6->ip, 443) == "[fd00::1]:443");
  CHECK(format_authority(*v4->ip, 8080) == "10.0.0.1:8080");
}

TEST_CASE("malformed authorities are rejected", "[headers][authority]") {
  for (const char* bad :
       {"", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:080",
        "10.0.0.1:+80", "10.0.0.1:8o", "10.0.0.1:80 ", " 10.0.0.1:80", "fd00::1:80", "[fd00::1]",
        "[fd00::1]80", "[fd00::1%eth0]:80", "[10.0.0.1]:80", "[]:80", "1.2.3.256:80", "1.2.3:80",
        "01.2.3.4:80", "host_with space:80", "-bad.example:80", "a..b:80", ":80",
        "10.0.0.1:80:80", "[fd00::1]:80:80"}) {
    INFO(bad);
    CHECK_FALSE(parse_authority(bad, /*allow_hostname=*/true));
  }
  CHECK_FALSE(parse_authority(std::string(600, 'a') + ":80", true));
  CHECK_FALSE(parse_authority(std::string(64, 'a') + ".com:80", true));  // label > 63
}
