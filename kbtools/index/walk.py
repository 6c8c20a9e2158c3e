"""The stat walk of a share: every regular file worth indexing, with size, mtime and inode.

Skip rules are the original indexer's (spec §5.1): any hidden name at any depth (``.kbucket``
included) and ``node_modules``. Unlike the original, a symlink is followed only when its target
stays inside the share and outside its hidden places; loops are cut. Names are sorted within each
directory so that the output is stable. Names that are not valid UTF-8 cannot be written as JSON
paths and are reported instead of indexed.
"""
from __future__ import annotations

import operator
import os
import stat as statmod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from kbtools.index.paths import is_hidden_entry, real_target_is_allowed


class WalkEntry(NamedTuple):
    """One regular file found by the walk. ``relpath`` is ``/``-separated."""

    relpath: str
    size: int
    mtime_ns: int
    ino: int


@dataclass
class WalkProblem:
    relpath: str
    code: str
    message: str


@dataclass
class WalkResult:
    #: WalkEntry items, or what ``lookup`` returned for files it knew.
    files: list[Any] = field(default_factory=list)
    #: Relative paths of the directories walked, the root as ``""``.
    dirs: list[str] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)


_name = operator.attrgetter("name")


def _utf8_ok(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a non-UTF-8 name
        return False
    return True


#: ``lookup(relpath, size, mtime_ns, ino)``: a known record still valid for that stat, or None.
Lookup = Callable[[str, int, int, int], Any]
#: ``whole_dir(directory path, relpath prefix)``: something standing for every entry of an
#: unchanged directory holding only regular files, or None to walk it entry by entry.
WholeDir = Callable[[str, str], Any]


def walk_share(root: Path | str, lookup: Lookup | None = None,
               whole_dir: WholeDir | None = None) -> WalkResult:
    """Walk ``root`` and return its indexable files and directories (see the module docstring).

    With ``lookup``, a file it knows is listed as what it returns instead of a :class:`WalkEntry`
    (one pass instead of two over 100,000 files: an unchanged share re-indexes as this walk).
    With ``whole_dir``, a directory it vouches for is listed as one item: what it returns.
    """
    result = WalkResult()
    root_real = os.path.realpath(root)
    files_append = result.files.append
    new_entry = tuple.__new__  # WalkEntry(...) without the keyword-argument machinery
    # Each stack item: (directory path to scan, relpath prefix, real paths of it and its ancestors).
    stack: list[tuple[str, str, tuple[str, ...]]] = [(root_real, "", (root_real,))]
    while stack:
        dir_path, prefix, chain = stack.pop()
        result.dirs.append(prefix[:-1])
        if whole_dir is not None:
            whole = whole_dir(dir_path, prefix)
            if whole is not None:
                files_append(whole)
                continue
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=_name)
        except OSError as exc:
            result.problems.append(WalkProblem(prefix[:-1] or ".", "dir-unreadable",
                                               f"cannot list directory: {exc.strerror}"))
            continue
        subdirs: list[tuple[str, str, tuple[str, ...]]] = []
        for entry in entries:
            name = entry.name
            if is_hidden_entry(name):
                continue
            relpath = prefix + name
            if not name.isascii() and not _utf8_ok(name):
                result.problems.append(WalkProblem(relpath.encode("utf-8", "replace").decode(),
                                                   "name-not-utf8",
                                                   "file name is not valid UTF-8; not indexed"))
                continue
            try:
                if entry.is_file(follow_symlinks=False):  # the common case first
                    st = entry.stat(follow_symlinks=False)
                    if lookup is not None:
                        known = lookup(relpath, st.st_size, st.st_mtime_ns, st.st_ino)
                        if known is not None:
                            files_append(known)
                            continue
                    files_append(new_entry(WalkEntry, (relpath, st.st_size, st.st_mtime_ns, st.st_ino)))
                elif entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not real_target_is_allowed(root_real, target):
                        result.problems.append(WalkProblem(relpath, "symlink-outside",
                                                           "symlink leads out of the share; not followed"))
                        continue
                    st = os.stat(target)
                    if statmod.S_ISDIR(st.st_mode):
                        if target in chain:
                            result.problems.append(WalkProblem(relpath, "symlink-loop",
                                                               "symlink loop; not followed"))
                        else:
                            subdirs.append((target, relpath + "/", chain + (target,)))
                    elif statmod.S_ISREG(st.st_mode):
                        known = lookup and lookup(relpath, st.st_size, st.st_mtime_ns, st.st_ino)
                        files_append(known or WalkEntry(relpath, st.st_size, st.st_mtime_ns, st.st_ino))
                elif entry.is_dir(follow_symlinks=False):
                    real = dir_path + os.sep + name
                    subdirs.append((real, relpath + "/", chain + (real,)))
                # FIFOs, sockets and devices are never opened.
            except FileNotFoundError:
                continue  # vanished during the walk
            except OSError as exc:
                result.problems.append(WalkProblem(relpath, "stat-failed", f"cannot stat: {exc.strerror}"))
        # Reverse so that popping from the stack visits subdirectories in name order.
        stack.extend(reversed(subdirs))
    return result
