"""The code registry, the codes the sources can emit, and docs/codes.md list the same codes."""
from __future__ import annotations

import json
import re

import pytest

from kbtools.formats.codes import RULES, CheckResult, finding

from ..conftest import ROOT

DOC = ROOT / "docs" / "codes.md"


def documented() -> dict[str, str]:
    """code -> severity line of docs/codes.md."""
    text = DOC.read_text(encoding="utf-8")
    entries = re.findall(r"^### ([A-Z]\d+)\n- Severity: (.+)$", text, flags=re.M)
    return dict(entries)


def emitted() -> set[str]:
    """Codes named in the sources: finding("X1", ...) calls and the params schema's x-code."""
    found: set[str] = set()
    for path in (ROOT / "kbtools").rglob("*.py"):
        found |= set(re.findall(r'finding\(\s*"([A-Z]\d+)"', path.read_text(encoding="utf-8")))
        # codes passed through a variable: stat_regular_file(path, "R1", ...) and friends
        found |= set(re.findall(r'(?:_file|code = )\(?[^"\n]*"([A-Z]\d+)"', path.read_text()))
    schema_text = (ROOT / "kbtools" / "schemas" / "params.json").read_text()
    found |= set(re.findall(r'"([A-Z]\d+)"', json.dumps(json.loads(schema_text))))
    return found


def test_every_registered_code_is_documented_once_and_vice_versa():
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^### ([A-Z]\d+)$", text, flags=re.M)
    assert len(headings) == len(set(headings))
    assert set(documented()) == set(RULES) == set(headings)


def test_documented_severity_starts_with_the_default():
    for code, severity in documented().items():
        assert severity.startswith(RULES[code].severity), code


def test_every_emitted_code_is_registered_and_every_registered_code_is_emitted():
    assert emitted() == set(RULES)


def test_rule_ids_of_the_spec_are_all_codes():
    spec = set(f"R{i}" for i in range(1, 12)) | set(f"G{i}" for i in range(1, 10)) \
        | set(f"P{i}" for i in range(1, 8))
    assert spec <= set(RULES)


def test_finding_takes_defaults_from_the_registry():
    f = finding("R7", "x.mda", "truncated", line=None)
    assert f.severity == "error" and f.hint == RULES["R7"].hint
    assert finding("R5", "x", "m", severity="warning", hint="h").to_json()["hint"] == "h"


def test_output_schemas_carry_the_finding_schema_unchanged():
    schemas = ROOT / "kbtools" / "schemas"
    finding_schema = json.loads((schemas / "finding.json").read_text())
    body = {k: v for k, v in finding_schema.items() if not k.startswith("$") and k != "title"}
    for name in ("mda-info", "geom-check", "params-check", "kb-check"):
        assert json.loads((schemas / f"{name}.json").read_text())["$defs"]["finding"] == body, name
    pattern = re.compile(finding_schema["properties"]["code"]["pattern"])
    assert all(pattern.match(code) for code in RULES)


def test_severity_and_the_rest_are_given_by_name_only():
    with pytest.raises(TypeError):
        finding("R1", "x", "m", "warning")  # type: ignore[misc]
    assert finding(code="R1", path="x", message="m").code == "R1"


def test_a_check_result_is_valid_unless_a_finding_is_an_error():
    assert CheckResult("x").valid is True and CheckResult("x").findings == []
    assert CheckResult("a").findings is not CheckResult("b").findings  # a list of its own
    warnings = [finding("R8", "x", "trailing"), finding("G9", "x", "3 columns")]
    kept = CheckResult("x", warnings)
    assert kept.findings is warnings and kept.valid is True
    assert CheckResult("x", warnings + [finding("R7", "x", "truncated")]).valid is False
