"""Screenshots of the page's three views (hub, share, dataset) for the docs, from a real hub and share.

    .venv/bin/python -m tests.web.screenshots [OUT_DIR]     (default: docs/screenshots)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.web.chromium import launch_chromium
from tests.web.network import page_url, running_network

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[0]) if argv else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbtools-web-") as tmp, running_network(Path(tmp)) as net, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1100, "height": 700}, device_scale_factor=1)
        views = {
            "hub": (page_url(net), f'tr[data-node-id="{net.share_id}"] td.owner a'),
            "share": (page_url(net, share=net.share_id), "table.listing"),
            "dataset": (page_url(net, share=net.share_id, path="dataset1"), "canvas.traces-canvas"),
        }
        for name, (url, ready) in views.items():
            page.goto(url)
            page.wait_for_selector(ready)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(out / f"{name}.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
