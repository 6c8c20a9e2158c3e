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


# --- boundaries and shapes the rules name (mda-format.md §3) -------------------------------------

@pytest.mark.parametrize("dims", [(2, 200), (18, 3), (1, 2**40)])
def test_64bit_dims_above_17_are_legal(tmp_path, dims):
    p = put(tmp_path, header(code=-2, bpe=1, dims=dims, wide=True))
    os.truncate(p, 12 + 16 + dims[0] * dims[1])  # sparse
    info = read_mda_header(p, raw=True)
    assert info.findings == [] and info.header.dims == dims


def test_64bit_dims_boundary_at_two_to_the_63(tmp_path):
    p = put(tmp_path, header(code=-2, bpe=1, dims=(1, 2**63 - 1), wide=True), "max.mda")
    info = read_mda_header(p)
    assert codes(info) == ["R7"] and info.header.dims == (1, 2**63 - 1)  # huge, but a legal dim
    p = put(tmp_path, struct.pack("<iiiqQ", -2, 1, -2, 1, 2**63), "over.mda")
    info = read_mda_header(p)
    assert codes(info) == ["R10"] and info.header.dims == (1, -(2**63))
    assert info.findings[0].field == "dims[1]" and str(-(2**63)) in info.findings[0].message
    p = put(tmp_path, struct.pack("<iiiQq", -2, 1, -2, 2**64 - 1, 3), "minus1.mda")
    info = read_mda_header(p)
    assert codes(info) == ["R10"] and info.header.dims == (-1, 3)
    assert info.findings[0].field == "dims[0]"


def test_32bit_dims_boundary_at_2e9(tmp_path):
    p = put(tmp_path, header(code=-2, bpe=1, dims=(1, 2_000_000_000)))
    os.truncate(p, 20 + 2_000_000_000)
    assert read_mda_header(p).findings == []
    p = put(tmp_path, header(code=-2, bpe=1, dims=(2_000_000_001, 1)), "over.mda")
    os.truncate(p, 20 + 2_000_000_001)
    info = read_mda_header(p)
    assert codes(info) == ["R9"] and info.findings[0].field == "dims[0]" and info.valid
    assert info.findings[0].severity == "warning"


def test_writer_switches_to_64bit_dims_above_2e9(tmp_path):
    # a zero dim keeps the arrays empty: only the header is written
    write_mda(tmp_path / "at.mda", np.zeros((0, 2_000_000_000), np.uint8))
    assert (tmp_path / "at.mda").read_bytes() == header(code=-2, bpe=1, dims=(0, 2_000_000_000))
    write_mda(tmp_path / "over.mda", np.zeros((2_000_000_001, 0), np.uint8))
    assert (tmp_path / "over.mda").read_bytes() == header(code=-2, bpe=1, dims=(2_000_000_001, 0),
                                                          wide=True)
    write_mda(tmp_path / "narrow.mda", np.zeros((2, 3), np.uint8), use_64bit_dims=False)
    assert (tmp_path / "narrow.mda").read_bytes() == header(code=-2, bpe=1, dims=(2, 3)) + bytes(6)


@pytest.mark.parametrize("nd", [50, -50])
def test_fifty_dims_are_legal(tmp_path, nd):
    dims = (2,) + (1,) * 49
    p = put(tmp_path, header(code=-2, bpe=1, dims=dims, wide=nd < 0) + bytes(2))
    info = read_mda_header(p)
    assert info.findings == [] and info.header.num_dims == nd and info.header.dims == dims
    assert info.header.header_size == 12 + (8 if nd < 0 else 4) * 50
    assert read_mda(p).shape == dims


def test_header_cut_short_of_its_dims(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, 3), wide=True)[:27]))
    assert codes(info) == ["R2"] and "needs 28" in info.findings[0].message


def test_raw_with_an_extra_dim_above_one_anywhere_is_an_error(tmp_path):
    p = put(tmp_path, header(dims=(2, 3, 1, 2)) + bytes(24))
    info = read_mda_header(p, raw=True)
    assert codes(info, "error") == ["R5"] and codes(info, "warning") == [] and not info.valid
    assert read_mda_header(p).valid  # a generic .mda may have 4 dims


def test_raw_zero_dims_name_the_axis(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(0, 3))), raw=True)
    assert info.findings[0].field == "dims[0]" and "0 channels" in info.findings[0].message
    info = read_mda_header(put(tmp_path, header(dims=(2, 0)), "b.mda"), raw=True)
    assert info.findings[0].field == "dims[1]" and "0 timepoints" in info.findings[0].message


# --- R11 over chunks ---------------------------------------------------------------------------

def test_r11_finds_a_nan_in_the_last_partial_chunk(tmp_path):
    a = np.zeros((3, 4), np.float32)  # 12 samples; 5-sample chunks: 5, 5, then 2
    a[2, 3] = np.inf  # sample 11, in the last chunk
    write_mda(tmp_path / "x.mda", a)
    found = check_mda_data(read_mda_header(tmp_path / "x.mda"), chunk_bytes=20)
    assert [f.code for f in found] == ["R11"]
    assert found[0].message == "1 of 12 samples are NaN or infinite; the first is channel 2, timepoint 3"


def test_r11_names_the_first_bad_sample_not_the_last(tmp_path):
    a = np.zeros((2, 8), np.float64)
    a[1, 1] = np.nan   # sample 3, chunk 0 (4-sample chunks)
    a[0, 2] = -np.inf  # sample 4, chunk 1
    a[1, 6] = np.nan   # sample 13, chunk 3
    write_mda(tmp_path / "x.mda", a)
    for chunk in (32, 8, 1 << 20):
        found = check_mda_data(read_mda_header(tmp_path / "x.mda"), chunk_bytes=chunk)
        assert found[0].message == ("3 of 16 samples are NaN or infinite; the first is channel 1, "
                                    "timepoint 1"), chunk


def test_r11_of_a_one_dim_file_counts_without_a_channel(tmp_path):
    write_mda(tmp_path / "x.mda", np.array([0.0, np.nan, 1.0], np.float32))
    found = check_mda_data(read_mda_header(tmp_path / "x.mda"))
    assert found[0].message == "1 of 3 samples are NaN or infinite"


@pytest.mark.parametrize("data", [
    None,  # missing
    b"\x00" * 5,  # R2
    header(code=-1) + bytes(24),  # R3
    header(code=-3, bpe=4, dims=(2, -3)),  # R6
    struct.pack("<iiiQq", -3, 4, -2, 2**64 - 1, 3),  # R10
])
def test_r11_skips_a_file_whose_header_cannot_be_used(tmp_path, data):
    p = tmp_path / "raw.mda"
    if data is not None:
        p.write_bytes(data)
    info = read_mda_header(p)
    assert not info.valid
    assert check_mda_data(info) == []


# --- read_mda / write_mda edges ----------------------------------------------------------------

def test_read_mda_of_a_file_with_a_zero_dim(tmp_path):
    for dims, name in (((2, 0), "a.mda"), ((0, 3), "b.mda")):
        a = read_mda(put(tmp_path, header(code=-3, bpe=4, dims=dims), name))
        assert a.shape == dims and a.dtype == np.float32 and a.size == 0


def test_write_mda_refuses_a_0d_array_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="at least one dimension"):
        write_mda(tmp_path / "x.mda", np.float32(1.0))
    assert list(tmp_path.iterdir()) == []


def test_write_mda_converts_to_the_dtype_asked(tmp_path):
    write_mda(tmp_path / "x.mda", [[1, 2], [3, 4]], dtype="float32")
    b = read_mda(tmp_path / "x.mda")
    assert b.dtype == np.float32 and b.tolist() == [[1, 2], [3, 4]]
    write_mda(tmp_path / "y.mda", np.array([1, 2], ">i2"))  # big-endian input is written little
    assert (tmp_path / "y.mda").read_bytes() == header(code=-4, bpe=2, dims=(2,)) + b"\x01\x00\x02\x00"


def test_read_mda_error_names_every_error(tmp_path):
    p = put(tmp_path, header(code=-3, bpe=2, dims=(2, 3)))
    with pytest.raises(MdaError) as exc:
        read_mda(p)
    assert [f.code for f in exc.value.findings] == ["R4", "R7"]
    assert "R4: num_bytes_per_entry is 2 but float32 entries take 4 bytes" in str(exc.value)
    assert "R7: truncated" in str(exc.value)


# --- a file that can be stat'ed but not opened (item: runs as root too) ----------------------------

def test_r1_stat_works_but_open_fails(tmp_path, monkeypatch):
    import builtins

    p = put(tmp_path, EXAMPLE)
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == str(p):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    info = read_mda_header(p)
    assert codes(info) == ["R1"] and info.file_size == 32 and info.header is None
    assert info.findings[0].message == "cannot read .mda file: Permission denied"


def test_r11_never_reads_trailing_bytes_as_samples(tmp_path):
    a = np.zeros((3, 4), np.float32)
    write_mda(tmp_path / "x.mda", a)
    with open(tmp_path / "x.mda", "ab") as f:
        f.write(np.full(3, np.nan, "<f4").tobytes())  # R8: ignored by readers, so not data
    info = read_mda_header(tmp_path / "x.mda")
    assert codes(info) == ["R8"]
    for chunk in (20, 48, 1 << 20):
        assert check_mda_data(info, chunk_bytes=chunk) == [], chunk
