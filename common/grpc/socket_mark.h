// socket_mark: a gRPC socket mutator that puts SO_MARK on every socket a channel opens, so a
// ztunnel inside a captured pod (dedicated mode) reaches its control plane and CA without its
// own iptables rules redirecting it back to itself — the same mark its data-path sockets carry
// (ztunnel-facts §2: PACKET_MARK, default 1337).
//
// gRPC 1.51 has no public C++ API for this: ChannelArguments::SetSocketMutator takes a
// grpc_socket_mutator whose definition lives in gRPC core's internal headers. We complete that
// type here with the same layout (vtable pointer, then a gpr_refcount) — a layout gRPC has kept
// since 1.4 — and a vtable that sets the mark; tests/70-xds-e2e proves it on the wire (its
// dedicated pod has no exemption for the control plane address).
//
// Threading: the mutator is immutable after creation and reference counted by gRPC; mutate_fd
// may run on any gRPC thread.
#pragma once

#include <cstdint>

namespace grpc {
class ChannelArguments;
}

namespace common::grpcx {

// Adds the mutator to `args` (no-op for mark 0). Sockets that cannot be marked (no
// CAP_NET_ADMIN) fail to connect, and the channel reports it, rather than silently looping
// through the pod's capture rules.
void set_socket_mark(grpc::ChannelArguments& args, uint32_t mark);

}  // namespace common::grpcx
