#include "common/identity/secret_manager.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <deque>

#include "common/identity/certs.h"
#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"

using common::Identity;
using common::SecretManager;
namespace tls = common::tls;
using namespace std::chrono_literals;
using SysClock = std::chrono::system_clock;

namespace {

const Identity kAlice("cluster.local", "default", "alice");
const Identity kBob("cluster.local", "default", "bob");

// Runs `io` until `done()` holds or `limit` passes (a safety net, not an assertion on time).
template <typename Pred>
bool run_until(boost::asio::io_context& io, Pred done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(10ms);
  }
  return done();
}

tls::Credentials fake_creds(const Identity& id, SysClock::time_point nb,
                            SysClock::time_point na, std::string tag) {
  return tls::Credentials{id, std::move(tag), "key", "roots", nb, na};
}

// A provider scripted per call: answers inline from `script` (front first), or, when `hold` is
// set, keeps the callback so the test completes it later.
class FakeProvider : public common::CertProvider {
 public:
  using common::CertProvider::fetch;
  void fetch(const Identity& id, Done done, common::FetchPriority priority) override {
    ++calls;
    requested.push_back(id);
    priorities.push_back(priority);
    if (hold) {
      held.push_back(std::move(done));
      return;
    }
    if (script.empty()) {
      done(common::make_error("CA unreachable"));
      return;
    }
    auto next = std::move(script.front());
    script.pop_front();
    done(std::move(next));
  }

  int calls = 0;
  bool hold = false;
  std::vector<Identity> requested;
  std::vector<common::FetchPriority> priorities;
  std::deque<common::Result<tls::Credentials>> script;
  std::vector<Done> held;
};

}  // namespace

TEST_CASE("certificates rotate at half life", "[secret_manager]") {
  boost::asio::io_context io;
  common::LocalCaProvider provider(common::LocalCa::generate("cluster.local").value(), 2s);
  SecretManager sm(io, provider);

  std::vector<std::shared_ptr<const tls::Credentials>> seen;
  auto sub = sm.subscribe(kAlice, [&](auto creds) { seen.push_back(creds); });
  CHECK(seen.empty());  // never called from inside subscribe()
  CHECK(sm.current(kAlice) == nullptr);

  REQUIRE(run_until(io, [&] { return seen.size() >= 3; }));
  // Each rotation is a new certificate with a new key, for the same identity.
  CHECK(seen[0]->identity == kAlice);
  CHECK(seen[1]->identity == kAlice);
  CHECK(seen[0]->key_pem != seen[1]->key_pem);
  CHECK(seen[0]->cert_chain_pem != seen[1]->cert_chain_pem);
  CHECK(sm.current(kAlice) == seen.back());

  auto dump = sm.dump();
  REQUIRE(dump.size() == 1);
  CHECK(dump[0].identity == kAlice);
  CHECK(dump[0].state == "Available");
  CHECK(dump[0].error.empty());
  REQUIRE(dump[0].cert_chain.size() == 2);  // leaf + intermediate
  REQUIRE(dump[0].root_certs.size() == 1);
  auto leaf = common::certs::inspect_pem(dump[0].cert_chain[0].pem);
  REQUIRE(leaf);
  CHECK(leaf->uri_sans == std::vector<std::string>{kAlice.uri()});
  CHECK(dump[0].cert_chain[0].serial_number == leaf->serial_hex);
  CHECK(dump[0].cert_chain[0].expiration_time == common::certs::to_rfc3339(leaf->not_after));
  CHECK(dump[0].cert_chain[0].valid_from.size() == 20);  // YYYY-MM-DDTHH:MM:SSZ
}

TEST_CASE("failed refreshes retry and keep the current certificate until it expires",
          "[secret_manager]") {
  boost::asio::io_context io;
  FakeProvider provider;
  const auto now = SysClock::now();
  // Half life already close: the refresh starts almost at once and then keeps failing.
  provider.script.push_back(fake_creds(kAlice, now - 1s, now + 1500ms, "first"));
  SecretManager sm(io, provider, {.retry_initial = 20ms, .retry_max = 80ms});

  int calls_seen = 0;
  int failures = 0;
  std::shared_ptr<const tls::Credentials> last;
  auto sub = sm.subscribe(kAlice, [&](auto creds) {
    ++calls_seen;
    last = creds;
  }, [&](const std::string&) { ++failures; });
  REQUIRE(run_until(io, [&] { return provider.calls >= 6; }));
  REQUIRE(last);
  CHECK(last->cert_chain_pem == "first");
  // The first fetch is a new workload's (Warmup); refreshes of a serving certificate are
  // rotations (Background) and yield to it when requests queue.
  CHECK(provider.priorities.front() == common::FetchPriority::Warmup);
  if (SysClock::now() < last->not_after) CHECK(provider.priorities.back() == common::FetchPriority::Background);
  CHECK(calls_seen == 1);  // failures are not broadcast
  if (SysClock::now() < last->not_after) {
    CHECK(failures == 0);  // a valid certificate is still served: not a failure
    CHECK(sm.current(kAlice) == last);
    auto dump = sm.dump();
    REQUIRE(dump.size() == 1);
    CHECK(dump[0].state == "Available");
    CHECK(dump[0].error == "CA unreachable");
  }

  // Past expiry the stale certificate is no longer served.
  REQUIRE(run_until(io, [&] { return SysClock::now() > last->not_after; }));
  CHECK(sm.current(kAlice) == nullptr);
  CHECK(sm.dump()[0].state == "Unavailable");
  // The next failed retry, with nothing valid left, is reported.
  REQUIRE(run_until(io, [&] { return failures >= 1; }));

  // Recovery: the next retry succeeds and is broadcast.
  const auto later = SysClock::now();
  provider.script.push_back(fake_creds(kAlice, later, later + 1h, "second"));
  REQUIRE(run_until(io, [&] { return calls_seen == 2; }));
  CHECK(last->cert_chain_pem == "second");
  CHECK(sm.current(kAlice) == last);
  CHECK(sm.dump()[0].state == "Available");
  CHECK(sm.dump()[0].error.empty());
}

TEST_CASE("first fetch failing leaves the identity Unavailable and retrying",
          "[secret_manager]") {
  boost::asio::io_context io;
  FakeProvider provider;  // empty script: every fetch fails
  SecretManager sm(io, provider, {.retry_initial = 5ms, .retry_max = 10ms});
  int notified = 0;
  auto sub = sm.subscribe(kAlice, [&](auto) { ++notified; });
  REQUIRE(run_until(io, [&] { return provider.calls >= 3; }));
  CHECK(notified == 0);
  CHECK(sm.current(kAlice) == nullptr);
  CHECK(sm.dump()[0].state == "Unavailable");
}

TEST_CASE("failure watchers hear of failed fetches only while there is no valid certificate",
          "[secret_manager]") {
  boost::asio::io_context io;
  FakeProvider provider;
  provider.hold = true;
  SecretManager sm(io, provider, {.retry_initial = 5ms, .retry_max = 10ms});
  int certs = 0;
  std::vector<std::string> failures;
  auto sub = sm.subscribe(kAlice, [&](auto) { ++certs; }, [&](const std::string& e) { failures.push_back(e); });
  REQUIRE(run_until(io, [&] { return provider.held.size() == 1; }));
  CHECK(failures.empty());  // pending is not failed

  // First fetch fails: the watcher hears it, with the provider's reason.
  auto first = std::move(provider.held[0]);
  provider.held.clear();
  first(common::make_error("CA unreachable"));
  REQUIRE(failures.size() == 1);
  CHECK(failures[0] == "CA unreachable");

  // A late subscriber to the failing identity is told too (deferred, never inside subscribe()).
  std::vector<std::string> late_failures;
  auto late = sm.subscribe(kAlice, [](auto) {}, [&](const std::string& e) { late_failures.push_back(e); });
  CHECK(late_failures.empty());
  REQUIRE(run_until(io, [&] { return late_failures.size() == 1; }));
  CHECK(late_failures[0] == "CA unreachable");

  // The retry succeeds: certificate watchers run. (Refreshes failing while the certificate is
  // valid are not failures: see the half-life test above.)
  REQUIRE(run_until(io, [&] { return provider.held.size() == 1; }));
  const auto now = SysClock::now();
  auto retry = std::move(provider.held[0]);
  provider.held.clear();
  retry(fake_creds(kAlice, now - 1s, now + 1h, "ok"));
  CHECK(certs == 1);
  CHECK(sm.current(kAlice) != nullptr);
}

TEST_CASE("identities are shared, and forgotten with their last subscription",
          "[secret_manager]") {
  boost::asio::io_context io;
  FakeProvider provider;
  provider.hold = true;
  SecretManager sm(io, provider);

  int a1 = 0, a2 = 0, b = 0;
  auto sub_a1 = sm.subscribe(kAlice, [&](auto) { ++a1; });
  auto sub_a2 = sm.subscribe(kAlice, [&](auto) { ++a2; });
  auto sub_b = sm.subscribe(kBob, [&](auto) { ++b; });
  REQUIRE(run_until(io, [&] { return provider.held.size() == 2; }));
  CHECK(provider.calls == 2);  // one fetch per identity, not per subscriber
  {
    auto dump = sm.dump();
    REQUIRE(dump.size() == 2);
    CHECK(dump[0].state == "Initializing");
  }

  const auto now = SysClock::now();
  // Complete alice's fetch: both alice watchers hear about it.
  const size_t alice_idx = provider.requested[0] == kAlice ? 0 : 1;
  provider.held[alice_idx](fake_creds(kAlice, now, now + 1h, "a"));
  CHECK(a1 == 1);
  CHECK(a2 == 1);
  CHECK(b == 0);

  // A late subscriber gets the current certificate soon after subscribing.
  int a3 = 0;
  auto sub_a3 = sm.subscribe(kAlice, [&](auto c) {
    if (c && c->cert_chain_pem == "a") ++a3;
  });
  CHECK(a3 == 0);
  REQUIRE(run_until(io, [&] { return a3 == 1; }));
  CHECK(provider.calls == 2);

  // Releasing some subscriptions keeps the identity; releasing the last forgets it.
  sub_a1.release();
  sub_a2 = {};
  CHECK(sm.current(kAlice) != nullptr);
  sub_a3.release();
  CHECK(sm.current(kAlice) == nullptr);
  CHECK(sm.dump().size() == 1);

  // Bob forgotten while its fetch is in flight: the late answer is dropped.
  sub_b.release();
  provider.held[1 - alice_idx](fake_creds(kBob, now, now + 1h, "b"));
  CHECK(b == 0);
  CHECK(sm.dump().empty());
  CHECK(sm.current(kBob) == nullptr);
}

TEST_CASE("subscriptions may outlive the manager", "[secret_manager]") {
  boost::asio::io_context io;
  FakeProvider provider;
  provider.hold = true;
  SecretManager::Subscription sub;
  {
    SecretManager sm(io, provider);
    sub = sm.subscribe(kAlice, [](auto) {});
    CHECK(static_cast<bool>(sub));
    run_until(io, [&] { return provider.calls == 1; });
  }
  sub.release();  // no crash, no effect
  CHECK_FALSE(static_cast<bool>(sub));
  // A provider answering after the manager is gone is ignored too.
  REQUIRE(provider.held.size() == 1);
  const auto now = SysClock::now();
  provider.held[0](fake_creds(kAlice, now, now + 1h, "late"));
}
