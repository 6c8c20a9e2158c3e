"""Datasets and studies: the three files of a dataset checked together, with the cross-file rules.

A dataset is a directory holding ``raw.mda`` (and ``geom.csv``, ``params.json``); a study is a
directory whose subdirectories are datasets. Checking reads headers, ``stat`` and the two small
files only, unless ``check_data`` asks for R11 (a full read of float data).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kbtools.formats.codes import CheckResult, finding
from kbtools.formats.geom import check_geom, check_geom_rows
from kbtools.formats.mda import check_mda_data, read_mda_header
from kbtools.formats.params import check_params

RAW, GEOM, PARAMS = "raw.mda", "geom.csv", "params.json"


class DatasetReport(CheckResult):
    """The findings and summary of one dataset directory."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.summary: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "valid": self.valid,
                "findings": [f.to_json() for f in self.findings], "summary": self.summary}


def is_dataset_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding ``raw.mda``."""
    return os.path.isdir(path) and os.path.lexists(os.path.join(path, RAW))


def _is_dataset_without_raw(path: str | os.PathLike[str], *, given: bool) -> bool:
    """A directory that is a dataset whose ``raw.mda`` is missing.

    A directory given to kb-check is one when it holds ``geom.csv`` or ``params.json``; a
    subdirectory of a study when it holds both. Its other files are then still checked (and the
    missing ``raw.mda`` is R1) rather than the directory being skipped.
    """
    held = [os.path.lexists(os.path.join(path, name)) for name in (GEOM, PARAMS)]
    return os.path.isdir(path) and (any(held) if given else all(held))


def check_dataset(path: str | os.PathLike[str], *, check_data: bool = False) -> DatasetReport:
    """Check one dataset directory: raw.mda, geom.csv, params.json and the rules between them."""
    path = Path(path)
    report = DatasetReport(path=str(path))
    if not path.is_dir():
        report.findings.append(finding("D2", path, f"not a directory: {path}"))
        return report
    # Every rule that can still be checked is checked: a finding never hides another one.
    raw = read_mda_header(path / RAW, raw=True)
    if check_data:
        raw.findings.extend(check_mda_data(raw))
    geom = check_geom(path / GEOM)
    params = check_params(path / PARAMS)
    h = raw.header
    channels = timepoints = None
    shape = raw.channels_timepoints  # known from the header even when the data is truncated
    if shape is not None:
        channels, timepoints = shape
        check_geom_rows(geom, channels, timepoints)
    report.findings = raw.findings + geom.findings + params.findings
    samplerate = params.samplerate
    report.summary = {
        "num_channels": channels,
        "num_timepoints": timepoints,
        "dtype": (h.dtype or None) if h is not None else None,
        "samplerate": samplerate,
        "duration_sec": timepoints / samplerate if timepoints is not None and samplerate else None,
        "geom_columns": geom.columns,
        "raw_size": raw.file_size,
    }
    return report


def check_tree(path: str | os.PathLike[str], *, check_data: bool = False) -> list[DatasetReport]:
    """Check a dataset directory, or every dataset directory directly inside a study directory."""
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not os.path.lexists(path) else "is not a directory"
        report = DatasetReport(path=str(path))
        report.findings.append(finding("D2", path, f"{path} {what}"))
        return [report]
    if is_dataset_dir(path):
        return [check_dataset(path, check_data=check_data)]
    try:
        children = sorted(entry.path for entry in os.scandir(path)
                          if not entry.name.startswith(".") and (
                              is_dataset_dir(entry.path)
                              or _is_dataset_without_raw(entry.path, given=False)))
    except OSError as exc:
        report = DatasetReport(path=str(path))
        report.findings.append(finding("D2", path, f"cannot list {path}: {exc.strerror or exc}"))
        return [report]
    if not children and _is_dataset_without_raw(path, given=True):
        return [check_dataset(path, check_data=check_data)]
    if not children:
        report = DatasetReport(path=str(path))
        report.findings.append(finding(
            "D1", path, f"no dataset in {path}: neither it nor a subdirectory holds {RAW}"))
        return [report]
    return [check_dataset(child, check_data=check_data) for child in children]
