#!/usr/bin/python3
"""Independent HBONE client for the waypoint interop test (python3-h2 + the ssl module).

Plays a client node's ztunnel: mutual TLS 1.3 with ALPN h2, one HTTP/2 CONNECT stream to the
waypoint with :authority <VIP:port>, then plain HTTP/1.1 requests written as DATA on that
stream (keep-alive: several on one stream). The HTTP/1.1 responses are parsed here, not by
the project's code.

Usage: hbone_http1_client.py HOST PORT CERT KEY CA AUTHORITY EXPECTED_SAN REQUEST...
REQUEST is "METHOD PATH[ HEADER:VALUE]...".
Output (one fact per line): PEER <uri>, CONNECT <status>, then per request
RESPONSE <status> <body> and HEADER <name>: <value> lines. Exit 0 when every step worked.
"""

import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def out(line):
    print(line, flush=True)


def main():
    host, port, cert, key, ca, authority, expected = sys.argv[1:8]
    requests = sys.argv[8:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20))
    sans = [v for k, v in sock.getpeercert().get("subjectAltName", ()) if k == "URI"]
    for s in sans:
        out("PEER " + s)
    if expected not in sans:
        out("SAN_MISMATCH")
        return 3
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)])
    sock.sendall(conn.data_to_send())

    buf = bytearray()
    state = {"status": None, "ended": False}

    def pump():
        data = sock.recv(65536)
        if not data:
            state["ended"] = True
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                state["status"] = dict(ev.headers).get(":status")
            elif isinstance(ev, h2.events.DataReceived):
                buf.extend(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                state["ended"] = True
        sock.sendall(conn.data_to_send())

    while state["status"] is None and not state["ended"]:
        pump()
    out("CONNECT %s" % state["status"])
    if state["status"] != "200":
        return 1

    for r in requests:
        parts = r.split(" ")
        method, path = parts[0], parts[1]
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: calc.example", "User-Agent: python-h2-interop"]
        for h in parts[2:]:
            name, value = h.split(":", 1)
            lines.append("%s: %s" % (name, value))
        conn.send_data(sid, ("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.sendall(conn.data_to_send())
        # Parse one response: status line, headers, Content-Length body.
        while b"\r\n\r\n" not in buf:
            if state["ended"]:
                out("TRUNCATED")
                return 5
            pump()
        head, _, _ = bytes(buf).partition(b"\r\n\r\n")
        head_lines = head.decode().split("\r\n")
        status = head_lines[0].split(" ")[1]
        headers = {}
        for line in head_lines[1:]:
            n, _, v = line.partition(":")
            headers[n.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        need = len(head) + 4 + length
        while len(buf) < need:
            if state["ended"]:
                out("TRUNCATED")
                return 5
            pump()
        body = bytes(buf[len(head) + 4:need]).decode()
        del buf[:need]
        out("RESPONSE %s %s" % (status, body))
        for n, v in headers.items():
            out("HEADER %s: %s" % (n, v))
    conn.end_stream(sid)
    sock.sendall(conn.data_to_send())
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
