"""ads_server.py - an independent delta-ADS server (grpcio generic handler) for interop tests.

AdsServer listens with TLS and hands every accepted DeltaAggregatedResources stream to the test
as a ServerStream: the test reads the client's requests (with the call's metadata) and decides
what to send, when, and when to end the stream. Nothing is answered automatically, so the test
sees the raw protocol. Used by xds_server.py (case B, against our ztunnel) and selftest.py.

Threading: gRPC runs each handler on its pool; per stream one extra thread reads requests.
ServerStream.send/close/recv are called from the test thread; queues do the hand-over.
"""
import queue
import threading
from concurrent import futures

import grpc

import interop
from interop import DeltaReq, DeltaResp

_CLOSE = object()


class ServerStream:
    def __init__(self, context):
        self.context = context
        self.metadata = interop.md_dict(context.invocation_metadata())
        self.peer = context.peer()
        self.requests = interop.Inbox()
        self._out = queue.Queue()

    def send(self, resp):
        self._out.put(resp)

    def close(self, code=None, details=""):
        """Ends the call: with OK status when code is None, else with that status."""
        self._out.put((_CLOSE, code, details))

    def recv(self, timeout, type_url=None):
        """Next request (of type_url if given), None on timeout or when the client is gone."""
        return self.requests.recv(timeout, type_url)

    def drain(self, timeout):
        return self.requests.drain(timeout)

    @property
    def client_done(self):
        """The request stream ended (half-close, cancel or disconnect)."""
        return self.requests.ended


class AdsServer:
    def __init__(self, addr, key_path, chain_path):
        self.streams = queue.Queue()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.stream_stream_rpc_method_handler(
            self._handle, request_deserializer=DeltaReq.FromString,
            response_serializer=DeltaResp.SerializeToString)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            interop.ADS_SERVICE, {"DeltaAggregatedResources": handler}),))
        self.port = self._server.add_secure_port(addr, interop.server_creds(key_path, chain_path))
        if not self.port:
            raise RuntimeError("cannot listen on %s" % addr)
        self._server.start()

    def _handle(self, request_iterator, context):
        st = ServerStream(context)

        def reader():
            try:
                for req in request_iterator:
                    st.requests.put(req)
            except Exception:  # cancelled / reset: the stream is over either way
                pass
            st.requests.end()

        threading.Thread(target=reader, daemon=True).start()
        self.streams.put(st)
        while context.is_active():
            item = interop.qget(st._out, 0.2)
            if item is None:
                continue
            if isinstance(item, tuple) and item[0] is _CLOSE:
                if item[1] is not None:
                    context.abort(item[1], item[2])
                return
            yield item

    def next_stream(self, timeout):
        return interop.qget(self.streams, timeout)

    def stop(self):
        self._server.stop(0.5)


def response(type_url, nonce, resources=(), removed=()):
    """resources: iterable of (name, version, message)."""
    r = DeltaResp(type_url=type_url, nonce=nonce)
    for name, version, msg in resources:
        res = r.resources.add()
        res.name = name
        res.version = version
        res.resource.CopyFrom(interop.pack_any(msg, type_url))
    r.removed_resources.extend(removed)
    return r
