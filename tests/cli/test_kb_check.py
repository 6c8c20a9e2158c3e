"""kb-check: datasets and studies, exit codes, stdin, real pipes."""
from __future__ import annotations

import json
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
    assert run_cli(KbCheck).code == 2
