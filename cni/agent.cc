#include "cni/agent.h"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <atomic>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "cni/control.h"
#include "cni/pod_store.h"
#include "cni/zds_server.h"
#include "common/admin/log.h"

namespace cni {

namespace asio = boost::asio;
using seqpacket = asio::generic::seq_packet_protocol;
using json = nlohmann::json;

namespace {
json error_reply(const std::string& msg) {
  return json{{"ok", false}, {"error", msg}};
}
}  // namespace

struct Agent::Impl : std::enable_shared_from_this<Agent::Impl> {
  Impl(asio::io_context& io, AgentOptions o)
      : io(io),
        opts(std::move(o)),
        store(opts.state_dir),
        ctl(io),
        zds(io, ZdsServer::Options{opts.zds_socket, std::chrono::milliseconds(5000)}, [this] { return snapshot(); }) {}

  asio::io_context& io;
  AgentOptions opts;
  PodStore store;
  asio::basic_socket_acceptor<seqpacket> ctl;
  ZdsServer zds;
  bool stopped = false;
  bool zds_listening = false;  // only then are the socket files ours to unlink
  bool ctl_listening = false;
  std::shared_ptr<spdlog::logger> log = common::log::logger("cni");

  // Pods the plugin ADDed that were not ambient then (by sandbox id), with their netns kept
  // open: a later label change takes them into the mesh (reconcile). In memory only.
  struct LeftAlone {
    std::string container_id, uid, ns, name, netns_path;
    std::shared_ptr<zds::UniqueFd> netns;
  };
  std::map<std::string, LeftAlone> left_alone;
  std::set<std::string> reconcile_busy;    // uids with an add/remove from reconcile in flight
  std::set<std::string> reported_unknown;  // "ns/name" of ambient pods never ADDed (logged once)
  std::atomic<bool> reconcile_posted{false};

  std::vector<ZdsServer::SnapshotEntry> snapshot() const {
    std::vector<ZdsServer::SnapshotEntry> out;
    for (const auto& [uid, p] : store.pods()) out.push_back({uid, p.info, p.netns});
    return out;
  }

  // True when a pod other than `uid` lives in the same netns: its rules must stay.
  bool netns_shared(const std::string& uid, const zds::NetnsId& id) const {
    for (const auto& [other, p] : store.pods()) {
      if (other != uid && p.netns_id == id) return true;
    }
    return false;
  }

  void save() {
    if (auto st = store.save(); !st.ok()) log->error("cni: saving state: {}", st.error());
  }

  // ---- control socket --------------------------------------------------------------------------

  void accept_ctl() {
    ctl.async_accept([self = shared_from_this()](const boost::system::error_code& ec, seqpacket::socket s) {
      if (self->stopped) return;
      if (!ec) {
        auto sock = std::make_shared<seqpacket::socket>(std::move(s));
        self->read_ctl(sock);
      }
      self->accept_ctl();
    });
  }

  void read_ctl(std::shared_ptr<seqpacket::socket> sock) {
    sock->async_wait(seqpacket::socket::wait_read,
                     [self = shared_from_this(), sock](const boost::system::error_code& ec) {
                       if (ec) return;
                       auto r = zds::recv_packet(sock->native_handle(), kMaxCtlMessage);
                       if (!r.ok()) return self->reply(sock, error_reply("bad request: " + r.error()));
                       if (r->outcome == zds::RecvOutcome::WouldBlock) return self->read_ctl(sock);
                       if (r->outcome == zds::RecvOutcome::Closed) return;
                       self->dispatch(sock, std::move(r->packet));
                     });
  }

  void reply(const std::shared_ptr<seqpacket::socket>& sock, const json& j) {
    // The CLI is blocked waiting for exactly this packet; a failure means it went away.
    auto sent = zds::send_packet(sock->native_handle(), j.dump());
    if (!sent.ok() || !*sent) log->warn("cni: could not send the reply to the CLI");
    boost::system::error_code ignored;
    sock->close(ignored);
  }

  void dispatch(const std::shared_ptr<seqpacket::socket>& sock, zds::Packet packet) {
    json req = json::parse(packet.bytes, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
      return reply(sock, error_reply("malformed request"));
    }
    const std::string op = req["op"];
    auto str = [&](const char* k) {
      return req.contains(k) && req[k].is_string() ? req[k].get<std::string>() : std::string();
    };
    if (op == "list") return reply(sock, list());
    if (op == "remove") {
      return remove(str("uid"), [self = shared_from_this(), sock](json j) { self->reply(sock, j); });
    }
    if (op == "cni-add" || op == "cni-check") {
      if (packet.fds.size() != 1) return reply(sock, error_reply(op + " needs exactly one netns fd"));
      CniRequest r{str("container_id"), str("uid"),   str("namespace"),
                   str("name"),         str("netns"), std::make_shared<zds::UniqueFd>(std::move(packet.fds[0]))};
      auto done = [self = shared_from_this(), sock](json j) { self->reply(sock, j); };
      return op == "cni-add" ? cni_add(std::move(r), done) : done(cni_check(r));
    }
    if (op == "cni-del") {
      return cni_del(str("container_id"), str("uid"),
                     [self = shared_from_this(), sock](json j) { self->reply(sock, j); });
    }
    if (op == "add") {
      if (packet.fds.size() != 1) return reply(sock, error_reply("add needs exactly one netns fd"));
      Pod pod;
      pod.uid = str("uid");
      pod.info = {str("name"), str("namespace"), str("service_account")};
      pod.netns_path = str("netns");
      pod.netns = std::make_shared<zds::UniqueFd>(std::move(packet.fds[0]));
      return add(std::move(pod), [self = shared_from_this(), sock](json j) { self->reply(sock, j); });
    }
    reply(sock, error_reply("unknown op '" + op + "'"));
  }

  // ---- CNI plugin operations -------------------------------------------------------------------

  struct CniRequest {
    std::string container_id, uid, ns, name, netns_path;
    std::shared_ptr<zds::UniqueFd> netns;
  };

  // Metadata + decision for a plugin request; an error means "cannot know" (fail closed).
  common::Result<std::pair<PodMetadata, CaptureDecision>> classify(const CniRequest& r) {
    if (r.ns.empty() || r.name.empty()) return common::make_error("missing pod namespace or name");
    if (r.container_id.empty()) return common::make_error("missing container (sandbox) id");
    common::Result<PodMetadata> m =
        opts.metadata ? opts.metadata->lookup(r.ns, r.name) : EmptyMetadataSource().lookup(r.ns, r.name);
    if (!m.ok()) return common::make_error("pod metadata: " + m.error());
    auto d = decide_capture(*m);
    return std::make_pair(std::move(*m), std::move(d));
  }

  void cni_add(CniRequest r, std::function<void(json)> done) {
    auto c = classify(r);
    if (!c.ok()) return done(error_reply(c.error()));
    const auto& [meta, decision] = *c;
    if (!decision.capture) {
      log->info("cni: pod {}/{} not captured: {}", r.ns, r.name, decision.reason);
      // Host-network pods share the node's netns: never a candidate, whatever their labels.
      if (!meta.host_network) {
        left_alone[r.container_id] =
            LeftAlone{r.container_id, !r.uid.empty() ? r.uid : meta.uid, r.ns, r.name, r.netns_path, r.netns};
      }
      return done(json{{"ok", true}, {"captured", false}, {"reason", decision.reason}});
    }
    left_alone.erase(r.container_id);
    Pod pod;
    pod.uid = !r.uid.empty() ? r.uid : !meta.uid.empty() ? meta.uid : "cni-" + r.container_id;
    pod.info = {r.name, r.ns, meta.service_account};
    pod.netns_path = r.netns_path;
    pod.netns = r.netns;
    pod.container_id = r.container_id;
    const std::string reason = decision.reason;
    add(std::move(pod), [reason, done = std::move(done)](json j) {
      if (j.value("ok", false)) {
        j["captured"] = true;
        j["reason"] = reason;
      }
      done(j);
    });
  }

  void cni_del(const std::string& container_id, const std::string& uid, std::function<void(json)> done) {
    left_alone.erase(container_id);
    const Pod* p = store.find_container(container_id);
    if (p == nullptr && !uid.empty()) p = store.find(uid);
    if (p == nullptr) return done(json{{"ok", true}, {"captured", false}});
    remove(p->uid, std::move(done));
  }

  json cni_check(const CniRequest& r) {
    auto c = classify(r);
    if (!c.ok()) return error_reply(c.error());
    const auto& [meta, decision] = *c;
    const Pod* p = store.find_container(r.container_id);
    if (!decision.capture) {
      if (p != nullptr)
        return error_reply("pod is held by the agent but is no longer ambient (" + decision.reason + ")");
      return json{{"ok", true}, {"captured", false}, {"reason", decision.reason}};
    }
    if (p == nullptr) return error_reply("pod is ambient (" + decision.reason + ") but the agent does not hold it");
    if (auto st = check_rules(r.netns->get(), opts.rules); !st.ok()) return error_reply(st.error());
    if (zds.connected() == 0) return error_reply("no ztunnel connection");
    return json{{"ok", true}, {"captured", true}, {"reason", decision.reason}};
  }

  // ---- reconcile on metadata change -------------------------------------------------------------

  // From any thread (the metadata source's informers): at most one reconcile queued; a change
  // arriving while it runs queues the next one.
  static void schedule_reconcile(const std::weak_ptr<Impl>& weak) {
    auto self = weak.lock();
    if (!self || self->reconcile_posted.exchange(true)) return;
    asio::post(self->io, [weak] {
      auto s = weak.lock();
      if (!s) return;
      s->reconcile_posted = false;
      if (!s->stopped) s->reconcile();
    });
  }

  // As istio-cni's node agent on a label change: pods this agent saw a CNI ADD for are taken
  // into the mesh when they became ambient, and out of it when they stopped being ambient.
  // Pods added by the CLI (no sandbox id) are the operator's and are not touched.
  void reconcile() {
    if (!opts.metadata) return;
    std::vector<LeftAlone> to_add;
    for (const auto& [cid, p] : left_alone) {
      if (reconcile_busy.count(p.uid) != 0) continue;
      auto m = opts.metadata->lookup(p.ns, p.name);
      if (!m.ok()) {
        log->debug("cni: reconcile: pod {}/{}: {}", p.ns, p.name, m.error());
        continue;
      }
      if (decide_capture(*m).capture) to_add.push_back(p);
    }
    std::vector<std::string> to_remove;
    for (const auto& [uid, p] : store.pods()) {
      if (p.container_id.empty() || reconcile_busy.count(uid) != 0) continue;
      auto m = opts.metadata->lookup(p.info.ns, p.info.name);
      if (!m.ok()) {
        log->debug("cni: reconcile: pod {}/{}: {}", p.info.ns, p.info.name, m.error());
        continue;
      }
      if (auto d = decide_capture(*m); !d.capture) {
        log->info("cni: reconcile: pod {}/{} no longer ambient ({}); removing it from the mesh", p.info.ns, p.info.name,
                  d.reason);
        to_remove.push_back(uid);
      }
    }
    for (auto& la : to_add) reconcile_add(std::move(la));
    for (const auto& uid : to_remove) reconcile_remove(uid);
    // Ambient pods of this node the agent never saw an ADD for (they started before the agent,
    // or under another CNI config): no netns to act on.
    for (const auto& [key, m] : opts.metadata->known_pods()) {
      if (!decide_capture(m).capture || reported_unknown.count(key) != 0) continue;
      bool known = false;
      for (const auto& [uid, p] : store.pods()) known = known || (p.info.ns == m.ns && p.info.name == m.name);
      for (const auto& [cid, p] : left_alone) known = known || (p.ns == m.ns && p.name == m.name);
      if (known) continue;
      reported_unknown.insert(key);
      log->warn(
          "cni: reconcile: pod {} is ambient but this agent never saw its CNI ADD; skipped (restart the pod "
          "to capture it)",
          key);
    }
  }

  void reconcile_add(LeftAlone la) {
    auto m = opts.metadata->lookup(la.ns, la.name);
    if (!m.ok()) return;
    const std::string reason = decide_capture(*m).reason;
    Pod pod;
    pod.uid = !la.uid.empty() ? la.uid : !m->uid.empty() ? m->uid : "cni-" + la.container_id;
    pod.info = {la.name, la.ns, m->service_account};
    pod.netns_path = la.netns_path;
    pod.netns = la.netns;
    pod.container_id = la.container_id;
    log->info("cni: reconcile: pod {}/{} became ambient ({}); adding it to the mesh", la.ns, la.name, reason);
    left_alone.erase(la.container_id);
    reconcile_busy.insert(pod.uid);
    const std::string uid = pod.uid;
    add(std::move(pod), [self = shared_from_this(), la, uid](json j) {
      self->reconcile_busy.erase(uid);
      if (j.value("ok", false)) return;
      // Kept as a candidate: the next change (or a ztunnel reconnecting) retries.
      self->log->warn("cni: reconcile: adding pod {}/{} failed: {}", la.ns, la.name, j.value("error", std::string()));
      if (!self->stopped) self->left_alone[la.container_id] = la;
    });
  }

  void reconcile_remove(const std::string& uid) {
    const Pod* p = store.find(uid);
    if (p == nullptr) return;
    LeftAlone la{p->container_id, uid, p->info.ns, p->info.name, p->netns_path, p->netns};
    reconcile_busy.insert(uid);
    remove(uid, [self = shared_from_this(), la, uid](json j) {
      self->reconcile_busy.erase(uid);
      if (!j.value("ok", false)) {
        self->log->warn("cni: reconcile: removing pod {}/{}: {}", la.ns, la.name, j.value("error", std::string()));
      }
      // Forgotten either way (remove() drops it); the netns stays a candidate for a relabel.
      if (!self->stopped) self->left_alone[la.container_id] = la;
    });
  }

  // ---- operations ------------------------------------------------------------------------------

  json list() const {
    json pods = json::array();
    for (const auto& [uid, p] : store.pods()) {
      pods.push_back({{"uid", uid},
                      {"name", p.info.name},
                      {"namespace", p.info.ns},
                      {"service_account", p.info.service_account},
                      {"netns", p.netns_path},
                      {"netns_inode", p.netns_id.inode}});
    }
    return json{{"ok", true}, {"pods", pods}, {"ztunnels", zds.connected()}};
  }

  void add(Pod pod, std::function<void(json)> done) {
    if (pod.uid.empty()) return done(error_reply("missing uid"));
    if (pod.info.name.empty() || pod.info.ns.empty()) return done(error_reply("missing pod name or namespace"));
    if (pod.info.service_account.empty()) return done(error_reply("missing service account"));
    if (auto st = zds::check_netns_fd(pod.netns->get()); !st.ok()) {
      return done(error_reply("netns " + pod.netns_path + ": " + st.error()));
    }
    auto id = zds::netns_id(pod.netns->get());
    if (!id.ok()) return done(error_reply(id.error()));
    pod.netns_id = *id;
    // As istio-cni: without a ztunnel the pod cannot be captured, so fail before changing it.
    if (zds.connected() == 0) return done(error_reply("no ztunnel connection"));

    if (auto st = install_rules(pod.netns->get(), opts.rules); !st.ok()) {
      if (!netns_shared(pod.uid, pod.netns_id)) (void)remove_rules(pod.netns->get());
      return done(error_reply("installing in-pod rules in " + pod.netns_path + ": " + st.error()));
    }
    log->info("cni: rules installed for pod {} ({}/{}), netns {}", pod.uid, pod.info.ns, pod.info.name, pod.netns_path);
    // Recorded before the send so a ztunnel saying hello meanwhile gets it in its replay.
    const std::string uid = pod.uid;
    const zds::WorkloadInfo info = pod.info;
    const zds::NetnsId nsid = pod.netns_id;
    auto fd = pod.netns;
    store.put(std::move(pod));
    save();
    zds.add(uid, info, fd, [self = shared_from_this(), uid, fd, nsid, done = std::move(done)](common::Status st) {
      if (st.ok()) {
        self->log->info("cni: pod {} added to ztunnel", uid);
        return done(json{{"ok", true}});
      }
      // Roll back: nothing of a failed add may stay behind.
      self->log->warn("cni: adding pod {} failed: {}; rolling back", uid, st.error());
      self->store.erase(uid);
      if (!self->netns_shared(uid, nsid)) {
        if (auto r = remove_rules(fd->get()); !r.ok()) self->log->warn("cni: rollback of rules: {}", r.error());
      }
      self->save();
      self->zds.del(uid, [](common::Status) {});
      done(error_reply(st.error()));
    });
  }

  void remove(const std::string& uid, std::function<void(json)> done) {
    if (uid.empty()) return done(error_reply("missing uid"));
    const Pod* p = store.find(uid);
    if (p == nullptr) return done(error_reply("unknown pod uid '" + uid + "'"));
    auto fd = p->netns;
    const zds::NetnsId nsid = p->netns_id;
    zds.del(uid, [self = shared_from_this(), uid, fd, nsid, done = std::move(done)](common::Status st) {
      std::string err;
      if (!st.ok()) err = st.error();
      self->store.erase(uid);
      if (!self->netns_shared(uid, nsid)) {
        if (auto r = remove_rules(fd->get()); !r.ok()) err += (err.empty() ? "" : "; ") + r.error();
      }
      self->save();
      self->log->info("cni: pod {} removed{}", uid, err.empty() ? "" : " (with errors: " + err + ")");
      if (!err.empty()) return done(error_reply("pod forgotten, but: " + err));
      done(json{{"ok", true}});
    });
  }
};

Agent::Agent(asio::io_context& io, AgentOptions opts) : impl_(std::make_shared<Impl>(io, std::move(opts))) {}

Agent::~Agent() {
  stop();
}

common::Status Agent::start() {
  auto warnings = impl_->store.load();
  if (!warnings.ok()) return common::make_error(warnings.error());
  for (const auto& w : *warnings) impl_->log->warn("cni: {}", w);
  if (!warnings->empty()) impl_->save();
  // Re-assert the rules of every loaded pod (idempotent): heals a netns whose rules were
  // flushed while the agent was down.
  for (const auto& [uid, p] : impl_->store.pods()) {
    if (auto st = install_rules(p.netns->get(), impl_->opts.rules); !st.ok()) {
      impl_->log->warn("cni: re-installing rules for pod {}: {}", uid, st.error());
    }
  }
  impl_->log->info("cni: {} pods loaded from {}", impl_->store.pods().size(),
                   impl_->opts.state_dir.empty() ? "(no state dir)" : impl_->opts.state_dir);

  const std::string& path = impl_->opts.ctl_socket;
  if (zds::seqpacket_socket_in_use(path)) {
    return common::make_error("another ambient-cni agent is already serving " + path);
  }
  if (auto st = impl_->zds.listen(); !st.ok()) return st;
  impl_->zds_listening = true;
  seqpacket::endpoint ep;
  try {
    ep = seqpacket::endpoint(asio::local::stream_protocol::endpoint(path));
  } catch (const std::exception& e) {
    return common::make_error("bad control socket path " + path + ": " + e.what());
  }
  ::unlink(path.c_str());
  boost::system::error_code ec;
  impl_->ctl.open(ep.protocol(), ec);
  if (!ec) impl_->ctl.bind(ep, ec);
  if (!ec) impl_->ctl.listen(16, ec);
  if (ec) return common::make_error("cannot listen on " + path + ": " + ec.message());
  impl_->ctl_listening = true;
  impl_->accept_ctl();
  if (impl_->opts.metadata) {
    std::weak_ptr<Impl> weak = impl_;
    impl_->opts.metadata->set_on_change([weak] { Impl::schedule_reconcile(weak); });
    impl_->log->info("cni: pod metadata from {}", impl_->opts.metadata->describe());
  }
  impl_->log->info("cni: serving ZDS on {}, control on {}", impl_->opts.zds_socket, path);
  return common::ok_status();
}

void Agent::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (impl_->opts.metadata) impl_->opts.metadata->set_on_change(nullptr);
  impl_->left_alone.clear();
  boost::system::error_code ignored;
  impl_->ctl.close(ignored);
  if (impl_->ctl_listening) ::unlink(impl_->opts.ctl_socket.c_str());
  impl_->zds.stop();
  if (impl_->zds_listening) ::unlink(impl_->opts.zds_socket.c_str());
}

}  // namespace cni
