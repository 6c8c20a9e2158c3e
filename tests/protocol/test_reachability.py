"""Whether a hub reached a child's listen_url: the probe's plan, the capability and the frame, find's
order and the client's routes (no sockets; the live probe is in tests/hub/test_reachability.py)."""
from __future__ import annotations

import json

import pytest

from kbtools.client.resolve import found_urls
from kbtools.hub.reach import ProbePlan, Reach, plan_probe
from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, ChildState, HubInfo, HubLimits
from kbtools.protocol.leafconn import ParentLink, Reached, Registered, register_info
from kbtools.protocol.messages import REACHABILITY
from kbtools.protocol.nodedata import NodeData
from kbtools.protocol.routing import find_answer, nodeinfo_answer
from tests.protocol.vectors import identity, kbnode

NOW = 1795565400.0
NOW_MS = int(NOW * 1000)
HUB_URL = "http://127.0.0.1:3240"
ID = "83bded5ed247"


# ---------------------------------------------------------------- the plan: only the peer, never a name

def test_the_probe_goes_to_the_connection_address_at_the_advertised_port_and_path():
    plan = plan_probe("http://127.0.0.1:2000", "127.0.0.1", ID)
    assert plan == ProbePlan(f"http://127.0.0.1:2000/{ID}/api/nodeinfo", "127.0.0.1:2000", None,
                             "http://127.0.0.1:2000")
    # A name is never resolved: the request goes to the peer, the name only in Host (and SNI).
    plan = plan_probe("https://share.example.org/kb/", "203.0.113.7", ID)
    assert isinstance(plan, ProbePlan)
    assert plan.url == f"https://203.0.113.7:443/kb/{ID}/api/nodeinfo"
    assert (plan.host_header, plan.server_hostname) == ("share.example.org", "share.example.org")
    assert plan_probe("http://[::1]:2000", "::1", ID).url == f"http://[::1]:2000/{ID}/api/nodeinfo"
    assert plan_probe("http://127.0.0.1:2000", "::ffff:127.0.0.1", ID).url.startswith(
        "http://127.0.0.1:2000/")


@pytest.mark.parametrize("listen_url, peer, reachable", [
    ("http://127.0.0.3:2000", "127.0.0.1", None),       # another address: not probed
    ("http://198.51.100.1:2000", "203.0.113.7", None),
    ("http://localhost:2000", "203.0.113.7", False),     # a remote share advertising its loopback
    ("http://127.0.0.1:2000", "203.0.113.7", False),
    ("ftp://127.0.0.1:2000", "127.0.0.1", False),
    ("http://127.0.0.1:notaport", "127.0.0.1", False),
    ("http://user:pw@127.0.0.1:2000", "127.0.0.1", False),
    ("http://127.0.0.1:2000", None, None),               # no address known
])
def test_what_is_decided_without_a_probe(listen_url, peer, reachable):
    result = plan_probe(listen_url, peer, ID)
    assert isinstance(result, Reach) and result.reachable is reachable and result.reason


# ---------------------------------------------------------------- capability and frame

def leaf_link(listen_url: str | None = None) -> ParentLink:
    config = kbnode("share")
    return ParentLink(Signer(identity("share")),
                      register_info(config, config["listen_url"] if listen_url is None else listen_url,
                                    "leaf", fast_path=False), "hubpass")


def hub_side(**limits) -> ChildConnection:
    registry = ChildRegistry(HubLimits(**limits))
    return ChildConnection(HubInfo({"node_id": "d0d90d53e2d5", "name": "barhub"}, "hubpass"),
                           registry, NOW)


def register(leaf: ParentLink, conn: ChildConnection) -> list:
    """Register `leaf` at `conn`; the leaf's events."""
    out = conn.receive_frame(leaf.connection_opened(NOW_MS)[0], NOW)
    assert not out.close
    events = []
    for reply in out.replies:
        got = leaf.receive_frame(reply, NOW_MS)
        assert not got.close
        events += got.events
    return events


def test_a_share_offers_the_report_and_a_kbtools_hub_promises_then_sends_it_once():
    assert register_info(kbnode("share"), "http://127.0.0.1:2000", "leaf")[REACHABILITY] == {"version": 1}
    assert REACHABILITY not in register_info(kbnode("share"), "", "leaf")        # private: no address
    assert REACHABILITY not in register_info(kbnode("hub"), "http://h:1", "hub")
    leaf, conn = leaf_link(), hub_side()
    [registered] = register(leaf, conn)
    assert isinstance(registered, Registered) and registered.reachability_pending
    frames = conn.reachability_found(False, "cannot connect to http://127.0.0.1:2000: refused")
    assert [json.loads(f) for f in frames] == [{"command": "kbtools_reachability", "reachable": False,
                                                "reason": "cannot connect to http://127.0.0.1:2000: refused"}]
    assert conn.reachable is False
    assert conn.reachability_found(True, "again") == [] and conn.reachable is True  # one frame only
    got = leaf.receive_frame(frames[0], NOW_MS)
    assert got.events == [Reached(False, "cannot connect to http://127.0.0.1:2000: refused")]
    assert not got.close and got.send == []


def test_the_report_is_not_a_reply_the_polite_queue_waits_on():
    leaf, conn = leaf_link(), hub_side()
    register(leaf, conn)
    first = leaf.report_node_data({"files_by_sha1": {}}, NOW_MS)
    assert len(first) == 1 and leaf.awaiting_response
    assert leaf.report_node_data({"files_by_sha1": {}}, NOW_MS) == []  # one report waits at most
    leaf.receive_frame(conn.reachability_found(True, "answered")[0], NOW_MS)
    assert leaf.awaiting_response  # the hub's `ok` for the report has not come yet


def test_no_promise_without_the_offer_a_listen_url_or_probing():
    for leaf, conn in ((leaf_link(""), hub_side()),                       # private share
                       (leaf_link(), hub_side(probe_reachability=False))):
        [registered] = register(leaf, conn)
        assert not registered.reachability_pending
        assert conn.reachability_found(True, "x") == []
    conn = hub_side()
    info = register_info(kbnode("share"), "http://127.0.0.1:2000", "leaf", fast_path=False)
    del info[REACHABILITY]  # an original share, or a kbtools share before the report
    frame = Signer(identity("share")).frame({"command": "register_child_node", "info": info,
                                             "passcode": "hubpass"}, NOW_MS)
    out = conn.receive_frame(frame, NOW)
    assert REACHABILITY not in json.loads(out.replies[-1])
    assert conn.reachability_found(False, "x") == [] and conn.reachable is False  # kept for find


def test_a_malformed_report_closes_the_link():
    leaf, conn = leaf_link(), hub_side()
    register(leaf, conn)
    assert leaf.receive_frame(json.dumps({"command": REACHABILITY, "reachable": "yes"}), NOW_MS).close


# ---------------------------------------------------------------- nodeinfo and find

def registry_of(*shares: tuple[str, str, bool | None]) -> ChildRegistry:
    registry = ChildRegistry()
    for node_id, listen_url, reachable in shares:
        conn = ChildConnection(HubInfo({}), registry)
        conn.node_id, conn.node_type, conn.state = node_id, "leaf", ChildState.REGISTERED
        conn.info = {"name": node_id, "listen_url": listen_url}
        conn.data = NodeData.from_data({"files_by_sha1": {}})
        conn.reachable = reachable
        registry.add(conn)
    return registry


def test_nodeinfo_keeps_the_original_keys_and_adds_kbtools_reachable_once_known():
    registry = registry_of(("aaaaaaaaaaaa", "http://127.0.0.1:1", True),
                           ("bbbbbbbbbbbb", "http://127.0.0.1:2", False),
                           ("cccccccccccc", "", None))
    leaves = nodeinfo_answer({}, {}, registry)["child_leaf_nodes"]
    assert leaves == {
        "aaaaaaaaaaaa": {"name": "aaaaaaaaaaaa", "listen_url": "http://127.0.0.1:1", "kbtools_reachable": True},
        "bbbbbbbbbbbb": {"name": "bbbbbbbbbbbb", "listen_url": "http://127.0.0.1:2", "kbtools_reachable": False},
        "cccccccccccc": {"name": "cccccccccccc", "listen_url": ""}}


def test_find_lists_an_unreachable_share_url_last_and_the_client_still_knows_it_is_direct():
    registry = registry_of(("aaaaaaaaaaaa", "http://10.0.0.1:2000", False),
                           ("bbbbbbbbbbbb", "http://10.0.0.2:2000", True))
    results = [{"kbshare_id": "aaaaaaaaaaaa", "size": 3, "path": "a b.txt"},
               {"kbshare_id": "bbbbbbbbbbbb", "size": 3, "path": "b.txt"}]
    answer = find_answer(results, "d0d90d53e2d5", registry, HUB_URL)
    dead = "http://10.0.0.1:2000/aaaaaaaaaaaa/download/a b.txt"
    assert answer["urls"] == [f"{HUB_URL}/aaaaaaaaaaaa/download/a b.txt",
                              "http://10.0.0.2:2000/bbbbbbbbbbbb/download/b.txt",
                              f"{HUB_URL}/bbbbbbbbbbbb/download/b.txt",
                              dead]
    assert answer["kbtools_unreachable"] == [dead]
    urls, _, routes = found_urls(answer)
    assert [routes[u] for u in urls] == ["hub", "direct", "hub", "direct"]
    assert urls[-1] == "http://10.0.0.1:2000/aaaaaaaaaaaa/download/a%20b.txt"
    # Not known, or reached: the original order, and no kbtools key.
    for reachable in (None, True):
        registry = registry_of(("aaaaaaaaaaaa", "http://10.0.0.1:2000", reachable))
        answer = find_answer(results[:1], "d0d90d53e2d5", registry, HUB_URL)
        assert answer["urls"][0] == "http://10.0.0.1:2000/aaaaaaaaaaaa/download/a b.txt"
        assert "kbtools_unreachable" not in answer
