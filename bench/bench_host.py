"""Downloads of one file through a kb-hub against the direct download from the kb-host share, in one run,
on loopback: the fast tunnel (binary frames, credit window) and the compatible one (signed base64 JSON
frames, one `ok` per frame, what an original peer speaks). Prints MB/s of each, the ratio
through-hub/direct (target >= 0.5 between kbtools peers, i.e. on the fast tunnel; the compatible one is
bounded by one signed 64 KiB frame per round trip and is reported only) and the peak memory growth of
the hub and the share during the downloads (target <= 64 MiB on both).

Usage: bench_host.py [--size-mib N]     (default 1024)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.netfixtures import Network  # noqa: E402

MiB = 1024 * 1024
PASS = "benchpass"


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha1()
    block = os.urandom(16 * MiB)  # repeated: the bench measures transport, not entropy
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = block[:min(left, len(block))]
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def download(url: str) -> tuple[float, str]:
    digest = hashlib.sha1()
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=120) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(1 << 20):
            digest.update(chunk)
    return time.perf_counter() - started, digest.hexdigest()


def wait_found(hub_url: str, sha1: str) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if requests.get(f"{hub_url}/find/{sha1}/", timeout=10).json().get("found"):
            return
        time.sleep(0.2)
    raise RuntimeError("the hub never found the file")


def run(size: int) -> int:
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp, Network(Path(tmp)) as net:
        hub = net.hub("hub", passcode=PASS)
        shares = {}
        for name, args in (("fast", ()), ("compatible", ("--no-fast-path",))):
            node_dir = Path(tmp) / name
            node_dir.mkdir()
            sha1 = write_file(node_dir / "big.bin", size)
            shares[name] = (net.share(name, hub, passcode=PASS, args=args), sha1)
        for name, (share, sha1) in shares.items():
            wait_found(hub.url, sha1)
            sid = share.node_id
            direct_url = f"{share.url}/{sid}/download/big.bin"
            hub_url = f"{hub.url}/{sid}/download/big.bin"
            pids = (hub.process.pid, share.process.pid)
            for p in pids:  # reset the peak (VmHWM) to the current RSS: earlier hashing does not count
                Path(f"/proc/{p}/clear_refs").write_text("5")
            base = {p: rss_kib(p, "VmRSS") for p in pids}
            direct, d1 = download(direct_url)
            cpu = {p: cpu_seconds(p) for p in pids}
            through, d2 = download(hub_url)
            cpu = {p: cpu_seconds(p) - cpu[p] for p in pids}
            peak = {p: rss_kib(p, "VmHWM") for p in base}
            growth_hub = (peak[hub.process.pid] - base[hub.process.pid]) / 1024
            growth_share = (peak[share.process.pid] - base[share.process.pid]) / 1024
            ratio = direct / through
            mb = size / 1e6
            target = 0.5 if name == "fast" else 0.0
            good = d1 == d2 == sha1 and ratio >= target and max(growth_hub, growth_share) <= 64
            ok = ok and good
            print(f"{name:10s} direct {mb / direct:7.0f} MB/s   through the hub {mb / through:7.0f} MB/s   "
                  f"ratio {ratio:.2f} (target >= {target})   peak growth: hub {growth_hub:.0f} MiB, "
                  f"share {growth_share:.0f} MiB (target <= 64)   CPU through the hub: hub "
                  f"{cpu[hub.process.pid] / through:.0%}, share {cpu[share.process.pid] / through:.0%}   sha1 {'ok' if d1 == d2 == sha1 else 'BAD'}"
                  f"   {'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    return run(args.size_mib * MiB)


if __name__ == "__main__":
    sys.exit(main())
