"""The hub's index of its shares' files gives what the protocol's find_in_leaves gives, through
full reports, in-place deltas and disconnects, from the connections' compact node data."""
from __future__ import annotations

from kbtools.hub.leafindex import LeafIndex
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, HubInfo

S1, S2, S3 = "11" * 20, "22" * 20, "33" * 20


def leaf(registry, node_id, data):
    conn = ChildConnection(HubInfo({}), registry)
    conn.node_id, conn.node_type, conn.node_data = node_id, "leaf", data
    registry.leaves[node_id] = conn
    return conn


def same(index, registry, sha1s):
    from kbtools.protocol.routing import find_in_leaves
    for sha1 in sha1s:
        assert index.find(sha1, registry.leaves) == find_in_leaves(registry, sha1)
        for sid in registry.leaves:
            assert index.find(sha1, registry.leaves, sid) == find_in_leaves(registry, sha1, sid)


def test_index_follows_reports_deltas_and_disconnects():
    registry, index = ChildRegistry(), LeafIndex()
    a = leaf(registry, "aaaaaaaaaaaa", {"files_by_sha1": {S1: {"path": "x", "size": 1},
                                                          S2: {"path": "y", "size": 2}}})
    b = leaf(registry, "bbbbbbbbbbbb", {"files_by_sha1": {S2: {"path": "z", "size": 2},
                                                          "bad": {"path": 5}, "bad2": "no",
                                                          "odd": {"path": "o", "size": 1.5}}})
    index.update(a.node_id, a.data)
    index.update(b.node_id, b.data)
    sha1s = [S1, S2, S3, "bad", "bad2", "odd", S1.upper()]
    same(index, registry, sha1s)
    assert index.find("odd", registry.leaves) == [{"kbshare_id": b.node_id, "size": 1.5, "path": "o"}]
    # Deltas patch the stored data in place: added, renamed, deleted.
    a.data.apply_delta({"files_by_sha1": {S3: [{"path": "new", "size": 3}], S1: {"path": ["x", "x2"]},
                                          S2: [{"path": "y", "size": 2}, 0, 0]}})
    index.update(a.node_id, a.data)
    same(index, registry, sha1s)
    assert index.find(S2, registry.leaves) == [{"kbshare_id": b.node_id, "size": 2, "path": "z"}]
    del registry.leaves[b.node_id]
    index.remove(b.node_id)
    same(index, registry, sha1s)
    assert index.find(S1, registry.leaves)[0]["path"] == "x2"
    assert index.find(S2, registry.leaves, b.node_id) == []
    a.node_data = {"files_by_sha1": {}}
    index.update(a.node_id, a.data)
    assert all(index.find(s, registry.leaves) == [] for s in sha1s)
    index.update(a.node_id, None)
    assert index.data_of == {}
