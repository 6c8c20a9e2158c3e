"""A real kb-hub and kb-host on 127.0.0.1 over a small study, for the web page tests and screenshots."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import requests

from kbtools.formats.sample import write_sample_dataset
from kbtools.node.config import read_node_id
from tests.client.nodes import PASSCODE, Node, free_port, write_kbnode

MANY_FILES = 10_000
ODD_NAME = "read me #1? ü.txt"   # needs percent-encoding in a URL path and in a query string


@dataclass
class Network:
    hub_url: str          # http://127.0.0.1:PORT (no trailing slash)
    hub_id: str
    share_id: str
    share_dir: Path
    hub_name: str = "webhub"
    share_name: str = "webshare"

    def api(self, path: str) -> Any:
        response = requests.get(f"{self.hub_url}/{path}", timeout=10)
        response.raise_for_status()
        return response.json()


def build_share(root: Path) -> Path:
    """The shared directory: a README, one dataset, an awkwardly named file, 10,000 files, a hidden file."""
    share = root / "study"
    write_sample_dataset(share / "dataset1", channels=4, samples=30000, samplerate=30000)
    (share / "README.md").write_text("# Sample study\n\ndataset1: 4 channels, 1 s at 30 kHz.\n")
    (share / "notes").mkdir()
    (share / "notes" / ODD_NAME).write_text("names with #, ? and ü still download\n", encoding="utf-8")
    many = share / "many"
    many.mkdir()
    for i in range(MANY_FILES):
        (many / f"file{i:05d}.txt").write_text(f"{i}\n")
    (share / ".hidden").write_text("never listed\n")
    return share


def wait_until_indexed(net: Network, deadline: float) -> None:
    """Until the hub lists the share and every file the tests open has its SHA-1."""
    while True:
        try:
            listed = net.api(f"{net.hub_id}/api/nodeinfo").get("child_leaf_nodes", {})
            if net.share_id in listed:
                top = net.api(f"{net.share_id}/api/readdir/")["files"]
                dataset = net.api(f"{net.share_id}/api/readdir/dataset1")["files"]
                many = net.api(f"{net.share_id}/api/readdir/many")["files"]
                notes = net.api(f"{net.share_id}/api/readdir/notes")["files"]
                if all("prv" in f for f in top + dataset + notes) and len(many) == MANY_FILES \
                        and all("prv" in f for f in many):
                    return
        except (requests.RequestException, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the share did not show up, indexed, on the hub in time")
        time.sleep(0.2)


OWNER = "Ada Lovelace"
SHARE_DESCRIPTION = "Sample study: one 4-channel tetrode recording"
COMMON = {"scientific_research": "yes", "owner": OWNER, "owner_email": "ada@example.org"}


@contextlib.contextmanager
def running_network(root: Path, timeout: float = 120) -> Iterator[Network]:
    """A hub and a share under it (kb-hub and kb-host processes) on free loopback ports; both stopped on exit."""
    hub_dir = root / "hub"
    hub_dir.mkdir()
    hub_port, share_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    write_kbnode(hub_dir, {**COMMON, "name": "webhub", "node_type": "hub",
                           "description": "Hub of the electrophysiology lab",
                           "listen_port": str(hub_port), "listen_url": hub_url,
                           "parent_hub_url": ".", "passcode": PASSCODE})
    share_dir = build_share(root)
    write_kbnode(share_dir, {**COMMON, "name": "webshare", "node_type": "leaf", "confirm_share": "yes",
                             "description": SHARE_DESCRIPTION,
                             "listen_url": f"http://127.0.0.1:{share_port}", "parent_hub_url": hub_url})
    hub = Node("kb-hub", hub_dir, root, ("--bind", "127.0.0.1"))
    share = Node("kb-host", share_dir, root, ("--bind", "127.0.0.1"))
    try:
        hub.start(timeout)
        share.start(timeout)
        net = Network(hub_url=hub_url,
                      hub_id=hub.info.get("node_id") or read_node_id(hub_dir) or "",
                      share_id=share.info.get("node_id") or read_node_id(share_dir) or "",
                      share_dir=share_dir)
        wait_until_indexed(net, time.monotonic() + timeout)
        yield net
    finally:
        share.stop()
        hub.stop()


def page_url(net: Network, **query: str) -> str:
    """The page's URL on the hub with a query string (values percent-encoded)."""
    text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"{net.hub_url}/" + (f"?{text}" if text else "")
