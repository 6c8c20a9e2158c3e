"""kb-url on kbucket://, sha1:// and http(s):// URLs: resolution by a loopback hub."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from kbtools.cli.kb_url import KbUrl

from ..client.conftest import fill_share
from ..client.loopback import Network, free_port
from ..conftest import run_cli, validate


@pytest.fixture
def network(tmp_path, monkeypatch):
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    root = tmp_path / "share"
    root.mkdir()
    net = Network(root)
    net.contents = fill_share(root)
    net.start()
    try:
        yield net
    finally:
        net.stop()


def kb_url(*args, **kwargs):
    result = run_cli(KbUrl, *args, **kwargs)
    for record in result.records:
        validate(record, "kb-url")
    return result


def test_file_directory_and_sha1_urls(network, monkeypatch):
    monkeypatch.setenv("KBUCKET_URL", network.hub.url)
    rel = "sp ace/f #1?.txt"
    sha1 = hashlib.sha1(network.contents[rel]).hexdigest()
    result = kb_url(network.url(rel), network.url("sp ace"), f"sha1://{sha1}/x.txt")
    assert result.code == 0, result.stderr
    file_record, dir_record, sha1_record = result.records
    direct = f"{network.share.url}/{network.node_id}/download/{quote(rel)}"
    assert file_record == {"url": network.url(rel), "type": "file", "sha1": sha1, "size": 13,
                           "download_urls": [direct, f"{network.hub.url}/{network.node_id}/download/{quote(rel)}"],
                           "content_url": f"{network.hub.url}/sha1/{sha1}/f%20%231%3F.txt", "status": "ok"}
    assert sha1_record["content_url"] == f"{network.hub.url}/sha1/{sha1}/x.txt"
    assert dir_record["type"] == "dir"
    assert [e["name"] for e in dir_record["entries"]] == ["f #1?.txt"]
    assert sha1_record["download_urls"][0] == direct


def test_http_download_url_of_the_share(network):
    url = f"{network.share.url}/{network.node_id}/download/hello.txt"
    result = kb_url(url)
    assert result.code == 0 and result.records[0]["sha1"] == hashlib.sha1(b"hello kbucket\n").hexdigest()


def test_errors_are_records_with_exit_codes(network):
    missing = kb_url("--hub", network.hub.url, network.url("nope.txt"), "kbucket://ffffffffffff/")
    assert missing.code == 1
    assert [r["code"] for r in missing.records] == ["not-found", "not-found"]
    assert kb_url(network.url("nope.txt")).records[0]["code"] == "no-hub"
    assert kb_url("--hub", network.hub.url, "kbucket://x/../y").records[0]["code"] == "bad-url"
    down = kb_url("--hub", f"http://127.0.0.1:{free_port()}", network.url("hello.txt"))
    assert down.code == 3 and down.records[0]["code"] == "unreachable"
    assert "Traceback" not in down.stderr
