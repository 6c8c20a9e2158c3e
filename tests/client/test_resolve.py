"""Resolution against a loopback hub: files, directories, sha1://, http(s) URLs and failures."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from kbtools.client import NotFound, PeerError, Resolver, resolve
from kbtools.client.errors import BadUrl

from .conftest import NAMES
from .loopback import free_port


@pytest.mark.parametrize("rel", NAMES)
def test_file_resolves_to_sha1_size_and_urls_direct_share_first(network, contents, rel):
    resolution = resolve(network.url(rel), network.hub.url)
    node = network.node_id
    assert resolution.type == "file"
    assert resolution.sha1 == hashlib.sha1(contents[rel]).hexdigest()
    assert resolution.size == len(contents[rel])
    assert resolution.download_urls == [f"{network.share.url}/{node}/download/{quote(rel)}",
                                        f"{network.hub.url}/{node}/download/{quote(rel)}"]
    assert resolution.name == rel.rsplit("/", 1)[-1]
    name = quote(rel.rsplit("/", 1)[-1], safe="")
    assert resolution.record() == {"url": network.url(rel), "type": "file", "sha1": resolution.sha1,
                                   "size": resolution.size, "download_urls": resolution.download_urls,
                                   "content_url": f"{network.hub.url}/sha1/{resolution.sha1}/{name}"}


def test_directory_lists_its_entries(network, contents):
    resolution = resolve(network.url("sub"), network.hub.url)
    assert resolution.type == "dir"
    assert [e.record() for e in resolution.entries] == [
        {"name": "deep.bin", "type": "file", "url": network.url("sub/deep.bin"),
         "sha1": hashlib.sha1(contents["sub/deep.bin"]).hexdigest(), "size": len(contents["sub/deep.bin"])}]


def test_walk_lists_every_file_below_the_root(network, contents):
    resolver = Resolver(network.hub.url)
    root = resolver.resolve(network.url(""))
    found = {rel: entry.sha1 for rel, entry in resolver.walk(root)}
    assert found == {rel: hashlib.sha1(data).hexdigest() for rel, data in contents.items()}


def test_sha1_url_uses_the_global_find(network, contents):
    sha1 = hashlib.sha1(contents["sub/deep.bin"]).hexdigest()
    resolution = resolve(f"sha1://{sha1}/raw.bin", network.hub.url)
    assert (resolution.sha1, resolution.size, resolution.name) == (sha1, len(contents["sub/deep.bin"]), "raw.bin")
    assert resolution.download_urls[0] == f"{network.share.url}/{network.node_id}/download/sub/deep.bin"


def test_http_url_of_the_share_itself_resolves_without_a_hub(network, contents):
    url = f"{network.share.url}/{network.node_id}/download/{quote('sp ace/f #1?.txt')}"
    resolution = resolve(url)
    assert resolution.sha1 == hashlib.sha1(contents["sp ace/f #1?.txt"]).hexdigest()
    assert resolution.download_urls == [url]  # a share answers no find


def test_unknown_node_missing_file_and_unknown_sha1_are_not_found(network):
    with pytest.raises(NotFound, match="not known to hub"):
        resolve("kbucket://ffffffffffff/x", network.hub.url)
    with pytest.raises(NotFound, match="no/such.txt"):
        resolve(network.url("no/such.txt"), network.hub.url)
    with pytest.raises(NotFound, match="not found on hub"):
        resolve("sha1://" + "0" * 40, network.hub.url)


def test_hub_down_is_a_peer_error_and_no_hub_a_bad_url():
    with pytest.raises(PeerError, match="unreachable: connection refused"):
        resolve("kbucket://a1b2c3d4e5f6/x", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BadUrl, match="KBUCKET_URL"):
        resolve("kbucket://a1b2c3d4e5f6/x")


def test_http_readdir_url_of_the_hub_is_a_directory(network):
    resolution = resolve(f"{network.hub.url}/{network.node_id}/api/readdir/sp%20ace")
    assert resolution.type == "dir" and [e.name for e in resolution.entries] == ["f #1?.txt"]


def test_each_download_url_has_its_route(network, contents):
    node = network.node_id
    share, hub = (f"{base}/{node}/download/sub/deep.bin" for base in (network.share.url, network.hub.url))
    resolution = resolve(network.url("sub/deep.bin"), network.hub.url)
    assert [resolution.route_of(u) for u in resolution.download_urls] == ["direct", "hub"]
    sha1 = hashlib.sha1(contents["sub/deep.bin"]).hexdigest()
    by_content = resolve(f"sha1://{sha1}", network.hub.url)
    assert (by_content.route_of(share), by_content.route_of(hub)) == ("direct", "hub")
    resolver = Resolver(network.hub.url)
    directory = resolver.resolve(network.url("sub"))
    for _ in range(2):  # the second time from what the first learnt (no find)
        entry = resolver.entry_file(directory, directory.entries[0])
        assert (entry.route_of(share), entry.route_of(hub)) == ("direct", "hub")
    assert resolve(share).route_of(share) == "direct"  # the share answers find with "not a hub"
    assert resolve(hub).route_of(hub) == "hub"


def test_find_answers_list_each_share_first():
    from kbtools.client.resolve import found_urls

    answer = {"found": True,
              "urls": ["http://s1/aaaaaaaaaaaa/download/x", "http://h2/aaaaaaaaaaaa/download/x",
                       "http://h1/aaaaaaaaaaaa/download/x", "http://s2/bbbbbbbbbbbb/download/y",
                       "http://h1/bbbbbbbbbbbb/download/y"],
              "results": [{"kbshare_id": "aaaaaaaaaaaa", "path": "x", "size": 1},
                          {"kbshare_id": "bbbbbbbbbbbb", "path": "y", "size": 1}]}
    urls, _, routes = found_urls(answer)
    assert [routes[u] for u in urls] == ["direct", "hub", "hub", "direct", "hub"]


def test_a_hub_url_that_is_not_a_url_is_a_usage_error():
    from kbtools.client import BadHubUrl

    with pytest.raises(BadHubUrl) as info:
        Resolver("notaurl")
    assert info.value.exit_code == 2 and "notaurl" in str(info.value)
