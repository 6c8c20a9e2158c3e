"""Reading in place through the fsspec file system, against kb-get on the same route, in one run.

1. A 1-second window of a 64-channel, 30 kHz int16 recording hosted on a kb-host share, read with
   ``kbtools.spikeinterface.read_recording(...).get_traces``: Range requests per window (target 1 to
   3) and the time of one window (target: well under a second on loopback).
2. A sequential read of a file through ``fsspec.open("kbucket://…").read(block)`` to its end
   (verified against its SHA-1 on the way), against kb-get downloading the same file from the same
   share (direct route, no cache): the ratio kb-get time / fsspec time (target >= 0.8).

Usage: bench_fsspec.py [--size-mib N] [--runs N] [--windows N]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, command, wait_found, write_file

sys.path.insert(0, str(ROOT))


from kbtools.formats.sample import write_sample_dataset  # noqa: E402
from tests.netfixtures import Network  # noqa: E402

MiB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--windows", type=int, default=20)
    args = parser.parse_args()
    from kbtools.client.fsspec_fs import KbucketFileSystem
    from kbtools.spikeinterface import read_recording

    ok = True
    with tempfile.TemporaryDirectory(prefix="kbtools-bench-fsspec-") as tmp, Network(Path(tmp) / "net") as net:
        share_dir = Path(tmp) / "net" / "share"
        write_sample_dataset(share_dir / "dataset1", channels=64, samples=30000 * 10, samplerate=30000)
        sha1 = write_file(share_dir / "big.bin", args.size_mib * MiB)
        hub = net.hub("hub")
        share = net.share("share", parent=hub)
        raw_sha1 = hashlib.sha1((share_dir / "dataset1" / "raw.mda").read_bytes()).hexdigest()
        wait_found(hub.url, sha1, raw_sha1, timeout=300)
        os.environ["KBUCKET_NO_CACHE"] = "1"

        # 1. windows of a recording
        recording = read_recording(f"kbucket://{share.node_id}/dataset1", hub=hub.url)
        stats = recording.kbucket_fs.stats
        requests_per_window, seconds = [], []
        for i in range(args.windows):
            start = (i * 7919 * 30) % (recording.get_num_samples() - 30000)
            before = stats.range_requests
            t0 = time.perf_counter()
            recording.get_traces(start_frame=start, end_frame=start + 30000)
            seconds.append(time.perf_counter() - t0)
            requests_per_window.append(stats.range_requests - before)
        worst = max(requests_per_window)
        ok &= worst <= 3
        print(f"1-s window of 64 ch x 30 kHz int16 ({args.windows} windows, loopback, direct from the share):")
        print(f"  Range requests per window: max {worst}, mean {statistics.mean(requests_per_window):.2f}"
              f" {'ok' if worst <= 3 else 'ABOVE TARGET 3'}")
        print(f"  time per window: median {statistics.median(seconds) * 1000:.0f} ms,"
              f" max {max(seconds) * 1000:.0f} ms (target well under 1 s: ratio to 1 s"
              f" {max(seconds):.2f}x)")

        # 2. sequential read vs kb-get
        url = f"kbucket://{share.node_id}/big.bin"
        fs_times, kb_times = [], []

        def read_fsspec() -> None:
            fs = KbucketFileSystem(hub=hub.url, local_cache="off", skip_instance_cache=True)
            t0 = time.perf_counter()
            with fs.open(url) as f:
                while f.read(8 * MiB):
                    pass
                if not f.verified:
                    raise RuntimeError("the read was not verified")
            fs_times.append(time.perf_counter() - t0)
            if fs.stats.routes.get("direct", 0) != fs.stats.range_requests:
                raise RuntimeError(f"not all direct: {fs.stats.routes}")

        def kb_get() -> None:
            target = Path(tmp) / "kb.bin"
            t0 = time.perf_counter()
            subprocess.run([command("kb-get"), "--hub", hub.url, "--no-cache", url, "-o", str(target)],
                           check=True, stdout=subprocess.DEVNULL)
            kb_times.append(time.perf_counter() - t0)
            target.unlink()

        for run in range(args.runs):
            for step in ((read_fsspec, kb_get) if run % 2 == 0 else (kb_get, read_fsspec)):
                step()
        fs_s, kb_s = statistics.median(fs_times), statistics.median(kb_times)
        ratio = kb_s / fs_s
        ok &= ratio >= 0.8
        print(f"sequential read of {args.size_mib} MiB, median of {args.runs} (loopback, direct from the share):")
        print(f"  kb-get {kb_s:5.2f} s ({args.size_mib / kb_s:4.0f} MiB/s)   fsspec read {fs_s:5.2f} s"
              f" ({args.size_mib / fs_s:4.0f} MiB/s)   ratio {ratio:4.2f}x"
              f" {'ok' if ratio >= 0.8 else 'BELOW TARGET 0.8x'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
