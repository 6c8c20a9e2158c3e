"""The frames recorded from the original KBucket children, replayed into a kbtools hub over a websocket."""
from __future__ import annotations

import json

import requests
import websocket

from kbtools.node.config import websocket_url
from kbtools.protocol.hubconn import HubLimits
from tests.hub.children import HubNode
from tests.protocol.vectors import VECTORS, child_frames, http

IDS = http()["ids"]


def replay(lt, tmp_path):
    clock = {"t": child_frames()[0]["t"]}
    # No probe of the recorded listen_urls (nothing listens there): the answers are the original's.
    hub = HubNode(lt, tmp_path / "hub", copy_from=VECTORS / "nodes" / "hub", clock=lambda: clock["t"],
                  limits=HubLimits(probe_reachability=False))
    sockets = {c: websocket.create_connection(websocket_url(hub.url), timeout=10) for c in (1, 2)}
    replies = {1: [], 2: []}
    for r in child_frames():
        clock["t"] = r["t"]  # the hub's clock at the time of the recording (timestamp window)
        ws = sockets[r["conn"]]
        ws.send(r["frame"])
        frame = json.loads(r["frame"])
        expected = 2 if frame["message"].get("command") == "register_child_node" and r["conn"] == 1 else 1
        for _ in range(expected):
            replies[r["conn"]].append(json.loads(ws.recv()))
    return hub, sockets, replies


def test_recorded_child_frames_are_accepted(lt, tmp_path):
    hub, sockets, replies = replay(lt, tmp_path)
    for conn in (1, 2):
        assert not any("error" in r for r in replies[conn]), replies[conn]
    # The child hub gets set_top_hub_url first, then confirm_registration; the share only the latter.
    assert replies[1][0] == {"command": "set_top_hub_url", "top_hub_url": "http://127.0.0.1:33699"}
    assert replies[1][1]["command"] == "confirm_registration"
    assert replies[2][0]["command"] == "confirm_registration"
    assert replies[2][0]["info"]["node_id"] == IDS["hub"] and "kbtools_tunnel" not in replies[2][0]
    assert all(r == {"message": "ok"} for r in replies[2][1:])

    recorded = http()["http"]
    ours = requests.get(f"{hub.url}/{IDS['hub']}/api/nodeinfo", timeout=10).json()
    theirs = recorded["nodeinfo_hub"]
    assert ours["info"] == theirs["info"]
    assert ours["child_hubs"] == theirs["child_hubs"] and ours["child_leaf_nodes"] == theirs["child_leaf_nodes"]
    # The replayed child hub cannot answer live find queries: let it go before asking.
    sockets[1].close()
    hub.wait(lambda: not hub.hub.registry.child_hubs)
    # Full data then three deltas (added, renamed by a text patch, deleted) give the recorded find.
    sha1_one = recorded["find_one"]["results"][0]
    find = requests.get(f"{hub.url}/find/{recorded['prv']['original_checksum']}/one.txt", timeout=10).json()
    assert find == recorded["find_one"] and sha1_one["path"] == "one.txt"
    scoped = requests.get(f"{hub.url}/{IDS['share']}/api/find/{recorded['prv']['original_checksum']}/",
                          timeout=10).json()
    assert scoped == recorded["find_one"]
    leaf = hub.hub.registry.leaves[IDS["share"]].node_data["files_by_sha1"]
    assert "1e7720a3460b8a84ac4ba27880d64526a3872f1c" not in leaf  # three.txt, added then deleted
    assert any(v["path"].endswith("with_a_rather_longer_file_name.txt") for v in leaf.values())
    for ws in sockets.values():
        ws.close()


def test_recorded_frames_are_refused_outside_the_timestamp_window(lt, tmp_path):
    first = child_frames(2)[0]
    hub = HubNode(lt, tmp_path / "hub", copy_from=VECTORS / "nodes" / "hub",
                  clock=lambda: first["t"] + 3600)
    ws = websocket.create_connection(websocket_url(hub.url), timeout=10)
    ws.send(first["frame"])
    assert "Stale message" in json.loads(ws.recv())["error"]
    ws.close()
