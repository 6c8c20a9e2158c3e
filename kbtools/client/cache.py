"""The content-addressed download cache: ``<root>/<s0>/<s1s2>/<sha1>``, as the original client's.

Files go in and out of the cache as copies, never as hard links: editing a downloaded file in place
(``open(..., "r+")``, ``>>``) must not change the cache nor any other download of the same content.
Where the file system can share blocks (btrfs, XFS with reflink, bcachefs, ZFS 2.2), the copy is a
reflink (``FICLONE``) and costs no bytes; elsewhere the kernel copies (``copy_file_range``).

A cached file is verified (size and SHA-1) on the way out: the copy is hashed before it takes the
target's name, so an entry whose bytes changed after it was cached is dropped, never handed out.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kbtools.atomic import atomic_path

CACHE_DIR_ENV = "KBUCKET_CACHE_DIR"
NO_CACHE_ENV = "KBUCKET_NO_CACHE"
FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the source's blocks (copy on write)

_ENTRY = re.compile(r"^[0-9a-f]{40}$")
# What a run may leave beside an entry: an atomic temporary, or a --cat download in progress.
_LEFTOVER = re.compile(r"^(\.[0-9a-f]{40}\.\d+\.[0-9a-f]{8}\.tmp|[0-9a-f]{40}\.part(\.json)?(\.tmp)?)$")


def default_cache_dir() -> Path:
    """``$KBUCKET_CACHE_DIR``, else ``$XDG_CACHE_HOME/kbtools/sha1`` (``~/.cache/kbtools/sha1``)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kbtools" / "sha1"


def cache_disabled() -> bool:
    """True when ``$KBUCKET_NO_CACHE`` is set (to anything but empty or ``0``)."""
    return os.environ.get(NO_CACHE_ENV, "") not in ("", "0")


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


def copy_file(source: Path, destination: Path) -> str:
    """Copy ``source`` to the new file ``destination``: ``"reflink"`` when the blocks are shared
    (copy on write), else ``"copy"``. Never a hard link: the two files are independent."""
    with open(source, "rb") as src, open(destination, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            return "reflink"
        except OSError:
            pass  # not supported here (ext4, tmpfs, across file systems): copy the bytes
        size = os.fstat(src.fileno()).st_size
        done = 0
        try:
            while done < size:
                # In the kernel, no round trip through user space (and a reflink on some systems).
                count = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
                if count == 0:
                    break
                done += count
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
                raise
            src.seek(done)
            dst.seek(done)
            shutil.copyfileobj(src, dst, 1024 * 1024)
        return "copy"


def place_file(source: Path, target: Path, sha1: str | None = None, size: int | None = None) -> bool:
    """Make ``target`` a copy of ``source``, atomically (never a partial target). With ``sha1``, the
    copy is verified first; False (and ``target`` left as it was) when it does not match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as temporary:
            copy_file(source, temporary)
            if sha1 is not None and not file_matches(temporary, sha1, size):
                raise _WrongCopy  # (the temporary is removed on the way out)
    except _WrongCopy:
        return False
    return True


class _WrongCopy(Exception):
    pass


@dataclass
class CacheUsage:
    """What the cache holds: its directory, its files and their bytes."""

    path: Path
    files: int
    bytes: int

    def record(self) -> dict[str, object]:
        return {"path": str(self.path), "files": self.files, "bytes": self.bytes}


class Sha1Cache:
    """Files by SHA-1 under one root directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path_for(self, sha1: str) -> Path:
        return self.root / sha1[0] / sha1[1:3] / sha1

    def size_of(self, sha1: str) -> int | None:
        """The size of the entry for ``sha1`` (not verified), None when there is none."""
        try:
            stat = self.path_for(sha1).stat()
        except OSError:
            return None
        return stat.st_size

    def lookup(self, sha1: str, size: int | None = None) -> Path | None:
        """The cached file for ``sha1``, verified; a bad entry is removed."""
        path = self.path_for(sha1)
        if not path.exists():
            return None
        if file_matches(path, sha1, size):
            return path
        self.drop(sha1)
        return None

    def copy_out(self, sha1: str, size: int | None, target: Path) -> bool:
        """Put a verified copy of the entry for ``sha1`` at ``target``; False when there is no
        good entry (a bad one is removed). The copy itself is hashed, so whatever happens to the
        entry meanwhile, only the right bytes take the target's name."""
        source = self.path_for(sha1)
        if self.size_of(sha1) is None:
            return False
        if size is not None and self.size_of(sha1) != size:
            self.drop(sha1)
            return False
        try:
            placed = place_file(source, target, sha1, size)
        except FileNotFoundError:
            return False  # removed meanwhile (kb-get --cache-clear)
        if not placed:
            self.drop(sha1)
        return placed

    def store(self, source: Path, sha1: str) -> None:
        """Add a verified file to the cache (best effort: a read-only cache is not an error)."""
        try:
            place_file(source, self.path_for(sha1))
        except OSError:
            pass

    def drop(self, sha1: str) -> None:
        try:
            self.path_for(sha1).unlink()
        except OSError:
            pass

    # -- kb-get --cache-info / --cache-clear ---------------------------------------------------------
    def _layout_dirs(self) -> list[Path]:
        """The ``<s0>/<s1s2>`` directories (nothing else under the root is ours)."""
        dirs = []
        for first in sorted(self.root.glob("[0-9a-f]")):
            dirs += [d for d in sorted(first.glob("[0-9a-f][0-9a-f]")) if d.is_dir()]
        return dirs

    def usage(self) -> CacheUsage:
        files = size = 0
        for directory in self._layout_dirs():
            for entry in os.scandir(directory):
                if _ENTRY.match(entry.name) and entry.is_file(follow_symlinks=False):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
        return CacheUsage(self.root, files, size)

    def clear(self) -> CacheUsage:
        """Remove every entry (and what runs left beside them); what was removed. Only names of
        the cache's own layout are touched, whatever directory the cache was pointed at."""
        files = size = 0
        for directory in self._layout_dirs():
            for entry in os.scandir(directory):
                if not entry.is_file(follow_symlinks=False):
                    continue
                is_entry = bool(_ENTRY.match(entry.name))
                if not (is_entry or _LEFTOVER.match(entry.name)):
                    continue
                length = entry.stat(follow_symlinks=False).st_size
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                if is_entry:
                    files += 1
                    size += length
            for empty in (directory, directory.parent):
                try:
                    empty.rmdir()
                except OSError:
                    pass  # not empty (someone else's file), or gone
        return CacheUsage(self.root, files, size)
