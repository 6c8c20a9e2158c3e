"""Shared test helpers: in-process command runs and schema validation."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
# A recording of the original KBucket network (see its README): frames, throwaway keys, HTTP answers.
VECTORS = ROOT / "tests" / "vectors" / "kbucket-original"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def records(self) -> list[Any]:
        # split on "\n" only: str.splitlines also breaks at U+2028 and friends inside file names
        return [json.loads(line) for line in self.stdout.split("\n") if line.strip()]


def run_cli(command_cls: type, *args: str, stdin: str = "") -> Result:
    """Run a command in-process with captured streams."""
    out, err = io.StringIO(), io.StringIO()
    code = command_cls([str(a) for a in args], output_file=out, error_file=err,
                       input_file=io.StringIO(stdin)).execute()
    return Result(code, out.getvalue(), err.getvalue())


def validate(instance: Any, schema_name: str) -> None:
    """Validate against schemas/<schema_name>.json (raises on mismatch)."""
    schema = json.loads((SCHEMAS / f"{schema_name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture
def cli():
    return run_cli
