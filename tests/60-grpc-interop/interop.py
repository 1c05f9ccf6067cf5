"""interop.py - shared plumbing for the gRPC interop scenarios (tests/60-grpc-interop).

Role: load the message classes protoc compiled from OUR proto/ files at test time (directory in
$INTEROP_PB, made by suite.sh; message classes only, no generated service stubs), and offer the
small things every scenario needs: gRPC method paths and type URLs, TLS credentials, result
lines ("PASS: ..." / "FAIL: ..."), bounded waits and HTTP GETs against ztunnel's admin ports.

The gRPC side uses grpcio's generic API only (channel.stream_stream / unary_unary,
method_handlers_generic_handler), so nothing here shares code with the C++ stack: the wire
format is checked against gRPC's reference implementation.

Threading: result() may be called from any thread (one lock); everything else is stateless.
"""
import faulthandler
import os
import queue
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

# suite.sh stops a stuck scenario with SIGTERM (timeout): show where every thread was.
faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)

_pb_dir = os.environ.get("INTEROP_PB")
if not _pb_dir or not os.path.isdir(_pb_dir):
    sys.exit("interop.py: set INTEROP_PB to the protoc --python_out directory")
sys.path.insert(0, _pb_dir)

import grpc  # noqa: E402
from google.protobuf import any_pb2, struct_pb2  # noqa: E402,F401
from google.rpc import status_pb2  # noqa: E402,F401
from envoy.config.core.v3 import base_pb2  # noqa: E402,F401
from envoy.service.discovery.v3 import discovery_pb2  # noqa: E402
from istio.workload import workload_pb2  # noqa: E402,F401
from istio.security import authorization_pb2  # noqa: E402,F401
from istio.v1.auth import ca_pb2  # noqa: E402,F401
import zds_pb2  # noqa: E402,F401

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CA_METHOD = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
CA_SERVICE = "istio.v1.auth.IstioCertificateService"
ADDRESS_URL = "type.googleapis.com/istio.workload.Address"
AUTHZ_URL = "type.googleapis.com/istio.security.Authorization"

# Re-exported for the scenario modules (interop.workload_pb2, ...).
__all__ = ["any_pb2", "struct_pb2", "status_pb2", "base_pb2", "discovery_pb2", "workload_pb2",
           "authorization_pb2", "ca_pb2", "zds_pb2"]

DeltaReq = discovery_pb2.DeltaDiscoveryRequest
DeltaResp = discovery_pb2.DeltaDiscoveryResponse

# ---- results ---------------------------------------------------------------------------------

_lock = threading.Lock()
RESULTS = {"pass": 0, "fail": 0}


def result(ok, name, detail=""):
    """Prints one PASS/FAIL line (suite.sh turns them into its own); returns ok."""
    with _lock:
        if ok:
            RESULTS["pass"] += 1
            print("PASS: " + name, flush=True)
        else:
            RESULTS["fail"] += 1
            print("FAIL: " + name, flush=True)
            for line in str(detail).splitlines()[:40]:
                print("      " + line, flush=True)
    return ok


def check(name, problems):
    """PASS when `problems` (a list of strings) is empty, else FAIL listing them."""
    return result(not problems, name, "\n".join(problems))


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def exit_code():
    return 1 if RESULTS["fail"] else 0


def finish(code):
    """Exit without interpreter teardown: grpcio's shutdown of channels with cancelled streams
    can block, and every result is already printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


# ---- TLS -------------------------------------------------------------------------------------


def read(path):
    with open(path, "rb") as f:
        return f.read()


def client_creds(root_pem_path):
    return grpc.ssl_channel_credentials(root_certificates=read(root_pem_path))


def server_creds(key_path, chain_path):
    return grpc.ssl_server_credentials([(read(key_path), read(chain_path))])


def secure_channel(addr, root_pem_path):
    # The server certificates carry DNS:localhost and IP:127.0.0.1; gRPC checks the target
    # host against them, exactly what ztunnel does with XDS_ADDRESS.
    return grpc.secure_channel(addr, client_creds(root_pem_path))


# ---- helpers ---------------------------------------------------------------------------------


def qget(q, timeout):
    """queue.get with a deadline; None on timeout."""
    try:
        return q.get(timeout=max(0.0, timeout))
    except queue.Empty:
        return None


class Inbox:
    """The messages of one stream direction, handed out per type URL.

    A message of another type read while waiting is kept for a later call; end() marks the end
    of the stream with a None that stays in the queue, so every later call returns at once.
    Filled by a reader thread, read by the test thread.
    """

    def __init__(self):
        self._q = queue.Queue()
        self._stash = []
        self.ended = False

    def put(self, msg):
        self._q.put(msg)

    def end(self):
        self.ended = True
        self._q.put(None)

    def _get(self, deadline):
        m = qget(self._q, deadline - time.monotonic())
        if m is None and self.ended:
            self._q.put(None)  # keep the end marker for later calls
        return m

    def recv(self, timeout, type_url=None):
        """Next message (of type_url if given), None on timeout or at the end of the stream."""
        for i, m in enumerate(self._stash):
            if type_url is None or m.type_url == type_url:
                return self._stash.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self._get(deadline)
            if m is None or type_url is None or m.type_url == type_url:
                return m
            self._stash.append(m)

    def drain(self, timeout):
        """Every message arriving within `timeout` (to assert 'nothing more')."""
        out, self._stash = self._stash, []
        deadline = time.monotonic() + timeout
        while True:
            m = self._get(deadline)
            if m is None:
                return out
            out.append(m)


def wait_until(pred, timeout, step=0.1):
    """Polls pred() until truthy or timeout; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def http_get(url, timeout=2.0):
    """(status, body) or (None, error text); never raises. No proxies (loopback only)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except Exception as e:  # connection refused, timeout, ...
        return None, "%s: %s" % (type(e).__name__, e)


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip_str(b):
    if len(b) == 4:
        return ".".join(str(x) for x in b)
    return b.hex()


def pack_any(msg, type_url):
    a = any_pb2.Any()
    a.type_url = type_url
    a.value = msg.SerializeToString()
    return a


def struct_dict(s):
    """google.protobuf.Struct -> dict of its values (nested Struct/ListValue stay messages)."""
    out = {}
    for k, v in s.fields.items():
        kind = v.WhichOneof("kind")
        out[k] = getattr(v, kind)
    return out


def md_dict(metadata):
    """gRPC metadata (sequence of (key, value)) -> dict key -> list of values."""
    out = {}
    for k, v in metadata or ():
        out.setdefault(k, []).append(v)
    return out
