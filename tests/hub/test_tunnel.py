"""Downloads through a real hub on loopback from real websocket children, on both tunnel paths."""
from __future__ import annotations

import hashlib

import pytest
import requests

from tests.hub.children import FileChild, HubNode, write_random

SIZE = 3 * 1024 * 1024 + 12345


@pytest.fixture(params=[False, True], ids=["compatible", "fast"])
def fast(request):
    return request.param


def test_download_full_range_head_and_errors_through_the_hub(lt, tmp_path, fast):
    hub = HubNode(lt, tmp_path / "hub")
    data = write_random(tmp_path / "files" / "sub dir" / "big #1.bin", SIZE).read_bytes()
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url, fast=fast).connect()
    base = f"{hub.url}/{child.node_id}/download"

    r = requests.get(f"{base}/sub%20dir/big%20%231.bin", timeout=30)
    assert r.status_code == 200 and hashlib.sha1(r.content).digest() == hashlib.sha1(data).digest()
    assert r.headers["Access-Control-Allow-Origin"] == "*"

    r = requests.get(f"{base}/sub%20dir/big%20%231.bin", headers={"Range": "bytes=1000000-2000099"}, timeout=30)
    assert r.status_code == 206 and r.content == data[1000000:2000100]
    assert r.headers["Content-Range"] == f"bytes 1000000-2000099/{SIZE}"

    r = requests.head(f"{base}/sub%20dir/big%20%231.bin", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(SIZE) and r.content == b""

    r = requests.get(f"{base}/sub%20dir/big%20%231.bin", headers={"Range": f"bytes={SIZE + 5}-"}, timeout=30)
    assert r.status_code == 416
    r = requests.get(f"{base}/missing.txt", timeout=30)
    assert r.status_code == 404
    # The path reached the child decoded once, with its #, space and no query string.
    assert child.requests_seen[0].path.endswith("/download/sub%20dir/big%20%231.bin")


def test_cookies_and_authorization_are_not_forwarded(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub")
    write_random(tmp_path / "files" / "a.bin", 10)
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url).connect()
    r = requests.get(f"{hub.url}/{child.node_id}/download/a.bin", timeout=10,
                     headers={"Cookie": "session=secret", "Authorization": "Bearer secret",
                              "X-Other": "kept"})
    assert r.status_code == 200
    headers = child.requests_seen[0].headers
    assert "cookie" not in headers and "authorization" not in headers and headers["x-other"] == "kept"


def test_several_downloads_at_once_share_one_link(lt, tmp_path, fast):
    import concurrent.futures

    hub = HubNode(lt, tmp_path / "hub")
    blobs = [write_random(tmp_path / "files" / f"f{i}.bin", 700_000 + i).read_bytes() for i in range(4)]
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url, fast=fast).connect()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: requests.get(f"{hub.url}/{child.node_id}/download/f{i}.bin",
                                                   timeout=30).content, range(4)))
    assert got == blobs


def test_a_child_dying_mid_response_gives_the_client_an_error(lt, tmp_path, fast):
    hub = HubNode(lt, tmp_path / "hub")
    write_random(tmp_path / "files" / "big.bin", SIZE)
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url, fast=fast).connect()
    child.die_after = 300_000
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)) as info:
        r = requests.get(f"{hub.url}/{child.node_id}/download/big.bin", timeout=20)
        r.raise_for_status()
    assert not isinstance(info.value, requests.exceptions.ReadTimeout)
    hub.wait(lambda: any(e["event"] == "child_disconnected" for e in hub.events))
    # The hub keeps serving: the share is gone, the hub answers for itself.
    r = requests.get(f"{hub.url}/{child.node_id}/download/big.bin", timeout=10)
    assert r.status_code == 500 and "Unable to locate" in r.json()["error"]
    assert requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).json()["child_leaf_nodes"] == {}


def test_a_child_gone_before_the_headers_gives_a_json_error(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub")
    write_random(tmp_path / "files" / "a.bin", 10)
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url).connect()

    async def never_answer(req):  # the child takes the request, then its socket closes
        await child.ws.close()
    child._serve = never_answer
    r = requests.get(f"{hub.url}/{child.node_id}/download/a.bin", timeout=20)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("application/json")
    assert "disconnected" in r.json()["error"]


def test_a_client_leaving_mid_download_does_not_block_the_link(lt, tmp_path, fast):
    hub = HubNode(lt, tmp_path / "hub")
    data = write_random(tmp_path / "files" / "big.bin", SIZE).read_bytes()
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url, fast=fast).connect()
    url = f"{hub.url}/{child.node_id}/download/big.bin"
    for _ in range(3):
        with requests.get(url, stream=True, timeout=20) as r:
            assert len(next(r.iter_content(100_000))) > 0
    # The abandoned responses end (compatible) or are cancelled (fast) on the child's side, and the
    # link carries the next download.
    hub.wait(lambda: not hub.hub.registry.leaves[child.node_id].credit)
    assert requests.get(url, timeout=30).content == data


def test_a_client_that_stops_reading_is_dropped_not_the_share(lt, tmp_path):
    import socket
    from urllib.parse import urlsplit

    hub = HubNode(lt, tmp_path / "hub", client_write_timeout=0.5)
    data = write_random(tmp_path / "files" / "big.bin", 40 * 1024 * 1024).read_bytes()
    child = FileChild(lt, tmp_path / "share", tmp_path / "files", hub.url, fast=False).connect()
    parts = urlsplit(hub.url)
    stalled = socket.create_connection((parts.hostname, parts.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /{child.node_id}/download/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # The hub gives up on the stalled client; the share's link is free again and still registered.
    hub.wait(lambda: not hub.hub.links[hub.hub.registry.leaves[child.node_id]].requests, timeout=60)
    assert requests.get(f"{hub.url}/{child.node_id}/download/big.bin", headers={"Range": "bytes=0-99"},
                        timeout=30).content == data[:100]
    stalled.close()
