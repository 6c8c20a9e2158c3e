"""The share's websocket link to its parent hub, in threads (the websocket: kbtools.node.uplink).

`HubLink.run()` connects, registers with the signed envelope, reports the node data (1 s after
registration, then every 5 s: the hub's heartbeat; sooner when the index changed), and serves tunnelled
requests; after any failure it reconnects with a growing delay (1 s doubling up to 10 s, with
jitter). A refusal of the registration is a `refused` event; one that no retry can heal (a wrong
passcode, see `HubError.permanent`) ends `run()` unless `retry_forever`. The protocol itself (frames, polite alternation, flow control) is
`kbtools.protocol.leafconn.ParentLink`; this module only moves its frames.

A tunnelled request is replayed against the share's own HTTP server, as the original share does, so
both ways of asking get the same answer (Range, ETag, HEAD, errors); a file download asks it with HEAD
and reads the announced bytes from disk. A body is read only as fast as the link may send it: at most
a few 64 KiB frames wait for the hub's `ok` on the compatible path, at most the granted credit on the
fast path. Memory stays flat whatever the file size.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import requests

from kbtools.client import tls
from kbtools.node.config import websocket_url
from kbtools.node.uplink import BlockingUplink, UplinkClosed
from kbtools.protocol import fastpath
from kbtools.protocol.errors import LocalProtocolError
from kbtools.protocol.leafconn import (
    DEFAULT_MAX_FRAME, HubError, ParentLink, Reached, Registered, RequestCancelled, RequestStarted,
    TopHubUrl,
)
from kbtools.protocol.messages import InitiateRequest
from kbtools.protocol.policy import (
    MAX_RETRY, describe_failure, replay_headers, request_error, retry_delays,
)
from kbtools.protocol.routing import HOP_BY_HOP, decode_tunnel_path
from kbtools.share.access import tunnel_headers

log = logging.getLogger("kbtools.share")

FIRST_REPORT_DELAY = 1.0
REPORT_INTERVAL = 5.0  # the hub closes a link silent for 60 s; reports are the heartbeat
MIN_REPORT_GAP = 1.0  # an index change is reported this soon after the previous report, not sooner
STALL_TIMEOUT = 60.0  # no frame from the hub for this long while we wait for one: the link is dead
CONNECT_TIMEOUT = 10.0
MAX_REQUESTS = 64  # tunnelled requests served at once
FAST_CHUNK = 1024 * 1024
DATA_RETRY = 60.0  # after a refused data connection, bodies go on the websocket this long
CANCEL_GRACE = 2.0  # a broken data connection: seconds to wait for the hub's CANCEL


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class NodeData:
    """One published state of the share's index: the node data and its object_hash."""

    data: dict[str, Any]
    data_hash: str
    version: int


@dataclass
class CertificateRefusal:
    """The hub's TLS certificate did not verify: no retry heals it (a refusal, as a wrong passcode)."""

    text: str
    permanent: bool = True


class _Gone(Exception):
    """The connection a tunnel worker belonged to is gone."""


class HubLink:
    """The link to the parent hub; `run()` blocks until `stop()` (see the module docstring)."""

    tunnel_key = ""  # put in each replayed request's X-Kbtools-Tunnel header (kbtools.share.access)

    def __init__(self, link: ParentLink, hub_url: str, local_url: str,
                 node_data: Callable[[], NodeData], on_event: Callable[[dict[str, Any]], None],
                 say: Callable[[str], None], *, max_retry: float = MAX_RETRY,
                 stall_timeout: float = STALL_TIMEOUT, retry_forever: bool = False,
                 local_file: Callable[[str], Path | None] = lambda path: None) -> None:
        self.link = link
        self.hub_url = hub_url.rstrip("/")
        self.ws_url = websocket_url(hub_url)
        self.local_url = local_url
        self.node_data = node_data
        self.on_event = on_event
        self.say = say
        self.max_retry = max_retry
        self.stall_timeout = stall_timeout
        self.retry_forever = retry_forever
        self.local_file = local_file  # the file a tunnelled path downloads, if it is one
        self._stop = threading.Event()
        self._lock = threading.Condition(threading.RLock())
        self._ws: BlockingUplink | None = None
        self._generation = 0
        self._last_received = 0.0
        self._hub_error: str | None = None
        self._refusal: HubError | None = None  # the hub's error before it registered us
        self._requests = threading.BoundedSemaphore(MAX_REQUESTS)
        self._cancelled: dict[str, int] = {}  # request id -> bytes sent, until its worker stops
        self._data_socks: dict[str, socket.socket] = {}  # request id -> its data connection
        self._data_sent: dict[str, int] = {}  # request id -> body bytes sent on it so far
        self._data_refused_at: float | None = None  # the last refused data connection
        self.connections = 0  # successful registrations so far
        self.parent_info: dict[str, Any] | None = None

    # -- life cycle

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()
        with self._lock:
            self._lock.notify_all()

    def run(self) -> None:
        delays = retry_delays(cap=self.max_retry)
        while not self._stop.is_set():
            registered, reason = self._one_connection()
            if self._stop.is_set():
                break
            if registered:
                delays = retry_delays(cap=self.max_retry)
            delay = next(delays)
            refusal = None if registered else self._refusal
            if refusal is None:
                self.on_event({"event": "disconnected", "reason": reason, "retry_in": delay})
            else:
                give_up = refusal.permanent and not self.retry_forever
                self.on_event({"event": "refused", "parent_hub_url": self.hub_url,
                               "reason": refusal.text, "permanent": refusal.permanent,
                               "retry_in": None if give_up else delay})
                if give_up:
                    self.say(f"{reason}; not retrying: this refusal does not heal by itself")
                    return
            self.say(f"{reason}; retrying in {delay:.0f} s")
            self._stop.wait(delay)

    # -- one connection

    def _one_connection(self) -> tuple[bool, str]:
        """Connect, register and serve until the link breaks; (registered?, why it ended)."""
        self._hub_error = None
        self._refusal = None
        try:
            # wss:// (an https:// hub, spec §2.1) verifies the hub's certificate (kbtools.client.tls)
            ws = BlockingUplink(self.hub_url, self.link.max_frame_bytes, CONNECT_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - refused, DNS, HTTP status: all retried
            if tls.is_certificate_error(exc):  # never retried as plain text, nor silently
                message = tls.certificate_message(self.ws_url, exc)
                self._refusal = CertificateRefusal(message)  # type: ignore[assignment]
                return False, message
            return False, f"connection to parent hub {self.hub_url} failed: {describe_failure(exc)}"
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._ws = ws
            self._last_received = time.monotonic()
        closed = threading.Event()
        reader = threading.Thread(target=self._read, args=(ws, generation, closed),
                                  name="kb-host-link-reader", daemon=True)
        reader.start()
        try:
            with self._lock:
                self._send(self.link.connection_opened(now_ms()))
            self._tick(ws, closed)
        except UplinkClosed:
            pass  # a send found the websocket gone: the reader ends too, and says why if it knows
        finally:
            with self._lock:
                self._generation += 1  # tunnel workers of this connection stop
                registered = self.link.registered
                self.link.connection_lost()
                self._ws = None
                self._lock.notify_all()
            ws.close()
            reader.join(5)
        if self._hub_error:
            what = "refused the registration" if not registered else "closed the link"
            return registered, f"parent hub {what}: {self._hub_error}"
        return registered, f"lost the connection to parent hub {self.hub_url}"

    def _tick(self, ws: BlockingUplink, closed: threading.Event) -> None:
        """Report node data on schedule and watch for a stalled hub, until the reader stops."""
        next_report: float | None = None
        last_report = 0.0
        reported_version = -1
        while not closed.wait(0.2):
            if self._stop.is_set():
                return
            now = time.monotonic()
            with self._lock:
                registered = self.link.registered
                stalled = self.link.awaiting_response and now - self._last_received > self.stall_timeout
            if stalled:
                self._hub_error = f"no answer for {self.stall_timeout:g} s"
                return
            if not registered:
                continue
            if next_report is None:
                next_report = now + FIRST_REPORT_DELAY
            current = self.node_data()
            due = now >= next_report or (current.version != reported_version
                                         and now - last_report >= MIN_REPORT_GAP)
            if due:
                with self._lock:
                    self._send(self.link.report_node_data(current.data, now_ms(), current.data_hash))
                reported_version, last_report = current.version, now
                next_report = now + REPORT_INTERVAL

    def _read(self, ws: BlockingUplink, generation: int, closed: threading.Event) -> None:
        try:
            while True:
                frame = ws.receive()
                with self._lock:
                    if generation != self._generation:
                        return
                    self._last_received = time.monotonic()
                    out = self.link.receive_frame(frame, now_ms())
                    for event in out.events:
                        if isinstance(event, RequestCancelled):
                            # Noted before the lock is released: its worker stops at its next step
                            # (it needs the lock to see the request closed) and then reports it.
                            self._cancelled[event.request_id] = event.sent_bytes
                            data = self._data_socks.get(event.request_id)
                            if data is not None:  # its sendfile stops now
                                _shutdown(data)
                    self._send(out.send)
                    self._lock.notify_all()  # budgets may have grown
                for event in out.events:
                    self._handle(event, generation)
                if out.close:
                    self._hub_error = self._hub_error or out.close_reason
                    return
        except UplinkClosed as exc:
            if exc.args[0].startswith("frame from hub"):
                self._hub_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any socket error ends this connection
            log.debug("link reader: %s", describe_failure(exc))
        finally:
            closed.set()

    def _handle(self, event: Any, generation: int) -> None:
        if isinstance(event, Registered):
            self.connections += 1
            self.parent_info = event.parent_info
            self.on_event({"event": "registered", "parent_hub": event.parent_info,
                           "fast_path": event.fast_path, "connections": self.connections,
                           "reachability_pending": event.reachability_pending})
        elif isinstance(event, Reached):
            self.on_event({"event": "reachability", "reachable": event.reachable,
                           "reason": event.reason})
        elif isinstance(event, HubError):
            self._hub_error = event.text
            if not self.link.registered:
                self._refusal = event
        elif isinstance(event, TopHubUrl):
            pass  # a share stores it and never uses it (spec §2.8)
        elif isinstance(event, RequestStarted):
            if self._requests.acquire(blocking=False):
                threading.Thread(target=self._serve, args=(event.request, generation),
                                 name="kb-host-tunnel", daemon=True).start()
            else:
                try:
                    self._call(generation, lambda t: self.link.report_error(
                        event.request.request_id, "Error in request: too many requests", t))
                except _Gone:
                    pass

    def _send(self, frames: list[str | bytes]) -> None:
        """Send frames in order (the caller holds the lock); a failure ends the connection."""
        ws = self._ws
        if ws is None:
            return
        ws.send(frames)

    def _call(self, generation: int, make: Callable[[int], list[str | bytes]]) -> None:
        with self._lock:
            if generation != self._generation or self._ws is None:
                raise _Gone
            try:
                frames = make(now_ms())
            except LocalProtocolError:
                raise _Gone from None
            try:
                self._send(frames)
            except Exception:  # noqa: BLE001 - the reader sees the broken socket too
                raise _Gone from None

    def _budget(self, generation: int, request_id: str) -> int:
        """Wait until the link may take response bytes for this request."""
        with self._lock:
            while True:
                if generation != self._generation or self._stop.is_set() \
                        or request_id not in self.link.open_requests:  # cancelled by the hub
                    raise _Gone
                n = self.link.response_budget(request_id)
                if n > 0:
                    return n
                self._lock.wait(1.0)

    # -- tunnelled requests

    def _serve(self, request: InitiateRequest, generation: int) -> None:
        rid = request.request_id
        try:
            self._replay(request, generation)
        except _Gone:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the hub, never raised
            log.debug("tunnel %s: %s", rid, describe_failure(exc))
            try:
                self._call(generation, lambda t: self.link.report_error(rid, request_error(exc), t))
            except _Gone:
                pass
        finally:
            self._requests.release()
            sent = self._cancelled.pop(rid, None)
            on_data = self._data_sent.pop(rid, None)
            if sent is not None and on_data is not None:
                sent += on_data
            if sent is not None:
                self.on_event({"event": "request_cancelled", "request_id": rid, "sent_bytes": sent})

    def _replay(self, request: InitiateRequest, generation: int) -> None:
        """Ask the share's own server; a file's bytes are then read from disk, not through it.

        For a GET of a file the server is asked with HEAD (same headers: Range, If-None-Match, ...),
        so it decides status and headers exactly as for a direct request, and the body comes from
        the file itself: one copy less, and no second HTTP stream per download.
        """
        rid = request.request_id
        path = decode_tunnel_path(request.path)
        url = f"{self.local_url}/{quote(path, safe='/')}"
        headers = {k: v for k, v in replay_headers(request.headers).items()
                   if k.lower() != "accept-encoding"}
        headers["Accept-Encoding"] = "identity"  # the body goes up as the file's bytes
        headers = tunnel_headers(headers, request.query, self.tunnel_key, request.method)
        local = self.local_file(path) if request.method == "GET" else None
        if local is not None:
            with requests.head(url, headers=headers, allow_redirects=False, timeout=(10, 60)) as resp:
                span = _body_span(resp)
            if span is not None:
                data = self._open_data(request, span[1])
                if data is not None:
                    try:
                        self._send_headers(generation, rid, resp)
                        self._send_on_data(generation, rid, data, local, *span)
                    finally:
                        self._data_socks.pop(rid, None)
                        data.close()
                    self._call(generation, lambda t: self.link.end_response(rid, t))
                    return
                self._send_headers(generation, rid, resp)
                self._stream_file(generation, rid, local, *span)
                self._call(generation, lambda t: self.link.end_response(rid, t))
                return
        with requests.request(request.method, url, headers=headers, stream=True,
                              allow_redirects=False, timeout=(10, 60)) as resp:
            self._send_headers(generation, rid, resp)
            if request.method != "HEAD":
                while True:
                    budget = self._budget(generation, rid)
                    chunk = resp.raw.read(min(budget, FAST_CHUNK), decode_content=False)
                    if not chunk:
                        break
                    self._call(generation, lambda t: self.link.send_response_data(rid, chunk, t))
        self._call(generation, lambda t: self.link.end_response(rid, t))

    # -- data connections (kbtools.protocol.fastpath)

    def _open_data(self, request: InitiateRequest, length: int) -> socket.socket | None:
        """This download's data connection to the hub's own URL, upgraded; None: the body goes on
        the websocket (not agreed, a small body, or refused: then not tried for DATA_RETRY s)."""
        if not (self.link.data_connections and request.data_token) \
                or length < fastpath.DATA_MIN_BYTES:
            return None
        if self._data_refused_at is not None \
                and time.monotonic() - self._data_refused_at < DATA_RETRY:
            return None
        try:
            sock = open_data_connection(self.hub_url, self.link.signer.node_id, request.request_id,
                                        request.data_token)
        except OSError as exc:  # refused upgrade, a proxy in between, TLS, network: websocket then
            if self._data_refused_at is None:
                self.say(f"data connection to {self.hub_url} refused ({describe_failure(exc)}); download "
                         f"bodies go on the websocket")
            self._data_refused_at = time.monotonic()
            return None
        self._data_refused_at = None
        self._data_socks[request.request_id] = sock
        return sock

    def _send_on_data(self, generation: int, rid: str, sock: socket.socket, path: Path,
                      start: int, length: int) -> None:
        """The file's bytes on the data connection: sendfile where the socket is plain TCP."""
        self._data_sent[rid] = 0
        try:
            with open(path, "rb") as f:
                sent = 0
                use_sendfile = hasattr(os, "sendfile") and not isinstance(sock, ssl.SSLSocket)
                if not use_sendfile:
                    f.seek(start)
                while sent < length:
                    if use_sendfile:
                        n = _sendfile(sock, f, start + sent, length - sent)
                    else:
                        chunk = f.read(min(FAST_CHUNK, length - sent))
                        sock.sendall(chunk)
                        n = len(chunk)
                    if n <= 0:
                        break  # the file shrank: the hub sees a short body and breaks the transfer
                    sent += n
                    self._data_sent[rid] = sent
        except OSError:
            # The hub closed it: its client went away (a CANCEL is on its way) or it broke.
            with self._lock:
                self._lock.wait_for(lambda: rid not in self.link.open_requests
                                    or generation != self._generation, CANCEL_GRACE)
                if rid not in self.link.open_requests or generation != self._generation:
                    raise _Gone from None
            raise
        if sent < length:
            raise OSError("the file is shorter than announced")

    def _send_headers(self, generation: int, rid: str, resp: requests.Response) -> None:
        answer_headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        self._call(generation, lambda t: self.link.send_response_headers(
            rid, resp.status_code, resp.reason or "", answer_headers, t))

    def _stream_file(self, generation: int, rid: str, path: Path, start: int, length: int) -> None:
        with open(path, "rb") as f:
            f.seek(start)
            while length > 0:
                budget = self._budget(generation, rid)
                chunk = f.read(min(budget, FAST_CHUNK, length))
                if not chunk:
                    break  # the file shrank: the client sees a short body (and its SHA-1 check fails)
                length -= len(chunk)
                self._call(generation, lambda t: self.link.send_response_data(rid, chunk, t))


def connect_to_hub(hub_url: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A connection to the hub's host and port: TLS for https:// (and wss://), the certificate
    verified as kbtools.client.tls says."""
    parts = urlsplit(hub_url)
    secure = parts.scheme in ("https", "wss")
    host = parts.hostname or "localhost"
    sock = socket.create_connection((host, parts.port or (443 if secure else 80)), timeout=timeout)
    if not secure:
        return sock
    try:
        return tls.ssl_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def open_data_connection(hub_url: str, node_id: str, request_id: str, token: str,
                         timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """Connect to the hub's own URL (TLS for https://, verified as the websocket is) and upgrade to
    a data connection for this request; OSError when refused (the reason in its text)."""
    parts = urlsplit(hub_url)
    sock = connect_to_hub(hub_url, timeout)
    try:
        host_header = parts.netloc.rsplit("@", 1)[-1]
        target = f"{parts.path.rstrip('/')}/{fastpath.data_path(node_id, request_id)}"
        sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n"
                      f"Connection: Upgrade\r\nUpgrade: {fastpath.DATA_UPGRADE}\r\n"
                      f"{fastpath.DATA_TOKEN_HEADER}: {token}\r\n\r\n").encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            more = sock.recv(4096)
            if not more or len(head) > 16384:
                raise OSError("no answer to the upgrade")
            head += more
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        upgrade = [line.split(":", 1)[1].strip().lower() for line in lines[1:]
                   if line.lower().startswith("upgrade:")]
        if len(status) < 2 or status[1] != "101" or upgrade != [fastpath.DATA_UPGRADE] or rest:
            raise OSError(f"upgrade refused: {lines[0][:100]}")
        sock.settimeout(STALL_TIMEOUT)
        return sock
    except BaseException:
        sock.close()
        raise


def _sendfile(sock: socket.socket, f: Any, offset: int, count: int) -> int:
    """One os.sendfile step (file -> socket in the kernel): the bytes sent, waiting (up to the
    socket's timeout) until it can take some; 0 at the end of the file."""
    while True:
        try:
            return os.sendfile(sock.fileno(), f.fileno(), offset, count)
        except BlockingIOError:
            _, writable, _ = select.select([], [sock], [], sock.gettimeout())
            if not writable:
                raise TimeoutError("the hub took no data") from None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _body_span(resp: requests.Response) -> tuple[int, int] | None:
    """(offset, length) of the file bytes a HEAD answer announces; None: not a plain file body."""
    if resp.status_code not in (200, 206) or "content-encoding" in resp.headers:
        return None
    try:
        length = int(resp.headers["content-length"])
        if resp.status_code == 200:
            return 0, length
        unit, _, rest = resp.headers["content-range"].partition(" ")
        first = int(rest.split("-", 1)[0])
    except (KeyError, ValueError):
        return None
    return (first, length) if unit == "bytes" else None
