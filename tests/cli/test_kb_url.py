"""kb-url: kbucket:// URLs of local paths, sha1 pins, and per-record errors."""
from __future__ import annotations

import json
import os

import pytest

from kbtools.cli.kb_index import KbIndex
from kbtools.cli.kb_url import KbUrl

from ..conftest import run_cli, validate
from ..index.trees import ONE_TXT, WEIRD_NAMES, age, sha1, write

NODE_ID = "83bded5ed247"


@pytest.fixture
def hosted(tmp_path):
    root = tmp_path / "study"
    write(root / ".kbucket" / "kbnode.json", json.dumps({"node_type": "leaf", "node_id": NODE_ID}))
    write(root / "dataset1" / "raw.mda", b"\x00" * 100)
    write(root / "sub" / "one.txt", ONE_TXT)
    for name in WEIRD_NAMES:
        write(root / "odd" / name, name)
    write(root / ".hidden" / "x", "x")
    write(tmp_path / "outside.txt", "o")
    os.symlink(tmp_path / "outside.txt", root / "link-out")
    os.symlink("../.kbucket/kbnode.json", root / "sub" / "link-key")
    age(root)
    return root


def _check(r):
    for rec in r.records:
        validate(rec, "kb-url")
    assert "Traceback" not in r.stderr
    return r.records


def test_urls_of_files_and_directories(hosted):
    r = run_cli(KbUrl, hosted / "sub" / "one.txt", hosted / "dataset1", hosted)
    assert r.code == 0
    assert [x["url"] for x in _check(r)] == [
        f"kbucket://{NODE_ID}/sub/one.txt", f"kbucket://{NODE_ID}/dataset1", f"kbucket://{NODE_ID}/"]
    assert r.records[0]["path"] == str(hosted / "sub" / "one.txt")


def test_relative_paths_and_stdin(hosted, monkeypatch):
    monkeypatch.chdir(hosted / "sub")
    names = "\n".join(["one.txt", "../dataset1/raw.mda"]) + "\n"
    r = run_cli(KbUrl, "-", stdin=names)
    assert [x["url"] for x in _check(r)] == [
        f"kbucket://{NODE_ID}/sub/one.txt", f"kbucket://{NODE_ID}/dataset1/raw.mda"]


def test_weird_names(hosted):
    r = run_cli(KbUrl, *[hosted / "odd" / n for n in WEIRD_NAMES], "--sha1")
    assert r.code == 0, r.stdout
    records = _check(r)
    for name, rec in zip(WEIRD_NAMES, records):
        assert rec["url"] == f"kbucket://{NODE_ID}/odd/{name}"
        assert rec["sha1"] == sha1(name.encode())
        assert rec["sha1_url"] == f"sha1://{rec['sha1']}/{name}"
    assert not list(hosted.parent.rglob("pwned"))


def test_sha1_comes_from_a_fresh_cache(hosted):
    run_cli(KbIndex, hosted)
    r = run_cli(KbUrl, "--sha1", hosted / "sub" / "one.txt")
    assert r.records[0]["sha1"] == sha1(ONE_TXT)
    write(hosted / "sub" / "one.txt", b"edited")  # stale cache row: hashed again
    r = run_cli(KbUrl, "--sha1", hosted / "sub" / "one.txt")
    assert r.records[0]["sha1"] == sha1(b"edited")


def test_errors_are_records_with_exit_1(hosted, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    r = run_cli(KbUrl, hosted / "sub" / "one.txt", tmp_path / "elsewhere", hosted / "missing",
                hosted / ".hidden" / "x", hosted / ".kbucket" / "kbnode.json", hosted / "link-out",
                hosted / "sub" / "link-key")
    assert r.code == 1
    records = _check(r)
    assert "url" in records[0]
    assert [x.get("code") for x in records[1:]] == [
        "not-hosted", "no-such-path", "not-shared", "not-shared", "not-shared", "not-shared"]


def test_sha1_of_a_directory_is_an_error(hosted):
    r = run_cli(KbUrl, "--sha1", hosted / "dataset1")
    assert r.code == 1 and _check(r)[0]["code"] == "not-a-file"


def test_no_node_id_yet(tmp_path):
    write(tmp_path / ".kbucket" / "kbnode.json", json.dumps({"node_type": "leaf"}))
    write(tmp_path / "f", "f")
    r = run_cli(KbUrl, tmp_path / "f")
    assert r.code == 1 and _check(r)[0]["code"] == "no-node-id"


def test_corrupt_kbnode_json_is_a_record_error(tmp_path):
    write(tmp_path / ".kbucket" / "kbnode.json", "{not json")
    write(tmp_path / "f", "f")
    r = run_cli(KbUrl, tmp_path / "f")
    assert r.code == 1 and _check(r)[0]["code"] == "no-node-id"


def test_nearest_hosted_ancestor_wins(hosted):
    inner = hosted / "sub"
    write(inner / ".kbucket" / "kbnode.json", json.dumps({"node_id": "aaaaaaaaaaaa"}))
    r = run_cli(KbUrl, inner / "one.txt")
    assert _check(r)[0]["url"] == "kbucket://aaaaaaaaaaaa/one.txt"


def test_usage():
    r = run_cli(KbUrl)
    assert r.code == 2 and r.stderr.splitlines()[0] == "kb-url: the following arguments are required: PATH"


@pytest.mark.parametrize("how", ["env", "option"])
def test_a_hub_setting_that_is_not_a_url_is_a_usage_error(hosted, monkeypatch, how):
    monkeypatch.setenv("KBUCKET_URL", "notaurl")
    args = ["--hub", "notaurl"] if how == "option" else []
    r = run_cli(KbUrl, *args, "kbucket://83bded5ed247/sub/one.txt")
    assert r.code == 2 and r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert ("--hub=notaurl" if how == "option" else "KBUCKET_URL=notaurl") in first
    assert "http://127.0.0.1:3000" in first and "unreachable" not in r.stderr and "Traceback" not in r.stderr


def test_a_bad_hub_setting_does_not_matter_to_local_paths(hosted, monkeypatch):
    monkeypatch.setenv("KBUCKET_URL", "notaurl")
    r = run_cli(KbUrl, str(hosted / "sub" / "one.txt"))
    assert r.code == 0 and _check(r)[0]["url"] == f"kbucket://{NODE_ID}/sub/one.txt"
