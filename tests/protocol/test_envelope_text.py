"""The hub reads a child's frame once (messages.loads_envelope) and checks the signature on the
message's text as it came; a frame written otherwise is read and checked as before."""
from __future__ import annotations

import json
import os

import pytest

from kbtools.node.identity import create_identity
from kbtools.protocol.canonical import canonical_json, verify_message
from kbtools.protocol.envelope import Signer
from kbtools.protocol.messages import (
    WriteResponseData, decode_base64, loads_envelope, loads_network_json,
)


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return Signer(create_identity(tmp_path_factory.mktemp("node")))


def test_a_signed_frame_is_read_once_and_verified_on_its_text(signer):
    frame = signer.frame(WriteResponseData("abcdefgh", os.urandom(1000)).to_fields(), 1234)
    obj, text = loads_envelope(frame)
    assert obj == loads_network_json(frame)
    assert text == canonical_json(obj["message"])
    pem = signer.identity.public_pem
    assert verify_message(pem, obj["message"], obj["signature"], text)
    forged, forged_text = loads_envelope(frame.replace("abcdefgh", "abcdefgi"))
    assert not verify_message(pem, forged["message"], forged["signature"], forged_text)
    # Spaces in the frame: the text is not what was signed, the canonical form still is.
    spaced = json.dumps(json.loads(frame), indent=1)
    obj2, text2 = loads_envelope(spaced)
    assert text2 is None and obj2 == obj
    assert verify_message(pem, obj2["message"], obj2["signature"], text2)


@pytest.mark.parametrize("frame", [
    '{"message":{"a":1},"message":{"a":2},"signature":"00"}',  # a repeated key: the last one wins
    '{"message":{"a":1}} trailing',
    '{"message":{"a":NaN},"signature":"00"}',
    '{"message":{"a":"\\ud800"},"signature":"00"}',
])
def test_frames_out_of_the_usual_form_read_as_json_reads_them(frame):
    try:
        expected = loads_network_json(frame)
    except ValueError:
        with pytest.raises(ValueError):
            loads_envelope(frame)
        return
    obj, text = loads_envelope(frame)
    assert obj == expected and text is None


def test_base64_is_strict():
    assert decode_base64("QUJD") == b"ABC" and decode_base64("") == b""
    for bad in ("QU JD", "QUJD!", "QQ==QUJD", "é"):
        with pytest.raises(ValueError):
            decode_base64(bad)
