"""Who a hub is talking to, and whether it can reach a share directly.

``client_address``: the address a request came from; behind a reverse proxy listed in
``--trusted-proxy``, the one the proxy names (``X-Real-IP``, else the last ``X-Forwarded-For``
entry). A header from anyone else is ignored, so no client can choose its own address.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from aiohttp import web


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
