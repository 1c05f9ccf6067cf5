"""certs.py - X.509 helpers for the CA interop scenarios, all through the `openssl` CLI.

make_csr: an EC P-256 key and a CSR with one critical URI SAN (what ztunnel sends).
sign: a leaf for a CSR's public key, signed by a test CA, with the SAN we choose (so a test CA
can also issue a deliberately wrong identity).
cert_info / csr_info: the fields the tests compare. verify_chain: `openssl verify` of a PEM chain
(leaf first) against a root file.

Every openssl call has a timeout; files live in a private temp dir per call.
"""
import datetime
import os
import re
import secrets
import subprocess
import tempfile

_TIMEOUT = 20


def _run(args, stdin=None):
    p = subprocess.run(["openssl"] + args, input=stdin, capture_output=True, timeout=_TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args[:2]), p.stderr.decode(errors="replace")))
    return p.stdout.decode(errors="replace")


def split_pem(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)


def make_csr(identity, workdir):
    """-> (csr_pem, key_path). EC P-256, SHA-256, empty subject, critical URI SAN = identity."""
    key = os.path.join(workdir, "csr-key-%s.pem" % secrets.token_hex(4))
    csr = _run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-subj", "/", "-sha256",
                "-addext", "subjectAltName=critical,URI:%s" % identity])
    return csr, key


def csr_info(csr_pem):
    """{'uris': [...], 'curve': 'P-256'|..., 'pubkey': PEM, 'san_critical': bool}; raises when invalid."""
    if isinstance(csr_pem, bytes):
        csr_pem = csr_pem.decode()
    _run(["req", "-noout", "-verify"], csr_pem.encode())  # signature must verify
    text = _run(["req", "-noout", "-text"], csr_pem.encode())
    pub = _run(["req", "-noout", "-pubkey"], csr_pem.encode())
    curve = re.search(r"NIST CURVE: (\S+)", text)
    return {"uris": re.findall(r"URI:([^\s,]+)", text), "curve": curve.group(1) if curve else None,
            "pubkey": pub, "san_critical": "Subject Alternative Name: critical" in text,
            "sig_sha256": "ecdsa-with-SHA256" in text}


def sign(csr_pem, identity, ca_cert, ca_key, serial_hex=None, seconds=86400):
    """Leaf PEM for the CSR's key with SAN URI `identity`; serial_hex without 0x."""
    serial_hex = serial_hex or secrets.token_hex(16)
    days = max(1, (seconds + 86399) // 86400)
    with tempfile.TemporaryDirectory() as d:
        csr = os.path.join(d, "req.pem")
        ext = os.path.join(d, "ext.cnf")
        with open(csr, "w") as f:
            f.write(csr_pem if isinstance(csr_pem, str) else csr_pem.decode())
        with open(ext, "w") as f:
            f.write("[leaf]\nsubjectAltName=critical,URI:%s\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n" % identity)
        return _run(["x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
                     "0x" + serial_hex, "-days", str(days), "-sha256", "-extfile", ext, "-extensions", "leaf"])


def cert_info(pem):
    """{'uris', 'serial' (lowercase hex, no leading zeros), 'pubkey', 'not_before', 'not_after', 'is_ca'}."""
    if isinstance(pem, bytes):
        pem = pem.decode()
    text = _run(["x509", "-noout", "-text"], pem.encode())
    serial = _run(["x509", "-noout", "-serial"], pem.encode()).strip().split("=", 1)[1]
    dates = _run(["x509", "-noout", "-startdate", "-enddate"], pem.encode())
    nb = re.search(r"notBefore=(.*)", dates).group(1).strip()
    na = re.search(r"notAfter=(.*)", dates).group(1).strip()
    fmt = "%b %d %H:%M:%S %Y %Z"
    return {"uris": re.findall(r"URI:([^\s,]+)", text), "serial": norm_serial(serial),
            "pubkey": _run(["x509", "-noout", "-pubkey"], pem.encode()),
            "not_before": datetime.datetime.strptime(re.sub(r"\s+", " ", nb), fmt),
            "not_after": datetime.datetime.strptime(re.sub(r"\s+", " ", na), fmt),
            "is_ca": bool(re.search(r"CA:TRUE", text))}


def same_cert(a, b):
    """Compares two certificate PEMs by their DER bytes."""
    def der(p):
        out = subprocess.run(["openssl", "x509", "-outform", "DER"], input=p.encode() if isinstance(p, str) else p,
                             capture_output=True, timeout=_TIMEOUT)
        return out.stdout if out.returncode == 0 else None
    da, db = der(a), der(b)
    return da is not None and da == db


def norm_serial(s):
    """Serial in any usual spelling (0x.., colons, upper case) -> lowercase hex without leading 0s."""
    h = re.sub(r"[^0-9a-fA-F]", "", s[2:] if s.lower().startswith("0x") else s).lower().lstrip("0")
    return h or "0"


def verify_chain(chain, root_path):
    """(ok, output) of `openssl verify -CAfile root -untrusted <intermediates> leaf`."""
    with tempfile.TemporaryDirectory() as d:
        leaf = os.path.join(d, "leaf.pem")
        with open(leaf, "w") as f:
            f.write(chain[0])
        args = ["openssl", "verify", "-CAfile", root_path]
        if len(chain) > 2:
            mid = os.path.join(d, "mid.pem")
            with open(mid, "w") as f:
                f.write("".join(chain[1:-1]))
            args += ["-untrusted", mid]
        p = subprocess.run(args + [leaf], capture_output=True, timeout=_TIMEOUT)
        out = (p.stdout + p.stderr).decode(errors="replace").strip()
        return p.returncode == 0, out
