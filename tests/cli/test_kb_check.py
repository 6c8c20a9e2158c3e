"""kb-check: datasets and studies, exit codes, stdin, real pipes."""
from __future__ import annotations

import json
import os
import subprocess

from kbtools.cli.kb_check import KbCheck
from kbtools.formats.sample import write_sample_study

from ..conftest import ROOT, run_cli, validate


def test_valid_study_exit_0(tmp_path):
    write_sample_study(tmp_path, names=("d1", "d2"), samples=300)
    r = run_cli(KbCheck, tmp_path)
    assert r.code == 0
    validate(r.json, "kb-check")
    assert r.json["valid"] is True and len(r.json["datasets"]) == 2
    summary = r.json["datasets"][0]["summary"]
    assert {k: summary[k] for k in ("num_channels", "num_timepoints", "dtype", "samplerate",
                                    "duration_sec")} == {
        "num_channels": 4, "num_timepoints": 300, "dtype": "int16", "samplerate": 30000.0,
        "duration_sec": 0.01}


def test_one_bad_dataset_exit_1(tmp_path):
    d1, d2 = write_sample_study(tmp_path, names=("d1", "d2"), samples=300)
    (d2 / "geom.csv").write_text("0,0\n")
    r = run_cli(KbCheck, tmp_path)
    assert r.code == 1 and r.json["valid"] is False
    assert [d["valid"] for d in r.json["datasets"]] == [True, False]
    assert r.json["datasets"][1]["findings"][0]["code"] == "G6"
    validate(r.json, "kb-check")


def test_empty_directory_is_d1_not_a_crash(tmp_path):
    r = run_cli(KbCheck, tmp_path)
    assert r.code == 1 and r.json["datasets"][0]["findings"][0]["code"] == "D1"
    assert "Traceback" not in r.stderr
    validate(r.json, "kb-check")


def test_several_dirs_and_stdin(tmp_path):
    a, b = write_sample_study(tmp_path, names=("a", "b"), samples=100)
    r = run_cli(KbCheck, a, "-", stdin=f"{b}\n{tmp_path / 'missing'}\n")
    assert r.code == 1
    assert [d["path"] for d in r.json["datasets"]] == [str(a), str(b), str(tmp_path / "missing")]
    assert r.json["datasets"][2]["findings"][0]["code"] == "D2"


def test_real_pipe(tmp_path):
    write_sample_study(tmp_path, names=("a",), samples=100)
    r = subprocess.run(f"find {tmp_path} -mindepth 1 -maxdepth 1 -type d | "
                       f"{ROOT / 'bin' / 'kb-check'} -", shell=True, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["datasets"][0]["summary"]["num_channels"] == 4


def test_no_argument_is_usage_error():
    r = run_cli(KbCheck)
    assert r.code == 2 and r.stderr.splitlines()[0] == "kb-check: the following arguments are required: DIR"


def test_one_verdict_line_per_dataset_on_stderr(tmp_path):
    # a person sees the verdict, not only 70 lines of JSON
    d1, d2, d3 = write_sample_study(tmp_path, names=("d1", "d2", "d3"), channels=32, samples=100)
    raw = (d1 / "raw.mda").read_bytes()
    (d1 / "raw.mda").write_bytes(raw[:-10])
    (d1 / "geom.csv").write_text("0,0\n0,20\n")
    (d1 / "params.json").write_text('{"samplerate": 0}')
    with open(d3 / "raw.mda", "ab") as f:
        f.write(b"\0")
    r = run_cli(KbCheck, tmp_path)
    assert r.code == 1
    validate(r.json, "kb-check")
    assert r.stderr.splitlines() == [
        f"{d1}: invalid: R7 raw.mda: truncated: expected {len(raw)} bytes, found {len(raw) - 10}"
        "; 2 more errors",
        f"{d2}: valid",
        f"{d3}: valid; 1 warning: R8 raw.mda: 1 trailing bytes after the data are ignored",
    ]


def test_quiet_keeps_stdout_and_silences_stderr(tmp_path):
    write_sample_study(tmp_path, names=("d1",), samples=100)
    loud, quiet = run_cli(KbCheck, tmp_path), run_cli(KbCheck, "-q", tmp_path)
    assert loud.stderr == f"{tmp_path / 'd1'}: valid\n"
    assert quiet.code == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout
    assert run_cli(KbCheck, "--quiet", tmp_path / "missing").stderr == ""


def test_d2_and_d1_get_a_verdict_line_too(tmp_path):
    r = run_cli(KbCheck, tmp_path / "missing", tmp_path)
    assert r.stderr.splitlines() == [
        f"{tmp_path / 'missing'}: invalid: D2 {tmp_path / 'missing'} does not exist",
        f"{tmp_path}: invalid: D1 no dataset in {tmp_path}: neither it nor a subdirectory holds "
        "raw.mda"]


def test_a_newline_in_a_name_keeps_the_verdict_one_line(tmp_path):
    (ds,) = write_sample_study(tmp_path, names=("a\nb",), samples=100)
    r = run_cli(KbCheck, ds)
    assert r.code == 0 and r.stderr == str(ds).replace("\n", "\\n") + ": valid\n"


def test_a_truncated_raw_still_gets_the_geometry_check(tmp_path):
    # one finding never hides another, through the command
    (ds,) = write_sample_study(tmp_path, names=("dataset1",), channels=32, samples=100)
    raw = (ds / "raw.mda").read_bytes()
    (ds / "raw.mda").write_bytes(raw[:-10])
    (ds / "geom.csv").write_text("0,0\n0,20\n")
    r = run_cli(KbCheck, ds)
    dataset = r.json["datasets"][0]
    assert [f["code"] for f in dataset["findings"]] == ["R7", "G6"]
    assert dataset["summary"]["num_channels"] == 32


def test_a_name_that_is_not_utf8_shows_its_byte_in_the_verdict(tmp_path):
    name = os.fsdecode(b"ds\xff")
    (tmp_path / name).mkdir()
    r = run_cli(KbCheck, tmp_path / name)
    assert r.stderr.startswith(str(tmp_path) + "/ds\\xff: invalid: D1 ")
    p = subprocess.run([str(ROOT / "bin" / "kb-check"), "-"], input=b"ds\xff\n", capture_output=True,
                       cwd=tmp_path, env={**os.environ, "LC_ALL": "C"})
    assert p.returncode == 1 and p.stderr.startswith(b"ds\\xff: invalid: D1 ")
