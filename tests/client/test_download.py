"""The downloader against a loopback share and hub that misbehave on purpose."""
from __future__ import annotations

import json
import threading

import pytest

from kbtools.client import ClientError, DownloadOptions, PeerError, VerificationError, download, resolve
from kbtools.client.download import MiB, part_path, state_path

from .loopback import Server

OPTIONS = DownloadOptions(chunk_size=MiB, parallel=3, backoff=0.01)
BIG = "sub/deep.bin"  # four 1 MiB chunks


def fetch(network, rel, target, options=OPTIONS, **kwargs):
    resolution = resolve(network.url(rel), network.hub.url)
    return download(resolution.download_urls, target, resolution.sha1, resolution.size, options, **kwargs)


def ranges(server):
    return [line.split(" ", 2)[2] for line in server.behaviour.requests if line.startswith("GET")]


def test_parallel_bounded_ranges_from_the_share_directly(network, contents, tmp_path):
    target = tmp_path / "out" / "deep.bin"
    result = fetch(network, BIG, target)
    assert target.read_bytes() == contents[BIG]
    assert result.urls_used == [resolve(network.url(BIG), network.hub.url).download_urls[0]]
    assert sorted(ranges(network.share)) == sorted(
        f"bytes={i * MiB}-{min((i + 1) * MiB, len(contents[BIG])) - 1}" for i in range(4))
    assert ranges(network.hub) == []
    assert not part_path(target).exists() and not state_path(target).exists()


def test_empty_file(network, tmp_path):
    target = tmp_path / "empty.dat"
    fetch(network, "empty.dat", target)
    assert target.read_bytes() == b""


def test_share_refusing_direct_connections_is_reached_through_the_hub(network, contents, tmp_path):
    resolution = resolve(network.url(BIG), network.hub.url)
    network.share.stop()
    result = download(resolution.download_urls, tmp_path / "x", resolution.sha1, resolution.size, OPTIONS)
    assert (tmp_path / "x").read_bytes() == contents[BIG]
    assert result.urls_used == [resolution.download_urls[1]]


def test_connection_dying_mid_transfer_is_retried_from_where_it_stopped(network, contents, tmp_path):
    network.share.behaviour.die_after = MiB + 1000
    fetch(network, BIG, tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == contents[BIG]
    assert ranges(network.hub) == []  # the share was retried, not dropped


def test_a_share_serving_wrong_bytes_falls_back_to_the_hub(network, contents, tmp_path):
    network.share.behaviour.wrong_bytes = True
    result = fetch(network, BIG, tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == contents[BIG]
    assert len(result.urls_used) == 2


def test_wrong_bytes_everywhere_is_an_error_and_leaves_nothing(network, tmp_path):
    network.share.behaviour.wrong_bytes = True
    network.hub.behaviour.wrong_bytes = True
    target = tmp_path / "out" / "x"
    with pytest.raises(VerificationError, match="SHA-1 mismatch"):
        fetch(network, BIG, target)
    assert list(target.parent.iterdir()) == []


def test_a_server_ignoring_range_is_dropped(network, contents, tmp_path):
    network.share.behaviour.ignore_range = True
    fetch(network, BIG, tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == contents[BIG]
    assert ranges(network.hub)


def interrupt_after(nbytes):
    stop = threading.Event()
    seen = [0]

    def progress(count):
        seen[0] += count
        if seen[0] >= nbytes:
            stop.set()
    return stop, progress


def test_interrupted_download_resumes_without_refetching_done_chunks(network, contents, tmp_path):
    target = tmp_path / "x"
    network.share.behaviour.delay_per_mib = 0.05  # slow enough to stop mid-way
    stop, progress = interrupt_after(2 * MiB)
    with pytest.raises(Exception, match="stopped"):
        fetch(network, BIG, target, DownloadOptions(chunk_size=MiB, parallel=1), progress=progress, stop=stop)
    assert not target.exists()
    state = json.loads(state_path(target).read_text())
    assert len(state["done"]) >= 1
    network.share.behaviour = type(network.share.behaviour)()
    result = fetch(network, BIG, target)
    assert target.read_bytes() == contents[BIG]
    assert result.bytes_resumed == len(state["done"]) * MiB
    assert len(ranges(network.share)) == 4 - len(state["done"])


def test_a_part_file_with_wrong_bytes_is_repaired(network, contents, tmp_path):
    target = tmp_path / "x"
    resolution = resolve(network.url(BIG), network.hub.url)
    # A .part whose sidecar says chunks 0 and 2 are done, but chunk 2 holds garbage.
    good = bytearray(contents[BIG])
    good[2 * MiB: 3 * MiB] = b"\0" * MiB
    part_path(target).write_bytes(bytes(good))
    state_path(target).write_text(json.dumps({"version": 1, "sha1": resolution.sha1, "size": resolution.size,
                                              "chunk_size": MiB, "done": [0, 2]}))
    result = fetch(network, BIG, target)
    assert target.read_bytes() == contents[BIG]
    assert result.bytes_resumed == 2 * MiB
    assert len(ranges(network.share)) == 4  # chunks 1 and 3, then the kept 0 and 2 once more
    assert not part_path(target).exists() and not state_path(target).exists()


def test_a_sidecar_of_another_file_is_ignored(network, contents, tmp_path):
    target = tmp_path / "x"
    part_path(target).write_bytes(b"\1" * len(contents[BIG]))
    state_path(target).write_text(json.dumps({"version": 1, "sha1": "0" * 40, "size": len(contents[BIG]),
                                              "chunk_size": MiB, "done": [0, 1, 2, 3]}))
    result = fetch(network, BIG, target)
    assert target.read_bytes() == contents[BIG] and result.bytes_resumed == 0


def test_a_hub_dying_mid_transfer_fails_clearly_then_resumes(network, contents, tmp_path):
    target = tmp_path / "x"
    resolution = resolve(network.url(BIG), network.hub.url)
    network.share.stop()
    network.hub.behaviour.die_after = 2 * MiB + 5
    network.hub.behaviour.stop_on_die = True
    with pytest.raises(PeerError, match="no download URL works"):
        download(resolution.download_urls, target, resolution.sha1, resolution.size,
                 DownloadOptions(chunk_size=MiB, parallel=1, backoff=0.01))
    assert not target.exists() and part_path(target).exists()
    network.hub.thread.join(10)
    revived = Server(network, "hub")
    revived.port, revived.url = network.hub.port, network.hub.url
    network.hub = revived.start()
    result = download(resolution.download_urls, target, resolution.sha1, resolution.size, OPTIONS)
    assert target.read_bytes() == contents[BIG]
    assert result.bytes_resumed == 2 * MiB


def test_nothing_reachable_leaves_no_part_file(network, tmp_path):
    resolution = resolve(network.url(BIG), network.hub.url)
    network.stop()
    target = tmp_path / "out" / "x"
    with pytest.raises(PeerError, match="connection refused"):
        download(resolution.download_urls, target, resolution.sha1, resolution.size, OPTIONS)
    assert list(target.parent.iterdir()) == []


def test_an_unwritable_target_is_a_clear_error(network, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ClientError, match="cannot write"):
        fetch(network, "hello.txt", tmp_path / "a-file" / "x")


def test_without_mmap_the_prefix_is_read_back(network, contents, tmp_path, monkeypatch):
    import mmap

    def refuse(*args, **kwargs):
        raise OSError("no mmap here")
    monkeypatch.setattr(mmap, "mmap", refuse)
    fetch(network, BIG, tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == contents[BIG]


def test_the_source_is_the_url_that_served_most_bytes_and_each_new_url_is_announced(network, contents, tmp_path):
    resolution = resolve(network.url(BIG), network.hub.url)
    direct, relayed = resolution.download_urls
    network.share.behaviour.die_after = MiB + 1000
    network.share.behaviour.stop_on_die = True  # the share goes away after a chunk and a bit
    announced = []
    options = DownloadOptions(chunk_size=MiB, parallel=1, backoff=0.01, attempts=2)
    result = download(resolution.download_urls, tmp_path / "f", resolution.sha1, resolution.size, options,
                      on_url=announced.append)
    assert (tmp_path / "f").read_bytes() == contents[BIG]
    assert announced == [direct, relayed] and result.urls_used == [direct, relayed]
    assert result.bytes_by_url[direct] == MiB + 1000
    assert result.bytes_by_url[relayed] == len(contents[BIG]) - MiB - 1000
    assert result.source == relayed
