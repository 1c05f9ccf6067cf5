#!/usr/bin/env bash
# issue-cert.sh CACERTS_DIR SPIFFE_URI OUTDIR [TTL_DAYS]
#
# Issues a workload certificate from a cacerts layout (see make-cacerts.sh), the way the Istio
# CA would: EC P-256 key, empty subject, one critical URI SAN = SPIFFE_URI, EKU serverAuth +
# clientAuth, keyUsage digitalSignature + keyEncipherment. Writes to OUTDIR:
#   key.pem    PKCS#8 private key (0600)
#   cert.pem   the leaf alone
#   chain.pem  leaf followed by the intermediates (cert-chain.pem minus the root)
#   root.pem   root-cert.pem
# Meant for interop tests whose clients (python, node, curl) need files.
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
  echo "usage: $0 CACERTS_DIR SPIFFE_URI OUTDIR [TTL_DAYS]" >&2
  exit 2
fi
ca=$1
uri=$2
out=$3
days=${4:-1}

if ! [[ $uri =~ ^spiffe://[A-Za-z0-9._-]+/ns/[A-Za-z0-9._-]+/sa/[A-Za-z0-9._-]+$ ]]; then
  echo "not an Istio SPIFFE identity: $uri" >&2
  exit 2
fi
for f in ca-cert.pem ca-key.pem root-cert.pem; do
  [[ -f "$ca/$f" ]] || { echo "missing $ca/$f" >&2; exit 1; }
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/leaf.cnf" <<CNF
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = critical,URI:$uri
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" 2>/dev/null)
openssl req -new -key "$tmp/key.pem" -subj "/" -out "$tmp/leaf.csr" 2>/dev/null
openssl x509 -req -in "$tmp/leaf.csr" -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/leaf.cnf" -extensions v3_leaf -out "$tmp/cert.pem" 2>/dev/null

# Intermediates: cert-chain.pem without its last (root) certificate; ca-cert.pem without it.
if [[ -f "$ca/cert-chain.pem" ]]; then
  awk '/-----BEGIN CERTIFICATE-----/{n++} {blk[n]=blk[n] $0 "\n"} END{for(i=1;i<n||(n==1&&i==1);i++) printf "%s", blk[i]}' \
    "$ca/cert-chain.pem" >"$tmp/inter.pem"
else
  cp "$ca/ca-cert.pem" "$tmp/inter.pem"
fi
cat "$tmp/cert.pem" "$tmp/inter.pem" >"$tmp/chain.pem"
cp "$ca/root-cert.pem" "$tmp/root.pem"
openssl verify -CAfile "$tmp/root.pem" -untrusted "$tmp/inter.pem" -purpose sslclient "$tmp/cert.pem" >/dev/null

for f in key.pem cert.pem chain.pem root.pem; do
  mv "$tmp/$f" "$out/$f"
done
echo "issued $uri into $out" >&2
