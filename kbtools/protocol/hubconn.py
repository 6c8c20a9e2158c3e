"""Hub side of one child's websocket: feed each received frame, send the replies, act on the events.

    conn = ChildConnection(hub, registry)
    out = conn.receive_frame(text, now=time.time())   # -> Outcome(replies, events, close)
    for frame in out.replies: await ws.send_str(frame)
    if out.close: await ws.close()

Checks run in the order of spec §2.5, with error replies instead of the original's two crashes, plus
a frame size limit and a `timestamp` freshness window. A frame of any shape produces an error reply
and a close; no exception escapes `receive_frame`.
"""
from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from typing import Any, Union

from kbtools.protocol import fastpath
from kbtools.protocol.canonical import canonical_json, js_number, load_public_key, verify_message
from kbtools.protocol.errors import RemoteProtocolError
from kbtools.node.identity import node_id_for_public_key
from kbtools.protocol.messages import (
    REACHABILITY_VERSION, ConfirmRegistration, EndResponse, ErrorReply, Ok, Reachability, ReportError,
    SetResponseHeaders, SetTopHubUrl, SIGNATURE, WriteResponseData, loads_envelope,
    offers_reachability, parse_response_message,
)
from kbtools.protocol.nodedata import NodeData

NETWORK_TYPE = "kbucket"
INACTIVITY_TIMEOUT = 60.0
MAX_CANCELLED = 1024  # cancelled fast-path requests remembered per child (their in-flight data is dropped)
MAX_INDEX_BYTES = 512 * 1024 * 1024  # children's node data a hub holds, all children together


@dataclass(frozen=True)
class HubLimits:
    """Resource limits of a hub (all configurable)."""

    max_leaves: int = 1000
    max_child_hubs: int = 10
    max_frame_bytes: int = 64 * 1024 * 1024
    freshness_window: float | None = 600.0  # seconds; None accepts any timestamp (original behaviour)
    inactivity_timeout: float = INACTIVITY_TIMEOUT
    fast_window: int = fastpath.DEFAULT_WINDOW
    allow_fast_path: bool = True
    # Fast path to a share that offered them: large bodies come on a data connection of their own
    # (kbtools.protocol.fastpath); False keeps every body on the websocket.
    allow_data_connections: bool = True
    # Compatible path back-pressure: the `ok` after each write_response_data is withheld until the
    # hub calls acknowledge_data() (after the chunk went to its HTTP client). The child sends nothing
    # more until then (polite alternation), so neither side buffers more than a chunk.
    defer_data_ack: bool = True
    # The node data of all children together (compact, `NodeData.nbytes`): a report that would
    # take the total past it is refused (IndexRefused, then an error reply and a close).
    max_index_bytes: int = MAX_INDEX_BYTES
    # Probe each child's listen_url after it registers (kbtools.hub.reach) and tell the child
    # the result when it offered `kbtools_reachability`.
    probe_reachability: bool = True


@dataclass
class HubInfo:
    """What a child connection needs to know about its hub (kept up to date by the hub)."""

    info: dict[str, Any]  # the hub's nodeinfo `info` object, sent in confirm_registration
    passcode: str = ""
    top_hub_url: str = ""


# ---------------------------------------------------------------- events

@dataclass(frozen=True)
class ChildRegistered:
    node_id: str
    node_type: str  # "leaf" or "hub"
    info: dict[str, Any]
    public_key: str
    fast_path: bool


@dataclass(frozen=True)
class NodeDataUpdated:
    node_id: str
    data: NodeData  # read-only Mapping of the node data; `lookup(sha1)` for find


@dataclass(frozen=True)
class IndexRefused:
    """A report refused because the hub's index budget is spent (the connection then closes)."""

    node_id: str
    index_bytes: int  # what this child's node data would take
    held_bytes: int  # what the other children's node data take
    limit_bytes: int


@dataclass(frozen=True)
class ResponseHeaders:
    request_id: str
    status: int
    status_message: str
    headers: dict[str, Any]


@dataclass(frozen=True)
class ResponseData:
    request_id: str
    data: bytes


@dataclass(frozen=True)
class ResponseEnd:
    request_id: str


@dataclass(frozen=True)
class ResponseError:
    request_id: str
    error: str


@dataclass(frozen=True)
class ConnectionClosed:
    reason: str


Event = Union[ChildRegistered, NodeDataUpdated, IndexRefused, ResponseHeaders, ResponseData, ResponseEnd,
              ResponseError, ConnectionClosed]


@dataclass
class Outcome:
    """Frames to send (text or binary, in order), events for the hub, and whether to close."""

    replies: list[str | bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    close: bool = False


# ---------------------------------------------------------------- registry

class ChildRegistry:
    """The hub's directly connected children, in connection order, with the limits."""

    def __init__(self, limits: HubLimits | None = None) -> None:
        self.limits = limits or HubLimits()
        self.leaves: dict[str, ChildConnection] = {}
        self.child_hubs: dict[str, ChildConnection] = {}
        self._recent_registers: dict[str, float] = {}  # signature -> time seen (replay refusal)
        self.index_bytes = 0  # node data held for all children (NodeData.nbytes)

    def add(self, conn: ChildConnection) -> str | None:
        """Register a child; an error text (original wording) or None."""
        assert conn.node_id is not None and conn.node_type is not None
        if conn.node_type == "leaf":
            if len(self.leaves) >= self.limits.max_leaves:
                return "Error adding leaf: Exceeded maximum number of child leaf connections."
            if conn.node_id in self.leaves or conn.node_id in self.child_hubs:
                return f"Error adding leaf: A connected leaf with id={conn.node_id} already exists."
            self.leaves[conn.node_id] = conn
        else:
            if len(self.child_hubs) >= self.limits.max_child_hubs:
                return "Error adding child hub: Exceeded maximum number of child hub connections."
            if conn.node_id in self.child_hubs or conn.node_id in self.leaves:
                return f"Error adding child hub: A connected child hub with id={conn.node_id} already exists."
            self.child_hubs[conn.node_id] = conn
        return None

    def remove(self, conn: ChildConnection) -> None:
        if conn.node_id is None:
            return
        table = self.leaves if conn.node_type == "leaf" else self.child_hubs
        if table.get(conn.node_id) is conn:
            del table[conn.node_id]

    def seen_register(self, signature: str, now: float) -> bool:
        """True if this register frame was already used inside the freshness window."""
        window = self.limits.freshness_window
        if window is None:
            return False
        for sig, t in list(self._recent_registers.items()):
            if now - t > 2 * window:
                del self._recent_registers[sig]
        if signature in self._recent_registers:
            return True
        self._recent_registers[signature] = now
        return False


# ---------------------------------------------------------------- the state machine

class ChildState(enum.Enum):
    NEW = "new"  # socket open, no registration accepted yet
    REGISTERED = "registered"  # register_child_node accepted; the child is in the registry
    # Closed (an error was sent or the socket closed): terminal, later frames are dropped. Two
    # states, because the hub reports a refusal and a disconnection differently.
    REFUSED = "refused"  # closed before it registered
    DISCONNECTED = "disconnected"  # closed after it registered


class ChildInput(enum.Enum):
    REGISTER = "register_child_node"  # a valid register frame (passcode and answers checked)
    REPORT = "report_node_data"
    HTTP = "http"  # an http.* response message of a tunnelled request
    BINARY = "binary"  # a fast-path binary frame
    OTHER = "other"  # any other command
    CLOSE = "close"  # an error reply, or the socket closed


# Spec §2.5 on one screen: the legal transitions; any other (state, input) is refused with an
# error reply and a close (`ILLEGAL`), except that a closed connection ignores everything.
CHILD_TRANSITIONS: dict[ChildState, dict[ChildInput, ChildState]] = {
    ChildState.NEW: {
        ChildInput.REGISTER: ChildState.REGISTERED,
        ChildInput.CLOSE: ChildState.REFUSED,
    },
    ChildState.REGISTERED: {
        ChildInput.REPORT: ChildState.REGISTERED,
        ChildInput.HTTP: ChildState.REGISTERED,
        ChildInput.BINARY: ChildState.REGISTERED,  # and only when the fast path was agreed
        ChildInput.CLOSE: ChildState.DISCONNECTED,
    },
    ChildState.REFUSED: {},
    ChildState.DISCONNECTED: {},
}
CLOSED_STATES = frozenset(state for state, moves in CHILD_TRANSITIONS.items() if not moves)

# The error text of a refused event (the original's wording where it has one).
ILLEGAL: dict[ChildInput, str] = {
    ChildInput.REGISTER: "Child node is already registered",
    ChildInput.REPORT: "Unrecognized command: {command}",
    ChildInput.HTTP: "Unrecognized command: {command}",
    ChildInput.OTHER: "Unrecognized command: {command}",
    ChildInput.BINARY: "Unexpected binary frame",
}


def next_child_state(state: ChildState, event: ChildInput, command: object = None) -> ChildState:
    """The state after `event`, or RemoteProtocolError with the refusal's text."""
    target = CHILD_TRANSITIONS[state].get(event)
    if target is None:
        raise RemoteProtocolError(ILLEGAL.get(event, "Unexpected event").format(command=command)[:300])
    return target


# ---------------------------------------------------------------- the connection

class ChildConnection:
    """State of one child link on the hub side (`state`, moved only through CHILD_TRANSITIONS)."""

    def __init__(self, hub: HubInfo, registry: ChildRegistry, now: float = 0.0) -> None:
        self.hub = hub
        self.registry = registry
        self.limits = registry.limits
        self.node_id: str | None = None
        self.node_type: str | None = None
        self.info: dict[str, Any] = {}
        self.public_key: str | None = None
        self.data: NodeData | None = None  # the last node data reported, compact
        self._held = 0  # its bytes, as counted in registry.index_bytes
        self.state = ChildState.NEW
        # Options agreed at registration (not states: they hold for the connection's life).
        self.fast_path = False
        self.fast_cancel = False  # fast path: the child understands CANCEL frames
        self.data_connections = False  # fast path: large bodies may come on data connections
        self.last_received = now
        self.credit: dict[str, int] = {}  # open requests; fast path: bytes the child may still send
        self.cancelled: dict[str, int] = {}  # cancelled requests: credit the child may still have used
        self.unacked_data = 0
        # Could the hub reach the child's listen_url directly (set by the hub's probe)? None: not known.
        self.reachable: bool | None = None
        self.reach_report = False  # a kbtools_reachability frame was promised in confirm_registration

    @property
    def registered(self) -> bool:
        """Its registration was accepted (it may have closed since)."""
        return self.state in (ChildState.REGISTERED, ChildState.DISCONNECTED)

    @property
    def closed(self) -> bool:
        return self.state in CLOSED_STATES

    # -- public API

    def receive_frame(self, text: str | bytes, now: float) -> Outcome:
        """Handle one received frame (text; binary only on the fast path). Never raises.

        `now` is the hub's clock in seconds since the epoch (time.time()); frame timestamps are
        checked against it.
        """
        if self.closed:
            return Outcome()
        self.last_received = now
        try:
            if isinstance(text, (bytes, bytearray)):
                return self._receive_binary(bytes(text))
            return self._receive_text(text, now)
        except RemoteProtocolError as e:
            return self.fail(str(e))
        except Exception as e:  # a hostile frame must never take the hub down
            return self.fail(f"Invalid message ({type(e).__name__})")

    def check_inactivity(self, now: float) -> Outcome:
        """Call periodically (the original checks every 5 s); closes after the inactivity timeout."""
        elapsed = now - self.last_received
        if self.closed or elapsed <= self.limits.inactivity_timeout:
            return Outcome()
        seconds = js_number(round(elapsed, 3))
        return self.fail(f"Closing connection after {seconds} seconds of not receiving a message.")

    def fail(self, text: str) -> Outcome:
        """Send `{"error": "<text>. Closing websocket."}` and close."""
        out = Outcome(replies=[canonical_json(ErrorReply(text).to_fields())], close=True)
        out.events.extend(self.connection_lost(text).events)
        return out

    def connection_lost(self, reason: str = "connection closed") -> Outcome:
        """The socket closed (or we close it): leave the registry; pending requests fail."""
        if self.closed:
            return Outcome()
        self.state = next_child_state(self.state, ChildInput.CLOSE)
        self.registry.remove(self)
        self._set_data(None)
        events: list[Event] = [ResponseError(rid, f"Child disconnected: {reason}") for rid in self.credit]
        self.credit.clear()
        self.cancelled.clear()
        events.append(ConnectionClosed(reason))
        return Outcome(events=events, close=True)

    def grant_credit(self, request_id: str, nbytes: int) -> bytes | None:
        """Fast path: allow the child `nbytes` more of this response (after the client took them)."""
        if not self.fast_path or request_id not in self.credit or nbytes <= 0:
            return None
        self.credit[request_id] += nbytes
        return fastpath.encode_credit(request_id, nbytes)

    def top_hub_url_changed(self) -> list[str]:
        """Frames to send after `hub.top_hub_url` changed: `set_top_hub_url` for a child hub only."""
        if self.state is not ChildState.REGISTERED or self.node_type != "hub":
            return []
        return [canonical_json(SetTopHubUrl(self.hub.top_hub_url).to_fields())]

    def reachability_found(self, reachable: bool | None, reason: str) -> list[str]:
        """Note the probe's result; the frame that tells the child (only one that was promised it)."""
        if self.state is not ChildState.REGISTERED:
            return []
        self.reachable = reachable
        if not self.reach_report:
            return []
        self.reach_report = False  # once per registration
        return [canonical_json(Reachability(reachable, reason[:300]).to_fields())]

    def acknowledge_data(self) -> str | None:
        """The `ok` withheld for a write_response_data (defer_data_ack), or None if none is owed."""
        if self.unacked_data <= 0 or self.closed:
            return None
        self.unacked_data -= 1
        return canonical_json(Ok().to_fields())

    def open_request(self, request_id: str) -> None:
        """Note a tunnelled request sent to this child (its response may now arrive)."""
        self.credit[request_id] = self.limits.fast_window

    def close_request(self, request_id: str) -> None:
        self.credit.pop(request_id, None)

    def cancel_request(self, request_id: str) -> bytes | None:
        """Fast path: the CANCEL frame for an unfinished request (None: nothing to cancel, or a child
        that does not understand it). Data already in flight within its credit is then dropped."""
        if not self.fast_cancel or self.closed or request_id not in self.credit:
            return None
        self.cancelled[request_id] = self.credit.pop(request_id)
        while len(self.cancelled) > MAX_CANCELLED:
            del self.cancelled[next(iter(self.cancelled))]
        return fastpath.encode(fastpath.CANCEL, request_id)

    # -- internals

    def _receive_binary(self, frame: bytes) -> Outcome:
        next_child_state(self.state, ChildInput.BINARY)
        if not self.fast_path:
            raise RemoteProtocolError(ILLEGAL[ChildInput.BINARY])
        if len(frame) > fastpath.MAX_FAST_CHUNK + 260:
            raise RemoteProtocolError("Message too large")
        bf = fastpath.decode(frame)
        if bf.kind not in (fastpath.RESPONSE_DATA, fastpath.CREDIT, fastpath.REQUEST_DATA,
                           fastpath.CANCEL):
            return Outcome()  # a frame type of a later version: ignored
        if bf.kind == fastpath.RESPONSE_DATA and bf.request_id in self.cancelled:
            # Sent before the child saw our CANCEL: dropped, but still within the credit it had.
            left = self.cancelled[bf.request_id] - len(bf.payload)
            if left < 0:
                raise RemoteProtocolError("Flow-control window exceeded")
            self.cancelled[bf.request_id] = left
            return Outcome()
        if bf.kind != fastpath.RESPONSE_DATA or bf.request_id not in self.credit:
            raise RemoteProtocolError("Unexpected binary frame")
        left = self.credit[bf.request_id] - len(bf.payload)
        if left < 0:
            raise RemoteProtocolError("Flow-control window exceeded")
        self.credit[bf.request_id] = left
        return Outcome(events=[ResponseData(bf.request_id, bf.payload)])

    def _receive_text(self, text: str, now: float) -> Outcome:
        if len(text) > self.limits.max_frame_bytes:
            raise RemoteProtocolError("Message too large")
        try:
            frame, message_text = loads_envelope(text)
        except ValueError:
            raise RemoteProtocolError("Unable to parse message") from None
        if not isinstance(frame, dict):
            raise RemoteProtocolError("Invalid message.")
        # 1-2: the connection's node id
        node_id = frame.get("node_id")
        if not node_id:
            raise RemoteProtocolError("node_id not found in message")
        if self.node_id is None:
            if not isinstance(node_id, str) or not 8 <= len(node_id) <= 64:
                raise RemoteProtocolError("Invalid node id")
            self.node_id = node_id
        elif node_id != self.node_id:
            raise RemoteProtocolError("node_id in message does not match previous messages.")
        # 3: the public key, checked against the id (the original crashes here)
        public_key = frame.get("public_key")
        if public_key is not None and self.public_key is None:
            if not isinstance(public_key, str):
                raise RemoteProtocolError("Invalid public key")
            expected = node_id_for_public_key(public_key)
            if expected != self.node_id:
                raise RemoteProtocolError(
                    f"Child node id does not match public key ({self.node_id}<>{expected})")
            try:
                load_public_key(public_key)
            except ValueError:
                raise RemoteProtocolError("Invalid public key") from None
            self.public_key = public_key
        # 4-5
        message = frame.get("message")
        if not isinstance(message, dict):
            raise RemoteProtocolError("Invalid message.")
        if message.get("network_type") != NETWORK_TYPE:
            raise RemoteProtocolError(
                f"network types do not match: {message.get('network_type')} <> {NETWORK_TYPE}")
        # 6: signature (the original crashes when no key was received yet)
        if self.public_key is None:
            raise RemoteProtocolError("Unable to verify message: no public key received")
        signature = frame.get("signature")
        # One spelling per signature, so that the replay memory cannot be fooled by another one
        # (upper-case hex, spaces) that bytes.fromhex would accept as well.
        if not isinstance(signature, str) or not SIGNATURE.match(signature) \
                or not verify_message(self.public_key, message, signature, message_text):
            raise RemoteProtocolError("Unable to verify message using signature")
        # kbtools: refuse stale or replayed frames
        self._check_fresh(message, signature, now)
        # 7: dispatch
        command = message.get("command")
        if command == "register_child_node":
            return self._register(message)  # checks its fields first, then the transition
        if command == "report_node_data":
            event = ChildInput.REPORT
        elif message.get("message_type") == "http" and isinstance(command, str) \
                and command.startswith("http."):
            event = ChildInput.HTTP
        else:
            event = ChildInput.OTHER
        next_child_state(self.state, event, command)
        return self._report(message) if event is ChildInput.REPORT else self._http(message)

    def _check_fresh(self, message: dict[str, Any], signature: str, now: float) -> None:
        window = self.limits.freshness_window
        if window is None:
            return
        ts = message.get("timestamp")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool):
            raise RemoteProtocolError("Invalid timestamp")
        if abs(now - ts / 1000.0) > window:
            raise RemoteProtocolError("Stale message: timestamp outside the accepted window")
        if str(message.get("command", "")).startswith("register") \
                and self.registry.seen_register(signature, now):
            raise RemoteProtocolError("Replayed registration message")

    def _register(self, message: dict[str, Any]) -> Outcome:
        info = message.get("info")
        if not isinstance(info, dict) or not info:
            raise RemoteProtocolError("No info field found in message")
        passcode = message.get("passcode") or ""
        expected = self.hub.passcode or ""
        if not isinstance(passcode, str) or not hmac.compare_digest(
                passcode.encode("utf-8"), expected.encode("utf-8")):
            raise RemoteProtocolError(f"Incorrect passcode for node {info.get('name')}")
        if info.get("scientific_research") != "yes":
            raise RemoteProtocolError(
                "This system should only be used to share resources for scientific research purposes")
        node_type = info.get("node_type")
        if node_type != "hub" and info.get("confirm_share") != "yes":
            raise RemoteProtocolError("Sharing of resources has not been confirmed")
        if node_type not in ("leaf", "hub"):
            raise RemoteProtocolError(f"Unexpected child node type: {node_type}"[:300])
        state = next_child_state(self.state, ChildInput.REGISTER)
        self.node_type = str(node_type)
        error = self.registry.add(self)
        if error:
            self.node_type = None
            raise RemoteProtocolError(error)
        self.state = state
        self.info = info
        fast = fastpath.accept(info.get(fastpath.FIELD), self.limits.fast_window,
                               self.limits.allow_data_connections and node_type == "leaf") \
            if self.limits.allow_fast_path else None
        self.fast_path = fast is not None
        self.fast_cancel = self.fast_path and fastpath.accepts_cancel(info.get(fastpath.FIELD))
        self.data_connections = self.fast_cancel and fastpath.offers_data(fast)
        listen_url = info.get("listen_url")
        self.reach_report = self.limits.probe_reachability and offers_reachability(info) \
            and isinstance(listen_url, str) and bool(listen_url.strip())
        reach = {"version": REACHABILITY_VERSION} if self.reach_report else None
        out = Outcome()
        if node_type == "hub":
            out.replies.append(canonical_json(SetTopHubUrl(self.hub.top_hub_url).to_fields()))
        out.replies.append(canonical_json(ConfirmRegistration(self.hub.info, fast, reach).to_fields()))
        assert self.public_key is not None and self.node_id is not None
        out.events.append(ChildRegistered(self.node_id, self.node_type, info, self.public_key,
                                          self.fast_path))
        return out

    @property
    def node_data(self) -> dict[str, Any] | None:
        """The node data as parsed JSON, built from the compact form on each call (tests, small
        data); the hub itself reads `data`."""
        return self.data.to_dict() if self.data is not None else None

    @node_data.setter
    def node_data(self, value: dict[str, Any] | None) -> None:
        self._set_data(NodeData.from_data(value) if value is not None else None)

    def _set_data(self, data: NodeData | None) -> None:
        self.data = data
        held = data.nbytes if data is not None else 0
        self.registry.index_bytes += held - self._held
        self._held = held

    def _fits(self, data: NodeData) -> IndexRefused | None:
        """None if the hub can hold this node data, else the refusal."""
        others = self.registry.index_bytes - self._held
        limit = self.limits.max_index_bytes
        if others + data.nbytes <= limit:
            return None
        assert self.node_id is not None
        return IndexRefused(self.node_id, data.nbytes, others, limit)

    def _refuse_index(self, refused: IndexRefused) -> Outcome:
        mib = js_number(round(refused.limit_bytes / 1048576, 3))
        out = self.fail(f"Index limit reached: this hub holds at most {mib} MiB of node data "
                        f"({refused.index_bytes} bytes reported, {refused.held_bytes} held)")
        out.events.insert(0, refused)
        return out

    def _report(self, message: dict[str, Any]) -> Outcome:
        assert self.node_id is not None
        if "data" in message and message["data"] is not None:
            data = message["data"]
            if not isinstance(data, dict):
                raise RemoteProtocolError("Invalid node data")
            self._set_data(None)  # the old data goes first: the budget counts the new one alone
            new = NodeData.from_data(data)  # the original does not check this hash either
            refused = self._fits(new)
            if refused is not None:
                return self._refuse_index(refused)
            self._set_data(new)
        elif "data_delta" in message and message["data_delta"] is not None:
            if self.data is None:
                raise RemoteProtocolError("Received data_delta, but child_node_data is null.")
            try:
                self.data.apply_delta(message["data_delta"])
            except RemoteProtocolError:
                self._set_data(None)
                raise
            if self.data.object_hash() != message.get("data_hash"):
                self._set_data(None)
                raise RemoteProtocolError("Unexpected: node data hash does not match.")
            refused = self._fits(self.data)
            if refused is not None:
                self._set_data(None)
                return self._refuse_index(refused)
            self._set_data(self.data)
        elif message.get("data_nochange"):
            return Outcome(replies=[canonical_json(Ok().to_fields())])
        else:
            raise RemoteProtocolError("No data, data_delta, or data_nochange field found in message")
        assert self.data is not None
        return Outcome(replies=[canonical_json(Ok().to_fields())],
                       events=[NodeDataUpdated(self.node_id, self.data)])

    def _http(self, message: dict[str, Any]) -> Outcome:
        msg = parse_response_message(message)
        out = Outcome(replies=[canonical_json(Ok().to_fields())])
        if isinstance(msg, (EndResponse, ReportError)):
            self.cancelled.pop(msg.request_id, None)  # it crossed our CANCEL: nothing more will come
        if msg.request_id not in self.credit:
            return out  # a late frame for a finished or unknown request: acknowledged, dropped
        if isinstance(msg, WriteResponseData) and self.limits.defer_data_ack:
            out.replies.clear()
            self.unacked_data += 1
        if isinstance(msg, SetResponseHeaders):
            out.events.append(ResponseHeaders(msg.request_id, msg.status, msg.status_message,
                                              msg.headers))
        elif isinstance(msg, WriteResponseData):
            out.events.append(ResponseData(msg.request_id, msg.data))
        elif isinstance(msg, EndResponse):
            self.credit.pop(msg.request_id, None)
            out.events.append(ResponseEnd(msg.request_id))
        elif isinstance(msg, ReportError):
            self.credit.pop(msg.request_id, None)
            out.events.append(ResponseError(msg.request_id, msg.error))
        return out
