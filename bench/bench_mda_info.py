"""mda-info on a 2 GiB sparse file, against the start-up of `python3 -c pass` (target <= 2x).

Runs the installed console script (the path a user takes), falling back to bin/mda-info. The
baseline is the same environment's python3 (in a conda or venv install, that is the python3 the user
gets). Both are timed interleaved, as CPU time of the child (user + sys, steady on a busy machine)
and as wall time; the ratio of CPU medians is judged. Exit 1 when it is above the target.
"""
from __future__ import annotations

import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 40
TARGET = 2.0


def run_once(cmd: list[str]) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(commands: dict[str, list[str]], runs: int = RUNS) -> dict[str, tuple[float, float]]:
    """Median (cpu, wall) per command, runs interleaved so that load changes hit all alike."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for cmd in commands.values():
        run_once(cmd)  # warm the caches
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(run_once(cmd))
    return {name: (statistics.median(s[0] for s in runs_), statistics.median(s[1] for s in runs_))
            for name, runs_ in samples.items()}


def mda_info_command() -> str:
    script = Path(sys.executable).parent / "mda-info"
    return str(script if script.exists() else ROOT / "bin" / "mda-info")


def main() -> int:
    command = mda_info_command()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.mda"
        channels, timepoints = 64, (2**31) // 2 // 64
        big.write_bytes(struct.pack("<iiiii", -4, 2, 2, channels, timepoints))
        os.truncate(big, 20 + 2 * channels * timepoints)  # 2 GiB, sparse
        out = subprocess.run([command, str(big)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout, out.stderr)
            return 1
        base_python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        results = measure({
            "python3 -c pass": [sys.executable, "-c", "pass"],
            f"python3 -c pass (outside the environment: {base_python})": [base_python, "-c", "pass"],
            f"mda-info {big.stat().st_size}-byte sparse file ({command})": [command, str(big)],
        })
    (base_name, (base_cpu, base_wall)), _, (name, (cpu, wall)) = results.items()
    for label, (c, w) in results.items():
        print(f"{label}: cpu {c * 1000:.1f} ms, wall {w * 1000:.1f} ms (medians)")
    ratio = cpu / base_cpu
    print(f"ratio mda-info / python3 -c pass: cpu {ratio:.2f}x, wall {wall / base_wall:.2f}x "
          f"(target <= {TARGET}x) {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
