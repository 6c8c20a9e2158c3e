"""The SHA-1 cache: layout, verification on use, atomic placement."""
from __future__ import annotations

import hashlib

from kbtools.client.cache import Sha1Cache, default_cache_dir, file_matches, place_file


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
    source.write_bytes(b"some bytez")  # a hard-linked target edited in place
    assert cache.lookup(sha1) is None and not cache.path_for(sha1).exists()


def test_place_file_replaces_the_target_and_leaves_no_temporary(tmp_path):
    source, target = tmp_path / "s", tmp_path / "d" / "t"
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")
    place_file(source, target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["t"]
    assert file_matches(target, hashlib.sha1(b"new").hexdigest(), 3)
