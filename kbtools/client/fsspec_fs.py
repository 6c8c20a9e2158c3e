"""``kbucket://`` and ``sha1://`` as fsspec file systems: read in place, by Range, verified when whole.

With kbtools installed (and fsspec, ``pip install 'kbtools[fsspec]'``), fsspec finds these classes
through the ``fsspec.specs`` entry point, so every library that opens files through fsspec (pandas,
xarray, zarr, dask, h5py through file objects, SpikeInterface) reads KBucket URLs::

    import fsspec, pandas
    with fsspec.open("kbucket://NODEID/dataset1/raw.mda", hub="http://HUB:3240") as f:
        f.seek(1000); f.read(64)                     # one Range request
    pandas.read_csv("kbucket://NODEID/dataset1/geom.csv", header=None)   # hub from $KBUCKET_URL

The hub is the storage option ``hub``, else ``$KBUCKET_URL``. Files are found the way kb-get finds
them (:class:`kbtools.client.Resolver`): the share directly first, then each hub above it; a URL that
refuses or misbehaves is dropped for the next one.

Integrity: a file read whole (``cat_file``, ``get_file``, or an open file read from its start to its
end) is checked against its SHA-1, and a wrong byte raises :class:`IntegrityError` instead of giving
data (the last read of the file raises, before it returns). A byte range read alone cannot be
checked (KBucket publishes one SHA-1 per file); each answer is checked against the range asked
(``Content-Range``) and the file's size.

Local cache: kb-get's SHA-1 cache (:class:`kbtools.client.Sha1Cache`) is shared, never copied. The
storage option ``local_cache`` says how:

- ``"reuse"`` (default): a file already in the cache is read from there, nothing is written;
- ``"fill"``: opening a file first downloads it whole into the cache (kb-get's parallel, resumable,
  verified download), then reads it from the disk; the next open costs no network;
- ``"off"`` (or ``$KBUCKET_NO_CACHE=1``): never touch the cache.

``get_file`` (``fs.get``) is kb-get itself: a verified copy, from the cache when it holds the file.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import grants, tls
from .cache import Sha1Cache, cache_disabled
from .download import body_reader
from .errors import BadUrl, ClientError, NotFound, PeerError, VerificationError
from .fetch import fetch_file
from .resolve import Entry, Resolution, Resolver, describe
from .urls import configured_hub, kbucket_url

MiB = 1024 * 1024
#: Bytes read ahead of each read of an open file (fsspec's "readahead" cache keeps one such block).
DEFAULT_BLOCK_SIZE = 8 * MiB
LOCAL_CACHE_MODES = ("reuse", "fill", "off")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class IntegrityError(VerificationError, OSError):
    """Bytes read whole do not have the file's SHA-1 (or a peer answered another byte range).

    An :class:`OSError` too, as fsspec's callers expect of a failed read."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class ReadStats:
    """What one file system has read so far (for tests, benchmarks and the curious)."""

    range_requests: int = 0
    bytes_fetched: int = 0
    from_cache: int = 0  # reads served by kb-get's SHA-1 cache
    routes: dict[str, int] = field(default_factory=dict)  # "direct" | "hub" -> Range requests
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, route: str, nbytes: int) -> None:
        with self.lock:
            self.range_requests += 1
            self.bytes_fetched += nbytes
            self.routes[route] = self.routes.get(route, 0) + 1


class _Failure(Exception):
    def __init__(self, reason: str, fatal: bool) -> None:
        super().__init__(reason)
        self.reason, self.fatal = reason, fatal


class RangeSource:
    """Byte ranges of one resolved file from its download URLs, in order (direct, then hubs)."""

    ATTEMPTS = 3  # transient failures of one URL in a row before the next URL is tried

    def __init__(self, fs: "KbucketFileSystem", resolution: Resolution) -> None:
        self.fs = fs
        self.resolution = resolution
        self.size = resolution.size
        self.urls = list(resolution.download_urls)
        self.dead: dict[str, str] = {}
        self.route: str | None = None  # the route of the URL that served the last range

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file; :class:`PeerError` when no URL can serve them."""
        for url in self.urls:
            if url in self.dead:
                continue
            reason = self.fs.dead_origin(url)
            if reason:
                self.dead[url] = reason
                continue
            for attempt in range(self.ATTEMPTS):
                try:
                    data = self._get(url, start, end)
                except _Failure as failure:
                    if failure.reason == "connection refused":
                        self.fs.mark_dead(url, failure.reason)
                    if failure.fatal or attempt == self.ATTEMPTS - 1:
                        self.dead[url] = failure.reason
                        break
                    continue
                self.route = self.resolution.route_of(url)
                self.fs.stats.count(self.route, len(data))
                return data
        reasons = "; ".join(f"{url}: {why}" for url, why in self.dead.items())
        raise PeerError(f"{self.resolution.url}: no download URL works ({reasons or 'none to try'})")

    def _get(self, url: str, start: int, end: int) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        try:
            response = self.fs.session().get(url, headers=headers, stream=True, timeout=self.fs.timeout)
        except requests.RequestException as exc:
            reason = describe(exc)
            raise _Failure(reason, fatal=reason == "connection refused") from None
        with response:
            status = response.status_code
            if status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match[1]) != start or int(match[2]) != end - 1 or (
                        self.size is not None and match[3] != "*" and int(match[3]) != self.size):
                    raise _Failure("answered another byte range "
                                   f"({response.headers.get('Content-Range')})", fatal=True)
            elif not (status == 200 and start == 0 and end == self.size):
                raise _Failure(f"HTTP {status}", fatal=status < 500)
            buffer = bytearray(end - start)
            view = memoryview(buffer)
            read_into = body_reader(response)
            done = 0
            while done < len(buffer):
                try:
                    count = read_into(view[done:])
                except Exception as exc:  # urllib3, socket and requests errors alike
                    raise _Failure(describe(exc), fatal=False) from None
                if not count:
                    raise _Failure("connection closed mid-transfer", fatal=False)
                done += count
        return bytes(buffer)


class LocalSource:
    """Byte ranges of a file of kb-get's SHA-1 cache."""

    route = "cache"

    def __init__(self, fs: "KbucketFileSystem", path: Path) -> None:
        self.fs = fs
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, start: int, end: int) -> bytes:
        data = os.pread(self.fd, end - start, start)
        if len(data) != end - start:
            raise IntegrityError(f"{self.path}: the cached file is shorter than expected")
        with self.fs.stats.lock:
            self.fs.stats.from_cache += 1
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class KbucketFile(AbstractBufferedFile):
    """A read-only file of a share: Range requests behind fsspec's read-ahead cache, verified when
    read through from its first byte to its last."""

    def __init__(self, fs: "KbucketFileSystem", path: str, resolution: Resolution,
                 source: RangeSource | LocalSource, block_size: int | None = None,
                 cache_type: str = "readahead", cache_options: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.resolution = resolution
        self.source = source
        self._sha1 = hashlib.sha1()
        self._hashed = 0  # the prefix of the file fed to the SHA-1 so far
        self.verified = False  # True once every byte of the file was read and matched its SHA-1
        super().__init__(fs, path, mode="rb", block_size=block_size or fs.block_size,
                         cache_type=cache_type, cache_options=cache_options,
                         size=resolution.size, **kwargs)

    @property
    def sha1(self) -> str | None:
        return self.resolution.sha1

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        data = self.source.read(start, end)
        self._check(start, data)
        return data

    def _check(self, start: int, data: bytes) -> None:
        """Follow the reads that extend the checked prefix; at the end of the file, compare."""
        if start > self._hashed or start + len(data) <= self._hashed:
            return
        self._sha1.update(memoryview(data)[self._hashed - start:])
        self._hashed = start + len(data)
        if self._hashed == self.size and self.resolution.sha1:
            digest = self._sha1.hexdigest()
            if digest != self.resolution.sha1:
                self._hashed = -1  # never checked again: the file is known to be wrong
                where = self.source.path if isinstance(self.source, LocalSource) else self.source.route
                if isinstance(self.source, LocalSource):
                    self.fs.cache.drop(self.resolution.sha1)
                raise IntegrityError(
                    f"SHA-1 mismatch: {self.resolution.url} read whole ({where}) has SHA-1 {digest},"
                    f" expected {self.resolution.sha1}; the bytes were not returned")
            self.verified = True

    def read(self, length: int = -1) -> bytes:
        if self._hashed < 0:
            raise IntegrityError(f"{self.resolution.url}: the file's bytes did not match its SHA-1")
        return super().read(length)

    def close(self) -> None:
        super().close()
        if isinstance(self.source, LocalSource):
            self.source.close()

    # Read-only.
    def _upload_chunk(self, final: bool = False) -> bool:
        raise OSError("kbucket:// files are read-only")

    def _initiate_upload(self) -> None:
        raise OSError("kbucket:// files are read-only")


class KbucketFileSystem(AbstractFileSystem):
    """``kbucket://NODEID/path``: the files of a share, read in place (module docstring).

    Storage options: ``hub`` (else ``$KBUCKET_URL``), ``local_cache`` (``reuse``, ``fill``, ``off``),
    ``cache_dir`` (else kb-get's), ``block_size`` (read-ahead bytes, default 8 MiB), ``timeout``.
    """

    protocol = "kbucket"
    root_marker = ""

    def __init__(self, hub: str | None = None, local_cache: str = "reuse",
                 cache_dir: str | os.PathLike[str] | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                 timeout: tuple[float, float] = (5.0, 60.0), **storage_options: Any) -> None:
        super().__init__(**storage_options)
        if local_cache not in LOCAL_CACHE_MODES:
            raise ValueError(f"local_cache={local_cache!r}: expected one of {', '.join(LOCAL_CACHE_MODES)}")
        self.hub = configured_hub(hub)
        self.local_cache = "off" if cache_disabled() else local_cache
        self.cache = Sha1Cache(cache_dir)
        self.block_size = int(block_size)
        connect, read = timeout  # also from a list (a JSON storage_options)
        self.timeout = (connect, read)
        self.stats = ReadStats()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._files: dict[str, Resolution] = {}  # path -> file resolution (with download URLs)
        self._dirs: dict[str, Resolution] = {}  # path -> directory resolution
        self._dead: dict[str, str] = {}  # origin (scheme://host:port) -> why it cannot be reached
        self.resolver = Resolver(self.hub, self.session(), timeout=(5.0, 30.0))

    # -- plumbing ----------------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """This thread's HTTP session (kept-alive connections)."""
        session = getattr(self._local, "session", None)
        if session is None:  # verifies https:// as kb-get does, and sends grant tokens
            session = self._local.session = tls.session()
        return session

    @staticmethod
    def _origin(url: str) -> str:
        return url.split("/", 3)[2] if "://" in url else url

    def dead_origin(self, url: str) -> str:
        with self._lock:
            return self._dead.get(self._origin(url), "")

    def mark_dead(self, url: str, reason: str) -> None:
        with self._lock:
            self._dead.setdefault(self._origin(url), reason)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if "token=" in path:  # a private share's link: the token is remembered, never kept in a path
            path = grants.take_link(path)
        for prefix in (f"{cls.protocol}://", f"{cls.protocol}::"):
            if path.startswith(prefix):
                path = path[len(prefix):]
        return path.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        return name if name.startswith(f"{self.protocol}://") else f"{self.protocol}://{name}"

    def url_of(self, path: str, directory: bool = False) -> str:
        path = self._strip_protocol(path)
        return f"{self.protocol}://{path}" + ("/" if directory else "")

    def _call(self, function: Any, *args: Any) -> Any:
        """A resolver call with fsspec's errors: NotFound is FileNotFoundError, a bad URL ValueError."""
        try:
            return function(*args)
        except NotFound as exc:
            raise FileNotFoundError(str(exc)) from None
        except BadUrl as exc:
            raise ValueError(str(exc)) from None

    # -- metadata ----------------------------------------------------------------------------------
    def _info_of_entry(self, path: str, entry: Entry) -> dict[str, Any]:
        if entry.type == "dir":
            return {"name": path, "size": 0, "type": "directory", "url": entry.url}
        return {"name": path, "size": entry.size, "type": "file", "sha1": entry.sha1, "url": entry.url}

    def _info_of_file(self, path: str, resolution: Resolution) -> dict[str, Any]:
        return {"name": path, "size": resolution.size, "type": "file", "sha1": resolution.sha1,
                "url": resolution.url}

    def _listing(self, path: str, refresh: bool = False) -> Resolution:
        """The directory resolution of ``path`` (cached); FileNotFoundError / NotADirectoryError."""
        with self._lock:
            known = None if refresh else self._dirs.get(path)
        if known is not None:
            return known
        resolution = self._call(self.resolver.resolve, self.url_of(path, directory=True))
        with self._lock:
            self._dirs[path] = resolution
        return resolution

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if path and self.isfile(path):
            entries = [self.info(path)]
        else:
            listing = self._listing(path, refresh)
            entries = [self._info_of_entry(posixpath.join(path, e.name), e) for e in listing.entries]
            self.dircache[path] = entries
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        parent = self._parent(path)
        with self._lock:
            known = self._files.get(path)
            directory = self._dirs.get(path)
            siblings = self._dirs.get(parent) if parent else None
        if known is not None:
            return self._info_of_file(path, known)
        if directory is not None:
            return {"name": path, "size": 0, "type": "directory", "url": directory.url}
        if siblings is not None:
            name = posixpath.basename(path)
            for entry in siblings.entries:
                if entry.name == name:
                    return self._info_of_entry(path, entry)
            raise FileNotFoundError(f"{self.url_of(path)}: not in its directory's listing")
        resolution = self._call(self.resolver.resolve, self.url_of(path, directory="/" not in path))
        with self._lock:
            if resolution.type == "file":
                self._files[path] = resolution
            else:
                self._dirs[path] = resolution
        if resolution.type == "file":
            return self._info_of_file(path, resolution)
        return {"name": path, "size": 0, "type": "directory", "url": resolution.url}

    def checksum(self, path: str) -> int:
        """The file's SHA-1 as an int: the same content, the same checksum."""
        return int(self.sha1(path), 16)

    def ukey(self, path: str) -> str:
        return self.sha1(path)

    def sha1(self, path: str) -> str:
        info = self.info(path)
        if info["type"] != "file" or not info.get("sha1"):
            raise ValueError(f"{self.url_of(path)}: no SHA-1 (a directory, or not indexed yet)")
        return str(info["sha1"])

    def invalidate_cache(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._files.clear()
                self._dirs.clear()
            else:
                path = self._strip_protocol(path)
                for table in (self._files, self._dirs):
                    for key in [k for k in table if k == path or k.startswith(path + "/")]:
                        del table[key]
        super().invalidate_cache(path)

    # -- reading -----------------------------------------------------------------------------------
    def resolve_file(self, path: str) -> Resolution:
        """The file resolution of ``path``, with its download URLs (cached per file system)."""
        path = self._strip_protocol(path)
        with self._lock:
            known = self._files.get(path)
            siblings = self._dirs.get(self._parent(path))
        if known is not None and known.download_urls:
            return known
        resolution = None
        if siblings is not None:
            entry = next((e for e in siblings.entries if e.name == posixpath.basename(path)), None)
            if entry is not None and entry.type == "file":
                resolution = self._call(self.resolver.entry_file, siblings, entry)
        if resolution is None:
            resolution = self._call(self.resolver.resolve, self.url_of(path))
        if resolution.type != "file":
            raise IsADirectoryError(f"{self.url_of(path)} is a directory")
        if resolution.sha1 is None or resolution.size is None:
            raise ClientError(f"{self.url_of(path)}: not indexed yet by its share (no SHA-1 or size)")
        with self._lock:
            self._files[path] = resolution
        return resolution

    def _source(self, resolution: Resolution) -> RangeSource | LocalSource:
        """kb-get's cache when it holds the file (and may be used), else the network."""
        assert resolution.sha1 is not None
        if self.local_cache != "off":
            if self.cache.size_of(resolution.sha1) != resolution.size and self.local_cache == "fill":
                fetch_file(resolution, self.cache.path_for(resolution.sha1), None)
            if self.cache.size_of(resolution.sha1) == resolution.size:
                try:
                    return LocalSource(self, self.cache.path_for(resolution.sha1))
                except OSError:
                    pass  # removed meanwhile: read from the network
        return RangeSource(self, resolution)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict[str, Any] | None = None,
              **kwargs: Any) -> KbucketFile:
        if mode != "rb":
            raise OSError(f"{self.url_of(path)}: kbucket:// files are read-only (mode {mode!r})")
        resolution = self.resolve_file(path)
        return KbucketFile(self, self._strip_protocol(path), resolution, self._source(resolution),
                           block_size=block_size, cache_options=cache_options, **kwargs)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        """Bytes ``[start, end)`` (Python slice rules); the whole file is checked against its SHA-1."""
        resolution = self.resolve_file(path)
        size = resolution.size
        assert size is not None
        first = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
        last = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if last <= first:
            return b""
        with self._open(path, block_size=0, cache_type="none") as f:
            if first == 0 and last == size:
                data = f.read()
                if not f.verified:
                    raise IntegrityError(f"{resolution.url}: read whole but not checked")
                return data
            f.seek(first)
            return f.read(last - first)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None,
                 **kwargs: Any) -> None:
        """A verified copy at ``lpath``: kb-get's download (parallel Range, resumable), or a copy out
        of its SHA-1 cache."""
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        resolution = self.resolve_file(rpath)
        cache = self.cache if self.local_cache != "off" else None
        try:
            fetch_file(resolution, lpath, cache)
        except VerificationError as exc:
            raise IntegrityError(str(exc)) from None
        if callback is not None:
            callback.set_size(resolution.size)
            callback.absolute_update(resolution.size)

    def local_path(self, path: str) -> str:
        """The file in kb-get's SHA-1 cache (downloaded, verified, the first time): a path any
        program can open, with no second copy of the content."""
        resolution = self.resolve_file(path)
        assert resolution.sha1 is not None
        target = self.cache.path_for(resolution.sha1)
        if self.cache.size_of(resolution.sha1) != resolution.size:
            fetch_file(resolution, target, None)
        return str(target)

    # Read-only file system.
    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("kbucket:// is read-only")

    rm_file = rm = mkdir = makedirs = rmdir = put_file = pipe_file = cp_file = mv = _readonly  # type: ignore[assignment]


class Sha1FileSystem(KbucketFileSystem):
    """``sha1://SHA1[/name]``: a file by content, found anywhere below the hub."""

    protocol = "sha1"

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return self._info_of_file(path, self.resolve_file(path))

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        info = self.info(path)
        return [info] if detail else [info["name"]]

    def resolve_file(self, path: str) -> Resolution:
        path = self._strip_protocol(path)
        with self._lock:
            known = self._files.get(path)
        if known is not None:
            return known
        resolution = self._call(self.resolver.resolve, self.url_of(path))
        if resolution.size is None:
            raise ClientError(f"{self.url_of(path)}: the hub does not tell the file's size")
        with self._lock:
            self._files[path] = resolution
        return resolution


def filesystem(url: str = "kbucket://", **storage_options: Any) -> KbucketFileSystem:
    """The file system for ``url``'s protocol (``kbucket://`` or ``sha1://``), without fsspec's
    registry: ``filesystem(hub="http://HUB:3240").open("kbucket://NODEID/a.txt")``."""
    cls = Sha1FileSystem if url.startswith("sha1://") else KbucketFileSystem
    return cls(**storage_options)


__all__ = ["IntegrityError", "KbucketFile", "KbucketFileSystem", "ReadStats", "Sha1FileSystem",
           "filesystem", "kbucket_url"]


def _register() -> None:
    """Register both protocols on import too (the entry point does it when kbtools is installed;
    this covers a checkout on ``sys.path`` whose metadata is missing or stale)."""
    from fsspec.registry import register_implementation

    register_implementation("kbucket", KbucketFileSystem, clobber=True)
    register_implementation("sha1", Sha1FileSystem, clobber=True)


_register()
