"""mda-info on a 2 GiB sparse file, against the start-up of `python3 -c pass` (target <= 2x).

Runs the installed console script (the path a user takes), falling back to bin/mda-info. The
baseline is the same environment's python3 (in a conda or venv install, that is the python3 the user
gets). Both are timed interleaved, as CPU time of the child (user + sys) and as wall time. Load
from other processes only ever adds time, so the judged ratio is that of the fastest CPU times
(the undisturbed start-up); medians are printed too. Exit 1 when it is above the target.
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


def installed_env(cache_dir: str) -> dict[str, str]:
    """The environment of an installed package: bytecode is cached (pip and conda compile it),
    here into ``cache_dir`` so that the checkout stays untouched."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def run_once(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(cpu seconds, wall seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(commands: dict[str, list[str]], env: dict[str, str],
            runs: int = RUNS) -> dict[str, list[tuple[float, float]]]:
    """(cpu, wall) samples per command, runs interleaved so that load changes hit all alike."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for cmd in commands.values():
        run_once(cmd, env)  # warm the caches, write the bytecode
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(run_once(cmd, env))
    return samples


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
        results = measure(env=installed_env(os.path.join(tmp, "pycache")), commands={
            "python3 -c pass": [sys.executable, "-c", "pass"],
            f"python3 -c pass (outside the environment: {base_python})": [base_python, "-c", "pass"],
            f"mda-info {big.stat().st_size}-byte sparse file ({command})": [command, "-q", str(big)],
        })
    stats = {}
    for label, samples in results.items():
        cpu = [c for c, _ in samples]
        wall = [w for _, w in samples]
        stats[label] = (min(cpu), statistics.median(cpu), statistics.median(wall))
        print(f"{label}: cpu min {stats[label][0] * 1000:.1f} ms, median "
              f"{stats[label][1] * 1000:.1f} ms; wall median {stats[label][2] * 1000:.1f} ms")
    (base_min, base_med, base_wall), _, (cpu_min, cpu_med, wall) = stats.values()
    ratio = cpu_min / base_min
    print(f"ratio mda-info / python3 -c pass: cpu {ratio:.2f}x (medians {cpu_med / base_med:.2f}x, "
          f"wall {wall / base_wall:.2f}x); target <= {TARGET}x: "
          f"{'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
