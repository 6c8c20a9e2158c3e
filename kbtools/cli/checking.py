"""What the four checkers (mda-info, geom-check, params-check, kb-check) share beyond the base:
one human verdict line per checked file or dataset on stderr, silenced by ``-q``."""
from __future__ import annotations

import argparse
from typing import Any, Iterable

from kbtools.formats.verdict import write_verdicts


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no verdict line on stderr (stdout's JSON is the same)")


def say_verdicts(command: Any, results: Iterable[Any]) -> None:
    """One line per result (``PATH: valid`` / ``PATH: invalid: CODE …; N more errors``) unless -q."""
    if not command.args.quiet:
        write_verdicts(command.error_file, results)
