"""The fast tunnel between kbtools peers: frame format, negotiation, credit enforcement."""
from __future__ import annotations

import json

import pytest

from kbtools.protocol import fastpath
from kbtools.protocol.errors import RemoteProtocolError
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, HubInfo, HubLimits
from kbtools.protocol.leafconn import register_info
from kbtools.protocol.envelope import Signer
from tests.protocol.vectors import identity, kbnode

NOW = 1795565400.0


def test_frame_round_trip():
    frame = fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"\x00\xffdata")
    assert frame[:2] == b"\x01\x08"
    bf = fastpath.decode(frame)
    assert (bf.kind, bf.request_id, bf.payload) == (1, "abcdEFGH", b"\x00\xffdata")
    assert fastpath.decode(fastpath.encode_credit("r", 65536)).credit() == 65536
    cancel = fastpath.encode(fastpath.CANCEL, "abcdEFGH")
    assert cancel == b"\x04\x08abcdEFGH"
    assert fastpath.decode(cancel) == fastpath.BinaryFrame(fastpath.CANCEL, "abcdEFGH", b"")


@pytest.mark.parametrize("bad", [b"", b"\x01", b"\x01\x05ab", b"\x01\x00x", b"\x01\x01\xff"])
def test_malformed_binary_frames(bad):
    with pytest.raises(RemoteProtocolError):
        fastpath.decode(bad)


def test_negotiation():
    assert fastpath.accept({"version": 1}, 100) == {"version": 1, "window": 100}
    assert fastpath.accept(fastpath.offer(), 100) == {"version": 1, "window": 100}
    assert fastpath.accept(None) is None and fastpath.accept({"version": 99}) is None
    assert fastpath.accepts_cancel(fastpath.offer()) and not fastpath.accepts_cancel({"version": 1})


def fast_child(offer=None, **limits):
    registry = ChildRegistry(HubLimits(**limits))
    conn = ChildConnection(HubInfo({"name": "h"}, "hubpass"), registry, NOW)
    cfg = kbnode("share")
    info = register_info(cfg, cfg["listen_url"], "leaf")
    if offer is not None:
        info[fastpath.FIELD] = offer
    frame = Signer(identity("share")).frame({"command": "register_child_node", "passcode": "hubpass",
                                             "info": info}, int(NOW * 1000))
    out = conn.receive_frame(frame, NOW)
    return conn, out


def test_hub_answers_the_offer_next_to_info():
    conn, out = fast_child(fast_window=1000)
    confirm = json.loads(out.replies[0])
    assert confirm["kbtools_tunnel"] == {"version": 1, "window": 1000} and conn.fast_path
    conn, out = fast_child(allow_fast_path=False)
    assert "kbtools_tunnel" not in json.loads(out.replies[0]) and not conn.fast_path


def test_hub_enforces_the_credit_window():
    conn, _ = fast_child(fast_window=10)
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"x" * 10), NOW)
    assert not out.close and out.events[0].data == b"x" * 10 and out.replies == []
    out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"y"), NOW)
    assert out.close and json.loads(out.replies[0])["error"] == \
        "Flow-control window exceeded. Closing websocket."


def test_binary_frames_need_the_fast_path_and_an_open_request():
    conn, _ = fast_child()
    out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "unknownX", b"x"), NOW)
    assert out.close
    conn, _ = fast_child(allow_fast_path=False)
    conn.open_request("abcdEFGH")
    assert conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"x"), NOW).close


def test_frame_types_of_a_later_version_are_ignored():
    later = b"\x09\x01ab"  # type 9, request id "a", payload "b"
    assert fastpath.decode(later) == fastpath.BinaryFrame(9, "a", b"b")
    conn, _ = fast_child()
    out = conn.receive_frame(later, NOW)
    assert not out.close and out.events == [] and out.replies == []
    # Known types in the wrong direction are still a protocol error.
    conn.open_request("abcdEFGH")
    assert conn.receive_frame(fastpath.encode_credit("abcdEFGH", 10), NOW).close


def test_hub_cancel_drops_data_in_flight_within_the_credit():
    conn, _ = fast_child(fast_window=10)
    conn.open_request("abcdEFGH")
    assert conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"x" * 4), NOW).events
    assert conn.cancel_request("abcdEFGH") == fastpath.encode(fastpath.CANCEL, "abcdEFGH")
    assert conn.cancel_request("abcdEFGH") is None and conn.grant_credit("abcdEFGH", 100) is None
    # Sent before the child saw the cancel: dropped quietly, up to the credit it still had (6).
    out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"y" * 6), NOW)
    assert not out.close and out.events == []
    out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"z"), NOW)
    assert out.close and json.loads(out.replies[0])["error"] == \
        "Flow-control window exceeded. Closing websocket."


def test_no_cancel_for_a_child_that_did_not_offer_it():
    conn, _ = fast_child(offer={"version": 1})
    assert conn.fast_path and not conn.fast_cancel
    conn.open_request("abcdEFGH")
    assert conn.cancel_request("abcdEFGH") is None
    conn, _ = fast_child(allow_fast_path=False)  # compatible path: an original share cannot be told
    conn.open_request("abcdEFGH")
    assert conn.cancel_request("abcdEFGH") is None
