"""Data connections: the body of a tunnelled download on a connection of its own, relayed as bytes.

A kbtools share that agreed on data connections (kbtools.protocol.fastpath) answers a large download
by opening a second connection to the hub's own URL, `GET /.kbtools/data/<node id>/<request id>` with
`Upgrade: kbtools-data/1` and the request's one-time token; the hub checks it against the live
request of that share (:meth:`ChildLink.claim_data`), answers `101 Switching Protocols`, and the share
sends the body's raw bytes (from the file with sendfile where it can). The response headers, the end
and errors still come on the websocket, signed.

The hub moves the body to its HTTP client with as few copies as the OS allows:

- plain TCP on both sides where the OS has `splice` (Linux): the bytes move socket -> pipe -> socket
  in the kernel, never into Python, on event-loop callbacks, at most one pipe (1 MiB) in between;
- anywhere else (TLS, macOS): the upgraded connection's bytes arrive through aiohttp into a bounded
  buffer (reading pauses past it) and are written to the client by aiohttp.

Either way a slow client slows the share (TCP's own flow control, end to end), a client that goes
away closes the data connection (the share's send fails and it stops reading), and a share that
closes early or stalls breaks the client's transfer, which never looks complete.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kbtools.protocol import fastpath

if TYPE_CHECKING:
    from kbtools.hub.server import Hub
    from kbtools.hub.tunnel import TunnelRequest

PIPE_BYTES = 1024 * 1024  # the kernel pipe between the two sockets (splice)
LOWAT_BYTES = 256 * 1024  # splice: the share's bytes are taken in steps of at least this much
NOTSENT_BYTES = 256 * 1024  # splice: the client's socket is refilled when less is left unsent
BUFFER_BYTES = 2 * 1024 * 1024  # portable path: bytes read ahead of the client before reading pauses
HAS_SPLICE = hasattr(os, "splice") and sys.platform.startswith("linux")


class RelayFailed(Exception):
    """The body could not be relayed whole (the text says why)."""


class _Feeder:
    """aiohttp's payload-parser interface: an upgraded connection's bytes into a bounded buffer."""

    def __init__(self, transport: asyncio.Transport, limit: int = BUFFER_BYTES) -> None:
        self.transport = transport
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.chunks.append(bytes(data))
            self.size += len(data)
            if self.size >= self.limit and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, timeout: float) -> bytes:
        while not self.chunks:
            if self.eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except asyncio.TimeoutError:
                raise RelayFailed(f"no data from the share for {timeout:g} s") from None
            finally:
                self._waiter = None
        chunk = self.chunks.popleft()
        self.size -= len(chunk)
        if self.paused and self.size < self.limit // 2 and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()
        return chunk


class DataConnection:
    """An accepted data connection, waiting for its request's headers, then relayed once."""

    def __init__(self, transport: asyncio.Transport, raw_fd: int | None,
                 feeder: _Feeder | None) -> None:
        self.transport = transport
        self.raw_fd = raw_fd  # our own duplicate of the socket (splice mode: aiohttp reads nothing)
        self.feeder = feeder
        self.released = asyncio.Event()

    def release(self) -> None:
        """The request is over: the connection is closed by the handler that accepted it."""
        self.released.set()

    def close(self) -> None:
        if self.raw_fd is not None:
            os.close(self.raw_fd)
            self.raw_fd = None
        self.transport.abort()

    async def relay(self, request: web.Request, response: web.StreamResponse, length: int,
                    read_timeout: float, write_timeout: float) -> None:
        """Move `length` body bytes to the prepared `response`; RelayFailed or ConnectionError."""
        client = _plain_socket(request)
        if self.raw_fd is not None and client is not None:
            await _flushed(request, write_timeout)
            await _splice(self.raw_fd, client.fileno(), length, read_timeout, write_timeout)
            return
        if self.feeder is None:  # raw connection, client without a plain socket (TLS)
            assert self.raw_fd is not None
            self.feeder = await _raw_reader(self.raw_fd, self.transport)
        left = length
        while left > 0:
            chunk = await self.feeder.read(read_timeout)
            if not chunk:
                raise RelayFailed("the share closed the data connection early")
            if len(chunk) > left:
                raise RelayFailed("the share sent more than the announced length")
            left -= len(chunk)
            try:
                await asyncio.wait_for(response.write(chunk), write_timeout)
            except asyncio.TimeoutError:
                raise RelayFailed("the client did not take the data in time") from None


async def accept(hub: Hub, request: web.Request) -> web.StreamResponse:
    """A data connection (`Upgrade: kbtools-data/1`): its request's body, or a refusal."""
    parts = request.raw_path.split("?", 1)[0].rstrip("/").split("/")
    token = request.headers.get(fastpath.DATA_TOKEN_HEADER, "")
    tunnel = None
    if len(parts) >= 4 and "/".join(parts[-4:-2]) == fastpath.DATA_PATH:
        node_id, rid = parts[-2], parts[-1]
        conn = hub.registry.leaves.get(node_id)
        link = hub.links.get(conn) if conn is not None else None
        if link is not None and token:
            tunnel = link.claim_data(rid, token)
    if tunnel is None:
        hub._count("data_connections_refused")
        response = web.json_response({"success": False, "error": "Forbidden"}, status=403)
        response.force_close()
        return response
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    raw = HAS_SPLICE and sock is not None and transport.get_extra_info("sslcontext") is None
    raw_fd = None
    if raw:  # nothing more goes through aiohttp: the share waits for our 101 before sending
        transport.pause_reading()
        raw_fd = os.dup(sock.fileno())
    data = DataConnection(transport, raw_fd, None)
    try:
        upgraded = web.StreamResponse(status=101, headers={
            "Upgrade": fastpath.DATA_UPGRADE, "Connection": "Upgrade"})
        await upgraded.prepare(request)
        if not raw:
            data.feeder = _Feeder(transport)
            request.protocol.set_parser(data.feeder)  # type: ignore[arg-type]
        tunnel.data = data
        hub._count("data_connections")
        await data.released.wait()
        return upgraded
    finally:
        data.close()


def _plain_socket(request: web.Request) -> Any:
    transport = request.transport
    if not HAS_SPLICE or transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    return transport.get_extra_info("socket")


async def _flushed(request: web.Request, timeout: float) -> None:
    """Until aiohttp's own buffer (the response head) went to the kernel: then bytes go around it."""
    transport = request.transport
    deadline = time.monotonic() + timeout
    while transport is not None and transport.get_write_buffer_size():
        if transport.is_closing():
            raise ConnectionResetError("client gone")
        if time.monotonic() > deadline:
            raise RelayFailed("the client did not take the response head in time")
        await asyncio.sleep(0.005)


async def _raw_reader(fd: int, transport: asyncio.Transport) -> _Feeder:
    """A feeder filled from our duplicate of a raw data connection (a TLS client on a plain hub
    socket: never with one listening socket, kept for completeness)."""
    feeder = _Feeder(transport)
    sock = socket.socket(fileno=os.dup(fd))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()

    async def pump() -> None:
        try:
            while True:
                while feeder.size >= feeder.limit:
                    await asyncio.sleep(0.01)
                data = await loop.sock_recv(sock, 256 * 1024)
                if not data:
                    break
                feeder.feed_data(data)
        except OSError:
            pass
        finally:
            feeder.feed_eof()
            sock.close()

    task = asyncio.ensure_future(pump())
    feeder.transport = _NoPause(task)  # type: ignore[assignment]
    return feeder


class _NoPause:
    """The raw reader applies its own bound: pausing is a no-op; closing stops the pump."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.task.done()


async def _splice(src: int, dst: int, length: int, read_timeout: float,
                  write_timeout: float) -> None:
    """Move `length` bytes from socket `src` to socket `dst` through a kernel pipe, driven by the
    event loop (no thread: ten relays at once would spend their time handing the GIL around)."""
    splice = _Splice(asyncio.get_running_loop(), src, dst, length, read_timeout, write_timeout)
    try:
        result = await splice.done
    finally:
        splice.stop()
    if result == "client gone":
        raise ConnectionResetError(result)
    if result is not None:
        raise RelayFailed(result)


class _Splice:
    """The state of one in-kernel relay: socket -> pipe -> socket, non-blocking, on loop callbacks.

    At most the pipe (1 MiB) is held between the two sockets; reading the share stops while the
    pipe is full, so a slow client slows the share through TCP's own flow control.
    """

    BURST = 16  # splice calls per callback at most, so that other connections get their turn

    def __init__(self, loop: asyncio.AbstractEventLoop, src: int, dst: int, length: int,
                 read_timeout: float, write_timeout: float) -> None:
        import fcntl
        self.loop = loop
        # Our own duplicates: the client's transport may close its descriptor while we run, and
        # the loop's selector must not see the transports' own descriptors registered twice.
        self.src, self.dst = os.dup(src), os.dup(dst)
        self.r, self.w = os.pipe()
        try:
            fcntl.fcntl(self.w, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
            self.cap = fcntl.fcntl(self.w, getattr(fcntl, "F_GETPIPE_SZ", 1032))
        except OSError:
            self.cap = 64 * 1024
        self.left, self.inpipe = length, 0
        # Woken when a good part of the pipe can be filled at once, not for every segment: the
        # loop's cost is per wake-up. (The end of the body, or the share's FIN, wakes it too.)
        self.src_sock = socket.socket(fileno=os.dup(self.src))
        self.lowat = 0
        self._set_lowat(min(LOWAT_BYTES, length))
        # Likewise the client's side: writable once its unsent queue is short, not for each
        # segment the client took (restored after the relay: 0 is the system's default).
        self.dst_sock = socket.socket(fileno=os.dup(self.dst))
        self._notsent(NOTSENT_BYTES)
        self.read_timeout, self.write_timeout = read_timeout, write_timeout
        self.last_read = self.last_write = time.monotonic()
        self.reading = self.writing = False
        self.done: asyncio.Future[str | None] = loop.create_future()
        self.timer = loop.call_later(1.0, self._check)
        self._pump()

    def _set_lowat(self, nbytes: int) -> None:
        if nbytes != self.lowat and hasattr(socket, "SO_RCVLOWAT"):
            try:
                self.src_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, nbytes))
                self.lowat = nbytes
            except OSError:
                pass

    def _notsent(self, nbytes: int) -> None:
        option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
        if option is not None:
            try:
                self.dst_sock.setsockopt(socket.IPPROTO_TCP, option, nbytes)
            except OSError:
                pass

    def _finish(self, result: str | None) -> None:
        if not self.done.done():
            self.done.set_result(result)
        self.stop()

    def stop(self) -> None:
        if self.src < 0:
            return
        self.timer.cancel()
        if self.reading:
            self.loop.remove_reader(self.src)
        if self.writing:
            self.loop.remove_writer(self.dst)
        self.reading = self.writing = False
        self._set_lowat(1)  # the socket is shared with the transport (closed after us anyway)
        self.src_sock.close()
        self._notsent(0)
        self.dst_sock.close()
        for fd in (self.src, self.dst, self.r, self.w):
            os.close(fd)
        self.src = self.dst = self.r = self.w = -1
        if not self.done.done():
            self.done.set_result("stopped")

    def _check(self) -> None:
        now = time.monotonic()
        if self.writing and now - self.last_write > self.write_timeout:
            self._finish("the client did not take the data in time")
        elif self.reading and now - self.last_read > self.read_timeout:
            self._finish(f"no data from the share for {self.read_timeout:g} s")
        elif self.src >= 0:
            self.timer = self.loop.call_later(1.0, self._check)

    def _pump(self) -> None:
        if self.src < 0:
            return
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        read = wrote = False
        for _ in range(self.BURST):
            moved = False
            if self.left and self.inpipe < self.cap:
                try:
                    n = os.splice(self.src, self.w, min(self.left, self.cap - self.inpipe),
                                  flags=flags)
                except BlockingIOError:
                    n = -1
                except OSError:
                    return self._finish("the data connection broke")
                if n == 0:
                    return self._finish("the share closed the data connection early")
                if n > 0:
                    self.left -= n
                    self.inpipe += n
                    moved = read = True
                    if self.left < self.lowat:
                        self._set_lowat(self.left)
            if self.inpipe:
                try:
                    m = os.splice(self.r, self.dst, self.inpipe, flags=flags)
                except BlockingIOError:
                    m = -1
                except OSError:
                    return self._finish("client gone")
                if m > 0:
                    self.inpipe -= m
                    moved = wrote = True
            if not self.left and not self.inpipe:
                return self._finish(None)
            if not moved:
                break
        now = time.monotonic()
        if read:
            self.last_read = now
        if wrote:
            self.last_write = now
        want_read = bool(self.left) and self.inpipe < self.cap
        want_write = self.inpipe > 0
        if want_read != self.reading:
            if want_read:
                self.loop.add_reader(self.src, self._pump)
                self.last_read = now
            else:
                self.loop.remove_reader(self.src)
            self.reading = want_read
        if want_write != self.writing:
            if want_write:
                self.loop.add_writer(self.dst, self._pump)
                self.last_write = now
            else:
                self.loop.remove_writer(self.dst)
            self.writing = want_write
        if moved:  # the burst ended with bytes still moving: go on after the others' turn
            self.loop.call_soon(self._pump)
