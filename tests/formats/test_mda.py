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


# --- what the findings and the header object say ---------------------------------------------------

def test_to_json_of_a_valid_file_and_of_a_missing_one(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE64))
    assert list(info.to_json().items()) == [
        ("num_bytes_per_entry", 2), ("num_dims", -2), ("dims", [2, 3]), ("dtype", "int16"),
        ("header_size", 28), ("path", str(tmp_path / "raw.mda")), ("data_type", -4),
        ("file_size", 40), ("expected_size", 40), ("valid", True), ("findings", [])]
    missing = read_mda_header(tmp_path / "nope.mda").to_json()
    assert {k: v for k, v in missing.items() if k not in ("path", "findings")} == dict(
        num_bytes_per_entry=None, num_dims=None, dims=None, dtype=None, header_size=None,
        data_type=None, file_size=None, expected_size=None, valid=False)
    assert [f["code"] for f in missing["findings"]] == ["R1"]
    assert missing["findings"][0]["message"] == f".mda file not found: {tmp_path / 'nope.mda'}"


def test_header_repr_and_unsupported_code_properties(tmp_path):
    info = read_mda_header(put(tmp_path, header(code=-9, bpe=8) + bytes(48)))
    h = info.header
    assert repr(h) == "MdaHeader(data_type=-9, num_bytes_per_entry=8, num_dims=2, dims=(2, 3))"
    assert h.dtype == "" and h.numpy_dtype is None and h.itemsize is None
    assert h.expected_size is None and info.expected_size is None and info.file_size == 68
    assert not h.uses_64bit_dims and h.header_size == 20
    assert read_mda_header(put(tmp_path, header(dims=(2, -3)), "n.mda")).expected_size is None


def test_channels_timepoints(tmp_path):
    assert read_mda_header(put(tmp_path, EXAMPLE[:-1])).channels_timepoints == (2, 3)  # truncated
    assert read_mda_header(put(tmp_path, header(dims=(1, 0)), "a.mda")).channels_timepoints == (1, 0)
    for dims in ((3,), (0, 3), (2, -1)):
        assert read_mda_header(put(tmp_path, header(dims=dims), "b.mda")).channels_timepoints is None
    big = struct.pack(">iiiii", -4, 2, 2, 2, 3) + bytes(12)
    assert read_mda_header(put(tmp_path, big, "c.mda")).channels_timepoints is None
    assert read_mda_header(tmp_path / "missing.mda").channels_timepoints is None


@pytest.mark.parametrize("fields,big_endian", [
    ((-7, 8, 2), True), ((-2, 1, -50), True), ((-2, 1, 50), True),
    ((-4, 9, 2), False), ((-4, 0, 2), False), ((-4, 2, 51), False), ((-4, 2, 0), False),
    ((-1, 8, 2), False), ((-9, 8, 2), False),
])
def test_r3_big_endian_needs_a_plausible_swapped_header(tmp_path, fields, big_endian):
    data = struct.pack(">iii", *fields) + struct.pack(">ii", 2, 3) + bytes(64)
    info = read_mda_header(put(tmp_path, data))
    r3 = [f for f in info.findings if f.code == "R3"]
    assert len(r3) == 1 and ("big-endian" in r3[0].message) is big_endian
    if big_endian:
        assert r3[0].message == (f"data type code {struct.unpack('<i', struct.pack('>i', fields[0]))[0]} "
                                 f"read little-endian; the file looks big-endian (code {fields[0]} "
                                 "when byte-swapped)")
        assert r3[0].hint == "byte-swap the file to little-endian; every MDA reader assumes it"
        assert r3[0].field == "data_type"


@pytest.mark.parametrize("code,message", [
    (-1, "unsupported data type code: -1 is complex float32, which no reference reader supports"),
    (-9, "unsupported data type code: -9 is int64/uint64, which no reference reader supports"),
    (-10, "unsupported data type code: -10 is int64/uint64, which no reference reader supports"),
    (3, "unsupported data type code: a positive code (3) is the legacy complex format"),
    (1, "unsupported data type code: a positive code (1) is the legacy complex format"),
    (0, "unsupported data type code: 0 is not a data type code"),
    (-11, "unsupported data type code: -11 is not a data type code"),
])
def test_r3_messages(tmp_path, code, message):
    info = read_mda_header(put(tmp_path, header(code=code) + bytes(12)))
    assert [f.message for f in info.findings] == [message]
    assert info.findings[0].field == "data_type"


def test_messages_of_the_other_rules(tmp_path):
    def messages(data, raw=False, name="m.mda"):
        return [(f.code, f.severity, f.message, f.field)
                for f in read_mda_header(put(tmp_path, data, name), raw=raw).findings]

    assert messages(header(bpe=4) + bytes(12)) == [
        ("R4", "error", "num_bytes_per_entry is 4 but int16 entries take 2 bytes", "num_bytes_per_entry")]
    assert messages(struct.pack("<iii", -4, 2, -51)) == [
        ("R5", "error", "num_dims is -51; an .mda file has 1 to 50 dims (negative when they are 64-bit)",
         "num_dims")]
    assert messages(header(dims=(3,)) + bytes(6), raw=True) == [
        ("R5", "error", "raw.mda is 1-D; it must be 2-D (channels x timepoints)", "num_dims")]
    assert messages(header(dims=(2, 3, 1, 1)) + bytes(12), raw=True) == [
        ("R5", "warning", "raw.mda has 4 dims; the extra ones are all 1", "num_dims")]
    assert read_mda_header(put(tmp_path, header(dims=(2, 3, 1)) + bytes(12)), raw=True).findings[0].hint \
        == "readers use the first two dims; rewrite the file as 2-D"
    assert messages(header(dims=(2, 3, 2)) + bytes(24), raw=True) == [
        ("R5", "error", "raw.mda has 3 dims [2, 3, 2]; it must be 2-D (channels x timepoints)", "num_dims")]
    assert messages(header(dims=(0, 0)), raw=True) == [
        ("R6", "error", "raw.mda has 0 channels (dims[0] is 0)", "dims[0]"),
        ("R6", "error", "raw.mda has 0 timepoints (dims[1] is 0)", "dims[1]")]
    assert messages(header(dims=(-2, 3))) == [("R6", "error", "dims[0] is -2", "dims[0]")]
    assert messages(EXAMPLE[:30]) == [("R7", "error", "truncated: expected 32 bytes, found 30", None)]
    assert messages(EXAMPLE + b"x") == [
        ("R8", "warning", "1 trailing bytes after the data are ignored", None)]
    assert messages(b"\x00" * 11) == [
        ("R2", "error", "file is 11 bytes, shorter than the 12-byte header start", None)]
    assert messages(header(dims=(2, 3))[:19]) == [
        ("R2", "error", "file is 19 bytes but its header needs 20", None)]
    p = put(tmp_path, header(code=-2, bpe=1, dims=(1, 2_000_000_001)), "r9.mda")
    os.truncate(p, 20 + 2_000_000_001)
    assert [(f.message, f.field) for f in read_mda_header(p).findings] == [
        ("32-bit dims[1] is 2000000001, above 2e9", "dims[1]")]
    assert messages(struct.pack("<iiiQq", -4, 2, -2, 2**64 - 5, 3)) == [
        ("R10", "error", "64-bit dims[0] is -5 (negative as a signed int64)", "dims[0]")]


def test_r11_of_a_truncated_file_checks_the_samples_present(tmp_path):
    a = np.zeros((2, 4), np.float32)
    a[1, 1] = np.nan
    write_mda(tmp_path / "x.mda", a)
    os.truncate(tmp_path / "x.mda", 20 + 4 * 5 + 2)  # 5 whole samples and half of one
    info = read_mda_header(tmp_path / "x.mda")
    assert codes(info) == ["R7"]
    found = check_mda_data(info, chunk_bytes=8)
    assert [f.message for f in found] == [
        "1 of the 5 present (of 8) samples are NaN or infinite; the first is channel 1, timepoint 1"]
    os.truncate(tmp_path / "x.mda", 10)
    assert check_mda_data(read_mda_header(tmp_path / "x.mda")) == []


def test_r11_with_a_wrong_bpe_reads_the_dtype_size(tmp_path):
    a = np.array([[1.0, np.inf]], np.float64)
    write_mda(tmp_path / "x.mda", a)
    data = bytearray((tmp_path / "x.mda").read_bytes())
    data[4:8] = struct.pack("<i", 4)  # readers ignore num_bytes_per_entry
    (tmp_path / "x.mda").write_bytes(bytes(data))
    info = read_mda_header(tmp_path / "x.mda")
    assert codes(info) == ["R4"]
    assert [f.message for f in check_mda_data(info, chunk_bytes=1)] == [
        "1 of 2 samples are NaN or infinite; the first is channel 0, timepoint 1"]


def test_read_mda_is_read_only_and_write_refuses_signed_bytes(tmp_path):
    write_mda(tmp_path / "x.mda", np.arange(6, dtype=np.uint8).reshape(2, 3))
    a = read_mda(tmp_path / "x.mda")
    assert not a.flags.writeable and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert (tmp_path / "x.mda").read_bytes()[:4] == struct.pack("<i", -2)
    for dtype in (np.int8, np.bool_, np.complex64, np.float16):
        with pytest.raises(ValueError, match="no MDA data type"):
            write_mda(tmp_path / "y.mda", np.zeros(2, dtype))
    assert not (tmp_path / "y.mda").exists()


def test_write_mda_of_an_empty_array_is_just_the_header(tmp_path):
    write_mda(tmp_path / "x.mda", np.zeros((3, 0), np.float64))
    assert (tmp_path / "x.mda").read_bytes() == header(code=-7, bpe=8, dims=(3, 0))


@pytest.mark.parametrize("code,dtype,name", [
    (-2, "<u1", "byte"), (-3, "<f4", "float32"), (-4, "<i2", "int16"), (-5, "<i4", "int32"),
    (-6, "<u2", "uint16"), (-7, "<f8", "float64"), (-8, "<u4", "uint32"),
])
def test_data_type_codes_of_the_spec(tmp_path, code, dtype, name):
    size = np.dtype(dtype).itemsize
    write_mda(tmp_path / "x.mda", np.zeros(1, dtype))
    assert (tmp_path / "x.mda").read_bytes() == struct.pack("<iiii", code, size, 1, 1) + bytes(size)
    h = read_mda_header(tmp_path / "x.mda").header
    assert (h.dtype, h.numpy_dtype, h.itemsize) == (name, dtype, size)
    positive = read_mda_header(put(tmp_path, struct.pack("<iiii", -code, size, 1, 1) + bytes(size)))
    assert codes(positive) == ["R3"] and "legacy complex" in positive.findings[0].message


def test_one_dim_64bit_file_and_a_dim_of_one(tmp_path):
    write_mda(tmp_path / "x.mda", np.array([7, 8, 9], np.int16), use_64bit_dims=True)
    info = read_mda_header(tmp_path / "x.mda")
    assert info.findings == [] and info.header.num_dims == -1 and info.header.uses_64bit_dims
    assert info.header.header_size == 20 and read_mda(tmp_path / "x.mda").tolist() == [7, 8, 9]
    write_mda(tmp_path / "y.mda", np.array([[1.5, 2.5, 3.5]], np.float32))  # dims (1, 3)
    assert read_mda(tmp_path / "y.mda").tolist() == [[1.5, 2.5, 3.5]]


def test_r11_with_trailing_bytes_counts_only_the_data(tmp_path):
    write_mda(tmp_path / "x.mda", np.array([[np.nan, 0.0]], np.float32))
    with open(tmp_path / "x.mda", "ab") as f:
        f.write(bytes(8))
    found = check_mda_data(read_mda_header(tmp_path / "x.mda"))
    assert [f.message for f in found] == [
        "1 of 2 samples are NaN or infinite; the first is channel 0, timepoint 0"]


def test_r11_with_the_default_chunk_size_over_many_samples(tmp_path):
    a = np.zeros((4, 100), np.float32)
    a[3, 50] = np.inf
    write_mda(tmp_path / "bad.mda", a)
    found = check_mda_data(read_mda_header(tmp_path / "bad.mda"))
    assert [f.message for f in found] == ["1 of 400 samples are NaN or infinite; the first is channel 3, timepoint 50"]


def test_r11_of_a_file_that_shrank_since_its_header_was_read(tmp_path):
    a = np.full((2, 10), np.nan, np.float32)
    write_mda(tmp_path / "x.mda", a)
    info = read_mda_header(tmp_path / "x.mda")
    with open(tmp_path / "x.mda", "r+b") as f:
        f.truncate(info.header.header_size + 3 * 4)
    found = check_mda_data(info)
    assert [f.code for f in found] == ["R11"] and found[0].message.startswith("3 of 20 samples")


def test_r3_big_endian_is_named_for_one_dim_too(tmp_path):
    data = struct.pack(">iiii", -4, 2, 1, 3) + bytes(6)
    info = read_mda_header(put(tmp_path, data))
    assert codes(info)[0] == "R3" and "big-endian" in info.findings[0].message


def test_a_zero_dim_file_has_its_size_checked(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, 0)) + b"xxxx"))
    assert info.expected_size == 20 and codes(info) == ["R8"]


def test_channels_and_timepoints_of_a_3d_file(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, 3, 1)) + bytes(12)))
    assert info.channels_timepoints == (2, 3)


def test_raw_is_a_keyword_only_argument(tmp_path):
    with pytest.raises(TypeError):
        read_mda_header(put(tmp_path, EXAMPLE), True)  # type: ignore[misc]


def test_a_64bit_one_dim_header_cut_short_of_its_dim(tmp_path):
    info = read_mda_header(put(tmp_path, struct.pack("<iiiq", -4, 2, -1, 3)[:18]))
    assert codes(info) == ["R2"]


def test_r6_for_a_dim_of_minus_one(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(2, -1))))
    assert "R6" in codes(info)


def test_r11_names_the_first_bad_sample_across_chunks_of_three(tmp_path):
    a = np.zeros((1, 10), np.float32)
    a[0, 4] = np.nan
    write_mda(tmp_path / "x.mda", a)
    found = check_mda_data(read_mda_header(tmp_path / "x.mda"), chunk_bytes=12)
    assert found[0].message.endswith("the first is channel 0, timepoint 4")


def test_r8_names_the_number_of_trailing_bytes(tmp_path):
    info = read_mda_header(put(tmp_path, EXAMPLE + b"1234"))
    assert [f.message for f in info.findings if f.code == "R8"] == ["4 trailing bytes after the data are ignored"]


def test_a_negative_dim_of_a_raw_file_is_r6_once(tmp_path):
    info = read_mda_header(put(tmp_path, header(dims=(-1, 3))), raw=True)
    assert codes(info).count("R6") == 1
