#include "cni/pod_metadata.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cni {

namespace {

constexpr const char* kModeLabel = "istio.io/dataplane-mode";
constexpr const char* kGatewayNameLabel = "gateway.networking.k8s.io/gateway-name";

common::Result<Labels> parse_labels(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return common::make_error(where + ": must be an object of string labels");
  Labels out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return common::make_error(where + "." + k + ": label value must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

common::Result<StaticMetadataSource::Data> StaticMetadataSource::parse(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return common::make_error("not a JSON object");
  Data d;
  for (const auto& [k, v] : j.items()) {
    if (k != "namespaces" && k != "pods") return common::make_error("unknown key '" + k + "'");
  }
  if (j.contains("namespaces")) {
    if (!j["namespaces"].is_object()) return common::make_error("namespaces: must be an object");
    for (const auto& [ns, labels] : j["namespaces"].items()) {
      auto l = parse_labels(labels, "namespaces." + ns);
      if (!l.ok()) return common::make_error(l.error());
      d.namespaces[ns] = std::move(*l);
    }
  }
  if (j.contains("pods")) {
    if (!j["pods"].is_object()) return common::make_error("pods: must be an object");
    for (const auto& [key, p] : j["pods"].items()) {
      const std::string where = "pods." + key;
      const auto slash = key.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == key.size() ||
          key.find('/', slash + 1) != std::string::npos) {
        return common::make_error(where + ": key must be \"<namespace>/<pod>\"");
      }
      if (!p.is_object()) return common::make_error(where + ": must be an object");
      PodMetadata m;
      m.ns = key.substr(0, slash);
      m.name = key.substr(slash + 1);
      for (const auto& [f, v] : p.items()) {
        if (f == "labels") {
          auto l = parse_labels(v, where + ".labels");
          if (!l.ok()) return common::make_error(l.error());
          m.pod_labels = std::move(*l);
        } else if (f == "serviceAccountName") {
          if (!v.is_string() || v.get<std::string>().empty()) {
            return common::make_error(where + ".serviceAccountName: must be a non-empty string");
          }
          m.service_account = v.get<std::string>();
        } else if (f == "hostNetwork") {
          if (!v.is_boolean()) return common::make_error(where + ".hostNetwork: must be true or false");
          m.host_network = v.get<bool>();
        } else if (f == "uid") {
          if (!v.is_string()) return common::make_error(where + ".uid: must be a string");
          m.uid = v.get<std::string>();
        } else {
          return common::make_error(where + ": unknown key '" + f + "'");
        }
      }
      d.pods[key] = std::move(m);
    }
  }
  return d;
}

common::Status StaticMetadataSource::refresh() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return common::make_error("cannot stat " + path_);
  if (loaded_ && st.st_mtim.tv_sec == mtime_.tv_sec && st.st_mtim.tv_nsec == mtime_.tv_nsec && st.st_size == size_) {
    return common::ok_status();
  }
  std::ifstream in(path_);
  if (!in) return common::make_error("cannot read " + path_);
  std::stringstream ss;
  ss << in.rdbuf();
  auto d = parse(ss.str());
  // A bad edit keeps the last good data, as ztunnel's LOCAL_XDS_PATH watch does.
  if (!d.ok()) {
    if (loaded_) return common::ok_status();
    return common::make_error(path_ + ": " + d.error());
  }
  data_ = std::move(*d);
  loaded_ = true;
  mtime_ = st.st_mtim;
  size_ = st.st_size;
  return common::ok_status();
}

common::Result<PodMetadata> StaticMetadataSource::lookup(const std::string& ns, const std::string& name) {
  if (auto st = refresh(); !st.ok()) return common::make_error(st.error());
  PodMetadata m;
  if (auto it = data_.pods.find(ns + "/" + name); it != data_.pods.end()) m = it->second;
  m.ns = ns;
  m.name = name;
  if (auto it = data_.namespaces.find(ns); it != data_.namespaces.end()) m.namespace_labels = it->second;
  return m;
}

CaptureDecision decide_capture(const PodMetadata& m) {
  if (m.host_network) return {false, "host-network pod"};
  if (m.pod_labels.count(kGatewayNameLabel) != 0) return {false, "waypoint/gateway pod"};
  if (auto it = m.pod_labels.find(kModeLabel); it != m.pod_labels.end()) {
    if (it->second == "ambient") return {true, "pod label " + std::string(kModeLabel) + "=ambient"};
    return {false, "pod label " + std::string(kModeLabel) + "=" + it->second};
  }
  if (auto it = m.namespace_labels.find(kModeLabel); it != m.namespace_labels.end() && it->second == "ambient") {
    return {true, "namespace label " + std::string(kModeLabel) + "=ambient"};
  }
  return {false, "namespace " + m.ns + " is not ambient"};
}

}  // namespace cni
