"""jsondiffpatch patch and diff for the delta shapes of spec §2.6."""
from __future__ import annotations

import copy
import json

import pytest

from kbtools.protocol.errors import RemoteProtocolError
from kbtools.protocol.jsondiff import diff, patch, text_patch
from tests.protocol.vectors import child_frames

LONG = "a_rather_long_directory_name_for_testing/with_a_rather_long_file_name.txt"
LONGER = "a_rather_long_directory_name_for_testing/with_a_rather_longer_file_name.txt"


def recorded_deltas():
    return [json.loads(r["frame"])["message"]["data_delta"] for r in child_frames(2)
            if "data_delta" in json.loads(r["frame"])["message"]]


def test_spec_shapes():
    base = {"files_by_sha1": {"s1": {"path": "d/two.txt", "size": 9}}}
    added = patch(copy.deepcopy(base), {"files_by_sha1": {"s2": [{"path": "three.txt", "size": 6}]}})
    assert added["files_by_sha1"]["s2"] == {"path": "three.txt", "size": 6}
    modified = patch(copy.deepcopy(base), {"files_by_sha1": {"s1": {"path": ["d/two.txt", "x.txt"]}}})
    assert modified["files_by_sha1"]["s1"]["path"] == "x.txt"
    deleted = patch(copy.deepcopy(base), {"files_by_sha1": {"s1": [{"path": "d/two.txt", "size": 9}, 0, 0]}})
    assert deleted == {"files_by_sha1": {}}
    text = patch({"x": {"path": LONG}}, {"x": {"path": ["@@ -52,16 +52,18 @@\n her_long\n+er\n _file_na\n", 0, 2]}})
    assert text == {"x": {"path": LONGER}}


def test_diff_makes_the_recorded_shapes():
    text, added, deleted = recorded_deltas()[1], recorded_deltas()[0], recorded_deltas()[2]
    assert diff({"files_by_sha1": {"h": {"path": LONG, "size": 11}}},
                {"files_by_sha1": {"h": {"path": LONGER, "size": 11}}}) == {
        "files_by_sha1": {"h": {"path": text["files_by_sha1"]["537d1ec1a5d4551fa22c2719a75fabb17b51cb4b"]["path"]}}}
    entry = {"path": "three.txt", "size": 6}
    sha = "1e7720a3460b8a84ac4ba27880d64526a3872f1c"
    assert diff({"files_by_sha1": {}}, {"files_by_sha1": {sha: entry}}) == added
    assert diff({"files_by_sha1": {sha: entry}}, {"files_by_sha1": {}}) == deleted
    assert diff({"a": "short"}, {"a": "other"}) == {"a": ["short", "other"]}
    assert diff({"a": 1}, {"a": 1}) is None


def test_diff_then_patch_round_trips():
    old = {"files_by_sha1": {"a": {"path": LONG, "size": 1}, "b": {"path": "b", "size": 2}}, "k": 1}
    new = {"files_by_sha1": {"a": {"path": LONGER, "size": 1}, "c": {"path": "c", "size": 3}}, "k": 2}
    assert patch(copy.deepcopy(old), diff(old, new)) == new


def test_array_deltas():
    assert patch({"a": [1, 2, 3]}, {"a": {"_t": "a", "_0": [1, 0, 0], "2": [4]}}) == {"a": [2, 3, 4]}


@pytest.mark.parametrize("target,delta", [
    ({"a": 1}, {"a": [1, 2, 3, 4]}),
    ({"a": 1}, {"a": {"b": [1]}}),
    ({"a": 1}, {"a": ["@@ -1 +1 @@\n", 0, 2]}),
    ({}, {"a": ["not a patch", 0, 2]}),
    ({"a": LONG}, {"a": ["garbage", 0, 2]}),
    ([], {"_t": "a", "_0": ["", 1, 3]}),
    (1, "x"),
])
def test_bad_deltas_are_remote_errors(target, delta):
    with pytest.raises(RemoteProtocolError):
        patch(target, delta)


# -- each delta shape, and each refusal by its reason -------------------------------------------------

def test_a_delta_at_the_top_replaces_or_deletes_the_value():
    assert patch({"a": 1}, [{"a": 1}, {"b": 2}]) == {"b": 2}
    assert patch("x", ["y"]) == "y"
    assert patch({"a": 1}, [{"a": 1}, 0, 0]) is None


def test_added_and_modified_values_are_copies_of_the_delta():
    delta = {"a": [{"x": [1]}], "b": [0, {"y": [2]}]}
    result = patch({"b": 0}, delta)
    result["a"]["x"].append(9)
    result["b"]["y"].append(9)
    assert delta == {"a": [{"x": [1]}], "b": [0, {"y": [2]}]}


def test_deleting_a_missing_key_is_harmless():
    assert patch({"a": 1}, {"b": [5, 0, 0]}) == {"a": 1}


def test_text_patch_of_a_nested_value():
    old = {"files": {"h": {"path": LONG}}}
    assert patch(old, {"files": {"h": {"path": [text_patch(LONG, LONGER), 0, 2]}}}) == {
        "files": {"h": {"path": LONGER}}}


@pytest.mark.parametrize("target,delta,reason", [
    ({"a": 1}, {"a": [1, 2, 3, 4]}, "unsupported delta shape"),
    ({"a": 1}, {"a": [1, 1, 0]}, "unsupported delta shape"),
    ({"a": 1}, {"a": [1, 0, 1]}, "unsupported delta shape"),
    ({"a": 1}, {"a": []}, "unsupported delta shape"),
    ({}, {"a": ["@@ -1 +1 @@\n", 0, 2]}, "text patch for a missing value"),
    ({"a": 1}, {"a": ["@@ -1 +1 @@\n", 0, 2]}, "text patch for a value that is not a string"),
    ({"a": "x"}, {"a": [5, 0, 2]}, "text patch for a value that is not a string"),
    ({"a": LONG}, {"a": ["garbage", 0, 2]}, "invalid text patch"),
    ({"a": "abc"}, {"a": [text_patch(LONG, LONGER), 0, 2]}, "text patch does not apply"),
    ({}, {"a": {"b": [1]}}, "nested delta for a missing value"),
    ({"a": 1}, {"a": 5}, "invalid delta"),
    (1, "x", "invalid delta"),
    ({"a": 1}, {"_t": "a", "0": [1]}, "array delta for a value that is not an array"),
    ([1], {"a": [1]}, "object delta for a value that is not an object"),
    ([1, 2], {"_t": "a", "_5": [1, 0, 0]}, "array delta removes a missing item"),
    ([1, 2], {"_t": "a", "2": [1, 2]}, "array delta modifies a missing item"),
    ([1, 2], {"_t": "a", "_0": ["", 1, 3]}, "unsupported array delta (moves are not supported)"),
    ([1, 2], {"_t": "a", "_0": [1, 0]}, "unsupported array delta (moves are not supported)"),
    ([1, 2], {"_t": "a", "_0": 1}, "unsupported array delta (moves are not supported)"),
    ([1, 2], {"_t": "a", "x": [1]}, "invalid array delta"),
])
def test_bad_deltas_name_what_does_not_fit(target, delta, reason):
    with pytest.raises(RemoteProtocolError) as info:
        patch(target, delta)
    assert str(info.value).startswith(reason)


def test_array_delta_removes_from_the_end_then_inserts_in_order_then_modifies():
    # removing 3 then 1 leaves [0, 2, 4]; inserting at 0 and then at 3 gives [a, 0, 2, c, 4]
    assert patch([0, 1, 2, 3, 4], {"_t": "a", "_1": [1, 0, 0], "_3": [3, 0, 0], "3": ["c"], "0": ["a"]}) == [
        "a", 0, 2, "c", 4]
    assert patch([0, 1, 2, 3, 4], {"_t": "a", "_1": [1, 0, 0], "_3": [3, 0, 0]}) == [0, 2, 4]
    assert patch([0, 2, 4], {"_t": "a", "3": ["c"], "0": ["a"]}) == ["a", 0, 2, "c", 4]
    assert patch([0, {"k": 1}, 2], {"_t": "a", "1": {"k": [1, 5]}, "2": [2, 3]}) == [0, {"k": 5}, 3]


def test_array_delta_modification_of_the_last_item():
    assert patch([1, 2], {"_t": "a", "1": [2, 3]}) == [1, 3]


@pytest.mark.parametrize("length,text", [(59, False), (60, True)])
def test_strings_from_60_characters_get_a_text_patch(length, text):
    old, new = "a" * length, "a" * (length - 1) + "b"
    delta = diff({"p": old}, {"p": new})
    if text:
        assert delta == {"p": [text_patch(old, new), 0, 2]} and delta["p"][0].startswith("@@")
    else:
        assert delta == {"p": [old, new]}
    assert diff({"p": "a" * 70}, {"p": "b" * 59}) == {"p": ["a" * 70, "b" * 59]}
    assert diff({"p": "a" * 59}, {"p": "b" * 70}) == {"p": ["a" * 59, "b" * 70]}


def test_diff_sees_a_change_of_type():
    assert diff(1, True) == [1, True]
    assert diff("1", 1) == ["1", 1]
    assert diff({"a": "1"}, {"a": 1}) == {"a": ["1", 1]}


def test_diff_sees_a_nested_change_between_int_and_bool():
    assert diff({"a": 1}, {"a": True}) == {"a": [1, True]}
    assert diff({"a": {"b": [0]}}, {"a": {"b": [False]}}) == {"a": {"b": [[0], [False]]}}
    assert diff({"a": [1, 2.0]}, {"a": [1.0, 2]}) is None  # one number in JSON, as in JavaScript


def test_diff_of_values_that_are_not_both_objects():
    assert diff({"a": [1]}, {"a": [1, 2]}) == {"a": [[1], [1, 2]]}  # arrays are replaced whole
    assert diff({"a": {"b": 1}}, {"a": 5}) == {"a": [{"b": 1}, 5]}
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None
    assert diff({"a": {"b": 1}, "c": 1}, {"a": {"b": 1}, "c": 2}) == {"c": [1, 2]}


# -- what arrives from the network, and the shapes next to the supported ones ----------------------------

def test_deltas_parsed_from_json_text():
    # keys and values parsed from a frame are new string objects, never the constants of the code
    delta = json.loads('{"a": {"_t": "a", "_0": [1, 0, 0], "1": ["x"]}}')
    assert patch({"a": [1, 2]}, delta) == {"a": [2, "x"]}


def test_a_text_patch_at_the_top_patches_the_value():
    assert patch(LONG, [text_patch(LONG, LONGER), 0, 2]) == LONGER


@pytest.mark.parametrize("shape", [[1, -1, 0], [1, 0, -1], [1, 0, 0, 0], [1, 0, 1], [1, 1, 0],
                                   ["@@ -1 +1 @@\n", 1, 2], ["@@ -1 +1 @@\n", -1, 2],
                                   ["@@ -1 +1 @@\n", 0, 3], ["@@ -1 +1 @@\n", 0, 2, 0]])
def test_only_0_0_deletes_and_only_0_2_patches_text(shape):
    with pytest.raises(RemoteProtocolError, match="unsupported delta shape"):
        patch({"a": "abc"}, {"a": shape})


@pytest.mark.parametrize("removal", [[1, 0, -1], [1, 0, 0, 0], ["", 0, 3], ["", 1, 3]])
def test_an_array_removal_is_exactly_old_0_0(removal):
    with pytest.raises(RemoteProtocolError, match="unsupported array delta"):
        patch([1, 2], {"_t": "a", "_1": removal})


def test_an_empty_array_insert_is_an_unsupported_shape():
    with pytest.raises(RemoteProtocolError, match="unsupported delta shape"):
        patch([1], {"_t": "a", "0": []})


def test_array_deltas_past_the_end_are_refused():
    with pytest.raises(RemoteProtocolError, match="array delta removes a missing item"):
        patch([1, 2], {"_t": "a", "_2": [3, 0, 0]})
    with pytest.raises(RemoteProtocolError, match="array delta modifies a missing item"):
        patch([1, 2], {"_t": "a", "5": [1, 2]})


def test_array_inserts_go_in_order_of_their_index_whatever_their_values():
    assert patch([0, 2, 4], {"_t": "a", "0": ["z"], "3": ["a"]}) == ["z", 0, 2, "a", 4]
    assert patch([0], {"_t": "a", "2": [{"k": 1}], "1": [{"j": 2}]}) == [0, {"j": 2}, {"k": 1}]


def test_equal_values_have_no_delta_at_any_depth():
    assert diff({"a": [{"b": 1}]}, {"a": [{"b": 1}]}) is None
    assert diff([{"b": None}], [{"b": None}]) is None
    assert diff({"a": None}, {"a": None}) is None
    assert diff({"a": 1.5}, {"a": float("1.5")}) is None  # equal, not the same object
    assert diff({"a": 10**20}, {"a": int("1" + "0" * 20)}) is None
    assert diff({"a": list(range(300))}, {"a": list(range(300))}) is None
    assert diff({"a": [int(x) for x in "9" * 300]}, {"a": [int(x) for x in "9" * 300]}) is None


def test_a_number_and_a_boolean_differ_inside_arrays_too():
    assert diff({"a": [1]}, {"a": [True]}) == {"a": [[1], [True]]}
    assert diff({"a": [{"b": 0}]}, {"a": [{"b": False}]}) == {"a": [[{"b": 0}], [{"b": False}]]}
