"""A hub behind Debian's nginx running docs/deploy/nginx-kbucket-hub.conf, on loopback ports with a
certificate of a throwaway CA: a share connects through wss://, kb-get and curl download through
https://, Chromium shows the page, every URL the hub hands out is the public one, nginx's cache
serves a content after its share stopped, and a certificate that does not verify is refused.

The public name, hub.example.org, resolves to 127.0.0.1 only through each client's own mapping
(curl --resolve, Chromium --host-resolver-rules, a connection hook of urllib3 in this process):
never a DNS lookup.
"""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import urllib3.util.connection

from kbtools.cli.kb_get import KbGet
from tests.conftest import run_cli
from tests.deploy.nginx import Nginx, render_site
from tests.deploy.pki import PUBLIC_NAME, TestCA
from tests.netfixtures import Network, free_port

DATA = bytes(range(256)) * 8192 + b"tail"  # 2 MiB and a bit
NAME = "d/raw data.bin"


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        ca = TestCA(root / "ca")
        self.ca = ca.cert_file
        self.cert, self.key = ca.issue("hub", [PUBLIC_NAME, "localhost"])
        self.other_ca = TestCA(root / "other", name="another test CA").cert_file
        self.port, self.http_port = free_port(), free_port()
        self.public = f"https://{PUBLIC_NAME}:{self.port}"
        self.net = Network(root / "net")
        self.hub = self.net.hub("hub", args=("--public-url", self.public, "--trusted-proxy", "127.0.0.1"))
        site = render_site(port=self.port, http_port=self.http_port,
                           upstream=self.hub.url.split("//", 1)[1], cert=self.cert, key=self.key,
                           cache=root / "cache")
        self.nginx = Nginx(root / "nginx", site).start(self.port)
        self.share = self.net.share("share", parent=f"https://localhost:{self.port}",
                                    files={NAME: DATA}, start=False)
        self.share.env["KBUCKET_CA_FILE"] = str(self.ca)
        self.share.start()
        self.sha1 = hashlib.sha1(DATA).hexdigest()
        self.wait_found(True)

    def wait_found(self, found: bool) -> None:
        """Until the hub's find (asked directly, on loopback) says so: the share reports its index
        a second after it registers, and a stopped share is dropped when its socket closes."""
        deadline = time.monotonic() + 30
        while requests.get(f"{self.hub.url}/find/{self.sha1}/", timeout=10).json().get("found") != found:
            assert time.monotonic() < deadline, f"find never said found={found}"
            time.sleep(0.05)

    def close(self) -> None:
        self.net.stop_all()
        self.nginx.stop()

    def curl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "60",
                               "--resolve", f"{PUBLIC_NAME}:{self.port}:127.0.0.1", *args],
                              capture_output=True, timeout=90)


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("deploy"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture
def public_name(dep: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (and kb-get in this process) reach hub.example.org at 127.0.0.1."""
    original = urllib3.util.connection.create_connection

    def mapped(address: Any, *args: Any, **kwargs: Any) -> Any:
        host, port = address
        return original(("127.0.0.1" if host == PUBLIC_NAME else host, port), *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", mapped)
    for name in ("KBUCKET_CA_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_share_connects_through_wss_and_the_hub_hands_out_public_urls(dep, public_name):
    assert dep.share.ready["event"] == "connected"
    assert dep.share.ready["parent_hub_id"] == dep.hub.node_id
    assert dep.hub.ready["listen_url"] == dep.public
    assert dep.hub.ready["browse_url"] == f"{dep.public}/?node_id={dep.hub.node_id}"
    answer = requests.get(f"{dep.public}/find/{dep.sha1}/", verify=str(dep.ca), timeout=30).json()
    assert answer["found"]
    backend = dep.hub.url.split("//", 1)[1]
    hub_urls = [u for u in answer["urls"] if not u.startswith(dep.share.ready["listen_url"])]
    assert hub_urls and all(u.startswith(f"{dep.public}/") for u in hub_urls)
    assert backend not in json.dumps(answer)
    info = requests.get(f"{dep.public}/api/self", verify=str(dep.ca), timeout=30).json()
    assert info["info"]["listen_url"] == dep.public
    assert backend not in json.dumps(info)


def test_kb_get_and_curl_download_through_https(dep, public_name, tmp_path, monkeypatch):
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    # the tunnel, through nginx (the share's own URL is left out: only the hub route)
    url = f"{dep.public}/{dep.share.node_id}/download/d/raw%20data.bin"
    got = run_cli(KbGet, url, "--ca-file", dep.ca, "-o", tmp_path / "a.bin", "--no-cache")
    assert got.code == 0, got.stderr
    assert (tmp_path / "a.bin").read_bytes() == DATA
    # the content URL, as kb-url prints it
    content = f"{dep.public}/sha1/{dep.sha1}/raw%20data.bin"
    got = run_cli(KbGet, content, "--ca-file", dep.ca, "-o", tmp_path / "b.bin", "--no-cache")
    assert got.code == 0, got.stderr
    assert got.records[0]["sha1"] == dep.sha1 and got.records[0]["source"] == content
    # kbucket:// resolved through the public hub
    got = run_cli(KbGet, f"kbucket://{dep.share.node_id}/{NAME}", "--hub", dep.public,
                  "--ca-file", dep.ca, "-o", tmp_path / "c.bin")
    assert got.code == 0, got.stderr
    assert (tmp_path / "c.bin").read_bytes() == DATA
    # curl, verifying against the CA; a Range through the tunnel
    out = tmp_path / "curl.bin"
    result = dep.curl("--cacert", str(dep.ca), "-o", str(out), "-D", "-", url)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == DATA
    part = dep.curl("--cacert", str(dep.ca), "-r", "100-199", url)
    assert part.returncode == 0 and part.stdout == DATA[100:200]
    # the share sent those bodies on data connections through nginx (wss's port, Upgrade passed on)
    info = requests.get(f"{dep.hub.url}/{dep.hub.node_id}/api/nodeinfo", timeout=10).json()
    assert info["metrics"].get("data_connections", 0) >= 2
    assert "data_connections_refused" not in info["metrics"]
    # plain http is sent to https
    redirect = dep.curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                        "--resolve", f"{PUBLIC_NAME}:{dep.http_port}:127.0.0.1",
                        f"http://{PUBLIC_NAME}:{dep.http_port}/")
    assert redirect.stdout.decode().startswith("301 https://")


def test_a_certificate_that_does_not_verify_is_refused(dep, public_name, tmp_path, monkeypatch):
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    content = f"{dep.public}/sha1/{dep.sha1}/x.bin"
    result = dep.curl("-o", str(tmp_path / "x"), content)  # curl's own store
    assert result.returncode == 60, result
    got = run_cli(KbGet, content, "--ca-file", dep.other_ca, "-o", tmp_path / "x.bin")
    assert got.code == 3
    assert "TLS certificate" in got.stderr and "certificate verify failed" in got.stderr
    assert not (tmp_path / "x.bin").exists()


def spki_hash(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    public = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_the_page_in_chromium_shows_public_urls(dep):
    from playwright.sync_api import expect, sync_playwright

    from tests.web.chromium import CHROMIUM, CHROMIUM_ARGS

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1",
            # trust exactly this test certificate's key (Chromium reads no CA file)
            f"--ignore-certificate-errors-spki-list={spki_hash(dep.cert)}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{dep.public}/?node_id={dep.share.node_id}&path=d")
            expect(page.locator("table.listing tr.file", has_text="raw data.bin")).to_have_count(1)
            page.goto(f"{dep.public}/?node_id={dep.share.node_id}")
            expect(page.locator(".copy-text").first).to_have_text(f"kbucket://{dep.share.node_id}/")
            text = page.content()
            assert dep.hub.url.split("//", 1)[1] not in text
            assert not errors
        finally:
            browser.close()


def test_the_cache_serves_a_content_after_its_share_stopped(dep, tmp_path, public_name, monkeypatch):
    """Runs last in this module: it stops the share."""
    url = f"{dep.public}/sha1/{dep.sha1}/cached.bin"
    first = dep.curl("--cacert", str(dep.ca), "-D", str(tmp_path / "h1"), "-o", str(tmp_path / "1"), url)
    assert first.returncode == 0, first.stderr
    second = dep.curl("--cacert", str(dep.ca), "-D", str(tmp_path / "h2"), "-o", str(tmp_path / "2"), url)
    assert second.returncode == 0
    assert "x-cache-status: miss" in (tmp_path / "h1").read_text().lower()
    assert "x-cache-status: hit" in (tmp_path / "h2").read_text().lower()
    dep.share.stop()
    dep.wait_found(False)
    # the tunnel has nothing to serve now; the cached content still comes, verified by kb-get
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "kbcache"))
    got = run_cli(KbGet, url, "--ca-file", dep.ca, "-o", tmp_path / "after.bin", "--no-cache")
    assert got.code == 0, got.stderr
    assert (tmp_path / "after.bin").read_bytes() == DATA
    third = dep.curl("--cacert", str(dep.ca), "-D", str(tmp_path / "h3"), "-r", "0-99", url)
    assert third.returncode == 0 and third.stdout == DATA[:100]
    assert "x-cache-status: hit" in (tmp_path / "h3").read_text().lower()
    # a content never fetched is not in the cache: the hub's 404 comes through, uncached
    missing = dep.curl("--cacert", str(dep.ca), "-o", "/dev/null", "-w", "%{http_code}",
                       f"{dep.public}/sha1/{'0' * 40}")
    assert missing.stdout == b"404"
