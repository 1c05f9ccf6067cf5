#!/usr/bin/env python3
"""tests/50-node-e2e/nodetool.py - the small programs the node-mode e2e suite runs inside pods.

Role: one stdlib-only script with a sub-command per job, so every pod runs the same code and the
suite needs nothing beyond python3:

  serve NAME                      app of a mesh pod: HTTP on :8080 (GET /whoami -> NAME, any
                                  other path -> "ok NAME"), line echo on :9000. Logs one line per
                                  request/connection with the peer address the kernel reports,
                                  which is how the suite checks original-source preservation.
  hold HOST PORT SECONDS          open one TCP connection, send "ping N" every 0.2 s and read the
                                  echo; print "open" once, then "closed at=EPOCH ..." when the
                                  peer closes/resets it (exit 0) or "still open" at the deadline
                                  (exit 1). Used for the policy late-rejection case.
  loop HOST PORT COUNT SECONDS    COUNT fresh HTTP/1.0 connections spread over SECONDS; prints
                                  "ok=N failed=M" and the first errors; exit 1 on any failure.
  dns SERVER PORT NAME            one A query over UDP; prints the answer addresses (exit 1 when
                                  there is no answer).

Threading: serve uses one thread per connection (ThreadingTCPServer); the rest are sequential.
Invariants: every socket operation has a timeout, so nothing here can hang the suite.
"""
import os
import random
import socket
import socketserver
import struct
import sys
import threading
import time


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ---- serve -----------------------------------------------------------------------------------

class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(name):
    class Http(socketserver.StreamRequestHandler):
        timeout = 10

        def handle(self):
            peer = self.client_address[0]
            try:
                line = self.rfile.readline(4096).decode("latin-1").strip()
                while True:  # skip headers
                    h = self.rfile.readline(4096)
                    if not h or h in (b"\r\n", b"\n"):
                        break
            except OSError as e:
                log(f"http peer={peer} error={e}")
                return
            parts = line.split()
            path = parts[1] if len(parts) > 1 else "/"
            body = (name if path.startswith("/whoami") else "ok " + name) + "\n"
            log(f"http peer={peer} path={path}")
            resp = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n\r\n%s" % (len(body), body))
            try:
                self.wfile.write(resp.encode())
            except OSError:
                pass

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            peer = self.client_address[0]
            log(f"echo peer={peer} open")
            n = 0
            try:
                for line in self.rfile:
                    n += 1
                    self.wfile.write(line)
                    self.wfile.flush()
            except OSError as e:
                log(f"echo peer={peer} error={e}")
            log(f"echo peer={peer} closed lines={n}")

    servers = [_Server(("0.0.0.0", 8080), Http), _Server(("0.0.0.0", 9000), Echo)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    log(f"serving {name} on :8080 (http) and :9000 (echo)")
    while True:
        time.sleep(3600)


# ---- hold ------------------------------------------------------------------------------------

def hold(host, port, seconds):
    deadline = time.monotonic() + seconds
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        log(f"connect failed: {e}")
        return 2
    s.settimeout(2)
    f = s.makefile("rb")
    n = 0
    t_open = None
    while time.monotonic() < deadline:
        n += 1
        try:
            s.sendall(b"ping %d\n" % n)
            echo = f.readline()
        except OSError as e:
            echo, err = None, e
        else:
            err = None
        if not echo:
            t = time.monotonic() - (t_open or time.monotonic())
            log(f"closed at={time.time():.3f} open_for={t:.2f}s pings={n - 1} ({err or 'eof'})")
            return 0
        if t_open is None:
            t_open = time.monotonic()
            log("open")
        time.sleep(0.2)
    log(f"still open after {seconds}s pings={n}")
    return 1


# ---- loop ------------------------------------------------------------------------------------

def loop(host, port, count, seconds):
    gap = seconds / max(count, 1)
    ok, errors = 0, []
    start = time.monotonic()
    hard_stop = start + seconds + 8  # bound the whole loop even if every connect times out
    for i in range(count):
        t0 = time.monotonic()
        if t0 > hard_stop:
            errors.append(f"#{i}..#{count - 1}: not attempted, loop ran past {seconds + 8:.0f}s")
            break
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.settimeout(3)
                s.sendall(b"GET /loop-%d HTTP/1.0\r\nHost: x\r\n\r\n" % i)
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                errors.append(f"#{i} at {t0 - start:.2f}s: bad response {data[:40]!r}")
        except OSError as e:
            errors.append(f"#{i} at {t0 - start:.2f}s: {e}")
        rest = gap - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
    log(f"ok={ok} failed={len(errors)} in {time.monotonic() - start:.2f}s")
    for e in errors[:10]:
        log("  " + e)
    return 0 if not errors and ok == count else 1


# ---- dns -------------------------------------------------------------------------------------

def dns(server, port, name):
    qid = random.randint(0, 0xFFFF)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (server, port))
        resp, _ = s.recvfrom(4096)
    except OSError as e:
        log(f"no answer from {server}:{port}: {e}")
        return 1
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", resp[:12])
    if rid != qid:
        log(f"reply id {rid} != query id {qid}")
        return 1
    off = 12

    def skip_name(o):
        while True:
            ln = resp[o]
            if ln == 0:
                return o + 1
            if ln & 0xC0 == 0xC0:
                return o + 2
            o += 1 + ln

    for _ in range(qd):
        off = skip_name(off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(off)
        typ, _cls, _ttl, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
        off += 10
        if typ == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(resp[off:off + 4]))
        off += rdlen
    log(f"rcode={flags & 0xF} answers={' '.join(addrs) if addrs else '-'}")
    return 0 if addrs else 1


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "serve":
        return serve(args[0])
    if cmd == "hold":
        return hold(args[0], int(args[1]), float(args[2]))
    if cmd == "loop":
        return loop(args[0], int(args[1]), int(args[2]), float(args[3]))
    if cmd == "dns":
        return dns(args[0], int(args[1]), args[2])
    sys.stderr.write(f"unknown command {cmd}\n")
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv))
