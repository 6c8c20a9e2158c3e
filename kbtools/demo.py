"""The kbtools demo (``make demo``): the whole journey on loopback.

It builds a sample study and checks it with kb-check, starts a kb-hub and a kb-host of the study on
free 127.0.0.1 ports (real processes), waits until the hub finds the share's files, fetches
dataset1 back by its ``kbucket://`` URL with kb-get (every file SHA-1 verified) and compares it with
the study, prints the share's ``kbucket://`` URL
and its browse URL, and stops both processes (also on Ctrl-C). On a terminal (and unless DEMO_KEEP=0
or CI is set) the hub stays up until Ctrl-C, so the browse URL can be opened.

Prints a short human summary on stderr and one JSON result on stdout. Each step is a small function.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from kbtools.cli.base import dump_json
from kbtools.cli.kb_check import KbCheck
from kbtools.cli.kb_get import KbGet
from kbtools.formats.sample import write_sample_study

DATASETS = ("dataset1", "dataset2")
START_TIMEOUT = 60.0
FIND_TIMEOUT = 60.0


def build_study(root: Path) -> Path:
    """Write the sample study (two 4-channel datasets, 2 s at 30 kHz) under ``root/study``."""
    study = root / "study"
    write_sample_study(study, names=DATASETS, channels=4, samples=60000, samplerate=30000)
    return study


def check_study(study: Path) -> dict[str, Any]:
    """Run the kb-check command on the study; returns its exit code and JSON output."""
    out, err = io.StringIO(), io.StringIO()
    code = KbCheck([str(study), "-q"], output_file=out, error_file=err).execute()
    if err.getvalue():
        sys.stderr.write(err.getvalue())
    return {"exit_code": code, "output": json.loads(out.getvalue()) if out.getvalue() else None}


def describe(check: dict[str, Any]) -> list[str]:
    """Human lines about a kb-check result."""
    lines = []
    for ds in (check["output"] or {}).get("datasets", []):
        s = ds["summary"]
        state = "valid" if ds["valid"] else "NOT valid"
        lines.append(f"{Path(ds['path']).name}: {state}, {s.get('num_channels')} channels x "
                     f"{s.get('num_timepoints')} {s.get('dtype')} samples at "
                     f"{s.get('samplerate')} Hz ({s.get('duration_sec')} s), "
                     f"{len(ds['findings'])} finding(s)")
    return lines


def say(line: str) -> None:
    sys.stderr.write(f"demo: {line}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kbnode(node_dir: Path, config: dict[str, Any]) -> None:
    (node_dir / ".kbucket").mkdir(parents=True, exist_ok=True)
    (node_dir / ".kbucket" / "kbnode.json").write_text(json.dumps(config, indent=4), encoding="utf-8")


class Process:
    """A kbtools command run as a real process (this Python, this kbtools); stdout/stderr to files."""

    def __init__(self, command: str, args: list[str], logs: Path, env: dict[str, str] | None = None) -> None:
        self.command = command
        module = "kbtools.cli." + command.replace("-", "_")
        self.out_path, self.err_path = logs / f"{command}.out", logs / f"{command}.log"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())", *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def first_line(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The command's first JSON line (it is up), or RuntimeError with the end of its log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.out_path.read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                return dict(json.loads(text.split("\n", 1)[0]))
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.err_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"{self.command} did not start:\n{log}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL if it hangs; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_network(root: Path, study: Path) -> tuple[Process, Process, dict[str, Any], dict[str, Any]]:
    """A kb-hub and a kb-host of ``study`` under it, on free 127.0.0.1 ports, passcode in the env."""
    hub_port, share_port = free_port(), free_port()
    passcode = secrets.token_hex(8)
    hub_url = f"http://127.0.0.1:{hub_port}"
    owner = {"scientific_research": "yes", "owner": "kbtools demo", "owner_email": "demo@example.org"}
    hub_dir = root / "hub"
    write_kbnode(hub_dir, {"node_type": "hub", "name": "demo-hub", "description": "kbtools demo hub",
                           **owner, "listen_port": str(hub_port), "listen_url": hub_url,
                           "passcode": passcode, "parent_hub_url": "."})
    write_kbnode(study, {"node_type": "leaf", "name": "demo-study", "description": "the sample study",
                         **owner, "confirm_share": "yes", "listen_url": f"http://127.0.0.1:{share_port}",
                         "parent_hub_url": hub_url})
    logs = root / "logs"
    logs.mkdir()
    hub = Process("kb-hub", [str(hub_dir), "--auto", "--bind", "127.0.0.1"], logs)
    share: Process | None = None
    try:
        hub_ready = hub.first_line()
        share = Process("kb-host", [str(study), "--auto", "--bind", "127.0.0.1"], logs,
                        env={"KBUCKET_HUB_PASSCODE": passcode})
        share_ready = share.first_line()
    except BaseException:
        if share is not None:
            share.stop()
        hub.stop()
        raise
    return hub, share, hub_ready, share_ready


def wait_findable(hub_url: str, sha1: str, timeout: float = FIND_TIMEOUT) -> dict[str, Any]:
    """Until the hub's find answers for ``sha1`` (the share hashed and reported the file)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(f"{hub_url}/find/{sha1}/", timeout=5).json()
            if answer.get("found"):
                return dict(answer)
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the hub never found {sha1}")
        time.sleep(0.1)


def kb_get(url: str, hub_url: str, target: Path) -> dict[str, Any]:
    """kb-get of one URL (a file or a whole directory; every file SHA-1 verified)."""
    out, err = io.StringIO(), io.StringIO()
    code = KbGet([url, "--hub", hub_url, "-o", str(target), "--no-cache"],
                 output_file=out, error_file=err).execute()
    if err.getvalue():
        sys.stderr.write(err.getvalue())
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return {"url": url, "exit_code": code, "records": records}


def sha1_of(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def keep_up() -> bool:
    """Keep the hub up until Ctrl-C: only for a person at a terminal."""
    return sys.stdin.isatty() and os.environ.get("DEMO_KEEP", "1") != "0" and not os.environ.get("CI")


def share_and_download(root: Path, study: Path) -> dict[str, Any]:
    """Host the study under a hub, fetch dataset1 back with kb-get through the hub, compare SHA-1s."""
    dataset = study / DATASETS[0]
    expected = {p.name: sha1_of(p) for p in sorted(dataset.iterdir()) if p.is_file()}
    say("starting kb-hub and kb-host on 127.0.0.1 ...")
    hub, share, hub_ready, share_ready = start_network(root, study)
    try:
        hub_url, node_id = str(hub_ready["url"]), str(share_ready["node_id"])
        say(f"hub {hub_ready['node_id']} at {hub_url}; share {node_id} connected")
        for sha1 in expected.values():
            wait_findable(hub_url, sha1)
        kbucket_url = f"kbucket://{node_id}/{DATASETS[0]}"
        # The hub's tunnel, explicitly: the share's raw.mda streamed down its websocket.
        tunnelled = root / "tunnel" / "raw.mda"
        through_hub = kb_get(f"{hub_url}/{node_id}/download/{DATASETS[0]}/raw.mda", hub_url, tunnelled)
        tunnel_ok = (through_hub["exit_code"] == 0 and tunnelled.is_file()
                     and sha1_of(tunnelled) == expected["raw.mda"])
        say(f"raw.mda through the hub's tunnel: SHA-1 {'verified' if tunnel_ok else 'WRONG'}")
        # Then the whole dataset by its name, as a pipeline would fetch it.
        fetched = root / "download" / DATASETS[0]  # -o names the directory, as with cp -r
        got = kb_get(kbucket_url, hub_url, fetched)
        actual = {name: sha1_of(fetched / name) if (fetched / name).is_file() else None
                  for name in expected}
        ok = tunnel_ok and got["exit_code"] == 0 and actual == expected
        say(f"kb-get {kbucket_url}: {len(expected)} files, SHA-1 "
            f"{'verified, identical to' if ok else 'DIFFERENT from'} the files on disk")
        browse_url = str(share_ready["browse_url"])
        share_url = str(share_ready["kbucket_url"])
        say(f"the share: {share_url}   the dataset: {kbucket_url}")
        say(f"browse the share: {browse_url}")
        if keep_up():
            say(f"while they run: kb-get {kbucket_url} --hub {hub_url}")
            say("the hub and the share stay up; press Ctrl-C to stop them")
            try:
                while share.process.poll() is None and hub.process.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass  # the way to end a kept-up demo: stop both below, print the result
        return {"ok": ok, "hub_url": hub_url, "node_id": node_id, "share_url": share_url,
                "kbucket_url": kbucket_url,
                "browse_url": browse_url, "sha1": expected, "downloaded_sha1": actual,
                "kb_get": got, "through_hub": through_hub}
    finally:
        codes = {"kb-host": share.stop(), "kb-hub": hub.stop()}
        say("stopped kb-host and kb-hub" + ("" if codes == {"kb-host": 0, "kb-hub": 0}
                                             else f" (exit codes {codes})"))


def main(argv: list[str] | None = None) -> int:
    root = Path(tempfile.mkdtemp(prefix="kbtools-demo-"))
    try:
        study = build_study(root)
        check = check_study(study)
        for line in [f"sample study in {study}", *describe(check)]:
            say(line)
        ok = check["exit_code"] == 0
        say(f"kb-check {'passed' if ok else 'FAILED'}")
        result: dict[str, Any] = {"ok": ok, "study": str(study), "kb_check": check}
        if ok:
            try:
                network = share_and_download(root, study)
            except RuntimeError as exc:
                say(f"the network part FAILED: {exc}")
                network = {"ok": False, "error": str(exc)}
            except KeyboardInterrupt:
                say("interrupted; the hub and the share were stopped")
                return 130
            result["network"] = network
            result["ok"] = ok = bool(network["ok"])
        print(dump_json(result, pretty=True))
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
