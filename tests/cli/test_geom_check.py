"""geom-check: valid, findings, --channels and --mda, exit codes."""
from __future__ import annotations

import os

import numpy as np

from kbtools.cli.geom_check import GeomCheck
from kbtools.formats.mda import write_mda

from ..conftest import run_cli, validate


def test_valid(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n0,20\n")
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--channels", "2")
    assert r.code == 0 and r.json == {"path": str(tmp_path / "geom.csv"), "valid": True, "rows": 2,
                                      "columns": 2, "findings": []}
    validate(r.json, "geom-check")


def test_channels_mismatch_exit_1(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n0,20\n")
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--channels", "3")
    assert r.code == 1 and [f["code"] for f in r.json["findings"]] == ["G6"]
    validate(r.json, "geom-check")


def test_mda_gives_channels_and_spots_transposed(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n0,20\n20,0\n")
    write_mda(tmp_path / "raw.mda", np.zeros((3, 10), np.int16))
    assert run_cli(GeomCheck, tmp_path / "geom.csv", "--mda", tmp_path / "raw.mda").code == 0
    write_mda(tmp_path / "raw.mda", np.zeros((10, 3), np.int16))
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--mda", tmp_path / "raw.mda")
    assert r.code == 1 and "transposed" in r.json["findings"][0]["hint"]


def test_mda_missing_reports_r1(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n")
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--mda", tmp_path / "raw.mda")
    assert r.code == 1 and [f["code"] for f in r.json["findings"]] == ["R1"]
    validate(r.json, "geom-check")


def test_missing_file_is_g1(tmp_path):
    r = run_cli(GeomCheck, tmp_path / "geom.csv")
    assert r.code == 1 and r.json["findings"][0]["code"] == "G1" and r.json["rows"] is None
    validate(r.json, "geom-check")


def test_findings_carry_line_and_column(tmp_path):
    (tmp_path / "geom.csv").write_text("x,y\n0,0\n")
    f = run_cli(GeomCheck, tmp_path / "geom.csv").json["findings"][0]
    assert (f["code"], f["line"], f["column"]) == ("G3", 1, 1)


def test_usage_errors(tmp_path):
    for args, message in [
            (("--channels", "2", "--mda", "r.mda"), "argument --mda: not allowed with argument --channels"),
            (("--channels", "0"), "argument --channels: must be at least 1"),
            (("--channels", "x"), "argument --channels: not a whole number: 'x'")]:
        r = run_cli(GeomCheck, "g.csv", *args)
        assert r.code == 2 and r.stdout == ""
        assert r.stderr.splitlines()[0] == f"geom-check: {message}"


def test_random_text_never_crashes(tmp_path):
    rng = np.random.default_rng(11)
    alphabet = list(b"0123456789,.-+eE \t\r\n#;\"xnaif") + [0xEF, 0xBB, 0xBF, 0xFF]
    p = tmp_path / "geom.csv"
    for _ in range(40):
        p.write_bytes(bytes(rng.choice(alphabet, size=int(rng.integers(0, 60))).tolist()))
        r = run_cli(GeomCheck, p, "--channels", "3")
        assert r.code in (0, 1) and r.stderr.startswith(f"{p}: ") and r.stderr.count("\n") == 1
        validate(r.json, "geom-check")


def test_truncated_mda_still_gives_the_channel_count(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n0,20\n")
    write_mda(tmp_path / "raw.mda", np.zeros((3, 10), np.int16))
    os.truncate(tmp_path / "raw.mda", 30)
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--mda", tmp_path / "raw.mda")
    assert r.code == 1 and [f["code"] for f in r.json["findings"]] == ["R7", "G6"]
    validate(r.json, "geom-check")


def test_verdict_line_and_quiet(tmp_path):
    geom = tmp_path / "geom.csv"
    geom.write_text("x,y\n0,0\n0,0\n")
    r = run_cli(GeomCheck, geom, "--channels", "3")
    assert r.code == 1
    assert r.stderr == (f"{geom}: invalid: G3 field 1 is 'x', not a number: a header row?; "
                        "1 more error, 1 warning\n")
    q = run_cli(GeomCheck, "-q", geom, "--channels", "3")
    assert q.stderr == "" and q.stdout == r.stdout and q.code == 1
    geom.write_text("0,0\n")
    assert run_cli(GeomCheck, geom).stderr == f"{geom}: valid\n"


def test_verdict_names_the_raw_file_of_its_findings(tmp_path):
    (tmp_path / "geom.csv").write_text("0,0\n")
    r = run_cli(GeomCheck, tmp_path / "geom.csv", "--mda", tmp_path / "raw.mda")
    assert r.stderr.startswith(f"{tmp_path / 'geom.csv'}: invalid: R1 {tmp_path / 'raw.mda'}: ")
