"""The one human line per checked file or dataset (kbtools.formats.verdict)."""
from __future__ import annotations

import io
import os

import pytest

from kbtools.findings import Finding
from kbtools.formats.verdict import verdict_line, write_verdicts

D = os.path.join("study", "d1")


def f(code: str, severity: str, path: str = D, message: str = "msg") -> Finding:
    return Finding(code, severity, path, message)


RAW = os.path.join(D, "raw.mda")
E1 = f("R7", "error", RAW, "truncated")
E2 = f("G3", "error", os.path.join(D, "geom.csv"), "not a number")
W1 = f("G8", "warning", os.path.join(D, "geom.csv"), "same position")
W2 = f("P7", "warning", os.path.join(D, "params.json"), "unknown key")
INFO = f("G9", "info", os.path.join(D, "geom.csv"), "3 columns")


@pytest.mark.parametrize("findings, line", [
    ([], f"{D}: valid"),
    ([INFO], f"{D}: valid"),
    ([W1], f"{D}: valid; 1 warning: G8 geom.csv: same position"),
    ([INFO, W2, W1], f"{D}: valid; 2 warnings: P7 params.json: unknown key"),
    ([E1], f"{D}: invalid: R7 raw.mda: truncated"),
    ([W1, E1, E2], f"{D}: invalid: R7 raw.mda: truncated; 1 more error, 1 warning"),
    ([E1, E2, E2], f"{D}: invalid: R7 raw.mda: truncated; 2 more errors"),
    ([E1, W1, W2, INFO], f"{D}: invalid: R7 raw.mda: truncated; 2 warnings"),
])
def test_the_line_names_the_first_error_or_warning_and_counts_the_rest(findings, line):
    assert verdict_line(D, findings) == line


def test_where_a_finding_is_said_relative_to_the_checked_path():
    assert verdict_line(RAW, [f("R7", "error", RAW, "cut")]) == f"{RAW}: invalid: R7 cut"
    assert verdict_line(D + os.sep, [E1]) == f"{D}{os.sep}: invalid: R7 raw.mda: truncated"
    outside = os.path.join("study", "d10", "raw.mda")  # a sibling whose name starts the same
    assert verdict_line(D, [f("R7", "error", outside, "cut")]) == f"{D}: invalid: R7 {outside}: cut"
    assert verdict_line(D, [f("D1", "error", "", "no dataset")]) == f"{D}: invalid: D1 no dataset"
    assert verdict_line("", [f("R7", "error", "raw.mda", "cut")]) == ": invalid: R7 raw.mda: cut"
    odd = os.path.join("study", "d12")  # a path of odd length
    assert verdict_line(odd, [f("R7", "error", os.path.join(odd, "raw.mda"), "cut")]) == \
        f"{odd}: invalid: R7 raw.mda: cut"
    before = os.path.join("a", "raw.mda")  # sorts before the checked path
    assert verdict_line(D, [f("R7", "error", before, "cut")]) == f"{D}: invalid: R7 {before}: cut"


def test_values_made_at_run_time_count_as_the_same_words():
    """Severities and paths read from a file or built by a caller are equal, not the same object."""
    error, warning = "".join(["err", "or"]), "".join(["warn", "ing"])
    same = D[:-1] + D[-1:]
    findings = [f("G8", warning, os.path.join(D, "geom.csv"), "same"), f("R7", error, same, "cut")]
    assert verdict_line(D, findings) == f"{D}: invalid: R7 cut; 1 warning"


def test_a_line_stays_one_line_whatever_the_names():
    name = "a\nb\rc\td\x01e\x7ff\x1fg"
    assert verdict_line(name, []) == "a\\nb\\rc\\td\\x01e\\x7ff\\x1fg: valid"
    undecodable = os.fsdecode(b"caf\xe9")  # a file name that is not UTF-8
    assert verdict_line(undecodable, []) == "caf\\xe9: valid"
    assert verdict_line("\ud800x", []) == "\\ud800x: valid"  # a surrogate no file name makes
    assert verdict_line("données", []) == "données: valid"


def test_one_line_per_result_and_the_stream_flushed():
    class Result:
        def __init__(self, path: str, findings: list[Finding]) -> None:
            self.path, self.findings = path, findings

    class Stream(io.StringIO):
        flushed = 0

        def flush(self) -> None:
            self.flushed += 1
            super().flush()

    out = Stream()
    write_verdicts(out, [Result("a", []), Result("b", [E1])])
    assert out.getvalue() == "a: valid\nb: invalid: R7 study/d1/raw.mda: truncated\n"
    assert out.flushed == 1
