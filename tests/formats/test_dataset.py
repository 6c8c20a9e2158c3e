"""Datasets and studies: cross-file rules, discovery, summary, and that nothing is modified."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from kbtools.formats.dataset import check_dataset, check_tree, is_dataset_dir
from kbtools.formats.mda import read_mda, write_mda
from kbtools.formats.sample import sample_geometry, write_sample_study

from ..conftest import validate


def codes(report, severity=None):
    return [f.code for f in report.findings if severity is None or f.severity == severity]


def tree_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def dataset(tmp_path, name="ds", channels=4, samples=300):
    return write_sample_study(tmp_path, names=(name,), channels=channels, samples=samples)[0]


def kb_check_json(reports):
    obj = {"valid": all(r.valid for r in reports), "datasets": [r.to_json() for r in reports]}
    validate(obj, "kb-check")
    return obj


def test_sample_dataset_is_valid_with_summary(tmp_path):
    ds = dataset(tmp_path, samples=600)
    report = check_dataset(ds)
    assert report.valid and report.findings == []
    assert report.summary["num_channels"] == 4 and report.summary["num_timepoints"] == 600
    assert report.summary["dtype"] == "int16" and report.summary["samplerate"] == 30000.0
    assert report.summary["duration_sec"] == 0.02
    assert set(report.to_json()) == {"path", "valid", "findings", "summary"}
    kb_check_json([report])


def test_sample_study_has_spikes_and_geometry(tmp_path):
    dirs = write_sample_study(tmp_path, names=("a", "b"), channels=6, samples=3000, seed=3)
    x = np.asarray(read_mda(dirs[0] / "raw.mda"))
    assert x.shape == (6, 3000) and x.dtype == np.int16
    assert x.min() < -80 and abs(float(np.median(x))) < 5  # spikes stand out of the noise
    assert not np.array_equal(x, np.asarray(read_mda(dirs[1] / "raw.mda")))
    rows = (dirs[0] / "geom.csv").read_text().splitlines()
    assert len(rows) == 6 and len(set(sample_geometry(6))) == 6


def test_missing_geom_and_params(tmp_path):
    ds = dataset(tmp_path)
    (ds / "geom.csv").unlink()
    (ds / "params.json").unlink()
    report = check_dataset(ds)
    assert codes(report) == ["G1", "P1"]
    assert report.summary["samplerate"] is None and report.summary["duration_sec"] is None
    kb_check_json([report])


def test_g6_geom_rows_against_raw_channels(tmp_path):
    ds = dataset(tmp_path)
    (ds / "geom.csv").write_text("0,0\n0,20\n20,0\n")
    report = check_dataset(ds)
    assert codes(report) == ["G6"]
    assert report.findings[0].message == "geom.csv has 3 rows but raw.mda has 4 channels"


def test_transposed_raw_is_named(tmp_path):
    ds = dataset(tmp_path)
    x = np.asarray(read_mda(ds / "raw.mda"))
    write_mda(ds / "raw.mda", x[:, :3].T.copy())  # 3 x 4: timepoints x channels
    (ds / "geom.csv").write_text("0,0\n0,20\n20,0\n20,20\n")
    report = check_dataset(ds)
    assert codes(report) == ["G6"] and "transposed" in report.findings[0].hint


def test_truncated_raw_still_gets_the_row_check_and_its_shape(tmp_path):
    # a truncated raw.mda whose header is readable hid G6 and the channel count
    ds = dataset(tmp_path, channels=32, samples=100)
    data = (ds / "raw.mda").read_bytes()
    (ds / "raw.mda").write_bytes(data[:-10])
    report = check_dataset(ds)
    assert codes(report) == ["R7"]
    assert report.summary["num_channels"] == 32 and report.summary["num_timepoints"] == 100
    (ds / "geom.csv").write_text("0,0\n0,20\n20,0\n")
    report = check_dataset(ds)
    assert codes(report) == ["R7", "G6"]
    assert report.findings[1].message == "geom.csv has 3 rows but raw.mda has 32 channels"
    kb_check_json([report])


def test_raw_errors_that_keep_the_dims_readable_keep_the_row_check(tmp_path):
    ds = dataset(tmp_path)
    (ds / "geom.csv").write_text("0,0\n0,20\n")
    raw = ds / "raw.mda"
    data = bytearray(raw.read_bytes())
    data[4:8] = (4).to_bytes(4, "little", signed=True)          # R4: wrong num_bytes_per_entry
    raw.write_bytes(bytes(data))
    assert codes(check_dataset(ds)) == ["R4", "G6"]
    data[4:8] = (2).to_bytes(4, "little", signed=True)
    data[0:4] = (-9).to_bytes(4, "little", signed=True)         # R3: int64, dims still readable
    raw.write_bytes(bytes(data))
    assert codes(check_dataset(ds)) == ["R3", "G6"]


def test_raw_errors_that_hide_the_channel_count_skip_the_row_check(tmp_path):
    ds = dataset(tmp_path)
    (ds / "geom.csv").write_text("0,0\n0,20\n")
    raw = ds / "raw.mda"
    good = raw.read_bytes()
    raw.write_bytes(good[:14])                                   # R2: cut inside the dims
    assert codes(check_dataset(ds)) == ["R2"]
    big = b"".join(int.from_bytes(good[i:i + 4], "little", signed=True).to_bytes(4, "big", signed=True)
                   for i in range(0, 20, 4)) + good[20:]
    raw.write_bytes(big)                                         # big-endian: no dims to trust
    report = check_dataset(ds)
    assert codes(report) == ["R3", "R5"] and report.summary["num_channels"] is None
    data = bytearray(good)
    data[12:16] = (-4).to_bytes(4, "little", signed=True)       # R6: a negative channel count
    raw.write_bytes(bytes(data))
    assert codes(check_dataset(ds)) == ["R6"]


def test_a_dataset_missing_raw_mda_still_has_its_other_files_checked(tmp_path):
    ds = dataset(tmp_path)
    (ds / "raw.mda").unlink()
    (ds / "params.json").write_text('{"samplerate": "30000"}')
    reports = check_tree(ds)                        # the dataset itself: not D1 "no dataset"
    assert [r.path for r in reports] == [str(ds)] and codes(reports[0]) == ["R1", "P4"]
    other = dataset(tmp_path, name="ok")
    reports = check_tree(tmp_path)                  # a study: the dataset is not skipped
    assert [r.path for r in reports] == [str(ds), str(other)]
    assert codes(reports[0]) == ["R1", "P4"] and reports[1].valid
    (tmp_path / "analysis").mkdir()                 # one stray params.json is no dataset
    (tmp_path / "analysis" / "params.json").write_text("{}")
    assert len(check_tree(tmp_path)) == 2
    kb_check_json(reports)


def test_r11_checks_the_samples_a_truncated_file_holds(tmp_path):
    ds = dataset(tmp_path)
    x = np.zeros((4, 10), np.float32)
    x[1, 2] = np.nan
    write_mda(ds / "raw.mda", x)
    data = (ds / "raw.mda").read_bytes()
    (ds / "raw.mda").write_bytes(data[:-8])
    report = check_dataset(ds, check_data=True)
    assert codes(report) == ["R7", "R11"]
    assert "1 of the 38 present (of 40) samples" in report.findings[1].message


def test_check_tree_on_dataset_and_study(tmp_path):
    dirs = write_sample_study(tmp_path, names=("b", "a", ".hidden"), samples=200)
    (tmp_path / "notes").mkdir()
    assert is_dataset_dir(dirs[0]) and not is_dataset_dir(tmp_path)
    assert [r.path for r in check_tree(dirs[0])] == [str(dirs[0])]
    reports = check_tree(tmp_path)
    assert [r.path for r in reports] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert kb_check_json(reports)["valid"] is True


def test_d1_no_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    reports = check_tree(tmp_path)
    assert len(reports) == 1 and codes(reports[0]) == ["D1"] and not reports[0].valid
    assert kb_check_json(reports)["valid"] is False


def test_d2_missing_or_file(tmp_path):
    missing, file = tmp_path / "nope", tmp_path / "f"
    file.write_text("x")
    assert [(f.code, f.message) for f in check_tree(missing)[0].findings] == [
        ("D2", f"{missing} does not exist")]
    assert [(f.code, f.message) for f in check_tree(file)[0].findings] == [
        ("D2", f"{file} is not a directory")]
    assert codes(check_dataset(file)) == ["D2"]


def test_a_study_that_cannot_be_listed_is_d2(tmp_path, monkeypatch):
    """Root lists any directory whatever its mode, so the refusal is injected."""
    dataset(tmp_path)

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("kbtools.formats.dataset.os.scandir", refuse)
    reports = check_tree(tmp_path)
    monkeypatch.undo()
    assert [(f.code, f.message) for f in reports[0].findings] == [
        ("D2", f"cannot list {tmp_path}: Permission denied")]


def test_the_checking_options_are_given_by_name():
    with pytest.raises(TypeError):
        check_tree(".", True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        check_dataset(".", True)  # type: ignore[misc]


def test_raw_mda_must_be_two_dimensional(tmp_path):
    ds = dataset(tmp_path)
    write_mda(ds / "raw.mda", np.zeros((2, 3, 4), np.int16))  # a legal .mda, not a recording
    assert "R5" in codes(check_dataset(ds))


def test_a_directory_given_with_one_of_the_small_files_is_a_dataset_without_raw(tmp_path):
    for name in ("geom.csv", "params.json"):
        given = tmp_path / name.split(".")[0]
        given.mkdir()
        (given / name).write_text("0,0\n" if name == "geom.csv" else '{"samplerate": 30000}')
        reports = check_tree(given)
        assert [r.path for r in reports] == [str(given)] and "R1" in codes(reports[0])


def test_raw_mda_directory_is_r1(tmp_path):
    ds = dataset(tmp_path)
    (ds / "raw.mda").unlink()
    (ds / "raw.mda").mkdir()
    assert is_dataset_dir(ds)
    assert codes(check_dataset(ds)) == ["R1"]


def test_r11_only_on_request(tmp_path):
    ds = dataset(tmp_path)
    x = np.zeros((4, 10), np.float32)
    x[2, 5] = np.inf
    write_mda(ds / "raw.mda", x)
    assert check_dataset(ds).valid and check_tree(ds)[0].valid
    assert codes(check_dataset(ds, check_data=True)) == ["R11"]
    assert codes(check_tree(ds, check_data=True)[0]) == ["R11"]


def test_nothing_is_modified(tmp_path):
    write_sample_study(tmp_path, names=("a", "b"), samples=500)
    (tmp_path / "b" / "geom.csv").write_bytes(b"\xef\xbb\xbfx,y\n0,0\n")
    (tmp_path / "b" / "params.json").write_text('{"samplerate": NaN, "samplerate": 1}')
    before = tree_digest(tmp_path)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    check_tree(tmp_path, check_data=True)
    assert tree_digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing


def test_check_dataset_reads_no_data_and_needs_no_numpy(tmp_path):
    ds = dataset(tmp_path)
    code = ("import sys, json; from kbtools.formats.dataset import check_dataset; "
            f"r = check_dataset({str(ds)!r}); assert r.valid, r.to_json(); "
            "json.dumps(r.to_json()); assert 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_json_is_json(tmp_path):
    ds = dataset(tmp_path)
    (ds / "params.json").write_text('{"samplerate": Infinity}')
    assert json.loads(json.dumps(check_dataset(ds).to_json(), allow_nan=False))["valid"] is False
