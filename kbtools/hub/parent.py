"""A hub's own link to its parent hub: `kbtools.protocol.leafconn` over aiohttp's websocket client.

The hub registers as a child hub, reports its subtree every few seconds (and soon after it
changes), passes `set_top_hub_url` on to its own child hubs, and reconnects with backoff. A refusal
of the registration is a `parent_refused` event; one that no retry can heal (a wrong passcode, see
`HubError.permanent`) ends `run()`, with `retry_in` null, unless `settings.retry_forever`.
A tunnelled request from the parent is replayed against this hub's own HTTP server (as the original
does), and the answer streams back within the budget the link allows (polite alternation on the
compatible path, credit on the fast path), so memory stays bounded.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from kbtools.node.config import parent_hub_url
from kbtools.node.identity import NodeIdentity
from kbtools.node.uplink import open_uplink
from kbtools.protocol.envelope import Signer
from kbtools.protocol.errors import LocalProtocolError
from kbtools.protocol.hubconn import HubLimits
from kbtools.protocol.leafconn import (
    CreditGranted, HubError, ParentLink, Registered, RequestStarted, TopHubUrl, register_info,
)
from kbtools.protocol.messages import InitiateRequest
from kbtools.protocol.policy import describe_failure, replay_headers, request_error, retry_delays
from kbtools.protocol.routing import decode_tunnel_path


class ParentSettings(Protocol):
    """The hub settings the link reads (``kbtools.hub.server.HubSettings`` has them)."""

    @property
    def limits(self) -> HubLimits: ...
    @property
    def first_retry(self) -> float: ...
    @property
    def max_retry(self) -> float: ...
    @property
    def retry_forever(self) -> bool: ...
    @property
    def report_interval(self) -> float: ...
    @property
    def response_timeout(self) -> float: ...


class HubSide(Protocol):
    """What the link to the parent needs of its hub, and nothing more: who it is, its URLs and
    limits, its node data, where events go, and where the top hub's URL goes. ``Hub`` gives it;
    this module never imports the hub's."""

    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def identity(self) -> NodeIdentity: ...
    @property
    def url(self) -> str: ...  # where this process reaches its own HTTP server
    @property
    def listen_url(self) -> str: ...
    @property
    def settings(self) -> ParentSettings: ...

    def emit(self, event: str, **fields: Any) -> None: ...

    def node_data(self) -> dict[str, Any]: ...

    async def set_top_hub_url(self, url: str) -> None: ...

READ_CHUNK = 1024 * 1024


def parent_url_of(config: Mapping[str, Any]) -> str | None:
    return parent_hub_url(config)


def _now_ms() -> int:
    return int(time.time() * 1000)


class ParentConnector:
    """Keeps the hub connected to its parent; `run()` until cancelled."""

    def __init__(self, hub: HubSide, url: str, passcode: str) -> None:
        self.hub = hub
        self.url = url
        info = register_info(hub.config, hub.listen_url, "hub", fast_path=True)
        self.link = ParentLink(Signer(hub.identity), info, passcode,
                               max_frame_bytes=hub.settings.limits.max_frame_bytes)
        self.parent_info: dict[str, Any] | None = None
        self.connected = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._progress = asyncio.Event()
        self._serving: dict[str, asyncio.Task[None]] = {}

    def subtree_changed(self) -> None:
        self._changed.set()

    async def run(self) -> None:
        settings = self.hub.settings
        delays = retry_delays(settings.first_retry, settings.max_retry)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            self._session = session
            while True:
                registered, refusal = False, None
                try:
                    registered, refusal = await self._connect_once(session)
                    reason = "connection closed"
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                    reason = describe_failure(e)[:300]
                if registered:
                    delays = retry_delays(settings.first_retry, settings.max_retry)
                delay = next(delays)
                if refusal is None:
                    self.hub.emit("parent_disconnected", parent_hub_url=self.url, reason=reason,
                                  retry_in=delay)
                else:
                    give_up = refusal.permanent and not settings.retry_forever
                    self.hub.emit("parent_refused", parent_hub_url=self.url,
                                  reason=refusal.text[:300], permanent=refusal.permanent,
                                  retry_in=None if give_up else delay)
                    if give_up:
                        return
                await asyncio.sleep(delay)

    async def _connect_once(self, session: aiohttp.ClientSession) -> tuple[bool, HubError | None]:
        """One connection, until it closes: (registered?, the parent's refusal if it refused)."""
        registered = False
        refusal: HubError | None = None
        ws = await open_uplink(session, self.url, self.hub.settings.limits.max_frame_bytes)
        self._ws = ws
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self._send(self.link.connection_opened(_now_ms()))
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                out = self.link.receive_frame(msg.data, _now_ms())
                for event in out.events:
                    if isinstance(event, Registered):
                        registered = True
                        self.connected = True
                        self.parent_info = event.parent_info
                        self._changed.set()
                        self.hub.emit("parent_connected", parent_hub_url=self.url,
                                      name=str(event.parent_info.get("name", ""))[:100],
                                      fast_path=event.fast_path)
                    elif isinstance(event, TopHubUrl):
                        await self.hub.set_top_hub_url(event.url)
                    elif isinstance(event, HubError) and not registered:
                        refusal = event
                    elif isinstance(event, HubError):
                        self.hub.emit("parent_error", parent_hub_url=self.url, error=event.text[:300])
                    elif isinstance(event, RequestStarted):
                        rid = event.request.request_id
                        self._serving[rid] = asyncio.create_task(self._serve(event.request))
                    elif isinstance(event, CreditGranted):
                        pass
                await self._send(out.send)
                self._progress.set()
                if out.close:
                    break
        finally:
            reporter.cancel()
            for task in list(self._serving.values()):
                task.cancel()
            self._serving.clear()
            self.link.connection_lost()
            self.connected = False
            self.parent_info = None
            self._ws = None
            if not ws.closed:
                await ws.close()
        return registered, refusal

    async def _send(self, frames: list[str | bytes]) -> None:
        if not frames:
            return
        async with self._send_lock:
            ws = self._ws
            for frame in frames:
                if ws is None or ws.closed:
                    return
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)

    async def _report_loop(self) -> None:
        interval = self.hub.settings.report_interval
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), interval)
                if self.link.last_reported_hash is not None:
                    await asyncio.sleep(0.2)  # gather a burst of changes into one report
            except asyncio.TimeoutError:
                pass
            self._changed.clear()
            if self.link.registered:
                await self._send(self.link.report_node_data(self.hub.node_data(), _now_ms()))

    async def _budget(self, rid: str) -> int:
        """Wait until the link lets this response send more bytes."""
        deadline = time.monotonic() + self.hub.settings.response_timeout
        while True:
            budget = self.link.response_budget(rid)
            if budget > 0:
                return budget
            if rid not in self.link.open_requests:
                raise LocalProtocolError("request no longer open")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), remaining)

    async def _serve(self, request: InitiateRequest) -> None:
        """Replay a tunnelled request against this hub's own server; stream the answer up."""
        rid = request.request_id
        assert self._session is not None
        path = quote(decode_tunnel_path(request.path), safe="/")
        url = URL(f"{self.hub.url}/{path}", encoded=True)
        headers = replay_headers(request.headers)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10,
                                        sock_read=self.hub.settings.response_timeout)
        try:
            async with self._session.request(request.method, url, headers=headers,
                                             allow_redirects=False, timeout=timeout) as resp:
                out_headers: dict[str, Any] = {}
                for name in resp.headers:
                    values = resp.headers.getall(name)
                    out_headers[name.lower()] = values[0] if len(values) == 1 else list(values)
                await self._send(self.link.send_response_headers(rid, resp.status, resp.reason or "",
                                                                 out_headers, _now_ms()))
                while True:
                    budget = await self._budget(rid)
                    chunk = await resp.content.read(min(budget, READ_CHUNK))
                    if not chunk:
                        break
                    await self._send(self.link.send_response_data(rid, chunk, _now_ms()))
                await self._send(self.link.end_response(rid, _now_ms()))
        except asyncio.CancelledError:
            raise
        except LocalProtocolError:
            pass  # the link was reset: nothing to answer
        except Exception as e:
            try:
                await self._send(self.link.report_error(rid, request_error(e), _now_ms()))
            except LocalProtocolError:
                pass
        finally:
            self._serving.pop(rid, None)
