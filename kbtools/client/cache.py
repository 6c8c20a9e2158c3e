"""The content-addressed download cache: ``<root>/<s0>/<s1s2>/<sha1>``, as the original client's.

A cached file is verified (size and SHA-1) each time it is used, so a file changed behind the
cache's back (a hard-linked target edited in place) is dropped and fetched again, never handed out.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from kbtools.atomic import atomic_path


def default_cache_dir() -> Path:
    """``$KBUCKET_CACHE_DIR``, else ``$XDG_CACHE_HOME/kbtools/sha1`` (``~/.cache/kbtools/sha1``)."""
    configured = os.environ.get("KBUCKET_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kbtools" / "sha1"


def file_matches(path: Path, sha1: str, size: int | None) -> bool:
    """True when ``path`` is a regular file with this size (if known) and SHA-1."""
    from kbtools.index.hashing import FileChanging, hash_file  # (the index package is not light)

    try:
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            return False
        digests, _ = hash_file(path)
    except (OSError, FileChanging):
        return False
    return digests.sha1 == sha1


def place_file(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to (else a copy of) ``source``, atomically (no partial target)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        try:
            os.link(source, temporary)
        except OSError:  # another file system, or links not allowed: copy
            shutil.copyfile(source, temporary)


class Sha1Cache:
    """Files by SHA-1 under one root directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path_for(self, sha1: str) -> Path:
        return self.root / sha1[0] / sha1[1:3] / sha1

    def lookup(self, sha1: str, size: int | None = None) -> Path | None:
        """The cached file for ``sha1``, verified; a bad entry is removed."""
        path = self.path_for(sha1)
        if not path.exists():
            return None
        if file_matches(path, sha1, size):
            return path
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def store(self, source: Path, sha1: str) -> None:
        """Add a verified file to the cache (best effort: a read-only cache is not an error)."""
        try:
            place_file(source, self.path_for(sha1))
        except OSError:
            pass
