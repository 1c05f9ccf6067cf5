#!/usr/bin/env python3
"""tests/66-waypoint-e2e/tcp_echo.py - a plain TCP (not HTTP) service and its client, so that the
waypoint's network RBAC is judged on bytes that no HTTP parser can read.

  serve VERSION PORT   per connection: read until the client's EOF, log one line
                       "conn from <ip> data=<bytes>", answer "VERSION <bytes>" and close.
  call HOST:PORT TEXT  send TEXT, half-close, read until EOF (5 s deadline); prints what came
                       back, or "CLOSED" when the connection ended with nothing (EOF or reset).

Threading: one thread per accepted connection. Invariants: every socket operation has a
timeout, so a broken path shows as CLOSED or TIMEOUT, never a hang.
"""
import socket
import sys
import threading


def serve(version, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)

    def one(conn, peer):
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                sys.stdout.write("conn from %s data=%s\n" % (peer[0], data.decode(errors="replace")))
                sys.stdout.flush()
                conn.sendall(version.encode() + b" " + data)
            except OSError as e:
                sys.stdout.write("conn from %s error=%s\n" % (peer[0], e))
                sys.stdout.flush()

    while True:
        conn, peer = srv.accept()
        threading.Thread(target=one, args=(conn, peer), daemon=True).start()


def call(target, text):
    host, port = target.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
    except OSError as e:
        print("CONNECT-ERROR %s" % e)
        return
    got = b""
    try:
        s.sendall(text.encode())
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        print("TIMEOUT " + got.decode(errors="replace"))
        return
    except OSError:
        pass  # a reset: judged by what arrived before it
    finally:
        s.close()
    print(got.decode(errors="replace") if got else "CLOSED")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "call":
        call(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
