"""``ShareIndex``: the index of one share, kept up to date cheaply while it is hosted.

``refresh()`` is a stat walk that hashes only new or changed files (in a thread pool, using the
digest cache under ``.kbucket/``); on an unchanged tree it costs one ``stat`` per file. The share
calls it every few seconds and reads ``files_by_sha1()`` (its node data, spec §2.6.1) and
``prv(relpath)`` in between, from other threads.

The first scan of a share takes what it can from the snapshot (:mod:`kbtools.index.snapshot`):
an unchanged directory of files as one block, then single files, then the SQLite rows of what the
snapshot does not know; a completed first scan writes the snapshot again when anything differed.
"""
from __future__ import annotations

import marshal
import operator
import os
import stat as statmod
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import filterfalse, repeat
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator, NamedTuple, Protocol, TypeGuard

from kbtools.errors import KbError
from kbtools.index.cache import RACY_MARGIN_NS, FileRecord, IndexCache
from kbtools.index.hashing import (EXTRA_DIGESTS, Cancelled, Digests, FileChanging,
                                   check_digest_names, hash_file)
from kbtools.index.paths import is_hidden_entry, resolve_in_share, safe_relpath
from kbtools.index.prv import make_prv, make_prvdir
from kbtools.index import snapshot as snap
from kbtools.index.walk import WalkEntry, WalkProblem, WalkResult, walk_share

#: How often a file that keeps changing while it is read is tried before it is reported.
HASH_ATTEMPTS = 3
#: Files from this size on are hashed by the thread pool, smaller ones inline.
POOL_MIN_SIZE = 256 << 10
#: Files the snapshot does not know are looked up one by one in SQLite up to this many, beyond
#: which all its rows are loaded at once.
SQLITE_GETS_MAX = 2000


class Renderer(NamedTuple):
    """Text a caller keeps in the snapshot for a whole unchanged directory: ``render(records)``
    of the directory's records (all from the cache), stored under ``key`` (which names the
    format, so that another caller or format never reads it)."""

    key: str
    render: Callable[[list[FileRecord]], str]


class CachedDir(NamedTuple):
    """All the files of one directory, unchanged since the snapshot: one item of
    :meth:`ShareIndex.scan_blocks` instead of one outcome per file."""

    #: The directory's relative path with a trailing ``/`` (``""`` for the root).
    prefix: str
    #: The file names, in walk order.
    names: list[str]
    #: The directory's snapshot entry.
    entry: list[Any]
    #: What the renderer given to the scan made of these records, when the snapshot has it.
    text: str | None

    def records(self) -> list[FileRecord]:
        return _entry_records(self.prefix, self.entry)


_stat_key = operator.attrgetter("st_size", "st_mtime_ns", "st_ino")
_stat_mode = operator.attrgetter("st_mode")
_first = operator.itemgetter(0)
_new_outcome = tuple.__new__  # FileOutcome(...) without the keyword-argument machinery


class _SnapshotRecords:
    """The snapshot's records by relative path (built per directory when first asked)."""

    def __init__(self, snapshot: snap.Snapshot) -> None:
        self.snapshot = snapshot
        self._dirs: dict[str, dict[str, FileRecord]] = {}
        self.count = sum(len(entry[snap.NAMES]) for entry in snapshot.values())

    def get(self, relpath: str, default: None = None) -> FileRecord | None:
        directory, _, name = relpath.rpartition("/")
        records = self._dirs.get(directory)
        if records is None:
            entry = self.snapshot.get(directory)
            if entry is None:
                return None
            records = self._dirs[directory] = dict(
                zip(entry[snap.NAMES], _entry_records(directory + "/" if directory else "", entry)))
        return records.get(name)

    def __contains__(self, relpath: str) -> bool:
        return self.get(relpath) is not None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        for directory, entry in self.snapshot.items():
            prefix = directory + "/" if directory else ""
            for name in entry[snap.NAMES]:
                yield prefix + name


def _entry_records(prefix: str, entry: list[Any]) -> list[FileRecord]:
    names = entry[snap.NAMES]
    if not names:
        return []
    sizes, mtimes, inos = zip(*entry[snap.KEYS])
    columns = marshal.loads(entry[snap.COLUMNS])
    # FileRecord(...) for each file without a Python-level loop: 100,000 files per share.
    return list(map(tuple.__new__, repeat(FileRecord), zip(
        [prefix + name for name in names], sizes, mtimes, inos, columns[snap.SHA1],
        columns[snap.HEAD_SHA1], columns[snap.SHA256], columns[snap.MD5],
        columns[snap.HASHED_AT])))


def _snapshot_entries(records: Iterable[FileRecord], renderer: Renderer | None,
                      texts: dict[str, dict[str, str]]) -> snap.Snapshot:
    """The snapshot of ``records`` (in walk order); ``texts`` holds renderings to keep."""
    by_dir: dict[str, list[FileRecord]] = {}
    for rec in records:
        directory = rec.relpath.rpartition("/")[0]
        group = by_dir.get(directory)
        if group is None:
            group = by_dir[directory] = []
        group.append(rec)
    out: snap.Snapshot = {}
    margin = RACY_MARGIN_NS
    for directory, recs in by_dir.items():
        whole = not any(r.hashed_at_ns - margin < r.mtime_ns <= r.hashed_at_ns + margin
                        for r in recs)
        have = tuple(n for n in EXTRA_DIGESTS if all(r.digest(n) is not None for r in recs))
        kept = texts.get(directory) or {}
        if whole and renderer is not None and renderer.key not in kept:
            kept = {**kept, renderer.key: renderer.render(recs)}
        columns = marshal.dumps([[r.sha1 for r in recs], [r.head_sha1 for r in recs],
                                 [r.sha256 for r in recs], [r.md5 for r in recs],
                                 [r.hashed_at_ns for r in recs]])
        out[directory] = [
            [r.relpath.rpartition("/")[2] for r in recs],
            [(r.size, r.mtime_ns, r.ino) for r in recs],
            whole, have, kept if whole else {}, columns]
    return out


class FileOutcome(NamedTuple):
    """What indexing one file gave: a record, or an error code and message."""

    relpath: str
    record: FileRecord | None
    from_cache: bool = False
    error_code: str | None = None
    error_message: str | None = None
    size: int = 0
    mtime_ns: int = 0


@dataclass
class IndexDelta:
    """What a refresh changed, and what it cost."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[FileOutcome] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    hashed: int = 0
    from_cache: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class Progress(Protocol):
    """Receives the amount of hashing to do, then progress: ``advance(0, nbytes)`` from hashing
    threads as blocks are read, ``advance(1, 0)`` as each file is done."""

    def start(self, files: int, nbytes: int) -> None: ...

    def advance(self, files: int, nbytes: int) -> None: ...


class _NoProgress:
    def start(self, files: int, nbytes: int) -> None:
        pass

    def advance(self, files: int, nbytes: int) -> None:
        pass


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _record_from(relpath: str, digests: Digests, st: os.stat_result, hashed_at_ns: int) -> FileRecord:
    return FileRecord(relpath, st.st_size, st.st_mtime_ns, st.st_ino, digests.sha1,
                      digests.head_sha1, digests.extra.get("sha256"), digests.extra.get("md5"),
                      hashed_at_ns)


def _has_digests(record: FileRecord, extra: tuple[str, ...]) -> bool:
    return all(record.digest(name) is not None for name in extra)


def hash_to_record(path: str | os.PathLike[str], relpath: str, extra: tuple[str, ...] = (), *,
                   cancel: threading.Event | None = None,
                   on_block: Callable[[int], None] | None = None) -> FileRecord:
    """Hash one file into a record, trying again while it changes under the read.

    Raises :class:`FileChanging` after :data:`HASH_ATTEMPTS`, ``OSError`` when it cannot be read.
    """
    for attempt in range(HASH_ATTEMPTS):
        hashed_at_ns = time.time_ns()
        try:
            digests, st = hash_file(path, extra, cancel=cancel, on_block=on_block)
        except FileChanging:
            if attempt == HASH_ATTEMPTS - 1:
                raise
            continue
        return _record_from(relpath, digests, st, hashed_at_ns)
    raise AssertionError("unreachable")


class ShareIndex:
    """The index of the share rooted at ``root`` (see the module docstring)."""

    def __init__(self, root: Path | str, *, digests: tuple[str, ...] | list[str] = (),
                 use_cache: bool = True, absolute_paths: bool = False,
                 workers: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise KbError(f"not a directory: {root}")
        self.digests = check_digest_names(tuple(digests))
        self.absolute_paths = absolute_paths
        self.workers = workers or _cpu_count()
        self._cache = IndexCache(self.root) if use_cache else None
        self._cache_rows: dict[str, FileRecord] | None = None
        self._records: dict[str, FileRecord] = {}
        #: Records of whole directories not yet put in ``_records`` (see :meth:`scan_blocks`).
        self._deferred: tuple[dict[str, FileRecord], list[tuple[int, CachedDir]]] | None = None
        self._deferred_lock = threading.Lock()
        self._dirs: list[str] = [""]
        self._refreshed = False
        self._refresh_lock = threading.Lock()
        self._by_sha1: dict[str, dict[str, Any]] | None = None
        self.last_delta: IndexDelta | None = None

    # -- reading -------------------------------------------------------------------------------
    def records(self) -> list[FileRecord]:
        """The records of the files found by the last refresh, in walk order."""
        return list(self._all().values())

    def record(self, relpath: str) -> FileRecord | None:
        return self._all().get(relpath)

    def _all(self) -> dict[str, FileRecord]:
        """``_records``, with the records of whole directories a scan deferred put in."""
        if self._deferred is not None:
            with self._deferred_lock:
                if self._deferred is not None:
                    per_file, deferred = self._deferred
                    items = list(per_file.items())
                    out: dict[str, FileRecord] = {}
                    done = 0
                    for at, item in deferred:
                        out.update(items[done:at])
                        done = at
                        recs = item.records()
                        out.update(zip([r.relpath for r in recs], recs))
                    out.update(items[done:])
                    self._records = out
                    self._deferred = None
        return self._records

    def dirs(self) -> list[str]:
        """Relative paths of the directories found by the last refresh (the root as ``""``)."""
        return list(self._dirs)

    def files_by_sha1(self) -> dict[str, dict[str, Any]]:
        """``{sha1: {"path", "size"}}``, the leaf node data of spec §2.6.1.

        Of several files with the same content, the first path in sorted order is kept. The dict
        is rebuilt only after a change; treat it as read-only.
        """
        by_sha1 = self._by_sha1
        if by_sha1 is None:
            by_sha1 = {}
            for rec in sorted(self._all().values(), key=lambda r: r.relpath, reverse=True):
                by_sha1[rec.sha1] = {"path": rec.relpath, "size": rec.size}
            self._by_sha1 = by_sha1
        return by_sha1

    def original_path(self, relpath: str) -> str:
        """What a ``.prv`` says for ``original_path`` (docs/compatibility.md)."""
        if self.absolute_paths:
            return os.path.join(os.path.abspath(self.root), *relpath.split("/"))
        return relpath

    def prv(self, relpath: str) -> dict[str, Any] | None:
        """The ``.prv`` object of an indexed file, or None (not indexed, or not a safe path)."""
        rec = self._all().get(relpath)
        return None if rec is None else self._prv_of(rec)

    def _prv_of(self, rec: FileRecord) -> dict[str, Any]:
        return make_prv(rec.sha1, rec.size, rec.head_sha1, self.original_path(rec.relpath))

    def prvdir(self) -> dict[str, Any]:
        """The ``.prvdir`` tree of the whole share."""
        return make_prvdir(self._dirs, ((r.relpath, self._prv_of(r)) for r in self.records()))

    # -- updating ------------------------------------------------------------------------------
    def refresh(self, progress: Progress | None = None) -> IndexDelta:
        """Walk the share, hash what is new or changed, and return what changed."""
        for _ in self.scan(progress):
            pass
        assert self.last_delta is not None
        return self.last_delta

    def scan(self, progress: Progress | None = None) -> Iterator[FileOutcome]:
        """Like :meth:`refresh`, yielding one outcome per file in walk order as it is ready.

        Outcomes of files that vanish while they are hashed are left out. ``last_delta`` is set
        when the iteration ends.
        """
        with self._refresh_lock:
            for item in self._scan(progress or _NoProgress(), None, False):
                if isinstance(item, CachedDir):
                    for rec in item.records():
                        yield FileOutcome(rec.relpath, rec, True)
                else:
                    yield item

    def scan_blocks(self, progress: Progress | None = None,
                    renderer: Renderer | None = None) -> Generator[FileOutcome | CachedDir, None, None]:
        """Like :meth:`scan`, but a directory unchanged since the snapshot comes as one
        :class:`CachedDir` (with ``renderer``'s text for it when the snapshot holds one).

        The records of such directories are seen by :meth:`record`, :meth:`prv` and the other
        readers when the scan ends, not while it runs (``kb-index`` needs none of them)."""
        with self._refresh_lock:
            yield from self._scan(progress or _NoProgress(), renderer, True)

    def _snapshot(self) -> snap.Snapshot | None:
        if self._refreshed or self._cache is None:
            return None
        return snap.read_snapshot(self.root)

    def _known(self) -> dict[str, FileRecord]:
        if self._refreshed:
            return self._all()
        if self._cache_rows is None:
            self._cache_rows = self._cache.load() if self._cache is not None else {}
        return self._cache_rows

    def _whole_dir(self, snapshot: snap.Snapshot,
                   renderer: Renderer | None) -> Callable[[str, str], CachedDir | None]:
        extra = self.digests
        key = renderer.key if renderer is not None else None
        lstat = os.lstat
        regular = statmod.S_IFREG
        s_ifmt = statmod.S_IFMT

        def whole_dir(dir_path: str, prefix: str) -> CachedDir | None:
            entry = snapshot.get(prefix[:-1])
            if entry is None or not entry[snap.WHOLE] or (
                    extra and not all(n in entry[snap.HAVE] for n in extra)):
                return None
            try:
                names = os.listdir(dir_path)
            except OSError:
                return None
            names = list(filterfalse(is_hidden_entry, names))
            expected = entry[snap.NAMES]
            if len(names) != len(expected):
                return None
            names.sort()
            if names != expected:
                return None
            base = dir_path + os.sep
            try:
                stats = list(map(lstat, [base + n for n in names]))
            except OSError:
                return None
            # Every entry a regular file (not a symlink, directory or FIFO) with the same stat:
            # walked entry by entry, this directory would give exactly these cached records.
            if list(map(s_ifmt, map(_stat_mode, stats))).count(regular) != len(stats):
                return None
            if list(map(_stat_key, stats)) != entry[snap.KEYS]:
                return None
            return CachedDir(prefix, expected, entry, entry[snap.TEXTS].get(key))

        return whole_dir

    def _scan(self, progress: Progress, renderer: Renderer | None,
              defer: bool) -> Iterator[FileOutcome | CachedDir]:
        return _Scan(self, progress, renderer, defer).run()

    def _put(self, pairs: Iterable[tuple[str, FileRecord]]) -> None:
        """Put changed records in the index now (``prv()`` in other threads sees them at once),
        and drop the node data built from the old ones."""
        self._records.update(pairs)
        self._by_sha1 = None

    def _finish(self, new_records: dict[str, FileRecord], known: dict[str, FileRecord],
                delta: IndexDelta, dirs: list[str]) -> None:
        delta.removed = [p for p in self._records if p not in new_records]
        self._records = new_records  # also puts them in walk order
        if delta.removed:
            self._by_sha1 = None
        if self._cache is not None and not isinstance(known, _SnapshotRecords):
            stale = [p for p in known if p not in new_records]
            self._cache.remove(stale)
        self._dirs = dirs
        self._refreshed = True
        self._cache_rows = None

    def _write_snapshot(self, old: snap.Snapshot | None, known: Any, delta: IndexDelta,
                        from_sqlite: int, renderer: Renderer | None, plan: list[Any]) -> None:
        """After a completed first scan: write the snapshot when it does not describe the share
        as found, and drop SQLite rows of files that are gone."""
        texts: dict[str, dict[str, str]] = {}
        if old is not None:
            whole_hits = [item.prefix[:-1] for item in plan if type(item) is CachedDir]
            unchanged = (not delta.hashed and not from_sqlite
                         and delta.from_cache == delta.files == len(known))
            missing_text = renderer is not None and any(
                renderer.key not in old[d][snap.TEXTS] for d in whole_hits)
            if unchanged and not missing_text:
                return
            texts = {d: old[d][snap.TEXTS] for d in whole_hits}
        assert self._cache is not None
        if not self._cache.enabled:
            return
        if old is not None:
            current = self._all()
            stale = [p for p in self._cache.relpaths() if p not in current]
            self._cache.remove(stale)
        self._cache.flush()
        try:
            snap.write_snapshot(self.root, _snapshot_entries(
                self._all().values(), renderer, texts))
        except OSError:
            pass  # only costs speed: the SQLite rows are complete

    def _hash_entry(self, entry: WalkEntry, extra: tuple[str, ...], cancel: threading.Event,
                    on_block: Callable[[int], None] | None = None) -> FileOutcome:
        path = os.path.join(self.root, *entry.relpath.split("/"))
        try:
            rec = hash_to_record(path, entry.relpath, extra, cancel=cancel, on_block=on_block)
        except FileNotFoundError:
            return _failed(entry, None, None)
        except FileChanging as exc:
            return _failed(entry, "file-changing", f"{exc}; tried {HASH_ATTEMPTS} times")
        except Cancelled:
            return _failed(entry, "cancelled", "indexing stopped")
        except OSError as exc:
            return _failed(entry, "file-unreadable", f"cannot read: {exc.strerror}")
        return FileOutcome(entry.relpath, rec, size=rec.size, mtime_ns=rec.mtime_ns)

    def close(self) -> None:
        """Commit and close the cache."""
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> "ShareIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _still_valid(rec: FileRecord | None, size: int, mtime_ns: int, ino: int,
                 extra: tuple[str, ...]) -> TypeGuard[FileRecord]:
    """True when a known record still describes a file with that stat and has its digests."""
    return (rec is not None and rec.matches(size, mtime_ns, ino)
            and (not extra or _has_digests(rec, extra)))


def _failed(entry: WalkEntry, code: str | None, message: str | None) -> FileOutcome:
    """The outcome of a file that could not be hashed (no code: it vanished)."""
    return FileOutcome(entry.relpath, None, False, code, message, entry.size, entry.mtime_ns)


class _Hashing:
    """The files of one scan to hash, taken in plan order: big ones by a thread pool, kept a
    window ahead of the reader (hashlib runs on both cores), small ones in the reader's thread,
    where they cost half as much as a round trip through a pool."""

    def __init__(self, index: ShareIndex, plan: list[Any], todo: list[int],
                 digests_for: Callable[[WalkEntry], tuple[str, ...]], progress: Progress) -> None:
        self.index = index
        self.plan = plan
        self.digests_for = digests_for
        self.on_block = partial(progress.advance, 0)
        self.pooled = [i for i in todo if plan[i].size >= POOL_MIN_SIZE]
        self.pool = (ThreadPoolExecutor(index.workers, thread_name_prefix="kb-hash")
                     if self.pooled else None)
        self.window = 4 * index.workers
        self.futures: dict[int, Future[FileOutcome]] = {}
        self.submitted = 0
        self.cancel = threading.Event()

    def submit_more(self) -> None:
        while (self.pool is not None and self.submitted < len(self.pooled)
               and len(self.futures) < self.window):
            i = self.pooled[self.submitted]
            entry = self.plan[i]
            self.futures[i] = self.pool.submit(self.index._hash_entry, entry,
                                               self.digests_for(entry), self.cancel, self.on_block)
            self.submitted += 1

    def outcome(self, i: int, entry: WalkEntry) -> FileOutcome:
        """The outcome of hashing ``entry``, the item ``i`` of the plan."""
        future = self.futures.pop(i, None)
        if future is None:
            return self.index._hash_entry(entry, self.digests_for(entry), self.cancel,
                                          self.on_block)
        outcome = future.result()
        self.submit_more()
        return outcome

    def stop(self) -> None:
        self.cancel.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _Scan:
    """One scan of a share, in steps: plan (walk the share, take what the snapshot, the last
    records or SQLite still vouch for), hash the rest, publish each record as it is ready, and
    when the scan completes, commit the index and write the snapshot."""

    def __init__(self, index: ShareIndex, progress: Progress, renderer: Renderer | None,
                 defer: bool) -> None:
        self.index = index
        self.progress = progress
        self.renderer = renderer
        self.defer = defer
        self.started = time.monotonic()
        self.delta = IndexDelta()
        self.extra = index.digests
        self.first = not index._refreshed
        self.snapshot = index._snapshot()
        self.known: Any = (_SnapshotRecords(self.snapshot) if self.snapshot is not None
                           else index._known())
        self.previous = index._all()
        self.new_records: dict[str, FileRecord] = {}
        #: Whole directories left out of ``new_records`` (see :meth:`ShareIndex.scan_blocks`),
        #: each with the number of records before it.
        self.deferred: list[tuple[int, CachedDir]] = []
        self.deferred_files = 0
        self.from_sqlite = self.from_cache = self.hashed = self.nbytes = 0

    def run(self) -> Iterator[FileOutcome | CachedDir]:
        walk = self._walk()
        plan = walk.files
        todo = self._to_hash(plan)
        self.progress.start(len(todo), sum(plan[i].size for i in todo))
        hashing = _Hashing(self.index, plan, todo, self._digests_for, self.progress)
        completed = False
        try:
            hashing.submit_more()
            for i, item in enumerate(plan):
                kind = type(item)
                if kind is CachedDir:
                    self._take_dir(item)
                    yield item
                    continue
                if kind is WalkEntry:
                    outcome = hashing.outcome(i, item)
                    self.progress.advance(1, 0)
                    rec = outcome.record
                    if rec is None:
                        if outcome.error_code is not None:  # else the file vanished
                            self.delta.errors.append(outcome)
                            yield outcome
                        continue
                    self._take_hashed(rec)
                else:
                    rec = item
                    outcome = _new_outcome(FileOutcome, (rec.relpath, rec, True, None, None, 0, 0))
                    self.from_cache += 1
                self._publish(rec)
                yield outcome
            completed = True
        finally:
            hashing.stop()
            self._end(walk, completed)

    # -- planning ------------------------------------------------------------------------------
    def _walk(self) -> WalkResult:
        """The stat walk, with every file the known records still vouch for as its record, and
        every directory the snapshot vouches for as one :class:`CachedDir`."""
        get = self.known.get
        extra = self.extra

        def lookup(relpath: str, size: int, mtime_ns: int, ino: int) -> FileRecord | None:
            rec = get(relpath)
            return rec if _still_valid(rec, size, mtime_ns, ino, extra) else None

        index = self.index
        whole_dir = (index._whole_dir(self.snapshot, self.renderer)
                     if self.snapshot is not None else None)
        walk = walk_share(index.root, lookup, whole_dir)
        self.delta.problems = walk.problems
        return walk

    def _to_hash(self, plan: list[Any]) -> list[int]:
        """Where the files to hash are in ``plan``; those SQLite still knows replaced by its
        records (the snapshot may miss files hashed by a run that did not finish, or by another
        user of the cache)."""
        todo = [i for i, item in enumerate(plan) if type(item) is WalkEntry]
        cache = self.index._cache
        if self.snapshot is None or not todo or cache is None:
            return todo
        rows = cache.load() if len(todo) > SQLITE_GETS_MAX else None
        get = rows.get if rows is not None else cache.get
        still = []
        for i in todo:
            entry = plan[i]
            rec = get(entry.relpath)
            if _still_valid(rec, entry.size, entry.mtime_ns, entry.ino, self.extra):
                plan[i] = rec
                self.from_sqlite += 1
            else:
                still.append(i)
        return still

    def _digests_for(self, entry: WalkEntry) -> tuple[str, ...]:
        """The digests to compute: those asked for, and the extra ones the old record had."""
        extra = self.extra
        old = self.known.get(entry.relpath)
        if old is None:
            return extra
        return extra + tuple(n for n in EXTRA_DIGESTS
                             if n not in extra and old.digest(n) is not None)

    # -- publishing ----------------------------------------------------------------------------
    def _take_hashed(self, rec: FileRecord) -> None:
        self.hashed += 1
        if self.index._cache is not None:
            self.index._cache.put(rec)

    def _publish(self, rec: FileRecord) -> None:
        """Make ``rec`` the file's record for this scan, and count what changed."""
        relpath = rec.relpath
        self.new_records[relpath] = rec
        self.nbytes += rec.size
        old = self.previous.get(relpath)
        if old is rec:
            return
        if old is None:
            self.delta.added.append(relpath)
        elif old.sha1 != rec.sha1 or old.size != rec.size:
            self.delta.changed.append(relpath)
        if old != rec:
            self.index._put(((relpath, rec),))

    def _take_dir(self, item: CachedDir) -> None:
        """Publish a whole directory unchanged since the snapshot: on a first scan, all at
        once, or not at all until the index is read (``defer``)."""
        if self.previous:
            for rec in item.records():
                self._publish(rec)
            self.from_cache += len(item.names)
            return
        paths = [item.prefix + name for name in item.names]
        self.delta.added.extend(paths)
        self.from_cache += len(paths)
        self.nbytes += sum(map(_first, item.entry[snap.KEYS]))
        if self.defer:
            self.deferred.append((len(self.new_records), item))
            self.deferred_files += len(paths)
            return
        pairs = list(zip(paths, item.records()))
        self.new_records.update(pairs)
        self.index._put(pairs)

    # -- the end -------------------------------------------------------------------------------
    def _end(self, walk: WalkResult, completed: bool) -> None:
        """Whether the scan completed or stopped: count it in ``last_delta`` and flush the
        cache; a completed one also becomes the index."""
        delta = self.delta
        delta.from_cache, delta.hashed = self.from_cache, self.hashed
        delta.files, delta.bytes = len(self.new_records) + self.deferred_files, self.nbytes
        if completed:
            self._commit(walk)
        cache = self.index._cache
        if cache is not None:
            cache.flush()
        delta.seconds = time.monotonic() - self.started
        self.index.last_delta = delta

    def _commit(self, walk: WalkResult) -> None:
        index = self.index
        index._finish(self.new_records, self.known, self.delta, walk.dirs)
        if self.deferred:
            index._deferred = (self.new_records, self.deferred)
        if self.first and index._cache is not None:
            index._write_snapshot(self.snapshot, self.known, self.delta, self.from_sqlite,
                                  self.renderer, walk.files)


def file_record(root: Path, relpath: str, digests: tuple[str, ...] = ()) -> FileRecord:
    """The record of one file of a share: from the share's cache when it is fresh, else hashed
    (and then stored in the cache, if the share has one).

    Raises :class:`~kbtools.index.paths.UnsafePath`, ``OSError`` or :class:`FileChanging`.
    """
    extra = check_digest_names(tuple(digests))
    safe_relpath(relpath)
    path = resolve_in_share(root, relpath)
    st = os.stat(path)
    cache = IndexCache(root, create=False)
    try:
        rec = cache.get(relpath)
        if _still_valid(rec, st.st_size, st.st_mtime_ns, st.st_ino, extra):
            return rec
        rec = hash_to_record(path, relpath, extra)
        cache.put(rec)
        return rec
    finally:
        cache.close()
