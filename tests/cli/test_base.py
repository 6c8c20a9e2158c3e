"""The shared command contract, exercised through a minimal command."""
from __future__ import annotations

import subprocess
import sys

from kbtools.cli.base import Command
from kbtools.errors import RuntimeFailure

from ..conftest import ROOT, run_cli


class Echo(Command):
    name = "echo-test"
    description = "echo paths"
    output_format = "ndjson"

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*")
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--crash", action="store_true")

    def run(self):
        if self.args.fail:
            raise RuntimeFailure("disk on fire")
        if self.args.crash:
            raise ValueError("bug")
        for p in self.iter_inputs(self.args.paths):
            self.emit({"path": p})
        return 0


def test_stdin_dash_expands_lines():
    r = run_cli(Echo, "a", "-", "z", stdin="b c\nd\n")
    assert r.code == 0
    assert [x["path"] for x in r.records] == ["a", "b c", "d", "z"]


def test_usage_error_exits_2_with_one_line():
    r = run_cli(Echo, "--nope")
    assert r.code == 2
    assert "unrecognized arguments" in r.stderr
    assert "Traceback" not in r.stderr


def test_runtime_failure_exits_3_without_traceback():
    r = run_cli(Echo, "--fail")
    assert r.code == 3 and "disk on fire" in r.stderr and "Traceback" not in r.stderr


def test_internal_error_traceback_only_with_verbose():
    r = run_cli(Echo, "--crash")
    assert r.code == 3 and "Traceback" not in r.stderr
    r = run_cli(Echo, "--crash", "-v")
    assert r.code == 3 and "Traceback" in r.stderr


def test_version_and_help():
    r = run_cli(Echo, "--version")
    assert r.code == 0
    r = run_cli(Echo, "--help")
    assert r.code == 0


def test_closed_stdout_is_quiet(tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.cli.test_base import Echo\n"
        "sys.exit(Echo.main(['-']))\n"
    )
    lines = "".join(f"line{i}\n" for i in range(200000))
    p = subprocess.run(
        f"{sys.executable} {script} | head -1",
        shell=True, input=lines, capture_output=True, text=True, cwd=ROOT,
    )
    assert p.stdout.strip() == '{"path": "line0"}'
    assert p.stderr == ""
