"""The digest cache: round trip, validity rules, damage and concurrent users."""
from __future__ import annotations


from kbtools.index.cache import COMMIT_ROWS, RACY_MARGIN_NS, FileRecord, IndexCache, cache_path

SHA = "a" * 40


def rec(relpath: str, mtime_ns: int = 1_000_000_000, hashed_at_ns: int | None = None) -> FileRecord:
    return FileRecord(relpath, 5, mtime_ns, 42, SHA, "b" * 40, None, None,
                      hashed_at_ns if hashed_at_ns is not None else mtime_ns + RACY_MARGIN_NS)


def test_round_trip_and_remove(tmp_path):
    cache = IndexCache(tmp_path)
    cache.put(rec("a b/#?.txt"))
    cache.put(rec("ü\nx"))
    cache.flush()
    assert cache_path(tmp_path).is_file()
    again = IndexCache(tmp_path)
    assert set(again.load()) == {"a b/#?.txt", "ü\nx"}
    assert again.get("ü\nx") == rec("ü\nx")
    again.remove(["ü\nx"])
    again.close()
    assert set(IndexCache(tmp_path).load()) == {"a b/#?.txt"}


def test_record_validity_needs_same_stat_and_an_old_enough_mtime():
    r = rec("f")
    assert r.matches(5, r.mtime_ns, 42)
    assert not r.matches(6, r.mtime_ns, 42)
    assert not r.matches(5, r.mtime_ns + 1, 42)
    assert not r.matches(5, r.mtime_ns, 43)
    # Hashed in the same second as the last write: the file may change again unseen.
    racy = rec("f", hashed_at_ns=r.mtime_ns + RACY_MARGIN_NS - 1)
    assert not racy.matches(5, r.mtime_ns, 42)
    racy = rec("f", hashed_at_ns=r.mtime_ns - 1)  # written just after hashing began
    assert not racy.matches(5, r.mtime_ns, 42)
    # An mtime far in the future (clock skew): any later write would move it, so it is trusted
    # (else such a file would be hashed again on every refresh).
    future = rec("f", hashed_at_ns=r.mtime_ns - RACY_MARGIN_NS - 1)
    assert future.matches(5, r.mtime_ns, 42)


def test_rows_are_committed_in_batches_without_flush(tmp_path):
    writer = IndexCache(tmp_path)
    for i in range(COMMIT_ROWS):
        writer.put(rec(f"f{i}"))
    # Another connection (another process, as after a kill) sees the committed batch.
    assert len(IndexCache(tmp_path).load()) == COMMIT_ROWS


def test_a_damaged_cache_is_set_aside(tmp_path):
    path = cache_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    cache = IndexCache(tmp_path)
    assert cache.enabled and cache.load() == {}
    cache.put(rec("f"))
    cache.close()
    assert set(IndexCache(tmp_path).load()) == {"f"}
    assert (path.parent / (path.name + ".broken")).exists()


def test_an_unwritable_place_disables_the_cache(tmp_path):
    (tmp_path / ".kbucket").write_text("a file where the directory should be")
    cache = IndexCache(tmp_path)
    assert not cache.enabled
    cache.put(rec("f"))
    assert cache.load() == {} and cache.get("f") is None


def test_create_false_does_not_create_anything(tmp_path):
    cache = IndexCache(tmp_path, create=False)
    assert not cache.enabled
    assert not (tmp_path / ".kbucket").exists()


def test_two_users_at_once(tmp_path):
    # A share and a kb-index run: each commits its own rows; neither loses the other's.
    a, b = IndexCache(tmp_path), IndexCache(tmp_path)
    a.put(rec("a"))
    a.flush()
    b.put(rec("b"))
    b.flush()
    a.put(rec("c"))
    a.flush()
    assert set(IndexCache(tmp_path).load()) == {"a", "b", "c"}
