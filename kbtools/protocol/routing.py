"""Hub-side tunnel and routing decisions, find, node data and nodeinfo shapes (spec §3, §4).

Pure functions over the hub's ChildRegistry; the hub does the I/O.
"""
from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

from kbtools.protocol.canonical import canonical_json
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry
from kbtools.protocol.messages import EndRequest, InitiateRequest

REQUEST_ID_ALPHABET = string.ascii_letters + string.digits
REQUEST_ID_LENGTH = 8
# Never forwarded down the tunnel (the original forwards everything, spec §8).
PRIVATE_REQUEST_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
# Per-connection headers that must not be copied from a tunnelled response to the client.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade",
                        "proxy-connection", "te", "trailer"})


def new_request_id() -> str:
    """8 random characters from [A-Za-z0-9]."""
    return "".join(secrets.choice(REQUEST_ID_ALPHABET) for _ in range(REQUEST_ID_LENGTH))


def encode_tunnel_path(path: str) -> str:
    """A decoded path percent-encoded per segment (spec §3.1 recommendation); no leading slash."""
    return quote(path.lstrip("/"), safe="/")


def decode_tunnel_path(path: str) -> str:
    """What a child does with a tunnelled `path`: parse it as a URL path, percent-decode once."""
    return unquote(urlsplit("/" + path.lstrip("/")).path).lstrip("/")


def filter_request_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Client request headers to forward: lowercase names, no cookies or credentials."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in PRIVATE_REQUEST_HEADERS}


# Never copied from a tunnelled response: they would act on the hub's own origin, the web page's.
ORIGIN_HEADERS = frozenset({"set-cookie", "set-cookie2", "clear-site-data", "refresh",
                            "content-security-policy", "x-content-type-options"})
# Added to every tunnelled response: what a share serves is data, never a page of the hub's origin.
TUNNEL_RESPONSE_HEADERS = (("Content-Security-Policy", "sandbox"), ("X-Content-Type-Options", "nosniff"))
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # an RFC 9110 token
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*\Z")  # no CR, LF, NUL or other controls
MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEAD_BYTES = 64 * 1024


class InvalidResponse(ValueError):
    """A child's response head that must not reach an HTTP client (the text says why)."""


@dataclass(frozen=True)
class ResponseHead:
    """A child's response head, checked: safe to write to a client as it is."""
    status: int
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    #: the body length the child announced, which the body must then match exactly
    content_length: int | None


def check_response_head(status: Any, status_message: Any, headers: Any) -> ResponseHead:
    """Everything a child says about a response, checked before any of it reaches a client.

    Raises InvalidResponse for a status outside 200-599, a header name that is not a token, a
    value with a line break or another control character, a length that is not one decimal
    number, or too many or too large headers. Hop-by-hop headers and those that would act on the
    hub's own origin are dropped; the tunnel's own safety headers are added.
    """
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise InvalidResponse(f"invalid status {status!r}"[:100])
    if not isinstance(headers, Mapping) or len(headers) > MAX_RESPONSE_HEADERS:
        raise InvalidResponse("invalid or too many headers")
    reason = None
    if isinstance(status_message, str):  # the status line: printable ASCII only, or none
        reason = "".join(c for c in status_message if 32 <= ord(c) < 127)[:100] or None
    out: list[tuple[str, str]] = []
    lengths: set[str] = set()
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise InvalidResponse(f"invalid header name {name!r}"[:100])
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str) or not HEADER_VALUE.match(v):
                raise InvalidResponse(f"invalid value of header {name}")
            size += len(name) + len(v) + 4
            lower = name.lower()
            if lower == "content-length":
                lengths.add(v.strip())
            elif lower not in HOP_BY_HOP and lower not in ORIGIN_HEADERS:
                out.append((name, v))
    if size > MAX_RESPONSE_HEAD_BYTES:
        raise InvalidResponse("response headers too large")
    content_length = None
    if lengths:
        text = lengths.pop()
        if lengths or not (text.isascii() and text.isdigit() and len(text) <= 18):
            raise InvalidResponse("invalid content-length")
        content_length = int(text)
        out.append(("Content-Length", text))
    return ResponseHead(status, reason, tuple(out) + TUNNEL_RESPONSE_HEADERS, content_length)


def tunnel_request_frames(request_id: str, method: str, path: str, headers: Mapping[str, Any],
                          query: Mapping[str, Any] | None = None,
                          data_token: str | None = None) -> list[str]:
    """The frames of a body-less request (GET/HEAD): initiate_request then end_request.

    `path` is the decoded path without leading slash (e.g. `<id>/download/a b.txt`); `data_token`:
    the one-time token of a data connection (only to a child that agreed on them).
    """
    initiate = InitiateRequest(request_id, method, encode_tunnel_path(path),
                               filter_request_headers(headers), dict(query or {}), data_token)
    return [canonical_json(initiate.to_fields()), canonical_json(EndRequest(request_id).to_fields())]


# ---------------------------------------------------------------- subtree and routing

def descendant_nodes(own_id: str, registry: ChildRegistry) -> dict[str, dict[str, Any]]:
    """This hub's whole subtree: direct leaves, direct child hubs, then their descendants."""
    nodes: dict[str, dict[str, Any]] = {}
    for table, node_type in ((registry.leaves, "leaf"), (registry.child_hubs, "hub")):
        for node_id, conn in table.items():
            nodes[node_id] = {"node_id": node_id, "parent_node_id": own_id,
                              "listen_url": conn.info.get("listen_url"), "node_type": node_type}
    for conn in registry.child_hubs.values():
        for node_id, entry in _reported_descendants(conn).items():
            nodes.setdefault(node_id, entry)
    return nodes


def _reported_descendants(conn: ChildConnection) -> dict[str, dict[str, Any]]:
    desc = conn.data.extra.get("descendant_nodes") if conn.data is not None else None
    if not isinstance(desc, dict):
        return {}
    return {k: v for k, v in desc.items() if isinstance(k, str) and isinstance(v, dict)}


def hub_node_data(own_id: str, registry: ChildRegistry) -> dict[str, Any]:
    """What a hub reports to its own parent."""
    return {"node_id": own_id, "descendant_nodes": descendant_nodes(own_id, registry)}


@dataclass(frozen=True)
class Route:
    """Where a request for `target_id` goes: the directly connected child to tunnel it to."""

    target_id: str
    child: ChildConnection
    via: str  # "leaf", "hub" (the target is that child hub) or "descendant"


def route(target_id: str, registry: ChildRegistry) -> Route | None:
    """Spec §3: direct leaf, direct child hub, first child hub whose descendant_nodes has the id."""
    if target_id in registry.leaves:
        return Route(target_id, registry.leaves[target_id], "leaf")
    if target_id in registry.child_hubs:
        return Route(target_id, registry.child_hubs[target_id], "hub")
    for conn in registry.child_hubs.values():
        if target_id in _reported_descendants(conn):
            return Route(target_id, conn, "descendant")
    return None


def unable_to_locate(target_id: str) -> dict[str, str]:
    """The 500 body when no route exists."""
    return {"error": f"Unable to locate node with id: {target_id}"}


# ---------------------------------------------------------------- find (spec §4.4)

def find_in_leaves(registry: ChildRegistry, sha1: str, share_id: str | None = None) -> list[dict[str, Any]]:
    """Results `{kbshare_id, size, path}` from the direct leaves' files_by_sha1."""
    results: list[dict[str, Any]] = []
    for node_id, conn in registry.leaves.items():
        if share_id is not None and node_id != share_id:
            continue
        found = conn.data.lookup(sha1) if conn.data is not None else None
        if found is not None:
            results.append({"kbshare_id": node_id, "size": found[1], "path": found[0]})
    return results


@dataclass(frozen=True)
class FindPlan:
    """What a hub must do for a find: local results, then tunnel `path` to each listed child hub."""

    local_results: list[dict[str, Any]]
    child_hub_queries: list[tuple[str, str]] = field(default_factory=list)  # (child hub id, path)


def plan_find(registry: ChildRegistry, sha1: str, filename: str = "",
              share_id: str | None = None,
              local_results: list[dict[str, Any]] | None = None) -> FindPlan:
    """Global find (share_id None): every child hub gets `find/<sha1>/<filename>`.

    Share-scoped find works at any ancestor (fixing spec §9.2): the share's own child hub gets
    `<share_id>/api/find/<sha1>/<filename>`, a route that every hub answers. `local_results`: what
    `find_in_leaves` would give, when the caller keeps an index of its leaves' files.
    """
    local = find_in_leaves(registry, sha1, share_id) if local_results is None else local_results
    if share_id is None:
        return FindPlan(local, [(hid, f"find/{sha1}/{filename}") for hid in registry.child_hubs])
    if share_id in registry.leaves:
        return FindPlan(local)
    r = route(share_id, registry)
    if r is None or r.via == "leaf":
        return FindPlan(local)
    return FindPlan(local, [(r.child.node_id or "", f"{share_id}/api/find/{sha1}/{filename}")])


def download_urls(share_id: str, path: str, subtree: Mapping[str, Mapping[str, Any]],
                  own_listen_url: str) -> list[str]:
    """The share's listen_url, each ancestor hub inside the subtree, then this hub (no encoding)."""
    suffix = f"/{share_id}/download/{path}"
    urls: list[str] = []
    node = subtree.get(share_id)
    if node and isinstance(node.get("listen_url"), str) and node["listen_url"]:
        urls.append(node["listen_url"] + suffix)
    seen = {share_id}
    parent = node.get("parent_node_id") if node else None
    while isinstance(parent, str) and parent in subtree and parent not in seen:
        seen.add(parent)
        hub = subtree[parent]
        if isinstance(hub.get("listen_url"), str) and hub["listen_url"]:
            urls.append(hub["listen_url"] + suffix)
        parent = hub.get("parent_node_id")
    urls.append(own_listen_url + suffix)
    return urls


def child_find_results(answer: Any) -> list[dict[str, Any]]:
    """The usable `results` of a child hub's find answer (anything malformed is ignored)."""
    if not isinstance(answer, dict) or not answer.get("found"):
        return []
    results = answer.get("results")
    if not isinstance(results, list):
        return []
    return [r for r in results if isinstance(r, dict) and isinstance(r.get("kbshare_id"), str)
            and isinstance(r.get("path"), str)]


def find_answer(results: Iterable[dict[str, Any]], own_id: str, registry: ChildRegistry,
                own_listen_url: str, top_hub_url: str | None = None,
                subtree: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The find reply of spec §4.3: urls for every result, results[0].size; or found:false.

    `subtree`: `descendant_nodes(own_id, registry)` when the caller keeps it (a busy hub does).
    kbtools: the own URL of a direct share this hub could not reach (its probe, `reachable` False)
    is listed after every other URL, and named in `kbtools_unreachable`.
    """
    results = list(results)
    if not results:
        answer: dict[str, Any] = {"success": True, "found": False}
        if top_hub_url and top_hub_url != own_listen_url:
            answer["alt_hub_url"] = top_hub_url
        return answer
    if subtree is None:
        subtree = descendant_nodes(own_id, registry)
    urls: list[str] = []
    last: list[str] = []  # the share's own URL, when this hub could not reach it: tried last
    for r in results:
        share_urls = download_urls(r["kbshare_id"], r["path"], subtree, own_listen_url)
        conn = registry.leaves.get(r["kbshare_id"])
        if conn is not None and conn.reachable is False and len(share_urls) > 1 \
                and share_urls[0].startswith(str(conn.info.get("listen_url")) + "/"):
            last.append(share_urls.pop(0))
        urls += share_urls
    answer = {"success": True, "found": True, "urls": urls + last, "results": results}
    if last:
        answer["kbtools_unreachable"] = last
    return answer


# ---------------------------------------------------------------- nodeinfo (spec §4.3)

def node_info_object(config: Mapping[str, Any], node_id: str, public_pem: str,
                     listen_url: str) -> dict[str, Any]:
    """The `info` object of nodeinfo (also sent in confirm_registration); listen_url resolved."""
    info: dict[str, Any] = {
        "node_id": node_id,
        "node_type": config.get("node_type"),
        "name": config.get("name"),
        "description": config.get("description"),
        "owner": config.get("owner"),
        "owner_email": config.get("owner_email"),
        "listen_url": listen_url,
        "public_key": public_pem,
    }
    if config.get("cas_upload_url"):
        info["cas_upload_url"] = config["cas_upload_url"]
    return info


def _child_entry(conn: ChildConnection) -> dict[str, Any]:
    """A child in a hub's nodeinfo: the original's keys; kbtools adds `kbtools_reachable` once the
    hub probed the child's listen_url (true: reached directly; false: not)."""
    entry: dict[str, Any] = {"name": conn.info.get("name"), "listen_url": conn.info.get("listen_url")}
    if conn.reachable is not None:
        entry["kbtools_reachable"] = conn.reachable
    return entry


def nodeinfo_answer(info: dict[str, Any], metrics: Mapping[str, Any],
                    registry: ChildRegistry | None = None,
                    parent_hub_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """`/<id>/api/nodeinfo` for this node: child lists only for a hub (registry given)."""
    answer: dict[str, Any] = {"success": True, "info": info}
    if registry is not None:
        answer["child_hubs"] = {i: _child_entry(c) for i, c in registry.child_hubs.items()}
        answer["child_leaf_nodes"] = {i: _child_entry(c) for i, c in registry.leaves.items()}
    if parent_hub_info is not None:
        answer["parent_hub_info"] = parent_hub_info
    answer["metrics"] = dict(metrics)
    return answer
