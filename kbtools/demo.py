"""The kbtools demo (``make demo``): build a sample study and check it with kb-check.

Prints a short human summary on stderr and one JSON result on stdout. Each step is a small
function so that later steps (a hub, a share, a download) can be added next to them.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from kbtools.cli.base import dump_json
from kbtools.cli.kb_check import KbCheck
from kbtools.formats.sample import write_sample_study

DATASETS = ("dataset1", "dataset2")


def build_study(root: Path) -> Path:
    """Write the sample study (two 4-channel datasets, 2 s at 30 kHz) under ``root/study``."""
    study = root / "study"
    write_sample_study(study, names=DATASETS, channels=4, samples=60000, samplerate=30000)
    return study


def check_study(study: Path) -> dict[str, Any]:
    """Run the kb-check command on the study; returns its exit code and JSON output."""
    out, err = io.StringIO(), io.StringIO()
    code = KbCheck([str(study)], output_file=out, error_file=err).execute()
    if err.getvalue():
        sys.stderr.write(err.getvalue())
    return {"exit_code": code, "output": json.loads(out.getvalue()) if out.getvalue() else None}


def describe(check: dict[str, Any]) -> list[str]:
    """Human lines about a kb-check result."""
    lines = []
    for ds in (check["output"] or {}).get("datasets", []):
        s = ds["summary"]
        state = "valid" if ds["valid"] else "NOT valid"
        lines.append(f"{Path(ds['path']).name}: {state}, {s.get('num_channels')} channels x "
                     f"{s.get('num_timepoints')} {s.get('dtype')} samples at "
                     f"{s.get('samplerate')} Hz ({s.get('duration_sec')} s), "
                     f"{len(ds['findings'])} finding(s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    root = Path(tempfile.mkdtemp(prefix="kbtools-demo-"))
    try:
        study = build_study(root)
        check = check_study(study)
        for line in [f"sample study in {study}", *describe(check)]:
            sys.stderr.write(f"demo: {line}\n")
        ok = check["exit_code"] == 0
        sys.stderr.write(f"demo: kb-check {'passed' if ok else 'FAILED'}\n")
        print(dump_json({"ok": ok, "study": str(study), "kb_check": check}, pretty=True))
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
