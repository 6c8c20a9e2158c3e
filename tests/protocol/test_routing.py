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


# -- a child's response head, checked before it reaches a client ---------------------------------------

import dataclasses  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

from kbtools.protocol.nodedata import NodeData  # noqa: E402
from kbtools.protocol.routing import (  # noqa: E402
    TUNNEL_RESPONSE_HEADERS, InvalidResponse, check_response_head,
    descendant_nodes, download_urls, tunnel_request_frames,
)


def test_a_plain_response_head_passes_with_the_tunnel_headers_added():
    head = check_response_head(200, "OK", {"Content-Type": "text/plain", "Content-Length": "5"})
    assert head.status == 200 and head.reason == "OK" and head.content_length == 5
    assert head.headers == (("Content-Type", "text/plain"), ("Content-Length", "5")) + TUNNEL_RESPONSE_HEADERS
    assert check_response_head(599, None, {}).headers == TUNNEL_RESPONSE_HEADERS
    assert check_response_head(599, None, {}).content_length is None


@pytest.mark.parametrize("status", [199, 600, 0, -200, "200", 200.0, True, None])
def test_a_status_outside_200_to_599_is_refused(status):
    with pytest.raises(InvalidResponse) as info:
        check_response_head(status, "OK", {})
    assert str(info.value) == f"invalid status {status!r}"


def test_the_status_text_of_a_refusal_is_cut_at_100_characters():
    with pytest.raises(InvalidResponse) as info:
        check_response_head("9" * 300, "OK", {})
    assert len(str(info.value)) == 100


def test_the_reason_keeps_printable_ascii_only_and_at_most_100_characters():
    assert check_response_head(200, " a~\x1f\x7f\xe9\n", {}).reason == " a~"
    assert check_response_head(200, "x" * 150, {}).reason == "x" * 100
    assert check_response_head(200, "\x00\x7f", {}).reason is None
    assert check_response_head(200, "", {}).reason is None
    assert check_response_head(200, 5, {}).reason is None


def test_up_to_100_headers():
    many = {f"x-h{i}": "v" for i in range(100)}
    assert len(check_response_head(200, None, many).headers) == 100 + len(TUNNEL_RESPONSE_HEADERS)
    many["x-one-more"] = "v"
    with pytest.raises(InvalidResponse, match="too many headers"):
        check_response_head(200, None, many)
    with pytest.raises(InvalidResponse, match="invalid or too many headers"):
        check_response_head(200, None, [("a", "b")])


@pytest.mark.parametrize("name", ["", "a b", "a:b", "é", "a\n", 5, None])
def test_a_header_name_that_is_not_a_token_is_refused(name):
    with pytest.raises(InvalidResponse) as info:
        check_response_head(200, None, {name: "v"})
    assert str(info.value) == f"invalid header name {name!r}"


def test_a_long_bad_header_name_is_cut_in_the_refusal():
    with pytest.raises(InvalidResponse) as info:
        check_response_head(200, None, {"a b" * 100: "v"})
    assert len(str(info.value)) == 100


def test_every_token_character_may_name_a_header():
    name = "!#$%&'*+-.^_`|~09AZaz"
    assert check_response_head(200, None, {name: "v"}).headers[0] == (name, "v")


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00", "\x7f", "\x1f", 5, None, ["ok", "b\n"], [5]])
def test_a_header_value_with_a_control_character_is_refused(value):
    with pytest.raises(InvalidResponse) as info:
        check_response_head(200, None, {"X-A": value})
    assert str(info.value) == "invalid value of header X-A"


def test_header_values_may_hold_tabs_spaces_and_bytes_from_0x80_and_repeat_as_a_list():
    head = check_response_head(200, None, {"X-A": "a\tb ~\x80\xff", "X-B": ["1", "2"]})
    assert head.headers[:3] == (("X-A", "a\tb ~\x80\xff"), ("X-B", "1"), ("X-B", "2"))


def test_hop_by_hop_and_origin_headers_are_dropped_whatever_their_case():
    dropped = {"Connection": "close", "keep-alive": "5", "Transfer-Encoding": "chunked", "Upgrade": "x",
               "Proxy-Connection": "x", "TE": "x", "Trailer": "x", "Set-Cookie": "a=b", "set-cookie2": "a",
               "Clear-Site-Data": "*", "Refresh": "0", "Content-Security-Policy": "x",
               "X-Content-Type-Options": "x"}
    head = check_response_head(200, None, {**dropped, "X-Kept": "1"})
    assert head.headers == (("X-Kept", "1"),) + TUNNEL_RESPONSE_HEADERS


MAX_RESPONSE_HEAD_BYTES = 64 * 1024


def test_the_head_may_take_64_kib():
    # each header counts its name, its value and 4 bytes (": " and the line break)
    exact = {"X-A": "v" * (MAX_RESPONSE_HEAD_BYTES - 3 - 4)}
    assert check_response_head(200, None, exact).headers[0][0] == "X-A"
    with pytest.raises(InvalidResponse, match="response headers too large"):
        check_response_head(200, None, {"X-A": "v" * (MAX_RESPONSE_HEAD_BYTES - 3 - 3)})
    two = {"X-A": "v" * 30000, "X-B": ["v" * 30000, "v" * (MAX_RESPONSE_HEAD_BYTES - 60000 - 3 * 4 - 6 + 1)]}
    with pytest.raises(InvalidResponse, match="response headers too large"):
        check_response_head(200, None, two)
    # a dropped header counts too
    with pytest.raises(InvalidResponse, match="response headers too large"):
        check_response_head(200, None, {"Set-Cookie": "v" * MAX_RESPONSE_HEAD_BYTES})


def test_content_length_is_one_decimal_number():
    head = check_response_head(200, None, {"content-length": " 12 ", "X-A": "1"})
    assert head.content_length == 12 and head.headers[:2] == (("X-A", "1"), ("Content-Length", "12"))
    assert check_response_head(200, None, {"Content-Length": ["7", "7"]}).content_length == 7
    assert check_response_head(200, None, {"Content-Length": "9" * 18}).content_length == int("9" * 18)
    assert check_response_head(200, None, {"Content-Length": "0"}).content_length == 0


@pytest.mark.parametrize("value", ["", "-1", "+1", "1e3", "0x10", "1.0", "1\xb2", "9" * 19, ["1", "2"]])
def test_a_content_length_that_is_not_one_decimal_number_is_refused(value):
    with pytest.raises(InvalidResponse, match="invalid content-length"):
        check_response_head(200, None, {"Content-Length": value})


def test_two_different_content_lengths_under_two_spellings_are_refused():
    with pytest.raises(InvalidResponse, match="invalid content-length"):
        check_response_head(200, None, {"Content-Length": "1", "content-length": "2"})


# -- frames, subtree, find answers, nodeinfo -------------------------------------------------------------

def test_the_frames_of_a_tunnelled_request():
    initiate, end = tunnel_request_frames("abcdEFGH", "GET", "id/download/a b.txt",
                                          {"Range": "bytes=0-1", "Cookie": "c"}, {"q": "1"}, "t" * 16)
    assert json.loads(initiate) == {
        "message_type": "http", "command": "http.initiate_request", "method": "GET",
        "path": "id/download/a%20b.txt", "query": {"q": "1"}, "headers": {"range": "bytes=0-1"},
        "request_id": "abcdEFGH", "kbtools_data_token": "t" * 16}
    assert json.loads(end) == {"message_type": "http", "command": "http.end_request", "request_id": "abcdEFGH"}
    initiate, _ = tunnel_request_frames("abcdEFGH", "HEAD", "x", {})
    assert json.loads(initiate)["query"] == {} and "kbtools_data_token" not in json.loads(initiate)


def child(node_id, listen_url=None, data=None, reachable=None, name=None):
    """A registered child as the routing functions see it."""
    info = {"name": name or node_id}
    if listen_url is not None:
        info["listen_url"] = listen_url
    return SimpleNamespace(node_id=node_id, info=info, reachable=reachable,
                           data=None if data is None else NodeData.from_data(data))


def registry_of(leaves=(), hubs=()):
    registry = ChildRegistry()
    registry.leaves.update((c.node_id, c) for c in leaves)
    registry.child_hubs.update((c.node_id, c) for c in hubs)
    return registry


def test_the_subtree_lists_direct_children_first_then_what_child_hubs_report():
    reported = {"L1": {"node_id": "L1", "parent_node_id": "elsewhere"},
                "D1": {"node_id": "D1", "parent_node_id": "H1", "listen_url": "http://d1"},
                "bad": "not an object"}
    registry = registry_of([child("L1", "http://l1")],
                           [child("H1", "http://h1", {"descendant_nodes": reported}),
                            child("H2", None, {"descendant_nodes": ["not", "an", "object"]}), child("H3")])
    assert descendant_nodes("ME", registry) == {
        "L1": {"node_id": "L1", "parent_node_id": "ME", "listen_url": "http://l1", "node_type": "leaf"},
        "H1": {"node_id": "H1", "parent_node_id": "ME", "listen_url": "http://h1", "node_type": "hub"},
        "H2": {"node_id": "H2", "parent_node_id": "ME", "listen_url": None, "node_type": "hub"},
        "H3": {"node_id": "H3", "parent_node_id": "ME", "listen_url": None, "node_type": "hub"},
        "D1": {"node_id": "D1", "parent_node_id": "H1", "listen_url": "http://d1"}}
    assert route("D1", registry).child.node_id == "H1" and route("bad", registry) is None


def test_a_request_goes_to_the_first_child_hub_that_reports_the_target():
    first = child("H1", data={"descendant_nodes": {"D": {}}})
    second = child("H2", data={"descendant_nodes": {"D": {}}})
    r = route("D", registry_of(hubs=[first, second]))
    assert r.child is first and r.via == "descendant" and r.target_id == "D"


def test_download_urls_walk_from_the_share_up_to_this_hub():
    subtree = {"S": {"parent_node_id": "H2", "listen_url": "http://s"},
               "H2": {"parent_node_id": "H1", "listen_url": "http://h2"},
               "H1": {"parent_node_id": "ME", "listen_url": ""}}
    assert download_urls("S", "a/b.txt", subtree, "http://me") == [
        "http://s/S/download/a/b.txt", "http://h2/S/download/a/b.txt", "http://me/S/download/a/b.txt"]
    # a share without a URL, a loop in the reported parents, a share not in the subtree
    looped = {"S": {"parent_node_id": "H", "listen_url": None}, "H": {"parent_node_id": "S", "listen_url": "http://h"}}
    assert download_urls("S", "f", looped, "http://me") == ["http://h/S/download/f", "http://me/S/download/f"]
    self_parent = {"S": {"parent_node_id": "S", "listen_url": "http://s"}}
    assert download_urls("S", "f", self_parent, "http://me") == ["http://s/S/download/f", "http://me/S/download/f"]
    assert download_urls("S", "f", {}, "http://me") == ["http://me/S/download/f"]
    assert download_urls("S", "f", {"S": {"parent_node_id": 5, "listen_url": 5}}, "http://me") == [
        "http://me/S/download/f"]


def test_an_unreachable_share_is_tried_last_and_named():
    share = child("S", "http://s", reachable=False)
    other = child("T", "http://t", reachable=True)
    registry = registry_of([share, other])
    results = [{"kbshare_id": "S", "size": 1, "path": "f"}, {"kbshare_id": "T", "size": 1, "path": "g"}]
    answer = find_answer(results, "ME", registry, "http://me")
    assert answer == {"success": True, "found": True,
                      "urls": ["http://me/S/download/f", "http://t/T/download/g", "http://me/T/download/g",
                               "http://s/S/download/f"],
                      "results": results, "kbtools_unreachable": ["http://s/S/download/f"]}
    share.reachable = None  # not probed yet: in order
    assert find_answer(results[:1], "ME", registry, "http://me")["urls"] == [
        "http://s/S/download/f", "http://me/S/download/f"]
    assert "kbtools_unreachable" not in find_answer(results[:1], "ME", registry, "http://me")


def test_an_unreachable_share_without_its_own_url_keeps_the_hub_url():
    share = child("S", None, reachable=False)
    registry = registry_of([share])
    answer = find_answer([{"kbshare_id": "S", "size": 1, "path": "f"}], "ME", registry, "http://me")
    assert answer["urls"] == ["http://me/S/download/f"] and "kbtools_unreachable" not in answer
    # an own URL that is a prefix of the hub's is not the share's
    share.info["listen_url"] = "http://me"
    answer = find_answer([{"kbshare_id": "S", "size": 1, "path": "f"}], "ME", registry, "http://me")
    assert answer["urls"] == ["http://me/S/download/f", "http://me/S/download/f"]
    assert answer["kbtools_unreachable"] == ["http://me/S/download/f"]


def test_the_hub_url_alone_is_never_moved():
    # the share claims this hub's own URL, and the subtree does not know it: one URL, kept
    registry = registry_of([child("S", "http://me", reachable=False)])
    answer = find_answer([{"kbshare_id": "S", "size": 1, "path": "f"}], "ME", registry, "http://me", subtree={})
    assert answer == {"success": True, "found": True, "urls": ["http://me/S/download/f"],
                      "results": [{"kbshare_id": "S", "size": 1, "path": "f"}]}


def test_checked_heads_routes_and_plans_are_values():
    head = check_response_head(200, None, {})
    r = route("H", registry_of(hubs=[child("H")]))
    plan = plan_find(ChildRegistry(), "s")
    for value, name in ((head, "status"), (r, "via"), (plan, "local_results")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)


def test_an_unreachable_share_below_a_child_hub_is_not_moved():
    registry = registry_of([child("S", "http://other", reachable=False)])
    subtree = {"S": {"parent_node_id": "ME", "listen_url": "http://s"}}
    answer = find_answer([{"kbshare_id": "S", "size": 1, "path": "f"}], "ME", registry, "http://me",
                         subtree=subtree)
    assert answer["urls"] == ["http://s/S/download/f", "http://me/S/download/f"]


def test_not_found_on_the_top_hub_names_no_other_hub():
    assert find_answer([], "ME", ChildRegistry(), "http://me", "".join(["http://", "me"])) == {
        "success": True, "found": False}
    assert find_answer([], "ME", ChildRegistry(), "http://a", "http://b") == {
        "success": True, "found": False, "alt_hub_url": "http://b"}
    assert find_answer([], "ME", ChildRegistry(), "http://me") == {"success": True, "found": False}


def test_malformed_find_answers_of_a_child_hub_are_ignored():
    good = {"kbshare_id": "S", "path": "f", "size": 1}
    assert child_find_results({"found": True, "results": [good, 5, {"kbshare_id": 5, "path": "f"},
                                                          {"kbshare_id": "S", "path": None}, {"path": "f"}]}) == [good]
    assert child_find_results({"found": False, "results": [good]}) == []
    assert child_find_results({"results": [good]}) == []
    assert child_find_results({"found": True, "results": {"0": good}}) == []
    assert child_find_results([good]) == []


def test_find_in_the_direct_leaves():
    registry = registry_of([child("A", data={"files_by_sha1": {"ab" * 20: {"path": "x", "size": 3}}}),
                            child("B"), child("C", data={"files_by_sha1": {"ab" * 20: {"path": "y", "size": 4}}})])
    assert plan_find(registry, "ab" * 20).local_results == [{"kbshare_id": "A", "size": 3, "path": "x"},
                                                            {"kbshare_id": "C", "size": 4, "path": "y"}]
    assert plan_find(registry, "ab" * 20, share_id="C").local_results == [{"kbshare_id": "C", "size": 4, "path": "y"}]
    assert plan_find(registry, "ab" * 20, share_id="A").local_results == [{"kbshare_id": "A", "size": 3, "path": "x"}]
    given = [{"kbshare_id": "Z", "size": 1, "path": "z"}]
    assert plan_find(registry, "ab" * 20, local_results=given).local_results == given


def test_a_share_scoped_find_for_a_child_hub_asks_that_hub():
    registry = registry_of(hubs=[child("H")])
    assert plan_find(registry, "s", "f", "H").child_hub_queries == [("H", "H/api/find/s/f")]


def test_nodeinfo_object_names_a_cas_upload_url_when_configured():
    cfg = {"node_type": "hub", "name": "n", "cas_upload_url": "http://cas"}
    info = node_info_object(cfg, "ME", "pem", "http://me")
    assert info["cas_upload_url"] == "http://cas" and list(info)[-1] == "cas_upload_url"
    assert "cas_upload_url" not in node_info_object({**cfg, "cas_upload_url": ""}, "ME", "pem", "http://me")


def test_nodeinfo_names_reachability_once_probed():
    registry = registry_of([child("S", "http://s", reachable=False, name="share"), child("T", "http://t")],
                           [child("H", "http://h", reachable=True)])
    answer = nodeinfo_answer({"node_id": "ME"}, {"m": 1}, registry)
    assert answer["child_leaf_nodes"] == {"S": {"name": "share", "listen_url": "http://s", "kbtools_reachable": False},
                                          "T": {"name": "T", "listen_url": "http://t"}}
    assert answer["child_hubs"] == {"H": {"name": "H", "listen_url": "http://h", "kbtools_reachable": True}}
    assert list(answer) == ["success", "info", "child_hubs", "child_leaf_nodes", "metrics"]


def test_forwarded_request_headers_drop_credentials_in_any_case():
    assert filter_request_headers({"COOKIE": "a", "proxy-Authorization": "b", "X-Y": "c"}) == {"x-y": "c"}
