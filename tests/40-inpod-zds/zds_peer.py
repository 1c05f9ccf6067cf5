#!/usr/bin/env python3
"""zds_peer.py - an independent ZDS node agent (the istio-cni side) for interop tests.

Written from ztunnel-facts.md section 3 only: protobuf is encoded and decoded by hand (no
generated code shared with the C++ side), the socket is AF_UNIX SOCK_SEQPACKET with one message
per packet, the netns fd travels with SCM_RIGHTS on AddWorkload.

It listens on --socket, starts the ztunnel side (--probe: zds-probe, which runs the real
ZdsClient and prints one event line per request), and drives it through: hello check, a
snapshot (Add + Keep + SnapshotSent), Add after the snapshot, an Add the handler refuses, Del,
Keep after the snapshot, then a series of protocol violations (undecodable bytes, Add without
an fd, Add with two fds, Add with a non-netns fd, Del with an fd, an oversize packet, an unknown
payload field). After each violation the client must close the connection and come back with a
fresh hello; at the end it must still serve a full snapshot, hold no leaked netns fds, and
reconnect after the agent closes the socket.

Prints "PASS: ..." / "FAIL: ..." lines; exit status 1 when anything failed.
"""
import argparse
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time

# ---- hand-rolled protobuf -------------------------------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def parse_fields(buf):
    """Decodes a message into {field_number: [values]} (varints as int, LEN as bytes)."""
    fields = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i)
            if i + ln > len(buf):
                raise ValueError("truncated field")
            v, i = buf[i:i + ln], i + ln
        else:
            raise ValueError("unexpected wire type %d" % wt)
        fields.setdefault(num, []).append(v)
    return fields


def read_varint(buf, i):
    shift = n = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# WorkloadRequest oneof: add=1, del=2, snapshot_sent=3, keep=5.
def req_add(uid, name, ns, sa):
    info = f_bytes(1, name) + f_bytes(2, ns) + f_bytes(3, sa)
    return f_bytes(1, f_bytes(1, uid) + f_bytes(2, info))


def req_keep(uid):
    return f_bytes(5, f_bytes(1, uid))


def req_del(uid):
    return f_bytes(2, f_bytes(2, uid))  # DelWorkload.uid is field 2


def req_snapshot_sent():
    return f_bytes(3, b"")


def decode_ack(buf):
    """WorkloadResponse{ack=1: Ack{error=1}} -> error text ('' = success)."""
    resp = parse_fields(buf)
    if 1 not in resp:
        raise ValueError("WorkloadResponse without ack: %r" % buf)
    ack = parse_fields(resp[1][0])
    return ack.get(1, [b""])[0].decode()


# ---- test plumbing --------------------------------------------------------------------------

RESULTS = {"pass": 0, "fail": 0}


def result(ok, name, detail=""):
    if ok:
        RESULTS["pass"] += 1
        print("PASS: " + name, flush=True)
    else:
        RESULTS["fail"] += 1
        print("FAIL: " + name + (("\n      " + detail) if detail else ""), flush=True)
    return ok


class Probe:
    """The ztunnel side: zds-probe's event lines (log lines start with a timestamp)."""

    def __init__(self, argv, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.events = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            line = line.rstrip("\n")
            if line and not line[0].isdigit():
                self.events.put(line)

    def expect(self, pattern, timeout=5.0):
        """Next event line matching `pattern` (regex, full match); None on timeout. Events that
        do not match are skipped (and returned in the failure detail)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.skipped = skipped
                return None
            try:
                line = self.events.get(timeout=left)
            except queue.Empty:
                self.skipped = skipped
                return None
            if re.fullmatch(pattern, line):
                return line
            skipped.append(line)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def recv_packet(conn, timeout=5.0):
    """One packet (bytes) or None on EOF; raises socket.timeout."""
    conn.settimeout(timeout)
    data, _anc, flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    if not data:
        return None
    if flags & socket.MSG_TRUNC:
        raise ValueError("reply truncated")
    return data


def request(conn, payload, fds=()):
    socket.send_fds(conn, [payload], list(fds))
    return decode_ack(recv_packet(conn))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--netns-a", required=True)
    ap.add_argument("--netns-b", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv.bind(args.socket)
    srv.listen(4)
    srv.settimeout(10)

    ns_a = os.open(args.netns_a, os.O_RDONLY)
    ns_b = os.open(args.netns_b, os.O_RDONLY)
    ino_a, ino_b = os.fstat(ns_a).st_ino, os.fstat(ns_b).st_ino
    not_ns = os.open("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd", os.O_RDONLY)

    probe = Probe([args.probe, "--socket", args.socket], args.log)

    def accept_hello(label):
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            result(False, label + ": client connected", "no connection within 10 s")
            return None
        try:
            hello = recv_packet(conn)
            f = parse_fields(hello) if hello is not None else {}
        except (ValueError, socket.timeout) as e:
            result(False, label + ": hello", str(e))
            return None
        if not result(f.get(1) == [1] and set(f) == {1},
                      label + ": first packet is ZdsHello{version: V1}", "got %r" % (hello,)):
            return None
        return conn

    try:
        conn = accept_hello("connect")
        if conn is None:
            return 1

        # ---- snapshot ---------------------------------------------------------------------
        err = request(conn, req_add("u-snap", "pod-a", "ns-a", "sa-a"), [ns_a])
        result(err == "", "snapshot AddWorkload acked OK", err)
        ev = probe.expect(r"ADD u-snap ns-a/pod-a sa=sa-a netns=\d+")
        result(ev is not None and ev.endswith("netns=%d" % ino_a),
               "handler got the pod identity and the same netns (inode %d)" % ino_a, str(ev))
        err = request(conn, req_keep("u-kept"))
        result(err == "" and probe.expect(r"KEEP u-kept") is not None, "KeepWorkload acked and delivered", err)
        err = request(conn, req_snapshot_sent())
        ev = probe.expect(r"SNAPSHOT.*")
        result(err == "" and ev == "SNAPSHOT u-kept u-snap",
               "SnapshotSent acked; reconcile set = added + kept", "ack=%r event=%r" % (err, ev))

        # ---- steady state -----------------------------------------------------------------
        err = request(conn, req_add("u-new", "pod-b", "ns-b", "sa-b"), [ns_b])
        ev = probe.expect(r"ADD u-new .*")
        result(err == "" and ev == "ADD u-new ns-b/pod-b sa=sa-b netns=%d" % ino_b,
               "AddWorkload after the snapshot", "ack=%r event=%r" % (err, ev))
        err = request(conn, req_add("fail-1", "pod-f", "ns-b", "sa-b"), [ns_b])
        result("refusing fail-1" in err, "handler failure comes back as Ack.error", repr(err))
        err = request(conn, req_del("u-snap"))
        result(err == "" and probe.expect(r"DEL u-snap") is not None, "DelWorkload (uid in field 2) delivered", err)
        err = request(conn, req_keep("u-late"))
        result(err != "", "KeepWorkload after SnapshotSent is refused with an error ack", repr(err))

        # ---- protocol violations ----------------------------------------------------------
        violations = [
            ("undecodable bytes", b"\x0a\xff\xff\xff", []),
            ("AddWorkload without an fd", req_add("u-nofd", "p", "n", "s"), []),
            ("AddWorkload with two fds", req_add("u-2fd", "p", "n", "s"), [ns_a, ns_b]),
            ("AddWorkload with a non-netns fd", req_add("u-file", "p", "n", "s"), [not_ns]),
            ("DelWorkload with an fd", req_del("u-new"), [ns_a]),
            ("oversize packet (2000 bytes)", req_keep("x" * 2000), []),
            ("unknown payload field 4", f_bytes(4, b""), []),
        ]
        for name, payload, fds in violations:
            socket.send_fds(conn, [payload], fds)
            # The client may answer with an error ack before closing; then it must close.
            got_eof = False
            ack = None
            try:
                while True:
                    p = recv_packet(conn)
                    if p is None:
                        got_eof = True
                        break
                    ack = decode_ack(p)
            except (socket.timeout, ValueError, ConnectionResetError):
                pass
            conn.close()
            result(got_eof and (ack is None or "protocol error" in ack),
                   "%s: connection closed by the client (ack %r)" % (name, ack))
            conn = accept_hello("after %s" % name)
            if conn is None:
                return 1
        result(probe.alive(), "client process survived every malformed message")

        # ---- still fully functional: replay a snapshot on the last connection -------------
        err1 = request(conn, req_add("u-snap", "pod-a", "ns-a", "sa-a"), [ns_a])
        err2 = request(conn, req_snapshot_sent())
        ev = probe.expect(r"SNAPSHOT.*")
        result(err1 == "" and err2 == "" and ev == "SNAPSHOT u-snap",
               "full snapshot served after the violations", "acks=%r,%r event=%r" % (err1, err2, ev))

        # No netns fd may stay open in the client (handler drops them; rejected ones closed).
        time.sleep(0.2)
        fd_dir = "/proc/%d/fd" % probe.proc.pid
        leaked = []
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)).startswith("net:["):
                    leaked.append(fd)
            except OSError:
                pass
        result(not leaked, "no netns fds left open in the client", "open: %s" % leaked)

        # ---- agent goes away: the client reconnects ---------------------------------------
        conn.close()
        ev = probe.expect(r"DISCONNECTED.*")
        result(ev is not None, "client noticed the agent closing", str(ev))
        conn = accept_hello("reconnect after close")
        if conn is not None:
            conn.close()
    finally:
        probe.stop()
        srv.close()
    return 0 if RESULTS["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
