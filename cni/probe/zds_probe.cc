// zds-probe: a stand-in ztunnel for tests. Runs the real ZdsClient (ztunnel/inpod/zds_client.h)
// against a node agent and prints one line per event on stdout, flushed at once:
//   CONNECTED | DISCONNECTED <reason>
//   ADD <uid> <namespace>/<name> sa=<sa> netns=<inode>
//   KEEP <uid> | DEL <uid> | SNAPSHOT <uid>... (the uids mentioned since connecting)
// Every request is acked OK, except an AddWorkload whose uid starts with "fail-", which gets
// the error "probe: refusing <uid>" (to test error acks end to end).
// Usage: zds-probe --socket PATH    (SIGINT/SIGTERM to stop)
#include <sys/stat.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/admin/log.h"
#include "ztunnel/inpod/zds_client.h"

namespace {

void emit(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

struct PrintingHandler : ztunnel::ZdsHandler {
  common::Status add_workload(const std::string& uid, const zds::WorkloadInfo& info,
                              zds::UniqueFd netns) override {
    auto id = zds::netns_id(netns.get());
    emit("ADD " + uid + " " + info.ns + "/" + info.name + " sa=" + info.service_account +
         " netns=" + (id.ok() ? std::to_string(id->inode) : "?"));
    if (uid.rfind("fail-", 0) == 0) return common::make_error("probe: refusing " + uid);
    return common::ok_status();
  }
  void keep_workload(const std::string& uid) override { emit("KEEP " + uid); }
  void del_workload(const std::string& uid) override { emit("DEL " + uid); }
  void snapshot_done(const std::set<std::string>& mentioned) override {
    std::string s = "SNAPSHOT";
    for (const auto& u : mentioned) s += " " + u;
    emit(s);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0) socket = argv[i + 1];
  }
  if (socket.empty()) {
    std::fprintf(stderr, "usage: zds-probe --socket PATH\n");
    return 2;
  }
  // Logs go to stdout too (common::log); event lines are the ones without a timestamp.
  (void)common::log::init("info", common::log::Format::Plain, "zds-probe");
  boost::asio::io_context io;
  PrintingHandler handler;
  ztunnel::ZdsClientOptions opts;
  opts.socket_path = socket;
  opts.on_connection = [](bool up, const std::string& reason) {
    emit(up ? std::string("CONNECTED") : "DISCONNECTED " + reason);
  };
  ztunnel::ZdsClient client(io, handler, opts);
  client.start();
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    client.stop();
    io.stop();
  });
  io.run();
  return 0;
}
