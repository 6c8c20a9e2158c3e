"""A live hub takes a fixed corpus of hostile input (every refusal of docs/hub.md's "Facing the internet" and its neighbours)
while a good share keeps serving correct bytes: every bad frame gets its error and a close, no
traceback reaches stderr or the log, the children's node data stays within the index bound, and
the file descriptors come back to where they started."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import HubLimits
from kbtools.protocol.objecthash import object_hash
from tests.hub.children import FileChild, HubNode, now_ms, sha1_of, write_random
from tests.hub.test_child_frames import exchange, register
from tests.protocol.vectors import identity

SIGNER = Signer(identity("share"))
LIMIT = 256 * 1024  # the index bound of these hubs: a few thousand files
SMALL = 64 * 1024


def signed(fields: dict, ts: int | None = None) -> str:
    return SIGNER.frame(fields, now_ms() if ts is None else ts)


def big_report(files: int) -> dict:
    return {"files_by_sha1": {hashlib.sha1(str(i).encode()).hexdigest(): {"path": f"d/f{i}.bin", "size": i}
                              for i in range(files)}}


def corpus() -> list[tuple[str, list[str | bytes]]]:
    """(name, frames after which the hub must have refused and closed)."""
    reg = register  # a fresh, correctly signed registration of the "share" node each time
    ok_data = {"files_by_sha1": {"ab" * 20: {"path": "a.txt", "size": 1}}}
    cases: list[tuple[str, list[str | bytes]]] = [
        ("not json", ["{"]),
        ("not an object", ["[1,2]"]),
        ("NaN", ['{"node_id": NaN}']),
        ("lone surrogate", ['{"node_id": "\\ud800abcdefgh"}']),
        ("binary before registration", [b"\x01\x08abcdEFGHxyz"]),
        ("too large", ["x" * 300_000]),
        ("no key", [json.dumps({"node_id": "abcdefgh1234", "message": {"network_type": "kbucket"}})]),
        ("respelt signature", [json.dumps({**json.loads(reg()), "signature": json.loads(reg())["signature"].upper()})]),
        ("field changed after signing", [json.dumps({**json.loads(reg()), "message": {
            **json.loads(reg())["message"], "passcode": "other"}})]),
        ("stale", [reg(ts=now_ms() - 3_600_000)]),
        ("wrong passcode", [reg(passcode="nope")]),
        ("command before registration", [signed({"command": "report_node_data", "data": ok_data})]),
        ("unknown command", [reg(), signed({"command": "hello"})]),
        ("delta before data", [reg(), signed({"command": "report_node_data", "data_delta": {"x": [1]},
                                              "data_hash": "x"})]),
        ("delta hash mismatch", [reg(), signed({"command": "report_node_data", "data": ok_data}),
                                 signed({"command": "report_node_data", "data_hash": "0" * 40,
                                         "data_delta": {"files_by_sha1": {"cd" * 20: [{"path": "b", "size": 2}]}}})]),
        ("delta that does not fit", [reg(), signed({"command": "report_node_data", "data": ok_data}),
                                     signed({"command": "report_node_data", "data_hash": "x",
                                             "data_delta": {"files_by_sha1": {"ab" * 20: ["@@ bad", 0, 2]}}})]),
        ("index past the bound", [reg(), signed({"command": "report_node_data", "data": big_report(2500),
                                                 "data_hash": "x"})]),
        ("data not an object", [reg(), signed({"command": "report_node_data", "data": [1]})]),
        ("status not a number", [reg(), signed({"message_type": "http", "command": "http.set_response_headers",
                                                "request_id": "abcdEFGH", "status": "200", "headers": {}})]),
        ("base64 not ascii", [reg(), signed({"message_type": "http", "command": "http.write_response_data",
                                             "request_id": "abcdEFGH", "data_base64": "\u0080"})]),
        ("binary without fast path", [reg(), b"\x01\x08abcdEFGHxyz"]),
    ]
    return cases


def fds_open() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def _socket_ends(link: str) -> str:
    inode = link.removeprefix("socket:[").rstrip("]")
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/net/{table}").read().splitlines()[1:]:
            f = line.split()
            if f[9] == inode:
                return f"{int(f[1].split(':')[1], 16)}->{int(f[2].split(':')[1], 16)} st {f[3]}"
    return link


def fd_count() -> int:
    return len(fds_open())


def raw_http(url: str, payload: bytes) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(payload)
        try:
            s.recv(65536)
        except OSError:
            pass


@pytest.fixture
def quiet_aiohttp():
    """As kb-hub does (quiet_server_logs): a malformed request is normal for a server, not a traceback."""
    log = logging.getLogger("aiohttp")
    level = log.level
    log.setLevel(logging.CRITICAL)
    yield
    log.setLevel(level)


def test_the_hub_takes_the_hostile_corpus_and_keeps_serving(lt, tmp_path, capfd, caplog, quiet_aiohttp):
    caplog.set_level(logging.WARNING)
    fds = fds_open()
    hub = HubNode(lt, tmp_path / "hub", limits=HubLimits(max_frame_bytes=200_000, max_index_bytes=SMALL),
                  check_interval=0.5)
    data = write_random(tmp_path / "files" / "data.bin", 300_000)
    good = FileChild(lt, tmp_path / "good", tmp_path / "files", hub.url, name="good").connect()
    want = sha1_of(data)

    def serves() -> None:
        r = requests.get(f"{hub.url}/find/{want}/", timeout=10)
        assert r.json()["found"], r.text
        body = requests.get(f"{hub.url}/{good.node_id}/download/data.bin", timeout=30).content
        assert hashlib.sha1(body).hexdigest() == want
        assert good.node_id in hub.hub.registry.leaves
        assert hub.hub.registry.index_bytes <= SMALL

    serves()
    for name, frames in corpus():
        replies, closed = exchange(hub, *frames)
        assert closed, (name, replies)
        assert replies and replies[-1].get("error", "").endswith(". Closing websocket."), (name, replies)
        serves()
    assert any(e["event"] == "index_refused" and e["limit_bytes"] == SMALL for e in hub.events)
    # Broken HTTP and websocket handshakes next to it.
    raw_http(hub.url, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
    raw_http(hub.url, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    raw_http(hub.url, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
    serves()
    good.close()
    hub.wait(lambda: not hub.hub.registry.leaves and not hub.hub.links)
    assert hub.hub.registry.index_bytes == 0
    hub.stop()
    deadline = time.monotonic() + 10
    while fd_count() > len(fds) and time.monotonic() < deadline:
        time.sleep(0.05)
    after = fds_open()
    assert len(after) <= len(fds), (hub.url, [_socket_ends(v) for k, v in after.items() if fds.get(k) != v])
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err[-2000:]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records]


def test_a_share_past_the_index_bound_is_refused_and_the_others_stay(lt, tmp_path):
    """The bound holds across shares: the report that would take the total past it is refused, with
    an error frame the share sees and an `index_refused` event; the shares within it stay."""
    hub = HubNode(lt, tmp_path / "hub", limits=HubLimits(max_index_bytes=LIMIT))
    write_random(tmp_path / "files" / "a.bin", 100)
    first = FileChild(lt, tmp_path / "first", tmp_path / "files", hub.url, name="first")
    first.files_by_sha1 = lambda: big_report(1500)["files_by_sha1"]  # type: ignore
    first.connect()
    hub.wait(lambda: hub.hub.registry.index_bytes > 0)
    second = FileChild(lt, tmp_path / "second", tmp_path / "files", hub.url, name="second")
    second.files_by_sha1 = lambda: big_report(4000)["files_by_sha1"]  # type: ignore
    try:
        second.connect()
    except Exception:
        pass  # closed while waiting for the report's answer
    hub.wait(lambda: any(e["event"] == "index_refused" for e in hub.events))
    refused = [e for e in hub.events if e["event"] == "index_refused"][0]
    assert refused["node_id"] == second.node_id and refused["limit_bytes"] == LIMIT
    assert refused["index_bytes"] + refused["held_bytes"] > LIMIT
    hub.wait(lambda: any(e.startswith("Index limit reached") for e in second.errors))
    assert first.node_id in hub.hub.registry.leaves and second.node_id not in hub.hub.registry.leaves
    assert hub.hub.registry.index_bytes <= LIMIT
    sha = next(iter(big_report(1)["files_by_sha1"]))
    assert requests.get(f"{hub.url}/find/{sha}/", timeout=10).json()["results"] == [
        {"kbshare_id": first.node_id, "size": 0, "path": "d/f0.bin"}]
    assert object_hash(hub.hub.registry.leaves[first.node_id].node_data) == object_hash(big_report(1500))
