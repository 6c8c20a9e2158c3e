"""The stat walk: the original's skip rules, any filename, symlinks kept inside."""
from __future__ import annotations

import os

import pytest

from kbtools.index.walk import walk_share

from .trees import make_share, write


def test_walk_finds_exactly_the_indexable_files(tmp_path):
    share = tmp_path / "share"
    expected = make_share(share, tmp_path / "outside")
    result = walk_share(share)
    found = {e.relpath: e for e in result.files}
    assert set(found) == set(expected)
    for rel, data in expected.items():
        assert found[rel].size == len(data)
    assert not (tmp_path / "pwned").exists() and not (share / "pwned").exists()


def test_walk_reports_refused_symlinks_and_loops(tmp_path):
    share = tmp_path / "share"
    make_share(share, tmp_path / "outside")
    problems = {p.relpath: p.code for p in walk_share(share).problems}
    assert problems["link-out.txt"] == "symlink-outside"
    assert problems["link-out-dir"] == "symlink-outside"
    assert problems["link-to-key"] == "symlink-outside"
    assert problems["sub/deeper/loop"] == "symlink-loop"


def test_walk_lists_directories_and_is_sorted(tmp_path):
    for rel in ["b/2", "b/1", "a/x", "c"]:
        write(tmp_path / rel, rel)
    (tmp_path / "empty-dir").mkdir()
    result = walk_share(tmp_path)
    assert [e.relpath for e in result.files] == ["c", "a/x", "b/1", "b/2"]
    assert result.dirs == ["", "a", "b", "empty-dir"]


def test_walk_reports_names_that_are_not_utf8(tmp_path):
    raw = os.fsencode(tmp_path) + b"/bad-\xff-name"
    with open(raw, "wb") as fh:
        fh.write(b"x")
    write(tmp_path / "good", "g")
    result = walk_share(tmp_path)
    assert [e.relpath for e in result.files] == ["good"]
    assert [p.code for p in result.problems] == ["name-not-utf8"]


def test_walk_of_an_unreadable_directory_is_a_problem_not_a_crash(tmp_path, deny):
    write(tmp_path / "locked" / "f", "x")
    write(tmp_path / "open" / "g", "y")
    deny(tmp_path / "locked")
    result = walk_share(tmp_path)
    assert [(p.relpath, p.code, p.message) for p in result.problems] == \
        [("locked", "dir-unreadable", "cannot list directory: Permission denied")]
    assert [e.relpath for e in result.files] == ["open/g"]
