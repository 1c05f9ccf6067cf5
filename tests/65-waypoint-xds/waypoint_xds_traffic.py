#!/usr/bin/env python3
"""waypoint_xds_traffic.py - an independent delta-ADS server (python grpcio, message classes
compiled by protoc from OUR proto/ files) driving the REAL waypoint binary with plain Envoy
resources, while suite.sh sends traffic through it (case C): the configuration the waypoint
routes by comes from this file alone, not from our controlplane.

Serves, one type at a time and each awaited as an ACK:
  - istio.workload.Address: the Service calc.demo (VIP 10.96.0.10, port 80 -> 8080);
  - Cluster: inbound-vip|80|http/a|<host> and .../http/b|<host> (EDS over ADS);
  - ClusterLoadAssignment: a -> 127.0.0.1:18080, b -> 127.0.0.1:18081 (not mesh workloads, so
    the waypoint reaches them over plain TCP);
  - RouteConfiguration inbound-vip|80|http|<host>: header x-version: b -> b, exact /direct ->
    a direct response, everything else -> a.
Prints CONFIGURED, then waits (bounded) for the file --phase2 to appear and sends:
  - a RouteConfiguration setting cluster_header (modelled, not implemented) -> must be NACKed
    naming the field, the running route kept;
  - a live edit of the good route (the default now goes to b) -> ACK; prints EDITED.
Then waits (bounded) for --done. PASS/FAIL lines as interop.check prints them.
"""
import os
import time

from waypoint_ads import (ADDRESS_URL, CLA_URL, CLUSTER_URL, HOST, ROUTE_URL, W, await_reply, check, cla, cluster,
                          interop, response, serve_one_stream)

from envoy.config.route.v3 import route_pb2

R_MAIN = "inbound-vip|80|http|" + HOST
C_A = "inbound-vip|80|http/a|" + HOST
C_B = "inbound-vip|80|http/b|" + HOST


def route_config(default_cluster, cluster_header=False):
    rc = route_pb2.RouteConfiguration(name=R_MAIN)
    vh = rc.virtual_hosts.add(name="inbound|http|80", domains=["*"])
    r = vh.routes.add(name="to-b")
    r.match.prefix = "/"
    h = r.match.headers.add(name="x-version")
    h.string_match.exact = "b"
    if cluster_header:
        r.route.cluster_header = "x-cluster"
    else:
        r.route.cluster = C_B
    r = vh.routes.add(name="direct")
    r.match.path = "/direct"
    r.direct_response.status = 200
    r.direct_response.body.inline_string = "answered from the python xds server's route"
    r = vh.routes.add(name="default")
    r.match.prefix = "/"
    r.route.cluster = default_cluster
    r.route.timeout.seconds = 5
    return rc


def wait_file(path, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.1)
    return False


def main():
    a, srv, st = serve_one_stream("the waypoint binary (to the independent xDS server)", "--phase2", "--done")
    if st is None:
        return
    # The four initial wildcard requests (any order); their content is checked by case A.
    seen, node_ok = set(), False
    for _ in range(4):
        r = st.recv(10)
        if r is None:
            break
        seen.add(r.type_url)
        node_ok = node_ok or r.node.id == a.node_id
    p = [] if node_ok else ["no initial request carries node id " + a.node_id]
    p += ["no initial request for " + t for t in (CLUSTER_URL, CLA_URL, ROUTE_URL, ADDRESS_URL) if t not in seen]
    check("the waypoint binary subscribes to the four types with its node id", p)

    s = W.Service(name="calc", namespace="demo", hostname=HOST)
    s.addresses.add(network="", address=interop.ip4("10.96.0.10"))
    s.ports.add(service_port=80, target_port=8080)
    steps = [
        (ADDRESS_URL, "a1", [("demo/" + HOST, "v1", W.Address(service=s))]),
        (CLUSTER_URL, "c1", [(C_A, "v1", cluster(C_A, 5)), (C_B, "v1", cluster(C_B, 5))]),
        (CLA_URL, "e1", [(C_A, "v1", cla(C_A, "127.0.0.1", 18080)), (C_B, "v1", cla(C_B, "127.0.0.1", 18081))]),
        (ROUTE_URL, "r1", [(R_MAIN, "v1", route_config(C_A))]),
    ]
    p = []
    for type_url, nonce, items in steps:
        st.send(response(type_url, nonce, items))
        _, q = await_reply(st, type_url, nonce, want_nack=False)
        p += q
    check("Address, Cluster, ClusterLoadAssignment and RouteConfiguration ACKed by the waypoint", p)
    print("CONFIGURED", flush=True)

    if not wait_file(a.phase2, 60):
        check("suite.sh reached phase 2", ["no %s within 60 s" % a.phase2])
        srv.stop()
        return
    st.send(response(ROUTE_URL, "r2", [(R_MAIN, "v2", route_config(C_A, cluster_header=True))]))
    r, p = await_reply(st, ROUTE_URL, "r2", want_nack=True)
    if r is not None and r.HasField("error_detail") and "cluster_header" not in r.error_detail.message:
        p.append("error_detail does not name cluster_header: %r" % r.error_detail.message)
    check("a route with an unimplemented field (cluster_header) is NACKed by the waypoint, naming it", p)
    st.send(response(ROUTE_URL, "r3", [(R_MAIN, "v3", route_config(C_B))]))
    _, p = await_reply(st, ROUTE_URL, "r3", want_nack=False)
    check("a live route edit (default -> b) is ACKed", p)
    print("EDITED", flush=True)
    wait_file(a.done, 60)
    srv.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        interop.finish(interop.exit_code())
