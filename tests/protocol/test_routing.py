"""Routing, find and nodeinfo against the recorded hub answers (http.json)."""
from __future__ import annotations

import base64
import json
import re

from kbtools.protocol.envelope import Signer
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, HubInfo
from kbtools.protocol.jsondiff import patch
from kbtools.protocol.leafconn import register_info
from kbtools.protocol.routing import (
    child_find_results, decode_tunnel_path, encode_tunnel_path, filter_request_headers, find_answer,
    hub_node_data, new_request_id, node_info_object, nodeinfo_answer, plan_find, route,
    unable_to_locate,
)
from tests.protocol.vectors import child_frames, frames, http, identity, kbnode

HUB, CHILDHUB, SHARE, SHARE2 = "d0d90d53e2d5", "304421134a4c", "83bded5ed247", "3e483bd811d8"
HUB_URL = "http://127.0.0.1:33699"


def top_hub_registry() -> ChildRegistry:
    """The top hub's children, fed every recorded child frame."""
    registry = ChildRegistry()
    hub = HubInfo(http()["http"]["nodeinfo_hub"]["info"], "hubpass", HUB_URL)
    conns: dict[int, ChildConnection] = {}
    for r in child_frames():
        conn = conns.setdefault(r["conn"], ChildConnection(hub, registry, r["t"]))
        rid = json.loads(r["frame"])["message"].get("request_id")
        if rid and rid not in conn.credit:
            conn.open_request(rid)
        assert not conn.receive_frame(r["frame"], r["t"]).close
    return registry


def recorded_response_body(request_path: str) -> dict:
    """The JSON body a child sent back for the last tunnelled request with this path."""
    rid = None
    body = b""
    for r in frames():
        f = json.loads(r["frame"])
        if r["dir"] == "hub->child" and f.get("path") == request_path:
            rid, body = f["request_id"], b""
        m = f.get("message")
        if rid and isinstance(m, dict) and m.get("request_id") == rid and "data_base64" in m:
            body += base64.b64decode(m["data_base64"])
    return json.loads(body)


def test_global_find_matches_the_recording():
    registry = top_hub_registry()
    answers = http()["http"]
    for key, sha1 in (("find_one", "e1b221ee936dcae8aeac4b38c6cd45e6ea9f7bb5"),
                      ("find_deep", "67dfd156cca944dfd26eac489e8189402b1456f8"),
                      ("find_missing", "0" * 40)):
        plan = plan_find(registry, sha1, "")
        assert plan.child_hub_queries == [(CHILDHUB, f"find/{sha1}/")]
        results = list(plan.local_results)
        for _, path in plan.child_hub_queries:
            results += child_find_results(recorded_response_body(path))
        assert find_answer(results, HUB, registry, HUB_URL, HUB_URL) == answers[key]


def test_share_scoped_find_works_at_any_ancestor():
    registry = top_hub_registry()
    direct = plan_find(registry, "e1b221ee936dcae8aeac4b38c6cd45e6ea9f7bb5", "", SHARE)
    assert direct.child_hub_queries == [] and direct.local_results[0]["kbshare_id"] == SHARE
    deep = plan_find(registry, "67dfd156cca944dfd26eac489e8189402b1456f8", "deep.txt", SHARE2)
    assert deep.local_results == []
    assert deep.child_hub_queries == [(CHILDHUB, f"{SHARE2}/api/find/67dfd156cca944dfd26eac489e8189402b1456f8/deep.txt")]
    assert plan_find(registry, "x", "", "ffffffffffff") == plan_find(registry, "x", "", "ffffffffffff")
    assert plan_find(registry, "x", "", "ffffffffffff").child_hub_queries == []


def test_not_found_on_a_child_hub_names_the_top_hub():
    registry = ChildRegistry()
    assert find_answer([], CHILDHUB, registry, "http://127.0.0.1:36197", HUB_URL) == {
        "success": True, "found": False, "alt_hub_url": HUB_URL}


def test_routing_order():
    registry = top_hub_registry()
    assert route(SHARE, registry).via == "leaf"
    assert route(CHILDHUB, registry).via == "hub"
    r = route(SHARE2, registry)
    assert r.via == "descendant" and r.child.node_id == CHILDHUB
    assert route("ffffffffffff", registry) is None
    assert unable_to_locate("x") == {"error": "Unable to locate node with id: x"}


def test_nodeinfo_shapes_match_the_recording():
    registry = top_hub_registry()
    rec = http()["http"]
    hub_cfg = kbnode("hub")
    info = node_info_object(hub_cfg, HUB, identity("hub").public_pem, hub_cfg["listen_url"])
    assert info == rec["nodeinfo_hub"]["info"]
    answer = nodeinfo_answer(info, rec["nodeinfo_hub"]["metrics"], registry)
    assert json.dumps(answer) == json.dumps(rec["nodeinfo_hub"])  # same keys in the same order
    share_cfg = kbnode("share")
    share_info = node_info_object(share_cfg, SHARE, identity("share").public_pem, share_cfg["listen_url"])
    answer = nodeinfo_answer(share_info, rec["nodeinfo_share"]["metrics"],
                             parent_hub_info=rec["nodeinfo_share"]["parent_hub_info"])
    assert json.dumps(answer) == json.dumps(rec["nodeinfo_share"])


def test_child_hub_node_data_matches_what_it_reported():
    """Rebuild the child hub's registry with share2 registered, and compare with its last report."""
    registry = ChildRegistry()
    cfg = kbnode("childhub")
    t = child_frames(1)[0]["t"]
    conn = ChildConnection(HubInfo({}, cfg["passcode"]), registry, t)
    share2 = kbnode("share2")
    frame = Signer(identity("share2")).frame(
        {"command": "register_child_node", "passcode": "childpass",
         "info": register_info(share2, share2["listen_url"], "leaf", fast_path=False)}, int(t * 1000))
    assert not conn.receive_frame(frame, t).close
    data = None
    for r in child_frames(1):
        m = json.loads(r["frame"])["message"]
        if "data" in m:
            data = m["data"]
        elif "data_delta" in m:
            data = patch(data, m["data_delta"])
    assert hub_node_data(CHILDHUB, registry) == data


def test_tunnel_helpers():
    assert re.fullmatch(r"[A-Za-z0-9]{8}", new_request_id())
    assert encode_tunnel_path("/id/download/a b/c#d?e%f.txt") == "id/download/a%20b/c%23d%3Fe%25f.txt"
    assert decode_tunnel_path("id/download/a%20b/c%23d%3Fe%25f.txt") == "id/download/a b/c#d?e%f.txt"
    # An original hub sends decoded paths; a space survives, `#` starts a fragment as in the JS child.
    assert decode_tunnel_path("id/download/sp ace.txt") == "id/download/sp ace.txt"
    assert filter_request_headers({"Cookie": "a", "Authorization": "b", "Range": "bytes=0-1"}) == {
        "range": "bytes=0-1"}
