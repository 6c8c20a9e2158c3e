"""Signer: the inner message, the frame text and the envelope object (spec §2.2)."""
from __future__ import annotations

import json

import pytest

from kbtools.protocol.canonical import canonical_json, verify_message
from kbtools.protocol.envelope import NETWORK_TYPE, Signer
from tests.protocol.vectors import child_frames, identities_by_id


@pytest.fixture(scope="module")
def signer():
    ident = next(iter(identities_by_id().values()))
    return Signer(ident)


def test_message_puts_the_envelope_fields_last_and_overrides_them(signer):
    fields = {"command": "report", "timestamp": 1, "node_id": "forged", "a": 1.0, "network_type": "x"}
    message = signer.message(fields, 1234.9)
    assert list(message) == ["command", "a", "timestamp", "node_id", "network_type"]
    assert message == {"command": "report", "a": 1.0, "timestamp": 1234,
                       "node_id": signer.node_id, "network_type": NETWORK_TYPE}
    assert NETWORK_TYPE == "kbucket"
    assert fields["node_id"] == "forged"  # the caller's dict is left alone


def test_envelope_is_the_frame_as_an_object(signer):
    fields = {"command": "report_node_data", "data": {"10": [1.5, 2.0], "2": "é"}}
    envelope = signer.envelope(fields, 1700000000000)
    frame = signer.frame(fields, 1700000000000)
    assert envelope == json.loads(frame)
    assert list(envelope) == ["message", "node_id", "kbnode_id", "signature"]
    assert envelope["node_id"] == envelope["kbnode_id"] == signer.node_id
    assert envelope["message"] == signer.message(fields, 1700000000000)
    assert frame == ('{"message":' + canonical_json(envelope["message"]) + ',"node_id":"'
                     + signer.node_id + '","kbnode_id":"' + signer.node_id + '","signature":"'
                     + envelope["signature"] + '"}')
    assert verify_message(signer.identity.public_pem, envelope["message"], envelope["signature"])
    assert not verify_message(signer.identity.public_pem, dict(envelope["message"], command="x"),
                              envelope["signature"])


@pytest.mark.parametrize("command,keyed", [("register_child_node", True), ("register_x", True),
                                           ("report_node_data", False), ("", False)])
def test_only_register_commands_carry_the_public_key(signer, command, keyed):
    envelope = signer.envelope({"command": command}, 5)
    assert ("public_key" in envelope) is keyed
    if keyed:
        assert list(envelope)[-1] == "public_key"
        assert envelope["public_key"] == signer.identity.public_pem
    assert verify_message(signer.identity.public_pem, envelope["message"], envelope["signature"])


def test_envelope_matches_every_recorded_frame():
    ids = identities_by_id()
    for rec in child_frames():
        outer = json.loads(rec["frame"])
        msg = outer["message"]
        fields = {k: v for k, v in msg.items() if k not in ("timestamp", "node_id", "network_type")}
        assert Signer(ids[outer["node_id"]]).envelope(fields, msg["timestamp"]) == outer
