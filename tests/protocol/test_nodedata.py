"""The hub's compact node data (kbtools.protocol.nodedata) read as a Mapping, kept compact, and
counted for the index budget."""
from __future__ import annotations

import json
import sys

import pytest

from kbtools.protocol.errors import RemoteProtocolError
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
    assert nd.nbytes == held + 112  # ARRAY_OVERHEAD counts five array headers for the four arrays


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


def test_node_data_without_files_costs_what_an_empty_files_object_costs():
    assert NodeData.from_data({}).nbytes == NodeData.from_data({"files_by_sha1": {}}).nbytes


def test_deep_size_counts_what_lists_and_objects_hold():
    assert deep_size(["x" * 1000]) >= sys.getsizeof([]) + 1000
    assert deep_size({"k": ["x" * 1000]}) >= sys.getsizeof({}) + 1000


def test_a_folder_is_kept_once():
    folder = "a_rather_long_folder_name/" * 4
    flat = {f"{i:040x}": {"path": f"{i}.bin", "size": i} for i in range(200)}
    nested = {k: {"path": folder + v["path"], "size": v["size"]} for k, v in flat.items()}
    flat_nd, nested_nd = NodeData.from_data({"files_by_sha1": flat}), NodeData.from_data({"files_by_sha1": nested})
    assert nested_nd.nbytes - flat_nd.nbytes == sys.getsizeof(folder) - sys.getsizeof("")
    assert nested_nd.lookup(f"{7:040x}") == (folder + "7.bin", 7) and flat_nd.lookup(f"{7:040x}") == ("7.bin", 7)


@pytest.mark.parametrize("n,fold_past", [(20, 8), (100, 25), (200, 50)])
def test_the_overlay_is_folded_past_its_minimum_and_a_quarter_of_the_arrays(monkeypatch, n, fold_past):
    import kbtools.protocol.nodedata as nodedata
    monkeypatch.setattr(nodedata, "OVERLAY_MIN", 8)
    data = {"files_by_sha1": {f"{i:040x}": {"path": f"f{i}", "size": i} for i in range(n)}}
    nd = NodeData.from_data(data)
    new = {f"{i:040x}": [{"path": f"n{i}", "size": i}] for i in range(10_000, 10_000 + fold_past)}
    nd.apply_delta({"files_by_sha1": new})
    assert len(nd._overlay) == fold_past  # at the limit: kept
    nd.apply_delta({"files_by_sha1": {"ff" * 20: [{"path": "one more", "size": 1}]}})
    assert len(nd._overlay) == 0 and len(nd._digests) == n + fold_past + 1  # past it: folded


def test_the_overlay_holds_4096_entries_by_default():
    nd = NodeData.from_data({"files_by_sha1": {}})
    nd.apply_delta({"files_by_sha1": {f"{i:040x}": [{"path": "p", "size": i}] for i in range(4096)}})
    assert len(nd._overlay) == 4096
    nd.apply_delta({"files_by_sha1": {"ff" * 20: [{"path": "p", "size": 1}]}})
    assert len(nd._overlay) == 0 and len(nd["files_by_sha1"]) == 4097


def test_deltas_parsed_from_json_text():
    # keys and values read from a frame are new string objects, never the constants of the code
    nd = NodeData.from_data({"x": 1})
    nd.apply_delta(json.loads('{"files_by_sha1": [{"%s": {"path": "p", "size": 1}}]}' % A))
    assert nd.lookup(A) == ("p", 1) and nd.has_files
    with pytest.raises(RemoteProtocolError, match="array delta for a value that is not an array"):
        NodeData.from_data({}).apply_delta(json.loads('{"x": 5, "_t": "a"}'))


def test_other_keys_of_any_name_read_as_they_are():
    nd = NodeData.from_data({"a": 1, "files_by_sha1": {}, "z": 2})
    assert nd["a"] == 1 and nd["z"] == 2 and len(nd["files_by_sha1"]) == 0


def test_sizes_up_to_2_to_the_53_minus_1_are_compact():
    def cost(size):
        return NodeData.from_data({"files_by_sha1": {A: {"path": "p", "size": size}}}).nbytes
    assert cost(2**53 - 1) == cost(2**52 + 1) == cost(1) < cost(2**53)


def test_only_sizes_from_0_are_compact():
    def cost(size):
        return NodeData.from_data({"files_by_sha1": {A: {"path": "p", "size": size}}}).nbytes
    assert cost(-1) > cost(0) == cost(1)


def test_the_size_of_an_object_is_its_own_plus_its_keys_and_values():
    value = ["x" * 1000, {"y": 2}]
    assert deep_size({"k": value}) == sys.getsizeof({"k": value}) + deep_size("k") + deep_size(value)
    assert deep_size(value) == sys.getsizeof(value) + deep_size("x" * 1000) + deep_size({"y": 2})


def test_a_files_delta_parsed_from_json_text_patches_the_files():
    nd = NodeData.from_data({"files_by_sha1": {A: {"path": "a", "size": 1}}})
    nd.apply_delta(json.loads('{"files_by_sha1": {"%s": [{"path": "b", "size": 2}]}}' % B))
    assert nd.lookup(A) == ("a", 1) and nd.lookup(B) == ("b", 2)
    assert nd[json.loads('"files_by_sha1"')][B] == {"path": "b", "size": 2}


def test_many_files_are_listed_and_hashed_chunk_after_chunk():
    data = {"files_by_sha1": {f"{i:040x}": {"path": f"f{i}", "size": i} for i in range(3 * 4096 + 5)}}
    nd = NodeData.from_data(data)
    assert nd.to_dict() == data and nd.object_hash() == object_hash(data)


def test_top_level_keys_beyond_the_bmp_hash_in_javascript_order():
    data = {"😀": 1, "\uffff": 2, "files_by_sha1": {A: {"path": "a", "size": 1}}}  # UTF-16: 😀 sorts first
    assert NodeData.from_data(data).object_hash() == object_hash(data)


def test_an_entry_with_more_fields_is_kept_whole():
    data = {"files_by_sha1": {A: {"path": "a", "size": 1, "mtime": 5}, B: {"path": "b"}}}
    nd = NodeData.from_data(data)
    assert nd.to_dict() == data and nd.object_hash() == object_hash(data)


def test_the_budget_follows_an_entry_outside_the_arrays_as_it_changes():
    old = {"files_by_sha1": {"odd": {"path": "p", "extra": 1}}}
    new = {"files_by_sha1": {"odd": {"path": "p" * 5000, "extra": 1}}}
    nd = NodeData.from_data(old)
    nd.apply_delta({"files_by_sha1": {"odd": {"path": ["p", "p" * 5000]}}})
    assert nd.to_dict() == new and nd.nbytes == NodeData.from_data(new).nbytes


def test_deleting_the_files_leaves_the_budget_of_data_without_files():
    nd = NodeData.from_data({"x": 1, "files_by_sha1": {"odd": [1], A: {"path": "a", "size": 1}}})
    nd.apply_delta({"files_by_sha1": [{}, 0, 0]})
    assert nd.to_dict() == {"x": 1} and nd.nbytes == NodeData.from_data({"x": 1}).nbytes
