"""Atomic writes: complete under the final name, or nothing and no temporary left behind."""
from __future__ import annotations

import os
import stat

import pytest

from kbtools.atomic import atomic_path, write_atomic


def test_write_atomic_replaces_with_exact_mode(tmp_path):
    target = tmp_path / "sub" / "key.pem"
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, "one\n", mode=0o644)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["key.pem"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "raw.mda"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary, open(temporary, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["raw.mda"]
