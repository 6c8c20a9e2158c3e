"""kb-check on a study of 20 datasets, against references measured in the same run.

Reports two ratios: the kb-check command against `python3 -c pass` (start-up dominates a
small study; timed like bench_mda_info.py), and the in-process checks of every dataset against a
plain `os.stat` + read of the same small files (what a header-only check cannot avoid).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_mda_info import installed_env, measure  # noqa: E402

from kbtools.formats.dataset import check_tree  # noqa: E402
from kbtools.formats.sample import write_sample_study  # noqa: E402

DATASETS = 20
RUNS = 15


def median(fn, runs: int = RUNS) -> float:
    fn()  # warm the caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def read_small_files(study: Path) -> None:
    """The floor: stat raw.mda and its first 412 bytes, read geom.csv and params.json."""
    for ds in sorted(study.iterdir()):
        os.stat(ds / "raw.mda")
        with open(ds / "raw.mda", "rb") as f:
            f.read(412)
        (ds / "geom.csv").read_bytes()
        (ds / "params.json").read_bytes()


def main() -> int:
    script = Path(sys.executable).parent / "kb-check"
    command = str(script if script.exists() else ROOT / "bin" / "kb-check")
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study"
        names = tuple(f"dataset{i:02d}" for i in range(1, DATASETS + 1))
        write_sample_study(study, names=names, channels=32, samples=30000 * 10)
        run = subprocess.run([command, str(study)], capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr)
            return 1
        check_tree(study)  # jsonschema is imported once, outside the timed loop
        runs = measure({"pass": [sys.executable, "-c", "pass"], "kb-check": [command, str(study)]},
                       env=installed_env(os.path.join(tmp, "pycache")), runs=RUNS)
        startup, command_time = (min(cpu for cpu, _ in runs[name]) for name in ("pass", "kb-check"))
        in_process = median(lambda: check_tree(study))
        floor = median(lambda: read_small_files(study))
    print(f"kb-check ({command}) on {DATASETS} datasets: cpu {command_time * 1000:.1f} ms; "
          f"python3 -c pass: cpu {startup * 1000:.1f} ms (fastest runs); "
          f"ratio {command_time / startup:.2f}x")
    print(f"check_tree in-process: {in_process * 1000:.2f} ms ({in_process / DATASETS * 1e6:.0f} µs "
          f"per dataset); stat + read of the same files: {floor * 1000:.2f} ms; "
          f"ratio {in_process / floor:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
