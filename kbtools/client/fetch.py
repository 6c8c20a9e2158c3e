"""A resolved file onto the local disk: the target if already right, else the cache, else the network."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cache import Sha1Cache, file_matches, place_file
from .download import DownloadOptions, HostHealth, download
from .errors import ClientError
from .resolve import Resolution


@dataclass
class FetchOutcome:
    path: Path
    status: str  # "ok" (placed) | "notneeded" (the target already held these bytes)
    source: str  # "network" | "cache" | "target"
    bytes_fetched: int


def fetch_file(resolution: Resolution, target: str | os.PathLike[str], cache: Sha1Cache | None,
               options: DownloadOptions | None = None,
               progress: Callable[[int], None] | None = None,
               stop: threading.Event | None = None, health: HostHealth | None = None) -> FetchOutcome:
    """Put the verified bytes of ``resolution`` (a file) at ``target``."""
    target = Path(target)
    if resolution.sha1 is None:
        raise ClientError(f"{resolution.url}: no SHA-1 known, nothing to verify against")
    sha1 = resolution.sha1
    if target.is_dir():
        raise ClientError(f"{target} is a directory")
    if target.exists() and file_matches(target, sha1, resolution.size):
        return FetchOutcome(target, "notneeded", "target", 0)
    if cache is not None:
        cached = cache.lookup(sha1, resolution.size)
        if cached is not None and cached != target:
            try:
                place_file(cached, target)
            except OSError as exc:
                raise ClientError(f"cannot write {target}: {exc.strerror}") from None
            return FetchOutcome(target, "ok", "cache", 0)
    result = download(resolution.download_urls, target, sha1, resolution.size, options, progress, stop, health)
    if cache is not None and cache.path_for(sha1) != target:
        cache.store(target, sha1)
    return FetchOutcome(target, "ok", "network", result.bytes_fetched)
