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
from itertools import filterfalse, repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol

from kbtools.errors import KbError
from kbtools.index.cache import RACY_MARGIN_NS, FileRecord, IndexCache
from kbtools.index.hashing import (EXTRA_DIGESTS, Cancelled, Digests, FileChanging,
                                   check_digest_names, hash_file)
from kbtools.index.paths import is_hidden_entry, resolve_in_share, safe_relpath
from kbtools.index.prv import make_prv, make_prvdir
from kbtools.index import snapshot as snap
from kbtools.index.walk import WalkEntry, WalkProblem, walk_share

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


def hash_to_record(path: str | os.PathLike, relpath: str, extra: tuple[str, ...] = (), *,
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
                        out.update(zip([r[0] for r in recs], recs))
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
        if rec is None:
            return None
        return make_prv(rec.sha1, rec.size, rec.head_sha1, self.original_path(relpath))

    def prvdir(self) -> dict[str, Any]:
        """The ``.prvdir`` tree of the whole share."""
        return make_prvdir(self._dirs, ((r.relpath, self.prv(r.relpath)) for r in self.records()))

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
                if type(item) is CachedDir:
                    for rec in item.records():
                        yield FileOutcome(rec.relpath, rec, True)
                else:
                    yield item

    def scan_blocks(self, progress: Progress | None = None,
                    renderer: Renderer | None = None) -> Iterator[FileOutcome | CachedDir]:
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
        started = time.monotonic()
        delta = IndexDelta()
        snapshot = self._snapshot()
        first = not self._refreshed
        if snapshot is not None:
            known: Any = _SnapshotRecords(snapshot)
        else:
            known = self._known()
        previous = self._all()
        deferred: list[tuple[int, CachedDir]] = []
        deferred_files = 0
        extra = self.digests
        get = known.get
        margin = RACY_MARGIN_NS

        def lookup(relpath: str, size: int, mtime_ns: int, ino: int) -> FileRecord | None:
            rec = get(relpath)
            # FileRecord.matches, inlined: this runs once per file on every refresh.
            if (rec is not None and rec[1] == size and rec[2] == mtime_ns and rec[3] == ino
                    and not (rec[8] - margin < mtime_ns <= rec[8] + margin)  # is_racy, inlined
                    and (not extra or _has_digests(rec, extra))):
                return rec
            return None

        whole_dir = self._whole_dir(snapshot, renderer) if snapshot is not None else None
        walk = walk_share(self.root, lookup, whole_dir)
        delta.problems = walk.problems
        # FileRecord (unchanged), CachedDir (a directory unchanged) or WalkEntry (to hash),
        # in walk order.
        plan = walk.files
        todo = [i for i, item in enumerate(plan) if type(item) is WalkEntry]
        from_sqlite = 0
        if snapshot is not None and todo and self._cache is not None:
            # What the snapshot does not know may be in SQLite (hashed by a run that did not
            # finish, or by another user of the cache).
            rows: Any = self._cache.load() if len(todo) > SQLITE_GETS_MAX else None
            still = []
            for i in todo:
                entry = plan[i]
                relpath = entry.relpath
                rec = rows.get(relpath) if rows is not None else self._cache.get(relpath)
                if rec is not None and rec.matches(entry.size, entry.mtime_ns, entry.ino) \
                        and (not extra or _has_digests(rec, extra)):
                    plan[i] = rec
                    from_sqlite += 1
                else:
                    still.append(i)
            todo = still
        todo_bytes = sum(plan[i].size for i in todo)
        progress.start(len(todo), todo_bytes)
        # Big files go to the pool (hashlib runs on both cores); small ones are hashed in this
        # thread, where they cost half as much as a round trip through a pool.
        todo = [i for i in todo if plan[i].size >= POOL_MIN_SIZE]

        new_records: dict[str, FileRecord] = {}
        cancel = threading.Event()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kb-hash") if todo else None
        futures: dict[int, Future[FileOutcome]] = {}
        window = 4 * self.workers
        next_todo = 0
        completed = False

        def on_block(nbytes: int) -> None:
            progress.advance(0, nbytes)

        def submit_more() -> None:
            nonlocal next_todo
            while pool is not None and next_todo < len(todo) and len(futures) < window:
                i = todo[next_todo]
                entry = plan[i]
                futures[i] = pool.submit(self._hash_entry, entry, wanted(entry), cancel, on_block)
                next_todo += 1

        def wanted(entry: WalkEntry) -> tuple[str, ...]:
            old = known.get(entry.relpath)
            if old is None:
                return extra
            # Keep the extra digests the old record had.
            return extra + tuple(n for n in EXTRA_DIGESTS
                                 if n not in extra and old.digest(n) is not None)

        records = self._records
        from_cache = hashed = nbytes = 0
        new_outcome = tuple.__new__  # FileOutcome(...) without the keyword-argument machinery
        try:
            submit_more()
            for i, item in enumerate(plan):
                if type(item) is CachedDir:
                    from_cache += len(item.names)
                    nbytes += sum(map(_first, item.entry[snap.KEYS]))
                    if defer and not previous:
                        deferred.append((len(new_records), item))
                        deferred_files += len(item.names)
                        delta.added.extend([item.prefix + name for name in item.names])
                        yield item
                        continue
                    recs = item.records()
                    if previous:
                        for rec in recs:
                            relpath = rec[0]
                            new_records[relpath] = rec
                            old = previous.get(relpath)
                            if old is None:
                                delta.added.append(relpath)
                            elif old.sha1 != rec.sha1 or old.size != rec.size:
                                delta.changed.append(relpath)
                            if old != rec:
                                records[relpath] = rec
                                self._by_sha1 = None
                    else:
                        pairs = list(zip([r[0] for r in recs], recs))
                        new_records.update(pairs)
                        records.update(pairs)
                        delta.added.extend(p for p, _ in pairs)
                        self._by_sha1 = None
                    yield item
                    continue
                relpath = item[0]
                if type(item) is not WalkEntry:
                    rec = item
                    outcome = new_outcome(FileOutcome, (relpath, rec, True, None, None, 0, 0))
                    from_cache += 1
                else:
                    future = futures.pop(i, None)
                    if future is None:
                        outcome = self._hash_entry(item, wanted(item), cancel, on_block)
                    else:
                        outcome = future.result()
                        submit_more()
                    progress.advance(1, 0)
                    rec = outcome.record
                    if rec is None:
                        if outcome.error_code is not None:
                            delta.errors.append(outcome)
                            yield outcome
                        continue  # or vanished
                    hashed += 1
                    if self._cache is not None:
                        self._cache.put(rec)
                new_records[relpath] = rec
                nbytes += rec[1]
                old = previous.get(relpath)
                if old is not rec:
                    if old is None:
                        delta.added.append(relpath)
                    elif old.sha1 != rec.sha1 or old.size != rec.size:
                        delta.changed.append(relpath)
                    if old != rec:
                        records[relpath] = rec  # visible at once to prv() in other threads
                        self._by_sha1 = None
                yield outcome
            completed = True
        finally:
            delta.from_cache, delta.hashed = from_cache, hashed
            delta.files, delta.bytes = len(new_records) + deferred_files, nbytes
            cancel.set()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if completed:
                self._finish(new_records, known, delta, walk.dirs)
                if deferred:
                    self._deferred = (new_records, deferred)
                if first and self._cache is not None:
                    self._write_snapshot(snapshot, new_records, known, delta, from_sqlite,
                                         renderer, plan)
            if self._cache is not None:
                self._cache.flush()
            delta.seconds = time.monotonic() - started
            self.last_delta = delta

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

    def _write_snapshot(self, old: snap.Snapshot | None, new_records: dict[str, FileRecord],
                        known: Any, delta: IndexDelta, from_sqlite: int,
                        renderer: Renderer | None, plan: list[Any]) -> None:
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
        base = dict(size=entry.size, mtime_ns=entry.mtime_ns)
        try:
            rec = hash_to_record(path, entry.relpath, extra, cancel=cancel, on_block=on_block)
        except FileNotFoundError:
            return FileOutcome(entry.relpath, None, **base)
        except FileChanging as exc:
            return FileOutcome(entry.relpath, None, error_code="file-changing",
                               error_message=f"{exc}; tried {HASH_ATTEMPTS} times", **base)
        except Cancelled:
            return FileOutcome(entry.relpath, None, error_code="cancelled",
                               error_message="indexing stopped", **base)
        except OSError as exc:
            return FileOutcome(entry.relpath, None, error_code="file-unreadable",
                               error_message=f"cannot read: {exc.strerror}", **base)
        return FileOutcome(entry.relpath, rec, size=rec.size, mtime_ns=rec.mtime_ns)

    def close(self) -> None:
        """Commit and close the cache."""
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> "ShareIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        if rec is not None and rec.matches(st.st_size, st.st_mtime_ns, st.st_ino) \
                and _has_digests(rec, extra):
            return rec
        rec = hash_to_record(path, relpath, extra)
        cache.put(rec)
        return rec
    finally:
        cache.close()
