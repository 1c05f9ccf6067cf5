#include "cni/cni_install.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cni {

namespace fs = std::filesystem;

namespace {

bool is_config_name(const std::string& n) {
  if (n.empty() || n[0] == '.') return false;
  auto ends = [&](const std::string& suf) {
    return n.size() > suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".conflist") || ends(".conf") || ends(".json");
}

common::Result<nlohmann::json> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) return common::make_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return common::make_error(path + ": not a JSON object");
  return j;
}

// Writes atomically: a runtime reading the file sees the old or the new content, never half.
common::Status write_file_atomic(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".ambient-tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    if (!out) return common::make_error("cannot write " + tmp);
    out << data;
    if (!out.flush()) return common::make_error("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), mode);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return common::make_error("cannot replace " + path + ": " + ec.message());
  }
  return common::ok_status();
}

}  // namespace

nlohmann::json plugin_entry(const CniInstallOptions& o) {
  return nlohmann::json{
      {"type", kPluginType}, {"agentSocket", o.agent_socket}, {"excludeNamespaces", o.exclude_namespaces}};
}

common::Result<nlohmann::json> chain_plugin(const nlohmann::json& conf, const nlohmann::json& entry) {
  if (!conf.is_object()) return common::make_error("CNI config is not a JSON object");
  nlohmann::json list;
  if (conf.contains("plugins")) {
    if (!conf["plugins"].is_array()) return common::make_error("CNI config: plugins is not a list");
    list = conf;
  } else {
    // A single-plugin .conf: the plugin becomes the first of a list.
    if (!conf.contains("type") || !conf["type"].is_string())
      return common::make_error("CNI config: no plugins and no type");
    nlohmann::json first = conf;
    list = nlohmann::json{{"cniVersion", conf.value("cniVersion", std::string("1.0.0"))},
                          {"name", conf.value("name", std::string("k8s-pod-network"))}};
    first.erase("cniVersion");
    first.erase("name");
    list["plugins"] = nlohmann::json::array({first});
  }
  list = unchain_plugin(list);
  list["plugins"].push_back(entry);
  return list;
}

nlohmann::json unchain_plugin(const nlohmann::json& conflist) {
  nlohmann::json out = conflist;
  if (!out.contains("plugins") || !out["plugins"].is_array()) return out;
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& p : out["plugins"]) {
    if (!(p.is_object() && p.value("type", std::string()) == kPluginType)) kept.push_back(p);
  }
  out["plugins"] = kept;
  return out;
}

common::Result<std::string> primary_cni_config(const std::string& conf_dir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(conf_dir, ec)) {
    if (e.is_regular_file() && is_config_name(e.path().filename().string()))
      names.push_back(e.path().filename().string());
  }
  if (ec) return common::make_error("cannot list " + conf_dir + ": " + ec.message());
  if (names.empty())
    return common::make_error("no CNI configuration in " + conf_dir + " yet (is the primary CNI installed?)");
  std::sort(names.begin(), names.end());
  return (fs::path(conf_dir) / names.front()).string();
}

common::Result<std::string> install_cni(const CniInstallOptions& o) {
  // Binary first: once the config names the plugin, the runtime must find it.
  std::ifstream self(o.plugin_binary, std::ios::binary);
  if (!self) return common::make_error("cannot read the plugin binary " + o.plugin_binary);
  std::stringstream bin;
  bin << self.rdbuf();
  const std::string bin_path = (fs::path(o.bin_dir) / kPluginType).string();
  if (auto st = write_file_atomic(bin_path, bin.str(), 0755); !st.ok()) return common::make_error(st.error());

  auto path = primary_cni_config(o.conf_dir);
  if (!path.ok()) return path;
  auto conf = read_json(*path);
  if (!conf.ok()) return common::make_error(conf.error());
  auto chained = chain_plugin(*conf, plugin_entry(o));
  if (!chained.ok()) return common::make_error(*path + ": " + chained.error());
  std::string out_path = *path;
  if (fs::path(out_path).extension() != ".conflist")
    out_path = (fs::path(out_path).replace_extension(".conflist")).string();
  if (auto st = write_file_atomic(out_path, chained->dump(2) + "\n", 0644); !st.ok())
    return common::make_error(st.error());
  if (out_path != *path) {
    std::error_code ec;
    fs::remove(*path, ec);
  }
  return out_path;
}

common::Status uninstall_cni(const CniInstallOptions& o) {
  std::string errors;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(o.conf_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || !is_config_name(name)) continue;
    auto conf = read_json(e.path().string());
    if (!conf.ok()) continue;
    nlohmann::json stripped = unchain_plugin(*conf);
    if (stripped == *conf) continue;
    if (auto st = write_file_atomic(e.path().string(), stripped.dump(2) + "\n", 0644); !st.ok()) {
      errors += (errors.empty() ? "" : "; ") + st.error();
    }
  }
  fs::remove(fs::path(o.bin_dir) / kPluginType, ec);
  if (!errors.empty()) return common::make_error(errors);
  return common::ok_status();
}

}  // namespace cni
