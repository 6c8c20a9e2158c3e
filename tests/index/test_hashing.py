"""One-pass hashing: SHA-1, head1000 and extra digests, and files that change under the read."""
from __future__ import annotations

import hashlib
import os

import pytest

from kbtools.index.hashing import (BLOCK_SIZE, HEAD_SIZE, PARALLEL_BLOCK_SIZE, PARALLEL_MIN_SIZE,
                                   FileChanging, check_digest_names, hash_file)
from kbtools.index.share_index import HASH_ATTEMPTS, hash_to_record


@pytest.mark.parametrize("size", [0, 1, HEAD_SIZE - 1, HEAD_SIZE, HEAD_SIZE + 1, BLOCK_SIZE + 7,
                                  PARALLEL_MIN_SIZE + BLOCK_SIZE // 2,
                                  4 * PARALLEL_BLOCK_SIZE + 3])  # the helper's ring wraps
def test_digests_match_hashlib(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    digests, st = hash_file(path, ("sha256", "md5"))
    assert digests.size == size == st.st_size
    assert digests.sha1 == hashlib.sha1(data).hexdigest()
    assert digests.head_sha1 == hashlib.sha1(data[:HEAD_SIZE]).hexdigest()
    assert digests.extra == {"sha256": hashlib.sha256(data).hexdigest(),
                             "md5": hashlib.md5(data).hexdigest()}


def test_empty_file_matches_the_spec_example(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    digests, _ = hash_file(tmp_path / "e")
    assert digests.sha1 == digests.head_sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert digests.extra == {}


def test_unknown_digest_names_are_refused():
    assert check_digest_names(["md5", "sha256", "md5"]) == ("md5", "sha256")
    with pytest.raises(ValueError):
        check_digest_names(["sha512"])


def _grow(path):
    def on_block(nbytes):
        with open(path, "ab") as fh:
            fh.write(b"more")
    return on_block


def test_a_file_written_during_the_read_is_detected(tmp_path):
    path = tmp_path / "growing"
    path.write_bytes(b"x" * (3 * BLOCK_SIZE))
    with pytest.raises(FileChanging):
        hash_file(path, on_block=_grow(path))


def test_a_file_replaced_during_the_read_is_detected(tmp_path):
    path = tmp_path / "replaced"
    path.write_bytes(b"old" * 1000)

    def replace(nbytes):
        (tmp_path / "new").write_bytes(b"new" * 1000)
        os.replace(tmp_path / "new", path)

    with pytest.raises(FileChanging):
        hash_file(path, on_block=replace)


def test_a_changing_file_is_hashed_again_then_given_up(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * BLOCK_SIZE)
    calls = []

    def once(nbytes):
        if not calls:
            path.write_bytes(b"b" * BLOCK_SIZE)  # same size: only mtime/ctime tell
        calls.append(nbytes)

    rec = hash_to_record(path, "f", on_block=once)
    assert rec.sha1 == hashlib.sha1(b"b" * BLOCK_SIZE).hexdigest()
    with pytest.raises(FileChanging):
        hash_to_record(path, "f", on_block=_grow(path))
    assert HASH_ATTEMPTS >= 2
