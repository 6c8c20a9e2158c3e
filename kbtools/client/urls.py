"""The URLs the client accepts, and the hub and share API URLs it builds (spec §4, §6).

Accepted forms:

- ``kbucket://NODEID/path/in/share`` (``kbucket://NODEID/`` is the share's root). The path is taken
  literally, as the original client does (``split('/')``): a name may hold spaces, ``#``, ``?`` or
  any unicode character.
- ``sha1://SHA1`` and ``sha1://SHA1/name`` (the name only suggests a local file name: its last
  segment is kept, and a name that could not be a plain file name, ``.``, ``..`` or empty, falls back
  to the SHA-1).
- ``http(s)://HOST/NODEID/download/PATH`` and ``http(s)://HOST/NODEID/api/readdir/PATH`` of a hub
  or a share (percent-encoded, as any HTTP URL).
- ``http(s)://HOST/sha1/SHA1[/name]``: a kbtools hub's content URL, the same file as
  ``sha1://SHA1/name``, downloaded from that URL only.

API URLs are built with the path percent-encoded per segment, so every name reaches the peer intact.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit

from .errors import BadHubUrl, BadUrl

SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
# Node ids are 12 hex digits; the original also accepted "collection.key" aliases (spec §6).
NODE_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")


@dataclass(frozen=True)
class KbucketRef:
    """``kbucket://NODEID/path``: a file or directory of one share."""

    url: str
    node_id: str
    path: str  # relative to the share root, no leading or trailing slash; "" is the root
    is_dir_hint: bool  # the URL ended with "/"


@dataclass(frozen=True)
class Sha1Ref:
    """``sha1://SHA1[/name]``: a file by content."""

    url: str
    sha1: str  # lower-case hex
    name: str | None
    content_url: str | None = None  # given as a hub's http(s)://HOST/sha1/SHA1[/name]: fetch it there


@dataclass(frozen=True)
class HttpRef:
    """An http(s) URL of a hub or share API: ``BASE/NODEID/download/PATH`` or ``.../api/readdir/PATH``."""

    url: str
    base: str  # scheme://host[:port][/prefix], no trailing slash
    node_id: str
    path: str  # decoded, relative to the share root
    is_dir_hint: bool  # a readdir URL


Ref = KbucketRef | Sha1Ref | HttpRef


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(text: str) -> str:
    """``text`` for a one-line message: control characters (NUL, newline...) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def check_relpath(path: str, url: str) -> str:
    """Reject paths that could climb out of a share or of a local output directory."""
    segments = path.split("/") if path else []
    for segment in segments:
        if segment in ("", ".", "..") or "\x00" in segment:
            raise BadUrl(f"unsafe path in URL: {shown(url)}")
    return path


def parse_url(text: str) -> Ref:
    """Parse one URL given by a user; raise :class:`BadUrl` with a one-line reason."""
    if text.startswith("kbucket://"):
        rest = text[len("kbucket://"):]
        node_id, _, path = rest.partition("/")
        if not NODE_ID_RE.match(node_id):
            raise BadUrl(f"bad node id in URL: {shown(text)}")
        is_dir = not path or path.endswith("/")
        return KbucketRef(text, node_id, check_relpath(path.strip("/"), text), is_dir)
    if text.startswith("sha1://"):
        rest = text[len("sha1://"):]
        sha1, _, name = rest.partition("/")
        if not SHA1_RE.match(sha1):
            raise BadUrl(f"not a SHA-1 (40 hex digits) in URL: {shown(text)}")
        if "\x00" in name:
            raise BadUrl(f"unsafe name in URL: {shown(text)}")
        # Only the last segment names the local file ("a/b/" is "b"); "." and ".." name nothing.
        last = name.rstrip("/").rpartition("/")[2]
        return Sha1Ref(text, sha1.lower(), None if last in ("", ".", "..") else last)
    if text.startswith(("http://", "https://")):
        return _parse_http(text)
    raise BadUrl(f"not a kbucket://, sha1:// or http(s):// URL: {shown(text)}")


_HTTP_API_RE = re.compile(r"^(?P<prefix>.*?)/(?P<id>[^/]+)/(?:(?P<download>download)|api/readdir)"
                          r"(?:/(?P<path>.*))?$")


def _split_http(text: str) -> SplitResult:
    """``urlsplit`` of an http(s) URL with a host and a valid port, else :class:`ValueError`."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("no host")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number of 0-65535
    if _CONTROL.search(parts.netloc) or " " in parts.netloc:
        raise ValueError("bad host")
    return parts


_CONTENT_RE = re.compile(r"^(?P<prefix>.*?)/sha1/(?P<sha1>[0-9a-fA-F]{40})(?:/(?P<name>[^/]*))?$")


def _parse_http(text: str) -> HttpRef | Sha1Ref:
    try:
        parts = _split_http(text)
    except ValueError:
        raise BadUrl(f"no valid host (and port) in URL: {shown(text)}") from None
    content = _CONTENT_RE.match(parts.path)
    if content and not parts.query and not parts.fragment:
        name = unquote(content["name"] or "")
        if "\x00" in name or name in (".", ".."):
            name = ""
        return Sha1Ref(text, content["sha1"].lower(), name or None, text)
    match = _HTTP_API_RE.match(parts.path)
    if not match or not NODE_ID_RE.match(unquote(match["id"])):
        raise BadUrl(
            f"not a kbucket download URL (expected http(s)://HOST/NODEID/download/PATH): {shown(text)}"
        )
    base = f"{parts.scheme}://{parts.netloc}{match['prefix']}"
    raw_path = match["path"] or ""
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise BadUrl(f"path is not UTF-8 once decoded: {shown(text)}") from None
    is_dir = not match["download"] or not raw_path or raw_path.endswith("/")
    return HttpRef(text, base, unquote(match["id"]), check_relpath(path.strip("/"), text), is_dir)


HUB_URL_EXAMPLE = "http(s)://HOST[:PORT][/PREFIX], for example http://127.0.0.1:3000"


def check_hub_url(value: str, origin: str = "hub URL") -> str:
    """``value`` (a hub URL from ``origin``: ``--hub``, ``KBUCKET_URL``) without trailing slashes;
    :class:`BadHubUrl` (a usage error) naming ``origin`` when it is not an http(s) URL of a host."""
    try:
        parts = _split_http(value.strip())
    except ValueError:
        raise BadHubUrl(f"{origin}={shown(value)} is not a hub URL: expected {HUB_URL_EXAMPLE}") from None
    if parts.query or parts.fragment:
        raise BadHubUrl(f"{origin}={shown(value)} is not a hub URL (no ?query or #fragment):"
                        f" expected {HUB_URL_EXAMPLE}")
    return strip_base(value.strip())


def configured_hub(option: str | None) -> str | None:
    """The hub to ask: ``--hub`` (``option``), else ``$KBUCKET_URL``, checked; None when neither."""
    if option:
        return check_hub_url(option, "--hub")
    value = os.environ.get("KBUCKET_URL")
    return check_hub_url(value, "KBUCKET_URL") if value else None


def quote_path(path: str) -> str:
    """Percent-encode a share path per segment (UTF-8), keeping the slashes."""
    return quote(path, safe="/")


def strip_base(url: str) -> str:
    """A hub URL as given by a user, without its trailing slashes."""
    return url.rstrip("/")


def download_url(base: str, node_id: str, path: str) -> str:
    return f"{strip_base(base)}/{node_id}/download/{quote_path(path)}"


def prv_url(base: str, node_id: str, path: str) -> str:
    return f"{strip_base(base)}/{node_id}/prv/{quote_path(path)}"


def readdir_url(base: str, node_id: str, path: str) -> str:
    return f"{strip_base(base)}/{node_id}/api/readdir/{quote_path(path)}"


def content_url(base: str, sha1: str, name: str | None = None) -> str:
    """A kbtools hub's cacheable URL of a content: ``BASE/sha1/SHA1[/name]`` (name percent-encoded)."""
    tail = f"/{quote(name, safe='')}" if name and name != sha1 else ""
    return f"{strip_base(base)}/sha1/{sha1}{tail}"


def find_url(base: str, sha1: str, node_id: str | None = None) -> str:
    """Share-scoped find with ``node_id``, else the global find (spec §4.2)."""
    if node_id:
        return f"{strip_base(base)}/{node_id}/api/find/{sha1}/"
    return f"{strip_base(base)}/find/{sha1}/"


def kbucket_url(node_id: str, path: str) -> str:
    return f"kbucket://{node_id}/{path}"


def encode_found_url(url: str, node_id: str, path: str) -> str:
    """A download URL from a ``find`` answer, made safe to request.

    The original hub concatenates the raw path into its URLs (spec §4.4), so a name with a space,
    ``#`` or ``?`` would be cut by any HTTP library. When the tail of the URL is exactly the raw path,
    it is percent-encoded; a tail that differs was already encoded by the hub and is kept.
    """
    marker = f"/{node_id}/download/"
    head, found, tail = url.partition(marker)
    if found and tail == path:
        return head + marker + quote_path(path)
    return url
