"""Re-indexing an unchanged tree of 100,000 small files against `find DIR -type f -printf '%s %T@\\n'`.

Prints the first indexing in files per second, then the re-index time (everything from the cache:
a stat walk) against find, as a ratio (target <= 3x). The tree is written under /tmp and removed.

Usage: bench_reindex.py [--files N] [--runs N]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import command  # noqa: E402

from kbtools.index.cache import RACY_MARGIN_NS  # noqa: E402

PER_DIR = 1000


def timed(argv: list[str]) -> tuple[float, bytes, float]:
    """Wall time, stdout and CPU time (user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, out, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="kb-bench-reindex-") as tmp:
        tree = Path(tmp) / "tree"
        for i in range(args.files):
            d = tree / f"d{i // PER_DIR:04d}"
            if i % PER_DIR == 0:
                d.mkdir(parents=True)
            with open(d / f"file-{i:06d}.txt", "wb") as fh:
                fh.write(b"small file %d\n" % i)
        # Files written in the last two seconds are hashed again (racily clean rule): let them age.
        time.sleep(RACY_MARGIN_NS / 1e9)
        kb_index = [command("kb-index"), str(tree), "--quiet"]

        first, out, first_cpu = timed(kb_index)
        summary = json.loads(out.splitlines()[-1])
        assert summary["files"] == args.files and summary["hashed"] == args.files, summary
        print(f"first indexing: {args.files} files in {first:.2f} s = {args.files / first:,.0f} files/s"
              f" (CPU {first_cpu:.2f} s)")

        find = ["find", str(tree), "-type", "f", "-printf", "%s %T@\n"]
        timed(find)
        runs: dict[str, list[tuple[float, float]]] = {"kb-index": [], "find": []}
        for _ in range(args.runs):
            wall, out, cpu = timed(kb_index)
            summary = json.loads(out.splitlines()[-1])
            assert summary["from_cache"] == args.files and summary["hashed"] == 0, summary
            runs["kb-index"].append((wall, cpu))
            wall, _, cpu = timed(find)
            runs["find"].append((wall, cpu))
        med = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
               for name, r in runs.items()}
        low = {name: (min(w for w, _ in r), min(c for _, c in r)) for name, r in runs.items()}
        print(f"re-index (unchanged), median of {args.runs}: {med['kb-index'][0]:.3f} s"
              f" (CPU {med['kb-index'][1]:.3f} s); find -printf: {med['find'][0]:.3f} s"
              f" (CPU {med['find'][1]:.3f} s)")
        print(f"  minimum: {low['kb-index'][0]:.3f} s (CPU {low['kb-index'][1]:.3f} s);"
              f" find -printf: {low['find'][0]:.3f} s (CPU {low['find'][1]:.3f} s);"
              f" ratio of minima {low['kb-index'][0] / low['find'][0]:.2f}x wall,"
              f" {low['kb-index'][1] / low['find'][1]:.2f}x CPU")
        ratio = med["kb-index"][0] / med["find"][0]
        cpu_ratio = med["kb-index"][1] / med["find"][1]
        print(f"ratio re-index/find (medians) {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU"
              f"  (target <= 3x) {'ok' if ratio <= 3 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
