#!/usr/bin/env python3
"""tests/lib/istioctl_dump_check.py - decode a ztunnel /config_dump the way istioctl does.

Role: `istioctl ztunnel-config {workloads,services,policies,certificates,connections,all}`
unmarshals ztunnel's /config_dump into Go structs (istioctl/pkg/writer/ztunnel/configdump/
api.go) and prints tables from them. This checker restates those structs field by field as a
schema with Go's encoding/json rules (a string field takes a string or null, an integer field
an integral number, map[uint16]... keys must parse as uint16, a struct takes an object or
null, unknown fields are ignored) and then checks the values the tables print: decimal serial
numbers (big.Int SetString base 10), base64 PEM, RFC 3339 times, Pending/Up proxy states, the
connections lists, plus upstream ztunnel's top-level sections (version object, staticConfig,
stagedServices, config names with {secs, nanos} durations).

Usage:
  istioctl_dump_check.py [--connection DIR:FIELD=VALUE ...] < dump.json
      exit 0 and print "ok ..." when the dump decodes; else print every mismatch, exit 1.
      --connection inbound:actualDst=10.0.0.2:9000 also requires such a live connection in
      some workloadState entry.
  istioctl_dump_check.py --self-test < dump.json
      the dump must pass, and each of a set of known-wrong variants of it (hex serial, raw PEM,
      "running" state, version string, our old config names...) must fail: proof the checker
      can fail.

Threading: a single-threaded script. Invariants: reads only stdin, writes only stdout.
"""
import base64
import copy
import datetime
import ipaddress
import json
import re
import sys

# ---- Go encoding/json decodability ---------------------------------------------------------
STR, INT, UINT16, BOOL, ANY = "string", "int", "uint16", "bool", "any"


def List(t):
    return ("list", t)


def Map(k, v):
    return ("map", k, v)


LOCALITY = {"region": STR, "zone": STR, "subzone": STR}
GATEWAY = {"destination": STR}
APP_TUNNEL = {"protocol": STR, "port": UINT16}
WORKLOAD = {
    "uid": STR, "workloadIps": List(STR), "waypoint": GATEWAY, "networkGateway": GATEWAY,
    "protocol": STR, "name": STR, "namespace": STR, "serviceAccount": STR, "workloadName": STR,
    "workloadType": STR, "canonicalName": STR, "canonicalRevision": STR, "clusterId": STR,
    "trustDomain": STR, "locality": LOCALITY, "node": STR, "network": STR, "status": STR,
    "hostname": STR, "applicationTunnel": APP_TUNNEL, "authorizationPolicies": List(STR),
}
LOAD_BALANCER = {"mode": STR, "routingPreferences": List(STR), "healthPolicy": STR}
ENDPOINT = {"workloadUid": STR, "service": STR, "address": STR, "port": Map(UINT16, UINT16)}
SERVICE = {
    "name": STR, "namespace": STR, "hostname": STR, "vips": List(STR), "ports": Map(STR, INT),
    "loadBalancer": LOAD_BALANCER, "waypoint": GATEWAY, "endpoints": Map(STR, ENDPOINT),
    "subjectAltNames": List(STR), "ipFamilies": STR,
}
# Upstream ztunnel's own Service / Endpoint serialisation (src/state/service.rs: camelCase,
# `cidrVips` skipped when empty, waypoint/loadBalancer/ipFamilies skipped when unset). Its
# Service has no `visibility` or `weightedWaypoints`, so a dump showing them is not upstream's.
UPSTREAM_SERVICE_KEYS = {"name", "namespace", "hostname", "vips", "cidrVips", "ports", "endpoints",
                         "subjectAltNames", "waypoint", "loadBalancer", "ipFamilies", "canonical"}
UPSTREAM_ENDPOINT_KEYS = {"workloadUid", "port", "status"}
STRING_MATCH = {"Exact": STR, "Suffix": STR, "Prefix": STR, "Presence": ANY}
SA_MATCH = {"namespace": STR, "serviceAccount": STR}
POLICY_MATCH = {
    "namespaces": List(STRING_MATCH), "notNamespaces": List(STRING_MATCH),
    "principals": List(STRING_MATCH), "notPrincipals": List(STRING_MATCH),
    "sourceIps": List(STR), "notSourceIps": List(STR), "destinationIps": List(STR),
    "notDestinationIps": List(STR), "destinationPorts": List(UINT16),
    "notDestinationPorts": List(UINT16), "serviceAccounts": List(SA_MATCH),
    "notServiceAccounts": List(SA_MATCH),
}
POLICY = {"name": STR, "namespace": STR, "scope": STR, "action": STR,
          "rules": List(List(List(POLICY_MATCH)))}
CERT = {"pem": STR, "serialNumber": STR, "validFrom": STR, "expirationTime": STR}
CERTS_DUMP = {"identity": STR, "state": STR, "certChain": List(CERT)}
CONNECTION = {"src": STR, "originalDst": STR, "actualDst": STR}
WORKLOAD_STATE = {
    "state": STR,
    "connections": {"inbound": List(CONNECTION), "outbound": List(CONNECTION)},
    "info": {"name": STR, "namespace": STR, "trustDomain": STR, "serviceAccount": STR},
}
ZTUNNEL_DUMP = {
    "workloads": List(WORKLOAD), "services": List(SERVICE), "policies": List(POLICY),
    "certificates": List(CERTS_DUMP), "workloadState": Map(STR, WORKLOAD_STATE),
}


def decode(value, schema, path, errors):
    """Go json.Unmarshal of `value` into a field of type `schema`; records why it would fail."""
    if schema == ANY or value is None:  # null leaves any Go field at its zero value
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            errors.append("%s: want an object, got %s" % (path, type(value).__name__))
            return
        for k, sub in schema.items():
            if k in value:
                decode(value[k], sub, path + "." + k, errors)
        return
    if isinstance(schema, tuple) and schema[0] == "list":
        if not isinstance(value, list):
            errors.append("%s: want an array, got %s" % (path, type(value).__name__))
            return
        for i, v in enumerate(value):
            decode(v, schema[1], "%s[%d]" % (path, i), errors)
        return
    if isinstance(schema, tuple) and schema[0] == "map":
        if not isinstance(value, dict):
            errors.append("%s: want an object (map), got %s" % (path, type(value).__name__))
            return
        for k, v in value.items():
            if schema[1] == UINT16 and not (k.isdigit() and int(k) < 65536):
                errors.append("%s: map key %r is not a uint16" % (path, k))
            decode(v, schema[2], "%s[%s]" % (path, k), errors)
        return
    if schema == STR and not isinstance(value, str):
        errors.append("%s: want a string, got %r" % (path, value))
    elif schema == BOOL and not isinstance(value, bool):
        errors.append("%s: want a bool, got %r" % (path, value))
    elif schema in (INT, UINT16):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append("%s: want an integer, got %r" % (path, value))
        elif schema == UINT16 and not 0 <= value < 65536:
            errors.append("%s: %r does not fit a uint16" % (path, value))


# ---- what the tables print --------------------------------------------------------------------
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_cert(c, path, errors, now, must_be_valid):
    if not re.fullmatch(r"[0-9]+", c.get("serialNumber") or ""):
        errors.append("%s.serialNumber %r is not decimal (istioctl prints <nil>)" % (path, c.get("serialNumber")))
    try:
        pem = base64.b64decode(c.get("pem") or "", validate=True).decode()
        if "-----BEGIN CERTIFICATE-----" not in pem:
            errors.append("%s.pem: base64 decodes, but not to a PEM certificate" % path)
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        errors.append("%s.pem is not base64 of a PEM (%s)" % (path, e))
    for k in ("validFrom", "expirationTime"):
        if not RFC3339.match(c.get(k) or ""):
            errors.append("%s.%s %r is not RFC 3339" % (path, k, c.get(k)))
    if must_be_valid and not errors:
        if not parse_time(c["validFrom"]) < now < parse_time(c["expirationTime"]):
            errors.append("%s: not valid now (VALID CERT would be false)" % path)


def check_semantics(d, errors):
    now = datetime.datetime.now(datetime.timezone.utc)
    for i, w in enumerate(d.get("workloads") or []):
        p = "workloads[%d]" % i
        if not w.get("uid"):
            errors.append(p + ".uid is empty")
        if w.get("protocol") not in ("HBONE", "TCP"):
            errors.append("%s.protocol %r not HBONE|TCP" % (p, w.get("protocol")))
        if w.get("status") not in ("Healthy", "Unhealthy"):
            errors.append("%s.status %r not Healthy|Unhealthy" % (p, w.get("status")))
    for i, s in enumerate(d.get("services") or []):
        p = "services[%d]" % i
        for v in s.get("vips") or []:
            if "/" not in v:
                errors.append("%s.vips %r is not network/ip" % (p, v))
        for uid, ep in (s.get("endpoints") or {}).items():
            if ep.get("workloadUid") != uid:
                errors.append("%s.endpoints[%s].workloadUid is %r" % (p, uid, ep.get("workloadUid")))
    for i, pol in enumerate(d.get("policies") or []):
        p = "policies[%d]" % i
        if pol.get("action") not in ("Allow", "Deny"):
            errors.append("%s.action %r not Allow|Deny" % (p, pol.get("action")))
        if pol.get("scope") not in ("Global", "Namespace", "WorkloadSelector"):
            errors.append("%s.scope %r" % (p, pol.get("scope")))
    for i, c in enumerate(d.get("certificates") or []):
        p = "certificates[%d]" % i
        st = c.get("state") or ""
        if st not in ("Available", "Initializing") and not st.startswith("Unavailable: "):
            errors.append("%s.state %r not Available|Initializing|Unavailable: <why>" % (p, st))
        if st == "Available" and not c.get("certChain"):
            errors.append(p + ": Available without a certChain")
        for j, cert in enumerate(c.get("certChain") or []):
            check_cert(cert, "%s.certChain[%d]" % (p, j), errors, now, st == "Available" and j == 0)
        for j, cert in enumerate(c.get("rootCerts") or []):
            check_cert(cert, "%s.rootCerts[%d]" % (p, j), errors, now, False)
    for uid, ws in (d.get("workloadState") or {}).items():
        p = "workloadState[%s]" % uid
        if ws.get("state") not in ("Pending", "Up"):
            errors.append("%s.state %r not Pending|Up" % (p, ws.get("state")))
        conns = ws.get("connections")
        if not isinstance(conns, dict) or not all(isinstance(conns.get(k), list) for k in ("inbound", "outbound")):
            errors.append(p + ".connections lacks inbound/outbound lists")
        else:
            for k in ("inbound", "outbound"):
                for j, c in enumerate(conns[k]):
                    if not re.match(r"^(\[[0-9a-f:.]+\]|[0-9.]+):\d+$", c.get("src") or ""):
                        errors.append("%s.connections.%s[%d].src %r is not ip:port" % (p, k, j, c.get("src")))
                    if c.get("protocol") not in ("HBONE", "TCP"):
                        errors.append("%s.connections.%s[%d].protocol %r" % (p, k, j, c.get("protocol")))
        info = ws.get("info") or {}
        if not info.get("name") or not info.get("namespace"):
            errors.append(p + ".info lacks name/namespace")


def valid_network_cidr(c):
    """A CIDR VIP as upstream's Service holds it: "network/ip/length", the length below the address
    width (a full-width address is a plain VIP in `vips`)."""
    if not isinstance(c, str) or c.count("/") < 2:
        return False
    _network, rest = c.split("/", 1)
    addr, length = rest.rsplit("/", 1)
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return length.isdigit() and int(length) < ip.max_prefixlen


def check_upstream_sections(d, errors):
    """Upstream ztunnel's own top level (admin.rs ConfigDump), beyond what istioctl decodes."""
    v = d.get("version")
    keys = ("version", "gitRevision", "rustVersion", "buildProfile", "buildStatus", "istioVersion", "cryptoProvider")
    if not isinstance(v, dict):
        errors.append("version: want an object {%s}, got %r" % (", ".join(keys), v))
    else:
        for k in keys:
            if not isinstance(v.get(k), str):
                errors.append("version.%s missing or not a string" % k)
    for i, svc in enumerate(d.get("services") or []):
        extra = sorted(set(svc) - UPSTREAM_SERVICE_KEYS)
        if extra:
            errors.append("services[%d] has keys upstream's Service does not serialise: %s" % (i, ", ".join(extra)))
        for k in ("name", "namespace", "hostname", "vips", "ports", "endpoints", "subjectAltNames", "canonical"):
            if k not in svc:
                errors.append("services[%d].%s missing (upstream always serialises it)" % (i, k))
        if "canonical" in svc and not isinstance(svc["canonical"], bool):
            errors.append("services[%d].canonical %r is not a bool" % (i, svc["canonical"]))
        if svc.get("cidrVips") == []:
            errors.append("services[%d].cidrVips is empty (upstream skips it then)" % i)
        for j, c in enumerate(svc.get("cidrVips") or []):
            if not valid_network_cidr(c):
                errors.append("services[%d].cidrVips[%d] %r is not \"network/ip/length\" with a prefix shorter than the address" % (i, j, c))
        for uid, ep in (svc.get("endpoints") or {}).items():
            extra = sorted(set(ep) - UPSTREAM_ENDPOINT_KEYS)
            if extra or ep.get("status") not in ("Healthy", "Unhealthy"):
                errors.append("services[%d].endpoints[%s] keys/status not upstream's: %r" % (i, uid, ep))
    sc = d.get("staticConfig")
    if not isinstance(sc, dict) or not all(isinstance(sc.get(k), list) for k in ("workloads", "policies", "services")):
        errors.append("staticConfig: want {workloads, policies, services} lists, got %r" % (sc,))
    if not isinstance(d.get("stagedServices"), dict):
        errors.append("stagedServices: want an object")
    cfg = d.get("config")
    if not isinstance(cfg, dict):
        errors.append("config: want an object")
        return
    for k in ("terminationDeadline", "localXdsPath", "localXdsInline", "outboundPort"):
        if k in cfg:
            errors.append("config.%s is our old name, not upstream's" % k)
    if cfg.get("proxyMode") not in ("Shared", "Dedicated"):
        errors.append("config.proxyMode %r not Shared|Dedicated" % cfg.get("proxyMode"))
    for k in ("selfTerminationDeadline", "secretTtl", "poolUnusedReleaseTimeout"):
        dur = cfg.get(k)
        if not (isinstance(dur, dict) and isinstance(dur.get("secs"), int) and isinstance(dur.get("nanos"), int)):
            errors.append("config.%s %r is not a {secs, nanos} duration" % (k, dur))
    for k in ("numWorkerThreads", "windowSize", "connectionWindowSize", "frameSize", "poolMaxStreamsPerConn"):
        if not isinstance(cfg.get(k), int):
            errors.append("config.%s missing or not an integer" % k)
    for k in ("adminAddr", "statsAddr", "readinessAddr", "inboundAddr", "inboundPlaintextAddr", "outboundAddr",
              "dnsProxyAddr", "clusterId", "clusterDomain"):
        if not isinstance(cfg.get(k), str):
            errors.append("config.%s missing or not a string" % k)
    if not isinstance(cfg.get("proxyMetadata"), dict):
        errors.append("config.proxyMetadata: want an object")


def check(d):
    errors = []
    if not isinstance(d, dict):
        return ["the dump is not a JSON object"]
    decode(d, ZTUNNEL_DUMP, "$", errors)
    if errors:
        return errors
    check_semantics(d, errors)
    check_upstream_sections(d, errors)
    return errors


def find_connection(d, want):
    """want = (direction, field, value): some workloadState entry lists such a connection."""
    direction, field, value = want
    for ws in (d.get("workloadState") or {}).values():
        for c in ((ws.get("connections") or {}).get(direction) or []):
            if c.get(field) == value:
                return True
    return False


# Known-wrong variants of a good dump (each must fail).
def mutations(d):
    def first_cert(x):
        for c in x.get("certificates") or []:
            if c.get("certChain"):
                return c["certChain"][0]
        return None

    out = []

    def hexserial(x):
        c = first_cert(x)
        c["serialNumber"] = "%X" % int(c["serialNumber"])
    out.append(("hex serial number", hexserial))

    def rawpem(x):
        c = first_cert(x)
        c["pem"] = base64.b64decode(c["pem"]).decode()
    out.append(("raw PEM", rawpem))
    out.append(("version as a string", lambda x: x.__setitem__("version", "0.1.0")))
    out.append(("old config name", lambda x: x["config"].__setitem__("terminationDeadline", "5000ms")))
    out.append(("duration as a string", lambda x: x["config"].__setitem__("secretTtl", "24h")))
    out.append(("no stagedServices", lambda x: x.pop("stagedServices")))
    out.append(("certChain as an object", lambda x: x["certificates"][0].__setitem__("certChain", {})))
    if x_has_workload_state(d):
        def running(x):
            next(iter(x["workloadState"].values()))["state"] = "running"
        out.append(("state running", running))

        def noconns(x):
            next(iter(x["workloadState"].values())).pop("connections")
        out.append(("no connections", noconns))
    if d.get("services"):
        out.append(("ports value a string", lambda x: x["services"][0].__setitem__("ports", {"80": "8080"})))
        out.append(("service visibility (not upstream's)", lambda x: x["services"][0].__setitem__("visibility", "Public")))
        out.append(("service weightedWaypoints (not upstream's)",
                    lambda x: x["services"][0].__setitem__("weightedWaypoints", [])))
        out.append(("service without canonical", lambda x: x["services"][0].pop("canonical")))
        out.append(("empty cidrVips (upstream skips it)", lambda x: x["services"][0].__setitem__("cidrVips", [])))
        out.append(("cidrVips entry without a length",
                    lambda x: x["services"][0].__setitem__("cidrVips", ["/10.0.0.0"])))
    return out


def x_has_workload_state(d):
    return bool(d.get("workloadState"))


def main(argv):
    d = json.load(sys.stdin)
    if "--self-test" in argv:
        base = check(d)
        if base:
            print("self-test: the dump itself fails:\n  " + "\n  ".join(base))
            return 1
        if not any((c.get("certChain") for c in d.get("certificates") or [])):
            print("self-test: the dump holds no certificate to mutate")
            return 1
        bad = []
        for name, mutate in mutations(d):
            x = copy.deepcopy(d)
            mutate(x)
            if not check(x):
                bad.append(name)
        if bad:
            print("self-test: the checker accepted wrong variants: " + ", ".join(bad))
            return 1
        print("self-test ok: %d wrong variants rejected" % len(mutations(d)))
        return 0
    wants = []
    for i, a in enumerate(argv):
        if a == "--connection" and i + 1 < len(argv):
            direction, rest = argv[i + 1].split(":", 1)
            field, value = rest.split("=", 1)
            wants.append((direction, field, value))
    errors = check(d)
    for w in wants:
        if not find_connection(d, w):
            errors.append("no workloadState connection %s with %s=%s" % w)
    if errors:
        print("\n".join(errors))
        return 1
    print("ok: %d workloads, %d services, %d policies, %d certificates, %d workloadState entries decode as istioctl's"
          % tuple(len(d.get(k) or []) for k in ("workloads", "services", "policies", "certificates", "workloadState")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
