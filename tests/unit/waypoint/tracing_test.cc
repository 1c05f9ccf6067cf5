// Tracing through the real waypoint data path (HBONE in, HTTP/1.1 inside, HBONE out) with the
// real exporter posting Zipkin v2 JSON over HTTP to a collector on loopback (Beast server
// below): the span reaches the collector with the right trace and parent ids, the upstream
// sees the waypoint's span as its caller, sampling 0 % leaves headers untouched and sends no
// span, and a full export queue drops and counts.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/waypoint/fixture.h"
#include "waypoint/tracing/tracer.h"

using namespace wptest;
using namespace waypoint;
namespace beast = boost::beast;

namespace {

// A Zipkin collector on its own thread: POST /api/v2/spans with a JSON array; keeps every
// span it accepted. Own io_context, so it exists (and has a port) before the fixture's proxy.
struct Collector {
  Collector() : acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, run(), asio::detached);
    thread = std::thread([this] { io.run(); });
  }
  ~Collector() {
    io.stop();
    thread.join();
  }
  asio::io_context io;
  tcp::acceptor acc;
  std::thread thread;
  std::mutex mu;
  std::vector<nlohmann::json> spans_;
  std::vector<std::string> bad_;  // requests that were not a Zipkin v2 POST

  uint16_t port() const { return acc.local_endpoint().port(); }
  std::vector<nlohmann::json> spans() {
    std::lock_guard<std::mutex> l(mu);
    return spans_;
  }
  std::vector<std::string> bad() {
    std::lock_guard<std::mutex> l(mu);
    return bad_;
  }

  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io, serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> serve(tcp::socket sock) {
    beast::flat_buffer buf;
    beast::http::request<beast::http::string_body> req;
    auto [ec, n] = co_await beast::http::async_read(sock, buf, req, kTuple);
    if (ec) co_return;
    beast::http::response<beast::http::string_body> res{beast::http::status::accepted, 11};
    auto j = nlohmann::json::parse(req.body(), nullptr, false);
    {
      std::lock_guard<std::mutex> l(mu);
      if (req.method() != beast::http::verb::post || req.target() != "/api/v2/spans" ||
          req[beast::http::field::content_type] != "application/json" || !j.is_array()) {
        bad_.push_back(std::string(req.target()));
        res.result(beast::http::status::bad_request);
      } else {
        for (auto& s : j) spans_.push_back(s);
      }
    }
    res.keep_alive(false);
    res.prepare_payload();
    co_await beast::http::async_write(sock, res, kTuple);
  }
};

// Bounded wait (on the test's loop) for the collector to hold `n` spans.
asio::awaitable<std::vector<nlohmann::json>> wait_spans(asio::io_context& io, Collector& c, size_t n) {
  for (int i = 0; i < 400; ++i) {
    auto got = c.spans();
    if (got.size() >= n) co_return got;
    asio::steady_timer t(io, std::chrono::milliseconds(25));
    co_await t.async_wait(kTuple);
  }
  co_return c.spans();
}

std::shared_ptr<tracing::Tracer> make_tracer(common::metrics::Registry& reg, uint16_t port, double percent) {
  tracing::TracerOptions o;
  o.collector = {"127.0.0.1", std::to_string(port)};
  o.sampling_percent = percent;
  o.batch_size = 1;
  o.flush_interval = std::chrono::milliseconds(50);
  o.local.service_name = "waypoint.default";
  o.local.ipv4 = "127.0.0.1";
  o.local.tags = {{"node_id", "waypoint~127.0.0.1~waypoint-0.default~default.svc.cluster.local"}};
  auto t = std::make_shared<tracing::Tracer>(o, reg);
  t->start();
  return t;
}

std::string header(const router::HttpRequest& r, std::string_view name) {
  return std::string(r.headers.get(name).value_or("<absent>"));
}

const std::string kTrace = "463ac35c9f6413ad48485a3953bb6124";
const std::string kCallerSpan = "a2fb4a1d1a96d312";

}  // namespace

TEST_CASE("tracing: the span reaches the collector and the upstream joins the waypoint's span") {
  Collector c;
  common::metrics::Registry reg;
  Fixture f(make_tracer(reg, c.port(), 100.0));
  f.set_routes({Fixture::route_to("v1")});
  std::vector<nlohmann::json> spans;
  // Built outside the coroutine: GCC 12 rejects braced lists inside co_await expressions.
  const http::Request q_b3 =
      get("/b3",
          {{"x-b3-traceid", kTrace}, {"x-b3-spanid", kCallerSpan}, {"x-b3-sampled", "1"}, {"x-request-id", "rid-1"}});
  const http::Request q_new = get("/new");
  const http::Request q_w3c =
      get("/w3c", {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, {"tracestate", "a=b"}});
  const http::Request q_none = get("/none", {{"b3", kTrace + "-" + kCallerSpan + "-1"}});
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    // 1. B3 multi from the caller, sampled. 2. No trace headers: a new trace.
    // 3. W3C traceparent only, with tracestate. 4. No route (404 NR): still a span.
    auto r1 = co_await exchange(s, buf, q_b3);
    CHECK(r1.response.status == 200);
    auto r2 = co_await exchange(s, buf, q_new);
    CHECK(r2.response.status == 200);
    auto r3 = co_await exchange(s, buf, q_w3c);
    CHECK(r3.response.status == 200);
    f.set_routes({});
    auto r4 = co_await exchange(s, buf, q_none);
    CHECK(r4.response.status == 404);
    spans = co_await wait_spans(f.io, c, 4);
  });
  REQUIRE(c.bad().empty());
  REQUIRE(spans.size() == 4);
  REQUIRE(f.v1.seen.size() == 3);
  auto span_for = [&](const std::string& path) {
    for (const auto& j : spans) {
      if (j["tags"].value("http.url", "").ends_with(path)) return j;
    }
    FAIL("no span for " << path);
    return nlohmann::json();
  };
  {
    const auto& up = f.v1.seen[0];
    const auto j = span_for("/b3");
    CHECK(j["traceId"] == kTrace);
    CHECK(j["parentId"] == kCallerSpan);
    CHECK(j["id"] != kCallerSpan);
    CHECK(j["kind"] == "SERVER");
    CHECK(j["name"] == kHost + ":80/*");
    CHECK(j["localEndpoint"]["serviceName"] == "waypoint.default");
    CHECK(j["timestamp"].get<int64_t>() > 1'600'000'000'000'000);
    CHECK(j["duration"].get<int64_t>() > 0);
    CHECK(j["tags"]["http.method"] == "GET");
    CHECK(j["tags"]["http.url"] == "http://" + kHost + "/b3");
    CHECK(j["tags"]["http.status_code"] == "200");
    CHECK(j["tags"]["response_flags"] == "-");
    CHECK(j["tags"]["upstream_cluster"] == "v1");
    CHECK(j["tags"]["guid:x-request-id"] == "rid-1");
    CHECK(j["tags"]["istio.upstream.workload"] == "calc-v1");
    CHECK(j["tags"]["node_id"] == "waypoint~127.0.0.1~waypoint-0.default~default.svc.cluster.local");
    // The upstream's caller is the waypoint's span.
    CHECK(header(up, "x-b3-traceid") == kTrace);
    CHECK(header(up, "x-b3-spanid") == j["id"]);
    CHECK(header(up, "x-b3-parentspanid") == kCallerSpan);
    CHECK(header(up, "x-b3-sampled") == "1");
    CHECK(header(up, "traceparent") == "00-" + kTrace + "-" + j["id"].get<std::string>() + "-01");
  }
  {
    const auto& up = f.v1.seen[1];
    const auto j = span_for("/new");
    CHECK(j["traceId"].get<std::string>().size() == 32);
    CHECK_FALSE(j.contains("parentId"));
    CHECK(header(up, "x-b3-traceid") == j["traceId"]);
    CHECK(header(up, "x-b3-spanid") == j["id"]);
    CHECK(header(up, "x-b3-parentspanid") == "<absent>");
  }
  {
    const auto& up = f.v1.seen[2];
    const auto j = span_for("/w3c");
    CHECK(j["traceId"] == "0af7651916cd43dd8448eb211c80319c");
    CHECK(j["parentId"] == "b7ad6b7169203331");
    CHECK(header(up, "traceparent") == "00-0af7651916cd43dd8448eb211c80319c-" + j["id"].get<std::string>() + "-01");
    CHECK(header(up, "tracestate") == "a=b");
  }
  {
    const auto j = span_for("/none");
    CHECK(j["traceId"] == kTrace);
    CHECK(j["parentId"] == kCallerSpan);
    CHECK(j["tags"]["http.status_code"] == "404");
    CHECK(j["tags"]["response_flags"] == "NR");
  }
  CHECK(reg.render().find("envoy_tracing_zipkin_spans_sent 4") != std::string::npos);
}

TEST_CASE("tracing at 0 %: unsampled requests pass their headers unchanged and send no span") {
  Collector c;
  common::metrics::Registry reg;
  Fixture f(make_tracer(reg, c.port(), 0.0));
  f.set_routes({Fixture::route_to("v1")});
  std::vector<nlohmann::json> spans;
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  const http::Request q_plain = get("/plain");
  const http::Request q_b3 = get("/b3", {{"x-b3-traceid", kTrace}, {"x-b3-spanid", kCallerSpan}});
  const http::Request q_w3c = get("/w3c", {{"traceparent", tp}});
  const http::Request q_forced = get("/forced", {{"x-b3-sampled", "1"}});
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    co_await exchange(s, buf, q_plain);
    co_await exchange(s, buf, q_b3);
    co_await exchange(s, buf, q_w3c);
    // The caller's "sampled" still wins over 0 %: this one is traced, and it is sent after the
    // three above, so once it arrived nothing else is on its way.
    co_await exchange(s, buf, q_forced);
    spans = co_await wait_spans(f.io, c, 1);
  });
  REQUIRE(f.v1.seen.size() == 4);
  CHECK(header(f.v1.seen[0], "x-b3-traceid") == "<absent>");
  CHECK(header(f.v1.seen[0], "traceparent") == "<absent>");
  CHECK(header(f.v1.seen[1], "x-b3-traceid") == kTrace);
  CHECK(header(f.v1.seen[1], "x-b3-spanid") == kCallerSpan);
  CHECK(header(f.v1.seen[1], "x-b3-sampled") == "<absent>");
  CHECK(header(f.v1.seen[2], "traceparent") == tp);
  CHECK(header(f.v1.seen[2], "x-b3-traceid") == "<absent>");
  REQUIRE(spans.size() == 1);
  CHECK(spans[0]["tags"]["http.url"] == "http://" + kHost + "/forced");
  CHECK(header(f.v1.seen[3], "x-b3-spanid") == spans[0]["id"]);
}

TEST_CASE("tracing: a full export queue drops spans and counts them; a dead collector is counted") {
  common::metrics::Registry reg;
  tracing::TracerOptions o;
  // A port nothing listens on (bound then closed): reports fail, the data path does not care.
  uint16_t dead_port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    dead_port = a.local_endpoint().port();
  }
  o.collector = {"127.0.0.1", std::to_string(dead_port)};
  o.queue_capacity = 4;
  o.batch_size = 1;
  o.flush_interval = std::chrono::milliseconds(10);
  tracing::Tracer tracer(o, reg);  // not started: nothing drains the queue
  router::Random rnd(7);
  RequestRecord rec;
  rec.method = "GET";
  for (int i = 0; i < 50; ++i) {
    router::HeaderList h{{"x-b3-sampled", "1"}};
    auto span = tracer.begin(h, rnd, "x");
    REQUIRE(span.sampled);
    tracer.end(span, rec);
  }
  auto value = [&](const std::string& name) {
    const std::string text = reg.render();
    const size_t at = text.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stoull(text.substr(at + name.size() + 2));
  };
  const auto dropped = value("envoy_tracing_zipkin_spans_dropped");
  CHECK(dropped >= 40);
  CHECK(dropped < 50);
  tracer.start();
  tracer.stop();  // flushes what was queued, to the dead collector
  CHECK(value("envoy_tracing_zipkin_reports_failed") >= 1);
  CHECK(value("envoy_tracing_zipkin_spans_sent") == 0);
}

// Istio Telemetry as the controlplane delivers it (docs/tracing.md): the virtual host's
// "istio.tracing" provider names a collector cluster, Route.tracing samples and tags. The
// waypoint here has no collector of its own (no ZIPKIN_ADDRESS): only xDS turns tracing on.
TEST_CASE("tracing from xDS: provider cluster, Route.tracing sampling and custom tags, reporting off") {
  Collector c;
  common::metrics::Registry reg;
  tracing::TracerOptions o;  // no collector: the environment configures nothing
  o.sampling_percent = 100.0;
  o.batch_size = 1;
  o.flush_interval = std::chrono::milliseconds(50);
  o.local.service_name = "waypoint.default";
  auto tracer = std::make_shared<tracing::Tracer>(o, reg);
  tracer->start();
  Fixture f(tracer);
  auto config = [&](std::optional<FractionalPercent> sampling, bool report) {
    RouteConfig rc = Fixture::config_of({Fixture::route_to("v1")});
    auto rt = std::make_shared<RouteTracing>();
    rt->random_sampling = sampling;
    rt->custom_tags = {{"team", TracingCustomTag::Kind::Literal, "calc", "", ""},
                       {"user", TracingCustomTag::Kind::Header, "", "x-user", "nobody"}};
    auto tp = std::make_shared<TracingProvider>();
    tp->report = report;
    tp->collector_cluster = "outbound|9411||zipkin.istio-system.svc.cluster.local";
    tp->max_path_tag_length = 24;
    rc.virtual_hosts[0].tracing = rt;
    rc.virtual_hosts[0].routes[0].tracing = rt;
    rc.virtual_hosts[0].tracing_provider = tp;
    auto snap = f.snapshot(std::move(rc));
    auto zc = std::make_shared<Cluster>();
    zc->name = tp->collector_cluster;
    zc->discovery = Cluster::Discovery::Static;
    ClusterLoadAssignment cla;
    cla.cluster_name = zc->name;
    Endpoint e;
    e.address = "127.0.0.1";
    e.port = c.port();
    cla.endpoints.push_back(e);
    zc->load_assignment = cla;
    snap->clusters[zc->name] = zc;
    f.proxy->set_config(snap);
  };
  f.set_routes({Fixture::route_to("v1")});
  std::vector<nlohmann::json> spans;
  const http::Request q_plain = get("/no-xds-config");
  const http::Request q_long = get("/a-rather-long-path-for-the-tag", {{"x-user", "alice"}});
  const http::Request q_zero = get("/zero", {{"x-b3-traceid", kTrace}, {"x-b3-spanid", kCallerSpan}});
  const http::Request q_off = get("/reporting-off", {{"x-b3-sampled", "1"}});
  const http::Request q_forced = get("/forced", {{"x-b3-sampled", "1"}});
  f.run([&]() -> asio::awaitable<void> {
    auto t = co_await f.tunnel(vip_authority());
    REQUIRE(t.ok());
    http::AnyStream s(t.value());
    http::ReadBuffer buf;
    // 1. No tracing in xDS and none in the environment: headers untouched.
    co_await exchange(s, buf, q_plain);
    // 2. 100 % from Route.tracing, spans to the provider's cluster, tags, truncated http.url.
    config(FractionalPercent{1'000'000, 1'000'000}, true);
    co_await exchange(s, buf, q_long);
    spans = co_await wait_spans(f.io, c, 1);
    // 3. 0 %: an unsampled caller's headers pass unchanged. 4. Reporting off: no span even
    // for a sampled caller. 5. Back on at 0 %: the caller's decision still wins; this span
    // is the second and last to arrive.
    config(FractionalPercent{0, 100}, true);
    co_await exchange(s, buf, q_zero);
    config(FractionalPercent{100, 100}, false);
    co_await exchange(s, buf, q_off);
    config(FractionalPercent{0, 100}, true);
    co_await exchange(s, buf, q_forced);
    spans = co_await wait_spans(f.io, c, 2);
  });
  REQUIRE(c.bad().empty());
  REQUIRE(f.v1.seen.size() == 5);
  CHECK(header(f.v1.seen[0], "x-b3-traceid") == "<absent>");
  CHECK(header(f.v1.seen[0], "traceparent") == "<absent>");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]["tags"]["team"] == "calc");
  CHECK(spans[0]["tags"]["user"] == "alice");
  CHECK(spans[0]["tags"]["http.url"] == std::string("http://" + kHost + "/a-rather-long-path-for-the-tag").substr(0, 24));
  CHECK(spans[0]["kind"] == "SERVER");
  CHECK(header(f.v1.seen[1], "x-b3-spanid") == spans[0]["id"]);
  CHECK(header(f.v1.seen[2], "x-b3-traceid") == kTrace);
  CHECK(header(f.v1.seen[2], "x-b3-spanid") == kCallerSpan);
  CHECK(header(f.v1.seen[3], "x-b3-sampled") == "1");
  CHECK(header(f.v1.seen[3], "x-b3-spanid") == "<absent>");
  CHECK(spans[1]["tags"]["http.url"] == std::string("http://" + kHost + "/forced").substr(0, 24));
  CHECK(spans[1]["tags"]["user"] == "nobody");
}
