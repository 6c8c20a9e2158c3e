"""Which directly connected shares hold a SHA-1: an index kept from their reports, so that `find`
costs the same with 1 share or 1,000 (the protocol's `find_in_leaves` scans every share)."""
from __future__ import annotations

from typing import Any, Iterable


class LeafIndex:
    """sha1 -> {share id: {"path", "size"}}, updated on every full report, delta and disconnect."""

    def __init__(self) -> None:
        self.by_sha1: dict[str, dict[str, dict[str, Any]]] = {}
        self.files_of: dict[str, dict[str, Any]] = {}  # share id -> the files_by_sha1 indexed

    def update(self, share_id: str, node_data: Any) -> None:
        """The share's node data now (after a full report or a delta, which patches in place)."""
        files = node_data.get("files_by_sha1") if isinstance(node_data, dict) else None
        new = dict(files) if isinstance(files, dict) else {}  # a snapshot: deltas patch in place
        for sha1 in self.files_of.get(share_id, {}):
            if sha1 not in new:
                self._drop(sha1, share_id)
        for sha1, entry in new.items():
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                self.by_sha1.setdefault(sha1, {})[share_id] = entry
            else:
                self._drop(sha1, share_id)
        self.files_of[share_id] = new

    def _drop(self, sha1: str, share_id: str) -> None:
        holders = self.by_sha1.get(sha1)
        if holders is not None:
            holders.pop(share_id, None)
            if not holders:
                del self.by_sha1[sha1]

    def remove(self, share_id: str) -> None:
        self.update(share_id, None)
        self.files_of.pop(share_id, None)

    def find(self, sha1: str, leaf_order: Iterable[str], share_id: str | None = None) -> list[dict[str, Any]]:
        """Results `{kbshare_id, size, path}` as `routing.find_in_leaves` gives them (connection order)."""
        holders = self.by_sha1.get(sha1)
        if not holders:
            return []
        if share_id is not None:
            ids = [share_id] if share_id in holders else []
        elif len(holders) == 1:
            ids = list(holders)
        else:
            ids = [i for i in leaf_order if i in holders]
        return [{"kbshare_id": i, "size": holders[i].get("size"), "path": holders[i]["path"]} for i in ids]
