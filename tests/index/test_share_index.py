"""ShareIndex: refresh as a stat walk, deltas, node data, prv, and the cache across instances."""
from __future__ import annotations

import os
import time

import pytest

from kbtools.errors import KbError
from kbtools.index.share_index import ShareIndex, file_record
from kbtools.index.paths import UnsafePath

from .trees import BIG_BIN, ONE_TXT, age_files, make_share, sha1, write


@pytest.fixture
def share(tmp_path):
    root = tmp_path / "share"
    expected = make_share(root, tmp_path / "outside")
    return root, expected


def test_first_refresh_indexes_every_file_with_the_right_digests(share):
    root, expected = share
    with ShareIndex(root) as index:
        delta = index.refresh()
        assert sorted(delta.added) == sorted(expected)
        assert delta.hashed == len(expected) and delta.from_cache == 0 and not delta.errors
        assert {r.relpath: r.sha1 for r in index.records()} == {k: sha1(v) for k, v in expected.items()}
        assert delta.files == len(expected) and delta.bytes == sum(map(len, expected.values()))


def test_unchanged_tree_hashes_nothing_and_reports_no_change(share):
    root, _ = share
    with ShareIndex(root) as index:
        index.refresh()
        data_before = index.files_by_sha1()
        delta = index.refresh()
        assert not delta and delta.hashed == 0
        assert index.files_by_sha1() is data_before  # not rebuilt


def test_a_new_instance_uses_the_cache(share):
    root, expected = share
    ShareIndex(root).refresh()
    with ShareIndex(root) as index:
        delta = index.refresh()
        assert delta.hashed == 0 and delta.from_cache == len(expected)
        assert sorted(delta.added) == sorted(expected)  # new to this instance


def test_changes_are_seen(share):
    root, _ = share
    with ShareIndex(root) as index:
        index.refresh()
        write(root / "sub" / "one.txt", b"changed!\n")
        write(root / "new file #1.txt", b"new")
        os.remove(root / "empty")
        age_files(root / "sub" / "one.txt", root / "new file #1.txt")
        delta = index.refresh()
        assert delta.added == ["new file #1.txt"]
        assert "sub/one.txt" in delta.changed
        assert delta.removed == ["empty"]
        assert delta.hashed == 3  # and sub/link-in.txt, which points to sub/one.txt
        assert index.record("sub/one.txt").sha1 == sha1(b"changed!\n")
        assert index.prv("empty") is None


def test_files_by_sha1_is_the_node_data_shape(share):
    root, expected = share
    with ShareIndex(root) as index:
        index.refresh()
        data = index.files_by_sha1()
    assert data[sha1(BIG_BIN)] == {"path": "sub/deeper/big.bin", "size": len(BIG_BIN)}
    # Same content at several paths: the first path in sorted order.
    assert data[sha1(ONE_TXT)] == {"path": "sub/link-in.txt", "size": len(ONE_TXT)}
    assert set(data) == {sha1(v) for v in expected.values()}


def test_prv_and_prvdir(share):
    root, expected = share
    with ShareIndex(root) as index:
        assert index.prv("sub/one.txt") is None  # not indexed yet
        index.refresh()
        prv = index.prv("sub/one.txt")
        assert prv["original_checksum"] == sha1(ONE_TXT)
        assert prv["original_path"] == "sub/one.txt"
        assert index.prv(".kbucket/private.pem") is None
        assert index.prv("../outside/secret.txt") is None
        tree = index.prvdir()
    assert tree["dirs"]["sub"]["dirs"]["deeper"]["files"]["big.bin"]["original_size"] == len(BIG_BIN)
    assert "new\nline.txt" in tree["files"]
    assert ".git" not in tree["dirs"] and "node_modules" not in tree["dirs"]


def test_extra_digests_are_computed_once_then_cached(share):
    root, expected = share
    ShareIndex(root).refresh()
    with ShareIndex(root, digests=["sha256"]) as index:
        delta = index.refresh()
        assert delta.hashed == len(expected)  # sha256 was not in the cache yet
    with ShareIndex(root, digests=["sha256"]) as index:
        assert index.refresh().hashed == 0
        assert index.record("empty").sha256 == \
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_an_unreadable_file_is_an_error_outcome(tmp_path, deny):
    write(tmp_path / "ok", "ok")
    write(tmp_path / "locked", "x")
    deny(tmp_path / "locked")
    delta = ShareIndex(tmp_path).refresh()
    assert [(e.relpath, e.error_code, e.error_message) for e in delta.errors] == \
        [("locked", "file-unreadable", "cannot read: Permission denied")]


def test_not_a_directory(tmp_path):
    with pytest.raises(KbError):
        ShareIndex(tmp_path / "missing")


def test_file_record_uses_the_cache_when_fresh(share):
    root, _ = share
    ShareIndex(root).refresh()
    rec = file_record(root, "sub/deeper/big.bin")
    assert rec.sha1 == sha1(BIG_BIN)
    write(root / "sub" / "deeper" / "big.bin", b"other")
    assert file_record(root, "sub/deeper/big.bin").sha1 == sha1(b"other")
    with pytest.raises(UnsafePath):
        file_record(root, "link-out.txt")


def test_future_mtimes_are_not_hashed_on_every_refresh(tmp_path):
    write(tmp_path / "from-the-future", "skewed clock")
    later = time.time() + 3600
    os.utime(tmp_path / "from-the-future", (later, later))
    with ShareIndex(tmp_path) as index:
        assert index.refresh().hashed == 1
        assert index.refresh().hashed == 0


def test_a_file_written_just_before_indexing_is_hashed_again(tmp_path):
    write(tmp_path / "fresh", "just written")
    with ShareIndex(tmp_path) as index:
        assert index.refresh().hashed == 1
        delta = index.refresh()
        assert delta.hashed == 1 and not delta  # racily clean: hashed again, unchanged
