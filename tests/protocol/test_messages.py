"""Wire messages (kbtools.protocol.messages): each recorded frame parses and writes back byte for byte,
and each malformed frame is refused by its reason."""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from kbtools.protocol.canonical import canonical_json
from kbtools.protocol.errors import LocalProtocolError, RemoteProtocolError
from kbtools.protocol.messages import (
    MAX_CHUNK, ConfirmRegistration, EndRequest, EndResponse, ErrorReply, InitiateRequest, Ok,
    Reachability, RegisterChildNode, ReportError, ReportNodeData, SetResponseHeaders, SetTopHubUrl,
    WriteRequestData, WriteResponseData, loads_envelope, loads_network_json, offers_reachability,
    parse_parent_message, parse_response_message,
)
from tests.protocol.vectors import frames

SIGNER_KEYS = ("timestamp", "node_id", "network_type")  # added to every child message by the signer


def test_every_recorded_hub_frame_parses_and_writes_back_byte_for_byte():
    for r in frames():
        if r["dir"] == "hub->child":
            message = parse_parent_message(json.loads(r["frame"]))
            assert canonical_json(message.to_fields()) == r["frame"]


def test_every_recorded_child_message_writes_back_byte_for_byte():
    for r in frames():
        if r["dir"] != "child->hub":
            continue
        m = {k: v for k, v in json.loads(r["frame"])["message"].items() if k not in SIGNER_KEYS}
        if m.get("message_type") == "http":
            message = parse_response_message(m)
        elif m["command"] == "report_node_data":
            message = ReportNodeData(m["data_hash"], m.get("data"), m.get("data_delta"),
                                     bool(m.get("data_nochange")))
        else:
            message = RegisterChildNode(m["info"], m["passcode"])
        assert canonical_json(message.to_fields()) == canonical_json(m)


# -- parent -> child -------------------------------------------------------------------------------------

def http_frame(command, **fields):
    return {"message_type": "http", "command": command, "request_id": "abcdEFGH", **fields}


def test_an_initiate_request_keeps_what_it_needs():
    m = parse_parent_message(http_frame("http.initiate_request", method="HEAD", path="//id/download/x",
                                        headers={"range": "bytes=0-1"}, query={"a": "1"},
                                        kbtools_data_token="t" * 16))
    assert m == InitiateRequest("abcdEFGH", "HEAD", "id/download/x", {"range": "bytes=0-1"}, {"a": "1"}, "t" * 16)
    m = parse_parent_message(http_frame("http.initiate_request", method="GET", path="p", headers=None,
                                        query=["not", "an", "object"], kbtools_data_token="short"))
    assert m == InitiateRequest("abcdEFGH", "GET", "p", {}, None, None)
    m = parse_parent_message(http_frame("http.initiate_request", method="GET", path="p", kbtools_data_token=5))
    assert m.data_token is None and m.headers == {} and m.query is None


@pytest.mark.parametrize("fields,reason", [
    ({"method": "GET", "path": "p", "headers": ["x"]}, "headers must be an object"),
    ({"method": "GET", "path": 5}, "path must be a string"),
    ({"method": "GET"}, "path must be a string"),
    ({"method": "POST", "path": "p"}, "Unsupported method: POST"),
    ({"path": "p"}, "Unsupported method: None"),
])
def test_a_malformed_initiate_request_is_refused(fields, reason):
    with pytest.raises(RemoteProtocolError) as info:
        parse_parent_message(http_frame("http.initiate_request", **fields))
    assert str(info.value) == reason


@pytest.mark.parametrize("rid", [None, 5, "", "a b", "x" * 65, "é"])
def test_a_request_id_is_1_to_64_ascii_letters_and_digits(rid):
    with pytest.raises(RemoteProtocolError) as info:
        parse_parent_message({"message_type": "http", "command": "http.end_request", "request_id": rid})
    assert str(info.value) == f"Invalid request_id: {rid!r}"
    assert parse_parent_message({"message_type": "http", "command": "http.end_request",
                                 "request_id": "x" * 64}) == EndRequest("x" * 64)


def test_a_long_bad_request_id_is_cut_in_the_refusal():
    with pytest.raises(RemoteProtocolError) as info:
        parse_parent_message({"message_type": "http", "command": "http.end_request", "request_id": "é" * 300})
    assert len(str(info.value)) == 200


def test_request_data_is_strict_base64():
    data = bytes(range(256))
    m = parse_parent_message(http_frame("http.write_request_data", data_base64=base64.b64encode(data).decode()))
    assert m == WriteRequestData("abcdEFGH", data)
    assert parse_parent_message(http_frame("http.write_request_data")) == WriteRequestData("abcdEFGH", b"")
    for bad in ("a", "ab=c", "é", 5):
        with pytest.raises(RemoteProtocolError, match="Invalid data_base64"):
            parse_parent_message(http_frame("http.write_request_data", data_base64=bad))


def test_unknown_http_commands_and_frames_are_none():
    assert parse_parent_message(http_frame("http.later")) is None
    assert parse_parent_message({"command": "later"}) is None
    assert parse_parent_message({"message": "not ok"}) is None
    assert parse_parent_message({}) is None
    with pytest.raises(RemoteProtocolError, match="Frame from hub is not a JSON object"):
        parse_parent_message(["ok"])


def test_an_error_from_the_hub_loses_its_suffix_once():
    assert parse_parent_message({"error": "Invalid passcode. Closing websocket."}) == ErrorReply("Invalid passcode")
    assert parse_parent_message({"error": 5, "command": "x"}) == ErrorReply("5")
    assert ErrorReply("Invalid passcode").to_fields() == {"error": "Invalid passcode. Closing websocket."}


def test_confirm_registration_and_its_kbtools_fields():
    m = parse_parent_message({"command": "confirm_registration", "info": {"name": "h"},
                              "kbtools_tunnel": {"version": 1}, "kbtools_reachability": {"version": 1}})
    assert m == ConfirmRegistration({"name": "h"}, {"version": 1}, {"version": 1})
    assert list(m.to_fields()) == ["command", "info", "kbtools_tunnel", "kbtools_reachability"]
    m = parse_parent_message({"command": "confirm_registration", "info": {}, "kbtools_tunnel": 1,
                              "kbtools_reachability": True})
    assert m == ConfirmRegistration({}, None, None) and list(m.to_fields()) == ["command", "info"]
    with pytest.raises(RemoteProtocolError, match="confirm_registration without info"):
        parse_parent_message({"command": "confirm_registration", "info": "h"})


def test_set_top_hub_url_needs_a_string():
    assert parse_parent_message({"command": "set_top_hub_url", "top_hub_url": ""}) == SetTopHubUrl("")
    with pytest.raises(RemoteProtocolError, match="top_hub_url must be a string"):
        parse_parent_message({"command": "set_top_hub_url"})


def test_the_reachability_report():
    assert parse_parent_message({"command": "kbtools_reachability", "reachable": True, "reason": "ok"}) == \
        Reachability(True, "ok")
    assert parse_parent_message({"command": "kbtools_reachability"}) == Reachability(None, "")
    assert parse_parent_message({"command": "kbtools_reachability", "reachable": False,
                                 "reason": "x" * 400}) == Reachability(False, "x" * 300)
    assert parse_parent_message({"command": "kbtools_reachability", "reachable": None, "reason": 5}) == \
        Reachability(None, "5")
    for bad in (1, 0, "true"):
        with pytest.raises(RemoteProtocolError, match="reachable must be a boolean"):
            parse_parent_message({"command": "kbtools_reachability", "reachable": bad})
    assert Reachability(False, "r").to_fields() == {"command": "kbtools_reachability", "reachable": False,
                                                    "reason": "r"}


def test_the_reachability_offer_is_version_1():
    assert offers_reachability({"kbtools_reachability": {"version": 1}})
    assert offers_reachability({"kbtools_reachability": {"version": 1.0}})
    assert not offers_reachability({"kbtools_reachability": {"version": 2}})
    assert not offers_reachability({"kbtools_reachability": 1}) and not offers_reachability({})
    assert not offers_reachability(None)


def test_ok():
    assert parse_parent_message({"message": "ok"}) == Ok() and Ok().to_fields() == {"message": "ok"}


@pytest.mark.parametrize("args,reason", [
    (("bad id", "GET", "p"), "Invalid request_id: 'bad id'"),
    (("abc", "POST", "p"), "Unsupported method: POST"),
    (("abc", "GET", "/p"), "path must not start with /"),
    (("abc", "GET", 5), "path must not start with /"),
    (("abc", "GET", "p", {}, None, "short"), "Invalid data token"),
    (("abc", "GET", "p", {}, None, "t" * 129), "Invalid data token"),
])
def test_a_request_this_side_may_not_send(args, reason):
    with pytest.raises(LocalProtocolError) as info:
        InitiateRequest(*args)
    assert str(info.value) == reason


def test_initiate_request_fields_in_wire_order():
    assert list(InitiateRequest("abc", "GET", "p", {}, {"q": "1"}, "t" * 128).to_fields()) == [
        "message_type", "command", "method", "path", "query", "headers", "request_id", "kbtools_data_token"]
    assert list(InitiateRequest("abc", "GET", "p").to_fields()) == [
        "message_type", "command", "method", "path", "headers", "request_id"]


# -- child -> parent -------------------------------------------------------------------------------------

def test_report_node_data_carries_exactly_one_form():
    assert ReportNodeData("h", data={}).to_fields() == {"command": "report_node_data", "data": {}, "data_hash": "h"}
    assert ReportNodeData("h", data_delta={"a": [1]}).to_fields() == {
        "command": "report_node_data", "data_delta": {"a": [1]}, "data_hash": "h"}
    assert ReportNodeData("h", nochange=True).to_fields() == {
        "command": "report_node_data", "data_nochange": True, "data_hash": "h"}
    for kwargs in ({}, {"data": {}, "nochange": True}, {"data": {}, "data_delta": {}},
                   {"data_delta": {}, "nochange": True}):
        with pytest.raises(LocalProtocolError, match="exactly one of"):
            ReportNodeData("h", **kwargs)


def test_response_messages_this_side_may_not_send():
    for status in (99, 1000, "200"):
        with pytest.raises(LocalProtocolError, match="Invalid status"):
            SetResponseHeaders("abc", status, "", {})
    assert SetResponseHeaders("abc", 100, "", {}).status == 100
    assert SetResponseHeaders("abc", 999, "", {}).status == 999
    with pytest.raises(LocalProtocolError, match="Invalid request_id"):
        SetResponseHeaders("a-b", 200, "", {})
    assert WriteResponseData("abc", b"x" * MAX_CHUNK).data == b"x" * MAX_CHUNK
    with pytest.raises(LocalProtocolError, match="response chunk larger than 64 KiB"):
        WriteResponseData("abc", b"x" * (MAX_CHUNK + 1))
    with pytest.raises(LocalProtocolError, match="Invalid request_id"):
        WriteResponseData("", b"")
    assert MAX_CHUNK == 64 * 1024


def response(command, **fields):
    return {"command": command, "request_id": "abcdEFGH", "message_type": "http", **fields}


def test_response_headers_as_received():
    m = parse_response_message(response("http.set_response_headers", status=206, status_message=None,
                                        headers={"a": "1", "b": ["2", "3"]}))
    assert m == SetResponseHeaders("abcdEFGH", 206, "", {"a": "1", "b": ["2", "3"]})
    assert parse_response_message(response("http.set_response_headers", status=100, headers={})).status == 100
    assert parse_response_message(response("http.set_response_headers", status=999, headers={})).status == 999


@pytest.mark.parametrize("fields,reason", [
    ({"status": 99, "headers": {}}, "Invalid status"),
    ({"status": 1000, "headers": {}}, "Invalid status"),
    ({"status": True, "headers": {}}, "Invalid status"),
    ({"status": "200", "headers": {}}, "Invalid status"),
    ({"status": 200, "headers": []}, "Invalid headers"),
    ({"status": 200, "headers": {"a": 1}}, "Invalid headers"),
    ({"status": 200, "headers": {"a": "1", "b": ["2", 3]}}, "Invalid headers"),
    ({"status": 200, "headers": {"a": None}}, "Invalid headers"),
])
def test_malformed_response_headers_are_refused(fields, reason):
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_message(response("http.set_response_headers", **fields))
    assert str(info.value) == reason


def test_a_received_chunk_may_be_up_to_16_times_what_is_sent():
    big = b"x" * (16 * MAX_CHUNK)
    m = parse_response_message(response("http.write_response_data", data_base64=base64.b64encode(big).decode()))
    assert m.request_id == "abcdEFGH" and m.data == big and isinstance(m, WriteResponseData)
    with pytest.raises(RemoteProtocolError, match="response chunk too large"):
        parse_response_message(response("http.write_response_data",
                                        data_base64=base64.b64encode(big + b"x").decode()))
    with pytest.raises(RemoteProtocolError, match="Invalid data_base64"):
        parse_response_message(response("http.write_response_data", data_base64="@@"))
    assert parse_response_message(response("http.write_response_data")).data == b""


def test_end_error_and_unknown_responses():
    assert parse_response_message(response("http.end_response")) == EndResponse("abcdEFGH")
    assert parse_response_message(response("http.report_error", error="nope")) == ReportError("abcdEFGH", "nope")
    assert parse_response_message(response("http.report_error")) == ReportError("abcdEFGH", "")
    assert ReportError("abcdEFGH", "nope").to_fields() == {
        "command": "http.report_error", "error": "nope", "request_id": "abcdEFGH", "message_type": "http"}
    with pytest.raises(RemoteProtocolError) as info:
        parse_response_message(response("http.later"))
    assert str(info.value) == "Unrecognized command: http.later"
    with pytest.raises(RemoteProtocolError, match="Invalid request_id"):
        parse_response_message({"command": "http.end_response", "request_id": "a b"})


# -- JSON text from the network --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ['{"a": NaN}', '[Infinity]', '[-Infinity]', '["\\ud800"]', '{"\\udfff": 1}',
                                  b'["\\ud800"]', '["ok", "\\ud83d"]'])
def test_network_json_is_strict_and_valid_unicode(text):
    with pytest.raises(ValueError):
        loads_network_json(text)


def test_network_json_takes_escaped_pairs_and_raw_text():
    assert loads_network_json('["\\ud83d\\ude00", "\\u00e9", "é"]') == ["😀", "é", "é"]
    assert loads_network_json(b'["\\ud83d\\ude00"]') == ["😀"]
    assert loads_network_json('{"a": "back\\\\slash\\n"}') == {"a": "back\\slash\n"}


def test_an_envelope_gives_the_message_text_as_it_came():
    assert loads_envelope('{"message":{"a":1}}') == ({"message": {"a": 1}}, '{"a":1}')
    assert loads_envelope('{"message":{"b":2,"a":1},"signature":"00","node_id":"n"}') == (
        {"message": {"b": 2, "a": 1}, "signature": "00", "node_id": "n"}, '{"b":2,"a":1}')
    assert loads_envelope('{"message":5,"x":[1]}') == ({"message": 5, "x": [1]}, "5")
    assert loads_envelope('{"message":{"e":"\\u00e9"},"s":"\\u00e9"}') == (
        {"message": {"e": "é"}, "s": "é"}, '{"e":"\\u00e9"}')


@pytest.mark.parametrize("text", ['{"message":{"a":"\\ud800"},"signature":"00"}',
                                  '{"message":{"a":1},"signature":"\\ud800"}',
                                  '{"message":{"a":NaN}}', '{"message":{"a":1},"s":Infinity}',
                                  '{"message":{"a":1}', '{"message":{"a":1}]'])
def test_an_envelope_that_is_not_valid_json_is_refused(text):
    with pytest.raises(ValueError):
        loads_envelope(text)


def test_an_envelope_in_another_form_reads_as_json_reads_it():
    assert loads_envelope('{"signature":"00","message":{"a":1}}') == (
        {"signature": "00", "message": {"a": 1}}, None)
    assert loads_envelope('{"message":{"a":1},"message":{"a":2}}') == ({"message": {"a": 2}}, None)
    assert loads_envelope('{"message":{"a":1} }') == ({"message": {"a": 1}}, None)


def test_commands_are_matched_exactly():
    for cmd in ("http.a", "http.z", "http.end_requestx", "http.end"):
        assert parse_parent_message(http_frame(cmd)) is None
        with pytest.raises(RemoteProtocolError, match="Unrecognized command"):
            parse_response_message(response(cmd))


def test_commands_parsed_from_json_text():
    # a command read from a frame is a new string object, never the constant of the code
    assert parse_parent_message(json.loads('{"command": "kbtools_reachability", "reachable": true}')) == \
        Reachability(True, "")
    assert parse_parent_message(json.loads('{"command": "set_top_hub_url", "top_hub_url": "u"}')) == \
        SetTopHubUrl("u")


def test_the_reachability_offer_below_version_1_is_not_one():
    assert not offers_reachability({"kbtools_reachability": {"version": 0}})


@pytest.mark.parametrize("message", [
    ConfirmRegistration({}), Reachability(True), SetTopHubUrl("u"), Ok(), ErrorReply("e"),
    InitiateRequest("abc", "GET", "p"), WriteRequestData("abc", b""), EndRequest("abc"),
    RegisterChildNode({}, ""), ReportNodeData("h", nochange=True), SetResponseHeaders("abc", 200, "", {}),
    WriteResponseData("abc", b""), EndResponse("abc"), ReportError("abc", "e"),
])
def test_messages_are_values(message):
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.extra = 1  # type: ignore[attr-defined]
