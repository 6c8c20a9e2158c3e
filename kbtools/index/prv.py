"""``.prv`` and ``.prvdir`` objects (spec §5.2), in the original's key order.

``original_path`` is the path relative to the indexed directory (the share root, or the directory
given to ``--prvdir``; the file name for ``--prv``), not the host's absolute path, unless the caller
asks for absolute paths (docs/compatibility.md).
"""
from __future__ import annotations

from typing import Any, Iterable

from kbtools.index.hashing import FCS_PREFIX

PRV_VERSION = "0.11"


def make_prv(sha1: str, size: int, head_sha1: str, original_path: str) -> dict[str, Any]:
    """A ``.prv`` object; keys in the order of spec §5.2."""
    return {
        "original_checksum": sha1,
        "original_size": size,
        "original_fcs": FCS_PREFIX + head_sha1,
        "original_path": original_path,
        "prv_version": PRV_VERSION,
    }


def make_prvdir(dirs: Iterable[str], prvs: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A ``.prvdir`` tree from directory relpaths (``""`` for the top) and ``(relpath, prv)`` pairs.

    Shape: ``{"files": {name: prv}, "dirs": {name: {"files": …, "dirs": …}}}``; entries keep the
    order in which they are given.
    """
    top: dict[str, Any] = {"files": {}, "dirs": {}}

    def node_for(parts: list[str]) -> dict[str, Any]:
        node = top
        for part in parts:
            node = node["dirs"].setdefault(part, {"files": {}, "dirs": {}})
        return node

    for rel in dirs:
        if rel:
            node_for(rel.split("/"))
    for rel, prv in prvs:
        *parents, name = rel.split("/")
        node_for(parents)["files"][name] = prv
    return top
