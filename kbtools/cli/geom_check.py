"""geom-check: check a geom.csv, optionally against a channel count or a raw.mda."""
from __future__ import annotations

import argparse

from kbtools.cli.base import Command
from kbtools.cli.checking import add_quiet_option, say_verdicts
from kbtools.errors import EXIT_FINDINGS, EXIT_OK
from kbtools.formats.geom import check_geom, check_geom_rows
from kbtools.formats.mda import read_mda_header


def _channel_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class GeomCheck(Command):
    name = "geom-check"
    description = ("Check a geom.csv (one x,y or x,y,z position per channel). Prints JSON on stdout "
                   "and a verdict line on stderr. Exit 1 when not valid.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", help="the geom.csv file")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--channels", type=_channel_count, metavar="M",
                           help="the number of rows geom.csv must have")
        which.add_argument("--mda", metavar="RAW", help="take the channel count from this raw.mda")
        add_quiet_option(parser)

    def run(self) -> int:
        info = check_geom(self.args.file, channels=self.args.channels)
        if self.args.mda:
            raw = read_mda_header(self.args.mda, raw=True)
            info.findings.extend(raw.findings)
            shape = raw.channels_timepoints  # known from the header even when the data is cut off
            if shape is not None:
                check_geom_rows(info, shape[0], shape[1], raw_name=self.args.mda)
        self.emit(info.to_json())
        say_verdicts(self, [info])
        return EXIT_OK if info.valid else EXIT_FINDINGS


main = GeomCheck.main
