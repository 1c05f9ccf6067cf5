#!/usr/bin/env python3
"""Subscribes to the controlplane's delta ADS as a ztunnel does (istio.workload.Address,
wildcard) with python grpcio and message classes compiled at test time from OUR proto/ files
(INTEROP_PB), ACKs every response, and prints after each one:
  STATE {"<workload name>": {"namespace", "uid", "protocol" (NONE|HBONE), "node", "addresses",
         "status", "network_mode", "services" {"ns/host": {"port": target}}, "locality"}, ...}
  (a workload from an EndpointSlice is keyed "<slice name>/<first address>")
Usage: xds_watch.py ADDR ROOT_CA TOKEN NODE_ID SECONDS
"""
import ipaddress
import json
import os
import queue
import sys
import threading

sys.path.insert(0, os.environ["INTEROP_PB"])
import grpc  # noqa: E402
from envoy.service.discovery.v3 import discovery_pb2  # noqa: E402
from istio.workload import workload_pb2  # noqa: E402

TYPE = "type.googleapis.com/istio.workload.Address"


def main():
    addr, root_ca, token, node_id, seconds = sys.argv[1:6]
    creds = grpc.ssl_channel_credentials(open(root_ca, "rb").read())
    ch = grpc.secure_channel(addr, creds)
    call = ch.stream_stream("/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
                            request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
                            response_deserializer=discovery_pb2.DeltaDiscoveryResponse.FromString)
    reqs = queue.Queue()
    first = discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE)
    first.node.id = node_id
    reqs.put(first)

    def gen():
        while True:
            r = reqs.get()
            if r is None:
                return
            yield r

    stream = call(gen(), metadata=[("authorization", "Bearer " + token)])
    threading.Timer(float(seconds), lambda: (reqs.put(None), stream.cancel())).start()
    workloads = {}   # resource name -> summary
    try:
        for resp in stream:
            for r in resp.resources:
                a = workload_pb2.Address()
                a.ParseFromString(r.resource.value)
                if a.WhichOneof("type") != "workload":
                    continue
                w = a.workload
                addrs = [str(ipaddress.ip_address(b)) for b in w.addresses]
                # Workloads from EndpointSlices share their slice's name: key them by address too.
                key = w.name + "/" + addrs[0] if "/discovery.k8s.io/EndpointSlice/" in w.uid and addrs else w.name
                workloads[r.name] = {"key": key, "name": w.name, "namespace": w.namespace, "uid": w.uid,
                                     "protocol": workload_pb2.TunnelProtocol.Name(w.tunnel_protocol),
                                     "node": w.node, "addresses": addrs,
                                     "status": workload_pb2.WorkloadStatus.Name(w.status),
                                     "network_mode": workload_pb2.NetworkMode.Name(w.network_mode),
                                     "services": {h: {str(p.service_port): p.target_port for p in pl.ports}
                                                  for h, pl in w.services.items()},
                                     "locality": [w.locality.region, w.locality.zone, w.locality.subzone]}
            for n in resp.removed_resources:
                workloads.pop(n, None)
            reqs.put(discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE, response_nonce=resp.nonce))
            state = {v["key"]: v for v in workloads.values()}
            print("STATE " + json.dumps(state, sort_keys=True), flush=True)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            print("ERROR %s %s" % (e.code(), e.details()), flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
