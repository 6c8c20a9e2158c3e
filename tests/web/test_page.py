"""The hub's web page in Debian's Chromium, against a real kb-hub and kb-host on loopback.

Every test also checks (in the `page` fixture) that the page logged no console error and threw
no uncaught exception.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess

from playwright.sync_api import expect

from kbtools.formats.sample import write_sample_dataset
from tests.conftest import ROOT
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
    expect(row.locator("td.status .state")).to_have_text("connected")

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
    assert lines[0] == f"kb-get --hub {network.hub_url} kbucket://{network.share_id}/dataset1 -o dataset1"
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
    # the top bar names the hub, not "kbtools kbtools"
    expect(page.locator("#crumbs li")).to_have_text([network.hub_name, "0123456789ab"])
    assert page.locator("header.top").inner_text().split() == ["kbtools", network.hub_name, "0123456789ab"]
    assert network.hub_name in page.title()
    page.locator("#crumbs").get_by_role("link", name=network.hub_name).click()
    expect(page.locator("h1")).to_contain_text(network.hub_name)
    page.goto(page_url(network, node_id="0123456789ab"))
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


def test_the_kb_get_line_works_as_pasted_on_another_machine(page, network, tmp_path):
    # the line names the hub, so no KBUCKET_URL is needed where it is pasted
    page.goto(page_url(network, share=network.share_id, path="dataset1"))
    line = page.locator("section.dataset .usage .copy-text").first
    expect(line).to_contain_text("kb-get --hub")
    env = {k: v for k, v in os.environ.items() if k != "KBUCKET_URL"}
    env["PATH"] = f"{ROOT / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["KBUCKET_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(["sh", "-c", line.inner_text()], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    source = network.share_dir / "dataset1"
    for name in ("raw.mda", "geom.csv", "params.json"):
        assert (tmp_path / "dataset1" / name).read_bytes() == (source / name).read_bytes()


def test_a_truncated_raw_mda_still_shows_its_channels_and_every_finding(page, network):
    # the header says 32 channels; the data is cut short; geom.csv has 30 rows
    folder = network.share_dir / "notes" / "cut32"
    write_sample_dataset(folder, channels=32, samples=1000)
    raw = folder / "raw.mda"
    os.truncate(raw, raw.stat().st_size - 100)
    rows = (folder / "geom.csv").read_text().splitlines()
    (folder / "geom.csv").write_text("\n".join(rows[:30]) + "\n")
    page.goto(page_url(network, share=network.share_id, path="notes/cut32"))
    dataset = page.locator("section.dataset")
    expect(dataset.locator(".verdict")).to_contain_text("Not valid")
    expect(dataset.locator(".verdict")).to_contain_text("2 errors")
    terms = [t.lower() for t in dataset.locator(".meta dt").all_inner_texts()]
    meta = dict(zip(terms, dataset.locator(".meta dd").all_inner_texts()))
    assert meta["channels × samples"] == "32 × 1,000"
    assert [c.inner_text() for c in dataset.locator(".finding code").all()] == ["R7", "G6"]
    expect(dataset.locator(".finding").nth(1)).to_contain_text("geom.csv has 30 rows but raw.mda has 32 channels")
    expect(dataset.locator("svg.probe-drawing circle")).to_have_count(30)
