"""The one path-safety check of kbtools: which names a share indexes, lists and serves.

Every component that turns a name or a relative path from the outside world (a walk, an HTTP
request, a command-line argument) into a file of a share goes through this module, so the rules
live in one place: no hidden names at any depth (this covers ``.``, ``..`` and ``.kbucket``), no
``node_modules``, no absolute paths, no empty segments, no NUL, and no symlink that leads out of
the share or into one of its hidden places.
"""
from __future__ import annotations

import os
from pathlib import Path

from kbtools.errors import EXIT_FINDINGS, KbError

#: The directory of a share that holds its keys, configuration and caches. Never indexed or served.
NODE_DIR_NAME = ".kbucket"
#: Skipped by the original indexer as a file or a directory name, at any depth.
NODE_MODULES = "node_modules"


class UnsafePath(KbError):
    """A path that must not be resolved inside a share (hidden, escaping, malformed)."""

    exit_code = EXIT_FINDINGS


def is_hidden_entry(name: str) -> bool:
    """The hidden-name rule: True for a name a share never indexes, lists or serves, among the
    names of a directory listing (never empty, no separator, no NUL).

    Hidden names (starting with ``.``, which includes ``.``, ``..`` and ``.kbucket``) and
    ``node_modules``, at any depth.
    """
    return name[0] == "." or name == NODE_MODULES


def is_hidden_or_reserved(name: str) -> bool:
    """True for a name a share never indexes, lists or serves, whatever its origin: the names of
    :func:`is_hidden_entry`, the empty name, and names holding a separator or NUL.
    """
    return (
        not name
        or is_hidden_entry(name)
        or "/" in name
        or "\0" in name
        or (os.altsep is not None and os.altsep in name)
    )


def safe_relpath(relpath: str, *, allow_root: bool = False) -> str:
    """Check a share-relative, ``/``-separated path and return it unchanged.

    Rejects absolute paths, empty segments (``a//b``, a trailing ``/``), ``.`` and ``..``, hidden
    segments, ``.kbucket``, ``node_modules`` and NUL. ``""`` names the share root and is accepted
    only with ``allow_root``. Raises :class:`UnsafePath`.
    """
    if not isinstance(relpath, str):
        raise UnsafePath("unsafe path: not a string")
    if relpath == "":
        if allow_root:
            return ""
        raise UnsafePath("unsafe path: empty")
    if "\0" in relpath:
        raise UnsafePath("unsafe path: contains NUL")
    if relpath.startswith("/") or (os.altsep is not None and relpath.startswith(os.altsep)):
        raise UnsafePath(f"unsafe path: absolute: {relpath!r}")
    for segment in relpath.split("/"):
        if segment == "":
            raise UnsafePath(f"unsafe path: empty segment: {relpath!r}")
        if is_hidden_or_reserved(segment):
            raise UnsafePath(f"unsafe path: hidden or reserved name {segment!r}: {relpath!r}")
    return relpath


def is_within(root_real: str, target_real: str) -> bool:
    """True when the real path ``target_real`` is ``root_real`` or lies below it."""
    if target_real == root_real:
        return True
    prefix = root_real if root_real.endswith(os.sep) else root_real + os.sep
    return target_real.startswith(prefix)


def real_target_is_allowed(root_real: str, target_real: str) -> bool:
    """True when a resolved symlink target stays in the share and avoids its hidden places."""
    if not is_within(root_real, target_real):
        return False
    if target_real == root_real:
        return True
    inside = os.path.relpath(target_real, root_real)
    return not any(is_hidden_or_reserved(seg) for seg in inside.split(os.sep))


def resolve_in_share(root: Path, relpath: str, *, allow_root: bool = False) -> Path:
    """The real path of ``relpath`` inside the share ``root``, or :class:`UnsafePath`.

    Symlinks are resolved; one that leads out of the share, or into a hidden place of it (such as
    ``.kbucket/private.pem``), is refused. The file need not exist.
    """
    rel = safe_relpath(relpath, allow_root=allow_root)
    root_real = os.path.realpath(root)
    target_real = os.path.realpath(os.path.join(root_real, *rel.split("/")) if rel else root_real)
    if not real_target_is_allowed(root_real, target_real):
        raise UnsafePath(f"unsafe path: leads out of the share or into a hidden place: {relpath!r}")
    return Path(target_real)
