#include "controlplane/ratelimit_compile.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.pb.h"
#include "envoy/extensions/filters/http/ratelimit/v3/rate_limit.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"

namespace controlplane {

namespace route = envoy::config::route::v3;
namespace core = envoy::config::core::v3;

namespace {

void set_ms(google::protobuf::Duration* d, uint64_t ms) {
  d->set_seconds(static_cast<int64_t>(ms / 1000));
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
}

void fraction(core::RuntimeFractionalPercent* f, double pct, const char* key) {
  f->set_runtime_key(key);
  auto* d = f->mutable_default_value();
  if (pct == std::floor(pct)) {
    d->set_numerator(static_cast<uint32_t>(pct));
    d->set_denominator(envoy::type::v3::FractionalPercent::HUNDRED);
  } else {
    d->set_numerator(static_cast<uint32_t>(std::lround(pct * 10'000)));
    d->set_denominator(envoy::type::v3::FractionalPercent::MILLION);
  }
}

envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit local_config(const RlLocal& l) {
  envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit m;
  m.set_stat_prefix(l.stat_prefix);
  auto* tb = m.mutable_token_bucket();
  tb->set_max_tokens(l.max_tokens);
  tb->mutable_tokens_per_fill()->set_value(l.tokens_per_fill);
  set_ms(tb->mutable_fill_interval(), l.fill_interval_ms);
  fraction(m.mutable_filter_enabled(), l.enabled_percent, "local_rate_limit_enabled");
  fraction(m.mutable_filter_enforced(), l.enforced_percent, "local_rate_limit_enforced");
  for (const auto& [k, v] : l.response_headers) {
    auto* h = m.add_response_headers_to_add();
    h->mutable_header()->set_key(k);
    h->mutable_header()->set_value(v);
    h->set_append_action(core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  }
  if (l.x_ratelimit_headers)
    m.set_enable_x_ratelimit_headers(envoy::extensions::common::ratelimit::v3::DRAFT_VERSION_03);
  return m;
}

envoy::extensions::filters::http::ratelimit::v3::RateLimit global_config(const RlGlobal& g, const std::string& cluster,
                                                                         const std::string& authority) {
  envoy::extensions::filters::http::ratelimit::v3::RateLimit m;
  m.set_domain(g.domain);
  set_ms(m.mutable_timeout(), g.timeout_ms);
  m.set_failure_mode_deny(g.failure_mode_deny);
  auto* rls = m.mutable_rate_limit_service();
  rls->set_transport_api_version(core::V3);
  rls->mutable_grpc_service()->mutable_envoy_grpc()->set_cluster_name(cluster);
  rls->mutable_grpc_service()->mutable_envoy_grpc()->set_authority(authority);
  if (g.x_ratelimit_headers)
    m.set_enable_x_ratelimit_headers(envoy::extensions::filters::http::ratelimit::v3::RateLimit::DRAFT_VERSION_03);
  return m;
}

void add_rate_limits(google::protobuf::RepeatedPtrField<route::RateLimit>* out, const RlGlobal& g) {
  for (const auto& d : g.descriptors) {
    auto* rl = out->Add();
    for (const auto& a : d) {
      auto* act = rl->add_actions();
      switch (a.kind) {
        case RlAction::Kind::RemoteAddress:
          act->mutable_remote_address();
          break;
        case RlAction::Kind::DestinationCluster:
          act->mutable_destination_cluster();
          break;
        case RlAction::Kind::RequestHeaders:
          act->mutable_request_headers()->set_header_name(a.header);
          act->mutable_request_headers()->set_descriptor_key(a.key);
          act->mutable_request_headers()->set_skip_if_absent(a.skip_if_absent);
          break;
        case RlAction::Kind::GenericKey:
          act->mutable_generic_key()->set_descriptor_value(a.value);
          act->mutable_generic_key()->set_descriptor_key(a.key);
          break;
        case RlAction::Kind::HeaderValueMatch: {
          auto* m = act->mutable_header_value_match();
          m->set_descriptor_value(a.value);
          m->set_descriptor_key(a.key);
          if (!a.expect_match) m->mutable_expect_match()->set_value(false);
          for (const auto& [name, sm] : a.headers) {
            auto* h = m->add_headers();
            h->set_name(name);
            if (!sm) {
              h->set_present_match(true);
            } else if (sm->kind == VsStringMatch::Kind::Prefix) {
              h->mutable_string_match()->set_prefix(sm->value);
            } else {
              h->mutable_string_match()->set_exact(sm->value);
            }
          }
          break;
        }
      }
    }
  }
}

bool targets(const RateLimitPolicyObject& p, const std::string& gw_ns, const std::string& gw_name,
             const std::string& svc_ns, const std::string& svc_name) {
  for (const auto& t : p.target_refs) {
    if (t.kind == "Gateway" && p.ns == gw_ns && t.name == gw_name) return true;
    if (t.kind == "Service" && p.ns == svc_ns && t.name == svc_name) return true;
  }
  return false;
}

}  // namespace

std::string rls_static_cluster_name(const std::string& ip, uint16_t port) {
  return "ratelimit|" + std::to_string(port) + "||" + ip;
}

envoy::config::cluster::v3::Cluster rls_static_cluster(const std::string& name, const std::string& ip, uint16_t port) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.set_type(envoy::config::cluster::v3::Cluster::STATIC);
  c.mutable_connect_timeout()->set_seconds(1);
  auto* la = c.mutable_load_assignment();
  la->set_cluster_name(name);
  auto* sa = la->add_endpoints()->add_lb_endpoints()->mutable_endpoint()->mutable_address()->mutable_socket_address();
  sa->set_address(ip);
  sa->set_port_value(port);
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions o;
  o.mutable_explicit_http_config()->mutable_http2_protocol_options();
  (*c.mutable_typed_extension_protocol_options())["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].PackFrom(o);
  return c;
}

void attach_rate_limits(route::RouteConfiguration& rc, const std::vector<RateLimitPolicyObject>& policies,
                        const std::string& gateway_ns, const std::string& gateway_name, const std::string& svc_ns,
                        const std::string& svc_name, const RlsClusterFn& rls_cluster, Diagnostics& diags) {
  std::vector<const RateLimitPolicyObject*> applicable;
  for (const auto& p : policies) {
    if (targets(p, gateway_ns, gateway_name, svc_ns, svc_name)) applicable.push_back(&p);
  }
  if (applicable.empty()) return;
  std::sort(applicable.begin(), applicable.end(),
            [](auto* a, auto* b) { return std::tie(a->ns, a->name, a->kind) < std::tie(b->ns, b->name, b->kind); });
  // Policies apply in (namespace, name) order; where an earlier one already configured the same
  // place (the virtual host, or a route) for the same filter, the later one is skipped there
  // with a warning. Route-scoped and virtual-host-wide configs coexist: the route's wins for its
  // requests, as in Envoy.
  auto apply = [&](const RateLimitPolicyObject& p, const std::string& filter, const google::protobuf::Any& any,
                   const RlGlobal* global) {
    bool clashed = false;
    auto set = [&](google::protobuf::Map<std::string, google::protobuf::Any>* tpfc) {
      if (tpfc->count(filter)) {
        clashed = true;
        return false;
      }
      (*tpfc)[filter] = any;
      return true;
    };
    for (auto& vh : *rc.mutable_virtual_hosts()) {
      if (p.routes.empty()) {
        if (set(vh.mutable_typed_per_filter_config()) && global) add_rate_limits(vh.mutable_rate_limits(), *global);
        continue;
      }
      std::set<std::string> seen;
      for (auto& r : *vh.mutable_routes()) {
        if (std::find(p.routes.begin(), p.routes.end(), r.name()) == p.routes.end()) continue;
        seen.insert(r.name());
        if (set(r.mutable_typed_per_filter_config()) && global && r.has_route())
          add_rate_limits(r.mutable_route()->mutable_rate_limits(), *global);
      }
      for (const auto& name : p.routes) {
        if (!seen.count(name))
          diags.push_back({Severity::Warning, p.file, p.object, "spec.routes",
                           "no route named '" + name + "' for " + svc_ns + "/" + svc_name});
      }
    }
    if (clashed)
      diags.push_back({Severity::Warning, p.file, p.object, "spec",
                       std::string(global ? "global" : "local") + " rate limit for " + svc_ns + "/" + svc_name +
                           " not applied where an earlier policy (namespace/name order) already sets one"});
  };
  for (const auto* p : applicable) {
    if (p->local) {
      google::protobuf::Any any;
      any.PackFrom(local_config(*p->local));
      apply(*p, "envoy.filters.http.local_ratelimit", any, nullptr);
    }
    if (p->global) {
      const std::string cluster = rls_cluster(*p, *p->global);
      if (cluster.empty()) continue;  // rls_cluster reported why
      google::protobuf::Any any;
      any.PackFrom(global_config(*p->global, cluster, p->global->service_host));
      apply(*p, "envoy.filters.http.ratelimit", any, &*p->global);
    }
  }
}

}  // namespace controlplane
