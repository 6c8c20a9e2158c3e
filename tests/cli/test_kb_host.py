"""kb-host: configuration (questions, --auto, passcode, port), usage errors and its output lines."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kbtools.cli.kb_host import KbHost
from kbtools.node import config as config_module
from tests.cli.terminal import OnTerminal
from tests.conftest import run_cli, validate
from tests.netfixtures import ROOT, free_port, network, share_config, write_kbnode  # noqa: F401

PASS = "hubpass"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """~/.kbucket-settings goes to a temporary home; in-process runs have no terminal to ask on."""
    monkeypatch.setattr(config_module, "open_terminal", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KBUCKET_HUB_PASSCODE", raising=False)
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def start(node_dir: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
          ) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-host"), str(node_dir), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, start_new_session=True)
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.flush()
    return proc


def port_range(width: int = 100) -> str:
    """A range of ports starting at one free now: the first still free when the share starts is
    taken (a single port could be taken meanwhile by another test's connection)."""
    port = min(free_port(), 65535 - width)
    return f"{port}-{port + width}"


def first_line(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(proc.stderr.read() if proc.stderr else "no output")
    return json.loads(line)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_auto_with_a_missing_field_is_a_usage_error_without_a_prompt(tmp_path):
    share = tmp_path / "share"
    write_kbnode(share, {"node_type": "leaf", "name": "s", "parent_hub_url": "http://127.0.0.1:9"})
    result = run_cli(KbHost, share, "--auto")
    assert result.code == 2 and result.stdout == ""
    assert "Aborting due to missing required field: scientific_research" in result.stderr
    assert "?" not in result.stderr.split("\n")[0]  # no question was asked


def test_fresh_directory_with_auto_stops_at_once(tmp_path):
    share = tmp_path / "fresh"
    share.mkdir()
    result = run_cli(KbHost, share, "--auto")
    assert result.code == 2 and "missing required field" in result.stderr


def test_no_parent_hub_is_a_usage_error(tmp_path):
    share = tmp_path / "share"
    write_kbnode(share, {**share_config("s", free_port(), "."), "parent_hub_url": "."})
    result = run_cli(KbHost, share, "--auto")
    assert result.code == 2 and "parent_hub_url" in result.stderr


def test_usage_errors(tmp_path):
    assert run_cli(KbHost, tmp_path / "missing", "--auto").code == 2
    share = tmp_path / "share"
    write_kbnode(share, share_config("s", free_port(), "http://127.0.0.1:9"))
    result = run_cli(KbHost, share, "--auto", "--passcode-file", tmp_path / "nope")
    assert result.code == 2 and "passcode file" in result.stderr
    result = run_cli(KbHost, share, "--auto", "--passcode", "secret")
    assert result.code == 2  # a passcode is never accepted on the command line


def test_a_taken_port_is_a_runtime_failure(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        share = tmp_path / "share"
        write_kbnode(share, share_config("s", port, "http://127.0.0.1:9"))
        result = run_cli(KbHost, share, "--auto")
    assert result.code == 3 and "cannot listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_to_the_research_question_stops(tmp_path, monkeypatch):
    share = tmp_path / "share"
    share.mkdir()
    monkeypatch.setattr(config_module, "open_terminal",
                        lambda: (io.StringIO("\nno\n"), io.StringIO()))
    result = run_cli(KbHost, share)
    assert result.code == 2
    assert "This system should only be used to share resources for scientific research" in result.stderr
    monkeypatch.setattr(config_module, "open_terminal",
                        lambda: (io.StringIO("myshare\nyes\n"), io.StringIO()))
    result = run_cli(KbHost, share)
    assert result.code == 2 and "end of input" in result.stderr


def kb_index(node_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-index"), str(node_dir), "-q"],
                            stdout=subprocess.PIPE)


def host_env(home: Path, **extra: str) -> dict[str, str]:
    """kb-host's environment: its own HOME, and ports of its own (not the default 2000-3000, which
    any other kb-host on this machine may be taking at the same moment)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(home),
           "HEMLOCK_LEAF_PORT_RANGE": port_range(), **extra}
    for name in ("KBUCKET_HUB_PASSCODE", "KBUCKET_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def test_the_pipeline_asks_on_the_terminal_once_then_never(network, tmp_path, home):
    """`cd study && kb-index . | kb-host .`: stdin carries kb-index's records, the questions go to
    the terminal; the second run asks nothing."""
    hub = network.hub("hub", passcode=PASS)
    study = tmp_path / "study"
    study.mkdir()
    (study / "one.txt").write_text("one")
    env = host_env(home, KBUCKET_URL=hub.url)
    kb_host = [sys.executable, str(ROOT / "bin" / "kb-host"), "."]
    index = kb_index(study)
    with OnTerminal(kb_host, stdin=index.stdout, env=env,
                    log=tmp_path / "first.log", cwd=study) as run:
        assert index.stdout is not None
        index.stdout.close()
        for prompt, answer in [
                ("Name for this share: (study)", ""),
                ("for scientific research purposes (yes/no)?", "maybe"),  # re-asked
                (">> Invalid string: maybe", "yes"),
                ("Brief description of this share:", "two recordings"),
                ("Owner's name (i.e., your full name):", "Ada Lovelace"),
                ("Owner's email (i.e., your email):", "not-an-email"),
                (">> Invalid email.", "ada@example.org"),
                (f"Share all resources associated with the directory {study.resolve()}? (yes/no)", "yes"),
                ("Listen url for this share (use . for http://localhost:[port]): (.)", ""),
                (f"Parent hub url: ({hub.url})", ""),  # the default comes from KBUCKET_URL
                ("Parent hub passcode:", PASS)]:
            run.expect(prompt)
            run.answer(answer)
        line = run.stdout.readline()
        assert line, run.log.read_text()
        lines = [json.loads(line)]
        assert lines[0]["event"] == "connected" and lines[0]["name"] == "study", run.log.read_text()
        while lines[-1]["event"] != "stdin":  # kb-index's records were read from stdin
            lines.append(json.loads(run.stdout.readline()))
        assert lines[-1]["files"] == 1
        assert run.stop() == 0
        lines += [json.loads(line) for line in run.stdout.read().splitlines()]
    index.wait(10)
    assert lines[-1] == {"event": "stopped", "node_id": lines[0]["node_id"]}
    for line in lines:
        validate(line, "kb-host-event")
    err = (tmp_path / "first.log").read_text()
    assert "Name is too long" not in err and "Traceback" not in err
    config = json.loads((study / ".kbucket" / "kbnode.json").read_text())
    assert config["owner"] == "Ada Lovelace" and config["parent_hub_url"] == hub.url
    assert config["node_id"] == lines[0]["node_id"]
    settings = json.loads((home / ".kbucket-settings").read_text())
    assert settings["default_owner_email"] == "ada@example.org"

    index = kb_index(study)
    with OnTerminal(kb_host, stdin=index.stdout, env=env, log=tmp_path / "second.log", cwd=study) as run:
        assert index.stdout is not None
        index.stdout.close()
        line = run.stdout.readline()
        assert line, run.log.read_text()  # kb-host ended without a word on stdout: its stderr says why
        ready = json.loads(line)
        assert ready["event"] == "connected" and ready["node_id"] == lines[0]["node_id"]
        assert run.read_screen() == ""  # nothing asked on the terminal
        assert run.stop() == 0
    index.wait(10)


def test_the_questions_wait_until_the_command_before_it_is_done(tmp_path, home):
    """kb-index draws its progress bar on the terminal where kb-host asks: kb-host asks only once
    kb-index has said its summary (the records read meanwhile reach the share: the test above)."""
    study = tmp_path / "study"
    study.mkdir()
    upstream = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    kb_host = [sys.executable, str(ROOT / "bin" / "kb-host"), "."]
    log = tmp_path / "err.log"
    with OnTerminal(kb_host, stdin=upstream.stdout, env=host_env(home), log=log, cwd=study) as run:
        assert upstream.stdin is not None and upstream.stdout is not None
        upstream.stdout.close()
        upstream.stdin.write('{"type": "file", "path": "one.txt"}\n')
        upstream.stdin.flush()
        deadline = time.monotonic() + 60
        while "waiting for the command before kb-host" not in log.read_text():
            assert time.monotonic() < deadline and run.proc.poll() is None, log.read_text()
            time.sleep(0.05)
        # kb-host now reads stdin before it asks anything: the terminal is still kb-index's.
        assert run.read_screen() == ""
        upstream.stdin.write('{"type": "summary", "files": 1}\n')
        upstream.stdin.flush()
        run.expect("Name for this share: (study)")
        upstream.stdin.close()
    upstream.wait(10)


def test_the_pipeline_without_a_terminal_says_what_to_pass(tmp_path, home):
    study = tmp_path / "study"
    study.mkdir()
    (study / "one.txt").write_text("one")
    index = kb_index(study)
    proc = subprocess.run([sys.executable, str(ROOT / "bin" / "kb-host"), str(study)], stdin=index.stdout,
                          capture_output=True, text=True, env=host_env(home), timeout=60,
                          start_new_session=True)  # no controlling terminal
    index.wait(10)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Name is too long" not in proc.stderr and "?" not in proc.stderr
    assert ("Aborting due to missing required field: scientific_research, owner, owner_email, "
            "confirm_share, parent_hub_url (no terminal to ask on): pass --agree --owner NAME "
            "--email EMAIL --hub URL") in proc.stderr


def test_set_up_from_nothing_without_a_terminal(network, tmp_path, home):
    """From cron, make or systemd: options and environment variables answer everything."""
    hub = network.hub("hub", passcode=PASS)
    share = tmp_path / "share"
    share.mkdir()
    (share / "one.txt").write_text("one")
    env = host_env(home, KBUCKET_HUB_PASSCODE=PASS, HEMLOCK_LEAF_PORT_RANGE=port_range())
    proc = start(share, "--hub", hub.url, "--owner", "Ada Lovelace", "--email", "ada@example.org",
                 "--agree", env=env)
    try:
        ready = first_line(proc)
        assert ready["event"] == "connected" and ready["name"] == "share"
    finally:
        code, err = stop(proc)
    assert code == 0 and "?" not in err.replace("?node_id", "")
    config = json.loads((share / ".kbucket" / "kbnode.json").read_text())
    assert config["parent_hub_url"] == hub.url and config["confirm_share"] == "yes"
    assert "parent_hub_passcode" not in config or config["parent_hub_passcode"] == ""  # never stored
    proc = start(share, env=env)  # later runs: no options, no questions
    try:
        assert first_line(proc)["node_id"] == ready["node_id"]
    finally:
        code, err = stop(proc)
    assert code == 0


def test_a_broken_kbnode_json_is_named_with_exit_2(tmp_path):
    share = tmp_path / "share"
    (share / ".kbucket").mkdir(parents=True)
    (share / ".kbucket" / "kbnode.json").write_bytes(b'{"name": "\xff\xfe"}')
    result = run_cli(KbHost, share, "--auto")
    assert result.code == 2 and result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"kb-host: {(share / '.kbucket' / 'kbnode.json').resolve()}: not UTF-8 text")
    assert "internal error" not in result.stderr
    (share / ".kbucket" / "kbnode.json").write_text('{"node_type": "leaf", "owner": {"a": 1}}')
    result = run_cli(KbHost, share)
    assert result.code == 2 and "owner must be a string, not an object" in result.stderr


def test_a_stopped_line_last(network, tmp_path):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode=PASS, files={"one.txt": b"one"})
    assert share.stop() == 0
    events = share.events()
    assert events[-1] == {"event": "stopped", "node_id": share.node_id}
    validate(events[-1], "kb-host-event")


def test_passcode_file_and_port_range(network, tmp_path):
    hub = network.hub("hub", passcode=PASS)
    share = tmp_path / "share"
    write_kbnode(share, {**share_config("s", 0, hub.url), "listen_url": "."})
    (tmp_path / "pass").write_text(PASS + "\n")
    ports = port_range()
    proc = start(share, "--auto", "--passcode-file", str(tmp_path / "pass"),
                 env={"HEMLOCK_LEAF_PORT_RANGE": ports})
    try:
        ready = first_line(proc)
        first, last = map(int, ports.split("-"))
        port = int(ready["listen_url"].rsplit(":", 1)[1])
        assert ready["listen_url"] == f"http://localhost:{port}" and first <= port <= last
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening on the chosen port
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_listens_on_loopback_only_by_default(network, tmp_path):
    hub = network.hub("hub", passcode=PASS)
    share = tmp_path / "share"
    port = free_port()
    write_kbnode(share, share_config("s", port, hub.url))
    proc = start(share, "--auto", env={"KBUCKET_HUB_PASSCODE": PASS})  # no --bind
    try:
        first_line(proc)
        assert listening_addresses(port) == {"127.0.0.1"}  # the original listened on 0.0.0.0
    finally:
        stop(proc)
