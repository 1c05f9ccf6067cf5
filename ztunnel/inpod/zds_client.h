// ZdsClient: ztunnel's end of ZDS (ztunnel-facts.md §3). It connects to the node agent's
// SOCK_SEQPACKET socket (INPOD_UDS), says ZdsHello{V1}, then serves the agent's requests in
// strict lockstep: each AddWorkload / KeepWorkload / DelWorkload / SnapshotSent is handed to a
// ZdsHandler and answered with one Ack (error text on failure) before the next is read.
//
// Connection lifecycle: connect with backoff (10 ms doubling to 15 s; reset once a connection
// delivered a valid request); when the agent closes the socket, or on a protocol violation
// (undecodable message, oversize packet, AddWorkload without exactly one netns fd, an fd on any
// other message), log a clear error, best-effort Ack the error, close, and reconnect. Never
// crashes on peer input. Every new connection replays the agent's whole pod set (Add/Keep...,
// SnapshotSent); the handler reconciles in snapshot_done().
//
// Threading: everything (connect, reads, handler callbacks, acks) runs on the io_context passed
// in — ztunnel's control thread. Handler methods are therefore never called concurrently and
// block the ZDS conversation while they run (the agent waits up to 5 s per ack).
// snapshot_received(), connections() and stop() may be called from any thread.
// Lifetime: stop() (or the destructor) ends the connection and any reconnecting. Called on the
// io thread, no handler method runs after it returns (pending completions see the stopped
// flag). Called from another thread, the close is posted to the io_context and a handler call
// already under way on the io thread may still finish (its ack is then dropped).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "common/result.h"
#include "proto/zds_wire.h"

namespace boost::asio {
class io_context;
}

namespace ztunnel {

// What ztunnel does with pods. Implemented by the in-pod proxy manager; called by ZdsClient
// on the control thread only, one call at a time. Implementations must not block for long
// (the node agent gives up after 5 s without an ack) and must not throw (a throw is caught,
// logged and turned into an error Ack, but is a bug).
class ZdsHandler {
 public:
  virtual ~ZdsHandler() = default;

  // Start (or restart) capture for pod `uid`. `netns` is an owned fd already checked to be a
  // network namespace. The same uid may arrive again: with the same netns (snapshot replay
  // after a reconnect: keep the running proxy, drop the fd) or with a different netns inode
  // (sandbox re-created: replace the proxy). An error becomes the Ack's error text; upstream
  // keeps retrying a failed proxy start in the background and so may the implementation.
  virtual common::Status add_workload(const std::string& uid, const zds::WorkloadInfo& info,
                                      zds::UniqueFd netns) = 0;

  // Snapshot phase only: the pod still exists but the agent has no fd for it; keep whatever
  // is running for `uid` (nothing to do when unknown).
  virtual void keep_workload(const std::string& uid) = 0;

  // The pod is gone: drain its proxy (unknown uids are fine: Del is broadcast).
  virtual void del_workload(const std::string& uid) = 0;

  // End of the replay on this connection. `mentioned` = every uid added or kept since the
  // connection started (minus those deleted since); every pod not in it must be drained.
  virtual void snapshot_done(const std::set<std::string>& mentioned) = 0;
};

struct ZdsClientOptions {
  std::string socket_path = "/var/run/ztunnel/ztunnel.sock";  // INPOD_UDS
  std::chrono::milliseconds initial_backoff{10};
  std::chrono::milliseconds max_backoff{15000};
  // Optional observer (control thread): connected=true after the hello went out; false with a
  // human-readable reason when a connection ends. For logs, metrics and tests.
  std::function<void(bool connected, const std::string& reason)> on_connection;
};

class ZdsClient {
 public:
  ZdsClient(boost::asio::io_context& io, ZdsHandler& handler, ZdsClientOptions options);
  ~ZdsClient();
  ZdsClient(const ZdsClient&) = delete;
  ZdsClient& operator=(const ZdsClient&) = delete;

  // Begins connecting (posts to the io_context; returns immediately).
  void start();
  // Closes the connection and stops reconnecting. Idempotent; any thread.
  void stop();

  // True once a SnapshotSent has been processed on any connection (readiness: upstream holds
  // "workload proxy manager" until then). Never goes back to false.
  bool snapshot_received() const;
  // Number of connections established so far (tests and metrics).
  std::uint64_t connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace ztunnel
