"""``GET|HEAD /sha1/<sha1>[/<name>]``: a content by its SHA-1, from any share below the hub, in a
form any HTTP cache (nginx ``proxy_cache``, a CDN, a browser) can keep for ever.

- The hub's ``find`` lists the copies (its own shares first, then those below its child hubs); the
  first that answers 200/206 serves. A copy that fails before its first byte is passed over for the
  next; one that fails part-way is continued from the next copy by a Range request for the rest.
- ``ETag: "<sha1>"``, ``Cache-Control: public, max-age=31536000, immutable``, ``Accept-Ranges``,
  ``Content-Disposition`` with the name (else the SHA-1), ``Content-Type: application/octet-stream``.
  ``If-None-Match`` with the ETag is a 304 at once: the bytes of a SHA-1 never change.
- A whole answer (200) is hashed as it goes; if its SHA-1 or its length turns out wrong at the end,
  the connection is aborted instead of ended, so the client and every cache in between see a broken
  transfer and keep nothing. A Range answer (206) cannot be hashed by the hub: its length is checked,
  and the client checks the whole (kb-get does).
- Not found: 404 with ``Cache-Control: no-store`` (it may appear later); no copy works: 502.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from kbtools.protocol.hubconn import ResponseData, ResponseEnd, ResponseHeaders
from kbtools.protocol.routing import InvalidResponse, check_response_head

if TYPE_CHECKING:
    from kbtools.hub.server import Hub

SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
MAX_AGE = 365 * 24 * 3600
CACHE_CONTROL = f"public, max-age={MAX_AGE}, immutable"
NO_STORE = "no-store"
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _CopyFailed(Exception):
    """This copy cannot serve (before or during its body): try the next one."""


def _error(text: str, status: int) -> web.Response:
    """As every error of the API (spec §4.1), never to be cached."""
    return web.Response(text=json.dumps({"success": False, "error": text}, indent=4), status=status,
                        content_type="application/json", charset="utf-8",
                        headers={"Cache-Control": NO_STORE, "Access-Control-Allow-Origin": "*"})


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fall-back name and the UTF-8 one (RFC 6266 / 5987)."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _copies(answer: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(share id, path, size) of each result of a find answer, in its order, without repeats."""
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str, int | None]] = []
    for result in answer.get("results") or []:
        if not isinstance(result, dict):
            continue
        node_id, path = result.get("kbshare_id"), result.get("path")
        size = result.get("size")
        if isinstance(node_id, str) and isinstance(path, str) and (node_id, path) not in seen:
            seen.add((node_id, path))
            out.append((node_id.lower(), path, size if isinstance(size, int) else None))
    return out


def _requested_range(request: web.Request, etag: str) -> str | None:
    """The client's single Range (``bytes=a-b``), unless If-Range names another version."""
    value = request.headers.get("Range")
    if not value or not RANGE_RE.match(value.strip()) or value.strip() == "bytes=-":
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    return value.strip()


async def serve_content(hub: "Hub", request: web.Request, sha1: str, name: str) -> web.StreamResponse:
    if not SHA1_RE.match(sha1):
        return _error("Not a SHA-1 (40 hex digits)", 400)
    sha1 = sha1.lower()
    etag = f'"{sha1}"'
    name = name.rsplit("/", 1)[-1] or sha1
    cache_headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL,
                     "Access-Control-Allow-Origin": "*",
                     "Access-Control-Expose-Headers": "ETag, Content-Length, Content-Range, Content-Disposition"}
    if_none_match = request.headers.get("If-None-Match", "")
    if any(tag.strip() in (etag, f"W/{etag}", "*") for tag in if_none_match.split(",")):
        return web.Response(status=304, headers=cache_headers)
    copies = _copies(await hub.find(sha1))
    if not copies:
        return _error(f"Not found: {sha1}", 404)
    hub._count("num_requests_sha1")
    wanted = _requested_range(request, etag)
    streamer = _Streamer(hub, request, sha1, copies, cache_headers, name)
    return await streamer.run(wanted)


class _Streamer:
    def __init__(self, hub: "Hub", request: web.Request, sha1: str,
                 copies: list[tuple[str, str, int | None]], headers: dict[str, str], name: str) -> None:
        self.hub, self.request, self.sha1 = hub, request, sha1
        self.copies = list(copies)
        self.headers = headers
        self.name = name
        self.timeout = hub.settings.response_timeout
        self.reasons: list[str] = []

    async def _open(self, node_id: str, path: str, range_value: str | None) -> tuple[Any, Any]:
        """Open the download of one copy; (tunnel, its checked head), else _CopyFailed."""
        from kbtools.hub.tunnel import TunnelFailed

        headers = {"accept-encoding": "identity"}
        if range_value:
            headers["range"] = range_value
        tunnel = self.hub._open(node_id, self.request.method, f"{node_id}/download/{path}", headers)
        if tunnel is None:
            raise _CopyFailed(f"{node_id}: not connected")
        try:
            await tunnel.start()
            event = await tunnel.next_event(self.timeout)
            if not isinstance(event, ResponseHeaders):
                raise _CopyFailed(f"{node_id}: {getattr(event, 'error', 'no headers')}")
            head = check_response_head(event.status, event.status_message, event.headers)
            if head.status not in (200, 206) or (head.status == 206) != bool(range_value):
                raise _CopyFailed(f"{node_id}: HTTP {head.status}")
            return tunnel, head
        except (TunnelFailed, InvalidResponse) as e:
            await tunnel.close()
            raise _CopyFailed(f"{node_id}: {e}") from None
        except BaseException:
            await tunnel.close()
            raise

    async def _first(self, range_value: str | None) -> tuple[Any, Any, int | None]:
        while self.copies:
            node_id, path, size = self.copies.pop(0)
            try:
                tunnel, head = await self._open(node_id, path, range_value)
            except _CopyFailed as e:
                self.reasons.append(str(e))
                continue
            if head.status == 200 and size is not None and head.content_length not in (None, size):
                await tunnel.close()
                self.reasons.append(f"{node_id}: {head.content_length} bytes, expected {size}")
                continue
            return tunnel, head, size
        raise _CopyFailed("; ".join(self.reasons) or "no copy")

    async def run(self, range_value: str | None) -> web.StreamResponse:
        try:
            tunnel, head, size = await self._first(range_value)
        except _CopyFailed as e:
            return _error(f"No copy of {self.sha1} could be served: {str(e)[:500]}", 502)
        response = web.StreamResponse(status=head.status)
        response.headers.update(self.headers)
        response.headers["Content-Type"] = "application/octet-stream"
        response.headers["Content-Disposition"] = content_disposition(self.name)
        response.headers["Accept-Ranges"] = "bytes"
        values = {name.lower(): value for name, value in head.headers}
        length = head.content_length
        if length is not None:
            response.content_length = length
        start, end, total = 0, (length or 0) - 1, length
        if head.status == 206:
            match = CONTENT_RANGE_RE.match(values.get("content-range", ""))
            if not match:
                await tunnel.close()
                return _error("Invalid Content-Range from the share", 502)
            start, end = int(match[1]), int(match[2])
            total = int(match[3]) if match[3] != "*" else None
            response.headers["Content-Range"] = values["content-range"]
        hasher = hashlib.sha1() if head.status == 200 else None
        request = self.request
        try:
            await response.prepare(request)
        except Exception:
            await tunnel.close()
            _abort(request)
            return response
        if request.method == "HEAD":
            await tunnel.close()
            await response.write_eof()
            return response
        sent = 0
        held = b""
        expected = None if length is None else length
        try:
            while True:
                try:
                    data = await self._body(tunnel)
                except _CopyFailed as e:  # part-way: the rest from the next copy, by Range
                    self.reasons.append(str(e))
                    await tunnel.close()
                    if expected is None or total is None:
                        raise
                    tunnel = await self._continue(start + sent, end, total)
                    continue
                if data is None:  # the end
                    break
                if expected is not None and sent + len(data) > expected:
                    raise _CopyFailed("more bytes than announced")
                if hasher is not None:
                    hasher.update(data)
                sent += len(data)
                # The latest chunk is held back until the next one comes: the last bytes go out only
                # once the whole is verified, so a wrong file never reaches its announced length.
                if held:
                    await self._write(response, held)
                held = data
            if expected is not None and sent != expected:
                raise _CopyFailed("fewer bytes than announced")
            if hasher is not None and hasher.hexdigest() != self.sha1:
                self.hub._count("num_sha1_mismatches")
                self.hub.emit("content_mismatch", sha1=self.sha1, got=hasher.hexdigest())
                raise _CopyFailed("wrong SHA-1")
            if held:
                await self._write(response, held)
            await response.write_eof()
        except (_CopyFailed, asyncio.TimeoutError, ConnectionError):
            _abort(request)  # no clean end: no cache keeps these bytes
        finally:
            await tunnel.close()
        return response

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        await asyncio.wait_for(response.write(data), self.hub.settings.client_write_timeout)

    async def _body(self, tunnel: Any) -> bytes | None:
        """The next chunk of this copy (acknowledged), None at its end; _CopyFailed if it broke."""
        from kbtools.hub.tunnel import TunnelFailed

        try:
            event = await tunnel.next_event(self.timeout)
        except TunnelFailed as e:
            raise _CopyFailed(str(e)) from None
        if isinstance(event, ResponseData):
            data = bytes(event.data)
            await tunnel.consumed(event)
            return data
        if isinstance(event, ResponseEnd):
            return None
        raise _CopyFailed(getattr(event, "error", "broken response"))

    async def _continue(self, position: int, end: int, total: int) -> Any:
        """The bytes from ``position`` to ``end`` from the next copy that serves them."""
        while self.copies:
            node_id, path, size = self.copies.pop(0)
            if size is not None and size != total:
                continue
            try:
                tunnel, head = await self._open(node_id, path, f"bytes={position}-{end}")
            except _CopyFailed as e:
                self.reasons.append(str(e))
                continue
            values = {name.lower(): value for name, value in head.headers}
            match = CONTENT_RANGE_RE.match(values.get("content-range", ""))
            if match and int(match[1]) == position and int(match[2]) == end \
                    and match[3] in (str(total), "*"):
                return tunnel
            await tunnel.close()
            self.reasons.append(f"{node_id}: wrong Content-Range")
        raise _CopyFailed("; ".join(self.reasons))


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
