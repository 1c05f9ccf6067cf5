// Reader for networking.istio.io Gateway (v1, v1beta1, v1alpha3), the ingress gateway's ports
// (ingress_resources.h). Called by the manifest loader (k8s_loader.cc) inside its per-object
// error handling; strict like the other routing kinds: an unknown key, a protocol other than
// HTTP/HTTPS, an HTTPS server without `tls.mode: SIMPLE` + `credentialName`, or TLS on HTTP is
// an error naming the field, and the Gateway is left out (everything else still compiles).
// read_k8s_gateway_listeners reads the listeners of a gateway.networking.k8s.io Gateway of
// class `istio` as strictly: HTTP or HTTPS only, HTTPS with tls.mode Terminate and one
// certificateRef to a Secret in the Gateway's namespace, allowedRoutes From Same or All
// (Selector is refused naming the field); any error leaves the whole Gateway out.
// Threading: pure functions; failures are thrown as yaml::FieldError.
#pragma once

#include <yaml-cpp/yaml.h>

#include "controlplane/ingress_resources.h"
#include "controlplane/k8s_resources.h"
#include "controlplane/yaml_reader.h"

namespace controlplane {

IstioGatewayObject read_istio_gateway(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);
std::vector<K8sGatewayListener> read_k8s_gateway_listeners(yaml::Reader& r, const YAML::Node& spec,
                                                           const ObjectMeta& meta);

}  // namespace controlplane
