// xDS -> model conversion for ztunnel: istio.workload.Address (Workload | Service) and
// istio.security.Authorization protobufs into the plain types of common/model/model.h, with the
// same defaults local_config.cc applies (service account "default", trust domain
// "cluster.local", cluster id "Kubernetes", capacity 1, HBONE port 15008) and validation that
// rejects a resource with a reason instead of letting a half-understood one through:
//   * tunnel_protocol LEGACY_ISTIO_MTLS or any unknown enum value (every enum is checked);
//   * addresses that are not 4 or 16 bytes; CIDR prefix lengths beyond the family's width;
//   * ports above 65535; malformed "namespace/hostname" keys;
//   * a resource name that differs from the message's key (Workload uid, Service
//     "namespace/hostname", Authorization "namespace/name").
// Each rejection is a common::Error whose message is the reason (it ends up in the NACK).
// Fields the model has no place for (extensions, app_protocol, weighted waypoints, ...) are
// ignored, as upstream ignores what it does not use.
//
// Threading: pure functions. Protobuf types are forward-declared; only the .cc and tests
// include the generated headers.
#pragma once

#include <string_view>
#include <variant>

#include "common/result.h"
#include "common/model/model.h"
#include "common/model/xds/type_urls.h"

namespace istio::workload {
class Address;
class Workload;
class Service;
}  // namespace istio::workload
namespace istio::security {
class Authorization;
}  // namespace istio::security

namespace ztunnel {

// An Address resource is one or the other.
using AddressValue = std::variant<Workload, Service>;

common::Result<Workload> convert_workload(const istio::workload::Workload& w);
common::Result<Service> convert_service(const istio::workload::Service& s);
// Checks the name against the key of whichever variant is set.
common::Result<AddressValue> convert_address(const istio::workload::Address& a, std::string_view resource_name);
common::Result<Authorization> convert_authorization(const istio::security::Authorization& a,
                                                    std::string_view resource_name);

// Parse the serialized message (an Any's value) first, then convert.
common::Result<AddressValue> parse_address_resource(std::string_view resource_name, std::string_view bytes);
common::Result<Authorization> parse_authorization_resource(std::string_view resource_name, std::string_view bytes);

}  // namespace ztunnel
