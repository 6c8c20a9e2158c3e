"""The shared command base: argument parsing, JSON output, stdin ``-``, SIGPIPE and exit codes.

Each command subclasses :class:`Command`, sets ``description``, fills in ``add_arguments`` and
``run``, and exposes ``main = MyCommand.main``. Streams are injectable so tests run commands
in-process.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import IO, Any, Iterable, Iterator, Sequence

from kbtools import __version__
from kbtools.errors import EXIT_RUNTIME, KbError, UsageError



def __getattr__(name: str) -> Any:
    # logging and traceback load lazily: they would double mda-info's start-up time
    if name == "log":
        import logging

        return logging.getLogger("kbtools")
    raise AttributeError(name)


def dump_json(obj: Any, *, pretty: bool = False) -> str:
    """The one JSON writer of the command line: UTF-8, stable key order as given.

    A name that is not UTF-8 (its bytes surrogate-escaped, as Python reads file names) is written
    with ``\\udc80``..``\\udcff`` escapes, so stdout stays valid UTF-8 whatever the file names.
    """
    if pretty:
        text = json.dumps(obj, indent=4, ensure_ascii=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    try:
        text.encode("utf-8")  # fails only on lone surrogates; cheaper than searching for them
    except UnicodeEncodeError:
        from kbtools.protocol.canonical import escape_lone_surrogates

        text = escape_lone_surrogates(text)
    return text


def failure(code: str | None, message: str, status: str = "error") -> dict[str, Any]:
    """The keys that say an item's record failed, in every command that prints one record per
    item (README, "Records"): ``status`` (``error``, or ``impossible``), a stable ``code`` when
    the failure has one, and ``message``. Merged into the record: ``{"path": p, **failure(...)}``.
    """
    if code is None:
        return {"status": status, "message": message}
    return {"status": status, "code": code, "message": message}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so in-process runs keep control."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)  # the command's name is added once, where it is printed


class Command:
    """Base of every kbtools command."""

    name: str = ""
    description: str = ""
    epilog: str | None = None
    #: "object": one (pretty) JSON object per run; "ndjson": one compact line per record.
    output_format: str = "object"

    def __init__(
        self,
        args: Sequence[str] | None = None,
        output_file: IO[str] | None = None,
        error_file: IO[str] | None = None,
        input_file: IO[str] | None = None,
    ) -> None:
        self.argv = list(sys.argv[1:] if args is None else args)
        self.output_file = output_file if output_file is not None else sys.stdout
        self.error_file = error_file if error_file is not None else sys.stderr
        self.input_file = input_file if input_file is not None else sys.stdin
        self.parser = self.build_parser()

    # -- to override ---------------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's own arguments."""

    def run(self) -> int:
        """Do the job and return the exit code."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def build_parser(self) -> argparse.ArgumentParser:
        parser = _Parser(
            prog=self.name,
            description=self.description,
            epilog=self.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--version", action="version", version=f"{self.name} {__version__}")
        parser.add_argument(
            "-v", "--verbose", action="store_true", help="log details and show tracebacks on stderr"
        )
        self.add_arguments(parser)
        return parser

    def emit(self, obj: Any) -> None:
        """Write one JSON object (or one NDJSON record) to stdout."""
        text = dump_json(obj, pretty=self.output_format == "object")
        self.output_file.write(text + "\n")
        if self.output_format == "ndjson":
            self.output_file.flush()

    def say(self, message: str) -> None:
        """A human line on stderr."""
        self.error_file.write(f"{self.name}: {message}\n")
        self.error_file.flush()

    def iter_inputs(self, items: Iterable[str]) -> Iterator[str]:
        """Expand ``-`` into the lines of stdin (one path per line)."""
        for item in items:
            if item == "-":
                for line in self.input_file:
                    line = line.rstrip("\n")
                    if line:
                        yield line
            else:
                yield item

    def execute(self) -> int:
        """Parse, run, and map every outcome to an exit code. Never raises."""
        verbose = "-v" in self.argv or "--verbose" in self.argv
        try:
            try:
                self.args = self.parser.parse_args(self.argv)
            except SystemExit as exc:  # --help / --version
                return int(exc.code or 0)
            # only commands whose modules log pay for logging (mda-info's start-up does not)
            if self.args.verbose or "logging" in sys.modules:
                import logging

                logging.basicConfig(
                    level=logging.DEBUG if self.args.verbose else logging.WARNING,
                    format=f"{self.name}: %(message)s",
                    stream=self.error_file,
                )
            return int(self.run())
        except KbError as exc:
            if verbose:
                import traceback

                traceback.print_exc(file=self.error_file)
            self.say(str(exc))
            if isinstance(exc, UsageError):
                self.error_file.write(f"usage: see {self.name} --help\n")
            return exc.exit_code
        except KeyboardInterrupt:
            self.say("interrupted")
            return 130
        except BrokenPipeError:
            _silence_stdout()
            return 0
        except Exception as exc:  # a bug: one line, traceback only with -v
            if verbose:
                import traceback

                traceback.print_exc(file=self.error_file)
            self.say(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)")
            return EXIT_RUNTIME

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> int:
        """Console-script entry point: real process behaviour for signals.

        SIGPIPE stays ignored (sockets need that); a closed stdout ends the run quietly instead.
        SIGTERM stops like Ctrl-C, so servers close their connections and temporary files.
        """
        signal.signal(signal.SIGTERM, _raise_interrupt)
        _standard_streams()
        code = cls(argv).execute()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        return code


def quiet_server_logs(verbose: bool) -> None:
    """A client that goes away mid-download, or sends a malformed request line, is normal for a
    server; aiohttp would log each with a traceback. Shown with -v."""
    if not verbose:
        import logging

        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)


def _standard_streams() -> None:
    """stdout is UTF-8 whatever the locale; stdin lines keep a file name's bytes as os.fsdecode does."""
    for stream, settings in ((sys.stdout, {"encoding": "utf-8"}),
                             (sys.stdin, {"errors": "surrogateescape"})):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(**settings)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
