#include "controlplane/cached_loader.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "controlplane/k8s_loader.h"

namespace controlplane {
namespace {

template <typename T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// Reads and parses one file the way load_directory() does.
void parse_file(const FileStamp& stamp, ResourceSet& out, Diagnostics& diags) {
  if (stamp.size > kMaxManifestBytes) {
    diags.push_back({Severity::Error, stamp.path, "", "",
                     "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
    return;
  }
  std::ifstream in(stamp.path, std::ios::binary);
  if (!in) {
    diags.push_back({Severity::Error, stamp.path, "", "", "cannot open file; file ignored"});
    return;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    diags.push_back({Severity::Error, stamp.path, "", "", "read error; file ignored"});
    return;
  }
  const std::string text = buf.str();
  if (text.size() > kMaxManifestBytes) {  // grew between stat() and read
    diags.push_back({Severity::Error, stamp.path, "", "",
                     "larger than " + std::to_string(kMaxManifestBytes) + " bytes; file ignored"});
    return;
  }
  parse_manifests(text, stamp.path, out, diags);
}

}  // namespace

ResourceSet CachedLoader::load(const DirFingerprint& files, Diagnostics& diags) {
  parsed_last_ = 0;
  std::map<std::string, Entry> next;
  for (const FileStamp& f : files) {
    auto it = cache_.find(f.path);
    if (it != cache_.end() && it->second.stamp == f) {
      next.emplace(f.path, std::move(it->second));
      continue;
    }
    Entry e;
    e.stamp = f;
    parse_file(f, e.objects, e.diags);
    ++parsed_last_;
    next.emplace(f.path, std::move(e));
  }
  cache_ = std::move(next);  // files gone from the directory leave the cache

  ResourceSet out;
  for (const FileStamp& f : files) {  // file order, as load_directory()
    const Entry& e = cache_.at(f.path);
    append(out.namespaces, e.objects.namespaces);
    append(out.service_accounts, e.objects.service_accounts);
    append(out.pods, e.objects.pods);
    append(out.workload_entries, e.objects.workload_entries);
    append(out.services, e.objects.services);
    append(out.gateways, e.objects.gateways);
    append(out.policies, e.objects.policies);
    append(out.request_authns, e.objects.request_authns);
    append(out.l7.virtual_services, e.objects.l7.virtual_services);
    append(out.l7.destination_rules, e.objects.l7.destination_rules);
    append(out.l7.gateway_routes, e.objects.l7.gateway_routes);
    append(out.rate_limits, e.objects.rate_limits);
    append(diags, e.diags);
  }
  remove_duplicates(out, diags);
  return out;
}

common::Result<ResourceSet> CachedLoader::load_directory(const std::string& dir, Diagnostics& diags,
                                                         const std::vector<std::string>& exclude) {
  auto fp = fingerprint(dir, exclude);
  if (!fp) return common::make_error(fp.error());
  return load(*fp, diags);
}

}  // namespace controlplane
