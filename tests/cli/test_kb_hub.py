"""kb-hub as a command: a real process on loopback (tests/netfixtures.py), its JSON lines, signals,
configuration and passcodes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests
import websocket

from kbtools.cli.kb_hub import KbHub
from kbtools.node.config import websocket_url
from kbtools.protocol.envelope import Signer
from kbtools.protocol.leafconn import register_info
from tests.conftest import ROOT, run_cli, validate
from tests.netfixtures import Network, free_port, hub_config, write_kbnode
from tests.protocol.vectors import identity, kbnode


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
        (tmp_path / "pc").write_text("wrong\n")
        other = net.hub("other", parent=top, args=("--passcode-file", str(tmp_path / "pc")))
        event = other.wait_event(lambda e: e["event"] == "parent_error")
        assert event["error"] == "Incorrect passcode for node other"
        (tmp_path / "pc").write_text("toppass\n")
        other.stop()
        other.start()
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


def test_interactive_questions_then_serving(tmp_path):
    port = free_port()
    answers = ["myhub", "yes", "a hub for tests", "Ann Owner", "ann@example.org", str(port), "secret",
               f"http://127.0.0.1:{port}", ".", ""]
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("KBUCKET_HUB_PASSCODE", None)
    node_dir = tmp_path / "hub"
    node_dir.mkdir()
    p = subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-hub"), str(node_dir), "--bind", "127.0.0.1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(("\n".join(answers) + "\n").encode())
        p.stdin.flush()
        ready = json.loads(p.stdout.readline())
        assert ready["listen_url"] == f"http://127.0.0.1:{port}"
        stored = json.loads((node_dir / ".kbucket" / "kbnode.json").read_text())
        assert stored["name"] == "myhub" and stored["passcode"] == "secret" and stored["parent_hub_url"] == "."
        settings = json.loads((tmp_path / ".kbucket-settings").read_text())
        assert settings["default_owner"] == "Ann Owner"
        p.send_signal(signal.SIGINT)
        assert p.wait(15) == 0
        err = p.stderr.read().decode() if p.stderr else ""
        assert "[kbucket] Name for this hub:" in err and "Traceback" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
