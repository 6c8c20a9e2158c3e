"""kb-hub as a command: a real process on loopback (tests/netfixtures.py), its JSON lines, signals,
configuration and passcodes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import websocket

from kbtools.cli.kb_hub import KbHub
from kbtools.node import config as config_module
from kbtools.node.config import websocket_url
from kbtools.protocol.envelope import Signer
from kbtools.protocol.leafconn import register_info
from tests.cli.terminal import OnTerminal
from tests.conftest import ROOT, run_cli, validate
from tests.netfixtures import Network, free_port, hub_config, write_kbnode
from tests.protocol.vectors import identity, kbnode


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch):
    """In-process runs have no terminal to ask on."""
    monkeypatch.setattr(config_module, "open_terminal", lambda: None)


def hub_env(home, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}
    for name in ("KBUCKET_HUB_PASSCODE", "KBUCKET_CHILD_PASSCODE", "KBUCKET_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def register_share(hub_url: str, passcode: str) -> websocket.WebSocket:
    config = kbnode("share")
    frame = Signer(identity("share")).frame(
        {"command": "register_child_node", "passcode": passcode,
         "info": register_info(config, config["listen_url"], "leaf", fast_path=False)}, int(time.time() * 1000))
    ws = websocket.create_connection(websocket_url(hub_url), timeout=10)
    ws.send(frame)
    return ws


def test_ready_line_events_and_a_clean_stop(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("top", passcode="pw")
        ready = hub.ready
        validate(ready, "kb-hub-event")
        assert ready["event"] == "listening" and ready["parent_hub_url"] is None
        assert ready["browse_url"] == f"{ready['listen_url']}/?node_id={hub.node_id}"
        assert requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).json()["info"]["name"] == "top"

        ws = register_share(hub.url, "pw")
        assert json.loads(ws.recv())["command"] == "confirm_registration"
        hub.wait_event(lambda e: e["event"] == "child_connected")
        ws.close()
        hub.wait_event(lambda e: e["event"] == "child_disconnected")
        bad = register_share(hub.url, "wrong")
        assert "Incorrect passcode" in json.loads(bad.recv())["error"]
        hub.wait_event(lambda e: e["event"] == "child_refused")

        assert hub.stop() == 0
        events = hub.events()
        for event in events:
            validate(event, "kb-hub-event")
        assert events[-1] == {"event": "stopped", "node_id": hub.node_id}
        assert "Traceback" not in hub.stderr()


def test_restart_keeps_the_node_id_and_listen_port_0_takes_a_free_port(tmp_path):
    with Network(tmp_path) as net:
        hub = net.hub("h", port=0, listen_url=".")
        first = hub.node_id
        assert hub.ready["listen_url"] == hub.url.replace("127.0.0.1", "localhost")
        hub.stop()
        hub.start()
        assert hub.node_id == first
        stored = json.loads((tmp_path / "h" / ".kbucket" / "kbnode.json").read_text())
        assert stored["node_id"] == first and stored["listen_port"] == "0"


def test_parent_passcode_from_the_environment_or_a_file_never_argv(tmp_path):
    with Network(tmp_path) as net:
        top = net.hub("top", passcode="toppass")
        child = net.hub("child", parent=top, parent_passcode="toppass")
        child.wait_event(lambda e: e["event"] == "parent_connected")
        assert child.ready["parent_hub_url"] == top.url
        (tmp_path / "pc").write_text("toppass\n")
        other = net.hub("other", parent=top, args=("--passcode-file", str(tmp_path / "pc")))
        other.wait_event(lambda e: e["event"] == "parent_connected")
    r = run_cli(KbHub, str(tmp_path / "top"), "--auto", "--passcode", "toppass")
    assert r.code == 2 and "unrecognized arguments" in r.stderr


def test_auto_with_a_missing_field_is_a_usage_error(tmp_path):
    config = hub_config("h", free_port())
    del config["scientific_research"]
    write_kbnode(tmp_path, config)
    r = run_cli(KbHub, str(tmp_path), "--auto")
    assert r.code == 2 and r.stdout == ""
    assert "Aborting due to missing required field: scientific_research" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(KbHub, str(tmp_path / "nope"), "--auto")
    assert r.code == 2
    write_kbnode(tmp_path, hub_config("h", free_port()))
    r = run_cli(KbHub, str(tmp_path), "--auto", "--fast-window", "0")
    assert r.code == 2 and "--fast-window" in r.stderr


def test_a_parent_that_refuses_for_good_ends_the_run(tmp_path):
    with Network(tmp_path) as net:
        top = net.hub("top", passcode="toppass")
        child = net.hub("child", parent=top, parent_passcode="wrong")
        assert child.process is not None and child.process.wait(60) == 3
        events = child.events()
        for event in events:
            validate(event, "kb-hub-event")
        assert events[-2] == {"event": "parent_refused", "parent_hub_url": top.url,
                              "reason": "Incorrect passcode for node child", "permanent": True,
                              "retry_in": None}
        assert events[-1] == {"event": "stopped", "node_id": child.node_id}
        err = child.stderr()
        assert "refused this hub for good: Incorrect passcode for node child" in err
        assert "Traceback" not in err

        stubborn = net.hub("stubborn", parent=top, parent_passcode="wrong", args=("--retry-forever",))
        stubborn.wait_event(lambda e: e["event"] == "parent_refused" and e["retry_in"] is not None)
        assert stubborn.running()


def test_interactive_questions_on_the_terminal_in_a_new_directory(tmp_path):
    """`kb-hub myhub` from nothing: the directory is made, the questions asked on the terminal (no
    parent: no parent passcode asked), then a second run asks nothing."""
    port = free_port()
    env = hub_env(tmp_path)
    node_dir = tmp_path / "new" / "myhub"  # neither exists
    cmd = [sys.executable, str(ROOT / "bin" / "kb-hub"), str(node_dir), "--bind", "127.0.0.1"]
    with OnTerminal(cmd, stdin=subprocess.DEVNULL, env=env, log=tmp_path / "first.log") as run:
        for prompt, answer in [("Name for this hub: (myhub)", ""),
                               ("Are you hosting this hub for scientific research purposes (yes/no)?", "yes"),
                               ("Brief description of this hub:", "a hub for tests"),
                               ("Owner's name (i.e., your full name):", "Ann Owner"),
                               ("Owner's email (i.e., your email):", "ann@example.org"),
                               ("Listen port for this hub: (3240)", str(port)),
                               ("Passcode for this hub:", "secret"),
                               ("Listen url for this hub (use . for http://localhost:[port]): (.)",
                                f"http://127.0.0.1:{port}"),
                               ("Parent hub url (use . for none): (.)", "")]:
            run.expect(prompt)
            run.answer(answer)
        ready = json.loads(run.stdout.readline())
        assert ready["event"] == "listening" and ready["listen_url"] == f"http://127.0.0.1:{port}"
        assert "Parent hub passcode" not in run.read_screen()
        stored = json.loads((node_dir / ".kbucket" / "kbnode.json").read_text())
        assert stored["name"] == "myhub" and stored["passcode"] == "secret" and stored["parent_hub_url"] == "."
        assert run.stop() == 0
    settings = json.loads((tmp_path / ".kbucket-settings").read_text())
    assert settings["default_owner"] == "Ann Owner"
    err = (tmp_path / "first.log").read_text()
    assert "Traceback" not in err

    with OnTerminal(cmd, stdin=subprocess.DEVNULL, env=env, log=tmp_path / "second.log") as run:
        assert json.loads(run.stdout.readline())["node_id"] == ready["node_id"]
        assert run.read_screen() == ""  # nothing asked
        assert run.stop() == 0


def test_set_up_from_nothing_without_a_terminal(tmp_path):
    """A systemd unit or a Makefile: options and environment variables answer everything."""
    node_dir = tmp_path / "srv" / "hub"
    env = hub_env(tmp_path, KBUCKET_CHILD_PASSCODE="childpass")
    cmd = [sys.executable, str(ROOT / "bin" / "kb-hub"), str(node_dir), "--bind", "127.0.0.1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
                       start_new_session=True)
    assert r.returncode == 2 and r.stdout == ""
    assert ("Aborting due to missing required field: scientific_research, owner, owner_email "
            "(no terminal to ask on): pass --agree --owner NAME --email EMAIL") in r.stderr
    p = subprocess.Popen(cmd + ["--owner", "Ann Owner", "--email", "ann@example.org", "--agree",
                                "--port", "0", "--name", "lab-hub"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         text=True, start_new_session=True)
    try:
        assert p.stdout is not None
        ready = json.loads(p.stdout.readline())
        validate(ready, "kb-hub-event")
        assert ready["name"] == "lab-hub" and ready["parent_hub_url"] is None
        assert "Incorrect passcode" in json.loads(register_share(ready["url"], "wrong").recv())["error"]
        ws = register_share(ready["url"], "childpass")  # the passcode from the environment
        assert json.loads(ws.recv())["command"] == "confirm_registration"
        ws.close()
    finally:
        p.terminate()
        p.wait(15)
    assert p.returncode == 0
    stored = json.loads((node_dir / ".kbucket" / "kbnode.json").read_text())
    assert stored["listen_port"] == "0" and stored["owner"] == "Ann Owner"
    assert not stored.get("passcode")  # a secret from the environment is never written
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True, start_new_session=True)  # later runs: nothing to pass
    try:
        assert p.stdout is not None
        assert json.loads(p.stdout.readline())["node_id"] == ready["node_id"]
    finally:
        p.terminate()
        p.wait(15)


def test_not_a_directory_and_a_broken_kbnode_json(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli(KbHub, str(tmp_path / "file"))
    assert r.code == 2 and "not a directory" in r.stderr
    write_kbnode(tmp_path / "h", hub_config("h", free_port()))
    (tmp_path / "h" / ".kbucket" / "kbnode.json").write_text('{"node_type": "hub",')
    r = run_cli(KbHub, str(tmp_path / "h"))
    assert r.code == 2 and r.stdout == "" and "internal error" not in r.stderr
    assert f"{(tmp_path / 'h' / '.kbucket' / 'kbnode.json').resolve()}: not valid JSON" in r.stderr
