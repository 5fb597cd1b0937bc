"""Derives the pinned stamp test vector independently of the Rust code.

Uses Python's `cryptography` Ed25519 (OpenSSL) and the byte layout of docs/stamp-format.md, so the
Rust unit test `stamp::tests::pinned_vector` checks our encoder against another implementation.
Run: python3 tests/data/make_stamp_vector.py > tests/data/stamp_vector.txt
"""
import base64, hashlib, struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

sk = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
kid = hashlib.sha256(pk).digest()[:8]
payload = (bytes([1]) + kid + bytes([0x11] * 16) + struct.pack(">q", 1_700_000_000)
           + struct.pack(">q", 1_800_000_000) + struct.pack(">I", 1) + bytes(32))
assert len(payload) == 77
sig = sk.sign(b"pennypost/stamp/v1" + payload)
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
print(f"pp1.{b64(payload)}.{b64(sig)}")
