#!/usr/bin/python3
"""Real gRPC (python grpcio) on both sides of the waypoint.

Starts a grpcio server (the upstream app, h2c) on SERVER_ADDR with a generic service
calc.Calc: Echo (unary; "fail" aborts with NOT_FOUND; sets a trailer) and Count (server
streaming: N messages). Then a grpcio client calls through CLIENT_TARGET, which the test
bridges into an HBONE CONNECT tunnel to the waypoint. Raw bytes messages (no protoc needed).

Usage: grpc_through_waypoint.py SERVER_ADDR CLIENT_TARGET
Output: one fact per line (UNARY, TRAILER, STREAM, ERROR ...). Exit 0 when every call ran.
"""

import sys
from concurrent import futures

import grpc


def out(line):
    print(line, flush=True)


def echo(request, context):
    if request == b"fail":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    context.set_trailing_metadata((("x-app-trailer", "t-" + request.decode()),))
    md = dict(context.invocation_metadata())
    return b"echo:" + request + b" ua=" + md.get("user-agent", "").split(" ")[0].encode()


def count(request, context):
    for i in range(int(request)):
        yield b"item-%d" % i


def main():
    server_addr, target = sys.argv[1:3]
    handler = grpc.method_handlers_generic_handler("calc.Calc", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(server_addr) == 0:
        out("BIND_FAILED")
        return 2
    server.start()
    try:
        channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
        e = channel.unary_unary("/calc.Calc/Echo")
        resp, call = e.with_call(b"hello", timeout=10)
        out("UNARY %s" % resp.decode())
        for k, v in call.trailing_metadata():
            out("TRAILER %s=%s" % (k, v))
        for i in range(5):
            out("UNARY %s" % e(b"n%d" % i, timeout=10).decode())
        items = [m.decode() for m in channel.unary_stream("/calc.Calc/Count")(b"4", timeout=10)]
        out("STREAM %s" % ",".join(items))
        for label, method, payload in (("fail", "/calc.Calc/Echo", b"fail"),
                                       ("noroute", "/other.Svc/Call", b"x"),
                                       ("nohost", "/calc.Empty/Call", b"x")):
            try:
                channel.unary_unary(method)(payload, timeout=10)
                out("ERROR %s none" % label)
            except grpc.RpcError as err:
                out("ERROR %s %s %s" % (label, err.code().name, err.details()))
        channel.close()
    finally:
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
