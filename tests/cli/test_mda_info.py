"""mda-info: the original keys first, sizes and findings, exit codes, constant time, no numpy."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np

from kbtools.cli.mda_info import MdaInfo
from kbtools.formats.mda import write_mda

from ..conftest import ROOT, run_cli, validate

ORIGINAL_KEYS = ["num_bytes_per_entry", "num_dims", "dims", "dtype", "header_size"]


def test_valid_file_prints_original_keys_first(tmp_path):
    write_mda(tmp_path / "raw.mda", np.array([[1, 2, 3], [4, 5, 6]], np.int16))
    r = run_cli(MdaInfo, tmp_path / "raw.mda")
    assert r.code == 0
    obj = r.json
    validate(obj, "mda-info")
    assert list(obj)[:5] == ORIGINAL_KEYS
    assert list(obj)[5:] == ["path", "data_type", "file_size", "expected_size", "valid", "findings"]
    assert [obj[k] for k in ORIGINAL_KEYS] == [2, 2, [2, 3], "int16", 20]
    assert obj["file_size"] == obj["expected_size"] == 32 and obj["findings"] == []
    # the original's layout: JSON.stringify(header, null, 4)
    assert r.stdout.startswith('{\n    "num_bytes_per_entry": 2,\n    "num_dims": 2,\n')


def test_64bit_dims_header_size_is_real_offset(tmp_path):
    write_mda(tmp_path / "x.mda", np.zeros((2, 3), np.float32), use_64bit_dims=True)
    obj = run_cli(MdaInfo, tmp_path / "x.mda").json
    assert obj["num_dims"] == -2 and obj["header_size"] == 28 and obj["dtype"] == "float32"


def test_missing_file_is_r1_on_stdout_exit_1(tmp_path):
    r = run_cli(MdaInfo, tmp_path / "nope.mda")
    assert r.code == 1 and "Traceback" not in r.stderr
    validate(r.json, "mda-info")
    assert [f["code"] for f in r.json["findings"]] == ["R1"] and r.json["dims"] is None


def test_truncated_exit_1_with_sizes(tmp_path):
    write_mda(tmp_path / "x.mda", np.zeros((4, 100), np.int16))
    os.truncate(tmp_path / "x.mda", 100)
    r = run_cli(MdaInfo, tmp_path / "x.mda")
    assert r.code == 1 and r.json["expected_size"] == 820 and r.json["file_size"] == 100
    assert r.json["findings"][0]["code"] == "R7"
    validate(r.json, "mda-info")


def test_warning_only_exits_0(tmp_path):
    write_mda(tmp_path / "x.mda", np.zeros((2, 2), np.int16))
    with open(tmp_path / "x.mda", "ab") as f:
        f.write(b"\0")
    r = run_cli(MdaInfo, tmp_path / "x.mda")
    assert r.code == 0 and r.json["findings"][0]["code"] == "R8" and r.json["valid"] is True


def test_unsupported_code_prints_empty_dtype(tmp_path):
    (tmp_path / "x.mda").write_bytes(struct.pack("<iiiii", -1, 8, 2, 1, 1) + bytes(8))
    r = run_cli(MdaInfo, tmp_path / "x.mda")
    assert r.code == 1 and r.json["dtype"] == "" and r.json["expected_size"] is None
    validate(r.json, "mda-info")


def test_raw_flag_and_check_data(tmp_path):
    a = np.zeros((6,), np.float64)
    a[0] = np.nan
    write_mda(tmp_path / "x.mda", a)
    assert run_cli(MdaInfo, tmp_path / "x.mda").code == 0
    assert run_cli(MdaInfo, "--raw", tmp_path / "x.mda").json["findings"][0]["code"] == "R5"
    r = run_cli(MdaInfo, "--check-data", tmp_path / "x.mda")
    assert r.code == 1 and r.json["findings"][0]["code"] == "R11"


def test_no_argument_is_usage_error():
    r = run_cli(MdaInfo)
    assert r.code == 2 and r.stderr.splitlines()[0] == "mda-info: the following arguments are required: file"


def test_huge_sparse_file_real_process_without_numpy(tmp_path):
    """The real command on a 2 GiB sparse file: header + stat only, numpy never imported."""
    p = tmp_path / "big.mda"
    n = (2**31) // 2 // 4
    p.write_bytes(struct.pack("<iiiii", -4, 2, 2, 4, n))
    os.truncate(p, 20 + 2 * 4 * n)
    code = ("import sys, runpy; sys.argv = ['mda-info', %r]; "
            "from kbtools.cli.mda_info import MdaInfo; rc = MdaInfo.main(); "
            "assert 'numpy' not in sys.modules and 'jsonschema' not in sys.modules; "
            "sys.exit(rc)") % str(p)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"file_size": %d' % (20 + 2 * 4 * n) in r.stdout


def test_launcher_with_space_in_path(tmp_path):
    d = tmp_path / "a dir"
    d.mkdir()
    write_mda(d / "raw file.mda", np.zeros((1, 1), np.uint8))
    r = subprocess.run([str(ROOT / "bin" / "mda-info"), str(d / "raw file.mda")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and '"dtype": "byte"' in r.stdout


def test_random_bytes_never_crash(tmp_path):
    rng = np.random.default_rng(5)
    p = tmp_path / "x.mda"
    for size in list(range(0, 40)) + [64, 500]:
        data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        if size >= 12 and rng.random() < 0.5:  # often a plausible start, to reach the dims
            data = struct.pack("<iii", int(rng.integers(-9, 1)), 2, int(rng.integers(-3, 4))) + data[12:]
        p.write_bytes(data)
        r = run_cli(MdaInfo, p)
        # nothing on stderr but the verdict line
        assert r.code in (0, 1) and r.stderr.startswith(f"{p}: ") and r.stderr.count("\n") == 1, \
            (data.hex(), r.stderr)
        validate(r.json, "mda-info")


def test_verdict_line_and_quiet(tmp_path):
    write_mda(tmp_path / "x.mda", np.zeros((4, 100), np.int16))
    assert run_cli(MdaInfo, tmp_path / "x.mda").stderr == f"{tmp_path / 'x.mda'}: valid\n"
    os.truncate(tmp_path / "x.mda", 100)
    r = run_cli(MdaInfo, tmp_path / "x.mda")
    assert r.stderr == f"{tmp_path / 'x.mda'}: invalid: R7 truncated: expected 820 bytes, found 100\n"
    q = run_cli(MdaInfo, "-q", tmp_path / "x.mda")
    assert q.code == 1 and q.stderr == "" and q.stdout == r.stdout


def test_check_data_reads_what_a_truncated_float_file_holds(tmp_path):
    x = np.zeros((2, 5), np.float32)
    x[1, 0] = np.inf
    write_mda(tmp_path / "x.mda", x)
    os.truncate(tmp_path / "x.mda", 20 + 4 * 4)
    r = run_cli(MdaInfo, tmp_path / "x.mda", "--check-data")
    assert [f["code"] for f in r.json["findings"]] == ["R7", "R11"]
