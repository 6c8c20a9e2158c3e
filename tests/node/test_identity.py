"""Node keys and id: the original's files used as they are; new keys in the original's form."""
from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import VECTORS
from kbtools.errors import RuntimeFailure
from kbtools.node.identity import (
    create_identity, generate_key_pair, keys_missing, load_identity, node_id_for_public_key,
)

NODES = VECTORS / "nodes"


@pytest.mark.parametrize("name,node_id", [("hub", "d0d90d53e2d5"), ("childhub", "304421134a4c"),
                                          ("share", "83bded5ed247"), ("share2", "3e483bd811d8")])
def test_original_keys_are_used_as_they_are(tmp_path, name, node_id):
    shutil.copytree(NODES / name, tmp_path / ".kbucket")
    identity = load_identity(tmp_path)
    assert identity.node_id == node_id
    assert identity.public_pem == (NODES / name / "public.pem").read_text()
    identity.private_key()  # some of these keys have non-minimal DER integers


def test_generated_keys_have_the_original_text_form(tmp_path):
    identity = create_identity(tmp_path)
    private_path, public_path = tmp_path / ".kbucket/private.pem", tmp_path / ".kbucket/public.pem"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    public = public_path.read_text()
    assert public.startswith("-----BEGIN RSA PUBLIC KEY-----\n") and public.endswith("-----END RSA PUBLIC KEY-----\n")
    assert private_path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    body = public.splitlines()[1:-1]
    assert all(len(line) == 72 for line in body[:-1]) and 0 < len(body[-1]) <= 72
    assert identity.node_id == hashlib.sha1(public.encode()).hexdigest()[:12]
    key = identity.private_key()
    assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537
    assert load_identity(tmp_path) == identity


def test_keys_missing_only_when_both_are(tmp_path):
    assert keys_missing(tmp_path)
    (tmp_path / ".kbucket").mkdir()
    (tmp_path / ".kbucket/public.pem").write_text(generate_key_pair()[1])
    assert not keys_missing(tmp_path)
    with pytest.raises(RuntimeFailure, match="private.pem is missing"):
        load_identity(tmp_path)


def test_node_id_hashes_the_exact_text():
    assert node_id_for_public_key("abc\n") != node_id_for_public_key("abc")
