"""The signed envelope of every child -> parent frame (spec §2.2)."""
from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from kbtools.node.identity import NodeIdentity
from kbtools.protocol.canonical import canonical_json

NETWORK_TYPE = "kbucket"


class Signer:
    """Signs a node's messages; the private key is parsed once."""

    def __init__(self, identity: NodeIdentity) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self._key = identity.private_key()

    def message(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The inner message: fields, then timestamp, node_id, network_type (in that order)."""
        message = dict(fields)
        for k in ("timestamp", "node_id", "network_type"):
            message.pop(k, None)
        message["timestamp"] = int(now_ms)
        message["node_id"] = self.node_id
        message["network_type"] = NETWORK_TYPE
        return message

    def envelope(self, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """The outer frame object, signed; `public_key` only for register* commands."""
        return dict(json.loads(self.frame(fields, now_ms)))

    def frame(self, fields: dict[str, Any], now_ms: int) -> str:
        """The frame text: the message is serialized once, signed, and embedded as is."""
        message = self.message(fields, now_ms)
        text = canonical_json(message)
        signature = self._key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()).hex()
        tail = [("node_id", self.node_id), ("kbnode_id", self.node_id), ("signature", signature)]
        if str(message.get("command", "")).startswith("register"):
            tail.append(("public_key", self.identity.public_pem))
        return '{"message":' + text + "".join("," + canonical_json(k) + ":" + canonical_json(v)
                                              for k, v in tail) + "}"
