#!/usr/bin/env python3
"""Delta-propagation probe for bench/xds_scale.sh.

xds_scale_probe.py MESH_DIR STATS_PORT EDITS

Each round makes one edit of one kind, in turn (so EDITS >= 50 covers every kind ~10 times):
  pod-changed     zz-edit.yaml: one pod whose `version` label changes (its Workload changes)
  pod-added       zz-pod-<i>.yaml appears: a new pod selected by service svc-0
  pod-removed     the pod added last round disappears (its file is deleted)
  service-changed zz-svc.yaml: service edit-svc (selecting app=svc-0) gets a new port, so the
                  Service and the services map of every pod it selects change
  policy-changed  zz-pol.yaml: policy edit-pol (selecting app=svc-1) gets a new port rule
Files are written by an atomic rename. The probe then polls ztunnel's
istio_xds_message_total for the type the edit changes (Address, or Authorization for a
policy) until it grows: ztunnel counts a response after it has applied it, so the time from
the rename/unlink to the increment is "file edit -> ztunnel applied". The service and policy
files are created (and waited for) before the timed rounds. Prints one latency per line, a
summary per kind and an overall P50/P90/P99/max line (last). Bounded: 10 s per round.
"""
import http.client
import os
import sys
import time

ADDRESS = 'type.googleapis.com/istio.workload.Address'
AUTHZ = 'type.googleapis.com/istio.security.Authorization'
KINDS = ['pod-changed', 'pod-added', 'pod-removed', 'service-changed', 'policy-changed']


def messages(conn, type_url):
    conn.request('GET', '/metrics')
    body = conn.getresponse().read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith('istio_xds_message_total{') and type_url in line:
            total += float(line.rsplit(' ', 1)[1])
    return total


def pod_yaml(name, version, ip):
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: bench-000\n"
            f"  labels:\n    app: svc-0\n    version: v{version}\nspec:\n  serviceAccountName: sa-0\n"
            f"  nodeName: node-0\nstatus:\n  phase: Running\n  podIP: {ip}\n")


def service_yaml(port):
    return ("apiVersion: v1\nkind: Service\nmetadata:\n  name: edit-svc\n  namespace: bench-000\n"
            "spec:\n  clusterIP: 172.31.255.1\n  selector:\n    app: svc-0\n  ports:\n"
            f"  - name: http\n    port: {port}\n    targetPort: 8080\n")


def policy_yaml(port):
    return ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
            "  name: edit-pol\n  namespace: bench-000\nspec:\n  selector:\n    matchLabels:\n"
            "      app: svc-1\n  action: ALLOW\n  rules:\n  - to:\n    - operation:\n"
            f"        ports: [\"{port}\"]\n")


def write(mesh, name, text):
    tmp = os.path.join(mesh, '.zz-edit.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
    os.rename(tmp, os.path.join(mesh, name))


def pct(sorted_vals, p):
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def timed(conn, type_url, action):
    """Runs action() and returns ms until ztunnel applied a response of type_url."""
    before = messages(conn, type_url)
    t0 = time.monotonic()
    action()
    deadline = t0 + 10
    while time.monotonic() < deadline:
        if messages(conn, type_url) > before:
            return (time.monotonic() - t0) * 1000
        time.sleep(0.002)
    return None


def main():
    mesh, port, edits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    # Untimed setup: the objects the timed rounds change.
    for type_url, action in ((ADDRESS, lambda: write(mesh, 'zz-svc.yaml', service_yaml(1000))),
                             (AUTHZ, lambda: write(mesh, 'zz-pol.yaml', policy_yaml(1000)))):
        if timed(conn, type_url, action) is None:
            sys.exit('setup edit not applied within 10 s')
        time.sleep(0.3)
    lat, per_kind = [], {k: [] for k in KINDS}
    added = None
    for i in range(1, edits + 1):
        kind = KINDS[(i - 1) % len(KINDS)]
        if kind == 'pod-removed' and added is None:
            kind = 'pod-added'
        type_url = ADDRESS
        if kind == 'pod-changed':
            action = lambda: write(mesh, 'zz-edit.yaml', pod_yaml('edit-pod', i, '10.127.255.1'))
        elif kind == 'pod-added':
            added = f'zz-pod-{i}.yaml'
            ip = f'10.127.{(i >> 8) & 255}.{(i & 255) or 1}'
            action = lambda: write(mesh, added, pod_yaml(f'added-pod-{i}', 1, ip))
        elif kind == 'pod-removed':
            gone, added = added, None
            action = lambda: os.unlink(os.path.join(mesh, gone))
        elif kind == 'service-changed':
            action = lambda: write(mesh, 'zz-svc.yaml', service_yaml(1000 + i))
        else:
            type_url = AUTHZ
            action = lambda: write(mesh, 'zz-pol.yaml', policy_yaml(1000 + i))
        ms = timed(conn, type_url, action)
        if ms is None:
            print(f'edit {i} ({kind}): not applied within 10 s', file=sys.stderr)
            sys.exit(1)
        lat.append(ms)
        per_kind[kind].append(ms)
        print(f'edit {i} ({kind}): {ms:.1f} ms', flush=True)
        time.sleep(0.3)
    for k in KINDS:
        s = sorted(per_kind[k])
        if s:
            print(f'kind {k}: {len(s)} edits, P50 {pct(s, 50):.0f} ms, P99 {pct(s, 99):.0f} ms, max {s[-1]:.0f} ms')
    s = sorted(lat)
    print(f'delta propagation over {len(s)} edits: P50 {pct(s, 50):.0f} ms, P90 {pct(s, 90):.0f} ms, '
          f'P99 {pct(s, 99):.0f} ms, max {s[-1]:.0f} ms')


if __name__ == '__main__':
    main()
