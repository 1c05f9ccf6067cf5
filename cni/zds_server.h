// ZdsServer: the node agent's end of ZDS (ztunnel-facts.md §3), as istio-cni plays it. It
// listens on the SOCK_SEQPACKET socket; each ztunnel connects and sends ZdsHello; the server
// then replays the current pod set (AddWorkload with the pod's netns fd, one at a time, each
// waiting for its Ack) followed by SnapshotSent. Afterwards:
//   * add(): AddWorkload to the NEWEST connected ztunnel only (the one that said hello last);
//     fails at once with "no ztunnel connection" when none is connected;
//   * del(): DelWorkload broadcast to ALL connected ztunnels (during an upgrade both the old
//     and the new ztunnel may hold the pod).
// Per connection, requests are strictly serialised (request -> Ack -> next request; ZDS has no
// correlation ids). An Ack not received within `ack_timeout` (5 s, as istio-cni) drops that
// connection and fails everything queued on it; so does a closed socket or a message that is
// not an Ack.
// Threading: single-threaded on the given io_context; every method must be called on it, and
// completion callbacks run on it (never synchronously inside the call that queued them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "proto/zds_wire.h"

namespace boost::asio {
class io_context;
}

namespace cni {

class ZdsServer {
 public:
  using Done = std::function<void(common::Status)>;

  // One pod of the replay sent to a newly connected ztunnel.
  struct SnapshotEntry {
    std::string uid;
    zds::WorkloadInfo info;
    std::shared_ptr<zds::UniqueFd> netns;
  };
  using SnapshotFn = std::function<std::vector<SnapshotEntry>()>;

  struct Options {
    std::string socket_path;
    std::chrono::milliseconds ack_timeout{5000};
  };

  // `snapshot` is called on each hello to get the pods to replay.
  ZdsServer(boost::asio::io_context& io, Options opts, SnapshotFn snapshot);
  ~ZdsServer();
  ZdsServer(const ZdsServer&) = delete;
  ZdsServer& operator=(const ZdsServer&) = delete;

  // Binds (replacing a stale socket file) and starts accepting.
  common::Status listen();
  // Closes the listener and every connection (queued requests fail).
  void stop();

  // AddWorkload to the newest ztunnel; `done` gets the Ack's error as an error status.
  void add(const std::string& uid, const zds::WorkloadInfo& info,
           std::shared_ptr<zds::UniqueFd> netns, Done done);
  // DelWorkload to every ztunnel; `done` gets OK when all acked (or none is connected), else
  // the first error.
  void del(const std::string& uid, Done done);

  // ztunnels that completed the hello (the ones add/del talk to).
  std::size_t connected() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace cni
