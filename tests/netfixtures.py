"""A real kbtools network on loopback for tests: kb-hub (and kb-host) processes from this checkout.

Each node is a subprocess (`python bin/<command> DIR --auto --bind 127.0.0.1`) on a free 127.0.0.1
port, with a hand-written `.kbucket/kbnode.json` (keys and node id are made on first start, as the
original does). A start waits for the command's first stdout line (its JSON "ready" line); every node
is stopped (SIGTERM, then SIGKILL) when its context ends, also when the test fails.

    from tests.netfixtures import Network

    def test_something(tmp_path):
        with Network(tmp_path) as net:
            top = net.hub("top", passcode="toppass")
            child = net.hub("child", parent=top)            # a child hub under top
            share = net.share("s", parent=child, files={"a.txt": b"a"})   # a kb-host under it
            requests.get(f"{top.url}/{child.node_id}/api/nodeinfo")
            top.events()                                     # NDJSON events printed so far

Or as a pytest fixture (import it in a test module or a conftest.py):

    from tests.netfixtures import network  # noqa: F401  (the fixture)

    def test_x(network):
        hub = network.hub("h")

`NodeProcess` exposes `node_id`, `url` (http://127.0.0.1:PORT), `ready` (the first JSON line),
`node_dir`, `events()`, `stop()`, `kill()` (SIGKILL, as a crash) and `start()` again (a restart keeps
the node id: the keys stay in the directory).
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0

COMMON = {"scientific_research": "yes", "owner": "Net Tester", "owner_email": "net@example.org"}


#: Ports handed out below the kernel's range for outgoing connections (32768-60999 on Linux), so
#: that no connection of another test can take one between free_port() and the server's bind.
_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, chosen at random outside the ephemeral range."""
    for port in random.sample(_PORTS, 64):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767 on 127.0.0.1")


def write_kbnode(node_dir: Path, config: dict[str, Any]) -> None:
    """Write `.kbucket/kbnode.json` (keys and node id are added by the first start)."""
    kb = Path(node_dir) / ".kbucket"
    kb.mkdir(parents=True, exist_ok=True)
    (kb / "kbnode.json").write_text(json.dumps(config, indent=4), encoding="utf-8")


def hub_config(name: str, port: int, passcode: str = "", parent_url: str = ".",
               **extra: Any) -> dict[str, Any]:
    """A hub's kbnode.json listening on 127.0.0.1:`port` (its listen_url says so)."""
    return {**COMMON, "node_type": "hub", "name": name, "description": f"test hub {name}",
            "listen_port": str(port), "listen_url": f"http://127.0.0.1:{port}",
            "passcode": passcode, "parent_hub_url": parent_url, **extra}


def share_config(name: str, port: int, parent_url: str, **extra: Any) -> dict[str, Any]:
    """A share's kbnode.json listening on 127.0.0.1:`port`, under the hub at `parent_url`."""
    return {**COMMON, "node_type": "leaf", "name": name, "description": f"test share {name}",
            "confirm_share": "yes", "listen_url": f"http://127.0.0.1:{port}",
            "parent_hub_url": parent_url, **extra}


class NodeProcess:
    """One kb-hub or kb-host process; stdout goes to `<logs>/<name>.<run>.out`, stderr to `.log`."""

    def __init__(self, command: str, node_dir: Path, logs: Path, name: str,
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.command, self.node_dir, self.logs, self.name = command, Path(node_dir), Path(logs), name
        self.args = args
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.runs = 0

    # -- paths of the current run
    @property
    def out_path(self) -> Path:
        return self.logs / f"{self.name}.{self.runs}.out"

    @property
    def err_path(self) -> Path:
        return self.logs / f"{self.name}.{self.runs}.log"

    @property
    def node_id(self) -> str:
        return str(self.ready["node_id"])

    @property
    def url(self) -> str:
        """Where tests reach the node (the address it listens on)."""
        return str(self.ready.get("url") or self.ready.get("listen_url"))

    def start(self, timeout: float = READY_TIMEOUT, wait: bool = True) -> "NodeProcess":
        """Start and wait for the first JSON line on stdout (unless not `wait`)."""
        self.runs += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if "KBUCKET_HUB_PASSCODE" not in self.env:
            env.pop("KBUCKET_HUB_PASSCODE", None)
        cmd = [sys.executable, str(ROOT / "bin" / self.command), str(self.node_dir), "--auto",
               "--bind", "127.0.0.1", *self.args]
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                            env=env, cwd=str(ROOT), start_new_session=True)
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while True:
            text = self.out_path.read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                self.ready = json.loads(text.split("\n", 1)[0])
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.err_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{self.command} {self.name} did not start:\n{log}")
            time.sleep(0.05)

    def events(self) -> list[dict[str, Any]]:
        """Every JSON line printed so far by the current run (the ready line first)."""
        text = self.out_path.read_text(encoding="utf-8", errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_event(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first event (after the ready line) for which `predicate(event)` is true."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events()[1:]:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no such event; got {self.events()[-5:]}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit; the exit code."""
        p = self.process
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Network:
    """Nodes started for one test, all stopped on exit (a context manager)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.nodes: list[NodeProcess] = []

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def hub(self, name: str, passcode: str = "", parent: NodeProcess | str | None = None,
            parent_passcode: str | None = None, port: int | None = None,
            args: tuple[str, ...] = (), start: bool = True, **config: Any) -> NodeProcess:
        """A kb-hub in `<root>/<name>` on a free port; `parent`: a hub NodeProcess or a URL.

        `parent_passcode` goes through KBUCKET_HUB_PASSCODE (never argv). Extra keyword arguments
        are written into kbnode.json.
        """
        node_dir = self.root / name
        if not (node_dir / ".kbucket" / "kbnode.json").exists():
            port = free_port() if port is None else port
            parent_url = parent.url if isinstance(parent, NodeProcess) else (parent or ".")
            write_kbnode(node_dir, hub_config(name, port, passcode, parent_url, **config))
        env = {"KBUCKET_HUB_PASSCODE": parent_passcode} if parent_passcode is not None else {}
        node = NodeProcess("kb-hub", node_dir, self.root / "logs", name, args, env)
        self.nodes.append(node)
        return node.start() if start else node


    def share(self, name: str, parent: NodeProcess | str, passcode: str | None = None,
              files: dict[str, bytes] | None = None, port: int | None = None,
              args: tuple[str, ...] = (), start: bool = True, **config: Any) -> NodeProcess:
        """A kb-host of `<root>/<name>` (with `files` written into it) under `parent`.

        `passcode` (the parent's) goes through KBUCKET_HUB_PASSCODE (never argv). The ready line
        is printed once the share is registered with its hub.
        """
        node_dir = self.root / name
        for rel, data in (files or {}).items():
            path = node_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if not (node_dir / ".kbucket" / "kbnode.json").exists():
            port = free_port() if port is None else port
            parent_url = parent.url if isinstance(parent, NodeProcess) else parent
            write_kbnode(node_dir, share_config(name, port, parent_url, **config))
        env = {"KBUCKET_HUB_PASSCODE": passcode} if passcode is not None else {}
        node = NodeProcess("kb-host", node_dir, self.root / "logs", name, args, env)
        self.nodes.append(node)
        return node.start() if start else node


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """A `Network` under the test's tmp_path; every node is stopped at the end of the test."""
    with Network(tmp_path / "net") as net:
        yield net


def wait_found(hub_url: str, *contents: bytes | str, timeout: float = 60) -> None:
    """Until the hub's find answers every one of ``contents`` (bytes, or their SHA-1): the share
    has hashed and reported them."""
    import hashlib

    import requests

    from tests.waiting import wait_for

    for item in contents:
        sha1 = item if isinstance(item, str) else hashlib.sha1(item).hexdigest()
        wait_for(lambda: requests.get(f"{hub_url}/find/{sha1}/", timeout=10).json().get("found"),
                 timeout, f"{sha1} never found at {hub_url}",
                 ignore=(requests.RequestException, ValueError))
