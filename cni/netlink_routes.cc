#include "cni/netlink_routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sched.h>

#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace cni {

namespace {

const char* op_name(NetlinkOp op) {
  switch (op) {
    case NetlinkOp::EnterNetns:
      return "entering the pod's network namespace";
    case NetlinkOp::Connect:
      return "opening a netlink socket";
    case NetlinkOp::ListRules:
      return "listing rules";
    case NetlinkOp::AddRule:
      return "adding the fwmark rule";
    case NetlinkOp::DeleteRule:
      return "deleting the fwmark rule";
    case NetlinkOp::ListRoutes:
      return "listing routes";
    case NetlinkOp::ReplaceRoute:
      return "adding the local default route";
    case NetlinkOp::DeleteRoute:
      return "deleting a route";
    case NetlinkOp::ListAddrs:
      return "listing addresses";
  }
  return "?";
}

int af(int family) {
  return family == 6 ? AF_INET6 : AF_INET;
}

NetlinkError nl_err(NetlinkOp op, int family, int code) {
  const int c = code < 0 ? -code : code;
  return NetlinkError{op, family, c, nl_geterror(c)};
}

struct SockDel {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheDel {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct RuleDel {
  void operator()(rtnl_rule* r) const { rtnl_rule_put(r); }
};
struct RouteDel {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct AddrDel {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Sock = std::unique_ptr<nl_sock, SockDel>;
using Cache = std::unique_ptr<nl_cache, CacheDel>;

// Runs `fn(sock)` on a fresh thread inside the namespace of `netns_fd`.
NetlinkStatus in_netns(int netns_fd, const std::function<NetlinkStatus(nl_sock*)>& fn) {
  NetlinkStatus out;
  std::thread t([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      const int e = errno;
      out = NetlinkStatus::failure({NetlinkOp::EnterNetns, 0, e, std::strerror(e)});
      return;
    }
    Sock sock(nl_socket_alloc());
    if (!sock) {
      out = NetlinkStatus::failure({NetlinkOp::Connect, 0, NLE_NOMEM, "out of memory"});
      return;
    }
    if (int rc = nl_connect(sock.get(), NETLINK_ROUTE); rc < 0) {
      out = NetlinkStatus::failure(nl_err(NetlinkOp::Connect, 0, rc));
      return;
    }
    out = fn(sock.get());
  });
  t.join();
  return out;
}

bool is_our_rule(rtnl_rule* r, const PolicyRouting& pr) {
  return rtnl_rule_get_prio(r) == pr.priority && rtnl_rule_get_table(r) == pr.table;
}

// Rules of `family` matching `pr` (references owned by the returned cache).
NetlinkResult<std::vector<rtnl_rule*>> our_rules(nl_sock* sk, int family, const PolicyRouting& pr, Cache& cache) {
  nl_cache* c = nullptr;
  if (int rc = rtnl_rule_alloc_cache(sk, af(family), &c); rc < 0) {
    return NetlinkResult<std::vector<rtnl_rule*>>::failure(nl_err(NetlinkOp::ListRules, family, rc));
  }
  cache.reset(c);
  std::vector<rtnl_rule*> out;
  for (nl_object* o = nl_cache_get_first(c); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_rule*>(o);
    if (is_our_rule(r, pr)) out.push_back(r);
  }
  return NetlinkResult<std::vector<rtnl_rule*>>::success(std::move(out));
}

NetlinkResult<std::vector<rtnl_route*>> table_routes(nl_sock* sk, int family, uint32_t table, Cache& cache) {
  nl_cache* c = nullptr;
  if (int rc = rtnl_route_alloc_cache(sk, af(family), 0, &c); rc < 0) {
    return NetlinkResult<std::vector<rtnl_route*>>::failure(nl_err(NetlinkOp::ListRoutes, family, rc));
  }
  cache.reset(c);
  std::vector<rtnl_route*> out;
  for (nl_object* o = nl_cache_get_first(c); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) == table) out.push_back(r);
  }
  return NetlinkResult<std::vector<rtnl_route*>>::success(std::move(out));
}

bool is_local_default(rtnl_route* r) {
  nl_addr* dst = rtnl_route_get_dst(r);
  return rtnl_route_get_type(r) == RTN_LOCAL && (dst == nullptr || nl_addr_get_prefixlen(dst) == 0);
}

}  // namespace

std::string NetlinkError::describe() const {
  std::string fam = family == 4 ? "IPv4 " : family == 6 ? "IPv6 " : "";
  std::string s = std::string("netlink: ") + op_name(op);
  if (!fam.empty()) s += " (" + fam.substr(0, 4) + ")";
  s += ": " + detail;
  return s;
}

NetlinkStatus install_policy_routing(int netns_fd, int family, const PolicyRouting& pr) {
  return in_netns(netns_fd, [&](nl_sock* sk) -> NetlinkStatus {
    Cache rules_cache;
    auto rules = our_rules(sk, family, pr, rules_cache);
    if (!rules.ok()) return NetlinkStatus::failure(rules.error);
    if (rules.value.empty()) {
      std::unique_ptr<rtnl_rule, RuleDel> rule(rtnl_rule_alloc());
      rtnl_rule_set_family(rule.get(), af(family));
      rtnl_rule_set_prio(rule.get(), pr.priority);
      rtnl_rule_set_mark(rule.get(), pr.fwmark);
      rtnl_rule_set_mask(rule.get(), pr.mask);
      rtnl_rule_set_table(rule.get(), pr.table);
      rtnl_rule_set_action(rule.get(), FR_ACT_TO_TBL);
      if (int rc = rtnl_rule_add(sk, rule.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0) {
        return NetlinkStatus::failure(nl_err(NetlinkOp::AddRule, family, rc));
      }
    }
    const unsigned lo = if_nametoindex("lo");  // this thread is in the pod's namespace
    if (lo == 0) return NetlinkStatus::failure({NetlinkOp::ReplaceRoute, family, ENODEV, "no loopback device"});
    nl_addr* any = nullptr;
    if (int rc = nl_addr_parse(family == 6 ? "::/0" : "0.0.0.0/0", af(family), &any); rc < 0) {
      return NetlinkStatus::failure(nl_err(NetlinkOp::ReplaceRoute, family, rc));
    }
    std::unique_ptr<nl_addr, AddrDel> dst(any);
    std::unique_ptr<rtnl_route, RouteDel> route(rtnl_route_alloc());
    rtnl_route_set_family(route.get(), static_cast<uint8_t>(af(family)));
    rtnl_route_set_type(route.get(), RTN_LOCAL);
    rtnl_route_set_table(route.get(), pr.table);
    rtnl_route_set_scope(route.get(), RT_SCOPE_HOST);
    rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
    rtnl_route_set_dst(route.get(), dst.get());
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, static_cast<int>(lo));
    rtnl_route_add_nexthop(route.get(), nh);  // the route owns nh from here
    if (int rc = rtnl_route_add(sk, route.get(), NLM_F_CREATE | NLM_F_REPLACE); rc < 0) {
      return NetlinkStatus::failure(nl_err(NetlinkOp::ReplaceRoute, family, rc));
    }
    return NetlinkStatus::success(true);
  });
}

NetlinkStatus remove_policy_routing(int netns_fd, int family, const PolicyRouting& pr) {
  return in_netns(netns_fd, [&](nl_sock* sk) -> NetlinkStatus {
    Cache rules_cache;
    auto rules = our_rules(sk, family, pr, rules_cache);
    if (!rules.ok()) return NetlinkStatus::failure(rules.error);
    for (rtnl_rule* r : rules.value) {
      if (int rc = rtnl_rule_delete(sk, r, 0); rc < 0 && rc != -NLE_OBJ_NOTFOUND) {
        return NetlinkStatus::failure(nl_err(NetlinkOp::DeleteRule, family, rc));
      }
    }
    Cache routes_cache;
    auto routes = table_routes(sk, family, pr.table, routes_cache);
    if (!routes.ok()) return NetlinkStatus::failure(routes.error);
    for (rtnl_route* r : routes.value) {
      if (int rc = rtnl_route_delete(sk, r, 0); rc < 0 && rc != -NLE_OBJ_NOTFOUND) {
        return NetlinkStatus::failure(nl_err(NetlinkOp::DeleteRoute, family, rc));
      }
    }
    return NetlinkStatus::success(true);
  });
}

NetlinkStatus policy_routing_present(int netns_fd, int family, const PolicyRouting& pr) {
  return in_netns(netns_fd, [&](nl_sock* sk) -> NetlinkStatus {
    Cache rules_cache;
    auto rules = our_rules(sk, family, pr, rules_cache);
    if (!rules.ok()) return NetlinkStatus::failure(rules.error);
    bool rule_ok = false;
    for (rtnl_rule* r : rules.value) {
      if (rtnl_rule_get_mark(r) == pr.fwmark && rtnl_rule_get_mask(r) == pr.mask) rule_ok = true;
    }
    Cache routes_cache;
    auto routes = table_routes(sk, family, pr.table, routes_cache);
    if (!routes.ok()) return NetlinkStatus::failure(routes.error);
    bool route_ok = false;
    for (rtnl_route* r : routes.value) {
      if (is_local_default(r)) route_ok = true;
    }
    return NetlinkStatus::success(rule_ok && route_ok);
  });
}

NetlinkStatus has_ipv6_loopback(int netns_fd) {
  return in_netns(netns_fd, [&](nl_sock* sk) -> NetlinkStatus {
    nl_cache* c = nullptr;
    if (int rc = rtnl_addr_alloc_cache(sk, &c); rc < 0) {
      return NetlinkStatus::failure(nl_err(NetlinkOp::ListAddrs, 6, rc));
    }
    Cache cache(c);
    in6_addr loop = IN6ADDR_LOOPBACK_INIT;
    for (nl_object* o = nl_cache_get_first(c); o != nullptr; o = nl_cache_get_next(o)) {
      auto* a = reinterpret_cast<rtnl_addr*>(o);
      nl_addr* local = rtnl_addr_get_local(a);
      if (rtnl_addr_get_family(a) != AF_INET6 || local == nullptr) continue;
      if (nl_addr_get_len(local) == sizeof(loop) &&
          std::memcmp(nl_addr_get_binary_addr(local), &loop, sizeof(loop)) == 0) {
        return NetlinkStatus::success(true);
      }
    }
    return NetlinkStatus::success(false);
  });
}

}  // namespace cni
