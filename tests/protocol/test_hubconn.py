"""Hub side of a child link: the recorded frames are accepted; every bad frame gets the error and a close."""
from __future__ import annotations

import dataclasses
import json

import pytest

from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import (
    ChildConnection, ChildRegistered, ChildRegistry, ConnectionClosed, HubInfo, HubLimits, IndexRefused,
    NodeDataUpdated, ResponseData, ResponseEnd, ResponseError, ResponseHeaders,
)
from kbtools.protocol.leafconn import register_info
from kbtools.protocol.objecthash import object_hash
from tests.protocol.vectors import child_frames, frames, identity, kbnode

NOW = 1795565400.0  # the recording's time (Nov 2026)
NOW_MS = int(NOW * 1000)
HUB_INFO = {"node_id": "d0d90d53e2d5", "node_type": "hub", "name": "barhub"}


def make_hub(passcode="hubpass", **limits):
    registry = ChildRegistry(HubLimits(**limits))
    return HubInfo(HUB_INFO, passcode=passcode, top_hub_url="http://127.0.0.1:1"), registry


def register_frame(name="share", passcode="hubpass", now_ms=NOW_MS, **info_changes):
    config = kbnode(name)
    info = register_info(config, config["listen_url"], config["node_type"], fast_path=False)
    info.update(info_changes)
    return Signer(identity(name)).frame(
        {"command": "register_child_node", "info": info, "passcode": passcode}, now_ms)


def error_of(outcome):
    assert outcome.close
    assert len(outcome.replies) == 1
    return json.loads(outcome.replies[0])["error"]


def registered(name="share", **limits):
    hub, registry = make_hub(**limits)
    conn = ChildConnection(hub, registry, NOW)
    out = conn.receive_frame(register_frame(name), NOW)
    assert not out.close
    return conn, registry


def test_recorded_child_frames_are_accepted_with_the_recorded_replies():
    hub_replies = {}
    for r in frames():
        f = json.loads(r["frame"])
        if r["dir"] == "hub->child" and f.get("message_type") != "http":
            hub_replies.setdefault(r["conn"], []).append(r["frame"])
    confirm = json.loads(hub_replies[1][1])
    top = json.loads(hub_replies[1][0])["top_hub_url"]
    registry = ChildRegistry()
    hub = HubInfo(confirm["info"], passcode="hubpass", top_hub_url=top)
    conns: dict[int, ChildConnection] = {}
    ours: dict[int, list[str]] = {1: [], 2: []}
    events = []
    for r in child_frames():
        conn = conns.setdefault(r["conn"], ChildConnection(hub, registry, r["t"]))
        msg = json.loads(r["frame"])["message"]
        rid = msg.get("request_id")
        if rid and rid not in conn.credit:
            conn.open_request(rid)
        out = conn.receive_frame(r["frame"], now=r["t"])
        assert not out.close, out.replies
        ours[r["conn"]] += out.replies
        events += out.events
        ack = conn.acknowledge_data()
        if ack:
            ours[r["conn"]].append(ack)
    assert ours == hub_replies
    kinds = {type(e) for e in events}
    assert {ChildRegistered, NodeDataUpdated, ResponseHeaders, ResponseData, ResponseEnd} <= kinds
    assert set(registry.leaves) == {"83bded5ed247"} and set(registry.child_hubs) == {"304421134a4c"}
    leaf = registry.leaves["83bded5ed247"]
    assert "1e7720a3460b8a84ac4ba27880d64526a3872f1c" not in leaf.node_data["files_by_sha1"]


def test_set_top_hub_url_goes_to_child_hubs_only():
    conn, registry = registered("childhub")
    assert conn.node_type == "hub" and registry.child_hubs
    conn.hub.top_hub_url = "http://top:1"
    assert conn.top_hub_url_changed() == ['{"command":"set_top_hub_url","top_hub_url":"http://top:1"}']
    leaf, _ = registered("share")
    assert leaf.top_hub_url_changed() == []


def test_wrong_passcode():
    hub, registry = make_hub()
    conn = ChildConnection(hub, registry, NOW)
    out = conn.receive_frame(register_frame(passcode="nope"), NOW)
    assert error_of(out) == "Incorrect passcode for node barshare. Closing websocket."
    assert isinstance(out.events[-1], ConnectionClosed)
    assert not registry.leaves


def test_no_passcode_hub_accepts_an_empty_one():
    hub, registry = make_hub(passcode="")
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(passcode=""), NOW)
    assert not out.close


def test_duplicate_id():
    conn, registry = registered()
    hub = conn.hub
    second = ChildConnection(hub, registry, NOW)
    out = second.receive_frame(register_frame(now_ms=NOW_MS + 1), NOW)
    assert error_of(out) == ("Error adding leaf: A connected leaf with id=83bded5ed247 already exists.."
                             " Closing websocket.")
    assert registry.leaves["83bded5ed247"] is conn


def test_id_key_mismatch_is_an_error_not_a_crash():
    hub, registry = make_hub()
    outer = json.loads(register_frame())
    outer["node_id"] = "3e483bd811d8"
    out = ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW)
    assert error_of(out) == ("Child node id does not match public key (3e483bd811d8<>83bded5ed247)."
                             " Closing websocket.")


def test_missing_key_is_an_error_not_a_crash():
    hub, registry = make_hub()
    frame = Signer(identity("share")).frame(
        {"command": "report_node_data", "data_nochange": True, "data_hash": "x"}, NOW_MS)
    out = ChildConnection(hub, registry, NOW).receive_frame(frame, NOW)
    assert error_of(out) == "Unable to verify message: no public key received. Closing websocket."


def test_bad_signature_and_network_type():
    hub, registry = make_hub()
    outer = json.loads(register_frame())
    outer["message"]["info"]["name"] = "other"
    out = ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW)
    assert error_of(out) == "Unable to verify message using signature. Closing websocket."
    outer = json.loads(register_frame())
    outer["message"]["network_type"] = "lari"
    out = ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW)
    assert error_of(out) == "network types do not match: lari <> kbucket. Closing websocket."


@pytest.mark.parametrize("change,text", [
    ({"scientific_research": "no"},
     "This system should only be used to share resources for scientific research purposes"),
    ({"confirm_share": "no"}, "Sharing of resources has not been confirmed"),
    ({"node_type": "other"}, "Unexpected child node type: other"),
])
def test_register_field_checks(change, text):
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(**change), NOW)
    assert error_of(out) == text + ". Closing websocket."


def test_stale_and_replayed_timestamps():
    hub, registry = make_hub()
    stale = register_frame(now_ms=NOW_MS - 11 * 60 * 1000)
    out = ChildConnection(hub, registry, NOW).receive_frame(stale, NOW)
    assert error_of(out) == "Stale message: timestamp outside the accepted window. Closing websocket."
    fresh = register_frame()
    first = ChildConnection(hub, registry, NOW)
    assert not first.receive_frame(fresh, NOW).close
    first.connection_lost()
    out = ChildConnection(hub, registry, NOW).receive_frame(fresh, NOW + 1)
    assert error_of(out) == "Replayed registration message. Closing websocket."
    # The window is configurable; None is the original behaviour (no check).
    hub2, registry2 = make_hub(freshness_window=None)
    assert not ChildConnection(hub2, registry2, NOW).receive_frame(stale, NOW).close


def test_leaf_limit():
    conn, registry = registered(max_leaves=1)
    other = ChildConnection(conn.hub, registry, NOW)
    out = other.receive_frame(register_frame("share2"), NOW)
    assert error_of(out) == ("Error adding leaf: Exceeded maximum number of child leaf connections.."
                             " Closing websocket.")


def test_child_hub_limit():
    hub, registry = make_hub(max_child_hubs=0)
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame("childhub"), NOW)
    assert error_of(out).startswith("Error adding child hub: Exceeded maximum number")


def report(name, fields, now_ms=NOW_MS):
    return Signer(identity(name)).frame({"command": "report_node_data", **fields}, now_ms)


def test_report_node_data_rules():
    conn, _ = registered()
    data = {"files_by_sha1": {"aa": {"path": "a.txt", "size": 1}}}
    out = conn.receive_frame(report("share", {"data_delta": {"x": [1]}, "data_hash": "h"}), NOW)
    assert error_of(out) == "Received data_delta, but child_node_data is null.. Closing websocket."
    conn, _ = registered()
    assert conn.receive_frame(report("share", {"data": data, "data_hash": object_hash(data)}), NOW).replies \
        == ['{"message":"ok"}']
    assert conn.receive_frame(report("share", {"data_nochange": True, "data_hash": "x"}), NOW).replies \
        == ['{"message":"ok"}']
    delta = {"files_by_sha1": {"bb": [{"path": "b.txt", "size": 2}]}}
    out = conn.receive_frame(report("share", {"data_delta": delta, "data_hash": "0" * 40}), NOW)
    assert error_of(out) == "Unexpected: node data hash does not match.. Closing websocket."
    conn, _ = registered()
    out = conn.receive_frame(report("share", {"data_hash": "x"}), NOW)
    assert error_of(out) == ("No data, data_delta, or data_nochange field found in message."
                             " Closing websocket.")


def test_unknown_command_after_registration():
    conn, _ = registered()
    out = conn.receive_frame(Signer(identity("share")).frame({"command": "hello"}, NOW_MS), NOW)
    assert error_of(out) == "Unrecognized command: hello. Closing websocket."


def test_node_id_must_stay_the_same():
    conn, _ = registered()
    outer = json.loads(report("share", {"data_nochange": True, "data_hash": "x"}))
    outer["node_id"] = "3e483bd811d8"
    assert error_of(conn.receive_frame(json.dumps(outer), NOW)) == \
        "node_id in message does not match previous messages.. Closing websocket."


@pytest.mark.parametrize("frame", [
    "not json", "[]", "null", "42", '"str"', "{}", '{"node_id": 5}', '{"node_id": "short"}',
    '{"node_id": "83bded5ed247"}', '{"node_id": "83bded5ed247", "public_key": 7}',
    '{"node_id": "83bded5ed247", "public_key": "garbage"}', '{"node_id": ["x"]}',
    '{"node_id": "83bded5ed247", "message": [], "signature": "00"}',
    "\ud800", "{" * 100000, "[" * 100000 + "]" * 100000, b"\x01\x02binary",
])
def test_malformed_frames_get_an_error_and_a_close(frame):
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame(frame, NOW)
    assert out.close and json.loads(out.replies[0])["error"].endswith(". Closing websocket.")


def test_malformed_frames_after_registration():
    conn, _ = registered()
    for fields in ({"command": "report_node_data", "data": [1], "data_hash": "x"},
                   {"command": "report_node_data", "data_delta": "x", "data_hash": "x"},
                   {"command": "http.write_response_data", "message_type": "http", "request_id": "!"}):
        c, _ = registered()
        out = c.receive_frame(Signer(identity("share")).frame(fields, NOW_MS), NOW)
        assert out.close


def test_oversized_frame():
    hub, registry = make_hub(max_frame_bytes=1000)
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(), NOW)
    assert error_of(out) == "Message too large. Closing websocket."


def test_inactivity_timeout():
    conn, registry = registered()
    assert not conn.check_inactivity(NOW + 59).close
    out = conn.check_inactivity(NOW + 60.005)
    assert error_of(out) == ("Closing connection after 60.005 seconds of not receiving a message.."
                             " Closing websocket.")
    assert not registry.leaves


def test_disconnect_mid_response_fails_the_pending_request():
    conn, registry = registered()
    conn.open_request("abcdefgh")
    out = conn.connection_lost("socket closed")
    assert isinstance(out.events[0], ResponseError) and out.events[0].request_id == "abcdefgh"
    assert out.close and out.events[-1] == ConnectionClosed("socket closed")
    assert not registry.leaves


ODD_VALUES = [None, True, 0, -1, 1.5, 1e308, "", "x" * 5000, [], [1, "a"], {}, {"a": {"b": None}}]


@pytest.mark.parametrize("fields", [
    {"command": "register_child_node", "info": {"name": "n"}, "passcode": "hubpass"},
    {"command": "report_node_data", "data": {"files_by_sha1": {}}, "data_hash": "h"},
    {"command": "http.set_response_headers", "status": 200, "status_message": "OK", "headers": {},
     "request_id": "abcdEFGH", "message_type": "http"},
    {"command": "http.write_response_data", "data_base64": "eA==", "request_id": "abcdEFGH",
     "message_type": "http"},
])
def test_signed_frames_with_odd_field_values_never_raise(fields):
    """Every field replaced by every odd value, signed properly: the hub answers, never raises."""
    signer = Signer(identity("share"))
    for key in fields:
        for value in ODD_VALUES:
            conn, _ = registered()
            conn.open_request("abcdEFGH")
            out = conn.receive_frame(signer.frame({**fields, key: value}, NOW_MS), NOW)
            assert out.replies or out.events or out.close
            if out.close:
                assert json.loads(out.replies[0])["error"].endswith(". Closing websocket.")


def test_response_header_values_must_be_strings():
    conn, _ = registered()
    conn.open_request("abcdEFGH")
    frame = Signer(identity("share")).frame(
        {"command": "http.set_response_headers", "status": 200, "status_message": "OK",
         "headers": {"set-cookie": ["a", "b"], "content-length": 5}, "request_id": "abcdEFGH",
         "message_type": "http"}, NOW_MS)
    assert error_of(conn.receive_frame(frame, NOW)) == "Invalid headers. Closing websocket."


def test_node_data_is_kept_compact_and_counted_in_the_index_budget():
    files = {f"{i:040x}": {"path": f"d/f{i}.bin", "size": i} for i in range(2000)}
    data = {"files_by_sha1": files}
    conn, registry = registered(max_index_bytes=200_000)
    out = conn.receive_frame(report("share", {"data": data, "data_hash": object_hash(data)}), NOW)
    assert out.replies == ['{"message":"ok"}']
    assert conn.data.lookup(f"{7:040x}") == ("d/f7.bin", 7)
    assert registry.index_bytes == conn.data.nbytes < 2000 * 60  # not a dict per file
    assert conn.node_data == data
    # Past the bound: an IndexRefused event, the error frame, a close, the budget released.
    conn, registry = registered(max_index_bytes=50_000)
    out = conn.receive_frame(report("share", {"data": data, "data_hash": object_hash(data)}), NOW)
    refused = [e for e in out.events if isinstance(e, IndexRefused)]
    assert refused and refused[0].limit_bytes == 50_000 and refused[0].index_bytes > 50_000
    assert error_of(out).startswith("Index limit reached: this hub holds at most 0.048 MiB of node data")
    assert registry.index_bytes == 0 and conn.data is None and not registry.leaves


def test_a_delta_past_the_index_bound_is_refused():
    conn, registry = registered(max_index_bytes=5_000)
    data = {"files_by_sha1": {}}
    assert not conn.receive_frame(report("share", {"data": data}), NOW).close
    new = {"files_by_sha1": {f"{i:040x}": {"path": "p", "size": i} for i in range(200)}}
    delta = {"files_by_sha1": {k: [v] for k, v in new["files_by_sha1"].items()}}
    out = conn.receive_frame(report("share", {"data_delta": delta, "data_hash": object_hash(new)}), NOW)
    assert error_of(out).startswith("Index limit reached")
    assert registry.index_bytes == 0


# -- timers, credit, acknowledgements, reachability, cancels -------------------------------------------

def signed(fields, name="share"):
    return Signer(identity(name)).frame(fields, NOW_MS)


def response_frame(command, rid="abcdEFGH", **fields):
    return signed({"command": command, "request_id": rid, "message_type": "http", **fields})


def test_inactivity_is_measured_from_the_last_frame_and_closes_once():
    conn, _ = registered()
    assert not conn.check_inactivity(NOW + 60).close
    conn.receive_frame(report("share", {"data_nochange": True, "data_hash": "x"}), NOW + 30)
    assert not conn.check_inactivity(NOW + 89).close
    assert error_of(conn.check_inactivity(NOW + 92)) == (
        "Closing connection after 62 seconds of not receiving a message.. Closing websocket.")
    assert conn.check_inactivity(NOW + 200) == type(conn.check_inactivity(NOW))()
    conn, _ = registered(inactivity_timeout=5)
    assert error_of(conn.check_inactivity(NOW + 5.5)).startswith("Closing connection after 5.5 seconds")


def fast_registered(offer=None, **limits):
    hub, registry = make_hub(**limits)
    conn = ChildConnection(hub, registry, NOW)
    config = kbnode("share")
    info = register_info(config, config["listen_url"], "leaf", data_connections=True)
    if offer is not None:
        info["kbtools_tunnel"] = offer
    out = conn.receive_frame(signed({"command": "register_child_node", "info": info, "passcode": "hubpass"}), NOW)
    assert not out.close
    return conn, registry, out


def test_registration_agrees_on_the_fast_path_cancels_and_data_connections():
    conn, _, out = fast_registered(fast_window=1000)
    assert json.loads(out.replies[-1])["kbtools_tunnel"] == {"version": 1, "window": 1000, "data_connection": 1}
    assert conn.fast_path and conn.fast_cancel and conn.data_connections
    assert out.events == [ChildRegistered("83bded5ed247", "leaf", conn.info, conn.public_key, True)]
    conn, _, out = fast_registered(allow_data_connections=False)
    assert conn.fast_cancel and not conn.data_connections
    assert "data_connection" not in json.loads(out.replies[-1])["kbtools_tunnel"]
    conn, _, _ = fast_registered(offer={"version": 1, "data_connection": 1})  # no cancel: no data connections
    assert conn.fast_path and not conn.fast_cancel and not conn.data_connections
    conn, _, out = fast_registered(allow_fast_path=False)
    assert not conn.fast_path and not conn.fast_cancel and not conn.data_connections
    assert out.events[0].fast_path is False


def test_a_child_hub_gets_no_data_connections():
    hub, registry = make_hub()
    conn = ChildConnection(hub, registry, NOW)
    cfg = kbnode("childhub")
    info = register_info(cfg, cfg["listen_url"], "hub", data_connections=True)
    out = conn.receive_frame(signed({"command": "register_child_node", "info": info, "passcode": "hubpass"},
                                    "childhub"), NOW)
    assert [json.loads(r).get("command") for r in out.replies] == ["set_top_hub_url", "confirm_registration"]
    assert conn.fast_path and not conn.data_connections
    assert "data_connection" not in json.loads(out.replies[-1])["kbtools_tunnel"]


def test_credit_is_granted_for_an_open_fast_request_only():
    conn, _, _ = fast_registered(fast_window=10)
    conn.open_request("abcdEFGH")
    assert conn.grant_credit("abcdEFGH", 0) is None and conn.grant_credit("abcdEFGH", -1) is None
    assert conn.grant_credit("other", 5) is None
    assert conn.grant_credit("abcdEFGH", 5) == b"\x02\x08abcdEFGH\x00\x00\x00\x05"
    assert conn.credit["abcdEFGH"] == 15
    compat, _ = registered()
    compat.open_request("abcdEFGH")
    assert compat.grant_credit("abcdEFGH", 5) is None


def test_only_so_many_cancelled_requests_are_remembered():
    conn, _, _ = fast_registered(fast_window=10)
    for i in range(1025):
        conn.open_request(f"r{i}")
        assert conn.cancel_request(f"r{i}") is not None
    assert len(conn.cancelled) == 1024 and "r0" not in conn.cancelled and "r1" in conn.cancelled
    # data in flight for the forgotten one is a protocol error; for a remembered one it is dropped
    assert not conn.receive_frame(b"\x01\x02r1x", NOW).close
    assert conn.receive_frame(b"\x01\x02r0x", NOW).close


def test_a_closed_connection_cancels_nothing_and_owes_no_ok():
    conn, _, _ = fast_registered()
    conn.open_request("abcdEFGH")
    conn.connection_lost()
    assert conn.cancel_request("abcdEFGH") is None and conn.acknowledge_data() is None
    assert conn.connection_lost().events == [] and conn.receive_frame(b"\x01\x01ax", NOW).replies == []


def test_the_ok_for_response_data_waits_for_the_hub():
    conn, _ = registered()
    conn.open_request("abcdEFGH")
    assert conn.acknowledge_data() is None
    out = conn.receive_frame(response_frame("http.write_response_data", data_base64="eA=="), NOW)
    assert out.replies == [] and out.events == [ResponseData("abcdEFGH", b"x")]
    assert conn.acknowledge_data() == '{"message":"ok"}' and conn.acknowledge_data() is None
    conn, _ = registered(defer_data_ack=False)
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(response_frame("http.write_response_data", data_base64="eA=="), NOW)
    assert out.replies == ['{"message":"ok"}'] and conn.acknowledge_data() is None


def test_response_frames_of_an_unknown_request_are_acknowledged_and_dropped():
    conn, _ = registered()
    out = conn.receive_frame(response_frame("http.write_response_data", data_base64="eA=="), NOW)
    assert out.replies == ['{"message":"ok"}'] and out.events == [] and conn.acknowledge_data() is None


def test_a_response_ends_or_fails_once():
    conn, _ = registered()
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(response_frame("http.set_response_headers", status=200, status_message="OK",
                                            headers={"a": "1"}), NOW)
    assert out.events == [ResponseHeaders("abcdEFGH", 200, "OK", {"a": "1"})] and out.replies == ['{"message":"ok"}']
    out = conn.receive_frame(response_frame("http.end_response"), NOW)
    assert out.events == [ResponseEnd("abcdEFGH")] and "abcdEFGH" not in conn.credit
    assert conn.receive_frame(response_frame("http.end_response"), NOW).events == []
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(response_frame("http.report_error", error="gone"), NOW)
    assert out.events == [ResponseError("abcdEFGH", "gone")] and "abcdEFGH" not in conn.credit


def test_an_end_that_crossed_a_cancel_forgets_the_cancelled_request():
    conn, _, _ = fast_registered(fast_window=10)
    conn.open_request("abcdEFGH")
    conn.cancel_request("abcdEFGH")
    out = conn.receive_frame(response_frame("http.end_response"), NOW)
    assert out.events == [] and "abcdEFGH" not in conn.cancelled
    assert conn.receive_frame(b"\x01\x08abcdEFGHx", NOW).close  # nothing more may come


def test_reachability_is_told_once_and_only_when_promised():
    hub, registry = make_hub()
    assert ChildConnection(hub, registry, NOW).reachability_found(True, "x") == []  # not registered
    conn, _, out = fast_registered()
    assert json.loads(out.replies[-1])["kbtools_reachability"] == {"version": 1}
    assert conn.reachability_found(False, "r" * 400) == [json.dumps(
        {"command": "kbtools_reachability", "reachable": False, "reason": "r" * 300}, separators=(",", ":"))]
    assert conn.reachable is False and conn.reachability_found(True, "x") == [] and conn.reachable is True
    for limits, url in (({"probe_reachability": False}, "http://127.0.0.1:38569"), ({}, "  ")):
        hub, registry = make_hub(**limits)
        conn = ChildConnection(hub, registry, NOW)
        info = register_info(kbnode("share"), url, "leaf", fast_path=False)
        out = conn.receive_frame(signed({"command": "register_child_node", "info": info, "passcode": "hubpass"}), NOW)
        assert "kbtools_reachability" not in json.loads(out.replies[-1])
        assert conn.reachability_found(True, "x") == [] and conn.reachable is True


@pytest.mark.parametrize("ts", [True, "1795565400000", None])
def test_a_timestamp_is_a_number(ts):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from kbtools.protocol.canonical import canonical_json

    hub, registry = make_hub()
    config = kbnode("share")
    info = register_info(config, config["listen_url"], "leaf", fast_path=False)
    share = identity("share")
    message = Signer(share).message({"command": "register_child_node", "info": info, "passcode": "hubpass"},
                                    NOW_MS)
    message["timestamp"] = ts
    text = canonical_json(message)
    signature = share.private_key().sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
    frame = json.dumps({"message": message, "node_id": share.node_id, "signature": signature,
                        "public_key": share.public_pem})
    assert error_of(ChildConnection(hub, registry, NOW).receive_frame(frame, NOW)) == \
        "Invalid timestamp. Closing websocket."


def test_the_freshness_window_holds_both_ways_to_the_millisecond():
    for delta_ms, ok in ((600_000, True), (-600_000, True), (600_001, False), (-600_001, False)):
        hub, registry = make_hub()
        out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(now_ms=NOW_MS + delta_ms), NOW)
        assert out.close is not ok


@pytest.mark.parametrize("node_id,accepted", [("a" * 7, False), ("a" * 65, False), ("a" * 8, True), ("a" * 64, True)])
def test_a_node_id_has_8_to_64_characters(node_id, accepted):
    hub, registry = make_hub()
    outer = json.loads(register_frame())
    outer["node_id"] = node_id
    text = error_of(ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW))
    assert (text == "Invalid node id. Closing websocket.") is not accepted


def test_a_passcode_that_is_not_text_or_an_empty_info_is_refused():
    hub, registry = make_hub()
    config = kbnode("share")
    info = register_info(config, config["listen_url"], "leaf", fast_path=False)
    out = ChildConnection(hub, registry, NOW).receive_frame(
        signed({"command": "register_child_node", "info": info, "passcode": ["hubpass"]}), NOW)
    assert error_of(out) == "Incorrect passcode for node barshare. Closing websocket."
    out = ChildConnection(hub, registry, NOW).receive_frame(
        signed({"command": "register_child_node", "info": {}, "passcode": "hubpass"}), NOW)
    assert error_of(out) == "No info field found in message. Closing websocket."


def test_a_child_hub_needs_no_share_confirmation_and_an_odd_type_is_cut_short():
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame("childhub", confirm_share="no"), NOW)
    assert not out.close
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(node_type="x" * 400), NOW)
    assert error_of(out) == ("Unexpected child node type: " + "x" * 400)[:300] + ". Closing websocket."


def test_a_second_registration_on_the_same_connection_is_refused():
    conn, registry = registered()
    out = conn.receive_frame(register_frame(now_ms=NOW_MS + 5), NOW)
    assert error_of(out) == "Child node is already registered. Closing websocket."
    assert not registry.leaves and conn.node_type == "leaf"


def test_a_refused_duplicate_leaves_the_first_in_place_and_untyped():
    conn, registry = registered()
    second = ChildConnection(conn.hub, registry, NOW)
    second.receive_frame(register_frame(now_ms=NOW_MS + 1), NOW)
    assert second.node_type is None and registry.leaves["83bded5ed247"] is conn
    second.connection_lost()
    assert registry.leaves["83bded5ed247"] is conn


# -- limits, dispatch, budget, replay memory ---------------------------------------------------------------

from types import SimpleNamespace  # noqa: E402

from kbtools.node.identity import node_id_for_public_key  # noqa: E402
from kbtools.protocol import fastpath  # noqa: E402
from kbtools.protocol.hubconn import HubLimits  # noqa: E402
from kbtools.protocol.nodedata import NodeData  # noqa: E402

MIB = 1024 * 1024


def test_the_default_limits_of_docs_hub_md():
    limits = HubLimits()
    assert (limits.max_leaves, limits.max_child_hubs) == (1000, 10)
    assert limits.max_index_bytes == 512 * MIB  # docs/protocol.md: 512 MiB of node data
    registry = ChildRegistry()
    for i in range(10):
        assert registry.add(SimpleNamespace(node_id=f"hub{i:08d}", node_type="hub")) is None
    assert registry.add(SimpleNamespace(node_id="hub99999999", node_type="hub")) == \
        "Error adding child hub: Exceeded maximum number of child hub connections."


def test_child_frames_may_take_64_mib_by_default():
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame("x" * (64 * MIB), NOW)
    assert error_of(out) == "Unable to parse message. Closing websocket."  # read, not refused
    out = ChildConnection(hub, registry, NOW).receive_frame("x" * (64 * MIB + 1), NOW)
    assert error_of(out) == "Message too large. Closing websocket."


def test_a_public_key_that_matches_the_id_but_does_not_load():
    hub, registry = make_hub()
    frame = json.dumps({"node_id": node_id_for_public_key("garbage"), "public_key": "garbage"})
    out = ChildConnection(hub, registry, NOW).receive_frame(frame, NOW)
    assert error_of(out) == "Invalid public key. Closing websocket."


def test_commands_are_dispatched_by_their_exact_name():
    conn, _ = registered()
    out = conn.receive_frame(signed({"command": "zzz"}), NOW)
    assert error_of(out) == "Unrecognized command: zzz. Closing websocket."
    conn, _ = registered()
    out = conn.receive_frame(signed({"message_type": "http"}), NOW)
    assert error_of(out) == "Unrecognized command: None. Closing websocket."
    conn, _ = registered()
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(signed({"command": "http.end_response", "request_id": "abcdEFGH"}), NOW)
    assert error_of(out) == "Unrecognized command: http.end_response. Closing websocket."
    conn, _ = registered()
    out = conn.receive_frame(signed({"command": "x" * 400}), NOW)
    assert error_of(out) == ("Unrecognized command: " + "x" * 400)[:300] + ". Closing websocket."


def test_a_node_id_that_changes_either_way_is_refused():
    for other in ("000000000000", "ffffffffffff"):
        conn, _ = registered()
        outer = json.loads(report("share", {"data_nochange": True, "data_hash": "x"}))
        outer["node_id"] = other
        assert error_of(conn.receive_frame(json.dumps(outer), NOW)) == \
            "node_id in message does not match previous messages.. Closing websocket."


def test_after_a_cancel_only_data_frames_are_dropped():
    for frame in (fastpath.encode_credit("abcdEFGH", 5), fastpath.encode(fastpath.REQUEST_DATA, "abcdEFGH", b"x"),
                  fastpath.encode(fastpath.CANCEL, "abcdEFGH")):
        conn, _, _ = fast_registered(fast_window=10)
        conn.open_request("abcdEFGH")
        conn.cancel_request("abcdEFGH")
        assert error_of(conn.receive_frame(frame, NOW)) == "Unexpected binary frame. Closing websocket."


def test_one_byte_of_credit_is_granted():
    conn, _, _ = fast_registered(fast_window=10)
    conn.open_request("abcdEFGH")
    assert conn.grant_credit("abcdEFGH", 1) == fastpath.encode_credit("abcdEFGH", 1)


def test_a_replayed_register_frame_is_remembered_for_twice_the_window():
    # stamped a whole window ahead of the hub's clock: fresh from NOW to NOW + 1200
    frame = register_frame(now_ms=NOW_MS + 600_000)
    for replay_at in (NOW + 700, NOW + 1200):
        hub, registry = make_hub()
        first = ChildConnection(hub, registry, NOW)
        assert not first.receive_frame(frame, NOW).close
        first.connection_lost()
        out = ChildConnection(hub, registry, replay_at).receive_frame(frame, replay_at)
        assert error_of(out) == "Replayed registration message. Closing websocket."


def test_the_index_budget_holds_exactly_its_limit():
    data = {"files_by_sha1": {f"{i:040x}": {"path": f"d/f{i}.bin", "size": i} for i in range(50)}}
    nbytes = NodeData.from_data(data).nbytes
    conn, registry = registered(max_index_bytes=nbytes)
    assert conn.receive_frame(report("share", {"data": data}), NOW).replies == ['{"message":"ok"}']
    conn, registry = registered(max_index_bytes=nbytes - 1)
    out = conn.receive_frame(report("share", {"data": data}), NOW)
    assert isinstance(out.events[0], IndexRefused) and isinstance(out.events[-1], ConnectionClosed)
    assert out.events[0] == IndexRefused("83bded5ed247", nbytes, 0, nbytes - 1)


def test_a_small_delta_within_the_budget_counts_the_old_data_once():
    data = {"files_by_sha1": {f"{i:040x}": {"path": f"d/f{i}.bin", "size": i} for i in range(50)}}
    nbytes = NodeData.from_data(data).nbytes
    conn, registry = registered(max_index_bytes=nbytes + nbytes // 2)
    assert not conn.receive_frame(report("share", {"data": data}), NOW).close
    new = {"files_by_sha1": {**data["files_by_sha1"], "ff" * 20: {"path": "new", "size": 1}}}
    delta = {"files_by_sha1": {"ff" * 20: [{"path": "new", "size": 1}]}}
    out = conn.receive_frame(report("share", {"data_delta": delta, "data_hash": object_hash(new)}, NOW_MS + 1), NOW)
    assert out.replies == ['{"message":"ok"}'] and registry.index_bytes == conn.data.nbytes


def test_the_refusal_names_the_limit_in_mib():
    conn, registry = registered(max_index_bytes=4096 * MIB)
    registry.index_bytes = 4096 * MIB  # what the other children hold
    out = conn.receive_frame(report("share", {"data": {"files_by_sha1": {}}}), NOW)
    assert error_of(out).startswith("Index limit reached: this hub holds at most 4096 MiB of node data (")
    assert error_of(out).endswith(f" bytes reported, {4096 * MIB} held). Closing websocket.")


def test_inactivity_is_told_to_the_millisecond():
    conn, _ = registered()
    assert error_of(conn.check_inactivity(NOW + 62.50012)).startswith("Closing connection after 62.5 seconds")


@pytest.mark.parametrize("value", [
    HubLimits(), ChildRegistered("n", "leaf", {}, "k", False), NodeDataUpdated("n", NodeData()),
    IndexRefused("n", 1, 2, 3), ResponseHeaders("r", 200, "", {}), ResponseData("r", b""), ResponseEnd("r"),
    ResponseError("r", "e"), ConnectionClosed("c"),
])
def test_limits_and_events_are_values(value):
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.extra = 1  # type: ignore[attr-defined]


def test_a_delta_counts_what_the_other_children_hold():
    data1 = {"files_by_sha1": {f"{i:040x}": {"path": f"a/f{i}", "size": i} for i in range(40)}}
    data2 = {"files_by_sha1": {f"{i:040x}": {"path": f"b/g{i}", "size": i} for i in range(100, 130)}}
    new2 = {"files_by_sha1": {**data2["files_by_sha1"], "ff" * 20: {"path": "new", "size": 1}}}
    delta = {"files_by_sha1": {"ff" * 20: [{"path": "new", "size": 1}]}}
    after = NodeData.from_data(data2)
    after.apply_delta(delta)
    held1 = NodeData.from_data(data1).nbytes
    for limit, fits in ((held1 + after.nbytes, True), (held1 + after.nbytes - 1, False)):
        hub, registry = make_hub(max_index_bytes=limit)
        first, second = ChildConnection(hub, registry, NOW), ChildConnection(hub, registry, NOW)
        assert not first.receive_frame(register_frame("share"), NOW).close
        assert not second.receive_frame(register_frame("share2"), NOW).close
        assert not first.receive_frame(report("share", {"data": data1}), NOW).close
        assert not second.receive_frame(report("share2", {"data": data2}), NOW).close
        out = second.receive_frame(report("share2", {"data_delta": delta, "data_hash": object_hash(new2)},
                                          NOW_MS + 1), NOW)
        assert out.close is not fits
        assert registry.index_bytes == held1 + (after.nbytes if fits else 0)


def test_a_share_is_confirmed_by_yes_only():
    for answer in ("yes!", "z", "Yes"):
        hub, registry = make_hub()
        out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(confirm_share=answer), NOW)
        assert error_of(out) == "Sharing of resources has not been confirmed. Closing websocket."


def test_node_data_can_be_set_and_cleared():
    conn, registry = registered()
    data = {"files_by_sha1": {"ab" * 20: {"path": "p", "size": 1}}}
    conn.node_data = data
    assert conn.node_data == data and registry.index_bytes == conn.data.nbytes > 0
    conn.node_data = None
    assert conn.node_data is None and conn.data is None and registry.index_bytes == 0


def test_each_field_of_a_registration_is_compared_exactly():
    for change, text in (({"scientific_research": "yes!"},
                          "This system should only be used to share resources for scientific research purposes"),
                         ({"confirm_share": "yes "}, "Sharing of resources has not been confirmed")):
        hub, registry = make_hub()
        out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(**change), NOW)
        assert error_of(out) == text + ". Closing websocket."
    hub, registry = make_hub()
    outer = json.loads(register_frame())
    outer["message"]["network_type"] = "aaa"
    out = ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW)
    assert error_of(out) == "network types do not match: aaa <> kbucket. Closing websocket."


def test_a_signature_has_one_spelling():
    hub, registry = make_hub()
    outer = json.loads(register_frame())
    outer["signature"] = outer["signature"].upper()  # bytes.fromhex would take it
    out = ChildConnection(hub, registry, NOW).receive_frame(json.dumps(outer), NOW)
    assert error_of(out) == "Unable to verify message using signature. Closing websocket."


def test_a_wrong_hash_after_a_delta_is_refused_whichever_way_it_sorts():
    for wrong in ("0" * 40, "f" * 40):
        conn, registry = registered()
        data = {"files_by_sha1": {}}
        assert not conn.receive_frame(report("share", {"data": data}), NOW).close
        delta = {"files_by_sha1": {"bb" * 20: [{"path": "b.txt", "size": 2}]}}
        out = conn.receive_frame(report("share", {"data_delta": delta, "data_hash": wrong}, NOW_MS + 1), NOW)
        assert error_of(out) == "Unexpected: node data hash does not match.. Closing websocket."
        assert registry.index_bytes == 0


def test_an_id_is_taken_by_a_leaf_or_a_child_hub_not_both():
    registry = ChildRegistry()
    assert registry.add(SimpleNamespace(node_id="abcdefgh1234", node_type="hub")) is None
    assert registry.add(SimpleNamespace(node_id="abcdefgh1234", node_type="leaf")) == \
        "Error adding leaf: A connected leaf with id=abcdefgh1234 already exists."
    registry = ChildRegistry()
    assert registry.add(SimpleNamespace(node_id="abcdefgh1234", node_type="leaf")) is None
    assert registry.add(SimpleNamespace(node_id="abcdefgh1234", node_type="hub")) == \
        "Error adding child hub: A connected child hub with id=abcdefgh1234 already exists."


def test_an_index_refusal_comes_before_the_failed_requests():
    conn, registry = registered(max_index_bytes=100)
    conn.open_request("abcdEFGH")
    out = conn.receive_frame(report("share", {"data": {"files_by_sha1": {}}}), NOW)
    assert [type(e) for e in out.events] == [IndexRefused, ResponseError, ConnectionClosed]


def test_a_connection_not_yet_registered_grants_no_credit():
    hub, registry = make_hub()
    conn = ChildConnection(hub, registry, NOW)
    conn.open_request("abcdEFGH")
    assert conn.grant_credit("abcdEFGH", 5) is None and conn.cancel_request("abcdEFGH") is None


def test_a_connection_made_without_a_time_counts_from_the_epoch():
    hub, registry = make_hub(inactivity_timeout=5)
    conn = ChildConnection(hub, registry)
    assert error_of(conn.check_inactivity(100.0)).startswith("Closing connection after 100 seconds")


def test_a_clock_that_steps_back_forgets_no_register_frame():
    registry = ChildRegistry()
    assert registry.seen_register("sig", NOW) is False
    assert registry.seen_register("sig", NOW - 10) is True
    assert registry.seen_register("sig", NOW + 1199) is True
    assert registry.seen_register("sig", NOW + 1201) is False  # forgotten after twice the window


def test_a_child_hub_that_disconnects_leaves_the_registry():
    conn, registry = registered("childhub")
    assert set(registry.child_hubs) == {conn.node_id}
    conn.connection_lost()
    assert registry.child_hubs == {} and registry.leaves == {}


@pytest.mark.parametrize("node_type, limit, refusal", [
    ("hub", "max_child_hubs", "Error adding child hub: Exceeded maximum number of child hub connections."),
    ("leaf", "max_leaves", "Error adding leaf: Exceeded maximum number of child leaf connections."),
])
def test_a_large_child_limit_holds_too(node_type, limit, refusal):
    registry = ChildRegistry(HubLimits(**{limit: 300}))
    for i in range(300):
        assert registry.add(SimpleNamespace(node_id=f"{node_type}{i:08d}", node_type=node_type)) is None
    assert registry.add(SimpleNamespace(node_id=f"{node_type}99999999", node_type=node_type)) == refusal


def test_a_child_of_an_unknown_type_must_confirm_sharing_first():
    hub, registry = make_hub()
    out = ChildConnection(hub, registry, NOW).receive_frame(register_frame(node_type="abc", confirm_share="no"), NOW)
    assert error_of(out) == "Sharing of resources has not been confirmed. Closing websocket."


def test_without_a_freshness_window_no_register_frame_is_remembered():
    registry = ChildRegistry(HubLimits(freshness_window=None))
    assert registry.seen_register("sig", NOW) is False and registry.seen_register("sig", NOW) is False
