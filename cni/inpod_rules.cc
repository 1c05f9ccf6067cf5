#include "cni/inpod_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include "cni/netlink_routes.h"

namespace cni {

namespace {

constexpr unsigned kMask = 0xfff;
constexpr const char* kTproxyMark = "0x111";
constexpr const char* kRestoreMask = "0xffffffff";
constexpr const char* kProbeV4 = "169.254.7.127";
constexpr const char* kProbeV6 = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff";
constexpr int kPortOutbound = 15001;
constexpr int kPortInboundPlain = 15006;
constexpr int kPortHbone = 15008;
constexpr int kPortDns = 15053;

// The (table, builtin, our chain) jumps, in the order the reference script adds them.
struct Jump {
  const char* table;
  const char* builtin;
  const char* chain;
};
constexpr Jump kJumps[] = {
    {"mangle", "PREROUTING", "ISTIO_PRERT"}, {"mangle", "OUTPUT", "ISTIO_OUTPUT"}, {"nat", "OUTPUT", "ISTIO_OUTPUT"},
    {"nat", "PREROUTING", "ISTIO_PRERT"},    {"raw", "PREROUTING", "ISTIO_PRERT"}, {"raw", "OUTPUT", "ISTIO_OUTPUT"},
};

std::string jump_line(const Jump& j) {
  return std::string("-A ") + j.builtin + " -j " + j.chain;
}

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

}  // namespace

std::string render_install(int family, const RuleOptions& opts, const std::vector<std::string>& have_jumps) {
  const bool v6 = family == 6;
  const std::string lo = v6 ? "::1/128" : "127.0.0.1/32";
  const std::string probe = v6 ? kProbeV6 : kProbeV4;
  const std::string mark = hex(opts.mark & kMask) + "/" + hex(kMask);     // 0x539/0xfff
  const std::string tmark = std::string(kTproxyMark) + "/" + hex(kMask);  // 0x111/0xfff
  const std::set<std::string> have(have_jumps.begin(), have_jumps.end());

  std::ostringstream o;
  auto table = [&](const char* name) {
    o << "*" << name << "\n";
    // Declaring a chain in --noflush mode creates it, or flushes it when it exists.
    o << ":ISTIO_PRERT - [0:0]\n:ISTIO_OUTPUT - [0:0]\n";
  };
  auto jumps = [&](const char* name) {
    for (const Jump& j : kJumps) {
      if (std::strcmp(j.table, name) != 0) continue;
      if (have.count(std::string(name) + ":" + jump_line(j)) == 0) o << jump_line(j) << "\n";
    }
  };

  table("mangle");
  o << "-A ISTIO_PRERT -m mark --mark " << mark << " -j CONNMARK --set-xmark " << tmark << "\n";
  o << "-A ISTIO_OUTPUT -m connmark --mark " << tmark << " -j CONNMARK --restore-mark --nfmask " << kRestoreMask
    << " --ctmask " << kRestoreMask << "\n";
  jumps("mangle");
  o << "COMMIT\n";

  table("nat");
  o << "-A ISTIO_PRERT -s " << probe << " -p tcp -j ACCEPT\n";
  o << "-A ISTIO_PRERT ! -d " << lo << " -p tcp ! --dport " << kPortHbone << " -m mark ! --mark " << mark
    << " -j REDIRECT --to-ports " << kPortInboundPlain << "\n";
  o << "-A ISTIO_OUTPUT -d " << probe << " -p tcp -j ACCEPT\n";
  if (opts.dns_capture) {
    o << "-A ISTIO_OUTPUT ! -o lo -p udp --dport 53 -m mark ! --mark " << mark << " -j REDIRECT --to-ports " << kPortDns
      << "\n";
    o << "-A ISTIO_OUTPUT ! -d " << lo << " -p tcp --dport 53 -m mark ! --mark " << mark << " -j REDIRECT --to-ports "
      << kPortDns << "\n";
  }
  o << "-A ISTIO_OUTPUT -p tcp -m mark --mark " << tmark << " -j ACCEPT\n";
  o << "-A ISTIO_OUTPUT ! -d " << lo << " -o lo -j ACCEPT\n";
  o << "-A ISTIO_OUTPUT ! -d " << lo << " -p tcp -m mark ! --mark " << mark << " -j REDIRECT --to-ports "
    << kPortOutbound << "\n";
  jumps("nat");
  o << "COMMIT\n";

  if (opts.dns_capture) {
    // Separate conntrack zone for ztunnel's own upstream DNS and the unmarked replies, so the
    // redirected app query and ztunnel's query never share a tuple.
    table("raw");
    o << "-A ISTIO_OUTPUT -p udp --dport 53 -m mark --mark " << mark << " -j CT --zone 1\n";
    o << "-A ISTIO_PRERT -p udp --sport 53 -m mark ! --mark " << mark << " -j CT --zone 1\n";
    jumps("raw");
    o << "COMMIT\n";
  }
  return o.str();
}

namespace {

// Parses iptables-save output into (table -> lines).
std::vector<std::pair<std::string, std::vector<std::string>>> parse_save(const std::string& saved) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  std::istringstream in(saved);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      out.emplace_back(line.substr(1), std::vector<std::string>{});
      continue;
    }
    if (!out.empty()) out.back().second.push_back(line);
  }
  return out;
}

bool is_our_jump(const std::string& line) {
  for (const Jump& j : kJumps) {
    if (line == jump_line(j)) return true;
  }
  return false;
}

// "table:-A BUILTIN -j CHAIN" for every jump of ours present in `saved`.
std::vector<std::string> existing_jumps(const std::string& saved) {
  std::vector<std::string> out;
  for (const auto& [table, lines] : parse_save(saved)) {
    for (const auto& l : lines) {
      if (is_our_jump(l)) out.push_back(table + ":" + l);
    }
  }
  return out;
}

}  // namespace

std::string render_remove(const std::string& saved) {
  std::ostringstream o;
  for (const auto& [table, lines] : parse_save(saved)) {
    std::vector<std::string> dels;
    std::set<std::string> chains;
    for (const auto& l : lines) {
      if (is_our_jump(l)) dels.push_back("-D" + l.substr(2));
      if (l.rfind(":ISTIO_PRERT ", 0) == 0) chains.insert("ISTIO_PRERT");
      if (l.rfind(":ISTIO_OUTPUT ", 0) == 0) chains.insert("ISTIO_OUTPUT");
    }
    if (dels.empty() && chains.empty()) continue;
    o << "*" << table << "\n";
    for (const auto& d : dels) o << d << "\n";
    for (const auto& c : chains) o << "-F " << c << "\n";
    for (const auto& c : chains) o << "-X " << c << "\n";
    o << "COMMIT\n";
  }
  return o.str();
}

common::Result<std::string> run_in_netns(int netns_fd, const std::vector<std::string>& argv, const std::string& input) {
  if (argv.empty()) return common::make_error("run_in_netns: empty command");
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return common::make_error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return common::make_error(std::string("pipe: ") + std::strerror(errno));
  }
  // Build argv before fork: the child may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return common::make_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: enter the pod's network namespace, then exec. Only this child moves.
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      static const char msg[] = "setns(CLONE_NEWNET) failed\n";
      (void)!::write(out_pipe[1], msg, sizeof(msg) - 1);
      ::_exit(126);
    }
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    ::execvp(args[0], args.data());
    static const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  // Our inputs are a few KiB, far below the pipe buffer, and the tools read all of stdin
  // before writing much: writing first, then reading, cannot deadlock here.
  {
    // A child that exits early must not kill us with SIGPIPE.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    std::size_t off = 0;
    while (off < input.size()) {
      ssize_t n = ::write(in_pipe[1], input.data() + off, input.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in_pipe[1]);
    // Drop a SIGPIPE we may have raised, then restore the mask.
    timespec zero{0, 0};
    while (sigtimedwait(&block, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out_pipe[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return common::make_error("`" + cmd + "` failed (exit " + std::to_string(code) + "): " + output);
  }
  return output;
}

namespace {

const char* save_cmd(int family) {
  return family == 6 ? "ip6tables-save" : "iptables-save";
}
const char* restore_cmd(int family) {
  return family == 6 ? "ip6tables-restore" : "iptables-restore";
}

// IPv6 is programmed only when the netns has ::1 on lo and ip6tables talks to the kernel.
bool netns_has_ipv6(int netns_fd) {
  auto lo = has_ipv6_loopback(netns_fd);
  if (!lo.ok() || !lo.value) return false;
  return run_in_netns(netns_fd, {"ip6tables-save", "-t", "nat"}).ok();
}

common::Status install_family(int netns_fd, int family, const RuleOptions& opts) {
  auto saved = run_in_netns(netns_fd, {save_cmd(family)});
  if (!saved.ok()) return common::make_error(saved.error());
  std::string script = render_install(family, opts, existing_jumps(*saved));
  if (!opts.dns_capture) {
    // Re-install without DNS after one with DNS: drop the raw-table leftovers.
    std::string raw_only;
    for (const auto& [table, lines] : parse_save(*saved)) {
      if (table != "raw") continue;
      raw_only = "*raw\n";
      for (const auto& l : lines) raw_only += l + "\n";
      raw_only += "COMMIT\n";
    }
    script = render_remove(raw_only) + script;
  }
  auto r = run_in_netns(netns_fd, {restore_cmd(family), "-w", "5", "--noflush"}, script);
  if (!r.ok()) return common::make_error(r.error());

  if (auto nl = install_policy_routing(netns_fd, family); !nl.ok()) return common::make_error(nl.error.describe());
  return common::ok_status();
}

common::Status remove_family(int netns_fd, int family) {
  auto saved = run_in_netns(netns_fd, {save_cmd(family)});
  if (!saved.ok()) return common::make_error(saved.error());
  const std::string script = render_remove(*saved);
  if (!script.empty()) {
    auto r = run_in_netns(netns_fd, {restore_cmd(family), "-w", "5", "--noflush"}, script);
    if (!r.ok()) return common::make_error(r.error());
  }
  if (auto nl = remove_policy_routing(netns_fd, family); !nl.ok()) return common::make_error(nl.error.describe());
  return common::ok_status();
}

}  // namespace

common::Status install_rules(int netns_fd, const RuleOptions& opts) {
  if (auto st = install_family(netns_fd, 4, opts); !st.ok()) return st;
  if (opts.ipv6 && netns_has_ipv6(netns_fd)) {
    if (auto st = install_family(netns_fd, 6, opts); !st.ok()) return st;
  }
  return common::ok_status();
}

common::Status check_rules(int netns_fd, const RuleOptions& opts) {
  std::vector<int> families = {4};
  if (opts.ipv6 && netns_has_ipv6(netns_fd)) families.push_back(6);
  std::string drift;
  auto note = [&](const std::string& s) { drift += (drift.empty() ? "" : "; ") + s; };
  for (int family : families) {
    const std::string fam = family == 6 ? "IPv6" : "IPv4";
    auto saved = run_in_netns(netns_fd, {save_cmd(family)});
    if (!saved.ok()) return common::make_error(saved.error());
    const auto want = parse_save(render_install(family, opts));
    const auto have = parse_save(*saved);
    for (const auto& [table, lines] : want) {
      const std::vector<std::string>* got = nullptr;
      for (const auto& [t, l] : have) {
        if (t == table) got = &l;
      }
      for (const std::string chain : {"ISTIO_PRERT", "ISTIO_OUTPUT"}) {
        // iptables-save spells matches differently (-m tcp ...), so rules are compared by
        // count per chain; jumps are compared exactly.
        auto count = [&](const std::vector<std::string>& ls) {
          return std::count_if(ls.begin(), ls.end(),
                               [&](const std::string& l) { return l.rfind("-A " + chain + " ", 0) == 0; });
        };
        const auto n_want = count(lines);
        const auto n_have = got ? count(*got) : 0;
        if (n_want != n_have) {
          note(fam + " " + table + " " + chain + " has " + std::to_string(n_have) + " rules, want " +
               std::to_string(n_want));
        }
      }
      for (const Jump& j : kJumps) {
        if (table != j.table) continue;
        const bool present = got && std::find(got->begin(), got->end(), jump_line(j)) != got->end();
        if (!present) note(fam + " " + table + " " + j.builtin + " does not jump to " + j.chain);
      }
    }
    auto pr = policy_routing_present(netns_fd, family);
    if (!pr.ok()) return common::make_error(pr.error.describe());
    if (!pr.value) note(fam + " fwmark 0x111 rule or table 100 route missing");
  }
  if (!drift.empty()) return common::make_error("in-pod rules drifted: " + drift);
  return common::ok_status();
}

common::Status remove_rules(int netns_fd) {
  if (auto st = remove_family(netns_fd, 4); !st.ok()) return st;
  // Always try v6: it may have been programmed under different options.
  if (run_in_netns(netns_fd, {"ip6tables-save", "-t", "nat"}).ok()) {
    if (auto st = remove_family(netns_fd, 6); !st.ok()) return st;
  }
  return common::ok_status();
}

}  // namespace cni
