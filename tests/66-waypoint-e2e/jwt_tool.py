#!/usr/bin/env python3
"""JWT helper for the waypoint e2e, independent of the waypoint's code: keys and signatures come
from the openssl CLI, JSON and base64url from the Python standard library.

  jwt_tool.py jwks KEY.pem            print a JWKS with the RSA public key (kid "e2e")
  jwt_tool.py sign KEY.pem ISS SUB    print an RS256 token {iss, sub, exp: now + 600}
"""
import base64
import json
import subprocess
import sys
import time


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def modulus_exponent(key: str):
    text = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-text"], check=True,
                          capture_output=True, text=True).stdout
    lines = text.splitlines()
    hexdigits, exponent, grab = "", None, False
    for line in lines:
        if line.startswith("modulus:"):
            grab = True
            continue
        if grab and line.startswith(" "):
            hexdigits += line.strip().replace(":", "")
            continue
        grab = False
        if line.startswith("publicExponent:"):
            exponent = int(line.split()[1])
    n = bytes.fromhex(hexdigits).lstrip(b"\x00")
    e = exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")
    return n, e


def main():
    cmd = sys.argv[1]
    if cmd == "jwks":
        n, e = modulus_exponent(sys.argv[2])
        print(json.dumps({"keys": [{"kty": "RSA", "kid": "e2e", "alg": "RS256", "n": b64url(n), "e": b64url(e)}]}))
    elif cmd == "sign":
        key, iss, sub = sys.argv[2:5]
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "e2e"}).encode())
        payload = b64url(json.dumps({"iss": iss, "sub": sub, "exp": int(time.time()) + 600}).encode())
        signing_input = f"{header}.{payload}".encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input, check=True,
                             capture_output=True).stdout
        print(f"{header}.{payload}.{b64url(sig)}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
