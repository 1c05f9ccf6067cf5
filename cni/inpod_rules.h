// In-pod redirection rules: the iptables rules and policy routing istio-cni installs inside an
// ambient pod's network namespace (ztunnel-facts.md §1.4; scripts/inpod-iptables.sh is the
// shell reference of the same rule set, and tests compare the two).
//
//   mangle ISTIO_PRERT : ztunnel-marked packets (mark/0xfff) -> CONNMARK 0x111
//   mangle ISTIO_OUTPUT: connmark 0x111 -> restore mark (replies of ztunnel's connections)
//   nat ISTIO_PRERT    : kubelet probes from 169.254.7.127 pass; other inbound TCP not to
//                        loopback, not to 15008, not marked -> REDIRECT 15006
//   nat ISTIO_OUTPUT   : probe replies pass; DNS -> 15053; 0x111-marked TCP pass; app to its own
//                        pod IP over lo passes; other TCP not to loopback, unmarked -> 15001
//   raw (DNS only)     : ztunnel's upstream DNS and unmarked DNS replies in conntrack zone 1
//   routing            : ip rule fwmark 0x111/0xfff pref 32764 lookup 100;
//                        ip route local 0.0.0.0/0 (::/0) dev lo table 100
//
// How: a forked child setns()es into the pod's netns (by fd) and execs iptables-save /
// iptables-restore --noflush, so the caller's own namespace is never touched and every table is
// replaced atomically; the ip rule and route go through netlink (netlink_routes.h, libnl). Install is idempotent (our
// chains are re-declared, which flushes them; jumps and the ip rule are added only when missing); remove deletes jumps,
// chains, the ip rule and table 100. IPv6 is programmed when the netns has ::1 on lo.
// Threading: blocking (fork/exec/wait, tens of ms); call from one thread at a time per netns.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace cni {

struct RuleOptions {
  unsigned mark = 1337;     // ztunnel's PACKET_MARK; matched as (mark & 0xfff)/0xfff
  bool dns_capture = true;  // DNS redirect to 15053 + raw CT zone rules
  bool ipv6 = true;         // also ip6tables when the netns has IPv6 on lo
};

// The iptables-restore input that installs our chains for one family (4 or 6). `have_jumps`
// lists the "-A BUILTIN -j ISTIO_*" lines (as iptables-save prints them, "table:line") that
// already exist and must not be added again. Pure: unit-testable without root.
std::string render_install(int family, const RuleOptions& opts, const std::vector<std::string>& have_jumps = {});

// The iptables-restore input that removes whatever of ours `saved` (iptables-save output)
// shows: every jump to ISTIO_PRERT/ISTIO_OUTPUT, then the chains. Empty when nothing is there.
std::string render_remove(const std::string& saved);

// Installs the rules in the netns behind `netns_fd`.
common::Status install_rules(int netns_fd, const RuleOptions& opts);
// Compares what the netns holds with what install_rules would leave there (rule count per
// chain, jumps, the ip rule and route); the error lists every difference ("drift").
common::Status check_rules(int netns_fd, const RuleOptions& opts);
// Removes them (a netns without our rules is fine).
common::Status remove_rules(int netns_fd);

// Runs argv (PATH lookup) inside the netns with `input` on stdin; returns stdout+stderr, or an
// error naming the command and its output when it exits non-zero.
common::Result<std::string> run_in_netns(int netns_fd, const std::vector<std::string>& argv,
                                         const std::string& input = {});

}  // namespace cni
