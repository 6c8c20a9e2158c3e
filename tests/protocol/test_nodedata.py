"""The hub's compact node data (kbtools.protocol.nodedata) read as a Mapping, kept compact, and
counted for the index budget."""
from __future__ import annotations

import sys

import pytest

from kbtools.protocol.jsondiff import diff
from kbtools.protocol.nodedata import NodeData, deep_size
from kbtools.protocol.objecthash import object_hash

A, B, C = "aa" * 20, "bb" * 20, "cc" * 20


def test_node_data_reads_as_a_mapping():
    nd = NodeData.from_data({"x": 1, "files_by_sha1": {B: {"path": "d/b", "size": 2}, "odd": [1]}, "y": None})
    assert len(nd) == 3 and list(nd) == ["x", "y", "files_by_sha1"]
    assert nd["x"] == 1 and nd["y"] is None and "files_by_sha1" in nd and "z" not in nd
    files = nd["files_by_sha1"]
    assert files[B] == {"path": "d/b", "size": 2} and files["odd"] == [1]
    assert len(files) == 2 and set(files) == {B, "odd"} and dict(files.items())[B]["size"] == 2
    with pytest.raises(KeyError):
        files[A]
    with pytest.raises(KeyError):
        nd["z"]
    only_files = NodeData.from_data({"files_by_sha1": {}})
    assert len(only_files) == 1 and list(only_files) == ["files_by_sha1"] and len(only_files["files_by_sha1"]) == 0
    assert len(NodeData.from_data({"a": 1, "files_by_sha1": {}})) == 2
    assert len(NodeData.from_data({"a": 1, "b": 2, "files_by_sha1": {}})) == 3
    assert len(NodeData.from_data({})) == 0 and len(NodeData.from_data({"a": 1})) == 1


def test_a_files_value_that_is_not_an_object_is_kept_as_it_is():
    nd = NodeData.from_data({"files_by_sha1": [1, 2]})
    assert nd["files_by_sha1"] == [1, 2] and nd.lookup(A) is None and nd.to_dict() == {"files_by_sha1": [1, 2]}


def test_lookup_finds_entries_in_the_arrays_and_the_overlay():
    nd = NodeData.from_data({"files_by_sha1": {A: {"path": "a", "size": 0}, C: {"path": "x/c", "size": 3},
                                               B: {"path": 5, "size": 1}, "odd": {"path": "o", "size": 1}}})
    assert nd.lookup(A) == ("a", 0) and nd.lookup(C) == ("x/c", 3) and nd.lookup("odd") == ("o", 1)
    assert nd.lookup(B) is None and nd.lookup("dd" * 20) is None and nd.lookup(A.upper()) is None
    assert nd.lookup(A[:-2]) is None and nd.lookup("") is None


def test_entries_of_size_0_are_compact_too():
    files = {f"{i:040x}": {"path": f"f{i}", "size": 0} for i in range(2000)}
    sized = {f"{i:040x}": {"path": f"f{i}", "size": 1} for i in range(2000)}
    assert NodeData.from_data({"files_by_sha1": files}).nbytes == NodeData.from_data({"files_by_sha1": sized}).nbytes


def arrays_bytes(nd: NodeData) -> int:
    """What the arrays of a NodeData really take (each numpy array owns its buffer)."""
    arrays = (nd._digests, nd._sizes, nd._dir_of, nd._ends)
    assert all(a.base is None for a in arrays)
    return (sum(map(sys.getsizeof, arrays)) + sys.getsizeof(nd._names) + sys.getsizeof(nd._dirs)
            + sum(map(sys.getsizeof, nd._dirs)))


@pytest.mark.parametrize("n", [0, 1, 500])
def test_the_budget_never_counts_less_than_the_arrays_take(n):
    nd = NodeData.from_data({"files_by_sha1": {f"{i:040x}": {"path": f"d{i % 7}/f{i}", "size": i} for i in range(n)}})
    held = sys.getsizeof(nd) + arrays_bytes(nd) + deep_size(nd.extra)
    assert held <= nd.nbytes <= held + 200


def test_a_large_value_outside_the_arrays_is_counted_whole():
    base = NodeData.from_data({"files_by_sha1": {A: {"path": "a", "size": 1}}})
    before = base.nbytes
    value = {"blob": "x" * 10_000}
    base.apply_delta({"files_by_sha1": {"odd": [value]}})
    # an entry outside the arrays: 100 bytes of bookkeeping, its key and its value
    assert base.nbytes - before == 100 + sys.getsizeof("odd") + deep_size(value)
    base.apply_delta({"files_by_sha1": {"odd": [{"blob": "x" * 10_000}, 0, 0]}})
    assert base.nbytes == before
    base.apply_delta({"notes": ["y" * 10_000]})
    assert base.nbytes - before >= 10_000
    base.apply_delta({"notes": ["y" * 10_000, 0, 0]})
    assert base.nbytes == before


def test_the_budget_of_entries_outside_the_arrays_is_the_same_however_they_came():
    old = {"files_by_sha1": {f"k{i}": {"path": f"p{i}", "extra": i} for i in range(20)}}
    new = {"files_by_sha1": {f"k{i}": {"path": f"q{i}", "extra": i} for i in range(10, 30)}}
    nd = NodeData.from_data(old)
    nd.apply_delta(diff(old, new))
    assert nd.to_dict() == new and nd.nbytes == NodeData.from_data(new).nbytes


def test_deleting_a_compact_entry_counts_its_mark_until_the_arrays_are_rebuilt():
    data = {"files_by_sha1": {A: {"path": "a", "size": 1}, B: {"path": "b", "size": 2}}}
    nd = NodeData.from_data(data)
    before = nd.nbytes
    nd.apply_delta({"files_by_sha1": {A: [{"path": "a", "size": 1}, 0, 0]}})
    assert nd.to_dict() == {"files_by_sha1": {B: {"path": "b", "size": 2}}} and len(nd["files_by_sha1"]) == 1
    assert 100 + sys.getsizeof(A) == nd.nbytes - before  # the mark costs a bookkeeping entry, no value
    nd.apply_delta({"files_by_sha1": {A: [{"path": "a2", "size": 5}]}})
    assert nd.lookup(A) == ("a2", 5) and len(nd["files_by_sha1"]) == 2


def test_a_small_delta_leaves_the_arrays_as_they_are():
    data = {"files_by_sha1": {f"{i:040x}": {"path": f"f{i}", "size": i} for i in range(100)}}
    nd = NodeData.from_data(data)
    arrays = nd._digests
    nd.apply_delta({"files_by_sha1": {A: [{"path": "new", "size": 1}]}})
    assert nd._digests is arrays and nd.lookup(A) == ("new", 1)


def test_a_hash_with_more_than_256_entries_outside_the_arrays():
    files = {f"K{i:039d}": {"path": f"p{i}", "size": i, "x": 1} for i in range(300)}
    files.update({"f" * 38 + f"{i:02x}": {"path": f"f{i}", "size": i} for i in range(5)})  # after the K's
    data = {"files_by_sha1": files}
    assert NodeData.from_data(data).object_hash() == object_hash(data)


def test_other_keys_next_to_the_files():
    nd = NodeData.from_data({"files_by_sha1": {A: {"path": "a", "size": 1}}, "name": "n"})
    assert nd["name"] == "n" and nd["files_by_sha1"][A] == {"path": "a", "size": 1}
    nd.apply_delta({"name": ["n", "m"], "other": [[1]]})
    assert nd.to_dict() == {"files_by_sha1": {A: {"path": "a", "size": 1}}, "name": "m", "other": [1]}
    assert nd.object_hash() == object_hash(nd.to_dict())
