"""The signed envelope of every child -> parent frame (spec §2.2)."""
from __future__ import annotations

from typing import Any

from kbtools.node.identity import NodeIdentity
from kbtools.protocol.canonical import canonical_json, sign_message

NETWORK_TYPE = "kbucket"


class Signer:
    """Signs a node's messages; the private key is parsed once."""

    def __init__(self, identity: NodeIdentity) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self._key = identity.private_key()

    def envelope(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The outer frame object: fields + timestamp, node_id, network_type (in that order), signed."""
        message = dict(fields)
        for k in ("timestamp", "node_id", "network_type"):
            message.pop(k, None)
        message["timestamp"] = int(now_ms)
        message["node_id"] = self.node_id
        message["network_type"] = NETWORK_TYPE
        outer: dict[str, Any] = {
            "message": message,
            "node_id": self.node_id,
            "kbnode_id": self.node_id,
            "signature": sign_message(self._key, message),
        }
        if str(message.get("command", "")).startswith("register"):
            outer["public_key"] = self.identity.public_pem
        return outer

    def frame(self, fields: dict[str, Any], now_ms: int) -> str:
        """The frame text of `envelope(fields, now_ms)`."""
        return canonical_json(self.envelope(fields, now_ms))
