"""Grant tokens on the client side: taken from a link, a file or the environment, sent as a header.

A link to a private share carries its token at the end: ``kbucket://NODEID/dataset1?token=kbt1…``.
:func:`take_link` cuts it off (the rest of the program, its records and messages never see it) and
remembers it for its node id (read, unverified, from the token: the share verifies it). Every
session from :func:`kbtools.client.tls.session` then sends it in the ``X-Kbucket-Token`` header,
only to URLs of that node's routes (``/NODEID/download/…``, ``/NODEID/api/…``, ``/NODEID/prv/…``),
never in a URL, and not across a redirect. The header passes through kbtools hubs (which drop
``Authorization`` and cookies) and original hubs (which forward every header) alike.
"""
from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import unquote, urlsplit

import requests

from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.grants import HEADER, TOKEN_ENV, TOKEN_RE, split_link

ROUTE_WORDS = frozenset({"download", "prv", "api"})
_lock = threading.Lock()
_tokens: dict[str, str] = {}  # node id -> token


def node_of(token: str) -> str:
    """The node id a token names (not verified: only the share can); UsageError if not a token."""
    if not TOKEN_RE.match(token):
        raise UsageError("not a kbucket grant token (kbt1.…): check the link or the token file")
    payload = token.split(".")[1]
    try:
        obj = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        node = obj["node"]
    except (ValueError, KeyError, TypeError):
        raise UsageError("not a kbucket grant token (kbt1.…): check the link or the token file") from None
    if not isinstance(node, str) or not node:
        raise UsageError("not a kbucket grant token (kbt1.…): check the link or the token file")
    return node.lower()


def remember(token: str) -> str:
    """Send ``token`` with every request to its node from now on; its node id."""
    node = node_of(token)
    with _lock:
        _tokens[node] = token
    return node


def forget_all() -> None:
    with _lock:
        _tokens.clear()


def take_link(url: str) -> str:
    """``url`` without its ``?token=…``, the token remembered."""
    bare, token = split_link(url)
    if token is not None:
        remember(token)
    return bare


def take_links(urls: Iterable[str]) -> list[str]:
    return [take_link(url) for url in urls]


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in a file (alone, or at the end of a link), whitespace around it ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(f"--token-file: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(f"--token-file: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
    return split_link(text)[1] or text


def remember_configured(token_file: str | None, env: Mapping[str, str] | None = None) -> None:
    """The token of ``--token-file``, else of ``$KBUCKET_TOKEN`` (a token or a link), if any."""
    env = os.environ if env is None else env
    if token_file:
        remember(read_token_file(token_file))
        return
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        remember(split_link(value)[1] or value)


def token_for(url: str) -> str | None:
    """The token to send with a request to ``url``: the one of the node whose route it names."""
    with _lock:
        if not _tokens:
            return None
        tokens = dict(_tokens)
    segments = [unquote(s) for s in urlsplit(url).path.split("/")]
    for i, segment in enumerate(segments[:-1]):
        token = tokens.get(segment.lower())
        if token is not None and segments[i + 1].lower() in ROUTE_WORDS:
            return token
    return None


class GrantAuth(requests.auth.AuthBase):
    """Adds the token header to the requests of a granted node's routes (see the module docstring)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = token_for(request.url or "")
        if token is not None:
            request.headers[HEADER] = token
            request.register_hook("response", _not_across_redirects)
        return request


def _not_across_redirects(response: requests.Response, **_: Any) -> requests.Response:
    if response.is_redirect and response.request is not None:
        response.request.headers.pop(HEADER, None)
    return response


def attach(session: requests.Session) -> requests.Session:
    if session.auth is None:
        session.auth = GrantAuth()
    return session
