"""Opening an input file: each way it can fail is a finding with the caller's code and words
(kbtools.formats.files)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import kbtools.formats.files as files
from kbtools.formats.files import read_small_file, stat_regular_file


def one(findings: list) -> tuple[str, str, str]:
    assert len(findings) == 1
    return findings[0].code, findings[0].path, findings[0].message


def test_a_regular_file_is_stated_and_read(tmp_path: Path):
    path = tmp_path / "geom.csv"
    path.write_bytes(b"0,0\n")
    st, found = stat_regular_file(path, "G1", "geom.csv")
    assert found == [] and st is not None and st.st_size == 4
    assert read_small_file(path, "G1", "geom.csv") == (b"0,0\n", [])
    assert read_small_file(path, "G1", "geom.csv", limit=4) == (b"0,0\n", [])  # at the limit


def test_each_way_a_path_is_not_a_readable_file_is_named(tmp_path: Path):
    missing = tmp_path / "params.json"
    assert one(stat_regular_file(missing, "P1", "params.json")[1]) == (
        "P1", str(missing), f"params.json not found: {missing}")
    assert one(stat_regular_file(tmp_path, "P1", "params.json")[1]) == (
        "P1", str(tmp_path), f"params.json is a directory: {tmp_path}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert one(stat_regular_file(fifo, "R1", "raw.mda")[1]) == (
        "R1", str(fifo), f"raw.mda is not a regular file: {fifo}")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert one(stat_regular_file(loop, "G1", "geom.csv")[1]) == (
        "G1", str(loop), "cannot read geom.csv: Too many levels of symbolic links")
    long = tmp_path / ("x" * 300)
    assert one(stat_regular_file(long, "G1", "geom.csv")[1]) == (
        "G1", str(long), "cannot read geom.csv: File name too long")
    for path in (missing, tmp_path, fifo, loop, long):  # nothing stated, and read_small_file says the same
        st, found = stat_regular_file(path, "G1", "geom.csv")
        assert st is None and read_small_file(path, "G1", "geom.csv") == (None, found)


def test_a_file_too_large_for_its_kind_is_not_read(tmp_path: Path):
    path = tmp_path / "geom.csv"
    path.write_bytes(b"0,0\n0,1\n")
    data, found = read_small_file(path, "G1", "geom.csv", limit=7)
    assert data is None and one(found) == (
        "G1", str(path), "geom.csv is 8 bytes, more than the 7 bytes a text file of this kind can need")
    assert read_small_file(path, "G1", "geom.csv")[0] == b"0,0\n0,1\n"  # 64 MiB by default


@pytest.mark.parametrize("error, said", [
    (PermissionError(13, "Permission denied"), "Permission denied"),
    (OSError("no strerror"), "no strerror"),
])
def test_a_file_that_states_but_does_not_open_is_named(tmp_path: Path, monkeypatch, error, said):
    """Root reads any file whatever its mode, so the failure of open is injected."""
    path = tmp_path / "params.json"
    path.write_text("{}")

    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(files, "open", refuse, raising=False)  # this module's open only
    data, found = read_small_file(path, "P1", "params.json")
    assert data is None and one(found) == ("P1", str(path), f"cannot read params.json: {said}")


def test_sixty_four_mib_is_the_default_bound(tmp_path: Path):
    path = tmp_path / "params.json"
    with open(path, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: nothing written
    data, found = read_small_file(path, "P1", "params.json")
    assert found == [] and data is not None and len(data) == 64 * 1024 * 1024
    del data
    with open(path, "ab") as fh:
        fh.write(b" ")
    data, found = read_small_file(path, "P1", "params.json")
    assert data is None and one(found)[2] == (
        "params.json is 67108865 bytes, more than the 67108864 bytes a text file of this kind can need")
