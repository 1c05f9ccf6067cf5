#!/usr/bin/env python3
"""A Kubernetes API test server for tests/25-kube-controlplane (no real API server can run here).

It speaks the parts of the API the controlplane and kubectl use, as the API documents them
(https://kubernetes.io/docs/reference/using-api/api-concepts/):
  - discovery: /version, /api, /api/v1, /apis, /apis/<group>/<version> (APIResourceList with verbs,
    namespaced, kind, status subresources);
  - list: GET on a collection (all namespaces or one), labelSelector (equality), fieldSelector
    (equality / inequality on dotted paths, e.g. spec.nodeName=node-1), a List with
    metadata.resourceVersion; built-in kinds' items omit kind/apiVersion (as the real server's
    typed lists do), custom resources carry them;
  - watch: ?watch=1 streams chunked JSON lines (ADDED/MODIFIED/DELETED with the object's new
    resourceVersion), BOOKMARK events when allowWatchBookmarks=true, ends at timeoutSeconds; a
    resourceVersion older than the last compaction gets an ERROR event with a 410 Status
    ("too old resource version"), as the real server sends it;
  - create (POST, 201; 409 AlreadyExists), get, update (PUT with resourceVersion: 409 Conflict when
    stale), merge/strategic-merge patch (PATCH), delete; /status subresources for the kinds that
    have one (only status changes there, and the main resource ignores status); Services get a
    clusterIP from 10.96.0.0/16; uid, creationTimestamp, generation are set.
  - bearer token auth (401 Status otherwise);
  - TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews): the tokens given with
    --sa-token TOKEN=NS/SA[@NODE] are service-account tokens of audience istio-ca (bound to a pod
    on NODE: user.extra authentication.kubernetes.io/node-name); anything else is not
    authenticated.
Test controls (not part of the Kubernetes API), under /testctl/:
  POST /testctl/partition  : end every watch of the controlplane (User-Agent ambient-controlplane)
                             and answer its requests 503 until /testctl/heal;
  POST /testctl/compact    : forget the event history (watches from a version older than the
                             current one get 410);
  POST /testctl/heal       : end the partition;
  GET  /testctl/stats      : counters (lists and watches per resource, 410s sent).
Prints "LISTENING <port>" once serving.
"""
import argparse
import base64
import copy
import json
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# plural -> (group, version, kind, namespaced, has_status, builtin)
KINDS = {
    "namespaces": ("", "v1", "Namespace", False, True, True),
    "nodes": ("", "v1", "Node", False, True, True),
    "pods": ("", "v1", "Pod", True, True, True),
    "services": ("", "v1", "Service", True, True, True),
    "serviceaccounts": ("", "v1", "ServiceAccount", True, False, True),
    "endpoints": ("", "v1", "Endpoints", True, False, True),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, False, True),
    "configmaps": ("", "v1", "ConfigMap", True, False, True),
    "secrets": ("", "v1", "Secret", True, False, True),
    "deployments": ("apps", "v1", "Deployment", True, True, True),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, False, True),
    "workloadentries": ("networking.istio.io", "v1", "WorkloadEntry", True, True, False),
    "virtualservices": ("networking.istio.io", "v1", "VirtualService", True, True, False),
    "destinationrules": ("networking.istio.io", "v1", "DestinationRule", True, True, False),
    "authorizationpolicies": ("security.istio.io", "v1", "AuthorizationPolicy", True, True, False),
    "peerauthentications": ("security.istio.io", "v1", "PeerAuthentication", True, True, False),
    "requestauthentications": ("security.istio.io", "v1", "RequestAuthentication", True, True, False),
    "envoyfilters": ("networking.istio.io", "v1alpha3", "EnvoyFilter", True, False, False),
    "ratelimitpolicies": ("ambient.dev", "v1alpha1", "RateLimitPolicy", True, True, False),
    "telemetries": ("telemetry.istio.io", "v1", "Telemetry", True, True, False),
    "gateways": ("gateway.networking.k8s.io", "v1", "Gateway", True, True, False),
    "httproutes": ("gateway.networking.k8s.io", "v1", "HTTPRoute", True, True, False),
    "grpcroutes": ("gateway.networking.k8s.io", "v1", "GRPCRoute", True, True, False),
    # Two groups serve "gateways": the store keys Istio's as "gateways.networking.istio.io";
    # URLs and discovery use the plain plural (url_plural).
    "gateways.networking.istio.io": ("networking.istio.io", "v1", "Gateway", True, True, False),
}


def url_plural(key):
    return key.split(".", 1)[0]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
SHORT = {"namespaces": ["ns"], "pods": ["po"], "services": ["svc"], "serviceaccounts": ["sa"],
         "deployments": ["deploy"], "virtualservices": ["vs"], "destinationrules": ["dr"],
         "gateways": ["gtw"], "nodes": ["no"], "configmaps": ["cm"]}
CP_AGENT = "ambient-controlplane"


def gv(group, version):
    return version if not group else group + "/" + version


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class Store:
    def __init__(self):
        self.lock = threading.Condition()
        self.rv = 100
        self.objects = {p: {} for p in KINDS}   # plural -> key -> obj
        self.events = []                         # (rv, plural, type, obj)
        self.compacted = 0                       # watches from an rv below this get 410
        self.partitioned = False
        self.epoch = 0                           # bumped to end the controlplane's watches
        self.next_ip = 10
        self.stats = {"lists": {}, "watches": {}, "gone": 0}

    def key(self, plural, ns, name):
        return f"{ns}/{name}" if KINDS[plural][3] else name

    def record(self, plural, typ, obj):
        self.events.append((int(obj["metadata"]["resourceVersion"]), plural, typ, copy.deepcopy(obj)))
        self.lock.notify_all()

    def bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)


STORE = Store()


def matches(obj, selector):
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_matches(obj, selector):
    """fieldSelector: comma-separated path=value / path==value / path!=value; a missing field is ""."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        neg = "!=" in term
        path, want = term.split("!=" if neg else ("==" if "==" in term else "="), 1)
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        have = "" if cur is None else (str(cur).lower() if isinstance(cur, bool) else str(cur))
        if (have == want) == neg:
            return False
    return True


def for_list(plural, obj):
    o = copy.deepcopy(obj)
    if KINDS[plural][5]:       # built-in typed lists omit kind/apiVersion in items
        o.pop("kind", None)
        o.pop("apiVersion", None)
    return o


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-test-server"
    token = None
    sa_tokens = {}   # token -> (namespace, serviceaccount, node)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, fmt % args))

    # ---- plumbing ----
    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, code, reason, message, details=None):
        self.send_json(code, status_obj(code, reason, message, details))

    def read_body(self):
        try:
            return json.loads(self.raw_body or b"null")
        except ValueError:
            return None

    def is_cp(self):
        return self.headers.get("User-Agent", "").startswith(CP_AGENT)

    def authorized(self):
        if not self.token:
            return True
        return self.headers.get("Authorization", "") == "Bearer " + self.token

    # Parses /api/v1/... or /apis/g/v/... -> (plural, ns, name, sub) or None.
    def route(self, path):
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        elif len(rest) in (1, 2) and rest[0] == "namespaces":
            pass   # the namespaces collection or one namespace
        if not rest:
            return None
        plural = next((k for k, d in KINDS.items() if url_plural(k) == rest[0] and d[0] == group and d[1] == version),
                      None)
        if plural is None:
            return ("?", group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub and sub != "status"):
            return ("?", group, version, "/".join(rest))
        return (plural, ns, name, sub)

    # ---- discovery ----
    def discovery(self, path):
        if path == "/version":
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-kube-api-test-server",
                    "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        groups = {}
        for plural, (g, v, kind, nsd, st, _) in KINDS.items():
            groups.setdefault((g, v), []).append((plural, kind, nsd, st))
        if path == "/apis":
            out = [{"name": "authentication.k8s.io",
                    "versions": [{"groupVersion": "authentication.k8s.io/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "authentication.k8s.io/v1", "version": "v1"}}]
            for (g, v) in sorted(groups):
                if g:
                    out.append({"name": g, "versions": [{"groupVersion": gv(g, v), "version": v}],
                                "preferredVersion": {"groupVersion": gv(g, v), "version": v}})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}
        parts = [p for p in path.split("/") if p]
        key = None
        if parts == ["api", "v1"]:
            key = ("", "v1")
        elif len(parts) == 3 and parts[0] == "apis":
            key = (parts[1], parts[2])
        elif len(parts) == 2 and parts[0] == "apis":
            for (g, v) in groups:
                if g == parts[1]:
                    return {"kind": "APIGroup", "apiVersion": "v1", "name": g,
                            "versions": [{"groupVersion": gv(g, v), "version": v}],
                            "preferredVersion": {"groupVersion": gv(g, v), "version": v}}
        if key == ("authentication.k8s.io", "v1"):
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authentication.k8s.io/v1",
                    "resources": [{"name": "tokenreviews", "singularName": "tokenreview", "namespaced": False,
                                   "kind": "TokenReview", "verbs": ["create"]}]}
        if key in groups:
            res = []
            for plural, kind, nsd, st in groups[key]:
                singular = kind.lower()
                res.append({"name": url_plural(plural), "singularName": singular, "namespaced": nsd, "kind": kind,
                            "verbs": VERBS, "shortNames": SHORT.get(plural, [])})
                if st:
                    res.append({"name": url_plural(plural) + "/status", "singularName": "", "namespaced": nsd,
                                "kind": kind, "verbs": ["get", "patch", "update"]})
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(*key), "resources": res}
        return None

    # ---- verbs ----
    def do_GET(self):
        self.handle_verb("GET")

    def do_POST(self):
        self.handle_verb("POST")

    def do_PUT(self):
        self.handle_verb("PUT")

    def do_PATCH(self):
        self.handle_verb("PATCH")

    def do_DELETE(self):
        self.handle_verb("DELETE")

    def handle_verb(self, verb):
        u = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        # Read every body (DELETE carries DeleteOptions) so the connection stays in sync.
        n = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(n) if n else b""
        if n and "protobuf" in self.headers.get("Content-Type", ""):
            return self.fail(415, "UnsupportedMediaType", "this test server speaks JSON only")
        if u.path.startswith("/testctl/"):
            return self.testctl(verb, u.path)
        if not self.authorized():
            return self.fail(401, "Unauthorized", "Unauthorized")
        if self.is_cp() and STORE.partitioned:
            return self.fail(503, "ServiceUnavailable", "the server is partitioned from this client (test)")
        if verb == "POST" and u.path == "/apis/authentication.k8s.io/v1/tokenreviews":
            return self.token_review()
        if verb == "GET":
            d = self.discovery(u.path.rstrip("/") or "/")
            if d is not None:
                return self.send_json(200, d)
        r = self.route(u.path)
        if r is None:
            return self.fail(404, "NotFound", "the server could not find the requested resource")
        if r[0] == "?":
            return self.fail(404, "NotFound", f"the server could not find the requested resource ({r[3]})")
        plural, ns, name, sub = r
        if sub == "status" and not KINDS[plural][4]:
            return self.fail(404, "NotFound", f"{plural} has no status subresource")
        if verb == "GET" and name is None:
            if q.get("watch") in ("1", "true"):
                return self.watch(plural, ns, q)
            return self.list(plural, ns, q)
        if verb == "GET":
            return self.get(plural, ns, name)
        if verb == "POST" and name is None:
            return self.create(plural, ns)
        if verb == "PUT" and name:
            return self.update(plural, ns, name, sub)
        if verb == "PATCH" and name:
            return self.patch(plural, ns, name, sub)
        if verb == "DELETE" and name:
            return self.delete(plural, ns, name)
        return self.fail(405, "MethodNotAllowed", f"{verb} is not supported on {self.path}")

    def token_review(self):
        body = self.read_body()
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("token"), str):
            return self.fail(400, "BadRequest", "spec.token: Required value")
        want = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
        status = {"authenticated": False, "error": "invalid bearer token"}
        sa = self.sa_tokens.get(spec["token"])
        if sa and "istio-ca" not in want:
            status = {"authenticated": False, "error": "token audiences don't match"}
        elif sa:
            ns, name, node = sa
            user = {"username": f"system:serviceaccount:{ns}:{name}", "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, ns + name)),
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}
            if node:
                user["extra"] = {"authentication.kubernetes.io/node-name": [node],
                                 "authentication.kubernetes.io/pod-name": [name + "-pod"]}
            status = {"authenticated": True, "user": user, "audiences": ["istio-ca"]}
        with STORE.lock:
            STORE.stats["tokenreviews"] = STORE.stats.get("tokenreviews", 0) + 1
        self.send_json(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                             "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    def testctl(self, verb, path):
        with STORE.lock:
            if path == "/testctl/partition":
                STORE.partitioned = True
                STORE.epoch += 1
                STORE.lock.notify_all()
            elif path == "/testctl/heal":
                STORE.partitioned = False
            elif path == "/testctl/compact":
                STORE.compacted = STORE.rv
                STORE.events = []
            elif path != "/testctl/stats":
                return self.fail(404, "NotFound", path)
            return self.send_json(200, {"rv": STORE.rv, "compacted": STORE.compacted, **STORE.stats})

    def list(self, plural, ns, q):
        g, v, kind, nsd, _, _ = KINDS[plural]
        sel = q.get("labelSelector", "")
        fsel = q.get("fieldSelector", "")
        limit = int(q.get("limit", "0") or 0)
        cont = q.get("continue", "")
        with STORE.lock:
            if cont:
                # Our continue token: "<list rv>:<next key>". As the API server: a token whose
                # snapshot was compacted away is 410 Expired.
                try:
                    rv_s, after = base64.urlsafe_b64decode(cont.encode()).decode().split(":", 1)
                    rv = int(rv_s)
                except Exception:
                    return self.send_json(400, status_obj(400, "BadRequest", "invalid continue token"))
                if rv < STORE.compacted:
                    return self.send_json(410, status_obj(410, "Expired", "the continue token is too old"))
            else:
                rv, after = STORE.rv, ""
            keys = [k for k, o in sorted(STORE.objects[plural].items())
                    if k > after and (ns is None or o["metadata"].get("namespace") == ns) and matches(o, sel)
                    and field_matches(o, fsel)]
            page = keys[:limit] if limit > 0 else keys
            items = [for_list(plural, STORE.objects[plural][k]) for k in page]
            meta = {"resourceVersion": str(rv)}
            if limit > 0 and len(keys) > limit:
                meta["continue"] = base64.urlsafe_b64encode(f"{rv}:{page[-1]}".encode()).decode()
                meta["remainingItemCount"] = len(keys) - limit
            if self.is_cp():
                stat = "lists" if not cont else "pages"
                STORE.stats.setdefault(stat, {})
                STORE.stats[stat][plural] = STORE.stats[stat].get(plural, 0) + 1
        self.send_json(200, {"kind": kind + "List", "apiVersion": gv(g, v), "metadata": meta, "items": items})

    def watch(self, plural, ns, q):
        g, v, kind, _, _, _ = KINDS[plural]
        sel = q.get("labelSelector", "")
        fsel = q.get("fieldSelector", "")
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = min(int(q.get("timeoutSeconds", "1800") or 1800), 1800)
        rv_param = q.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def end():
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True

        def wanted(o):
            return (ns is None or o["metadata"].get("namespace") == ns) and matches(o, sel) and field_matches(o, fsel)

        cp = self.is_cp()
        with STORE.lock:
            epoch = STORE.epoch
            if cp:
                STORE.stats["watches"][plural] = STORE.stats["watches"].get(plural, 0) + 1
            if rv_param in ("", "0"):
                # "Start at most recent": synthetic ADDED for every current object.
                pending = [("ADDED", copy.deepcopy(o)) for _, o in sorted(STORE.objects[plural].items()) if wanted(o)]
                last = STORE.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError:
                    last = -1
                if last < STORE.compacted:
                    STORE.stats["gone"] += 1
                    gone = status_obj(410, "Expired", f"too old resource version: {rv_param} ({STORE.compacted})")
                    pending = None
                else:
                    pending = []
        try:
            if pending is None:
                chunk({"type": "ERROR", "object": gone})
                return end()
            for typ, o in pending:
                chunk({"type": typ, "object": o})
            deadline = time.time() + timeout
            next_bookmark = time.time() + 1.0
            while True:
                with STORE.lock:
                    # Taken with `out`, before any wait: events arriving during the wait are
                    # newer than rv_now and go out on the next round.
                    rv_now = STORE.rv
                    out = [(t, o) for (erv, p, t, o) in STORE.events if erv > last and p == plural]
                    if out:
                        last = max(erv for (erv, p, _, _) in STORE.events if erv > last and p == plural)
                    elif cp and STORE.epoch != epoch:
                        return end()
                    elif time.time() >= deadline:
                        return end()
                    else:
                        STORE.lock.wait(timeout=0.2)
                        out = None
                if out:
                    for t, o in out:
                        if wanted(o):
                            chunk({"type": t, "object": o})
                if bookmarks and time.time() >= next_bookmark:
                    # Every event of this resource up to rv_now was collected above, so the
                    # stream is complete up to it.
                    next_bookmark = time.time() + 1.0
                    last = max(last, rv_now)
                    chunk({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": gv(g, v),
                                                          "metadata": {"resourceVersion": str(last)}}})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def get(self, plural, ns, name):
        with STORE.lock:
            o = STORE.objects[plural].get(STORE.key(plural, ns, name))
            o = copy.deepcopy(o)
        if o is None:
            return self.fail(404, "NotFound", f'{plural} "{name}" not found',
                             {"name": name, "kind": plural})
        self.send_json(200, o)

    def create(self, plural, ns):
        g, v, kind, nsd, _, _ = KINDS[plural]
        body = self.read_body()
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return self.fail(400, "BadRequest", "metadata: required")
        md = body["metadata"]
        name = md.get("name")
        if not name:
            return self.fail(422, "Invalid", f"{kind}: metadata.name: Required value")
        if nsd:
            if ns is None:
                return self.fail(400, "BadRequest", "a namespaced resource is created in its namespace path")
            if md.get("namespace", ns) != ns:
                return self.fail(400, "BadRequest", "metadata.namespace does not match the path")
            md["namespace"] = ns
        body["kind"], body["apiVersion"] = kind, gv(g, v)
        with STORE.lock:
            k = STORE.key(plural, ns, name)
            if k in STORE.objects[plural]:
                return self.fail(409, "AlreadyExists", f'{plural} "{name}" already exists',
                                 {"name": name, "kind": plural})
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now()
            md["generation"] = 1
            md.pop("resourceVersion", None)
            if plural == "services":
                spec = body.setdefault("spec", {})
                if not spec.get("clusterIP"):
                    spec["clusterIP"] = f"10.96.{STORE.next_ip // 250}.{STORE.next_ip % 250 + 1}"
                    spec["clusterIPs"] = [spec["clusterIP"]]
                    STORE.next_ip += 1
            STORE.bump(body)
            STORE.objects[plural][k] = body
            STORE.record(plural, "ADDED", body)
            out = copy.deepcopy(body)
        self.send_json(201, out)

    def store_update(self, plural, k, new, old):
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        STORE.bump(new)
        STORE.objects[plural][k] = new
        STORE.record(plural, "MODIFIED", new)

    def update(self, plural, ns, name, sub):
        body = self.read_body()
        if not isinstance(body, dict):
            return self.fail(400, "BadRequest", "body: not an object")
        with STORE.lock:
            k = STORE.key(plural, ns, name)
            old = STORE.objects[plural].get(k)
            if old is None:
                return self.fail(404, "NotFound", f'{plural} "{name}" not found')
            want = (body.get("metadata") or {}).get("resourceVersion")
            if want and want != old["metadata"]["resourceVersion"]:
                return self.fail(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": '
                                 'the object has been modified; please apply your changes to the latest version and try again')
            new = copy.deepcopy(old)
            if sub == "status":
                new["status"] = body.get("status")
            else:
                keep_status = old.get("status")
                new = copy.deepcopy(body)
                for f in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                    if f in old["metadata"]:
                        new.setdefault("metadata", {})[f] = old["metadata"][f]
                new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
                if KINDS[plural][4]:
                    new["status"] = keep_status
                    if keep_status is None:
                        new.pop("status", None)
            self.store_update(plural, k, new, old)
            out = copy.deepcopy(new)
        self.send_json(200, out)

    def patch(self, plural, ns, name, sub):
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";")[0] not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            return self.fail(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        body = self.read_body()
        if not isinstance(body, dict):
            return self.fail(400, "BadRequest", "patch: not a JSON object")
        with STORE.lock:
            k = STORE.key(plural, ns, name)
            old = STORE.objects[plural].get(k)
            if old is None:
                return self.fail(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})
            if sub == "status":
                body = {"status": body.get("status")}
            elif KINDS[plural][4]:
                body.pop("status", None)
            body.get("metadata", {}).pop("resourceVersion", None)
            new = merge_patch(old, body)
            for f in ("uid", "creationTimestamp", "name", "namespace"):
                if f in old["metadata"]:
                    new["metadata"][f] = old["metadata"][f]
            if new == old:
                out = copy.deepcopy(old)
            else:
                self.store_update(plural, k, new, old)
                out = copy.deepcopy(new)
        self.send_json(200, out)

    def delete(self, plural, ns, name):
        with STORE.lock:
            k = STORE.key(plural, ns, name)
            old = STORE.objects[plural].pop(k, None)
            if old is None:
                return self.fail(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})
            STORE.bump(old)
            STORE.record(plural, "DELETED", old)
            out = copy.deepcopy(old)
        self.send_json(200, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--token")
    ap.add_argument("--sa-token", action="append", default=[], help="TOKEN=NS/SA[@NODE]")
    a = ap.parse_args()
    Handler.token = a.token
    for t in a.sa_token:
        tok, who = t.split("=", 1)
        sa, _, node = who.partition("@")
        ns, name = sa.split("/", 1)
        Handler.sa_tokens[tok] = (ns, name, node)
    srv = ThreadingHTTPServer((a.listen, a.port), Handler)
    srv.daemon_threads = True
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("LISTENING %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
