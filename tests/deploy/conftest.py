"""Fixtures of the deployment tests: a throwaway CA, and certificates made for loopback."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.pki import PUBLIC_NAME, TestCA
from tests.netfixtures import network  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for the public name, localhost and 127.0.0.1, and a second
    (untrusted) CA: {"ca", "cert", "key", "other_ca"}."""
    root = tmp_path_factory.mktemp("pki")
    ca = TestCA(root / "ca")
    cert, key = ca.issue("hub", [PUBLIC_NAME, "localhost", "127.0.0.1"])
    other = TestCA(root / "other", name="another test CA")
    return {"ca": ca.cert_file, "cert": cert, "key": key, "other_ca": other.cert_file}


@pytest.fixture(autouse=True)
def _no_ca_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose the trusted CAs themselves."""
    for name in ("KBUCKET_CA_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    from kbtools.client import tls

    tls.configure(None)


@pytest.fixture
def lt():
    """An asyncio loop in a thread for in-process hubs (tests/hub/children.py), closed at the end."""
    from tests.hub.children import LoopThread

    loop = LoopThread()
    yield loop
    loop.close()
