"""kb-index: hash the files of a share (SHA-1 ``.prv`` records) with a persistent cache."""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import IO, Any

from json.encoder import encode_basestring as encode_json_string  # type: ignore[attr-defined]

from kbtools.cli.base import Command, dump_json, failure
from kbtools.errors import EXIT_FINDINGS, EXIT_OK, RuntimeFailure, UsageError
from kbtools.index.cache import FileRecord, cache_path
from kbtools.index.hashing import EXTRA_DIGESTS, FCS_PREFIX, FileChanging
from kbtools.index.paths import UnsafePath, safe_relpath
from kbtools.index.prv import make_prv
from kbtools.index.share_index import (CachedDir, FileOutcome, Renderer, ShareIndex, file_record,
                                       hash_to_record)

DATASET_FILE = "raw.mda"
FLUSH_INTERVAL_S = 0.2
OUTPUT_BATCH = 1000


def file_record_line(outcome: FileOutcome, digests: tuple[str, ...]) -> str:
    """The NDJSON ``file`` record of one outcome (schemas/kb-index-record.json): its one
    definition. Written directly rather than through ``dump_json``: an unchanged share of 100,000
    files spends most of its re-index time here otherwise."""
    rec = outcome.record
    if rec is None:
        return dump_json({"type": "file", "path": outcome.relpath, "size": outcome.size,
                          "mtime": outcome.mtime_ns / 1e9,
                          **failure(outcome.error_code, outcome.error_message or "")})
    extra = "".join(f', "{name}": "{rec.digest(name)}"' for name in digests)
    return (f'{{"type": "file", "path": {encode_json_string(rec.relpath)}, "size": {rec.size}, '
            f'"mtime": {rec.mtime_ns / 1e9!r}, "sha1": "{rec.sha1}", '
            f'"fcs": "{FCS_PREFIX}{rec.head_sha1}"{extra}, '
            f'"cached": {"true" if outcome.from_cache else "false"}, "status": "ok"}}')


#: A record with every field set and a path that needs escapes, to name the format of the lines.
_SAMPLE_RECORD = FileRecord('d/\u00fc "\x01.txt', 1, 10**18 + 1, 1, "0" * 40, "1" * 40, "2" * 64,
                            "3" * 32, 0)


def cached_lines_renderer(digests: tuple[str, ...]) -> Renderer:
    """The lines of a directory's records, all from the cache, as the snapshot keeps them.

    Their key in the snapshot is derived from what :func:`file_record_line` writes: a change to
    the record changes the key, so lines of an older format are never printed."""

    def render(records: list[FileRecord]) -> str:
        return "".join([file_record_line(FileOutcome(rec.relpath, rec, True), digests) + "\n"
                        for rec in records])

    sample = render([_SAMPLE_RECORD]).encode("utf-8", "surrogateescape")
    return Renderer("kb-index file lines " + hashlib.sha1(sample).hexdigest(), render)


class _TqdmProgress:
    """Files and bytes hashed, on stderr (only used when stderr is a terminal)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.bar: Any = None

    def start(self, files: int, nbytes: int) -> None:
        if files:
            try:
                from tqdm import tqdm  # imported only for a terminal: it costs start-up time
            except ImportError:  # e.g. bin/ launchers run by an interpreter without the deps
                return
            self.bar = tqdm(total=nbytes, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=f"hashing 0/{files} files", file=self.stream, leave=False)
            self.files_total, self.files_done = files, 0

    def advance(self, files: int, nbytes: int) -> None:
        if self.bar is not None:
            if files:
                self.files_done += files
                self.bar.set_description(f"hashing {self.files_done}/{self.files_total} files",
                                         refresh=False)
            self.bar.update(nbytes)  # tqdm serialises its display; counts may lag a block

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _find_cache_root(path: Path) -> tuple[Path, str] | None:
    """The nearest ancestor of ``path`` holding a digest cache, with the path relative to it."""
    parent = path.parent
    parts = [path.name]
    while True:
        if cache_path(parent).is_file():
            relpath = "/".join(reversed(parts))
            try:
                return parent, safe_relpath(relpath)
            except UnsafePath:
                return None
        if parent.parent == parent:
            return None
        parts.append(parent.name)
        parent = parent.parent


class KbIndex(Command):
    name = "kb-index"
    description = (
        "Hash the files of a share: one NDJSON record per file (size, mtime, SHA-1, head1000 fcs,\n"
        "extra digests), one per dataset directory (a directory holding raw.mda, with its kb-check\n"
        "verdict), then a summary. Hidden names, .kbucket and node_modules are skipped, symlinks are\n"
        "never followed out of DIR. Digests are cached in DIR/.kbucket/, so an unchanged tree\n"
        "re-indexes as a stat walk.\n\n"
        "With --prv FILE or --prvdir DIR, print the original .prv / .prvdir JSON instead.\n\n"
        "Exit status: 0 ok; 1 some file could not be hashed; 2 usage; 3 runtime failure."
    )
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", nargs="?", help="the directory to index (default: .)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--prv", metavar="FILE", help="print the .prv object of one file")
        mode.add_argument("--prvdir", metavar="DIR", help="print the .prvdir tree of a directory")
        parser.add_argument("--digest", action="append", choices=EXTRA_DIGESTS, default=[],
                            help="also compute this digest (repeatable)")
        parser.add_argument("--absolute-paths", action="store_true",
                            help="write the absolute path of the host in .prv original_path")
        parser.add_argument("--no-cache", action="store_true",
                            help="neither read nor write the digest cache under DIR/.kbucket/")
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="no progress bar and no warnings on stderr")

    def run(self) -> int:
        args = self.args
        digests = tuple(dict.fromkeys(args.digest))
        if (args.prv or args.prvdir) and args.dir is not None:
            raise UsageError("give either DIR, --prv FILE or --prvdir DIR")
        if args.prv:
            return self.print_prv(Path(args.prv), digests)
        if args.prvdir:
            return self.print_prvdir(Path(args.prvdir), digests)
        return self.index(Path(args.dir or "."), digests)

    # -- .prv / .prvdir ----------------------------------------------------------------------
    def print_prv(self, path: Path, digests: tuple[str, ...]) -> int:
        if path.is_dir():
            raise UsageError(f"{path} is a directory: use --prvdir")
        if not path.exists():
            raise UsageError(f"no such file: {path}")
        if not path.is_file():
            raise UsageError(f"not a regular file: {path}")
        rec = self._prv_record(path, digests)
        original = os.path.abspath(path) if self.args.absolute_paths else path.name
        self.output_format = "object"
        self.emit(make_prv(rec.sha1, rec.size, rec.head_sha1, original))
        return EXIT_OK

    def _prv_record(self, path: Path, digests: tuple[str, ...]) -> FileRecord:
        found = None if self.args.no_cache else _find_cache_root(path.absolute())
        try:
            if found is not None:
                try:
                    return file_record(found[0], found[1], digests)
                except UnsafePath:
                    pass  # e.g. a symlink out of that share: hash the file itself
            return hash_to_record(path, path.name, digests)
        except FileChanging as exc:
            raise RuntimeFailure(f"{path}: {exc}") from None
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {path}: {exc.strerror}") from None

    def print_prvdir(self, path: Path, digests: tuple[str, ...]) -> int:
        if not path.is_dir():
            raise UsageError(f"not a directory: {path}")
        with ShareIndex(path, digests=digests, use_cache=not self.args.no_cache,
                        absolute_paths=self.args.absolute_paths) as index:
            delta = index.refresh(self._progress())
            self._report_problems(delta.problems)
            if delta.errors:
                for err in delta.errors:
                    self.say(f"{err.relpath}: {err.error_message}")
                self.say(f"not all files could be hashed ({len(delta.errors)} failed): no .prvdir")
                return EXIT_FINDINGS
            self.output_format = "object"
            self.emit(index.prvdir())
        return EXIT_OK

    # -- the index stream ----------------------------------------------------------------------
    def _progress(self) -> _TqdmProgress | None:
        if self.args.quiet or not _isatty(self.error_file):
            return None
        return _TqdmProgress(self.error_file)

    def _report_problems(self, problems: list) -> None:
        if not self.args.quiet:
            for p in problems:
                self.say(f"{p.relpath}: {p.message}")

    def index(self, root: Path, digests: tuple[str, ...]) -> int:
        if not root.is_dir():
            raise UsageError(f"not a directory: {root}")
        started = time.monotonic()
        progress = self._progress()
        dataset_dirs: list[str] = []
        errors = 0
        with ShareIndex(root, digests=digests, use_cache=not self.args.no_cache) as index:
            try:
                # Lines go out in batches: with an unbuffered stdout (PYTHONUNBUFFERED) one
                # write per record would cost more than the whole stat walk.
                out = self.output_file
                batch: list[str] = []
                flushed = time.monotonic()
                renderer = cached_lines_renderer(digests)
                with contextlib.closing(index.scan_blocks(progress, renderer)) as outcomes:
                    for outcome in outcomes:
                        if isinstance(outcome, CachedDir):
                            if DATASET_FILE in outcome.names:
                                dataset_dirs.append(outcome.prefix[:-1] or ".")
                            if batch:
                                out.write("\n".join(batch) + "\n")
                                batch.clear()
                            out.write(outcome.text if outcome.text is not None
                                      else renderer.render(outcome.records()))
                            continue
                        rel = outcome.relpath
                        if outcome.record is None:
                            errors += 1
                        elif rel.endswith(DATASET_FILE) and (
                                rel == DATASET_FILE or rel.endswith("/" + DATASET_FILE)):
                            dataset_dirs.append(rel[: -len(DATASET_FILE) - 1] or ".")
                        batch.append(file_record_line(outcome, digests))
                        if len(batch) >= OUTPUT_BATCH or (
                                not outcome.from_cache
                                and time.monotonic() - flushed > FLUSH_INTERVAL_S):
                            # Hashing takes time: a reader of the pipe sees progress.
                            out.write("\n".join(batch) + "\n")
                            out.flush()
                            batch.clear()
                            flushed = time.monotonic()
                    if batch:
                        out.write("\n".join(batch) + "\n")
                    out.flush()
            finally:
                if progress is not None:
                    progress.close()
            delta = index.last_delta
        assert delta is not None
        self._report_problems(delta.problems)
        for dataset in dataset_dirs:
            self.emit(self.dataset_record(root, dataset))
        self.emit({
            "type": "summary", "root": str(root), "files": delta.files, "bytes": delta.bytes,
            "hashed": delta.hashed, "from_cache": delta.from_cache, "errors": errors,
            "skipped": len(delta.problems), "datasets": len(dataset_dirs),
            "seconds": round(time.monotonic() - started, 6),
        })
        return EXIT_FINDINGS if errors else EXIT_OK

    @staticmethod
    def dataset_record(root: Path, relpath: str) -> dict[str, Any]:
        """The ``dataset`` record: the kb-check verdict of one dataset directory."""
        from kbtools.formats.dataset import check_dataset

        path = root if relpath == "." else root.joinpath(*relpath.split("/"))
        verdict = check_dataset(path).to_json()
        verdict.pop("path", None)
        return {"type": "dataset", "path": relpath, **verdict}


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


main = KbIndex.main


if __name__ == "__main__":
    raise SystemExit(main())
