"""Fixtures of the client tests: a loopback share + hub over a small share directory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .loopback import Network

NAMES = ["hello.txt", "sub/deep.bin", "sp ace/f #1?.txt", "ünï cødé/naïve ✓.bin"]


def fill_share(root: Path) -> dict[str, bytes]:
    """Files with awkward names and sizes that cross several 1 MiB chunks."""
    contents = {
        "hello.txt": b"hello kbucket\n",
        "sub/deep.bin": os.urandom(3 * 1024 * 1024 + 12345),
        "sp ace/f #1?.txt": b"awkward name\n",
        "ünï cødé/naïve ✓.bin": os.urandom(70_000),
        "empty.dat": b"",
    }
    for rel, data in contents.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return contents


@pytest.fixture
def share_files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "share"
    root.mkdir()
    return root, fill_share(root)


@pytest.fixture
def network(share_files):
    root, _ = share_files
    net = Network(root).start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def contents(share_files) -> dict[str, bytes]:
    return share_files[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(path))
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    return path
