"""jsondiffpatch patch and diff for the delta shapes of spec §2.6."""
from __future__ import annotations

import copy
import json

import pytest

from kbtools.protocol.errors import RemoteProtocolError
from kbtools.protocol.jsondiff import diff, patch
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
