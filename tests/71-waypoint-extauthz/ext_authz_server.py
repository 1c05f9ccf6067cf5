#!/usr/bin/env python3
"""ext_authz_server.py PROTO_ROOT OUT_DIR GRPC_ADDR HTTP_ADDR — an independent external
authorization service, gRPC and HTTP, as Istio's sample ext-authz server behaves.

Role: the other side of the waypoint's CUSTOM check, written for the test from the published
protocol, nothing shared with the C++ stack: the gRPC messages are compiled here by protoc from
the repository's proto/ files (envoy/service/auth/v3/external_auth.proto and the core types it
imports) and served with grpcio's generic handler; the HTTP side is python's http.server.

Decision (both sides): the request header `x-ext-authz: allow` allows, anything else denies.
  gRPC allow: OK, header x-ext-authz-user: alice set on the request, x-ext-authz-check: ok added
              to the client's response.
  gRPC deny:  PERMISSION_DENIED with denied_response {status 403, body "denied by ext_authz
              (grpc)", header x-ext-authz-check-result: denied}.
  HTTP allow: 200 with x-ext-authz-user: bob and x-ext-authz-check-result: allowed.
  HTTP deny:  403, body "denied by ext_authz (http)", x-ext-authz-check-result: denied.
Every check is logged as one line
  check kind=grpc|http path=P principal=S user=U verdict=allow|deny
so the suite can count what the waypoint sent.
"""
import os
import subprocess
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc


def log(msg):
    print(msg, flush=True)


def compile_protos(root, out):
    # Generated modules are imported as namespace packages (no __init__.py), so `google.rpc`
    # sits beside the installed `google.protobuf`; an installed google.rpc is used instead.
    os.makedirs(out, exist_ok=True)
    files = ["envoy/service/auth/v3/external_auth.proto", "envoy/config/core/v3/l7_base.proto",
             "envoy/type/v3/token_bucket.proto", "envoy/type/v3/percent.proto"]
    try:
        import google.rpc.status_pb2  # noqa: F401
    except ImportError:
        files.append("google/rpc/status.proto")
    subprocess.run(["protoc", "-I", root, "--python_out", out] + [os.path.join(root, f) for f in files],
                   check=True)
    sys.path.insert(0, out)


def main():
    root, out, grpc_addr, http_addr = sys.argv[1:5]
    compile_protos(root, out)
    from envoy.service.auth.v3 import external_auth_pb2 as pb

    def check(raw, _ctx):
        req = pb.CheckRequest.FromString(raw)
        http = req.attributes.request.http
        verdict = "allow" if http.headers.get("x-ext-authz") == "allow" else "deny"
        log(f"check kind=grpc path={http.path} principal={req.attributes.source.principal or '-'} "
            f"method={http.method} host={http.host} verdict={verdict}")
        resp = pb.CheckResponse()
        if verdict == "allow":
            resp.status.code = 0
            h = resp.ok_response.headers.add()
            h.header.key, h.header.value = "x-ext-authz-user", "alice"
            r = resp.ok_response.response_headers_to_add.add()
            r.header.key, r.header.value = "x-ext-authz-check", "ok"
        else:
            resp.status.code = 7
            resp.denied_response.status.code = 403
            resp.denied_response.body = "denied by ext_authz (grpc)"
            h = resp.denied_response.headers.add()
            h.header.key, h.header.value = "x-ext-authz-check-result", "denied"
        return resp.SerializeToString()

    handler = grpc.method_handlers_generic_handler("envoy.service.auth.v3.Authorization", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=None, response_serializer=None)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(grpc_addr)
    server.start()

    class Http(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self):
            verdict = "allow" if self.headers.get("x-ext-authz") == "allow" else "deny"
            log(f"check kind=http path={self.path} method={self.command} host={self.headers.get('Host', '-')} "
                f"added={self.headers.get('x-added', '-')} verdict={verdict}")
            body = b"" if verdict == "allow" else b"denied by ext_authz (http)"
            self.send_response(200 if verdict == "allow" else 403)
            self.send_header("x-ext-authz-check-result", "allowed" if verdict == "allow" else "denied")
            if verdict == "allow":
                self.send_header("x-ext-authz-user", "bob")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

    host, port = http_addr.rsplit(":", 1)
    httpd = ThreadingHTTPServer((host, int(port)), Http)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log(f"ext_authz listening grpc={grpc_addr} http={http_addr}")
    server.wait_for_termination()


if __name__ == "__main__":
    main()
