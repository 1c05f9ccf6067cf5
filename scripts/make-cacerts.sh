#!/usr/bin/env bash
# make-cacerts.sh DIR [TRUST_DOMAIN]
#
# Creates an Istio "plugged-in CA" layout in DIR with the openssl CLI:
#   root-cert.pem   self-signed root (EC P-256, 10 years)
#   ca-cert.pem     intermediate CA signed by the root (EC P-256, 5 years)
#   ca-key.pem      the intermediate's key (PKCS#8, mode 0600)
#   cert-chain.pem  ca-cert.pem followed by root-cert.pem
#   root-key.pem    the root's key (0600), kept so more intermediates can be cut later; it is
#                   not part of Istio's layout and need not be shipped with it.
# Both CAs carry O=<TRUST_DOMAIN> (default cluster.local). Idempotent: an existing layout
# (ca-cert.pem present) is left untouched. The same layout is read by common::LocalCa and can
# be given to istiod as the `cacerts` secret.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DIR [TRUST_DOMAIN]" >&2
  exit 2
fi
dir=$1
td=${2:-cluster.local}

if [[ -f "$dir/ca-cert.pem" ]]; then
  echo "cacerts already present in $dir" >&2
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

cat >"$tmp/openssl.cnf" <<CNF
[req]
distinguished_name = dn_root
prompt = no
[dn_root]
O = $td
CN = Root CA
[dn_inter]
O = $td
CN = Intermediate CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/root-key.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca-key.pem" 2>/dev/null

openssl req -x509 -new -key "$tmp/root-key.pem" -sha256 -days 3650 \
  -config "$tmp/openssl.cnf" -extensions v3_ca -set_serial "0x$(openssl rand -hex 16)" \
  -out "$tmp/root-cert.pem"

sed 's/^distinguished_name = dn_root/distinguished_name = dn_inter/' "$tmp/openssl.cnf" >"$tmp/inter.cnf"
openssl req -new -key "$tmp/ca-key.pem" -config "$tmp/inter.cnf" -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -CA "$tmp/root-cert.pem" -CAkey "$tmp/root-key.pem" \
  -set_serial "0x$(openssl rand -hex 16)" -days 1825 -sha256 \
  -extfile "$tmp/openssl.cnf" -extensions v3_ca -out "$tmp/ca-cert.pem" 2>/dev/null

cat "$tmp/ca-cert.pem" "$tmp/root-cert.pem" >"$tmp/cert-chain.pem"
openssl verify -CAfile "$tmp/root-cert.pem" "$tmp/ca-cert.pem" >/dev/null

chmod 644 "$tmp/root-cert.pem" "$tmp/cert-chain.pem" "$tmp/ca-cert.pem"
# ca-cert.pem last: its presence marks a complete layout.
for f in root-key.pem ca-key.pem root-cert.pem cert-chain.pem ca-cert.pem; do
  mv "$tmp/$f" "$dir/$f"
done
echo "wrote cacerts for trust domain $td to $dir" >&2
