"""Which directly connected shares hold a SHA-1, from the node data their connections keep.

Each share's files stay in its compact `NodeData` (sorted digests, binary search): nothing is
copied per file, and a `find` costs one binary search per share (about a microsecond each).
"""
from __future__ import annotations

from typing import Any, Iterable

from kbtools.protocol.nodedata import NodeData


class LeafIndex:
    """share id -> its node data, updated on every full report, delta and disconnect."""

    def __init__(self) -> None:
        self.data_of: dict[str, NodeData] = {}

    def update(self, share_id: str, node_data: NodeData | None) -> None:
        """The share's node data now (a delta patches the same object in place)."""
        if node_data is None:
            self.data_of.pop(share_id, None)
        else:
            self.data_of[share_id] = node_data

    def remove(self, share_id: str) -> None:
        self.data_of.pop(share_id, None)

    def find(self, sha1: str, leaf_order: Iterable[str], share_id: str | None = None) -> list[dict[str, Any]]:
        """Results `{kbshare_id, size, path}` as `routing.find_in_leaves` gives them (connection order)."""
        ids = [share_id] if share_id is not None else leaf_order
        results = []
        for i in ids:
            data = self.data_of.get(i)
            found = data.lookup(sha1) if data is not None else None
            if found is not None:
                results.append({"kbshare_id": i, "size": found[1], "path": found[0]})
        return results
