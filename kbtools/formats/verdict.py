"""The one human line a checker writes per file or dataset on stderr, beside the JSON on stdout.

    study/dataset1: invalid: R7 raw.mda: truncated: expected 3840012 bytes, found 3840002; 2 more errors
    study/dataset2: valid
    study/dataset3: valid; 1 warning: G8 geom.csv: channel on line 2 has the same position as line 1

No imports beyond the standard library's ``os``: mda-info's start-up time stays tiny.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 127: "\\x7f"})


def _one_line(text: str) -> str:
    """Control characters (a newline in a file name) escaped, so that the line stays one line;
    the bytes of a name that is not UTF-8 shown as ``\\xff``, on any terminal encoding."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name produced
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.translate(_CONTROL)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe(finding: Any, path: str) -> str:
    """``CODE where: message``; ``where`` is the finding's file relative to ``path`` when it differs."""
    where = ""
    if finding.path and finding.path != path:
        inside = path and finding.path.startswith(path.rstrip(os.sep) + os.sep)
        where = (finding.path[len(path.rstrip(os.sep)) + 1:] if inside else finding.path) + ": "
    return f"{finding.code} {where}{finding.message}"


def verdict_line(path: str, findings: Iterable[Any]) -> str:
    """``PATH: valid`` or ``PATH: invalid: <first error>; N more errors, M warnings`` (one line).

    ``findings`` are :class:`kbtools.findings.Finding` objects. A valid result with warnings names
    the first warning; info findings are only counted in the JSON.
    """
    findings = list(findings)
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    if errors:
        rest = []
        if len(errors) > 1:
            rest.append(f"{len(errors) - 1} more {'error' if len(errors) == 2 else 'errors'}")
        if warnings:
            rest.append(_plural(len(warnings), "warning"))
        line = f"{path}: invalid: {_describe(errors[0], path)}" + (
            "; " + ", ".join(rest) if rest else "")
    elif warnings:
        line = f"{path}: valid; {_plural(len(warnings), 'warning')}: {_describe(warnings[0], path)}"
    else:
        line = f"{path}: valid"
    return _one_line(line)


def write_verdicts(stream: Any, results: Iterable[Any]) -> None:
    """One :func:`verdict_line` per result (anything with ``path`` and ``findings``) on ``stream``."""
    for result in results:
        stream.write(verdict_line(result.path, result.findings) + "\n")
    stream.flush()
