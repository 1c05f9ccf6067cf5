// Internal to controlplane/: a small path-tracking reader over yaml-cpp nodes, shared by the
// Kubernetes object readers. Failures are thrown as FieldError{field path, message} and caught
// per object by the loader (k8s_loader.cc), which turns them into one Error diagnostic; they
// never cross a public API. Node visits are counted per Reader (one per document) so YAML
// aliases cannot make a small file cost exponential work.
//
// Threading: a Reader is used by one thread for one document.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/yaml_path.h"
#include "controlplane/k8s_resources.h"

namespace controlplane::yaml {

// Internal only: thrown from deep inside an object's reader and turned into one Error
// diagnostic by the per-object catch; never crosses the API.
struct FieldError {
  std::string field;
  std::string message;
};

[[noreturn]] inline void fail(const std::string& field, std::string message) {
  throw FieldError{field, std::move(message)};
}

using common::yaml::index;
using common::yaml::join;
using common::yaml::type_name;
using common::yaml::valid_utf8;

// RFC 1123 subdomain (Kubernetes object names): lower-case alphanumerics, '-' and '.',
// starting and ending alphanumeric, at most 253 chars. Checked because names become parts of
// keys ("ns/name") and uids, where a '/' or a space would corrupt the key.
inline bool valid_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}
// RFC 1123 label (namespace names): as above without '.', at most 63 chars.
inline bool valid_dns_label(std::string_view s) {
  return s.size() <= 63 && s.find('.') == std::string_view::npos && valid_dns_subdomain(s);
}

// Reads one document. Counts visited nodes: YAML aliases let a small file reference one
// subtree exponentially often, and we walk every reference.
class Reader {
 public:
  void visit(const std::string& path) {
    if (++visited_ > kMaxNodes) fail(path, "document too large (too many nodes)");
  }

  static bool present(const YAML::Node& map, std::string_view key) {
    if (!map.IsMap()) return false;
    const YAML::Node v = map[std::string(key)];
    return v.IsDefined() && !v.IsNull();
  }
  // The child at `key`, or an Undefined node. Never yaml-cpp's "zombie" node for a missing
  // key, whose type queries throw.
  static YAML::Node child(const YAML::Node& map, std::string_view key) {
    if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node v = map[std::string(key)];
    if (!v.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    return v;
  }

  void expect_map(const YAML::Node& n, const std::string& path) {
    visit(path);
    if (!n.IsMap()) fail(path, "expected a map, got " + std::string(type_name(n)));
  }
  // As expect_map, and every key must be in `allowed` (strict parts of the schema).
  void expect_strict_map(const YAML::Node& n, const std::string& path,
                         std::initializer_list<std::string_view> allowed) {
    expect_map(n, path);
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) fail(path, "map keys must be strings");
      const std::string& key = kv.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(join(path, key), "unknown field");
      }
    }
  }
  void expect_seq(const YAML::Node& n, const std::string& path) {
    visit(path);
    if (!n.IsSequence()) fail(path, "expected a list, got " + std::string(type_name(n)));
  }

  std::string str(const YAML::Node& n, const std::string& path) {
    visit(path);
    if (!n.IsScalar()) fail(path, "expected a string, got " + std::string(type_name(n)));
    if (!valid_utf8(n.Scalar())) fail(path, "invalid UTF-8");
    return n.Scalar();
  }
  void opt_str(const YAML::Node& map, const std::string& path, std::string_view key, std::string& out) {
    if (present(map, key)) out = str(child(map, key), join(path, key));
  }

  bool boolean(const YAML::Node& n, const std::string& path) {
    const std::string s = str(n, path);
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    fail(path, "expected true or false, got '" + s + "'");
  }

  // An integer in [min, max]; YAML gives it as a scalar either way (8080 or "8080").
  uint64_t integer(const YAML::Node& n, const std::string& path, uint64_t min, uint64_t max) {
    const std::string s = str(n, path);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < min || v > max) {
      fail(path, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" + s + "'");
    }
    return v;
  }
  uint16_t port(const YAML::Node& n, const std::string& path) {
    return static_cast<uint16_t>(integer(n, path, 1, 65535));
  }

  ztunnel::IpAddr ip(const YAML::Node& n, const std::string& path) {
    const std::string s = str(n, path);
    auto v = ztunnel::parse_ip(s);
    if (!v) fail(path, "invalid IP address '" + s + "'");
    return *v;
  }

  std::vector<std::string> str_list(const YAML::Node& n, const std::string& path) {
    expect_seq(n, path);
    std::vector<std::string> out;
    for (size_t i = 0; i < n.size(); ++i) out.push_back(str(n[i], index(path, i)));
    return out;
  }

  // labels / annotations / selectors: string -> string. A null value reads as "" (YAML
  // `key:` with nothing after it), which Kubernetes also accepts for labels.
  Labels string_map(const YAML::Node& n, const std::string& path) {
    expect_map(n, path);
    Labels out;
    for (const auto& kv : n) {
      const std::string key = str(kv.first, path);
      const std::string kp = path + "[" + key + "]";
      out[key] = kv.second.IsNull() ? std::string() : str(kv.second, kp);
    }
    return out;
  }

  // metadata: name, namespace, uid, labels, annotations, ownerReferences, deletionTimestamp.
  ObjectMeta meta(const YAML::Node& doc, bool namespaced) {
    ObjectMeta m;
    if (!present(doc, "metadata")) fail("metadata", "missing required field");
    const YAML::Node md = child(doc, "metadata");
    expect_map(md, "metadata");
    opt_str(md, "metadata", "name", m.name);
    if (m.name.empty()) fail("metadata.name", "missing required field");
    if (!valid_dns_subdomain(m.name)) {
      fail("metadata.name", "'" + m.name + "' is not a valid name (RFC 1123 subdomain)");
    }
    if (namespaced) {
      opt_str(md, "metadata", "namespace", m.ns);
      if (m.ns.empty()) m.ns = "default";  // kubectl's default
      if (!valid_dns_label(m.ns)) {
        fail("metadata.namespace", "'" + m.ns + "' is not a valid namespace (RFC 1123 label)");
      }
    }
    opt_str(md, "metadata", "uid", m.uid);
    if (present(md, "labels")) m.labels = string_map(child(md, "labels"), "metadata.labels");
    if (present(md, "annotations")) {
      m.annotations = string_map(child(md, "annotations"), "metadata.annotations");
    }
    if (present(md, "ownerReferences")) {
      const YAML::Node owners = child(md, "ownerReferences");
      expect_seq(owners, "metadata.ownerReferences");
      for (size_t i = 0; i < owners.size(); ++i) {
        const std::string p = index("metadata.ownerReferences", i);
        expect_map(owners[i], p);
        OwnerReference o;
        opt_str(owners[i], p, "kind", o.kind);
        opt_str(owners[i], p, "name", o.name);
        if (present(owners[i], "controller")) {
          o.controller = boolean(child(owners[i], "controller"), join(p, "controller"));
        }
        m.owners.push_back(std::move(o));
      }
    }
    m.deleting = present(md, "deletionTimestamp");
    return m;
  }

  template <typename F>
  void read_list(const YAML::Node& map, const std::string& path, std::string_view key, F&& one) {
    if (!present(map, key)) return;
    const std::string p = join(path, key);
    const YAML::Node seq = child(map, key);
    expect_seq(seq, p);
    for (size_t i = 0; i < seq.size(); ++i) one(seq[i], index(p, i));
  }

 private:
  static constexpr size_t kMaxNodes = 1'000'000;
  size_t visited_ = 0;
};

}  // namespace controlplane::yaml
