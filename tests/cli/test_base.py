"""The shared command contract, exercised through a minimal command."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from kbtools.cli.base import Command
from kbtools.errors import RuntimeFailure

from ..conftest import ROOT, run_cli

COMMANDS = ["mda_info", "geom_check", "params_check", "kb_check", "kb_index", "kb_url", "kb_host",
            "kb_hub", "kb_get"]


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
    assert r.stderr.splitlines()[0] == "echo-test: unrecognized arguments: --nope"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_names_itself_once_in_a_usage_error(module):
    command = importlib.import_module(f"kbtools.cli.{module}").main.__self__
    r = run_cli(command, "x", "--no-such-option")
    assert r.code == 2
    assert r.stderr.splitlines()[0] == f"{command.name}: unrecognized arguments: --no-such-option"


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


def _echo_process(tmp_path, args, stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = tmp_path / "echo.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.cli.test_base import Echo\n"
        f"sys.exit(Echo.main({args!r}))\n"
    )
    return subprocess.run([sys.executable, script], input=stdin, capture_output=True, cwd=ROOT,
                          env={**os.environ, **env})


NOT_UTF8 = [b"ds\xff", b"caf\xe9.mda", b"\x80\x81\xfe/raw.mda", b"ok-\xc3\xa9-bad-\xc3"]


@pytest.mark.parametrize("locale", ["C", "C.UTF-8", "en_US.ISO-8859-1"])
def test_stdout_is_utf8_json_whatever_the_names_and_the_locale(tmp_path, locale):
    # Names that are not UTF-8, from stdin and from argv, come out as \udcXX escapes that
    # os.fsencode turns back into the very bytes.
    stdin = b"".join(name + b"\n" for name in NOT_UTF8)
    env = {"LC_ALL": locale, "LANG": locale, "PYTHONIOENCODING": ""}
    p = _echo_process(tmp_path, ["-", os.fsdecode(b"arg\xff")], stdin, env)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode("utf-8")  # strict: raises on a raw byte
    paths = [json.loads(line)["path"] for line in text.split("\n") if line]
    assert [os.fsencode(p) for p in paths] == NOT_UTF8 + [b"arg\xff"]
    assert "\\udcff" in text


def test_dump_json_escapes_only_lone_surrogates():
    from kbtools.cli.base import dump_json

    assert dump_json({"p": "caf\u00e9 \U0001f600"}) == '{"p": "caf\u00e9 \U0001f600"}'
    assert dump_json({"p": os.fsdecode(b"a\xffb")}) == '{"p": "a\\udcffb"}'
    assert json.loads(dump_json([os.fsdecode(b"\xfe")], pretty=True)) == [os.fsdecode(b"\xfe")]


def test_kb_check_from_stdin_with_a_name_that_is_not_utf8(tmp_path):
    (tmp_path / os.fsdecode(b"ds\xff")).mkdir()
    p = subprocess.run([str(ROOT / "bin" / "kb-check"), "-"], input=b"ds\xff\n", capture_output=True,
                       cwd=tmp_path, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout.decode("utf-8"))
    assert os.fsencode(report["datasets"][0]["path"]) == b"ds\xff"
