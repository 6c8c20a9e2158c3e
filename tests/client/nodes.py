"""A real kb-hub and kb-host (processes from this checkout) on free loopback ports.

Used by the client tests against the real network and by ``bench/bench_kb_get.py``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
PASSCODE = "clientpass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(name: str) -> list[str]:
    """The checkout's bin/ launcher, run by this Python."""
    return [sys.executable, str(ROOT / "bin" / name)]


def write_kbnode(directory: Path, config: dict[str, str]) -> None:
    (directory / ".kbucket").mkdir(parents=True, exist_ok=True)
    (directory / ".kbucket" / "kbnode.json").write_text(json.dumps(config, indent=4))


COMMON = {"scientific_research": "yes", "description": "kbtools client tests", "owner": "Client Tester",
          "owner_email": "client@example.org"}


class Node:
    """One kb-hub or kb-host process; its first stdout line is kept in ``info``."""

    def __init__(self, name: str, directory: Path, logs: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.name, self.directory, self.logs = name, directory, logs
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.runs = 0

    def start(self, timeout: float = 60) -> "Node":
        self.runs += 1
        out = self.logs / f"{self.name}.{self.runs}.out"
        err = self.logs / f"{self.name}.{self.runs}.log"
        env = {**os.environ, "KBUCKET_HUB_PASSCODE": PASSCODE, "PYTHONUNBUFFERED": "1"}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.process = subprocess.Popen(command(self.name) + [str(self.directory), "--auto", *self.extra_args],
                                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            text = out.read_text(encoding="utf-8")
            if "\n" in text:
                self.info = json.loads(text.split("\n", 1)[0])
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{err.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RealNetwork:
    """A hub and one share of ``share_dir`` under it.

    ``share_bind``: the address the share listens on; with one other than 127.0.0.1 its advertised
    ``listen_url`` (on 127.0.0.1) refuses connections, so the share is reachable only through the hub.
    """

    def __init__(self, work: Path, share_dir: Path, share_bind: str | None = None) -> None:
        self.work, self.share_dir = work, share_dir
        self.hub_port, self.share_port = free_port(), free_port()
        self.hub_url = f"http://127.0.0.1:{self.hub_port}"
        self.share_url = f"http://127.0.0.1:{self.share_port}"
        hub_dir = work / "hub"
        hub_dir.mkdir(exist_ok=True)
        write_kbnode(hub_dir, {**COMMON, "name": "clienthub", "node_type": "hub",
                               "listen_port": str(self.hub_port), "listen_url": self.hub_url,
                               "parent_hub_url": ".", "passcode": PASSCODE})
        write_kbnode(share_dir, {**COMMON, "name": "clientshare", "node_type": "leaf", "confirm_share": "yes",
                                 "listen_url": self.share_url, "parent_hub_url": self.hub_url})
        self.hub = Node("kb-hub", hub_dir, work, ("--bind", "127.0.0.1"))
        self.share = Node("kb-host", share_dir, work, ("--bind", share_bind or "127.0.0.1"))

    @property
    def share_id(self) -> str:
        return str(self.share.info["node_id"])

    def url(self, rel: str) -> str:
        return f"kbucket://{self.share_id}/{rel}"

    def start(self) -> "RealNetwork":
        self.hub.start()
        self.share.start()
        return self

    def wait_indexed(self, sha1s: list[str], timeout: float = 60) -> None:
        """Until the hub finds every one of these SHA-1s (the share hashed and reported them)."""
        deadline = time.monotonic() + timeout
        pending = list(sha1s)
        while pending:
            try:
                answer = requests.get(f"{self.hub_url}/find/{pending[0]}/", timeout=5).json()
                if answer.get("found"):
                    pending.pop(0)
                    continue
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub never found {pending[0]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.share.stop()
        self.hub.stop()
