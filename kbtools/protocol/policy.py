"""What both drivers of a ParentLink do the same way: a share's link (share/link.py, threads) and a
child hub's link to its parent (hub/parent.py, asyncio).

- `retry_delays`: the waits between reconnections, doubling up to a cap, with jitter (many
  children of one restarted hub must not all come back in the same second);
- `replay_headers`: the headers of a tunnelled request when it is replayed against the node's own
  HTTP server (no credentials of the hub's client, no per-connection headers);
- `request_error`: the text of `http.report_error` when replaying failed (the exception's type
  only: its message can hold local paths);
- `describe_failure`: the operator's text for a failed connection (logged locally, never sent).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Mapping

from kbtools.node.grants import HEADER as TOKEN_HEADER
from kbtools.protocol.routing import HOP_BY_HOP, PRIVATE_REQUEST_HEADERS

FIRST_RETRY = 1.0  # seconds
MAX_RETRY = 10.0
JITTER = 0.2  # each delay is drawn from ±20 % of its nominal value

# Never passed to the node's own server: per-connection headers (the body is re-framed, the host is
# ours) and the credentials of the client that asked the hub (cookies, Authorization).
REPLAY_DROPPED_HEADERS = HOP_BY_HOP | PRIVATE_REQUEST_HEADERS | {"host", "content-length"}


def retry_delays(first: float = FIRST_RETRY, cap: float = MAX_RETRY,
                 uniform: Callable[[float, float], float] = random.uniform) -> Iterator[float]:
    """first, 2·first, 4·first, ... up to `cap`, then `cap` for ever; each with ±20 % jitter,
    rounded to 0.01 s. Start a new iterator after a successful registration."""
    delay = first
    while True:
        yield round(delay * uniform(1 - JITTER, 1 + JITTER), 2)
        delay = min(cap, delay * 2)


def replay_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """The headers of a tunnelled request to send to this node's own server.

    Text values only, without REPLAY_DROPPED_HEADERS. A grant token (`Authorization: Bearer`, the
    form an original hub forwards from its client, spec §3.1) moves to the `X-Kbucket-Token`
    header, which a private share reads and a hub passes on; no other credential gets through.
    """
    out: dict[str, str] = {}
    bearer = None
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        lower = name.lower()
        if lower == "authorization" and value[:7].lower() == "bearer ":
            bearer = value[7:].strip()
        if lower not in REPLAY_DROPPED_HEADERS:
            out[name] = value
    if bearer and not any(name.lower() == TOKEN_HEADER.lower() for name in out):
        out[TOKEN_HEADER] = bearer
    return out


def request_error(exc: BaseException) -> str:
    """The `http.report_error` text for a request whose replay failed."""
    return f"Error in request: {type(exc).__name__}"


def describe_failure(exc: BaseException) -> str:
    """`Type: message` (or the type alone) for the operator's log and events; never sent up."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
