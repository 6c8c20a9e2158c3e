"""The snapshot of a share's digests: intact or ignored, stale entries never trusted, whole
directories taken only when nothing in them changed."""
from __future__ import annotations

import os

from kbtools.index import snapshot as snap
from kbtools.index.cache import IndexCache
from kbtools.index.share_index import CachedDir, FileOutcome, ShareIndex

from .trees import age, age_files, make_share, sha1, write


def _index(root, **kwargs):
    """(outcomes as (relpath, sha1, from_cache), delta) of a fresh instance's first scan."""
    with ShareIndex(root, **kwargs) as index:
        outcomes = [(o.relpath, o.record.sha1 if o.record else None, o.from_cache)
                    for o in index.scan()]
        return outcomes, index.last_delta


def _flat_tree(root, n=5):
    for d in ("a", "b"):
        for i in range(n):
            write(root / d / f"f{i}.txt", f"{d} {i}\n")
    age(root)


def test_round_trip_and_damage_is_ignored(tmp_path):
    (tmp_path / ".kbucket").mkdir()
    data = {"": [["x"], [(1, 2, 3)], True, (), {}, b""]}
    snap.write_snapshot(tmp_path, data)
    assert snap.read_snapshot(tmp_path) == data
    raw = snap.snapshot_path(tmp_path).read_bytes()
    for broken in (raw[:-1], raw[:snap.HEADER_SIZE], raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:],
                   b"not a snapshot" + raw, b""):
        snap.snapshot_path(tmp_path).write_bytes(broken)
        assert snap.read_snapshot(tmp_path) is None
    assert not list((tmp_path / ".kbucket").glob("*.tmp"))


def test_snapshot_gives_the_same_outcomes_as_the_sqlite_rows(tmp_path):
    root = tmp_path / "share"
    expected = make_share(root, tmp_path / "outside")
    age(root)
    first, _ = _index(root)
    assert snap.snapshot_path(root).is_file()
    from_snapshot, delta = _index(root)
    assert delta.hashed == 0 and delta.from_cache == len(expected)
    snap.remove_snapshot(root)
    from_sqlite, _ = _index(root)
    assert from_snapshot == from_sqlite == [(p, s, True) for p, s, _ in first]
    assert {p: s for p, s, _ in first} == {p: sha1(v) for p, v in expected.items()}


def test_unchanged_directories_come_whole_and_their_records_are_kept(tmp_path):
    _flat_tree(tmp_path)
    _index(tmp_path)
    with ShareIndex(tmp_path) as index:
        items = list(index.scan_blocks())
        assert [type(i) for i in items] == [CachedDir, CachedDir]
        assert items[0].prefix == "a/" and items[0].names == [f"f{i}.txt" for i in range(5)]
        assert [r.relpath for r in items[1].records()] == [f"b/f{i}.txt" for i in range(5)]
        walk_order = [f"{d}/f{i}.txt" for d in "ab" for i in range(5)]
        assert [r.relpath for r in index.records()] == walk_order
        assert index.record("b/f3.txt").sha1 == sha1(b"b 3\n")
        assert index.last_delta.files == 10 and index.last_delta.from_cache == 10


def test_a_stale_snapshot_is_checked_file_by_file_against_sqlite(tmp_path):
    _flat_tree(tmp_path)
    _index(tmp_path)
    old = snap.snapshot_path(tmp_path).read_bytes()
    age_files(write(tmp_path / "a" / "f1.txt", "new content, longer\n"))
    outcomes, delta = _index(tmp_path)
    assert delta.hashed == 1
    # The snapshot of before the change comes back (as after a crash between the SQLite
    # commit and the snapshot's rename): its entry for a/f1.txt no longer matches the file.
    snap.snapshot_path(tmp_path).write_bytes(old)
    again, delta = _index(tmp_path)
    assert delta.hashed == 0 and delta.from_cache == 10
    assert dict((p, s) for p, s, _ in again)["a/f1.txt"] == sha1(b"new content, longer\n")
    assert snap.snapshot_path(tmp_path).read_bytes() != old  # written anew


def test_a_damaged_snapshot_falls_back_to_sqlite_and_is_rewritten(tmp_path):
    _flat_tree(tmp_path)
    _index(tmp_path)
    path = snap.snapshot_path(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # a write cut short (power loss after the rename)
    (path.parent / f"{path.name}.12345.tmp").write_bytes(raw[:10])  # a writer killed mid-write
    outcomes, delta = _index(tmp_path)
    assert delta.hashed == 0 and delta.from_cache == 10
    assert snap.read_snapshot(tmp_path) is not None


def test_same_size_and_mtime_but_a_new_inode_is_hashed_again(tmp_path):
    _flat_tree(tmp_path)
    _index(tmp_path)
    target = tmp_path / "a" / "f2.txt"
    st = target.stat()
    replacement = tmp_path / "a" / ".replacement"
    replacement.write_bytes(b"A 2\n")  # same size, other content
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, target)
    assert target.stat().st_ino != st.st_ino and target.stat().st_size == st.st_size
    outcomes, delta = _index(tmp_path)
    assert delta.hashed == 1 and delta.from_cache == 9
    assert ("a/f2.txt", sha1(b"A 2\n"), False) in outcomes


def test_a_racily_clean_directory_is_never_taken_whole(tmp_path):
    write(tmp_path / "d" / "fresh", "just written")
    _index(tmp_path)
    entry = snap.read_snapshot(tmp_path)["d"]
    assert entry[snap.WHOLE] is False
    _, delta = _index(tmp_path)
    assert delta.hashed == 1


def test_added_removed_and_retyped_entries_leave_the_whole_path(tmp_path):
    _flat_tree(tmp_path)
    _index(tmp_path)
    age_files(write(tmp_path / "a" / "f9.txt", "added"))
    os.remove(tmp_path / "b" / "f0.txt")
    os.remove(tmp_path / "b" / "f1.txt")
    os.symlink("f2.txt", tmp_path / "b" / "f1.txt")  # a symlink in place of a file
    outcomes, delta = _index(tmp_path)
    assert [p for p, _, c in outcomes if not c] == ["a/f9.txt", "b/f1.txt"]
    assert ("b/f1.txt", sha1(b"b 2\n"), False) in outcomes  # the link, hashed through it
    assert "b/f0.txt" not in [p for p, _, _ in outcomes]
    assert "b/f0.txt" not in IndexCache(tmp_path).load()
    assert "b/f0.txt" not in [r for r in snap.read_snapshot(tmp_path)["b"][snap.NAMES]]
    assert snap.read_snapshot(tmp_path)["b"][snap.WHOLE]  # whole, but the link fails the check
    with ShareIndex(tmp_path) as index:
        assert [type(i) for i in index.scan_blocks()].count(CachedDir) == 1  # only a/


def test_extra_digests_are_never_taken_from_a_snapshot_without_them(tmp_path):
    _flat_tree(tmp_path, n=2)
    _index(tmp_path)
    with ShareIndex(tmp_path, digests=["sha256"]) as index:
        items = list(index.scan_blocks())
        assert all(type(i) is FileOutcome and not i.from_cache for i in items)
        assert all(i.record.sha256 for i in items)
    with ShareIndex(tmp_path, digests=["sha256"]) as index:
        assert [type(i) for i in index.scan_blocks()] == [CachedDir, CachedDir]


def test_no_cache_writes_no_snapshot(tmp_path):
    _flat_tree(tmp_path, n=1)
    _index(tmp_path, use_cache=False)
    assert not (tmp_path / ".kbucket").exists()
