# shellcheck shell=bash
# tests/30-e2e/helpers.sh — ztunnel-specific helpers on top of tests/lib/netns.sh, shared by the
# e2e suite and scripts/demo.sh.
#
# Role: start a dedicated-mode ztunnel inside a pod netns, wait for readiness, query metrics and
# the access log, and summarise a packet capture. Requires netns.sh to be sourced first and
# ZT_BIN (path of the ztunnel binary), ZT_ROOT (repo root) to be set.
# Invariants: every wait is bounded; nothing here edits files outside $NSX_TMP.

ZT_TRUST_DOMAIN="${ZT_TRUST_DOMAIN:-cluster.local}"
ZT_PY="${ZT_PY:-/usr/bin/python3}"
[[ -x $ZT_PY ]] || ZT_PY=python3

zt_spiffe() { echo "spiffe://${ZT_TRUST_DOMAIN}/ns/$1/sa/$2"; }   # zt_spiffe NS SA

# zt_start POD WORKLOAD_INFO(ns/name/sa) CONFIG CACERTS LOGFILE [VAR=VALUE...] — start ztunnel in
# POD with extra environment; the PID is stored in ZT_PID_<POD> (and NSX_LAST_PID).
zt_start() {
  local pod="$1" info="$2" cfg="$3" ca="$4" logf="$5"; shift 5
  nsx_bg_env "$pod" "$logf" "$@" \
    PROXY_MODE=dedicated \
    PROXY_WORKLOAD_INFO="$info" \
    LOCAL_XDS_PATH="$cfg" \
    LOCAL_CA_DIR="$ca" \
    XDS_ADDRESS= \
    TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
    PACKET_MARK=1337 \
    RUST_LOG="${ZT_RUST_LOG:-info}" \
    LOG_FORMAT=plain \
    ZTUNNEL_WORKER_THREADS=1 \
    -- "$ZT_BIN"
  printf -v "ZT_PID_${pod}" '%s' "$NSX_LAST_PID"
}

# zt_wait_ready POD [TIMEOUT_S] — readiness endpoint answers 200 "ready".
zt_wait_ready() {
  local pod="$1" timeout="${2:-20}" body
  for _ in $(seq 1 $((timeout * 5))); do
    body=$(nsx_exec "$pod" curl -s --max-time 1 http://127.0.0.1:15021/healthz/ready 2>/dev/null) \
      && [[ $body == ready* ]] && return 0
    sleep 0.2
  done
  echo "ztunnel in $pod not ready after ${timeout}s (last body: '${body:-}')"
  return 1
}

zt_metrics() { nsx_exec "$1" curl -s --max-time 3 http://127.0.0.1:15020/metrics; }

# zt_metric_lines / zt_expect_metric POD METRIC LABEL=VALUE... — see metric_lines/expect_metric
# in tests/lib/netns.sh.
zt_metric_lines() { metric_lines zt_metrics "$@"; }
zt_expect_metric() { expect_metric zt_metrics "$@"; }

# zt_access_lines LOGFILE REGEX... — "connection complete" lines matching every REGEX.
zt_access_lines() {
  local logf="$1"; shift
  local out re
  out=$(grep -a 'connection complete' "$logf") || return 1
  for re in "$@"; do out=$(grep -aE -- "$re" <<<"$out") || return 1; done
  printf '%s\n' "$out"
}

# zt_expect_access LOGFILE REGEX... — poll (5 s) for such a line.
zt_expect_access() {
  local logf="$1"; shift
  local _
  for _ in $(seq 1 25); do
    zt_access_lines "$logf" "$@" && return 0
    sleep 0.2
  done
  echo "no 'connection complete' line matching: $*"
  echo "--- last lines of $logf:"
  tail -n 15 "$logf"
  return 1
}

# id_re SPIFFE — regex for a log field value that may or may not be quoted.
id_re() { local s="${1//./\\.}"; echo "\"?${s}\"?([ ,}]|$)"; }

# cap_flows FILE — one line per packet: "SRC_IP SRC_PORT DST_IP DST_PORT LEN" (IPv4 TCP only).
cap_flows() {
  tcpdump -r "$1" -nn -q 'ip and tcp' 2>/dev/null | awk '
    { for (i = 1; i <= NF; i++) if ($i == ">") break
      s = $(i - 1); d = $(i + 1); sub(":$", "", d)
      n = split(s, a, "."); sp = a[n]; sip = a[1] "." a[2] "." a[3] "." a[4]
      n = split(d, b, "."); dp = b[n]; dip = b[1] "." b[2] "." b[3] "." b[4]
      print sip, sp, dip, dp, $NF }'
}

# cap_ascii FILE — printable payload of every packet (for plaintext greps).
cap_ascii() { tcpdump -r "$1" -nn -A 2>/dev/null; }
