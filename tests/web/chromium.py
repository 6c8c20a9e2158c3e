"""Debian's Chromium for Playwright: never a browser downloaded by Playwright itself."""
from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a quiet headless run that contacts nothing but the pages it is sent to.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


class ChromiumMissing(RuntimeError):
    pass


def launch_chromium(playwright: Any) -> Any:
    """Start headless chromium from /usr/bin (installed by `make test-deps`)."""
    if not CHROMIUM.exists():
        raise ChromiumMissing(f"{CHROMIUM} is missing: run `make test-deps` (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
