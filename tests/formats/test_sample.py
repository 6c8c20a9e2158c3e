"""`python -m kbtools.formats.sample DIR`: the README's study for trying the commands."""
from __future__ import annotations

import subprocess
import sys

from kbtools.cli.kb_check import KbCheck
from tests.conftest import ROOT, run_cli


def test_the_sample_study_is_valid(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kbtools.formats.sample", str(tmp_path / "study")],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == ""
    result = run_cli(KbCheck, tmp_path / "study")
    assert result.code == 0 and [d["path"].rsplit("/", 1)[1] for d in result.json["datasets"]] == \
        ["dataset1", "dataset2"]


def test_usage(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kbtools.formats.sample"], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stderr == "usage: python -m kbtools.formats.sample DIR\n"
