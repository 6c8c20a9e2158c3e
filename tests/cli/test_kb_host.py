"""kb-host: configuration (questions, --auto, passcode, port), usage errors and its output lines."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kbtools.cli.kb_host import KbHost
from tests.conftest import run_cli, validate
from tests.netfixtures import ROOT, free_port, network, share_config, write_kbnode  # noqa: F401

PASS = "hubpass"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """~/.kbucket-settings goes to a temporary home."""
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


def test_interactive_refusal_and_end_of_input(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    result = run_cli(KbHost, share, stdin="\nno\n")
    assert result.code == 2
    assert "This system should only be used to share resources for scientific research" in result.stderr
    result = run_cli(KbHost, share, stdin="myshare\nyes\n")
    assert result.code == 2 and "end of input" in result.stderr


def test_interactive_questions_answered_through_stdin(network, tmp_path, home):
    hub = network.hub("hub", passcode=PASS)
    share = tmp_path / "asked"
    share.mkdir()
    (share / "one.txt").write_text("one")
    port = free_port()
    answers = ["",  # name: the default (the directory's name)
               "maybe", "yes",  # re-asked after an invalid answer
               "a share answered on stdin",
               "Ada Lovelace",
               "not-an-email", "ada@example.org",
               "yes",
               f"http://127.0.0.1:{port}",
               hub.url,
               PASS]
    proc = start(share, stdin="\n".join(answers) + "\n")
    try:
        ready = first_line(proc)
        validate(ready, "kb-host-event")
        assert ready["name"] == "asked" and ready["listen_url"] == f"http://127.0.0.1:{port}"
    finally:
        code, err = stop(proc)
    assert code == 0
    assert "[kbucket] Name for this share: (asked)" in err
    assert "Invalid string: maybe" in err and "Invalid email." in err
    assert f"[kbucket] Share all resources associated with the directory {share.resolve()}? (yes/no)" in err
    config = json.loads((share / ".kbucket" / "kbnode.json").read_text())
    assert config["owner"] == "Ada Lovelace" and config["parent_hub_url"] == hub.url
    assert config["node_id"] == ready["node_id"]
    settings = json.loads((home / ".kbucket-settings").read_text())
    assert settings["default_owner_email"] == "ada@example.org"


def test_passcode_file_and_port_range(network, tmp_path):
    hub = network.hub("hub", passcode=PASS)
    share = tmp_path / "share"
    write_kbnode(share, {**share_config("s", 0, hub.url), "listen_url": "."})
    (tmp_path / "pass").write_text(PASS + "\n")
    port = free_port()
    proc = start(share, "--auto", "--passcode-file", str(tmp_path / "pass"),
                 env={"HEMLOCK_LEAF_PORT_RANGE": f"{port}-{port}"})
    try:
        ready = first_line(proc)
        assert ready["listen_url"] == f"http://localhost:{port}"
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
