"""kbucket:// and sha1:// through fsspec, against a real kb-hub and kb-host (processes) on loopback."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

fsspec = pytest.importorskip("fsspec")

from kbtools.client import Resolution  # noqa: E402
from kbtools.client.fsspec_fs import IntegrityError, KbucketFileSystem, Sha1FileSystem  # noqa: E402
from kbtools.formats.sample import write_sample_dataset  # noqa: E402

from ..conftest import ROOT  # noqa: E402
from ..netfixtures import Network, free_port, wait_found  # noqa: E402

MiB = 1024 * 1024


def share_files(root: Path) -> dict[str, bytes]:
    """A dataset, a file of a few read-ahead blocks, awkward names, an empty file."""
    write_sample_dataset(root / "dataset1", channels=8, samples=20000)
    contents = {f"dataset1/{p.name}": p.read_bytes() for p in (root / "dataset1").iterdir()}
    contents.update({
        "big.bin": os.urandom(20 * MiB + 12345),
        "tamper.bin": os.urandom(3 * MiB + 7),
        "sp ace/f #1?.txt": b"awkward name\n",
        "sub/deep/leaf.txt": b"leaf\n",
        "empty.dat": b"",
    })
    for rel, data in contents.items():
        if not rel.startswith("dataset1/"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    return contents


class Net:
    def __init__(self, nodes: Network) -> None:
        root = nodes.root / "share"
        root.mkdir(parents=True)
        self.contents = share_files(root)
        self.hub = nodes.hub("hub", passcode="pass")
        self.share = nodes.share("share", parent=self.hub, passcode="pass")
        self.share_dir = root
        wait_found(self.hub.url, *self.contents.values())

    @property
    def node_id(self) -> str:
        return self.share.node_id

    def url(self, rel: str) -> str:
        return f"kbucket://{self.node_id}/{rel}"

    def fs(self, **options) -> KbucketFileSystem:
        """A fresh file system (fsspec would hand back a cached one for the same options)."""
        return KbucketFileSystem(hub=self.hub.url, skip_instance_cache=True, **options)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with Network(tmp_path_factory.mktemp("fsspec")) as nodes:
        yield Net(nodes)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """kb-get's cache in tmp_path, no KBUCKET_URL unless a test sets it."""
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    monkeypatch.delenv("KBUCKET_NO_CACHE", raising=False)
    return tmp_path / "cache"


def test_the_entry_point_registers_both_protocols(tmp_path):
    """fsspec finds the classes through the installed package's metadata (nothing imported first)."""
    code = ("import fsspec; print(fsspec.get_filesystem_class('kbucket').__name__,"
            " fsspec.get_filesystem_class('sha1').__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["KbucketFileSystem", "Sha1FileSystem"]
    assert fsspec.__name__ in sys.modules and "kbucket" in (ROOT / "pyproject.toml").read_text()


def test_fsspec_open_reads_a_file_with_the_hub_from_kbucket_url(net, monkeypatch):
    monkeypatch.setenv("KBUCKET_URL", net.hub.url)
    with fsspec.open(net.url("sp ace/f #1?.txt"), skip_instance_cache=True) as f:
        assert f.read() == b"awkward name\n"
    with fsspec.open(net.url("dataset1/params.json"), mode="rt", hub=net.hub.url) as f:
        assert f.read() == net.contents["dataset1/params.json"].decode()


def test_ls_info_find_glob_walk(net):
    fs = net.fs()
    node = net.node_id
    names = fs.ls(net.url(""), detail=False)
    assert sorted(names) == sorted(f"{node}/{n}" for n in
                                   ["dataset1", "big.bin", "tamper.bin", "sp ace", "sub", "empty.dat"])
    info = fs.info(net.url("dataset1/raw.mda"))
    raw = net.contents["dataset1/raw.mda"]
    assert info == {"name": f"{node}/dataset1/raw.mda", "size": len(raw), "type": "file",
                    "sha1": hashlib.sha1(raw).hexdigest(), "url": net.url("dataset1/raw.mda")}
    assert fs.info(f"kbucket://{node}/sub/deep")["type"] == "directory"
    assert fs.isdir(net.url("sub")) and fs.isfile(net.url("sub/deep/leaf.txt"))
    assert fs.size(net.url("empty.dat")) == 0
    everything = fs.find(net.url(""))
    assert sorted(p[len(node) + 1:] for p in everything) == sorted(net.contents)
    assert fs.glob(f"kbucket://{node}/dataset1/*.csv") == [f"{node}/dataset1/geom.csv"]
    assert fs.glob(f"kbucket://{node}/**/leaf.txt") == [f"{node}/sub/deep/leaf.txt"]
    walked = {root: files for root, _, files in fs.walk(net.url("sub"))}
    assert walked == {f"{node}/sub": [], f"{node}/sub/deep": ["leaf.txt"]}
    assert not fs.exists(net.url("nope.txt"))
    with pytest.raises(FileNotFoundError):
        fs.info(net.url("nope/nope.txt"))
    with pytest.raises(FileNotFoundError):
        fs.ls("kbucket://000000000000/")


def test_seek_and_read_by_range_requests(net):
    fs = net.fs(block_size=MiB)
    big = net.contents["big.bin"]
    with fs.open(net.url("big.bin")) as f:
        f.seek(5 * MiB + 3)
        assert f.read(1000) == big[5 * MiB + 3: 5 * MiB + 1003]
        assert fs.stats.range_requests == 1  # the read and its read-ahead block in one request
        assert f.read(2000) == big[5 * MiB + 1003: 5 * MiB + 3003]  # from the read-ahead block
        assert fs.stats.range_requests == 1
        f.seek(-10, 2)
        assert f.read() == big[-10:]
        assert fs.stats.range_requests == 2
        assert not f.verified  # a range is not the whole file
    assert fs.stats.routes == {"direct": 2}  # the share itself, not the hub's tunnel
    assert fs.stats.bytes_fetched < 2 * MiB + 3000 + 10


def test_cat_file_ranges(net):
    fs = net.fs()
    big = net.contents["big.bin"]
    url = net.url("big.bin")
    assert fs.cat_file(url, 10, 20) == big[10:20]
    assert fs.cat_file(url, -100) == big[-100:]
    assert fs.cat_file(url, 100, -100) == big[100:-100]
    assert fs.cat_file(url, len(big) - 5, len(big) + 100) == big[-5:]
    assert fs.cat_file(url, 50, 10) == b""
    assert fs.cat_file(net.url("empty.dat")) == b""
    assert fs.cat(net.url("dataset1/geom.csv")) == net.contents["dataset1/geom.csv"]
    assert fs.read_block(url, 1000, 50) == big[1000:1050]


def test_whole_reads_are_verified(net):
    fs = net.fs(block_size=MiB)
    big = net.contents["big.bin"]
    assert fs.cat_file(net.url("big.bin")) == big
    with fs.open(net.url("big.bin")) as f:
        chunks = []
        while chunk := f.read(3 * MiB):
            chunks.append(chunk)
        assert b"".join(chunks) == big and f.verified


def test_a_wrong_byte_is_an_error_never_data(net):
    fs = net.fs(block_size=MiB)
    url = net.url("tamper.bin")
    good = net.contents["tamper.bin"]
    fs.info(url)  # resolved before the share's file changes: its SHA-1 is the good one
    fs.resolve_file(url)
    path = net.share_dir / "tamper.bin"
    before = path.stat()
    bad = bytearray(good)
    bad[2 * MiB + 100] ^= 0x01  # one bit of one byte
    try:
        path.write_bytes(bytes(bad))
        with pytest.raises(IntegrityError, match="SHA-1 mismatch"):
            fs.cat_file(url)
        with fs.open(url) as f:
            assert f.read(MiB) == good[:MiB]  # a range cannot be checked: it is what was asked
            with pytest.raises(IntegrityError, match="SHA-1 mismatch"):
                f.read()  # the read that reaches the end gives no bytes
            with pytest.raises(IntegrityError):
                f.read(10)
        with pytest.raises(OSError):  # an OSError too, as fsspec's callers expect
            fs.open(url).read()
        with pytest.raises(IntegrityError):
            fs.get_file(url, str(net.share_dir.parent / "out.bin"))
        assert not (net.share_dir.parent / "out.bin").exists()
    finally:
        path.write_bytes(good)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_falls_back_to_the_hub_when_the_share_cannot_be_reached(net):
    fs = net.fs()
    real = fs.resolve_file(net.url("big.bin"))
    dead = f"http://127.0.0.1:{free_port()}/{net.node_id}/download/big.bin"
    via_hub = [u for u in real.download_urls if u.startswith(net.hub.url)]
    assert via_hub and real.route_of(real.download_urls[0]) == "direct"
    fs._files[f"{net.node_id}/big.bin"] = Resolution(
        real.url, "file", real.name, real.node_id, real.path, real.sha1, real.size,
        [dead, *via_hub], routes={dead: "direct", via_hub[0]: "hub"})
    assert fs.cat_file(net.url("big.bin"), 100, 200) == net.contents["big.bin"][100:200]
    assert fs.stats.routes == {"hub": 1}


def test_sha1_urls(net, monkeypatch):
    data = net.contents["dataset1/geom.csv"]
    sha1 = hashlib.sha1(data).hexdigest()
    monkeypatch.setenv("KBUCKET_URL", net.hub.url)
    with fsspec.open(f"sha1://{sha1}/geom.csv", skip_instance_cache=True) as f:
        assert f.read() == data and f.verified
    fs = Sha1FileSystem(hub=net.hub.url, skip_instance_cache=True)
    assert fs.info(f"sha1://{sha1}")["size"] == len(data)
    assert fs.cat_file(f"sha1://{sha1}", 2, 5) == data[2:5]
    with pytest.raises(FileNotFoundError):
        fs.info("sha1://" + "0" * 40)


def test_kb_gets_cache_is_reused_never_copied(net, own_cache, tmp_path):
    url = net.url("big.bin")
    big = net.contents["big.bin"]
    sha1 = hashlib.sha1(big).hexdigest()
    fs = net.fs(local_cache="fill")
    with fs.open(url) as f:  # downloads into kb-get's cache, then reads it there
        f.seek(MiB)
        assert f.read(10) == big[MiB: MiB + 10]
    entry = own_cache / sha1[0] / sha1[1:3] / sha1
    assert entry.read_bytes() == big
    assert fs.local_path(url) == str(entry)
    reuse = net.fs()
    assert reuse.cat_file(url) == big
    assert reuse.stats.range_requests == 0 and reuse.stats.from_cache == 1
    off = net.fs(local_cache="off")
    assert off.cat_file(url, 0, 10) == big[:10] and off.stats.from_cache == 0
    reuse.get_file(url, str(tmp_path / "copy.bin"))  # kb-get's verified copy out of the cache
    assert (tmp_path / "copy.bin").read_bytes() == big and reuse.stats.range_requests == 0
    # A damaged entry: the whole read fails and the entry is dropped; the next read is good again.
    damaged = bytearray(big)
    damaged[-1] ^= 0xFF
    entry.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="SHA-1 mismatch"):
        net.fs().cat_file(url)
    assert not entry.exists()
    assert net.fs().cat_file(url) == big


def test_fsspec_caching_layers_work_on_top(net, tmp_path):
    storage = tmp_path / "simplecache"
    with fsspec.open(f"simplecache::{net.url('dataset1/raw.mda')}", kbucket={"hub": net.hub.url},
                     simplecache={"cache_storage": str(storage)}) as f:
        assert f.read() == net.contents["dataset1/raw.mda"]
    assert [p.read_bytes() for p in storage.iterdir() if p.is_file() and p.stat().st_size > 1000] \
        == [net.contents["dataset1/raw.mda"]]


def test_pandas_reads_geom_csv(net, monkeypatch):
    pandas = pytest.importorskip("pandas")
    import numpy as np

    frame = pandas.read_csv(net.url("dataset1/geom.csv"), header=None,
                            storage_options={"hub": net.hub.url})
    expected = np.loadtxt(net.share_dir / "dataset1" / "geom.csv", delimiter=",", ndmin=2)
    assert frame.shape == (8, 2) and (frame.to_numpy() == expected).all()


def test_read_only(net):
    fs = net.fs()
    with pytest.raises(OSError, match="read-only"):
        fs.open(net.url("new.txt"), "wb")
    with pytest.raises(OSError, match="read-only"):
        fs.rm(net.url("big.bin"))
    with pytest.raises(ValueError):
        KbucketFileSystem(hub=net.hub.url, local_cache="sometimes", skip_instance_cache=True)
