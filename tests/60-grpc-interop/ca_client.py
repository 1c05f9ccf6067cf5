#!/usr/bin/env python3
"""ca_client.py - case C: an independent Istio CA client against `controlplane serve`.

CreateCertificate through grpcio's generic unary_unary with message classes compiled from our
proto/istio/v1/auth/ca.proto; CSRs made by `openssl req` (EC P-256, URI SAN). Checks:
  - a node agent (trusted istio-system/ztunnel) impersonating a pod on its own node gets a chain:
    leaf first, root last (= the CA's root-cert.pem), leaf SAN = the identity, leaf key = CSR
    key, lifetime = validity_duration, `openssl verify` passes against root-cert.pem;
  - a workload asking for its own identity (no impersonation) gets one too;
  - impersonation of a pod on another node, by an untrusted caller, or with a CSR naming another
    identity is refused (PERMISSION_DENIED / INVALID_ARGUMENT), a bad token is UNAUTHENTICATED,
    a garbage CSR is INVALID_ARGUMENT;
  - validity_duration 0 means the default TTL, an excessive one is capped.
Prints PASS/FAIL lines; exit 1 when anything failed.
"""
import argparse
import tempfile

import grpc

import certs
import interop
from interop import CA_METHOD, check, result

TD = "cluster.local"


def spiffe(ns, sa):
    return "spiffe://%s/ns/%s/sa/%s" % (TD, ns, sa)


def create_certificate(channel, csr_pem, ttl_seconds, token, impersonate=None, timeout=10):
    """-> (StatusCode, details, [PEM...])."""
    call = channel.unary_unary(CA_METHOD, request_serializer=interop.ca_pb2.IstioCertificateRequest.SerializeToString,
                               response_deserializer=interop.ca_pb2.IstioCertificateResponse.FromString)
    req = interop.ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=ttl_seconds)
    if impersonate:
        req.metadata.fields["ImpersonatedIdentity"].string_value = impersonate
    md = [("authorization", "Bearer " + token)] if token is not None else []
    try:
        resp = call(req, metadata=md, timeout=timeout)
        return grpc.StatusCode.OK, "", list(resp.cert_chain)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", []


def check_chain(chain, identity, csr_key_pub, root_path, ttl_seconds):
    """Problems with an issued chain (empty list = good)."""
    p = []
    if len(chain) < 2:
        return ["chain has %d certificates, want leaf..root (>= 2)" % len(chain)]
    # Each entry must be exactly one PEM certificate.
    for i, c in enumerate(chain):
        if len(certs.split_pem(c)) != 1:
            p.append("cert_chain[%d] holds %d PEM certificates, want 1" % (i, len(certs.split_pem(c))))
    try:
        leaf = certs.cert_info(chain[0])
    except Exception as e:
        return p + ["leaf unreadable: %s" % e]
    if leaf["uris"] != [identity]:
        p.append("leaf URI SANs %s, want [%s]" % (leaf["uris"], identity))
    if leaf["is_ca"]:
        p.append("leaf is a CA certificate")
    if leaf["pubkey"] != csr_key_pub:
        p.append("leaf public key differs from the CSR's")
    life = (leaf["not_after"] - leaf["not_before"]).total_seconds()
    # Allow a backdated notBefore (clock skew margin) of up to 10 minutes.
    if not (ttl_seconds - 5 <= life <= ttl_seconds + 600):
        p.append("leaf lifetime %ds, want ~%ds (validity_duration)" % (life, ttl_seconds))
    root = open(root_path).read()
    if not certs.same_cert(chain[-1], root):
        p.append("last certificate is not root-cert.pem")
    for i, c in enumerate(chain[1:-1], 1):
        if not certs.cert_info(c)["is_ca"]:
            p.append("cert_chain[%d] (intermediate) is not a CA" % i)
    ok, out = certs.verify_chain(chain, root_path)
    if not ok:
        p.append("openssl verify: %s" % out)
    return p


def expect_refused(name, got, want_codes):
    code, details, chain = got
    result(code in want_codes, "%s (%s)" % (name, code.name if code else code),
           "got %s %r, chain of %d; want one of %s" % (code, details, len(chain), [c.name for c in want_codes]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--root", required=True, help="root-cert.pem of the control plane's cacerts")
    ap.add_argument("--node-token", required=True, help="istio-system/ztunnel on --node")
    ap.add_argument("--other-node-token", required=True, help="istio-system/ztunnel on another node")
    ap.add_argument("--client-token", required=True, help="demo/client, no node")
    a = ap.parse_args()

    ch = interop.secure_channel(a.addr, a.root)
    try:
        grpc.channel_ready_future(ch).result(timeout=10)
    except grpc.FutureTimeoutError:
        result(False, "TLS channel to the CA at %s ready" % a.addr, "not connected within 10s")
        return 1
    ttl = 3600
    web = spiffe("demo", "web")
    client = spiffe("demo", "client")
    with tempfile.TemporaryDirectory() as d:
        csr_web, key_web = certs.make_csr(web, d)
        pub_web = certs.csr_info(csr_web)["pubkey"]
        csr_client, _ = certs.make_csr(client, d)
        pub_client = certs.csr_info(csr_client)["pubkey"]

        code, details, chain = create_certificate(ch, csr_web, ttl, a.node_token, impersonate=web)
        if code != grpc.StatusCode.OK:
            result(False, "node agent impersonating demo/web (pod on its node) gets a certificate",
                   "%s %r" % (code, details))
        else:
            check("node agent impersonating demo/web (pod on its node) gets a chain: leaf first, root last, "
                  "SAN, key, lifetime, openssl verify", check_chain(chain, web, pub_web, a.root, ttl))

        code, details, chain = create_certificate(ch, csr_client, ttl, a.client_token)
        if code != grpc.StatusCode.OK:
            result(False, "workload demo/client asking for its own identity gets a certificate",
                   "%s %r" % (code, details))
        else:
            check("workload demo/client asking for its own identity gets a verified chain",
                  check_chain(chain, client, pub_client, a.root, ttl))

        for label, asked, lo, hi in (("validity_duration 0 -> the default TTL (24h)", 0, 86400 - 5, 86400 + 600),
                                     ("validity_duration of 10 years is capped (<= 90 days)", 10 * 365 * 86400,
                                      1, 90 * 86400 + 600)):
            code, details, chain = create_certificate(ch, csr_web, asked, a.node_token, impersonate=web)
            if code != grpc.StatusCode.OK:
                result(False, label, "%s %r" % (code, details))
                continue
            leaf = certs.cert_info(chain[0])
            life = (leaf["not_after"] - leaf["not_before"]).total_seconds()
            result(lo <= life <= hi, "%s: leaf lives %ds" % (label, life), "lifetime %ds, want %d..%d" % (life, lo, hi))

        expect_refused("impersonating a pod on another node is PERMISSION_DENIED",
                       create_certificate(ch, csr_web, ttl, a.other_node_token, impersonate=web),
                       [grpc.StatusCode.PERMISSION_DENIED])
        expect_refused("impersonation by an untrusted account (demo/client) is PERMISSION_DENIED",
                       create_certificate(ch, csr_web, ttl, a.client_token, impersonate=web),
                       [grpc.StatusCode.PERMISSION_DENIED])
        expect_refused("a workload asking for another identity is refused",
                       create_certificate(ch, csr_web, ttl, a.client_token),
                       [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.UNAUTHENTICATED])
        expect_refused("impersonation with a CSR naming a different identity is refused",
                       create_certificate(ch, csr_client, ttl, a.node_token, impersonate=web),
                       [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT])
        expect_refused("an unknown token is UNAUTHENTICATED",
                       create_certificate(ch, csr_web, ttl, "not-a-known-token", impersonate=web),
                       [grpc.StatusCode.UNAUTHENTICATED])
        expect_refused("no authorization metadata is UNAUTHENTICATED",
                       create_certificate(ch, csr_web, ttl, None, impersonate=web),
                       [grpc.StatusCode.UNAUTHENTICATED])
        expect_refused("a garbage CSR is INVALID_ARGUMENT",
                       create_certificate(ch, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE "
                                          "REQUEST-----\n", ttl, a.node_token, impersonate=web),
                       [grpc.StatusCode.INVALID_ARGUMENT])
    return interop.exit_code()


if __name__ == "__main__":
    interop.finish(main())
