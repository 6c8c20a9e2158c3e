"""The recording of the original network (tests/vectors/kbucket-original), loaded for tests."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.conftest import VECTORS
from kbtools.node.identity import NodeIdentity

NODE_NAMES = ("hub", "childhub", "share", "share2")


@lru_cache(maxsize=None)
def frames() -> list[dict[str, Any]]:
    """Every recorded frame: {conn, dir, t, frame}."""
    with open(VECTORS / "frames.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def child_frames(conn: int | None = None) -> list[dict[str, Any]]:
    return [r for r in frames() if r["dir"] == "child->hub" and (conn is None or r["conn"] == conn)]


def hub_frames(conn: int | None = None) -> list[dict[str, Any]]:
    return [r for r in frames() if r["dir"] == "hub->child" and (conn is None or r["conn"] == conn)]


@lru_cache(maxsize=None)
def http() -> dict[str, Any]:
    return dict(json.loads((VECTORS / "http.json").read_text(encoding="utf-8")))


def identity(name: str) -> NodeIdentity:
    d = VECTORS / "nodes" / name
    return NodeIdentity((d / "private.pem").read_text(), (d / "public.pem").read_text())


def kbnode(name: str) -> dict[str, Any]:
    return dict(json.loads((VECTORS / "nodes" / name / "kbnode.json").read_text()))


def identities_by_id() -> dict[str, NodeIdentity]:
    return {identity(n).node_id: identity(n) for n in NODE_NAMES}
