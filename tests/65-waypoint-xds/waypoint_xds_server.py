#!/usr/bin/env python3
"""waypoint_xds_server.py - an independent delta-ADS server (python grpcio, message classes
compiled by protoc from OUR proto/ files) driving the waypoint's xDS config source (run by
suite.sh as build/bin/waypoint-xds-probe with XDS_ADDRESS pointing here).

Checks, on the wire:
  - the initial requests: one per type (Cluster, ClusterLoadAssignment, RouteConfiguration,
    istio.workload.Address), wildcard (empty subscribe list), no nonce, node id
    waypoint~<INSTANCE_IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local;
  - a Cluster response with one good cluster and one carrying health_checks (#8, not modelled)
    -> NACK echoing the nonce whose error_detail names the bad cluster and "unknown field #8";
  - endpoints -> ACK; a RouteConfiguration response with a good route, one whose RouteAction
    carries an unknown field #34 and one setting cluster_header (modelled, not implemented)
    -> one NACK naming both bad resources and the offending fields;
  - Address -> ACK; a later removal of the good route -> ACK.
suite.sh checks what the probe printed (snapshots, NACK lines). Prints PASS/FAIL lines.
"""
import time

from waypoint_ads import (ADDRESS_URL, CLA_URL, CLUSTER_URL, HOST, ROUTE_URL, W, await_reply, check, cla, cluster,
                          interop, response, serve_one_stream)

from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

C_MAIN = "inbound-vip|8080|http|" + HOST
C_DOG = "inbound-vip|8080|http/dog|" + HOST
R_MAIN = "inbound-vip|8080|http|" + HOST


def route_config(name, cluster_header=False, unknown_in_action=False):
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name="inbound|http|8080", domains=["*"])
    r = vh.routes.add(name="canary")
    r.match.prefix = "/"
    action = route_pb2.RouteAction()
    if cluster_header:
        action.cluster_header = "x-cluster"
    else:
        action.weighted_clusters.clusters.add(name=C_MAIN).weight.value = 90
        action.weighted_clusters.clusters.add(name=C_DOG).weight.value = 10
    action.timeout.seconds = 2
    raw = action.SerializeToString()
    if unknown_in_action:
        raw += bytes([0x90, 0x02, 0x01])  # field 34 (internal_redirect_policy upstream), varint 1
    r.route.CopyFrom(route_pb2.RouteAction.FromString(raw))  # unknown fields survive the copy
    fault = fault_pb2.HTTPFault()
    fault.abort.http_status = 503
    fault.abort.percentage.numerator = 100
    r.typed_per_filter_config["envoy.filters.http.fault"].CopyFrom(
        interop.pack_any(fault, "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"))
    return rc


def raw_response(type_url, nonce, items):
    """items: (name, version, serialized bytes) - for resources carrying unknown fields."""
    r = interop.DeltaResp(type_url=type_url, nonce=nonce)
    for name, version, raw in items:
        res = r.resources.add(name=name, version=version)
        res.resource.type_url = type_url
        res.resource.value = raw
    return r


def main():
    a, srv, st = serve_one_stream("the waypoint config source")
    if st is None:
        return
    initial = {}
    for _ in range(4):
        r = st.recv(10)
        if r is None:
            break
        initial[r.type_url] = r
    p = []
    for t in (CLUSTER_URL, CLA_URL, ROUTE_URL, ADDRESS_URL):
        r = initial.get(t)
        if r is None:
            p.append("no initial request for " + t)
            continue
        if r.node.id and r.node.id != a.node_id:
            p.append("node id %r, want %r" % (r.node.id, a.node_id))
        if list(r.resource_names_subscribe):
            p.append("%s: subscribe list %r, want wildcard (empty)" % (t, list(r.resource_names_subscribe)))
        if r.response_nonce:
            p.append("%s: initial request carries a nonce" % t)
    if not any(r.node.id == a.node_id for r in initial.values()):
        p.append("no request carries node id " + a.node_id)
    check("initial requests: four types, wildcard, waypoint node id", p)

    bad_cluster = cluster("bad-cluster", 10).SerializeToString() + bytes([0x42, 0x00])  # health_checks (#8), empty
    st.send(raw_response(CLUSTER_URL, "c1", [(C_MAIN, "v1", cluster(C_MAIN, 10).SerializeToString()),
                                             (C_DOG, "v1", cluster(C_DOG, 10).SerializeToString()),
                                             ("bad-cluster", "v1", bad_cluster)]))
    r, p = await_reply(st, CLUSTER_URL, "c1", want_nack=True)
    if r is not None and r.HasField("error_detail"):
        msg = r.error_detail.message
        if "bad-cluster" not in msg or "unknown field #8" not in msg:
            p.append("error_detail does not name bad-cluster and field #8: %r" % msg)
        if C_MAIN in msg:
            p.append("the good cluster is named in the NACK: %r" % msg)
    check("Cluster with an unmodelled field (#8 health_checks) is NACKed by name", p)

    st.send(response(CLA_URL, "e1", [(C_MAIN, "v1", cla(C_MAIN, "10.0.1.1", 80))]))
    _, p = await_reply(st, CLA_URL, "e1", want_nack=False)
    check("ClusterLoadAssignment is ACKed", p)

    st.send(raw_response(ROUTE_URL, "r1", [
        (R_MAIN, "v1", route_config(R_MAIN).SerializeToString()),
        ("bad-unknown", "v1", route_config("bad-unknown", unknown_in_action=True).SerializeToString()),
        ("bad-header", "v1", route_config("bad-header", cluster_header=True).SerializeToString())]))
    r, p = await_reply(st, ROUTE_URL, "r1", want_nack=True)
    if r is not None and r.HasField("error_detail"):
        msg = r.error_detail.message
        for want in ("bad-unknown", "unknown field #34 (envoy.config.route.v3.RouteAction)", "bad-header",
                     "cluster_header"):
            if want not in msg:
                p.append("error_detail lacks %r: %r" % (want, msg))
        if R_MAIN + ":" in msg:
            p.append("the good route is named in the NACK: %r" % msg)
    check("RouteConfigurations with an unknown field and an unimplemented field are NACKed naming both", p)

    w = W.Workload(uid="Kubernetes//Pod/demo/cat", name="cat", namespace="demo", service_account="calc",
                   node="node-a", tunnel_protocol=W.HBONE, trust_domain="cluster.local", canonical_name="calc")
    w.addresses.append(interop.ip4("10.0.1.1"))
    st.send(response(ADDRESS_URL, "a1", [("Kubernetes//Pod/demo/cat", "v1", W.Address(workload=w))]))
    _, p = await_reply(st, ADDRESS_URL, "a1", want_nack=False)
    check("istio.workload.Address is ACKed", p)

    # Let the probe print its synced snapshot, then remove the good route.
    time.sleep(1.0)
    st.send(response(ROUTE_URL, "r2", removed=[R_MAIN]))
    _, p = await_reply(st, ROUTE_URL, "r2", want_nack=False)
    check("removing a route is ACKed", p)
    time.sleep(1.0)
    print("DONE", flush=True)
    srv.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        interop.finish(interop.exit_code())
