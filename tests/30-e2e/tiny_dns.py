#!/usr/bin/env python3
"""A minimal authoritative DNS server over UDP for the e2e suite's on-demand DNS check.

usage: tiny_dns.py BIND_IP PORT NAME=IPV4 [NAME=IPV4...]

Answers A queries for the given names (TTL 30), NOERROR with no records for other types of a
known name, NXDOMAIN for anything else. Prints one line per query ("query NAME TYPE") so the
suite can see that ztunnel asked. Written from RFC 1035; no external packages.
"""
import socket
import struct
import sys


def read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels).lower(), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a query")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def main():
    bind_ip, port = sys.argv[1], int(sys.argv[2])
    zone = {}
    for arg in sys.argv[3:]:
        name, ip = arg.split("=", 1)
        zone[name.lower().rstrip(".")] = socket.inet_aton(ip)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind_ip, port))
    print("listening on %s:%d" % (bind_ip, port), flush=True)
    while True:
        msg, peer = sock.recvfrom(4096)
        if len(msg) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000 or qd != 1:
            continue
        try:
            name, end = read_name(msg, 12)
        except (ValueError, IndexError):
            continue
        qtype, _qclass = struct.unpack("!HH", msg[end:end + 4])
        print("query %s %d from %s" % (name, qtype, peer[0]), flush=True)
        question = msg[12:end + 4]
        answers = b""
        rcode = 0
        if name not in zone:
            rcode = 3
        elif qtype == 1:
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + zone[name]
        rflags = 0x8400 | (flags & 0x0100) | rcode  # QR, AA, RD echoed
        header = struct.pack("!HHHHHH", qid, rflags, 1, 1 if answers else 0, 0, 0)
        sock.sendto(header + question + answers, peer)


if __name__ == "__main__":
    main()
