"""The hub's probe of a child's listen_url, live on loopback: the probe itself against small servers,
then real kb-hub and kb-host processes (the connected line, the hub's events, nodeinfo, find)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import requests
from aiohttp import web

from kbtools.hub.reach import Prober
from tests.conftest import validate
from tests.netfixtures import Network, free_port

ID = "83bded5ed247"
OTHER_ID = "000000000000"


class CountingListener:
    """A TCP listener that counts the connections it accepts (and closes them)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


class NodeinfoService:
    """An HTTP server on 127.0.0.1 answering every GET with a nodeinfo naming `node_id`."""

    def __init__(self, port: int, node_id: str) -> None:
        paths: list[str] = []
        body = json.dumps({"success": True, "info": {"node_id": node_id}}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.paths = paths
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the probe against small servers

async def serving(handler: Any, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def test_only_a_nodeinfo_naming_the_same_node_counts_and_no_redirect_is_followed():
    elsewhere = CountingListener("127.0.0.3", free_port())
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path.startswith("/moved/"):
            raise web.HTTPFound(f"http://127.0.0.3:{elsewhere.sock.getsockname()[1]}/{ID}/api/nodeinfo")
        node_id = request.path.split("/")[-3]
        if node_id == "notjson00000":
            return web.Response(text="<html>a web server</html>")
        return web.json_response({"success": True, "info": {"node_id": ID}})

    async def main() -> list:
        runner, port = await serving(handler)
        try:
            prober = Prober()
            base = f"http://127.0.0.1:{port}"
            return [await prober.check(base, "127.0.0.1", ID),
                    await prober.check(base + "/sub/", "127.0.0.1", ID),
                    await prober.check(base, "127.0.0.1", OTHER_ID),
                    await prober.check(base, "127.0.0.1", "notjson00000"),
                    await prober.check(base + "/moved", "127.0.0.1", ID)]
        finally:
            await runner.cleanup()

    try:
        results = asyncio.run(main())
    finally:
        elsewhere.close()
    assert [r.reachable for r in results] == [True, True, False, False, False]
    assert seen[:2] == [f"/{ID}/api/nodeinfo", f"/sub/{ID}/api/nodeinfo"]
    assert "answered HTTP 302" in results[4].reason
    assert elsewhere.accepted == 0


def test_probes_are_bounded_at_once_and_in_waiting():
    async def main() -> tuple[list, int]:
        gate = asyncio.Event()
        inside = {"now": 0, "most": 0}

        async def handler(request: web.Request) -> web.Response:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
            await gate.wait()
            inside["now"] -= 1
            return web.json_response({"info": {"node_id": ID}})

        runner, port = await serving(handler)
        try:
            prober = Prober(max_probes=2, max_waiting=3)
            checks = [asyncio.create_task(prober.check(f"http://127.0.0.1:{port}", "127.0.0.1", ID))
                      for _ in range(5)]
            while inside["now"] < 2:  # two probes are in: the third waits for a slot
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert inside["now"] == 2 and prober.probes == 2
            gate.set()
            return await asyncio.gather(*checks), inside["most"]
        finally:
            await runner.cleanup()

    results, most = asyncio.run(main())
    assert most == 2
    assert sorted(str(r.reachable) for r in results) == ["None", "None", "True", "True", "True"]
    assert all("too many" in r.reason for r in results if r.reachable is None)


def test_a_port_where_nothing_listens_is_unreachable():
    result = asyncio.run(Prober().check(f"http://127.0.0.1:{free_port()}", "127.0.0.1", ID))
    assert result.reachable is False and "cannot connect" in result.reason


# ---------------------------------------------------------------- real kb-hub and kb-host

class Live:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.elsewhere_port = free_port()
        self.elsewhere = CountingListener("127.0.0.3", self.elsewhere_port)
        self.service_port = free_port()
        self.service = NodeinfoService(self.service_port, OTHER_ID)
        self.hub = net.hub("hub", passcode="pass")
        files = {"a.txt": b"reach me\n"}
        self.direct = net.share("direct", parent=self.hub, passcode="pass", files=files)
        self.hub_only = net.share("hubonly", parent=self.hub, passcode="pass", files=files,
                                  args=("--bind", "127.0.0.2"))
        self.other_host = net.share("otherhost", parent=self.hub, passcode="pass", files=files,
                                    listen_url=f"http://127.0.0.3:{self.elsewhere_port}")
        self.other_service = net.share("otherservice", parent=self.hub, passcode="pass", files=files,
                                       listen_url=f"http://127.0.0.1:{self.service_port}",
                                       args=("--bind", "127.0.0.2"))
        self.private = net.share("private", parent=self.hub, passcode="pass", files=files,
                                 args=("--private",))
        self.sha1 = hashlib.sha1(files["a.txt"]).hexdigest()

    def close(self) -> None:
        self.net.stop_all()
        self.elsewhere.close()
        self.service.close()

    def nodeinfo(self) -> dict[str, Any]:
        return requests.get(f"{self.hub.url}/{self.hub.node_id}/api/nodeinfo", timeout=10).json()

    def find(self, share_id: str) -> dict[str, Any]:
        """The share-scoped find, once the share reported its file."""
        deadline = time.monotonic() + 60
        while True:
            answer = requests.get(f"{self.hub.url}/{share_id}/api/find/{self.sha1}/", timeout=10).json()
            if answer.get("found") or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)

    def hub_event(self, share_id: str) -> dict[str, Any]:
        return self.hub.wait_event(lambda e: e["event"] == "child_reachability"
                                   and e["node_id"] == share_id)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    with Network(tmp_path_factory.mktemp("reach")) as net:
        setup = Live(net)
        try:
            yield setup
        finally:
            setup.close()


def test_a_share_the_hub_reaches_directly(live):
    share = live.direct
    assert share.ready["reachable"] is True and "answered as this node" in share.ready["reachable_reason"]
    assert live.hub_event(share.node_id)["reachable"] is True
    assert live.nodeinfo()["child_leaf_nodes"][share.node_id]["kbtools_reachable"] is True
    answer = live.find(share.node_id)
    assert answer["urls"][0].startswith(share.ready["listen_url"] + "/")
    assert "kbtools_unreachable" not in answer


def test_a_share_listening_elsewhere_is_unreachable_and_find_lists_the_hub_first(live):
    share = live.hub_only  # listens on 127.0.0.2, advertises 127.0.0.1
    assert share.ready["reachable"] is False and "cannot connect" in share.ready["reachable_reason"]
    assert live.hub_event(share.node_id)["reachable"] is False
    assert live.nodeinfo()["child_leaf_nodes"][share.node_id]["kbtools_reachable"] is False
    answer = live.find(share.node_id)
    direct = f"{share.ready['listen_url']}/{share.node_id}/download/a.txt"
    assert answer["urls"] == [f"{live.hub.url}/{share.node_id}/download/a.txt", direct]
    assert answer["kbtools_unreachable"] == [direct]
    assert requests.get(answer["urls"][0], timeout=10).content == b"reach me\n"


def test_a_listen_url_naming_another_host_is_never_probed(live):
    share = live.other_host  # advertises 127.0.0.3:PORT, where a listener counts connections
    assert share.ready["reachable"] is None and "not probed" in share.ready["reachable_reason"]
    event = live.hub_event(share.node_id)
    assert event["reachable"] is None and "127.0.0.3" in event["reason"]
    assert "kbtools_reachable" not in live.nodeinfo()["child_leaf_nodes"][share.node_id]
    assert live.find(share.node_id)["urls"][0].startswith(f"http://127.0.0.3:{live.elsewhere_port}/")
    assert live.elsewhere.accepted == 0


def test_another_service_on_the_advertised_port_does_not_count(live):
    share = live.other_service  # advertises 127.0.0.1:PORT, where another node's nodeinfo answers
    assert share.ready["reachable"] is False and "not as this node" in share.ready["reachable_reason"]
    assert live.hub_event(share.node_id)["reachable"] is False
    assert f"/{share.node_id}/api/nodeinfo" in live.service.paths


def test_a_private_share_is_not_probed(live):
    share = live.private
    assert share.ready["listen_url"] and share.ready["reachable"] is None
    assert share.ready["reachable_reason"] is None
    assert "kbtools_reachable" not in live.nodeinfo()["child_leaf_nodes"][share.node_id]
    assert not [e for e in live.hub.events() if e.get("node_id") == share.node_id
                and e["event"] == "child_reachability"]


def test_every_line_follows_its_schema(live):
    for node in (live.direct, live.hub_only, live.other_host, live.other_service, live.private):
        for event in node.events():
            validate(event, "kb-host-event")
    for event in live.hub.events():
        validate(event, "kb-hub-event")
