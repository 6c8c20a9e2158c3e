"""Opening an input file so that a missing or unreadable one becomes a finding, not an exception."""
from __future__ import annotations

import os
import stat

from kbtools.findings import Finding
from kbtools.formats.codes import finding


def stat_regular_file(path: str | os.PathLike[str], code: str, what: str) -> tuple[os.stat_result | None, list[Finding]]:
    """``stat`` a path that must be a regular file; a problem becomes a finding with ``code``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, [finding(code, path, f"{what} not found: {path}")]
    except OSError as exc:
        return None, [finding(code, path, f"cannot read {what}: {exc.strerror or exc}")]
    if stat.S_ISDIR(st.st_mode):
        return None, [finding(code, path, f"{what} is a directory: {path}")]
    if not stat.S_ISREG(st.st_mode):
        return None, [finding(code, path, f"{what} is not a regular file: {path}")]
    return st, []


def read_small_file(path: str | os.PathLike[str], code: str, what: str,
                    limit: int = 64 * 1024 * 1024) -> tuple[bytes | None, list[Finding]]:
    """Read a small text file (geom.csv, params.json) whole; problems become ``code`` findings."""
    st, findings = stat_regular_file(path, code, what)
    if st is None:
        return None, findings
    if st.st_size > limit:
        return None, [finding(code, path, f"{what} is {st.st_size} bytes, more than the "
                                          f"{limit} bytes a text file of this kind can need")]
    try:
        with open(path, "rb") as f:
            return f.read(), []
    except OSError as exc:
        return None, [finding(code, path, f"cannot read {what}: {exc.strerror or exc}")]
