"""params.json rules P1-P7 and the params schema."""
from __future__ import annotations

import json

import jsonschema
import pytest

from kbtools.formats.params import SCHEMA_PATH, check_params

from ..conftest import validate


def params(tmp_path, data: bytes | str):
    p = tmp_path / "params.json"
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return check_params(p)


def codes(info, severity=None):
    return [f.code for f in info.findings if severity is None or f.severity == severity]


@pytest.mark.parametrize("text", ['{"samplerate": 30000}', '{"samplerate": 30000.5, "spike_sign": -1}',
                                  '{"samplerate": 1e7, "detect_sign": 0, "spike_sign": 0}',
                                  '{"samplerate": 20000, "detect_sign": 1, "adjacency_radius": -1}'])
def test_valid(tmp_path, text):
    info = params(tmp_path, text)
    assert info.valid and info.findings == []
    assert info.samplerate == float(json.loads(text)["samplerate"])


def test_schema_is_a_valid_2020_12_schema_and_agrees_on_a_sample():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validate({"samplerate": 30000, "spike_sign": -1}, "params")
    with pytest.raises(jsonschema.ValidationError):
        validate({"spike_sign": -1}, "params")


def test_p1_missing_and_directory(tmp_path):
    assert codes(check_params(tmp_path / "params.json")) == ["P1"]
    assert codes(check_params(tmp_path)) == ["P1"]


@pytest.mark.parametrize("data", [b"", b"{", b'{"samplerate": 30000,}', b"[30000]", b'"x"',
                                  b'{"samplerate": 3\xff}'])
def test_p2_not_a_strict_json_object(tmp_path, data):
    info = params(tmp_path, data)
    assert codes(info) == ["P2"] and info.samplerate is None


@pytest.mark.parametrize("data", [b'\xef\xbb\xbf{"samplerate": "30000", "spike_sign": 5}',
                                  b'{"samplerate": "30000", "spike_sign": 5, "lab": "\xff"}'])
def test_p2_bom_or_bad_byte_does_not_hide_the_other_rules(tmp_path, data):
    info = params(tmp_path, data)
    assert codes(info, "error") == ["P2", "P4", "P5"]


def test_p2_bom_keeps_the_samplerate_readable(tmp_path):
    info = params(tmp_path, b'\xef\xbb\xbf{"samplerate": 30000}')
    assert codes(info) == ["P2"] and not info.valid and info.samplerate == 30000.0


def test_p2_syntax_error_has_location(tmp_path):
    f = params(tmp_path, '{\n  "samplerate": 30000,\n}').findings[0]
    assert (f.code, f.line) == ("P2", 3) and f.column >= 1


@pytest.mark.parametrize("const", ["NaN", "Infinity", "-Infinity"])
def test_p2_and_p4_nan_infinity(tmp_path, const):
    info = params(tmp_path, f'{{"samplerate": {const}}}')
    assert codes(info) == ["P2", "P4"]


def test_p3_missing_samplerate(tmp_path):
    info = params(tmp_path, '{"spike_sign": -1}')
    assert codes(info) == ["P3"]


@pytest.mark.parametrize("value", ['"30000"', "true", "null", "0", "-5", "1e8"])
def test_p4_bad_samplerate(tmp_path, value):
    info = params(tmp_path, f'{{"samplerate": {value}}}')
    assert codes(info) == ["P4"] and info.findings[0].field == "samplerate"
    assert info.samplerate is None


@pytest.mark.parametrize("value", ["5", '"neg"', "1.5", "1.0", "true"])
def test_p5_bad_spike_sign(tmp_path, value):
    info = params(tmp_path, f'{{"samplerate": 30000, "spike_sign": {value}}}')
    assert codes(info) == ["P5"] and info.findings[0].field == "spike_sign"


@pytest.mark.parametrize("value", ["2", "-1.0", "false"])
def test_p6_bad_detect_sign(tmp_path, value):
    assert codes(params(tmp_path, f'{{"samplerate": 30000, "detect_sign": {value}}}')) == ["P6"]


def test_p6_conflict_is_warning(tmp_path):
    info = params(tmp_path, '{"samplerate": 30000, "spike_sign": -1, "detect_sign": 1}')
    assert codes(info, "warning") == ["P6"] and info.valid


def test_p6_conflict_only_between_two_valid_signs(tmp_path):
    info = params(tmp_path, '{"samplerate": 30000, "spike_sign": 5, "detect_sign": 1}')
    assert codes(info) == ["P5"]


def test_p7_duplicate_key_warning_last_wins(tmp_path):
    info = params(tmp_path, '{"samplerate": 1000, "samplerate": 30000}')
    assert codes(info, "warning") == ["P7"] and info.valid and info.samplerate == 30000.0
    assert info.findings[0].field == "samplerate"


def test_p7_unknown_key_info(tmp_path):
    info = params(tmp_path, '{"samplerate": 30000, "lab": "x"}')
    assert codes(info, "info") == ["P7"] and info.valid


# -- where P2 points, and what the messages say -------------------------------------------------------

def test_p2_bom_is_at_line_1_column_1(tmp_path):
    f = params(tmp_path, b'\xef\xbb\xbf{"samplerate": 30000}').findings[0]
    assert (f.code, f.line, f.column) == ("P2", 1, 1)
    assert f.message == "params.json starts with a UTF-8 byte order mark"


@pytest.mark.parametrize("data,line,byte", [
    (b'{"lab": "\xff", "samplerate": 30000}', 1, 9),
    (b'{"samplerate": 30000,\n "lab": "\xff"}', 2, 31),
    (b'\n{"samplerate": 30000,\n "lab": "\xfe"}', 3, 32),
    (b'{\n\n\n "lab": "\xff", "samplerate": 30000}', 4, 13),
])
def test_p2_bad_byte_names_its_line(tmp_path, data, line, byte):
    f = params(tmp_path, data).findings[0]
    assert (f.code, f.line) == ("P2", line)
    assert f.message == f"params.json is not valid UTF-8 (byte {byte})"


@pytest.mark.parametrize("text,kind", [("[1]", "array"), ("5", "number"), ("null", "null"),
                                       ("true", "boolean"), ('"x"', "string")])
def test_p2_top_level_names_its_json_type(tmp_path, text, kind):
    info = params(tmp_path, text)
    assert [f.message for f in info.findings] == [f"the top level is a JSON {kind}, not an object"]


def test_p2_nested_too_deeply(tmp_path):
    info = params(tmp_path, "[" * 100_000)
    assert [(f.code, f.message) for f in info.findings] == [("P2", "invalid JSON: nested too deeply")]


def test_p3_message(tmp_path):
    f = params(tmp_path, '{"spike_sign": 1}').findings[0]
    assert (f.code, f.message, f.field) == ("P3", "'samplerate' is a required property", None)


@pytest.mark.parametrize("text,code,message", [
    ('{"samplerate": "30000"}', "P4", 'samplerate is a JSON string ("30000"); it must be a number'),
    ('{"samplerate": true}', "P4", "samplerate is a JSON boolean (true); it must be a number"),
    ('{"samplerate": null}', "P4", "samplerate is a JSON null (null); it must be a number"),
    ('{"samplerate": [1]}', "P4", "samplerate is a JSON array ([1]); it must be a number"),
    ('{"samplerate": {}}', "P4", "samplerate is a JSON object ({}); it must be a number"),
    ('{"samplerate": 0}', "P4", "samplerate is 0; it must be in (0, 1e7]"),
    ('{"samplerate": -5}', "P4", "samplerate is -5; it must be in (0, 1e7]"),
    ('{"samplerate": 10000001}', "P4", "samplerate is 10000001; it must be in (0, 1e7]"),
    ('{"samplerate": 30000, "spike_sign": "neg"}', "P5",
     'spike_sign is a JSON string ("neg"); it must be an integer'),
    ('{"samplerate": 30000, "spike_sign": 1.5}', "P5", "spike_sign is a JSON number (1.5); it must be an integer"),
    ('{"samplerate": 30000, "spike_sign": 5}', "P5", "spike_sign is 5; it must be -1, 0 or 1"),
    ('{"samplerate": 30000, "spike_sign": 1.0}', "P5", "spike_sign is 1.0; write it as an integer"),
    ('{"samplerate": 30000, "detect_sign": -2}', "P6", "detect_sign is -2; it must be -1, 0 or 1"),
    ('{"samplerate": 30000, "detect_sign": -1.0}', "P6", "detect_sign is -1.0; write it as an integer"),
])
def test_schema_findings_say_what_is_wrong_with_the_value(tmp_path, text, code, message):
    info = params(tmp_path, text)
    field = code == "P4" and "samplerate" or ("spike_sign" if code == "P5" else "detect_sign")
    assert [(f.code, f.message, f.field) for f in info.findings] == [(code, message, field)]


def test_one_finding_per_field_and_every_field_reported(tmp_path):
    # "x" breaks both the type and the enum of detect_sign: one P6; spike_sign, sorted after it, still P5
    info = params(tmp_path, '{"samplerate": 30000, "detect_sign": "x", "spike_sign": 5}')
    assert [(f.code, f.field) for f in info.findings] == [("P6", "detect_sign"), ("P5", "spike_sign")]


@pytest.mark.parametrize("spike,detect", [(-1, 1), (1, -1), (0, 1), (1, 0), (-1, 0), (0, -1)])
def test_p6_conflict_message_names_both_signs(tmp_path, spike, detect):
    info = params(tmp_path, f'{{"samplerate": 30000, "spike_sign": {spike}, "detect_sign": {detect}}}')
    assert [(f.code, f.severity, f.message, f.field) for f in info.findings] == [
        ("P6", "warning", f"detect_sign ({detect}) differs from spike_sign ({spike}); the MountainSort "
                          f"scripts use detect_sign", "detect_sign")]


@pytest.mark.parametrize("sign", [-1, 0, 1])
def test_p6_equal_signs_agree(tmp_path, sign):
    assert params(tmp_path, f'{{"samplerate": 30000, "spike_sign": {sign}, "detect_sign": {sign}}}').findings == []


def test_the_schema_is_compiled_once():
    from kbtools.formats.params import params_validator
    assert params_validator() is params_validator()
