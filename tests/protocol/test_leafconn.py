"""The child side of the link (kbtools.protocol.leafconn), frame by frame: what the hub's frames
do to it and what it sends, on the compatible path and on the fast path."""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from kbtools.protocol import fastpath
from kbtools.protocol.envelope import Signer
from kbtools.protocol.errors import LocalProtocolError
from kbtools.protocol.leafconn import (
    CreditGranted, HubError, LinkState, ParentLink, Reached, Registered, RequestBody, RequestCancelled,
    RequestEnded, RequestStarted, TopHubUrl, register_info,
)
from kbtools.protocol.messages import InitiateRequest
from kbtools.protocol.objecthash import object_hash
from tests.protocol.vectors import identity, kbnode

NOW_MS = 1795565400000
RID = "abcdEFGH"
KIB64 = 64 * 1024
MIB = 1024 * 1024


def new_link(fast=True, data=False, max_frame_bytes=64 * MIB):
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")),
                      register_info(cfg, cfg["listen_url"], "leaf", fast_path=fast, data_connections=data),
                      "hubpass", max_frame_bytes)
    link.connection_opened(NOW_MS)
    return link


def confirm(link, tunnel=None, reach=None):
    frame = {"command": "confirm_registration", "info": {"name": "h"}}
    if tunnel is not None:
        frame["kbtools_tunnel"] = tunnel
    if reach is not None:
        frame["kbtools_reachability"] = reach
    return link.receive_frame(json.dumps(frame), NOW_MS)


def registered(fast=True, window=1000, data=False):
    link = new_link(fast, data)
    confirm(link, {"version": 1, "window": window, **({"data_connection": 1} if data else {})} if fast else None)
    return link


def initiate(link, rid=RID):
    frame = {"message_type": "http", "command": "http.initiate_request", "method": "GET", "path": "x",
             "headers": {}, "request_id": rid}
    return link.receive_frame(json.dumps(frame), NOW_MS)


def message(frame):
    return json.loads(frame)["message"]


# -- the register info -----------------------------------------------------------------------------------

def test_register_info_in_the_original_key_order():
    cfg = kbnode("share")
    info = register_info(cfg, "http://s", "leaf", fast_path=False)
    assert list(info) == ["listen_url", "name", "node_type", "kbnode_type", "scientific_research", "description",
                          "owner", "owner_email", "confirm_share", "kbtools_reachability"]
    assert info["kbnode_type"] == "share" and info["confirm_share"] == "yes" and info["name"] == "barshare"
    assert info["kbtools_reachability"] == {"version": 1}
    hub = register_info({}, "http://h", "hub")
    assert hub == {"listen_url": "http://h", "name": "", "node_type": "hub", "kbnode_type": "hub",
                   "scientific_research": "", "description": "", "owner": "", "owner_email": "",
                   "kbtools_tunnel": {"version": 1, "cancel": True}}
    assert register_info({}, "", "leaf", fast_path=False) == {
        "listen_url": "", "name": "", "node_type": "leaf", "kbnode_type": "share", "scientific_research": "",
        "description": "", "owner": "", "owner_email": "", "confirm_share": ""}
    assert register_info({}, "http://s", "leaf", data_connections=True)["kbtools_tunnel"] == {
        "version": 1, "cancel": True, "data_connection": 1}


# -- registration ----------------------------------------------------------------------------------------

def test_the_register_frame_is_signed_and_carries_the_info_and_passcode():
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(cfg, "http://s", "leaf"), "pass")
    assert link.state is LinkState.IDLE and not link.registered
    frames = link.connection_opened(NOW_MS)
    assert len(frames) == 1 and link.state is LinkState.REGISTERING and link.pending() == 0
    m = message(frames[0])
    assert m["command"] == "register_child_node" and m["passcode"] == "pass" and m["info"] == link.info
    assert m["timestamp"] == NOW_MS


def test_a_confirmation_with_a_window_agrees_on_the_fast_path():
    link = new_link(data=True)
    out = confirm(link, {"version": 1, "window": 1000, "data_connection": 1}, {"version": 1})
    assert out.events == [Registered({"name": "h"}, True, True)] and not out.close
    assert link.registered and link.fast_path and link.window == 1000 and link.data_connections
    assert link.parent_info == {"name": "h"}


@pytest.mark.parametrize("tunnel", [None, {"version": 2, "window": 1000}, {"version": 0, "window": 1000},
                                    {"version": 1},
                                    {"version": 1, "window": 0}, {"version": 1, "window": -5},
                                    {"version": 1, "window": "1000"}, {"version": 1, "window": 1.5}])
def test_no_fast_path_without_version_1_and_a_positive_window(tunnel):
    link = new_link()
    out = confirm(link, tunnel)
    assert out.events == [Registered({"name": "h"}, False, False)]
    assert not link.fast_path and not link.data_connections


def test_the_fast_path_with_any_positive_window_and_version_1_as_a_json_number():
    for tunnel in ({"version": 1, "window": 1}, {"version": 1.0, "window": 1000}):
        link = new_link()
        assert confirm(link, tunnel).events == [Registered({"name": "h"}, True, False)]
        assert link.fast_path and link.window == tunnel["window"]


def test_no_fast_path_when_this_side_did_not_offer_it():
    link = new_link(fast=False)
    assert confirm(link, {"version": 1, "window": 1000}).events == [Registered({"name": "h"}, False, False)]
    assert not link.fast_path


def test_data_connections_need_both_offers():
    link = new_link(data=False)
    confirm(link, {"version": 1, "window": 1000, "data_connection": 1})
    assert link.fast_path and not link.data_connections
    link = new_link(data=True)
    confirm(link, {"version": 1, "window": 1000})
    assert link.fast_path and not link.data_connections


def test_the_reachability_report_is_pending_only_when_offered_and_promised():
    assert confirm(new_link(), None, {"version": 1}).events[0].reachability_pending
    assert not confirm(new_link(), None, None).events[0].reachability_pending
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(cfg, "", "leaf"), "hubpass")
    link.connection_opened(NOW_MS)
    assert not confirm(link, None, {"version": 1}).events[0].reachability_pending


def test_a_confirmation_without_a_register_closes_the_link():
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(cfg, "http://s", "leaf"), "hubpass")
    out = confirm(link)
    assert out.close and out.close_reason == "Unexpected confirm_registration in state idle"


def test_a_lost_connection_forgets_everything_and_the_next_one_registers_again():
    link = registered(data=True)
    initiate(link)
    assert link.data_connections
    link.connection_lost()
    assert link.state is LinkState.IDLE and not link.fast_path and link.open_requests == set()
    assert not link.data_connections
    assert link.parent_info is None and link.credit == {}
    assert link.report_node_data({}, NOW_MS) == []
    assert message(link.connection_opened(NOW_MS)[0])["command"] == "register_child_node"


# -- frames from the hub ---------------------------------------------------------------------------------

def test_a_hub_error_is_an_event_and_may_be_permanent():
    out = new_link().receive_frame('{"error":"Incorrect passcode for node x. Closing websocket."}', NOW_MS)
    assert out.events == [HubError("Incorrect passcode for node x")] and not out.close
    assert out.events[0].permanent
    for text in ("This system should only be used to share resources for scientific research purposes",
                 "Sharing of resources has not been confirmed", "Child node id does not match public key"):
        assert HubError(text).permanent
    assert not HubError("Error adding leaf: Exceeded maximum number of child leaf connections.").permanent


def test_frames_too_large_or_not_json_close_the_link():
    link = new_link(max_frame_bytes=20)
    assert not link.receive_frame('{"message":    "ok"}', NOW_MS).close  # 20 characters
    out = link.receive_frame('{"message":     "ok"}', NOW_MS)
    assert out.close and out.close_reason == "Message from hub too large"
    out = new_link().receive_frame("{nope", NOW_MS)
    assert out.close and out.close_reason == "Unable to parse message from hub"
    out = new_link().receive_frame("[1]", NOW_MS)
    assert out.close and out.close_reason == "Frame from hub is not a JSON object"
    out = new_link().receive_frame('{"command": "dance"}', NOW_MS)
    assert out.close and out.close_reason == "Unexpected command: dance. Closing websocket."


def test_the_top_hub_url():
    link = registered()
    out = link.receive_frame('{"command":"set_top_hub_url","top_hub_url":"http://top"}', NOW_MS)
    assert out.events == [TopHubUrl("http://top")] and link.top_hub_url == "http://top"


def test_a_request_opens_with_the_window_as_credit():
    link = registered(window=1000)
    out = initiate(link)
    assert out.events == [RequestStarted(InitiateRequest(RID, "GET", "x", {}, None))]
    assert link.credit == {RID: 1000} and link.response_budget(RID) == 1000
    compat = registered(fast=False)
    initiate(compat)
    assert compat.credit == {} and compat.response_budget(RID) == 4 * KIB64


def test_request_body_and_end_only_for_an_open_request():
    link = registered(fast=False)
    initiate(link)
    body = {"message_type": "http", "command": "http.write_request_data", "data_base64": "eA==",
            "request_id": RID}
    assert link.receive_frame(json.dumps(body), NOW_MS).events == [RequestBody(RID, b"x")]
    end = {"message_type": "http", "command": "http.end_request", "request_id": RID}
    assert link.receive_frame(json.dumps(end), NOW_MS).events == [RequestEnded(RID)]
    for frame in (body, end):
        out = link.receive_frame(json.dumps({**frame, "request_id": "other"}), NOW_MS)
        assert out.events == [] and not out.close


def test_the_reachability_report_is_an_event_that_does_not_release_the_queue():
    link = registered(fast=False)
    assert len(link.report_node_data({"a": 1}, NOW_MS)) == 1  # sent: now waiting for the hub's ok
    initiate(link)
    assert link.send_response_headers(RID, 200, "OK", {}, NOW_MS) != []
    assert link.end_response(RID, NOW_MS) == [] and link.pending() == 1
    out = link.receive_frame('{"command":"kbtools_reachability","reachable":false,"reason":"timeout"}', NOW_MS)
    assert out.events == [Reached(False, "timeout")] and out.send == [] and link.pending() == 1
    out = link.receive_frame('{"message":"ok"}', NOW_MS)
    assert out.events == [] and len(out.send) == 1 and link.pending() == 0


# -- binary frames ---------------------------------------------------------------------------------------

def test_binary_frames_need_the_fast_path():
    out = registered(fast=False).receive_frame(fastpath.encode_credit(RID, 5), NOW_MS)
    assert out.close and out.close_reason == "Unexpected binary frame from hub"


def test_credit_adds_to_an_open_request_only():
    link = registered(window=1000)
    initiate(link)
    assert link.receive_frame(fastpath.encode_credit(RID, 500), NOW_MS).events == [CreditGranted(RID, 500)]
    assert link.credit[RID] == 1500 and link.response_budget(RID) == 1500
    out = link.receive_frame(fastpath.encode_credit("other", 7), NOW_MS)
    assert out.events == [CreditGranted("other", 7)] and "other" not in link.credit
    out = link.receive_frame(fastpath.encode(fastpath.CREDIT, RID, b"\x00"), NOW_MS)
    assert out.close and out.close_reason == "Invalid credit frame"


def test_request_data_for_an_open_request_only():
    link = registered()
    initiate(link)
    assert link.receive_frame(fastpath.encode(fastpath.REQUEST_DATA, RID, b"body"), NOW_MS).events == [
        RequestBody(RID, b"body")]
    out = link.receive_frame(fastpath.encode(fastpath.REQUEST_DATA, "other", b"body"), NOW_MS)
    assert out.close and out.close_reason == "Unexpected binary frame from hub"


def test_response_data_from_the_hub_closes_and_a_later_type_is_ignored():
    link = registered()
    initiate(link)
    out = link.receive_frame(fastpath.encode(fastpath.RESPONSE_DATA, RID, b"x"), NOW_MS)
    assert out.close and out.close_reason == "Unexpected binary frame from hub"
    out = link.receive_frame(b"\x09\x01ab", NOW_MS)
    assert not out.close and out.events == [] and out.send == []
    out = link.receive_frame(b"\x01", NOW_MS)
    assert out.close and out.close_reason == "Invalid binary frame"


def test_a_cancel_before_any_data_counts_nothing_sent():
    link = registered()
    initiate(link)
    assert link.receive_frame(fastpath.encode(fastpath.CANCEL, RID), NOW_MS).events == [RequestCancelled(RID, 0)]


def test_a_cancel_for_no_open_request_is_ignored():
    link = registered()
    out = link.receive_frame(fastpath.encode(fastpath.CANCEL, RID), NOW_MS)
    assert out.events == [] and not out.close


def test_a_cancel_counts_what_left_and_drops_what_waits():
    link = registered(window=10 * MIB)
    initiate(link)
    link.send_response_headers(RID, 200, "OK", {}, NOW_MS)  # a text frame: the turn is the hub's
    assert link.report_node_data({}, NOW_MS) == []  # waits for the hub's ok, and the data behind it
    assert link.send_response_data(RID, b"a" * 100, NOW_MS) == []
    assert link.pending() == 2
    out = link.receive_frame(fastpath.encode(fastpath.CANCEL, RID), NOW_MS)
    assert out.events == [RequestCancelled(RID, 0)] and link.pending() == 1
    link = registered(window=10 * MIB)
    initiate(link)
    assert len(link.send_response_data(RID, b"a" * 300, NOW_MS)) == 1  # binary: sent at once
    out = link.receive_frame(fastpath.encode(fastpath.CANCEL, RID), NOW_MS)
    assert out.events == [RequestCancelled(RID, 300)]
    assert link.response_budget(RID) == 0 and RID not in link.credit and RID not in link.open_requests


# -- sending ---------------------------------------------------------------------------------------------

def test_reports_say_nochange_when_the_hash_is_the_same():
    link = registered(fast=False)
    data = {"files_by_sha1": {}}
    first = message(link.report_node_data(data, NOW_MS)[0])
    assert first["data"] == data and first["data_hash"] == object_hash(data)
    link.receive_frame('{"message":"ok"}', NOW_MS)
    second = message(link.report_node_data({"files_by_sha1": {}}, NOW_MS)[0])
    assert second["data_nochange"] is True and "data" not in second
    link.receive_frame('{"message":"ok"}', NOW_MS)
    third = message(link.report_node_data({"x": 1}, NOW_MS, data_hash="given")[0])
    assert third["data_hash"] == "given" and third["data"] == {"x": 1}


def test_the_compatible_budget_is_four_frames_less_those_waiting():
    link = registered(fast=False)
    initiate(link)
    link.send_response_headers(RID, 200, "OK", {}, NOW_MS)  # sent; the next text frames wait
    assert link.response_budget(RID) == 4 * KIB64
    link.send_response_data(RID, b"x" * (KIB64 + 1), NOW_MS)  # two frames waiting
    assert link.pending() == 2 and link.response_budget(RID) == 2 * KIB64
    link.send_response_data(RID, b"x" * (3 * KIB64), NOW_MS)
    assert link.pending() == 5 and link.response_budget(RID) == 0
    assert link.response_budget("other") == 0


def test_compatible_chunks_are_64_kib_each_sent_in_turn():
    link = registered(fast=False)
    initiate(link)
    first = link.send_response_data(RID, bytes(range(256)) * 512, NOW_MS)  # 2 x 64 KiB
    assert len(first) == 1 and link.pending() == 1
    second = link.receive_frame('{"message":"ok"}', NOW_MS).send
    assert len(second) == 1 and link.pending() == 0
    data = b"".join(base64.b64decode(message(f)["data_base64"]) for f in first + second)
    assert data == bytes(range(256)) * 512


def test_fast_data_goes_in_frames_of_at_most_1_mib_within_the_credit():
    link = registered(window=3 * MIB)
    initiate(link)
    frames = link.send_response_data(RID, b"x" * (2 * MIB + 5), NOW_MS)
    assert [len(fastpath.decode(f).payload) for f in frames] == [MIB, MIB, 5]
    assert link.response_budget(RID) == MIB - 5 and link.sent[RID] == 2 * MIB + 5
    with pytest.raises(LocalProtocolError, match="exceeds the flow-control credit"):
        link.send_response_data(RID, b"x" * (MIB - 4), NOW_MS)
    assert link.send_response_data(RID, b"x" * (MIB - 5), NOW_MS) and link.response_budget(RID) == 0


@pytest.mark.parametrize("error", [None, "boom"])
def test_end_and_error_close_the_request(error):
    link = registered()
    initiate(link)
    link.send_response_data(RID, b"x", NOW_MS)
    frames = link.end_response(RID, NOW_MS) if error is None else link.report_error(RID, error, NOW_MS)
    sent = message(frames[0])
    assert sent["request_id"] == RID and sent.get("error") == error
    assert sent["command"] == ("http.end_response" if error is None else "http.report_error")
    assert RID not in link.open_requests and RID not in link.credit and RID not in link.sent
    with pytest.raises(LocalProtocolError, match=f"no open request {RID}"):
        link.send_response_headers(RID, 200, "OK", {}, NOW_MS)


def test_a_frame_type_of_a_later_version_never_cancels_an_open_request():
    link = registered()
    initiate(link)
    for kind in (5, 9, 255):
        out = link.receive_frame(bytes((kind,)) + b"\x08" + RID.encode(), NOW_MS)
        assert out.events == [] and not out.close
    assert RID in link.open_requests


def test_frames_from_the_hub_may_take_64_mib_by_default():
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(cfg, cfg["listen_url"], "leaf"), "hubpass")
    link.connection_opened(NOW_MS)
    padded = '{"message":"ok","pad":"' + "x" * (2 * MIB) + '"}'
    assert not link.receive_frame(padded, NOW_MS).close
    out = link.receive_frame("x" * (64 * MIB + 1), NOW_MS)
    assert out.close and out.close_reason == "Message from hub too large"


@pytest.mark.parametrize("event", [Registered({}, True), Reached(True, ""), TopHubUrl("u"), HubError("e"),
                                   RequestBody(RID, b""), RequestEnded(RID), CreditGranted(RID, 1),
                                   RequestCancelled(RID, 0), RequestStarted(InitiateRequest(RID, "GET", "x"))])
def test_link_events_are_values(event):
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.extra = 1  # type: ignore[attr-defined]


def test_a_hub_frame_that_breaks_the_parser_closes_the_link():
    out = registered().receive_frame("[" * 100_000 + "]" * 100_000, NOW_MS)
    assert out.close and out.close_reason == "Invalid message from hub (RecursionError)"


def test_a_frame_just_under_the_default_limit_is_read():
    cfg = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(cfg, cfg["listen_url"], "leaf"), "hubpass")
    out = link.receive_frame("x" * (64 * MIB), NOW_MS)
    assert out.close and out.close_reason == "Unable to parse message from hub"  # read, not refused


def test_the_node_type_as_configured():
    cfg = kbnode("share")  # parsed from kbnode.json: its strings are not the literals of the code
    info = register_info(cfg, "http://s", cfg["node_type"])
    assert info["kbnode_type"] == "share" and info["confirm_share"] == "yes"
    assert info["kbtools_reachability"] == {"version": 1}


def test_a_cancel_subtracts_exactly_the_payload_of_each_frame_still_waiting():
    link = registered(window=10 * MIB)
    initiate(link)
    assert len(link.send_response_data(RID, b"a" * 200, NOW_MS)) == 1  # sent at once
    link.send_response_headers(RID, 200, "OK", {}, NOW_MS)
    link.report_node_data({}, NOW_MS)  # waits behind the headers' turn, and the data behind it
    assert link.send_response_data(RID, b"b" * 300, NOW_MS) == []
    out = link.receive_frame(fastpath.encode(fastpath.CANCEL, RID), NOW_MS)
    assert out.events == [RequestCancelled(RID, 200)]


def test_a_request_opened_before_a_later_confirmation_has_no_credit():
    link = new_link()
    confirm(link)  # the compatible path
    initiate(link)
    confirm(link, {"version": 1, "window": 1000})  # a repeated confirmation agrees on it now
    assert link.fast_path and link.response_budget(RID) == 0
    with pytest.raises(LocalProtocolError, match="exceeds the flow-control credit"):
        link.send_response_data(RID, b"x", NOW_MS)
