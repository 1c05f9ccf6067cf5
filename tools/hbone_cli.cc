// hbone-cli: a standalone HBONE client for tests and benchmarks. Accepts plain TCP on
// --listen and carries each connection as a CONNECT stream over pooled mutual-TLS HTTP/2
// connections to --target, presenting the certificate in --cert-dir (key.pem, chain.pem,
// root.pem as written by scripts/issue-cert.sh) and requiring the server to be --expect.
//
//   hbone-cli --cert-dir DIR --target 10.0.0.2:15008 --authority 10.0.0.2:8080
//             --expect spiffe://cluster.local/ns/b/sa/b --listen 127.0.0.1:7000 [--threads N]
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/identity/certs.h"
#include "common/identity/tls.h"
#include "hbone/copy.h"
#include "hbone/pool.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool split_endpoint(const std::string& s, tcp::endpoint& out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return false;
  out = tcp::endpoint(addr, static_cast<uint16_t>(std::stoi(s.substr(colon + 1))));
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: hbone-cli --cert-dir DIR --target IP:PORT --authority IP:PORT --expect SPIFFE_URI "
               "--listen IP:PORT [--threads N] [--mark N]\n");
  return 2;
}

struct Options {
  std::string cert_dir, authority, expect;
  tcp::endpoint target, listen;
  int threads = 1;
  uint32_t mark = 0;
};

asio::awaitable<void> serve_one(tcp::socket sock, std::shared_ptr<hbone::Pool> pool, hbone::TlsContext ctx,
                                const Options& o, common::Identity self_id, common::Identity expected) {
  hbone::PoolKey key;
  key.src_identity = self_id.uri();
  key.dst_identities.push_back(expected.uri());
  key.dst = o.target.address().to_string() + ":" + std::to_string(o.target.port());
  hbone::DialOptions opts;
  opts.target = o.target;
  opts.expected.push_back(expected);
  opts.mark = o.mark;
  hbone::ConnectRequest req;
  req.authority = o.authority;
  auto stream = co_await pool->connect(key, ctx, std::move(opts), std::move(req));
  if (!stream) {
    std::fprintf(stderr, "hbone-cli: CONNECT failed: %s\n", stream.error().c_str());
    co_return;
  }
  (void)sock.set_option(tcp::no_delay(true));
  auto r = co_await hbone::copy_bidirectional(sock, stream.value());
  if (!r.error.empty()) std::fprintf(stderr, "hbone-cli: tunnel ended: %s\n", r.error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string target, listen;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--cert-dir") o.cert_dir = v;
    else if (k == "--target") target = v;
    else if (k == "--authority") o.authority = v;
    else if (k == "--expect") o.expect = v;
    else if (k == "--listen") listen = v;
    else if (k == "--threads") o.threads = std::max(1, std::stoi(v));
    else if (k == "--mark") o.mark = static_cast<uint32_t>(std::stoul(v));
    else return usage();
  }
  if (o.cert_dir.empty() || o.authority.empty() || o.expect.empty() || !split_endpoint(target, o.target) ||
      !split_endpoint(listen, o.listen)) {
    return usage();
  }
  auto expected = common::Identity::parse(o.expect);
  if (!expected) {
    std::fprintf(stderr, "hbone-cli: --expect is not a SPIFFE identity: %s\n", o.expect.c_str());
    return 2;
  }
  std::string chain = read_file(o.cert_dir + "/chain.pem");
  auto leaf = common::certs::inspect_pem(chain);
  if (!leaf) {
    std::fprintf(stderr, "hbone-cli: %s/chain.pem: %s\n", o.cert_dir.c_str(), leaf.error().c_str());
    return 2;
  }
  std::optional<common::Identity> self_id;
  for (auto& san : leaf->uri_sans) {
    if ((self_id = common::Identity::parse(san))) break;
  }
  if (!self_id) {
    std::fprintf(stderr, "hbone-cli: certificate has no SPIFFE URI SAN\n");
    return 2;
  }
  auto creds = std::make_shared<common::tls::Credentials>(common::tls::Credentials{
      *self_id, chain, read_file(o.cert_dir + "/key.pem"), read_file(o.cert_dir + "/root.pem"),
      leaf->not_before, leaf->not_after});
  auto ctxs = hbone::make_tls_contexts(creds);
  if (!ctxs) {
    std::fprintf(stderr, "hbone-cli: %s\n", ctxs.error().c_str());
    return 2;
  }

  // One io_context per thread, each with its own acceptor (SO_REUSEPORT) and pool, like ztunnel.
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    auto io = std::make_unique<asio::io_context>(1);
    auto acc = std::make_shared<tcp::acceptor>(*io);
    acc->open(o.listen.protocol());
    acc->set_option(asio::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    boost::system::error_code ec;
    acc->bind(o.listen, ec);
    if (ec) {
      std::fprintf(stderr, "hbone-cli: bind %s: %s\n", listen.c_str(), ec.message().c_str());
      return 1;
    }
    acc->listen(1024);
    auto pool = std::make_shared<hbone::Pool>(io->get_executor(), 100, std::chrono::minutes(5));
    asio::co_spawn(*io, [acc, pool, ctx = ctxs->client, &o, sid = *self_id, exp = *expected,
                         &io = *io]() -> asio::awaitable<void> {
      for (;;) {
        auto [ec, sock] = co_await acc->async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        asio::co_spawn(io, serve_one(std::move(sock), pool, ctx, o, sid, exp), asio::detached);
      }
    }, asio::detached);
    ios.push_back(std::move(io));
  }
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    for (auto& io : ios) io->stop();
  });
  for (auto& io : ios) threads.emplace_back([&io] { io->run(); });
  std::thread sig([&] { signals_io.run(); });
  std::fprintf(stderr, "hbone-cli: listening on %s, tunnelling to %s as %s\n", listen.c_str(), target.c_str(),
               self_id->uri().c_str());
  for (auto& t : threads) t.join();
  signals_io.stop();
  sig.join();
  return 0;
}
