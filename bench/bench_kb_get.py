"""kb-get against curl on the same 1 GiB file, in one run: directly from a kb-host share and through a
kb-hub, on loopback. Prints the time of each and the ratio curl/kb-get (target >= 0.9: kb-get, which
also verifies the SHA-1, is at least 0.9x as fast as a plain curl).

Then the cost of the cache, directly from the share: kb-get filling a fresh cache (a copy of the file
goes into it: a reflink where the file system can, else a copy in the kernel) against --no-cache, and
kb-get served from the cache (a verified copy) against what a hard link cost (hashing the entry only).

Usage: bench_kb_get.py [--size-mib N] [--runs N] [--no-cache-bench]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from _common import ROOT, wait_found, write_file

from kbtools.index.hashing import hash_file  # noqa: E402
from tests.netfixtures import Network  # noqa: E402


def command(name: str) -> list[str]:
    """The checkout's bin/ launcher, run by this Python (as the nodes are)."""
    return [sys.executable, str(ROOT / "bin" / name)]


MiB = 1024 * 1024


def settle() -> None:
    """Let the file system finish with the 1 GiB just deleted (freeing, discards) before the
    next timed run: otherwise that work lands on whichever tool runs next."""
    os.sync()
    time.sleep(1.0)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    settle()
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-1000:]}")
    return elapsed


def compare(url: str, out: Path, sha1: str, runs: int,
            kb_get_args: tuple[str, ...] = ()) -> tuple[list[float], list[float], list[float]]:
    """The seconds of each run of curl, of kb-get (no cache: a real download each time) and of a
    verified curl pipeline on ``url``.

    The two alternate, and which goes first alternates too: each run writes 1 GiB, and the page
    cache work it leaves behind must not always fall on the same one.
    """
    curl_times: list[float] = []
    kb_times: list[float] = []
    verified_times: list[float] = []

    def curl() -> None:
        target = out / "curl.bin"
        curl_times.append(timed(["curl", "-s", "-f", "-o", str(target), url]))
        target.unlink()

    def curl_verified() -> None:
        """The shell way to a verified copy, for reference: curl | tee FILE | sha1sum."""
        target = out / "curl.bin"
        verified_times.append(timed(["sh", "-c", 'curl -s -f "$1" | tee "$2" | sha1sum', "sh", url, str(target)]))
        target.unlink()

    def kb_get() -> None:
        target = out / "kb.bin"
        kb_times.append(timed(command("kb-get") + ["--no-cache", *kb_get_args, url, "-o", str(target)]))
        if hash_file(target)[0].sha1 != sha1:
            raise RuntimeError("kb-get wrote wrong bytes")
        target.unlink()

    for run in range(runs):
        for step in ((curl, kb_get, curl_verified) if run % 2 == 0 else (curl_verified, kb_get, curl)):
            step()
    return curl_times, kb_times, verified_times


def compare_cache(url: str, out: Path, sha1: str, runs: int) -> dict[str, list[float]]:
    """Seconds of kb-get --no-cache, kb-get filling a fresh cache, kb-get served by the cache, and
    of hashing the cached file (what a cache hit cost when it was a hard link: the entry was
    verified, then linked), alternating as in ``compare``."""
    cache = out / "cache"
    env = {**os.environ, "KBUCKET_CACHE_DIR": str(cache)}
    env.pop("KBUCKET_NO_CACHE", None)
    times: dict[str, list[float]] = {"no-cache": [], "fill": [], "hit": [], "hash": []}
    for run in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        for step in (("no-cache", "fill") if run % 2 == 0 else ("fill", "no-cache")):
            target = out / "kb.bin"
            extra = ["--no-cache"] if step == "no-cache" else []
            times[step].append(timed(command("kb-get") + extra + [url, "-o", str(target)], env))
            target.unlink()
        target = out / "hit.bin"
        times["hit"].append(timed(command("kb-get") + [f"sha1://{sha1}/hit.bin", "-o", str(target)], env))
        if hash_file(target)[0].sha1 != sha1:
            raise RuntimeError("kb-get wrote wrong bytes from the cache")
        target.unlink()
        entry = cache / sha1[0] / sha1[1:3] / sha1
        settle()
        started = time.perf_counter()
        hash_file(entry)
        times["hash"].append(time.perf_counter() - started)
    shutil.rmtree(cache, ignore_errors=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kb-get-args", default="", help="more kb-get options, e.g. '-j 2 --chunk-size 32'")
    parser.add_argument("--no-cache-bench", action="store_true", help="skip the cost of the cache")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed: nothing to compare with")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-kb-get-"))
    try:
        with Network(work / "net") as net:
            share_dir = net.root / "benchshare"
            share_dir.mkdir(parents=True)
            sha1 = write_file(share_dir / "big.bin", args.size_mib * MiB)
            hub = net.hub("benchhub", passcode="benchpass")
            share = net.share("benchshare", parent=hub, passcode="benchpass")
            wait_found(hub.url, sha1)
            out = work / "out"
            out.mkdir()
            print(f"kb-get vs curl, {args.size_mib} MiB, median (and min) of {args.runs} (loopback, one run)")
            ok = True
            share_url = str(share.ready.get("listen_url") or share.url)
            for label, base in (("direct from the share", share_url), ("through the hub", hub.url)):
                url = f"{base}/{share.node_id}/download/big.bin"
                curl_t, kb_t, verified_t = compare(url, out, sha1, args.runs, tuple(args.kb_get_args.split()))
                curl_s, kb_s, verified_s = (statistics.median(t) for t in (curl_t, kb_t, verified_t))
                ratio = curl_s / kb_s
                ok &= ratio >= 0.9
                print(f"  {label:22s} curl {curl_s:5.2f} s   kb-get {kb_s:5.2f} s"
                      f" ({args.size_mib / kb_s:4.0f} MiB/s)   ratio {ratio:4.2f}x"
                      f" {'ok' if ratio >= 0.9 else 'BELOW TARGET 0.9x'}"
                      f"   [curl|tee|sha1sum {verified_s:5.2f} s: kb-get {verified_s / kb_s:4.2f}x that]")
                print(f"  {'':22s} min: curl {min(curl_t):5.2f} s   kb-get {min(kb_t):5.2f} s"
                      f"   ratio of the minima {min(curl_t) / min(kb_t):4.2f}x")
            if not args.no_cache_bench:
                times = compare_cache(f"{share_url}/{share.node_id}/download/big.bin", out, sha1, args.runs)
                med = {name: statistics.median(values) for name, values in times.items()}
                print(f"the cache, direct from the share, median of {args.runs}:")
                print(f"  kb-get --no-cache {med['no-cache']:5.2f} s   filling a fresh cache {med['fill']:5.2f} s"
                      f"   (+{med['fill'] - med['no-cache']:4.2f} s, {med['fill'] / med['no-cache']:4.2f}x)")
                print(f"  served by the cache {med['hit']:5.2f} s (a verified copy)   a hard link cost"
                      f" {med['hash']:5.2f} s (hashing the entry)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
