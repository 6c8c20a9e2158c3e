"""The hub: aiohttp HTTP API and websocket server for children on one port (spec §2-§4).

    hub = Hub(HubSettings(node_dir, config, identity, port=0))
    await hub.start()          # listening; hub.url, hub.listen_url, hub.node_id
    ...
    await hub.stop()

Any path upgrades to a websocket (as the original). Each child link is driven by the sans-I/O
`kbtools.protocol.hubconn`; routing, find and nodeinfo shapes come from `kbtools.protocol.routing`.
A hub with a parent keeps its own link to it (`kbtools.hub.parent`).
"""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from kbtools import web as web_page
from kbtools.hub.parent import ParentConnector, parent_url_of
from kbtools.index.paths import UnsafePath, safe_relpath
from kbtools.node.config import resolve_listen_url
from kbtools.node.identity import NodeIdentity
from kbtools.protocol.hubconn import (
    ChildConnection, ChildRegistered, ChildRegistry, ConnectionClosed, HubInfo, HubLimits,
    IndexRefused, NodeDataUpdated, Outcome, ResponseData, ResponseEnd, ResponseError, ResponseHeaders,
)
from kbtools.protocol.policy import FIRST_RETRY, MAX_RETRY
from kbtools.protocol.routing import (
    InvalidResponse, check_response_head, child_find_results, find_answer, hub_node_data,
    node_info_object, nodeinfo_answer, plan_find, route, unable_to_locate,
)
from kbtools.hub.leafindex import LeafIndex
from kbtools.hub import relay
from kbtools.hub.tunnel import ChildLink, TunnelFailed, TunnelRequest
from kbtools.protocol import fastpath

EventSink = Callable[[dict[str, Any]], None]

# Routes of a node id that carry a share-relative path (checked before routing, spec §4.2).
PATH_ROUTES = {("api", "readdir"), ("download",), ("prv",), ("api", "dataset")}
FIND_ANSWER_LIMIT = 16 * 1024 * 1024
# Sockets that have not registered yet have a budget of their own, so that they can never crowd
# out children: at most this many at once (past it, the oldest is closed to make room), at most
# PENDING_PER_ADDRESS from one client address (past it, 503), each for register_timeout seconds.
PENDING_SOCKETS = 64
PENDING_PER_ADDRESS = 16
CLOSE_TIMEOUT = 2.0  # seconds to wait for a child's answer to our close frame
SEND_BUFFER = 4 * 1024 * 1024  # socket send buffer of a tunnelled download
TRIM_AFTER = 1024 * 1024  # after a frame this large, freed heap goes back to the system


@dataclass
class HubSettings:
    """Everything a hub needs to run; `config` is the kbnode.json content (already resolved)."""

    node_dir: Path
    config: dict[str, Any]
    identity: NodeIdentity
    bind: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    parent_passcode: str = ""
    limits: HubLimits = field(default_factory=HubLimits)
    response_timeout: float = 120.0  # seconds without any response frame before a request fails
    # Seconds an HTTP client may take to accept one chunk. On the compatible path the child's link
    # waits for that chunk's `ok` (and cannot send its heartbeat), so this stays well under the
    # 60-second inactivity timeout: a stalled client is dropped, not the share.
    client_write_timeout: float = 30.0
    find_timeout: float = 10.0  # per child hub queried by find
    check_interval: float = 5.0  # inactivity checks (the original checks every 5 s)
    register_timeout: float = 10.0  # seconds a new child socket has to register
    # Seconds an HTTP client has to send a request head (and to send the next one on a
    # keep-alive connection): a client trickling header bytes is dropped.
    request_head_timeout: float = 20.0
    report_interval: float = 5.0  # node data reports to the parent
    # Reconnecting to the parent: first_retry seconds, doubling up to max_retry, with jitter
    # (kbtools.protocol.policy.retry_delays, as a share does).
    first_retry: float = FIRST_RETRY
    max_retry: float = MAX_RETRY
    retry_forever: bool = False  # also after a parent's refusal that cannot heal (wrong passcode)
    clock: Callable[[], float] = time.time  # frame timestamps are checked against it
    # TLS (kb-hub --tls-cert/--tls-key): HTTPS and WSS on the same port (aiohttp's own TLS).
    ssl_context: Any = None
    # The URL clients use (https://hub.example.org behind a proxy): find's URLs, browse URLs.
    public_url: str = ""
    # Reverse proxies whose X-Real-IP / X-Forwarded-For name the real client (kb-hub --trusted-proxy).
    trusted_proxies: tuple[str, ...] = ()


def json_response(obj: Any, status: int = 200) -> web.Response:
    """Spec §4.1: 4-space JSON, `application/json; charset=utf-8`."""
    return web.Response(text=json.dumps(obj, indent=4, ensure_ascii=False), status=status,
                        content_type="application/json", charset="utf-8")


def error_response(text: str, status: int) -> web.Response:
    return json_response({"success": False, "error": text}, status)


class Hub:
    """A running hub: registry of children, HTTP API, tunnels, and the link to its own parent."""

    def __init__(self, settings: HubSettings, on_event: EventSink | None = None) -> None:
        self.settings = settings
        self.config = settings.config
        self.identity = settings.identity
        self.node_id = settings.identity.node_id
        self.registry = ChildRegistry(settings.limits)
        self.links: dict[ChildConnection, ChildLink] = {}  # every open child socket
        self.metrics: dict[str, int] = {}
        self.on_event = on_event or (lambda event: None)
        self.hub_info = HubInfo({}, passcode=str(self.config.get("passcode") or ""))
        self.port = 0
        self.url = ""  # where this process can reach itself (http://bind:port)
        self.listen_url = ""  # what it advertises (resolved listen_url)
        self.parent: ParentConnector | None = None  # when there is a parent
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._subtree: dict[str, dict[str, Any]] | None = None  # descendant_nodes, until it changes
        self.leaf_index = LeafIndex()
        from kbtools.hub.reach import Prober
        self.prober = Prober()
        self._probes: dict[ChildConnection, asyncio.Task[None]] = {}  # at most one per registration

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024)
        app.add_routes(web_page.routes(self.own_nodeinfo))
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(_server_header)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0,
                                     keepalive_timeout=self.settings.request_head_timeout)
        await self._runner.setup()
        sock = _listening_socket(self.settings.bind, self.settings.port)
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=self.settings.ssl_context)
        await site.start()
        host = "127.0.0.1" if self.settings.bind in ("0.0.0.0", "") else \
            ("::1" if self.settings.bind == "::" else self.settings.bind)
        scheme = "https" if self.settings.ssl_context is not None else "http"
        self.url = f"{scheme}://{_url_host(host)}:{self.port}"
        own = str(self.config.get("listen_url") or "")
        self.listen_url = self.settings.public_url.rstrip("/") or (
            resolve_listen_url(own, self.port) if own not in ("", ".")
            else f"{scheme}://localhost:{self.port}")
        self.hub_info.info = node_info_object(self.config, self.node_id, self.identity.public_pem,
                                              self.listen_url)
        self.hub_info.top_hub_url = self.listen_url
        self._tasks.append(asyncio.create_task(self._check_inactivity()))
        parent_url = parent_url_of(self.config)
        if parent_url:
            self.parent = ParentConnector(self, parent_url, self.settings.parent_passcode)
            self._tasks.append(asyncio.create_task(self.parent.run()))

    async def stop(self) -> None:
        """Close every child socket and the parent link, then the server (once)."""
        if self._stopping:
            return
        self._stopping = True
        tasks = self._tasks + list(self._probes.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for link in list(self.links.values()):
            for request in list(link.requests.values()):
                request.queue.put_nowait(ResponseError(request.request_id, "Hub stopping"))
        await asyncio.gather(*(link.ws.close(code=1001, message=b"hub stopping")
                               for link in list(self.links.values())), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- state shown to others

    def own_nodeinfo(self) -> dict[str, Any]:
        parent_info = self.parent.parent_info if self.parent is not None else None
        return nodeinfo_answer(self.hub_info.info, self.metrics, self.registry, parent_info)

    def node_data(self) -> dict[str, Any]:
        """What this hub reports to its parent: its whole subtree."""
        return {"node_id": self.node_id, "descendant_nodes": self.subtree()}

    def subtree(self) -> dict[str, dict[str, Any]]:
        """Every node below this hub (spec §2.6.1), rebuilt only after a change."""
        if self._subtree is None:
            self._subtree = hub_node_data(self.node_id, self.registry)["descendant_nodes"]
        return self._subtree

    async def set_top_hub_url(self, url: str) -> None:
        """Our parent told us the top hub's URL; pass it on to our child hubs."""
        if url == self.hub_info.top_hub_url:
            return
        self.hub_info.top_hub_url = url
        for link in list(self.links.values()):
            await link.send(link.conn.top_hub_url_changed())

    def _count(self, name: str) -> None:
        self.metrics[name] = self.metrics.get(name, 0) + 1

    def emit(self, event: str, **fields: Any) -> None:
        self.on_event({"event": event, **fields})

    # ---------------------------------------------------------------- HTTP

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            return await self._child_socket(request)
        if upgrade == fastpath.DATA_UPGRADE:  # a share's data connection for one download
            return await relay.accept(self, request)
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204, headers={
                "Access-Control-Allow-Methods": "GET,HEAD",
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers",
                                                                    ""),
            })
        else:
            try:
                response = await handler(request)
            except web.HTTPException as e:
                response = error_response(e.reason, e.status)
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception as e:  # never a stack trace on the network
                sys.stderr.write(f"kb-hub: internal error on {request.method} {request.path[:200]}: "
                                 f"{type(e).__name__}: {e}\n")
                response = error_response("Internal error", 500)
        if not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return error_response(f"Method not allowed: {request.method}", 405)
        raw = request.raw_path.split("?", 1)[0]
        segments = [unquote(s) for s in raw.split("/")[1:]]
        if segments and segments[-1] == "":  # Express ignores one trailing slash
            segments.pop()
        if not segments:
            return error_response("Not found", 404)
        if segments[0] == "sha1" and len(segments) >= 2:  # kbtools: cacheable content by SHA-1
            from kbtools.hub.content import serve_content
            return await serve_content(self, request, segments[1], "/".join(segments[2:]))
        if segments[0].lower() == "find" and len(segments) >= 2:
            self._count("num_requests_find")
            return json_response(await self.find(segments[1], "/".join(segments[2:])))
        node_id = segments[0].lower()  # ids are lower-case hex; a share takes either case too
        rest = segments[1:]
        lowered = [s.lower() for s in rest[:2]]
        if lowered[:2] == ["api", "nodeinfo"] and len(rest) == 2:
            self._count("num_requests_nodeinfo")
            if node_id == self.node_id:
                return json_response(self.own_nodeinfo())
            return await self.tunnel(request, node_id, f"{node_id}/api/nodeinfo")
        # `<id>/find/...`: how an original parent hub forwards a share-scoped find to a child hub
        scoped = 2 if lowered[:2] == ["api", "find"] else 1 if lowered[:1] == ["find"] else 0
        if scoped and len(rest) > scoped:
            self._count("num_requests_find_in_share")
            return json_response(await self.find(rest[scoped], "/".join(rest[scoped + 1:]),
                                                 share_id=node_id))
        for prefix in PATH_ROUTES:
            n = len(prefix)
            if tuple(lowered[:n]) == prefix and (len(rest) > n or prefix == ("api", "readdir")):
                relpath = "/".join(rest[n:])
                try:
                    safe_relpath(relpath, allow_root=prefix == ("api", "readdir"))
                except UnsafePath:
                    return error_response(f"Unsafe path: {relpath[:300]}", 400)
                self._count("num_requests_" + prefix[-1])
                wire = "/".join(prefix)
                return await self.tunnel(request, node_id, f"{node_id}/{wire}/{relpath}")
        return error_response("Not found", 404)

    # ---------------------------------------------------------------- tunnel

    def _open(self, node_id: str, method: str, path: str, headers: Mapping[str, Any],
              data_connection: bool = False) -> TunnelRequest | None:
        r = route(node_id, self.registry)
        link = self.links.get(r.child) if r is not None else None
        if link is None:
            return None
        return link.open(method, path, headers, data_connection)

    async def tunnel(self, request: web.Request, node_id: str, path: str) -> web.StreamResponse:
        """Forward an HTTP request to the node that owns `node_id` and stream its answer back."""
        headers: dict[str, str] = {}
        for name in request.headers:
            headers[name.lower()] = ", ".join(request.headers.getall(name))
        token = request.query.get("token")  # a private share's grant from a link: sent as a header
        if token and "x-kbucket-token" not in headers:
            headers["x-kbucket-token"] = token
        tunnel = self._open(node_id, request.method, path, headers, data_connection=True)
        if tunnel is None:
            return json_response(unable_to_locate(node_id), 500)
        timeout = self.settings.response_timeout
        try:
            await tunnel.start()
            try:
                event = await tunnel.next_event(timeout)
            except TunnelFailed as e:
                return error_response(str(e), e.status)
            if isinstance(event, ResponseError):
                status = 502 if tunnel.link.conn.closed else 500
                return json_response({"error": f"Error in response: {event.error}"}, status)
            if not isinstance(event, ResponseHeaders):
                return error_response("Response without headers", 502)
            tunnel.head_taken = True
            try:
                head = check_response_head(event.status, event.status_message, event.headers)
            except InvalidResponse as e:
                return error_response(f"Invalid response from node: {e}", 502)
            response = web.StreamResponse(status=head.status, reason=head.reason)
            for name, value in head.headers:
                response.headers.add(name, value)
            response.headers["Access-Control-Allow-Origin"] = "*"
            # A body that does not match the announced length breaks the connection, so that no
            # byte of it is ever read as the next response.
            left = None if request.method == "HEAD" else head.content_length
            _large_send_buffer(request)
            try:
                try:
                    await response.prepare(request)
                except ConnectionError:
                    raise
                except Exception:  # nothing may be written after a failed head: drop the link
                    _abort(request)
                    return response
                if tunnel.data is not None and left:  # the body comes on its data connection
                    try:
                        await tunnel.data.relay(request, response, left, timeout,
                                                self.settings.client_write_timeout)
                    except relay.RelayFailed:
                        _abort(request)
                        return response
                    tunnel.body_complete = True
                    await response.write_eof()
                    return response
                while True:
                    try:
                        event = await tunnel.next_event(timeout)
                    except TunnelFailed:
                        _abort(request)
                        return response
                    if isinstance(event, ResponseData):
                        if left is not None:
                            left -= len(event.data)
                            if left < 0:
                                _abort(request)
                                return response
                        try:  # (asyncio.timeout: no task per chunk, as wait_for makes)
                            async with asyncio.timeout(self.settings.client_write_timeout):
                                await response.write(event.data)
                        except TimeoutError:
                            _abort(request)
                            return response
                        await tunnel.consumed(event)
                    elif isinstance(event, ResponseEnd):
                        if left:  # fewer bytes than announced
                            _abort(request)
                            return response
                        await response.write_eof()
                        return response
                    else:  # error or child gone mid-response: the client must see a broken transfer
                        _abort(request)
                        return response
            except ConnectionError:  # the HTTP client went away: not an error of the hub
                _abort(request)
                return response
        finally:
            if await tunnel.close():  # the client left before the end: the share was told to stop
                self._count("num_tunnel_cancels")

    # ---------------------------------------------------------------- find (spec §4.4)

    async def find(self, sha1: str, filename: str = "", share_id: str | None = None) -> dict[str, Any]:
        local = self.leaf_index.find(sha1, self.registry.leaves, share_id)
        plan = plan_find(self.registry, sha1, filename, share_id, local_results=local)
        results = list(plan.local_results)
        if plan.child_hub_queries:
            answers = await asyncio.gather(*(self._query_child_hub(hid, path)
                                             for hid, path in plan.child_hub_queries))
            for answer in answers:
                results += child_find_results(answer)
        return find_answer(results, self.node_id, self.registry, self.listen_url,
                           self.hub_info.top_hub_url, self.subtree())

    async def _query_child_hub(self, hub_id: str, path: str) -> Any:
        conn = self.registry.child_hubs.get(hub_id)
        link = self.links.get(conn) if conn is not None else None
        if link is None:
            return None
        tunnel = link.open("GET", path, {})
        try:
            await tunnel.start()
            return await tunnel.read_json(self.settings.find_timeout, FIND_ANSWER_LIMIT)
        except TunnelFailed:
            return None
        finally:
            await tunnel.close()

    # ---------------------------------------------------------------- children

    async def _child_socket(self, request: web.Request) -> web.StreamResponse:
        limits = self.settings.limits
        from kbtools.hub.reach import client_address
        address = client_address(request, self.settings.trusted_proxies)
        pending = [link for link in self.links.values() if not link.conn.registered]
        if sum(link.address == address for link in pending) >= PENDING_PER_ADDRESS:
            return error_response("Too many connections", 503)
        if len(pending) >= PENDING_SOCKETS:  # the oldest makes room: a flood cannot lock out a child
            await pending[0].ws.close(message=b"Not registered in time")
        # Frames a little over the limit get the core's error reply; far over, aiohttp closes (1009).
        ws = web.WebSocketResponse(max_msg_size=limits.max_frame_bytes + 1024 * 1024,
                                   autoping=True, compress=False, timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        conn = ChildConnection(self.hub_info, self.registry, self.settings.clock())
        link = ChildLink(ws, conn, address)
        self.links[conn] = link
        self._count("child_socket_connections")
        deadline = asyncio.get_running_loop().call_later(
            self.settings.register_timeout, self._close_unregistered, link)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._count("messages_from_child_nodes")
                    large, binary = len(msg.data) > TRIM_AFTER, msg.type == WSMsgType.BINARY
                    out = conn.receive_frame(msg.data, now=self.settings.clock())
                    del msg
                    await self._act(link, out, binary=binary)
                    if large:  # what parsing it took goes back to the system
                        del out.events[:]
                        _release_memory()
                    if out.close:
                        break
                elif msg.type == WSMsgType.ERROR:
                    await self._act(link, conn.fail("Message too large"), binary=False)
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            deadline.cancel()
            await self._act(link, conn.connection_lost("connection closed"), binary=False)
            self.links.pop(conn, None)
            if not ws.closed:
                try:
                    await ws.close()
                except (ConnectionError, RuntimeError):
                    pass
        return ws

    def _close_unregistered(self, link: ChildLink) -> None:
        if not link.conn.registered and not link.ws.closed:
            asyncio.ensure_future(link.ws.close(message=b"Not registered in time"))

    async def _act(self, link: ChildLink, out: Outcome, binary: bool) -> None:
        """Send the replies of one received frame and act on its events."""
        extra: list[str | bytes] = []
        for event in out.events:
            if isinstance(event, (ResponseHeaders, ResponseData, ResponseEnd, ResponseError)):
                owes_ack = isinstance(event, ResponseData) and not binary \
                    and link.conn.limits.defer_data_ack
                extra += link.deliver(event, owes_ack)
            elif isinstance(event, ChildRegistered):
                self._count("child_node_registrations")
                self.emit("child_connected", node_id=event.node_id, node_type=event.node_type,
                          name=str(event.info.get("name", ""))[:100],
                          listen_url=str(event.info.get("listen_url", ""))[:300],
                          fast_path=event.fast_path)
                self._subtree_changed()
                self._start_probe(link, event)
            elif isinstance(event, NodeDataUpdated):
                self._count("report_node_data_messages_from_child")
                if link.conn.node_type == "hub":
                    self._subtree_changed()
                elif self.registry.leaves.get(event.node_id) is link.conn:
                    self.leaf_index.update(event.node_id, event.data)
            elif isinstance(event, IndexRefused):
                self._count("index_refusals")
                self.emit("index_refused", node_id=event.node_id, index_bytes=event.index_bytes,
                          held_bytes=event.held_bytes, limit_bytes=event.limit_bytes)
            elif isinstance(event, ConnectionClosed):
                probe = self._probes.pop(link.conn, None)
                if probe is not None:
                    probe.cancel()
                if link.conn.registered and link.conn.node_type == "leaf" and link.conn.node_id:
                    self.leaf_index.remove(link.conn.node_id)
                    if self.registry.leaves.get(link.conn.node_id) is None:
                        _release_memory()
                if link.conn.registered:
                    self.emit("child_disconnected", node_id=link.conn.node_id,
                              node_type=link.conn.node_type, reason=event.reason[:300])
                    self._subtree_changed()
                elif event.reason != "connection closed":
                    self.emit("child_refused", node_id=_short(link.conn.node_id),
                              reason=event.reason[:300])
        await link.send(list(out.replies) + extra)
        if out.close and not link.ws.closed:
            try:
                await link.ws.close()
            except (ConnectionError, RuntimeError):
                pass

    def _start_probe(self, link: ChildLink, event: ChildRegistered) -> None:
        """Probe a child's listen_url once after it registered (none advertised: no probe)."""
        listen_url = event.info.get("listen_url")
        if not self.settings.limits.probe_reachability or self._stopping \
                or not isinstance(listen_url, str) or not listen_url.strip():
            return
        conn = link.conn
        task = asyncio.create_task(self._probe(link, listen_url))
        self._probes[conn] = task
        task.add_done_callback(lambda t: self._probes.pop(conn, None)
                               if self._probes.get(conn) is t else None)

    async def _probe(self, link: ChildLink, listen_url: str) -> None:
        conn = link.conn
        reach = await self.prober.check(listen_url, link.address, conn.node_id or "")
        if conn.closed:
            return
        frames = conn.reachability_found(reach.reachable, reach.reason)
        self.emit("child_reachability", node_id=conn.node_id, node_type=conn.node_type,
                  listen_url=listen_url[:300], reachable=reach.reachable, reason=reach.reason[:300])
        await link.send(frames)

    def _subtree_changed(self) -> None:
        self._subtree = None
        if self.parent is not None:
            self.parent.subtree_changed()

    async def _check_inactivity(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval)
            now = self.settings.clock()
            for link in list(self.links.values()):
                out = link.conn.check_inactivity(now)
                if out.replies or out.close:
                    await self._act(link, out, binary=False)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "kbtools"  # no library or Python versions on the network


def _release_memory() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise, after a large report)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _load_malloc_trim() -> Any:
    try:
        import ctypes
        import ctypes.util
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name).malloc_trim if name and sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def _short(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _abort(request: web.Request) -> None:
    """Break the client's connection: a truncated body must not look complete."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _large_send_buffer(request: web.Request) -> None:
    # A 1 MiB chunk then goes to the kernel in one call instead of being split and buffered.
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _listening_socket(bind: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock
