"""kbnode.json, start-up preparation, questions, --auto, passcode and listen settings."""
from __future__ import annotations

import io
import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import VECTORS
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.config import (
    Refused, ask_questions, config_path, dump_config, hub_listen_port, load_config,
    migrate_legacy_fields, node_questions, parent_hub_url, parse_port_range, prepare_node,
    read_node_id, resolve_auto, resolve_listen_url, resolve_parent_hub_passcode, save_config,
    share_listen_port, websocket_url,
)

NODES = VECTORS / "nodes"


def test_save_writes_the_original_text(tmp_path):
    original = (NODES / "share" / "kbnode.json").read_text()
    config = json.loads(original)
    save_config(tmp_path, config)
    assert config_path(tmp_path).read_text() == original
    assert dump_config({"a": "é", "b": {}}) == '{\n    "a": "é",\n    "b": {}\n}'
    assert [p.name for p in (tmp_path / ".kbucket").iterdir()] == ["kbnode.json"]  # no temp left


def test_copied_original_node_dir_keeps_its_id(tmp_path):
    shutil.copytree(NODES / "share", tmp_path / ".kbucket")
    before = (tmp_path / ".kbucket/kbnode.json").read_text()
    node = prepare_node(tmp_path, "leaf")
    assert node.node_id == "83bded5ed247" == read_node_id(tmp_path)
    assert (tmp_path / ".kbucket/kbnode.json").read_text() == before
    assert node.messages == []


def test_fresh_dir_gets_keys_and_id(tmp_path):
    node = prepare_node(tmp_path, "hub")
    assert node.config == {"node_type": "hub", "network_type": "kbucket", "node_id": node.node_id}
    assert load_config(tmp_path)["node_id"] == node.node_id
    assert node.messages[0].startswith("Creating hub configuration in ")
    assert prepare_node(tmp_path, "hub").node_id == node.node_id  # a restart keeps the id


def test_hand_written_config_without_keys(tmp_path):
    save_config(tmp_path, {"node_type": "leaf", "name": "x"})
    node = prepare_node(tmp_path, "leaf")
    assert node.config["name"] == "x" and len(node.node_id) == 12


def test_id_set_but_keys_missing_is_refused(tmp_path):
    save_config(tmp_path, {"node_type": "leaf", "node_id": "abcdefabcdef"})
    with pytest.raises(RuntimeFailure, match="node id has already been set"):
        prepare_node(tmp_path, "leaf")


def test_wrong_node_type(tmp_path):
    shutil.copytree(NODES / "share", tmp_path / ".kbucket")
    with pytest.raises(RuntimeFailure, match="Incorrect type for hemlock node: leaf"):
        prepare_node(tmp_path, "hub")


def test_legacy_fields_migrate():
    config = migrate_legacy_fields({"kbnode_type": "share", "kbnode_id": "abc", "network_type": "lari"})
    assert config == {"node_type": "leaf", "node_id": "abc", "network_type": "kbucket"}


def test_read_node_id_without_config(tmp_path):
    assert read_node_id(tmp_path) is None


def test_question_wording_and_defaults(tmp_path):
    qs = node_questions("leaf", tmp_path, {}, env={}, settings={"default_owner": "Ann"})
    by_name = {q.name: q for q in qs}
    assert [q.name for q in qs] == ["name", "scientific_research", "description", "owner", "owner_email",
                                    "confirm_share", "listen_url", "parent_hub_url", "parent_hub_passcode"]
    assert by_name["name"].prompt == "[kbucket] Name for this share:"
    assert by_name["name"].default == tmp_path.name
    assert by_name["owner"].default == "Ann"
    assert by_name["confirm_share"].prompt == (
        f"[kbucket] Share all resources associated with the directory {tmp_path.resolve()}? (yes/no)")
    assert by_name["listen_url"].default == "."
    assert by_name["parent_hub_url"].default == "https://kbucket.flatironinstitute.org"
    hub = {q.name: q for q in node_questions("hub", tmp_path, {}, env={"KBUCKET_URL": "http://h"})}
    assert hub["listen_port"].default == "3240"
    assert hub["parent_hub_url"].prompt == "[kbucket] Parent hub url (use . for none):"
    assert hub["parent_hub_url"].default == "http://h"


def test_prompt_loop_validates_and_re_asks(tmp_path):
    qs = node_questions("leaf", tmp_path, {}, env={})
    answers = "\n".join(["x" * 101, "", "maybe", "yes", "desc", "", "Ann", "bad", "a@b.org", "yes",
                         "ftp://x", ".", "http://hub", ""]) + "\n"
    out = io.StringIO()
    config = ask_questions(qs, {}, io.StringIO(answers), out)
    text = out.getvalue()
    assert ">> Name is too long." in text and ">> Invalid string: maybe" in text
    assert ">> Owner string must not be empty." in text and ">> Invalid email." in text
    assert ">> Invalid url." in text
    assert config["name"] == tmp_path.name and config["owner_email"] == "a@b.org"
    assert config["parent_hub_url"] == "http://hub" and config["parent_hub_passcode"] == ""


def test_prompt_no_to_research_stops(tmp_path):
    qs = node_questions("leaf", tmp_path, {"name": "n"}, env={})
    out = io.StringIO()
    with pytest.raises(Refused):
        ask_questions(qs, {}, io.StringIO("\nno\n"), out)
    assert "only be used to share resources for scientific research purposes." in out.getvalue()


def test_prompt_end_of_input_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        ask_questions(node_questions("leaf", tmp_path, {}, env={}), {}, io.StringIO(""), io.StringIO())


def test_auto_takes_every_answer_from_the_config(tmp_path):
    config = json.loads((NODES / "share" / "kbnode.json").read_text())
    resolved = resolve_auto(node_questions("leaf", tmp_path, config, env={}), dict(config))
    assert resolved == config
    with pytest.raises(UsageError, match="missing required field: scientific_research") as e:
        resolve_auto(node_questions("leaf", tmp_path, {}, env={}), {})
    assert e.value.exit_code == 2


def test_parent_hub_passcode_sources(tmp_path):
    config = {"parent_hub_passcode": "fromfile"}
    assert resolve_parent_hub_passcode(config, env={}) == "fromfile"
    assert resolve_parent_hub_passcode(config, env={"KBUCKET_HUB_PASSCODE": "env"}) == "env"
    f = tmp_path / "pass"
    f.write_text("secret\n")
    assert resolve_parent_hub_passcode(config, env={"KBUCKET_HUB_PASSCODE": "env"}, passcode_file=f) == "secret"
    with pytest.raises(UsageError):
        resolve_parent_hub_passcode(config, env={}, passcode_file=tmp_path / "missing")
    assert resolve_parent_hub_passcode({}, env={}) == ""


def test_listen_settings():
    assert share_listen_port({"listen_url": "http://127.0.0.1:38569"}) == 38569
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        busy = s.getsockname()[1]
        # A range wide enough that other tests holding ports cannot fill it.
        env = {"HEMLOCK_LEAF_PORT_RANGE": f"{busy}-{busy + 50}"}
        assert busy < share_listen_port({"listen_url": "."}, "127.0.0.1", env) <= busy + 50
    assert parse_port_range("2500") == (2500, 2500)
    with pytest.raises(UsageError):
        parse_port_range("a-b")
    assert hub_listen_port({"listen_port": "33699"}) == 33699
    with pytest.raises(UsageError):
        hub_listen_port({"listen_port": "x"})
    assert resolve_listen_url(".", 2500) == "http://localhost:2500"
    assert resolve_listen_url("http://h:1/", 2) == "http://h:1"
    assert parent_hub_url({"parent_hub_url": "."}) is None
    assert websocket_url("http://127.0.0.1:63240") == "ws://127.0.0.1:63240/"
    assert websocket_url("https://kb.example.org/hub") == "wss://kb.example.org/hub"


def test_keys_without_config_keep_their_id(tmp_path):
    (tmp_path / ".kbucket").mkdir()
    for name in ("private.pem", "public.pem"):
        shutil.copy(NODES / "share2" / name, tmp_path / ".kbucket" / name)
    node = prepare_node(tmp_path, "leaf")
    assert node.node_id == "3e483bd811d8" and load_config(tmp_path)["node_type"] == "leaf"
