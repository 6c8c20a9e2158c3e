"""raw.mda rules R1-R11, read_mda and write_mda; fixtures built byte by byte."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from kbtools.formats.mda import MdaError, check_mda_data, read_mda, read_mda_header, write_mda

# the 2x3 int16 example of mda-format.md §4, byte for byte
EXAMPLE = bytes.fromhex("fcffffff 02000000 02000000 02000000 03000000"
                        "0100 0400 0200 0500 0300 0600")
EXAMPLE64 = bytes.fromhex("fcffffff 02000000 feffffff 0200000000000000 0300000000000000"
                          "0100 0400 0200 0500 0300 0600")


def header(code=-4, bpe=2, dims=(2, 3), wide=False) -> bytes:
    if wide:
        return struct.pack(f"<iii{len(dims)}q", code, bpe, -len(dims), *dims)
    return struct.pack(f"<iii{len(dims)}i", code, bpe, len(dims), *dims)


def codes(info, severity=None):
    return [f.code for f in info.findings if severity is None or f.severity == severity]


def put(tmp_path, data: bytes, name="raw.mda"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_write_mda_matches_the_spec_bytes(tmp_path):
    write_mda(tmp_path / "a.mda", np.array([[1, 2, 3], [4, 5, 6]], np.int16))
    assert (tmp_path / "a.mda").read_bytes() == EXAMPLE
    write_mda(tmp_path / "b.mda", np.array([[1, 2, 3], [4, 5, 6]], np.int16), use_64bit_dims=True)
    assert (tmp_path / "b.mda").read_bytes() == EXAMPLE64


def test_header_of_valid_file(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE), raw=True)
    assert info.valid and info.findings == []
    h = info.header
    assert (h.data_type, h.num_bytes_per_entry, h.num_dims, h.dims) == (-4, 2, 2, (2, 3))
    assert h.dtype == "int16" and h.header_size == 20
    assert info.file_size == info.expected_size == 32


def test_64bit_dims_header_size_is_the_real_offset(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE64), raw=True)
    assert info.valid and info.header.num_dims == -2 and info.header.header_size == 28
    assert info.expected_size == 40
    assert read_mda(tmp_path / "raw.mda").tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("dtype", ["<u1", "<f4", "<i2", "<i4", "<u2", "<f8", "<u4"])
def test_round_trip_every_dtype(tmp_path, dtype):
    a = (np.arange(24).reshape(4, 6) * 3).astype(dtype)
    write_mda(tmp_path / "x.mda", a)
    b = read_mda(tmp_path / "x.mda")
    assert b.dtype == np.dtype(dtype) and b.shape == (4, 6) and b.flags.f_contiguous
    assert np.array_equal(a, b)


def test_write_refuses_unsupported_dtype_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_mda(tmp_path / "x.mda", np.zeros((2, 2), np.int64))
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically(tmp_path):
    p = tmp_path / "x.mda"
    write_mda(p, np.zeros((2, 2), np.int16))
    write_mda(p, np.ones((2, 3), np.float32))
    assert read_mda(p).shape == (2, 3)
    assert [c.name for c in tmp_path.iterdir()] == ["x.mda"]


def test_read_mda_raises_with_findings(tmp_path):
    p = put(tmp_path, EXAMPLE[:-2])
    with pytest.raises(MdaError) as exc:
        read_mda(p)
    assert [f.code for f in exc.value.findings] == ["R7"]


def test_r1_missing_and_directory(tmp_path):
    assert codes(read_mda_header(tmp_path / "nope.mda")) == ["R1"]
    assert codes(read_mda_header(tmp_path)) == ["R1"]


@pytest.mark.parametrize("data", [b"", b"\xfc\xff\xff\xff\x02\x00", EXAMPLE[:16]])
def test_r2_short_header(tmp_path, data):
    info = read_mda_header(put(tmp_path, data))
    assert codes(info) == ["R2"] and not info.valid


@pytest.mark.parametrize("code,word", [(-1, "complex"), (-9, "int64"), (0, "not a data type"),
                                       (2, "legacy")])
def test_r3_bad_code(tmp_path, code, word):
    info = read_mda_header(put(tmp_path, header(code=code) + bytes(12)))
    assert "R3" in codes(info) and word in info.findings[0].message


def test_r3_big_endian_is_named(tmp_path):
    data = struct.pack(">iiiii", -4, 2, 2, 2, 3) + bytes(12)
    info = read_mda_header(put(tmp_path, data))
    assert codes(info)[0] == "R3" and "big-endian" in info.findings[0].message


def test_r4_bpe_mismatch_is_error(tmp_path):
    info = read_mda_header(put(tmp_path, header(bpe=4) + bytes(12)))
    assert codes(info) == ["R4"] and not info.valid


@pytest.mark.parametrize("nd", [0, 51, -51])
def test_r5_num_dims_out_of_range(tmp_path, nd):
    info = read_mda_header(put(tmp_path, struct.pack("<iii", -4, 2, nd) + bytes(40)))
    assert codes(info) == ["R5"]


def test_r5_one_dim_ok_for_mda_but_not_raw(tmp_path):
    p = put(tmp_path, header(dims=(3,)) + bytes(6))
    assert read_mda_header(p).valid
    assert codes(read_mda_header(p, raw=True)) == ["R5"]


def test_r5_extra_dims_of_one_is_warning(tmp_path):
    p = put(tmp_path, header(dims=(2, 3, 1)) + bytes(12))
    info = read_mda_header(p, raw=True)
    assert codes(info, "warning") == ["R5"] and info.valid


def test_r5_extra_dim_above_one_is_error(tmp_path):
    p = put(tmp_path, header(dims=(2, 3, 2)) + bytes(24))
    info = read_mda_header(p, raw=True)
    assert codes(info, "error") == ["R5"]


def test_r6_negative_dim(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, -3))))
    assert codes(info) == ["R6"] and info.findings[0].field == "dims[1]"


@pytest.mark.parametrize("dims", [(0, 3), (2, 0)])
def test_r6_zero_channels_or_timepoints_in_raw(tmp_path, dims):
    p = put(tmp_path, header(dims=dims))
    assert read_mda_header(p).valid  # a zero dim is fine for a generic .mda
    assert codes(read_mda_header(p, raw=True)) == ["R6"]


def test_r7_truncated(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE[:-1]))
    assert codes(info) == ["R7"]
    assert "expected 32 bytes, found 31" in info.findings[0].message


def test_r8_trailing_bytes_warning(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE + b"xyz"))
    assert codes(info, "warning") == ["R8"] and info.valid
    assert "3 trailing bytes" in info.findings[0].message


def test_r9_big_32bit_dim(tmp_path):
    p = put(tmp_path, header(code=-2, bpe=1, dims=(1, 2_100_000_000)))
    os.truncate(p, 20 + 2_100_000_000)  # sparse: no disk used
    info = read_mda_header(p, raw=True)
    assert codes(info) == ["R9"] and info.valid
    assert codes(read_mda_header(put(tmp_path, header(dims=(2, 3)) + bytes(12), "ok.mda"))) == []


def test_r10_negative_64bit_dim(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, -3), wide=True)))
    assert codes(info) == ["R10"] and info.header.dims == (2, -3)


def test_huge_dims_on_a_tiny_file_is_truncation_not_allocation(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2**31 - 1, 2**31 - 1)) + bytes(8)))
    assert "R7" in codes(info)
    assert info.expected_size == 20 + 2 * (2**31 - 1) ** 2


def test_r11_non_finite_float_data(tmp_path):
    a = np.zeros((3, 4), np.float32)
    write_mda(tmp_path / "good.mda", a)
    a[1, 2] = np.nan
    write_mda(tmp_path / "bad.mda", a)
    assert check_mda_data(read_mda_header(tmp_path / "good.mda")) == []
    found = check_mda_data(read_mda_header(tmp_path / "bad.mda"), chunk_bytes=8)
    assert [f.code for f in found] == ["R11"]
    assert "channel 1, timepoint 2" in found[0].message


def test_r11_ignores_integer_data(tmp_path):
    write_mda(tmp_path / "i.mda", np.zeros((2, 2), np.int16))
    assert check_mda_data(read_mda_header(tmp_path / "i.mda")) == []


def test_header_reading_does_not_import_numpy(tmp_path):
    put(tmp_path, EXAMPLE)
    code = ("import sys; from kbtools.formats.mda import read_mda_header; "
            f"assert read_mda_header({str(tmp_path / 'raw.mda')!r}).valid; "
            "assert 'numpy' not in sys.modules and 'jsonschema' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
