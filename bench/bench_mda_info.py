"""mda-info on a 2 GiB sparse file, against the start-up of `python3 -c pass` (target <= 2x).

Runs the installed console script (the path a user takes), falling back to bin/mda-info.
Prints medians and the ratio; exit 1 when the ratio is above the target.
"""
from __future__ import annotations

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 30
TARGET = 2.0


def median_time(cmd: list[str], runs: int = RUNS) -> float:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)  # warm the caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mda_info_command() -> str:
    script = Path(sys.executable).parent / "mda-info"
    return str(script if script.exists() else ROOT / "bin" / "mda-info")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.mda"
        channels, timepoints = 64, (2**31) // 2 // 64
        big.write_bytes(struct.pack("<iiiii", -4, 2, 2, channels, timepoints))
        os.truncate(big, 20 + 2 * channels * timepoints)  # 2 GiB, sparse
        command = mda_info_command()
        out = subprocess.run([command, str(big)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout, out.stderr)
            return 1
        # the real interpreter, not a wrapper such as a pyenv shim, and outside the venv
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        baseline = median_time([python, "-c", "pass"])
        venv_baseline = median_time([sys.executable, "-c", "pass"])
        measured = median_time([command, str(big)])
        size = big.stat().st_size
    ratio = measured / baseline
    print(f"mda-info ({command}) on a {size} byte sparse file: {measured * 1000:.1f} ms median")
    print(f"python3 -c pass ({python}): {baseline * 1000:.1f} ms median")
    print(f"venv python -c pass ({sys.executable}): {venv_baseline * 1000:.1f} ms median "
          f"(ratio {measured / venv_baseline:.2f}x)")
    print(f"ratio: {ratio:.2f}x (target <= {TARGET}x) {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
