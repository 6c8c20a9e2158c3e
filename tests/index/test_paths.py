"""The one path-safety check: names, relative paths and symlinks."""
from __future__ import annotations

import os

import pytest

from kbtools.errors import KbError
from kbtools.index.paths import (UnsafePath, is_hidden_or_reserved, resolve_in_share,
                                 safe_relpath)


@pytest.mark.parametrize("name", [".", "..", ".kbucket", ".git", ".x", "node_modules", "", "a/b", "a\0b"])
def test_hidden_or_reserved_names(name):
    assert is_hidden_or_reserved(name)


@pytest.mark.parametrize("name", ["a", "a.txt", "with space", "x.", "~", "new\nline", "$(touch pwned)", "node_modules2"])
def test_ordinary_names(name):
    assert not is_hidden_or_reserved(name)


@pytest.mark.parametrize("relpath", [
    "", "/etc/passwd", "//etc/passwd", "..", "../x", "a/../b", "a/./b", ".", "a//b", "a/", "/a",
    ".kbucket/private.pem", "sub/.kbucket/kbnode.json", "sub/.git/config", ".hidden",
    "node_modules/x", "a/node_modules/b", "a\0b",
])
def test_unsafe_relpaths(relpath):
    with pytest.raises(UnsafePath):
        safe_relpath(relpath)


def test_unsafe_path_is_a_kb_error_with_exit_1():
    assert issubclass(UnsafePath, KbError)
    assert UnsafePath("x").exit_code == 1


@pytest.mark.parametrize("relpath", ["a", "a/b.txt", "with space/#?.txt", "ü/日本", "new\nline", "x..y", "x.."])
def test_safe_relpaths_are_returned_unchanged(relpath):
    assert safe_relpath(relpath) == relpath


def test_root_only_when_allowed():
    assert safe_relpath("", allow_root=True) == ""


def test_resolve_in_share_follows_inner_links_and_refuses_escapes(tmp_path):
    share, outside = tmp_path / "share", tmp_path / "outside"
    (share / "sub").mkdir(parents=True)
    (share / ".kbucket").mkdir()
    (share / ".kbucket" / "private.pem").write_text("secret")
    outside.mkdir()
    (outside / "f").write_text("o")
    (share / "sub" / "f").write_text("in")
    os.symlink("f", share / "sub" / "link")
    os.symlink(outside / "f", share / "out")
    os.symlink(outside, share / "outdir")
    os.symlink("../.kbucket/private.pem", share / "sub" / "key")
    os.symlink("..", share / "sub" / "up")

    assert resolve_in_share(share, "sub/link") == (share / "sub" / "f").resolve()
    assert resolve_in_share(share, "sub/missing") == (share / "sub").resolve() / "missing"
    assert resolve_in_share(share, "sub/up/sub/f") == (share / "sub" / "f").resolve()
    assert resolve_in_share(share, "", allow_root=True) == share.resolve()
    for bad in ["out", "outdir/f", "sub/key", "../outside/f", ".kbucket/private.pem"]:
        with pytest.raises(UnsafePath):
            resolve_in_share(share, bad)
