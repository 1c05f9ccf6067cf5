#include "controlplane/telemetry.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>

#include "controlplane/yaml_reader.h"

namespace controlplane {

using yaml::fail;
using yaml::index;
using yaml::join;
using yaml::Reader;

namespace {

double percent(Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string s = r.str(n, path);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0.0 && v <= 100.0))
    fail(path, "expected a percentage in [0, 100], got '" + s + "'");
  return v;
}

TelemetryCustomTag custom_tag(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path, {"literal", "environment", "header"});
  if (n.size() != 1) fail(path, "exactly one of literal, environment, header is required");
  TelemetryCustomTag t;
  if (Reader::present(n, "literal")) {
    const std::string p = join(path, "literal");
    const YAML::Node l = Reader::child(n, "literal");
    r.expect_strict_map(l, p, {"value"});
    r.opt_str(l, p, "value", t.value);
  } else {
    const bool header = Reader::present(n, "header");
    const std::string p = join(path, header ? "header" : "environment");
    const YAML::Node b = Reader::child(n, header ? "header" : "environment");
    r.expect_strict_map(b, p, {"name", "defaultValue"});
    r.opt_str(b, p, "name", t.name);
    if (t.name.empty()) fail(join(p, "name"), "required");
    r.opt_str(b, p, "defaultValue", t.default_value);
    t.kind = header ? TelemetryCustomTag::Kind::Header : TelemetryCustomTag::Kind::Environment;
  }
  return t;
}

TelemetryTracing tracing_entry(Reader& r, const YAML::Node& n, const std::string& path) {
  r.expect_strict_map(n, path,
                      {"match", "providers", "randomSamplingPercentage", "disableSpanReporting", "customTags",
                       "useRequestIdForTraceSampling", "enableIstioTags"});
  TelemetryTracing t;
  t.path = path;
  if (Reader::present(n, "match")) {
    const std::string mp = join(path, "match");
    const YAML::Node m = Reader::child(n, "match");
    r.expect_strict_map(m, mp, {"mode"});
    std::string mode;
    r.opt_str(m, mp, "mode", mode);
    if (mode == "CLIENT") {
      t.server = false;
    } else if (!mode.empty() && mode != "SERVER" && mode != "CLIENT_AND_SERVER") {
      fail(join(mp, "mode"), "expected CLIENT_AND_SERVER, CLIENT or SERVER, got '" + mode + "'");
    }
  }
  r.read_list(n, path, "providers", [&](const YAML::Node& p, const std::string& pp) {
    r.expect_strict_map(p, pp, {"name"});
    std::string name;
    r.opt_str(p, pp, "name", name);
    if (name.empty()) fail(join(pp, "name"), "required");
    t.providers.push_back(std::move(name));
  });
  if (Reader::present(n, "randomSamplingPercentage"))
    t.random_sampling_percentage =
        percent(r, Reader::child(n, "randomSamplingPercentage"), join(path, "randomSamplingPercentage"));
  if (Reader::present(n, "disableSpanReporting"))
    t.disable_span_reporting = r.boolean(Reader::child(n, "disableSpanReporting"), join(path, "disableSpanReporting"));
  if (Reader::present(n, "useRequestIdForTraceSampling"))
    fail(join(path, "useRequestIdForTraceSampling"), "not implemented");
  if (Reader::present(n, "customTags")) {
    const std::string cp = join(path, "customTags");
    const YAML::Node c = Reader::child(n, "customTags");
    r.expect_map(c, cp);
    for (const auto& kv : c) {
      const std::string tag = r.str(kv.first, cp);
      if (tag.empty()) fail(cp, "a tag name must not be empty");
      t.custom_tags[tag] = custom_tag(r, kv.second, cp + "[" + tag + "]");
    }
  }
  return t;
}

// The Telemetry objects of one level, the first (name order) first.
enum class Level : uint8_t { Root, Namespace, Target };

bool at_level(const TelemetryObject& t, Level level, const std::string& ns, const std::string& kind,
              const std::string& name) {
  switch (level) {
    case Level::Root:
      return t.ns == kSystemNamespace && t.target_refs.empty() && !t.has_selector;
    case Level::Namespace:
      return t.ns == ns && ns != kSystemNamespace && t.target_refs.empty() && !t.has_selector;
    case Level::Target:
      if (t.ns != ns) return false;
      for (const auto& ref : t.target_refs) {
        if (ref.kind == kind && ref.name == name) return true;
      }
      return false;
  }
  return false;
}

void merge(ResolvedTracing& out, std::vector<std::string>& providers, const TelemetryObject& t) {
  for (const auto& e : t.tracing) {
    if (!e.server) continue;
    if (!e.providers.empty()) providers = e.providers;
    if (e.random_sampling_percentage) out.sampling_percent = *e.random_sampling_percentage;
    if (e.disable_span_reporting) out.report = !*e.disable_span_reporting;
    for (const auto& [k, v] : e.custom_tags) out.custom_tags[k] = v;
  }
}

}  // namespace

TelemetryObject read_telemetry(Reader& r, const YAML::Node& doc, const ObjectMeta& meta) {
  TelemetryObject t;
  t.name = meta.name;
  t.ns = meta.ns;
  if (!Reader::present(doc, "spec")) return t;
  const YAML::Node spec = Reader::child(doc, "spec");
  r.expect_strict_map(spec, "spec", {"selector", "targetRef", "targetRefs", "tracing", "metrics", "accessLogging"});
  t.has_selector = Reader::present(spec, "selector");
  auto ref = [&](const YAML::Node& n, const std::string& p) {
    r.expect_strict_map(n, p, {"group", "kind", "name", "namespace"});
    TelemetryTargetRef tr;
    r.opt_str(n, p, "group", tr.group);
    r.opt_str(n, p, "kind", tr.kind);
    r.opt_str(n, p, "name", tr.name);
    std::string ref_ns;
    r.opt_str(n, p, "namespace", ref_ns);
    if (!ref_ns.empty() && ref_ns != meta.ns) fail(join(p, "namespace"), "must be the Telemetry's own namespace");
    if (tr.kind != "Service" && tr.kind != "Gateway" && tr.kind != "ServiceEntry")
      fail(join(p, "kind"), "expected Service, ServiceEntry or Gateway, got '" + tr.kind + "'");
    if (tr.name.empty()) fail(join(p, "name"), "required");
    t.target_refs.push_back(std::move(tr));
  };
  if (Reader::present(spec, "targetRef")) ref(Reader::child(spec, "targetRef"), "spec.targetRef");
  r.read_list(spec, "spec", "targetRefs", ref);
  if (t.has_selector && !t.target_refs.empty()) fail("spec.selector", "selector and targetRefs are exclusive");
  r.read_list(spec, "spec", "tracing",
              [&](const YAML::Node& n, const std::string& p) { t.tracing.push_back(tracing_entry(r, n, p)); });
  return t;
}

std::optional<ResolvedTracing> resolve_tracing(const std::vector<TelemetryObject>& telemetries,
                                               const MeshConfigObject* mesh, const std::string& ns,
                                               const std::string& target_kind, const std::string& target_name) {
  ResolvedTracing out;
  if (mesh && mesh->default_tracing_sampling) out.sampling_percent = *mesh->default_tracing_sampling;
  std::vector<std::string> providers;
  if (mesh) providers = mesh->default_tracing_providers;
  bool any = false;
  for (Level level : {Level::Root, Level::Namespace, Level::Target}) {
    const TelemetryObject* first = nullptr;
    for (const auto& t : telemetries) {
      if (!at_level(t, level, ns, target_kind, target_name)) continue;
      if (!first || std::tie(t.ns, t.name) < std::tie(first->ns, first->name)) first = &t;
    }
    if (first) {
      merge(out, providers, *first);
      any = true;
    }
  }
  if (providers.empty()) return std::nullopt;  // Istio: no provider, no tracing config
  (void)any;
  const ExtensionProvider* p = mesh ? mesh->provider(providers.front()) : nullptr;
  if (!p || p->kind != ExtensionProvider::Kind::Zipkin) return std::nullopt;  // check_telemetries reports it
  out.provider = p;
  return out;
}

void check_telemetries(const std::vector<TelemetryObject>& telemetries, const MeshConfigObject* mesh,
                       Diagnostics& diags) {
  auto check_provider = [&](const std::string& file, const std::string& object, const std::string& field,
                            const std::string& name) {
    const ExtensionProvider* p = mesh ? mesh->provider(name) : nullptr;
    if (!p) {
      diags.push_back({Severity::Error, file, object, field,
                       "provider '" + name + "' is not in MeshConfig extensionProviders; tracing not configured"});
    } else if (p->kind != ExtensionProvider::Kind::Zipkin) {
      diags.push_back({Severity::Error, file, object, field,
                       "provider '" + name + "' is not a zipkin provider (only Zipkin tracing is implemented); "
                       "tracing not configured"});
    }
  };
  if (mesh && !mesh->default_tracing_providers.empty())
    check_provider(mesh->file, mesh->object, "data.mesh.defaultProviders.tracing[0]",
                   mesh->default_tracing_providers.front());
  std::map<std::tuple<std::string, std::string, std::string>, const TelemetryObject*> levels;
  std::vector<const TelemetryObject*> sorted;
  for (const auto& t : telemetries) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });
  for (const auto* t : sorted) {
    for (const auto& e : t->tracing) {
      for (size_t i = 0; i < e.providers.size(); ++i) {
        const std::string f = index(join(e.path, "providers"), i) + ".name";
        if (i == 0) {
          check_provider(t->file, t->object, f, e.providers[i]);
        } else {
          diags.push_back({Severity::Warning, t->file, t->object, f,
                           "only the first tracing provider is used (as istiod); ignored"});
        }
      }
    }
    if (t->has_selector) {
      diags.push_back({Severity::Warning, t->file, t->object, "spec.selector",
                       "selector is not honoured for waypoints or gateways (use targetRefs); Telemetry not applied"});
      continue;
    }
    std::vector<std::tuple<std::string, std::string, std::string>> keys;
    if (t->target_refs.empty()) {
      keys.emplace_back(t->ns, "", "");
    } else {
      for (const auto& r : t->target_refs) keys.emplace_back(t->ns, r.kind, r.name);
    }
    for (const auto& k : keys) {
      auto [it, inserted] = levels.emplace(k, t);
      if (!inserted)
        diags.push_back({Severity::Warning, t->file, t->object, "",
                         "another Telemetry (" + it->second->object + ") applies at the same level and wins; ignored"});
    }
  }
}

}  // namespace controlplane
