#include "common/identity/identity.h"

#include <catch2/catch.hpp>
#include <string>

using common::Identity;

TEST_CASE("identity parses the Istio SPIFFE form", "[identity]") {
  auto id = Identity::parse("spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  REQUIRE(id);
  CHECK(id->trust_domain() == "cluster.local");
  CHECK(id->ns() == "default");
  CHECK(id->sa() == "bookinfo-productpage");
  CHECK(id->uri() == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  CHECK(id->principal() == "cluster.local/ns/default/sa/bookinfo-productpage");
}

TEST_CASE("identity built from parts round-trips through parse", "[identity]") {
  Identity id("example.org", "team_a", "svc.v2");
  CHECK(id.uri() == "spiffe://example.org/ns/team_a/sa/svc.v2");
  auto back = Identity::parse(id.uri());
  REQUIRE(back);
  CHECK(*back == id);
  CHECK_FALSE(*back < id);
  CHECK(Identity("a", "b", "c") < Identity("b", "b", "c"));
}

TEST_CASE("identity rejects everything but the exact form", "[identity]") {
  const char* bad[] = {
      "",
      "spiffe://",
      "spiffe:///ns/a/sa/b",                      // empty trust domain
      "spiffe://td/ns//sa/b",                     // empty namespace
      "spiffe://td/ns/a/sa/",                     // empty service account
      "spiffe://td/ns/a/sa/b/",                   // trailing slash
      "spiffe://td/ns/a/sa/b/extra",              // six segments
      "spiffe://td/ns/a/sa",                      // four segments
      "spiffe://td/ns/a",                         // three
      "spiffe://td",                              // trust domain only
      "spiffe://td/NS/a/sa/b",                    // literals are case-sensitive
      "spiffe://td/ns/a/SA/b",
      "spiffe://td/sa/a/ns/b",                    // swapped literals
      "spiffe://td/x/a/sa/b",
      "SPIFFE://td/ns/a/sa/b",                    // scheme is lowercase
      "spiffe:/td/ns/a/sa/b",
      "https://td/ns/a/sa/b",
      " spiffe://td/ns/a/sa/b",                   // leading whitespace
      "spiffe://td/ns/a/sa/b ",                   // trailing whitespace
      "spiffe://td/ns/a b/sa/c",                  // inner whitespace
      "spiffe://td/ns/a/sa/b\n",
      "spiffe://td/ns/a%2Fb/sa/c",                // percent escape
      "spiffe://td/ns/%61/sa/c",
      "spiffe://td/ns/a/sa/b?x=1",                // query
      "spiffe://td/ns/a/sa/b#frag",               // fragment
      "spiffe://user@td/ns/a/sa/b",               // userinfo
      "spiffe://td:8080/ns/a/sa/b",               // port
      "spiffe://td/ns/../sa/b",                   // dot segments
      "spiffe://td/ns/./sa/b",
      "spiffe://td/ns/a/sa/..",
      "spiffe://td/ns/a/sa/b\xc3\xa9",            // non-ASCII
      "spiffe://td//ns/a/sa/b",
  };
  for (const char* s : bad) {
    INFO("input: " << s);
    CHECK_FALSE(Identity::parse(s));
  }
}

TEST_CASE("identity rejects embedded NUL", "[identity]") {
  const std::string with_nul("spiffe://td/ns/a/sa/b\0evil", 27);
  CHECK_FALSE(Identity::parse(with_nul));
  const std::string nul_inside("spiffe://t\0d/ns/a/sa/b", 22);
  CHECK_FALSE(Identity::parse(nul_inside));
}

TEST_CASE("identity enforces the SPIFFE length limit", "[identity]") {
  const std::string ok = "spiffe://td/ns/a/sa/" + std::string(100, 'x');
  CHECK(Identity::parse(ok));
  const std::string too_long = "spiffe://td/ns/a/sa/" + std::string(2100, 'x');
  CHECK_FALSE(Identity::parse(too_long));
}
