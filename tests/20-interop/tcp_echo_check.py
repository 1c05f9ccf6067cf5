#!/usr/bin/python3
"""Plain-TCP echo checker for tunnels that expose a local TCP port (hbone-cli --listen).

Role: opens COUNT connections one after another to HOST:PORT, sends SIZE bytes on each,
half-closes, reads until EOF and compares. Prints "TCP_ECHO ok=<k>/<n>" and, for a refused
tunnel, what happened ("TCP_ECHO_FAIL conn=<i> got=<bytes> reason=<..>"). Exit 0 only when
every connection echoed exactly. With --expect-refused the meaning flips: exit 0 only when
no connection got its bytes back (the tunnel must not carry data).
"""
import argparse
import os
import socket
import sys


def one(host, port, size, timeout):
    msg = os.urandom(size)
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got == msg, len(got), "eof"
    except OSError as e:
        return False, 0, type(e).__name__
    finally:
        s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--expect-refused", action="store_true")
    a = p.parse_args()
    ok = 0
    for i in range(a.count):
        try:
            good, n, why = one(a.host, a.port, a.size, a.timeout)
        except OSError as e:
            good, n, why = False, 0, "connect:" + type(e).__name__
        ok += good
        if not good:
            print("TCP_ECHO_FAIL conn=%d got=%d reason=%s" % (i, n, why))
    print("TCP_ECHO ok=%d/%d" % (ok, a.count))
    if a.expect_refused:
        return 0 if ok == 0 else 1
    return 0 if ok == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
