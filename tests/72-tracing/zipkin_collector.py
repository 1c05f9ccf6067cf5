#!/usr/bin/env python3
"""tests/72-tracing/zipkin_collector.py PORT OUT - a Zipkin v2 collector for the tracing suite
(stdlib only): POST /api/v2/spans with a JSON array; each span is appended to OUT as one JSON
line (the suite reads the file). Anything else is answered 400/404 and logged on stdout.

Threading: one thread per connection; appends are serialised by a lock so lines never mix.
"""
import http.server
import json
import sys
import threading

PORT, OUT = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path != "/api/v2/spans" or self.headers.get("Content-Type") != "application/json":
            print(f"bad request {self.path} {self.headers.get('Content-Type')}", flush=True)
            return self.reply(404)
        try:
            spans = json.loads(body)
            assert isinstance(spans, list)
        except (ValueError, AssertionError):
            print("bad body", flush=True)
            return self.reply(400)
        with lock, open(OUT, "a", encoding="utf-8") as f:
            for s in spans:
                f.write(json.dumps(s) + "\n")
        print(f"accepted {len(spans)} spans", flush=True)
        self.reply(202)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


open(OUT, "a", encoding="utf-8").close()
print(f"LISTENING port={PORT}", flush=True)
Server(("0.0.0.0", PORT), Handler).serve_forever()
