#!/usr/bin/env python3
"""ca_server.py - case D: an independent Istio CA (grpcio generic unary handler) for our
ztunnel's CA client.

CaServer answers CreateCertificate from a per-call plan the test sets up; the certificates are
signed by `openssl x509 -req` with a test CA (certs.sign). The scenario (main) waits for a
dedicated-mode ztunnel (started by suite.sh with CA_ADDRESS pointing here, no LOCAL_CA_DIR) and
answers: call 1 UNAVAILABLE, call 2 an empty chain, call 3 a leaf for the wrong identity,
call 4 a correct chain.
It checks the request shape (bearer token, clusterid, PEM CSR: EC P-256, SHA-256, one critical
URI SAN = the workload identity; validity_duration = SECRET_TTL; no ImpersonatedIdentity in
dedicated mode; a fresh key per request), that ztunnel retries after the error and rejects the
wrong identity, and that /config_dump lists the identity Available with the serial we issued.

Prints PASS/FAIL lines; exit 1 when anything failed.
"""
import argparse
import json
import queue
import secrets
import threading
from concurrent import futures

import grpc

import certs
import interop
from interop import check, result


class CaServer:
    """plan(call_index, request, metadata) -> ('ok', [pem...]) or ('error', StatusCode, details)."""

    def __init__(self, addr, key_path, chain_path, plan):
        self.calls = queue.Queue()  # (index, request, metadata dict, answer)
        self._plan = plan
        self._n = 0
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.unary_unary_rpc_method_handler(
            self._handle, request_deserializer=interop.ca_pb2.IstioCertificateRequest.FromString,
            response_serializer=interop.ca_pb2.IstioCertificateResponse.SerializeToString)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            interop.CA_SERVICE, {"CreateCertificate": handler}),))
        self.port = self._server.add_secure_port(addr, interop.server_creds(key_path, chain_path))
        if not self.port:
            raise RuntimeError("cannot listen on %s" % addr)
        self._server.start()

    def _handle(self, request, context):
        with self._lock:
            self._n += 1
            n = self._n
        md = interop.md_dict(context.invocation_metadata())
        try:
            answer = self._plan(n, request, md)
        except Exception as e:  # a CSR openssl cannot sign, ...
            answer = ("error", grpc.StatusCode.INVALID_ARGUMENT, "interop CA: %s" % e)
        self.calls.put((n, request, md, answer))
        if answer[0] == "error":
            context.abort(answer[1], answer[2])
        return interop.ca_pb2.IstioCertificateResponse(cert_chain=answer[1])

    def stop(self):
        self._server.stop(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--key", required=True, help="TLS server key")
    ap.add_argument("--chain", required=True, help="TLS server chain")
    ap.add_argument("--ca-cert", required=True, help="signing CA certificate (intermediate)")
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--ca-root", required=True, help="root of the signing CA")
    ap.add_argument("--token", required=True)
    ap.add_argument("--cluster-id", required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--ttl", type=int, required=True, help="expected validity_duration (SECRET_TTL) in seconds")
    ap.add_argument("--admin", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    a = ap.parse_args()

    ca_pem = open(a.ca_cert).read()
    root_pem = open(a.ca_root).read()
    evil = a.identity.rsplit("/", 1)[0] + "/interop-wrong-identity"
    issued = {}  # call index -> serial (hex)

    def plan(n, req, md):
        if n == 1:
            return ("error", grpc.StatusCode.UNAVAILABLE, "interop CA: try again later")
        if n == 2:
            return ("ok", [])
        serial = secrets.token_hex(16)
        ident = evil if n == 3 else a.identity
        leaf = certs.sign(req.csr, ident, a.ca_cert, a.ca_key, serial, req.validity_duration or 86400)
        issued[n] = certs.norm_serial(serial)
        return ("ok", [leaf, ca_pem, root_pem])

    srv = CaServer(a.listen, a.key, a.chain, plan)
    print("LISTENING", flush=True)

    calls = []
    first = interop.qget(srv.calls, a.connect_timeout)
    if first is None:
        result(False, "ztunnel called CreateCertificate", "no call within %.0fs" % a.connect_timeout)
        return 1
    calls.append(first)
    _, req, md, _ = first
    p = []
    if md.get("authorization") != ["Bearer " + a.token]:
        p.append("authorization = %s, want ['Bearer %s'] (token read from the AUTH_TOKEN file)"
                 % (md.get("authorization"), a.token))
    if md.get("clusterid") != [a.cluster_id]:
        p.append("clusterid = %s, want ['%s']" % (md.get("clusterid"), a.cluster_id))
    check("CreateCertificate metadata: authorization Bearer <token file contents>, clusterid", p)
    p = []
    try:
        info = certs.csr_info(req.csr)
        if info["uris"] != [a.identity]:
            p.append("CSR URI SANs %s, want [%s]" % (info["uris"], a.identity))
        if not info["san_critical"]:
            p.append("CSR SAN extension not critical")
        if info["curve"] != "P-256":
            p.append("CSR key curve %s, want P-256" % info["curve"])
        if not info["sig_sha256"]:
            p.append("CSR not signed ecdsa-with-SHA256")
    except Exception as e:
        p.append("CSR is not a valid PEM request: %s; csr=%r" % (e, req.csr[:200]))
    check("request: PEM CSR, EC P-256 / SHA-256, one critical URI SAN = %s" % a.identity, p)
    result(req.validity_duration == a.ttl, "request: validity_duration = SECRET_TTL (%ds)" % a.ttl,
           "validity_duration = %d" % req.validity_duration)
    meta = interop.struct_dict(req.metadata)
    result("ImpersonatedIdentity" not in meta, "request: no ImpersonatedIdentity in dedicated mode (own identity)",
           "metadata = %s" % meta)

    nxt = interop.qget(srv.calls, 10)
    result(nxt is not None, "ztunnel retries after UNAVAILABLE (within 10s)", "no second call")
    if nxt is None:
        return interop.exit_code()
    calls.append(nxt)
    nxt = interop.qget(srv.calls, 10)
    result(nxt is not None, "an empty cert_chain is rejected: ztunnel asks again", "no third call within 10s")
    if nxt is None:
        return interop.exit_code()
    calls.append(nxt)
    nxt = interop.qget(srv.calls, 10)
    result(nxt is not None, "a leaf for the wrong identity (%s) is rejected: ztunnel asks again" % evil,
           "no fourth call within 10s")
    if nxt is not None:
        calls.append(nxt)
    keys = set()
    for _, r, _, _ in calls:
        try:
            keys.add(certs.csr_info(r.csr)["pubkey"])
        except Exception:
            pass
    result(len(keys) == len(calls), "a fresh key for every CSR (%d requests, %d keys)" % (len(calls), len(keys)))

    good = set(v for k, v in issued.items() if k >= 4)
    bad = issued.get(3)

    def cert_entry():
        code, body = interop.http_get(a.admin + "/config_dump", 2.0)
        if code != 200:
            return None
        try:
            d = json.loads(body)
        except ValueError:
            return None
        return next((c for c in d.get("certificates", []) if c.get("identity") == a.identity), None)

    def available():
        e = cert_entry()
        return e if e and e.get("state") == "Available" else None
    e = interop.wait_until(available, 10, 0.2)
    if not e:
        result(False, "config_dump: %s Available" % a.identity, "entry: %s" % json.dumps(cert_entry())[:1500])
    else:
        chain = e.get("certChain") or []
        dec = chain[0].get("serialNumber", "") if chain else ""
        # Upstream's /config_dump prints serial numbers in decimal.
        serial = certs.norm_serial(format(int(dec), "x")) if dec.isdigit() else "not decimal: %r" % dec
        result(serial in good and serial != bad,
               "config_dump: %s Available with the serial this CA issued" % a.identity,
               "config_dump serial %r; issued good %s, wrong-identity %s" % (serial, sorted(good), bad))
    code, body = interop.http_get(a.ready, 2.0)
    result(interop.wait_until(lambda: interop.http_get(a.ready, 1.0)[0] == 200, 5, 0.2),
           "readiness 200 with the CA-issued certificate", "last %s %r" % (code, body))
    srv.stop()
    return interop.exit_code()


if __name__ == "__main__":
    interop.finish(main())
