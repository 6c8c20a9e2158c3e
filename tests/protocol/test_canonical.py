"""Canonical JSON and signatures against every recorded child -> hub frame."""
from __future__ import annotations

import json

import pytest

from kbtools.node.identity import node_id_for_public_key
from kbtools.protocol.canonical import canonical_json, is_array_index, js_number, sign_message, verify_message
from kbtools.protocol.envelope import Signer
from tests.protocol.vectors import child_frames, identities_by_id


def test_every_recorded_signature_verifies_and_resigns_identically():
    ids = identities_by_id()
    frames = child_frames()
    assert len(frames) == 81
    keys = {i: ident.private_key() for i, ident in ids.items()}
    for rec in frames:
        outer = json.loads(rec["frame"])
        ident = ids[outer["node_id"]]
        assert verify_message(ident.public_pem, outer["message"], outer["signature"])
        assert sign_message(keys[outer["node_id"]], outer["message"]) == outer["signature"]


def test_register_frames_carry_the_key_of_their_id():
    for rec in child_frames():
        outer = json.loads(rec["frame"])
        if "public_key" in outer:
            assert outer["message"]["command"] == "register_child_node"
            assert node_id_for_public_key(outer["public_key"]) == outer["node_id"]


def test_signer_rebuilds_a_recorded_frame_byte_for_byte():
    ids = identities_by_id()
    for rec in child_frames():
        outer = json.loads(rec["frame"])
        msg = outer["message"]
        fields = {k: v for k, v in msg.items() if k not in ("timestamp", "node_id", "network_type")}
        rebuilt = Signer(ids[outer["node_id"]]).frame(fields, msg["timestamp"])
        assert rebuilt == rec["frame"]


def test_a_tampered_message_does_not_verify():
    rec = child_frames()[0]
    outer = json.loads(rec["frame"])
    outer["message"]["passcode"] = "other"
    assert not verify_message(outer["public_key"], outer["message"], outer["signature"])
    assert not verify_message(outer["public_key"], outer["message"], "zz")
    assert not verify_message("not a key", outer["message"], outer["signature"])


def test_js_key_order_and_escapes():
    assert canonical_json({"b": 1, "10": 2, "a": 3, "2": 4, "01": 5}) == '{"2":4,"10":2,"b":1,"a":3,"01":5}'
    assert canonical_json({"s": "é/\u2028\x7f\x01\"\\\n"}) == '{"s":"é/\u2028\x7f\\u0001\\"\\\\\\n"}'
    assert canonical_json({"x": 1.0, "y": [2.0]}) == '{"x":1,"y":[2]}'
    assert canonical_json({"x": 1.5, "y": 1e21}) == '{"x":1.5,"y":1e+21}'
    assert canonical_json("\ud800") == '"\\ud800"'
    assert is_array_index("0") and not is_array_index("00") and not is_array_index("-1")


@pytest.mark.parametrize("value,text", [
    (10000000000000000.0, "10000000000000000"), (1e21, "1e+21"), (0.1, "0.1"), (1e-7, "1e-7"),
    (0.000001, "0.000001"), (-2.5e30, "-2.5e+30"), (123.456, "123.456"), (5, "5"),
])
def test_js_number(value, text):
    assert js_number(value) == text
