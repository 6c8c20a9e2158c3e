"""The share's HTTP API (spec §4) against the recorded answers of the original, and hostile paths."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest

from tests.index.trees import BIG_BIN, ONE_TXT, WEIRD_NAMES
from tests.share.conftest import RECORDED, SHARE_ID


def test_an_original_node_directory_keeps_its_id(served):
    assert served.ctx.node_id == SHARE_ID


def test_nodeinfo_has_the_recorded_shape(served):
    status, answer = served.json(f"/{SHARE_ID}/api/nodeinfo")
    recorded = RECORDED["nodeinfo_share"]
    assert status == 200
    assert list(answer["info"]) == list(recorded["info"])
    assert answer["info"]["public_key"] == recorded["info"]["public_key"]
    assert answer["info"]["listen_url"] == served.url
    # parent_hub_info only while connected (this server has no link)
    assert set(answer) == set(recorded) - {"parent_hub_info"}
    assert answer["metrics"]["num_requests_nodeinfo"] == 1  # counted before the answer is built


def test_readdir_has_the_recorded_shape_and_hides_what_it_must(served):
    status, answer = served.json(f"/{SHARE_ID}/api/readdir/")
    recorded = RECORDED["readdir"]
    assert status == 200 and list(answer) == list(recorded)
    files = {f["name"]: f for f in answer["files"]}
    rec_files = {f["name"]: f for f in recorded["files"]}
    for name in ("one.txt", "big.bin"):  # the same content as the recorded share
        assert list(files[name]) == list(rec_files[name])
        assert files[name]["size"] == rec_files[name]["size"]
        mine, theirs = files[name]["prv"], rec_files[name]["prv"]
        assert list(mine) == list(theirs)
        assert {k: v for k, v in mine.items() if k != "original_path"} == \
               {k: v for k, v in theirs.items() if k != "original_path"}
        assert mine["original_path"] == name  # never the host's absolute path
    dirs = [d["name"] for d in answer["dirs"]]
    assert all(list(d) == ["name"] for d in answer["dirs"])
    assert "d" in dirs and "dataset1" in dirs and "odd" in dirs
    listed = set(files) | set(dirs)
    for hidden in (".secret", ".kbucket", "node_modules", "out-link", "out-dir", "kb-link"):
        assert hidden not in listed
    assert "in-link.txt" in files  # a symlink that stays inside is followed
    # without the trailing slash too, and a subdirectory
    assert served.json(f"/{SHARE_ID}/api/readdir")[1] == answer
    sub = served.json(f"/{SHARE_ID}/api/readdir/sub")[1]
    assert sub == {"success": True, "files": [], "dirs": []}
    odd = served.json(f"/{SHARE_ID}/api/readdir/odd/")[1]
    assert sorted(f["name"] for f in odd["files"]) == sorted(WEIRD_NAMES)


def test_prv_matches_the_recording(served):
    status, prv = served.json(f"/{SHARE_ID}/prv/one.txt")
    recorded = RECORDED["prv"]
    assert status == 200 and list(prv) == list(recorded)
    assert prv["original_checksum"] == recorded["original_checksum"]
    status, answer = served.json(f"/{SHARE_ID}/prv/nope.txt")
    assert status == 404 and answer["success"] is False


def test_download_full_range_head_etag_416(served):
    path = served.file_path("big.bin")
    status, headers, body = served.get(path)
    assert status == 200 and body == BIG_BIN and headers["accept-ranges"] == "bytes"
    assert headers["access-control-allow-origin"] == "*"
    status, headers, body = served.get(path, headers={"Range": "bytes=0-149999"})
    assert (status, len(body)) == tuple(RECORDED["range_big"])
    assert body == BIG_BIN[:150000] and headers["content-range"] == f"bytes 0-149999/{len(BIG_BIN)}"
    status, headers, body = served.get(path, headers={"Range": "bytes=100-199"})
    assert status == 206 and body == BIG_BIN[100:200]
    status, headers, body = served.get(path, method="HEAD")
    assert status == RECORDED["head"] and body == b"" and int(headers["content-length"]) == len(BIG_BIN)
    etag = headers["etag"]
    status, _, body = served.get(path, headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    status, headers, _ = served.get(path, headers={"Range": f"bytes={len(BIG_BIN) + 10}-"})
    assert status == 416
    status, _, body = served.get(served.file_path("one.txt"), headers={"Accept-Encoding": "gzip"})
    assert status == 200 and body == ONE_TXT  # never the one.txt.gz sibling


def test_missing_file_and_directory_are_json_errors(served):
    status, answer = served.json(served.file_path("missing.txt"))
    assert status == RECORDED["missing"] and answer["success"] is False
    status, answer = served.json(served.file_path("d"))
    assert status == 400 and "Not a file" in answer["error"]
    status, answer = served.json(f"/{SHARE_ID}/api/readdir/nowhere")
    assert status == 404


UNSAFE = [
    ".kbucket/private.pem", ".kbucket/kbnode.json", ".secret", "sub/.hidden2", "sub/.git/config",
    "node_modules/x.js", "out-link", "out-dir/passwd", "kb-link/private.pem", "../outside/passwd",
    "sub/../../outside/passwd", "a//b", "%2Fetc%2Fpasswd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/x",
    "sub/%2e%2e/%2e%2e/outside/passwd", "one.txt%00.png",
]


@pytest.mark.parametrize("route", ["download", "prv", "api/readdir", "api/dataset"])
def test_unsafe_paths_get_a_json_4xx_without_secrets(served, route):
    for rel in UNSAFE:
        status, headers, body = served.get(f"/{SHARE_ID}/{route}/{rel}")
        assert 400 <= status < 500, (route, rel, status, body[:200])
        assert headers["content-type"].startswith("application/json"), (route, rel)
        text = body.decode("utf-8")
        assert str(served.root) not in text and str(served.root.parent) not in text, (route, rel)
        assert "Traceback" not in text and "BEGIN RSA" not in text and "root:x" not in text


@pytest.mark.parametrize("route", ["download", "prv", "api/readdir", "api/dataset"])
def test_a_name_too_long_for_the_file_system_is_not_found(served, route, caplog):
    status, headers, body = served.get(f"/{SHARE_ID}/{route}/{'a' * 5000}/raw.mda")
    assert status == 404 and headers["content-type"].startswith("application/json")
    assert str(served.root) not in body.decode("utf-8")
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the share's log


def test_odd_names_download_and_prv(served):
    for name in WEIRD_NAMES:
        status, _, body = served.get(served.file_path(f"odd/{name}"))
        assert status == 200 and body == name.encode(), name
        status, prv = served.json(f"/{SHARE_ID}/prv/{quote('odd/' + name)}")
        assert status == 200 and prv["original_checksum"] == hashlib.sha1(name.encode()).hexdigest()


def test_dataset_route(served):
    status, answer = served.json(f"/{SHARE_ID}/api/dataset/dataset1")
    assert status == 200 and list(answer) == ["success", "dataset", "geom", "params"]
    assert answer["dataset"]["valid"] is True and answer["dataset"]["path"] == "dataset1"
    assert answer["dataset"]["summary"]["num_channels"] == 4
    assert len(answer["geom"]) == 4 and all(len(row) == 2 for row in answer["geom"])
    assert answer["params"]["samplerate"] == 30000
    assert str(served.root) not in str(answer)
    status, answer = served.json(f"/{SHARE_ID}/api/dataset/d")
    assert status == 404 and answer["success"] is False


def test_dataset_route_refuses_a_file_that_leads_out(served, tmp_path):
    (served.root / "dataset1" / "geom.csv").unlink()
    (served.root / "dataset1" / "geom.csv").symlink_to(tmp_path / "outside" / "passwd")
    status, headers, body = served.get(f"/{SHARE_ID}/api/dataset/dataset1")
    assert status == 400 and b"root:x" not in body


def test_other_ids_methods_and_routes(served):
    status, answer = served.json("/0123456789ab/api/readdir/")
    assert status == 404 and "Incorrect kbshare id" in answer["error"]
    status, answer = served.json("/0123456789ab/api/nodeinfo")
    assert status == 404 and "non-hub" in answer["error"]
    status, answer = served.json(f"/find/{'a' * 40}/")
    assert status == 404 and "not a hub" in answer["error"]
    status, answer = served.json(f"/{SHARE_ID}/api/find/{'a' * 40}/")
    assert status == 404
    status, answer = served.json(f"/{SHARE_ID}/download/one.txt", method="POST")
    assert status == 405
    status, answer = served.json("/")
    assert status == 404
    status, headers, _ = served.get(f"/{SHARE_ID}/download/one.txt", method="OPTIONS",
                                    headers={"Origin": "http://x", "Access-Control-Request-Method": "GET",
                                             "Access-Control-Request-Headers": "range"})
    assert status == 204 and headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-headers"] == "range"
    # route words are case-insensitive, as in the original's Express app
    status, _ = served.json(f"/{SHARE_ID}/API/NodeInfo")
    assert status == 200
