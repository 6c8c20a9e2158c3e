"""The registry of finding codes: one entry per code, with its default severity and the fix.

Every code a checker can emit is listed here, and ``docs/codes.md`` documents the same set
(a test keeps the two in step). Rule ids follow ``docs/spec/mda-format.md`` §3; ``D`` codes are the
cross-file and directory rules.
"""
from __future__ import annotations

from kbtools.findings import ERROR, INFO, WARNING, Finding, has_errors


class Rule:
    """A registered code: its default severity, what it means in a few words, and the fix."""

    __slots__ = ("code", "severity", "title", "hint")

    def __init__(self, code: str, severity: str, title: str, hint: str) -> None:
        self.code, self.severity, self.title, self.hint = code, severity, title, hint


_RULES = [
    # raw.mda / any .mda file
    Rule("R1", ERROR, "the .mda file is missing, not a regular file, or unreadable",
         "check the path; a dataset needs a readable regular file named raw.mda"),
    Rule("R2", ERROR, "the file is shorter than its header",
         "the file is empty or cut off inside the header; copy it again from the source"),
    Rule("R3", ERROR, "unsupported data type code",
         "supported codes are -2 (uint8), -3 (float32), -4 (int16), -5 (int32), -6 (uint16), "
         "-7 (float64), -8 (uint32); rewrite the file with one of them"),
    Rule("R4", ERROR, "num_bytes_per_entry does not match the data type",
         "the header is probably corrupt; rewrite the file with a correct header"),
    Rule("R5", ERROR, "wrong number of dimensions",
         "an .mda file has 1 to 50 dims; raw.mda must be 2-D (channels x timepoints)"),
    Rule("R6", ERROR, "a dimension is negative, or raw.mda has no channels or no timepoints",
         "the header is corrupt or the recording is empty; rewrite the file"),
    Rule("R7", ERROR, "the data is truncated",
         "the file is shorter than its header says; copy it again from the source"),
    Rule("R8", WARNING, "trailing bytes after the data",
         "readers ignore them; rewrite the file if they are not intended"),
    Rule("R9", WARNING, "a 32-bit dim is above 2e9",
         "reference Python readers (mountainlab_pytools, SpikeInterface) compute the wrong header "
         "size for this file; rewrite it with 64-bit dims"),
    Rule("R10", ERROR, "a 64-bit dim is negative or at least 2^63",
         "the header is corrupt; rewrite the file"),
    Rule("R11", ERROR, "the float data holds NaN or infinite samples",
         "replace non-finite samples before sorting"),
    # geom.csv
    Rule("G1", ERROR, "geom.csv is missing, not a regular file, or unreadable",
         "write geom.csv: one line per channel, 'x,y' or 'x,y,z'"),
    Rule("G2", ERROR, "geom.csv is not plain UTF-8 (BOM or bad bytes)",
         "save the file as UTF-8 without a byte order mark"),
    Rule("G3", ERROR, "a line is not comma-separated numbers",
         "write one position per line as numbers separated by commas, with no header row"),
    Rule("G4", ERROR, "rows have different numbers of columns",
         "every row needs the same number of coordinates"),
    Rule("G5", ERROR, "geom.csv needs 2 or 3 columns",
         "write x,y (or x,y,z) per channel"),
    Rule("G6", ERROR, "geom.csv rows differ from the channel count of raw.mda",
         "geom.csv needs one row per channel (raw.mda dims[0])"),
    Rule("G7", ERROR, "a position is NaN or infinite",
         "write finite numbers"),
    Rule("G8", WARNING, "two channels share the same position",
         "SpikeInterface refuses duplicate positions; give each channel its own position"),
    Rule("G9", INFO, "geom.csv has 3 columns",
         "SpikeInterface keeps x and y only and sets z to 0"),
    # params.json
    Rule("P1", ERROR, "params.json is missing, not a regular file, or unreadable",
         'write params.json, at least {"samplerate": 30000}'),
    Rule("P2", ERROR, "params.json is not a strict JSON object",
         "write plain UTF-8 JSON (no BOM, no NaN/Infinity, no trailing commas) with an object "
         "at the top level"),
    Rule("P3", ERROR, "samplerate is missing",
         'add "samplerate": the sampling rate in Hz, e.g. 30000'),
    Rule("P4", ERROR, "samplerate is not a number in (0, 1e7]",
         "write the sampling rate in Hz as a JSON number, e.g. 30000"),
    Rule("P5", ERROR, "spike_sign is not -1, 0 or 1",
         "use -1 (negative peaks), 1 (positive) or 0 (both), as a JSON integer"),
    Rule("P6", ERROR, "detect_sign is not -1, 0 or 1, or differs from spike_sign",
         "use -1, 0 or 1; when both are present keep them equal (detect_sign wins in the "
         "MountainSort scripts)"),
    Rule("P7", WARNING, "duplicate key, or a key no reader uses",
         "remove the duplicate (the last value wins); unknown keys are kept but ignored"),
    # directories and cross-file rules
    Rule("D1", ERROR, "no dataset in the directory",
         "a dataset is a directory holding raw.mda, geom.csv and params.json; a study is a "
         "directory of datasets"),
    Rule("D2", ERROR, "the path is missing or not a directory",
         "give kb-check a dataset directory or a study directory"),
]

RULES: dict[str, Rule] = {rule.code: rule for rule in _RULES}


def finding(code: str, path: object, message: str, *, severity: str | None = None,
            hint: str | None = None, line: int | None = None, column: int | None = None,
            field: str | None = None) -> Finding:
    """A finding for a registered code; severity and hint default to the registry's."""
    rule = RULES[code]
    return Finding(code=code, severity=severity or rule.severity, path=str(path), message=message,
                   hint=rule.hint if hint is None else hint, line=line, column=column, field=field)


class CheckResult:
    """What checking one path found: valid unless some finding is an error.

    Plain classes rather than dataclasses here: importing dataclasses costs mda-info a third of
    its start-up time.
    """

    def __init__(self, path: str, findings: list[Finding] | None = None) -> None:
        self.path = path
        self.findings: list[Finding] = [] if findings is None else findings

    @property
    def valid(self) -> bool:
        return not has_errors(self.findings)
