"""A clone of the repository is all a user has: nothing may read or point outside it."""
from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT, VECTORS

# A path climbing out of the checkout to a sibling directory, as text or as pathlib parts.
OUTSIDE = re.compile(r"\.\./shared|\.parent\s*/\s*[\"']shared[\"']|parents\[\d\]\.parent\b")


def tracked_text_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    names = [n for n in out.stdout.decode().split("\0") if n]
    return [n for n in names if n.endswith((".py", ".md", ".toml", ".yaml", ".cfg", ".sh", ".txt"))
            or n in ("Makefile", ".ci/run") or n.startswith("bin/")]


def test_no_file_reads_or_points_outside_the_repository() -> None:
    offenders = []
    for name in tracked_text_files():
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []


def test_the_recorded_vectors_are_in_the_repository() -> None:
    assert VECTORS.is_relative_to(ROOT)
    for name in ("README.md", "frames.jsonl", "http.json"):
        assert (VECTORS / name).is_file()
    for node in ("hub", "childhub", "share", "share2"):
        for f in ("kbnode.json", "private.pem", "public.pem"):
            assert (VECTORS / "nodes" / node / f).is_file()
