#!/usr/bin/python3
"""Independent HTTP/2 client (python3-h2) for the waypoint's inner HTTP/2 test.

Speaks h2c with prior knowledge to HOST:PORT, which the test bridges into an HBONE CONNECT
tunnel to the waypoint (as a client node's ztunnel does). Checks that a malformed stream is
reset on its own while the connection keeps serving, that streams run concurrently, that a
stream the client cancels does not disturb the others, and that a connection-level protocol
error ends in GOAWAY.

Usage: h2_inner_client.py HOST PORT
Output (one fact per line): RESPONSE <label> <status> <body>, HEADER <label> <name>: <value>,
RESET <label> <error code>, GOAWAY <error code>. Exit 0 when every step produced an answer.
"""

import socket
import sys

import h2.config
import h2.connection
import h2.events


def out(line):
    print(line, flush=True)


class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False, normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}  # id -> dict(label, status, body, headers, done, reset)
        self.goaway = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, label, headers, end=True):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = {"label": label, "status": None, "body": b"", "headers": [], "done": False,
                             "reset": None}
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                hs = dict(ev.headers)
                st["status"] = hs.get(":status")
                st["headers"] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                st["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st["done"] = True
            elif isinstance(ev, h2.events.StreamReset):
                if st is not None:
                    st["reset"] = int(ev.error_code)
                    st["done"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = int(ev.error_code)
        self.flush()

    def wait(self, *sids):
        while not all(self.streams[s]["done"] for s in sids):
            self.pump()
        for s in sids:
            st = self.streams[s]
            if st["reset"] is not None:
                out("RESET %s %d" % (st["label"], st["reset"]))
            else:
                out("RESPONSE %s %s %s" % (st["label"], st["status"], st["body"].decode(errors="replace")))
                for n, v in st["headers"]:
                    out("HEADER %s %s: %s" % (st["label"], n, v))


def get(path, extra=()):
    return [(":method", "GET"), (":scheme", "http"), (":authority", "calc.example"), (":path", path),
            ("user-agent", "python-h2-inner")] + list(extra)


def main():
    host, port = sys.argv[1:3]
    c = Client(host, port)
    # Routed by header, answered over HTTP/2.
    a = c.request("dog", get("/", [("version", "dog")]))
    c.wait(a)
    # A request without :path is malformed (RFC 9113 §8.3.1): that stream alone is reset.
    bad = c.request("nopath", [(":method", "GET"), (":scheme", "http"), (":authority", "calc.example")])
    c.wait(bad)
    b = c.request("after", get("/after"))
    c.wait(b)
    # Concurrent streams on one connection: all three are in flight together.
    slow = [c.request("slow%d" % i, get("/sleep/200")) for i in range(3)]
    c.wait(*slow)
    # The client gives up on a slow request (RST_STREAM CANCEL); the waypoint logs DC.
    gone = c.request("gone", get("/sleep/300"))
    c.conn.reset_stream(gone, error_code=8)
    c.flush()
    d = c.request("last", get("/last"))
    c.wait(d)
    # A connection-level error: DATA on stream 0 gets GOAWAY(PROTOCOL_ERROR).
    c.sock.sendall(b"\x00\x00\x00\x00\x01\x00\x00\x00\x00")
    try:
        while c.goaway is None:
            c.pump()
    except (EOFError, OSError):
        pass
    out("GOAWAY %s" % c.goaway)
    return 0


if __name__ == "__main__":
    sys.exit(main())
