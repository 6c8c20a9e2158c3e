"""The HTTP API of a share for its own id (spec §4), on aiohttp.

Routes (case-insensitive words, a trailing slash ignored, as in the original's Express app)::

    GET/HEAD /<id>/api/nodeinfo
    GET/HEAD /<id>/api/readdir/[<subdir>]
    GET/HEAD /<id>/download/<relpath>      Range, ETag, 416 (aiohttp FileResponse)
    GET/HEAD /<id>/prv/<relpath>
    GET/HEAD /<id>/api/dataset/<relpath>   kbtools: the kb-check record of a dataset directory

Every answer but a file is JSON (4-space indentation, like the original). Errors are JSON with a
4xx status: an unsafe path (hidden names at any depth, `.kbucket`, a symlink out of the share,
`..`, empty segments) is a 400 and never reaches the disk; no error names an absolute path or
carries a stack trace. The same app answers tunnelled requests: the link replays them against it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import stat as statmod
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiohttp import web
from multidict import CIMultiDict

from kbtools.formats.dataset import GEOM, PARAMS, RAW, check_dataset
from kbtools.formats.geom import check_geom
from kbtools.formats.params import check_params
from kbtools.index.paths import (UnsafePath, is_hidden_or_reserved, real_target_is_allowed,
                                 resolve_in_share, safe_relpath)
from kbtools.index.share_index import ShareIndex
from kbtools.protocol.routing import node_info_object, nodeinfo_answer
from kbtools.share.access import (
    PRIVATE_CACHE_CONTROL, Access, AccessPolicy, GrantError, listing_allowed, served_event, tunnel_route,
)

log = logging.getLogger("kbtools.share")

FILE_CHUNK = 256 * 1024
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
ANY_PATH = r"/{tail:[\s\S]*}"  # `.` would not match a newline, and names may hold one
ACCESS = web.RequestKey("kbtools_access", Access)  # a private share: what the request's grant allows
SERVED = web.RequestKey("kbtools_served", object)  # a download: reports itself once its status is known


class Metrics:
    """The counters of nodeinfo `metrics` (spec §4.3), safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass
class ShareContext:
    """What the API needs to know about the share it serves (kept up to date by the host)."""

    root: Path
    node_id: str
    config: dict[str, Any]
    public_pem: str
    index: ShareIndex
    listen_url: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    parent_hub_info: dict[str, Any] | None = None
    #: a private share's grants (None: a public share, everything is served to everyone)
    access: AccessPolicy | None = None
    #: the secret the hub link puts in the header of a replayed request (the served event's route)
    tunnel_key: str = ""
    #: told of each download served (a `served` event)
    on_served: Callable[[dict[str, Any]], None] | None = None

    def nodeinfo(self) -> dict[str, Any]:
        info = node_info_object(self.config, self.node_id, self.public_pem, self.listen_url)
        return nodeinfo_answer(info, self.metrics.snapshot(), None, self.parent_hub_info)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj, indent=4, ensure_ascii=False), status=status,
                        content_type="application/json", charset="utf-8")


def error_response(status: int, text: str) -> web.Response:
    return json_response({"success": False, "error": text}, status)


class ShareFileResponse(web.FileResponse):
    """A file as it is on disk: never a `.gz`/`.br` sibling chosen by Accept-Encoding."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        headers = CIMultiDict(request.headers)
        headers.popall("Accept-Encoding", None)
        return await super().prepare(request.clone(headers=headers))


def _split(path: str) -> list[str]:
    """Path segments after the leading slash; one trailing slash is ignored (Express does so)."""
    segments = path[1:].split("/") if path.startswith("/") else path.split("/")
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()
    return segments


class ShareApi:
    """The aiohttp application of one share."""

    def __init__(self, ctx: ShareContext) -> None:
        self.ctx = ctx
        self.root_real = os.path.realpath(ctx.root)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024)
        app.router.add_route("OPTIONS", ANY_PATH, self._preflight)
        app.router.add_get(ANY_PATH, self._dispatch)  # HEAD too
        app.router.add_route("*", ANY_PATH, self._not_allowed)
        app.on_response_prepare.append(self._cors)
        return app

    # -- plumbing

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, exc.reason)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # a bug must not become a stack trace on the network
            log.exception("error answering %s", request.path)
            return error_response(500, "Internal error")

    @staticmethod
    async def _cors(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(CORS_HEADERS)
        served = request.get(SERVED)
        if served is not None:
            served(response)

    def _private_headers(self, response: web.StreamResponse) -> web.StreamResponse:
        """What a private share answers is never kept by a shared cache nor handed to another."""
        response.headers["Cache-Control"] = PRIVATE_CACHE_CONTROL
        response.headers["Vary"] = "Authorization, X-Kbucket-Token"
        return response

    @staticmethod
    async def _preflight(request: web.Request) -> web.Response:
        headers = {"Access-Control-Allow-Methods": "GET,HEAD"}
        wanted = request.headers.get("Access-Control-Request-Headers")
        if wanted:
            headers["Access-Control-Allow-Headers"] = wanted
        return web.Response(status=204, headers=headers)

    @staticmethod
    async def _not_allowed(request: web.Request) -> web.Response:
        return error_response(405, f"Method not allowed: {request.method}")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segments = _split(request.path)
        if segments and segments[0].lower() == "find":
            return error_response(404, "Cannot find. This is not a hub.")
        if len(segments) < 2:
            return error_response(404, "Not found")
        node_id, word = segments[0].lower(), segments[1].lower()
        rest = segments[2:]
        if word == "api" and rest:
            word, rest = "api/" + rest[0].lower(), rest[1:]
        handler = {
            "api/nodeinfo": self.nodeinfo, "api/readdir": self.readdir, "download": self.download,
            "prv": self.prv, "api/dataset": self.dataset,
        }.get(word)
        if word == "api/find":
            return error_response(404, "Cannot find. This is not a hub.")
        if handler is None:
            return error_response(404, "Not found")
        if node_id != self.ctx.node_id:
            if word == "api/nodeinfo":
                return error_response(404, "Cannot route request from non-hub.")
            return error_response(404, f"Incorrect kbshare id: {segments[0]}")
        rel = "/".join(rest)
        if self.ctx.access is None:
            return await self._answer(handler, request, rel)
        try:
            request[ACCESS] = self.ctx.access.check(word, rel, request.query,
                                                              request.headers)
        except GrantError as exc:
            response: web.StreamResponse = error_response(exc.status, str(exc))
        except UnsafePath:
            response = error_response(400, f"Unsafe path: {rel[:300]}")
        except OSError:
            response = error_response(404, f"Not found: {rel[:300]}")
        else:
            response = await self._answer(handler, request, rel)
        return self._private_headers(response)

    @staticmethod
    async def _answer(handler: Callable[..., Any], request: web.Request,
                      rel: str) -> web.StreamResponse:
        try:
            return await handler(request, rel)
        except UnsafePath:
            return error_response(400, f"Unsafe path: {rel[:300]}")
        except OSError:  # a name too long, a loop of links, no permission: nothing to serve there
            return error_response(404, f"Not found: {rel[:300]}")

    def download_target(self, path: str) -> Path | None:
        """The regular file that `path` (decoded, e.g. `<id>/download/a b.txt`) downloads, or None
        (another route, another id, an unsafe path, not a file). The same rules as the route."""
        segments = _split("/" + path.lstrip("/"))
        if len(segments) < 3 or segments[1].lower() != "download" or \
                segments[0].lower() != self.ctx.node_id:
            return None
        try:
            target = resolve_in_share(self.ctx.root, "/".join(segments[2:]))
            return target if target.is_file() else None
        except (UnsafePath, OSError):
            return None

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- routes

    async def nodeinfo(self, request: web.Request, rel: str) -> web.Response:
        self.ctx.metrics.bump("num_requests_nodeinfo")
        return json_response(self.ctx.nodeinfo())

    async def readdir(self, request: web.Request, rel: str) -> web.Response:
        self.ctx.metrics.bump("num_requests_readdir")
        target = resolve_in_share(self.ctx.root, rel, allow_root=True)
        access: Access | None = request.get(ACCESS)
        scope = self.ctx.access.scope_real(access) if self.ctx.access and access else None
        answer = await self._in_thread(self._listing, target, rel, scope)
        if answer is None:
            return error_response(404, f"Directory not found: {rel}")
        return json_response(answer)

    def _listing(self, target: Path, rel: str, scope_real: str | None = None) -> dict[str, Any] | None:
        try:
            with os.scandir(target) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return None
        files: list[dict[str, Any]] = []
        dirs: list[dict[str, Any]] = []
        for entry in entries:
            name = entry.name
            if is_hidden_or_reserved(name) or not _utf8(name):
                continue
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not real_target_is_allowed(self.root_real, real) \
                            or not listing_allowed(real, scope_real):
                        continue
                    st = os.stat(real)
                else:
                    st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if statmod.S_ISDIR(st.st_mode):
                dirs.append({"name": name})
            elif statmod.S_ISREG(st.st_mode):
                item: dict[str, Any] = {"name": name, "size": st.st_size}
                prv = self.ctx.index.prv(f"{rel}/{name}" if rel else name)
                if prv is not None:
                    item["prv"] = prv
                files.append(item)
        return {"success": True, "files": files, "dirs": dirs}

    async def download(self, request: web.Request, rel: str) -> web.StreamResponse:
        self.ctx.metrics.bump("num_requests_download")
        target = resolve_in_share(self.ctx.root, rel)
        try:
            st = target.stat()
        except OSError:
            return error_response(404, f"File not found: {rel}")
        if not statmod.S_ISREG(st.st_mode):
            return error_response(400, f"Not a file: {rel}")
        self._note_served(request, rel, st.st_size)
        return ShareFileResponse(target, chunk_size=FILE_CHUNK,
                                 headers={"Cache-Control": "public, max-age=0"})

    def _note_served(self, request: web.Request, rel: str, size: int) -> None:
        """Report this download once its status is known (a GET; a tunnelled GET the link asks
        with HEAD); the token is never part of it."""
        on_served = self.ctx.on_served
        if on_served is None:
            return
        route, method = tunnel_route(request.headers, self.ctx.tunnel_key)
        if (method or request.method) != "GET":
            return
        access: Access | None = request.get(ACCESS)

        def served(response: web.StreamResponse) -> None:
            if response.status in (200, 206):
                on_served(served_event(rel, size, response.status, response.content_length, route,
                                       access))
        request[SERVED] = served

    async def prv(self, request: web.Request, rel: str) -> web.Response:
        self.ctx.metrics.bump("num_requests_prv")
        safe_relpath(rel)
        prv = self.ctx.index.prv(rel)
        if prv is None:
            return error_response(404, f"File is not yet indexed or does not exist: {rel}")
        return json_response(prv)

    async def dataset(self, request: web.Request, rel: str) -> web.Response:
        self.ctx.metrics.bump("num_requests_dataset")
        target = resolve_in_share(self.ctx.root, rel, allow_root=True)
        for name in (RAW, GEOM, PARAMS):  # none of the three may lead out of the share
            resolve_in_share(self.ctx.root, f"{rel}/{name}" if rel else name)
        if not (target / RAW).exists():
            return error_response(404, f"Not a dataset (no {RAW}): {rel}")
        answer = await self._in_thread(self._describe_dataset, target, rel)
        return json_response(answer)

    def _describe_dataset(self, target: Path, rel: str) -> dict[str, Any]:
        report = check_dataset(target).to_json()
        geom = check_geom(target / GEOM)
        params = check_params(target / PARAMS)
        positions = [[v if math.isfinite(v) else None for v in row] for row in geom.positions]
        answer = {"success": True, "dataset": report,
                  "geom": positions if geom.positions else None, "params": params.params}
        return _relative(answer, str(target), rel or ".")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _relative(obj: Any, abs_dir: str, rel: str) -> Any:
    """Replace the absolute dataset directory by its share-relative path in every string."""
    if isinstance(obj, str):
        if obj == abs_dir:
            return rel
        return obj.replace(abs_dir + os.sep, "" if rel == "." else rel + "/")
    if isinstance(obj, dict):
        return {k: _relative(v, abs_dir, rel) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, abs_dir, rel) for v in obj]
    return obj


class ShareServer:
    """The share's aiohttp app on its own event loop thread."""

    def __init__(self, api: ShareApi, bind: str, port: int) -> None:
        self.api, self.bind, self.port = api, bind, port
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="kb-share-http",
                                        daemon=True)

    def start(self) -> None:
        """Listen now (raises OSError when the port is taken), then serve in the background."""
        self._runner = web.AppRunner(self.api.app(), access_log=None, handle_signals=False)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.bind, self.port, reuse_address=True)
        self.loop.run_until_complete(site.start())
        self._thread.start()

    def stop(self) -> None:
        if self._runner is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
        try:
            fut.result(10)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._runner = None

    @property
    def local_url(self) -> str:
        """A URL of this server that works from this host (for replaying tunnelled requests)."""
        host = self.bind
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
