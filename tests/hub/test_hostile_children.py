"""A registered child that lies about its responses or sends text that is not Unicode: the hub checks
everything before it reaches a client or a writer, and every client connection stays in a known state."""
from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from kbtools.protocol.envelope import Signer
from kbtools.protocol.leafconn import register_info
from kbtools.protocol.messages import InitiateRequest
from tests.hub.children import FileChild, HubNode, now_ms, sha1_of, write_random
from tests.hub.test_child_frames import error_and_close, exchange, register, still_serving
from tests.protocol.vectors import identity, kbnode


class ScriptedChild(FileChild):
    """Answers every tunnelled request with the head and body it is given, whatever they are."""

    head: tuple[int, str, dict[str, Any]] = (200, "OK", {})
    body: bytes = b""

    async def _serve(self, req: InitiateRequest) -> None:
        status, message, headers = self.head
        rid = req.request_id
        await self._send(self.link.send_response_headers(rid, status, message, headers, now_ms()))
        if self.body and req.method == "GET":
            await self._send(self.link.send_response_data(rid, self.body, now_ms()))
        await self._send(self.link.end_response(rid, now_ms()))


@pytest.fixture
def scripted(lt, tmp_path) -> tuple[HubNode, ScriptedChild]:
    hub = HubNode(lt, tmp_path / "hub")
    (tmp_path / "files").mkdir()
    child = ScriptedChild(lt, tmp_path / "child", tmp_path / "files", hub.url).connect()
    hub.wait(lambda: child.node_id in hub.hub.registry.leaves)
    return hub, child


def keep_alive_pair(hub: HubNode, child: ScriptedChild) -> tuple[http.client.HTTPResponse, bytes, Any]:
    """The tunnelled response, then a second request on the same connection (the hub's nodeinfo)."""
    parts = urlsplit(hub.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", f"/{child.node_id}/download/x.bin")
        first = conn.getresponse()
        body = first.read()
        conn.request("GET", f"/{hub.node_id}/api/nodeinfo")
        second = conn.getresponse()
        return first, body, json.loads(second.read())
    finally:
        conn.close()


@pytest.mark.parametrize("head", [
    (200, "OK", {"x-a": "b\r\nSet-Cookie: evil=1"}),
    (200, "OK", {"x-a": "b\nx-b: c"}),
    (200, "OK", {"x-a": "nul\x00byte"}),
    (200, "OK", {"x a": "space in the name"}),
    (200, "OK", {"x-\u00e4": "not ascii"}),
    (200, "OK", {"": "empty name"}),
    (200, "OK", {"x-a": "\u20ac not latin-1"}),
    (200, "OK", {"x-a": {"a": "dict"}}),
    (200, "OK", {"content-length": "12, 13"}),
    (200, "OK", {"content-length": "-1"}),
    (200, "OK", {"content-length": ["5", "6"]}),
    (200, "OK", {f"x-{i}": "v" for i in range(500)}),
    (600, "OK", {}),
    (150, "Hmm", {}),
    (101, "Switching Protocols", {"upgrade": "websocket"}),
])
def test_a_response_head_that_fails_the_check_is_a_clean_502(scripted, head):
    hub, child = scripted
    child.head, child.body = head, b"0123456789"
    first, body, second = keep_alive_pair(hub, child)
    assert first.status == 502
    assert json.loads(body)["error"]  # a clean JSON answer (the child may also be dropped)
    assert first.getheader("Set-Cookie") is None
    assert second["info"]["node_id"] == hub.node_id  # the same connection is still in step
    still_serving(hub)


def test_a_good_head_is_forwarded_with_a_reason_phrase_made_safe(scripted):
    hub, child = scripted
    child.head = (200, "Fine\r\nX-Evil: 1", {"content-type": "text/plain", "content-length": "10",
                                              "x-list": ["a", "b"]})
    child.body = b"0123456789"
    first, body, second = keep_alive_pair(hub, child)
    assert (first.status, first.reason, body) == (200, "FineX-Evil: 1", b"0123456789")
    assert first.getheader("X-Evil") is None and first.getheader("x-list") == "a, b"
    assert second["info"]["node_id"] == hub.node_id


def test_tunnelled_content_cannot_act_on_the_hubs_origin(scripted):
    hub, child = scripted
    child.head = (200, "OK", {"content-type": "text/html", "set-cookie": "session=stolen",
                              "content-security-policy": "script-src *", "refresh": "0; url=/x"})
    child.body = b"<script>document.cookie</script>"
    r = requests.get(f"{hub.url}/{child.node_id}/download/page.html", timeout=10)
    assert r.status_code == 200 and r.content == child.body
    assert "set-cookie" not in r.headers and "refresh" not in r.headers
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def read_until_closed(hub: HubNode, path: str) -> bytes:
    """A raw GET with keep-alive: every byte the hub sends until it closes the connection."""
    parts = urlsplit(hub.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):  # a hub that kept the connection open would time out here
            data += chunk
        return data


@pytest.mark.parametrize("announced, sent", [(10, 20), (10, 5), (0, 3)])
def test_a_body_that_does_not_match_its_length_breaks_the_connection(scripted, announced, sent):
    hub, child = scripted
    child.head = (200, "OK", {"content-length": str(announced)})
    child.body = b"x" * sent
    raw = read_until_closed(hub, f"/{child.node_id}/download/x.bin")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length: %d" % announced in head.lower()
    assert len(body) < announced or body == b""  # never the announced length, never a byte more
    still_serving(hub)


def test_a_lone_surrogate_in_a_report_is_refused_and_find_keeps_working(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub")
    data = write_random(tmp_path / "files" / "a.bin", 1000)
    good = FileChild(lt, tmp_path / "good", tmp_path / "files", hub.url, name="good").connect()
    find = f"{hub.url}/find/{sha1_of(data)}/"
    hub.wait(lambda: requests.get(find, timeout=10).json()["found"])
    # A second child claims the same content under a name that is not Unicode.
    evil = tmp_path / "evil"
    (evil / "files").mkdir(parents=True)
    liar = FileChild(lt, evil / "node", evil / "files", hub.url, name="liar")
    liar.files_by_sha1 = lambda: {sha1_of(data): {"path": "p\ud800", "size": 1000}}  # type: ignore
    liar.connect()
    hub.wait(lambda: any(e["event"] == "child_disconnected" and e.get("node_id") == liar.node_id
                         for e in hub.events))
    assert any("Unable to parse message" in e for e in liar.errors), liar.errors
    r = requests.get(find, timeout=10)
    assert r.status_code == 200 and r.json()["found"]
    assert good.node_id in hub.hub.registry.leaves


@pytest.mark.parametrize("field", ["name", "listen_url"])
def test_a_lone_surrogate_in_the_registration_gets_an_error_frame(hub_only, field):
    hub = hub_only
    config = kbnode("share")
    info = dict(register_info(config, config["listen_url"], "leaf", fast_path=False), **{field: "x\ud800"})
    frame = Signer(identity("share")).frame(
        {"command": "register_child_node", "info": info, "passcode": "hubpass"}, now_ms())
    assert error_and_close(hub, frame).startswith("Unable to parse message")
    still_serving(hub)


@pytest.fixture
def hub_only(lt, tmp_path) -> HubNode:
    return HubNode(lt, tmp_path / "hub")


@pytest.mark.parametrize("respell", [str.upper, lambda s: " ".join(s[i:i + 2] for i in range(0, len(s), 2))])
def test_a_replay_with_its_signature_respelt_is_refused(hub_only, respell):
    frame = register()
    replies, _ = exchange(hub_only, frame)
    assert replies[0]["command"] == "confirm_registration"
    changed = json.loads(frame)
    changed["signature"] = respell(changed["signature"])
    assert error_and_close(hub_only, json.dumps(changed)).startswith("Unable to verify message")
    still_serving(hub_only)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_timestamp_that_is_not_a_number_is_refused(hub_only, constant):
    frame = json.loads(register())
    text = json.dumps(frame).replace(str(frame["message"]["timestamp"]), constant)
    assert error_and_close(hub_only, text).startswith("Unable to parse message")
    still_serving(hub_only)
