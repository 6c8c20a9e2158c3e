"""Wire messages as small frozen dataclasses that validate themselves, and their exact key order.

Parent -> child frames are plain JSON (spec §2.3); child -> parent command fields go inside the signed
envelope (envelope.Signer). `to_fields()` gives the dict in wire key order.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Union

from kbtools.protocol.errors import LocalProtocolError, RemoteProtocolError

REQUEST_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
MAX_CHUNK = 65536  # raw bytes per http.write_response_data (the original's stream chunks)
DATA_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")  # a data connection's one-time token


SIGNATURE = re.compile(r"[0-9a-f]+\Z")  # the one spelling: lower-case hex, no spaces (as recorded)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_network_json(text: str | bytes) -> Any:
    """JSON text from the network: strict JSON (no NaN or Infinity) holding only valid Unicode.

    Raises ValueError otherwise, so that nothing a peer sends can later fail in a writer: a lone
    surrogate (``"\\ud800"``) would make every JSON or UTF-8 writer that meets it raise.
    """
    obj = json.loads(text, parse_constant=_refuse_constant)
    if _has_escape(text):
        try:  # only escapes can make a lone surrogate: the UTF-8 of the frame itself is checked
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text that is not valid Unicode (a lone surrogate)") from None
    return obj


def _has_escape(text: str | bytes) -> bool:
    """Whether JSON text holds a \\u escape (only an escape can make a lone surrogate: the text's own
    UTF-8 is checked as it is decoded). The backslash alone is looked for first, one memchr pass;
    the two characters at once take a hundred times longer over base64, full of u's."""
    if isinstance(text, bytes):
        return b"\\" in text and b"\\u" in text
    return "\\" in text and "\\u" in text


def decode_base64(value: Any) -> bytes:
    """Strict base64 text (the alphabet, padding at the end only) in one C pass; ValueError
    otherwise. (base64.b64decode(validate=True) checks with a regular expression first: twice the
    work.)"""
    if not isinstance(value, str):
        raise ValueError("base64 that is not text")
    return binascii.a2b_base64(value, strict_mode=True)


_ENVELOPE_HEAD = '{"message":'
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads_envelope(text: str) -> tuple[Any, str | None]:
    """A child's frame as `loads_network_json` reads it, and the exact text of its `message` when
    the frame starts with it (as every signer writes it): the signature can then be checked on
    that text as it came, without writing the message out again. None: not in that form."""
    if not text.startswith(_ENVELOPE_HEAD):
        return loads_network_json(text), None
    try:
        message, end = _DECODER.raw_decode(text, len(_ENVELOPE_HEAD))
        rest = text[end:]
        if rest.startswith(","):
            tail = _DECODER.decode("{" + rest[1:])
        elif rest == "}":
            tail = {}
        else:
            raise ValueError("not an envelope")
    except ValueError:
        return loads_network_json(text), None
    if not isinstance(tail, dict) or "message" in tail:  # a repeated key: JSON's last one wins
        return loads_network_json(text), None
    if _has_escape(text):  # as loads_network_json checks
        try:
            json.dumps([message, tail], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text that is not valid Unicode (a lone surrogate)") from None
    return {"message": message, **tail}, text[len(_ENVELOPE_HEAD):end]


def _require(cond: bool, text: str, remote: bool) -> None:
    if not cond:
        raise (RemoteProtocolError if remote else LocalProtocolError)(text)


def _check_request_id(rid: Any, remote: bool = False) -> None:
    _require(isinstance(rid, str) and bool(REQUEST_ID.match(rid)), f"Invalid request_id: {rid!r}"[:200],
             remote)


# ------------------------------------------------------------------ parent -> child (plain JSON)

@dataclass(frozen=True)
class ConfirmRegistration:
    info: dict[str, Any]
    fast_tunnel: dict[str, Any] | None = None  # kbtools peers only; an original child ignores it
    # kbtools peers only: a `kbtools_reachability` frame follows (the hub probes the listen_url)
    reachability: dict[str, Any] | None = None

    def to_fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {"command": "confirm_registration", "info": self.info}
        if self.fast_tunnel is not None:
            d["kbtools_tunnel"] = self.fast_tunnel
        if self.reachability is not None:
            d[REACHABILITY] = self.reachability
        return d


# kbtools: whether the hub reached the child's listen_url directly. The child offers
# `"kbtools_reachability": {"version": 1}` in its register info; a hub that will probe answers
# with the same field in confirm_registration, then sends one `kbtools_reachability` frame with
# the result. Sent only to a child that offered it (an original child would close on it).
REACHABILITY = "kbtools_reachability"
REACHABILITY_VERSION = 1


def offers_reachability(info: Any) -> bool:
    """Whether a child's register info offers the reachability report."""
    offer = info.get(REACHABILITY) if isinstance(info, dict) else None
    return isinstance(offer, dict) and offer.get("version") == REACHABILITY_VERSION


@dataclass(frozen=True)
class Reachability:
    """Hub -> child, once after confirm_registration: could the hub reach the child's listen_url?
    `reachable` None: the hub could not tell (not probed)."""

    reachable: bool | None
    reason: str = ""

    def to_fields(self) -> dict[str, Any]:
        return {"command": REACHABILITY, "reachable": self.reachable, "reason": self.reason}


@dataclass(frozen=True)
class SetTopHubUrl:
    top_hub_url: str

    def to_fields(self) -> dict[str, Any]:
        return {"command": "set_top_hub_url", "top_hub_url": self.top_hub_url}


@dataclass(frozen=True)
class Ok:
    def to_fields(self) -> dict[str, Any]:
        return {"message": "ok"}


@dataclass(frozen=True)
class ErrorReply:
    """`text` without the suffix; the wire form is `<text>. Closing websocket.`"""

    text: str

    def to_fields(self) -> dict[str, Any]:
        return {"error": f"{self.text}. Closing websocket."}


@dataclass(frozen=True)
class InitiateRequest:
    request_id: str
    method: str
    path: str
    headers: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    # kbtools peers that agreed on data connections: the one-time token of this request's
    # data connection (kbtools.protocol.fastpath); an original child never gets one
    data_token: str | None = None

    def __post_init__(self) -> None:
        _check_request_id(self.request_id)
        _require(self.method in ("GET", "HEAD"), f"Unsupported method: {self.method}", False)
        _require(isinstance(self.path, str) and not self.path.startswith("/"),
                 "path must not start with /", False)
        _require(self.data_token is None or bool(DATA_TOKEN.match(self.data_token)),
                 "Invalid data token", False)

    def to_fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {"message_type": "http", "command": "http.initiate_request",
                             "method": self.method, "path": self.path}
        if self.query is not None:
            d["query"] = self.query
        d["headers"] = self.headers
        d["request_id"] = self.request_id
        if self.data_token is not None:
            d["kbtools_data_token"] = self.data_token
        return d


@dataclass(frozen=True)
class WriteRequestData:
    request_id: str
    data: bytes

    def to_fields(self) -> dict[str, Any]:
        return {"message_type": "http", "command": "http.write_request_data",
                "data_base64": base64.b64encode(self.data).decode("ascii"), "request_id": self.request_id}


@dataclass(frozen=True)
class EndRequest:
    request_id: str

    def to_fields(self) -> dict[str, Any]:
        return {"message_type": "http", "command": "http.end_request", "request_id": self.request_id}


ParentMessage = Union[ConfirmRegistration, SetTopHubUrl, Ok, ErrorReply, InitiateRequest,
                      WriteRequestData, EndRequest, Reachability]


def parse_parent_message(obj: Any) -> ParentMessage | None:
    """A frame from the parent hub as a message; None for an unexpected command.

    Raises RemoteProtocolError for a known command with a wrong shape.
    """
    _require(isinstance(obj, dict), "Frame from hub is not a JSON object", True)
    if "error" in obj:
        return ErrorReply(str(obj["error"]).removesuffix(". Closing websocket."))
    if obj.get("message_type") == "http":
        cmd = obj.get("command")
        rid = obj.get("request_id")
        _check_request_id(rid, remote=True)
        if cmd == "http.initiate_request":
            headers = obj.get("headers") or {}
            _require(isinstance(headers, dict), "headers must be an object", True)
            path = obj.get("path")
            _require(isinstance(path, str), "path must be a string", True)
            method = obj.get("method")
            _require(method in ("GET", "HEAD"), f"Unsupported method: {method}", True)
            query = obj.get("query")
            token = obj.get("kbtools_data_token")
            return InitiateRequest(rid, method, path.lstrip("/"), headers,
                                   query if isinstance(query, dict) else None,
                                   token if isinstance(token, str) and DATA_TOKEN.match(token)
                                   else None)
        if cmd == "http.write_request_data":
            try:
                data = decode_base64(obj.get("data_base64", ""))
            except ValueError:  # binascii.Error, or text that is not ASCII
                raise RemoteProtocolError("Invalid data_base64") from None
            return WriteRequestData(rid, data)
        if cmd == "http.end_request":
            return EndRequest(rid)
        return None
    cmd = obj.get("command")
    if cmd == "confirm_registration":
        info = obj.get("info")
        _require(isinstance(info, dict), "confirm_registration without info", True)
        fast = obj.get("kbtools_tunnel")
        reach = obj.get(REACHABILITY)
        return ConfirmRegistration(info, fast if isinstance(fast, dict) else None,
                                   reach if isinstance(reach, dict) else None)
    if cmd == "set_top_hub_url":
        url = obj.get("top_hub_url")
        _require(isinstance(url, str), "top_hub_url must be a string", True)
        return SetTopHubUrl(url)
    if cmd == REACHABILITY:
        reachable = obj.get("reachable")
        _require(reachable is None or isinstance(reachable, bool), "reachable must be a boolean",
                 True)
        return Reachability(reachable, str(obj.get("reason") or "")[:300])
    if obj.get("message") == "ok":
        return Ok()
    return None


# ------------------------------------------------------------------ child -> parent (signed fields)

@dataclass(frozen=True)
class RegisterChildNode:
    info: dict[str, Any]
    passcode: str

    def to_fields(self) -> dict[str, Any]:
        return {"command": "register_child_node", "info": self.info, "passcode": self.passcode}


@dataclass(frozen=True)
class ReportNodeData:
    """Exactly one of `data`, `data_delta`, `nochange` is used."""

    data_hash: str
    data: dict[str, Any] | None = None
    data_delta: Any = None
    nochange: bool = False

    def __post_init__(self) -> None:
        n = (self.data is not None) + (self.data_delta is not None) + bool(self.nochange)
        _require(n == 1, "report_node_data needs exactly one of data, data_delta, nochange", False)

    def to_fields(self) -> dict[str, Any]:
        d: dict[str, Any] = {"command": "report_node_data"}
        if self.data is not None:
            d["data"] = self.data
        elif self.data_delta is not None:
            d["data_delta"] = self.data_delta
        else:
            d["data_nochange"] = True
        d["data_hash"] = self.data_hash
        return d


@dataclass(frozen=True)
class SetResponseHeaders:
    request_id: str
    status: int
    status_message: str
    headers: dict[str, Any]

    def __post_init__(self) -> None:
        _check_request_id(self.request_id)
        _require(isinstance(self.status, int) and 100 <= self.status <= 999, "Invalid status", False)

    def to_fields(self) -> dict[str, Any]:
        return {"command": "http.set_response_headers", "status": self.status,
                "status_message": self.status_message, "headers": self.headers,
                "request_id": self.request_id, "message_type": "http"}


@dataclass(frozen=True)
class WriteResponseData:
    request_id: str
    data: bytes

    def __post_init__(self) -> None:
        _check_request_id(self.request_id)
        _require(len(self.data) <= MAX_CHUNK, "response chunk larger than 64 KiB", False)

    def to_fields(self) -> dict[str, Any]:
        return {"command": "http.write_response_data",
                "data_base64": base64.b64encode(self.data).decode("ascii"),
                "request_id": self.request_id, "message_type": "http"}


@dataclass(frozen=True)
class EndResponse:
    request_id: str

    def to_fields(self) -> dict[str, Any]:
        return {"command": "http.end_response", "request_id": self.request_id, "message_type": "http"}


@dataclass(frozen=True)
class ReportError:
    request_id: str
    error: str

    def to_fields(self) -> dict[str, Any]:
        return {"command": "http.report_error", "error": self.error, "request_id": self.request_id,
                "message_type": "http"}


ChildMessage = Union[RegisterChildNode, ReportNodeData, SetResponseHeaders, WriteResponseData,
                     EndResponse, ReportError]


def parse_response_message(msg: dict[str, Any]) -> SetResponseHeaders | WriteResponseData | \
        EndResponse | ReportError:
    """A child's `http.*` response message (already verified). Raises RemoteProtocolError."""
    cmd = msg.get("command")
    rid = msg.get("request_id")
    _check_request_id(rid, remote=True)
    assert isinstance(rid, str)
    if cmd == "http.set_response_headers":
        status = msg.get("status")
        headers = msg.get("headers")
        if not (isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 999):
            raise RemoteProtocolError("Invalid status")
        if not isinstance(headers, dict) or not all(
                isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
                for v in headers.values()):
            raise RemoteProtocolError("Invalid headers")  # values: a string or a list of strings
        return SetResponseHeaders(rid, status, str(msg.get("status_message") or ""), headers)
    if cmd == "http.write_response_data":
        try:
            data = decode_base64(msg.get("data_base64", ""))
        except ValueError:  # binascii.Error, or text that is not ASCII
            raise RemoteProtocolError("Invalid data_base64") from None
        _require(len(data) <= 16 * MAX_CHUNK, "response chunk too large", True)
        return _raw_data(rid, data)
    if cmd == "http.end_response":
        return EndResponse(rid)
    if cmd == "http.report_error":
        return ReportError(rid, str(msg.get("error", "")))
    raise RemoteProtocolError(f"Unrecognized command: {cmd}")


def _raw_data(rid: str, data: bytes) -> WriteResponseData:
    # A received chunk may be larger than what we send (other implementations); skip the send-side limit.
    obj = object.__new__(WriteResponseData)
    object.__setattr__(obj, "request_id", rid)
    object.__setattr__(obj, "data", data)
    return obj
