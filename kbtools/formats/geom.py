"""geom.csv: one channel position per line, ``x,y`` or ``x,y,z`` (rules G1-G9, no numpy)."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from kbtools.formats.codes import CheckResult, finding
from kbtools.formats.files import read_small_file

BOM = b"\xef\xbb\xbf"
# what numpy.loadtxt (the SpikeInterface reader) takes as a float; Python's float() takes more
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\Z", re.I)
_BLANKS = " \t"


class GeomInfo(CheckResult):
    """What checking one geom.csv found."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.positions: list[tuple[float, ...]] = []
        self.lines: list[int] = []  # 1-based line of each position
        self.columns: int | None = None

    @property
    def rows(self) -> int:
        return len(self.positions)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "valid": self.valid, "rows": self.rows if self.positions or
                self.valid else None, "columns": self.columns,
                "findings": [f.to_json() for f in self.findings]}


def check_geom(path: str | os.PathLike[str], channels: int | None = None) -> GeomInfo:
    """Check a geom.csv; with ``channels`` (raw.mda dims[0]) also the row count (G6)."""
    path = Path(path)
    info = GeomInfo(path=str(path))
    data, info.findings = read_small_file(path, "G1", "geom.csv")
    if data is None:
        return info
    add = info.findings.append
    if data.startswith(BOM):
        add(finding("G2", path, "geom.csv starts with a UTF-8 byte order mark", line=1,
                    column=1))
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        add(finding("G2", path, f"geom.csv is not valid UTF-8 (byte {exc.start})", line=line))
        text = data.decode("utf-8", errors="replace")
    _parse_rows(path, text, info)
    if info.columns is not None and info.columns not in (2, 3):
        add(finding("G5", path, f"geom.csv has {info.columns} column(s); it needs 2 (x,y) or 3 "
                                f"(x,y,z)", line=info.lines[0]))  # columns come with a row
    if info.columns == 3:
        add(finding("G9", path, "geom.csv has 3 columns; SpikeInterface drops z"))
    _check_duplicates(path, info)
    if channels is not None:
        check_geom_rows(info, channels)
    return info


def _parse_rows(path: Path, text: str, info: GeomInfo) -> None:
    add = info.findings.append
    first_data_line = True
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.rstrip("\r")
        if not line:
            continue
        content = line.partition("#")[0]
        if "#" in line and not content.strip(_BLANKS):
            continue  # a comment line
        if not content.strip(_BLANKS):
            add(finding("G3", path, "line holds only whitespace", line=number,
                        hint="delete the line; an empty line is fine"))
            continue
        fields = content.split(",")
        values: list[float] = []
        bad = False
        for col, text_field in enumerate(fields, start=1):
            value = text_field.strip(_BLANKS)
            if not _NUMBER.match(value):
                bad = True
                hint = _field_hint(value, first_data_line)
                add(finding("G3", path, _field_problem(value, col, len(fields), hint), line=number,
                            column=col, hint=hint))
                break
            values.append(float(value))
        first_data_line = False
        if bad:
            continue
        if info.columns is None:
            info.columns = len(values)
        elif len(values) != info.columns:
            add(finding("G4", path, f"line has {len(values)} column(s) but the first row has "
                                    f"{info.columns}", line=number))
            continue
        for col, v in enumerate(values, start=1):
            if not math.isfinite(v):
                add(finding("G7", path, f"position value {fields[col - 1].strip(_BLANKS)!r} is "
                                        f"not finite", line=number, column=col))
        info.positions.append(tuple(values))
        info.lines.append(number)


_SEPARATOR_HINT = "separate fields with commas (not spaces, tabs or semicolons)"
_HEADER_HINT = "remove the header row: geom.csv holds numbers only"


def _field_problem(value: str, col: int, count: int, hint: str | None) -> str:
    if not value:
        # a line's only field is never empty (a blank line is skipped, a whitespace one refused)
        if col == count:
            return "trailing comma (empty last field)"
        return f"field {col} is empty"
    if hint is _HEADER_HINT:
        return f"field {col} is {value!r}, not a number: a header row?"
    return f"field {col} is {value!r}, not a number"


def _field_hint(value: str, first: bool) -> str | None:
    """The fix for a bad field: commas for another separator; on the first data line, a field that
    does not start with a digit is taken for a header."""
    if any(sep in value for sep in (" ", "\t", ";")):
        return _SEPARATOR_HINT
    if first and value and not value[0].isdigit():
        return _HEADER_HINT
    return None


def _check_duplicates(path: Path, info: GeomInfo) -> None:
    seen: dict[tuple[float, ...], int] = {}
    for pos, line in zip(info.positions, info.lines):
        if pos in seen:
            info.findings.append(finding(
                "G8", path, f"channel on line {line} has the same position as line {seen[pos]}",
                line=line))
        else:
            seen[pos] = line


def check_geom_rows(info: GeomInfo, channels: int, timepoints: int | None = None,
                    raw_name: str = "raw.mda") -> None:
    """G6: one row per channel. ``timepoints`` lets the message spot a transposed raw.mda."""
    if not info.positions and not info.valid:
        return  # the file itself is broken; counting its rows would mislead
    if info.rows == channels:
        return
    hint = None
    if timepoints is not None and info.rows == timepoints:
        hint = (f"{raw_name} looks transposed (timepoints x channels); rewrite it as "
                f"channels x timepoints")
    info.findings.append(finding(
        "G6", info.path, f"geom.csv has {info.rows} rows but {raw_name} has {channels} channels",
        hint=hint))
