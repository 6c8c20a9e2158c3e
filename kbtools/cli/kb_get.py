"""kb-get: download files and directories by kbucket://, sha1:// or http(s):// URL, verified."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from kbtools.cli.base import Command, failure
from kbtools.cli.grant_cmds import add_token_option
from kbtools.client.grants import remember_configured, take_links
from kbtools.client import (
    DownloadOptions,
    Resolution,
    Resolver,
    Sha1Cache,
    cache_disabled,
    configured_hub,
    fetch_file,
    parse_url,
)
from kbtools.client import tls
from kbtools.client.cache import CACHE_DIR_ENV, NO_CACHE_ENV
from kbtools.client.errors import failure_code
from kbtools.client.download import MAX_CHUNK, MIN_CHUNK, HostHealth, MiB
from kbtools.client.urls import Sha1Ref
from kbtools.errors import EXIT_FINDINGS, EXIT_OK, KbError, UsageError


class KbGet(Command):
    name = "kb-get"
    description = (
        "Download files or directories by kbucket://NODEID/path, sha1://SHA1[/name] or a hub or share\n"
        "http(s):// download URL. Each file is fetched by parallel Range requests from the share directly\n"
        "or through the hubs (in that order), resumed after an interruption, and checked against its\n"
        "SHA-1 before it takes its name. One JSON record per file on stdout, saying which route\n"
        "carried the bytes (route: direct, hub or cache; source: the URL that served them).\n\n"
        "Downloads are kept in a cache by SHA-1 (default ~/.cache/kbtools/sha1), so the same content\n"
        "is never fetched twice; files are copied out of it (a reflink where the file system can),\n"
        "never linked, so editing a download changes nothing else, and verified again on the way out.\n"
        "kb-get --cache-info shows its place and size, kb-get --cache-clear empties it."
    )
    epilog = (
        "environment:\n"
        "  KBUCKET_URL        the hub to ask when --hub is not given (http(s)://HOST[:PORT])\n"
        f"  {CACHE_DIR_ENV}  the cache directory (default $XDG_CACHE_HOME/kbtools/sha1, that is\n"
        "                     ~/.cache/kbtools/sha1)\n"
        f"  {NO_CACHE_ENV}   set to 1: never use the cache (as --no-cache)\n"
        + tls.CA_EPILOG +
        "exit: 0 all files ok, 1 some file failed (not found, bad URL), 2 usage (also a --hub or\n"
        "KBUCKET_URL that is not a URL, an -o that is a file where a directory is needed),\n"
        "3 network/peer failure"
    )
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to fetch ('-' reads them from stdin)")
        add_token_option(parser)
        parser.add_argument("-o", "--output", metavar="OUT",
                            help="target file (one file URL), or directory (default: the current one)")
        parser.add_argument("--hub", metavar="URL", help="hub to resolve kbucket:// and sha1:// URLs, "
                                                         "http(s)://HOST[:PORT] (default: $KBUCKET_URL)")
        tls.add_ca_option(parser)
        parser.add_argument("--cat", action="store_true", help="write the verified bytes of one file to stdout")
        parser.add_argument("--no-cache", action="store_true", help="neither read nor fill the SHA-1 cache")
        parser.add_argument("--cache-info", action="store_true",
                            help="print the cache's directory, files and bytes as JSON, and exit")
        parser.add_argument("--cache-clear", action="store_true",
                            help="empty the cache; print what was removed as JSON, and exit")
        parser.add_argument("-j", "--parallel", type=int, default=DownloadOptions.parallel, metavar="N",
                            help="Range requests in flight per file, and small files of a directory "
                                 "fetched at once (default %(default)s)")
        parser.add_argument("--chunk-size", type=int, default=DownloadOptions.chunk_size // MiB,
                            metavar="MIB", help="MiB per Range request, 1 to 64 (default %(default)s)")

    def run(self) -> int:
        args = self.args
        if args.cache_info or args.cache_clear:
            return self.cache_command()
        tls.configure(args.ca_file)
        tls.ca_file()  # a CA file named in the environment that is missing is a usage error now
        if not args.urls:
            raise UsageError("give at least one URL (or - to read them from stdin)")
        if args.parallel < 1:
            raise UsageError("--parallel must be at least 1")
        if not 1 <= args.chunk_size <= MAX_CHUNK // MiB:
            raise UsageError(f"--chunk-size must be 1 to {MAX_CHUNK // MiB} (MiB)")
        self.options = DownloadOptions(chunk_size=max(args.chunk_size * MiB, MIN_CHUNK), parallel=args.parallel)
        self.cache = None if args.no_cache or cache_disabled() else Sha1Cache()
        remember_configured(args.token_file)
        urls = take_links(self.iter_inputs(args.urls))  # a link's ?token= is never printed
        # The hub is only read (and checked) when a URL needs one: http(s) URLs name their own host.
        needs_hub = any(url.startswith(("kbucket://", "sha1://")) for url in urls)
        self.resolver = Resolver(configured_hub(args.hub) if needs_hub else None)
        self.stop = threading.Event()
        self.health = HostHealth()  # shared by the files of this run
        if self.resolver.hub is None and any(url.startswith("kbucket://") for url in urls):
            raise UsageError("kbucket:// URLs need a hub: pass --hub URL or set KBUCKET_URL")
        if args.cat:
            if len(urls) != 1:
                raise UsageError("--cat takes exactly one URL")
            return self.cat(urls[0])
        if len(urls) > 1:
            self.check_output(needs_dir=True, why="several URLs are given")
        code = EXIT_OK
        try:
            for url in urls:
                for record, exit_code in self.get(url, single=len(urls) == 1):
                    if record["status"] == "error":
                        self.say(one_line(record["url"], record["message"]))
                    self.emit(record)
                    code = max(code, exit_code)
        finally:
            self.stop.set()
        return code

    def cache_command(self) -> int:
        """--cache-info, --cache-clear: one JSON object {path, files, bytes} (kb-get-cache.json)."""
        args = self.args
        if args.urls or args.cat or (args.cache_info and args.cache_clear):
            raise UsageError("--cache-info and --cache-clear go alone, without URLs")
        cache = Sha1Cache()
        if args.cache_clear:
            removed = cache.clear()
            self.emit({**removed.record(), "files": 0, "bytes": 0,
                       "removed_files": removed.files, "removed_bytes": removed.bytes})
        else:
            self.emit({**cache.usage().record(), "enabled": not cache_disabled()})
        return EXIT_OK

    def check_output(self, needs_dir: bool, why: str) -> None:
        """-o is a directory (or can become one) when ``needs_dir``; its parents are directories.
        A usage error otherwise: the user named it."""
        out = self.args.output
        if out is None:
            return
        path = Path(out)
        if (needs_dir or out.endswith(("/", os.sep))) and os.path.lexists(path) and not path.is_dir():
            raise UsageError(f"-o {out}: not a directory ({why})")
        for parent in path.parents:
            if os.path.lexists(parent):
                if not parent.is_dir():
                    raise UsageError(f"-o {out}: {parent} is not a directory")
                break

    # -- one URL -----------------------------------------------------------------------------------
    def target_for(self, name: str, single: bool, is_dir: bool) -> Path:
        """Where a URL lands: -o itself for one URL (unless it is a directory), else inside -o."""
        out = self.args.output
        if out is None:
            return Path(name)
        out_path = Path(out)
        if single and not out.endswith(os.sep) and not (out_path.is_dir() and not is_dir):
            return out_path
        return out_path / name

    def get(self, url: str, single: bool) -> Iterator[tuple[dict[str, Any], int]]:
        started = time.monotonic()
        path: Path | None = None
        try:
            ref = parse_url(url)
            cached = self.cached_sha1(ref)
            resolution = cached or self.resolver.resolve(ref)
            is_dir = resolution.type == "dir"
            if single:
                self.check_output(is_dir, f"{url} is a directory" if is_dir else "it ends with /")
            path = self.target_for(resolution.name, single, is_dir)
            if resolution.type == "file":
                record, code = self.get_file(resolution, path, started)
                if cached is not None and record["status"] == "error" and self.resolver.hub is not None:
                    # The cache entry was damaged (it is gone now): ask the hub after all.
                    record, code = self.get_file(self.resolver.resolve(ref), path, started)
                yield record, code
                return
            files: list[tuple[Resolution, Path]] = []
            for relative, entry in self.resolver.walk(resolution):
                try:
                    files.append((self.resolver.entry_file(resolution, entry), path / relative))
                except KbError as exc:
                    yield self.error_record(entry.url, path / relative, exc, time.monotonic(),
                                            entry.sha1, entry.size)
            yield from self.get_files(files)
        except UsageError:
            raise  # the command line itself is wrong (-o, --hub, KBUCKET_URL): no record
        except KbError as exc:
            yield self.error_record(url, path, exc, started)

    def get_files(self, files: list[tuple[Resolution, Path]]) -> Iterator[tuple[dict[str, Any], int]]:
        """The files of a directory: small ones several at a time (each is one request, so the
        round trips overlap), then the large ones one by one (each runs parallel Range requests)."""
        small = [f for f in files if f[0].size is not None and f[0].size <= self.options.chunk_size]
        large = [f for f in files if not (f[0].size is not None and f[0].size <= self.options.chunk_size)]
        pool = ThreadPoolExecutor(self.options.parallel, thread_name_prefix="kb-get-file")
        try:
            futures = [pool.submit(self.get_file, resolution, target, None, False)
                       for resolution, target in small]
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            self.stop.set()  # the running downloads end at their next block; .part files stay
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for resolution, target in large:
            yield self.get_file(resolution, target)

    def cached_sha1(self, ref: Any) -> Resolution | None:
        """A sha1:// URL already in the cache needs no hub at all (the copy out of the cache is
        verified: a damaged entry is dropped and the hub asked)."""
        if not isinstance(ref, Sha1Ref) or self.cache is None:
            return None
        size = self.cache.size_of(ref.sha1)
        if size is None:
            return None
        return Resolution(ref.url, "file", ref.name or ref.sha1, sha1=ref.sha1, size=size)

    def get_file(self, resolution: Resolution, path: Path, started: float | None = None,
                 bar: bool = True) -> tuple[dict[str, Any], int]:
        started = time.monotonic() if started is None else started
        try:
            with self.progress_bar(resolution, bar) as progress:
                outcome = fetch_file(resolution, path, self.cache, self.options, progress, self.stop,
                                     self.health, progress.via(resolution))
        except KbError as exc:
            return self.error_record(resolution.url, path, exc, started, resolution.sha1, resolution.size)
        record = self.record(resolution.url, path, resolution.sha1, resolution.size, outcome.status, started,
                             outcome.route, outcome.url)
        return record, EXIT_OK

    def record(self, url: str, path: Path | None, sha1: str | None, size: int | None, status: str,
               started: float, route: str | None = None, source: str | None = None) -> dict[str, Any]:
        return {"url": url, "path": None if path is None else str(path), "sha1": sha1, "size": size,
                "status": status, "route": route, "source": source,
                "seconds": round(time.monotonic() - started, 3)}

    def error_record(self, url: str, path: Path | None, exc: KbError, started: float,
                     sha1: str | None = None, size: int | None = None) -> tuple[dict[str, Any], int]:
        record = self.record(url, path, sha1, size, "error", started)
        record.update(failure(failure_code(exc), str(exc)))
        return record, max(exc.exit_code, EXIT_FINDINGS)

    def progress_bar(self, resolution: Resolution, bar: bool = True) -> "_Progress":
        return _Progress(self.error_file if bar else None, resolution.name, resolution.size)

    # -- --cat -------------------------------------------------------------------------------------
    def cat(self, url: str) -> int:
        ref = parse_url(url)
        resolution = self.cached_sha1(ref) or self.resolver.resolve(ref)
        if resolution.type != "file":
            raise UsageError(f"--cat needs a file URL, {url} is a directory")
        assert resolution.sha1 is not None
        stream = getattr(self.output_file, "buffer", self.output_file)
        scratch = None
        try:
            # Fetched into the cache entry itself (or a scratch file): only verified bytes are written out.
            if self.cache is not None:
                source = self.cache.path_for(resolution.sha1)
            else:
                scratch = tempfile.mkdtemp(prefix="kb-get-")
                source = Path(scratch) / "file"
            with self.progress_bar(resolution) as progress:
                fetch_file(resolution, source, None, self.options, progress, self.stop, self.health,
                           progress.via(resolution))
            with open(source, "rb") as handle:
                shutil.copyfileobj(handle, stream, 1024 * 1024)
            stream.flush()
        finally:
            self.stop.set()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        return EXIT_OK


def one_line(url: str, message: str) -> str:
    """The stderr line of a failed record: the URL once, then why."""
    return message if url in message else f"{url}: {message}"


def route_label(route: str, url: str) -> str:
    """``direct`` or ``via hub HOST:PORT``, for the progress bar."""
    return "direct" if route == "direct" else f"via hub {urlsplit(url).netloc}"


class _Progress:
    """A tqdm byte bar on stderr when it is a terminal; a no-op otherwise. The bar names the file
    and the route its bytes take ("direct", or "via hub HOST:PORT")."""

    def __init__(self, stream: Any, name: str, total: int | None) -> None:
        self.bar = None
        self.name = name[:40]
        self.lock = threading.Lock()
        if getattr(stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.name, unit="B", unit_scale=True, unit_divisor=1024,
                            file=stream, leave=False, dynamic_ncols=True)

    def __enter__(self) -> "_Progress":
        return self

    def __call__(self, count: int) -> None:
        self.update(count)

    def via(self, resolution: Resolution) -> Callable[[str], None]:
        """What fetch_file calls when a download URL starts serving: the bar shows its route."""
        def show(url: str) -> None:
            if self.bar is not None:
                with self.lock:
                    self.bar.set_description(f"{self.name} ({route_label(resolution.route_of(url), url)})")
        return show

    def update(self, count: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(count)

    def __exit__(self, *exc_info: Any) -> None:
        if self.bar is not None:
            self.bar.close()


main = KbGet.main
