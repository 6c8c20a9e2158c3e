"""The dataset view's traces in Debian's Chromium, read by Range through a real kb-hub from a kb-host.

The drawn samples are read back from the page's own data (``window.kbTraces``) and compared with
the file; the requests the page made are recorded to count the bytes of each view.

    .venv/bin/python -m tests.web.test_traces [OUT_DIR]   writes traces.png (default: docs/screenshots)
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from kbtools.formats.mda import read_mda, write_mda
from kbtools.formats.sample import write_sample_dataset
from tests.netfixtures import Network as Nodes
from tests.web.network import page_url

ROOT = Path(__file__).resolve().parents[2]
DTYPES = ["uint8", "uint16", "int32", "uint32", "float32", "float64"]
MAX_VIEW_BYTES = 4 * 1024 * 1024


class Study:
    def __init__(self, hub_url: str, share_id: str, root: Path) -> None:
        self.hub_url, self.share_id, self.root = hub_url, share_id, root

    def traces(self, dataset: str) -> np.ndarray:
        return np.asarray(read_mda(self.root / dataset / "raw.mda"))


def build(root: Path) -> None:
    write_sample_dataset(root / "probe64", channels=64, samples=60000, samplerate=30000, seed=4)
    write_sample_dataset(root / "probe100", channels=100, samples=30000, samplerate=30000, seed=5)
    for dtype in DTYPES:
        rng = np.random.default_rng(7)
        if np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=(3, 500), dtype=dtype, endpoint=True)
        else:
            data = (rng.standard_normal((3, 500)) * 50).astype(dtype)
        folder = root / dtype
        folder.mkdir(parents=True)
        write_mda(folder / "raw.mda", data, use_64bit_dims=dtype == "float64")
        (folder / "geom.csv").write_text("0,0\n0,20\n0,40\n")
        (folder / "params.json").write_text(json.dumps({"samplerate": 1000, "spike_sign": 1}))


@contextlib.contextmanager
def running_study(tmp: Path, timeout: float = 120) -> Iterator[Study]:
    with Nodes(tmp) as nodes:
        hub = nodes.hub("tracehub")
        build(nodes.root / "traceshare")
        share = nodes.share("traceshare", parent=hub, description="Recordings to draw")
        deadline = time.monotonic() + timeout
        folders = ["probe64", "probe100", *DTYPES]
        while True:  # until every raw.mda of the share is indexed
            try:
                if all("prv" in f for d in folders
                       for f in requests.get(f"{hub.url}/{share.node_id}/api/readdir/{d}", timeout=5).json()["files"]):
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the share was not indexed in time")
            time.sleep(0.2)
        yield Study(hub.url, share.node_id, nodes.root / "traceshare")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Iterator[Study]:
    with running_study(tmp_path_factory.mktemp("traces")) as net:
        yield net


def open_traces(page, study: Study, dataset: str, ranges: list | None = None):
    """The dataset view of ``dataset``, once its first window is drawn; ``ranges`` collects the Range
    headers of the page's requests for raw.mda."""
    if ranges is not None:
        page.on("request", lambda r: "/raw.mda" in r.url and ranges.append(r.headers.get("range")))
    page.goto(page_url(study, share=study.share_id, path=dataset))
    figure = page.locator("figure.traces")
    expect(figure).to_have_attribute("data-ready", "1")
    return figure


# What the page drew, read from its data: every sample of a short window; of a long one, every
# STRIDE-th sample plus, per channel, the sum of the samples and of the samples times their index
# (summed in order, as numpy's accumulate does), so that any other sample value shows too.
SHOWN = """(stride) => {
    const t = window.kbTraces;
    const step = t.length <= 4000 ? 1 : stride;
    const values = t.values.map((v) => Array.from(v).filter((_, i) => i % step === 0));
    const sums = t.values.map((v) => { let s = 0; for (let i = 0; i < v.length; i++) s += v[i]; return s; });
    const moments = t.values.map((v) => { let s = 0; for (let i = 0; i < v.length; i++) s += i * v[i]; return s; });
    return {...t, values, sums, moments, step};
}"""


def shown(page) -> dict:
    return page.evaluate(SHOWN, 97)


def assert_matches_file(data: dict, traces: np.ndarray) -> None:
    start, length, first, count = data["start"], data["length"], data["firstChannel"], data["channelCount"]
    expected = traces[first:first + count, start:start + length].astype(np.float64)
    assert np.array_equal(np.array(data["values"], dtype=np.float64), expected[:, ::data["step"]])
    assert data["sums"] == np.add.accumulate(expected, axis=1)[:, -1].tolist()
    moments = np.add.accumulate(expected * np.arange(length), axis=1)[:, -1]
    assert data["moments"] == moments.tolist()


def ready_after(figure, serial: int) -> None:
    expect(figure).to_have_attribute("data-ready", str(serial))


def test_a_window_of_64_channels_matches_the_file_and_is_one_range_request(page, study):
    ranges: list = []
    figure = open_traces(page, study, "probe64", ranges)
    data = shown(page)
    assert (data["dtype"], data["channels"], data["samples"], data["samplerate"]) == ("int16", 64, 60000, 30000)
    assert (data["start"], data["length"], data["firstChannel"], data["channelCount"]) == (0, 30000, 0, 64)
    assert_matches_file(data, study.traces("probe64"))
    # The header (64 bytes), then the window: never the whole file.
    assert ranges == ["bytes=0-63", f"bytes=20-{20 + 30000 * 64 * 2 - 1}"]
    expect(figure.locator(".traces-where")).to_have_text(
        "0 s – 1 s of 2 s · channels 1–64 of 64 · 3.7 MiB read")
    expect(figure.locator("figcaption")).to_contain_text("spike_sign −1: spikes point down")
    canvas = figure.locator("canvas.traces-canvas")
    assert canvas.bounding_box()["height"] > 500
    expect(canvas).to_have_attribute("aria-label", "Traces of channels 1 to 64, 0 s to 1 s")
    # Something is drawn: the canvas is not blank.
    inked = page.evaluate("""() => {
        const c = document.querySelector('canvas.traces-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert inked > 10000
    expect(page.locator(".usage .copy-text").nth(2)).to_contain_text(
        f'read_recording("kbucket://{study.share_id}/probe64", hub="{study.hub_url}")')


def test_moving_and_zooming(page, study):
    traces = study.traces("probe64")
    figure = open_traces(page, study, "probe64")
    buttons = figure.locator(".traces-controls")
    expect(buttons.get_by_role("button", name="◀ Earlier")).to_be_disabled()
    buttons.get_by_role("button", name="Later ▶").click()
    ready_after(figure, 2)
    data = shown(page)
    assert (data["start"], data["length"]) == (15000, 30000)
    assert_matches_file(data, traces)
    buttons.get_by_role("button", name="Zoom in").click()
    ready_after(figure, 3)
    data = shown(page)
    assert (data["start"], data["length"]) == (22500, 15000)
    assert_matches_file(data, traces)
    expect(figure.locator(".traces-where")).to_contain_text("0.75 s – 1.25 s of 2 s")
    serial = 3
    while buttons.get_by_role("button", name="Zoom in").is_enabled():  # to single samples, drawn as a line
        buttons.get_by_role("button", name="Zoom in").click()
        serial += 1
        ready_after(figure, serial)
    assert serial == 13  # 15,000 samples halved ten times: 16, the deepest zoom
    data = shown(page)
    assert data["length"] == 16
    assert_matches_file(data, traces)
    buttons.get_by_role("button", name="Zoom out").click()
    serial += 1
    ready_after(figure, serial)
    assert shown(page)["length"] == 32
    for _ in range(12):
        buttons.get_by_role("button", name="Later ▶").click()
        serial += 1
        ready_after(figure, serial)
    data = shown(page)
    assert data["start"] + data["length"] <= 60000
    assert_matches_file(data, traces)


def test_a_wide_probe_pages_through_its_channels_within_the_byte_budget(page, study):
    traces = study.traces("probe100")
    ranges: list = []
    figure = open_traces(page, study, "probe100", ranges)
    data = shown(page)
    # 1 s of 100 channels of int16 is 6 MB: the window shrinks to the 4 MiB budget.
    assert (data["firstChannel"], data["channelCount"], data["length"]) == (0, 64, MAX_VIEW_BYTES // 200)
    assert_matches_file(data, traces)
    figure.get_by_role("button", name="Channels ▶").click()
    ready_after(figure, 2)
    data = shown(page)
    assert (data["firstChannel"], data["channelCount"]) == (64, 36)
    assert_matches_file(data, traces)
    expect(figure.locator(".traces-where")).to_contain_text("channels 65–100 of 100")
    expect(figure.get_by_role("button", name="Channels ▶")).to_be_disabled()
    expect(figure.get_by_role("button", name="Zoom out")).to_be_disabled()
    figure.get_by_role("button", name="Later ▶").click()
    ready_after(figure, 3)
    data = shown(page)
    assert (data["start"], data["firstChannel"]) == (30000 - MAX_VIEW_BYTES // 200, 64)  # up to the end
    assert_matches_file(data, traces)
    assert len(ranges) == 4
    for header in ranges[1:]:
        first, last = map(int, header.removeprefix("bytes=").split("-"))
        assert last - first + 1 <= MAX_VIEW_BYTES


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_mda_type(page, study, dtype):
    figure = open_traces(page, study, dtype)
    data = shown(page)
    assert data["dtype"] == ("byte" if dtype == "uint8" else dtype)
    assert (data["length"], data["channelCount"], data["samplerate"]) == (500, 3, 1000)
    assert_matches_file(data, study.traces(dtype))
    expect(figure.locator("figcaption")).to_contain_text("spike_sign +1: spikes point up")


def main(argv: list[str]) -> int:
    """docs/screenshots/traces.png: the dataset view of a 64-channel recording, traces drawn."""
    from playwright.sync_api import sync_playwright

    from tests.web.chromium import launch_chromium

    out = Path(argv[0]) if argv else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbtools-traces-") as tmp, running_study(Path(tmp)) as net, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1100, "height": 700}, device_scale_factor=1)
        figure = open_traces(page, net, "probe64")
        figure.get_by_role("button", name="Zoom in").click()
        ready_after(figure, 2)
        figure.get_by_role("button", name="Zoom in").click()
        ready_after(figure, 3)
        figure.screenshot(path=str(out / "traces.png"))
        print(out / "traces.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
