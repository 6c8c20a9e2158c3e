"""Real kb-hub and kb-host processes on 127.0.0.1 over a small study, for the web page tests and screenshots."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import requests

from kbtools.formats.sample import write_sample_dataset
from tests.netfixtures import Network as Nodes

MANY_FILES = 10_000
ODD_NAME = "read me #1? ü.txt"   # needs percent-encoding in a URL path and in a query string
OWNER = "Ada Lovelace"
SHARE_DESCRIPTION = "Sample study: one 4-channel tetrode recording"
PASSCODE = "webpass"
PEOPLE = {"owner": OWNER, "owner_email": "ada@example.org"}


@dataclass
class Network:
    hub_url: str          # http://127.0.0.1:PORT (no trailing slash)
    hub_id: str
    share_id: str
    share_dir: Path
    child_hub_id: str
    hub_name: str = "webhub"
    share_name: str = "webshare"

    def api(self, path: str) -> Any:
        response = requests.get(f"{self.hub_url}/{path}", timeout=10)
        response.raise_for_status()
        return response.json()


def build_share(share: Path) -> Path:
    """The shared directory: a README, one dataset, an awkwardly named file, 10,000 files, a hidden file."""
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
    """Until the hubs list their shares and every file the tests open has its SHA-1."""
    while True:
        try:
            hub = net.api(f"{net.hub_id}/api/nodeinfo")
            child = net.api(f"{net.child_hub_id}/api/nodeinfo")
            if net.share_id in hub.get("child_leaf_nodes", {}) and child.get("child_leaf_nodes"):
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


@contextlib.contextmanager
def running_network(root: Path, timeout: float = 120) -> Iterator[Network]:
    """kb-hub and kb-host processes on free loopback ports, all stopped on exit::

        webhub ─┬─ webshare        (build_share: a dataset, 10,000 files, odd names)
                └─ lab2hub ── lab2share   (a child hub with a share of its own)
    """
    with Nodes(root) as nodes:
        hub = nodes.hub("webhub", passcode=PASSCODE, description="Hub of the electrophysiology lab", **PEOPLE)
        build_share(nodes.root / "webshare")
        share = nodes.share("webshare", parent=hub, passcode=PASSCODE, description=SHARE_DESCRIPTION, **PEOPLE)
        child = nodes.hub("lab2hub", parent=hub, parent_passcode=PASSCODE,
                          description="Hub of the second lab", owner="Grace Hopper",
                          owner_email="grace@example.org")
        nodes.share("lab2share", parent=child, files={"notes.txt": b"second lab\n"},
                    description="Recordings of the second lab", owner="Grace Hopper",
                    owner_email="grace@example.org")
        net = Network(hub_url=hub.url, hub_id=hub.node_id, share_id=share.node_id,
                      share_dir=nodes.root / "webshare", child_hub_id=child.node_id)
        wait_until_indexed(net, time.monotonic() + timeout)
        yield net


def page_url(net: Network, **query: str) -> str:
    """The page's URL on the hub with a query string (values percent-encoded)."""
    text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"{net.hub_url}/" + (f"?{text}" if text else "")
