#include "controlplane/resource_versions.h"

#include <cstdint>
#include <cstdio>

#include "common/model/local_config_writer.h"

namespace controlplane {
namespace {

std::string fnv1a_hex(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

ResourceVersions resource_versions(const ztunnel::LocalConfig& config) {
  ResourceVersions out;
  ztunnel::LocalConfig one;
  for (const auto& w : config.workloads) {
    one.workloads = {w};
    out.addresses[w.uid] = fnv1a_hex(to_local_xds_yaml(one));
  }
  one.workloads.clear();
  for (const auto& s : config.services) {
    one.services = {s};
    out.addresses[s.key()] = fnv1a_hex(to_local_xds_yaml(one));
  }
  one.services.clear();
  for (const auto& p : config.policies) {
    one.policies = {p};
    out.authorizations[p.key()] = fnv1a_hex(to_local_xds_yaml(one));
  }
  return out;
}

VersionDelta diff(const VersionMap& before, const VersionMap& after) {
  VersionDelta d;
  for (const auto& [name, version] : after) {
    auto it = before.find(name);
    if (it == before.end() || it->second != version) d.updated.push_back(name);
  }
  for (const auto& [name, version] : before) {
    (void)version;
    if (!after.count(name)) d.removed.push_back(name);
  }
  return d;
}

}  // namespace controlplane
