"""The hub's web page in Debian's Chromium, against a real kb-hub and kb-host on loopback.

Every test also checks (in the `page` fixture) that the page logged no console error and threw
no uncaught exception.
"""
from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from tests.web.network import MANY_FILES, ODD_NAME, OWNER, SHARE_DESCRIPTION, page_url


def sha1_of(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def downloaded_bytes(page, link) -> bytes:
    with page.expect_download() as download:
        link.click()
    return open(download.value.path(), "rb").read()


def test_hub_share_dataset_and_download(page, network):
    page.goto(page_url(network))                     # no node in the link: the serving hub itself
    expect(page.locator("h1")).to_contain_text(network.hub_name)
    shares = page.locator("section.children").first
    row = shares.locator(f'tr[data-node-id="{network.share_id}"]')
    expect(row.locator("td.description")).to_have_text(SHARE_DESCRIPTION)
    expect(row.locator("td.owner")).to_contain_text(OWNER)
    expect(row.locator("td.status")).to_have_text("connected")

    row.get_by_role("link", name=network.share_name, exact=True).click()
    expect(page).to_have_url(re.compile(rf"\?share={network.share_id}$"))
    expect(page.locator("h1")).to_contain_text(network.share_name)
    expect(page.locator(".copy-text").first).to_have_text(f"kbucket://{network.share_id}/")
    names = page.locator("table.listing td.name").all_inner_texts()
    assert names == ["dataset1/", "many/", "notes/", "README.md"]  # folders first; no hidden file

    page.get_by_role("link", name="dataset1/", exact=True).click()
    expect(page).to_have_url(re.compile(rf"\?share={network.share_id}&path=dataset1$"))
    dataset = page.locator("section.dataset")
    expect(dataset.locator(".verdict")).to_contain_text("Valid")
    expect(dataset.locator(".verdict")).to_contain_text("0 errors, 0 warnings")
    terms = [t.lower() for t in dataset.locator(".meta dt").all_inner_texts()]
    meta = dict(zip(terms, dataset.locator(".meta dd").all_inner_texts()))
    assert {"channels × samples": "4 × 30,000", "data type": "int16", "sample rate": "30,000 Hz",
            "duration": "1 s"}.items() <= meta.items()

    probe = dataset.locator("svg.probe-drawing")
    expect(probe.locator("circle")).to_have_count(4)
    assert probe.locator("text").all_text_contents() == ["1", "2", "3", "4"]
    assert probe.bounding_box()["width"] > 50

    expect(dataset.locator("pre.json")).to_contain_text('"samplerate": 30000')
    lines = dataset.locator(".usage .copy-text").all_inner_texts()
    assert lines[0] == f"kb-get kbucket://{network.share_id}/dataset1"
    assert 'se.read_mda_recording("dataset1"' in lines[1]

    raw = network.share_dir / "dataset1" / "raw.mda"
    raw_row = page.locator("table.listing tr.file", has_text="raw.mda")
    expect(raw_row.locator("td.sha1")).to_have_text(sha1_of(raw))
    assert downloaded_bytes(page, raw_row.get_by_role("link", name="raw.mda")) == raw.read_bytes()


def test_a_share_behind_a_child_hub_is_reached_through_the_top_hub(page, network):
    page.goto(page_url(network))
    hubs = page.locator("section.children").nth(1)
    expect(hubs.locator("h2")).to_have_text("Child hubs (1)")
    expect(hubs.locator("td.description")).to_have_text("Hub of the second lab")
    hubs.get_by_role("link", name="lab2hub", exact=True).click()
    expect(page).to_have_url(re.compile(rf"\?hub={network.child_hub_id}$"))
    expect(page.locator("h1")).to_contain_text("lab2hub")
    page.get_by_role("link", name="lab2share", exact=True).click()
    expect(page.locator("h1")).to_contain_text("lab2share")
    expect(page.locator("p.description")).to_have_text("Recordings of the second lab")
    link = page.get_by_role("link", name="notes.txt", exact=True)
    assert link.get_attribute("href").startswith(network.hub_url + "/")   # through the top hub
    assert downloaded_bytes(page, link) == b"second lab\n"


def test_names_that_need_encoding_download_right(page, network):
    page.goto(page_url(network, share=network.share_id))
    page.get_by_role("link", name="notes/", exact=True).click()
    expect(page.locator("h1")).to_contain_text("notes")
    link = page.get_by_role("link", name=ODD_NAME, exact=True)
    expected = (network.share_dir / "notes" / ODD_NAME).read_bytes()
    assert downloaded_bytes(page, link) == expected
    page.get_by_role("link", name=re.compile("Up to")).click()
    expect(page).to_have_url(re.compile(rf"\?share={network.share_id}$"))


def test_a_folder_of_10000_files_is_shown_a_page_at_a_time(page, network):
    page.goto(page_url(network, share=network.share_id, path="many"))
    rows = page.locator("table.listing tbody tr")
    expect(rows).to_have_count(500)
    expect(page.locator(".count")).to_have_text(f"Showing 500 of {MANY_FILES:,} entries")
    page.get_by_role("button", name="Show 500 more").click()
    expect(rows).to_have_count(1000)
    assert rows.nth(999).locator("td.name").inner_text() == "file00999.txt"

    page.get_by_label("Filter names").fill("file09999")
    expect(rows).to_have_count(1)
    assert downloaded_bytes(page, rows.get_by_role("link")) == b"9999\n"

    page.get_by_label("Filter names").fill("")
    page.get_by_role("button", name=f"Show all {MANY_FILES:,}").click()
    expect(rows).to_have_count(MANY_FILES)
    expect(page.get_by_role("button", name=re.compile("Show"))).to_have_count(0)


def test_keyboard_alone_reaches_a_dataset(page, network):
    page.goto(page_url(network))
    expect(page.locator(f'tr[data-node-id="{network.share_id}"]')).to_be_visible()

    def tab_to(text: str) -> None:
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == text:
                # The focused link shows a visible focus ring.
                assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
                return
        raise AssertionError(f"Tab never reached {text!r}")

    tab_to(network.share_name)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text(network.share_name)
    tab_to("dataset1/")
    page.keyboard.press("Enter")
    expect(page.locator("svg.probe-drawing circle")).to_have_count(4)


def test_every_view_has_its_own_link(page, network):
    page.goto(page_url(network, node_id=network.share_id, path="dataset1"))
    expect(page.locator("svg.probe-drawing circle")).to_have_count(4)
    crumbs = page.locator("#crumbs li").all_inner_texts()
    assert crumbs == [network.hub_name, network.share_name, "dataset1"]

    page.goto(page_url(network, hub=network.hub_id))
    expect(page.locator("h1")).to_contain_text(network.hub_name)

    # Of node_id=, share= and hub=, the first present wins (as in the original page).
    page.goto(f"{network.hub_url}/?share={network.share_id}&hub={network.hub_id}")
    expect(page.locator("h1")).to_contain_text(network.share_name)


def test_a_node_that_is_not_connected_gets_a_message(page, network, console):
    console.allow("Failed to load resource")  # the hub answers the page's request with an error
    page.goto(page_url(network, node_id="0123456789ab"))
    expect(page.locator(".problem h1")).to_have_text("Cannot show node 0123456789ab")
    expect(page.locator(".problem")).to_contain_text("not connected to this hub")
    page.get_by_role("link", name="Back to this hub's page").click()
    expect(page.locator("h1")).to_contain_text(network.hub_name)


def test_a_phone_sees_the_dataset_without_scrolling_sideways(browser, network, console):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        phone.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
        phone.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
        phone.goto(page_url(network, share=network.share_id, path="dataset1"))
        expect(phone.locator("svg.probe-drawing circle")).to_have_count(4)
        expect(phone.locator("table.listing tr.file")).to_have_count(3)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert phone.locator("table.listing thead").is_hidden()   # rows are stacked on a phone
    finally:
        context.close()
    assert console.unexpected() == []
