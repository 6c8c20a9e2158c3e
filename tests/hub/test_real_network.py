"""kb-hub and kb-host processes on loopback: a top hub, a child hub, a share under each; find from the
top, downloads through every path (full and by Range, byte-identical), and a hub restart."""
from __future__ import annotations

import hashlib
import os
import time
from urllib.parse import quote

import pytest
import requests

from tests.conftest import validate
from tests.netfixtures import Network, wait_found

ODD = "sub dir/odd #1? ü.bin"


def wait_routed(hub_url: str, node_id: str, timeout: float = 60) -> None:
    """Until the hub reaches the node (a child hub reports its subtree a moment after registering)."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{hub_url}/{node_id}/api/nodeinfo", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node_id} never reachable at {hub_url}")
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
        wait_found(top.url, a_sha1, b_sha1)

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
        wait_found(top.url, a_sha1, b_sha1, timeout=90)
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


@pytest.mark.parametrize("via_child_hub", [False, True], ids=["direct", "via-child-hub"])
def test_a_download_left_by_its_client_is_cancelled_at_the_share(tmp_path, via_child_hub):
    size = 256 * 1024 * 1024
    big = tmp_path / "s" / "big.bin"
    big.parent.mkdir(parents=True)
    with big.open("wb") as f:  # sparse: nothing to write, every byte must still be read and sent
        f.truncate(size)
    with Network(tmp_path) as net:
        top = net.hub("top", passcode="tp")
        parent = net.hub("mid", passcode="cp", parent=top, parent_passcode="tp") if via_child_hub else top
        share = net.share("s", parent, passcode="cp" if via_child_hub else "tp")
        url = f"{top.url}/{share.node_id}/download/big.bin"
        wait_routed(top.url, share.node_id)
        with requests.get(url, stream=True, timeout=30) as r:
            assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
            assert len(next(r.iter_content(1024 * 1024))) > 0
        # The client is gone: the share is told to stop, long before the end of the file.
        cancelled = share.wait_event(lambda e: e["event"] == "request_cancelled", timeout=60)
        assert 0 < cancelled["sent_bytes"] < size // 4
        validate(cancelled, "kb-host-event")
        for hub in ([top, parent] if via_child_hub else [top]):
            metrics = requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).json()["metrics"]
            assert metrics["num_tunnel_cancels"] == 1
        share_info = requests.get(f"{share.url}/{share.node_id}/api/nodeinfo", timeout=10).json()
        assert share_info["metrics"]["num_tunnel_cancels"] == 1
        # The link carries the next download.
        r = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=30)
        assert r.status_code == 206 and r.content == b"\0" * 1000
