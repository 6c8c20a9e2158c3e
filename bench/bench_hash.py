"""Hashing a 1 GiB file: kbtools' one-pass hashing against `openssl dgst -sha1` on the same warm file.

Prints the time of each and the speed ratios (openssl time / kbtools time); targets: >= 0.9 for
SHA-1 alone, >= 0.8 for SHA-1 + SHA-256 (the helper thread puts SHA-256 on the second core).
Both the in-process hashing and the whole `kb-index --prv` command (start-up included) are shown.

Usage: bench_hash.py [--size-mib N] [--runs N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import command, median_time  # noqa: E402

from kbtools.index.hashing import hash_file  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        print("openssl not found", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="kb-bench-hash-") as tmp:
        path = Path(tmp) / "big.bin"
        with open(path, "wb") as fh:
            block = os.urandom(1 << 20)
            for i in range(args.size_mib):
                fh.write(block[i % 251:] + block[: i % 251])
        path.read_bytes()  # warm the page cache
        size_gb = args.size_mib * (1 << 20) / 1e9

        def openssl() -> None:
            subprocess.run(["openssl", "dgst", "-sha1", str(path)], check=True, stdout=subprocess.DEVNULL)

        kb_index = [command("kb-index"), "--prv", str(path), "--no-cache"]
        cases = {
            "openssl dgst -sha1": openssl,
            "hash_file sha1": lambda: hash_file(path),
            "hash_file sha1+sha256": lambda: hash_file(path, ("sha256",)),
            "kb-index --prv (sha1)": lambda: subprocess.run(kb_index, check=True, stdout=subprocess.DEVNULL),
            "kb-index --prv --digest sha256": lambda: subprocess.run(
                kb_index + ["--digest", "sha256"], check=True, stdout=subprocess.DEVNULL),
        }
        # Rounds of every case in turn, so that a load change on the machine hits all alike.
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for fn in cases.values():
            fn()  # warm-up
        for _ in range(args.runs):
            for name, fn in cases.items():
                samples[name].append(median_time(fn, 1))
        times = {name: statistics.median(values) for name, values in samples.items()}
        for name, t in times.items():
            print(f"{name:34s} {t:7.3f} s  {size_gb / t:5.2f} GB/s")
        ref = times["openssl dgst -sha1"]
        print()
        for name, target in [("hash_file sha1", 0.9), ("hash_file sha1+sha256", 0.8),
                             ("kb-index --prv (sha1)", 0.9), ("kb-index --prv --digest sha256", 0.8)]:
            ratio = ref / times[name]
            verdict = "ok" if ratio >= target else "BELOW TARGET"
            print(f"ratio {name:34s} {ratio:5.3f}x  (target >= {target}x) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
