"""Verified, resumable, parallel downloads by bounded HTTP Range requests.

The file is written into ``<target>.part`` (pre-sized, written in place). The chunks that are on disk
are listed in ``<target>.part.json``, rewritten atomically after each chunk, so a download killed at
any moment resumes without fetching those chunks again. A prefix hasher follows the chunks in order
while the download runs, so the SHA-1 is ready when the last byte lands. Only a file whose size and
SHA-1 match takes the target name (``os.replace``). On a mismatch the chunks kept from an earlier run
are fetched again first; then the file is fetched from the URLs not used yet; when none is left the
download fails and nothing stays at the target.

The URLs are tried in order (direct share first, then hubs): each is probed with HEAD when first
needed; a URL that refuses, answers an error or keeps failing is dropped for the next one.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests

from kbtools.atomic import write_atomic

from . import tls
from .errors import ClientError, PeerError, VerificationError
from .resolve import describe

MiB = 1024 * 1024
MIN_CHUNK = 1 * MiB
MAX_CHUNK = 64 * MiB
READ_BLOCK = 1 * MiB  # bytes asked of the socket at once (few system calls and Python steps)
# Bytes per pwrite. Measured on a 2-core VM, 1 GiB written right after curl had written (and the
# benchmark deleted) another: in 1 MiB pieces 1.3-2.6 s of system time, in 64 KiB pieces 0.5-0.6 s;
# 256 KiB was as slow as 1 MiB, 32 and 128 KiB as fast as 64 KiB. The time went into the copy to
# the page cache. Likely cause: the page cache sizes its folios after the write, large folios come
# from high-order free memory, and a VM that reports freed memory to its host (virtio-balloon free
# page reporting, as there) must fault such memory in again page by page on first touch.
WRITE_BLOCK = 64 * 1024
HASH_BLOCK = 4 * MiB
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
STATE_VERSION = 1


@dataclass
class DownloadOptions:
    # Two requests of 64 MiB in flight: on loopback through a hub, four of 16 MiB cost the share
    # 50% more CPU and the download 20-30% more time, two of 32 MiB about 10% more (each request
    # through a hub costs the share a round of its own); directly from a share it makes little odds.
    chunk_size: int = 64 * MiB  # bytes per Range request (clamped to 1-64 MiB)
    parallel: int = 2  # Range requests in flight
    attempts: int = 4  # consecutive failures before a URL is dropped
    backoff: float = 0.2  # first pause after a failure (doubles, at most 5 s)
    timeout: tuple[float, float] = (5.0, 60.0)  # (connect, read) seconds
    probe_timeout: tuple[float, float] = (2.0, 10.0)


@dataclass
class DownloadResult:
    path: Path
    size: int
    sha1: str
    bytes_fetched: int  # over the network in this run
    bytes_resumed: int  # found on disk from an earlier run
    urls_used: list[str] = field(default_factory=list)
    bytes_by_url: dict[str, int] = field(default_factory=dict)  # bytes fetched in this run, per URL

    @property
    def source(self) -> str | None:
        """The URL that served the file (the one that served the most bytes in this run; the
        first URL used when everything was already on disk)."""
        if any(self.bytes_by_url.values()):
            return max(self.bytes_by_url, key=lambda url: self.bytes_by_url[url])
        return self.urls_used[0] if self.urls_used else None


class Stopped(ClientError):
    """The download was asked to stop; the partial file stays for a later resume."""


class _RangeFailure(Exception):
    def __init__(self, position: int, reason: str, fatal: bool) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason
        self.fatal = fatal


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def state_path(target: Path) -> Path:
    return target.with_name(target.name + ".part.json")


class PartState:
    """The sidecar of a ``.part`` file: which chunks hold the right bytes."""

    def __init__(self, target: Path, sha1: str, size: int, chunk_size: int) -> None:
        self.path = state_path(target)
        self.sha1, self.size, self.chunk_size = sha1, size, chunk_size
        self.done: set[int] = set()
        self.lock = threading.Lock()
        # A file of one chunk has nothing to resume from: no sidecar (three file operations less).
        self.persist = chunk_count(size, chunk_size) > 1

    def load(self, part_size: int) -> None:
        """Adopt a matching sidecar (same sha1 and size, a .part of the right size); else start empty."""
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION \
                or saved.get("sha1") != self.sha1 or saved.get("size") != self.size \
                or part_size != self.size:
            return
        chunk_size = saved.get("chunk_size")
        done = saved.get("done")
        if not isinstance(chunk_size, int) or not MIN_CHUNK <= chunk_size <= MAX_CHUNK \
                or not isinstance(done, list):
            return
        count = chunk_count(self.size, chunk_size)
        self.chunk_size = chunk_size
        self.persist = count > 1
        self.done = {i for i in done if isinstance(i, int) and 0 <= i < count}

    def save(self) -> None:
        if not self.persist:
            return
        with self.lock:
            payload = {"version": STATE_VERSION, "sha1": self.sha1, "size": self.size,
                       "chunk_size": self.chunk_size, "done": sorted(self.done)}
            write_atomic(self.path, json.dumps(payload))

    def mark(self, index: int) -> None:
        with self.lock:
            self.done.add(index)
        self.save()

    def remove(self) -> None:
        if not self.persist and not self.path.exists():
            return
        for path in (self.path, self.path.with_name(self.path.name + ".tmp")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def chunk_count(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class HostHealth:
    """What the downloads of one run learnt about each host (scheme://host:port).

    A host that answered a probe is not probed again; one that refused or timed out is not tried
    again: a directory of many files through an unreachable share then costs one timeout, not one
    per file.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.alive: set[str] = set()
        self.dead: dict[str, str] = {}
        self.probe_locks: dict[str, threading.Lock] = {}

    def probing(self, url: str) -> threading.Lock:
        with self.lock:
            return self.probe_locks.setdefault(origin_of(url), threading.Lock())

    def is_dead(self, url: str) -> str:
        with self.lock:
            return self.dead.get(origin_of(url), "")

    def is_alive(self, url: str) -> bool:
        with self.lock:
            return origin_of(url) in self.alive

    def record(self, url: str, reason: str) -> None:
        """After a probe: '' when the host answered, else why it could not be reached."""
        with self.lock:
            if reason:
                self.dead.setdefault(origin_of(url), reason)
            else:
                self.alive.add(origin_of(url))


#: Probe failures that say the host is out of reach (rather than this one URL being wrong).
UNREACHABLE = ("connection refused", "timed out", "unknown host", "connection reset", "connection aborted")


class Sources:
    """The download URLs in order of preference, each dropped after it fails for good."""

    def __init__(self, urls: list[str], size: int | None, options: DownloadOptions,
                 session: requests.Session, health: HostHealth | None = None,
                 on_url: Callable[[str], None] | None = None) -> None:
        self.urls = list(urls)
        self.on_url = on_url  # told each URL when it starts serving
        self.size = size
        self.options = options
        self.session = session
        self.health = health or HostHealth()
        self.lock = threading.Lock()
        self.dead: dict[str, str] = {}
        self.probed: set[str] = set()
        self.failures: dict[str, int] = {}
        self.used: list[str] = []

    def current(self) -> str:
        """The first URL still alive, probed once with HEAD; :class:`PeerError` when none is left."""
        with self.lock:
            for url in self.urls:
                if url in self.dead:
                    continue
                if url not in self.probed:
                    # A host known to answer needs no probe when the size is known: the first
                    # Range answer (status, Content-Range total) checks the same things.
                    with self.health.probing(url):  # one probe per host, even from parallel files
                        reason = self.health.is_dead(url) or (
                            "" if self.size is not None and self.health.is_alive(url) else self._probe(url))
                    if reason:
                        self.dead[url] = reason
                        continue
                    self.probed.add(url)
                if url not in self.used:
                    self.used.append(url)
                    if self.on_url is not None:
                        self.on_url(url)
                return url
            raise PeerError(self.summary())

    def summary(self) -> str:
        reasons = "; ".join(f"{url}: {why}" for url, why in self.dead.items())
        return f"no download URL works ({reasons})" if reasons else "no download URL to try"

    def _probe(self, url: str) -> str:
        """'' when ``url`` answers HEAD with 200 (and the expected length), else the reason."""
        try:
            response = self.session.head(url, timeout=self.options.probe_timeout,
                                         headers={"Accept-Encoding": "identity"}, allow_redirects=True)
        except requests.RequestException as exc:
            reason = describe(exc)
            if reason in UNREACHABLE:
                self.health.record(url, reason)
            return reason
        self.health.record(url, "")
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            if self.size is None:
                self.size = int(length)
            elif int(length) != self.size:
                return f"serves {length} bytes, expected {self.size}"
        return ""

    def failed(self, url: str, reason: str, fatal: bool) -> None:
        with self.lock:
            count = self.failures.get(url, 0) + 1
            self.failures[url] = count
            if fatal or count >= self.options.attempts:
                self.dead.setdefault(url, reason)

    def succeeded(self, url: str) -> None:
        with self.lock:
            self.failures[url] = 0


class PrefixHasher:
    """The SHA-1 of the longest prefix of the file written so far.

    A worker writing right at the end of that prefix hashes its bytes at once, while they are still
    in the CPU cache; bytes written ahead of it (by the other workers) are hashed later, straight
    from the page cache through a read-only mapping of the file (no copy).
    """

    def __init__(self, fd: int, size: int) -> None:
        self.offset = 0
        self.sha1 = hashlib.sha1()
        self.lock = threading.Lock()
        self.fd = fd
        self.map: mmap.mmap | None = None
        try:
            self.map = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            self.view = memoryview(self.map)
        except (OSError, ValueError):  # a file system without mmap: read the bytes back instead
            self.view = memoryview(bytearray(HASH_BLOCK))

    def feed(self, position: int, data: memoryview) -> None:
        if position != self.offset:  # cheap test first: most writes are not at the frontier
            return
        with self.lock:
            if position == self.offset:
                self.sha1.update(data)
                self.offset += len(data)

    def catch_up(self, limit: int) -> bool:
        """Hash up to one block of the file below ``limit``; False when there was nothing to do."""
        with self.lock:
            if self.offset >= limit:
                return False
            end = min(self.offset + HASH_BLOCK, limit)
            if self.map is not None:
                self.sha1.update(self.view[self.offset: end])
            else:
                count = os.preadv(self.fd, [self.view[: end - self.offset]], self.offset)
                if count <= 0:
                    raise ClientError("the partial file was truncated while downloading")
                self.sha1.update(self.view[:count])
                end = self.offset + count
            self.offset = end
            return True

    def hexdigest(self) -> str:
        return self.sha1.hexdigest()

    def close(self) -> None:
        self.view.release()
        if self.map is not None:
            self.map.close()


@dataclass
class _Round:
    """What the workers of one round share. A worker still blocked in a read when its round is
    over keeps its own round (set ``abort``) and so can never write into a later one."""

    abort: threading.Event
    hasher: PrefixHasher
    written: list[int]  # per chunk, the end of the bytes written so far


_thread_sessions = threading.local()

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Download:
    """One file: ``urls`` -> verified ``target`` (see the module docstring)."""

    def __init__(self, urls: list[str], target: str | os.PathLike[str], sha1: str, size: int | None,
                 options: DownloadOptions | None = None,
                 progress: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None, health: HostHealth | None = None,
                 on_url: Callable[[str], None] | None = None) -> None:
        if not urls:
            raise PeerError("no download URL to try")
        self.urls = list(urls)
        self.target = Path(target)
        self.sha1 = sha1.lower()
        self.size = size
        self.options = options or DownloadOptions()
        self.progress = progress or (lambda count: None)
        self.stop = stop or threading.Event()
        self.health = health or HostHealth()
        self.on_url = on_url
        self.fetched = 0
        self.fetched_by_url: dict[str, int] = {}
        self.fetched_lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.state: PartState | None = None

    # -- public ----------------------------------------------------------------------------------
    def run(self) -> DownloadResult:
        part = part_path(self.target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ClientError(f"cannot write {part}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClientError(f"{self.target} is being downloaded by another process") from None
            try:
                return self._run_locked(fd, part)
            except BaseException:
                self._discard_if_empty(part)
                raise
        finally:
            os.close(fd)

    def _discard_if_empty(self, part: Path) -> None:
        """A failed download that kept no chunk leaves nothing behind (a resume would gain nothing)."""
        state = self.state
        if state is not None and state.done:
            return
        for path in (part, state_path(self.target)):
            try:
                path.unlink()
            except OSError:
                pass

    # -- rounds ------------------------------------------------------------------------------------
    def _run_locked(self, fd: int, part: Path) -> DownloadResult:
        remaining = list(self.urls)
        used_all: list[str] = []
        sources = Sources(remaining, self.size, self.options, self.session(), self.health, self.on_url)
        if self.size is None:
            sources.current()  # the first probe learns the size from Content-Length
            self.size = sources.size
            if self.size is None:
                raise PeerError(f"{sources.urls[0]} does not tell the file size")
        size = self.size
        chunk_size = min(max(self.options.chunk_size, MIN_CHUNK), MAX_CHUNK)
        state = self.state = PartState(self.target, self.sha1, size, chunk_size)
        state.load(os.fstat(fd).st_size)
        resumed = set(state.done)
        resumed_bytes = sum(end - start for start, end in map(lambda i: self._chunk_span(i, state), resumed))
        if resumed_bytes:
            self.progress(resumed_bytes)
        while True:
            if not state.done and os.fstat(fd).st_size:
                # Stale bytes of another file must not survive in holes. (Only then: ext4 flushes
                # a file truncated to zero when it is closed, which would cost seconds per GiB.)
                os.ftruncate(fd, 0)
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            state.save()
            digest = self._round(fd, state, sources)
            used_all += [u for u in sources.used if u not in used_all]
            if digest == self.sha1:
                os.replace(part, self.target)
                state.remove()
                return DownloadResult(self.target, size, self.sha1, self.fetched, resumed_bytes, used_all,
                                      dict(self.fetched_by_url))
            if resumed:
                # The bytes kept from an earlier run are the first suspects: fetch them again.
                with state.lock:
                    state.done -= resumed
                resumed = set()
                continue
            remaining = [u for u in remaining if u not in sources.used]
            if not remaining:
                state.remove()
                part.unlink(missing_ok=True)
                raise VerificationError(
                    f"SHA-1 mismatch: {', '.join(used_all)} served {size} bytes with SHA-1 {digest},"
                    f" expected {self.sha1}; nothing was kept"
                )
            with state.lock:
                state.done = set()
            with self.fetched_lock:
                self.fetched_by_url.clear()  # the bytes that count are those of the next round
            sources = Sources(remaining, size, self.options, self.session(), self.health, self.on_url)

    def _chunk_span(self, index: int, state: PartState) -> tuple[int, int]:
        start = index * state.chunk_size
        return start, min(start + state.chunk_size, state.size)

    def _round(self, fd: int, state: PartState, sources: Sources) -> str:
        """Fetch every chunk not done yet while hashing the prefix; the SHA-1 of the whole."""
        count = chunk_count(state.size, state.chunk_size)
        if count == 0:
            return EMPTY_SHA1
        pending = [i for i in range(count) if i not in state.done]
        pending.reverse()  # pop() hands out chunks in file order, so the hasher keeps up
        ready = threading.Condition()
        errors: list[BaseException] = []
        # Per chunk, the end of the bytes written so far (all of it for chunks done earlier).
        written = [self._chunk_span(i, state)[1 if i in state.done else 0] for i in range(count)]
        rnd = _Round(threading.Event(), PrefixHasher(fd, state.size), written)
        hasher = rnd.hasher

        def work() -> None:
            while not (self.stop.is_set() or rnd.abort.is_set()):
                with ready:
                    if not pending or errors:
                        return
                    index = pending.pop()
                try:
                    self._fetch_chunk(fd, index, state, sources, rnd)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    with ready:
                        errors.append(exc)
                        rnd.abort.set()
                        ready.notify_all()
                    return
                state.mark(index)
                with ready:
                    ready.notify_all()

        workers = [threading.Thread(target=work, daemon=True, name=f"kb-get-{n}")
                   for n in range(max(1, min(self.options.parallel, len(pending))))]
        for worker in workers:
            worker.start()
        try:
            while hasher.offset < state.size:
                if errors:
                    break
                if self.stop.is_set():
                    raise Stopped(f"stopped; {part_path(self.target)} is kept for a resume")
                limit = written[hasher.offset // state.chunk_size]
                if not hasher.catch_up(limit):
                    with ready:
                        ready.wait(0.05)  # a worker hashes what it writes at the frontier meanwhile
        except BaseException:
            rnd.abort.set()
            raise
        finally:
            halted = self.stop.is_set() or rnd.abort.is_set()
            for worker in workers:
                # A worker blocked on a dead socket must not hold up Ctrl-C: it is a daemon.
                worker.join(timeout=5.0 if halted else None)
            rnd.abort.set()  # whatever is still running must not write any more
            if not any(worker.is_alive() for worker in workers):
                hasher.close()  # (a daemon still blocked in a read may yet feed it)
        if errors:
            error = errors[0]
            if isinstance(error, ClientError):
                raise error
            raise PeerError(f"download failed: {error}") from error
        return hasher.hexdigest()

    # -- one chunk ---------------------------------------------------------------------------------
    @staticmethod
    def session() -> requests.Session:
        """This thread's session: its kept-alive connections serve the next chunks and files."""
        session = getattr(_thread_sessions, "session", None)
        if session is None:
            session = _thread_sessions.session = tls.session()
        return session

    def _fetch_chunk(self, fd: int, index: int, state: PartState, sources: Sources, rnd: _Round) -> None:
        position, end = self._chunk_span(index, state)
        delay = self.options.backoff
        while position < end:
            if self.stop.is_set() or rnd.abort.is_set():
                raise Stopped("stopped")
            url = sources.current()
            try:
                position = self._fetch_range(fd, url, index, position, end, state.size, rnd)
                sources.succeeded(url)
            except _RangeFailure as failure:
                progress_made = failure.position > position
                position = failure.position
                sources.failed(url, failure.reason, failure.fatal)
                if progress_made:
                    delay = self.options.backoff
                elif not failure.fatal:
                    rnd.abort.wait(delay)
                    delay = min(delay * 2, 5.0)

    def _write(self, fd: int, data: memoryview, position: int) -> None:
        """``data`` at ``position`` of the .part, in WRITE_BLOCK pieces, one worker at a time: the
        kernel serializes buffered writes to one file anyway, with the waiting writers spinning
        on the inode lock (18% of the CPU time of a 1 GiB download with four workers)."""
        done = 0
        with self.write_lock:
            while done < len(data):
                written = os.pwrite(fd, data[done: done + WRITE_BLOCK], position + done)
                if written <= 0:
                    raise OSError(errno.EIO, "nothing written")
                done += written

    def _fetch_range(self, fd: int, url: str, index: int, position: int, end: int, size: int,
                     rnd: _Round) -> int:
        headers = {"Range": f"bytes={position}-{end - 1}", "Accept-Encoding": "identity"}
        try:
            response = self.session().get(url, headers=headers, stream=True, timeout=self.options.timeout)
        except requests.RequestException as exc:
            reason = describe(exc)
            raise _RangeFailure(position, reason, fatal=reason == "connection refused") from None
        with response:
            status = response.status_code
            if status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match[1]) != position or int(match[2]) != end - 1 \
                        or (match[3] != "*" and int(match[3]) != size):
                    raise _RangeFailure(position, "answered another byte range "
                                        f"({response.headers.get('Content-Range')})", fatal=True)
            elif status == 200 and position == 0 and end == size:
                pass  # the whole file was asked for
            elif status == 416:
                raise _RangeFailure(position, f"HTTP 416: the file there is not {size} bytes", fatal=True)
            elif status >= 500:
                raise _RangeFailure(position, f"HTTP {status}", fatal=False)
            else:
                raise _RangeFailure(position, f"HTTP {status}", fatal=True)
            read_into = body_reader(response)
            buffer = bytearray(READ_BLOCK)
            view = memoryview(buffer)
            while position < end:
                try:
                    count = read_into(view[: min(READ_BLOCK, end - position)])
                except Exception as exc:  # urllib3, socket and requests errors alike: retry
                    raise _RangeFailure(position, describe(exc), fatal=False) from None
                if not count:
                    break
                data = view[:count]
                if self.stop.is_set() or rnd.abort.is_set():  # checked after the read, which may block
                    raise Stopped("stopped")
                try:
                    self._write(fd, data, position)
                except OSError as exc:
                    raise ClientError(f"cannot write {part_path(self.target)}: {exc.strerror}") from None
                rnd.hasher.feed(position, data)
                position += count
                rnd.written[index] = position
                with self.fetched_lock:
                    self.fetched += count
                    self.fetched_by_url[url] = self.fetched_by_url.get(url, 0) + count
                self.progress(count)
            if position < end:
                raise _RangeFailure(position, "connection closed mid-transfer", fatal=False)
        return position


def body_reader(response: requests.Response) -> Callable[[memoryview], int]:
    """``readinto`` for the body of a streamed response.

    The http.client response under urllib3 reads straight into our buffer; urllib3's own ``read``
    returns a new bytes object per call (one more copy of every byte). It is used only for an
    identity-encoded body, and urllib3's ``read`` remains the fallback.
    """
    raw = response.raw
    inner = getattr(raw, "_fp", None)
    if inner is not None and callable(getattr(inner, "readinto", None)) \
            and response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity"):
        readinto: Callable[[memoryview], int] = inner.readinto
        return readinto

    def read_into(view: memoryview) -> int:
        data = raw.read(len(view))
        view[: len(data)] = data
        return len(data)
    return read_into


def download(urls: list[str], target: str | os.PathLike[str], sha1: str, size: int | None,
             options: DownloadOptions | None = None,
             progress: Callable[[int], None] | None = None,
             stop: threading.Event | None = None, health: HostHealth | None = None,
             on_url: Callable[[str], None] | None = None) -> DownloadResult:
    """Download ``sha1`` from the first working URL of ``urls`` into ``target``, verified.
    ``on_url`` is told each URL when it starts serving bytes (the first, then any fallback)."""
    return Download(urls, target, sha1, size, options, progress, stop, health, on_url).run()
