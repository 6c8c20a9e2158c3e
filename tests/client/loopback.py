"""A share and a hub on 127.0.0.1 that answer the HTTP API of spec §4 for one directory, and can
misbehave on purpose (wrong bytes, a connection dying mid-transfer, slowness, refusing).

The "hub" serves the files itself (standing in for its tunnel) and answers ``find`` the way the
original hub does: the share's direct URL first, then its own, with the raw (unencoded) path.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..netfixtures import free_port


def sha1_hex(path: Path) -> str:
    return prv_of(path)["original_checksum"]


def prv_of(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return dict(_prv(path, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _prv(path: Path, size: int, mtime_ns: int) -> tuple[tuple[str, Any], ...]:
    data = path.read_bytes()
    return (
        ("original_checksum", hashlib.sha1(data).hexdigest()),
        ("original_size", len(data)),
        ("original_fcs", "head1000-" + hashlib.sha1(data[:1000]).hexdigest()),
        ("original_path", str(path)),
        ("prv_version", "0.11"),
    )


@dataclass
class Behaviour:
    """How one server misbehaves (all off by default)."""

    wrong_bytes: bool = False  # flip the first byte of every download body
    die_after: int | None = None  # abort the connection once, after this many body bytes in total
    stop_on_die: bool = False  # and then stop the whole server (a hub that dies mid-transfer)
    delay_per_mib: float = 0.0  # seconds to sleep per MiB sent (to kill a client mid-way)
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    extra_entries: list[str] = field(default_factory=list)  # names readdir adds (hostile ones)
    hold_after: int | None = None  # stop sending after this many body bytes in total...
    released: threading.Event = field(default_factory=threading.Event)  # ...until this is set
    requests: list[str] = field(default_factory=list)  # "METHOD path Range" of downloads and finds
    bytes_sent: int = 0


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj, indent=4), status=status, content_type="application/json")


class Server:
    """One aiohttp app on its own event loop thread."""

    def __init__(self, network: "Network", role: str) -> None:
        self.network = network
        self.role = role
        self.behaviour = Behaviour()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self.thread: threading.Thread | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/find/{sha1}/{name:.*}", self.find)
        app.router.add_get("/{id}/api/find/{sha1}/{name:.*}", self.find)
        app.router.add_get("/{id}/api/readdir/{path:.*}", self.readdir)
        app.router.add_get("/{id}/prv/{path:.*}", self.prv)
        app.router.add_get("/{id}/download/{path:.*}", self.download)
        return app

    def start(self) -> "Server":
        ready = threading.Event()

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.runner = web.AppRunner(self.app())
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", self.port)
            self.loop.run_until_complete(site.start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10), "loopback server did not start"
        return self

    def stop(self) -> None:
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop = None

    # -- handlers ----------------------------------------------------------------------------------
    def _check_id(self, request: web.Request) -> web.Response | None:
        if request.match_info["id"] != self.network.node_id:
            return json_response({"error": f"Unable to locate node with id: {request.match_info['id']}"}, 500)
        return None

    async def find(self, request: web.Request) -> web.Response:
        self.behaviour.requests.append(f"FIND {request.path} -")
        if self.role != "hub":
            return json_response({"error": "Cannot find. This is not a hub."}, 500)
        if "id" in request.match_info and request.match_info["id"] != self.network.node_id:
            return json_response({"success": True, "found": False})
        sha1 = request.match_info["sha1"]
        hits = [rel for rel, path in self.network.files() if sha1_hex(path) == sha1]
        if not hits:
            return json_response({"success": True, "found": False})
        node = self.network.node_id
        urls = []
        for rel in hits:
            # Raw paths, as the original hub concatenates them (spec §4.4).
            urls += [f"{self.network.share.url}/{node}/download/{rel}", f"{self.url}/{node}/download/{rel}"]
        results = [{"kbshare_id": node, "size": (self.network.root / rel).stat().st_size, "path": rel}
                   for rel in hits]
        return json_response({"success": True, "found": True, "urls": urls, "results": results})

    async def readdir(self, request: web.Request) -> web.Response:
        refused = self._check_id(request)
        if refused:
            return refused
        directory = self.network.root / request.match_info["path"].strip("/")
        if not directory.is_dir():
            return json_response({"error": "ENOENT: no such file or directory"}, 500)
        files, dirs = [], []
        for child in sorted(directory.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                dirs.append({"name": child.name})
            else:
                files.append({"name": child.name, "size": child.stat().st_size, "prv": prv_of(child)})
        for name in self.behaviour.extra_entries:
            files.append({"name": name, "size": 1, "prv": prv_of(self.network.root / "hello.txt")})
        return json_response({"success": True, "files": files, "dirs": dirs})

    async def prv(self, request: web.Request) -> web.Response:
        refused = self._check_id(request)
        if refused:
            return refused
        rel = request.match_info["path"]
        path = self.network.root / rel
        if not rel or not path.is_file():
            return json_response({"error": f"File is not yet indexed or does not exist: {rel}"}, 500)
        return json_response(prv_of(path))

    async def download(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviour
        behaviour.requests.append(f"{request.method} {request.match_info['path']} {request.headers.get('Range')}")
        refused = self._check_id(request)
        if refused:
            return refused
        path = self.network.root / request.match_info["path"]
        if not path.is_file():
            return web.Response(status=404, text="404: File Not Found")
        plain = not (behaviour.wrong_bytes or behaviour.die_after is not None or behaviour.hold_after is not None
                     or behaviour.delay_per_mib or behaviour.ignore_range)
        if plain:
            return web.FileResponse(path)
        return await self._misbehave(request, path)

    async def _misbehave(self, request: web.Request, path: Path) -> web.StreamResponse:
        behaviour = self.behaviour
        size = path.stat().st_size
        start, end = 0, size
        status = 200
        if not behaviour.ignore_range and "Range" in request.headers:
            http_range = request.http_range
            start = http_range.start or 0
            end = size if http_range.stop is None else min(http_range.stop, size)
            status = 206
        response = web.StreamResponse(status=status)
        response.content_type = "application/octet-stream"
        response.content_length = end - start
        response.headers["Accept-Ranges"] = "bytes"
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        with open(path, "rb") as handle:
            handle.seek(start)
            position = start
            first = True
            while position < end:
                if behaviour.hold_after is not None and behaviour.bytes_sent >= behaviour.hold_after:
                    while not behaviour.released.is_set():
                        await asyncio.sleep(0.01)
                block = handle.read(min(1 << 20, end - position))
                if behaviour.wrong_bytes and first and block:
                    block = bytes([block[0] ^ 0xFF]) + block[1:]
                first = False
                if behaviour.die_after is not None and behaviour.bytes_sent + len(block) > behaviour.die_after:
                    keep = max(0, behaviour.die_after - behaviour.bytes_sent)
                    await response.write(block[:keep])
                    behaviour.bytes_sent += keep
                    behaviour.die_after = None
                    request.transport.abort()  # type: ignore[union-attr]
                    if behaviour.stop_on_die:
                        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)
                    return response
                await response.write(block)
                behaviour.bytes_sent += len(block)
                position += len(block)
                if behaviour.delay_per_mib:
                    await asyncio.sleep(behaviour.delay_per_mib * len(block) / (1 << 20))
        await response.write_eof()
        return response


class Network:
    """A share directory served by a direct share server and a hub on loopback."""

    def __init__(self, root: Path, node_id: str = "a1b2c3d4e5f6") -> None:
        self.root = root
        self.node_id = node_id
        self.share = Server(self, "share")
        self.hub = Server(self, "hub")

    def files(self) -> list[tuple[str, Path]]:
        return sorted((p.relative_to(self.root).as_posix(), p) for p in self.root.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.root).parts))

    def url(self, rel: str) -> str:
        return f"kbucket://{self.node_id}/{rel}"

    def start(self) -> "Network":
        self.share.start()
        self.hub.start()
        return self

    def stop(self) -> None:
        self.share.stop()
        self.hub.stop()
