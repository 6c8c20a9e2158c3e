"""A node's RSA identity: `.kbucket/private.pem`, `.kbucket/public.pem` and the node id.

Keys are PKCS#1 RSA-2048 (e = 65537) written in the original's text form: 72-character base64
lines and a final newline. The node id is `sha1(public.pem text)[:12]`; the text is hashed exactly as
stored and sent, so a copied original node directory keeps its id.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kbtools.atomic import write_atomic
from kbtools.errors import RuntimeFailure

KBUCKET_DIR = ".kbucket"
PEM_LINE_WIDTH = 72


def node_id_for_public_key(public_pem: str) -> str:
    """The 12-hex-character node id of a public key, hashed over its exact text."""
    return hashlib.sha1(public_pem.encode("utf-8")).hexdigest()[:12]


def pem_text(label: str, der: bytes) -> str:
    """PEM text as the original writes it: 72-character base64 lines, final newline."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + PEM_LINE_WIDTH] for i in range(0, len(b64), PEM_LINE_WIDTH)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def generate_key_pair() -> tuple[str, str]:
    """A fresh RSA-2048 key pair as (private_pem, public_pem) texts in the original's form."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_der = key.private_bytes(serialization.Encoding.DER,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.PKCS1)
    return pem_text("RSA PRIVATE KEY", private_der), pem_text("RSA PUBLIC KEY", public_der)


@dataclass(frozen=True)
class NodeIdentity:
    """A node's keys and id. `private_pem`/`public_pem` are the exact file texts."""

    private_pem: str
    public_pem: str

    @property
    def node_id(self) -> str:
        return node_id_for_public_key(self.public_pem)

    def private_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.private_pem)


def _pem_der(pem: str) -> bytes:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    return base64.b64decode(body, validate=False)


def _der_integers(der: bytes) -> list[int]:
    """The INTEGERs of a DER SEQUENCE, read leniently (as unsigned, leading zeros allowed)."""
    def length(i: int) -> tuple[int, int]:
        n = der[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(der[i + 1:i + 1 + k], "big"), i + 1 + k

    if not der or der[0] != 0x30:
        raise ValueError("not a DER sequence")
    _, i = length(1)
    values = []
    while i < len(der):
        if der[i] != 0x02:
            raise ValueError("not an INTEGER")
        n, i = length(i + 1)
        values.append(int.from_bytes(der[i:i + n], "big"))
        i += n
    return values


@functools.lru_cache(maxsize=64)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text.

    Some keys written by the original (npm `keypair`) have non-minimal DER integers that strict
    parsers reject; those are read leniently, the file itself is left as it is.
    """
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except ValueError:
        if "BEGIN RSA PRIVATE KEY" not in pem:
            raise
        values = _der_integers(_pem_der(pem))
        if len(values) < 9:
            raise ValueError("not a PKCS#1 RSA private key") from None
        _, n, e, d, p, q, dp, dq, qinv = values[:9]
        return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(e, n)).private_key()
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text (PKCS#1 or SubjectPublicKeyInfo), read leniently like the private one."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        if "BEGIN RSA PUBLIC KEY" not in pem:
            raise ValueError("not a PEM RSA public key") from None
        try:
            values = _der_integers(_pem_der(pem))
        except (ValueError, IndexError):
            raise ValueError("not a PEM RSA public key") from None
        if len(values) != 2:
            raise ValueError("not a PKCS#1 RSA public key") from None
        return rsa.RSAPublicNumbers(values[1], values[0]).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def identity_paths(node_dir: Path) -> tuple[Path, Path]:
    """(private.pem, public.pem) paths of a node directory."""
    base = Path(node_dir) / KBUCKET_DIR
    return base / "private.pem", base / "public.pem"


def keys_missing(node_dir: Path) -> bool:
    """True when both PEM files are missing (the only case where keys are generated)."""
    private_path, public_path = identity_paths(node_dir)
    return not private_path.exists() and not public_path.exists()


def load_identity(node_dir: Path) -> NodeIdentity:
    """Read both PEM files as they are; a missing one (the other present) is an error."""
    private_path, public_path = identity_paths(node_dir)
    for p in (private_path, public_path):
        if not p.is_file():
            raise RuntimeFailure(f"{p.name} is missing in {p.parent} (the other key file exists)")
    try:
        identity = NodeIdentity(private_path.read_text(encoding="utf-8"),
                                public_path.read_text(encoding="utf-8"))
        identity.private_key()
    except (ValueError, UnicodeDecodeError) as e:
        raise RuntimeFailure(f"cannot read the keys in {private_path.parent}: {e}") from None
    return identity


def create_identity(node_dir: Path) -> NodeIdentity:
    """Generate and write a key pair (private.pem mode 0600). Only call when `keys_missing`."""
    private_path, public_path = identity_paths(node_dir)
    private_pem, public_pem = generate_key_pair()
    write_atomic(private_path, private_pem, mode=0o600)
    write_atomic(public_path, public_pem, mode=0o644)
    return NodeIdentity(private_pem, public_pem)
