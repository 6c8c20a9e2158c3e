"""kb-host processes under a real kb-hub on loopback: register, report, tunnel, keep fresh, reconnect."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from functools import partial
from typing import Any

import pytest
import requests

from tests.conftest import validate
from tests.netfixtures import ROOT, free_port, network, share_config, write_kbnode  # noqa: F401
from tests.share.conftest import SHARE_ID, VECTORS
from tests import waiting

PASS = "hubpass"
BIG = os.urandom(3 * 1024 * 1024 + 12345)
FILES = {"big.bin": BIG, "one.txt": b"one text\n", "sp ace/f #1?.txt": b"odd name", "ü/日本.txt": b"u"}


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


#: Requests to a node that is still starting (refused, or not JSON yet) count as "not yet".
wait_for = partial(waiting.wait_for, ignore=(requests.RequestException, ValueError))


def find(hub: Any, digest: str) -> dict[str, Any]:
    return requests.get(f"{hub.url}/find/{digest}/", timeout=10).json()


def found(hub: Any, digest: str) -> bool:
    return bool(find(hub, digest).get("found"))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "compatible"])
def test_register_report_and_tunnel_byte_identical(network, fast):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode=PASS, files=FILES,
                          args=() if fast else ("--no-fast-path",))
    ready = share.ready
    validate(ready, "kb-host-event")
    sid = ready["node_id"]
    assert ready["kbucket_url"] == f"kbucket://{sid}/"
    assert ready["browse_url"] == f"{hub.url}/?node_id={sid}"
    assert ready["parent_hub_id"] == hub.node_id
    joined = hub.wait_event(lambda e: e.get("event") == "child_connected" and e.get("node_id") == sid)
    assert joined["fast_path"] is fast  # negotiated with a kbtools hub unless --no-fast-path
    for name, data in FILES.items():
        wait_for(lambda: found(hub, sha1(data)), what=f"{name} never found")
    answer = find(hub, sha1(BIG))
    assert answer["results"][0] == {"kbshare_id": sid, "size": len(BIG), "path": "big.bin"}
    url = f"{hub.url}/{sid}/download/big.bin"
    body = requests.get(url, timeout=60).content
    assert sha1(body) == sha1(BIG)
    part = requests.get(url, headers={"Range": "bytes=1000-1999999"}, timeout=60)
    assert part.status_code == 206 and part.content == BIG[1000:2000000]
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(BIG)
    odd = requests.get(f"{hub.url}/{sid}/download/sp%20ace/f%20%231%3F.txt", timeout=10)
    assert odd.content == b"odd name"
    status = requests.get(f"{hub.url}/{sid}/download/.kbucket/private.pem", timeout=10)
    assert 400 <= status.status_code < 500 and b"PRIVATE" not in status.content
    info = requests.get(f"{hub.url}/{sid}/api/nodeinfo", timeout=10).json()
    assert info["info"]["node_id"] == sid and info["parent_hub_info"]["node_id"] == hub.node_id
    listing = requests.get(f"{hub.url}/{sid}/api/readdir/", timeout=10).json()
    assert {f["name"] for f in listing["files"]} == {"big.bin", "one.txt"}


def test_files_added_changed_and_deleted_while_hosting(network):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode=PASS, files={"one.txt": b"one"})
    wait_for(lambda: found(hub, sha1(b"one")))
    (share.node_dir / "new.txt").write_bytes(b"a new file")
    wait_for(lambda: found(hub, sha1(b"a new file")), what="the new file never showed")
    (share.node_dir / "one.txt").write_bytes(b"changed content")
    wait_for(lambda: found(hub, sha1(b"changed content")), what="the change never showed")
    wait_for(lambda: not found(hub, sha1(b"one")), what="the old content stayed findable")
    (share.node_dir / "new.txt").unlink()
    wait_for(lambda: not found(hub, sha1(b"a new file")), what="the deleted file stayed findable")
    event = share.wait_event(lambda e: e.get("event") == "index" and "new.txt" in e.get("removed_paths", []))
    validate(event, "kb-host-event")


def test_restart_keeps_the_id_and_the_hub_finds_it_again(network):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode=PASS, files={"one.txt": b"one"})
    first = share.node_id
    assert share.stop() == 0  # SIGTERM stops cleanly
    wait_for(lambda: not found(hub, sha1(b"one")), what="the stopped share stayed findable")
    share.start()
    assert share.node_id == first
    wait_for(lambda: found(hub, sha1(b"one")))


def test_hub_down_then_up_the_share_reconnects(network):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode=PASS, files={"one.txt": b"one"})
    hub.stop()
    share.wait_event(lambda e: e.get("event") == "disconnected")
    hub.start()
    event = share.wait_event(lambda e: e.get("event") == "reconnected", timeout=60)
    validate(event, "kb-host-event")
    wait_for(lambda: found(hub, sha1(b"one")))
    assert "retrying in" in share.stderr()


def test_a_wrong_passcode_is_said_on_stdout_and_ends_the_run(network):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode="wrong", files={"one.txt": b"one"}, start=False)
    share.start(wait=False)
    assert share.process is not None and share.process.wait(60) == 3
    events = share.events()
    for event in events:
        validate(event, "kb-host-event")
    node_id = json.loads((share.node_dir / ".kbucket" / "kbnode.json").read_text())["node_id"]
    assert events == [{"event": "refused", "parent_hub_url": hub.url,
                       "reason": "Incorrect passcode for node share", "permanent": True,
                       "retry_in": None},
                      {"event": "stopped", "node_id": node_id}]
    err = share.stderr()
    assert "refused this share for good: Incorrect passcode for node share" in err
    assert "--retry-forever" in err and "Traceback" not in err


def test_retry_forever_keeps_trying_after_a_refusal(network):
    hub = network.hub("hub", passcode=PASS)
    share = network.share("share", hub, passcode="wrong", files={"one.txt": b"one"},
                          args=("--retry-forever",), start=False)
    share.start(wait=False)
    wait_for(lambda: len(share.events()) >= 2, timeout=30, what="no retry after a refused registration")
    assert share.running()
    for event in share.events():
        validate(event, "kb-host-event")
        assert event["event"] == "refused" and event["permanent"] is True and event["retry_in"] > 0
    assert "retrying in" in share.stderr()


def test_a_refusal_that_can_heal_is_retried(network):
    """The same node id already connected (a copy of the share's keys, or a link the hub has not yet
    seen die) is refused; the share says so and keeps trying."""
    hub = network.hub("hub", passcode=PASS)
    first = network.share("first", hub, passcode=PASS, files={"one.txt": b"one"})
    twin_dir = network.root / "twin"
    (twin_dir / ".kbucket").mkdir(parents=True)
    for name in ("private.pem", "public.pem"):
        shutil.copyfile(first.node_dir / ".kbucket" / name, twin_dir / ".kbucket" / name)
    write_kbnode(twin_dir, share_config("twin", free_port(), hub.url))
    twin = network.share("twin", hub, passcode=PASS, start=False)
    twin.start(wait=False)
    event = wait_for(lambda: twin.events(), what="no refusal on stdout")[0]
    validate(event, "kb-host-event")
    assert event["event"] == "refused" and event["permanent"] is False and event["retry_in"] > 0
    assert f"A connected leaf with id={first.node_id} already exists" in event["reason"]
    assert twin.running()


def test_an_original_node_directory_is_used_as_it_is(network):
    hub = network.hub("hub", passcode=PASS)
    node_dir = network.root / "orig"
    kb = node_dir / ".kbucket"
    kb.mkdir(parents=True)
    for f in ("private.pem", "public.pem"):
        shutil.copyfile(VECTORS / "nodes" / "share" / f, kb / f)
    config = json.loads((VECTORS / "nodes" / "share" / "kbnode.json").read_text())
    config["parent_hub_url"] = hub.url
    config["listen_url"] = "."
    (kb / "kbnode.json").write_text(json.dumps(config, indent=4))
    (node_dir / "one.txt").write_bytes(b"one text\n")
    share = network.share("orig", hub, passcode=PASS)
    assert share.node_id == SHARE_ID
    wait_for(lambda: found(hub, sha1(b"one text\n")))
    assert json.loads((kb / "kbnode.json").read_text())["node_id"] == SHARE_ID


def test_kb_index_records_on_stdin(network, tmp_path):
    hub = network.hub("hub", passcode=PASS)
    node_dir = tmp_path / "piped"
    (node_dir / "a").mkdir(parents=True)
    (node_dir / "a" / "x.bin").write_bytes(b"x" * 5000)
    write_kbnode(node_dir, share_config("piped", free_port(), hub.url))
    env = {**os.environ, "KBUCKET_HUB_PASSCODE": PASS, "PYTHONUNBUFFERED": "1"}
    index = subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-index"), str(node_dir), "-q"],
                             stdout=subprocess.PIPE)
    host = subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-host"), str(node_dir), "--auto"],
                            stdin=index.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    assert index.stdout is not None
    index.stdout.close()
    try:
        lines = []
        assert host.stdout is not None
        while not any(line.get("event") == "stdin" for line in lines):
            line = host.stdout.readline()
            assert line, host.stderr.read() if host.stderr else ""
            lines.append(json.loads(line))
        stdin_event = next(line for line in lines if line["event"] == "stdin")
        validate(stdin_event, "kb-host-event")
        assert stdin_event["files"] == 1 and stdin_event["end_of_input"] is False  # at the summary
        wait_for(lambda: found(hub, sha1(b"x" * 5000)))
    finally:
        index.wait(10)
        host.terminate()
        assert host.wait(15) == 0
