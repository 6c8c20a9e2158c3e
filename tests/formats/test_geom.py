"""geom.csv rules G1-G9."""
from __future__ import annotations

import pytest

from kbtools.formats.geom import check_geom


def geom(tmp_path, data: bytes | str, channels=None):
    p = tmp_path / "geom.csv"
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return check_geom(p, channels=channels)


def codes(info, severity=None):
    return [f.code for f in info.findings if severity is None or f.severity == severity]


def test_valid_geometry(tmp_path):
    info = geom(tmp_path, "0,0\n20,0\n0,20\n20,20\n", channels=4)
    assert info.valid and info.findings == []
    assert info.rows == 4 and info.columns == 2
    assert info.positions[3] == (20.0, 20.0)


def test_accepted_variants(tmp_path):
    text = "# probe\n 0 , 0\r\n\n1e1,\t-2.5 # inline\n.5,+3\n0.000000000000000000e+00,1.0e+01\n"
    info = geom(tmp_path, text)
    assert info.valid and info.findings == [] and info.rows == 4
    assert info.lines == [2, 4, 5, 6]


def test_g1_missing_and_directory(tmp_path):
    assert codes(check_geom(tmp_path / "geom.csv")) == ["G1"]
    assert codes(check_geom(tmp_path)) == ["G1"]


def test_g2_bom_is_error_and_parsing_goes_on(tmp_path):
    info = geom(tmp_path, b"\xef\xbb\xbf0,0\n1,1\n")
    assert codes(info) == ["G2"] and info.rows == 2


def test_g2_not_utf8(tmp_path):
    info = geom(tmp_path, b"0,0\n1,\xff\n")
    assert "G2" in codes(info) and info.findings[0].line == 2


def test_g3_header_row(tmp_path):
    info = geom(tmp_path, "x,y\n0,0\n")
    f = info.findings[0]
    assert codes(info) == ["G3"] and f.line == 1 and f.column == 1 and "header row" in f.message


@pytest.mark.parametrize("text,column", [("0\t0\n", 1), ("0 0\n", 1), ("0;0\n", 1), ('"0",0\n', 1),
                                         ("0,,1\n", 2), ("0,1,\n", 3), ("1_0,2\n", 1)])
def test_g3_bad_fields(tmp_path, text, column):
    info = geom(tmp_path, "5,5\n" + text)
    assert codes(info) == ["G3"]
    assert info.findings[0].line == 2 and info.findings[0].column == column


def test_g3_separator_hint(tmp_path):
    assert "commas" in geom(tmp_path, "0\t0\n").findings[0].hint


def test_g3_whitespace_only_line(tmp_path):
    info = geom(tmp_path, "0,0\n   \n1,1\n")
    assert codes(info) == ["G3"] and info.findings[0].line == 2


def test_g4_ragged(tmp_path):
    info = geom(tmp_path, "0,0\n1,1,1\n")
    assert codes(info) == ["G4"] and info.findings[0].line == 2


@pytest.mark.parametrize("text", ["0\n1\n", "0,0,0,0\n1,1,1,1\n"])
def test_g5_column_count(tmp_path, text):
    assert codes(geom(tmp_path, text)) == ["G5"]


def test_g6_rows_vs_channels(tmp_path):
    info = geom(tmp_path, "0,0\n1,1\n", channels=3)
    assert codes(info) == ["G6"]
    assert info.findings[0].message == "geom.csv has 2 rows but raw.mda has 3 channels"
    assert geom(tmp_path, "0,0\n1,1\n", channels=2).valid


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e309"])
def test_g7_non_finite(tmp_path, value):
    info = geom(tmp_path, f"0,0\n1,{value}\n")
    assert codes(info) == ["G7"]
    assert (info.findings[0].line, info.findings[0].column) == (2, 2)


def test_g8_duplicate_positions_warning(tmp_path):
    info = geom(tmp_path, "0,0\n0,0\n0,0\n1,0\n")
    assert codes(info, "warning") == ["G8", "G8"] and info.valid
    assert [f.line for f in info.findings] == [2, 3]


def test_g9_three_columns_info(tmp_path):
    info = geom(tmp_path, "0,0,0\n0,1,2\n")
    assert codes(info, "info") == ["G9"] and info.valid and info.columns == 3
