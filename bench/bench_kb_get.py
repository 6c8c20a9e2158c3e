"""kb-get against curl on the same 1 GiB file, in one run: directly from a kb-host share and through a
kb-hub, on loopback. Prints the time of each and the ratio curl/kb-get (target >= 0.9: kb-get, which
also verifies the SHA-1, is at least 0.9x as fast as a plain curl).

Usage: bench_kb_get.py [--size-mib N] [--runs N]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbtools.index.hashing import hash_file  # noqa: E402

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(name: str) -> list[str]:
    """The installed console script, else the checkout's bin/ launcher, run by this Python."""
    installed = Path(sys.executable).parent / name
    return [str(installed)] if installed.exists() else [sys.executable, str(ROOT / "bin" / name)]


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


def write_kbnode(directory: Path, config: dict[str, str]) -> None:
    (directory / ".kbucket").mkdir(parents=True, exist_ok=True)
    (directory / ".kbucket" / "kbnode.json").write_text(json.dumps(config, indent=4))


class Nodes:
    """A kb-hub and a kb-host sharing ``share_dir``, as real processes on free loopback ports."""

    def __init__(self, work: Path, share_dir: Path) -> None:
        self.work, self.share_dir = work, share_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.hub_port, self.share_port = free_port(), free_port()
        self.hub_url = f"http://127.0.0.1:{self.hub_port}"
        self.share_url = f"http://127.0.0.1:{self.share_port}"
        self.share_id = ""

    def start(self, timeout: float = 600) -> None:
        hub_dir = self.work / "hub"
        hub_dir.mkdir()
        common = {"scientific_research": "yes", "description": "kb-get benchmark", "owner": "Bench",
                  "owner_email": "bench@example.org"}
        write_kbnode(hub_dir, {**common, "name": "benchhub", "node_type": "hub",
                               "listen_port": str(self.hub_port), "listen_url": self.hub_url,
                               "parent_hub_url": ".", "passcode": "benchpass"})
        write_kbnode(self.share_dir, {**common, "name": "benchshare", "node_type": "leaf",
                                      "confirm_share": "yes", "listen_url": self.share_url,
                                      "parent_hub_url": self.hub_url})
        deadline = time.monotonic() + timeout
        self._spawn("kb-hub", hub_dir)
        self._first_line("kb-hub", deadline)
        self._spawn("kb-host", self.share_dir)
        self.share_id = self._first_line("kb-host", deadline)["node_id"]

    def _spawn(self, name: str, directory: Path) -> None:
        env = {**os.environ, "KBUCKET_HUB_PASSCODE": "benchpass", "PYTHONUNBUFFERED": "1"}
        out = open(self.work / f"{name}.out", "wb")
        err = open(self.work / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen(command(name) + [str(directory), "--auto"],
                                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                               start_new_session=True))

    def _first_line(self, name: str, deadline: float) -> dict:
        out = self.work / f"{name}.out"
        while time.monotonic() < deadline:
            text = out.read_text(encoding="utf-8")
            if "\n" in text:
                return json.loads(text.split("\n", 1)[0])
            if self.processes[-1].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start:\n{(self.work / f'{name}.log').read_text()[-2000:]}")

    def wait_for(self, sha1: str, timeout: float = 600) -> None:
        """Until the hub finds the file (the share has hashed it and reported it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.hub_url}/find/{sha1}/", timeout=5).json().get("found"):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the hub never found the file")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


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
        nodes = Nodes(work, share)
        nodes.start()
        nodes.wait_for(sha1)
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
