#include "common/kube/kube_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace common::kube {
namespace {

using common::make_error;
namespace fs = std::filesystem;

common::Result<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Standard base64 (kubeconfig *-data fields); nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=' || c == '\n' || c == '\r' || c == ' ')
      continue;
    else
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// A scalar child of a YAML map, "" when absent or not a scalar.
std::string scalar(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap()) return "";
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

// The `field` entry (cluster/user/context) named `name` in the list `list` of a kubeconfig.
YAML::Node named(const YAML::Node& root, const char* list, const std::string& name, const char* field) {
  const YAML::Node l = root[list];
  if (!l || !l.IsSequence()) return YAML::Node();
  for (const auto& e : l) {
    if (e.IsMap() && scalar(e, "name") == name) return e[field];
  }
  return YAML::Node();
}

// "<key>-data" (base64) or "<key>" (a file, relative to the kubeconfig's directory).
common::Result<std::string> data_or_file(const YAML::Node& n, const std::string& key, const fs::path& base,
                                         const std::string& where) {
  const std::string data = scalar(n, (key + "-data").c_str());
  if (!data.empty()) {
    auto d = base64_decode(data);
    if (!d) return make_error(where + "." + key + "-data: not base64");
    return std::move(*d);
  }
  const std::string file = scalar(n, key.c_str());
  if (file.empty()) return std::string();
  fs::path p(file);
  if (p.is_relative()) p = base / p;
  auto text = slurp(p.string());
  if (!text) return make_error(where + "." + key + ": " + text.error());
  return *text;
}

}  // namespace

std::string KubeConfig::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + port;
}

common::Status parse_server_url(const std::string& url, KubeConfig& cfg) {
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    cfg.scheme = "https";
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    cfg.scheme = "http";
    rest = url.substr(7);
  } else {
    return make_error("server '" + url + "': expected https://host[:port] or http://host[:port]");
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    if (rest.substr(slash) != "/") return make_error("server '" + url + "': a path prefix is not supported");
    rest.resize(slash);
  }
  cfg.port = cfg.scheme == "https" ? "443" : "80";
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return make_error("server '" + url + "': unterminated [IPv6]");
    cfg.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return make_error("server '" + url + "': junk after ]");
      cfg.port = rest.substr(close + 2);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    cfg.host = rest.substr(0, colon);
    cfg.port = rest.substr(colon + 1);
  } else {
    cfg.host = rest;
  }
  if (cfg.host.empty()) return make_error("server '" + url + "': no host");
  if (cfg.port.empty() || cfg.port.size() > 5 || cfg.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(cfg.port) == 0 || std::stoul(cfg.port) > 65535) {
    return make_error("server '" + url + "': bad port");
  }
  return common::ok_status();
}

common::Result<KubeConfig> in_cluster_config(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    return make_error(
        "--kube: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT not set (not in a cluster; use --kubeconfig)");
  }
  KubeConfig cfg;
  const std::string h = host;
  const std::string url = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  if (auto s = parse_server_url(url, cfg); !s) return make_error("--kube: KUBERNETES_SERVICE_HOST/PORT: " + s.error());
  cfg.token_file = sa_dir + "/token";
  if (auto t = slurp(cfg.token_file); !t) return make_error("--kube: service account token: " + t.error());
  auto ca = slurp(sa_dir + "/ca.crt");
  if (!ca) return make_error("--kube: service account CA: " + ca.error());
  cfg.ca_pem = std::move(*ca);
  return cfg;
}

common::Result<KubeConfig> load_kubeconfig(const std::string& path) {
  auto text = slurp(path);
  if (!text) return make_error("--kubeconfig: " + text.error());
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return make_error("--kubeconfig " + path + ": not YAML: " + e.what());
  }
  if (!root.IsMap()) return make_error("--kubeconfig " + path + ": not a map");
  const std::string ctx_name = scalar(root, "current-context");
  if (ctx_name.empty()) return make_error("--kubeconfig " + path + ": current-context: missing");
  const YAML::Node ctx = named(root, "contexts", ctx_name, "context");
  if (!ctx || !ctx.IsMap()) return make_error("--kubeconfig " + path + ": contexts: no context '" + ctx_name + "'");
  const std::string cluster_name = scalar(ctx, "cluster");
  const YAML::Node cluster = named(root, "clusters", cluster_name, "cluster");
  if (!cluster || !cluster.IsMap()) {
    return make_error("--kubeconfig " + path + ": clusters: no cluster '" + cluster_name + "'");
  }
  KubeConfig cfg;
  const std::string where = "--kubeconfig " + path + ": cluster " + cluster_name;
  if (auto s = parse_server_url(scalar(cluster, "server"), cfg); !s) return make_error(where + ": " + s.error());
  const fs::path base = fs::path(path).parent_path();
  auto ca = data_or_file(cluster, "certificate-authority", base, where);
  if (!ca) return make_error(ca.error());
  cfg.ca_pem = std::move(*ca);
  cfg.insecure = scalar(cluster, "insecure-skip-tls-verify") == "true";
  const std::string user_name = scalar(ctx, "user");
  const YAML::Node user = named(root, "users", user_name, "user");
  if (user && user.IsMap()) {
    const std::string uwhere = "--kubeconfig " + path + ": user " + user_name;
    cfg.token = scalar(user, "token");
    if (std::string tf = scalar(user, "tokenFile"); !tf.empty()) {
      fs::path p(tf);
      if (p.is_relative()) p = base / p;
      cfg.token_file = p.string();
      if (auto t = slurp(cfg.token_file); !t) return make_error(uwhere + ".tokenFile: " + t.error());
    }
    auto cert = data_or_file(user, "client-certificate", base, uwhere);
    if (!cert) return make_error(cert.error());
    auto key = data_or_file(user, "client-key", base, uwhere);
    if (!key) return make_error(key.error());
    if (cert->empty() != key->empty()) return make_error(uwhere + ": client-certificate and client-key go together");
    cfg.client_cert_pem = std::move(*cert);
    cfg.client_key_pem = std::move(*key);
  }
  return cfg;
}

}  // namespace common::kube
