// Reader for networking.istio.io Gateway (v1, v1beta1, v1alpha3), the ingress gateway's ports
// (ingress_resources.h). Called by the manifest loader (k8s_loader.cc) inside its per-object
// error handling; strict like the other routing kinds: an unknown key, a protocol other than
// HTTP/HTTPS, an HTTPS server without `tls.mode: SIMPLE` + `credentialName`, or TLS on HTTP is
// an error naming the field, and the Gateway is left out (everything else still compiles).
// Threading: a pure function; failures are thrown as yaml::FieldError.
#pragma once

#include <yaml-cpp/yaml.h>

#include "controlplane/ingress_resources.h"
#include "controlplane/k8s_resources.h"
#include "controlplane/yaml_reader.h"

namespace controlplane {

IstioGatewayObject read_istio_gateway(yaml::Reader& r, const YAML::Node& doc, const ObjectMeta& meta);

}  // namespace controlplane
