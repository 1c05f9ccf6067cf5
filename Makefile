# Two newcomer commands (see README.md): `make demo` and `make test`. Both install what they
# need first (scripts/install-deps.sh is idempotent), so they work on a fresh Debian 12.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
# ccache keys on paths relative to the checkout, so a fresh clone anywhere (CI) reuses objects
# compiled in another clone of the same sources.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
# A fresh CI machine has no ccache store: filling one would cost gigabytes of disk (a CI run
# once died of a full disk) and buys nothing for a single build, so CI without a store skips it.
CCACHE_STORE := $(or $(CCACHE_DIR),$(HOME)/.cache/ccache)
ifeq ($(CI)$(wildcard $(CCACHE_STORE)),true)
export CCACHE_DISABLE := 1
endif

.PHONY: deps build build-asan test test-unit test-asan fuzz-smoke fuzz-long demo bench bench-waypoint format tidy clean image image-prebuilt

deps:
	bash scripts/install-deps.sh

build:
	cmake --preset default >/dev/null
	cmake --build --preset default -j $(JOBS)

build-asan:
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# Everything CI runs: every suite (unit, interop, netns end-to-end) under the release build, all
# of them again under ASan+UBSan (clang; the same build also holds the libFuzzer targets), and a
# short libFuzzer smoke of every target.
test: deps
	$(MAKE) build
	cd build && ctest --output-on-failure --timeout 900
	$(MAKE) test-asan
	$(MAKE) fuzz-smoke

test-unit: build
	cd build && ctest --output-on-failure -R '^unit\.'

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure --timeout 900 -LE 'matrix|image'

fuzz-smoke: build-asan
	bash scripts/fuzz-smoke.sh build-asan/bin 20

# Release-depth fuzzing (not part of `make test`): every target for FUZZ_SECONDS (default 300 =
# 5 CPU-minutes each) with a corpus that persists in FUZZ_CORPUS between runs. FUZZ_TARGETS
# (e.g. "hbone_server_fuzz dns_fuzz") picks targets. See docs/testing.md.
FUZZ_SECONDS ?= 300
FUZZ_CORPUS ?= $(CURDIR)/.fuzz-corpus
FUZZ_TARGETS ?=
fuzz-long: build-asan
	bash scripts/fuzz-long.sh build-asan/bin $(FUZZ_SECONDS) $(FUZZ_CORPUS) $(FUZZ_TARGETS)

# The node (in-pod) demo is the main job: ambient-cni + one ztunnel serving three pods. Then the
# seeds' Calculate story through the waypoint (two nodes, live VirtualService edits), then the
# dedicated-mode tunnel demo (two pods, wire capture).
demo: deps
	$(MAKE) build
	bash scripts/demo-node.sh build/bin
	bash scripts/demo-waypoint.sh build/bin
	bash scripts/demo.sh build/bin

bench: deps
	$(MAKE) build
	bash bench/run.sh build/bin

# The waypoint against HAProxy doing the same header + weighted routing on the same two-node
# mesh (wrk, HTTP/1.1 keep-alive, 1 KiB responses); BENCH_SECS / BENCH_RUNS / BENCH_CONNS.
bench-waypoint: deps
	$(MAKE) build
	bash bench/waypoint.sh build/bin

# The container image (Dockerfile), built daemonless with podman/buildah on a Debian 12 base made
# by mmdebstrap, then each binary's --version run in it. `make test` runs the same with the
# release binaries (tests/16-image). image-prebuilt reuses `make build` output.
image: deps
	bash scripts/build-image.sh --check

image-prebuilt: build
	bash scripts/build-image.sh --prebuilt build/bin --check

# Every directory of our own C++ (generated protobuf code lives under build/ and is not ours).
SRC_DIRS := common hbone ztunnel waypoint controlplane cni tools tests fuzz proto

format:
	find $(SRC_DIRS) \( -name '*.cc' -o -name '*.h' \) ! -name '*.pb.*' | xargs clang-format -i

tidy:
	cmake --preset default >/dev/null
	run-clang-tidy -p build -header-filter='^$(CURDIR)/(common|hbone|ztunnel|waypoint|tools|controlplane|cni)/' \
	  common hbone ztunnel waypoint tools controlplane cni

clean:
	rm -rf build build-asan
