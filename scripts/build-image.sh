#!/usr/bin/env bash
# scripts/build-image.sh [--prebuilt BIN_DIR] [--tag IMAGE] [--root DIR] [--check]
# Builds the project's container image (Dockerfile) without a daemon: podman build (buildah)
# on a Debian 12 base made from Debian's own packages by debootstrap, so no registry is needed.
#
#   --prebuilt BIN_DIR  use binaries already built (stripped copies of BIN_DIR's ztunnel,
#                       controlplane, ambient-cni, ambient-cni-plugin, waypoint) -> target image-prebuilt;
#                       default: compile inside the image (target image)
#   --tag IMAGE         default localhost/ambient:latest
#   --root DIR          private podman store (--root DIR/root --runroot DIR/run, vfs); default:
#                       podman's normal store, so `podman run` / `podman save` see the image
#   --check             then run each binary in the image: ambient-cni(-plugin) --version,
#                       controlplane help, ztunnel (loads and rejects an incomplete config)
# The base rootfs is cached as $AMBIENT_IMAGE_CACHE/debian-bookworm.tar (default
# /var/cache/ambient-image); the first debootstrap takes minutes, later builds reuse it.
# Build steps use the host network (no bridge or NAT rules are created). Prints timings.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREBUILT="" TAG=localhost/ambient:latest STORE="" CHECK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --root) STORE=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
CACHE=${AMBIENT_IMAGE_CACHE:-/var/cache/ambient-image}
BASE=localhost/ambient-base:bookworm
log() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for t in podman debootstrap; do
  command -v "$t" >/dev/null || { log "missing $t (scripts/install-deps.sh installs it)"; exit 1; }
done
PM=(podman)
if [[ -n $STORE ]]; then
  mkdir -p "$STORE"
  PM=(podman --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
fi
# No bridge networks for builds or checks; crun does not work on every cgroup setup, runc does.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$CACHE/containers.conf}
mkdir -p "$CACHE"
if [[ ! -f $CONTAINERS_CONF ]]; then
  printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' >"$CONTAINERS_CONF"
fi

t0=$(date +%s)
# 1. base image from Debian's packages (the machine's apt mirror), cached as a tarball.
if [[ ! -f $CACHE/debian-bookworm.tar ]]; then
  mirror=${DEBIAN_MIRROR:-$(grep -h -o -m1 -E 'https?://[^ ]+/debian/?' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $mirror"
  work=$(mktemp -d "$CACHE/.rootfs.XXXXXX")
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; rm -rf "$work"; exit 1; }
  tar -C "$work/rootfs" -cf "$CACHE/debian-bookworm.tar.tmp" .
  mv "$CACHE/debian-bookworm.tar.tmp" "$CACHE/debian-bookworm.tar"
  rm -rf "$work"
fi
t1=$(date +%s)
if ! "${PM[@]}" image exists "$BASE"; then
  "${PM[@]}" import "$CACHE/debian-bookworm.tar" "$BASE" >/dev/null
fi
t2=$(date +%s)
log "base image ready: debootstrap $((t1 - t0)) s, import $((t2 - t1)) s"

# 2. the image.
if [[ -n $PREBUILT ]]; then
  ctx=$(mktemp -d /tmp/ambient-image-ctx.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/bin"
  for b in ztunnel controlplane ambient-cni ambient-cni-plugin waypoint; do
    [[ -x $PREBUILT/$b ]] && strip -o "$ctx/bin/$b" "$PREBUILT/$b"
  done
  [[ -x $ctx/bin/ztunnel && -x $ctx/bin/ambient-cni && -x $ctx/bin/ambient-cni-plugin ]] \
    || { log "$PREBUILT lacks ztunnel, ambient-cni or ambient-cni-plugin"; exit 1; }
  cp "$ROOT_DIR/Dockerfile" "$ctx/Dockerfile"
  "${PM[@]}" build --network host --build-arg BASE="$BASE" --target image-prebuilt -t "$TAG" "$ctx" >&2
else
  "${PM[@]}" build --network host --build-arg BASE="$BASE" --target image -t "$TAG" "$ROOT_DIR" >&2
fi
# podman build has been seen to return 0 when its build container was killed: trust the store.
"${PM[@]}" image exists "$TAG" || { log "podman build ended without producing $TAG"; exit 1; }
t3=$(date +%s)
log "image $TAG built in $((t3 - t2)) s (total $((t3 - t0)) s)"

# 3. every binary runs in it.
if [[ $CHECK == 1 ]]; then
  run() { "${PM[@]}" run --rm --network none "$@"; }
  rc=0
  out=$(run "$TAG" ambient-cni --version 2>&1) && [[ $out == "ambient-cni "* ]] \
    && log "ok: $out" || { log "FAIL ambient-cni --version: $out"; rc=1; }
  out=$(run "$TAG" ambient-cni-plugin --version 2>&1) && [[ $out == "ambient-cni-plugin "* ]] \
    && log "ok: $out" || { log "FAIL ambient-cni-plugin --version: $out"; rc=1; }
  if "${PM[@]}" run --rm --network none --entrypoint test "$TAG" -x /usr/local/bin/controlplane; then
    out=$(run "$TAG" controlplane help 2>&1) && [[ $out == *"usage: controlplane"* ]] \
      && log "ok: controlplane help" || { log "FAIL controlplane help: $out"; rc=1; }
  fi
  # ztunnel has no --version yet: it must load (all libraries present) and reject dedicated
  # mode without PROXY_WORKLOAD_INFO, naming the variable.
  out=$(run -e PROXY_MODE=dedicated "$TAG" ztunnel 2>&1) || true
  [[ $out == *PROXY_WORKLOAD_INFO* ]] && log "ok: ztunnel starts and checks its config" \
    || { log "FAIL ztunnel: $out"; rc=1; }
  if "${PM[@]}" run --rm --network none --entrypoint test "$TAG" -x /usr/local/bin/waypoint; then
    out=$(run "$TAG" waypoint --version 2>&1) && log "ok: waypoint: $out" || { log "FAIL waypoint --version: $out"; rc=1; }
  fi
  t4=$(date +%s)
  log "checks done in $((t4 - t3)) s"
  exit $rc
fi
