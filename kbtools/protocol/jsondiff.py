"""jsondiffpatch deltas for kbucket node data (spec §2.6): `patch` and a `diff` that makes the same shapes.

Object deltas map a key to `[new]` (added), `[old, new]` (modified), `[old, 0, 0]` (deleted),
`[patch_text, 0, 2]` (diff-match-patch text patch) or a nested object delta. Array deltas
(`"_t": "a"`) never occur in node data; `patch` applies the common ones, `diff` replaces arrays whole.
"""
from __future__ import annotations

import copy
from typing import Any

import diff_match_patch  # type: ignore[import-untyped]

from kbtools.protocol.errors import RemoteProtocolError

TEXT_DIFF_MIN_LENGTH = 60  # jsondiffpatch's default textDiff.minLength
_dmp = diff_match_patch.diff_match_patch()


def _apply_text_patch(old: Any, patch_text: Any) -> str:
    if not isinstance(old, str) or not isinstance(patch_text, str):
        raise RemoteProtocolError("text patch for a value that is not a string")
    try:
        patches = _dmp.patch_fromText(patch_text)
    except ValueError as e:
        raise RemoteProtocolError(f"invalid text patch: {e}") from None
    result, applied = _dmp.patch_apply(patches, old)
    if not all(applied):
        raise RemoteProtocolError("text patch does not apply")
    return str(result)


def _patch_value(old: Any, delta: Any, present: bool) -> tuple[bool, Any]:
    """(keep, new value) for one value and its delta."""
    if isinstance(delta, list):
        if len(delta) == 1:
            return True, copy.deepcopy(delta[0])
        if len(delta) == 2:
            return True, copy.deepcopy(delta[1])
        if len(delta) == 3 and delta[1] == 0 and delta[2] == 0:
            return False, None
        if len(delta) == 3 and delta[1] == 0 and delta[2] == 2:
            if not present:
                raise RemoteProtocolError("text patch for a missing value")
            return True, _apply_text_patch(old, delta[0])
        raise RemoteProtocolError("unsupported delta shape")
    if isinstance(delta, dict):
        if not present:
            raise RemoteProtocolError("nested delta for a missing value")
        return True, patch(old, delta)
    raise RemoteProtocolError("invalid delta")


def _patch_array(target: list[Any], delta: dict[str, Any]) -> list[Any]:
    removals: list[int] = []
    inserts: list[tuple[int, Any]] = []
    modifications: list[tuple[int, Any]] = []
    for key, d in delta.items():
        if key == "_t":
            continue
        if key.startswith("_"):
            if not (isinstance(d, list) and len(d) == 3 and d[2] == 0):
                raise RemoteProtocolError("unsupported array delta (moves are not supported)")
            removals.append(int(key[1:]))
        elif isinstance(d, list) and len(d) == 1:
            inserts.append((int(key), copy.deepcopy(d[0])))
        else:
            modifications.append((int(key), d))
    for idx in sorted(removals, reverse=True):
        if idx >= len(target):
            raise RemoteProtocolError("array delta removes a missing item")
        del target[idx]
    for idx, value in sorted(inserts, key=lambda t: t[0]):
        target.insert(idx, value)
    for idx, d in modifications:
        if idx >= len(target):
            raise RemoteProtocolError("array delta modifies a missing item")
        keep, value = _patch_value(target[idx], d, True)
        if keep:
            target[idx] = value
    return target


def patch(target: Any, delta: Any) -> Any:
    """Apply a jsondiffpatch delta; dicts and lists are patched in place. Returns the result.

    Raises RemoteProtocolError for a delta that does not fit the target.
    """
    if isinstance(delta, list):
        keep, value = _patch_value(target, delta, True)
        return value if keep else None
    if not isinstance(delta, dict):
        raise RemoteProtocolError("invalid delta")
    if delta.get("_t") == "a":
        if not isinstance(target, list):
            raise RemoteProtocolError("array delta for a value that is not an array")
        try:
            return _patch_array(target, delta)
        except ValueError:
            raise RemoteProtocolError("invalid array delta") from None
    if not isinstance(target, dict):
        raise RemoteProtocolError("object delta for a value that is not an object")
    for key, d in delta.items():
        present = key in target
        keep, value = _patch_value(target.get(key), d, present)
        if keep:
            target[key] = value
        else:
            target.pop(key, None)
    return target


def text_patch(old: str, new: str) -> str:
    """diff-match-patch patch text from `old` to `new` (as jsondiffpatch makes it)."""
    return str(_dmp.patch_toText(_dmp.patch_make(old, new)))


def _same(old: Any, new: Any) -> bool:
    """JSON equality: Python's `==` holds for 1 and True (and 0 and False) at any depth."""
    if type(old) is not type(new):
        return isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool) and old == new
    if isinstance(old, dict):
        return old.keys() == new.keys() and all(_same(v, new[k]) for k, v in old.items())
    if isinstance(old, list):
        return len(old) == len(new) and all(map(_same, old, new))
    return bool(old == new)


def diff(old: Any, new: Any) -> Any:
    """The jsondiffpatch delta from `old` to `new`, or None when they are equal."""
    if old == new and _same(old, new):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        delta: dict[str, Any] = {}
        for key, value in new.items():
            if key not in old:
                delta[key] = [value]
            else:
                sub = diff(old[key], value)
                if sub is not None:
                    delta[key] = sub
        for key, value in old.items():
            if key not in new:
                delta[key] = [value, 0, 0]
        return delta or None
    if (isinstance(old, str) and isinstance(new, str)
            and len(old) >= TEXT_DIFF_MIN_LENGTH and len(new) >= TEXT_DIFF_MIN_LENGTH):
        return [text_patch(old, new), 0, 2]
    return [old, new]
