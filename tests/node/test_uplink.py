"""The websocket to a parent hub, as a share's threads use it (kbtools.node.uplink.BlockingUplink),
against a real aiohttp websocket server on loopback."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Iterator

import pytest
from aiohttp import WSMsgType, web

from kbtools.node.uplink import BlockingUplink, UplinkClosed
from tests.netfixtures import free_port


class EchoHub:
    """Answers each frame with the same frame; `BIG n` is answered with a frame of n bytes, `CLOSE`
    by closing. Every frame received is kept in `seen`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        app = web.Application()
        app.router.add_get("/", self.handle)
        app.router.add_get("/page", self.page)
        self.runner = web.AppRunner(app, handle_signals=False)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.thread.start()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            self.seen.append(msg.data)
            if msg.type is WSMsgType.TEXT and msg.data.startswith("BIG "):
                await ws.send_str("x" * int(msg.data[4:]))
            elif msg.type is WSMsgType.TEXT and msg.data == "CLOSE":
                await ws.close()
            elif msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            else:
                await ws.send_bytes(msg.data)
        return ws

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="a web page")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def hub() -> Iterator[EchoHub]:
    h = EchoHub()
    yield h
    h.stop()


def test_frames_go_in_order_and_come_back_as_text_or_bytes(hub):
    up = BlockingUplink(hub.url, 1 << 20)
    try:
        frames: list[str | bytes] = ["one", b"\x00two", "é" * 1000, bytes(300_000)]
        up.send(frames)
        assert [up.receive() for _ in frames] == frames
        assert hub.seen == frames
    finally:
        up.close()


def test_a_frame_over_the_limit_ends_the_link_with_its_reason(hub):
    up = BlockingUplink(hub.url, 1000)
    try:
        up.send(["BIG 1000"])
        assert up.receive() == "x" * 1000  # at the limit: taken
        up.send(["BIG 1001"])
        with pytest.raises(UplinkClosed, match="frame from hub larger than 1000 bytes"):
            up.receive()
        with pytest.raises(UplinkClosed):  # and every later call says so too
            up.receive()
    finally:
        up.close()


def test_the_hub_closing_ends_receive_and_send(hub):
    up = BlockingUplink(hub.url, 1 << 20)
    try:
        up.send(["CLOSE"])
        with pytest.raises(UplinkClosed, match="closed"):
            up.receive()
        with pytest.raises(UplinkClosed):
            up.send(["after"])
    finally:
        up.close()


def test_abort_from_another_thread_ends_a_blocked_receive(hub):
    up = BlockingUplink(hub.url, 1 << 20)
    ended: list[BaseException] = []

    def reader() -> None:
        try:
            up.receive()
        except UplinkClosed as exc:
            ended.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)  # most likely blocked in receive by now; an abort before it ends it the same way
    up.abort()
    t.join(10)
    try:
        assert not t.is_alive() and len(ended) == 1
    finally:
        up.close()
    assert not up._thread.is_alive()  # close() stops the event loop's thread


@pytest.mark.parametrize("path, status", [("/nothing", "404 Not Found"), ("/page", "200 OK")])
def test_a_server_that_is_not_a_hub_is_named_with_its_answer(hub, path, status):
    with pytest.raises(ConnectionError) as caught:
        BlockingUplink(hub.url + path, 1 << 20)
    assert str(caught.value) == (f"ws://127.0.0.1:{hub.port}{path} answered HTTP {status}, not a "
                                 f"websocket: no hub there, or a proxy in front of it that does not "
                                 f"pass websockets")


def test_nothing_listening_is_an_oserror_and_leaves_no_thread():
    before = threading.active_count()
    with pytest.raises(OSError):
        BlockingUplink(f"http://127.0.0.1:{free_port()}", 1 << 20, connect_timeout=5)
    assert threading.active_count() == before
