"""The whole package type-checks: `mypy` with the configuration in pyproject.toml ([tool.mypy])."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_mypy_finds_no_error_in_the_package():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
