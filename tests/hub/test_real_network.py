"""kb-hub and kb-host processes on loopback: a top hub, a child hub, a share under each; find from the
top, downloads through every path (full and by Range, byte-identical), and a hub restart."""
from __future__ import annotations

import hashlib
import os
import time
from urllib.parse import quote

import requests

from tests.netfixtures import Network

ODD = "sub dir/odd #1? ü.bin"


def wait_found(hub_url: str, sha1s: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for sha1 in sha1s:
        while not requests.get(f"{hub_url}/find/{sha1}/", timeout=10).json().get("found"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sha1} never found at {hub_url}")
            time.sleep(0.1)


def test_tree_of_real_processes(tmp_path):
    a_data, b_data = os.urandom(1_500_000), os.urandom(700_001)
    a_sha1, b_sha1 = hashlib.sha1(a_data).hexdigest(), hashlib.sha1(b_data).hexdigest()
    with Network(tmp_path) as net:
        top = net.hub("top", passcode="tp")
        mid = net.hub("mid", passcode="cp", parent=top, parent_passcode="tp")
        share_a = net.share("a", top, passcode="tp", files={"data/raw.mda": a_data})
        # Share b speaks only the compatible tunnel; the hubs between them use the fast one.
        share_b = net.share("b", mid, passcode="cp", files={ODD: b_data}, args=("--no-fast-path",))
        wait_found(top.url, [a_sha1, b_sha1])

        find_b = requests.get(f"{top.url}/find/{b_sha1}/", timeout=10).json()
        suffix = f"/{share_b.node_id}/download/{ODD}"
        assert find_b["urls"] == [share_b.ready["listen_url"] + suffix, mid.url + suffix, top.url + suffix]
        assert find_b["results"][0]["size"] == len(b_data)
        scoped = requests.get(f"{top.url}/{share_b.node_id}/api/find/{b_sha1}/", timeout=10).json()
        assert scoped == find_b

        cases = [(share_a, "data/raw.mda", a_data, [top.url, share_a.ready["listen_url"]]),
                 (share_b, ODD, b_data, [top.url, mid.url, share_b.ready["listen_url"]])]
        for share, rel, data, bases in cases:
            for base in bases:
                url = f"{base}/{share.node_id}/download/{quote(rel)}"
                r = requests.get(url, timeout=30)
                assert r.status_code == 200 and r.content == data, url
                r = requests.get(url, headers={"Range": "bytes=1000-300999"}, timeout=30)
                assert r.status_code == 206 and r.content == data[1000:301000], url

        # A hub restarting gets every share and child hub back (they reconnect to the same port).
        top.stop()
        top.start()
        wait_found(top.url, [a_sha1, b_sha1], timeout=90)
        # find asks the child hub live; routing needs its subtree report, which follows its registration.
        deadline = time.monotonic() + 30
        while requests.get(f"{top.url}/{share_b.node_id}/api/nodeinfo", timeout=10).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = requests.get(f"{top.url}/{share_b.node_id}/download/{quote(ODD)}", timeout=30)
        assert r.content == b_data
        connected = {e["node_id"]: e["fast_path"] for e in top.events() if e["event"] == "child_connected"}
        assert connected == {share_a.node_id: True, mid.node_id: True}
        assert [e["fast_path"] for e in mid.events() if e["event"] == "child_connected"] == [False]
