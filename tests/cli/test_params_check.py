"""params-check: valid, findings, exit codes."""
from __future__ import annotations

from kbtools.cli.params_check import ParamsCheck

from ..conftest import run_cli, validate


def test_valid(tmp_path):
    (tmp_path / "params.json").write_text('{"samplerate": 30000, "spike_sign": -1}')
    r = run_cli(ParamsCheck, tmp_path / "params.json")
    assert r.code == 0 and r.json["valid"] is True and r.json["samplerate"] == 30000.0
    validate(r.json, "params-check")


def test_invalid_exit_1_with_field(tmp_path):
    (tmp_path / "params.json").write_text('{"samplerate": "30000", "spike_sign": 5}')
    r = run_cli(ParamsCheck, tmp_path / "params.json")
    assert r.code == 1 and r.json["samplerate"] is None
    assert [(f["code"], f["field"]) for f in r.json["findings"]] == [("P4", "samplerate"),
                                                                   ("P5", "spike_sign")]
    validate(r.json, "params-check")


def test_missing_file_is_p1(tmp_path):
    r = run_cli(ParamsCheck, tmp_path / "params.json")
    assert r.code == 1 and r.json["findings"][0]["code"] == "P1"
    validate(r.json, "params-check")


def test_warnings_only_exit_0(tmp_path):
    (tmp_path / "params.json").write_text('{"samplerate": 1, "samplerate": 2}')
    r = run_cli(ParamsCheck, tmp_path / "params.json")
    assert r.code == 0 and r.json["findings"][0]["severity"] == "warning"


def test_random_text_never_crashes(tmp_path):
    import random

    rng = random.Random(3)
    pieces = ['{', '}', '[', ']', '"samplerate"', '"spike_sign"', '"detect_sign"', ':', ',', '1',
              '-1', '0', '1.0', '3e4', 'NaN', 'true', 'null', '"x"', ' ', '\n', '\ufeff', '1e999']
    p = tmp_path / "params.json"
    for _ in range(60):
        p.write_text("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))))
        r = run_cli(ParamsCheck, p)
        assert r.code in (0, 1) and r.stderr.startswith(f"{p}: ") and r.stderr.count("\n") == 1
        validate(r.json, "params-check")
    p.write_text("[" * 100000)
    assert run_cli(ParamsCheck, p).code == 1


def test_verdict_line_and_quiet(tmp_path):
    p = tmp_path / "params.json"
    p.write_text('{"samplerate": "30000", "spike_sign": 5}')
    r = run_cli(ParamsCheck, p)
    assert r.stderr == (f"{p}: invalid: P4 samplerate is a JSON string (\"30000\"); it must be a "
                        "number; 1 more error\n")
    q = run_cli(ParamsCheck, p, "--quiet")
    assert q.stderr == "" and q.stdout == r.stdout and q.code == 1
    p.write_text('{"samplerate": 30000}')
    assert run_cli(ParamsCheck, p).stderr == f"{p}: valid\n"
