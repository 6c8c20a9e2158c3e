"""kb-get against curl on the same 1 GiB file, in one run: directly from a kb-host share and through a
kb-hub, on loopback. Prints the time of each and the ratio curl/kb-get (target >= 0.9: kb-get, which
also verifies the SHA-1, is at least 0.9x as fast as a plain curl).

Usage: bench_kb_get.py [--size-mib N] [--runs N]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbtools.index.hashing import hash_file  # noqa: E402
from tests.client.nodes import RealNetwork, command  # noqa: E402

MiB = 1024 * 1024


def write_file(path: Path, size: int) -> str:
    """Random bytes (incompressible); returns the SHA-1."""
    digest = hashlib.sha1()
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-1000:]}")
    return elapsed


def compare(url: str, out: Path, sha1: str, runs: int) -> tuple[float, float]:
    """Median seconds of curl and of kb-get (no cache: a real download each time) on ``url``."""
    curl_times, kb_times = [], []
    for _ in range(runs):
        target = out / "curl.bin"
        curl_times.append(timed(["curl", "-s", "-f", "-o", str(target), url]))
        target.unlink()
        target = out / "kb.bin"
        kb_times.append(timed(command("kb-get") + ["--no-cache", url, "-o", str(target)]))
        if hash_file(target)[0].sha1 != sha1:
            raise RuntimeError("kb-get wrote wrong bytes")
        target.unlink()
    return statistics.median(curl_times), statistics.median(kb_times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed: nothing to compare with")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-kb-get-"))
    nodes = None
    try:
        share = work / "share"
        share.mkdir()
        sha1 = write_file(share / "big.bin", args.size_mib * MiB)
        out = work / "out"
        out.mkdir()
        nodes = RealNetwork(work, share).start()
        nodes.wait_indexed([sha1], timeout=600)
        print(f"kb-get vs curl, {args.size_mib} MiB, median of {args.runs} (loopback, one run)")
        ok = True
        for label, base in (("direct from the share", nodes.share_url), ("through the hub", nodes.hub_url)):
            url = f"{base}/{nodes.share_id}/download/big.bin"
            curl_s, kb_s = compare(url, out, sha1, args.runs)
            ratio = curl_s / kb_s
            ok &= ratio >= 0.9
            rate = args.size_mib / kb_s
            print(f"  {label:24s} curl {curl_s:6.2f} s   kb-get {kb_s:6.2f} s ({rate:6.0f} MiB/s)"
                  f"   ratio {ratio:4.2f}x  {'ok' if ratio >= 0.9 else 'BELOW TARGET 0.9x'}")
        return 0 if ok else 1
    finally:
        if nodes is not None:
            nodes.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
