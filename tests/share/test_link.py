"""The share's link against a scripted hub: a real loopback websocket server that checks every frame with
the hub core (kbtools.protocol.hubconn) and then sends what a broken or hostile hub could send."""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from kbtools.node.config import prepare_node
from kbtools.protocol.hubconn import (
    ChildConnection, ChildRegistered, ChildRegistry, HubInfo, HubLimits, NodeDataUpdated,
    ResponseData, ResponseEnd, ResponseError, ResponseHeaders,
)
from kbtools.protocol.objecthash import object_hash
from kbtools.protocol.routing import tunnel_request_frames
from kbtools.share.host import ShareHost
from tests.netfixtures import free_port
from tests.index.trees import write
from tests.waiting import wait_for

HUB_INFO = {"node_id": "aaaaaaaaaaaa", "node_type": "hub", "name": "scripted"}


class ScriptedHub:
    """Each connection registers the share through the hub core, then sends `scripts[n]` (frames)."""

    def __init__(self, scripts: list[list[str | bytes]], fast: bool = False,
                 silent_after_register: int = 0, close_at_once: int = 0) -> None:
        self.scripts = scripts
        self.fast = fast
        self.silent = silent_after_register  # this many first connections go quiet once registered
        self.close_at_once = close_at_once  # this many first connections are closed on opening
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.events: list[tuple[int, Any]] = []  # (connection number, hub core event)
        self.bodies: dict[str, bytearray] = {}
        self.reports: list[dict[str, Any]] = []  # the inner message of every report_node_data
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "ScriptedHub":
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.thread.start()
        return self

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        number = self.connections
        script = list(self.scripts[number - 1]) if number <= len(self.scripts) else []
        conn = ChildConnection(HubInfo(dict(HUB_INFO), ""),
                               ChildRegistry(HubLimits(allow_fast_path=self.fast)), time.time())
        if number <= self.close_at_once:
            await ws.close()
            return ws
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            if number <= self.silent and conn.node_id in conn.registry.leaves:
                continue  # a hub (or a network) that stopped answering
            out = conn.receive_frame(msg.data, time.time())
            if msg.type == WSMsgType.TEXT and '"report_node_data"' in msg.data[:200] and not out.close:
                self.reports.append(json.loads(msg.data)["message"])
            for reply in out.replies:
                await (ws.send_str(reply) if isinstance(reply, str) else ws.send_bytes(reply))
            for event in out.events:
                self.events.append((number, event))
                if isinstance(event, ResponseData):
                    self.bodies.setdefault(event.request_id, bytearray()).extend(event.data)
                    ack = conn.acknowledge_data()
                    if ack:
                        await ws.send_str(ack)
                    credit = conn.grant_credit(event.request_id, len(event.data))
                    if credit:
                        await ws.send_bytes(credit)
                if isinstance(event, ChildRegistered):
                    for frame in script:
                        if isinstance(frame, str) and '"http.initiate_request"' in frame:
                            conn.open_request(json.loads(frame)["request_id"])
                        await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
                        if isinstance(frame, str) and frame.startswith('{"error"'):
                            await ws.close()  # as a hub does after an error reply
            if out.close:
                await ws.close()
                break
        return ws

    def of(self, kind: type, number: int | None = None) -> list[Any]:
        return [e for n, e in self.events if isinstance(e, kind) and (number is None or n == number)]


def request(rid: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> list[str]:
    return tunnel_request_frames(rid, method, path, headers or {})


@pytest.fixture
def share_dir(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    write(root / "one.txt", b"one text\n")
    write(root / "big.bin", bytes(range(256)) * 4096)
    write(tmp_path / "outside" / "secret.txt", b"SECRET outside the share")
    (root / "out").symlink_to(tmp_path / "outside")
    write(root / ".kbucket" / "kbnode.json", json.dumps({
        "node_type": "leaf", "name": "linked", "scientific_research": "yes", "description": "",
        "owner": "o", "owner_email": "o@example.org", "confirm_share": "yes"}))
    return root


def host(share_dir: Path, hub: ScriptedHub, events: list, fast: bool = False,
         stall_timeout: float | None = None) -> ShareHost:
    node = prepare_node(share_dir, "leaf")
    port = free_port()
    h = ShareHost(node, hub.url, "", bind="127.0.0.1", port=port, listen_url=f"http://127.0.0.1:{port}",
                  on_event=events.append, say=lambda line: events.append({"say": line}),
                  fast_path=fast, max_retry=0.5, stall_timeout=stall_timeout)
    h.start()
    return h


@pytest.mark.parametrize("fast", [False, True], ids=["compatible", "fast"])
def test_register_report_and_serve_hostile_requests(share_dir, fast):
    hostile = [
        *request("Trav0001", "SHAREID/download/../../outside/secret.txt"),
        *request("Trav0002", "SHAREID/download/out/secret.txt"),
        *request("Trav0003", "SHAREID/download/%2E%2E/%2E%2E/etc/passwd"),
        *request("Hidden01", "SHAREID/download/.kbucket/private.pem"),
        *request("Range001", "SHAREID/download/big.bin", {"Range": "bytes=1000-70999", "Cookie": "c"}),
        *request("Whole001", "SHAREID/download/big.bin"),
        *request("Head0001", "SHAREID/download/one.txt", method="HEAD"),
        *request("Other001", "0123456789ab/download/one.txt"),
        *request("Find0001", f"find/{'a' * 40}/x"),
        *request("Long0001", "SHAREID/download/" + "a" * 5000),
        *request("Long0002", "SHAREID/api/dataset/" + "a" * 5000 + "/b"),
    ]
    hub = ScriptedHub([[]], fast=fast).start()
    events: list = []
    node_id = prepare_node(share_dir, "leaf").node_id
    hub.scripts = [[f.replace("SHAREID", node_id) for f in hostile]]
    h = host(share_dir, hub, events, fast=fast)
    try:
        wait_for(lambda: len(hub.of(ResponseEnd)) == len(hostile) // 2, what="not every request answered")
        registered = hub.of(ChildRegistered)[0]
        assert registered.node_id == node_id and registered.fast_path is fast
        headers = {e.request_id: e for e in hub.of(ResponseHeaders)}
        for rid in ("Trav0001", "Trav0002", "Trav0003", "Hidden01", "Other001", "Find0001", "Long0001",
                    "Long0002"):
            assert 400 <= headers[rid].status < 500, (rid, headers[rid].status)
            assert str(share_dir) not in hub.bodies.get(rid, b"").decode("utf-8", "replace")
            assert b"SECRET" not in hub.bodies.get(rid, b"") and b"PRIVATE" not in hub.bodies.get(rid, b"")
        assert headers["Range001"].status == 206
        assert bytes(hub.bodies["Range001"]) == (bytes(range(256)) * 4096)[1000:71000]
        assert hashlib.sha1(hub.bodies["Whole001"]).hexdigest() == \
            hashlib.sha1(bytes(range(256)) * 4096).hexdigest()
        assert headers["Head0001"].headers["content-length"] == "9" and "Head0001" not in hub.bodies
        wait_for(lambda: any(len(e.data.get("files_by_sha1", {})) == 2 for e in hub.of(NodeDataUpdated)),
                 what="the index never reached the hub")
        wait_for(lambda: any(r.get("data_nochange") for r in hub.reports), what="no data_nochange report")
        last_hash = None
        for report in hub.reports:  # full data with its object_hash, or data_nochange; never a delta
            assert "data_delta" not in report
            if "data" in report:
                assert report["data_hash"] == object_hash(report["data"])
                last_hash = report["data_hash"]
            else:
                assert report["data_nochange"] is True and report["data_hash"] == last_hash
    finally:
        h.stop()
        hub.stop()


BROKEN = [
    ["not json at all"],
    ['{"command": "launch_missiles"}'],  # the original closes on an unexpected command
    ['{"message_type": "http", "command": "http.initiate_request", "request_id": "../../x", '
     '"method": "GET", "path": "x", "headers": {}}'],
    ['{"message_type": "http", "command": "http.initiate_request", "request_id": "Abcdefgh", '
     '"method": "DELETE", "path": "x", "headers": {}}'],
    [b"\x01\x08Abcdefghpayload"],  # a binary frame without a fast path
    ["[1, 2, 3]"],
    ['{"command": "confirm_registration"}'],  # no info
]


def test_broken_hub_frames_close_the_link_and_it_comes_back(share_dir):
    hub = ScriptedHub(BROKEN + [[]]).start()
    events: list = []
    h = host(share_dir, hub, events)
    try:
        wait_for(lambda: len(hub.of(ChildRegistered)) >= len(BROKEN) + 1, timeout=60,
                 what="the share did not come back after each broken frame")
        wait_for(lambda: hub.of(NodeDataUpdated, len(BROKEN) + 1), what="no report after the last reconnect")
        assert all(not isinstance(e, ResponseError) for _, e in hub.events)
        disconnects = [e for e in events if isinstance(e, dict) and e.get("event") == "disconnected"]
        assert len(disconnects) >= len(BROKEN)
        assert any("Unexpected command: launch_missiles" in e["reason"] for e in disconnects)
    finally:
        h.stop()
        hub.stop()


def test_an_oversized_frame_from_the_hub_is_refused(share_dir, monkeypatch):
    import kbtools.share.link as link_module

    real = link_module.BlockingUplink
    monkeypatch.setattr(link_module, "BlockingUplink", lambda url, limit, timeout: real(url, 1 << 20, timeout))
    hub = ScriptedHub([['{"message": "ok", "pad": "' + "x" * (2 << 20) + '"}'], []]).start()
    events: list = []
    h = host(share_dir, hub, events)
    try:
        wait_for(lambda: len(hub.of(ChildRegistered)) >= 2, what="no reconnection after a huge frame")
        said = [e["say"] for e in events if isinstance(e, dict) and "say" in e]
        assert any("frame from hub larger than 1048576 bytes" in line for line in said)
    finally:
        h.stop()
        hub.stop()


def test_an_error_from_the_hub_is_said_and_retried(share_dir):
    hub = ScriptedHub([['{"error": "Incorrect passcode for node linked. Closing websocket."}'], []]).start()
    events: list = []
    h = host(share_dir, hub, events)
    try:
        wait_for(lambda: len(hub.of(ChildRegistered)) >= 2, what="no second registration")
        said = [e["say"] for e in events if isinstance(e, dict) and "say" in e]
        assert any("Incorrect passcode for node linked" in line and "retrying in" in line for line in said)
    finally:
        h.stop()
        hub.stop()


def test_a_hub_that_closes_on_opening_is_retried_until_it_registers(share_dir):
    hub = ScriptedHub([[]] * 4, close_at_once=3).start()
    events: list = []
    h = host(share_dir, hub, events)
    try:
        wait_for(lambda: hub.of(NodeDataUpdated), timeout=60, what="no registration after three closes")
        assert hub.connections == 4
        disconnects = [e for e in events if isinstance(e, dict) and e.get("event") == "disconnected"]
        assert len(disconnects) == 3
    finally:
        h.stop()
        hub.stop()


def test_a_hub_that_stops_answering_is_left_and_the_share_reconnects(share_dir):
    hub = ScriptedHub([[], []], silent_after_register=1).start()
    events: list = []
    h = host(share_dir, hub, events, stall_timeout=1.5)
    try:
        wait_for(lambda: len(hub.of(ChildRegistered)) >= 2, what="the share stayed on a silent hub")
        wait_for(lambda: hub.of(NodeDataUpdated, 2), what="no report after reconnecting")
        said = [e["say"] for e in events if isinstance(e, dict) and "say" in e]
        assert any("no answer for 1.5 s" in line for line in said)
    finally:
        h.stop()
        hub.stop()
