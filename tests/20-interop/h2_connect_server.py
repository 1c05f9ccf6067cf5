#!/usr/bin/python3
"""HBONE server built on an independent HTTP/2 stack (python3-h2 + the ssl module).

Role: stands in for a peer ztunnel's port 15008 so our HBONE *client* (hbone-cli, or a
ztunnel's outbound side) can be checked against a stack we did not write. It terminates
mTLS 1.3 (ALPN h2, client certificate required and verified against --ca; optionally the
client's SPIFFE trust domain must equal --trust-domain), accepts HTTP/2 CONNECT with
:authority ip:port, and either tunnels to that address (default) or echoes (--echo).
Status codes follow ztunnel: 400 bad method/authority, 503 upstream connect failure,
200 tunnel up.

Threading: one thread per TLS connection; inside it a select() loop multiplexes the TLS
socket and one upstream TCP socket per CONNECT stream. Flow control: upstream reads stop
while a stream's pending output does not fit the peer's window.

Run with the SYSTEM python (/usr/bin/python3). Prints one line per event to stdout:
  LISTEN host:port / CONN peer=<spiffe> alpn=<..> / CONNECT authority=<..> status=<n>
  TLS_REJECT <reason> / STREAM_DONE id=<n> up=<bytes> down=<bytes>
"""

import argparse
import select
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

lock = threading.Lock()


def log(line):
    with lock:
        print(line, flush=True)


def parse_authority(auth):
    """ip:port or [v6]:port -> (host, port) or None. Hostnames are refused (400)."""
    if not auth:
        return None
    if auth.startswith("["):
        host, sep, rest = auth[1:].partition("]")
        if not sep or not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, sep, port = auth.rpartition(":")
        if not sep or ":" in host:
            return None
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        p = int(port)
    except (OSError, ValueError):
        return None
    if not 0 < p < 65536:
        return None
    return host, p


class Tunnel:
    def __init__(self, sid, up):
        self.sid = sid
        self.up = up           # upstream socket, or None in echo mode
        self.pending = bytearray()  # bytes waiting for the h2 window
        self.up_eof = False
        self.down_eof = False
        self.ended_sent = False
        self.bytes_up = 0
        self.bytes_down = 0
        self.upbuf = bytearray()    # bytes from the client not yet written upstream
        self.unacked = 0            # bytes written upstream, window not yet reopened
        self.shut_wr = False


class Session:
    def __init__(self, a, tls, peer_id):
        self.a = a
        self.tls = tls
        self.peer_id = peer_id
        # h2 4.1's inbound validation demands :scheme/:path even for classic CONNECT
        # (RFC 9113 8.5 forbids them there), so validation is ours (on_request).
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.tunnels = {}
        self.closed = False

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.tls.sendall(d)

    def respond(self, sid, status, end):
        self.conn.send_headers(sid, [(":status", str(status))], end_stream=end)

    def on_request(self, ev):
        h = dict(ev.headers)
        method, auth = h.get(":method"), h.get(":authority")
        if method != "CONNECT" or ":path" in h or ":scheme" in h:
            status = 400
        else:
            target = parse_authority(auth)
            status = 400 if target is None else 200
        if status == 200 and self.a.echo:
            self.tunnels[ev.stream_id] = Tunnel(ev.stream_id, None)
        elif status == 200:
            try:
                up = socket.create_connection(target, timeout=self.a.connect_timeout)
                up.setblocking(False)
                up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.tunnels[ev.stream_id] = Tunnel(ev.stream_id, up)
            except OSError:
                status = 503
        extra = " ".join("%s=%s" % (k, h[k]) for k in ("baggage", "forwarded", "traceparent") if k in h)
        log("CONNECT authority=%s status=%d peer=%s %s" % (auth, status, self.peer_id, extra))
        try:
            self.respond(ev.stream_id, status, end=(status != 200))
        except h2.exceptions.ProtocolError:
            # The client already reset this stream (events arrive in batches).
            t = self.tunnels.pop(ev.stream_id, None)
            if t is not None and t.up is not None:
                t.up.close()

    def send_down(self, t):
        """Moves t.pending into DATA frames as far as the windows allow."""
        while t.pending:
            try:
                win = min(self.conn.local_flow_control_window(t.sid), self.conn.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, KeyError):
                t.pending.clear()
                return
            if win <= 0:
                return
            chunk = bytes(t.pending[:win])
            try:
                self.conn.send_data(t.sid, chunk)
            except h2.exceptions.ProtocolError:
                t.pending.clear()  # stream or connection already closed by the peer
                return
            del t.pending[:len(chunk)]
            t.bytes_down += len(chunk)
        if t.up_eof and not t.ended_sent:
            try:
                self.conn.end_stream(t.sid)
            except h2.exceptions.StreamClosedError:
                pass
            t.ended_sent = True
            self.maybe_done(t)

    def maybe_done(self, t):
        if t.ended_sent and (t.shut_wr or t.up is None) and t.sid in self.tunnels:
            if t.up is not None:
                t.up.close()
            del self.tunnels[t.sid]
            log("STREAM_DONE id=%d up=%d down=%d" % (t.sid, t.bytes_up, t.bytes_down))

    def on_data(self, ev):
        t = self.tunnels.get(ev.stream_id)
        if t is None:
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            return
        t.bytes_up += len(ev.data)
        if t.up is None:
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            t.pending += ev.data
            self.send_down(t)
            return
        # Backpressure: the h2 window is only reopened for bytes the upstream accepted,
        # so a slow upstream stalls this stream instead of growing memory or blocking.
        t.upbuf += ev.data
        t.unacked += ev.flow_controlled_length - len(ev.data)  # padding: ack at once
        self.write_upstream(t)

    def write_upstream(self, t):
        if t.upbuf:
            try:
                n = t.up.send(t.upbuf)
            except BlockingIOError:
                n = 0
            except OSError:
                self.reset(t)
                return
            del t.upbuf[:n]
            t.unacked += n
        if t.unacked:
            try:
                self.conn.acknowledge_received_data(t.unacked, t.sid)
            except h2.exceptions.StreamClosedError:
                pass
            t.unacked = 0
        if not t.upbuf and t.down_eof and not t.shut_wr:
            try:
                t.up.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            t.shut_wr = True
            self.maybe_done(t)

    def on_end(self, sid):
        t = self.tunnels.get(sid)
        if t is None:
            return
        t.down_eof = True
        if t.up is None:
            t.up_eof = True  # echo: the reply ends when the request ends
            self.send_down(t)
        else:
            self.write_upstream(t)

    def reset(self, t):
        try:
            self.conn.reset_stream(t.sid, 0x8)
        except h2.exceptions.StreamClosedError:
            pass
        if t.up is not None:
            t.up.close()
        self.tunnels.pop(t.sid, None)

    def pump_upstream(self, t):
        try:
            d = t.up.recv(min(262144, self.a.read_chunk))
        except BlockingIOError:
            return
        except OSError:
            self.reset(t)
            return
        if not d:
            t.up_eof = True
        t.pending += d
        self.send_down(t)

    def run(self):
        self.conn.initiate_connection()
        self.conn.update_settings({
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.a.max_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024,
        })
        self.conn.increment_flow_control_window(16 * 1024 * 1024 - 65535)
        self.flush()
        while not self.closed:
            rl, wl = [self.tls], []
            for t in self.tunnels.values():
                if t.up is not None and not t.up_eof and len(t.pending) < 65536:
                    rl.append(t.up)
                if t.up is not None and t.upbuf:
                    wl.append(t.up)
            if self.tls.pending():
                r, w = [self.tls], []
            else:
                r, w, _ = select.select(rl, wl, [], 1.0)
            for t in list(self.tunnels.values()):
                if t.up is not None and t.up in w:
                    self.write_upstream(t)
            for s in r:
                if s is self.tls:
                    self.read_tls()
                else:
                    for t in list(self.tunnels.values()):
                        if t.up is s:
                            self.pump_upstream(t)
            try:
                self.flush()
            except OSError:
                self.closed = True
        for t in list(self.tunnels.values()):
            if t.up is not None:
                t.up.close()

    def read_tls(self):
        try:
            data = self.tls.recv(262144)
        except (ssl.SSLWantReadError, socket.timeout):
            return
        except (ssl.SSLError, OSError):
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            log("H2_ERROR %s %s" % (type(e).__name__, e))
            self.flush()
            self.closed = True
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.on_request(ev)
            elif isinstance(ev, h2.events.DataReceived):
                self.on_data(ev)
            elif isinstance(ev, h2.events.StreamEnded):
                self.on_end(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                t = self.tunnels.pop(ev.stream_id, None)
                if t is not None and t.up is not None:
                    t.up.close()
            elif isinstance(ev, h2.events.WindowUpdated):
                for t in list(self.tunnels.values()):
                    self.send_down(t)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True


def spiffe_of(cert):
    for k, v in cert.get("subjectAltName", ()):
        if k == "URI" and v.startswith("spiffe://"):
            return v
    return None


def handle(a, ctx, raw, addr):
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.settimeout(10)
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        log("TLS_REJECT %s from=%s:%d" % (getattr(e, "reason", None) or e, addr[0], addr[1]))
        raw.close()
        return
    peer = spiffe_of(tls.getpeercert() or {})
    if a.trust_domain:
        td = peer[len("spiffe://"):].split("/", 1)[0] if peer else None
        if td != a.trust_domain:
            log("TLS_REJECT trust_domain=%s want=%s" % (td, a.trust_domain))
            tls.close()
            return
    if tls.selected_alpn_protocol() != "h2":
        log("TLS_REJECT alpn=%s" % tls.selected_alpn_protocol())
        tls.close()
        return
    log("CONN peer=%s alpn=%s from=%s:%d" % (peer, tls.selected_alpn_protocol(), addr[0], addr[1]))
    tls.settimeout(None)
    try:
        Session(a, tls, peer).run()
    except (OSError, h2.exceptions.ProtocolError) as e:
        log("CONN_ERROR %s" % e)
    finally:
        try:
            tls.close()
        except OSError:
            pass


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:15008")
    p.add_argument("--cert-dir", help="dir with key.pem, chain.pem, root.pem")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--trust-domain", help="require the client's SPIFFE trust domain")
    p.add_argument("--echo", action="store_true", help="echo stream data instead of tunnelling")
    p.add_argument("--max-streams", type=int, default=200)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--read-chunk", type=int, default=262144)
    a = p.parse_args(argv)
    if a.cert_dir:
        a.cert = a.cert or a.cert_dir + "/chain.pem"
        a.key = a.key or a.cert_dir + "/key.pem"
        a.ca = a.ca or a.cert_dir + "/root.pem"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(cafile=a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    host, _, port = a.listen.rpartition(":")
    host = host.strip("[]")
    ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(128)
    log("LISTEN %s" % a.listen)
    try:
        while True:
            c, addr = ls.accept()
            threading.Thread(target=handle, args=(a, ctx, c, addr), daemon=True).start()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
