""".prv and .prvdir objects against the answers of the original share."""
from __future__ import annotations

import json

from kbtools.index.prv import make_prv, make_prvdir
from kbtools.index.share_index import ShareIndex

from ..conftest import VECTORS
from .trees import BIG_BIN, ONE_TXT, write

VECTORS = json.loads((VECTORS / "http.json").read_text())["http"]


def test_prv_keys_in_the_original_order():
    prv = make_prv("a" * 40, 3, "b" * 40, "x/y")
    assert list(prv) == ["original_checksum", "original_size", "original_fcs", "original_path",
                         "prv_version"]
    assert prv["original_fcs"] == "head1000-" + "b" * 40
    assert prv["prv_version"] == "0.11"


def _recorded_share(tmp_path):
    share = tmp_path / "share"
    write(share / "one.txt", ONE_TXT)
    write(share / "big.bin", BIG_BIN)
    index = ShareIndex(share, use_cache=False)
    index.refresh()
    return share, index


def test_prv_equals_the_recorded_answer_except_original_path(tmp_path):
    _, index = _recorded_share(tmp_path)
    recorded = VECTORS["prv"]
    ours = index.prv("one.txt")
    assert list(ours) == list(recorded)
    assert {k: v for k, v in ours.items() if k != "original_path"} == \
        {k: v for k, v in recorded.items() if k != "original_path"}
    assert ours["original_path"] == "one.txt"
    assert json.dumps(ours, indent=4) == json.dumps(dict(recorded, original_path="one.txt"), indent=4)


def test_readdir_prv_entries_match(tmp_path):
    _, index = _recorded_share(tmp_path)
    for entry in VECTORS["readdir"]["files"]:
        ours = index.prv(entry["name"])
        assert ours["original_size"] == entry["size"]
        assert list(ours) == list(entry["prv"])
        assert dict(ours, original_path=None) == dict(entry["prv"], original_path=None)


def test_absolute_paths_only_when_asked(tmp_path):
    share, _ = _recorded_share(tmp_path)
    index = ShareIndex(share, use_cache=False, absolute_paths=True)
    index.refresh()
    assert index.prv("one.txt")["original_path"] == str(share.absolute() / "one.txt")


def test_prvdir_shape():
    prv = make_prv("a" * 40, 1, "a" * 40, "p")
    tree = make_prvdir(["", "d", "d/e", "empty"], [("top.txt", prv), ("d/e/f", prv)])
    assert tree == {
        "files": {"top.txt": prv},
        "dirs": {"d": {"files": {}, "dirs": {"e": {"files": {"f": prv}, "dirs": {}}}},
                 "empty": {"files": {}, "dirs": {}}},
    }
    assert list(tree) == ["files", "dirs"]
