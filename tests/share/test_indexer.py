"""IndexKeeper (the index kept fresh while hosting) and kb-index records read on stdin."""
from __future__ import annotations

import io
import json
from pathlib import Path

from kbtools.index.share_index import ShareIndex
from kbtools.protocol.objecthash import object_hash
from kbtools.share.indexer import MAX_INTERVAL, IndexKeeper, read_index_records
from tests.index.trees import sha1, write
from tests.waiting import wait_for


def test_keeper_publishes_node_data_with_its_hash_and_follows_changes(tmp_path: Path):
    write(tmp_path / "a.txt", b"a")
    changes = []
    with ShareIndex(tmp_path) as index:
        keeper = IndexKeeper(index, lambda delta, n: changes.append((delta, n)), interval=0.1)
        keeper.start()
        try:
            wait_for(lambda: sha1(b"a") in keeper.node_data().data["files_by_sha1"])
            first = keeper.node_data()
            assert first.data_hash == object_hash(first.data)
            write(tmp_path / "sub" / "b.txt", b"b")
            wait_for(lambda: sha1(b"b") in keeper.node_data().data["files_by_sha1"])
            second = keeper.node_data()
            assert second.version > first.version and second.data_hash == object_hash(second.data)
            assert second.data["files_by_sha1"][sha1(b"b")] == {"path": "sub/b.txt", "size": 1}
            (tmp_path / "a.txt").unlink()
            wait_for(lambda: sha1(b"a") not in keeper.node_data().data["files_by_sha1"])
            assert any("a.txt" in delta.removed for delta, _ in changes)
            assert changes[0][1] == 1  # the first refresh is always announced
        finally:
            keeper.stop()


def test_a_slow_walk_spaces_the_walks_out(tmp_path: Path):
    with ShareIndex(tmp_path) as index:
        keeper = IndexKeeper(index, lambda delta, n: None, interval=2.0)
        keeper.walk_seconds = 0.01
        assert keeper.next_interval() == 2.0
        keeper.walk_seconds = 1.0
        assert keeper.next_interval() == 10.0
        keeper.walk_seconds = 100.0
        assert keeper.next_interval() == MAX_INTERVAL


class _Keeper:
    def __init__(self) -> None:
        self.holds = self.refreshes = 0

    def hold(self) -> None:
        self.holds += 1

    def refresh_soon(self) -> None:
        self.refreshes += 1


def test_kb_index_records_on_stdin_hold_the_walk_and_trigger_a_refresh():
    lines = [
        {"type": "file", "path": "a", "size": 1, "mtime": 1.0, "sha1": "a" * 40, "fcs": "head1000-" + "a" * 40,
         "cached": False},
        {"type": "file", "path": "b", "size": 1, "mtime": 1.0, "status": "error", "code": "file-unreadable", "message": "x"},
        {"type": "dataset", "path": "d"},
        {"type": "summary"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n\n"
    keeper, batches = _Keeper(), []
    read_index_records(io.StringIO(text), keeper, batches.append)  # type: ignore[arg-type]
    assert batches[0] == {"event": "stdin", "files": 1, "errors": 1, "ignored": 0, "end_of_input": False}
    assert batches[1] == {"event": "stdin", "files": 1, "errors": 1, "ignored": 1, "end_of_input": True}
    assert keeper.holds == 5 and keeper.refreshes == 2
    keeper, batches = _Keeper(), []
    read_index_records(io.StringIO(""), keeper, batches.append)  # type: ignore[arg-type]
    assert batches == [] and keeper.refreshes == 0
