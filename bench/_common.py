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


# -- what the network benchmarks share ------------------------------------------------------------
MiB = 1024 * 1024


def write_file(path: Path, size: int) -> str:
    """``size`` random (incompressible) bytes at ``path``; returns their SHA-1."""
    import hashlib
    import os

    digest = hashlib.sha1()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def wait_found(hub_url: str, *sha1s: str, timeout: float = 600) -> None:
    """Until the hub finds every one of ``sha1s`` (the share has hashed and reported them)."""
    import requests

    deadline = time.monotonic() + timeout
    for sha1 in sha1s:
        while True:
            try:
                if requests.get(f"{hub_url}/find/{sha1}/", timeout=10).json().get("found"):
                    break
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub never found {sha1}")
            time.sleep(0.2)


def download(url: str, timeout: float = 300) -> tuple[float, str]:
    """Seconds to download ``url`` with requests (as Python clients do), and the SHA-1 of it."""
    import hashlib

    import requests

    digest = hashlib.sha1()
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=timeout) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(1 << 20):
            digest.update(chunk)
    return time.perf_counter() - started, digest.hexdigest()


def rss_kib(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
