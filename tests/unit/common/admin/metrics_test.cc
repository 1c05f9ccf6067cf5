// common/admin/metrics.h: exposition format, series identity, concurrency, process metrics.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "common/admin/metrics.h"

using namespace common::metrics;

TEST_CASE("counter and gauge exposition text", "[metrics]") {
  Registry r;
  auto& opened = r.counter("istio_tcp_connections_opened_total", "The total number of TCP connections opened",
                           {"reporter", "app"});
  auto& open = r.gauge("istio_tcp_sockets_open", "Open sockets", {"reporter"});
  opened.get({"source", "web"})->inc(3);
  opened.get({"destination", "db"})->inc();
  open.get({"source"})->set(-2);
  std::string expected =
      "# HELP istio_tcp_connections_opened_total The total number of TCP connections opened\n"
      "# TYPE istio_tcp_connections_opened_total counter\n"
      "istio_tcp_connections_opened_total{reporter=\"destination\",app=\"db\"} 1\n"
      "istio_tcp_connections_opened_total{reporter=\"source\",app=\"web\"} 3\n"
      "# HELP istio_tcp_sockets_open Open sockets\n"
      "# TYPE istio_tcp_sockets_open gauge\n"
      "istio_tcp_sockets_open{reporter=\"source\"} -2\n";
  CHECK(r.render() == expected);
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
  Registry r;
  auto& c = r.counter("x_total", "line1\nback\\slash \"q\"", {"v"});
  c.get({"a\"b\\c\nd"})->inc();
  std::string out = r.render();
  CHECK_THAT(out, Catch::Contains("# HELP x_total line1\\nback\\\\slash \"q\"\n"));
  CHECK_THAT(out, Catch::Contains("x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
  CHECK(escape_label_value("plain") == "plain");
}

TEST_CASE("omit_empty_labels: one family holds series with and without optional labels", "[metrics]") {
  Registry r;
  auto& c = r.counter("opt_total", "optional labels", {"reporter", "region", "zone"});
  auto& plain = r.counter("plain_total", "empty values kept", {"reporter", "region"});
  c.omit_empty_labels();
  c.get({"source", "", ""})->inc();
  c.get({"source", "r1", "unknown"})->inc(2);
  c.get({"", "r1", ""})->inc(3);  // any position, not only trailing ones
  plain.get({"source", ""})->inc();
  const std::string out = r.render();
  CHECK_THAT(out, Catch::Contains("opt_total{reporter=\"source\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("opt_total{reporter=\"source\",region=\"r1\",zone=\"unknown\"} 2\n"));
  CHECK_THAT(out, Catch::Contains("opt_total{region=\"r1\"} 3\n"));
  CHECK_THAT(out, Catch::Contains("plain_total{reporter=\"source\",region=\"\"} 1\n"));
}

TEST_CASE("a label-less family renders its single series from the start", "[metrics]") {
  Registry r;
  r.counter("events_total", "Events");
  CHECK_THAT(r.render(), Catch::EndsWith("events_total 0\n"));
  r.counter("events_total", "Events").get({})->inc(5);  // same family returned
  CHECK_THAT(r.render(), Catch::EndsWith("events_total 5\n"));
}

TEST_CASE("get() returns the same stable pointer for the same labels", "[metrics]") {
  Registry r;
  auto& f = r.counter("c_total", "c", {"a", "b"});
  Counter* p1 = f.get({"x", "y"});
  Counter* p2 = f.get({"x", "y"});
  Counter* p3 = f.get(std::vector<std::string>{"x", "y"});
  CHECK(p1 == p2);
  CHECK(p1 == p3);
  // Label values are not concatenated ambiguously.
  CHECK(f.get({"xy", ""}) != f.get({"x", "y"}));
  CHECK(f.size() == 2);
  // Another thread finds the same series (through the shared store, then its own cache).
  Counter* other = nullptr;
  std::thread t([&] { other = f.get({"x", "y"}); });
  t.join();
  CHECK(other == p1);
}

TEST_CASE("distinct families with equal labels have distinct series", "[metrics]") {
  Registry r;
  auto& a = r.counter("a_total", "a", {"l"});
  auto& b = r.counter("b_total", "b", {"l"});
  CHECK(static_cast<void*>(a.get({"v"})) != static_cast<void*>(b.get({"v"})));
}

TEST_CASE("concurrent increments from many threads add up", "[metrics]") {
  Registry r;
  auto& f = r.counter("bytes_total", "b", {"dir"});
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&f, i] {
      for (int n = 0; n < kIters; ++n) {
        f.get({(n + i) % 2 ? "in" : "out"})->inc();
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(f.get({"in"})->value() + f.get({"out"})->value() == uint64_t{kThreads} * kIters);
}

TEST_CASE("re-registration: same shape returns the family, other shape throws", "[metrics]") {
  Registry r;
  auto& a = r.counter("dup_total", "d", {"x"});
  CHECK(&r.counter("dup_total", "d", {"x"}) == &a);
  CHECK_THROWS_AS(r.counter("dup_total", "d", {"y"}), std::logic_error);
  CHECK_THROWS_AS(r.gauge("dup_total", "d", {"x"}), std::logic_error);
  CHECK_THROWS_AS(r.counter("bad name", "d"), std::logic_error);
  CHECK_THROWS_AS(r.counter("ok_total", "d", {"__reserved"}), std::logic_error);
}

TEST_CASE("histogram exposition is cumulative with +Inf, sum and count", "[metrics]") {
  Registry r;
  auto& h = r.histogram("dns_seconds", "latency", {"q"}, {0.001, 0.1, 1});
  auto* s = h.get({"A"});
  // Binary fractions so the sum is exact.
  s->observe(0.0009765625);
  s->observe(0.0625);
  s->observe(0.0625);
  s->observe(3);
  std::string out = r.render();
  CHECK_THAT(out, Catch::Contains("# TYPE dns_seconds histogram\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_bucket{q=\"A\",le=\"0.001\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_bucket{q=\"A\",le=\"0.1\"} 3\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_bucket{q=\"A\",le=\"1\"} 3\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_bucket{q=\"A\",le=\"+Inf\"} 4\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_sum{q=\"A\"} 3.1259765625\n"));
  CHECK_THAT(out, Catch::Contains("dns_seconds_count{q=\"A\"} 4\n"));
  CHECK_THROWS_AS(r.histogram("bad_hist", "h", {}, {1, 1}), std::logic_error);
}

TEST_CASE("process and build metrics", "[metrics]") {
  Registry r;
  register_process_metrics(r);
  register_build_info(r, "ztunnel", "1.2.3");
  std::string out = r.render();
  CHECK_THAT(out, Catch::Contains("istio_build{component=\"ztunnel\",tag=\"1.2.3\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("# TYPE process_open_fds gauge\nprocess_open_fds "));
  CHECK_THAT(out, Catch::Contains("\nprocess_max_fds "));
  CHECK_THAT(out, Catch::Contains("\nprocess_resident_memory_bytes "));
  // Values are plausible: at least stdin/stdout/stderr are open; RSS is non-zero.
  auto value_of = [&](const std::string& name) {
    auto pos = out.find("\n" + name + " ");
    REQUIRE(pos != std::string::npos);
    return std::stoll(out.substr(pos + name.size() + 2));
  };
  CHECK(value_of("process_open_fds") >= 3);
  CHECK(value_of("process_resident_memory_bytes") > 0);
  CHECK(value_of("process_max_fds") >= value_of("process_open_fds"));
}
