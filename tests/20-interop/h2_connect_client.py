#!/usr/bin/python3
"""HBONE client built on an independent HTTP/2 stack (python3-h2 + the ssl module).

Role: talks to an HBONE server (ztunnel's 15008 or h2_connect_server.py) the way an
upstream ztunnel would: mTLS 1.3, ALPN h2, HTTP/2 CONNECT with :authority ip:port and no
:scheme/:path, then raw bytes in DATA frames. It also has negative switches (--no-alpn,
--tls12, --plaintext, --no-client-cert) and abuse modes (--rapid-reset, --continuation-flood,
--settings-flood, --oversized-headers) used by tests/20-interop/suite.sh.

Run with the SYSTEM python (/usr/bin/python3), which has python3-h2.

Output: one fact per line, first word is a keyword a suite can grep for:
  TLS <version> ALPN <proto|none>     handshake finished
  PEER <uri-san>                       server identity (each URI SAN)
  TLS_ERROR <reason>                   handshake or alert failure (exit 2)
  SAN_MISMATCH got=<..> expected=<..>  server identity check failed (exit 3)
  CONNECT_ERROR <reason>               TCP-level failure (exit 4)
  STATUS <code>                        CONNECT response status
  HEADER <name>: <value>               response headers (besides :status)
  ECHO_OK bytes=<n> / ECHO_MISMATCH    echo check (exit 6 on mismatch/short read)
  STREAMS ok=<k>/<n> ...               --streams summary
  GOAWAY code=<n> name=<NAME> last_stream=<id>
  RST_STREAM stream=<id> code=<n> name=<NAME>
  CLOSED <how>                         peer closed the connection
  SURVIVED                             abuse mode: server kept the connection (exit 7)

Exit codes: 0 ok (for abuse modes: server ended the connection), 1 non-200 status,
2 TLS error, 3 SAN mismatch, 4 TCP error, 5 unexpected GOAWAY/RST in a normal run,
6 echo mismatch/short, 7 abuse survived, 8 usage error.
"""

import argparse
import os
import secrets
import select
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
T_DATA, T_HEADERS, T_PRIORITY, T_RST, T_SETTINGS, T_PUSH, T_PING, T_GOAWAY, T_WINUPD, T_CONT = range(10)
F_END_STREAM, F_ACK, F_END_HEADERS = 0x1, 0x1, 0x4

EXIT_OK, EXIT_STATUS, EXIT_TLS, EXIT_SAN, EXIT_TCP, EXIT_H2, EXIT_ECHO, EXIT_SURVIVED, EXIT_USAGE = range(9)


def out(line):
    print(line, flush=True)


def err_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return "UNKNOWN"


class Fail(Exception):
    """Terminal outcome: message already chosen, carries the exit code."""

    def __init__(self, code, line):
        super().__init__(line)
        self.code = code
        self.line = line


# ---------------------------------------------------------------------------
# TLS setup
# ---------------------------------------------------------------------------

def make_context(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # HBONE checks URI SANs, never hostnames.
    if a.insecure:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=a.ca)
    if a.tls12:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if not a.no_client_cert:
        ctx.load_cert_chain(certfile=a.cert, keyfile=a.key)
    if a.alpn is not None:
        ctx.set_alpn_protocols([p for p in a.alpn.split(",") if p])
    elif not a.no_alpn:
        ctx.set_alpn_protocols(["h2"])
    return ctx


def tls_reason(e):
    if isinstance(e, ssl.SSLError):
        r = e.reason or e.strerror or str(e)
        return str(r).replace(" ", "_")
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "connection_reset"
    if isinstance(e, socket.timeout):
        return "timeout"
    return type(e).__name__ + ":" + str(e).replace(" ", "_")


def connect(a):
    """Returns a connected socket (TLS unless --plaintext); raises Fail."""
    try:
        raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        raise Fail(EXIT_TCP, "CONNECT_ERROR " + (e.strerror or str(e)).replace(" ", "_"))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.plaintext:
        return raw
    ctx = make_context(a)
    try:
        s = ctx.wrap_socket(raw, server_side=False, do_handshake_on_connect=False)
        s.do_handshake()
    except (ssl.SSLError, OSError) as e:
        raise Fail(EXIT_TLS, "TLS_ERROR " + tls_reason(e))
    alpn = s.selected_alpn_protocol()
    out("TLS %s ALPN %s CIPHER %s" % (s.version(), alpn or "none", s.cipher()[0]))
    if not a.insecure:
        cert = s.getpeercert() or {}
        uris = [v for (k, v) in cert.get("subjectAltName", ()) if k == "URI"]
        for u in uris:
            out("PEER " + u)
        if a.expect and a.expect not in uris:
            try:
                s.close()
            finally:
                raise Fail(EXIT_SAN, "SAN_MISMATCH got=%s expected=%s" % (",".join(uris) or "-", a.expect))
    return s


def recv_some(sock, n=65536):
    """recv that maps TLS alerts (which in TLS 1.3 arrive after the client's handshake
    finished, e.g. when the server rejects our certificate) to Fail."""
    try:
        return sock.recv(n)
    except ssl.SSLError as e:
        if "ALERT" in str(e).upper() or e.reason:
            raise Fail(EXIT_TLS, "TLS_ERROR " + tls_reason(e))
        raise
    except (ConnectionResetError, BrokenPipeError):
        return b""


def sendall(sock, data):
    try:
        sock.sendall(data)
        return True
    except ssl.SSLError as e:
        raise Fail(EXIT_TLS, "TLS_ERROR " + tls_reason(e))
    except (ConnectionResetError, BrokenPipeError):
        return False


# ---------------------------------------------------------------------------
# Request headers
# ---------------------------------------------------------------------------

def request_headers(a, authority=None):
    h = [(":method", "CONNECT"), (":authority", authority or a.authority)]
    if a.std_headers:
        h.append(("baggage", "k8s.cluster.name=Kubernetes,k8s.namespace.name=interop,"
                  "k8s.deployment.name=pyclient,service.name=pyclient,service.version=v1"))
        h.append(("forwarded", 'for="127.0.0.1:40000"'))
        h.append(("traceparent", "00-%s-%s-00" % (secrets.token_hex(16), secrets.token_hex(8))))
    if a.baggage:
        h.append(("baggage", a.baggage))
    if a.forwarded:
        h.append(("forwarded", a.forwarded))
    if a.traceparent:
        h.append(("traceparent", a.traceparent))
    for kv in a.header:
        k, _, v = kv.partition(":")
        h.append((k.strip().lower(), v.strip()))
    return h


def payload(a, i=0):
    if a.size:
        return os.urandom(a.size)
    return (a.payload + ("" if i == 0 else "-%d" % i)).encode()


# ---------------------------------------------------------------------------
# Normal mode: h2 library
# ---------------------------------------------------------------------------

class Stream:
    def __init__(self, sid, data):
        self.sid = sid
        self.out = data
        self.sent = 0
        self.got = bytearray()
        self.status = None
        self.headers = []
        self.ended = False
        self.reset = None
        self.half_closed = False


def run_normal(a, sock):
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                    validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024})
    conn.increment_flow_control_window(16 * 1024 * 1024 - 65535)
    if not sendall(sock, conn.data_to_send()):
        raise Fail(EXIT_TCP, "CONNECT_ERROR reset_before_preface")

    n = max(1, a.streams)
    streams = {}
    refused_local = 0
    goaway = None
    got_any_frame = False
    deadline = time.monotonic() + a.timeout
    pending_open = list(range(n))

    def open_streams():
        nonlocal refused_local
        while pending_open:
            i = pending_open[0]
            try:
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, request_headers(a), end_stream=False)
            except h2.exceptions.TooManyStreamsError:
                return  # wait for the server's SETTINGS or stream completions
            pending_open.pop(0)
            streams[sid] = Stream(sid, payload(a, i))

    def pump_data():
        # Bytes sent but not yet echoed are capped (--inflight): this client writes with
        # blocking sendall, and an echo peer that also writes blockingly could otherwise
        # fill both directions' socket buffers at once.
        inflight = sum(max(0, st.sent - len(st.got)) for st in streams.values())
        for st in streams.values():
            if st.status != 200 or st.reset is not None:
                continue
            while st.sent < len(st.out):
                win = min(conn.local_flow_control_window(st.sid), conn.max_outbound_frame_size)
                if not a.expect_reply:
                    win = min(win, a.inflight - inflight)
                if win <= 0:
                    break
                chunk = st.out[st.sent:st.sent + win]
                conn.send_data(st.sid, chunk)
                st.sent += len(chunk)
                inflight += len(chunk)
            if st.sent >= len(st.out) and len(st.got) >= len(st.out) and not st.half_closed and not a.no_half_close:
                conn.end_stream(st.sid)
                st.half_closed = True

    # Before the server's first SETTINGS, h2 assumes 100 concurrent streams; wait for the
    # real SETTINGS so --streams N behaves as the server dictates.
    settings_seen = False
    while True:
        if settings_seen:
            open_streams()
            pump_data()
        d = conn.data_to_send()
        if d and not sendall(sock, d):
            break
        done = settings_seen and not pending_open and all(
            st.reset is not None or st.ended or (st.status is not None and st.status != 200) or
            (len(st.got) >= len(st.out) and (a.no_half_close or st.half_closed) and a.no_wait_end)
            for st in streams.values())
        if done or goaway is not None:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            out("TIMEOUT")
            break
        r, _, _ = select.select([sock], [], [], min(left, 0.5)) if not (hasattr(sock, "pending") and sock.pending()) else ([sock], [], [])
        if not r:
            continue
        data = recv_some(sock)
        if not data:
            if not got_any_frame and not a.plaintext:
                # In TLS 1.3 the server checks our certificate after our side finished;
                # a rejection then shows up as a close before any HTTP/2 frame.
                raise Fail(EXIT_TLS, "TLS_ERROR closed_before_h2_settings")
            out("CLOSED eof")
            break
        got_any_frame = True
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            out("H2_PROTOCOL_ERROR " + type(e).__name__)
            break
        for ev in events:
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                settings_seen = True
                mcs = ev.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                if mcs is not None and a.verbose:
                    out("SERVER_MAX_CONCURRENT_STREAMS %d" % mcs.new_value)
            elif isinstance(ev, h2.events.ResponseReceived):
                st = streams.get(ev.stream_id)
                for k, v in ev.headers:
                    if k == ":status":
                        st.status = int(v)
                    else:
                        st.headers.append((k, v))
            elif isinstance(ev, h2.events.DataReceived):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st.got += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                st = streams.get(ev.stream_id)
                if st is not None:
                    st.reset = ev.error_code
                out("RST_STREAM stream=%d code=%d name=%s" % (ev.stream_id, ev.error_code, err_name(ev.error_code)))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                goaway = ev
                out("GOAWAY code=%d name=%s last_stream=%s" % (ev.error_code, err_name(ev.error_code), ev.last_stream_id))
            elif isinstance(ev, h2.events.WindowUpdated):
                pass

    try:
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    except Exception:
        pass

    # Report.
    sts = [streams[k] for k in sorted(streams)]
    if not sts:
        if goaway is not None:
            raise Fail(EXIT_H2, "NO_STREAMS")
        raise Fail(EXIT_H2, "NO_STREAMS")
    first = sts[0]
    if a.streams <= 1:
        if first.status is None:
            if first.reset is not None or goaway is not None:
                raise Fail(EXIT_H2, "NO_RESPONSE")
            raise Fail(EXIT_H2, "NO_RESPONSE")
        out("STATUS %d" % first.status)
        for k, v in first.headers:
            out("HEADER %s: %s" % (k, v))
        if first.status != 200:
            raise Fail(EXIT_STATUS, "BODY_BYTES %d" % len(first.got))
        if a.no_payload:
            return EXIT_OK
        if bytes(first.got[:len(first.out)]) == first.out and len(first.got) >= len(first.out):
            out("ECHO_OK bytes=%d" % len(first.out))
            if len(first.got) > len(first.out) and not a.expect_reply:
                out("EXTRA_BYTES %d" % (len(first.got) - len(first.out)))
            return EXIT_OK
        if a.expect_reply and len(first.got) > 0:
            out("REPLY bytes=%d data=%r" % (len(first.got), bytes(first.got[:200])))
            return EXIT_OK
        raise Fail(EXIT_ECHO, "ECHO_MISMATCH sent=%d got=%d" % (len(first.out), len(first.got)))
    ok = sum(1 for st in sts if st.status == 200 and bytes(st.got[:len(st.out)]) == st.out and len(st.got) >= len(st.out))
    codes = {}
    for st in sts:
        key = "status%s" % st.status if st.reset is None else "rst%d" % st.reset
        codes[key] = codes.get(key, 0) + 1
    out("STREAMS ok=%d/%d opened=%d not_opened=%d %s" % (
        ok, n, len(sts), len(pending_open), " ".join("%s=%d" % kv for kv in sorted(codes.items()))))
    if ok == n:
        return EXIT_OK
    raise Fail(EXIT_ECHO, "STREAMS_FAILED")


# ---------------------------------------------------------------------------
# Abuse modes: raw frames (h2's state machine would refuse to produce them)
# ---------------------------------------------------------------------------

def frame(ftype, flags, sid, payload=b""):
    ln = len(payload)
    return struct.pack(">BHBBI", (ln >> 16) & 0xFF, ln & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


class RawReader:
    """Parses the server's frames just enough to see GOAWAY, RST_STREAM and :status."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.goaway = None
        self.closed = None
        self.resets = 0
        self.statuses = {}
        self.settings = 0
        self.frames = 0
        self.server_settings = {}
        self.hdr_accum = {}

    def feed(self, data):
        self.buf += data
        acks = b""
        while len(self.buf) >= 9:
            ln = (self.buf[0] << 16) | (self.buf[1] << 8) | self.buf[2]
            if len(self.buf) < 9 + ln:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            body = bytes(self.buf[9:9 + ln])
            del self.buf[:9 + ln]
            self.frames += 1
            if ftype == T_GOAWAY and self.goaway is None:
                last, code = struct.unpack(">II", body[:8])
                self.goaway = (code, last & 0x7FFFFFFF, body[8:])
            elif ftype == T_RST:
                self.resets += 1
            elif ftype == T_SETTINGS and not (flags & F_ACK):
                self.settings += 1
                for i in range(0, len(body) - 5, 6):
                    k, v = struct.unpack(">HI", body[i:i + 6])
                    self.server_settings[k] = v
                acks += frame(T_SETTINGS, F_ACK, 0)
            elif ftype == T_PING and not (flags & F_ACK):
                acks += frame(T_PING, F_ACK, 0, body)
            elif ftype in (T_HEADERS, T_CONT):
                blk = body
                if ftype == T_HEADERS:
                    pad = 0
                    if flags & 0x8:
                        pad = blk[0]
                        blk = blk[1:]
                    if flags & 0x20:
                        blk = blk[5:]
                    if pad:
                        blk = blk[:-pad]
                self.hdr_accum[sid] = self.hdr_accum.get(sid, b"") + blk
                if flags & F_END_HEADERS:
                    try:
                        for k, v in self.dec.decode(self.hdr_accum.pop(sid)):
                            if k in (":status", b":status"):
                                v = v.decode() if isinstance(v, bytes) else v
                                self.statuses[v] = self.statuses.get(v, 0) + 1
                    except Exception:
                        pass
        return acks

    def poll(self, timeout, answer=True, stop_on_stream_error=False):
        """Reads what is available within timeout; returns False once the peer is gone
        (or, with stop_on_stream_error, once a stream was refused)."""
        end = time.monotonic() + timeout
        while True:
            if stop_on_stream_error and (self.resets or self.statuses):
                return False
            pend = hasattr(self.sock, "pending") and self.sock.pending()
            left = end - time.monotonic()
            if left <= 0 and not pend:
                return self.closed is None
            r = [self.sock] if pend else select.select([self.sock], [], [], max(0, min(left, 0.2)))[0]
            if not r:
                continue
            try:
                data = self.sock.recv(65536)
            except ssl.SSLError as e:
                self.closed = "tls:" + tls_reason(e)
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.closed = "reset"
                return False
            except socket.timeout:
                continue
            if not data:
                self.closed = "eof"
                return False
            acks = self.feed(data)
            if acks and answer:
                try:
                    self.sock.sendall(acks)
                except OSError:
                    self.closed = "reset"
                    return False
            if self.goaway is not None:
                # Keep reading briefly so the close is also observed, but GOAWAY suffices.
                return False


def asend(sock, reader, data):
    """Abuse-mode send: any failure means the server ended the connection."""
    try:
        sock.sendall(data)
        return True
    except ssl.SSLError as e:
        reader.closed = reader.closed or "tls:" + tls_reason(e)
    except OSError as e:
        reader.closed = reader.closed or "send:" + (e.strerror or str(e)).replace(" ", "_")
    # Collect a GOAWAY that may already sit in our receive buffer.
    try:
        reader.poll(0.2)
    except Exception:
        pass
    return False


def raw_start(a, sock, reader):
    settings = struct.pack(">HI", 0x4, 4 * 1024 * 1024) + struct.pack(">HI", 0x2, 0)
    if not sendall(sock, PREFACE + frame(T_SETTINGS, 0, 0, settings)):
        raise Fail(EXIT_TCP, "CONNECT_ERROR reset_before_preface")
    reader.poll(0.5)
    if reader.frames == 0 and reader.closed is not None:
        raise Fail(EXIT_TLS, "TLS_ERROR closed_before_h2_settings")


def encode_block(enc, headers):
    return enc.encode(headers)


def abuse_rapid_reset(a, sock, reader):
    enc = hpack.Encoder()
    sid = 1
    sent = 0
    batch = bytearray()
    t0 = time.monotonic()
    for i in range(a.rapid_reset):
        blk = encode_block(enc, request_headers(a))
        batch += frame(T_HEADERS, F_END_HEADERS, sid, blk)
        batch += frame(T_RST, 0, sid, struct.pack(">I", 0x8))  # CANCEL
        sid += 2
        sent += 1
        if len(batch) > 32768:
            if not asend(sock, reader, bytes(batch)):
                break
            batch.clear()
            if not reader.poll(0):
                break
    else:
        if batch:
            asend(sock, reader, bytes(batch))
    out("RAPID_RESET sent=%d in %.2fs" % (sent, time.monotonic() - t0))


def abuse_continuation(a, sock, reader):
    enc = hpack.Encoder()
    blk = encode_block(enc, request_headers(a))
    if not asend(sock, reader, frame(T_HEADERS, 0, 1, blk)):  # no END_HEADERS
        return
    sent = 0
    batch = bytearray()
    for i in range(a.continuation_flood):
        # Each fragment is a complete literal header field, so the block stays decodable.
        piece = enc.encode([("x-flood-%d" % i, "v" * 32)])
        batch += frame(T_CONT, 0, 1, piece)
        sent += 1
        if len(batch) > 32768:
            if not asend(sock, reader, bytes(batch)):
                break
            batch.clear()
            if not reader.poll(0):
                break
    else:
        if batch:
            asend(sock, reader, bytes(batch))
    out("CONTINUATION sent=%d" % sent)


def abuse_settings(a, sock, reader):
    # Many SETTINGS frames, each with many entries (repeated, legal values), while we do
    # not read: exercises both "too many entries" and "unacked SETTINGS" limits.
    entries = b"".join(struct.pack(">HI", 0x4, 65535 + (k % 7)) for k in range(a.settings_entries))
    f = frame(T_SETTINGS, 0, 0, entries)
    sent = 0
    batch = bytearray()
    for i in range(a.settings_flood):
        batch += f
        sent += 1
        if len(batch) > 65536:
            if not asend(sock, reader, bytes(batch)):
                break
            batch.clear()
            # Peek without answering PINGs/SETTINGS: the attacker does not read acks.
            if not reader.poll(0, answer=False):
                break
    else:
        if batch:
            asend(sock, reader, bytes(batch))
    out("SETTINGS_FLOOD frames=%d entries_per_frame=%d" % (sent, a.settings_entries))


def abuse_oversized(a, sock, reader):
    enc = hpack.Encoder()
    h = request_headers(a)
    total = a.oversized_headers * 1024
    # Many ~4 KiB values: crosses any sane header-list limit (ztunnel: 64 KiB).
    i = 0
    while sum(len(k) + len(v) + 32 for k, v in h) < total:
        h.append(("x-big-%d" % i, "b" * 4000))
        i += 1
    blk = enc.encode(h, huffman=False)
    maxf = 16384
    frames = bytearray()
    first = True
    for off in range(0, len(blk), maxf):
        chunk = blk[off:off + maxf]
        last = off + maxf >= len(blk)
        flags = F_END_HEADERS if last else 0
        frames += frame(T_HEADERS if first else T_CONT, flags, 1, chunk)
        first = False
    asend(sock, reader, bytes(frames))
    out("OVERSIZED_HEADERS bytes=%d fields=%d" % (len(blk), len(h)))


def run_abuse(a, sock):
    reader = RawReader(sock)
    raw_start(a, sock, reader)
    if a.rapid_reset:
        abuse_rapid_reset(a, sock, reader)
    elif a.continuation_flood:
        abuse_continuation(a, sock, reader)
    elif a.settings_flood:
        abuse_settings(a, sock, reader)
    elif a.oversized_headers:
        abuse_oversized(a, sock, reader)
    if reader.goaway is None and reader.closed is None:
        if a.oversized_headers:
            # A stream-level refusal (431 / RST_STREAM) is what upstream ztunnel's h2 does;
            # wait for it, then briefly for a connection error that may follow.
            if not reader.poll(a.abuse_wait, stop_on_stream_error=True) and reader.closed is None:
                reader.poll(0.5)
        else:
            reader.poll(a.abuse_wait)
    if reader.statuses:
        out("STATUSES " + " ".join("%s=%d" % kv for kv in sorted(reader.statuses.items())))
    if reader.resets:
        out("RST_STREAM count=%d" % reader.resets)
    if reader.goaway is not None:
        code, last, dbg = reader.goaway
        out("GOAWAY code=%d name=%s last_stream=%d debug=%r" % (code, err_name(code), last, dbg[:80]))
        return EXIT_OK
    if reader.closed is not None:
        out("CLOSED " + reader.closed)
        return EXIT_OK
    if a.oversized_headers and (reader.resets or any(k != "200" for k in reader.statuses)):
        out("STREAM_REFUSED")
        return EXIT_OK if a.accept_stream_error else EXIT_SURVIVED
    out("SURVIVED")
    return EXIT_SURVIVED


# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=15008)
    p.add_argument("--cert-dir", help="dir with key.pem, chain.pem, root.pem (issue-cert.sh layout)")
    p.add_argument("--cert", help="client cert chain PEM (default CERT_DIR/chain.pem)")
    p.add_argument("--key", help="client key PEM (default CERT_DIR/key.pem)")
    p.add_argument("--ca", help="trust roots PEM (default CERT_DIR/root.pem)")
    p.add_argument("--expect", help="required URI SAN of the server leaf (spiffe://...)")
    p.add_argument("--authority", default="127.0.0.1:9000", help="CONNECT :authority ip:port")
    p.add_argument("--payload", default="hello-hbone", help="bytes to send and expect echoed")
    p.add_argument("--size", type=int, default=0, help="send N random bytes instead of --payload")
    p.add_argument("--no-payload", action="store_true", help="only check the CONNECT status")
    p.add_argument("--expect-reply", action="store_true", help="accept any non-empty reply (non-echo target)")
    p.add_argument("--no-half-close", action="store_true", help="do not send END_STREAM after the echo")
    p.add_argument("--no-wait-end", action="store_true", default=True,
                   help=argparse.SUPPRESS)
    p.add_argument("--std-headers", action="store_true", help="send ztunnel-like baggage/forwarded/traceparent")
    p.add_argument("--baggage")
    p.add_argument("--forwarded")
    p.add_argument("--traceparent")
    p.add_argument("--header", action="append", default=[], help="extra 'name: value' request header")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--streams", type=int, default=1, help="open N CONNECT streams at once on one connection")
    p.add_argument("--inflight", type=int, default=131072, help="max unechoed bytes in flight")
    p.add_argument("--verbose", action="store_true")
    neg = p.add_argument_group("negative cases")
    neg.add_argument("--no-alpn", action="store_true", help="offer no ALPN (still speaks h2 after the handshake)")
    neg.add_argument("--alpn", help="comma-separated ALPN list to offer instead of h2")
    neg.add_argument("--tls12", action="store_true", help="TLS 1.2 only")
    neg.add_argument("--plaintext", action="store_true", help="h2 prior knowledge over plain TCP")
    neg.add_argument("--no-client-cert", action="store_true")
    neg.add_argument("--insecure", action="store_true", help="do not verify the server")
    ab = p.add_argument_group("abuse modes (raw frames)")
    ab.add_argument("--rapid-reset", type=int, default=0, metavar="N", help="N x (HEADERS + RST_STREAM)")
    ab.add_argument("--continuation-flood", type=int, nargs="?", const=10000, default=0, metavar="N",
                    help="HEADERS without END_HEADERS then N CONTINUATION frames (default 10000)")
    ab.add_argument("--settings-flood", type=int, nargs="?", const=20000, default=0, metavar="N",
                    help="N SETTINGS frames without reading acks (default 20000)")
    ab.add_argument("--settings-entries", type=int, default=64, help="entries per flood SETTINGS frame")
    ab.add_argument("--oversized-headers", type=int, nargs="?", const=256, default=0, metavar="KIB",
                    help="one CONNECT with a header block of KIB KiB (default 256)")
    ab.add_argument("--accept-stream-error", action="store_true",
                    help="oversized headers: a stream-level refusal also counts as success")
    ab.add_argument("--abuse-wait", type=float, default=5.0, help="seconds to wait for GOAWAY/close")
    a = p.parse_args(argv)
    if a.cert_dir:
        a.cert = a.cert or os.path.join(a.cert_dir, "chain.pem")
        a.key = a.key or os.path.join(a.cert_dir, "key.pem")
        a.ca = a.ca or os.path.join(a.cert_dir, "root.pem")
    if not a.plaintext and not a.insecure and not a.ca:
        p.error("--ca or --cert-dir required (or --insecure/--plaintext)")
    if not a.plaintext and not a.no_client_cert and not (a.cert and a.key):
        p.error("--cert/--key or --cert-dir required (or --no-client-cert)")
    return a


def main(argv):
    try:
        a = parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else 0
    sock = None
    try:
        sock = connect(a)
        sock.settimeout(a.timeout)
        if a.rapid_reset or a.continuation_flood or a.settings_flood or a.oversized_headers:
            return run_abuse(a, sock)
        return run_normal(a, sock)
    except Fail as f:
        out(f.line)
        return f.code
    except (socket.timeout, TimeoutError):
        out("TIMEOUT")
        return EXIT_H2
    except OSError as e:
        out("CONNECT_ERROR " + (e.strerror or str(e)).replace(" ", "_"))
        return EXIT_TCP
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
