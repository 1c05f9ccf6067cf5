#!/usr/bin/env python3
"""tests/72-tracing/front_app.py PORT UPSTREAM - the seeds' productpage in the tracing suite
(stdlib only): every GET is answered after one call to http://UPSTREAM/calc?from=front, to
which the request's trace headers (B3, traceparent/tracestate, x-request-id) are forwarded, as
Bookinfo's productpage forwards them to reviews. Logs one line per request: path, the
traceparent received and the upstream's status.

Threading: one thread per connection. Invariants: the upstream call has a timeout, so a dead
mesh answers 502 instead of hanging the suite.
"""
import http.client
import http.server
import sys

PORT, UPSTREAM = int(sys.argv[1]), sys.argv[2]
FORWARD = ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
           "x-b3-flags", "b3", "traceparent", "tracestate")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, *_):
        pass

    def do_GET(self):
        fwd = {h: self.headers[h] for h in FORWARD if self.headers.get(h)}
        try:
            c = http.client.HTTPConnection(UPSTREAM, timeout=5)
            c.request("GET", "/calc?from=front&a=2&b=3", headers=fwd)
            r = c.getresponse()
            status, body = r.status, r.read().decode(errors="replace").strip()
            c.close()
        except OSError as e:
            status, body = 502, f"upstream failed: {e}"
        print(f"req path={self.path} tp={self.headers.get('traceparent', '-')} upstream={status}", flush=True)
        data = f"front -> {body}\n".encode()
        self.send_response(200 if status == 200 else 502)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-app-version", "front")
        self.end_headers()
        self.wfile.write(data)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


print(f"LISTENING port={PORT}", flush=True)
Server(("0.0.0.0", PORT), Handler).serve_forever()
