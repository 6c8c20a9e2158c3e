"""A path that cannot be read, for real when permissions are enforced, injected when they are not.

`chmod 0` is the real failure, but root (CI runs as root) reads through it. There the kernel's
answer to an unprivileged reader, ``PermissionError(EACCES)``, is raised in-process by the calls
that open or list that one path, so the same code path is tested everywhere.
"""
from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


def _same(target: str, path: Any) -> bool:
    if isinstance(path, int):  # a descriptor
        return False
    try:
        return os.path.realpath(os.fsdecode(path)) == target
    except (TypeError, ValueError):
        return False


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``deny(path)``: make ``path`` unreadable until the test ends."""
    restore: list[tuple[Path, int]] = []

    def deny_path(path: Path) -> None:
        restore.append((path, path.stat().st_mode & 0o7777))
        os.chmod(path, 0)
        if not os.access(path, os.R_OK):
            return  # permissions are enforced: the real failure
        target = os.path.realpath(path)

        def refusing(real: Any) -> Any:
            def call(p: Any, *args: Any, **kwargs: Any) -> Any:
                if _same(target, p):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(p))
                return real(p, *args, **kwargs)
            return call

        for name in ("open", "scandir", "listdir"):
            monkeypatch.setattr(os, name, refusing(getattr(os, name)))
        monkeypatch.setattr(builtins, "open", refusing(builtins.open))

    yield deny_path
    for path, mode in reversed(restore):
        os.chmod(path, mode)
