"""The access check of a private share, run by its HTTP API on every request (direct or tunnelled).

A private share answers nothing without a grant (:mod:`kbtools.node.grants`): every route is a
401 (no token, or one it does not honour) or a 403 (a grant for another path). With a grant, the
path routes (readdir, download, prv, dataset) answer within the grant's path only, also after
symlinks are resolved; nodeinfo answers for any grant. The token comes from the ``X-Kbucket-Token``
header, ``Authorization: Bearer`` or the ``token`` query parameter (the one an original hub sends
in a tunnelled request's ``query``).

Each download the share serves is reported by :func:`served_event` (no token in it).
"""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kbtools.index.paths import is_within, resolve_in_share, safe_relpath
from kbtools.node.grants import (
    FORBIDDEN, HEADER, QUERY_PARAMETER, UNAUTHORIZED, Grant, GrantError, GrantStore, check_grant, check_scope, iso_time,
    token_from,
)
from kbtools.node.identity import load_public_key

#: the header the share's hub link adds to a replayed tunnelled request: "<key> <method>"
TUNNEL_HEADER = "X-Kbtools-Tunnel"
PRIVATE_CACHE_CONTROL = "private, max-age=0"
PATH_ROUTES = frozenset({"api/readdir", "download", "prv", "api/dataset"})


@dataclass(frozen=True)
class Access:
    """What one request may see: its grant (None on a public share) and its label."""

    grant: Grant | None
    label: str | None = None


class AccessPolicy:
    """The grants of one private share: its node id, its public key and its grant list."""

    def __init__(self, root: Path, node_id: str, public_pem: str) -> None:
        self.root = Path(root)
        self.node_id = node_id
        self.public_key = load_public_key(public_pem)
        self.store = GrantStore(self.root)

    def check(self, word: str, rel: str, query: Mapping[str, str],
              headers: Mapping[str, str], now: float | None = None) -> Access:
        """The access of a request for route ``word`` (``download``, ``api/readdir``, ...) and the
        decoded share path ``rel``; :class:`GrantError` when the grant does not allow it."""
        token = token_from(query, headers)
        if not token:
            raise GrantError("This share is private: a grant is needed (a link with ?token=…)",
                             UNAUTHORIZED)
        records = self.store.records()
        grant = check_grant(token, self.public_key, self.node_id, records,
                            time.time() if now is None else now)
        if word in PATH_ROUTES:
            safe_relpath(rel, allow_root=True)  # UnsafePath: a 400, as on a public share
            check_scope(grant, rel)
            self._check_real_scope(grant, rel, allow_root=word in ("api/readdir", "api/dataset"))
        label = records.get(grant.grant_id, {}).get("label")
        return Access(grant, label if isinstance(label, str) else None)

    def _check_real_scope(self, grant: Grant, rel: str, allow_root: bool) -> None:
        """A symlink inside the grant's path that leads elsewhere in the share is outside it."""
        try:
            target = resolve_in_share(self.root, rel, allow_root=allow_root)
            scope = resolve_in_share(self.root, grant.path, allow_root=True)
        except OSError:
            return  # the route itself answers 404
        if not is_within(str(scope), str(target)):
            raise GrantError(f"Grant {grant.grant_id} does not cover this path", FORBIDDEN)

    def scope_real(self, access: Access) -> str | None:
        """The real directory a listing must stay in (None: the whole share)."""
        if access.grant is None or access.grant.path == "":
            return None
        try:
            return str(resolve_in_share(self.root, access.grant.path, allow_root=True))
        except OSError:
            return None


def served_event(path: str, size: int | None, status: int, length: int | None, route: str,
                 access: Access | None) -> dict[str, Any]:
    """The kb-host line of one download served (schemas/kb-host-event.json, `served`)."""
    grant = access.grant if access is not None else None
    return {"event": "served", "path": path, "size": size, "status": status, "bytes": length,
            "route": route, "grant_id": grant.grant_id if grant else None,
            "grant_label": access.label if access is not None else None,
            "time": iso_time(time.time())}


def tunnel_route(headers: Mapping[str, str], key: str) -> tuple[str, str | None]:
    """("tunnel", original method) when the hub link replayed this request, else ("direct", None)."""
    value = headers.get(TUNNEL_HEADER, "")
    given, _, method = value.partition(" ")
    if key and given and len(given) == len(key) and _equal(given, key):
        return "tunnel", method or None
    return "direct", None


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def listing_allowed(real: str, scope_real: str | None) -> bool:
    return scope_real is None or is_within(scope_real, real)



def tunnel_headers(headers: dict[str, str], query: Any, key: str, method: str) -> dict[str, str]:
    """The headers of a tunnelled request as the hub link replays it against the share's server.

    A `X-Kbtools-Tunnel` header from outside is dropped and the link's own added (the served
    event's route); a token in the request's `query` (an original hub sends it there, spec §3.1)
    becomes the `X-Kbucket-Token` header, so it never enters a URL.
    """
    out = {k: v for k, v in headers.items() if k.lower() != TUNNEL_HEADER.lower()}
    token = query.get(QUERY_PARAMETER) if isinstance(query, Mapping) else None
    if isinstance(token, str) and token and not any(k.lower() == HEADER.lower() for k in out):
        out[HEADER] = token
    if key:
        out[TUNNEL_HEADER] = f"{key} {method}"
    return out
