#!/usr/bin/env python3
"""rls_server.py PROTOC_OUT_DIR ADDR:PORT QUOTA — an independent Envoy rate limit service.

Role: the global rate limit's other side, written for the test from the published protocol
(envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit; field numbers from
data-plane-api), nothing shared with the C++ stack: the .proto below is compiled here by protoc
and served with grpcio's generic handler. It counts per minute as the seeds' example does: each
(domain, descriptor) gets QUOTA hits in a one-minute window that opens at its first hit; the
hit after that is OVER_LIMIT. Every call is logged as one line
  call domain=D descriptors=k=v,k=v|k=v code=OK|OVER_LIMIT
so the suite can judge what the waypoint sent.
"""
import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

PROTO = """
syntax = "proto3";
package envoy.service.ratelimit.v3;
import "google/protobuf/duration.proto";

message Entry { string key = 1; string value = 2; }
message RateLimitDescriptor { repeated Entry entries = 1; }
message RateLimitRequest {
  string domain = 1;
  repeated RateLimitDescriptor descriptors = 2;
  uint32 hits_addend = 3;
}
message HeaderValue { string key = 1; string value = 2; }
message RateLimitResponse {
  enum Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }
  message RateLimit {
    enum Unit { UNKNOWN = 0; SECOND = 1; MINUTE = 2; HOUR = 3; DAY = 4; }
    string name = 3;
    uint32 requests_per_unit = 1;
    Unit unit = 2;
  }
  message DescriptorStatus {
    Code code = 1;
    RateLimit current_limit = 2;
    uint32 limit_remaining = 3;
    google.protobuf.Duration duration_until_reset = 4;
  }
  Code overall_code = 1;
  repeated DescriptorStatus statuses = 2;
  repeated HeaderValue response_headers_to_add = 3;
  repeated HeaderValue request_headers_to_add = 4;
}
"""


def main():
    out, addr, quota = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rls.proto"), "w") as f:
        f.write(PROTO)
    subprocess.check_call(["protoc", "-I", out, "-I", "/usr/include", "--python_out", out, os.path.join(out, "rls.proto")])
    sys.path.insert(0, out)
    import rls_pb2  # noqa: E402

    windows = {}  # (domain, descriptor) -> [window start, hits]
    lock = threading.Lock()

    def should_rate_limit(req, ctx):
        resp = rls_pb2.RateLimitResponse()
        resp.overall_code = rls_pb2.RateLimitResponse.OK
        now = time.monotonic()
        texts = []
        with lock:
            for d in req.descriptors:
                key = (req.domain, tuple((e.key, e.value) for e in d.entries))
                texts.append(",".join("%s=%s" % kv for kv in key[1]))
                w = windows.get(key)
                if w is None or now - w[0] >= 60:
                    w = windows[key] = [now, 0]
                w[1] += max(req.hits_addend, 1)
                st = resp.statuses.add()
                st.current_limit.requests_per_unit = quota
                st.current_limit.unit = rls_pb2.RateLimitResponse.RateLimit.MINUTE
                st.limit_remaining = max(quota - w[1], 0)
                st.duration_until_reset.seconds = max(int(60 - (now - w[0])), 1)
                if w[1] > quota:
                    st.code = rls_pb2.RateLimitResponse.OVER_LIMIT
                    resp.overall_code = rls_pb2.RateLimitResponse.OVER_LIMIT
                else:
                    st.code = rls_pb2.RateLimitResponse.OK
        h = resp.response_headers_to_add.add()
        h.key, h.value = "x-rls-seen", "1"
        code = "OVER_LIMIT" if resp.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT else "OK"
        print("call domain=%s descriptors=%s code=%s" % (req.domain, "|".join(texts), code), flush=True)
        return resp

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(
        should_rate_limit,
        request_deserializer=rls_pb2.RateLimitRequest.FromString,
        response_serializer=rls_pb2.RateLimitResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "envoy.service.ratelimit.v3.RateLimitService", {"ShouldRateLimit": handler}),))
    if server.add_insecure_port(addr) == 0:
        sys.exit("rls_server: cannot listen on " + addr)
    server.start()
    print("rls listening on " + addr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
