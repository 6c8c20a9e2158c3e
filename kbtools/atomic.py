"""Atomic file writes: a file takes its final name complete, or not at all.

Everything kbtools writes under a final name (kbnode.json, keys, .mda files, the index snapshot,
download state, cached files) goes through here, so a crash or a kill never leaves a partial file.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary name beside ``path``; on success it is renamed to ``path``.

    The temporary name does not exist yet (the caller creates it: open, link, copy). On any
    exception it is removed and ``path`` is left as it was.
    """
    final = Path(path)
    temporary = final.with_name(f".{final.name[:60]}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` (text as UTF-8, newlines as given) to ``path`` atomically, with ``mode``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exactly mode, whatever the umask
            f.write(raw)
