"""params.json: strict JSON, the schema in schemas/params.json, and semantic rules (P1-P7)."""
from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from kbtools.findings import INFO, Finding
from kbtools.formats.codes import CheckResult, finding
from kbtools.formats.files import read_small_file

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "params.json"
BOM = b"\xef\xbb\xbf"
SIGN_KEYS = ("spike_sign", "detect_sign")
#: keys that some reader, converter or sorter script is known to use
KNOWN_KEYS = frozenset({
    "samplerate", "spike_sign", "detect_sign", "duration", "num_channels", "num_units", "dtype",
    "adjacency_radius", "detect_threshold", "detect_interval", "clip_size", "num_features",
    "max_num_clips_for_pca", "num_workers", "freq_min", "freq_max", "freq_wid", "filter", "whiten",
})


class ParamsInfo(CheckResult):
    """What checking one params.json found; ``params`` is the parsed object when there is one."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.params: dict[str, Any] | None = None

    @property
    def samplerate(self) -> float | None:
        """The sampling rate when it passed P3/P4."""
        if self.params is None or any(f.code in ("P3", "P4") for f in self.findings):
            return None
        value = self.params.get("samplerate")
        return float(value) if isinstance(value, (int, float)) else None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "valid": self.valid, "samplerate": self.samplerate,
                "findings": [f.to_json() for f in self.findings]}


@lru_cache(maxsize=1)
def params_validator() -> Any:
    """The compiled params schema (jsonschema is imported once, on first use)."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def check_params(path: str | os.PathLike[str]) -> ParamsInfo:
    """Check a params.json file."""
    path = Path(path)
    info = ParamsInfo(path=str(path))
    data, info.findings = read_small_file(path, "P1", "params.json")
    if data is not None:
        info.params = parse_params(path, data, info.findings)
    if info.params is not None:
        check_params_object(path, info.params, info.findings)
    return info


def parse_params(path: Path, data: bytes, findings: list[Finding]) -> dict[str, Any] | None:
    """Strict JSON parse: no BOM, no NaN/Infinity, an object at the top; duplicates are P7."""
    add = findings.append
    # A BOM or a bad byte is P2, and the rest is still parsed and checked: one finding does not
    # hide the others (a bad byte inside a string leaves the object readable).
    repaired = False
    if data.startswith(BOM):
        add(finding("P2", path, "params.json starts with a UTF-8 byte order mark", line=1,
                    column=1))
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        add(finding("P2", path, f"params.json is not valid UTF-8 (byte {exc.start})",
                    line=data.count(b"\n", 0, exc.start) + 1))
        text = data.decode("utf-8", errors="replace")
        repaired = True

    def constant(name: str) -> float:
        add(finding("P2", path, f"{name} is not JSON (Python accepts it, JavaScript does not)"))
        return float(name.replace("Infinity", "inf"))

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                add(finding("P7", path, f"duplicate key {key!r}; the last value wins", field=key))
            obj[key] = value
        return obj

    try:
        value = json.loads(text, parse_constant=constant, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        if not repaired:  # else the bad byte, already reported, is the likely cause
            add(finding("P2", path, f"invalid JSON: {exc.msg}", line=exc.lineno,
                        column=exc.colno))
        return None
    except RecursionError:
        add(finding("P2", path, "invalid JSON: nested too deeply"))
        return None
    if not isinstance(value, dict):
        add(finding("P2", path, f"the top level is a JSON {_json_type(value)}, not an object"))
        return None
    return value


def check_params_object(path: Path, params: dict[str, Any], findings: list[Finding]) -> None:
    """The schema (P2-P6 by each part's x-code) plus what a schema cannot say."""
    validator = params_validator()
    reported: set[tuple[str, str | None]] = set()
    for error in sorted(validator.iter_errors(params), key=lambda e: list(e.path)):
        code = _code_for(validator.schema, error)
        key = str(error.path[0]) if error.path else None
        if (code, key) in reported:
            continue
        reported.add((code, key))
        findings.append(finding(code, path, _schema_message(error, key), field=key))
    for key in SIGN_KEYS:
        value = params.get(key)
        code = validator.schema["properties"][key]["x-code"]
        # JSON Schema counts 1.0 as an integer; the sorters want a real one
        if isinstance(value, float) and (code, key) not in reported:
            findings.append(finding(code, path, f"{key} is {value!r}; write it as an integer",
                                    field=key))
    sr = params.get("samplerate")
    # NaN passes every JSON Schema range keyword (all its comparisons are false)
    if isinstance(sr, float) and math.isnan(sr):
        findings.append(finding("P4", path, "samplerate is NaN", field="samplerate"))
    spike, detect = params.get("spike_sign"), params.get("detect_sign")
    signs_valid = all(type(v) is int and v in (-1, 0, 1) for v in (spike, detect))
    if "spike_sign" in params and "detect_sign" in params and signs_valid and spike != detect:
        findings.append(finding(
            "P6", path, f"detect_sign ({detect}) differs from spike_sign ({spike}); the "
                        f"MountainSort scripts use detect_sign", severity="warning",
            field="detect_sign"))
    for key in params:
        if key not in KNOWN_KEYS:
            findings.append(finding("P7", path, f"key {key!r} is not read by the known tools",
                                    severity=INFO, field=key,
                                    hint="fine if intended: unknown keys are kept and ignored"))


def _code_for(schema: dict[str, Any], error: Any) -> str:
    if error.validator == "required" and not error.path:
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return schema.get("x-required-codes", {}).get(missing, schema.get("x-code", "P2"))
    node: Any = schema
    code = schema.get("x-code", "P2")
    for part in error.path:
        node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            break
        code = node.get("x-code", code)
    return code


def _schema_message(error: Any, key: str | None) -> str:
    if key is None:
        return error.message
    value = error.instance
    if error.validator == "type":
        return f"{key} is a JSON {_json_type(value)} ({json.dumps(value)}); it must be " \
               f"{'an integer' if error.validator_value == 'integer' else 'a number'}"
    if error.validator == "enum":
        return f"{key} is {json.dumps(value)}; it must be -1, 0 or 1"
    if error.validator in ("exclusiveMinimum", "maximum"):
        return f"{key} is {json.dumps(value)}; it must be in (0, 1e7]"
    return f"{key}: {error.message}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
