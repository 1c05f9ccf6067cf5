#!/usr/bin/env python3
"""xds_server.py - case B: an independent delta-ADS server driving our ztunnel's xDS client.

Listens (TLS) on --listen, prints "LISTENING" and waits for ztunnel (started by suite.sh with
XDS_ADDRESS pointing here, PROXY_MODE=shared). A minimal ZDS node agent on --zds-socket answers
ztunnel's hello with an empty snapshot, so readiness depends on xDS alone. Then:

  - the stream's metadata (authorization: Bearer <token>, clusterid) and the initial requests
    (node id and metadata, both type URLs, wildcard = empty subscribe, no nonce);
  - readiness is not 200 before both types were answered, 200 after;
  - an Address response with one malformed workload (5-byte address) -> NACK echoing the nonce,
    error_detail naming that resource and the reason; the valid ones show in /config_dump;
  - the Authorization response -> ACK echoing the nonce; the policy shows in /config_dump;
  - removal and update deltas -> ACK, reflected in /config_dump;
  - the server ends the stream -> ztunnel reconnects and its initial_resource_versions list
    exactly the accepted resources with their versions; empty answers keep the state;
  - IPv6 addresses and unknown fields are accepted; a policy with a malformed IP is NACKed;
  - a resource whose Any type differs from the response type is NACKed by name; an abort with
    UNAVAILABLE is followed by another reconnect with the same versions.

Prints PASS/FAIL lines; exit 1 when anything failed.
"""
import argparse
import json
import os
import re
import socket
import threading
import time

import grpc

import interop
from interop import ADDRESS_URL, AUTHZ_URL, check, result
from ads_server import AdsServer, response

W = interop.workload_pb2
A = interop.authorization_pb2
UID1 = "Kubernetes//Pod/ns1/pod-1"
UID2 = "Kubernetes//Pod/ns1/pod-2"
UID_BAD = "Kubernetes//Pod/ns1/pod-bad"
UID6 = "Kubernetes//Pod/ns1/pod-6"
SVC = "ns1/svc1.ns1.svc.cluster.local"
SVC6 = "ns1/svc6.ns1.svc.cluster.local"
POL = "ns1/allow-1"
POL_BAD = "ns1/bad-policy"
# Field 99 (varint 1): a field a newer istiod might send; proto3 parsers must skip it.
UNKNOWN_FIELD = bytes([0x98, 0x06, 0x01])


def workload(uid, name, ip, sa, addresses=None):
    w = W.Workload(uid=uid, name=name, namespace="ns1", service_account=sa, node="node-a",
                   tunnel_protocol=W.HBONE, trust_domain="cluster.local", canonical_name=name)
    w.addresses.extend(addresses if addresses is not None else [interop.ip4(ip)])
    w.services[SVC].ports.add(service_port=80, target_port=8080)
    return W.Address(workload=w)


def service():
    s = W.Service(name="svc1", namespace="ns1", hostname="svc1.ns1.svc.cluster.local")
    s.addresses.add(network="", address=interop.ip4("10.96.0.10"))
    s.ports.add(service_port=80, target_port=8080)
    return W.Address(service=s)


def policy():
    p = A.Authorization(name="allow-1", namespace="ns1", scope=A.NAMESPACE, action=A.ALLOW)
    p.rules.add().clauses.add().matches.add().principals.add(exact="cluster.local/ns/ns1/sa/sa-two")
    return p


def bad_policy():
    p = A.Authorization(name="bad-policy", namespace="ns1", scope=A.NAMESPACE, action=A.DENY)
    p.rules.add().clauses.add().matches.add().source_ips.add(address=b"\x0a\x00\x00\x01\x02", length=32)
    return p


def v6_resources():
    """A workload and a service with IPv6 addresses, each with an unknown field appended."""
    w = W.Workload(uid=UID6, name="pod-6", namespace="ns1", service_account="sa-six", node="node-a",
                   tunnel_protocol=W.HBONE)
    w.addresses.append(bytes.fromhex("fd000000000000000000000000000006"))
    s = W.Service(name="svc6", namespace="ns1", hostname="svc6.ns1.svc.cluster.local")
    s.addresses.add(network="", address=bytes.fromhex("fd000000000000000000000000000106"))
    s.ports.add(service_port=443, target_port=8443)
    out = []
    for name, msg in ((UID6, W.Address(workload=w)), (SVC6, W.Address(service=s))):
        any_ = interop.pack_any(msg, ADDRESS_URL)
        any_.value = any_.value + UNKNOWN_FIELD
        out.append((name, any_))
    return out


# ---- minimal ZDS node agent --------------------------------------------------------------------


class ZdsAgent:
    """Accepts ztunnel on a SOCK_SEQPACKET socket; hello -> SnapshotSent -> Ack; then idles."""

    def __init__(self, path):
        self.snapshot_acked = threading.Event()
        self.error = ""
        self._stop = False
        if os.path.exists(path):
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.bind(path)
        self._sock.listen(4)
        self._sock.settimeout(0.5)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                hello = interop.zds_pb2.ZdsHello.FromString(conn.recv(1024))
                if hello.version != interop.zds_pb2.V1:
                    self.error = "ZdsHello version %d" % hello.version
                req = interop.zds_pb2.WorkloadRequest(snapshot_sent=interop.zds_pb2.SnapshotSent())
                conn.send(req.SerializeToString())
                ack = interop.zds_pb2.WorkloadResponse.FromString(conn.recv(1024))
                if ack.ack.error:
                    self.error = "snapshot ack error: " + ack.ack.error
                self.snapshot_acked.set()
                conn.settimeout(0.5)
                while not self._stop:  # hold the connection; ztunnel sends nothing more
                    try:
                        if not conn.recv(1024):
                            break
                    except socket.timeout:
                        continue
            except Exception as e:
                self.error = "zds: %s" % e
            finally:
                conn.close()

    def stop(self):
        self._stop = True
        self._sock.close()


# ---- checks --------------------------------------------------------------------------------------


def req_text(r):
    if r is None:
        return "<none>"
    return "type=%s nonce=%r subscribe=%s unsubscribe=%s initial=%s error=%s node.id=%r" % (
        r.type_url.rsplit("/", 1)[-1], r.response_nonce, list(r.resource_names_subscribe),
        list(r.resource_names_unsubscribe), dict(r.initial_resource_versions),
        (r.error_detail.code, r.error_detail.message) if r.HasField("error_detail") else None, r.node.id)


def initial_requests(st, timeout):
    """The first request of each type on a new stream: {type_url: req} (missing types absent)."""
    got = {}
    end = time.monotonic() + timeout
    while len(got) < 2 and time.monotonic() < end:
        r = st.recv(end - time.monotonic())
        if r is None:
            break
        if r.type_url in got:
            result(False, "no repeated initial request for %s" % r.type_url, req_text(r))
            continue
        got[r.type_url] = r
    return got


def check_metadata(st, a, label):
    p = []
    auth = st.metadata.get("authorization", [])
    if auth != ["Bearer " + a.token]:
        p.append("authorization = %s, want ['Bearer %s']" % (auth, a.token))
    cid = st.metadata.get("clusterid", [])
    if cid != [a.cluster_id]:
        p.append("clusterid = %s, want ['%s']" % (cid, a.cluster_id))
    extra = st.metadata.get("x-interop-test", [])
    if extra != ["hdr-1"]:
        p.append("x-interop-test = %s, want ['hdr-1'] (XDS_HEADER_X_INTEROP_TEST)" % extra)
    check("%s: gRPC metadata authorization 'Bearer <AUTH_TOKEN>', clusterid '%s', XDS_HEADER_ header"
          % (label, a.cluster_id), p)


def check_initial(reqs, a, label, want_versions):
    p = []
    for t in (ADDRESS_URL, AUTHZ_URL):
        if t not in reqs:
            p.append("no initial request for %s" % t)
    node_seen = False
    want_id = "ztunnel~%s~%s.%s~%s.svc.cluster.local" % (a.ip, a.pod, a.ns, a.ns)
    for t, r in reqs.items():
        if r.resource_names_subscribe or r.resource_names_unsubscribe:
            p.append("%s: subscribe %s / unsubscribe %s, want both empty (wildcard)"
                     % (t, list(r.resource_names_subscribe), list(r.resource_names_unsubscribe)))
        if r.response_nonce:
            p.append("%s: initial request carries response_nonce %r" % (t, r.response_nonce))
        if r.HasField("error_detail"):
            p.append("%s: initial request carries error_detail" % t)
        if dict(r.initial_resource_versions) != want_versions.get(t, {}):
            p.append("%s: initial_resource_versions %s, want %s"
                     % (t.rsplit("/", 1)[-1], dict(r.initial_resource_versions), want_versions.get(t, {})))
        if r.HasField("node"):
            node_seen = True
            if r.node.id != want_id:
                p.append("%s: node.id %r, want %r" % (t, r.node.id, want_id))
            md = interop.struct_dict(r.node.metadata)
            want_md = {"NAME": a.pod, "NAMESPACE": a.ns, "INSTANCE_IPS": a.ip, "NODE_NAME": a.node, "FOO": "bar"}
            for k, v in want_md.items():
                if md.get(k) != v:
                    p.append("%s: node.metadata[%s] = %r, want %r" % (t, k, md.get(k), v))
            labels = md.get("LABELS")
            if not hasattr(labels, "fields") or labels.fields["app"].string_value != "zt" \
                    or labels.fields["n"].number_value != 2:
                p.append("%s: node.metadata[LABELS] = %r, want struct {app: zt, n: 2} (ISTIO_METAJSON_LABELS)"
                         % (t, labels))
    if reqs and not node_seen:
        p.append("no initial request carries node")
    check("%s: initial requests for Address and Authorization, wildcard, node id/metadata as configured" % label, p)
    for r in reqs.values():
        interop.log("%s initial: %s" % (label, req_text(r)))


class Admin:
    def __init__(self, admin_url, ready_url):
        self.admin_url = admin_url
        self.ready_url = ready_url

    def ready(self):
        return interop.http_get(self.ready_url, 1.0)

    def dump(self):
        code, body = interop.http_get(self.admin_url + "/config_dump", 2.0)
        if code != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def names(self):
        d = self.dump() or {}
        return ({w.get("uid") for w in d.get("workloads", [])},
                {"%s/%s" % (s.get("namespace"), s.get("hostname")) for s in d.get("services", [])},
                {"%s/%s" % (p.get("namespace"), p.get("name")) for p in d.get("policies", [])})

    def wait_names(self, pred, timeout=5.0):
        """Polls config_dump until pred(workloads, services, policies); returns the last names."""
        last = [None]

        def probe():
            last[0] = self.names()
            return pred(*last[0])
        interop.wait_until(probe, timeout, 0.2)
        return last[0]


def expect_reply(st, type_url, nonce, label, want_nack=False, timeout=8.0):
    """Waits for the ACK/NACK of `nonce`; checks echo and presence/absence of error_detail."""
    r = st.recv(timeout, type_url)
    p = []
    if r is None:
        p.append("no request of type %s within %.0fs (client gone=%s)" % (type_url, timeout, st.client_done))
    else:
        if r.response_nonce != nonce:
            p.append("response_nonce %r, want %r" % (r.response_nonce, nonce))
        has_err = r.HasField("error_detail") and (r.error_detail.code != 0 or r.error_detail.message)
        if want_nack and not has_err:
            p.append("no error_detail (ACK), want a NACK")
        if not want_nack and has_err:
            p.append("error_detail code=%d message=%r (NACK), want an ACK" % (r.error_detail.code, r.error_detail.message))
        if r.resource_names_subscribe or r.resource_names_unsubscribe or r.initial_resource_versions:
            p.append("ACK/NACK changes subscriptions: %s" % req_text(r))
    check(label, p)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--cluster-id", required=True)
    ap.add_argument("--pod", required=True)
    ap.add_argument("--ns", required=True)
    ap.add_argument("--ip", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--zds-socket", required=True)
    ap.add_argument("--admin", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--ready", required=True, help="http://127.0.0.1:PORT/healthz/ready")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    a = ap.parse_args()

    zds = ZdsAgent(a.zds_socket)
    srv = AdsServer(a.listen, a.key, a.chain)
    adm = Admin(a.admin, a.ready)
    print("LISTENING", flush=True)

    st = srv.next_stream(a.connect_timeout)
    if st is None:
        result(False, "ztunnel opened a DeltaAggregatedResources stream", "none within %.0fs" % a.connect_timeout)
        return 1
    result(True, "ztunnel opened a DeltaAggregatedResources stream over TLS (peer %s)" % st.peer)
    check_metadata(st, a, "first stream")
    reqs = initial_requests(st, 10)
    check_initial(reqs, a, "first stream", {})

    # Readiness: ZDS done, xDS not answered yet -> not ready.
    result(zds.snapshot_acked.wait(10) and not zds.error, "ZDS: ztunnel said hello and acked an empty snapshot",
           zds.error or "no snapshot ack within 10s")
    code, body = interop.wait_until(lambda: (lambda c: c if c[0] is not None else None)(adm.ready()), 10, 0.2) \
        or (None, "readiness endpoint never answered")
    result(code is not None and code != 200, "readiness is not 200 before any xDS response",
           "status=%s body=%r" % (code, body))

    # Address: two good workloads, a service, one malformed workload.
    bad = workload(UID_BAD, "pod-bad", None, "sa-bad", addresses=[b"\x0a\x00\x01\x03\x07"])
    st.send(response(ADDRESS_URL, "n-addr-1", [(UID1, "1", workload(UID1, "pod-1", "10.0.1.1", "sa-one")),
                                               (UID2, "1", workload(UID2, "pod-2", "10.0.1.2", "sa-two")),
                                               (SVC, "1", service()),
                                               (UID_BAD, "1", bad)]))
    r = expect_reply(st, ADDRESS_URL, "n-addr-1", "Address with a 5-byte workload address is NACKed, nonce echoed",
                     want_nack=True)
    if r is not None and r.HasField("error_detail"):
        msg = r.error_detail.message
        result(UID_BAD in msg and re.search(r"(?i)address|ip|byte|length", msg) is not None,
               "NACK error_detail names the malformed resource and the reason",
               "error_detail code=%d message=%r" % (r.error_detail.code, msg))
        result(UID1 not in msg and UID2 not in msg and SVC not in msg,
               "NACK error_detail does not blame the valid resources", "message=%r" % msg)
    code, body = adm.ready()
    result(code != 200, "readiness still not 200 with only Address answered", "status=%s body=%r" % (code, body))

    st.send(response(AUTHZ_URL, "n-authz-1", [(POL, "1", policy())]))
    expect_reply(st, AUTHZ_URL, "n-authz-1", "Authorization response is ACKed, nonce echoed")
    ok = interop.wait_until(lambda: adm.ready()[0] == 200, 5, 0.2)
    result(ok, "readiness 200 once both types were answered", "last: %s %r" % adm.ready())

    ws, ss, ps = adm.wait_names(lambda w, s, p: UID1 in w and UID2 in w and SVC in s and POL in p)
    check("config_dump: valid workloads, service and policy applied; the malformed one absent",
          [m for m in ("%s missing" % UID1 if UID1 not in ws else "",
                       "%s missing" % UID2 if UID2 not in ws else "",
                       "%s present" % UID_BAD if UID_BAD in ws else "",
                       "%s missing (services %s)" % (SVC, sorted(ss)) if SVC not in ss else "",
                       "%s missing (policies %s)" % (POL, sorted(ps)) if POL not in ps else "") if m])
    d = adm.dump() or {}
    w1 = next((w for w in d.get("workloads", []) if w.get("uid") == UID1), {})
    p = []
    for k, v in {"name": "pod-1", "namespace": "ns1", "serviceAccount": "sa-one", "workloadIps": ["10.0.1.1"],
                 "node": "node-a", "protocol": "HBONE"}.items():
        if w1.get(k) != v:
            p.append("%s = %r, want %r" % (k, w1.get(k), v))
    check("config_dump: pod-1's fields decoded from the wire", p)

    # Removal and update.
    st.send(response(ADDRESS_URL, "n-addr-2", removed=[UID2]))
    expect_reply(st, ADDRESS_URL, "n-addr-2", "removal delta ACKed, nonce echoed")
    ws, _, _ = adm.wait_names(lambda w, s, p: UID2 not in w)
    result(UID2 not in ws and UID1 in ws, "config_dump: removed workload gone, the other kept", "workloads %s" % ws)

    st.send(response(ADDRESS_URL, "n-addr-3", [(UID1, "2", workload(UID1, "pod-1", "10.0.1.1", "sa-one-v2"))]))
    expect_reply(st, ADDRESS_URL, "n-addr-3", "update delta ACKed, nonce echoed")

    def sa_of_w1():
        d = adm.dump() or {}
        return next((w.get("serviceAccount") for w in d.get("workloads", []) if w.get("uid") == UID1), None)
    result(interop.wait_until(lambda: sa_of_w1() == "sa-one-v2", 5, 0.2), "config_dump: update applied",
           "serviceAccount of pod-1 = %r" % sa_of_w1())

    # IPv6 addresses and an unknown field (forward compatibility) are accepted.
    v6 = response(ADDRESS_URL, "n-addr-4")
    for name, any_ in v6_resources():
        res = v6.resources.add(name=name, version="1")
        res.resource.CopyFrom(any_)
    st.send(v6)
    expect_reply(st, ADDRESS_URL, "n-addr-4", "IPv6 workload/service carrying an unknown field 99 ACKed")

    def ip_of_w6():
        d = adm.dump() or {}
        return next((w.get("workloadIps") for w in d.get("workloads", []) if w.get("uid") == UID6), None)
    ws, ss, _ = adm.wait_names(lambda w, s, p: UID6 in w and SVC6 in s)
    result(ip_of_w6() == ["fd00::6"] and SVC6 in ss, "config_dump: IPv6 workload (fd00::6) and service applied",
           "pod-6 workloadIps %r; services %s" % (ip_of_w6(), sorted(ss)))

    # A policy with a 5-byte source IP is NACKed by name and not applied.
    st.send(response(AUTHZ_URL, "n-authz-2", [(POL_BAD, "1", bad_policy())]))
    r = expect_reply(st, AUTHZ_URL, "n-authz-2", "Authorization with a 5-byte source_ips address is NACKed",
                     want_nack=True)
    if r is not None and r.HasField("error_detail"):
        result(POL_BAD in r.error_detail.message, "that NACK names %s" % POL_BAD, "message=%r" % r.error_detail.message)
    _, _, ps = adm.names()
    result(POL_BAD not in ps and POL in ps, "config_dump: the malformed policy absent, the good one kept",
           "policies %s" % sorted(ps))

    extra = st.drain(1.0)
    result(not extra, "no unsolicited requests after the ACKs", "\n".join(req_text(x) for x in extra))

    # Server ends the stream -> reconnect with initial_resource_versions.
    st.close()
    st2 = srv.next_stream(20)
    if st2 is None:
        result(False, "ztunnel reconnects after the server ends the stream", "no new stream within 20s")
        return interop.exit_code()
    result(True, "ztunnel reconnects after the server ends the stream")
    check_metadata(st2, a, "reconnect")
    reqs = initial_requests(st2, 10)
    check_initial(reqs, a, "reconnect", {ADDRESS_URL: {UID1: "2", SVC: "1", UID6: "1", SVC6: "1"}, AUTHZ_URL: {POL: "1"}})
    st2.send(response(ADDRESS_URL, "n-addr-r1"))
    expect_reply(st2, ADDRESS_URL, "n-addr-r1", "reconnect: empty Address response ACKed")
    st2.send(response(AUTHZ_URL, "n-authz-r1"))
    expect_reply(st2, AUTHZ_URL, "n-authz-r1", "reconnect: empty Authorization response ACKed")
    time.sleep(0.5)
    ws, ss, ps = adm.names()
    result(UID1 in ws and SVC in ss and POL in ps and UID2 not in ws,
           "config_dump after reconnect: known resources kept (nothing re-sent, nothing removed)",
           "workloads %s services %s policies %s" % (sorted(ws), sorted(ss), sorted(ps)))
    result(adm.ready()[0] == 200, "readiness stays 200 across the reconnect", "%s %r" % adm.ready())

    # A resource whose Any holds another type than the response's type URL.
    wrong = response(ADDRESS_URL, "n-addr-r2")
    res = wrong.resources.add(name="ns1/not-an-address", version="1")
    res.resource.CopyFrom(interop.pack_any(policy(), AUTHZ_URL))
    st2.send(wrong)
    r = expect_reply(st2, ADDRESS_URL, "n-addr-r2", "Address response holding an Authorization Any is NACKed",
                     want_nack=True)
    if r is not None and r.HasField("error_detail"):
        result("ns1/not-an-address" in r.error_detail.message, "that NACK names the resource",
               "message=%r" % r.error_detail.message)

    # Server aborts with UNAVAILABLE -> reconnect again, same known versions.
    st2.close(grpc.StatusCode.UNAVAILABLE, "interop: going away")
    st3 = srv.next_stream(20)
    if st3 is None:
        result(False, "ztunnel reconnects after the stream is aborted with UNAVAILABLE", "no new stream within 20s")
    else:
        result(True, "ztunnel reconnects after the stream is aborted with UNAVAILABLE")
        reqs = initial_requests(st3, 10)
        check_initial(reqs, a, "second reconnect", {ADDRESS_URL: {UID1: "2", SVC: "1", UID6: "1", SVC6: "1"}, AUTHZ_URL: {POL: "1"}})
        st3.close()
    srv.stop()
    zds.stop()
    return interop.exit_code()


if __name__ == "__main__":
    interop.finish(main())
