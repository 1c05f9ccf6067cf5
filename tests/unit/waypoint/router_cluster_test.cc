// Weighted cluster choice and hash policies (waypoint-facts §5.2).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "tests/unit/waypoint/route_builders.h"
#include "waypoint/router/router.h"

using namespace waypoint;
using namespace waypoint::router;
using namespace waypoint::test;

namespace {

RouteAction weighted(std::vector<std::pair<std::string, uint32_t>> clusters) {
  RouteAction a;
  for (auto& [name, w] : clusters) {
    ClusterWeight cw;
    cw.name = name;
    cw.weight = w;
    a.total_weight += w;
    a.weighted_clusters.push_back(std::move(cw));
  }
  return a;
}

}  // namespace

TEST_CASE("weighted pick walks clusters in order over [0, total)", "[waypoint][router][weighted]") {
  RouteAction a = weighted({{"cat", 90}, {"dog", 10}});
  const auto req = request("GET", "/");
  struct Row {
    uint64_t random;
    std::string expect;
  };
  std::vector<Row> rows = {{0, "cat"}, {89, "cat"}, {90, "dog"}, {99, "dog"}, {100, "cat"}, {190, "dog"}};
  for (const auto& row : rows) {
    INFO("random " << row.random);
    ClusterChoice c = choose_cluster(a, req, row.random);
    CHECK(c.cluster == row.expect);
    REQUIRE(c.weighted);
    CHECK(c.weighted->name == row.expect);
  }
}

TEST_CASE("weight 0 never wins; blue/green 0/100 always picks the second", "[waypoint][router][weighted]") {
  RouteAction a = weighted({{"zero-a", 0}, {"five-b", 5}, {"zero-c", 0}, {"five-d", 5}});
  std::map<std::string, int> seen;
  for (uint64_t v = 0; v < 20; ++v) seen[std::string(choose_cluster(a, request("GET", "/"), v).cluster)]++;
  CHECK(seen.count("zero-a") == 0);
  CHECK(seen.count("zero-c") == 0);
  CHECK(seen["five-b"] == 10);
  CHECK(seen["five-d"] == 10);

  RouteAction bg = weighted({{"cat-with-plus", 0}, {"dog-with-multi", 100}});
  Random rng(7);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(choose_cluster(bg, request("GET", "/"), rng.next()).cluster == "dog-with-multi");
}

TEST_CASE("90/10 canary split stays inside a binomial bound (p < 0.001)", "[waypoint][router][weighted]") {
  RouteAction a = weighted({{"cat-with-plus", 90}, {"dog-with-multi", 10}});
  const auto req = request("GET", "/calc");
  for (uint64_t seed : {1ULL, 42ULL, 20261207ULL}) {
    Random rng(seed);
    const int n = 10000;
    int dogs = 0;
    for (int i = 0; i < n; ++i) {
      if (choose_cluster(a, req, rng.next()).cluster == "dog-with-multi") ++dogs;
    }
    // Two-sided p < 0.001 for Binomial(n, 0.1): |dogs - n p| <= 3.29 sqrt(n p (1-p)).
    const double mean = n * 0.1;
    const double bound = 3.29 * std::sqrt(n * 0.1 * 0.9);
    INFO("seed " << seed << " dogs " << dogs);
    CHECK(std::abs(dogs - mean) <= bound);
  }
}

TEST_CASE("single cluster and the random-value header", "[waypoint][router][weighted]") {
  RouteAction single;
  single.cluster = "inbound-vip|8080|http|calculate.demo.svc.cluster.local";
  ClusterChoice c = choose_cluster(single, request("GET", "/"), 12345);
  CHECK(c.cluster == single.cluster);
  CHECK(c.weighted == nullptr);

  RouteAction a = weighted({{"cat", 90}, {"dog", 10}});
  a.weighted_random_header = "x-split";
  CHECK(choose_cluster(a, request("GET", "/", {{"x-split", "95"}}), 0).cluster == "dog");
  CHECK(choose_cluster(a, request("GET", "/", {{"x-split", "5"}}), 95).cluster == "cat");
  // Not a number: the random draw decides.
  CHECK(choose_cluster(a, request("GET", "/", {{"x-split", "dog"}}), 95).cluster == "dog");

  RouteAction empty = weighted({{"a", 0}});
  CHECK(choose_cluster(empty, request("GET", "/"), 3).cluster.empty());
}
