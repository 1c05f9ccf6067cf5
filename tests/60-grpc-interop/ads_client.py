"""ads_client.py - an independent delta-ADS client (grpcio generic API) for the interop tests.

AdsStream wraps one DeltaAggregatedResources call: requests are fed from a queue (so the test
decides when to ACK/NACK), responses are read on a thread into a queue and handed out per type
URL. Used by xds_client.py (case A, against `controlplane serve`) and selftest.py.

Threading: one reader thread per stream; send()/recv() from the test thread only.
"""
import queue
import threading

import grpc

import interop
from interop import DeltaReq, DeltaResp, ADS_METHOD


class AdsStream:
    def __init__(self, channel, metadata, timeout=300):
        self._out = queue.Queue()
        self._in = interop.Inbox()
        self.code = None  # grpc.StatusCode once ended
        self.details = ""
        call = channel.stream_stream(ADS_METHOD, request_serializer=DeltaReq.SerializeToString,
                                     response_deserializer=DeltaResp.FromString)
        self._call = call(self._requests(), metadata=metadata, timeout=timeout)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self):
        while True:
            r = self._out.get()
            if r is None:
                return
            yield r

    def _read(self):
        try:
            for resp in self._call:
                self._in.put(resp)
            self.code, self.details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details() or ""
        self._in.end()

    def send(self, req):
        self._out.put(req)

    def recv(self, timeout, type_url=None):
        """Next response (of type_url if given) or None on timeout / end of stream."""
        return self._in.recv(timeout, type_url)

    def drain(self, timeout):
        """All responses arriving within `timeout` (used to assert 'nothing more')."""
        return self._in.drain(timeout)

    @property
    def ended(self):
        return self._in.ended

    def wait_end(self, timeout):
        interop.wait_until(lambda: self.ended, timeout)
        return self.ended

    def close(self):
        self._out.put(None)
        self._call.cancel()


def initial(type_url, node=None, versions=None):
    r = DeltaReq(type_url=type_url)
    if node is not None:
        r.node.CopyFrom(node)
    for k, v in (versions or {}).items():
        r.initial_resource_versions[k] = v
    return r


def ack(resp):
    return DeltaReq(type_url=resp.type_url, response_nonce=resp.nonce)


def nack(resp, message, code=3):
    r = DeltaReq(type_url=resp.type_url, response_nonce=resp.nonce)
    r.error_detail.code = code
    r.error_detail.message = message
    return r


def decode(resp):
    """{name: (version, decoded message)} for a response's resources; raises on a bad Any."""
    out = {}
    for res in resp.resources:
        if resp.type_url == interop.ADDRESS_URL:
            msg = interop.workload_pb2.Address()
        else:
            msg = interop.authorization_pb2.Authorization()
        if res.resource.type_url != resp.type_url:
            raise ValueError("resource %s: Any type_url %r != response type_url %r"
                             % (res.name, res.resource.type_url, resp.type_url))
        msg.ParseFromString(res.resource.value)
        out[res.name] = (res.version, msg)
    return out


def summary(resp):
    """Short text of a response for failure messages."""
    if resp is None:
        return "<no response>"
    return "type=%s nonce=%r resources=%s removed=%s" % (
        resp.type_url.rsplit("/", 1)[-1], resp.nonce,
        ["%s@%s" % (r.name, r.version) for r in resp.resources], list(resp.removed_resources))
