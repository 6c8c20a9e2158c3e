"""The fast tunnel between two kbtools peers: binary websocket frames with raw bytes and a credit window.

Negotiation: the child adds `"kbtools_tunnel": {"version": 1, "cancel": true}` to its register `info`
(`cancel`: it understands CANCEL frames; older kbtools children omit it); a kbtools hub answers with
`"kbtools_tunnel": {"version": 1, "window": N}` next to `info` in `confirm_registration`.
An original peer ignores both fields, and then the compatible path (base64 JSON, signed) is used.

Once agreed, response bodies travel as binary frames (no base64, no per-chunk signature: the link was
authenticated at registration and the websocket is the only writer). Headers, end and errors stay
signed JSON frames. The hub grants each request `window` bytes of credit at the start and more with
CREDIT frames as its HTTP client consumes data; a child never sends more than its credit, so both
sides hold at most `window` bytes per request. When the HTTP client goes away before the end, the hub
sends CANCEL (to a child that offered it): the child stops and sends nothing more for that request.

A frame type this version does not know decodes as it is and is ignored by the receiver, so a later
version may add frame types without breaking the link.

Data connections (`"data_connection": 1` in both the offer and the answer): for a large file body the
hub puts a one-time token in `http.initiate_request` (`kbtools_data_token`); the child opens a second
connection to the hub's own URL (`GET <hub path>/.kbtools/data/<node id>/<request id>` with
`Upgrade: kbtools-data/1` and the token in `X-Kbtools-Data-Token`), and once the hub answered
`101 Switching Protocols` it sends the response headers on the websocket and the body's raw bytes on
that connection (exactly Content-Length bytes, then it closes it), then `http.end_response` as usual.
A refused upgrade (a proxy that strips it, an older hub) means the body goes on the websocket.

Binary frame: type (1 byte) | len(request_id) (1 byte) | request_id (ASCII) | payload.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from kbtools.protocol.errors import LocalProtocolError, RemoteProtocolError

VERSION = 1
FIELD = "kbtools_tunnel"
DEFAULT_WINDOW = 4 * 1024 * 1024
MAX_FAST_CHUNK = 1024 * 1024

RESPONSE_DATA = 1  # child -> hub: raw response bytes
CREDIT = 2  # hub -> child: payload is a uint32 (big-endian) number of bytes granted
REQUEST_DATA = 3  # hub -> child: raw request body bytes
CANCEL = 4  # hub -> child: no payload; stop the response, send nothing more for this request

DATA_VERSION = 1
DATA_FIELD = "data_connection"  # in the offer and in the answer: data connections (version)
DATA_UPGRADE = "kbtools-data/1"  # the Upgrade protocol of a data connection
DATA_TOKEN_HEADER = "X-Kbtools-Data-Token"
DATA_PATH = ".kbtools/data"  # under the hub's URL: <hub>/.kbtools/data/<node id>/<request id>
DATA_TOKEN_FIELD = "kbtools_data_token"  # in http.initiate_request, to a child that offered it
DATA_MIN_BYTES = 512 * 1024  # smaller bodies go on the websocket (a connection costs a round trip)


@dataclass(frozen=True)
class BinaryFrame:
    kind: int
    request_id: str
    payload: bytes

    def credit(self) -> int:
        if self.kind != CREDIT or len(self.payload) != 4:
            raise RemoteProtocolError("Invalid credit frame")
        return int(struct.unpack(">I", self.payload)[0])


def encode(kind: int, request_id: str, payload: bytes = b"") -> bytes:
    rid = request_id.encode("ascii")
    if not 0 < len(rid) < 256:
        raise LocalProtocolError("request_id length out of range")
    return bytes((kind, len(rid))) + rid + payload


def encode_credit(request_id: str, nbytes: int) -> bytes:
    return encode(CREDIT, request_id, struct.pack(">I", nbytes))


def decode(frame: bytes) -> BinaryFrame:
    """Parse a binary frame; RemoteProtocolError if it is malformed."""
    if len(frame) < 3:
        raise RemoteProtocolError("Invalid binary frame")
    kind, n = frame[0], frame[1]
    if len(frame) < 2 + n or n == 0:
        raise RemoteProtocolError("Invalid binary frame")
    try:
        rid = frame[2:2 + n].decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("Invalid binary frame") from None
    return BinaryFrame(kind, rid, bytes(frame[2 + n:]))


def offer(data_connections: bool = False) -> dict[str, int | bool]:
    """What a kbtools child puts in its register info (a share offers data connections)."""
    offered: dict[str, int | bool] = {"version": VERSION, "cancel": True}
    if data_connections:
        offered[DATA_FIELD] = DATA_VERSION
    return offered


def offers_data(offered: object) -> bool:
    """Whether an offer (or an answer) names data connections of this version."""
    return isinstance(offered, dict) and offered.get(DATA_FIELD) == DATA_VERSION \
        and not isinstance(offered.get(DATA_FIELD), bool)


def data_path(node_id: str, request_id: str) -> str:
    """The path of a data connection below the hub's URL (no leading slash)."""
    return f"{DATA_PATH}/{node_id}/{request_id}"


def accepts_cancel(offered: object) -> bool:
    """Whether the child's offer says it understands CANCEL frames (older kbtools children do not)."""
    return isinstance(offered, dict) and offered.get("cancel") is True


def accept(offered: object, window: int = DEFAULT_WINDOW,
           data_connections: bool = False) -> dict[str, int] | None:
    """The hub's answer to an offer (None: no fast path, e.g. an original child); data connections
    when the hub allows them and the child offered them."""
    if isinstance(offered, dict) and offered.get("version") == VERSION:
        answer = {"version": VERSION, "window": window}
        if data_connections and offers_data(offered):
            answer[DATA_FIELD] = DATA_VERSION
        return answer
    return None
