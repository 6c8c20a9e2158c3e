"""Data connections: a large download body on a connection of its own from the share to the hub's
URL (kbtools.protocol.fastpath, kbtools.hub.relay). The token rules in the hub's link, then real
kb-hub and kb-host processes on loopback: downloads, Range and HEAD, tokens that are refused, a
proxy that refuses the upgrade and a hub that turned them off (the websocket carries the body), a
slow client (bounded hub memory), a share that dies mid-download, and a hub serving TLS."""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from kbtools.hub.tunnel import ChildLink
from kbtools.protocol import fastpath
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, ChildState, HubInfo
from kbtools.protocol.messages import InitiateRequest, parse_parent_message
from kbtools.share.link import open_data_connection
from tests.deploy.conftest import pki  # noqa: F401  (the fixture: a throwaway CA)
from tests.netfixtures import Network, free_port, wait_found
from tests.waiting import wait_for

SIZE = 3 * 1024 * 1024 + 17  # above fastpath.DATA_MIN_BYTES
DATA = os.urandom(SIZE)
SMALL = os.urandom(fastpath.DATA_MIN_BYTES // 2)


# ---------------------------------------------------------------- negotiation and tokens (no I/O)

def test_negotiation_needs_both_sides():
    assert fastpath.accept(fastpath.offer(True), 1024, data_connections=True)["data_connection"] == 1
    assert "data_connection" not in fastpath.accept(fastpath.offer(False), 1024, True)
    assert "data_connection" not in fastpath.accept(fastpath.offer(True), 1024, False)
    assert not fastpath.offers_data({"version": 1, "data_connection": True})


def test_the_token_travels_in_the_request_frame_and_a_bad_one_is_dropped():
    frame = InitiateRequest("abc123", "GET", "x/download/a", {}, {}, "t" * 32).to_fields()
    assert parse_parent_message(frame).data_token == "t" * 32
    frame["kbtools_data_token"] = "not a token!"
    assert parse_parent_message(frame).data_token is None


class _Ws:
    closed = False


def _link(node_id: str) -> ChildLink:
    conn = ChildConnection(HubInfo({}), ChildRegistry())
    conn.node_id, conn.state, conn.fast_path, conn.data_connections = node_id, ChildState.REGISTERED, True, True
    return ChildLink(_Ws(), conn)  # type: ignore[arg-type]


def test_a_token_is_good_once_for_its_own_request_only():
    link, other = _link("aaaaaaaaaaaa"), _link("bbbbbbbbbbbb")
    request = link.open("GET", "aaaaaaaaaaaa/download/x", {}, data_connection=True)
    token = request.data_token
    assert token and '"kbtools_data_token":"' + token + '"' in request.frames[0]
    assert link.open("HEAD", "aaaaaaaaaaaa/download/x", {}, True).data_token is None
    assert link.open("GET", "aaaaaaaaaaaa/download/x", {}).data_token is None  # not asked for
    assert other.claim_data(request.request_id, token) is None  # another share's link
    assert link.claim_data(request.request_id, token) is request
    assert link.claim_data(request.request_id, token) is None  # a replay
    wrong = link.open("GET", "aaaaaaaaaaaa/download/y", {}, data_connection=True)
    assert link.claim_data(wrong.request_id, "x" * 32) is None
    assert link.claim_data(wrong.request_id, wrong.data_token or "") is None  # spent by the miss
    late = link.open("GET", "aaaaaaaaaaaa/download/z", {}, data_connection=True)
    late.head_taken = True  # the headers came without a data connection: none is taken after
    assert link.claim_data(late.request_id, late.data_token or "") is None
    old = link.open("GET", "aaaaaaaaaaaa/download/w", {}, data_connection=True)
    old.token_expires = time.monotonic() - 1
    assert link.claim_data(old.request_id, old.data_token or "") is None
    assert link.claim_data("nosuchid", "y" * 32) is None


# ---------------------------------------------------------------- real processes

def metrics(hub) -> dict:
    return requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).json()["metrics"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_downloads_range_and_head_through_a_data_connection(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("hub", passcode="p")
        share = net.share("s", hub, passcode="p", files={"big.bin": DATA, "small.bin": SMALL})
        wait_found(hub.url, DATA)
        wait_found(hub.url, SMALL)
        url = f"{hub.url}/{share.node_id}/download/big.bin"
        r = requests.get(url, timeout=60)
        assert r.status_code == 200 and r.content == DATA
        assert r.headers["Content-Length"] == str(SIZE)
        direct = requests.get(f"{share.url}/{share.node_id}/download/big.bin", timeout=60)
        for name in ("ETag", "Content-Type", "Accept-Ranges", "Last-Modified"):
            assert r.headers.get(name) == direct.headers.get(name), name
        r = requests.get(url, headers={"Range": "bytes=1000-2000999"}, timeout=60)
        assert r.status_code == 206 and r.content == DATA[1000:2001000]
        assert r.headers["Content-Range"] == f"bytes 1000-2000999/{SIZE}"
        r = requests.get(url, headers={"Range": f"bytes={SIZE}-"}, timeout=60)
        assert r.status_code == 416
        r = requests.head(url, timeout=60)
        assert r.status_code == 200 and r.headers["Content-Length"] == str(SIZE) and not r.content
        assert metrics(hub)["data_connections"] == 2  # the two bodies, not HEAD or 416
        r = requests.get(f"{hub.url}/{share.node_id}/download/small.bin", timeout=60)
        assert r.content == SMALL
        assert metrics(hub)["data_connections"] == 2  # a small body stays on the websocket
        # keep-alive: the client's connection carries the next request after a relayed body
        with requests.Session() as session:
            for _ in range(2):
                assert session.get(url, timeout=60).content == DATA


def _raw_upgrade(hub_url: str, path: str, token: str) -> bytes:
    host, port = hub_url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "
                     f"{fastpath.DATA_UPGRADE}\r\n{fastpath.DATA_TOKEN_HEADER}: {token}\r\n\r\n"
                     .encode())
        return sock.recv(4096)


def test_a_data_connection_without_a_live_request_is_refused(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("hub", passcode="p")
        share = net.share("s", hub, passcode="p", files={"big.bin": DATA})
        wait_found(hub.url, DATA)
        for path in (fastpath.data_path(share.node_id, "abcdefgh"),  # no such request
                     fastpath.data_path("000000000000", "abcdefgh"),  # no such share
                     "somewhere/else"):
            assert _raw_upgrade(hub.url, path, "t" * 32).startswith(b"HTTP/1.1 403")
        with pytest.raises(OSError, match="refused"):
            open_data_connection(hub.url, share.node_id, "abcdefgh", "t" * 32)
        assert metrics(hub)["data_connections_refused"] == 4
        r = requests.get(f"{hub.url}/{share.node_id}/download/big.bin", timeout=60)
        assert r.content == DATA  # the share's own data connections still work


class UpgradeRefusingProxy:
    """A TCP forwarder that answers 403 to a kbtools-data upgrade and forwards anything else (a
    proxy in between that does not pass that Upgrade)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.refused = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port))
        self.thread.start()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if fastpath.DATA_UPGRADE.encode() in head.lower():
                self.refused += 1
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            up_writer.write(head)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                                 return_exceptions=True)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shut() -> None:  # every connection it still pipes ends here, not at GC time
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_a_refused_upgrade_falls_back_to_the_websocket(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("hub", passcode="p")
        proxy = UpgradeRefusingProxy(int(hub.url.rsplit(":", 1)[1]))
        try:
            share = net.share("s", f"http://127.0.0.1:{proxy.port}", passcode="p",
                              files={"big.bin": DATA})
            wait_found(hub.url, DATA)
            url = f"{hub.url}/{share.node_id}/download/big.bin"
            for _ in range(2):
                assert requests.get(url, timeout=60).content == DATA
            assert proxy.refused == 1  # tried once, then not again for a while
            assert metrics(hub).get("data_connections", 0) == 0
            assert "data connection" in share.stderr() and "refused" in share.stderr()
        finally:
            proxy.close()


def test_a_hub_without_data_connections_keeps_bodies_on_the_websocket(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("hub", passcode="p", args=("--no-data-connections",))
        share = net.share("s", hub, passcode="p", files={"big.bin": DATA})
        wait_found(hub.url, DATA)
        r = requests.get(f"{hub.url}/{share.node_id}/download/big.bin",
                         headers={"Range": "bytes=10-"}, timeout=60)
        assert r.status_code == 206 and r.content == DATA[10:]
        assert metrics(hub).get("data_connections", 0) == 0


BIG_SIZE = 256 * 1024 * 1024


def serve_big_file(net: Network, tmp_path: Path) -> tuple[Any, Any, str]:
    """A hub, and a share of one sparse 256 MiB file under it; the file's URL through the hub."""
    big = tmp_path / "s" / "big.bin"
    big.parent.mkdir(parents=True)
    with big.open("wb") as f:
        f.truncate(BIG_SIZE)
    hub = net.hub("hub", passcode="p")
    share = net.share("s", hub, passcode="p")
    url = f"{hub.url}/{share.node_id}/download/big.bin"
    wait_for(lambda: requests.head(url, timeout=10).status_code == 200, 60, "the file never served")
    return hub, share, url


def test_a_slow_client_holds_the_hub_memory_bounded(tmp_path):
    size = BIG_SIZE
    with Network(tmp_path) as net:
        hub, share, url = serve_big_file(net, tmp_path)
        before = rss_kib(hub.process.pid)
        got = 0
        with requests.get(url, stream=True, timeout=60) as r:
            for chunk in r.raw.stream(256 * 1024, decode_content=False):
                got += len(chunk)
                if got >= 16 * 1024 * 1024:
                    break
                time.sleep(0.02)  # a slow client: the share may not run ahead of it
            peak = rss_kib(hub.process.pid)
        assert metrics(hub)["data_connections"] == 1
        assert (peak - before) < 32 * 1024, (before, peak)
        # the client went away: the share was told and stopped reading, far from the end
        cancelled = share.wait_event(lambda e: e["event"] == "request_cancelled", timeout=60)
        assert 0 < cancelled["sent_bytes"] < size // 2


def test_a_share_dying_mid_download_breaks_the_transfer(tmp_path):
    size = BIG_SIZE
    with Network(tmp_path) as net:
        hub, share, url = serve_big_file(net, tmp_path)
        got = 0
        with pytest.raises(requests.exceptions.RequestException):
            with requests.get(url, stream=True, timeout=60) as r:
                for chunk in r.iter_content(1024 * 1024):
                    got += len(chunk)
                    if share.running():
                        share.kill()
        assert got < size
        # the hub is fine and answers the next request
        assert requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).status_code == 200


def test_a_tls_hub_takes_data_connections_over_tls(tmp_path, pki, monkeypatch):
    with Network(tmp_path) as net:
        port = free_port()
        hub = net.hub("hub", port=port, listen_url=f"https://localhost:{port}",
                      args=("--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])))
        share = net.share("s", f"https://localhost:{port}", files={"big.bin": DATA}, start=False)
        share.env["KBUCKET_CA_FILE"] = str(pki["ca"])
        share.start()
        sha1 = hashlib.sha1(DATA).hexdigest()
        deadline = time.monotonic() + 60
        while not requests.get(f"{hub.url}/find/{sha1}/", verify=str(pki["ca"]),
                               timeout=10).json().get("found"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        url = f"https://localhost:{port}/{share.node_id}/download/big.bin"
        r = requests.get(url, verify=str(pki["ca"]), timeout=60)
        assert r.content == DATA
        r = requests.get(url, verify=str(pki["ca"]), headers={"Range": "bytes=5-1048580"}, timeout=60)
        assert r.status_code == 206 and r.content == DATA[5:1048581]
        info = requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", verify=str(pki["ca"]),
                            timeout=10).json()
        assert info["metrics"]["data_connections"] == 2
