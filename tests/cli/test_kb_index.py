"""kb-index: records, summary, cache hits, .prv/.prvdir, schema, kills and hostile names."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from kbtools.cli.kb_index import KbIndex
from kbtools.formats.sample import write_sample_dataset, write_sample_study
from kbtools.index.cache import COMMIT_ROWS, cache_path

from ..conftest import ROOT, VECTORS, run_cli, validate
from ..index.trees import BIG_BIN, ONE_TXT, WEIRD_NAMES, age, make_share, sha1, write

VECTORS = json.loads((VECTORS / "http.json").read_text())["http"]


@pytest.fixture
def share(tmp_path):
    root = tmp_path / "share"
    return root, make_share(root, tmp_path / "outside")


def _by_type(records, kind):
    return [r for r in records if r["type"] == kind]


def test_records_summary_and_schema(share, tmp_path):
    root, expected = share
    r = run_cli(KbIndex, root)
    assert r.code == 0, r.stderr
    for rec in r.records:
        validate(rec, "kb-index-record")
    files = {f["path"]: f for f in _by_type(r.records, "file")}
    assert set(files) == set(expected)
    for rel, data in expected.items():
        assert files[rel]["sha1"] == sha1(data)
        assert files[rel]["fcs"] == "head1000-" + sha1(data[:1000])
        assert files[rel]["size"] == len(data)
    summary = r.records[-1]
    assert summary["type"] == "summary"
    assert summary["files"] == len(expected) and summary["hashed"] == len(expected)
    assert summary["from_cache"] == 0 and summary["errors"] == 0
    assert summary["skipped"] == 5  # three symlinks out, a loop seen by two paths
    assert "symlink leads out of the share" in r.stderr
    assert not (tmp_path / "pwned").exists() and not (root / "pwned").exists()
    assert not list(tmp_path.rglob("pwned"))


def test_reindex_comes_from_the_cache(share):
    root, expected = share
    assert run_cli(KbIndex, root).code == 0
    r = run_cli(KbIndex, root)
    summary = r.records[-1]
    assert summary["hashed"] == 0 and summary["from_cache"] == len(expected)
    assert all(f["cached"] for f in _by_type(r.records, "file"))


def test_no_cache_leaves_no_trace(tmp_path):
    write(tmp_path / "a", "a")
    r = run_cli(KbIndex, tmp_path, "--no-cache")
    assert r.code == 0 and not (tmp_path / ".kbucket").exists()


def test_extra_digests(tmp_path):
    write(tmp_path / "a", "abc")
    r = run_cli(KbIndex, tmp_path, "--digest", "sha256", "--digest", "md5")
    f = r.records[0]
    assert f["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert f["md5"] == "900150983cd24fb0d6963f7d28e17f72"
    validate(f, "kb-index-record")
    r = run_cli(KbIndex, tmp_path, "--digest", "sha512")
    assert r.code == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == \
        "kb-index: argument --digest: invalid choice: 'sha512' (choose from 'sha256', 'md5')"


def test_dataset_records(tmp_path):
    write_sample_study(tmp_path / "study", names=("good", "bad"), samples=300)
    (tmp_path / "study" / "bad" / "geom.csv").write_text("1,2\n")  # 1 row for 4 channels
    write_sample_dataset(tmp_path / "top", samples=300)
    r = run_cli(KbIndex, tmp_path / "study")
    datasets = {d["path"]: d for d in _by_type(r.records, "dataset")}
    assert set(datasets) == {"good", "bad"}
    assert datasets["good"]["valid"] is True and datasets["bad"]["valid"] is False
    assert datasets["bad"]["findings"]
    for d in datasets.values():
        validate(d, "kb-index-record")
    assert r.records[-1]["datasets"] == 2
    assert r.code == 0  # an invalid dataset is reported, the index itself succeeded
    top = _by_type(run_cli(KbIndex, tmp_path / "top").records, "dataset")
    assert [d["path"] for d in top] == ["."]


def test_prv_matches_the_recorded_original(tmp_path):
    write(tmp_path / "one.txt", ONE_TXT)
    r = run_cli(KbIndex, "--prv", tmp_path / "one.txt")
    assert r.code == 0, r.stderr
    recorded = dict(VECTORS["prv"], original_path="one.txt")
    assert r.stdout == json.dumps(recorded, indent=4, ensure_ascii=False) + "\n"
    r = run_cli(KbIndex, "--prv", tmp_path / "one.txt", "--absolute-paths")
    assert r.json["original_path"] == str(tmp_path / "one.txt")


def test_prv_errors(tmp_path):
    r = run_cli(KbIndex, "--prv", tmp_path)
    assert r.code == 2 and r.stderr.splitlines()[0] == f"kb-index: {tmp_path} is a directory: use --prvdir"
    r = run_cli(KbIndex, "--prv", tmp_path / "missing")
    assert r.code == 2 and "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.splitlines()[0] == f"kb-index: no such file: {tmp_path / 'missing'}"
    r = run_cli(KbIndex, tmp_path, "--prv", tmp_path / "x")
    assert r.code == 2 and r.stderr.splitlines()[0] == "kb-index: give either DIR, --prv FILE or --prvdir DIR"
    os.mkfifo(tmp_path / "fifo")  # never opened: that would block
    r = run_cli(KbIndex, "--prv", tmp_path / "fifo")
    assert r.code == 2 and "not a regular file" in r.stderr


def test_prvdir_matches_the_recorded_readdir(tmp_path):
    write(tmp_path / "share" / "big.bin", BIG_BIN)
    write(tmp_path / "share" / "one.txt", ONE_TXT)
    write(tmp_path / "share" / "d" / "two.txt", "two")
    r = run_cli(KbIndex, "--prvdir", tmp_path / "share")
    assert r.code == 0, r.stderr
    tree = r.json
    assert list(tree) == ["files", "dirs"]
    for entry in VECTORS["readdir"]["files"]:
        ours = tree["files"][entry["name"]]
        assert list(ours) == list(entry["prv"])
        assert dict(ours, original_path=None) == dict(entry["prv"], original_path=None)
        assert ours["original_path"] == entry["name"]
    assert tree["dirs"] == {"d": {"files": {"two.txt": tree["dirs"]["d"]["files"]["two.txt"]},
                                  "dirs": {}}}
    assert tree["dirs"]["d"]["files"]["two.txt"]["original_path"] == "d/two.txt"


def test_weird_names_in_paths_round_trip(share):
    root, _ = share
    paths = {f["path"] for f in _by_type(run_cli(KbIndex, root).records, "file")}
    assert set(WEIRD_NAMES) <= paths


def test_not_a_directory_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    for args in ([tmp_path / "missing"], [tmp_path / "file"], ["--prvdir", tmp_path / "missing"]):
        r = run_cli(KbIndex, *args)
        assert r.code == 2 and "not a directory" in r.stderr and "Traceback" not in r.stderr


def _spawn(*args):
    return subprocess.Popen([sys.executable, "-m", "kbtools.cli.kb_index", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def test_a_killed_run_leaves_a_usable_cache(tmp_path):
    # Far more output than a pipe holds: the run blocks on stdout until it is killed.
    count = 3000
    for i in range(count):
        write(tmp_path / f"d{i % 7}" / f"f{i}.bin", os.urandom(64) * (1 + i % 50))
    age(tmp_path)
    proc = _spawn(tmp_path, "--quiet")
    seen = 0
    try:
        for line in proc.stdout:
            seen += 1
            if seen == 2 * COMMIT_ROWS + 10:
                break
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert seen == 2 * COMMIT_ROWS + 10  # killed mid-run
    r = run_cli(KbIndex, tmp_path)
    assert r.code == 0, r.stderr
    summary = r.records[-1]
    assert summary["files"] == count
    assert summary["from_cache"] >= 2 * COMMIT_ROWS  # the committed batches survived
    for f in _by_type(r.records, "file"):
        assert f["sha1"] == sha1((tmp_path / f["path"]).read_bytes())
    assert cache_path(tmp_path).is_file()


def test_head_closing_the_pipe_is_quiet(share):
    root, _ = share
    proc = subprocess.run(
        f"{sys.executable} -m kbtools.cli.kb_index {json.dumps(str(root))} | head -n 1",
        shell=True, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr


def test_a_file_that_keeps_changing_is_an_error_record(tmp_path):
    write(tmp_path / "steady", "s")
    busy = tmp_path / "busy"
    write(busy, b"x" * (64 << 20))
    # Rewrites its first block without pause: every read of the file overlaps a write.
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY)\nos.pwrite(fd,b'y'*4096,0)\n"
         "print('started',flush=True)\nwhile True: os.pwrite(fd,b'y'*4096,0)\n", str(busy)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "started\n"
        r = run_cli(KbIndex, tmp_path)
    finally:
        writer.kill()
        writer.wait()
    files = {f["path"]: f for f in _by_type(r.records, "file")}
    assert files["busy"]["code"] == "file-changing" and "sha1" not in files["busy"]
    assert "sha1" in files["steady"]
    assert r.code == 1 and r.records[-1]["errors"] == 1
    validate(files["busy"], "kb-index-record")
    # Nothing was stored for it: once quiet, it is hashed (not taken from the cache).
    again = run_cli(KbIndex, tmp_path)
    files = {f["path"]: f for f in _by_type(again.records, "file")}
    assert files["busy"]["cached"] is False
    assert files["busy"]["sha1"] == sha1(busy.read_bytes())


def test_record_lines_are_the_one_json_writer_s_records_of_the_schema(share):
    from kbtools.cli.base import dump_json
    from kbtools.cli.kb_index import file_record_line
    from kbtools.index.share_index import FileOutcome, ShareIndex

    root, _ = share
    write(root / "ctl\x01\x7f\u2028.txt", "control characters")
    for digests in [(), ("sha256",), ("md5", "sha256")]:
        with ShareIndex(root, digests=digests) as index:
            for outcome in index.scan():
                for cached in (True, False):
                    line = file_record_line(outcome._replace(from_cache=cached), digests)
                    record = json.loads(line)
                    assert dump_json(record) == line
                    validate(record, "kb-index-record")
                    assert (record["path"], record["cached"]) == (outcome.relpath, cached)
                    assert [k for k in record if k in ("sha256", "md5")] == list(digests)
    failed = FileOutcome("x", None, False, "file-unreadable", "cannot read", 3, 10**18)
    validate(json.loads(file_record_line(failed, ())), "kb-index-record")


def test_the_snapshot_key_of_the_lines_follows_their_definition(monkeypatch):
    from kbtools.cli import kb_index

    keys = {kb_index.cached_lines_renderer(d).key
            for d in [(), ("sha256",), ("md5",), ("md5", "sha256"), ("sha256", "md5")]}
    assert len(keys) == 5
    before = kb_index.cached_lines_renderer(()).key
    assert kb_index.cached_lines_renderer(()).key == before  # stable from run to run
    monkeypatch.setattr(kb_index, "FCS_PREFIX", "head1000:")  # the record changes: so does its key
    assert kb_index.cached_lines_renderer(()).key != before


def _run_with_stderr_on_a_terminal(*args):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # A new pseudo-terminal is 0x0, where a progress bar has no room to draw: give it 24x80.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        proc = subprocess.run([sys.executable, "-m", "kbtools.cli.kb_index", *map(str, args)],
                              stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, timeout=120)
    finally:
        os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal is closed once everything is read
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    return proc, err


def test_progress_bar_only_on_a_terminal_stderr(tmp_path):
    write(tmp_path / "big.bin", b"\0" * (8 << 20))
    write(tmp_path / "small.txt", "s")
    proc, err = _run_with_stderr_on_a_terminal(tmp_path, "--no-cache")
    assert proc.returncode == 0
    assert b"hashing" in err and b"/2 files" in err and b"8.00M" in err
    assert b"hashing" not in proc.stdout
    assert [json.loads(x)["type"] for x in proc.stdout.splitlines()] == ["file", "file", "summary"]
    proc, err = _run_with_stderr_on_a_terminal(tmp_path, "--no-cache", "--quiet")
    assert proc.returncode == 0 and b"hashing" not in err
    r = run_cli(KbIndex, tmp_path, "--no-cache")  # captured stderr: not a terminal
    assert "hashing" not in r.stderr


def test_lines_from_the_snapshot_equal_the_json_writer(tmp_path):
    from kbtools.cli.base import dump_json
    from kbtools.index.snapshot import remove_snapshot, snapshot_path

    write_sample_study(tmp_path / "study", names=("good",), samples=300)
    write(tmp_path / "study" / "ctl\x01\x7f ü \"q\".txt", "control characters")
    age(tmp_path / "study")
    for digests in [[], ["--digest", "sha256"], ["--digest", "md5", "--digest", "sha256"]]:
        run_cli(KbIndex, tmp_path / "study", *digests)
        assert snapshot_path(tmp_path / "study").is_file()
        whole = run_cli(KbIndex, tmp_path / "study", *digests)
        assert whole.code == 0 and whole.records[-1]["hashed"] == 0
        remove_snapshot(tmp_path / "study")  # the same run, file by file from SQLite
        by_file = run_cli(KbIndex, tmp_path / "study", *digests)
        lines = whole.stdout.splitlines()
        assert lines[:-1] == by_file.stdout.splitlines()[:-1]  # all but the summary's seconds
        assert [dump_json(json.loads(line)) for line in lines] == lines
        assert [d["path"] for d in _by_type(whole.records, "dataset")] == ["good"]
        assert whole.records[-1]["from_cache"] == by_file.records[-1]["from_cache"] == len(
            _by_type(whole.records, "file"))
