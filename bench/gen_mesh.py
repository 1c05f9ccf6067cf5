#!/usr/bin/env python3
"""Writes a large Kubernetes-style mesh for `controlplane serve` (bench/xds_scale.sh).

gen_mesh.py DIR PODS SERVICES [NAMESPACES]

One file per namespace (Namespace labelled ambient, its pods, its services, one
AuthorizationPolicy), so an edit re-reads one file. Pods are spread over 50 nodes; service i
selects the pods labelled app=svc-i (PODS/SERVICES pods each). Addresses: pods from 10.128.0.0/9,
service VIPs from 172.16.0.0/12 — written as text only, nothing is ever routed to them.
"""
import os
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, pods, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    namespaces = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    os.makedirs(out, exist_ok=True)
    pods_per_ns = (pods + namespaces - 1) // namespaces
    svcs_per_ns = (services + namespaces - 1) // namespaces
    per_svc = max(1, pods // max(1, services))
    p = s = 0
    for n in range(namespaces):
        ns = f"bench-{n:03d}"
        docs = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n"
                f"    istio.io/dataplane-mode: ambient\n"]
        for _ in range(svcs_per_ns):
            if s >= services:
                break
            ip = 0xAC100000 + s + 1
            docs.append(
                f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\n  namespace: {ns}\n"
                f"spec:\n  clusterIP: {ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}\n"
                f"  selector:\n    app: svc-{s}\n  ports:\n  - name: http\n    port: 80\n"
                f"    targetPort: 8080\n")
            s += 1
        for _ in range(pods_per_ns):
            if p >= pods:
                break
            ip = 0x0A800000 + p + 1
            svc = min(p // per_svc, services - 1)
            docs.append(
                f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{p}\n  namespace: {ns}\n"
                f"  labels:\n    app: svc-{svc}\n    version: v1\nspec:\n"
                f"  serviceAccountName: sa-{svc % 7}\n  nodeName: node-{p % 50}\n"
                f"  containers:\n  - name: app\n    ports:\n    - containerPort: 8080\n"
                f"status:\n  phase: Running\n"
                f"  podIP: {ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}\n")
            p += 1
        docs.append(
            f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
            f"  name: allow-same-ns\n  namespace: {ns}\nspec:\n  action: ALLOW\n  rules:\n"
            f"  - from:\n    - source:\n        namespaces: [\"{ns}\"]\n")
        with open(os.path.join(out, f"{ns}.yaml"), "w") as f:
            f.write("---\n".join(docs))
    print(f"{p} pods, {s} services, {namespaces} namespaces in {out}")


if __name__ == "__main__":
    main()
