"""`object_hash(data)`: npm object-hash 1.3.1 with default options, for JSON data (spec §2.6.2)."""
from __future__ import annotations

import hashlib
from typing import Any

from kbtools.protocol.canonical import js_number

_ROOT_PREFIX = (
    "string:9:prototype:Undefined,string:9:__proto__:object:3:string:9:prototype:Undefined,"
    "string:9:__proto__:Null,string:11:constructor:fn:string:8:[native]string:20:function-name:"
    "Objectobject:0:,,string:11:constructor:fn:string:8:[native]string:20:function-name:Object"
    "string:12:[CIRCULAR:2],"
)
_LATER_PREFIX = (
    "string:9:prototype:Undefined,string:9:__proto__:string:12:[CIRCULAR:1],"
    "string:11:constructor:fn:string:8:[native]string:20:function-name:Objectstring:12:[CIRCULAR:2],"
)


def _utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_key(s: str) -> bytes:
    # Sorting by UTF-16 code units, as JS Array#sort does on strings.
    return s.encode("utf-16-be", "surrogatepass")


def _sorted_keys(obj: dict[str, Any]) -> list[str]:
    # For keys without astral characters, code-point order is UTF-16 code-unit order.
    if all(k.isascii() for k in obj):
        return sorted(obj)
    return sorted(obj, key=_utf16_key)


def _ser(obj: Any, out: list[str], first: list[bool]) -> None:
    if obj is None:
        out.append("Null")
    elif obj is True:
        out.append("bool:true")
    elif obj is False:
        out.append("bool:false")
    elif isinstance(obj, str):
        out.append(f"string:{_utf16_len(obj)}:{obj}")
    elif isinstance(obj, (int, float)):
        out.append("number:" + js_number(obj))
    elif isinstance(obj, list):
        out.append(f"array:{len(obj)}:")
        for e in obj:
            _ser(e, out, first)
    elif isinstance(obj, dict):
        out.append(f"object:{len(obj) + 3}:")
        if first[0]:
            first[0] = False
            out.append(_ROOT_PREFIX)
        else:
            out.append(_LATER_PREFIX)
        append = out.append
        for key in _sorted_keys(obj):
            value = obj[key]
            # Inline the two commonest cases (ASCII strings and ints): node data is mostly these.
            append(f"string:{len(key) if key.isascii() else _utf16_len(key)}:{key}:")
            if type(value) is str and value.isascii():
                append(f"string:{len(value)}:{value},")
            elif type(value) is int:
                append(f"number:{value},")
            else:
                _ser(value, out, first)
                append(",")
    else:
        raise TypeError(f"object_hash: not JSON data: {type(obj).__name__}")


def object_hash(obj: Any) -> str:
    """sha1 hex of object-hash's serialization of a JSON value (root normally an object)."""
    out: list[str] = []
    _ser(obj, out, [True])
    return hashlib.sha1("".join(out).encode("utf-8", "surrogatepass")).hexdigest()
