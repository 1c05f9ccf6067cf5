#include "cni/kube_metadata.h"

#include <nlohmann/json.hpp>

namespace cni {

namespace {

using common::make_error;
using common::kube::Informer;
using common::kube::InformerOptions;
using common::kube::ResourceKind;
using nlohmann::json;

const ResourceKind kNamespaces{"", "v1", "namespaces", "Namespace", false};
const ResourceKind kPods{"", "v1", "pods", "Pod", true};

common::Result<Labels> labels_of(const json& meta, const std::string& where) {
  Labels out;
  auto it = meta.find("labels");
  if (it == meta.end() || it->is_null()) return out;
  if (!it->is_object()) return make_error(where + ".metadata.labels: not an object");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return make_error(where + ".metadata.labels." + k + ": not a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

common::Result<PodMetadata> KubeMetadataSource::parse_pod(const std::string& text) {
  json p = json::parse(text, nullptr, false);
  if (p.is_discarded() || !p.is_object()) return make_error("Pod: not a JSON object");
  auto meta = p.find("metadata");
  if (meta == p.end() || !meta->is_object()) return make_error("Pod: metadata: missing");
  PodMetadata m;
  m.name = meta->value("name", "");
  m.ns = meta->value("namespace", "");
  if (m.name.empty() || m.ns.empty()) return make_error("Pod: metadata.name/namespace: missing");
  const std::string where = "Pod " + m.ns + "/" + m.name;
  if (auto uid = meta->find("uid"); uid != meta->end() && uid->is_string()) m.uid = uid->get<std::string>();
  auto labels = labels_of(*meta, where);
  if (!labels.ok()) return make_error(labels.error());
  m.pod_labels = std::move(*labels);
  if (auto spec = p.find("spec"); spec != p.end() && spec->is_object()) {
    if (auto sa = spec->find("serviceAccountName"); sa != spec->end() && !sa->is_null()) {
      if (!sa->is_string()) return make_error(where + ".spec.serviceAccountName: not a string");
      if (!sa->get<std::string>().empty()) m.service_account = sa->get<std::string>();
    }
    if (auto hn = spec->find("hostNetwork"); hn != spec->end() && !hn->is_null()) {
      if (!hn->is_boolean()) return make_error(where + ".spec.hostNetwork: not a boolean");
      m.host_network = hn->get<bool>();
    }
  }
  return m;
}

common::Result<Labels> KubeMetadataSource::parse_namespace_labels(const std::string& text) {
  json n = json::parse(text, nullptr, false);
  if (n.is_discarded() || !n.is_object()) return make_error("Namespace: not a JSON object");
  auto meta = n.find("metadata");
  if (meta == n.end() || !meta->is_object()) return make_error("Namespace: metadata: missing");
  return labels_of(*meta, "Namespace " + meta->value("name", std::string("?")));
}

KubeMetadataSource::KubeMetadataSource(KubeMetadataOptions options) : opt_(std::move(options)), client_(opt_.config) {}

common::Result<std::shared_ptr<KubeMetadataSource>> KubeMetadataSource::start(KubeMetadataOptions options) {
  if (options.node_name.empty()) return make_error("kube metadata: the node name is required (NODE_NAME)");
  std::shared_ptr<KubeMetadataSource> src(new KubeMetadataSource(std::move(options)));
  KubeMetadataSource* self = src.get();
  auto informer = [self](ResourceKind kind, std::string field_selector) {
    InformerOptions io;
    io.kind = std::move(kind);
    io.field_selector = std::move(field_selector);
    io.watch_timeout_seconds = self->opt_.watch_timeout_seconds;
    io.backoff_initial = self->opt_.backoff_initial;
    io.backoff_max = self->opt_.backoff_max;
    Informer::Callbacks cb{[self] { self->changed(); },
                           [self] {
                             { std::lock_guard<std::mutex> g(self->sync_mu_); }
                             self->sync_cv_.notify_all();
                           }};
    return std::make_unique<Informer>(self->client_, std::move(io), std::move(cb));
  };
  self->namespaces_ = informer(kNamespaces, "");
  self->pods_ = informer(kPods, "spec.nodeName=" + self->opt_.node_name);
  self->namespaces_->start();
  self->pods_->start();
  std::unique_lock<std::mutex> g(self->sync_mu_);
  const bool ok = self->sync_cv_.wait_for(g, self->opt_.initial_sync_timeout,
                                          [&] { return self->namespaces_->synced() && self->pods_->synced(); });
  if (!ok) {
    std::string missing = !self->namespaces_->synced() ? "namespaces" : "";
    if (!self->pods_->synced()) missing += std::string(missing.empty() ? "" : ", ") + "pods";
    g.unlock();
    src->stop();
    return make_error("kube metadata: " + self->opt_.config.url() + ": no initial list within " +
                      std::to_string(self->opt_.initial_sync_timeout.count()) + " s for: " + missing);
  }
  return src;
}

KubeMetadataSource::~KubeMetadataSource() {
  stop();
}

void KubeMetadataSource::stop() {
  if (namespaces_) namespaces_->stop();
  if (pods_) pods_->stop();
}

std::string KubeMetadataSource::describe() const {
  return "the Kubernetes API at " + opt_.config.url() + " (pods of node " + opt_.node_name + ")";
}

void KubeMetadataSource::set_on_change(std::function<void()> cb) {
  std::lock_guard<std::mutex> g(cb_mu_);
  on_change_ = std::move(cb);
}

void KubeMetadataSource::changed() {
  std::lock_guard<std::mutex> g(cb_mu_);
  if (on_change_) on_change_();
}

common::Result<Labels> KubeMetadataSource::namespace_labels(const std::string& ns) {
  if (auto obj = namespaces_->get(ns)) return parse_namespace_labels(obj->json);
  auto r = client_.request("GET", kNamespaces.collection_path() + "/" + ns, {}, {}, std::chrono::seconds(10));
  if (!r.ok()) return make_error("namespace " + ns + ": " + r.error());
  if (r->status != 200) return make_error("namespace " + ns + ": " + common::kube::status_message(*r));
  return parse_namespace_labels(r->body);
}

common::Result<PodMetadata> KubeMetadataSource::lookup(const std::string& ns, const std::string& name) {
  common::Result<PodMetadata> m = make_error("");
  if (auto obj = pods_->get(ns + "/" + name)) {
    m = parse_pod(obj->json);
  } else {
    auto r = client_.request("GET", kPods.namespace_path(ns) + "/" + name, {}, {}, std::chrono::seconds(10));
    if (!r.ok()) return make_error("pod " + ns + "/" + name + ": " + r.error());
    if (r->status != 200) return make_error("pod " + ns + "/" + name + ": " + common::kube::status_message(*r));
    m = parse_pod(r->body);
  }
  if (!m.ok()) return m;
  auto labels = namespace_labels(ns);
  if (!labels.ok()) return make_error(labels.error());
  m->namespace_labels = std::move(*labels);
  return m;
}

std::map<std::string, PodMetadata> KubeMetadataSource::known_pods() {
  std::map<std::string, PodMetadata> out;
  for (const auto& [key, obj] : pods_->objects()) {
    auto m = parse_pod(obj.json);
    if (!m.ok()) continue;
    if (auto ns = namespaces_->get(m->ns)) {
      if (auto l = parse_namespace_labels(ns->json); l.ok()) m->namespace_labels = std::move(*l);
    }
    out.emplace(key, std::move(*m));
  }
  return out;
}

}  // namespace cni
