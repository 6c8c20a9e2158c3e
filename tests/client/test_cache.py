"""The SHA-1 cache: layout, verification on use, independent copies, atomic placement, info and clear."""
from __future__ import annotations

import hashlib
import os

from kbtools.client.cache import (
    Sha1Cache,
    cache_disabled,
    copy_file,
    default_cache_dir,
    file_matches,
    place_file,
)


def test_layout_is_the_original_clients(tmp_path):
    sha1 = "0e0641d1e71dc72578c5d7525d7c26c9c0901b88"
    assert Sha1Cache(tmp_path).path_for(sha1) == tmp_path / "0" / "e0" / sha1


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KBUCKET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "kbtools" / "sha1"


def test_store_then_lookup_verifies_and_drops_a_changed_entry(tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"some bytes")
    sha1 = hashlib.sha1(b"some bytes").hexdigest()
    cache = Sha1Cache(tmp_path / "cache")
    cache.store(source, sha1)
    assert cache.lookup(sha1, 10) == cache.path_for(sha1)
    assert cache.lookup(sha1, 11) is None  # wrong size: dropped
    assert not cache.path_for(sha1).exists()
    cache.store(source, sha1)
    cache.path_for(sha1).write_bytes(b"some bytez")  # changed behind the cache's back
    assert cache.lookup(sha1) is None and not cache.path_for(sha1).exists()


def test_editing_a_stored_file_in_place_changes_nothing_in_the_cache(tmp_path):
    source = tmp_path / "download"
    source.write_bytes(b"some bytes")
    sha1 = hashlib.sha1(b"some bytes").hexdigest()
    cache = Sha1Cache(tmp_path / "cache")
    cache.store(source, sha1)
    with open(source, "r+b") as handle:  # an in-place edit: same inode
        handle.write(b"S")
    with open(source, "ab") as handle:  # and `>>`
        handle.write(b" more")
    assert cache.path_for(sha1).read_bytes() == b"some bytes"
    assert os.stat(cache.path_for(sha1)).st_nlink == 1


def test_copies_out_of_the_cache_are_independent_files(tmp_path):
    data = b"cached content\n" * 100
    sha1 = hashlib.sha1(data).hexdigest()
    cache = Sha1Cache(tmp_path / "cache")
    (tmp_path / "src").write_bytes(data)
    cache.store(tmp_path / "src", sha1)
    one, two = tmp_path / "one", tmp_path / "two"
    assert cache.copy_out(sha1, len(data), one) and cache.copy_out(sha1, len(data), two)
    with open(one, "r+b") as handle:
        handle.write(b"X")
    with open(two, "ab") as handle:
        handle.write(b"appended")
    assert cache.path_for(sha1).read_bytes() == data
    assert one.read_bytes() == b"X" + data[1:] and two.read_bytes() == data + b"appended"
    inodes = {os.stat(p).st_ino for p in (one, two, cache.path_for(sha1))}
    assert len(inodes) == 3


def test_a_corrupted_entry_is_never_copied_out(tmp_path):
    data = b"good bytes"
    sha1 = hashlib.sha1(data).hexdigest()
    cache = Sha1Cache(tmp_path / "cache")
    (tmp_path / "src").write_bytes(data)
    cache.store(tmp_path / "src", sha1)
    cache.path_for(sha1).write_bytes(b"evil bytes")  # same size, other bytes
    target = tmp_path / "out" / "t"
    assert not cache.copy_out(sha1, len(data), target)
    assert not target.exists() and not cache.path_for(sha1).exists()
    assert list(target.parent.iterdir()) == []  # no temporary left either


def test_the_copy_is_verified_not_only_the_entry(tmp_path, monkeypatch):
    """Bytes that change between a check of the entry and the copy never reach the target."""
    from kbtools.client import cache as cache_module

    data = b"good bytes"
    sha1 = hashlib.sha1(data).hexdigest()
    cache = Sha1Cache(tmp_path / "cache")
    (tmp_path / "src").write_bytes(data)
    cache.store(tmp_path / "src", sha1)
    real_copy = cache_module.copy_file

    def copy_then_corrupt(source, destination):
        mode = real_copy(source, destination)
        with open(destination, "r+b") as handle:
            handle.write(b"E")
        return mode

    monkeypatch.setattr(cache_module, "copy_file", copy_then_corrupt)
    target = tmp_path / "t"
    assert not cache.copy_out(sha1, len(data), target) and not target.exists()


def test_copy_file_falls_back_to_a_plain_copy(tmp_path, monkeypatch):
    import errno

    def no_copy_file_range(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", no_copy_file_range)
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "s").write_bytes(data)
    assert copy_file(tmp_path / "s", tmp_path / "d") in ("reflink", "copy")
    assert (tmp_path / "d").read_bytes() == data


def test_usage_and_clear_touch_only_the_caches_own_files(tmp_path):
    root = tmp_path / "cache"
    cache = Sha1Cache(root)
    sizes = {}
    for text in (b"one", b"three", b""):
        (tmp_path / "src").write_bytes(text)
        sha1 = hashlib.sha1(text).hexdigest()
        cache.store(tmp_path / "src", sha1)
        sizes[sha1] = len(text)
    foreign = [root / "notes.txt", root / "a" / "bc" / "mine.txt", root / "zz" / "x"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not the cache's")
    leftover = cache.path_for(next(iter(sizes))).with_name("." + next(iter(sizes)) + ".123.0badcafe.tmp")
    leftover.write_bytes(b"half")
    assert cache.usage().record() == {"path": str(root), "files": 3, "bytes": 8}
    removed = cache.clear()
    assert (removed.files, removed.bytes) == (3, 8)
    assert cache.usage().files == 0 and not leftover.exists()
    assert all(path.read_text() == "not the cache's" for path in foreign)
    assert Sha1Cache(tmp_path / "absent").usage().record() == {"path": str(tmp_path / "absent"),
                                                               "files": 0, "bytes": 0}


def test_the_cache_can_be_turned_off_by_the_environment(monkeypatch):
    monkeypatch.delenv("KBUCKET_NO_CACHE", raising=False)
    assert not cache_disabled()
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("KBUCKET_NO_CACHE", value)
        assert cache_disabled() is off


def test_place_file_replaces_the_target_and_leaves_no_temporary(tmp_path):
    source, target = tmp_path / "s", tmp_path / "d" / "t"
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")
    place_file(source, target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["t"]
    assert file_matches(target, hashlib.sha1(b"new").hexdigest(), 3)
