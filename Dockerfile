# One image with every binary of the project: ztunnel, controlplane, ambient-cni, waypoint, on
# Debian 12. Built daemonless with podman/buildah by scripts/build-image.sh, which also makes the
# base image from Debian's own packages when no registry is reachable (mmdebstrap with the
# runtime packages below already installed, so the runtime-base step needs no network; or
# debootstrap); any Debian 12 image works as BASE.
#
# Targets:
#   image           (last, the default): compiles the binaries in the `build` stage (Release).
#   image-prebuilt  takes already built binaries from the build context's bin/ directory
#                   (scripts/build-image.sh --prebuilt build/bin stages them there, stripped).
#
# Users and capabilities (the charts set them; nothing here is setuid):
#   ztunnel      root (uid 0), group 1337; NET_ADMIN (SO_MARK, IP_TRANSPARENT), SYS_ADMIN (setns
#                into pod network namespaces), NET_RAW; read-only root filesystem.
#   ambient-cni  root; NET_ADMIN + NET_RAW (iptables-restore and netlink in pod namespaces),
#                SYS_ADMIN (setns), DAC_OVERRIDE (writes the host's CNI bin/conf dirs). It copies
#                ambient-cni-plugin (static, runs on any host) onto each node as the plugin.
#   controlplane uid/gid 1337 (user istio-proxy), no capabilities.
#   waypoint     uid/gid 1337, no capabilities.
ARG BASE=docker.io/library/debian:bookworm

# Runtime libraries of the binaries (libgoogle-perftools4: dlopened by /debug/pprof/profile), iptables for the in-pod rules (the ip rule/route go
# through libnl, so no iproute2), CA roots.
# scripts/build-image.sh reads this list (one line) to bootstrap its base with it.
FROM ${BASE} AS runtime-base
ARG RUNTIME_PACKAGES="ca-certificates iptables libssl3 libnghttp2-14 libspdlog1.10 libfmt9 libyaml-cpp0.7 libprotobuf32 libprotobuf-lite32 libgrpc++1.51 libnl-3-200 libnl-route-3-200 libgoogle-perftools4"
RUN if dpkg -s ${RUNTIME_PACKAGES} >/dev/null 2>&1; then \
      echo "runtime packages already in the base image"; \
    else \
      apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${RUNTIME_PACKAGES} \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd -g 1337 istio-proxy \
 && useradd -u 1337 -g 1337 -M -d /nonexistent -s /usr/sbin/nologin istio-proxy

FROM ${BASE} AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN bash /src/scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DAMBIENT_TESTS=OFF \
 && cmake --build /build --target ztunnel controlplane ambient-cni ambient-cni-plugin \
 && (cmake --build /build --target waypoint || true) \
 && mkdir -p /out \
 && for b in ztunnel controlplane ambient-cni waypoint; do \
      if [ -x /build/bin/$b ]; then strip -o /out/$b /build/bin/$b; fi; \
    done

FROM runtime-base AS image-prebuilt
COPY bin/ /usr/local/bin/

FROM runtime-base AS image
COPY --from=build /out/ /usr/local/bin/
