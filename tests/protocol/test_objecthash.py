"""object_hash: the check values of spec §2.6.2, and every recorded data_hash."""
from __future__ import annotations

import json

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
