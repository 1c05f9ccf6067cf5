// Local name resolution; the semantics are listed in dns_resolve.h.
#include "ztunnel/dns/resolve.h"

#include <algorithm>
#include <atomic>

namespace ztunnel::dns {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Labels of a presentation-form name. Escapes never contain '.', so splitting is exact.
std::vector<std::string_view> split_labels(std::string_view name) {
  std::vector<std::string_view> out;
  if (name.empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(name.substr(start));
      return out;
    }
    out.push_back(name.substr(start, dot - start));
    start = dot + 1;
  }
}

std::string join(std::span<const std::string_view> labels) {
  std::string out;
  for (std::string_view l : labels) {
    if (!out.empty()) out.push_back('.');
    out.append(l);
  }
  return out;
}

// The first `n` labels of an uncompressed wire name, re-terminated with the root label.
std::vector<uint8_t> wire_prefix(const std::vector<uint8_t>& wire, size_t n) {
  std::vector<uint8_t> out;
  size_t pos = 0;
  for (size_t i = 0; i < n && pos < wire.size() && wire[pos] != 0; ++i) {
    const size_t len = wire[pos];
    if (pos + 1 + len > wire.size()) break;  // cannot happen for parsed names
    out.insert(out.end(), wire.begin() + static_cast<ptrdiff_t>(pos),
               wire.begin() + static_cast<ptrdiff_t>(pos + 1 + len));
    pos += 1 + len;
  }
  out.push_back(0);
  return out;
}

struct Alias {
  std::string name;
  // Set when the alias came from stripping a search domain: how many leading labels of the
  // requested name remain (the CNAME target).
  std::optional<size_t> stripped_labels;
  bool pod_host = false;
};

class AliasList {
 public:
  void add(std::string name, std::optional<size_t> stripped, bool pod_host) {
    for (const Alias& a : out_) {
      if (a.name == name) return;
    }
    out_.push_back(Alias{std::move(name), stripped, pod_host});
  }
  const std::vector<Alias>& get() const { return out_; }

 private:
  std::vector<Alias> out_;
};

// Possible Kubernetes FQDNs of a partially qualified name (pod_host = the headless pod form).
void add_kube_fqdns(AliasList& out, std::span<const std::string_view> labels, const ResolveContext& ctx,
                    std::optional<size_t> stripped) {
  const std::string name = join(labels);
  const std::string svc_domain = "svc." + ctx.cluster_domain;
  const std::string ns_domain = ctx.client_ns + "." + svc_domain;
  const bool ends_in_svc = !labels.empty() && labels.back() == "svc";
  switch (labels.size()) {
    case 1:
      out.add(name + "." + ns_domain, stripped, false);
      break;
    case 2:
      out.add(name + "." + svc_domain, stripped, false);
      out.add(name + "." + ns_domain, stripped, true);
      break;
    case 3:
      if (ends_in_svc) out.add(name + "." + ctx.cluster_domain, stripped, false);
      out.add(name + "." + svc_domain, stripped, true);
      break;
    case 4:
      if (ends_in_svc) out.add(name + "." + ctx.cluster_domain, stripped, true);
      break;
    default:
      break;
  }
}

std::vector<Alias> aliases(const std::string& requested, const ResolveContext& ctx) {
  AliasList out;
  const auto labels = split_labels(requested);
  // Upstream's heuristic: a 6-label name may be <pod>.<subdomain>.<ns>.svc.<cluster>.<local>.
  const bool pod_host = labels.size() == 6;
  out.add(requested, std::nullopt, pod_host);
  add_kube_fqdns(out, labels, ctx, std::nullopt);
  const std::string search[] = {ctx.client_ns + ".svc." + ctx.cluster_domain, "svc." + ctx.cluster_domain,
                                ctx.cluster_domain};
  for (const std::string& domain : search) {
    const size_t n = split_labels(domain).size();
    if (labels.size() <= n) continue;
    if (requested.size() <= domain.size() + 1) continue;
    const std::string_view tail = std::string_view(requested).substr(requested.size() - domain.size());
    if (tail != domain || requested[requested.size() - domain.size() - 1] != '.') continue;
    const size_t keep = labels.size() - n;
    const std::span<const std::string_view> kept(labels.data(), keep);
    out.add(join(kept), keep, pod_host);
    add_kube_fqdns(out, kept, ctx, keep);
  }
  return out.get();
}

// name, *.parent, *.grandparent, ... down to *.<tld>.
std::vector<std::string> wildcards(const std::string& name) {
  std::vector<std::string> out{name};
  std::string_view rest = name;
  for (;;) {
    const size_t dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
    out.push_back("*." + std::string(rest));
  }
  return out;
}

bool is_kube_headless(const Service& s, const ResolveContext& ctx) {
  if (!s.vips.empty()) return false;
  const std::string suffix = ".svc." + ctx.cluster_domain;
  const std::string host = lower(s.hostname);
  return host.size() > suffix.size() && host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <typename T, typename NsOf>
const T* best_match(const std::vector<const T*>& candidates, const ResolveContext& ctx, NsOf ns_of) {
  if (candidates.empty()) return nullptr;
  for (const T* c : candidates) {
    if (ns_of(*c) == ctx.client_ns) return c;
  }
  if (!ctx.preferred_namespace.empty()) {
    for (const T* c : candidates) {
      if (ns_of(*c) == ctx.preferred_namespace) return c;
    }
  }
  return candidates.front();
}

bool family_matches(const IpAddr& ip, uint16_t qtype) {
  return ip.is_v4() ? qtype == type::kA : qtype == type::kAaaa;
}

// The matched thing: a service, or one pod of a headless service.
struct Match {
  const Service* service = nullptr;
  const Workload* workload = nullptr;
  bool wildcard = false;
  const Alias* alias = nullptr;
};

std::optional<Match> find_match(const HostnameIndex& index, const ResolveContext& ctx, const std::vector<Alias>& list) {
  const Snapshot& snap = index.snapshot();
  for (const Alias& alias : list) {
    for (const std::string& candidate : wildcards(alias.name)) {
      const auto* services = index.find(candidate);
      if (services == nullptr) continue;
      std::vector<const Service*> usable;
      for (const Service* s : *services) {
        // VIP-less non-headless services (e.g. DNS-resolved ServiceEntries) go upstream.
        if (!s->vips.empty() || is_kube_headless(*s, ctx)) usable.push_back(s);
      }
      if (const Service* s = best_match(usable, ctx, [](const Service& x) -> const std::string& { return x.ns; })) {
        return Match{s, nullptr, candidate.starts_with("*."), &alias};
      }
    }
    if (alias.pod_host) {
      const size_t dot = alias.name.find('.');
      if (dot == std::string::npos) continue;
      const std::string_view pod = std::string_view(alias.name).substr(0, dot);
      const auto* services = index.find(std::string_view(alias.name).substr(dot + 1));
      if (services == nullptr) continue;
      std::vector<const Workload*> pods;
      for (const Service* s : *services) {
        if (!is_kube_headless(*s, ctx)) continue;
        for (const ServiceEndpoint& ep : snap.endpoints(*s)) {
          if (ep.workload != nullptr && (ep.workload->name == pod || lower(ep.workload->hostname) == pod)) {
            pods.push_back(ep.workload);
          }
        }
      }
      if (const Workload* w = best_match(pods, ctx, [](const Workload& x) -> const std::string& { return x.ns; })) {
        return Match{nullptr, w, false, &alias};
      }
    }
  }
  return std::nullopt;
}

std::vector<IpAddr> addresses(const Snapshot& snap, const Match& m, const ResolveContext& ctx, uint16_t qtype) {
  std::vector<IpAddr> out;
  if (m.workload != nullptr) {
    for (const IpAddr& ip : m.workload->addresses) {
      if (family_matches(ip, qtype)) out.push_back(ip);
    }
    return out;
  }
  const Service& s = *m.service;
  // Headless services may front dual-stack pods while being single-stack themselves; the
  // service's families decide what we may hand out.
  if (s.ip_families == IpFamily::IPv4 && qtype == type::kAaaa) return out;
  if (s.ip_families == IpFamily::IPv6 && qtype == type::kA) return out;
  if (s.vips.empty()) {
    for (const ServiceEndpoint& ep : snap.endpoints(s)) {
      if (ep.workload == nullptr) continue;
      for (const IpAddr& ip : ep.workload->addresses) {
        if (family_matches(ip, qtype)) {
          out.push_back(ip);
          break;
        }
      }
    }
    return out;
  }
  for (const NetworkAddress& vip : s.vips) {
    if (vip.network == ctx.client_network && family_matches(vip.ip, qtype)) out.push_back(vip.ip);
  }
  return out;
}

void shuffle(std::vector<IpAddr>& v, uint64_t random) {
  // splitmix64 steps from one seed: enough to spread clients over VIPs/endpoints.
  for (size_t i = v.size(); i > 1; --i) {
    random += 0x9E3779B97F4A7C15ULL;
    uint64_t z = random;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    std::swap(v[i - 1], v[z % i]);
  }
}

}  // namespace

HostnameIndex::HostnameIndex(SnapshotConstSharedPtr snapshot) : snapshot_(std::move(snapshot)) {
  for (const auto& s : snapshot_->services()) by_host_[lower(s->hostname)].push_back(s.get());
}

const std::vector<const Service*>* HostnameIndex::find(std::string_view host) const {
  auto it = by_host_.find(host);
  return it == by_host_.end() ? nullptr : &it->second;
}

std::shared_ptr<const HostnameIndex> HostnameIndex::shared_index(const SnapshotConstSharedPtr& snapshot) {
  // One slot: the newest snapshot's index. Concurrent builders after a config change race
  // benignly (identical results; the last store wins).
  static std::atomic<std::shared_ptr<const HostnameIndex>> slot;
  auto current = slot.load(std::memory_order_acquire);
  if (current && current->snapshot_ptr() == snapshot) return current;
  auto built = std::make_shared<const HostnameIndex>(snapshot);
  slot.store(built, std::memory_order_release);
  return built;
}

std::optional<LocalAnswer> resolve_local(const HostnameIndex& index, const ResolveContext& ctx, const Question& q,
                                         uint64_t random) {
  if (q.qclass != kClassIn || (q.qtype != type::kA && q.qtype != type::kAaaa)) return std::nullopt;
  if (q.name.empty()) return std::nullopt;
  const auto list = aliases(q.name, ctx);
  const auto match = find_match(index, ctx, list);
  if (!match) return std::nullopt;

  LocalAnswer out;
  auto ips = addresses(index.snapshot(), *match, ctx, q.qtype);
  if (ips.empty()) return out;  // the name exists: NODATA, not NXDOMAIN
  shuffle(ips, random);
  std::vector<uint8_t> owner = q.wire_name;
  if (match->alias->stripped_labels && !match->wildcard) {
    std::vector<uint8_t> target = wire_prefix(q.wire_name, *match->alias->stripped_labels);
    out.answers.push_back(make_cname_answer(q.wire_name, target));
    owner = std::move(target);
  }
  for (const IpAddr& ip : ips) out.answers.push_back(make_address_answer(owner, ip));
  return out;
}

}  // namespace ztunnel::dns
