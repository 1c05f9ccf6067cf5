#!/usr/bin/env python3
"""tests/66-waypoint-e2e/grpc_app.py - the gRPC side of the waypoint end-to-end suite: a real
grpcio server in a meshed pod and a real grpcio client in the client pod, so that HTTP/2 with
trailers crosses client -> ztunnel -> waypoint -> ztunnel -> app with the real binaries.

  serve VERSION PORT       h2c gRPC server, generic service calc.Calc (raw bytes messages, no
                           protoc needed):
                             Echo  (unary)  -> b"VERSION echo:<request>", trailer
                                              x-app-trailer=t-<request>; b"fail" aborts with
                                              NOT_FOUND (grpc-status 5) and the same trailer
                             Count (server streaming) -> N messages b"VERSION item-<i>"
                           Every call logs one line: method, request, the :authority the app saw.
  call HOST:PORT           the client: one unary Echo, one server-streaming Count of 5, one Echo
                           that fails; prints one fact per line:
                             UNARY <reply>            TRAILER <key>=<value>
                             STREAM <n> <first>..<last>
                             FAIL <status-code> <details> TRAILER <key>=<value>
                           exit 0 when every call ran to its end (a failing call is expected).

Threading: grpcio's thread pool (4 workers). Invariants: every client call has a deadline, so a
broken path shows as DEADLINE_EXCEEDED, never a hang.
"""
import sys
from concurrent import futures

import grpc


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def serve(version, port):
    def echo(request, context):
        md = dict(context.invocation_metadata())
        log(f"grpc version={version} method=Echo req={request.decode(errors='replace')} "
            f"authority={md.get(':authority', '-')} rid={md.get('x-request-id', '-')}")
        # Set before abort too: trailers travel with an error status as well.
        context.set_trailing_metadata((("x-app-trailer", "t-" + request.decode(errors="replace")),))
        if request == b"fail":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such calculation")
        return version.encode() + b" echo:" + request

    def count(request, context):
        log(f"grpc version={version} method=Count req={request.decode(errors='replace')}")
        for i in range(int(request)):
            yield version.encode() + b" item-%d" % i

    handler = grpc.method_handlers_generic_handler("calc.Calc", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"0.0.0.0:{port}") == 0:
        log(f"BIND_FAILED port={port}")
        return 2
    server.start()
    log(f"LISTENING version={version} port={port}")
    server.wait_for_termination()
    return 0


def call(target):
    # No proxy from the environment: the request must go where the pod's routing sends it.
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
    echo = channel.unary_unary("/calc.Calc/Echo")
    resp, c = echo.with_call(b"hello", timeout=10)
    log(f"UNARY {resp.decode()}")
    for k, v in c.trailing_metadata() or ():
        log(f"TRAILER {k}={v}")
    items = [m.decode() for m in channel.unary_stream("/calc.Calc/Count")(b"5", timeout=10)]
    log(f"STREAM {len(items)} {items[0] if items else '-'}..{items[-1] if items else '-'}")
    try:
        echo(b"fail", timeout=10)
        log("FAIL none (the call succeeded)")
    except grpc.RpcError as e:
        trailers = " ".join(f"TRAILER {k}={v}" for k, v in (e.trailing_metadata() or ()))
        log(f"FAIL {e.code().name} {e.details()} {trailers}")
    channel.close()
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "serve":
        return serve(argv[2], int(argv[3]))
    if len(argv) == 3 and argv[1] == "call":
        try:
            return call(argv[2])
        except grpc.RpcError as e:
            log(f"ERROR {e.code().name} {e.details()}")
            return 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
