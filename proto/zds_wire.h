// zds_wire: the ZDS wire format shared by ztunnel (client, ztunnel/inpod/zds_client.h) and the node
// agent (server, cni/zds_server.h). Three concerns, all stateless:
//   * messages: protobuf (proto/zds.proto) <-> plain structs, so no caller includes protobuf;
//   * packets: one message per SOCK_SEQPACKET packet (no length prefix), file descriptors
//     attached with SCM_RIGHTS, received with MSG_CMSG_CLOEXEC into a bounded buffer where a
//     truncated payload or control block is an error, never a partial message;
//   * netns checks: an fd handed over on AddWorkload must be a network namespace.
// Threading: free functions, no shared state; safe from any thread.
// Invariants: every fd received is owned by a UniqueFd from the moment recvmsg returns, so an
// error path can never leak one (the protocol forbids fds on most messages; those get closed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace zds {

// Owning file descriptor (closes on destruction). -1 = empty.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Pod identity carried by AddWorkload (WorkloadInfo fields 1..3).
struct WorkloadInfo {
  std::string name;
  std::string ns;
  std::string service_account;
  bool operator==(const WorkloadInfo&) const = default;
};

// One WorkloadRequest. `info` is meaningful for Add only; `uid` for Add/Keep/Del.
enum class RequestKind { Add, Keep, Del, SnapshotSent };
struct Request {
  RequestKind kind = RequestKind::SnapshotSent;
  std::string uid;
  WorkloadInfo info;
  bool operator==(const Request&) const = default;
};
const char* to_string(RequestKind k);

// Protocol version sent in ZdsHello (Version enum: NOT_USED=0, V1=1).
constexpr int kVersionV1 = 1;
// Upstream ztunnel reads into a 1 KiB buffer; a bigger message is a protocol error.
constexpr std::size_t kMaxMessageBytes = 1024;

std::string encode_hello(int version = kVersionV1);
// Returns the version field (0 when absent, as proto3 decodes it).
common::Result<int> decode_hello(std::string_view bytes);

std::string encode_request(const Request& r);
// Fails on unparseable bytes and on a WorkloadRequest whose payload is unset or unknown.
common::Result<Request> decode_request(std::string_view bytes);

std::string encode_ack(std::string_view error);
// Decodes a WorkloadResponse: the Ack's error text ("" = success). Fails when not an ack.
common::Result<std::string> decode_ack(std::string_view bytes);

// ---- packets -------------------------------------------------------------------------------

struct Packet {
  std::string bytes;
  std::vector<UniqueFd> fds;  // every SCM_RIGHTS fd that came with the packet, CLOEXEC
};

enum class RecvOutcome { Packet, WouldBlock, Closed };
struct Received {
  RecvOutcome outcome = RecvOutcome::WouldBlock;
  Packet packet;  // valid when outcome == Packet
};

// One recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT) on a SOCK_SEQPACKET socket. Errors: syscall
// failures, a payload longer than `max_bytes` (MSG_TRUNC) or more fds than fit the control
// buffer (MSG_CTRUNC). A zero-length read is Closed (no valid ZDS message is empty).
common::Result<Received> recv_packet(int sock, std::size_t max_bytes = kMaxMessageBytes);

// One sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT), attaching `fds` with SCM_RIGHTS. Returns false
// when the socket would block (nothing was sent), true when the whole packet went out.
common::Result<bool> send_packet(int sock, std::string_view bytes, const std::vector<int>& fds = {});

// True when something accepts SOCK_SEQPACKET connections on `path` (so a server must not
// unlink and replace it). Only a connect attempt, nothing is sent.
bool seqpacket_socket_in_use(const std::string& path);

// ---- network namespaces --------------------------------------------------------------------

// OK when `fd` refers to a network namespace (ioctl NS_GET_NSTYPE == CLONE_NEWNET; kernels
// without that ioctl fall back to fstatfs == NSFS_MAGIC).
common::Status check_netns_fd(int fd);

// (inode, device) of the namespace behind `fd`: its identity (a re-created pod sandbox has a
// new inode).
struct NetnsId {
  std::uint64_t inode = 0;
  std::uint64_t dev = 0;
  bool operator==(const NetnsId&) const = default;
};
common::Result<NetnsId> netns_id(int fd);

}  // namespace zds
