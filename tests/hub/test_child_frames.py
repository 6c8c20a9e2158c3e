"""Hostile and broken child frames over a real websocket: each gets an error reply and a close, and
the hub keeps serving (HTTP answers, and a good child still registers)."""
from __future__ import annotations

import json

import pytest
import requests
import websocket

from kbtools.node.config import websocket_url
from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import HubLimits
from kbtools.protocol.leafconn import register_info
from kbtools.protocol.messages import REACHABILITY
from tests.hub.children import HubNode, now_ms
from tests.protocol.vectors import identity, kbnode


def register(name="share", passcode="hubpass", ts=None, **info_changes) -> str:
    config = kbnode(name)
    info = register_info(config, config["listen_url"], "leaf", fast_path=False)
    info.pop(REACHABILITY)  # frame by frame: no report that comes when the probe ends
    info.update(info_changes)
    return Signer(identity(name)).frame({"command": "register_child_node", "info": info, "passcode": passcode},
                                        now_ms() if ts is None else ts)


def report(name="share") -> str:
    return Signer(identity(name)).frame({"command": "report_node_data", "data": {"files_by_sha1": {}},
                                         "data_hash": "x"}, now_ms())


def exchange(hub: HubNode, *frames: str | bytes) -> tuple[list[dict], bool]:
    """Send the frames, then read replies until the hub closes (or stays silent)."""
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    replies: list[dict] = []
    try:
        for f in frames:
            try:
                if isinstance(f, bytes):
                    ws.send_binary(f)
                else:
                    ws.send(f)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return replies, True  # closed while we were still sending (a frame far too large)
        while True:
            try:
                opcode, data = ws.recv_data()
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return replies, True
            except websocket.WebSocketTimeoutException:
                return replies, False
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return replies, True
            replies.append(json.loads(data))
            if len(replies) == len(frames) and "error" not in replies[-1]:
                return replies, False  # every frame answered, none refused: the link stays open
            # a refusal: the hub closes the link next, however long that takes under load
    finally:
        ws.close()
        ws.shutdown()  # close() skips the socket once the hub closed the link


def error_and_close(hub, *frames) -> str:
    replies, closed = exchange(hub, *frames)
    assert closed, replies
    assert "error" in replies[-1] and replies[-1]["error"].endswith(". Closing websocket."), replies
    return replies[-1]["error"]


def still_serving(hub: HubNode) -> None:
    r = requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10)
    assert r.status_code == 200 and r.json()["info"]["node_id"] == hub.node_id
    replies, closed = exchange(hub, register("share2"))
    assert replies[0]["command"] == "confirm_registration"


@pytest.fixture
def hub(lt, tmp_path):
    return HubNode(lt, tmp_path / "hub", limits=HubLimits(max_frame_bytes=200_000, max_leaves=3))


def test_wrong_passcode(hub):
    assert error_and_close(hub, register(passcode="nope")).startswith("Incorrect passcode for node barshare")
    still_serving(hub)


def test_duplicate_id_while_the_first_is_connected(hub):
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    ws.send(register())
    assert json.loads(ws.recv())["command"] == "confirm_registration"
    text = error_and_close(hub, register())
    assert text.startswith("Error adding leaf: A connected leaf with id=83bded5ed247 already exists.")
    ws.close()
    still_serving(hub)


def test_id_that_does_not_match_the_key(hub):
    frame = json.loads(register())
    frame["node_id"] = frame["kbnode_id"] = identity("share2").node_id
    text = error_and_close(hub, json.dumps(frame))
    assert text.startswith("Child node id does not match public key")
    still_serving(hub)


def test_missing_key(hub):
    frame = json.loads(register())
    del frame["public_key"]
    assert "no public key" in error_and_close(hub, json.dumps(frame))
    assert "no public key" in error_and_close(hub, report())
    still_serving(hub)


def test_bad_signature_and_wrong_network(hub):
    frame = json.loads(register())
    frame["message"]["passcode"] = "hubpass "
    assert error_and_close(hub, json.dumps(frame)).startswith("Unable to verify message using signature")
    frame = json.loads(register())
    frame["message"]["network_type"] = "lari"
    assert error_and_close(hub, json.dumps(frame)).startswith("network types do not match")
    still_serving(hub)


@pytest.mark.parametrize("frame", ["not json", "[1, 2]", "null", '{"node_id": 5}', '{"node_id": "x"}',
                                   '{"message": {}}', '{"node_id": "abcdefabcdef", "public_key": 7}',
                                   '{"node_id": "abcdefabcdef", "message": "x", "public_key": "-----BEGIN"}',
                                   "[" * 100_000, b"\x01\x08abcdefgh", b""])
def test_malformed_frames(hub, frame):
    error_and_close(hub, frame)
    still_serving(hub)


def test_oversized_frames(hub):
    big = json.dumps({"node_id": "abcdefabcdef", "pad": "x" * 300_000})
    assert error_and_close(hub, big).startswith("Message too large")
    # Far over the limit, the websocket layer closes the link itself (code 1009).
    replies, closed = exchange(hub, "x" * 3_000_000)
    assert closed
    still_serving(hub)


def test_stale_and_replayed_registrations(hub):
    stale = register(ts=now_ms() - 3600 * 1000)
    assert error_and_close(hub, stale).startswith("Stale message")
    frame = register()
    replies, closed = exchange(hub, frame)
    assert replies[0]["command"] == "confirm_registration"
    assert error_and_close(hub, frame).startswith("Replayed registration message")
    still_serving(hub)


def test_commands_before_registration_and_unknown_commands(hub):
    unknown = Signer(identity("share")).frame({"command": "dance"}, now_ms())
    first = register()
    replies, closed = exchange(hub, first, unknown)
    assert replies[0]["command"] == "confirm_registration"
    assert replies[1]["error"].startswith("Unrecognized command: dance") and closed
    still_serving(hub)


def test_research_purpose_confirmation_and_node_type(hub):
    assert "scientific research" in error_and_close(hub, register(scientific_research="no"))
    assert error_and_close(hub, register(confirm_share="no")).startswith("Sharing of resources has not been")
    assert error_and_close(hub, register(node_type="robot")).startswith("Unexpected child node type")
    still_serving(hub)


def test_leaf_limit(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub", limits=HubLimits(max_leaves=1))
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    ws.send(register())
    assert json.loads(ws.recv())["command"] == "confirm_registration"
    assert "Exceeded maximum number of child leaf connections" in error_and_close(hub, register("share2"))
    ws.close()
    hub.wait(lambda: not hub.hub.registry.leaves)
    still_serving(hub)


def test_a_silent_child_is_closed_after_the_inactivity_timeout(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub", limits=HubLimits(inactivity_timeout=0.3), check_interval=0.1)
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    ws.send(register())
    assert json.loads(ws.recv())["command"] == "confirm_registration"
    reply = json.loads(ws.recv())
    assert reply["error"].startswith("Closing connection after ") and "seconds of not receiving" in reply["error"]
    hub.wait(lambda: any(e["event"] == "child_disconnected" for e in hub.events))
    ws.close()


def test_unregistered_sockets_from_one_address_beyond_their_budget_are_refused(lt, tmp_path):
    from kbtools.hub import server

    hub = HubNode(lt, tmp_path / "hub", limits=HubLimits(max_leaves=1, max_child_hubs=0))
    idle = [websocket.create_connection(websocket_url(hub.url), timeout=10)
            for _ in range(server.PENDING_PER_ADDRESS)]
    hub.wait(lambda: len(hub.hub.links) == len(idle))
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(websocket_url(hub.url), timeout=10)
    assert info.value.status_code == 503
    for ws in idle:
        ws.close()
    hub.wait(lambda: not hub.hub.links)
    still_serving(hub)


def test_a_flood_of_unregistered_sockets_cannot_keep_a_child_out(lt, tmp_path, monkeypatch):
    from kbtools.hub import server

    monkeypatch.setattr(server, "PENDING_PER_ADDRESS", 10_000)  # the flood comes from many addresses
    hub = HubNode(lt, tmp_path / "hub")
    idle = [websocket.create_connection(websocket_url(hub.url), timeout=10)
            for _ in range(server.PENDING_SOCKETS)]
    hub.wait(lambda: len(hub.hub.links) == len(idle))
    replies, _ = exchange(hub, register())  # the oldest idle socket made room
    assert replies[0]["command"] == "confirm_registration"
    for ws in idle:
        ws.close()


def test_a_socket_that_does_not_register_in_time_is_closed(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub", register_timeout=0.3)
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    hub.wait(lambda: len(hub.hub.links) == 1)
    hub.wait(lambda: not hub.hub.links)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:  # a close frame, then the end of the connection
            if ws.recv_data()[0] == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionError("closed by the hub")
    ws.close()


def test_a_client_trickling_its_request_head_is_dropped(lt, tmp_path):
    import socket
    from urllib.parse import urlsplit

    hub = HubNode(lt, tmp_path / "hub", request_head_timeout=0.5)
    parts = urlsplit(hub.url)
    request = b"GET /" + b"x" * 2_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        closed = False
        for byte in request:  # one byte at a time, far slower than the hub allows
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            s.settimeout(0.05)
            try:
                if s.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
        assert closed  # the hub hung up before the head was complete
    still_serving(hub)
