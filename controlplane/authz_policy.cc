#include "controlplane/authz_policy.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <vector>

namespace controlplane {
namespace {

using ztunnel::AuthzAction;
using ztunnel::AuthzClause;
using ztunnel::AuthzMatch;
using ztunnel::AuthzRule;
using ztunnel::Cidr;
using ztunnel::StringMatch;

// Fields of `from.source` / `to.operation` that only an L7 proxy can evaluate.
const std::set<std::string, std::less<>> kL7Fields = {
    "hosts",          "notHosts",         "methods",           "notMethods",
    "paths",          "notPaths",         "requestPrincipals", "notRequestPrincipals",
    "remoteIpBlocks", "notRemoteIpBlocks"};

// `when` keys ztunnel can evaluate (istiod's list).
const std::set<std::string, std::less<>> kL4WhenKeys = {"source.ip", "source.namespace", "source.principal",
                                                        "destination.ip", "destination.port"};

std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

// Translates one Istio rule. Collects what it had to leave out so the caller can report it
// once per rule with the policy's action in mind.
class RuleTranslator {
 public:
  RuleTranslator(const AuthorizationPolicyObject& policy, AuthzAction action, std::string path, Diagnostics& diags)
      : policy_(policy), action_(action), path_(std::move(path)), diags_(diags) {}

  // nullopt: an ALLOW rule that cannot be enforced and is therefore omitted.
  std::optional<AuthzRule> translate(const PolicyRule& rule) {
    AuthzRule out;

    // `to`: one clause, entries OR-ed.
    {
      AuthzClause clause;
      bool any = false;
      for (size_t j = 0; j < rule.to.size(); ++j) {
        const std::string p = path_ + ".to[" + std::to_string(j) + "].operation";
        AuthzMatch m;
        for (const auto& [key, values] : rule.to[j].fields) {
          const std::string fp = p + "." + key;
          if (kL7Fields.count(key)) {
            l7(fp);
          } else if (key == "ports") {
            ports(values, fp, m.destination_ports);
          } else if (key == "notPorts") {
            ports(values, fp, m.not_destination_ports);
          }
        }
        if (m.empty()) any = true;
        clause.push_back(std::move(m));
      }
      if (!rule.to.empty() && !any) out.push_back(std::move(clause));
    }

    // `from`: one clause, entries OR-ed.
    {
      AuthzClause clause;
      bool any = false;
      for (size_t j = 0; j < rule.from.size(); ++j) {
        const std::string p = path_ + ".from[" + std::to_string(j) + "].source";
        AuthzMatch m;
        for (const auto& [key, values] : rule.from[j].fields) {
          const std::string fp = p + "." + key;
          if (kL7Fields.count(key)) {
            l7(fp);
          } else if (key == "principals") {
            principals(values, fp, m.principals);
          } else if (key == "notPrincipals") {
            principals(values, fp, m.not_principals);
          } else if (key == "namespaces") {
            globs(values, m.namespaces);
          } else if (key == "notNamespaces") {
            globs(values, m.not_namespaces);
          } else if (key == "ipBlocks") {
            cidrs(values, fp, m.source_ips);
          } else if (key == "notIpBlocks") {
            cidrs(values, fp, m.not_source_ips);
          } else if (key == "serviceAccounts") {
            service_accounts(values, fp, m.service_accounts);
          } else if (key == "notServiceAccounts") {
            service_accounts(values, fp, m.not_service_accounts);
          }
        }
        if (m.empty()) any = true;
        clause.push_back(std::move(m));
      }
      if (!rule.from.empty() && !any) out.push_back(std::move(clause));
    }

    // `when`: one clause per condition (conditions are AND-ed).
    for (size_t j = 0; j < rule.when.size(); ++j) {
      const PolicyCondition& c = rule.when[j];
      const std::string p = path_ + ".when[" + std::to_string(j) + "]";
      if (!kL4WhenKeys.count(c.key)) {
        l7(p + " (key " + c.key + ")");
        continue;
      }
      AuthzMatch m;
      condition(c.key, c.values, p + ".values", m, false);
      condition(c.key, c.not_values, p + ".notValues", m, true);
      if (!m.empty()) out.push_back(AuthzClause{std::move(m)});
    }

    report();
    if (action_ == AuthzAction::Allow && (!l7_.empty() || !invalid_.empty())) return std::nullopt;
    return out;
  }

 private:
  void l7(const std::string& field) { l7_.push_back(field); }

  // Records an unusable value. Like an L7 field, the whole field is then left out (for a
  // DENY that broadens the rule; an ALLOW rule is omitted anyway).
  void invalid(const std::string& field, const std::string& what) {
    invalid_.push_back(field);
    diags_.push_back(
        {Severity::Error, policy_.src.file, policy_.src.object, field,
         what + (action_ == AuthzAction::Allow ? "; this ALLOW rule is omitted (matches nothing)"
                                               : "; the constraint is dropped from this DENY rule (denies more)")});
  }

  void ports(const std::vector<std::string>& values, const std::string& fp, std::vector<uint16_t>& out) {
    std::vector<uint16_t> parsed;
    for (size_t k = 0; k < values.size(); ++k) {
      auto port = parse_port(values[k]);
      if (!port) {
        invalid(fp + "[" + std::to_string(k) + "]", "invalid port '" + values[k] + "'");
        return;
      }
      parsed.push_back(*port);
    }
    out = std::move(parsed);
  }

  void cidrs(const std::vector<std::string>& values, const std::string& fp, std::vector<Cidr>& out) {
    std::vector<Cidr> parsed;
    for (size_t k = 0; k < values.size(); ++k) {
      auto c = Cidr::parse(values[k]);
      if (!c) {
        invalid(fp + "[" + std::to_string(k) + "]", "invalid IP or CIDR '" + values[k] + "'");
        return;
      }
      parsed.push_back(*c);
    }
    out = std::move(parsed);
  }

  static void globs(const std::vector<std::string>& values, std::vector<StringMatch>& out) {
    for (const auto& v : values) out.push_back(string_match_from_glob(v));
  }

  void principals(const std::vector<std::string>& values, const std::string& fp, std::vector<StringMatch>& out) {
    for (size_t k = 0; k < values.size(); ++k) {
      // Principals are written without the scheme; ztunnel compares against the identity
      // with "spiffe://" stripped, so a value with the scheme can never match.
      if (values[k].rfind("spiffe://", 0) == 0) {
        diags_.push_back({Severity::Warning, policy_.src.file, policy_.src.object, fp + "[" + std::to_string(k) + "]",
                          "principal '" + values[k] +
                              "' includes 'spiffe://'; principals are written without it, so this "
                              "value never matches"});
      }
    }
    globs(values, out);
  }

  void service_accounts(const std::vector<std::string>& values, const std::string& fp,
                        std::vector<ztunnel::ServiceAccountMatch>& out) {
    std::vector<ztunnel::ServiceAccountMatch> parsed;
    for (size_t k = 0; k < values.size(); ++k) {
      const std::string& v = values[k];
      const auto slash = v.find('/');
      ztunnel::ServiceAccountMatch m;
      if (slash == std::string::npos) {
        m = {policy_.meta.ns, v};  // a bare name is in the policy's namespace
      } else {
        m = {v.substr(0, slash), v.substr(slash + 1)};
      }
      if (m.ns.empty() || m.service_account.empty() || m.service_account.find('/') != std::string::npos) {
        invalid(fp + "[" + std::to_string(k) + "]",
                "invalid service account '" + v + "' (expected 'name' or 'namespace/name')");
        return;
      }
      parsed.push_back(std::move(m));
    }
    out = std::move(parsed);
  }

  void condition(const std::string& key, const std::vector<std::string>& values, const std::string& fp, AuthzMatch& m,
                 bool negated) {
    if (values.empty()) return;
    if (key == "source.ip") {
      cidrs(values, fp, negated ? m.not_source_ips : m.source_ips);
    } else if (key == "destination.ip") {
      cidrs(values, fp, negated ? m.not_destination_ips : m.destination_ips);
    } else if (key == "destination.port") {
      ports(values, fp, negated ? m.not_destination_ports : m.destination_ports);
    } else if (key == "source.namespace") {
      globs(values, negated ? m.not_namespaces : m.namespaces);
    } else if (key == "source.principal") {
      principals(values, fp, negated ? m.not_principals : m.principals);
    }
  }

  void report() {
    if (l7_.empty()) return;
    std::string fields;
    for (const auto& f : l7_) {
      const auto dot = f.rfind('.');
      if (!fields.empty()) fields += ", ";
      fields += dot == std::string::npos ? f : f.substr(dot + 1);
    }
    diags_.push_back({Severity::Warning, policy_.src.file, policy_.src.object, l7_.front(),
                      "ztunnel cannot enforce HTTP attributes (" + fields + "); use a waypoint for them. " +
                          (action_ == AuthzAction::Allow
                               ? "This ALLOW rule is omitted (matches nothing): more restrictive than written"
                               : "This DENY rule is enforced without them: more restrictive than written")});
  }

  const AuthorizationPolicyObject& policy_;
  AuthzAction action_;
  std::string path_;
  Diagnostics& diags_;
  std::vector<std::string> l7_;
  std::vector<std::string> invalid_;
};

}  // namespace

StringMatch string_match_from_glob(std::string_view v) {
  StringMatch m;
  if (v == "*") {
    m.kind = StringMatch::Kind::Presence;
  } else if (!v.empty() && v.front() == '*') {
    m.kind = StringMatch::Kind::Suffix;
    m.value = std::string(v.substr(1));
  } else if (!v.empty() && v.back() == '*') {
    m.kind = StringMatch::Kind::Prefix;
    m.value = std::string(v.substr(0, v.size() - 1));
  } else {
    m.kind = StringMatch::Kind::Exact;
    m.value = std::string(v);
  }
  return m;
}

std::optional<ztunnel::Authorization> translate_policy(const AuthorizationPolicyObject& policy,
                                                       std::string_view root_namespace, Diagnostics& diags) {
  if (policy.has_target_ref) {
    diags.push_back({Severity::Info, policy.src.file, policy.src.object, "spec.targetRef",
                     "policy is bound to a waypoint (targetRef); not sent to ztunnel"});
    return std::nullopt;
  }
  if (policy.action != "ALLOW" && policy.action != "DENY") {
    diags.push_back({Severity::Info, policy.src.file, policy.src.object, "spec.action",
                     "action " + policy.action + " is not enforced by ztunnel; policy ignored"});
    return std::nullopt;
  }

  ztunnel::Authorization out;
  out.name = policy.meta.name;
  out.ns = policy.meta.ns;
  out.action = policy.action == "DENY" ? AuthzAction::Deny : AuthzAction::Allow;
  if (policy.selector) {
    out.scope = ztunnel::AuthzScope::WorkloadSelector;
  } else {
    out.scope = policy.meta.ns == root_namespace ? ztunnel::AuthzScope::Global : ztunnel::AuthzScope::Namespace;
  }

  for (size_t i = 0; i < policy.rules.size(); ++i) {
    const std::string path = "spec.rules[" + std::to_string(i) + "]";
    RuleTranslator t(policy, out.action, path, diags);
    auto rule = t.translate(policy.rules[i]);
    if (!rule) continue;
    if (rule->empty() && out.action == AuthzAction::Deny &&
        !(policy.rules[i].from.empty() && policy.rules[i].to.empty() && policy.rules[i].when.empty())) {
      diags.push_back({Severity::Warning, policy.src.file, policy.src.object, path,
                       "after removing what ztunnel cannot enforce, this DENY rule matches every "
                       "connection"});
    }
    out.rules.push_back(std::move(*rule));
  }
  if (out.action == AuthzAction::Allow && out.rules.empty() && !policy.rules.empty()) {
    diags.push_back({Severity::Warning, policy.src.file, policy.src.object, "spec.rules",
                     "no rule of this ALLOW policy can be enforced by ztunnel: it matches nothing, "
                     "so its workloads only accept what another ALLOW policy admits"});
  }
  return out;
}

}  // namespace controlplane
