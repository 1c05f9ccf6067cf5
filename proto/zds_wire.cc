#include "proto/zds_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>

#include "proto/zds.pb.h"

namespace zds {

namespace pb = istio::workload::zds;

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

const char* to_string(RequestKind k) {
  switch (k) {
    case RequestKind::Add: return "AddWorkload";
    case RequestKind::Keep: return "KeepWorkload";
    case RequestKind::Del: return "DelWorkload";
    case RequestKind::SnapshotSent: return "SnapshotSent";
  }
  return "?";
}

namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// ParseFromArray takes an int size; everything we accept is far below that anyway.
template <typename Msg>
bool parse(Msg& m, std::string_view bytes) {
  if (bytes.size() > (1u << 20)) return false;
  return m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

std::string encode_hello(int version) {
  pb::ZdsHello h;
  h.set_version(static_cast<pb::Version>(version));
  return h.SerializeAsString();
}

common::Result<int> decode_hello(std::string_view bytes) {
  pb::ZdsHello h;
  if (!parse(h, bytes)) return common::make_error("malformed ZdsHello");
  return static_cast<int>(h.version());
}

std::string encode_request(const Request& r) {
  pb::WorkloadRequest m;
  switch (r.kind) {
    case RequestKind::Add: {
      auto* a = m.mutable_add();
      a->set_uid(r.uid);
      auto* wi = a->mutable_workload_info();
      wi->set_name(r.info.name);
      wi->set_namespace_(r.info.ns);
      wi->set_service_account(r.info.service_account);
      break;
    }
    case RequestKind::Keep: m.mutable_keep()->set_uid(r.uid); break;
    case RequestKind::Del: m.mutable_del()->set_uid(r.uid); break;
    case RequestKind::SnapshotSent: m.mutable_snapshot_sent(); break;
  }
  return m.SerializeAsString();
}

common::Result<Request> decode_request(std::string_view bytes) {
  pb::WorkloadRequest m;
  if (!parse(m, bytes)) return common::make_error("malformed WorkloadRequest (protobuf decode failed)");
  Request r;
  switch (m.payload_case()) {
    case pb::WorkloadRequest::kAdd:
      r.kind = RequestKind::Add;
      r.uid = m.add().uid();
      r.info.name = m.add().workload_info().name();
      r.info.ns = m.add().workload_info().namespace_();
      r.info.service_account = m.add().workload_info().service_account();
      break;
    case pb::WorkloadRequest::kKeep:
      r.kind = RequestKind::Keep;
      r.uid = m.keep().uid();
      break;
    case pb::WorkloadRequest::kDel:
      r.kind = RequestKind::Del;
      r.uid = m.del().uid();
      break;
    case pb::WorkloadRequest::kSnapshotSent: r.kind = RequestKind::SnapshotSent; break;
    default: return common::make_error("WorkloadRequest without a known payload");
  }
  return r;
}

std::string encode_ack(std::string_view error) {
  pb::WorkloadResponse m;
  m.mutable_ack()->set_error(std::string(error));
  return m.SerializeAsString();
}

common::Result<std::string> decode_ack(std::string_view bytes) {
  pb::WorkloadResponse m;
  if (!parse(m, bytes)) return common::make_error("malformed WorkloadResponse");
  if (m.payload_case() != pb::WorkloadResponse::kAck) {
    return common::make_error("WorkloadResponse without an ack");
  }
  return m.ack().error();
}

// ---- packets -------------------------------------------------------------------------------

namespace {
// Room for a few fds, so "two fds on an AddWorkload" is reported as such (with both fds
// closed) rather than as a truncated control block.
constexpr std::size_t kMaxFdsPerPacket = 8;
}  // namespace

common::Result<Received> recv_packet(int sock, std::size_t max_bytes) {
  Received out;
  // One spare byte would not tell us anything: MSG_TRUNC already reports oversize packets.
  std::string buf(max_bytes, '\0');
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerPacket)];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);

  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return out;
    if (errno == ECONNRESET) {
      out.outcome = RecvOutcome::Closed;
      return out;
    }
    return common::make_error(errno_text("recvmsg"));
  }

  // Take ownership of every passed fd before looking at anything else.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.packet.fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_TRUNC) {
    return common::make_error("message larger than " + std::to_string(max_bytes) + " bytes (truncated)");
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return common::make_error("control data truncated (more than " + std::to_string(kMaxFdsPerPacket) +
                              " fds attached)");
  }
  if (n == 0) {
    // A SEQPACKET read of 0 is EOF; fds on an empty packet are closed with `out`.
    out.outcome = RecvOutcome::Closed;
    out.packet.fds.clear();
    return out;
  }
  buf.resize(static_cast<std::size_t>(n));
  out.outcome = RecvOutcome::Packet;
  out.packet.bytes = std::move(buf);
  return out;
}

common::Result<bool> send_packet(int sock, std::string_view bytes, const std::vector<int>& fds) {
  if (fds.size() > kMaxFdsPerPacket) return common::make_error("too many fds for one packet");
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerPacket)];
  if (!fds.empty()) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    return common::make_error(errno_text("sendmsg"));
  }
  // SEQPACKET sends are atomic: all or nothing.
  return true;
}

bool seqpacket_socket_in_use(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) return false;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) return false;
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
}

// ---- network namespaces --------------------------------------------------------------------

common::Status check_netns_fd(int fd) {
  if (fd < 0) return common::make_error("no fd");
  const int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type >= 0) {
    if (type == CLONE_NEWNET) return common::ok_status();
    return common::make_error("fd is a namespace but not a network namespace");
  }
  if (errno != ENOTTY && errno != EINVAL) return common::make_error(errno_text("ioctl(NS_GET_NSTYPE)"));
  // Not an nsfs file at all, or a kernel older than 4.11 without the ioctl: only in the latter
  // case is the fd on nsfs (its type unknown: accept, as upstream's fallback does).
  struct statfs sfs{};
  if (::fstatfs(fd, &sfs) != 0) return common::make_error(errno_text("fstatfs"));
  if (static_cast<unsigned long>(sfs.f_type) == NSFS_MAGIC) return common::ok_status();
  return common::make_error("fd is not a network namespace");
}

common::Result<NetnsId> netns_id(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return common::make_error(errno_text("fstat"));
  return NetnsId{static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_dev)};
}

}  // namespace zds
