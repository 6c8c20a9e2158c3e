"""The hub's index of its shares' files gives what the protocol's find_in_leaves gives, through
full reports, in-place deltas and disconnects."""
from __future__ import annotations

from kbtools.hub.leafindex import LeafIndex
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, HubInfo
from kbtools.protocol.jsondiff import patch
from kbtools.protocol.routing import find_in_leaves


def leaf(registry, node_id, data):
    conn = ChildConnection(HubInfo({}), registry)
    conn.node_id, conn.node_type, conn.node_data = node_id, "leaf", data
    registry.leaves[node_id] = conn
    return conn


def same(index, registry, sha1s):
    for sha1 in sha1s:
        assert index.find(sha1, registry.leaves) == find_in_leaves(registry, sha1)
        for sid in registry.leaves:
            assert index.find(sha1, registry.leaves, sid) == find_in_leaves(registry, sha1, sid)


def test_index_follows_reports_deltas_and_disconnects():
    registry, index = ChildRegistry(), LeafIndex()
    a = leaf(registry, "aaaaaaaaaaaa", {"files_by_sha1": {"s1": {"path": "x", "size": 1},
                                                          "s2": {"path": "y", "size": 2}}})
    b = leaf(registry, "bbbbbbbbbbbb", {"files_by_sha1": {"s2": {"path": "z", "size": 2},
                                                          "bad": {"path": 5}, "bad2": "no"}})
    index.update(a.node_id, a.node_data)
    index.update(b.node_id, b.node_data)
    sha1s = ["s1", "s2", "s3", "bad", "bad2"]
    same(index, registry, sha1s)
    # Deltas patch the stored data in place: added, renamed, deleted.
    patch(a.node_data, {"files_by_sha1": {"s3": [{"path": "new", "size": 3}], "s1": {"path": ["x", "x2"]},
                                          "s2": [{"path": "y", "size": 2}, 0, 0]}})
    index.update(a.node_id, a.node_data)
    same(index, registry, sha1s)
    assert index.find("s2", registry.leaves) == [{"kbshare_id": b.node_id, "size": 2, "path": "z"}]
    del registry.leaves[b.node_id]
    index.remove(b.node_id)
    same(index, registry, sha1s)
    assert "s2" not in index.by_sha1 and index.find("s1", registry.leaves)[0]["path"] == "x2"
    index.update(a.node_id, {"files_by_sha1": {}})
    assert index.by_sha1 == {}
