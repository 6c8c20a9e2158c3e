"""Fixtures of the web page tests: Debian's Chromium driven by Playwright, a hub and a share on loopback."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.web.chromium import ChromiumMissing, launch_chromium
from tests.web.network import Network, running_network


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is open,
# and tests of other modules that run later in the same worker call asyncio.run().
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright)
        except ChromiumMissing as exc:
            pytest.fail(str(exc))
        yield chromium
        chromium.close()


class ConsoleLog:
    """Console errors and uncaught exceptions of a page; the tests end with none."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        """Accept console errors containing ``text`` (a request the test expects to fail)."""
        self.allowed.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    tab.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert console.unexpected() == []


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("web")) as net:
        yield net
