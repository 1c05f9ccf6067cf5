#!/usr/bin/env bash
# scripts/build-image.sh [--prebuilt BIN_DIR] [--tag IMAGE] [--root DIR] [--check]
# Builds the project's container image (Dockerfile) without a daemon: podman build (buildah)
# on a Debian 12 base made from Debian's own packages by mmdebstrap (or debootstrap), so no
# registry is needed.
#
#   --prebuilt BIN_DIR  use binaries already built (stripped copies of BIN_DIR's ztunnel,
#                       controlplane, ambient-cni, ambient-cni-plugin, waypoint) -> target image-prebuilt;
#                       default: compile inside the image (target image)
#   --tag IMAGE         default localhost/ambient:latest
#   --root DIR          private podman store (--root DIR/root --runroot DIR/run, vfs); default:
#                       podman's normal store, so `podman run` / `podman save` see the image
#   --check             then run each binary's --version in the image (podman run, no network)
# The base rootfs is cached as $AMBIENT_IMAGE_CACHE/debian-bookworm-runtime-<id>.tar (mmdebstrap;
# <id> from the runtime package list;
# debian-bookworm.tar with debootstrap; default /var/cache/ambient-image); later builds reuse it.
# DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the mirror (default: the machine's sources).
# Build steps use the host network (no bridge or NAT rules are created). Prints timings.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREBUILT="" TAG=localhost/ambient:latest STORE="" CHECK=0 PREBUILT_HAS_WAYPOINT=""
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
command -v podman >/dev/null || { log "missing podman (scripts/install-deps.sh installs it)"; exit 1; }
command -v mmdebstrap >/dev/null || command -v debootstrap >/dev/null \
  || { log "missing mmdebstrap (or debootstrap) (scripts/install-deps.sh installs it)"; exit 1; }
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
#    mmdebstrap (preferred): the `apt` variant plus the Dockerfile's RUNTIME_PACKAGES, so the
#    image's runtime-base step finds them installed and needs no network; dpkg runs with
#    force-unsafe-io in a tmpfs work dir (no fsync per file: a cold base is CPU-bound, ~1 min of
#    CPU). Fallback: debootstrap minbase, the packages then come from apt-get in the build.
runtime_pkgs=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' "$ROOT_DIR/Dockerfile")
[[ -n $runtime_pkgs ]] || { log "Dockerfile has no ARG RUNTIME_PACKAGES line"; exit 1; }
if command -v mmdebstrap >/dev/null; then
  # Named after the package list, so adding a runtime package builds (and imports) a fresh base.
  pkgs_id=$(printf '%s' "$runtime_pkgs" | md5sum | cut -c1-8)
  BASE=localhost/ambient-base:bookworm-runtime-$pkgs_id
  base_tar=$CACHE/debian-bookworm-runtime-$pkgs_id.tar
else
  base_tar=$CACHE/debian-bookworm.tar
fi
if [[ ! -f $base_tar ]]; then
  mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(https\?:[^ ]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=${DEBIAN_SECURITY_MIRROR:-${mirror}-security}
  work=$(mktemp -d "$CACHE/.rootfs.XXXXXX")
  if [[ $base_tar == *runtime-*.tar ]]; then
    tmp=$CACHE
    # tmpfs when it has room for the unpacked rootfs (~600 MB).
    [[ $(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}') -gt 1500000 ]] 2>/dev/null && tmp=/dev/shm
    log "mmdebstrap bookworm (apt + runtime packages) from $mirror, work dir in $tmp"
    TMPDIR=$tmp mmdebstrap --variant=apt --dpkgopt=force-unsafe-io \
      --include="$(tr ' ' ',' <<<"$runtime_pkgs"),passwd" bookworm "$work/base.tar" \
      "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" \
      >"$work/bootstrap.log" 2>&1 || { tail -n 20 "$work/bootstrap.log" >&2; rm -rf "$work"; exit 1; }
    mv "$work/base.tar" "$base_tar.tmp"
  else
    log "debootstrap bookworm from $mirror (install mmdebstrap for a faster base)"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/bootstrap.log" 2>&1 \
      || { tail -n 20 "$work/bootstrap.log" >&2; rm -rf "$work"; exit 1; }
    tar -C "$work/rootfs" -cf "$base_tar.tmp" .
  fi
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$work"
fi
t1=$(date +%s)
if ! "${PM[@]}" image exists "$BASE"; then
  "${PM[@]}" import "$base_tar" "$BASE" >/dev/null
fi
t2=$(date +%s)
log "base image ready: bootstrap $((t1 - t0)) s, import $((t2 - t1)) s"

# 2. the image.
if [[ -n $PREBUILT ]]; then
  ctx=$(mktemp -d /tmp/ambient-image-ctx.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/bin"
  for b in ztunnel controlplane ambient-cni ambient-cni-plugin waypoint; do
    [[ -x $PREBUILT/$b ]] && strip -o "$ctx/bin/$b" "$PREBUILT/$b"
  done
  [[ -x $ctx/bin/waypoint ]] && PREBUILT_HAS_WAYPOINT=1
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

# 3. every binary runs in it: --version loads it (every shared library present in the image)
#    and prints its build identity. One container for all of them (each podman run costs
#    seconds on a busy machine); one line per binary: name, exit code, first output line.
if [[ $CHECK == 1 ]]; then
  rc=0
  report=$("${PM[@]}" run --rm --network none --entrypoint /bin/sh "$TAG" -c '
    for b in ztunnel controlplane waypoint ambient-cni ambient-cni-plugin; do
      if [ -x /usr/local/bin/$b ]; then v=$($b --version 2>&1); r=$?; else v="not in the image"; r=127; fi
      printf "%s|%s|%s\n" "$b" "$r" "$(printf "%s" "$v" | head -n 1)"
    done' 2>&1) || { log "FAIL podman run: $report"; exit 1; }
  while IFS='|' read -r b run_rc out; do
    [[ -n $b ]] || continue
    case $b in
      ztunnel) want='version.BuildInfo{Version:"*' ;;
      *) want="$b [0-9]*" ;;
    esac
    # waypoint is optional in --prebuilt trees that lack it; the rest must be there.
    if [[ $b == waypoint && $run_rc == 127 && -z $PREBUILT_HAS_WAYPOINT ]]; then log "skip: no waypoint in the image"; continue; fi
    # shellcheck disable=SC2053
    if [[ $run_rc == 0 && $out == $want ]]; then log "ok: $b --version: $out"; else log "FAIL $b --version (rc $run_rc): $out"; rc=1; fi
  done <<<"$report"
  t4=$(date +%s)
  log "checks done in $((t4 - t3)) s"
  exit $rc
fi
