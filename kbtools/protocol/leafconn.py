"""Child side of the link to the parent hub (used by a share, and by a hub for its own parent link).

    link = ParentLink(signer, register_info(config, listen_url, "leaf"), passcode)
    send(link.connection_opened(now_ms))            # the register frame
    out = link.receive_frame(text, now_ms)          # -> LinkOutcome(send, events, close)
    send(link.report_node_data(data, now_ms))       # every ~5 s (the heartbeat)
    send(link.send_response_data(rid, chunk, now_ms)) # while link.response_budget(rid) > 0

Every method returns the frames that may be sent now, in order (str = text frame, bytes = binary
frame). The polite alternation of spec §2.7 is kept here: after a text frame, further text frames wait
until a frame arrives from the hub. Binary frames (fast path only) are not part of the alternation.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from kbtools.protocol import fastpath
from kbtools.protocol.envelope import Signer
from kbtools.protocol.errors import LocalProtocolError, RemoteProtocolError
from kbtools.protocol.messages import (
    MAX_CHUNK, REACHABILITY, REACHABILITY_VERSION, ConfirmRegistration, EndRequest, EndResponse,
    ErrorReply, InitiateRequest, Ok, Reachability, RegisterChildNode, ReportError, ReportNodeData,
    SetResponseHeaders, SetTopHubUrl, WriteRequestData, WriteResponseData, loads_network_json,
    parse_parent_message,
)
from kbtools.protocol.objecthash import object_hash

COMPAT_QUEUE_FRAMES = 4  # response frames buffered per link on the compatible path
DEFAULT_MAX_FRAME = 64 * 1024 * 1024

INFO_KEYS = ("name", "node_type", "kbnode_type", "scientific_research", "description", "owner",
             "owner_email")


def register_info(config: Mapping[str, Any], listen_url: str, node_type: str,
                  fast_path: bool = True, data_connections: bool = False) -> dict[str, Any]:
    """The register `info` in the original's key order; `listen_url` already resolved (no `.`).
    `data_connections`: offer them on the fast path (a share does, kbtools.protocol.fastpath)."""
    info: dict[str, Any] = {
        "listen_url": listen_url,
        "name": config.get("name", ""),
        "node_type": node_type,
        "kbnode_type": "share" if node_type == "leaf" else "hub",
        "scientific_research": config.get("scientific_research", ""),
        "description": config.get("description", ""),
        "owner": config.get("owner", ""),
        "owner_email": config.get("owner_email", ""),
    }
    if node_type == "leaf":
        info["confirm_share"] = config.get("confirm_share", "")
    if fast_path:
        info[fastpath.FIELD] = fastpath.offer(data_connections)
    if node_type == "leaf" and listen_url:  # a share asks to be told whether the hub reached it
        info[REACHABILITY] = {"version": REACHABILITY_VERSION}
    return info


# ---------------------------------------------------------------- events

@dataclass(frozen=True)
class Registered:
    parent_info: dict[str, Any]
    fast_path: bool
    reachability_pending: bool = False  # a kbtools hub probes our listen_url: Reached follows


@dataclass(frozen=True)
class Reached:
    """The hub's probe of our listen_url: reachable True/False, None when it could not tell."""

    reachable: bool | None
    reason: str


@dataclass(frozen=True)
class TopHubUrl:
    url: str


@dataclass(frozen=True)
class HubError:
    """The hub sent an error; it closes the socket next (the original child does not close it)."""

    text: str

    @property
    def permanent(self) -> bool:
        """A refusal that no retry can heal: the passcode, the answers or the keys must change.
        (A limit, or the same id still connected, can heal: the hub drops a dead link in 60 s.)"""
        return self.text.startswith(PERMANENT_REFUSALS)


# Registration refusals of spec §2.5 (the original's wording) that only a new configuration heals.
PERMANENT_REFUSALS = (
    "Incorrect passcode for node",
    "This system should only be used to share resources for scientific research purposes",
    "Sharing of resources has not been confirmed",
    "Child node id does not match public key",
)


@dataclass(frozen=True)
class RequestStarted:
    request: InitiateRequest


@dataclass(frozen=True)
class RequestBody:
    request_id: str
    data: bytes


@dataclass(frozen=True)
class RequestEnded:
    request_id: str


@dataclass(frozen=True)
class CreditGranted:
    request_id: str
    nbytes: int


@dataclass(frozen=True)
class RequestCancelled:
    """The hub's client went away (fast path): the request is closed, stop producing its response."""

    request_id: str
    sent_bytes: int  # response bytes sent before the cancel arrived


LinkEvent = Union[Registered, TopHubUrl, HubError, RequestStarted, RequestBody, RequestEnded,
                  CreditGranted, RequestCancelled, Reached]


@dataclass
class LinkOutcome:
    send: list[str | bytes] = field(default_factory=list)
    events: list[LinkEvent] = field(default_factory=list)
    close: bool = False
    close_reason: str = ""


# ---------------------------------------------------------------- the state machine

class LinkState(enum.Enum):
    IDLE = "idle"  # no socket: before the first connection_opened, after connection_lost
    REGISTERING = "registering"  # socket open, register_child_node sent, no confirmation yet
    REGISTERED = "registered"  # confirm_registration received: reports and responses may flow


class LinkInput(enum.Enum):
    OPENED = "opened"  # a new socket (the register frame is queued)
    CONFIRMED = "confirm_registration"
    LOST = "lost"  # the socket closed


# The child's side of spec §2.5 on one screen. A confirmation without a register sent on this
# socket is refused (the link closes); a repeated one is taken again, as the original child does.
# The polite alternation (`awaiting_response`, spec §2.7) is a turn inside the open states, not a
# state of its own: any hub frame hands the turn back.
LINK_TRANSITIONS: dict[LinkState, dict[LinkInput, LinkState]] = {
    LinkState.IDLE: {
        LinkInput.OPENED: LinkState.REGISTERING,
        LinkInput.LOST: LinkState.IDLE,
    },
    LinkState.REGISTERING: {
        LinkInput.OPENED: LinkState.REGISTERING,
        LinkInput.CONFIRMED: LinkState.REGISTERED,
        LinkInput.LOST: LinkState.IDLE,
    },
    LinkState.REGISTERED: {
        LinkInput.OPENED: LinkState.REGISTERING,
        LinkInput.CONFIRMED: LinkState.REGISTERED,
        LinkInput.LOST: LinkState.IDLE,
    },
}


def next_link_state(state: LinkState, event: LinkInput) -> LinkState:
    """The state after `event`, or RemoteProtocolError (the link then closes)."""
    target = LINK_TRANSITIONS[state].get(event)
    if target is None:
        raise RemoteProtocolError(f"Unexpected {event.value} in state {state.value}")
    return target


class ParentLink:
    """State of the link to the parent hub (`state`, moved only through LINK_TRANSITIONS).
    Call `connection_opened` on every (re)connection."""

    def __init__(self, signer: Signer, info: dict[str, Any], passcode: str = "",
                 max_frame_bytes: int = DEFAULT_MAX_FRAME) -> None:
        self.signer = signer
        self.info = info
        self.passcode = passcode
        self.max_frame_bytes = max_frame_bytes
        self.state = LinkState.IDLE
        self._reset()

    @property
    def registered(self) -> bool:
        return self.state is LinkState.REGISTERED

    def _reset(self) -> None:
        """Forget everything about the last socket (the state is set by the caller's event)."""
        self.parent_info: dict[str, Any] | None = None
        self.top_hub_url: str | None = None
        self.fast_path = False
        self.data_connections = False  # large bodies may go on a data connection (fastpath)
        self.window = 0
        self.last_reported_hash: str | None = None
        self.awaiting_response = False
        self.queue: deque[str | bytes] = deque()
        self.credit: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # fast path: response bytes handed over per open request
        self.open_requests: set[str] = set()
        self._queued_report: str | None = None  # at most one report waits (a silent hub must not grow the queue)

    # -- connection

    def connection_opened(self, now_ms: int) -> list[str | bytes]:
        """A new socket is open: forget the old one and register."""
        self.state = next_link_state(self.state, LinkInput.OPENED)
        self._reset()
        return self._queue_text(RegisterChildNode(self.info, self.passcode).to_fields(), now_ms)

    def connection_lost(self) -> None:
        """The socket closed: pending responses are dropped; the caller reconnects."""
        self.state = next_link_state(self.state, LinkInput.LOST)
        self._reset()

    # -- receiving

    def receive_frame(self, frame: str | bytes, now_ms: int) -> LinkOutcome:
        """Handle one frame from the hub. Never raises; a broken frame closes the link."""
        try:
            if isinstance(frame, (bytes, bytearray)):
                return self._receive_binary(bytes(frame))
            return self._receive_text(frame)
        except RemoteProtocolError as e:
            return LinkOutcome(close=True, close_reason=str(e))
        except Exception as e:  # a hostile frame must never take the share down
            return LinkOutcome(close=True, close_reason=f"Invalid message from hub ({type(e).__name__})")

    def _receive_binary(self, frame: bytes) -> LinkOutcome:
        if not self.fast_path:
            raise RemoteProtocolError("Unexpected binary frame from hub")
        bf = fastpath.decode(frame)
        if bf.kind == fastpath.CREDIT:
            n = bf.credit()
            if bf.request_id in self.credit:
                self.credit[bf.request_id] += n
            return LinkOutcome(events=[CreditGranted(bf.request_id, n)])
        if bf.kind == fastpath.REQUEST_DATA and bf.request_id in self.open_requests:
            return LinkOutcome(events=[RequestBody(bf.request_id, bf.payload)])
        if bf.kind == fastpath.CANCEL:
            if bf.request_id not in self.open_requests:
                return LinkOutcome()  # it crossed our end of the response
            return LinkOutcome(events=[self._cancel(bf.request_id)])
        if bf.kind not in (fastpath.RESPONSE_DATA, fastpath.REQUEST_DATA):
            return LinkOutcome()  # a frame type of a later version: ignored
        raise RemoteProtocolError("Unexpected binary frame from hub")

    def _receive_text(self, text: str) -> LinkOutcome:
        if len(text) > self.max_frame_bytes:
            raise RemoteProtocolError("Message from hub too large")
        try:
            obj = loads_network_json(text)
        except ValueError:
            raise RemoteProtocolError("Unable to parse message from hub") from None
        msg = parse_parent_message(obj)
        if isinstance(msg, Reachability):  # not a reply to a frame of ours: the polite queue waits on
            return LinkOutcome(events=[Reached(msg.reachable, msg.reason)])
        out = LinkOutcome()
        # Any text frame from the hub releases the polite queue.
        self.awaiting_response = False
        if msg is None:
            command = obj.get("command") if isinstance(obj, dict) else None
            return LinkOutcome(close=True, close_reason=f"Unexpected command: {command}. Closing websocket.")
        if isinstance(msg, ErrorReply):
            out.events.append(HubError(msg.text))
        elif isinstance(msg, ConfirmRegistration):
            self.state = next_link_state(self.state, LinkInput.CONFIRMED)
            self.parent_info = msg.info
            fast = msg.fast_tunnel
            self.fast_path = bool(fast and fast.get("version") == fastpath.VERSION
                                  and fastpath.FIELD in self.info)
            window = fast.get("window") if fast else None
            self.window = window if isinstance(window, int) and window > 0 else 0
            if self.fast_path and self.window == 0:
                self.fast_path = False
            self.data_connections = self.fast_path and fastpath.offers_data(fast) \
                and fastpath.offers_data(self.info.get(fastpath.FIELD))
            out.events.append(Registered(msg.info, self.fast_path,
                                         msg.reachability is not None and REACHABILITY in self.info))
        elif isinstance(msg, SetTopHubUrl):
            self.top_hub_url = msg.top_hub_url
            out.events.append(TopHubUrl(msg.top_hub_url))
        elif isinstance(msg, InitiateRequest):
            self.open_requests.add(msg.request_id)
            if self.fast_path:
                self.credit[msg.request_id] = self.window
            out.events.append(RequestStarted(msg))
        elif isinstance(msg, WriteRequestData):
            if msg.request_id in self.open_requests:
                out.events.append(RequestBody(msg.request_id, msg.data))
        elif isinstance(msg, EndRequest):
            if msg.request_id in self.open_requests:
                out.events.append(RequestEnded(msg.request_id))
        elif isinstance(msg, Ok):
            pass
        out.send = self._drain()
        return out

    # -- sending

    def report_node_data(self, data: dict[str, Any], now_ms: int,
                         data_hash: str | None = None) -> list[str | bytes]:
        """Queue a report: full `data` when it changed since the last report, else `data_nochange`.

        Before registration, or while an earlier report still waits in the queue, nothing is queued.
        Pass `data_hash` when known (object_hash of a large index costs time).
        """
        if not self.registered or self._queued_report is not None:
            return []
        h = data_hash or object_hash(data)
        if h == self.last_reported_hash:
            report = ReportNodeData(h, nochange=True)
        else:
            report = ReportNodeData(h, data=data)
        self.last_reported_hash = h
        frame = self.signer.frame(report.to_fields(), now_ms)
        self._queued_report = frame
        self.queue.append(frame)
        return self._drain()

    def response_budget(self, request_id: str) -> int:
        """How many response bytes the caller may hand over now (0: wait for the hub)."""
        if request_id not in self.open_requests:
            return 0
        if self.fast_path:
            return max(0, self.credit.get(request_id, 0))
        pending = sum(1 for f in self.queue if isinstance(f, str))
        return max(0, COMPAT_QUEUE_FRAMES - pending) * MAX_CHUNK

    def send_response_headers(self, request_id: str, status: int, status_message: str,
                              headers: dict[str, Any], now_ms: int) -> list[str | bytes]:
        self._check_open(request_id)
        return self._queue_text(
            SetResponseHeaders(request_id, status, status_message, headers).to_fields(), now_ms)

    def send_response_data(self, request_id: str, data: bytes, now_ms: int) -> list[str | bytes]:
        """Queue response bytes: binary frames on the fast path, else signed ≤64 KiB base64 frames."""
        self._check_open(request_id)
        if self.fast_path:
            if len(data) > self.credit.get(request_id, 0):
                raise LocalProtocolError("response data exceeds the flow-control credit")
            self.credit[request_id] -= len(data)
            self.sent[request_id] = self.sent.get(request_id, 0) + len(data)
            for i in range(0, len(data), fastpath.MAX_FAST_CHUNK):
                self.queue.append(fastpath.encode(fastpath.RESPONSE_DATA, request_id,
                                                  data[i:i + fastpath.MAX_FAST_CHUNK]))
            return self._drain()
        sent: list[str | bytes] = []
        for i in range(0, len(data), MAX_CHUNK):
            sent += self._queue_text(WriteResponseData(request_id, data[i:i + MAX_CHUNK]).to_fields(),
                                     now_ms)
        return sent

    def end_response(self, request_id: str, now_ms: int) -> list[str | bytes]:
        self._check_open(request_id)
        self._forget(request_id)
        return self._queue_text(EndResponse(request_id).to_fields(), now_ms)

    def report_error(self, request_id: str, error: str, now_ms: int) -> list[str | bytes]:
        self._check_open(request_id)
        self._forget(request_id)
        return self._queue_text(ReportError(request_id, error).to_fields(), now_ms)

    def pending(self) -> int:
        """Frames waiting for the hub's next reply."""
        return len(self.queue)

    # -- internals

    def _forget(self, request_id: str) -> None:
        self.open_requests.discard(request_id)
        self.credit.pop(request_id, None)
        self.sent.pop(request_id, None)

    def _cancel(self, request_id: str) -> RequestCancelled:
        sent = self.sent.get(request_id, 0)
        self._forget(request_id)
        # Its data frames still queued (behind a text frame) are never sent.
        prefix = fastpath.encode(fastpath.RESPONSE_DATA, request_id)
        kept: deque[str | bytes] = deque()
        for frame in self.queue:
            if isinstance(frame, bytes) and frame.startswith(prefix):
                sent -= len(frame) - len(prefix)
            else:
                kept.append(frame)
        self.queue = kept
        return RequestCancelled(request_id, sent)

    def _check_open(self, request_id: str) -> None:
        if request_id not in self.open_requests:
            raise LocalProtocolError(f"no open request {request_id}")

    def _queue_text(self, fields: dict[str, Any], now_ms: int) -> list[str | bytes]:
        # Signed when queued: the timestamp is the time the frame was made.
        self.queue.append(self.signer.frame(fields, now_ms))
        return self._drain()

    def _drain(self) -> list[str | bytes]:
        out: list[str | bytes] = []
        while self.queue:
            head = self.queue[0]
            if isinstance(head, str):
                if self.awaiting_response:
                    break
                self.awaiting_response = True
            frame = self.queue.popleft()
            if frame is self._queued_report:
                self._queued_report = None
            out.append(frame)
        return out
