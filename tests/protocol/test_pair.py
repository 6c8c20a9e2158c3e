"""A hub core and a leaf core joined in memory: register, report, tunnel a request (both tunnel paths)."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from kbtools.protocol import fastpath
from kbtools.protocol.envelope import Signer
from kbtools.protocol.errors import LocalProtocolError
from kbtools.protocol.hubconn import (
    ChildConnection, ChildRegistered, ChildRegistry, HubInfo, HubLimits, NodeDataUpdated,
    ResponseData, ResponseEnd, ResponseHeaders,
)
from kbtools.protocol.leafconn import (
    HubError, ParentLink, Registered, RequestCancelled, RequestEnded, RequestStarted, register_info,
)
from kbtools.protocol.objecthash import object_hash
from kbtools.protocol.routing import decode_tunnel_path, new_request_id, tunnel_request_frames
from tests.protocol.vectors import identity, kbnode

NOW = 1795565400.0
NOW_MS = int(NOW * 1000)


class Pair:
    """Frames in flight between one hub connection and one leaf link, delivered on `pump()`."""

    def __init__(self, fast: bool, window: int = 256 * 1024) -> None:
        self.registry = ChildRegistry(HubLimits(fast_window=window, allow_fast_path=fast))
        self.hub = ChildConnection(HubInfo({"node_id": "d0d90d53e2d5", "name": "barhub"}, "hubpass"),
                                   self.registry, NOW)
        config = kbnode("share")
        self.leaf = ParentLink(Signer(identity("share")),
                               register_info(config, config["listen_url"], "leaf", fast_path=True),
                               "hubpass")
        self.to_hub: list = []
        self.to_leaf: list = []
        self.hub_events: list = []
        self.leaf_events: list = []
        self.body = bytearray()
        self.max_leaf_queue = 0

    def pump(self) -> None:
        while self.to_hub or self.to_leaf:
            while self.to_hub:
                out = self.hub.receive_frame(self.to_hub.pop(0), NOW)
                assert not out.close, out.replies
                self.to_leaf += out.replies
                for ev in out.events:
                    self.hub_events.append(ev)
                    if isinstance(ev, ResponseData):
                        self.body += ev.data  # the HTTP client took it: ack / grant credit
                        ack = self.hub.acknowledge_data()
                        if ack:
                            self.to_leaf.append(ack)
                        credit = self.hub.grant_credit(ev.request_id, len(ev.data))
                        if credit:
                            self.to_leaf.append(credit)
            while self.to_leaf:
                out = self.leaf.receive_frame(self.to_leaf.pop(0), NOW_MS)
                assert not out.close, out.close_reason
                self.to_hub += out.send
                self.leaf_events += out.events
            self.max_leaf_queue = max(self.max_leaf_queue, self.leaf.pending())

    def registered_with_request(self, rid: str, path: str) -> None:
        """Register the leaf, then tunnel a GET of `path` to it as request `rid`."""
        self.to_hub += self.leaf.connection_opened(NOW_MS)
        self.pump()
        self.hub.open_request(rid)
        self.to_leaf += tunnel_request_frames(rid, "GET", path, {})
        self.pump()


@pytest.mark.parametrize("fast", [False, True])
def test_register_report_and_tunnel(fast):
    pair = Pair(fast)
    pair.to_hub += pair.leaf.connection_opened(NOW_MS)
    pair.pump()
    reg = [e for e in pair.leaf_events if isinstance(e, Registered)]
    assert reg and reg[0].fast_path is fast and reg[0].parent_info["name"] == "barhub"
    assert [e for e in pair.hub_events if isinstance(e, ChildRegistered)][0].fast_path is fast

    data = {"files_by_sha1": {"aa" * 20: {"path": "big.bin", "size": 300000}}}
    pair.to_hub += pair.leaf.report_node_data(data, NOW_MS)
    pair.pump()
    pair.to_hub += pair.leaf.report_node_data(data, NOW_MS)
    pair.pump()
    updates = [e for e in pair.hub_events if isinstance(e, NodeDataUpdated)]
    assert len(updates) == 1 and updates[0].data == data
    assert object_hash(pair.hub.node_data) == object_hash(data)

    rid = new_request_id()
    pair.hub.open_request(rid)
    pair.to_leaf += tunnel_request_frames(rid, "GET", "83bded5ed247/download/sp ace/f #1.txt",
                                          {"Range": "bytes=0-9", "Cookie": "secret", "host": "h"})
    pair.pump()
    started = [e for e in pair.leaf_events if isinstance(e, RequestStarted)][0].request
    assert started.path == "83bded5ed247/download/sp%20ace/f%20%231.txt"
    assert decode_tunnel_path(started.path) == "83bded5ed247/download/sp ace/f #1.txt"
    assert "cookie" not in started.headers and started.headers["range"] == "bytes=0-9"
    assert any(isinstance(e, RequestEnded) for e in pair.leaf_events)

    payload = os.urandom(1_000_000)
    pair.to_hub += pair.leaf.send_response_headers(rid, 200, "OK", {"content-length": str(len(payload))},
                                                   NOW_MS)
    sent = 0
    while sent < len(payload):
        budget = pair.leaf.response_budget(rid)
        if budget == 0:
            pair.pump()
            continue
        chunk = payload[sent:sent + min(budget, 100_000)]
        pair.to_hub += pair.leaf.send_response_data(rid, chunk, NOW_MS)
        sent += len(chunk)
    pair.to_hub += pair.leaf.end_response(rid, NOW_MS)
    pair.pump()
    assert hashlib.sha1(pair.body).digest() == hashlib.sha1(payload).digest()
    assert isinstance([e for e in pair.hub_events if isinstance(e, ResponseHeaders)][0], ResponseHeaders)
    assert isinstance(pair.hub_events[-1], ResponseEnd)
    # Bounded memory: the leaf never held more than a few frames.
    assert pair.max_leaf_queue <= 8
    if fast:
        binary = [f for f in pair.to_hub if isinstance(f, bytes)]
        assert not binary  # all delivered


def test_polite_alternation_queues_until_a_frame_arrives():
    pair = Pair(False)
    first = pair.leaf.connection_opened(NOW_MS)
    assert len(first) == 1
    # Registration not confirmed yet: no report is made.
    assert pair.leaf.report_node_data({"files_by_sha1": {}}, NOW_MS) == []
    pair.to_hub += first
    pair.pump()
    a = pair.leaf.report_node_data({"files_by_sha1": {}}, NOW_MS)
    b = pair.leaf.report_node_data({"files_by_sha1": {"x": {"path": "p", "size": 1}}}, NOW_MS)
    assert len(a) == 1 and b == [] and pair.leaf.pending() == 1
    # While that report waits, further reports are not queued (a silent hub cannot grow the queue).
    assert pair.leaf.report_node_data({"files_by_sha1": {"y": {"path": "q", "size": 1}}}, NOW_MS) == []
    assert pair.leaf.pending() == 1
    out = pair.leaf.receive_frame('{"message":"ok"}', NOW_MS)
    assert len(out.send) == 1 and json.loads(out.send[0])["message"]["data"]["files_by_sha1"]["x"]
    assert pair.leaf.pending() == 0


def test_leaf_handles_hub_error_and_unexpected_commands():
    pair = Pair(False)
    pair.leaf.connection_opened(NOW_MS)
    out = pair.leaf.receive_frame('{"error":"Incorrect passcode for node barshare. Closing websocket."}',
                                  NOW_MS)
    assert out.events == [HubError("Incorrect passcode for node barshare")] and not out.close
    out = pair.leaf.receive_frame('{"command":"dance"}', NOW_MS)
    assert out.close and out.close_reason == "Unexpected command: dance. Closing websocket."
    for bad in ("nope", "[]", '{"message_type":"http","command":"http.initiate_request"}', b"\x02\x01"):
        assert pair.leaf.receive_frame(bad, NOW_MS).close


def test_response_chunks_are_at_most_64_kib_base64_and_signed():
    pair = Pair(False)
    rid = "abcdEFGH"
    pair.registered_with_request(rid, "83bded5ed247/download/x")
    frames = pair.leaf.send_response_data(rid, b"x" * 70000, NOW_MS)
    assert len(frames) == 1 and pair.leaf.pending() == 1
    msg = json.loads(frames[0])["message"]
    assert msg["command"] == "http.write_response_data" and len(msg["data_base64"]) == 87384


def test_a_hub_uses_the_same_link_to_its_parent():
    """A child hub registers as a hub, receives set_top_hub_url first, then reports its subtree."""
    from kbtools.protocol.leafconn import TopHubUrl
    from kbtools.protocol.routing import hub_node_data

    registry = ChildRegistry()
    parent = ChildConnection(HubInfo({"name": "top"}, "hubpass", "http://top:1"), registry, NOW)
    cfg = kbnode("childhub")
    link = ParentLink(Signer(identity("childhub")), register_info(cfg, cfg["listen_url"], "hub"), "hubpass")
    out = parent.receive_frame(link.connection_opened(NOW_MS)[0], NOW)
    events = []
    for frame in out.replies:
        events += link.receive_frame(frame, NOW_MS).events
    assert isinstance(events[0], TopHubUrl) and events[0].url == "http://top:1"
    assert isinstance(events[1], Registered) and link.top_hub_url == "http://top:1"
    data = hub_node_data(link.signer.node_id, ChildRegistry())
    out = parent.receive_frame(link.report_node_data(data, NOW_MS)[0], NOW)
    assert out.replies == ['{"message":"ok"}'] and parent.node_data == data


def test_a_cancelled_request_stops_producing_data():
    pair = Pair(True, window=100_000)
    rid = "abcdEFGH"
    pair.registered_with_request(rid, "83bded5ed247/download/big.bin")
    pair.to_hub += pair.leaf.send_response_headers(rid, 200, "OK", {}, NOW_MS)
    pair.to_hub += pair.leaf.send_response_data(rid, b"a" * 30_000, NOW_MS)
    # A report waits for the hub's `ok` (polite alternation) and more data waits behind it.
    assert pair.leaf.report_node_data({"files_by_sha1": {}}, NOW_MS) == []
    assert pair.leaf.send_response_data(rid, b"b" * 20_000, NOW_MS) == [] and pair.leaf.pending() == 2
    # The HTTP client leaves: the hub cancels while the first chunk is still on its way.
    cancel = pair.hub.cancel_request(rid)
    out = pair.leaf.receive_frame(cancel, NOW_MS)
    assert out.events == [RequestCancelled(rid, 30_000)] and not out.close and out.send == []
    assert pair.leaf.pending() == 1  # the queued data frame is gone, the report stays
    assert pair.leaf.response_budget(rid) == 0
    with pytest.raises(LocalProtocolError):
        pair.leaf.send_response_data(rid, b"c", NOW_MS)
    with pytest.raises(LocalProtocolError):
        pair.leaf.end_response(rid, NOW_MS)
    pair.pump()  # headers (before the cancel: delivered), data in flight dropped, report, ok
    assert not [e for e in pair.hub_events if isinstance(e, ResponseData)]
    assert not [f for f in pair.to_leaf if isinstance(f, bytes)]  # no credit for a cancelled request
    assert pair.leaf.pending() == 0 and rid not in pair.hub.credit
    # A cancel that crosses the end of the response is ignored.
    assert pair.leaf.receive_frame(fastpath.encode(fastpath.CANCEL, rid), NOW_MS).events == []
