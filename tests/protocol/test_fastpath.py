"""The fast tunnel between kbtools peers: frame format, negotiation, credit enforcement."""
from __future__ import annotations

import dataclasses
import json

import pytest

from kbtools.protocol import fastpath
from kbtools.protocol.errors import LocalProtocolError, RemoteProtocolError
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


# -- the frame format of docs/protocol.md, byte for byte -------------------------------------------------

def test_each_frame_type_has_its_wire_number():
    assert fastpath.encode(fastpath.RESPONSE_DATA, "r", b"x") == b"\x01\x01rx"
    assert fastpath.encode_credit("r", 5) == b"\x02\x01r\x00\x00\x00\x05"
    assert fastpath.encode(fastpath.REQUEST_DATA, "r", b"x") == b"\x03\x01rx"
    assert fastpath.encode(fastpath.CANCEL, "r") == b"\x04\x01r"


@pytest.mark.parametrize("rid", ["a", "ab", "abcdef", "x" * 255])
def test_request_ids_of_any_length_from_1_to_255_round_trip(rid):
    frame = fastpath.encode(fastpath.RESPONSE_DATA, rid, b"payload")
    assert frame[1] == len(rid)
    assert fastpath.decode(frame) == fastpath.BinaryFrame(fastpath.RESPONSE_DATA, rid, b"payload")
    assert fastpath.decode(fastpath.encode(fastpath.CANCEL, rid)) == fastpath.BinaryFrame(fastpath.CANCEL, rid, b"")


@pytest.mark.parametrize("rid", ["", "x" * 256, "x" * 300])
def test_a_request_id_that_does_not_fit_one_length_byte_is_refused(rid):
    with pytest.raises(LocalProtocolError):
        fastpath.encode(fastpath.RESPONSE_DATA, rid, b"x")


def test_the_shortest_frame_is_three_bytes():
    assert fastpath.decode(b"\x01\x01a") == fastpath.BinaryFrame(1, "a", b"")
    assert fastpath.decode(b"\x01\x01ab") == fastpath.BinaryFrame(1, "a", b"b")


@pytest.mark.parametrize("bad", [b"\x01\x02a", b"\x01\x03ab", b"\x01\x08abcdEFG"])
def test_a_frame_shorter_than_its_request_id_is_refused(bad):
    with pytest.raises(RemoteProtocolError):
        fastpath.decode(bad)


def test_binary_frames_are_values():
    frame = fastpath.decode(b"\x01\x01ab")
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.payload = b"c"  # type: ignore[misc]
    assert {frame: 1}[fastpath.BinaryFrame(1, "a", b"b")] == 1


@pytest.mark.parametrize("frame", [
    fastpath.BinaryFrame(fastpath.RESPONSE_DATA, "r", b"\x00\x00\x00\x05"),
    fastpath.BinaryFrame(fastpath.REQUEST_DATA, "r", b"\x00\x00\x00\x05"),
    fastpath.BinaryFrame(fastpath.CREDIT, "r", b"\x00\x00\x05"),
    fastpath.BinaryFrame(fastpath.CREDIT, "r", b"\x00\x00\x00\x00\x05"),
])
def test_only_a_credit_frame_of_four_bytes_grants_credit(frame):
    with pytest.raises(RemoteProtocolError, match="Invalid credit frame"):
        frame.credit()


def test_credit_is_a_big_endian_uint32():
    assert fastpath.BinaryFrame(fastpath.CREDIT, "r", b"\x01\x02\x03\x04").credit() == 0x01020304
    assert fastpath.decode(fastpath.encode_credit("r", 2**32 - 1)).credit() == 2**32 - 1


# -- negotiation -----------------------------------------------------------------------------------------

def test_the_offer_and_the_answer_name_data_connections_only_when_both_want_them():
    assert fastpath.offer() == {"version": 1, "cancel": True}
    assert fastpath.offer(True) == {"version": 1, "cancel": True, "data_connection": 1}
    assert fastpath.accept(fastpath.offer(True), 100) == {"version": 1, "window": 100}
    assert fastpath.accept(fastpath.offer(True), 100, data_connections=True) == {
        "version": 1, "window": 100, "data_connection": 1}
    assert fastpath.accept(fastpath.offer(), 100, data_connections=True) == {"version": 1, "window": 100}
    assert fastpath.offers_data(fastpath.accept(fastpath.offer(True), 100, True))


def test_versions_are_json_numbers():
    # JSON has one number type: 1.0 is the number 1 (as JavaScript's ===), true is not
    assert fastpath.accept({"version": 1.0}, 100) == {"version": 1, "window": 100}
    assert fastpath.accept({"version": 0}, 100) is None and fastpath.accept({"version": 2}, 100) is None
    assert fastpath.offers_data({"version": 1, "data_connection": 1.0})
    assert not fastpath.offers_data({"version": 1, "data_connection": True})
    assert not fastpath.offers_data({"version": 1, "data_connection": 2})
    assert not fastpath.offers_data({"version": 1}) and not fastpath.offers_data(None)
    assert not fastpath.accepts_cancel({"version": 1, "cancel": 1})
    assert not fastpath.accepts_cancel({"version": 1, "cancel": "true"}) and not fastpath.accepts_cancel(True)


def test_data_connections_use_their_own_path_and_start_at_512_kib():
    assert fastpath.data_path("node", "rid") == ".kbtools/data/node/rid"
    assert fastpath.DATA_MIN_BYTES == 512 * 1024  # docs/protocol.md, "Data connections"


def test_a_hub_grants_4_mib_by_default_in_frames_of_up_to_1_mib():
    assert fastpath.accept(fastpath.offer()) == {"version": 1, "window": 4 * 1024 * 1024}
    conn, out = fast_child()
    assert json.loads(out.replies[0])["kbtools_tunnel"]["window"] == 4 * 1024 * 1024
    conn.open_request("abcdEFGH")
    mib = b"x" * (1024 * 1024)
    for _ in range(4):
        out = conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", mib), NOW)
        assert not out.close and len(out.events[0].data) == len(mib)
    assert conn.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"y"), NOW).close


def test_a_frame_past_1_mib_and_its_header_is_too_large():
    conn, _ = fast_child(fast_window=8 * 1024 * 1024)
    conn.open_request("abcdEFGH")
    fits = fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"x" * (1024 * 1024 + 250))
    assert not conn.receive_frame(fits, NOW).close
    too_large = fastpath.encode(fastpath.RESPONSE_DATA, "abcdEFGH", b"x" * (1024 * 1024 + 251))
    out = conn.receive_frame(too_large, NOW)
    assert out.close and json.loads(out.replies[0])["error"] == "Message too large. Closing websocket."
