"""geom.csv rules G1-G9."""
from __future__ import annotations

import pytest

from kbtools.formats.geom import check_geom, check_geom_rows


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


# -- positions of findings, messages and hints --------------------------------------------------------

def test_g2_bom_is_at_line_1_column_1(tmp_path):
    f = geom(tmp_path, b"\xef\xbb\xbf0,0\n1,1\n").findings[0]
    assert (f.code, f.line, f.column) == ("G2", 1, 1)
    assert f.message == "geom.csv starts with a UTF-8 byte order mark"


@pytest.mark.parametrize("data,line,byte", [(b"0,0\n1,1\n2,\xff\n", 3, 10), (b"\n\n\xff,0\n", 3, 2),
                                            (b"\xff,0\n", 1, 0), (b"0,0\n\n\n\n\n\n1,\xfe\n", 7, 11)])
def test_g2_not_utf8_names_the_line_of_the_bad_byte(tmp_path, data, line, byte):
    f = geom(tmp_path, data).findings[0]
    assert f.code == "G2" and f.line == line
    assert f.message == f"geom.csv is not valid UTF-8 (byte {byte})"


@pytest.mark.parametrize("text,message", [
    ("0,,1\n", "field 2 is empty"),
    (",0\n", "field 1 is empty"),
    ("0,1,\n", "trailing comma (empty last field)"),
    ("0,\n", "trailing comma (empty last field)"),
    ("0,abc\n", "field 2 is 'abc', not a number"),
    ("x,y\n", "field 1 is 'x', not a number"),  # a header is only looked for on the first data line
])
def test_g3_messages_name_the_field(tmp_path, text, message):
    info = geom(tmp_path, "5,5\n" + text)
    assert [f.message for f in info.findings] == [message]
    assert info.findings[0].hint == "write one position per line as numbers separated by commas, " \
                                    "with no header row"  # the rule's own


@pytest.mark.parametrize("text,message,hint", [
    ("x,y\n", "field 1 is 'x', not a number: a header row?",
     "remove the header row: geom.csv holds numbers only"),
    ("# probe\nch1,ch2\n0,0\n", "field 1 is 'ch1', not a number: a header row?",
     "remove the header row: geom.csv holds numbers only"),
    ("1a,2\n", "field 1 is '1a', not a number", None),  # starts like a number: a typo, not a header
    ("0\t0\n", "field 1 is '0\\t0', not a number",
     "separate fields with commas (not spaces, tabs or semicolons)"),
    ("0 0\n", "field 1 is '0 0', not a number",
     "separate fields with commas (not spaces, tabs or semicolons)"),
    ("0;0\n", "field 1 is '0;0', not a number",
     "separate fields with commas (not spaces, tabs or semicolons)"),
])
def test_g3_first_line_header_or_separator(tmp_path, text, message, hint):
    f = geom(tmp_path, text).findings[0]
    assert f.code == "G3" and f.message == message
    if hint is None:  # the rule's own
        assert f.hint == "write one position per line as numbers separated by commas, with no header row"
    else:
        assert f.hint == hint


def test_g3_only_the_first_data_line_can_be_a_header(tmp_path):
    info = geom(tmp_path, "# probe\n\n0,0\nx,y\n")
    assert [(f.line, f.message) for f in info.findings] == [(4, "field 1 is 'x', not a number")]


def test_every_bad_line_is_reported_and_good_lines_still_count(tmp_path):
    info = geom(tmp_path, "0,0\n  \n1,1\nx,1\n2,2\n3,3,3\n4,4\n# end\n5,5\n")
    assert [(f.code, f.line) for f in info.findings] == [("G3", 2), ("G3", 4), ("G4", 6)]
    assert info.rows == 5 and info.lines == [1, 3, 5, 7, 9]


def test_g4_fewer_columns_than_the_first_row(tmp_path):
    info = geom(tmp_path, "0,0,0\n1,1\n")
    f = info.findings[0]
    assert (f.code, f.line, f.message) == ("G4", 2, "line has 2 column(s) but the first row has 3")


def test_g5_is_reported_at_the_first_row(tmp_path):
    f = geom(tmp_path, "# one column\n\n0\n1\n2\n").findings[0]
    assert (f.code, f.line) == ("G5", 3)
    assert f.message == "geom.csv has 1 column(s); it needs 2 (x,y) or 3 (x,y,z)"


@pytest.mark.parametrize("text,column,value", [("0,0\n1,nan\n", 2, "nan"), ("0,0,0\n1,2,inf\n", 3, "inf"),
                                               ("0,0,0\n-inf,2,3\n", 1, "-inf"),
                                               ("0,0\n1, 1e309\n", 2, "1e309")])
def test_g7_message_names_the_value(tmp_path, text, column, value):
    f = geom(tmp_path, text).findings[0]
    assert (f.code, f.line, f.column) == ("G7", 2, column)
    assert f.message == f"position value {value!r} is not finite"


# -- G6 and the transposed raw.mda --------------------------------------------------------------------

def _rows(n):
    return "".join(f"{20 * i},0\n" for i in range(n))


def test_g6_more_rows_than_channels(tmp_path):
    info = geom(tmp_path, _rows(3), channels=2)
    assert [f.message for f in info.findings] == ["geom.csv has 3 rows but raw.mda has 2 channels"]


def test_g6_neuropixels_sized_probe_matches(tmp_path):
    # 384 rows: counts above CPython's small-int cache are compared by value
    assert geom(tmp_path, _rows(384), channels=384).findings == []


def test_g6_transposed_raw_is_named_in_the_hint(tmp_path):
    info = geom(tmp_path, _rows(384))
    check_geom_rows(info, 30000, 384, raw_name="recording.mda")
    f = info.findings[0]
    assert f.code == "G6" and f.message == "geom.csv has 384 rows but recording.mda has 30000 channels"
    assert f.hint == ("recording.mda looks transposed (timepoints x channels); rewrite it as "
                      "channels x timepoints")


@pytest.mark.parametrize("timepoints", [None, 1000, 2])
def test_g6_rows_unlike_either_dim_has_the_rule_hint(tmp_path, timepoints):
    info = geom(tmp_path, _rows(4))
    check_geom_rows(info, 8, timepoints)
    f = info.findings[0]
    assert f.message == "geom.csv has 4 rows but raw.mda has 8 channels"
    assert f.hint == "geom.csv needs one row per channel (raw.mda dims[0])"


def test_g6_counts_the_rows_of_a_file_with_other_errors(tmp_path):
    info = geom(tmp_path, "0,0\n1,x\n2,2\n", channels=3)
    assert codes(info) == ["G3", "G6"]
    assert info.findings[1].message == "geom.csv has 2 rows but raw.mda has 3 channels"


def test_g6_an_empty_file_has_0_rows(tmp_path):
    info = geom(tmp_path, "# no channels yet\n", channels=2)
    assert [f.message for f in info.findings] == ["geom.csv has 0 rows but raw.mda has 2 channels"]


def test_g6_not_counted_when_no_row_could_be_read(tmp_path):
    assert codes(geom(tmp_path, "x,y\n", channels=2)) == ["G3"]
    assert codes(geom(tmp_path, b"\xff\xfe", channels=2)) == ["G2", "G3"]


# -- JSON ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,valid,rows", [("0,0\n1,1\n", True, 2), ("", True, 0),
                                             ("0,0\n1,x\n", False, 1), ("x,y\n", False, None)])
def test_to_json_rows_only_when_some_were_read_or_the_file_is_valid(tmp_path, text, valid, rows):
    out = geom(tmp_path, text).to_json()
    assert out["valid"] is valid and out["rows"] == rows and out["path"] == str(tmp_path / "geom.csv")
    assert [f["code"] for f in out["findings"]] == ([] if valid else ["G3"])


def test_wide_lines_are_counted_by_value(tmp_path):
    # column numbers above CPython's small-int cache (256): still compared by value
    wide = ",".join(["0"] * 300)
    info = geom(tmp_path, f"{wide}\n1,{wide[2:]}\n{wide},\n")
    assert [(f.code, f.line, f.column, f.message) for f in info.findings if f.code != "G5"] == [
        ("G3", 3, 301, "trailing comma (empty last field)")]
    assert info.rows == 2 and info.columns == 300
