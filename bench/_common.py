"""What the benchmarks share: the checkout root, the command to run, and timing of a callable."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def command(name: str) -> str:
    """The installed console script beside this Python (the user's path), else bin/<name>."""
    script = Path(sys.executable).parent / name
    return str(script if script.exists() else ROOT / "bin" / name)


def median_time(fn: Callable[[], object], runs: int, *, warm: bool = False) -> float:
    """Median wall time of ``runs`` calls of ``fn`` (after one untimed call when ``warm``)."""
    if warm:
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
