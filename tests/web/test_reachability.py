"""The hub view marks each child the hub reached directly ("direct") or not ("via hub only"):
Chromium against a real kb-hub with two kb-host shares on loopback."""
from __future__ import annotations

from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.netfixtures import Network


@pytest.fixture(scope="module")
def shares(tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    """(hub URL, id of a share the hub reaches, id of one it does not: it listens on 127.0.0.2)."""
    with Network(tmp_path_factory.mktemp("webreach")) as net:
        hub = net.hub("reachhub", passcode="pass")
        direct = net.share("near", parent=hub, passcode="pass", files={"a.txt": b"a\n"})
        far = net.share("far", parent=hub, passcode="pass", files={"b.txt": b"b\n"},
                        args=("--bind", "127.0.0.2"))
        assert (direct.ready["reachable"], far.ready["reachable"]) == (True, False)
        yield hub.url, direct.node_id, far.node_id


def test_the_hub_view_shows_which_shares_clients_reach_directly(page, shares):
    hub_url, direct, far = shares
    page.goto(hub_url + "/")
    near_row = page.locator(f'tr[data-node-id="{direct}"]')
    far_row = page.locator(f'tr[data-node-id="{far}"]')
    expect(near_row.locator("td.status .state")).to_have_text("connected")
    expect(near_row.locator("td.status .reach")).to_have_text("direct")
    expect(far_row.locator("td.status .reach")).to_have_text("via hub only")
    assert "through the hub" in far_row.locator("td.status .reach").get_attribute("title")
