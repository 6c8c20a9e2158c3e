"""JSON text exactly as JavaScript's JSON.stringify produces it, and the RSA signatures over it.

The original hub verifies `JSON.stringify(JSON.parse(frame).message)`: compact, no escaping of
non-ASCII, integer-like keys first in ascending numeric order, numbers printed by Number#toString.
"""
from __future__ import annotations

import functools
import json
import math
import re
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kbtools.node import identity as node_identity

_MAX_ARRAY_INDEX = 2**32 - 2
_MAX_SAFE_INTEGER = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_array_index(key: str) -> bool:
    """JS integer-like property key ("0", "17"; not "01", "-1")."""
    return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0") \
        and int(key) <= _MAX_ARRAY_INDEX


def js_number(x: float | int) -> str:
    """Number#toString for a JSON number."""
    if isinstance(x, bool):
        raise TypeError("bool is not a number")
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        return "null"  # what JSON.stringify writes for them
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    t = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    k = len(digits)
    assert isinstance(t.exponent, int)
    n = t.exponent + k
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mant = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _needs_js_fixup(obj: Any) -> bool:
    """True if JSON.stringify would differ from json.dumps: integer-like keys or floats inside."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k in item:
                if k[:1].isdigit() and is_array_index(k):
                    return True
            stack.extend(v for v in item.values() if not isinstance(v, (str, int)) or isinstance(v, float))
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
    return False


def _js_order(obj: Any) -> tuple[Any, bool]:
    """A copy with JS key order and integral floats as ints; flag if a non-integral float remains."""
    if isinstance(obj, dict):
        slow = False
        items = []
        for k, v in obj.items():
            v2, s = _js_order(v)
            slow = slow or s
            items.append((k, v2))
        if any(is_array_index(k) for k, _ in items):
            ints = sorted((kv for kv in items if is_array_index(kv[0])), key=lambda kv: int(kv[0]))
            items = ints + [kv for kv in items if not is_array_index(kv[0])]
        return dict(items), slow
    if isinstance(obj, list):
        out, slow = [], False
        for v in obj:
            v2, s = _js_order(v)
            slow = slow or s
            out.append(v2)
        return out, slow
    if isinstance(obj, float):
        # below 2**53 an integral double prints as its integer; above, Number#toString keeps only
        # the shortest round-trip digits (2.0**60 is "1152921504606847000"): js_number does that
        if obj.is_integer() and abs(obj) <= _MAX_SAFE_INTEGER:
            return int(obj), False
        return obj, True
    return obj, False


def escape_lone_surrogates(text: str) -> str:
    """JSON text with each lone surrogate written as a ``\\udxxx`` escape: valid UTF-8 again.

    Well-formed ``JSON.stringify`` writes them so; a file name that is not UTF-8 reaches Python
    with its bytes as U+DC80..U+DCFF (surrogateescape), and ``os.fsencode`` gets them back.
    """
    return _SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


def _dump_slow(obj: Any) -> str:
    if isinstance(obj, dict):
        return "{" + ",".join(_dump_str(k) + ":" + _dump_slow(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_dump_slow(v) for v in obj) + "]"
    if isinstance(obj, float):
        return js_number(obj)
    if isinstance(obj, str):
        return _dump_str(obj)
    return json.dumps(obj)


def _dump_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def canonical_json(obj: Any) -> str:
    """`JSON.stringify(obj)` of a JSON value (dicts, lists, str, int, float, bool, None)."""
    if _needs_js_fixup(obj):
        ordered, slow = _js_order(obj)
    else:
        ordered, slow = obj, False
    text = _dump_slow(ordered) if slow else json.dumps(ordered, separators=(",", ":"),
                                                         ensure_ascii=False)
    try:
        text.encode("utf-8")  # fails only on lone surrogates; much faster than a regex search
    except UnicodeEncodeError:
        return escape_lone_surrogates(text)
    return text


def canonical_bytes(obj: Any) -> bytes:
    """UTF-8 bytes of `canonical_json(obj)`: what is signed."""
    return canonical_json(obj).encode("utf-8")


@functools.lru_cache(maxsize=4096)
def load_public_key(public_pem: str) -> rsa.RSAPublicKey:
    """Parse a PEM public key (cached: children send the same key text). Raises ValueError."""
    return node_identity.load_public_key(public_pem)


def sign_message(private_key: rsa.RSAPrivateKey, message: Any) -> str:
    """RSASSA-PKCS1-v1_5/SHA-256 over canonical_json(message), lowercase hex."""
    return private_key.sign(canonical_bytes(message), padding.PKCS1v15(), hashes.SHA256()).hex()


def verify_message(public_pem: str, message: Any, signature_hex: str,
                   text: str | None = None) -> bool:
    """True when `signature_hex` is a valid signature of canonical_json(message) by the key.

    `text`: the message's text as received (messages.loads_envelope). A signer writes exactly
    canonical_json(message), so that text is checked first, as it is, and the message is written
    out again only when that fails."""
    try:
        key = load_public_key(public_pem)
        signature = bytes.fromhex(signature_hex)
    except (ValueError, TypeError):
        return False
    if text is not None:
        try:
            key.verify(signature, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
            return True
        except (InvalidSignature, UnicodeEncodeError):
            pass
    try:
        key.verify(signature, canonical_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, TypeError, InvalidSignature, UnicodeEncodeError):
        return False
    return True
