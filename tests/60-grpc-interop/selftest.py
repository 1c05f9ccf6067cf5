#!/usr/bin/env python3
"""selftest.py - the harness against itself: the Python ADS client vs the Python ADS server and
the Python CA client vs the Python CA server, over TLS with the suite's certificates. A failure
here is a broken test environment or harness, not a finding about our binaries.

Prints PASS/FAIL lines; exit 1 when anything failed.
"""
import argparse
import tempfile

import grpc

import certs
import interop
from interop import ADDRESS_URL, check, result
from ads_client import AdsStream, ack, decode, initial
from ads_server import AdsServer, response
from ca_client import check_chain, create_certificate
from ca_server import CaServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--root", required=True, help="root of the TLS server chain")
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--ca-root", required=True)
    a = ap.parse_args()

    # ---- ADS ----
    srv = AdsServer("127.0.0.1:0", a.key, a.chain)
    ch = interop.secure_channel("127.0.0.1:%d" % srv.port, a.root)
    cli = AdsStream(ch, [("authorization", "Bearer self"), ("clusterid", "C1")], timeout=30)
    node = interop.base_pb2.Node(id="ztunnel~1.2.3.4~p.ns~ns.svc.cluster.local")
    cli.send(initial(ADDRESS_URL, node, {"a": "1"}))
    st = srv.next_stream(10)
    p = []
    if st is None:
        p.append("server saw no stream")
    else:
        r = st.recv(5)
        if r is None or r.node.id != node.id or dict(r.initial_resource_versions) != {"a": "1"}:
            p.append("server got %s" % r)
        if st.metadata.get("authorization") != ["Bearer self"] or st.metadata.get("clusterid") != ["C1"]:
            p.append("metadata %s" % st.metadata)
        w = interop.workload_pb2.Workload(uid="u1", name="n", addresses=[interop.ip4("10.0.0.1")])
        st.send(response(ADDRESS_URL, "nonce-1", [("u1", "v1", interop.workload_pb2.Address(workload=w))], ["gone"]))
        resp = cli.recv(5, ADDRESS_URL)
        if resp is None:
            p.append("client got no response")
        else:
            d = decode(resp)
            if list(d) != ["u1"] or d["u1"][0] != "v1" or d["u1"][1].workload.addresses != [b"\x0a\x00\x00\x01"] \
                    or list(resp.removed_resources) != ["gone"]:
                p.append("client decoded %s" % d)
            cli.send(ack(resp))
            r = st.recv(5)
            if r is None or r.response_nonce != "nonce-1" or r.HasField("error_detail"):
                p.append("server got ack %s" % r)
        st.close(grpc.StatusCode.UNAUTHENTICATED, "bye")
        cli.wait_end(5)
        if cli.code != grpc.StatusCode.UNAUTHENTICATED:
            p.append("client end code %s" % cli.code)
    check("Python ADS client <-> Python ADS server (TLS, metadata, Any, ACK, status)", p)
    cli.close()
    ch.close()
    srv.stop()

    # ---- CA ----
    root_pem = open(a.ca_root).read()
    ca_pem = open(a.ca_cert).read()
    ident = "spiffe://cluster.local/ns/demo/sa/web"

    def plan(n, req, md):
        if md.get("authorization") != ["Bearer good"]:
            return ("error", grpc.StatusCode.UNAUTHENTICATED, "bad token")
        return ("ok", [certs.sign(req.csr, ident, a.ca_cert, a.ca_key, seconds=req.validity_duration),
                       ca_pem, root_pem])
    ca = CaServer("127.0.0.1:0", a.key, a.chain, plan)
    ch = interop.secure_channel("127.0.0.1:%d" % ca.port, a.root)
    with tempfile.TemporaryDirectory() as d:
        csr, _ = certs.make_csr(ident, d)
        info = certs.csr_info(csr)
        code, details, chain = create_certificate(ch, csr, 3600, "good", impersonate=ident)
        p = [] if code == grpc.StatusCode.OK else ["%s %s" % (code, details)]
        if not p:
            p += check_chain(chain, ident, info["pubkey"], a.ca_root, 86400)
        check("Python CA client <-> Python CA server (CSR, signing, chain checks, openssl verify)", p)
        code, _, _ = create_certificate(ch, csr, 3600, "bad")
        result(code == grpc.StatusCode.UNAUTHENTICATED, "CA error status reaches the client", str(code))
    ch.close()
    ca.stop()
    return interop.exit_code()


if __name__ == "__main__":
    interop.finish(main())
