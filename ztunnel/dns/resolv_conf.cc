// resolv.conf(5) subset; see dns_resolv_conf.h.
#include "ztunnel/dns/resolv_conf.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace ztunnel::dns {

namespace {

constexpr size_t kMaxNameservers = 3;  // glibc MAXNS

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string normalize_domain(std::string_view d) {
  std::string s(d);
  while (!s.empty() && s.back() == '.') s.pop_back();
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
  return s;
}

// "name:N" option value, clamped to `cap`; false when `opt` is not `name:<digits>`.
bool option_value(std::string_view opt, std::string_view name, unsigned cap, unsigned& out) {
  if (opt.size() <= name.size() + 1 || opt.substr(0, name.size()) != name || opt[name.size()] != ':') {
    return false;
  }
  const std::string_view v = opt.substr(name.size() + 1);
  unsigned n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return false;
  out = std::min(n, cap);
  return true;
}

}  // namespace

common::Result<ResolvConf> parse_resolv_conf(std::string_view text) {
  ResolvConf conf;
  size_t skipped = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (size_t c = line.find_first_of("#;"); c != std::string_view::npos) line = line.substr(0, c);
    auto words = split_ws(line);
    if (words.empty()) continue;
    const std::string_view key = words[0];
    if (key == "nameserver" && words.size() >= 2) {
      auto ip = parse_ip(words[1]);
      if (!ip) {
        ++skipped;
        continue;
      }
      if (conf.nameservers.size() < kMaxNameservers) conf.nameservers.push_back(SocketAddr{*ip, 53});
    } else if (key == "search") {
      conf.search.clear();
      for (size_t i = 1; i < words.size(); ++i) {
        auto d = normalize_domain(words[i]);
        if (!d.empty()) conf.search.push_back(std::move(d));
      }
    } else if (key == "domain" && words.size() >= 2) {
      conf.search.assign(1, normalize_domain(words[1]));
    } else if (key == "options") {
      for (size_t i = 1; i < words.size(); ++i) {
        unsigned v = 0;
        if (option_value(words[i], "ndots", 15, v)) {
          conf.ndots = v;
        } else if (option_value(words[i], "timeout", 30, v)) {
          conf.timeout = std::chrono::seconds(std::max(v, 1u));
        } else if (option_value(words[i], "attempts", 5, v)) {
          conf.attempts = std::max(v, 1u);
        }
      }
    }
  }
  if (conf.nameservers.empty()) {
    return common::make_error(skipped > 0 ? "no usable nameserver (unparseable addresses)" : "no nameserver line");
  }
  return conf;
}

common::Result<ResolvConf> load_resolv_conf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return common::make_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = parse_resolv_conf(ss.str());
  if (!r) return common::make_error(path + ": " + r.error());
  return r;
}

}  // namespace ztunnel::dns
