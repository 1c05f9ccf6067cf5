// ZDS wire layer (proto/zds_wire.h) and ZdsClient (ztunnel/inpod/zds_client.h): message encode and
// decode against hand-computed protobuf bytes, packet fd passing and its checks over real
// SOCK_SEQPACKET socketpairs, and a ZdsClient driven by a blocking fake node agent.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "proto/zds_wire.h"
#include "ztunnel/inpod/zds_client.h"

namespace {

struct SocketPair {
  zds::UniqueFd a, b;
  SocketPair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

zds::UniqueFd open_self_netns() {
  zds::UniqueFd fd(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

// Blocks up to 5 s for one packet (the wire functions are non-blocking).
zds::Packet recv_blocking(int fd) {
  pollfd p{fd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  auto r = zds::recv_packet(fd);
  REQUIRE(r.ok());
  REQUIRE(r->outcome == zds::RecvOutcome::Packet);
  return std::move(r->packet);
}

}  // namespace

TEST_CASE("zds: hello and ack bytes match the protobuf encoding", "[zds]") {
  // Field 1 varint 1.
  CHECK(zds::encode_hello() == std::string("\x08\x01", 2));
  auto v = zds::decode_hello(std::string("\x08\x01", 2));
  REQUIRE(v.ok());
  CHECK(*v == 1);
  // WorkloadResponse{ack: Ack{}} = field 1, length 0.
  CHECK(zds::encode_ack("") == std::string("\x0a\x00", 2));
  auto a = zds::decode_ack(zds::encode_ack("boom"));
  REQUIRE(a.ok());
  CHECK(*a == "boom");
  CHECK(!zds::decode_ack("").ok());  // no payload: not an ack
}

TEST_CASE("zds: DelWorkload carries uid in field 2", "[zds]") {
  zds::Request del{zds::RequestKind::Del, "u1", {}};
  // WorkloadRequest.del (field 2, LEN 5) { uid (field 2, LEN 2) "u1" }
  CHECK(zds::encode_request(del) == std::string("\x12\x04\x12\x02u1", 6));
  zds::Request keep{zds::RequestKind::Keep, "k", {}};
  // keep = field 5 -> tag 0x2a; KeepWorkload.uid = field 1 -> 0x0a.
  CHECK(zds::encode_request(keep) == std::string("\x2a\x03\x0a\x01k", 5));
  zds::Request snap{zds::RequestKind::SnapshotSent, "", {}};
  CHECK(zds::encode_request(snap) == std::string("\x1a\x00", 2));
}

TEST_CASE("zds: request round trip", "[zds]") {
  for (const zds::Request& r :
       {zds::Request{zds::RequestKind::Add, "uid-1", {"pod-a", "default", "sa-a"}},
        zds::Request{zds::RequestKind::Keep, "uid-2", {}},
        zds::Request{zds::RequestKind::Del, "uid-3", {}},
        zds::Request{zds::RequestKind::SnapshotSent, "", {}}}) {
    auto d = zds::decode_request(zds::encode_request(r));
    REQUIRE(d.ok());
    CHECK(*d == r);
  }
}

TEST_CASE("zds: malformed and empty requests are errors", "[zds]") {
  CHECK(!zds::decode_request("").ok());                            // no payload
  CHECK(!zds::decode_request(std::string("\x0a\xff\xff", 3)).ok());  // bad length
  CHECK(!zds::decode_request(std::string("\x22\x00", 2)).ok());      // field 4: unknown payload
  CHECK(!zds::decode_request("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").ok());
}

TEST_CASE("zds: netns fd check", "[zds]") {
  auto ns = open_self_netns();
  CHECK(zds::check_netns_fd(ns.get()).ok());
  zds::UniqueFd file(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
  REQUIRE(file.valid());
  CHECK(!zds::check_netns_fd(file.get()).ok());
  zds::UniqueFd uts(::open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC));
  REQUIRE(uts.valid());
  auto st = zds::check_netns_fd(uts.get());
  REQUIRE(!st.ok());
  CHECK(st.error().find("not a network namespace") != std::string::npos);
  CHECK(!zds::check_netns_fd(-1).ok());
}

TEST_CASE("zds: packets carry zero, one or two fds", "[zds]") {
  SocketPair sp;
  auto ns = open_self_netns();
  auto want = zds::netns_id(ns.get());
  REQUIRE(want.ok());
  const std::string add =
      zds::encode_request({zds::RequestKind::Add, "u", {"n", "ns", "sa"}});

  SECTION("one netns fd") {
    auto s = zds::send_packet(sp.a.get(), add, {ns.get()});
    REQUIRE(s.ok());
    REQUIRE(*s);
    auto p = recv_blocking(sp.b.get());
    CHECK(p.bytes == add);
    REQUIRE(p.fds.size() == 1);
    CHECK(zds::check_netns_fd(p.fds[0].get()).ok());
    auto got = zds::netns_id(p.fds[0].get());
    REQUIRE(got.ok());
    CHECK(*got == *want);
    CHECK((::fcntl(p.fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
  }
  SECTION("no fd") {
    REQUIRE(zds::send_packet(sp.a.get(), add).ok());
    auto p = recv_blocking(sp.b.get());
    CHECK(p.fds.empty());
  }
  SECTION("two fds") {
    REQUIRE(zds::send_packet(sp.a.get(), add, {ns.get(), ns.get()}).ok());
    auto p = recv_blocking(sp.b.get());
    CHECK(p.fds.size() == 2);
  }
  SECTION("oversize packet is an error, not a partial message") {
    std::string big(zds::kMaxMessageBytes + 10, 'x');
    REQUIRE(zds::send_packet(sp.a.get(), big).ok());
    pollfd p{sp.b.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    auto r = zds::recv_packet(sp.b.get());
    REQUIRE(!r.ok());
    CHECK(r.error().find("truncated") != std::string::npos);
  }
  SECTION("peer close reads as Closed, empty socket as WouldBlock") {
    auto r = zds::recv_packet(sp.b.get());
    REQUIRE(r.ok());
    CHECK(r->outcome == zds::RecvOutcome::WouldBlock);
    sp.a.reset();
    auto c = zds::recv_packet(sp.b.get());
    REQUIRE(c.ok());
    CHECK(c->outcome == zds::RecvOutcome::Closed);
  }
}

// ---- ZdsClient against a blocking fake agent -------------------------------------------------

namespace {

struct RecordingHandler : ztunnel::ZdsHandler {
  std::mutex mu;
  std::vector<std::string> events;
  common::Status add_workload(const std::string& uid, const zds::WorkloadInfo& info,
                              zds::UniqueFd netns) override {
    std::lock_guard<std::mutex> l(mu);
    events.push_back("add " + uid + " " + info.ns + "/" + info.name + " " + info.service_account +
                     (zds::check_netns_fd(netns.get()).ok() ? " netns" : " NOT-NETNS"));
    if (uid == "reject") return common::make_error("cannot start proxy");
    return common::ok_status();
  }
  void keep_workload(const std::string& uid) override {
    std::lock_guard<std::mutex> l(mu);
    events.push_back("keep " + uid);
  }
  void del_workload(const std::string& uid) override {
    std::lock_guard<std::mutex> l(mu);
    events.push_back("del " + uid);
  }
  void snapshot_done(const std::set<std::string>& mentioned) override {
    std::lock_guard<std::mutex> l(mu);
    std::string s = "snapshot";
    for (const auto& u : mentioned) s += " " + u;
    events.push_back(s);
  }
};

// A listening SOCK_SEQPACKET socket in a fresh temp dir (the fake node agent).
struct FakeAgent {
  std::filesystem::path dir;
  std::string path;
  zds::UniqueFd listener;
  FakeAgent() {
    char tmpl[] = "/tmp/zds-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = (dir / "zds.sock").string();
    listener.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    REQUIRE(listener.valid());
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    REQUIRE(::listen(listener.get(), 4) == 0);
  }
  ~FakeAgent() { std::filesystem::remove_all(dir); }
  zds::UniqueFd accept_one() {
    pollfd p{listener.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    zds::UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(c.valid());
    return c;
  }
  // Sends a request and returns the ack's error text.
  static std::string request(int conn, const zds::Request& r, std::vector<int> fds = {}) {
    auto s = zds::send_packet(conn, zds::encode_request(r), fds);
    REQUIRE(s.ok());
    REQUIRE(*s);
    auto p = recv_blocking(conn);
    auto ack = zds::decode_ack(p.bytes);
    REQUIRE(ack.ok());
    return *ack;
  }
};

}  // namespace

TEST_CASE("zds: ZdsClient hello, snapshot, add, del, protocol error and reconnect", "[zds]") {
  FakeAgent agent;
  RecordingHandler handler;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  ztunnel::ZdsClientOptions opts;
  opts.socket_path = agent.path;
  ztunnel::ZdsClient client(io, handler, opts);
  client.start();
  std::thread t([&] { io.run(); });

  auto ns = open_self_netns();
  {
    auto conn = agent.accept_one();
    auto hello = recv_blocking(conn.get());
    auto v = zds::decode_hello(hello.bytes);
    REQUIRE(v.ok());
    CHECK(*v == 1);
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::Add, "p1", {"a", "default", "sa"}},
                             {ns.get()}) == "");
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::Keep, "p2", {}}) == "");
    CHECK(!client.snapshot_received());
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::SnapshotSent, "", {}}) == "");
    CHECK(client.snapshot_received());
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::Keep, "late", {}}) != "");
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::Add, "reject", {"r", "default", "sa"}},
                             {ns.get()}) == "cannot start proxy");
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::Del, "p1", {}}) == "");
    // Protocol error: AddWorkload without an fd -> error ack, then the connection closes.
    std::string err =
        FakeAgent::request(conn.get(), {zds::RequestKind::Add, "nofd", {"x", "default", "sa"}});
    CHECK(err.find("exactly one fd") != std::string::npos);
    pollfd p{conn.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    auto eof = zds::recv_packet(conn.get());
    REQUIRE(eof.ok());
    CHECK(eof->outcome == zds::RecvOutcome::Closed);
  }
  {
    // The client reconnects and says hello again; a Del carrying an fd is a protocol error.
    auto conn = agent.accept_one();
    auto hello = recv_blocking(conn.get());
    CHECK(zds::decode_hello(hello.bytes).ok());
    std::string err = FakeAgent::request(conn.get(), {zds::RequestKind::Del, "p2", {}}, {ns.get()});
    CHECK(err.find("must not carry fds") != std::string::npos);
  }
  {
    // Undecodable bytes: same treatment, and the client is still alive afterwards.
    auto conn = agent.accept_one();
    (void)recv_blocking(conn.get());
    REQUIRE(zds::send_packet(conn.get(), std::string("\x0a\xff\xff", 3)).ok());
    auto p = recv_blocking(conn.get());
    auto ack = zds::decode_ack(p.bytes);
    REQUIRE(ack.ok());
    CHECK(ack->find("protocol error") != std::string::npos);
  }
  {
    auto conn = agent.accept_one();
    (void)recv_blocking(conn.get());
    CHECK(FakeAgent::request(conn.get(), {zds::RequestKind::SnapshotSent, "", {}}) == "");
  }
  CHECK(client.connections() == 4);

  client.stop();
  guard.reset();
  io.stop();
  t.join();

  std::lock_guard<std::mutex> l(handler.mu);
  std::vector<std::string> want = {
      "add p1 default/a sa netns", "keep p2", "snapshot p1 p2", "add reject default/r sa netns",
      "del p1", "snapshot"};
  CHECK(handler.events == want);
}
