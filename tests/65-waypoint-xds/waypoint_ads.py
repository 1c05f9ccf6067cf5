"""waypoint_ads.py - what the two independent delta-ADS servers of this suite share
(waypoint_xds_server.py against the probe, waypoint_xds_traffic.py against the waypoint
binary): the path to the 60-grpc-interop helpers (AdsServer, the protoc-compiled messages),
the Envoy type URLs, the Cluster / ClusterLoadAssignment builders and the ACK/NACK check.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "60-grpc-interop"))

import interop  # noqa: E402
from interop import ADDRESS_URL, check  # noqa: E402,F401  (re-exported for the servers)
from ads_server import AdsServer, response  # noqa: E402,F401

from envoy.config.cluster.v3 import cluster_pb2  # noqa: E402
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: E402

CLUSTER_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
CLA_URL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE_URL = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
HOST = "calc.demo.svc.cluster.local"
W = interop.workload_pb2


def cluster(name, connect_timeout_s):
    """An EDS-over-ADS cluster with least-request balancing."""
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS, lb_policy=cluster_pb2.Cluster.LEAST_REQUEST)
    c.eds_cluster_config.eds_config.ads.SetInParent()
    c.connect_timeout.seconds = connect_timeout_s
    return c


def cla(name, address, port):
    """A ClusterLoadAssignment with one endpoint."""
    m = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    sa = m.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    sa.address, sa.port_value = address, port
    return m


def await_reply(st, type_url, nonce, want_nack, timeout=10):
    """The client's ACK/NACK of `nonce`: (request or None, problems)."""
    r = st.recv(timeout, type_url)
    if r is None:
        return None, ["no reply to %s nonce %s" % (type_url, nonce)]
    p = []
    if r.response_nonce != nonce:
        p.append("response_nonce %r, want %r" % (r.response_nonce, nonce))
    if want_nack and not r.HasField("error_detail"):
        p.append("ACK where a NACK was expected")
    if not want_nack and r.HasField("error_detail"):
        p.append("NACK where an ACK was expected: %s" % r.error_detail.message)
    return r, p


def serve_one_stream(who, *extra_flags):
    """Parses --listen/--key/--chain/--node-id (and each of `extra_flags`, required), starts the
    ADS server, prints LISTENING and waits (bounded) for the one stream: (args, server, stream);
    the stream is None (a FAIL line already printed, naming `who`) when none came."""
    ap = argparse.ArgumentParser()
    for flag in ("--listen", "--key", "--chain", "--node-id") + extra_flags:
        ap.add_argument(flag, required=True)
    a = ap.parse_args()
    srv = AdsServer(a.listen, a.key, a.chain)
    print("LISTENING", flush=True)
    st = srv.next_stream(30)
    if st is None:
        check(who + " connects", ["no stream within 30 s"])
    return a, srv, st
