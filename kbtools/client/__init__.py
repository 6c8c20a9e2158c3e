"""The KBucket client: URL parsing, resolution against a hub, verified downloads, the SHA-1 cache.

Public API::

    resolve(url, hub=None) -> Resolution          # kbucket://, sha1://, http(s):// -> sha1, size, URLs
    Resolver(hub).resolve(url) / .walk(dir) / .entry_file(dir, entry)
    download(urls, target, sha1, size) -> DownloadResult   # parallel Range, resume, verified
    fetch_file(resolution, target, cache) -> FetchOutcome  # target, cache, then network
    Sha1Cache(root=None)                          # <root>/<s0>/<s1s2>/<sha1>, $KBUCKET_CACHE_DIR
    configured_hub(option) -> str | None          # --hub, else $KBUCKET_URL, checked (BadHubUrl)
"""
from .cache import Sha1Cache, cache_disabled, default_cache_dir
from .download import DownloadOptions, DownloadResult, download
from .errors import BadHubUrl, BadUrl, ClientError, NotFound, PeerError, VerificationError
from .fetch import FetchOutcome, fetch_file
from .resolve import Entry, Resolution, Resolver, resolve
from .urls import configured_hub, parse_url

__all__ = [
    "BadHubUrl", "BadUrl", "ClientError", "DownloadOptions", "DownloadResult", "Entry", "FetchOutcome",
    "NotFound", "PeerError", "Resolution", "Resolver", "Sha1Cache", "VerificationError",
    "cache_disabled", "configured_hub", "default_cache_dir", "download", "fetch_file", "parse_url",
    "resolve",
]
