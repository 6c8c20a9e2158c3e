"""Who a hub is talking to, and whether it can reach a share directly.

``client_address``: the address a request came from; behind a reverse proxy listed in
``--trusted-proxy``, the one the proxy names (``X-Real-IP``, else the last ``X-Forwarded-For``
entry). A header from anyone else is ignored, so no client can choose its own address.

``Prober``: after a child registers, one short request to its advertised port at the address its
connection came from (never a host the child names), to tell whether clients can download from it
directly (docs/hub.md, "Reachable shares").
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

from aiohttp import ClientError, ClientSession, ClientSSLError, ClientTimeout, TCPConnector, web
from aiohttp.abc import AbstractResolver


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(request: web.Request, trusted_proxies: Iterable[str]) -> str | None:
    remote = request.remote
    if remote is None or remote not in set(trusted_proxies):
        return remote
    real = _ip(request.headers.get("X-Real-IP", ""))
    if real is None:
        forwarded = request.headers.get("X-Forwarded-For", "")
        real = _ip(forwarded.rsplit(",", 1)[-1]) if forwarded else None
    return real or remote


# ---------------------------------------------------------------- can the hub reach a child directly

PROBE_TIMEOUT = 3.0  # seconds for the whole probe: connect, TLS, answer
MAX_PROBES = 8  # probes in flight at once, for all children together
MAX_WAITING = 64  # registrations waiting for a probe slot; past it a child is not probed (null)
MAX_ANSWER = 1024 * 1024  # bytes of a nodeinfo answer read at most
URL_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # a listen_url's path is kept as written (already encoded)


@dataclass(frozen=True)
class Reach:
    """What the hub found: reachable True, False, or None (not probed, cannot tell); why, in words."""

    reachable: bool | None
    reason: str


@dataclass(frozen=True)
class ProbePlan:
    """The one request of a probe: `url` names the child's address (an IP, never a name)."""

    url: str
    host_header: str
    server_hostname: str | None  # https: the listen_url's host, for SNI and the certificate check
    shown: str  # scheme://address:port, for the reason


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def plan_probe(listen_url: str, address: str | None, node_id: str) -> ProbePlan | Reach:
    """The probe of a child that advertises `listen_url` and connected from `address`.

    Only `address` is ever contacted, at the port, scheme and path of `listen_url`: a name in the
    listen_url is never resolved, and an IP in it that is not `address` is not probed (None). A
    listen_url on the loopback of a child that is not on the hub's machine is unreachable (False)
    without a probe. Anything else is a plan for `probe`.
    """
    try:
        parts = urlsplit(listen_url.strip())
        port = parts.port
    except ValueError:
        return Reach(False, "listen_url is not an http(s) URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host or parts.username is not None \
            or parts.password is not None:
        return Reach(False, "listen_url is not an http(s) URL")
    peer = _address(address)
    if peer is None:
        return Reach(None, "not probed: the hub does not know the address of the connection")
    named = _address(host)
    names_loopback = host == "localhost" or host.endswith(".localhost") \
        or (named is not None and named.is_loopback)
    if names_loopback and not peer.is_loopback:
        return Reach(False, f"listen_url names {host}, the share's own machine, which no one "
                            "else reaches")
    if named is not None and named != peer:
        return Reach(None, f"not probed: listen_url names {named}, and this child connects from "
                           f"{peer}; the hub probes only the address a connection comes from")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    target = f"[{peer}]" if peer.version == 6 else str(peer)
    path = parts.path.rstrip("/")
    shown = f"{parts.scheme}://{target}:{port}"
    url_host = f"[{host}]" if ":" in host else host
    default = port == (443 if parts.scheme == "https" else 80)
    return ProbePlan(url=f"{shown}{quote(path, safe=URL_PATH_SAFE)}/{node_id}/api/nodeinfo",
                     host_header=url_host if default else f"{url_host}:{port}",
                     server_hostname=host if parts.scheme == "https" else None, shown=shown)


class _NoNames(AbstractResolver):
    """A probe never resolves a name (its URL holds an IP): any lookup is refused."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        raise OSError(f"the reachability probe resolves no names ({host})")

    async def close(self) -> None:
        pass


class Prober:
    """Probes children's listen_urls, at most `max_probes` at once (see `plan_probe`).

    One probe: `GET <listen_url path>/<node_id>/api/nodeinfo` at the child's own address, no
    redirect followed, no proxy, `timeout` seconds in all; reachable only if the answer is a
    nodeinfo naming the same node id (another service on that port does not count).
    """

    def __init__(self, timeout: float = PROBE_TIMEOUT, max_probes: int = MAX_PROBES,
                 max_waiting: int = MAX_WAITING, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(max_probes)
        self._waiting = 0
        self._ssl = ssl_context
        self.probes = 0  # probes made (requests sent), for tests and metrics

    async def check(self, listen_url: str, address: str | None, node_id: str) -> Reach:
        plan = plan_probe(listen_url, address, node_id)
        if isinstance(plan, Reach):
            return plan
        if self._waiting >= self.max_waiting:
            return Reach(None, "not probed: too many registrations at once")
        self._waiting += 1
        try:
            async with self._slots:
                self.probes += 1
                return await self._probe(plan, node_id)
        finally:
            self._waiting -= 1

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            from kbtools.client import tls
            self._ssl = tls.ssl_context()
        return self._ssl

    async def _probe(self, plan: ProbePlan, node_id: str) -> Reach:
        where = plan.shown
        connector = TCPConnector(resolver=_NoNames(), force_close=True, limit=1,
                                 ssl=self._context() if plan.server_hostname else False)
        timeout = ClientTimeout(total=self.timeout)
        try:
            async with ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                     auto_decompress=False) as session:
                kwargs: dict[str, Any] = {}
                if plan.server_hostname:
                    kwargs["server_hostname"] = plan.server_hostname
                async with session.get(plan.url, allow_redirects=False,
                                       headers={"Host": plan.host_header,
                                                "Accept": "application/json",
                                                "Accept-Encoding": "identity"},
                                       **kwargs) as response:
                    if response.status != 200:
                        return Reach(False, f"{where} answered HTTP {response.status}, not this "
                                            "node's nodeinfo")
                    body = await response.content.read(MAX_ANSWER + 1)
        except asyncio.TimeoutError:
            return Reach(False, f"no answer from {where} within {self.timeout:g} s")
        except ClientSSLError as e:
            return Reach(False, f"TLS with {where} failed: {_short_error(e)}")
        except (ClientError, OSError) as e:
            return Reach(False, f"cannot connect to {where}: {_short_error(e)}")
        try:
            answer = json.loads(body) if len(body) <= MAX_ANSWER else None
        except ValueError:
            answer = None
        info = answer.get("info") if isinstance(answer, dict) else None
        found = info.get("node_id") if isinstance(info, dict) else None
        if found != node_id:
            return Reach(False, f"{where} answered, but not as this node")
        return Reach(True, f"{where} answered as this node")


def _short_error(e: BaseException) -> str:
    cause = getattr(e, "os_error", None) or e.__cause__ or e
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return str(text).strip()[:200]
