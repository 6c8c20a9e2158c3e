"""kb-check: check a dataset directory, or every dataset of a study directory."""
from __future__ import annotations

import argparse

from kbtools.cli.base import Command
from kbtools.cli.checking import add_quiet_option, say_verdicts
from kbtools.errors import EXIT_FINDINGS, EXIT_OK
from kbtools.formats.dataset import check_tree


class KbCheck(Command):
    name = "kb-check"
    description = ("Check datasets (directories holding raw.mda, geom.csv, params.json) with the "
                   "cross-file rules. DIR is a dataset or a study (a directory of datasets); "
                   "'-' reads directories from stdin. Prints JSON on stdout and one verdict line "
                   "per dataset on stderr. Exit 1 when a dataset is not valid.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dirs", nargs="+", metavar="DIR", help="dataset or study directory")
        parser.add_argument("--check-data", action="store_true",
                            help="also read float data and check samples are finite (R11)")
        add_quiet_option(parser)

    def run(self) -> int:
        reports = []
        for path in self.iter_inputs(self.args.dirs):
            reports.extend(check_tree(path, check_data=self.args.check_data))
        valid = all(r.valid for r in reports)
        self.emit({"valid": valid, "datasets": [r.to_json() for r in reports]})
        say_verdicts(self, reports)
        return EXIT_OK if valid else EXIT_FINDINGS


main = KbCheck.main
