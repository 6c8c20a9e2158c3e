"""Protocol errors that say who is at fault (as in h11)."""
from __future__ import annotations


class ProtocolError(Exception):
    """Base class. `str(e)` is the error text (for a hub reply: the original's exact string)."""


class LocalProtocolError(ProtocolError):
    """We were about to break the protocol (a bug or bad input on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol. A hub replies `{"error": "<text>. Closing websocket."}` and closes."""
