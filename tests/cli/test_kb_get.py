"""kb-get against a loopback share and hub: records, directories, cache, errors, --cat, kill and resume."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kbtools.cli.kb_get import KbGet
from kbtools.client.download import part_path, state_path

from ..client.conftest import fill_share
from ..client.loopback import Network, free_port
from ..conftest import ROOT, run_cli, validate


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KBUCKET_URL", raising=False)
    root = tmp_path / "share"
    root.mkdir()
    contents = fill_share(root)
    network = Network(root).start()
    try:
        yield network, contents, tmp_path / "out"
    finally:
        network.stop()


def get(network, *args, stdin=""):
    result = run_cli(KbGet, "--hub", network.hub.url, "--chunk-size", "1", *args, stdin=stdin)
    for record in result.records:
        validate(record, "kb-get-record")
    return result


def test_a_file_then_notneeded(env):
    network, contents, out = env
    first = get(network, network.url("sub/deep.bin"), "-o", out / "deep.bin")
    assert first.code == 0, first.stderr
    [record] = first.records
    assert record["status"] == "ok" and record["path"] == str(out / "deep.bin")
    assert record["sha1"] == hashlib.sha1(contents["sub/deep.bin"]).hexdigest()
    assert (out / "deep.bin").read_bytes() == contents["sub/deep.bin"]
    again = get(network, network.url("sub/deep.bin"), "-o", out / "deep.bin")
    assert again.code == 0 and again.records[0]["status"] == "notneeded"


def test_a_directory_recursively_with_awkward_names(env):
    network, contents, out = env
    result = get(network, network.url(""), "-o", out)
    assert result.code == 0, result.stderr
    assert sorted(r["url"] for r in result.records) == sorted(network.url(rel) for rel in contents)
    for rel, data in contents.items():
        assert (out / rel).read_bytes() == data
    sub = get(network, network.url("sp ace"), "-o", str(out / "two") + "/")
    assert sub.code == 0 and (out / "two" / "sp ace" / "f #1?.txt").read_bytes() == contents["sp ace/f #1?.txt"]


def test_sha1_urls_and_stdin(env, monkeypatch):
    network, contents, out = env
    sha1 = hashlib.sha1(contents["hello.txt"]).hexdigest()
    out.mkdir()
    monkeypatch.chdir(out)
    result = get(network, "-", stdin=f"sha1://{sha1}/greeting.txt\nsha1://{sha1}\n")
    assert result.code == 0, result.stderr
    assert [r["path"] for r in result.records] == ["greeting.txt", sha1]
    assert (out / "greeting.txt").read_bytes() == (out / sha1).read_bytes() == contents["hello.txt"]


def test_the_cache_serves_a_second_fetch_without_the_network(env, tmp_path):
    network, contents, out = env
    assert get(network, network.url("sub/deep.bin"), "-o", out / "a").code == 0
    sha1 = hashlib.sha1(contents["sub/deep.bin"]).hexdigest()
    assert (tmp_path / "cache" / sha1[0] / sha1[1:3] / sha1).read_bytes() == contents["sub/deep.bin"]
    network.stop()
    offline = run_cli(KbGet, f"sha1://{sha1}/b", "-o", out / "b")
    assert offline.code == 0, offline.stderr
    assert offline.records[0]["status"] == "ok" and (out / "b").read_bytes() == contents["sub/deep.bin"]


def test_no_cache_leaves_the_cache_alone(env, tmp_path):
    network, _, out = env
    assert get(network, "--no-cache", network.url("hello.txt"), "-o", out / "h").code == 0
    assert not (tmp_path / "cache").exists()


def test_missing_file_and_unknown_node_are_error_records_exit_1(env):
    network, _, out = env
    result = get(network, network.url("no such.txt"), "kbucket://ffffffffffff/x", "-o", out)
    assert result.code == 1
    assert [r["status"] for r in result.records] == ["error", "error"]
    assert "no such.txt" in result.records[0]["message"] and "ffffffffffff" in result.records[1]["message"]
    assert not out.exists()
    assert "Traceback" not in result.stderr


def test_hub_down_exits_3_and_no_hub_is_a_usage_error(env):
    network, _, out = env
    down = run_cli(KbGet, "--hub", f"http://127.0.0.1:{free_port()}", network.url("hello.txt"), "-o", out / "h")
    assert down.code == 3 and "connection refused" in down.records[0]["message"]
    validate(down.records[0], "kb-get-record")
    assert run_cli(KbGet, network.url("hello.txt")).code == 2


def test_wrong_bytes_everywhere_is_an_error_and_no_file(env):
    network, _, out = env
    network.share.behaviour.wrong_bytes = network.hub.behaviour.wrong_bytes = True
    result = get(network, network.url("sub/deep.bin"), "-o", out / "deep.bin")
    assert result.code == 3 and "SHA-1 mismatch" in result.records[0]["message"]
    assert list(out.iterdir()) == []


def run_kb_get(*args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "bin" / "kb-get"), *map(str, args)],
                          capture_output=True, timeout=60, **kwargs)


def test_cat_writes_the_verified_bytes(env):
    network, contents, _ = env
    for extra in ([], ["--no-cache"]):
        done = run_kb_get("--hub", network.hub.url, "--cat", *extra, network.url("ünï cødé/naïve ✓.bin"))
        assert done.returncode == 0, done.stderr
        assert done.stdout == contents["ünï cødé/naïve ✓.bin"]


def test_killed_half_way_then_resumed(env):
    network, contents, out = env
    target = out / "deep.bin"
    network.share.behaviour.hold_after = 2 * 1024 * 1024  # two chunks, then the share stalls
    process = subprocess.Popen([sys.executable, str(ROOT / "bin" / "kb-get"), "--hub", network.hub.url,
                                "--no-cache", "--chunk-size", "1", "-j", "1", network.url("sub/deep.bin"),
                                "-o", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if len(json.loads(state_path(target).read_text())["done"]) >= 2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
        network.share.behaviour.released.set()
    assert not target.exists() and part_path(target).exists()
    done_before = len(json.loads(state_path(target).read_text())["done"])
    assert done_before == 2
    network.share.behaviour = type(network.share.behaviour)()
    result = get(network, "--no-cache", network.url("sub/deep.bin"), "-o", target)
    assert result.code == 0 and target.read_bytes() == contents["sub/deep.bin"]
    assert len([r for r in network.share.behaviour.requests if r.startswith("GET")]) == 4 - done_before
    assert not part_path(target).exists() and not state_path(target).exists()


def test_spikeinterface_reads_a_dataset_fetched_by_kb_get(tmp_path, monkeypatch):
    from kbtools.formats.sample import write_sample_study

    import spikeinterface.extractors as se
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    study = tmp_path / "study"
    write_sample_study(study)
    network = Network(study).start()
    try:
        result = run_cli(KbGet, "--hub", network.hub.url, network.url("dataset1"), "-o", tmp_path / "got")
    finally:
        network.stop()
    assert result.code == 0, result.stderr
    fetched = se.read_mda_recording(tmp_path / "got")
    original = se.read_mda_recording(study / "dataset1")
    assert fetched.get_num_channels() == original.get_num_channels()
    assert (fetched.get_traces() == original.get_traces()).all()


@pytest.mark.parametrize("name", ["../escape.txt", "..", "a/b"])
def test_a_hub_listing_unsafe_names_writes_nothing_outside(env, name):
    network, _, out = env
    network.hub.behaviour.extra_entries = [name]
    result = get(network, network.url(""), "-o", out / "inside")
    assert result.code == 3 and "unsafe entry name" in result.records[-1]["message"]
    assert not (out / "escape.txt").exists() and not (out / "b").exists()


class _Terminal:
    """A stderr that says it is a terminal, to see the progress bar."""

    def __init__(self):
        self.text = []

    def isatty(self):
        return True

    def write(self, text):
        self.text.append(text)

    def flush(self):
        pass


def test_progress_bar_only_on_a_terminal(env):
    import io

    network, _, out = env
    plain = get(network, network.url("sub/deep.bin"), "-o", out / "a")
    assert plain.stderr == ""
    terminal = _Terminal()
    code = KbGet(["--hub", network.hub.url, network.url("sub/deep.bin"), "-o", str(out / "b"), "--no-cache"],
                 output_file=io.StringIO(), error_file=terminal).execute()
    assert code == 0 and "deep.bin" in "".join(terminal.text)


def test_a_directory_through_the_hub_costs_one_find_and_one_probe(env):
    network, contents, out = env
    network.share.stop()  # only the hub can reach the share
    result = get(network, network.url(""), "-o", out)
    assert result.code == 0, result.stderr
    assert all((out / rel).read_bytes() == data for rel, data in contents.items())
    kinds = [line.split(" ", 1)[0] for line in network.hub.behaviour.requests]
    assert kinds.count("FIND") == 1 and kinds.count("HEAD") == 1


# -- which route carried the bytes ---------------------------------------------------------------------

def test_each_record_names_the_route_and_the_url_that_served_it(env):
    network, contents, out = env
    direct = get(network, network.url("sub/deep.bin"), "-o", out / "direct.bin")
    assert direct.code == 0, direct.stderr
    [record] = direct.records
    assert record["route"] == "direct" and record["source"].startswith(network.share.url + "/")
    cached = get(network, network.url("sub/deep.bin"), "-o", out / "cached.bin")
    assert cached.records[0]["route"] == "cache" and cached.records[0]["source"] is None
    again = get(network, network.url("sub/deep.bin"), "-o", out / "cached.bin")
    assert again.records[0]["status"] == "notneeded" and again.records[0]["route"] is None
    network.share.stop()  # only the hub can reach the share now
    relayed = get(network, "--no-cache", network.url("sub/deep.bin"), "-o", out / "relayed.bin")
    assert relayed.code == 0, relayed.stderr
    assert relayed.records[0]["route"] == "hub"
    assert relayed.records[0]["source"].startswith(network.hub.url + "/")
    assert (out / "relayed.bin").read_bytes() == contents["sub/deep.bin"]


def test_an_http_url_of_the_share_itself_is_direct(env):
    network, _, out = env
    url = f"{network.share.url}/{network.node_id}/download/hello.txt"
    result = run_cli(KbGet, "--no-cache", url, "-o", out / "h")
    assert result.code == 0, result.stderr
    assert result.records[0]["route"] == "direct" and result.records[0]["source"] == url
    hub_url = url.replace(network.share.url, network.hub.url)
    via_hub = run_cli(KbGet, "--no-cache", hub_url, "-o", out / "h2")  # the URL given is tried first
    assert via_hub.code == 0, via_hub.stderr
    assert via_hub.records[0]["route"] == "hub" and via_hub.records[0]["source"] == hub_url


def test_the_progress_bar_says_direct_or_via_which_hub(env):
    import io

    network, _, out = env
    terminal = _Terminal()
    args = ["--hub", network.hub.url, "--no-cache", "--chunk-size", "1", network.url("sub/deep.bin")]
    assert KbGet(args + ["-o", str(out / "a")], output_file=io.StringIO(), error_file=terminal).execute() == 0
    assert "(direct)" in "".join(terminal.text)
    network.share.stop()
    terminal = _Terminal()
    assert KbGet(args + ["-o", str(out / "b")], output_file=io.StringIO(), error_file=terminal).execute() == 0
    assert f"(via hub 127.0.0.1:{network.hub.port})" in "".join(terminal.text)


# -- bad input is a usage error, said once -------------------------------------------------------------

@pytest.mark.parametrize("how", ["env", "option"])
def test_a_hub_setting_that_is_not_a_url_is_a_usage_error(env, monkeypatch, how):
    network, _, out = env
    if how == "env":
        monkeypatch.setenv("KBUCKET_URL", "notaurl")
        result = run_cli(KbGet, network.url("hello.txt"), "-o", out / "h")
        name = "KBUCKET_URL=notaurl"
    else:
        result = run_cli(KbGet, "--hub", "notaurl", network.url("hello.txt"), "-o", out / "h")
        name = "--hub=notaurl"
    assert result.code == 2 and result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert name in first and "http://127.0.0.1:3000" in first and "unreachable" not in first
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_bad_hub_setting_does_not_matter_to_an_http_url(env, monkeypatch):
    network, contents, out = env
    monkeypatch.setenv("KBUCKET_URL", "notaurl")
    result = run_cli(KbGet, f"{network.hub.url}/{network.node_id}/download/hello.txt", "-o", out / "h")
    assert result.code == 0, result.stderr
    assert (out / "h").read_bytes() == contents["hello.txt"]


def test_an_error_names_the_url_once(env):
    network, _, out = env
    url = network.url("no such.txt")
    result = get(network, url, "-o", out / "x")
    assert result.code == 1
    assert result.stderr.count(url) == 1, result.stderr
    assert result.stderr.startswith(f"kb-get: {url}: ")


def test_an_output_that_is_a_regular_file_where_a_directory_is_needed(env):
    network, _, out = env
    out.mkdir()
    regular = out / "regular"
    regular.write_text("keep me")
    cases = [
        (network.url("sub"), str(regular)),  # a directory URL
        (network.url("hello.txt"), str(regular) + "/"),  # a trailing / asks for a directory
        (network.url("hello.txt"), str(regular / "x")),  # below a file
    ]
    for url, output in cases:
        result = get(network, url, "-o", output)
        assert result.code == 2, (output, result.stderr)
        assert "not a directory" in result.stderr and "File exists" not in result.stderr
        assert "not a directory" in result.stderr.splitlines()[0] and "Traceback" not in result.stderr
    several = get(network, network.url("hello.txt"), network.url("empty.dat"), "-o", regular)
    assert several.code == 2 and "not a directory" in several.stderr
    assert regular.read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["regular"]


def test_a_file_in_the_way_inside_the_output_directory_is_a_clear_record_error(env):
    network, contents, out = env
    out.mkdir()
    (out / "sub").write_text("in the way")
    result = get(network, network.url(""), "-o", out)
    assert result.code == 3
    [failed] = [r for r in result.records if r["status"] == "error"]
    assert failed["url"] == network.url("sub/deep.bin")
    assert f"{out / 'sub'} is not a directory" in failed["message"] and "File exists" not in failed["message"]
    assert (out / "hello.txt").read_bytes() == contents["hello.txt"]


# -- the cache ---------------------------------------------------------------------------------------

def test_editing_a_download_in_place_changes_no_other_copy(env, tmp_path):
    network, contents, out = env
    data = contents["sub/deep.bin"]
    sha1 = hashlib.sha1(data).hexdigest()
    entry = tmp_path / "cache" / sha1[0] / sha1[1:3] / sha1
    assert get(network, network.url("sub/deep.bin"), "-o", out / "a").records[0]["route"] == "direct"
    assert get(network, network.url("sub/deep.bin"), "-o", out / "b").records[0]["route"] == "cache"
    with open(out / "a", "r+b") as handle:  # an in-place edit keeps the inode
        handle.write(b"EDITED")
    with open(out / "a", "ab") as handle:  # and so does `>>`
        handle.write(b"more")
    assert (out / "b").read_bytes() == data and entry.read_bytes() == data
    with open(entry, "r+b") as handle:  # the cache damaged behind kb-get's back
        handle.write(b"ROT")
    assert (out / "b").read_bytes() == data
    assert len({os.stat(p).st_ino for p in (out / "a", out / "b", entry)}) == 3


def test_a_damaged_cache_entry_is_never_served(env, tmp_path):
    network, contents, out = env
    data = contents["sub/deep.bin"]
    sha1 = hashlib.sha1(data).hexdigest()
    assert get(network, network.url("sub/deep.bin"), "-o", out / "a").code == 0
    entry = tmp_path / "cache" / sha1[0] / sha1[1:3] / sha1
    with open(entry, "r+b") as handle:  # same size, other bytes
        handle.write(b"ROT")
    again = get(network, f"sha1://{sha1}/b", "-o", out / "b")  # fetched again, not copied
    assert again.code == 0, again.stderr
    assert again.records[0]["route"] in ("direct", "hub") and (out / "b").read_bytes() == data
    assert entry.read_bytes() == data  # and the cache holds the right bytes again
    with open(entry, "r+b") as handle:
        handle.write(b"ROT")
    offline = run_cli(KbGet, f"sha1://{sha1}/c", "-o", out / "c")  # no hub to fall back on
    assert offline.code == 3 and offline.records[0]["status"] == "error"
    assert not (out / "c").exists() and not entry.exists()


def test_cache_info_and_clear(env, tmp_path):
    network, contents, out = env
    empty = run_cli(KbGet, "--cache-info")
    assert empty.code == 0
    validate(empty.json, "kb-get-cache")
    assert empty.json == {"path": str(tmp_path / "cache"), "files": 0, "bytes": 0, "enabled": True}
    assert get(network, network.url("sub"), "-o", out / "sub").code == 0
    assert get(network, network.url("hello.txt"), "-o", out / "h").code == 0
    info = run_cli(KbGet, "--cache-info").json
    assert info["files"] == 2 and info["bytes"] == len(contents["sub/deep.bin"]) + len(contents["hello.txt"])
    cleared = run_cli(KbGet, "--cache-clear")
    assert cleared.code == 0
    validate(cleared.json, "kb-get-cache")
    assert (cleared.json["removed_files"], cleared.json["files"]) == (2, 0)
    assert run_cli(KbGet, "--cache-info").json["files"] == 0
    assert (out / "h").read_bytes() == contents["hello.txt"]  # downloads are not the cache's to remove
    assert run_cli(KbGet, "--cache-info", network.url("hello.txt")).code == 2


def test_the_cache_follows_xdg_and_can_be_turned_off(env, tmp_path, monkeypatch):
    network, _, out = env
    monkeypatch.delenv("KBUCKET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert run_cli(KbGet, "--cache-info").json["path"] == str(tmp_path / "xdg" / "kbtools" / "sha1")
    monkeypatch.setenv("KBUCKET_NO_CACHE", "1")
    assert run_cli(KbGet, "--cache-info").json["enabled"] is False
    assert get(network, network.url("hello.txt"), "-o", out / "h").code == 0
    assert not (tmp_path / "xdg").exists()


def test_help_tells_about_the_cache():
    result = run_kb_get("--help")
    text = result.stdout.decode()
    assert result.returncode == 0
    for needle in ("~/.cache/kbtools/sha1", "--cache-info", "--cache-clear", "--no-cache", "KBUCKET_NO_CACHE",
                   "KBUCKET_CACHE_DIR", "reflink"):
        assert needle in text, needle
