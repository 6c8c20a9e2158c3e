"""kb-check on a study of 20 datasets, against references measured in the same run.

Reports two ratios: the kb-check command against `python3 -c pass` (start-up dominates a
small study; timed like bench_mda_info.py), and the in-process checks of every dataset against a
plain `os.stat` + read of the same small files (what a header-only check cannot avoid).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import command, median_time  # noqa: E402

from bench_mda_info import installed_env, measure  # noqa: E402

from kbtools.formats.dataset import check_tree  # noqa: E402
from kbtools.formats.sample import write_sample_study  # noqa: E402

DATASETS = 20
RUNS = 15


def read_small_files(study: Path) -> None:
    """The floor: stat raw.mda and its first 412 bytes, read geom.csv and params.json."""
    for ds in sorted(study.iterdir()):
        os.stat(ds / "raw.mda")
        with open(ds / "raw.mda", "rb") as f:
            f.read(412)
        (ds / "geom.csv").read_bytes()
        (ds / "params.json").read_bytes()


def main() -> int:
    kb_check = command("kb-check")
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study"
        names = tuple(f"dataset{i:02d}" for i in range(1, DATASETS + 1))
        write_sample_study(study, names=names, channels=32, samples=30000 * 10)
        run = subprocess.run([kb_check, str(study)], capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr)
            return 1
        check_tree(study)  # jsonschema is imported once, outside the timed loop
        runs = measure({"pass": [sys.executable, "-c", "pass"], "kb-check": [kb_check, "-q", str(study)]},
                       env=installed_env(os.path.join(tmp, "pycache")), runs=RUNS)
        startup, command_time = (min(cpu for cpu, _ in runs[name]) for name in ("pass", "kb-check"))
        in_process = median_time(lambda: check_tree(study), RUNS, warm=True)
        floor = median_time(lambda: read_small_files(study), RUNS, warm=True)
    print(f"kb-check ({kb_check}) on {DATASETS} datasets: cpu {command_time * 1000:.1f} ms; "
          f"python3 -c pass: cpu {startup * 1000:.1f} ms (fastest runs); "
          f"ratio {command_time / startup:.2f}x")
    print(f"check_tree in-process: {in_process * 1000:.2f} ms ({in_process / DATASETS * 1e6:.0f} µs "
          f"per dataset); stat + read of the same files: {floor * 1000:.2f} ms; "
          f"ratio {in_process / floor:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
