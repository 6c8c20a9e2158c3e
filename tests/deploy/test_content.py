"""GET/HEAD /sha1/<sha1>[/<name>] on a real in-process hub with real websocket children: the bytes
of a content from any share that holds it, with the headers any HTTP cache needs; a wrong copy is
never completed, a failing copy is continued from the next."""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
import requests

from tests.conftest import validate
from tests.hub.children import FileChild, HubNode

SIZE = 3 * 1024 * 1024 + 17


@pytest.fixture
def net(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub")
    data = os.urandom(SIZE)
    roots = []
    for name in ("one", "two"):
        root = tmp_path / f"{name}-files"
        (root / "d").mkdir(parents=True)
        (root / "d" / "raw data.bin").write_bytes(data)
        roots.append(root)
    return hub, data, roots


def child(lt, tmp_path, hub, root, name, fast=True):
    return FileChild(lt, tmp_path / name, root, hub.url, fast=fast, name=name).connect()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "compatible"])
def test_content_by_sha1_with_cache_headers(lt, tmp_path, net, fast):
    hub, data, roots = net
    share = child(lt, tmp_path, hub, roots[0], "one", fast)
    sha1 = hashlib.sha1(data).hexdigest()
    url = f"{hub.url}/sha1/{sha1}/r%C3%A9sultat%201.bin"
    got = requests.get(url, timeout=30)
    assert got.status_code == 200
    assert got.content == data
    h = got.headers
    assert h["ETag"] == f'"{sha1}"'
    assert h["Cache-Control"] == "public, max-age=31536000, immutable"
    assert h["Content-Length"] == str(SIZE)
    assert h["Accept-Ranges"] == "bytes"
    assert h["Content-Type"] == "application/octet-stream"
    assert h["Content-Disposition"] == ("attachment; filename=\"r_sultat 1.bin\"; "
                                        "filename*=UTF-8''r%C3%A9sultat%201.bin")
    assert h["Access-Control-Allow-Origin"] == "*"
    # without a name: the SHA-1 names it; upper-case hex is the same content
    assert requests.get(f"{hub.url}/sha1/{sha1.upper()}", timeout=30).headers[
        "Content-Disposition"].startswith(f'attachment; filename="{sha1}"')
    # HEAD: the same headers, no body
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(SIZE) and head.headers["ETag"] == f'"{sha1}"'
    # Range, and a suffix range
    part = requests.get(url, headers={"Range": "bytes=1000-1999999"}, timeout=30)
    assert part.status_code == 206
    assert part.content == data[1000:2000000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999999/{SIZE}"
    assert part.headers["ETag"] == f'"{sha1}"'
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-10:]
    # If-Range with another validator: the whole content
    whole = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=30)
    assert whole.status_code == 200 and len(whole.content) == SIZE
    # revalidation: 304 at once, the bytes of a SHA-1 never change
    again = requests.get(url, headers={"If-None-Match": f'"{sha1}"'}, timeout=30)
    assert again.status_code == 304 and again.headers["ETag"] == f'"{sha1}"'
    assert len([r for r in share.requests_seen if r.method == "GET"]) == 5


def test_not_found_and_bad_sha1_are_not_cacheable(lt, tmp_path, net):
    hub, data, roots = net
    child(lt, tmp_path, hub, roots[0], "one")
    missing = requests.get(f"{hub.url}/sha1/{'0' * 40}/x", timeout=30)
    assert missing.status_code == 404
    assert missing.headers["Cache-Control"] == "no-store"
    assert missing.json()["success"] is False
    bad = requests.get(f"{hub.url}/sha1/not-a-sha1", timeout=30)
    assert bad.status_code == 400 and bad.headers["Cache-Control"] == "no-store"


def curl(*args):
    return subprocess.run(["curl", "-sS", "--noproxy", "*", *args], capture_output=True, timeout=60)


def test_wrong_bytes_are_never_completed(lt, tmp_path, net):
    """The share's file changed after it was indexed: the hub streams it, finds the SHA-1 wrong at
    the end and breaks the connection before the announced length: curl fails, nothing is kept."""
    hub, data, roots = net
    child(lt, tmp_path, hub, roots[0], "one")
    sha1 = hashlib.sha1(data).hexdigest()
    changed = bytearray(data)
    changed[SIZE - 5] ^= 0xFF  # same size, one byte different near the end
    (roots[0] / "d" / "raw data.bin").write_bytes(bytes(changed))
    out = tmp_path / "out.bin"
    result = curl("-o", str(out), f"{hub.url}/sha1/{sha1}/raw.bin")
    assert result.returncode in (18, 52, 56), result  # partial file / empty reply / recv failure
    assert not out.exists() or out.stat().st_size < SIZE
    assert hub.hub.metrics.get("num_sha1_mismatches") == 1
    mismatch = [e for e in hub.events if e["event"] == "content_mismatch"]
    assert mismatch and mismatch[0]["sha1"] == sha1
    validate(mismatch[0], "kb-hub-event")


def test_next_copy_continues_a_failing_one(lt, tmp_path, net):
    """The first copy dies part-way: the rest comes from the second by a Range request, and the
    whole still verifies; a copy that is gone is passed over."""
    hub, data, roots = net
    first = child(lt, tmp_path, hub, roots[0], "one")
    second = child(lt, tmp_path, hub, roots[1], "two")
    first.die_after = 1024 * 1024
    sha1 = hashlib.sha1(data).hexdigest()
    got = requests.get(f"{hub.url}/sha1/{sha1}", timeout=30)
    assert got.status_code == 200
    assert hashlib.sha1(got.content).hexdigest() == sha1
    ranges = [r.headers.get("range") for r in second.requests_seen]
    assert ranges and ranges[0].startswith("bytes=") and not ranges[0].startswith("bytes=0-")
    hub.wait(lambda: first.node_id not in hub.hub.registry.leaves)
    again = requests.get(f"{hub.url}/sha1/{sha1}", timeout=30)  # only the second is left
    assert again.status_code == 200 and again.content == data
