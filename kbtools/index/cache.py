"""The digest cache of a share: ``DIR/.kbucket/index-cache.sqlite3``.

One row per relative path, valid while the file's size, mtime (ns) and inode are unchanged.
SQLite in WAL mode makes it crash-safe (a killed indexer leaves the rows of its last commit) and
lets a share and a ``kb-index`` run use it at the same time.

A row is not trusted when the file's mtime lies within :data:`RACY_MARGIN_NS` of the moment its
hashing began: a file written in the same clock tick as its hashing could change again without
changing its mtime, so such a row is hashed again on the next run (the "racily clean" rule of
git's index).
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from kbtools.index.paths import NODE_DIR_NAME

log = logging.getLogger("kbtools.index")

CACHE_FILE_NAME = "index-cache.sqlite3"
SCHEMA_VERSION = 1
#: Coarse filesystems keep mtimes to the second (or two): stay on the safe side.
RACY_MARGIN_NS = 2_000_000_000
#: Commit hashed rows at least this often, and every so many rows, so a killed run loses little.
COMMIT_INTERVAL_S = 1.0
COMMIT_ROWS = 256


def is_racy(mtime_ns: int, hashed_at_ns: int) -> bool:
    """True when the file was last written too close to its hashing for its mtime to show a
    later write. An mtime far in the future (clock skew) is not racy: any new write moves it."""
    return hashed_at_ns - RACY_MARGIN_NS < mtime_ns <= hashed_at_ns + RACY_MARGIN_NS


class FileRecord(NamedTuple):
    """The digests of one file of a share, and the stat they belong to."""

    relpath: str
    size: int
    mtime_ns: int
    ino: int
    sha1: str
    #: SHA-1 hex of the first 1000 bytes (``original_fcs`` without its ``head1000-`` prefix).
    head_sha1: str
    sha256: str | None
    md5: str | None
    hashed_at_ns: int

    def matches(self, size: int, mtime_ns: int, ino: int) -> bool:
        """True when this record still describes a file with that stat."""
        return (self.size == size and self.mtime_ns == mtime_ns and self.ino == ino
                and not is_racy(mtime_ns, self.hashed_at_ns))

    def digest(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value


def cache_path(root: Path) -> Path:
    return Path(root) / NODE_DIR_NAME / CACHE_FILE_NAME


class IndexCache:
    """Read and update the cache of one share. Thread-safe; writes are batched."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.path = cache_path(root)
        self._lock = threading.Lock()
        self._last_commit = time.monotonic()
        self._pending: dict[str, tuple[object, ...] | None] = {}
        self._db: sqlite3.Connection | None = None
        self._create = create
        # Opened when first used: a re-index served from the snapshot never needs it.
        self._opened = False

    def _connection(self) -> sqlite3.Connection | None:
        if not self._opened:
            self._opened = True
            try:
                if self._create:
                    self.path.parent.mkdir(mode=0o700, exist_ok=True)
                elif not self.path.exists():
                    return None
                self._db = self._open()
            except (OSError, sqlite3.Error) as exc:
                log.warning("digest cache disabled (%s): %s", self.path, exc)
                self._db = None
        return self._db

    @property
    def enabled(self) -> bool:
        with self._lock:
            return self._connection() is not None

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError:
            raise  # locked, read-only, disk full: not a damaged file
        except sqlite3.DatabaseError as exc:
            # A damaged cache only costs a re-hash: set it aside and start again.
            log.warning("digest cache unreadable (%s); starting a new one", exc)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    os.replace(p, str(p) + ".broken")
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS files")
                db.execute(
                    "CREATE TABLE files (relpath TEXT PRIMARY KEY, size INTEGER NOT NULL,"
                    " mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL, sha1 TEXT NOT NULL,"
                    " head_sha1 TEXT NOT NULL, sha256 TEXT, md5 TEXT,"
                    " hashed_at_ns INTEGER NOT NULL) WITHOUT ROWID")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM files").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self) -> dict[str, FileRecord]:
        """Every row, keyed by relative path."""
        with self._lock:
            db = self._connection()
            if db is None:
                return {}
            try:
                rows = db.execute(
                    "SELECT relpath, size, mtime_ns, ino, sha1, head_sha1, sha256, md5,"
                    " hashed_at_ns FROM files").fetchall()
            except sqlite3.Error as exc:
                log.warning("digest cache unreadable: %s", exc)
                return {}
        new = tuple.__new__  # FileRecord._make without its checks: 100,000 rows per share
        return {row[0]: new(FileRecord, row) for row in rows}

    def relpaths(self) -> list[str]:
        """The relative path of every row (pending writes not included)."""
        with self._lock:
            db = self._connection()
            if db is None:
                return []
            try:
                return [row[0] for row in db.execute("SELECT relpath FROM files")]
            except sqlite3.Error as exc:
                log.warning("digest cache unreadable: %s", exc)
                return []

    def get(self, relpath: str) -> FileRecord | None:
        with self._lock:
            if relpath in self._pending:
                row = self._pending[relpath]
                return FileRecord._make(row) if row is not None else None
            db = self._connection()
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT relpath, size, mtime_ns, ino, sha1, head_sha1, sha256, md5,"
                    " hashed_at_ns FROM files WHERE relpath = ?", (relpath,)).fetchone()
            except sqlite3.Error:
                return None
        return FileRecord._make(row) if row else None

    def put(self, record: FileRecord) -> None:
        """Store a record; committed after :data:`COMMIT_ROWS` rows, :data:`COMMIT_INTERVAL_S`,
        or :meth:`flush`."""
        self._queue([(record.relpath, tuple(record))])

    def remove(self, relpaths: Iterable[str]) -> None:
        self._queue([(p, None) for p in relpaths])

    def _queue(self, changes: list[tuple[str, tuple[object, ...] | None]]) -> None:
        # Rows wait in memory and go to SQLite in one short transaction per batch: one statement
        # per row costs more than hashing a small file, and a long-open transaction would block
        # a second user of the cache.
        if not changes:
            return
        with self._lock:
            if self._connection() is None:
                return
            self._pending.update(changes)
            if (len(self._pending) >= COMMIT_ROWS
                    or time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S):
                self._commit_locked()

    def _commit_locked(self) -> None:
        pending, self._pending = self._pending, {}
        self._last_commit = time.monotonic()
        if self._db is None or not pending:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM files WHERE relpath = ?",
                                 [(p,) for p, row in pending.items() if row is None])
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 [row for row in pending.values() if row is not None])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.warning("digest cache not updated: %s", exc)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def flush(self) -> None:
        """Commit pending writes."""
        with self._lock:
            self._commit_locked()

    def close(self) -> None:
        if not self._opened:
            return
        self.flush()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
