"""canonical_json against the real JSON.stringify: node (on the machine) is the oracle.

One node process serves the whole module: each hypothesis example sends a batch of JSON values on
one line and reads back JSON.stringify of each. Non-finite floats travel as marker objects that a
JSON.parse reviver turns back into NaN / Infinity (JSON text cannot carry them; frames parsed by
Python can: json.loads accepts NaN and Infinity).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbtools.protocol.canonical import canonical_json, js_number

NONFINITE = "\u0000kbtools-nonfinite"  # a key no generated value uses
NODE_SCRIPT = r"""
const NF = "\u0000kbtools-nonfinite";
const revive = (k, v) => (v !== null && typeof v === "object" && !Array.isArray(v)
  && Object.keys(v).length === 1 && NF in v) ? Number(v[NF]) : v;
require("readline").createInterface({input: process.stdin}).on("line", (line) => {
  const values = JSON.parse(line, revive);
  process.stdout.write(JSON.stringify(values.map((v) => JSON.stringify(v))) + "\n");
});
"""


class Node:
    def __init__(self) -> None:
        node = shutil.which("node")
        assert node, "node is the oracle of these tests and is part of the machine: install nodejs"
        self.proc = subprocess.Popen([node, "-e", NODE_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def stringify(self, values: list) -> list[str]:
        self.proc.stdin.write(json.dumps(_wire(values), ensure_ascii=True, allow_nan=False) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "node exited"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _wire(value):
    """The value with non-finite floats as marker objects (JSON text cannot carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {NONFINITE: repr(value).replace("inf", "Infinity").replace("nan", "NaN")}
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


@pytest.fixture(scope="module")
def node():
    n = Node()
    yield n
    n.close()


# Keys: anything, plus the integer-like ones JS moves to the front (and near misses it does not).
KEYS = st.one_of(
    st.text(max_size=6),
    st.integers(0, 2**33).map(str),
    st.integers(0, 30).map(str),
    st.sampled_from(["0", "00", "01", "-1", "1.0", "1e3", " 1", "4294967294", "4294967295",
                     "4294967296", "\u0663", "\u00b2", "__proto__", "constructor", "length"]),
)
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e25, 1e25),
    st.integers(-2**53, 2**53).map(float),
    st.sampled_from([1e-7, -1e-7, 1e-6, 1.5e-7, 1e20, 1e21, 1.5e22, -1.5e22, 123.0, 0.1, 5e-324,
                     1.7976931348623157e308, -0.0, 2.0**53, 2.0**70, 1e16, 1e17, 123456789012345680000.0]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), FLOATS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(KEYS, children, max_size=6)),
    max_leaves=25,
)


# derandomize: the same examples every run, so the suite never fails at random
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JSON_VALUES, min_size=1, max_size=20))
def test_canonical_json_is_json_stringify(node, values):
    assert [canonical_json(v) for v in values] == node.stringify(values)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(FLOATS, min_size=1, max_size=50))
def test_js_number_is_number_to_string(node, numbers):
    # JSON.stringify of a finite number is Number#toString; of NaN and Infinity, null
    assert [js_number(x) for x in numbers] == node.stringify(numbers)


def test_the_oracle_sees_what_python_gets_wrong(node):
    """The oracle does disagree with plain json.dumps on the cases canonical_json exists for."""
    values = [{"a": {"10": 1, "2": 2}}, {"a": {"b": 1.0}}, [1e-7], float("nan"), {"4294967295": 1, "0": 2}]
    assert node.stringify(values) == ['{"a":{"2":2,"10":1}}', '{"a":{"b":1}}', "[1e-7]", "null",
                                      '{"0":2,"4294967295":1}']
