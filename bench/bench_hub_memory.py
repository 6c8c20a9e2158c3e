"""Memory a kb-hub spends on a share's file index: a 300,000-file report (target: the index held
takes at most half the report's frame size; it took about 9 times the frame before).

Two measurements, each against a reference measured in the same run:

1. In process, with tracemalloc: the bytes per indexed file that the hub's side of the connection
   (`ChildConnection`, compact `NodeData`) keeps after the report, against the report's frame bytes
   per file and against the old representation (the report parsed into a dict per file, which the
   hub used to keep, plus the copy its find index made); and the peak while the frame is taken in
   (parse, signature check, compact build).
2. A real `kb-hub` process and a real websocket child on loopback: the hub's RSS before, at its peak
   (VmHWM, reset before the report), with the index held, and after the child went, in MiB and as
   a ratio to the frame size; then a delta (one file renamed) applied and verified.

Usage: bench_hub_memory.py [--files N]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbtools.node.config import websocket_url  # noqa: E402
from kbtools.node.identity import NodeIdentity, generate_key_pair  # noqa: E402
from kbtools.protocol.envelope import Signer  # noqa: E402
from kbtools.protocol.hubconn import ChildConnection, ChildRegistry, HubInfo, NodeDataUpdated  # noqa: E402
from kbtools.protocol.jsondiff import diff  # noqa: E402
from kbtools.protocol.leafconn import ParentLink, Reached, Registered, register_info  # noqa: E402
from kbtools.protocol.objecthash import object_hash  # noqa: E402
from tests.netfixtures import Network  # noqa: E402

PASS = "benchpass"
MIB = 1024 * 1024
TARGET = 0.5  # index bytes held / frame bytes
CONFIG = {"name": "bigshare", "scientific_research": "yes", "description": "bench", "owner": "B",
          "owner_email": "b@example.org", "confirm_share": "yes"}


def report_data(files: int) -> dict:
    """A share of `files` files in nested study folders (paths as kb-host reports them)."""
    return {"files_by_sha1": {
        hashlib.sha1(f"file{j}".encode()).hexdigest():
            {"path": f"study{j % 7}/session{j % 100:03d}/dataset{j % 1000:04d}/raw{j:07d}.mda",
             "size": 1_000_000 + j * 17}
        for j in range(files)}}


def now_ms() -> int:
    return int(time.time() * 1000)


def in_process(signer: Signer, link_info: dict, data: dict, frame: str, files: int) -> tuple[float, float, float, float]:
    """(old bytes/file, new bytes/file, peak growth / frame, frame bytes/file), via tracemalloc."""
    text = json.dumps(data)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    parsed = json.loads(text)
    index_copy = dict(parsed["files_by_sha1"])  # the old find index's snapshot of the same entries
    old = tracemalloc.get_traced_memory()[0] - base
    del parsed, index_copy
    gc.collect()

    registry = ChildRegistry()
    conn = ChildConnection(HubInfo({"node_id": "benchhub"}, passcode=PASS), registry, time.time())
    register = signer.frame({"command": "register_child_node", "info": link_info, "passcode": PASS}, now_ms())
    assert not conn.receive_frame(register, time.time()).close
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = conn.receive_frame(frame, time.time())
    assert not out.close, out.replies
    assert any(isinstance(e, NodeDataUpdated) for e in out.events)
    del out
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert conn.data is not None and conn.data.file_count == files
    frame_bytes = len(frame.encode())
    return old / files, (held - base) / files, (peak - base) / frame_bytes, frame_bytes / files


def rss_of(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def live(url: str, pid: int, signer: Signer, info: dict, data: dict, frame_bytes: int) -> dict:
    link = ParentLink(signer, info, PASS)
    figures: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(websocket_url(url), max_msg_size=0)

        async def answer() -> str:
            """The hub's next frame; its reachability report (its probe of our listen_url) is
            taken in passing."""
            while True:
                msg = await ws.receive(timeout=120)
                out = link.receive_frame(msg.data, now_ms())
                for f in out.send:
                    await ws.send_str(str(f))
                if not any(isinstance(e, Reached) for e in out.events):
                    return str(msg.data)

        for f in link.connection_opened(now_ms()):
            await ws.send_str(str(f))
        while not link.registered:
            await answer()
        await asyncio.sleep(0.5)
        figures["before"] = rss_of(pid)[0]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        data_hash = object_hash(data)
        for f in link.report_node_data(data, now_ms(), data_hash):
            await ws.send_str(str(f))
        reply = await answer()
        assert json.loads(reply) == {"message": "ok"}, reply[:300]
        await asyncio.sleep(1.0)
        figures["held"], figures["peak"] = rss_of(pid)
        # A delta, as an original share sends it: one file renamed, applied and verified by the hub.
        sha1 = next(iter(data["files_by_sha1"]))
        new = {"files_by_sha1": dict(data["files_by_sha1"])}
        new["files_by_sha1"][sha1] = {**new["files_by_sha1"][sha1], "path": "renamed.mda"}
        frame = signer.frame({"command": "report_node_data", "data_delta": diff(data, new),
                              "data_hash": object_hash(new)}, now_ms())
        link.awaiting_response = True
        await ws.send_str(frame)
        reply = await answer()
        assert json.loads(reply) == {"message": "ok"}, reply[:300]
        async with session.get(f"{url}/find/{sha1}/") as r:
            found = await r.json()
        assert found["results"][0]["path"] == "renamed.mda", found
        await ws.close()
    await asyncio.sleep(1.5)
    figures["after"] = rss_of(pid)[0]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300_000)
    args = parser.parse_args()
    files = args.files

    with tempfile.TemporaryDirectory(prefix="bench-hubmem-", dir=os.environ.get("BENCH_TMP")) as tmp, \
            Network(Path(tmp)) as net:
        hub = net.hub("hub", passcode=PASS)
        identity = NodeIdentity(*generate_key_pair())
        signer = Signer(identity)
        info = register_info(CONFIG, "http://127.0.0.1:9/big", "leaf")
        data = report_data(files)
        report_frame = signer.frame({"command": "report_node_data", "data": data,
                                     "data_hash": object_hash(data)}, now_ms())

        old, new, peak_ratio, per_frame = in_process(signer, info, data, report_frame, files)
        frame_mib = len(report_frame.encode()) / MIB
        del report_frame
        assert hub.process is not None
        figures = asyncio.run(live(hub.url, hub.process.pid, signer, info, data, len(data)))

    ratio = new / per_frame
    print(f"index of {files} files, report frame {frame_mib:.1f} MiB ({per_frame:.0f} bytes/file)")
    print(f"  in process (tracemalloc): {new:.1f} bytes per indexed file held, against {old:.0f} for "
          f"the old dict per file ({old / new:.1f}x less); peak while taking the frame in "
          f"{peak_ratio:.1f}x the frame")
    print(f"  kb-hub process (RSS): {figures['before']:.0f} MiB before, peak {figures['peak']:.0f} MiB "
          f"(+{(figures['peak'] - figures['before']) / frame_mib:.1f}x the frame), "
          f"{figures['held']:.0f} MiB holding the index "
          f"(+{(figures['held'] - figures['before']) / frame_mib:.2f}x the frame), "
          f"{figures['after']:.0f} MiB after the child went "
          f"(+{(figures['after'] - figures['before']) / frame_mib:.2f}x); a delta applied and verified")
    ok = ratio <= TARGET
    print(f"ratio index bytes / frame bytes {ratio:.2f} (target <= {TARGET})   {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
