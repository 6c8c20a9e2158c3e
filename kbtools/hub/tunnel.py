"""One child websocket on the hub, and the tunnelled requests that go down it (spec §3).

A :class:`ChildLink` owns the aiohttp websocket and the sans-I/O :class:`ChildConnection`; every
frame to the child goes through :meth:`ChildLink.send`, in order. A :class:`TunnelRequest` is one
request in flight: the child's response events arrive in its queue and the HTTP handler takes them
one by one, so a slow HTTP client slows the child down (the `ok` of a data frame, or the fast-path
credit, is only sent after the client took the chunk).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from aiohttp import web

from kbtools.protocol.hubconn import (
    ChildConnection, ResponseData, ResponseEnd, ResponseError, ResponseHeaders,
)
from kbtools.protocol.routing import new_request_id, tunnel_request_frames

if TYPE_CHECKING:
    from kbtools.hub.relay import DataConnection

ResponseEvent = ResponseHeaders | ResponseData | ResponseEnd | ResponseError
DATA_TOKEN_TTL = 60.0  # seconds a data connection's token is good for (and it is good only once)


class TunnelFailed(Exception):
    """The tunnelled request failed before its response headers (the text says why)."""

    def __init__(self, text: str, status: int = 502) -> None:
        super().__init__(text)
        self.status = status


class ChildLink:
    """A connected child: its websocket, its protocol state and its requests in flight."""

    def __init__(self, ws: web.WebSocketResponse, conn: ChildConnection,
                 address: str | None = None) -> None:
        self.ws = ws
        self.conn = conn
        self.address = address  # the client address of the socket
        self.requests: dict[str, TunnelRequest] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, frames: Sequence[str | bytes]) -> None:
        """Send frames in order (text or binary); a closed socket drops them quietly."""
        if not frames:
            return
        async with self._send_lock:
            for frame in frames:
                if self.ws.closed:
                    return
                try:
                    if isinstance(frame, bytes):
                        await self.ws.send_bytes(frame)
                    else:
                        await self.ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    return

    def deliver(self, event: ResponseEvent, owes_ack: bool) -> list[Any]:
        """Route a response event to its request; frames to send now (acks nobody will give later)."""
        request = self.requests.get(event.request_id)
        if request is None:  # nobody reads this response any more: let the child finish it
            if owes_ack:
                ack = self.conn.acknowledge_data()
                return [ack] if ack else []
            return self._drain_credit(event)
        if owes_ack:
            request.owed_acks += 1
        request.queue.put_nowait(event)
        return []

    def _drain_credit(self, event: ResponseEvent) -> list[Any]:
        # Fast path to a child without CANCEL: credit for the dropped bytes, so the child ends the
        # response (as the compatible path does with its immediate `ok`s) instead of waiting for
        # credit for ever. A cancelled request has no credit left to grant.
        if isinstance(event, ResponseData) and self.conn.fast_path:
            credit = self.conn.grant_credit(event.request_id, len(event.data))
            return [credit] if credit else []
        return []

    def open(self, method: str, path: str, headers: Mapping[str, Any],
             data_connection: bool = False) -> TunnelRequest:
        """Start a request (the frames are sent by :meth:`TunnelRequest.start`). `data_connection`:
        the caller relays a body that comes on a data connection (TunnelRequest.data); the child
        gets a token for one if it agreed on them."""
        rid = new_request_id()
        while rid in self.requests or rid in self.conn.credit or rid in self.conn.cancelled:
            rid = new_request_id()
        token = secrets.token_urlsafe(24) \
            if data_connection and self.conn.data_connections and method == "GET" else None
        request = TunnelRequest(self, rid, tunnel_request_frames(rid, method, path, headers,
                                                                 data_token=token))
        request.data_token = token
        self.requests[rid] = request
        self.conn.open_request(rid)
        return request

    def claim_data(self, request_id: str, token: str) -> TunnelRequest | None:
        """The request a data connection belongs to, once: its token, in time, before the headers
        came (None otherwise: a wrong token, a replay, a request that ended or is not this child's)."""
        request = self.requests.get(request_id)
        if request is None or request.data_token is None or request.finished \
                or request.head_taken or self.conn.closed:
            return None
        expected, request.data_token = request.data_token, None  # single use, right or wrong
        if time.monotonic() > request.token_expires or \
                not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii", "replace")):
            return None
        return request


class TunnelRequest:
    """One request down a child link: `start()`, then `next_event()` until end or error, `close()`."""

    def __init__(self, link: ChildLink, request_id: str, frames: list[str]) -> None:
        self.link = link
        self.request_id = request_id
        self.frames = frames
        self.queue: asyncio.Queue[ResponseEvent] = asyncio.Queue()
        self.owed_acks = 0
        self.credit_due = 0  # fast path: bytes consumed but not yet granted back
        self.finished = False
        self.data_token: str | None = None  # the data connection's one-time token, until used
        self.token_expires = time.monotonic() + DATA_TOKEN_TTL
        self.data: DataConnection | None = None  # the body's data connection, once it came
        self.head_taken = False  # the response headers were read (no data connection after)
        self.body_complete = False  # the whole body came on the data connection

    async def start(self) -> None:
        await self.link.send(self.frames)

    async def next_event(self, timeout: float) -> ResponseEvent:
        if not self.queue.empty():  # most of a download's events: no timer, no task
            return self.queue.get_nowait()
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            raise TunnelFailed(f"No response from node within {timeout:g} seconds", 504) from None

    async def consumed(self, event: ResponseData) -> None:
        """The HTTP client took this chunk: let the child send the next one."""
        conn = self.link.conn
        if self.owed_acks > 0:  # compatible path: the withheld `ok`
            self.owed_acks -= 1
            ack = conn.acknowledge_data()
            if ack:
                await self.link.send([ack])
        elif conn.fast_path:  # fast path: credit for as many bytes as the client took
            # Granted in batches of a quarter window (fewer small frames); never more than a
            # quarter window is held back, so the child always has credit or data in flight.
            self.credit_due += len(event.data)
            if self.credit_due >= max(1, conn.limits.fast_window // 4):
                credit = conn.grant_credit(self.request_id, self.credit_due)
                self.credit_due = 0
                if credit:
                    await self.link.send([credit])

    async def close(self) -> bool:
        """Forget the request; acks still owed for chunks nobody will read are sent now.

        A fast-path request whose response has not ended is cancelled: the child stops reading and
        sending it. True if a CANCEL was sent.
        """
        if self.finished:
            return False
        self.finished = True
        self.data_token = None
        if self.data is not None:
            self.data.release()
        self.link.requests.pop(self.request_id, None)
        if self.body_complete:  # its end_response follows on the websocket: nothing to cancel
            self.link.conn.close_request(self.request_id)
        cancel = self.link.conn.cancel_request(self.request_id)
        acks: list[Any] = [cancel] if cancel else []
        if not self.link.conn.fast_path:
            # Compatible path: later frames of this request get an immediate `ok` from the core (an
            # original share cannot be told to stop).
            self.link.conn.close_request(self.request_id)
        # Fast path without CANCEL: the request id stays known to the core, so data still in flight
        # (within the credit already granted) is dropped instead of being treated as a protocol
        # violation.
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if isinstance(event, ResponseData) and self.owed_acks > 0:
                self.owed_acks -= 1
                ack = self.link.conn.acknowledge_data()
                if ack:
                    acks.append(ack)
            else:
                acks += self.link._drain_credit(event)
        if self.credit_due and self.link.conn.fast_path:
            credit = self.link.conn.grant_credit(self.request_id, self.credit_due)
            self.credit_due = 0
            if credit:
                acks.append(credit)
        for _ in range(self.owed_acks):
            ack = self.link.conn.acknowledge_data()
            if ack:
                acks.append(ack)
        self.owed_acks = 0
        await self.link.send(acks)
        return cancel is not None

    async def read_json(self, timeout: float, limit: int) -> Any:
        """The whole response as JSON (for find queries to child hubs); TunnelFailed otherwise."""
        event = await self.next_event(timeout)
        if isinstance(event, ResponseError):
            raise TunnelFailed(event.error)
        if not isinstance(event, ResponseHeaders):
            raise TunnelFailed("Response without headers")
        status = event.status
        body = bytearray()
        while True:
            event = await self.next_event(timeout)
            if isinstance(event, ResponseData):
                body += event.data
                if len(body) > limit:
                    raise TunnelFailed("Response too large")
                await self.consumed(event)
            elif isinstance(event, ResponseEnd):
                break
            elif isinstance(event, ResponseError):
                raise TunnelFailed(event.error)
        if status != 200:
            raise TunnelFailed(f"Status {status}")
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise TunnelFailed("Response is not JSON") from None
