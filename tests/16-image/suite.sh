#!/usr/bin/env bash
# tests/16-image/suite.sh BIN_DIR — the container image (issue 12, "What it must show" 2: the
# image builds in a test and each binary runs in it). scripts/build-image.sh --prebuilt BIN_DIR
# builds the Dockerfile's image-prebuilt target with podman (buildah, daemonless) on a Debian 12
# base bootstrapped from Debian's packages by mmdebstrap (cached in
# $AMBIENT_IMAGE_CACHE, default /var/cache/ambient-image; a cold base is ~1 min of CPU plus the
# download), into a private image store of this test; then `podman run` of each binary's
# --version in the image (no network). Release build only (label `image`; `make test-asan`
# excludes it): an ASan binary needs its runtime, which the image does not carry.
# Root (podman's store, runc). Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any
# failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"   # pass/fail/check/summary, require_root; no namespaces here

require_root
for t in podman mmdebstrap runc; do
  command -v "$t" >/dev/null 2>&1 || { fail "$t installed (scripts/install-deps.sh)"; summary; exit 1; }
done
for b in ztunnel controlplane waypoint ambient-cni ambient-cni-plugin; do
  [[ -x $BIN_DIR/$b ]] || { fail "binary built at $BIN_DIR/$b"; summary; exit 1; }
done
if nm -D "$BIN_DIR/ztunnel" 2>/dev/null | grep -q __asan_init || nm "$BIN_DIR/ztunnel" 2>/dev/null | grep -q __asan_init; then
  fail "release binaries (this is a sanitizer build; the image test runs on the release build only)"
  summary; exit 1
fi

T=$(mktemp -d /tmp/zt-image.XXXXXX)
cleanup() {
  # The private store holds vfs layers owned by root; podman removes its own state first.
  podman --root "$T/store/root" --runroot "$T/store/run" --storage-driver vfs rmi -a -f >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
TAG=localhost/ambient-test:$$

start=$(date +%s)
bash "$ZT_ROOT/scripts/build-image.sh" --prebuilt "$BIN_DIR" --tag "$TAG" --root "$T/store" --check \
  >"$T/build.out" 2>&1
rc=$?
took=$(($(date +%s) - start))
check "build-image.sh --prebuilt --check exits 0 (${took} s)" test "$rc" = 0
[[ $rc == 0 ]] || sed -n '1,400p' "$T/build.out" | tail -n 40

# The same podman settings as the build (runc, cgroupfs; written by build-image.sh).
export CONTAINERS_CONF=${CONTAINERS_CONF:-${AMBIENT_IMAGE_CACHE:-/var/cache/ambient-image}/containers.conf}
prun() { podman --root "$T/store/root" --runroot "$T/store/run" --storage-driver vfs run --rm --network none "$@"; }
check "image has a Debian 12 base" prun --entrypoint grep "$TAG" -q '^VERSION_CODENAME=bookworm' /etc/os-release
# Each binary ran in the image and printed its own build identity.
check "ztunnel --version ran in the image" contains 'ok: ztunnel --version: version.BuildInfo{Version:' "$T/build.out"
for b in controlplane waypoint ambient-cni ambient-cni-plugin; do
  check "$b --version ran in the image" contains "ok: $b --version: $b [0-9]" "$T/build.out"
done
check_not "no binary failed in the image" contains 'FAIL ' "$T/build.out"
# The runtime packages came with the base (no apt-get during the build when mmdebstrap made it).
check "the runtime packages were in the base (no apt-get in the build)" \
  contains 'runtime packages already in the base image' "$T/build.out"
check "the controlplane runs as istio-proxy (uid 1337 exists in the image)" \
  prun --user istio-proxy "$TAG" controlplane --version
grep -E '^\[build-image' "$T/build.out" | grep -E 'base image ready|built in|checks done'
summary
