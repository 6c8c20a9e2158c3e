"""The websocket a node opens to its parent hub, the same for a share and for a child hub.

aiohttp's client: a frame from the parent larger than the node's frame limit is refused from its
header, before its payload is read; frames are masked in C; a wss:// parent's certificate is
verified (`kbtools.client.tls`); no compression is offered, as the original network has none.

A child hub's link (`kbtools.hub.parent`) awaits it in the hub's own event loop. A share's link
(`kbtools.share.link`) is written in threads, so `BlockingUplink` gives it the same websocket with
blocking calls, run in an event loop of its own thread.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from http import HTTPStatus
from typing import Any, Coroutine, TypeVar

import aiohttp

from kbtools.client import tls
from kbtools.node.config import websocket_url

CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 1.0  # waiting for the parent's answer to our close frame (then it is dropped)

T = TypeVar("T")


class UplinkClosed(Exception):
    """The websocket to the parent closed or broke; the text says why."""


async def open_uplink(session: aiohttp.ClientSession, hub_url: str,
                      max_frame_bytes: int) -> aiohttp.ClientWebSocketResponse:
    """The websocket to the parent hub at `hub_url` (http(s)://, spec §2.1). ConnectionError
    when the server there answers the upgrade with anything else (no hub at that URL, or a proxy
    in front of it that refuses websockets)."""
    url = websocket_url(hub_url)
    try:
        return await session.ws_connect(
            url, autoping=True, compress=0, ssl=tls.ssl_context() if url.startswith("wss:") else True,
            max_msg_size=max_frame_bytes + 1,  # aiohttp refuses a message of max_msg_size bytes or more
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT))
    except aiohttp.WSServerHandshakeError as exc:
        try:
            status = f"{exc.status} {HTTPStatus(exc.status).phrase}"
        except ValueError:
            status = str(exc.status)
        raise ConnectionError(f"{url} answered HTTP {status}, not a websocket: no hub there, or a "
                              f"proxy in front of it that does not pass websockets") from None


def frame_of(msg: aiohttp.WSMessage, max_frame_bytes: int) -> str | bytes:
    """A text or binary frame's data; UplinkClosed for the end of the websocket, with its reason."""
    if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
        return msg.data  # type: ignore[no-any-return]
    if msg.type is aiohttp.WSMsgType.ERROR:
        if isinstance(msg.data, aiohttp.WebSocketError) \
                and msg.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            raise UplinkClosed(f"frame from hub larger than {max_frame_bytes} bytes")
        raise UplinkClosed(f"websocket error: {msg.data}")
    raise UplinkClosed("the hub closed the websocket")


class BlockingUplink:
    """`open_uplink` for threads: `send` and `receive` block; `abort` may come from any thread.

    One event loop runs in a thread of its own for the life of the websocket; each call hands it
    a coroutine and waits for the result. `send` returns when aiohttp has taken the frames, which
    waits while the socket's buffer is full: back-pressure reaches the sending thread.
    """

    def __init__(self, hub_url: str, max_frame_bytes: int,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kb-host-websocket",
                                        daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pumping: asyncio.Future[None] | None = None
        self._received: queue.SimpleQueue[str | bytes | UplinkClosed] = queue.SimpleQueue()
        try:
            self._run(self._open(hub_url, connect_timeout))
        except BaseException:
            self.close()
            raise

    async def _open(self, hub_url: str, connect_timeout: float) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout))
        self._ws = await open_uplink(self._session, hub_url, self.max_frame_bytes)
        self._pumping = asyncio.ensure_future(self._pump())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, frames: list[str | bytes]) -> None:
        """Send frames in order; UplinkClosed when the websocket is gone."""
        if frames:
            self._run(self._send(frames))

    async def _send(self, frames: list[str | bytes]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise UplinkClosed("the websocket is closed")
        try:
            for frame in frames:
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise UplinkClosed(f"sending failed: {exc}") from None

    def receive(self) -> str | bytes:
        """The next text (str) or binary (bytes) frame; UplinkClosed at the end, with the reason."""
        item = self._received.get()
        if isinstance(item, UplinkClosed):
            self._received.put(item)  # and for any later call
            raise item
        return item

    async def _pump(self) -> None:
        """Frames from the hub into `_received`, as they come; the last item is an UplinkClosed.
        (On the compatible path the hub answers every frame: a queue wakes the link's reader
        more cheaply than a call into the loop for each one.)"""
        assert self._ws is not None
        try:
            while True:
                self._received.put(frame_of(await self._ws.receive(), self.max_frame_bytes))
        except UplinkClosed as exc:
            self._received.put(exc)
        except BaseException as exc:  # noqa: BLE001 - cancelled, or broken: the reader must learn it
            self._received.put(UplinkClosed(f"websocket error: {exc!r}"))
            raise

    def abort(self) -> None:
        """Close the websocket now, from any thread: a blocked `receive` ends with UplinkClosed."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop)

    async def _close(self) -> None:
        try:
            if self._ws is not None:
                await self._ws.close()
        finally:
            if self._pumping is not None:
                self._pumping.cancel()
            if self._session is not None:
                await self._session.close()

    def close(self) -> None:
        """Close the websocket (waiting at most CLOSE_TIMEOUT for the hub) and stop the loop."""
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(CLOSE_TIMEOUT + 1)
            except Exception:  # noqa: BLE001 - already broken, or the hub never answered
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
