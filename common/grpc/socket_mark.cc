#include "common/grpc/socket_mark.h"

#include "common/net/socket_options.h"

#include <grpc/support/sync.h>
#include <grpcpp/support/channel_arguments.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

// Layout-compatible completion of gRPC core's opaque type (see the header for why).
struct grpc_socket_mutator {
  const void* vtable;
  gpr_refcount refcount;
};

namespace common::grpcx {
namespace {

// gRPC core's grpc_socket_mutator_vtable, field for field. mutate_fd_2 (the variant that is
// also told the socket's use) is left null, so gRPC calls mutate_fd for every socket.
struct MutatorVtable {
  bool (*mutate_fd)(int fd, grpc_socket_mutator* mutator);
  int (*compare)(grpc_socket_mutator* a, grpc_socket_mutator* b);
  void (*destroy)(grpc_socket_mutator* mutator);
  bool (*mutate_fd_2)(const void* info, grpc_socket_mutator* mutator);
};

struct MarkMutator {
  grpc_socket_mutator base;  // first: gRPC holds a pointer to it
  uint32_t mark;
};

MarkMutator* self(grpc_socket_mutator* m) {
  return reinterpret_cast<MarkMutator*>(m);
}

bool mark_fd(int fd, grpc_socket_mutator* m) {
  const uint32_t mark = self(m)->mark;
  const auto st = common::net::sockopt::set_mark(fd, mark);
  if (st.ok()) return true;
  // Once per process: every reconnect would repeat it.
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) {
    spdlog::error("cannot set SO_MARK {} on a control-plane socket: {} (needs CAP_NET_ADMIN; PACKET_MARK=0 disables)",
                  mark, st.error());
  }
  return false;
}

int compare_marks(grpc_socket_mutator* a, grpc_socket_mutator* b) {
  const uint32_t x = self(a)->mark, y = self(b)->mark;
  return x < y ? -1 : (x > y ? 1 : 0);
}

void destroy_mutator(grpc_socket_mutator* m) {
  delete self(m);
}

constexpr MutatorVtable kVtable{mark_fd, compare_marks, destroy_mutator, nullptr};

}  // namespace

void set_socket_mark(grpc::ChannelArguments& args, uint32_t mark) {
  if (mark == 0) return;
  auto* m = new MarkMutator{};
  m->base.vtable = &kVtable;
  gpr_ref_init(&m->base.refcount, 1);
  m->mark = mark;
  // ChannelArguments takes over this first reference (it does not add one); each channel made
  // from them takes its own, so the object is freed when the last of them lets go.
  args.SetSocketMutator(&m->base);
}

}  // namespace common::grpcx
