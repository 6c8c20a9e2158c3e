"""In-process hubs and websocket children for the hub tests, on one asyncio loop in a thread.

`LoopThread` runs coroutines from the (synchronous) test; `HubNode` is a real `kbtools.hub.Hub` on a
free 127.0.0.1 port; `FileChild` is a real websocket child built on `kbtools.protocol.leafconn` that
serves the files of a directory through the tunnel (full, Range, HEAD, 404, 416), on the compatible
or the fast path, and can die in the middle of a response.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

import aiohttp

from kbtools.hub.server import Hub, HubSettings
from kbtools.node.config import prepare_node, save_config, websocket_url
from kbtools.node.identity import NodeIdentity
from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import HubLimits
from kbtools.protocol.leafconn import HubError, ParentLink, Registered, RequestStarted, register_info
from kbtools.protocol.messages import InitiateRequest
from kbtools.protocol.routing import decode_tunnel_path
from tests.netfixtures import COMMON, free_port

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.on_close: list[Callable[[], Coroutine[Any, Any, Any]]] = []  # run in reverse order

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for cleanup in reversed(self.on_close):
            try:
                self.run(cleanup(), timeout=10)
            except Exception:
                pass
        try:
            self.run(cancel_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def make_identity(node_dir: Path, node_type: str, config: dict[str, Any]) -> tuple[NodeIdentity, dict]:
    node_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare_node(node_dir, node_type)
    prepared.config.update(config)
    save_config(node_dir, prepared.config)
    return prepared.identity, prepared.config


class HubNode:
    """A Hub running on the loop; events are collected in `events`."""

    def __init__(self, lt: LoopThread, node_dir: Path, name: str = "hub", passcode: str = "hubpass",
                 parent: "HubNode | None" = None, parent_passcode: str = "",
                 clock: Callable[[], float] = time.time, port: int | None = None,
                 copy_from: Path | None = None, **settings: Any) -> None:
        """`copy_from`: a node directory (kbnode.json, keys) to start from, e.g. a recorded original."""
        self.lt = lt
        if copy_from is not None:
            (node_dir / ".kbucket").mkdir(parents=True, exist_ok=True)
            for name in ("kbnode.json", "private.pem", "public.pem"):
                (node_dir / ".kbucket" / name).write_bytes((copy_from / name).read_bytes())
        port = free_port() if port is None else port
        config = {**COMMON, "node_type": "hub", "name": name, "description": f"hub {name}",
                  "listen_port": str(port), "listen_url": f"http://127.0.0.1:{port}", "passcode": passcode,
                  "parent_hub_url": parent.url if parent else "."}
        if copy_from is not None:  # keep the recorded fields (name, advertised listen_url, ...)
            config = {"listen_port": str(port)}
        identity, config = make_identity(node_dir, "hub", config)
        self.events: list[dict[str, Any]] = []
        settings.setdefault("first_retry", 0.2)
        settings.setdefault("max_retry", 0.5)
        settings.setdefault("report_interval", 0.5)
        self.hub = Hub(HubSettings(node_dir=node_dir, config=config, identity=identity, port=port,
                                   parent_passcode=parent_passcode, clock=clock, **settings),
                       on_event=self.events.append)
        lt.run(self.hub.start())
        lt.on_close.append(self.hub.stop)

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def node_id(self) -> str:
        return self.hub.node_id

    def stop(self) -> None:
        self.lt.run(self.hub.stop())

    def wait(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; events: {self.events[-5:]}")
            time.sleep(0.02)


def sha1_of(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


class FileChild:
    """A share-like websocket child serving `root` through the tunnel (GET/HEAD of `download/`)."""

    def __init__(self, lt: LoopThread, node_dir: Path, root: Path, hub_url: str, passcode: str = "hubpass",
                 fast: bool = False, name: str = "share", listen_url: str | None = None) -> None:
        self.lt, self.root, self.hub_url, self.fast = lt, root, hub_url, fast
        config = {**COMMON, "node_type": "leaf", "name": name, "description": f"share {name}",
                  "confirm_share": "yes", "listen_url": listen_url or f"http://127.0.0.1:{free_port()}",
                  "parent_hub_url": hub_url}
        self.identity, self.config = make_identity(node_dir, "leaf", config)
        self.node_id = self.identity.node_id
        self.link = ParentLink(Signer(self.identity),
                               register_info(self.config, self.config["listen_url"], "leaf", fast_path=fast),
                               passcode)
        self.requests_seen: list[InitiateRequest] = []
        self.errors: list[str] = []
        self.die_after: int | None = None  # close the socket after sending this many body bytes
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session: aiohttp.ClientSession | None = None
        self.registered = asyncio.Event()
        self.progress = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    def files_by_sha1(self) -> dict[str, dict[str, Any]]:
        out = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                out[sha1_of(p)] = {"path": p.relative_to(self.root).as_posix(), "size": p.stat().st_size}
        return out

    def connect(self) -> "FileChild":
        self.lt.on_close.append(self._close)
        self.lt.run(self._connect())
        return self

    async def _connect(self) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(websocket_url(self.hub_url), max_msg_size=0)
        self.reader = asyncio.create_task(self._read())
        await self._send(self.link.connection_opened(now_ms()))
        await asyncio.wait_for(self.registered.wait(), 10)
        await self._send(self.link.report_node_data({"files_by_sha1": self.files_by_sha1()}, now_ms()))
        while self.link.pending() or self.link.awaiting_response:
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), 10)

    def close(self) -> None:
        self.lt.run(self._close())

    async def _close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def _send(self, frames: list[str | bytes]) -> None:
        assert self.ws is not None
        for f in frames:
            if isinstance(f, bytes):
                await self.ws.send_bytes(f)
            else:
                await self.ws.send_str(f)

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            out = self.link.receive_frame(msg.data, now_ms())
            for ev in out.events:
                if isinstance(ev, Registered):
                    self.registered.set()
                elif isinstance(ev, HubError):
                    self.errors.append(ev.text)
                elif isinstance(ev, RequestStarted):
                    self.requests_seen.append(ev.request)
                    asyncio.create_task(self._serve(ev.request))
            await self._send(out.send)
            self.progress.set()
            if out.close:
                break

    async def _budget(self, rid: str) -> int:
        """Bytes the link takes now (waits for credit); 0: the hub cancelled the request."""
        while True:
            if rid not in self.link.open_requests:
                return 0
            b = self.link.response_budget(rid)
            if b > 0:
                return b
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), 30)

    async def _serve(self, req: InitiateRequest) -> None:
        rid = req.request_id
        parts = decode_tunnel_path(req.path).split("/", 2)
        path = self.root / parts[2] if len(parts) == 3 and parts[1] == "download" else None
        if path is None or not path.is_file():
            body = b"404: File Not Found"
            await self._send(self.link.send_response_headers(
                rid, 404, "Not Found", {"content-type": "text/html", "content-length": str(len(body))}, now_ms()))
            if req.method == "GET":
                await self._send(self.link.send_response_data(rid, body, now_ms()))
            await self._send(self.link.end_response(rid, now_ms()))
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = req.headers.get("range")
        headers = {"accept-ranges": "bytes", "content-type": "application/octet-stream"}
        if isinstance(rng, str) and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = (int(a), min(int(b) if b else size - 1, size - 1)) if a else (size - int(b), size - 1)
            if start >= size or start > end:
                await self._send(self.link.send_response_headers(
                    rid, 416, "Range Not Satisfiable", {"content-range": f"bytes */{size}"}, now_ms()))
                await self._send(self.link.end_response(rid, now_ms()))
                return
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        headers["content-length"] = str(end - start + 1)
        await self._send(self.link.send_response_headers(rid, status, "OK", headers, now_ms()))
        if req.method == "GET":
            sent = 0
            with path.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    budget = await self._budget(rid)
                    if budget == 0:
                        return
                    chunk = f.read(min(budget, left, 1024 * 1024))
                    await self._send(self.link.send_response_data(rid, chunk, now_ms()))
                    left -= len(chunk)
                    sent += len(chunk)
                    if self.die_after is not None and sent >= self.die_after:
                        assert self.ws is not None
                        await self.ws.close()
                        return
        await self._send(self.link.end_response(rid, now_ms()))


_last_ms = 0
_clock_lock = threading.Lock()


def now_ms() -> int:
    """The clock for signed frames, strictly increasing within a test process.

    Signatures (RSA PKCS#1 v1.5) are deterministic: two frames of one node signed in the same
    millisecond are the same bytes, which a hub rightly refuses as a replay.
    """
    global _last_ms
    with _clock_lock:
        _last_ms = max(int(time.time() * 1000), _last_ms + 1)
        return _last_ms


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def limits(**kw: Any) -> HubLimits:
    return HubLimits(**kw)
