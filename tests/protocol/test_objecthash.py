"""object_hash: the check values of spec §2.6.2, and every recorded data_hash."""
from __future__ import annotations

import json

import pytest

from kbtools.protocol.jsondiff import patch
from kbtools.protocol.objecthash import object_hash
from tests.protocol.vectors import child_frames


def test_check_values():
    assert object_hash({"files_by_sha1": {}}) == "2e6fe73f62e1655c45615b125b78496300cc3acf"
    assert object_hash({"files_by_sha1": {
        "415cfad5cba826fdd2955c816d9c4bf771b1eb14": {"path": "one.txt", "size": 9},
        "344618422fb110f966aee95f25cfe35de46ce5dc": {"path": "d/two.txt", "size": 9},
    }}) == "978c1239a23ef16f985c8540bbbf03ccbdd0d475"


def test_key_order_does_not_matter_but_values_do():
    a = object_hash({"a": 1, "b": {"c": "x"}})
    assert a == object_hash({"b": {"c": "x"}, "a": 1})
    assert a != object_hash({"a": 1, "b": {"c": "y"}})
    assert a != object_hash({"a": "1", "b": {"c": "x"}})


def test_replaying_each_connection_reproduces_every_recorded_data_hash():
    checked = 0
    for conn in (1, 2):
        data = None
        for rec in child_frames(conn):
            msg = json.loads(rec["frame"])["message"]
            if msg["command"] != "report_node_data":
                continue
            if "data" in msg:
                data = msg["data"]
            elif "data_delta" in msg:
                data = patch(data, msg["data_delta"])
            assert object_hash(data) == msg["data_hash"]
            checked += 1
    assert checked >= 20


# Values computed by npm object-hash 1.3.1 (Node 20, default options) for each object below.
ORACLE = [
    ({"samplerate": 30000.5, "ratio": -0.25, "big": 1e21, "small": 1e-7},
     "f6ee2cd5730d593bc304af90cb11804e31e7c5da"),  # numbers that are not ints: JS Number#toString
    ({"list": [1, 0, -3, 2.5, "x", None, True, False, [], {}]},
     "a5d6bf0c68088a869fbb22b8a2c31b8f2b1468b8"),  # arrays; 1 and 0 are numbers, not booleans
    ({"flags": {"on": True, "off": False, "none": None}},
     "d123ab0fdca901f8fa4ed67df47e75c908603a88"),
    ({"name": "é", "emoji": "😀", "mixed": "a😀é", "cjk": "データ"},
     "ab2c0ac4aa06d73efd30dcac22a63e3e21e25efc"),  # string lengths in UTF-16 code units
    ({"😀": 1, "\uff01": 2, "é": 3, "a": 4},
     "065423e8b72b6e5b2ea807a33c9e531a79e967c9"),  # keys sorted by UTF-16 code units: 😀 < ！
    ({"files": {"d/été.txt": {"size": 9}, "d/😀.txt": {"size": 10}}},
     "d3a73680e0f8f16a97449691015bd83ed9d3f12b"),
    ({"a": [{"b": [{"c": 1}]}, {"d": 2}]},
     "2454ed4140efcaac19565687a662cbd2dfdf0a4f"),  # objects nested in arrays take the later prefix
]


@pytest.mark.parametrize("obj,expected", ORACLE)
def test_matches_npm_object_hash(obj, expected):
    assert object_hash(obj) == expected


def test_non_json_values_are_refused():
    with pytest.raises(TypeError, match="object_hash: not JSON data: set"):
        object_hash({"a": {1, 2}})
