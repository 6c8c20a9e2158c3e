"""The two connection state machines of spec §2.5 as tables: every state is listed, every refused
(state, input) pair of a child connection has its error text, and the link follows its table."""
from __future__ import annotations

import json

import pytest

from kbtools.protocol.envelope import Signer
from kbtools.protocol.errors import RemoteProtocolError
from kbtools.protocol.hubconn import (
    CHILD_TRANSITIONS, CLOSED_STATES, ILLEGAL, ChildConnection, ChildInput, ChildRegistry, ChildState,
    HubInfo, next_child_state,
)
from kbtools.protocol.leafconn import LINK_TRANSITIONS, LinkState, ParentLink, register_info
from tests.protocol.vectors import identity, kbnode

NOW = 1795565400.0
NOW_MS = int(NOW * 1000)


def test_every_state_has_a_row_and_only_closed_states_are_terminal():
    assert set(CHILD_TRANSITIONS) == set(ChildState)
    assert CLOSED_STATES == {ChildState.REFUSED, ChildState.DISCONNECTED}
    assert set(LINK_TRANSITIONS) == set(LinkState)


@pytest.mark.parametrize("state", [ChildState.NEW, ChildState.REGISTERED])
@pytest.mark.parametrize("event", list(ChildInput))
def test_a_refused_child_input_has_one_error_text(state, event):
    if event in CHILD_TRANSITIONS[state]:
        assert next_child_state(state, event) in ChildState
        return
    with pytest.raises(RemoteProtocolError) as e:
        next_child_state(state, event, "cmd")
    assert str(e.value) == ILLEGAL[event].format(command="cmd")


def test_a_report_before_registering_is_refused_and_closes():
    conn = ChildConnection(HubInfo({"name": "hub"}), ChildRegistry(), NOW)
    signer = Signer(identity("share"))
    frame = signer.frame({"command": "report_node_data", "data": {}, "data_hash": "x"}, NOW_MS)
    frame = json.loads(frame)
    frame["public_key"] = signer.identity.public_pem  # outside the signed message
    out = conn.receive_frame(json.dumps(frame), NOW)
    assert json.loads(out.replies[0]) == {"error": "Unrecognized command: report_node_data. Closing websocket."}
    assert out.close and conn.state is ChildState.REFUSED and not conn.registered


def test_the_link_moves_through_its_table():
    config = kbnode("share")
    link = ParentLink(Signer(identity("share")), register_info(config, config["listen_url"], "leaf"), "p")
    assert link.state is LinkState.IDLE
    out = link.receive_frame(json.dumps({"command": "confirm_registration", "info": {}}), NOW_MS)
    assert out.close and not link.registered  # no register was sent on this socket
    link.connection_opened(NOW_MS)
    assert link.state is LinkState.REGISTERING
    out = link.receive_frame(json.dumps({"command": "confirm_registration", "info": {"name": "h"}}), NOW_MS)
    assert not out.close and link.state is LinkState.REGISTERED and link.registered
    link.connection_lost()
    assert link.state is LinkState.IDLE and not link.registered
