#!/usr/bin/env python3
"""tls_probe.py - counts the ADS streams and CreateCertificate calls that get through TLS.

One grpcio server exposing both DeltaAggregatedResources (held open, never answered) and
CreateCertificate (answered UNAVAILABLE) with the given certificate. Prints LISTENING, waits
--seconds, then prints "STREAMS <n> CALLS <m>" and exits. suite.sh uses it to check that our
ztunnel refuses servers whose certificate does not chain to XDS_ROOT_CA / CA_ROOT_CA or does
not name the address host (unless ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME says otherwise).
"""
import argparse
import threading
import time
from concurrent import futures

import grpc

import interop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--seconds", type=float, default=6.0)
    a = ap.parse_args()
    counts = {"streams": 0, "calls": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def ads(request_iterator, context):
        with lock:
            counts["streams"] += 1
        while context.is_active() and not stop.is_set():
            time.sleep(0.1)
        return
        yield  # a generator: the stream is held open and never answered

    def ca(request, context):
        with lock:
            counts["calls"] += 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "tls probe")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(interop.ADS_SERVICE, {
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                ads, request_deserializer=interop.DeltaReq.FromString,
                response_serializer=interop.DeltaResp.SerializeToString)}),
        grpc.method_handlers_generic_handler(interop.CA_SERVICE, {
            "CreateCertificate": grpc.unary_unary_rpc_method_handler(
                ca, request_deserializer=interop.ca_pb2.IstioCertificateRequest.FromString,
                response_serializer=interop.ca_pb2.IstioCertificateResponse.SerializeToString)}),
    ))
    if not server.add_secure_port(a.listen, interop.server_creds(a.key, a.chain)):
        print("cannot listen on %s" % a.listen, flush=True)
        return 1
    server.start()
    print("LISTENING", flush=True)
    time.sleep(a.seconds)
    stop.set()
    with lock:
        print("STREAMS %d CALLS %d" % (counts["streams"], counts["calls"]), flush=True)
    server.stop(0.5)
    return 0


if __name__ == "__main__":
    interop.finish(main())
