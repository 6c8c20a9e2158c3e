"""The package type-checks: `mypy` with the configuration in pyproject.toml ([tool.mypy]), and the
sans-I/O core and the node layer under `--strict`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("name, args", [("package", []),
                                        ("strict-core", ["--strict", "kbtools/protocol", "kbtools/node"])])
def test_mypy_finds_no_error(name, args):
    # A cache of each run's own: the two option sets would otherwise invalidate each other's.
    cache = ROOT / ".mypy_cache" / name
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
