"""Generated hostile frames (Hypothesis) against both ends of the sans-I/O core: the hub's side of a
child link (ChildConnection) and the child's side of its parent link (ParentLink).

Every frame type, every field replaced by a value of any JSON type or removed, text that is not JSON
or not Unicode, signatures wrong, respelt or missing, stale timestamps, frames out of order, binary
frames of every kind and size. Each frame is answered (replies, events or a close with an error),
never with an exception, and the state stays consistent: after a close nothing more happens, the
registry and the index budget are released.

The default suite runs a few seconds of this (derandomized); `make fuzz` runs it long:
KBTOOLS_FUZZ_EXAMPLES sets the number of examples per test.
"""
from __future__ import annotations

import json
import os
import struct

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from kbtools.protocol import fastpath  # noqa: E402
from kbtools.protocol.envelope import Signer  # noqa: E402
from kbtools.protocol.hubconn import (  # noqa: E402
    ChildConnection, ChildRegistry, ConnectionClosed, HubInfo, HubLimits, IndexRefused,
)
from kbtools.protocol.leafconn import ParentLink, RequestStarted, register_info  # noqa: E402
from kbtools.protocol.objecthash import object_hash  # noqa: E402
from tests.protocol.vectors import identity, kbnode  # noqa: E402

EXAMPLES = int(os.environ.get("KBTOOLS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

NOW = 1795565400.0
NOW_MS = int(NOW * 1000)
SIGNER = Signer(identity("share"))
OTHER = Signer(identity("share2"))
RID = "abcdEFGH"
SHA = "ab" * 20

text = st.text(max_size=20)  # lone surrogates included: the door must refuse them
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), text,
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([RID, "GET", "HEAD", "leaf", "hub", "yes", "hubpass", SHA, "kbucket",
                                    "eA==", "!!", "http.end_response", "x" * 400]))
json_value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)), max_leaves=10)


def info(node_type: str = "leaf") -> dict:
    config = kbnode("share")
    return register_info(config, config["listen_url"], node_type)


DATA = {"files_by_sha1": {SHA: {"path": "a/b.txt", "size": 3}}}
NEW = {"files_by_sha1": {SHA: {"path": "a/c.txt", "size": 3}, "cd" * 20: {"path": "d", "size": 1}}}
CHILD_TEMPLATES = [
    {"command": "register_child_node", "info": info(), "passcode": "hubpass"},
    {"command": "register_child_node", "info": info("hub"), "passcode": "hubpass"},
    {"command": "report_node_data", "data": DATA, "data_hash": object_hash(DATA)},
    {"command": "report_node_data", "data_delta": {"files_by_sha1": {SHA: {"path": ["a/b.txt", "a/c.txt"]},
                                                                     "cd" * 20: [{"path": "d", "size": 1}]}},
     "data_hash": object_hash(NEW)},
    {"command": "report_node_data", "data_nochange": True, "data_hash": "x"},
    {"command": "report_node_data", "data": {"node_id": "x", "descendant_nodes": {"abc": {"node_id": "abc"}}}},
    {"message_type": "http", "command": "http.set_response_headers", "request_id": RID, "status": 200,
     "status_message": "OK", "headers": {"content-length": "1"}},
    {"message_type": "http", "command": "http.write_response_data", "request_id": RID, "data_base64": "eA=="},
    {"message_type": "http", "command": "http.end_response", "request_id": RID},
    {"message_type": "http", "command": "http.report_error", "request_id": RID, "error": "boom"},
]


@st.composite
def mutated_fields(draw, templates=CHILD_TEMPLATES):
    fields = dict(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(fields) + ["extra", "timestamp", "node_id", "network_type"]))
        if draw(st.booleans()):
            fields.pop(key, None)
        else:
            fields[key] = draw(json_value)
    return fields


@st.composite
def child_frame(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.one_of(text, st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
    if kind == 1:
        return json.dumps(draw(json_value))
    if kind == 2:  # binary frames: every kind, known and unknown request ids, any payload
        bkind = draw(st.integers(0, 255))
        rid = draw(st.sampled_from([RID, "other123", "x"]))
        payload = draw(st.one_of(st.binary(max_size=16), st.just(b"y" * (fastpath.MAX_FAST_CHUNK + 300))))
        raw = draw(st.one_of(st.just(bytes((bkind, len(rid))) + rid.encode() + payload),
                             st.binary(max_size=8)))
        return raw
    fields = draw(mutated_fields())
    now = NOW_MS + draw(st.sampled_from([0, 0, 0, 1, -700_000, 700_000]))
    signer = draw(st.sampled_from([SIGNER, SIGNER, SIGNER, OTHER]))
    frame = signer.frame(fields, now)
    how = draw(st.integers(0, 7))
    if how == 0:  # the envelope itself mutated
        obj = json.loads(frame)
        key = draw(st.sampled_from(["signature", "node_id", "public_key", "message", "kbnode_id"]))
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(json_value)
        return json.dumps(obj)
    if how == 1:  # the signature respelt
        obj = json.loads(frame)
        obj["signature"] = obj["signature"].upper()
        return json.dumps(obj)
    if how == 2:  # a field changed after signing
        obj = json.loads(frame)
        obj["message"]["extra"] = 1
        return json.dumps(obj)
    return frame


def check_outcome(conn: ChildConnection, out, was_closed: bool) -> None:
    if was_closed:
        assert not out.replies and not out.events
        return
    if out.close:
        assert len(out.replies) >= 1
        assert json.loads(out.replies[0])["error"].endswith(". Closing websocket.")
        assert isinstance(out.events[-1], ConnectionClosed)
        assert conn.closed and conn.data is None
    for r in out.replies:
        assert isinstance(r, (str, bytes))


@FUZZ
@given(st.lists(child_frame(), min_size=1, max_size=6), st.booleans(), st.sampled_from([1, 600, 10**9]))
def test_child_connection_answers_every_generated_frame(frames, register_first, index_limit):
    registry = ChildRegistry(HubLimits(max_index_bytes=index_limit * 1024, defer_data_ack=False))
    hub = HubInfo({"node_id": "d0d90d53e2d5", "name": "hub"}, passcode="hubpass", top_hub_url="http://h")
    conn = ChildConnection(hub, registry, NOW)
    if register_first:
        conn.receive_frame(SIGNER.frame(CHILD_TEMPLATES[0], NOW_MS - 5), NOW)
        conn.open_request(RID)
    for frame in frames:
        was_closed = conn.closed
        out = conn.receive_frame(frame, NOW)
        check_outcome(conn, out, was_closed)
        if any(isinstance(e, IndexRefused) for e in out.events):
            assert out.close
        conn.acknowledge_data()
        conn.grant_credit(RID, 10)
        conn.cancel_request(RID)
        conn.check_inactivity(NOW)
    assert registry.index_bytes == (conn.data.nbytes if conn.data is not None else 0)
    conn.connection_lost()
    assert registry.index_bytes == 0 and not registry.leaves and not registry.child_hubs


# ---------------------------------------------------------------- the child's side

HUB_TEMPLATES = [
    {"command": "confirm_registration", "info": {"node_id": "d0d90d53e2d5", "name": "hub"},
     "kbtools_tunnel": {"version": 1, "window": 65536}},
    {"command": "set_top_hub_url", "top_hub_url": "http://top"},
    {"message": "ok"},
    {"error": "Incorrect passcode for node share. Closing websocket."},
    {"message_type": "http", "command": "http.initiate_request", "request_id": RID, "method": "GET",
     "path": "x/download/a.txt", "headers": {"range": "bytes=0-1"}, "query": {}},
    {"message_type": "http", "command": "http.write_request_data", "request_id": RID, "data_base64": "eA=="},
    {"message_type": "http", "command": "http.end_request", "request_id": RID},
]


@st.composite
def hub_frame(draw):
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(text)
    if kind == 1:
        return json.dumps(draw(json_value))
    if kind == 2:
        bkind = draw(st.integers(0, 255))
        rid = draw(st.sampled_from([RID, "other123"]))
        payload = draw(st.one_of(st.binary(max_size=8), st.integers(0, 2**32 - 1).map(lambda n: struct.pack(">I", n))))
        return draw(st.one_of(st.just(bytes((bkind, len(rid))) + rid.encode() + payload), st.binary(max_size=8)))
    fields = dict(draw(st.sampled_from(HUB_TEMPLATES)))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(fields) + ["extra"]))
        if draw(st.booleans()):
            fields.pop(key, None)
        else:
            fields[key] = draw(json_value)
    return json.dumps(fields)


@FUZZ
@given(st.lists(hub_frame(), min_size=1, max_size=8), st.booleans())
def test_parent_link_answers_every_generated_frame(frames, fast):
    link = ParentLink(SIGNER, register_info(kbnode("share"), "http://127.0.0.1:1", "leaf", fast_path=fast),
                      "hubpass", max_frame_bytes=4096)
    link.connection_opened(NOW_MS)
    for frame in frames:
        out = link.receive_frame(frame, NOW_MS)
        assert isinstance(out.send, list) and all(isinstance(f, (str, bytes)) for f in out.send)
        if out.close:
            assert out.close_reason
        # What a share does next must not fail on the state the frame left.
        link.report_node_data(DATA, NOW_MS, object_hash(DATA))
        for event in out.events:
            if isinstance(event, RequestStarted):
                rid = event.request.request_id
                link.send_response_headers(rid, 200, "OK", {}, NOW_MS)
                budget = link.response_budget(rid)
                if budget > 0:
                    link.send_response_data(rid, b"z" * min(budget, 100), NOW_MS)
                if rid in link.open_requests:
                    link.end_response(rid, NOW_MS)
        assert link.response_budget(RID) >= 0
    link.connection_lost()
    assert link.pending() == 0


def test_an_oversized_frame_from_the_hub_closes_the_link():
    link = ParentLink(SIGNER, info(), "hubpass", max_frame_bytes=100)
    link.connection_opened(NOW_MS)
    out = link.receive_frame(json.dumps({"message": "ok", "pad": "x" * 200}), NOW_MS)
    assert out.close and "too large" in out.close_reason


@pytest.mark.parametrize("side", ["hub", "child"])
@pytest.mark.parametrize("value", ["\u0080", None, 1234, True, ["eA=="]])
def test_base64_that_is_not_ascii_text_is_a_clean_refusal(side, value):
    """Found by the fuzzer: `data_base64` with a non-ASCII character raised ValueError in the share.
    A number or null is no base64 text either (1234 and null were once read as their spelling)."""
    if side == "child":
        link = ParentLink(SIGNER, info(), "hubpass")
        link.connection_opened(NOW_MS)
        link.receive_frame(json.dumps(HUB_TEMPLATES[4]), NOW_MS)
        out = link.receive_frame(json.dumps({**HUB_TEMPLATES[5], "data_base64": value}), NOW_MS)
        assert out.close and out.close_reason == "Invalid data_base64"
    else:
        registry = ChildRegistry(HubLimits())
        conn = ChildConnection(HubInfo({"name": "hub"}, passcode="hubpass"), registry, NOW)
        conn.receive_frame(SIGNER.frame(CHILD_TEMPLATES[0], NOW_MS - 5), NOW)
        conn.open_request(RID)
        out = conn.receive_frame(SIGNER.frame({**CHILD_TEMPLATES[7], "data_base64": value}, NOW_MS), NOW)
        assert json.loads(out.replies[0]) == {"error": "Invalid data_base64. Closing websocket."}
