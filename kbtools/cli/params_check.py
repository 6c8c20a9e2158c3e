"""params-check: check a params.json (strict JSON, the params schema, semantic rules)."""
from __future__ import annotations

import argparse

from kbtools.cli.base import Command
from kbtools.cli.checking import add_quiet_option, say_verdicts
from kbtools.errors import EXIT_FINDINGS, EXIT_OK
from kbtools.formats.params import check_params


class ParamsCheck(Command):
    name = "params-check"
    description = ("Check a params.json of a dataset. Prints JSON on stdout and a verdict line on "
                   "stderr. Exit 1 when not valid.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", help="the params.json file")
        add_quiet_option(parser)

    def run(self) -> int:
        info = check_params(self.args.file)
        self.emit(info.to_json())
        say_verdicts(self, [info])
        return EXIT_OK if info.valid else EXIT_FINDINGS


main = ParamsCheck.main
