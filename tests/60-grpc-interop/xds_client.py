#!/usr/bin/env python3
"""xds_client.py - case A: an independent delta-ADS client against `controlplane serve`.

Written from ztunnel-facts.md section 4 and the envoy delta-xDS protocol, with message classes
protoc compiled from our proto/ files and grpcio's generic stream_stream API. The mesh
directory (--dir) starts as a copy of examples/k8s; this script edits it while subscribed and
checks what the server pushes:

  - an unknown or missing bearer token -> UNAUTHENTICATED;
  - wildcard Address + Authorization subscriptions get every pod, the service and the policy,
    decoded fields equal to the YAML;
  - ACK -> no resend; label change / new pod / deleted policy / deleted pod -> a delta with
    exactly the changed names in resources or removed_resources;
  - a NACK is not answered with a resend loop, and later changes still arrive;
  - a new stream with initial_resource_versions gets only what changed while it was away
    (new, changed, stale-versioned) and removals for names that no longer exist.

Prints PASS/FAIL lines; exit 1 when anything failed.
"""
import argparse
import os
import re
import time

import grpc

import interop
from interop import ADDRESS_URL, AUTHZ_URL, check, result
from ads_client import AdsStream, ack, decode, initial, nack, summary

UID = "Kubernetes//Pod/demo/"
SVC = "demo/web.demo.svc.cluster.local"
POLICY = "demo/deny-client"
PUSH_WAIT = 8.0  # the server polls its directory every 500 ms; generous for slow CI

POD_TEMPLATE = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: demo
  labels:
    app: web
    version: v1
spec:
  serviceAccountName: web
  nodeName: demo-node
  containers:
  - name: web
    image: web
    ports:
    - name: http
      containerPort: 8080
status:
  podIP: {ip}
"""


def node_proto(node_name):
    n = interop.base_pb2.Node(id="ztunnel~10.99.9.9~ztunnel-test.istio-system~istio-system.svc.cluster.local")
    for k, v in {"NAME": "ztunnel-test", "NAMESPACE": "istio-system", "INSTANCE_IPS": "10.99.9.9",
                 "NODE_NAME": node_name}.items():
        n.metadata.fields[k].string_value = v
    return n


def write_pod(d, name, ip):
    path = os.path.join(d, "pod-%s.yaml" % name)
    with open(path + ".tmp", "w") as f:
        f.write(POD_TEMPLATE.format(name=name, ip=ip))
    os.rename(path + ".tmp", path)


def relabel_web2(d):
    """In pods.yaml, web-2's `app: web` becomes `app: web-canary` (leaves the service)."""
    path = os.path.join(d, "pods.yaml")
    text = open(path).read()
    docs = text.split("\n---\n")
    hit = False
    for i, doc in enumerate(docs):
        if re.search(r"^  name: web-2$", doc, re.M):
            docs[i], n = re.subn(r"^    app: web$", "    app: web-canary", doc, flags=re.M)
            hit = n == 1
    if not hit:
        raise RuntimeError("pods.yaml: could not find web-2's app label")
    with open(path + ".tmp", "w") as f:
        f.write("\n---\n".join(docs))
    os.rename(path + ".tmp", path)


class State:
    """The client's view: name -> version per type, updated from responses (delta semantics)."""

    def __init__(self):
        self.v = {ADDRESS_URL: {}, AUTHZ_URL: {}}

    def apply(self, resp):
        m = self.v[resp.type_url]
        for r in resp.resources:
            m[r.name] = r.version
        for n in resp.removed_resources:
            m.pop(n, None)


def check_workload(name, msg, ip, sa, in_service):
    p = []
    if msg.WhichOneof("type") != "workload":
        return ["%s is not a workload: %s" % (name, msg.WhichOneof("type"))]
    w = msg.workload
    want = {"uid": UID + name, "name": name, "namespace": "demo", "service_account": sa, "node": "demo-node"}
    for field, val in want.items():
        if getattr(w, field) != val:
            p.append("%s.%s = %r, want %r" % (name, field, getattr(w, field), val))
    if list(w.addresses) != [interop.ip4(ip)]:
        p.append("%s.addresses = %s, want [%s] as 4 raw bytes" % (name, [a.hex() for a in w.addresses], ip))
    if w.tunnel_protocol != interop.workload_pb2.HBONE:
        p.append("%s.tunnel_protocol = %d, want HBONE(1) (namespace is ambient)" % (name, w.tunnel_protocol))
    if in_service:
        pl = w.services.get(SVC)
        ports = [(x.service_port, x.target_port) for x in pl.ports] if pl else None
        if ports != [(80, 8080)]:
            p.append("%s.services[%s] ports = %s, want [(80, 8080)]" % (name, SVC, ports))
    elif SVC in w.services:
        p.append("%s.services still has %s" % (name, SVC))
    return p


def check_service(msg):
    if msg.WhichOneof("type") != "service":
        return ["%s is not a service" % SVC]
    s = msg.service
    p = []
    for field, val in {"name": "web", "namespace": "demo", "hostname": "web.demo.svc.cluster.local"}.items():
        if getattr(s, field) != val:
            p.append("service.%s = %r, want %r" % (field, getattr(s, field), val))
    addrs = [interop.ip_str(a.address) for a in s.addresses]
    if addrs != ["10.99.250.10"]:
        p.append("service.addresses = %s, want [10.99.250.10]" % addrs)
    # targetPort is the name "http": resolved per endpoint (workload services map), so the
    # service itself carries target_port 0, as istiod sends it.
    ports = [(x.service_port, x.target_port) for x in s.ports]
    if ports != [(80, 0)]:
        p.append("service.ports = %s, want [(80, 0)] (named targetPort)" % ports)
    return p


def check_policy(msg):
    p = []
    if (msg.name, msg.namespace) != ("deny-client", "demo"):
        p.append("policy name/namespace = %s/%s" % (msg.namespace, msg.name))
    if msg.action != interop.authorization_pb2.DENY:
        p.append("action = %d, want DENY(1)" % msg.action)
    if msg.scope != interop.authorization_pb2.NAMESPACE:
        p.append("scope = %d, want NAMESPACE(1)" % msg.scope)
    principals = [sm.exact for r in msg.rules for c in r.clauses for m in c.matches for sm in m.principals]
    if principals != ["cluster.local/ns/demo/sa/client"]:
        p.append("principals (exact) = %s, want ['cluster.local/ns/demo/sa/client']; policy: %s"
                 % (principals, msg))
    return p


def expect_push(stream, type_url, what, timeout=PUSH_WAIT):
    r = stream.recv(timeout, type_url)
    if r is None:
        result(False, what, "no %s response within %.0fs (stream ended=%s %s %s)"
               % (type_url.rsplit(".", 1)[-1], timeout, stream.ended, stream.code, stream.details))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--node-name", default="demo-node")
    a = ap.parse_args()

    ch = interop.secure_channel(a.addr, a.root)
    try:
        grpc.channel_ready_future(ch).result(timeout=10)
    except grpc.FutureTimeoutError:
        result(False, "TLS channel to %s ready" % a.addr, "not connected within 10s (TLS or listen problem)")
        return 1
    node = node_proto(a.node_name)
    good_md = [("authorization", "Bearer " + a.token), ("clusterid", "Kubernetes")]

    # ---- A1: authentication ----
    for label, md in (("an unknown token", [("authorization", "Bearer not-a-known-token")]),
                      ("no authorization metadata", [])):
        s = AdsStream(ch, md, timeout=15)
        s.send(initial(ADDRESS_URL, node))
        r = s.recv(10)
        s.wait_end(5)
        result(r is None and s.code == grpc.StatusCode.UNAUTHENTICATED,
               "ADS with %s is refused with UNAUTHENTICATED" % label,
               "got response=%s end=%s code=%s details=%r" % (summary(r), s.ended, s.code, s.details))
        s.close()

    # ---- A2: wildcard subscriptions ----
    st = State()
    s = AdsStream(ch, good_md)
    s.send(initial(ADDRESS_URL, node))
    s.send(initial(AUTHZ_URL, node))
    ra = expect_push(s, ADDRESS_URL, "initial Address response")
    rz = expect_push(s, AUTHZ_URL, "initial Authorization response")
    if ra is None or rz is None:
        s.close()
        return 1
    try:
        addrs = decode(ra)
        pols = decode(rz)
    except Exception as e:  # malformed Any or undecodable bytes
        result(False, "initial responses decode", str(e))
        s.close()
        return 1
    names = set(addrs)
    want = {UID + "web-1", UID + "web-2", UID + "client", SVC}
    p = []
    if names != want:
        p.append("names %s, want %s" % (sorted(names), sorted(want)))
    if any(not v for v, _ in addrs.values()):
        p.append("empty version on: %s" % [n for n, (v, _) in addrs.items() if not v])
    if not ra.nonce or not rz.nonce or ra.nonce == rz.nonce:
        p.append("nonces %r / %r must be non-empty and distinct" % (ra.nonce, rz.nonce))
    if ra.removed_resources:
        p.append("initial response removes %s" % list(ra.removed_resources))
    check("initial Address response: 3 pods + 1 service by name, versions and nonce set", p)
    if UID + "web-1" in addrs:
        check("Address web-1 decodes as the YAML pod (uid, name, ns, 4-byte IP, sa, node, HBONE, 80->8080)",
              check_workload("web-1", addrs[UID + "web-1"][1], "10.99.1.11", "web", True))
    if UID + "client" in addrs:
        check("Address client decodes as the YAML pod (sa client, no service)",
              check_workload("client", addrs[UID + "client"][1], "10.99.1.13", "client", False))
    if SVC in addrs:
        check("Address %s decodes as the YAML service (hostname, VIP, port 80)" % SVC, check_service(addrs[SVC][1]))
    p = []
    if set(pols) != {POLICY}:
        p.append("names %s, want ['%s']" % (sorted(pols), POLICY))
    else:
        p += check_policy(pols[POLICY][1])
    check("initial Authorization response: %s, DENY principal cluster.local/ns/demo/sa/client" % POLICY, p)
    st.apply(ra)
    st.apply(rz)
    s.send(ack(ra))
    s.send(ack(rz))
    extra = s.drain(2.0)
    result(not extra, "ACK of both types: nothing resent within 2s", "\n".join(summary(r) for r in extra))

    # ---- A3..A6: edits push deltas ----
    def expect_delta(what, type_url, updated, removed, check_fn=None):
        r = expect_push(s, type_url, what)
        if r is None:
            return None
        p = []
        got_u = sorted(x.name for x in r.resources)
        if got_u != sorted(updated):
            p.append("resources %s, want %s" % (got_u, sorted(updated)))
        if sorted(r.removed_resources) != sorted(removed):
            p.append("removed_resources %s, want %s" % (sorted(r.removed_resources), sorted(removed)))
        if not p and check_fn:
            try:
                p += check_fn(decode(r))
            except Exception as e:
                p.append("decode: %s" % e)
        check(what, p)
        st.apply(r)
        return r

    # A second subscriber (Address only) must see the same push.
    sb = AdsStream(ch, good_md)
    sb.send(initial(ADDRESS_URL, node))
    rb = sb.recv(PUSH_WAIT, ADDRESS_URL)
    result(rb is not None and len(rb.resources) == 4, "a second subscriber gets the full Address state",
           summary(rb))
    if rb:
        sb.send(ack(rb))

    relabel_web2(a.dir)
    r = expect_delta("label change on web-2 pushes a delta with only web-2, now outside the service",
                     ADDRESS_URL, [UID + "web-2"], [],
                     lambda d: check_workload("web-2", d[UID + "web-2"][1], "10.99.1.12", "web", False))
    if r:
        s.send(ack(r))
    rb = sb.recv(PUSH_WAIT, ADDRESS_URL)
    result(rb is not None and [x.name for x in rb.resources] == [UID + "web-2"],
           "the second subscriber gets the same delta", summary(rb))
    extra = sb.drain(0.5)
    result(not extra, "the second subscriber (Address only) gets nothing else, no Authorization",
           "\n".join(summary(x) for x in extra))
    sb.close()

    write_pod(a.dir, "web-3", "10.99.1.14")
    r = expect_delta("a new pod file pushes a delta with only web-3", ADDRESS_URL, [UID + "web-3"], [],
                     lambda d: check_workload("web-3", d[UID + "web-3"][1], "10.99.1.14", "web", True))
    if r:
        s.send(ack(r))

    os.unlink(os.path.join(a.dir, "authz-deny-client.yaml"))
    r = expect_delta("deleting the policy file pushes removed_resources [%s]" % POLICY, AUTHZ_URL, [], [POLICY])
    if r:
        s.send(ack(r))

    os.unlink(os.path.join(a.dir, "pod-web-3.yaml"))
    r = expect_delta("deleting a pod file pushes removed_resources [web-3]", ADDRESS_URL, [], [UID + "web-3"])
    if r:
        s.send(ack(r))
    extra = [x for x in s.drain(1.0)]
    result(not extra, "no unexpected pushes after the edits", "\n".join(summary(x) for x in extra))

    # ---- A7: NACK ----
    write_pod(a.dir, "web-4", "10.99.1.15")
    r = expect_push(s, ADDRESS_URL, "push for web-4 (to be NACKed)")
    if r:
        st.apply(r)  # the client keeps its own view; versions of a NACKed push are irrelevant here
        s.send(nack(r, "interop test: rejecting %s on purpose" % [x.name for x in r.resources]))
        extra = s.drain(3.0)
        result(not extra, "a NACK is not answered with a resend (nothing within 3s)",
               "\n".join(summary(x) for x in extra))
        write_pod(a.dir, "web-5", "10.99.1.16")
        r2 = expect_push(s, ADDRESS_URL, "after the NACK, the next change (web-5) is still pushed")
        if r2:
            got = {x.name for x in r2.resources}
            result(UID + "web-5" in got and not r2.removed_resources,
                   "after the NACK, the next change (web-5) is still pushed", summary(r2))
            st.apply(r2)
            s.send(ack(r2))
        extra = s.drain(1.5)
        result(not extra, "ACK after the NACK: nothing resent", "\n".join(summary(x) for x in extra))

    # ---- A8: reconnect with initial_resource_versions ----
    # The versions known before two more edits; the still-open stream tells us when the server
    # has seen both edits (its pushes are not applied to this state), then we reconnect.
    known_a = dict(st.v[ADDRESS_URL])
    known_z = dict(st.v[AUTHZ_URL])
    os.unlink(os.path.join(a.dir, "pod-web-5.yaml"))
    write_pod(a.dir, "web-6", "10.99.1.17")
    seen_add, seen_del = False, False
    end = time.monotonic() + PUSH_WAIT
    while not (seen_add and seen_del) and time.monotonic() < end:
        r = s.recv(end - time.monotonic(), ADDRESS_URL)
        if r is None:
            break
        seen_add |= any(x.name == UID + "web-6" for x in r.resources)
        seen_del |= UID + "web-5" in r.removed_resources
        s.send(ack(r))
    result(seen_add and seen_del, "the edits made before the reconnect were pushed (web-6 added, web-5 removed)",
           "added=%s removed=%s" % (seen_add, seen_del))
    s.close()
    p = []
    if UID + "web-1" not in known_a:
        p.append("client state lacks web-1: %s" % known_a)
    known_a[UID + "web-1"] = "stale-version"
    known_a[UID + "ghost"] = "1"
    s2 = AdsStream(ch, good_md)
    s2.send(initial(ADDRESS_URL, node, known_a))
    s2.send(initial(AUTHZ_URL, node, known_z))
    ra = s2.recv(PUSH_WAIT, ADDRESS_URL)
    rz = s2.recv(PUSH_WAIT, AUTHZ_URL)
    if ra is None:
        result(False, "reconnect: Address answered", "no response (ended=%s %s %s)" % (s2.ended, s2.code, s2.details))
    else:
        got_u = sorted(x.name for x in ra.resources)
        want_u = sorted([UID + "web-1", UID + "web-6"])
        result(got_u == want_u and not p,
               "reconnect with initial_resource_versions: only web-6 (new) and web-1 (stale version) are sent",
               "got %s, want %s %s" % (got_u, want_u, "; ".join(p)))
        got_r = sorted(ra.removed_resources)
        want_r = sorted([UID + "web-5", UID + "ghost"])
        result(got_r == want_r, "reconnect: removed_resources lists web-5 (deleted meanwhile) and an unknown name",
               "got %s, want %s" % (got_r, want_r))
        s2.send(ack(ra))
    if rz is None:
        result(False, "reconnect: Authorization answered although nothing changed (readiness needs it)",
               "no response within %.0fs" % PUSH_WAIT)
    else:
        result(not rz.resources and not rz.removed_resources,
               "reconnect: Authorization answered, empty (no policies, none known)", summary(rz))
        s2.send(ack(rz))
    s2.close()
    return interop.exit_code()


if __name__ == "__main__":
    interop.finish(main())
