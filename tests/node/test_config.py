"""kbnode.json, start-up preparation, questions, --auto, passcode and listen settings."""
from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import VECTORS
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node import config as config_module
from kbtools.node.config import (
    Refused, add_answer_options, answers_from_args, ask_questions, config_path, configure,
    dump_config, hub_listen_port, load_config, migrate_legacy_fields, node_questions,
    parent_hub_url, parse_port_range, prepare_node, read_node_id, resolve_auto, resolve_listen_url,
    resolve_parent_hub_passcode, save_config, share_listen_port, websocket_url,
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
    with pytest.raises(UsageError, match="node id has already been set") as e:
        prepare_node(tmp_path, "leaf")
    assert str(config_path(tmp_path)) in str(e.value)


def test_wrong_node_type(tmp_path):
    shutil.copytree(NODES / "share", tmp_path / ".kbucket")
    with pytest.raises(UsageError, match="Incorrect type for hemlock node: leaf"):
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
    hub = {q.name: q for q in node_questions("hub", tmp_path, {}, env={"KBUCKET_URL": "http://h"})}
    assert hub["listen_port"].default == "3240"
    assert hub["parent_hub_url"].prompt == "[kbucket] Parent hub url (use . for none):"
    assert hub["parent_hub_url"].default == "http://h"


def test_the_parent_hub_defaults_to_kbucket_url_never_to_the_dead_original(tmp_path):
    for env in ({}, {"KBUCKET_URL": ""}):
        leaf = {q.name: q for q in node_questions("leaf", tmp_path, {}, env=env)}
        assert leaf["parent_hub_url"].default == ""  # no default: the original hub is gone
        hub = {q.name: q for q in node_questions("hub", tmp_path, {}, env=env)}
        assert hub["parent_hub_url"].default == "."  # a hub without a parent
    leaf = {q.name: q for q in node_questions("leaf", tmp_path, {}, env={"KBUCKET_URL": "http://h:1"})}
    assert leaf["parent_hub_url"].default == "http://h:1"
    with pytest.raises(UsageError, match="parent_hub_url"):
        resolve_auto(node_questions("leaf", tmp_path, {**COMPLETE_LEAF, "parent_hub_url": ""}, env={}), {})


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


# ---------------------------------------------------------------- a kbnode.json that cannot be used

@pytest.mark.parametrize("content, problem", [
    (b'{"name": "caf\xe9"}', "not UTF-8 text (byte 0xe9 at offset 13)"),
    (b'{"name": ', "not valid JSON"),
    (b'["a list"]', "must hold a JSON object, not a list"),
    (b'{"name": 5}', "name must be a string, not a number"),
    (b'{"parent_hub_url": ["x"]}', "parent_hub_url must be a string, not a list"),
    (b'{"listen_port": true}', "listen_port must be a port number, not true/false"),
])
def test_a_broken_kbnode_json_is_a_configuration_error_naming_the_file(tmp_path, content, problem):
    (tmp_path / ".kbucket").mkdir()
    config_path(tmp_path).write_bytes(content)
    with pytest.raises(UsageError) as e:
        load_config(tmp_path)
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"{config_path(tmp_path)}: ") and problem in str(e.value)
    assert "\n" not in str(e.value)
    assert read_node_id(tmp_path) is None


def test_null_fields_are_absent_and_a_numeric_port_is_kept(tmp_path):
    (tmp_path / ".kbucket").mkdir()
    config_path(tmp_path).write_text('{"name": "x", "passcode": null, "listen_port": 3240}')
    assert load_config(tmp_path) == {"name": "x", "listen_port": 3240}
    assert hub_listen_port({"listen_port": 0}) == 0


# ---------------------------------------------------------------- set-up: asked once, or given as options

COMPLETE_LEAF = {"name": "s", "scientific_research": "yes", "description": "", "owner": "Ann",
                 "owner_email": "ann@example.org", "confirm_share": "yes", "listen_url": ".",
                 "parent_hub_url": "http://127.0.0.1:9"}


class FakeTerminal:
    """What `open_terminal` returns, answering from a list; counts how often it was opened."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.opened = 0
        self.prompts = io.StringIO()

    def __call__(self):
        self.opened += 1
        reader = io.StringIO("".join(a + "\n" for a in self.answers))
        writer = io.StringIO()
        writer.close = lambda: self.prompts.write(writer.getvalue())  # keep what was written
        return reader, writer


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr(config_module, "open_terminal", lambda: None)


def parse(node_type: str, *argv: str) -> dict[str, str]:
    parser = argparse.ArgumentParser()
    add_answer_options(parser, node_type)
    return answers_from_args(parser.parse_args(list(argv)), node_type)


def test_answer_options_map_to_fields():
    assert parse("leaf", "--hub", "http://h", "--name", "n", "--owner", "Ann", "--email", "a@b.org",
                 "--agree", "--description", "d", "--listen-url", ".") == {
        "parent_hub_url": "http://h", "name": "n", "owner": "Ann", "owner_email": "a@b.org",
        "scientific_research": "yes", "confirm_share": "yes", "description": "d", "listen_url": "."}
    assert parse("hub", "--agree", "--port", "0", "--parent", ".") == {
        "scientific_research": "yes", "listen_port": "0", "parent_hub_url": "."}
    assert parse("leaf") == {}
    with pytest.raises(SystemExit):
        parse("leaf", "--port", "1")  # a share's port comes from its listen_url


def test_set_up_from_options_without_a_terminal(tmp_path, home, no_terminal):
    node = prepare_node(tmp_path, "leaf")
    answers = parse("leaf", "--hub", "http://127.0.0.1:9", "--owner", "Ann", "--email", "a@b.org",
                    "--agree")
    assert configure(node, answers, env={}, home=home) is False
    stored = load_config(tmp_path)
    assert stored["name"] == tmp_path.name and stored["parent_hub_url"] == "http://127.0.0.1:9"
    assert stored["confirm_share"] == "yes" and stored["listen_url"] == "."


def test_without_a_terminal_one_line_says_what_to_pass(tmp_path, home, no_terminal):
    node = prepare_node(tmp_path, "leaf")
    with pytest.raises(UsageError) as e:
        configure(node, parse("leaf", "--owner", "Ann"), env={}, home=home)
    text = str(e.value)
    assert text.startswith("Aborting due to missing required field: scientific_research, owner_email, "
                           "confirm_share, parent_hub_url (no terminal to ask on): pass "
                           "--agree --email EMAIL --hub URL or set them in .kbucket/kbnode.json")
    with pytest.raises(UsageError, match=r"--email: Invalid email\."):
        configure(node, parse("leaf", "--email", "nope"), env={}, home=home)
    hub = prepare_node(tmp_path / "hub", "hub")
    with pytest.raises(UsageError, match="--reconfigure"):
        configure(hub, {}, reconfigure=True, env={}, home=home)


def test_asked_once_on_the_terminal_then_never(tmp_path, home, monkeypatch):
    terminal = FakeTerminal(["", "yes", "", "Ann", "ann@example.org", "yes", ".", "http://127.0.0.1:9",
                             "pw"])
    monkeypatch.setattr(config_module, "open_terminal", terminal)
    node = prepare_node(tmp_path, "leaf")
    assert configure(node, {}, env={}, home=home) is True
    assert terminal.opened == 1
    assert "? [kbucket] Name for this share: (%s)" % tmp_path.name in terminal.prompts.getvalue()
    assert load_config(tmp_path)["parent_hub_passcode"] == "pw"
    # later runs: nothing asked, the terminal is not even opened
    assert configure(prepare_node(tmp_path, "leaf"), {}, env={}, home=home) is False
    assert terminal.opened == 1
    # an option changes one answer without asking
    configure(prepare_node(tmp_path, "leaf"), {"parent_hub_url": "http://127.0.0.1:8"}, env={}, home=home)
    assert terminal.opened == 1 and load_config(tmp_path)["parent_hub_url"] == "http://127.0.0.1:8"
    # --reconfigure asks again, the stored answers as defaults
    terminal.answers = [""] * 9
    assert configure(prepare_node(tmp_path, "leaf"), {}, reconfigure=True, env={}, home=home) is True
    assert terminal.opened == 2 and "(http://127.0.0.1:8)" in terminal.prompts.getvalue()
    # --auto never opens the terminal
    assert configure(prepare_node(tmp_path, "leaf"), {}, auto=True, env={}, home=home) is False
    assert terminal.opened == 2


def test_options_and_secrets_are_not_asked_and_a_hub_without_parent_asks_no_parent_passcode(
        tmp_path, home, monkeypatch):
    terminal = FakeTerminal(["myhub", "yes", "", "Ann", "ann@example.org", "3240", "."])
    monkeypatch.setattr(config_module, "open_terminal", terminal)
    node = prepare_node(tmp_path, "hub")
    configure(node, {"listen_url": "."}, secrets=["passcode"], env={}, home=home)
    prompts = terminal.prompts.getvalue()
    assert "Parent hub url (use . for none): (.)" in prompts
    assert "Parent hub passcode" not in prompts  # no parent: no parent passcode
    assert "Passcode for this hub" not in prompts and "Listen url" not in prompts
    stored = load_config(tmp_path)
    assert stored["name"] == "myhub" and stored["parent_hub_url"] == "." and "passcode" not in stored


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path
