"""A resolved file onto the local disk: the target if already right, else the cache, else the network."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cache import Sha1Cache, file_matches
from .download import DownloadOptions, HostHealth, download
from .errors import ClientError
from .resolve import Resolution


@dataclass
class FetchOutcome:
    path: Path
    status: str  # "ok" (placed) | "notneeded" (the target already held these bytes)
    source: str  # "network" | "cache" | "target"
    bytes_fetched: int
    url: str | None = None  # the download URL that served the bytes (network only)
    route: str | None = None  # "direct" | "hub" (network), "cache", None (notneeded)


def blocking_file(directory: Path) -> Path | None:
    """The existing non-directory at or above ``directory`` that stops it being made, if any."""
    for candidate in (directory, *directory.parents):
        if os.path.lexists(candidate):
            return None if candidate.is_dir() else candidate
    return None


def fetch_file(resolution: Resolution, target: str | os.PathLike[str], cache: Sha1Cache | None,
               options: DownloadOptions | None = None,
               progress: Callable[[int], None] | None = None,
               stop: threading.Event | None = None, health: HostHealth | None = None,
               on_url: Callable[[str], None] | None = None) -> FetchOutcome:
    """Put the verified bytes of ``resolution`` (a file) at ``target``.

    ``on_url`` is told each download URL when it starts serving (for a progress display)."""
    target = Path(target)
    blocker = blocking_file(target.parent)
    if blocker is not None:
        raise ClientError(f"cannot write {target}: {blocker} is not a directory")
    if resolution.sha1 is None:
        raise ClientError(f"{resolution.url}: no SHA-1 known, nothing to verify against")
    sha1 = resolution.sha1
    if target.is_dir():
        raise ClientError(f"{target} is a directory")
    if target.exists() and file_matches(target, sha1, resolution.size):
        return FetchOutcome(target, "notneeded", "target", 0)
    if cache is not None and cache.path_for(sha1) != target:
        try:
            if cache.copy_out(sha1, resolution.size, target):
                return FetchOutcome(target, "ok", "cache", 0, route="cache")
        except OSError as exc:
            raise ClientError(f"cannot write {target}: {exc.strerror}") from None
    if not resolution.download_urls:
        raise ClientError(f"{resolution.url}: not in the cache (or its copy there was damaged and has been"
                          " removed), and no download URL to try")
    result = download(resolution.download_urls, target, sha1, resolution.size, options, progress, stop,
                      health, on_url)
    if cache is not None and cache.path_for(sha1) != target:
        cache.store(target, sha1)
    url = result.source
    return FetchOutcome(target, "ok", "network", result.bytes_fetched, url,
                        resolution.route_of(url) if url else None)
