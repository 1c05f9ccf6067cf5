#!/usr/bin/env python3
"""Delta-propagation probe for bench/xds_scale.sh.

xds_scale_probe.py MESH_DIR STATS_PORT EDITS

Each round rewrites MESH_DIR/zz-edit.yaml (one pod whose `version` label changes, so its
Workload resource changes) by an atomic rename, then polls ztunnel's
istio_xds_message_total for the Address type until it grows: ztunnel counts a response after
it has applied it, so the time from the rename to the increment is "file edit -> ztunnel
applied". Prints one latency per line (ms) and a P50/P90/P99/max summary. Bounded: 10 s per
round, EDITS rounds.
"""
import http.client
import os
import sys
import time

URL_LABEL = 'type.googleapis.com/istio.workload.Address'


def address_messages(conn):
    conn.request('GET', '/metrics')
    body = conn.getresponse().read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith('istio_xds_message_total{') and URL_LABEL in line:
            total += float(line.rsplit(' ', 1)[1])
    return total


def pod_yaml(i):
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: edit-pod\n  namespace: bench-000\n"
            f"  labels:\n    app: svc-0\n    version: v{i}\nspec:\n  serviceAccountName: sa-0\n"
            "  nodeName: node-0\nstatus:\n  phase: Running\n  podIP: 10.127.255.1\n")


def pct(sorted_vals, p):
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    mesh, port, edits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    lat = []
    for i in range(1, edits + 1):
        before = address_messages(conn)
        tmp = os.path.join(mesh, '.zz-edit.tmp')
        with open(tmp, 'w') as f:
            f.write(pod_yaml(i))
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(mesh, 'zz-edit.yaml'))
        deadline = t0 + 10
        seen = False
        while time.monotonic() < deadline:
            if address_messages(conn) > before:
                seen = True
                break
            time.sleep(0.002)
        if not seen:
            print(f'edit {i}: not applied within 10 s', file=sys.stderr)
            sys.exit(1)
        ms = (time.monotonic() - t0) * 1000
        lat.append(ms)
        print(f'edit {i}: {ms:.1f} ms', flush=True)
        time.sleep(0.3)
    s = sorted(lat)
    print(f'delta propagation over {len(s)} edits: P50 {pct(s, 50):.0f} ms, P90 {pct(s, 90):.0f} ms, '
          f'P99 {pct(s, 99):.0f} ms, max {s[-1]:.0f} ms')


if __name__ == '__main__':
    main()
