// Field-level admission of Envoy resources: "a field the waypoint does not implement is a NACK
// naming it". Two kinds of field are refused, wherever they sit in the message tree:
//   * unknown fields (a field number our protos do not model, kept by protobuf in the message's
//     UnknownFieldSet): named by message path and number, e.g.
//     "route.virtual_hosts[0].routes[2].route: unknown field #27 (envoy.config.route.v3.RouteAction)";
//   * modelled fields the waypoint does not implement (a deny-list, kNotImplemented in the .cc),
//     named by path and field name.
// Unknown fields known to be harmless for the waypoint are allowed by an explicit allow-list in
// the .cc (documented there with the reason each is harmless). Any payloads are NOT descended
// into here: the converter unpacks the ones it understands and validates them with this same
// function, and refuses every other type URL.
//
// Threading: pure functions over a message (protobuf reflection is thread-safe for reads).
#pragma once

#include <string>

namespace google::protobuf {
class Message;
}

namespace waypoint::xds {

// "" when the message is acceptable; otherwise the first offending field, prefixed by `path`
// (the resource kind, e.g. "route", "cluster").
std::string find_unsupported_field(const google::protobuf::Message& message, const std::string& path);

}  // namespace waypoint::xds
