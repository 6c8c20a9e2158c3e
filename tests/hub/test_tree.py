"""A tree of hubs on loopback: a top hub, a child hub with its own parent link, a share below it."""
from __future__ import annotations

import hashlib

import pytest
import requests

from kbtools.protocol.hubconn import HubLimits
from tests.hub.children import FileChild, HubNode, sha1_of, write_random


@pytest.fixture(params=[(True, True), (False, False)], ids=["fast", "compatible"])
def tree(request, lt, tmp_path):
    hub_fast, share_fast = request.param
    top = HubNode(lt, tmp_path / "top", name="top", passcode="toppass",
                  limits=HubLimits(allow_fast_path=hub_fast))
    mid = HubNode(lt, tmp_path / "mid", name="mid", passcode="midpass", parent=top, parent_passcode="toppass",
                  limits=HubLimits(allow_fast_path=share_fast))
    mid.wait(lambda: any(e["event"] == "parent_connected" for e in mid.events))
    files = tmp_path / "files"
    big = write_random(files / "data" / "raw.mda", 2_500_000)
    write_random(files / "small.txt", 100)
    share = FileChild(lt, tmp_path / "share", files, mid.url, passcode="midpass", fast=share_fast).connect()
    top.wait(lambda: share.node_id in top.hub.node_data()["descendant_nodes"])
    return top, mid, share, big


def test_find_from_the_top_lists_every_url_of_spec_4_4(tree):
    top, mid, share, big = tree
    sha1 = sha1_of(big)
    answer = requests.get(f"{top.url}/find/{sha1}/raw.mda", timeout=10).json()
    suffix = f"/{share.node_id}/download/data/raw.mda"
    assert answer["found"] is True
    assert answer["urls"] == [share.config["listen_url"] + suffix, mid.url + suffix, top.url + suffix]
    assert answer["results"] == [{"kbshare_id": share.node_id, "size": 2_500_000, "path": "data/raw.mda"}]
    # Share-scoped find works at any ancestor, not only the direct parent (spec §9.2 fixed).
    scoped = requests.get(f"{top.url}/{share.node_id}/api/find/{sha1}/", timeout=10).json()
    assert scoped == answer
    assert requests.get(f"{mid.url}/{share.node_id}/api/find/{sha1}/", timeout=10).json()["found"] is True
    # How an original top hub forwards a scoped find to its child hub: `<id>/find/<sha1>/`.
    assert requests.get(f"{mid.url}/{share.node_id}/find/{sha1}/", timeout=10).json()["found"] is True
    assert requests.get(f"{top.url}/{share.node_id.upper()}/find/{sha1}/raw.mda", timeout=10).json() == answer
    missing = requests.get(f"{top.url}/find/{'0' * 40}/", timeout=10).json()
    assert missing == {"success": True, "found": False}
    # A non-root hub points at the top hub when it finds nothing (set_top_hub_url was passed down).
    assert requests.get(f"{mid.url}/find/{'0' * 40}/", timeout=10).json()["alt_hub_url"] == top.url


def test_download_through_every_path(tree):
    top, mid, share, big = tree
    data = big.read_bytes()
    for hub in (top, mid):
        url = f"{hub.url}/{share.node_id}/download/data/raw.mda"
        r = requests.get(url, timeout=30)
        assert r.status_code == 200 and hashlib.sha1(r.content).digest() == hashlib.sha1(data).digest()
        r = requests.get(url, headers={"Range": "bytes=5-1000004"}, timeout=30)
        assert r.status_code == 206 and r.content == data[5:1000005]
        r = requests.head(url, timeout=30)
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    r = requests.get(f"{top.url}/{share.node_id}/download/nothing.bin", timeout=30)
    assert r.status_code == 404
    r = requests.get(f"{top.url}/{share.node_id.upper()}/download/data/raw.mda", timeout=30)
    assert r.status_code == 200 and r.content == data  # the id in either case, as at the share


def test_nodeinfo_of_every_node_through_the_top(tree):
    top, mid, share, big = tree
    info = requests.get(f"{top.url}/{top.node_id}/api/nodeinfo", timeout=10).json()
    assert set(info) == {"success", "info", "child_hubs", "child_leaf_nodes", "metrics"}
    assert list(info["info"]) == ["node_id", "node_type", "name", "description", "owner", "owner_email",
                                  "listen_url", "public_key"]
    entry = info["child_hubs"][mid.node_id]  # kbtools_reachable too, once the hub probed it
    assert list(info["child_hubs"]) == [mid.node_id] and list(entry)[:2] == ["name", "listen_url"]
    assert (entry["name"], entry["listen_url"]) == ("mid", mid.url)
    mid_info = requests.get(f"{top.url}/{mid.node_id}/api/nodeinfo", timeout=10).json()
    assert mid_info["info"]["node_id"] == mid.node_id
    assert mid_info["parent_hub_info"]["node_id"] == top.node_id
    entry = mid_info["child_leaf_nodes"][share.node_id]
    assert list(mid_info["child_leaf_nodes"]) == [share.node_id]
    assert (entry["name"], entry["listen_url"]) == ("share", share.config["listen_url"])


def test_a_child_hub_that_goes_away_leaves_the_top_tree(tree, lt):
    top, mid, share, big = tree
    mid.stop()
    top.wait(lambda: not top.hub.registry.child_hubs)
    r = requests.get(f"{top.url}/{share.node_id}/download/data/raw.mda", timeout=10)
    assert r.status_code == 500 and "Unable to locate" in r.json()["error"]
    assert requests.get(f"{top.url}/find/{sha1_of(big)}/", timeout=10).json()["found"] is False


def test_a_restarted_parent_gets_the_child_hub_back(lt, tmp_path):
    top = HubNode(lt, tmp_path / "top", name="top")
    port = int(top.url.rsplit(":", 1)[1])
    mid = HubNode(lt, tmp_path / "mid", name="mid", parent=top, parent_passcode="hubpass")
    top.wait(lambda: mid.node_id in top.hub.registry.child_hubs)
    top.stop()
    top2 = HubNode(lt, tmp_path / "top", name="top", port=port)
    assert top2.node_id == top.node_id
    top2.wait(lambda: mid.node_id in top2.hub.registry.child_hubs)
