#!/usr/bin/python3
"""Slow and window-0 HBONE peers against ztunnel's 15008 (python3-h2 + ssl; system python).

Modes (one per run):
  no-handshake   open TCP, send nothing; report when the server closes
  slow-preface   finish mTLS, then send nothing (no client preface); report the close
  slow-headers   preface + SETTINGS, then a CONNECT HEADERS frame without END_HEADERS and no
                 CONTINUATION; report the close
  window0        --conns N connections, each advertising SETTINGS_INITIAL_WINDOW_SIZE 0 and a
                 connection window that never opens, --streams M CONNECT streams per connection
                 to --authority (an echo app), sending as much DATA as the server's windows
                 allow for --seconds, never sending WINDOW_UPDATE. Reads (and discards) what
                 arrives so control frames are seen; counts resets and GOAWAYs.

Output (one fact per line):
  CLOSED after=<seconds> how=<eof|reset|tls-alert>   the server ended the connection
  ALIVE after=<seconds>                             it did not, within --max-wait
  WINDOW0 conns=<n> streams_ok=<k> sent_bytes=<b> resets=<r> goaways=<g> closed=<c>
Exit 0 unless usage/setup fails (the suite judges the facts).
"""
import argparse
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def tls_connect(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(f"{a.cert_dir}/root.pem")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(certfile=f"{a.cert_dir}/chain.pem", keyfile=f"{a.cert_dir}/key.pem")
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((a.host, a.port), timeout=10)
    s = ctx.wrap_socket(raw, server_side=False)
    return s


def wait_close(sock, max_wait, t0):
    """Reads until EOF/error; returns the CLOSED/ALIVE line."""
    sock.settimeout(0.5)
    while time.time() - t0 < max_wait:
        try:
            d = sock.recv(65536)
            if not d:
                return f"CLOSED after={time.time() - t0:.1f} how=eof"
        except socket.timeout:
            continue
        except ssl.SSLError:
            return f"CLOSED after={time.time() - t0:.1f} how=tls-alert"
        except OSError:
            return f"CLOSED after={time.time() - t0:.1f} how=reset"
    return f"ALIVE after={time.time() - t0:.1f}"


def headers_frame_no_end(authority):
    import hpack
    block = hpack.Encoder().encode([(":method", "CONNECT"), (":authority", authority)])
    # Only the first half of the block, without END_HEADERS (flag 0x4); END_STREAM off.
    part = block[: max(1, len(block) // 2)]
    return len(part).to_bytes(3, "big") + bytes([0x1, 0x0]) + (1).to_bytes(4, "big") + part


def window0(a):
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False)
    conns = []
    for _ in range(a.conns):
        s = tls_connect(a)
        s.setblocking(False)
        c = h2.connection.H2Connection(config=cfg)
        c.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        c.initiate_connection()
        sids = []
        for _ in range(a.streams):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "CONNECT"), (":authority", a.authority)])
            sids.append(sid)
        conns.append({"sock": s, "h2": c, "sids": sids, "ok": set(), "dead": False, "out": b""})
    chunk = b"x" * 16384
    sent = resets = goaways = 0
    t0 = time.time()
    while time.time() - t0 < a.seconds:
        progress = False
        for st in conns:
            if st["dead"]:
                continue
            c, s = st["h2"], st["sock"]
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        st["dead"] = True
                        break
                    for ev in c.receive_data(d):
                        if isinstance(ev, h2.events.ResponseReceived):
                            if dict(ev.headers).get(":status") == "200":
                                st["ok"].add(ev.stream_id)
                        elif isinstance(ev, h2.events.StreamReset):
                            resets += 1
                            st["ok"].discard(ev.stream_id)
                            if ev.stream_id in st["sids"]:
                                st["sids"].remove(ev.stream_id)
                        elif isinstance(ev, h2.events.ConnectionTerminated):
                            goaways += 1
                            st["dead"] = True
                        # DataReceived: deliberately never acknowledged (no WINDOW_UPDATE).
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            except (OSError, h2.exceptions.ProtocolError):
                st["dead"] = True
            if st["dead"]:
                continue
            for sid in list(st["ok"]):
                try:
                    room = min(c.local_flow_control_window(sid), c.max_outbound_frame_size)
                    if room >= len(chunk) and len(st["out"]) < 1 << 20:
                        c.send_data(sid, chunk)
                        sent += len(chunk)
                        progress = True
                except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError):
                    st["ok"].discard(sid)
            st["out"] += c.data_to_send()
            if st["out"]:
                try:
                    n = s.send(st["out"])
                    st["out"] = st["out"][n:]
                    progress = progress or n > 0
                except (ssl.SSLWantWriteError, BlockingIOError, ssl.SSLWantReadError):
                    pass
                except OSError:
                    st["dead"] = True
        if not progress:
            socks = [st["sock"] for st in conns if not st["dead"]]
            if not socks:
                break
            select.select(socks, [st["sock"] for st in conns if not st["dead"] and st["out"]], [], 0.05)
    ok = sum(len(st["ok"]) for st in conns)
    closed = sum(1 for st in conns if st["dead"])
    print(f"WINDOW0 conns={a.conns} streams_ok={ok} sent_bytes={sent} resets={resets} goaways={goaways} closed={closed}",
          flush=True)
    if a.hold > 0:
        time.sleep(a.hold)
    for st in conns:
        try:
            st["sock"].close()
        except OSError:
            pass


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["no-handshake", "slow-preface", "slow-headers", "window0"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=15008)
    p.add_argument("--cert-dir")
    p.add_argument("--authority", default="127.0.0.1:9000")
    p.add_argument("--max-wait", type=float, default=30.0)
    p.add_argument("--conns", type=int, default=40)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--hold", type=float, default=0.0, help="window0: keep the sockets open this long after")
    a = p.parse_args(argv)
    t0 = time.time()
    if a.mode == "no-handshake":
        s = socket.create_connection((a.host, a.port), timeout=10)
        print(wait_close(s, a.max_wait, t0), flush=True)
    elif a.mode == "slow-preface":
        s = tls_connect(a)
        t0 = time.time()
        print(wait_close(s, a.max_wait, t0), flush=True)
    elif a.mode == "slow-headers":
        s = tls_connect(a)
        s.sendall(PREFACE + bytes.fromhex("000000040000000000") + headers_frame_no_end(a.authority))
        t0 = time.time()
        print(wait_close(s, a.max_wait, t0), flush=True)
    else:
        window0(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
