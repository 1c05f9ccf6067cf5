#!/usr/bin/env python3
"""tests/66-waypoint-e2e/calc_app.py - the seeds' "Calculate" app and the clients the waypoint
end-to-end suite and `make demo` run inside pods (stdlib only).

  serve VERSION [PORT]     calculate's back end (default port 8080), HTTP/1.1 keep-alive:
                             /calc?a=A&b=B  -> "cat-plus A+B=S" (v1 adds) or "dog-multi AxB=P"
                             /slow?s=N      -> v1 (cat-plus) sleeps N s first (the seeds' timeout
                                               step); v2 answers at once
                             /fail          -> 503 (retries are counted in this log)
                             /ws            -> WebSocket upgrade (RFC 6455), echoes text frames
                                               back upper-cased
                             any other path -> "VERSION"
                           Every request logs one line: path, Host, the `version` header,
                           x-envoy-attempt-count, x-request-id, traceparent, b3, the peer
                           address and whether an Authorization header arrived.
  ws HOST PORT PATH TEXT   WebSocket client: upgrade, send TEXT masked, print the echoed frame.

Threading: one thread per connection (ThreadingHTTPServer). Invariants: every socket has a
timeout, so nothing here can hang the suite.
"""
import base64
import hashlib
import http.server
import os
import socket
import struct
import sys
import time
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def ws_read_frame(sock):
    """One frame: (opcode, payload); unmasks client frames."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed inside a frame")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    mask = exact(4) if b1 & 0x80 else None
    data = bytearray(exact(n))
    if mask:
        for i in range(len(data)):
            data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)


def ws_frame(opcode, payload, mask=None):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    else:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def serve(version, port):
    adds = version.startswith("cat")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30
        # Head and body leave in one write (the handler flushes after each request): two small
        # writes would meet Nagle + delayed ACK and cost ~40 ms per request.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, *_):
            pass

        def reply(self, code, body, extra=()):
            data = (body + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-app-version", version)
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            h = self.headers
            log(f"req version={version} path={self.path} host={h.get('Host', '')} "
                f"hdr_version={h.get('version', '-')} attempt={h.get('x-envoy-attempt-count', '-')} "
                f"rid={h.get('x-request-id', '-')} tp={h.get('traceparent', '-')} b3={h.get('b3', '-')} "
                f"peer={self.client_address[0]} auth={'yes' if h.get('Authorization') else '-'} "
                f"xa={h.get('x-ext-authz-user', '-')}")
            if url.path == "/ws" and h.get("Upgrade", "").lower() == "websocket":
                return self.websocket(h.get("Sec-WebSocket-Key", ""))
            if url.path == "/calc":
                a, b = int(q.get("a", "2")), int(q.get("b", "3"))
                return self.reply(200, f"{version} {a}+{b}={a + b}" if adds else f"{version} {a}x{b}={a * b}")
            if url.path == "/slow":
                if adds:
                    time.sleep(float(q.get("s", "20")))
                return self.reply(200, f"{version} slow done")
            if url.path == "/fail":
                return self.reply(503, f"{version} failing")
            return self.reply(200, version)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(n) if n else b""
            log(f"req version={version} method=POST path={self.path} bytes={len(body)} "
                f"rid={self.headers.get('x-request-id', '-')}")
            self.reply(200, f"{version} got {len(body)} bytes")

        def websocket(self, key):
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            sock = self.connection
            while True:
                try:
                    op, data = ws_read_frame(sock)
                except (EOFError, OSError):
                    break
                if op == 8:  # close: answer and stop
                    sock.sendall(ws_frame(8, data[:2]))
                    break
                if op == 1:
                    log(f"ws version={version} text={data.decode(errors='replace')}")
                    sock.sendall(ws_frame(1, data.upper()))
            self.close_connection = True

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("0.0.0.0", port), Handler)
    log(f"LISTENING version={version} port={port}")
    srv.serve_forever()


def ws_client(host, port, path, text):
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            print(f"closed before the handshake ended: {head!r}")
            return 1
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    if " 101 " not in status + " " or want.encode() not in head:
        print(f"no upgrade: {head.decode(errors='replace')!r}")
        return 1
    s.sendall(ws_frame(1, text.encode(), mask=os.urandom(4)))
    op, data = ws_read_frame(s)
    print(f"{status} | frame opcode={op} text={data.decode(errors='replace')}")
    s.sendall(ws_frame(8, struct.pack("!H", 1000), mask=os.urandom(4)))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "serve":
        serve(argv[2], int(argv[3]) if len(argv) > 3 else 8080)
        return 0
    if len(argv) == 6 and argv[1] == "ws":
        return ws_client(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
