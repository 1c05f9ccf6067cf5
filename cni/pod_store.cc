#include "cni/pod_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cni {

namespace fs = std::filesystem;

namespace {
constexpr const char* kFile = "pods.json";
}

common::Result<std::vector<std::string>> PodStore::load() {
  std::vector<std::string> warnings;
  if (dir_.empty()) return warnings;
  const fs::path p = fs::path(dir_) / kFile;
  std::ifstream in(p);
  if (!in) return warnings;  // first start
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pods") || !j["pods"].is_array()) {
    return common::make_error("state file " + p.string() + " is not valid (expected {\"pods\": [...]})");
  }
  try {
    load_entries(j["pods"], warnings);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
    return common::make_error("state file " + p.string() + ": " + e.what());
  }
  return warnings;
}

void PodStore::load_entries(const nlohmann::json& entries, std::vector<std::string>& warnings) {
  for (const auto& e : entries) {
    if (!e.is_object()) continue;
    Pod pod;
    pod.uid = e.value("uid", "");
    pod.info.name = e.value("name", "");
    pod.info.ns = e.value("namespace", "");
    pod.info.service_account = e.value("service_account", "");
    pod.netns_path = e.value("netns", "");
    pod.container_id = e.value("container_id", "");
    const std::uint64_t inode = e.value("netns_inode", std::uint64_t{0});
    if (pod.uid.empty() || pod.netns_path.empty()) continue;
    zds::UniqueFd fd(::open(pod.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      warnings.push_back("pod " + pod.uid + ": netns " + pod.netns_path + " is gone (" + std::strerror(errno) +
                         "); dropped");
      continue;
    }
    auto id = zds::netns_id(fd.get());
    if (!zds::check_netns_fd(fd.get()).ok() || !id.ok() || id->inode != inode) {
      warnings.push_back("pod " + pod.uid + ": " + pod.netns_path +
                         " no longer names the same network namespace; dropped");
      continue;
    }
    pod.netns_id = *id;
    pod.netns = std::make_shared<zds::UniqueFd>(std::move(fd));
    pods_[pod.uid] = std::move(pod);
  }
}

common::Status PodStore::save() const {
  if (dir_.empty()) return common::ok_status();
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [uid, p] : pods_) {
    nlohmann::json e = {{"uid", uid},
                        {"name", p.info.name},
                        {"namespace", p.info.ns},
                        {"service_account", p.info.service_account},
                        {"netns", p.netns_path},
                        {"netns_inode", p.netns_id.inode}};
    if (!p.container_id.empty()) e["container_id"] = p.container_id;
    arr.push_back(std::move(e));
  }
  const nlohmann::json doc = {{"pods", arr}};
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const fs::path tmp = fs::path(dir_) / (std::string(kFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return common::make_error("cannot write " + tmp.string());
    out << doc.dump(2) << "\n";
    if (!out.flush()) return common::make_error("cannot write " + tmp.string());
  }
  // rename() is atomic: a crash leaves either the old or the new file, never half of one.
  fs::rename(tmp, fs::path(dir_) / kFile, ec);
  if (ec) return common::make_error("cannot replace state file: " + ec.message());
  return common::ok_status();
}

const Pod* PodStore::find(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : &it->second;
}

const Pod* PodStore::find_container(const std::string& container_id) const {
  if (container_id.empty()) return nullptr;
  for (const auto& [uid, p] : pods_) {
    if (p.container_id == container_id) return &p;
  }
  return nullptr;
}

void PodStore::put(Pod pod) {
  std::string uid = pod.uid;
  pods_[uid] = std::move(pod);
}

void PodStore::erase(const std::string& uid) {
  pods_.erase(uid);
}

}  // namespace cni
