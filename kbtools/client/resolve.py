"""Resolution of ``kbucket://``, ``sha1://`` and ``http(s)://`` URLs against a hub (spec §4, §6).

A file resolves to its SHA-1, its size and the URLs it can be downloaded from, in the order the
original clients try them: the share's own ``listen_url`` first, then the hubs above it (the ``find``
answer, §4.4), then the hub that was asked. A directory resolves to its entries (``readdir``).

Each download URL is also labelled with its route: ``direct`` (the share itself serves it) or ``hub``
(a hub relays it through its tunnel). A hub lists each file's URLs share first (its ``listen_url``),
then the hubs above it, then itself (§4.4); a URL given by the user is on a share when that peer
answers ``find`` with "not a hub".
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterator

import requests

from . import tls
from .errors import BadUrl, NotFound, PeerError
from .urls import (
    HttpRef,
    KbucketRef,
    Ref,
    Sha1Ref,
    check_hub_url,
    content_url,
    download_url,
    encode_found_url,
    find_url,
    kbucket_url,
    parse_url,
    prv_url,
    readdir_url,
    strip_base,
)

#: (connect, read) seconds for API calls: a hub answers these from memory or one tunnel hop.
API_TIMEOUT = (5.0, 30.0)


@dataclass
class Entry:
    """One entry of a directory listing."""

    name: str
    type: str  # "file" | "dir"
    url: str  # kbucket:// URL of the entry
    sha1: str | None = None  # None when the share has not indexed the file yet
    size: int | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "url": self.url}
        if self.type == "file":
            out["sha1"] = self.sha1
            out["size"] = self.size
        return out


@dataclass
class Resolution:
    """What a URL stands for: a file (sha1, size, download URLs) or a directory (entries)."""

    url: str
    type: str  # "file" | "dir"
    name: str  # a local name for it (last path segment, the sha1:// name, or the sha1)
    node_id: str | None = None
    path: str | None = None  # inside the share
    sha1: str | None = None
    size: int | None = None
    download_urls: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    hub: str | None = None  # the API base that answered
    routes: dict[str, str] = field(default_factory=dict)  # download URL -> "direct" | "hub"
    content_url: str | None = None  # the hub's cacheable /sha1/<sha1>/<name> URL (kbtools hubs)

    def route_of(self, url: str) -> str:
        """How ``url`` reaches the file: ``direct`` (the share itself) or ``hub`` (relayed)."""
        return self.routes.get(url, "hub")

    def record(self) -> dict[str, Any]:
        """The kb-url record (schemas/kb-url-record.json, remote form)."""
        out: dict[str, Any] = {"url": self.url, "type": self.type}
        if self.type == "file":
            out.update(sha1=self.sha1, size=self.size, download_urls=list(self.download_urls))
            if self.content_url:
                out["content_url"] = self.content_url
        else:
            out["entries"] = [entry.record() for entry in self.entries]
        return out


def describe(exc: BaseException) -> str:
    """A short reason for a requests failure (its own message is a paragraph)."""
    if tls.is_certificate_error(exc):
        return f"TLS certificate not trusted ({tls.certificate_reason(exc)})"
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("timed out", "timed out"),
        ("Read timed out", "timed out"),
        ("RemoteDisconnected", "connection closed by the peer"),
        ("Connection reset", "connection reset"),
        ("Connection aborted", "connection aborted"),
        ("IncompleteRead", "connection closed mid-transfer"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


class HubApi:
    """The JSON API of one hub or share (``prv``, ``readdir``, ``find``), with clear errors."""

    def __init__(self, base: str, session: requests.Session | None = None,
                 timeout: tuple[float, float] = API_TIMEOUT) -> None:
        self.base = strip_base(base)
        self.session = session or tls.session()
        self.timeout = timeout
        self.not_a_hub = False  # this peer answered find with "not a hub": it is a share

    def get_json(self, url: str) -> tuple[int, Any]:
        """GET ``url``; (status, parsed JSON or None). Network failures raise :class:`PeerError`."""
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            if tls.is_certificate_error(exc):
                raise PeerError(f"hub {self.base}: {tls.certificate_message(self.base, exc)}") from None
            raise PeerError(f"hub {self.base} unreachable: {describe(exc)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    @staticmethod
    def error_of(status: int, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, str) else f"HTTP {status}"

    def _raise_unknown_node(self, node_id: str, message: str) -> None:
        if "unable to locate node" in message.lower():
            raise NotFound(f"node {node_id} is not known to hub {self.base}")

    def prv(self, node_id: str, path: str) -> tuple[dict[str, Any] | None, str]:
        """The prv object of a file, or (None, the peer's reason)."""
        status, body = self.get_json(prv_url(self.base, node_id, path))
        if status == 200 and isinstance(body, dict) and isinstance(body.get("original_checksum"), str):
            return body, ""
        message = self.error_of(status, body)
        self._raise_unknown_node(node_id, message)
        return None, message

    def readdir(self, node_id: str, path: str) -> tuple[dict[str, Any] | None, str]:
        """A directory listing ``{files, dirs}``, or (None, the peer's reason)."""
        status, body = self.get_json(readdir_url(self.base, node_id, path))
        if status == 200 and isinstance(body, dict) and body.get("success") is not False \
                and isinstance(body.get("files"), list) and isinstance(body.get("dirs"), list):
            return body, ""
        message = self.error_of(status, body)
        self._raise_unknown_node(node_id, message)
        return None, message

    def find(self, sha1: str, node_id: str | None = None) -> dict[str, Any] | None:
        """The ``find`` answer when found, else None (also when this peer is not a hub)."""
        status, body = self.get_json(find_url(self.base, sha1, node_id))
        if status != 200 and "not a hub" in self.error_of(status, body).lower():
            self.not_a_hub = True
        if status != 200 or not isinstance(body, dict) or not body.get("found"):
            return body if isinstance(body, dict) and body.get("alt_hub_url") else None
        return body


def found_urls(answer: dict[str, Any] | None) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """Download URLs (made safe to request), results and routes of a ``find`` answer.

    A hub lists the URLs of each result share first, then the hubs (§4.4): the first URL of each
    result is ``direct``, the others ``hub``. A kbtools hub lists the share's own URL last when it
    could not reach it, and names it in ``kbtools_unreachable``: that one is ``direct``.
    """
    if not answer or not answer.get("found"):
        return [], [], {}
    results = [r for r in answer.get("results") or [] if isinstance(r, dict)]
    moved = answer.get("kbtools_unreachable")
    unreachable = {u for u in moved if isinstance(u, str)} if isinstance(moved, list) else set()
    found: list[tuple[str, str, tuple[str, str] | None]] = []  # (as listed, encoded, group)
    for url in answer.get("urls") or []:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            continue
        group = None
        listed = url
        for result in results:
            node_id, path = str(result.get("kbshare_id", "")), str(result.get("path", ""))
            if node_id and f"/{node_id}/download/" in url:
                url = encode_found_url(url, node_id, path)
                group = (node_id, path)
                break
        found.append((listed, url, group))
    moved_groups = {group for listed, _, group in found if listed in unreachable}
    urls: list[str] = []
    routes: dict[str, str] = {}
    previous: tuple[str, str] | None = None
    for listed, url, group in found:
        if listed in unreachable:
            route = "direct"
        elif group in moved_groups:
            route = "hub"
        else:
            route = "direct" if group is not None and group != previous else "hub"
        routes.setdefault(url, route)
        previous = group
        urls.append(url)
    return urls, results, routes


def _unique(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def _file_entry_fields(item: dict[str, Any]) -> tuple[str | None, int | None]:
    prv = item.get("prv")
    if not isinstance(prv, dict):
        prv = {}
    sha1 = prv.get("original_checksum") if isinstance(prv.get("original_checksum"), str) else None
    size = item.get("size", prv.get("original_size"))
    return (sha1.lower() if sha1 else None), (size if isinstance(size, int) else None)


def _safe_name(name: Any, base: str) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise PeerError(f"{base} listed an unsafe entry name: {name!r}")
    return name


class Resolver:
    """Resolves URLs against one hub (``hub`` may be None for http(s) URLs and the cache)."""

    def __init__(self, hub: str | None = None, session: requests.Session | None = None,
                 timeout: tuple[float, float] = API_TIMEOUT) -> None:
        self.hub = check_hub_url(hub) if hub else None
        self.session = session or tls.session()
        self.timeout = timeout
        # (hub, node id) -> download bases, each with its route ("direct" | "hub")
        self.share_bases: dict[tuple[str, str], dict[str, str]] = {}

    def api(self, base: str | None = None) -> HubApi:
        base = base or self.hub
        if not base:
            raise BadUrl("no hub to ask: pass --hub URL or set KBUCKET_URL")
        return HubApi(base, self.session, self.timeout)

    # -- files and directories of a share ------------------------------------------------------
    def resolve(self, url: str | Ref) -> Resolution:
        """Resolve one URL (see :mod:`kbtools.client.urls` for the forms)."""
        ref = parse_url(url) if isinstance(url, str) else url
        if isinstance(ref, Sha1Ref):
            return self.resolve_sha1(ref)
        api = self.api(ref.base if isinstance(ref, HttpRef) else None)
        first = [download_url(api.base, ref.node_id, ref.path)] if isinstance(ref, HttpRef) else []
        if ref.is_dir_hint:
            return self._resolve_dir(api, ref)
        prv, reason = api.prv(ref.node_id, ref.path)
        if prv is None:
            listing, _ = api.readdir(ref.node_id, ref.path)
            if listing is None:
                raise NotFound(f"{ref.url}: {reason}")
            return self._dir_resolution(api, ref, listing)
        sha1 = prv["original_checksum"].lower()
        size = prv.get("original_size") if isinstance(prv.get("original_size"), int) else None
        urls, routes = self.share_file_urls(api, ref.node_id, ref.path, sha1)
        name = posixpath.basename(ref.path) or sha1
        return Resolution(ref.url, "file", name, ref.node_id, ref.path, sha1, size,
                          _unique(first + urls), hub=api.base, routes=routes,
                          content_url=None if api.not_a_hub else content_url(api.base, sha1, name))

    def share_file_urls(self, api: HubApi, node_id: str, path: str,
                        sha1: str) -> tuple[list[str], dict[str, str]]:
        """Download URLs of one file of one share (the ``find`` answer, then this peer's own URL),
        and the route of each."""
        urls: list[str] = []
        routes: dict[str, str] = {}
        try:
            urls, _, routes = found_urls(api.find(sha1, node_id))
        except PeerError:
            pass  # find is an optimisation here: the tunnel URL below still works
        # A share-scoped find may list other paths with the same content: all are good bytes.
        own = download_url(api.base, node_id, path)
        routes[own] = "direct" if api.not_a_hub else "hub"  # (also when find listed it first)
        return _unique(urls + [own]), routes

    def _resolve_dir(self, api: HubApi, ref: KbucketRef | HttpRef) -> Resolution:
        listing, reason = api.readdir(ref.node_id, ref.path)
        if listing is None:
            raise NotFound(f"{ref.url}: {reason}")
        return self._dir_resolution(api, ref, listing)

    def _dir_resolution(self, api: HubApi, ref: KbucketRef | HttpRef,
                        listing: dict[str, Any]) -> Resolution:
        entries: list[Entry] = []
        prefix = f"{ref.path}/" if ref.path else ""
        for item in listing["files"]:
            if not isinstance(item, dict):
                continue
            name = _safe_name(item.get("name"), api.base)
            sha1, size = _file_entry_fields(item)
            entries.append(Entry(name, "file", kbucket_url(ref.node_id, prefix + name), sha1, size))
        for item in listing["dirs"]:
            if not isinstance(item, dict):
                continue
            name = _safe_name(item.get("name"), api.base)
            entries.append(Entry(name, "dir", kbucket_url(ref.node_id, prefix + name) + "/"))
        name = posixpath.basename(ref.path) or ref.node_id
        return Resolution(ref.url, "dir", name, ref.node_id, ref.path, entries=entries, hub=api.base)

    def walk(self, resolution: Resolution) -> Iterator[tuple[str, Entry]]:
        """Every file below a directory, recursively: (path relative to it, entry)."""
        api = self.api(resolution.hub)
        assert resolution.node_id is not None and resolution.path is not None
        stack: list[tuple[str, Resolution]] = [("", resolution)]
        while stack:
            relative, current = stack.pop()
            for entry in current.entries:
                if entry.type == "file":
                    yield relative + entry.name, entry
            for entry in reversed([e for e in current.entries if e.type == "dir"]):
                sub_path = posixpath.join(current.path or "", entry.name)
                sub_ref = KbucketRef(entry.url, resolution.node_id, sub_path, True)
                stack.append((relative + entry.name + "/", self._resolve_dir(api, sub_ref)))

    def entry_file(self, directory: Resolution, entry: Entry) -> Resolution:
        """The file resolution of a directory entry (download URLs from the same hub)."""
        ref = parse_url(entry.url)
        assert isinstance(ref, KbucketRef)
        if entry.sha1 is None:
            raise NotFound(f"{entry.url}: not indexed yet by its share")
        api = self.api(directory.hub)
        key = (api.base, ref.node_id)
        bases = self.share_bases.get(key)
        if bases:
            urls = [download_url(base, ref.node_id, ref.path) for base in bases]
            routes = {url: route for url, route in zip(urls, bases.values())}
        else:
            urls, routes = self.share_file_urls(api, ref.node_id, ref.path, entry.sha1)
            # The same share is reached the same ways for every file: one find per directory walk.
            marker = f"/{ref.node_id}/download/"
            self.share_bases[key] = {url[: url.index(marker)]: routes.get(url, "hub")
                                     for url in urls if marker in url}
        return Resolution(entry.url, "file", entry.name, ref.node_id, ref.path, entry.sha1,
                          entry.size, urls, hub=api.base, routes=routes)

    # -- content ---------------------------------------------------------------------------------
    def resolve_sha1(self, ref: Sha1Ref) -> Resolution:
        """Global find (any share below the hub), following ``alt_hub_url`` once (spec §4.3).

        A hub's content URL (``https://HUB/sha1/SHA1/name``) is fetched from there alone."""
        if ref.content_url:
            return Resolution(ref.url, "file", ref.name or ref.sha1, sha1=ref.sha1,
                              download_urls=[ref.content_url], routes={ref.content_url: "hub"},
                              content_url=ref.content_url)
        api = self.api()
        answer = api.find(ref.sha1)
        alt = answer.get("alt_hub_url") if answer and not answer.get("found") else None
        if isinstance(alt, str) and strip_base(alt) != api.base and alt.startswith(("http://", "https://")):
            answer = self.api(alt).find(ref.sha1)
        urls, results, routes = found_urls(answer)
        if not urls:
            raise NotFound(f"{ref.url}: not found on hub {api.base}")
        size = results[0].get("size") if results else None
        first = results[0] if results else {}
        node_id = first.get("kbshare_id") if isinstance(first.get("kbshare_id"), str) else None
        path = first.get("path") if isinstance(first.get("path"), str) else None
        if node_id and path:
            own = download_url(api.base, node_id, path)
            routes[own] = "hub"
            urls = _unique(urls + [own])
        return Resolution(ref.url, "file", ref.name or ref.sha1, node_id, path, ref.sha1,
                          size if isinstance(size, int) else None, urls, hub=api.base, routes=routes,
                          content_url=content_url(api.base, ref.sha1, ref.name))


def resolve(url: str, hub: str | None = None, session: requests.Session | None = None) -> Resolution:
    """Resolve one ``kbucket://``, ``sha1://`` or ``http(s)://`` URL against ``hub``."""
    return Resolver(hub, session).resolve(url)
