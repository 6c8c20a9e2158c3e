"""mda-info: read an .mda header and check it against the file size (header + stat only)."""
from __future__ import annotations

import argparse

from kbtools.cli.base import Command
from kbtools.cli.checking import add_quiet_option, say_verdicts
from kbtools.errors import EXIT_FINDINGS, EXIT_OK
from kbtools.formats.mda import check_mda_data, read_mda_header


class MdaInfo(Command):
    name = "mda-info"
    description = ("Print the header of an .mda file as JSON (the original mda-info keys first) and "
                   "check it against the file size; a verdict line on stderr. Exit 1 when a "
                   "finding is an error.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", help="the .mda file")
        parser.add_argument("--raw", action="store_true",
                            help="also apply the raw.mda rules (2-D, channels and timepoints >= 1)")
        parser.add_argument("--check-data", action="store_true",
                            help="also read the data and check float samples are finite (R11)")
        add_quiet_option(parser)

    def run(self) -> int:
        info = read_mda_header(self.args.file, raw=self.args.raw)
        if self.args.check_data:
            info.findings.extend(check_mda_data(info))
        self.emit(info.to_json())
        say_verdicts(self, [info])
        return EXIT_OK if info.valid else EXIT_FINDINGS


main = MdaInfo.main
