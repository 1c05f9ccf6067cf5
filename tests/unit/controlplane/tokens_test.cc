#include "controlplane/tokens.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

using controlplane::Caller;
using controlplane::TokenAuthenticator;
using controlplane::TrustedNodeAccounts;

namespace {

const char* kTokens = R"(tokens:
- token: "tok-ztunnel-a"
  serviceAccount: istio-system/ztunnel
  node: node-a
- token: tok-alice
  serviceAccount: default/alice
)";

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("tokens: parse and authenticate", "[tokens]") {
  auto auth = TokenAuthenticator::parse(kTokens);
  REQUIRE(auth.ok());
  CHECK(auth->size() == 2);

  auto zt = auth->authenticate("Bearer tok-ztunnel-a");
  REQUIRE(zt.has_value());
  CHECK(zt->ns == "istio-system");
  CHECK(zt->service_account == "ztunnel");
  CHECK(zt->node == "node-a");

  auto alice = auth->authenticate("Bearer tok-alice");
  REQUIRE(alice.has_value());
  CHECK(alice->ns == "default");
  CHECK(alice->service_account == "alice");
  CHECK(alice->node.empty());
}

TEST_CASE("tokens: malformed or unknown authorization is refused", "[tokens]") {
  auto auth = TokenAuthenticator::parse(kTokens);
  REQUIRE(auth.ok());
  CHECK_FALSE(auth->authenticate("tok-alice").has_value());         // no "Bearer "
  CHECK_FALSE(auth->authenticate("bearer tok-alice").has_value());  // scheme is case-sensitive here
  CHECK_FALSE(auth->authenticate("Bearer ").has_value());
  CHECK_FALSE(auth->authenticate("").has_value());
  CHECK_FALSE(auth->authenticate("Bearer tok-alicE").has_value());   // wrong token
  CHECK_FALSE(auth->authenticate("Bearer tok-alice ").has_value());  // no trimming
  CHECK_FALSE(auth->authenticate("Bearer tok-ali").has_value());     // a prefix is not a match
  CHECK_FALSE(auth->authenticate("Bearer tok-alice-and-more").has_value());
}

TEST_CASE("tokens: parse errors name the entry", "[tokens]") {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"tokens:\n- token: a\n  serviceAccount: default/a\n- token: a\n  serviceAccount: default/b\n",
       "tokens[1].token: repeats"},
      {"tokens:\n- token: a\n  serviceAccount: default/a\n- serviceAccount: default/b\n", "tokens[1].token: required"},
      {"tokens:\n- token: a\n", "tokens[0].serviceAccount: required"},
      {"tokens:\n- token: a\n  serviceAccount: noslash\n", "tokens[0].serviceAccount"},
      {"tokens:\n- token: a\n  serviceAccount: a/b/c\n", "tokens[0].serviceAccount"},
      {"tokens:\n- token: a\n  serviceAccount: /b\n", "tokens[0].serviceAccount"},
      {"tokens:\n- token: a\n  serviceAccount: default/a\n  colour: blue\n", "tokens[0].colour: unknown field"},
      {"tokens:\n- token: a b\n  serviceAccount: default/a\n", "tokens[0].token"},
      {"tokens:\n- token: [a]\n  serviceAccount: default/a\n", "tokens[0].token"},
      {"tokens:\n- just-a-string\n", "tokens[0]"},
      {"tokens: {}\n", "tokens: expected a list"},
      {"users: []\n", "users: unknown field"},
      {"- a\n- b\n", "top level"},
      {"tokens: [\n", "invalid YAML"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    auto r = TokenAuthenticator::parse(c.yaml);
    REQUIRE_FALSE(r.ok());
    INFO(r.error());
    CHECK(contains(r.error(), c.expect));
  }
}

TEST_CASE("tokens: load from file names the file", "[tokens]") {
  const std::string path = "/tmp/tokens_test_" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path);
    out << "tokens:\n- token: a\n  serviceAccount: default/a\n- token: a\n  serviceAccount: default/b\n";
  }
  auto bad = TokenAuthenticator::load(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.error(), path));
  CHECK(contains(bad.error(), "tokens[1]"));
  {
    std::ofstream out(path);
    out << kTokens;
  }
  auto good = TokenAuthenticator::load(path);
  REQUIRE(good.ok());
  CHECK(good->authenticate("Bearer tok-alice").has_value());
  std::remove(path.c_str());

  auto missing = TokenAuthenticator::load(path);
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error(), path));
}

TEST_CASE("tokens: trusted node accounts", "[tokens]") {
  TrustedNodeAccounts trusted{{"istio-system/ztunnel"}};
  CHECK(trusted.contains(Caller{"istio-system", "ztunnel", "node-a"}));
  CHECK_FALSE(trusted.contains(Caller{"default", "ztunnel", "node-a"}));
  CHECK_FALSE(trusted.contains(Caller{"istio-system", "istiod", ""}));
  CHECK_FALSE(TrustedNodeAccounts{}.contains(Caller{"istio-system", "ztunnel", ""}));
}
