#!/usr/bin/python3
"""Plaintext probe for the inbound capture path (15006).

Usage: probe_plain.py HOST PORT [TIMEOUT_S]
Connects to HOST:PORT, sends an HTTP/1.0 GET /metrics (what an attacker would ask ztunnel's
stats port for) and reads until the peer closes or the timeout passes. Prints one line:
  REPLY bytes=<n> first=<first line, or '-'>   the peer answered n bytes then closed/went quiet
  CONNECT_ERROR <reason>                       the TCP connection itself failed
Exit 0 in both cases: the suite decides what it expected.
"""
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        print(f"CONNECT_ERROR {e}")
        return 0
    data = b""
    try:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        while len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    first = data.split(b"\r\n", 1)[0].decode("latin-1") if data else "-"
    print(f"REPLY bytes={len(data)} first={first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
