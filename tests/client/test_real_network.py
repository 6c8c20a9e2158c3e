"""kb-get and kb-url against a real kb-hub and kb-host (processes) on loopback."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from kbtools.cli.kb_get import KbGet
from kbtools.cli.kb_url import KbUrl
from kbtools.client import DownloadOptions, VerificationError, download, resolve
from kbtools.client.download import MiB, part_path, state_path

from ..conftest import ROOT, run_cli, validate
from ..netfixtures import Network, wait_found
from .conftest import fill_share

BIG = "big.bin"
BIG_SIZE = 96 * MiB


def build_share(root: Path) -> dict[str, bytes]:
    """The files of the share (written by the share fixture): awkward names, a big file, a dataset."""
    from kbtools.formats.sample import write_sample_study

    root.mkdir(parents=True)
    contents = fill_share(root)
    big = os.urandom(BIG_SIZE)
    (root / BIG).write_bytes(big)
    contents[BIG] = big
    write_sample_study(root)
    for path in (root / "dataset1").iterdir():
        contents[f"dataset1/{path.name}"] = path.read_bytes()
    return contents


class Real:
    """A kb-hub and a kb-host of a share directory under it (processes of this checkout)."""

    def __init__(self, net: Network, share_bind: str | None = None) -> None:
        self.net = net
        self.contents = build_share(net.root / "files")
        self.hub = net.hub("hub", passcode="pass")
        self.share = net.share("share", parent=self.hub, passcode="pass",
                               files={rel: data for rel, data in self.contents.items()},
                               args=("--bind", share_bind) if share_bind else ())
        self.share_dir = self.share.node_dir
        self.wait_indexed()

    @property
    def hub_url(self) -> str:
        return self.hub.url

    @property
    def share_url(self) -> str:
        return str(self.share.ready.get("listen_url") or self.share.url)

    def url(self, rel: str) -> str:
        return f"kbucket://{self.share.node_id}/{rel}"

    def wait_indexed(self, timeout: float = 60) -> None:
        """Until the hub finds every file (the share hashed and reported them)."""
        wait_found(self.hub_url, *self.contents.values(), timeout=timeout)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    with Network(tmp_path_factory.mktemp("real")) as net:
        network = Real(net)
        yield network, network.contents


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    return tmp_path / "cache"


def kb_get(network, *args):
    result = run_cli(KbGet, "--hub", network.hub_url, *map(str, args))
    for record in result.records:
        validate(record, "kb-get-record")
    return result


def test_resolution_lists_the_share_first_then_the_hub(real):
    network, contents = real
    resolution = resolve(network.url("sp ace/f #1?.txt"), network.hub_url)
    assert resolution.sha1 == hashlib.sha1(contents["sp ace/f #1?.txt"]).hexdigest()
    assert resolution.download_urls[0].startswith(f"{network.share_url}/{network.share.node_id}/download/")
    assert resolution.download_urls[-1].startswith(f"{network.hub_url}/{network.share.node_id}/download/")
    result = run_cli(KbUrl, "--hub", network.hub_url, network.url("sub"), network.url("nope"))
    for record in result.records:
        validate(record, "kb-url")
    assert result.code == 1
    assert [e["name"] for e in result.records[0]["entries"]] == ["deep.bin"]
    assert result.records[1]["code"] == "not-found"


@pytest.mark.parametrize("rel", ["hello.txt", "sp ace/f #1?.txt", "ünï cødé/naïve ✓.bin", "empty.dat", BIG])
def test_a_file(real, cache, tmp_path, rel):
    network, contents = real
    result = kb_get(network, network.url(rel), "-o", tmp_path / "out" / "f")
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "f").read_bytes() == contents[rel]
    [record] = result.records
    if contents[rel]:
        assert record["route"] == "direct" and record["source"].startswith(network.share_url + "/")
    else:  # nothing to fetch
        assert record["route"] is None and record["source"] is None


def test_a_directory_and_spikeinterface_reads_it(real, cache, tmp_path):
    import spikeinterface.extractors as se
    network, contents = real
    result = kb_get(network, network.url(""), "-o", tmp_path / "all")
    assert result.code == 0, result.stderr
    for rel, data in contents.items():
        assert (tmp_path / "all" / rel).read_bytes() == data, rel
    fetched = se.read_mda_recording(tmp_path / "all" / "dataset1")
    original = se.read_mda_recording(network.share_dir / "dataset1")
    assert (fetched.get_traces() == original.get_traces()).all()


def test_a_sha1_url_and_a_hub_download_url(real, cache, tmp_path):
    network, contents = real
    sha1 = hashlib.sha1(contents["sub/deep.bin"]).hexdigest()
    hub_url = f"{network.hub_url}/{network.share.node_id}/download/sub/deep.bin"
    result = kb_get(network, f"sha1://{sha1}/d.bin", hub_url, "--no-cache", "-o", tmp_path)
    assert result.code == 0, result.stderr
    assert (tmp_path / "d.bin").read_bytes() == (tmp_path / "deep.bin").read_bytes() == contents["sub/deep.bin"]
    by_content, by_hub_url = result.records
    assert by_content["route"] == "direct" and by_content["source"].startswith(network.share_url + "/")
    assert by_hub_url["route"] == "hub" and by_hub_url["source"] == hub_url
    share_url = f"{network.share_url}/{network.share.node_id}/download/sub/deep.bin"
    straight = kb_get(network, share_url, "--no-cache", "-o", tmp_path / "s.bin")
    assert straight.records[0]["route"] == "direct" and straight.records[0]["source"] == share_url


def test_a_part_file_with_wrong_bytes_is_repaired(real, tmp_path):
    network, contents = real
    resolution = resolve(network.url(BIG), network.hub_url)
    target = tmp_path / "big.bin"
    bad = bytearray(contents[BIG])
    bad[5 * MiB: 6 * MiB] = os.urandom(MiB)
    part_path(target).write_bytes(bytes(bad))
    state_path(target).write_text(json.dumps({"version": 1, "sha1": resolution.sha1, "size": BIG_SIZE,
                                              "chunk_size": MiB, "done": list(range(0, 96, 2)) + [5]}))
    result = download(resolution.download_urls, target, resolution.sha1, resolution.size,
                      DownloadOptions(chunk_size=MiB))
    assert target.read_bytes() == contents[BIG] and result.bytes_resumed == 49 * MiB


def test_a_share_serving_other_bytes_is_an_error_and_leaves_nothing(real, tmp_path):
    network, contents = real
    resolution = resolve(network.url("sub/deep.bin"), network.hub_url)
    path = network.share_dir / "sub" / "deep.bin"
    before = path.stat()
    try:
        path.write_bytes(os.urandom(len(contents["sub/deep.bin"])))  # same size, other bytes
        with pytest.raises(VerificationError, match="SHA-1 mismatch"):
            download(resolution.download_urls, tmp_path / "out" / "deep.bin", resolution.sha1,
                     resolution.size, DownloadOptions(chunk_size=MiB))
        assert list((tmp_path / "out").iterdir()) == []
    finally:
        path.write_bytes(contents["sub/deep.bin"])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def spawn_kb_get(network, *args) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-get"), "--hub", network.hub_url,
                             "--no-cache", "--chunk-size", "1", "-j", "1", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_chunks(target: Path, count: int, process: subprocess.Popen[bytes]) -> int:
    """Until the sidecar lists ``count`` chunks (or the download ended); the chunks listed."""
    deadline = time.monotonic() + 60
    done: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = json.loads(state_path(target).read_text())["done"]
        except (OSError, ValueError, KeyError):
            done = []
        if len(done) >= count:
            break
        time.sleep(0.005)
    return len(done)


class StallingProxy:
    """A loopback TCP forwarder that passes `budget` bytes from the server, then holds every
    connection open without passing more: a download through it can never finish."""

    def __init__(self, upstream: str, budget: int) -> None:
        self.upstream = urlsplit(upstream)
        self.left = budget
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.upstream.hostname, self.upstream.port))
            self.sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, metered: bool) -> None:
        try:
            while data := source.recv(65536):
                if metered:
                    with self.lock:
                        data = data[:max(self.left, 0)]
                        self.left -= len(data)
                    if not data:
                        return  # the budget is spent: hold the connection, pass nothing more
                sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def test_killed_half_way_then_resumed(real, tmp_path):
    network, contents = real
    target = tmp_path / "big.bin"
    # The share's bytes come through a proxy that stops after 12 MiB: the download is stuck half
    # way, however fast the machine, until it is killed.
    proxy = StallingProxy(network.share_url, 12 * MiB)
    direct = f"{proxy.url}/{network.share.node_id}/download/{BIG}"
    process = spawn_kb_get(network, direct, "-o", target)
    try:
        assert wait_for_chunks(target, 8, process) >= 8
        process.kill()
    finally:
        process.wait(10)
        proxy.close()
    assert not target.exists()
    done = len(json.loads(state_path(target).read_text())["done"])
    assert 8 <= done < BIG_SIZE // MiB
    result = kb_get(network, "--no-cache", network.url(BIG), "-o", target)
    assert result.code == 0, result.stderr
    assert target.read_bytes() == contents[BIG]


@pytest.fixture
def hub_only(tmp_path):
    """A share that listens on 127.0.0.2 while it advertises 127.0.0.1: reachable only through the hub."""
    with Network(tmp_path / "net") as net:
        network = Real(net, share_bind="127.0.0.2")
        yield network, network.contents


def test_a_share_reachable_only_through_the_hub_then_the_hub_dies_mid_transfer(hub_only, cache, tmp_path):
    network, contents = hub_only
    urls = resolve(network.url("sub/deep.bin"), network.hub_url).download_urls
    assert network.share.ready["reachable"] is False  # the hub's probe: listed last by find
    direct = urls[-1]
    assert direct.startswith(network.share_url) and urls[0].startswith(network.hub_url + "/")
    with pytest.raises(requests.ConnectionError):
        requests.head(direct, timeout=5)
    small = kb_get(network, network.url("sub/deep.bin"), "-o", tmp_path / "deep.bin")
    assert small.code == 0, small.stderr
    assert (tmp_path / "deep.bin").read_bytes() == contents["sub/deep.bin"]
    assert small.records[0]["route"] == "hub" and small.records[0]["source"].startswith(network.hub_url + "/")

    target = tmp_path / "big.bin"
    process = spawn_kb_get(network, network.url(BIG), "-o", target)
    try:
        assert wait_for_chunks(target, 4, process) >= 4
        network.hub.kill()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, err.decode()
    assert json.loads(out.decode().splitlines()[-1])["status"] == "error"
    assert not target.exists() and part_path(target).exists()

    network.hub.start()
    network.wait_indexed()
    result = kb_get(network, "--no-cache", network.url(BIG), "-o", target)
    assert result.code == 0, result.stderr
    assert target.read_bytes() == contents[BIG]


def test_spikeinterface_reads_raw_mda_straight_from_a_hub_download_url(real):
    from spikeinterface.extractors import mdaextractors
    network, _ = real
    url = f"{network.hub_url}/{network.share.node_id}/download/dataset1/raw.mda"
    remote = mdaextractors.DiskReadMda(url)
    local = mdaextractors.DiskReadMda(str(network.share_dir / "dataset1" / "raw.mda"))
    assert remote.dims() == local.dims() and remote.dt() == local.dt()
    channels = local.N1()
    assert (remote.readChunk(i1=0, i2=1000, N1=channels, N2=500)
            == local.readChunk(i1=0, i2=1000, N1=channels, N2=500)).all()
