"""A share directory with every kind of hostile entry, and its HTTP API on a free loopback port."""
from __future__ import annotations

import http.client
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pytest

from kbtools.formats.sample import write_sample_dataset
from kbtools.index.share_index import ShareIndex
from kbtools.node.config import prepare_node
from kbtools.share.api import ShareApi, ShareContext, ShareServer
from tests.conftest import VECTORS
from tests.netfixtures import free_port
from tests.index.trees import BIG_BIN, ONE_TXT, WEIRD_NAMES, write

RECORDED = json.loads((VECTORS / "http.json").read_text())["http"]
SHARE_ID = json.loads((VECTORS / "http.json").read_text())["ids"]["share"]


def original_node(directory: Path, name: str = "share") -> None:
    """Copy a recorded original node's `.kbucket/` files into `directory`."""
    kb = directory / ".kbucket"
    kb.mkdir(parents=True, exist_ok=True)
    for f in ("kbnode.json", "private.pem", "public.pem"):
        shutil.copyfile(VECTORS / "nodes" / name / f, kb / f)


def build_share(root: Path, outside: Path) -> Path:
    """The files of the recorded share plus hostile entries (hidden, symlinks out, odd names)."""
    write(root / "one.txt", ONE_TXT)
    write(root / "big.bin", BIG_BIN)
    write(root / "d" / "two.txt", b"two text\n")
    write(root / "sub" / ".hidden2", b"hidden below the root")
    write(root / ".secret", b"hidden at the root")
    write(root / "node_modules" / "x.js", b"never served")
    write(root / "sub" / ".git" / "config", b"[core]")
    for name in WEIRD_NAMES:
        write(root / "odd" / name, name.encode())
    write(outside / "passwd", b"root:x:0:0")
    os.symlink(outside / "passwd", root / "out-link")
    os.symlink(outside, root / "out-dir")
    os.symlink(root / "one.txt", root / "in-link.txt")
    os.symlink(root / ".kbucket", root / "kb-link")
    write(root / "one.txt.gz", b"not the file")
    write_sample_dataset(root / "dataset1", channels=4, samples=3000, samplerate=30000)
    return root


@dataclass
class Served:
    root: Path
    ctx: ShareContext
    server: ShareServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        """A raw request (the path goes out exactly as given: no normalisation)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, headers, body = self.get(path, **kw)
        assert headers["content-type"].startswith("application/json"), (path, status, body[:200])
        return status, json.loads(body)

    def file_path(self, rel: str) -> str:
        return f"/{self.ctx.node_id}/download/{quote(rel)}"


@contextmanager
def serving(tmp_path: Path, add_files: Callable[[Path], None] | None = None,
            set_up: Callable[[ShareContext], None] | None = None) -> Iterator[Served]:
    """The test share's files served on a free port, stopped at the end. ``add_files(root)`` runs
    before the index is made, ``set_up(ctx)`` before the server starts."""
    root = tmp_path / "share"
    root.mkdir()
    original_node(root)
    build_share(root, tmp_path / "outside")
    if add_files is not None:
        add_files(root)
    node = prepare_node(root, "leaf")
    index = ShareIndex(root)
    index.refresh()
    port = free_port()
    ctx = ShareContext(root, node.node_id, node.config, node.identity.public_pem, index,
                       f"http://127.0.0.1:{port}")
    if set_up is not None:
        set_up(ctx)
    server = ShareServer(ShareApi(ctx), "127.0.0.1", port)
    server.start()
    try:
        yield Served(root, ctx, server, port)
    finally:
        server.stop()
        index.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as share:
        yield share
