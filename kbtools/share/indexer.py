"""Keeps a share's index fresh while it is hosted, and reads kb-index records from stdin.

`IndexKeeper` refreshes the `ShareIndex` every few seconds in its own thread (a stat walk when
nothing changed; new and changed files are hashed, with the digest cache under `.kbucket/`) and
publishes the node data (`{"files_by_sha1": ...}`) with its object_hash. During a long first scan
it publishes what is ready every few seconds, so a large share becomes findable file by file.

`read_index_records(stream, keeper)`: `kb-index . | kb-host .` lets the share use the hashing kb-index
just did. While records flow, the periodic refresh waits (the two would hash the same files); at the
summary record or the end of input, a refresh runs at once and finds every digest in the cache.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterable

from kbtools.index.share_index import IndexDelta, ShareIndex
from kbtools.protocol.objecthash import object_hash
from kbtools.share.link import NodeData

log = logging.getLogger("kbtools.share")

REFRESH_INTERVAL = 2.0
WALK_SHARE = 0.1  # a large share waits longer between walks: at most this share of the time walking
MAX_INTERVAL = 30.0
PUBLISH_EVERY = 2.0  # during a long scan
STDIN_QUIET = 10.0  # records on stdin hold the periodic refresh back this long


class IndexKeeper:
    def __init__(self, index: ShareIndex, on_change: Callable[[IndexDelta, int], None],
                 interval: float = REFRESH_INTERVAL) -> None:
        self.index = index
        self.on_change = on_change
        self.interval = interval
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._hold_until = 0.0
        self._published = NodeData({"files_by_sha1": {}}, object_hash({"files_by_sha1": {}}), 0)
        self._published_source: object = None
        self.refreshes = 0
        self.walk_seconds = 0.0  # the last refresh that hashed nothing: the cost of a plain walk
        self.thread = threading.Thread(target=self._run, name="kb-host-index", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(30)

    def node_data(self) -> NodeData:
        with self._lock:
            return self._published

    def refresh_soon(self) -> None:
        """Refresh now (no waiting for the timer or for more stdin records)."""
        with self._lock:
            self._hold_until = 0.0
        self._wake.set()

    def hold(self, seconds: float = STDIN_QUIET) -> None:
        """Hold the periodic refresh back for a while (records are arriving on stdin)."""
        with self._lock:
            self._hold_until = time.monotonic() + seconds

    # -- the thread

    def _publish(self) -> None:
        by_sha1 = self.index.files_by_sha1()
        if by_sha1 is self._published_source:
            return  # unchanged (the index hands out a new dict after each change)
        data = {"files_by_sha1": by_sha1}
        published = NodeData(data, object_hash(data), self._published.version + 1)
        with self._lock:
            self._published = published
        self._published_source = by_sha1

    def _held(self) -> float:
        with self._lock:
            return self._hold_until - time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            held = self._held()
            if held > 0:
                self._wake.wait(min(held, 1.0))
                self._wake.clear()
                continue
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001 - a failed walk is retried next time
                log.warning("index refresh failed: %s", exc)
            self._wake.wait(self.next_interval())
            self._wake.clear()

    def next_interval(self) -> float:
        """The wait before the next walk: `interval`, longer for a share whose walk is slow."""
        return min(MAX_INTERVAL, max(self.interval, self.walk_seconds / WALK_SHARE))

    def _refresh(self) -> None:
        last = time.monotonic()
        for _ in self.index.scan():
            if self._stop.is_set():
                return
            if time.monotonic() - last >= PUBLISH_EVERY:
                self._publish()
                last = time.monotonic()
        self.refreshes += 1
        self._publish()
        delta = self.index.last_delta
        if delta is not None and delta.hashed == 0:
            self.walk_seconds = delta.seconds
        if delta is not None and (delta or delta.errors or self.refreshes == 1):
            self.on_change(delta, self.refreshes)


def read_index_records(stream: Iterable[str], keeper: IndexKeeper,
                       on_batch: Callable[[dict[str, Any]], None]) -> None:
    """Read kb-index NDJSON from `stream` until its end (see the module docstring)."""
    files = errors = ignored = pending = 0  # pending: lines since the last summary

    def batch_done(final: bool) -> None:
        keeper.refresh_soon()
        on_batch({"event": "stdin", "files": files, "errors": errors, "ignored": ignored,
                  "end_of_input": final})

    try:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            pending += 1
            keeper.hold()
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            kind = record.get("type") if isinstance(record, dict) else None
            if kind == "file":
                if record.get("status") == "error":
                    errors += 1
                else:
                    files += 1
            elif kind == "summary":
                pending = 0
                batch_done(False)
            elif kind != "dataset":
                ignored += 1
    except (OSError, ValueError):
        pass
    if pending:  # input that ended without a summary; an empty stdin (</dev/null) says nothing
        batch_done(True)
