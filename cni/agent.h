// Agent: `ambient-cni serve`, the node agent for hosts without istio-cni. It owns
//   * the pod set (PodStore, persisted in the state dir),
//   * the ZDS server ztunnels connect to (ZdsServer: replay on hello, add -> newest, del ->
//     all),
//   * the control socket the CLI talks to (control.h), and
//   * the in-pod rules (inpod_rules.h), installed/removed inside each pod's netns.
//
// add: refuse early with "no ztunnel connection" when no ztunnel said hello (as istio-cni
// fails the pod sandbox); else install rules in the pod netns, record the pod, send
// AddWorkload and reply with ztunnel's Ack. Any failure after the rules went in rolls back
// (rules removed, pod forgotten, DelWorkload broadcast), so a failed add leaves nothing behind.
// Re-adding a held uid replaces it (ztunnel swaps the proxy when the netns changed); a failed
// re-add forgets the pod. remove: DelWorkload broadcast, rules removed, pod forgotten; unknown
// uid is an error. Rules are never removed from a netns another held pod still uses.
// On start, the pods in the state dir are reloaded and their rules re-asserted (idempotent).
//
// CNI plugin ops (plugin.h): cni-add looks the pod up in the MetadataSource (pod_metadata.h)
// and, when decide_capture says ambient, runs add (uid = K8S_POD_UID, else the source's uid,
// else "cni-<sandbox id>"), remembering the sandbox id; otherwise it answers captured=false
// and touches nothing. cni-del removes the pod held for that sandbox (or uid); none is fine.
// cni-check: an ambient pod must be held for that sandbox and its rules intact
// (check_rules), a non-ambient one must not be held.
//
// Reconcile (sources that report changes: the Kubernetes API, kube_metadata.h): a pod the
// plugin ADDed but left alone keeps its netns fd (in memory, by sandbox id, until its DEL);
// when its namespace or pod label makes it ambient, the agent adds it (rules + ZDS add) as
// cni-add would have. A pod held from a CNI ADD that stops being ambient (label removed or
// set to none) is removed (ZDS del + rules removed) and becomes a candidate again. Pods
// added with the CLI are never touched; ambient pods of the node the agent never saw an
// ADD for (started before it) are logged once and skipped, as there is no netns to act on.
//
// Threading: everything on one io_context thread; the metadata source's change callback
// only posts a reconcile to it. Rule installation blocks that thread for
// the duration of a few iptables-restore runs (tens of ms); acceptable for a node agent whose
// peers allow 5 s per ack.
#pragma once

#include <memory>
#include <string>

#include "cni/inpod_rules.h"
#include "cni/pod_metadata.h"
#include "common/result.h"

namespace boost::asio {
class io_context;
}

namespace cni {

struct AgentOptions {
  std::string zds_socket;  // ZDS listening socket (ztunnel's INPOD_UDS)
  std::string ctl_socket;  // CLI control socket
  std::string state_dir;   // pods.json lives here ("" = not persisted)
  RuleOptions rules;
  // Labels for the CNI plugin's decision; null = nothing is ambient.
  std::shared_ptr<MetadataSource> metadata;
};

class Agent {
 public:
  Agent(boost::asio::io_context& io, AgentOptions opts);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads state, binds both sockets. Errors are startup failures (exit non-zero).
  common::Status start();
  // Closes the sockets (unlinking their files) and every ztunnel connection.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace cni
